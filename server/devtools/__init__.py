"""Development tooling, apart from the runtime: the one-command dev system on embedded services,
demo data, and the client commands mounted into the `tessera` CLI."""
