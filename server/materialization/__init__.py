"""Materialization jobs: warming widget data in the background (a kind of job, `server.jobs`)."""
