"""The append-only audit log: who did or read what, when, in which facility, with what outcome."""
