"""Per-process clients for tasks (sync SQLAlchemy engine), created lazily after fork."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine

from server.config import Settings
from server.db.migrate import sync_url

_engine: Engine | None = None
_settings: Settings | None = None


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings()
    return _settings


def engine() -> Engine:
    global _engine
    if _engine is None:
        _engine = create_engine(sync_url(settings().database_url), pool_pre_ping=True, pool_size=2, max_overflow=2)
    return _engine


def reset() -> None:
    """Forget (without closing) what the parent process had: its sockets are not ours."""
    global _engine
    _engine = None


def close() -> None:
    global _engine
    if _engine is not None:
        _engine.dispose()
        _engine = None
