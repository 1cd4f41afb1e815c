"""The broker layer, below both the server and the workers: task and queue names, the Celery app
factory, the enqueuer and the broker probe."""
