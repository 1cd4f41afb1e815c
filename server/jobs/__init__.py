"""Jobs of any kind (materialization, export): a row in PostgreSQL whose every change is a
revision, snapshots on a bounded Redis Stream, resumable watches (`revisions.py`)."""
