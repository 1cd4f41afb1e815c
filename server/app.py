"""The composition root: builds engines, clients and domain services from one Settings."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from server.auth.authenticator import Authenticator
from server.auth.tokens import TokenVerifier
from server.config import Settings
from server.dashboards.service import DashboardDomain
from server.db.engine import Database, make_engine
from server.widgets.service import WidgetDomain


@dataclass
class App:
    settings: Settings
    db: Database
    redis: aioredis.Redis
    authenticator: Authenticator
    dashboards: DashboardDomain
    widgets: WidgetDomain

    async def close(self) -> None:
        await self.redis.aclose()
        await self.db.dispose()


def build_app(settings: Settings) -> App:
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set (tessera dev starts an embedded PostgreSQL)")
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set (tessera dev starts an embedded Redis)")
    db = Database(
        make_engine(settings.database_url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
    )
    redis = aioredis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
    return App(
        settings=settings,
        db=db,
        redis=redis,
        authenticator=Authenticator(TokenVerifier(settings)),
        dashboards=DashboardDomain(db),
        widgets=WidgetDomain(db, default_refresh_seconds=settings.default_refresh_interval_seconds),
    )
