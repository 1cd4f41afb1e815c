"""Materialization jobs: state in PostgreSQL, events in a bounded Redis Stream per job
(`store.py`), the rpc domain (`service.py`), and what a worker runs (`runner.py`,
`materialize.py`)."""

from server.jobs.names import (
    TASK_CLEANUP,
    TASK_DUE_WIDGETS,
    TASK_MATERIALIZE_DASHBOARD,
    TASK_MATERIALIZE_WIDGET,
    TASK_REFRESH_VIEWS,
)

__all__ = [
    "TASK_CLEANUP",
    "TASK_DUE_WIDGETS",
    "TASK_MATERIALIZE_DASHBOARD",
    "TASK_MATERIALIZE_WIDGET",
    "TASK_REFRESH_VIEWS",
]
