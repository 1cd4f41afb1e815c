"""The one typed configuration object, read from the environment (and `.env` in development)."""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Mode(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Every knob of server and workers. Env vars are upper-case and prefixed `TESSERA_`,
    except the conventional DATABASE_URL, REDIS_URL and BROKER_URL."""

    model_config = SettingsConfigDict(env_prefix="TESSERA_", env_file=".env", extra="ignore", populate_by_name=True)

    mode: Mode = Mode.DEVELOPMENT

    # --- services ---
    database_url: str = Field(default="", validation_alias="DATABASE_URL")
    # Where queries run; empty means the application database.
    datasource_url: str = Field(default="", validation_alias="DATASOURCE_URL")
    redis_url: str = Field(default="", validation_alias="REDIS_URL")
    # Celery broker; empty means REDIS_URL.
    broker_url: str = Field(default="", validation_alias="BROKER_URL")
    # Prefix of every Redis key this deployment writes (lets tests and tenants share a Redis).
    redis_prefix: str = "tessera:"
    db_pool_size: int = 10
    db_max_overflow: int = 10

    # --- gRPC ---
    host: str = "127.0.0.1"
    port: int = 50051
    # Seconds in-flight rpcs get to finish on shutdown.
    shutdown_grace: float = 10.0
    max_message_bytes: int = 16 * 1024 * 1024

    # --- security ---
    # HS256 secret (development). Production needs public keys (RS256/ES256).
    jwt_secret: SecretStr = SecretStr("")
    jwt_public_key_file: Path | None = None
    jwt_jwks_file: Path | None = None
    jwt_algorithms: list[str] = ["HS256", "RS256", "ES256"]
    jwt_issuer: str = "tessera"
    jwt_audience: str = "tessera"
    jwt_leeway_seconds: int = 30

    # --- data ---
    cache_ttl_seconds: int = 300
    default_refresh_interval_seconds: int = 300
    query_timeout_seconds: float = 30.0
    query_timeout_cap_seconds: float = 300.0
    query_row_limit: int = 10_000
    query_row_limit_cap: int = 100_000
    worker_concurrency: int = 10

    # --- exports ---
    export_storage_url: str = "file://./var/exports"
    chromium_path: str = ""

    # --- logs ---
    log_level: str = "INFO"
    log_json: bool | None = None  # default: JSON in production, text in development

    @model_validator(mode="after")
    def _production_needs_real_keys(self) -> Settings:
        if self.mode is Mode.PRODUCTION:
            if not (self.jwt_public_key_file or self.jwt_jwks_file):
                raise ValueError("production mode needs TESSERA_JWT_PUBLIC_KEY_FILE or TESSERA_JWT_JWKS_FILE")
            if not self.database_url or not self.redis_url:
                raise ValueError("production mode needs DATABASE_URL and REDIS_URL")
        return self

    @cached_property
    def effective_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def json_logs(self) -> bool:
        return self.mode is Mode.PRODUCTION if self.log_json is None else self.log_json
