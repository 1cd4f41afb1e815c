"""The one typed configuration object, read from the environment (and `.env` in development)."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal

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
    # A streaming replica of DATABASE_URL for reads that may be slightly stale (lists, gets,
    # widget-data resolution); empty: every read goes to the primary (server/db/replica.py).
    database_replica_url: str = Field(default="", validation_alias="DATABASE_REPLICA_URL")
    # After a write, the same caller's reads on this process wait for the replica to replay it
    # (else go to the primary) for this long; other processes learn it from `x-tessera-lsn`.
    replica_read_your_writes_seconds: float = 60.0
    # Where queries run; empty means the application database.
    datasource_url: str = Field(default="", validation_alias="DATASOURCE_URL")
    # One Redis (redis://, rediss://) or a Redis Cluster (redis+cluster://host:port,host:port).
    redis_url: str = Field(default="", validation_alias="REDIS_URL")
    # Celery broker; empty means REDIS_URL (which must then be one Redis, not a cluster).
    broker_url: str = Field(default="", validation_alias="BROKER_URL")
    # Prefix of every Redis key this deployment writes (lets tests and tenants share a Redis).
    redis_prefix: str = "tessera:"
    db_pool_size: int = 10
    db_max_overflow: int = 10
    # Connections of a pool of their own, per server process, for the short reads run outside a
    # transaction (lists, dashboards, cache lookups: `Database.statements()`), none opened beyond
    # them: calls queue for one in order. 0: they share the application pool. For PostgreSQL on
    # the server's own cores, 1 or 2 bounds the tail (README, sizing) without capping transactions
    # or user queries.
    db_read_pool_size: int = Field(default=0, ge=0)

    # --- gRPC ---
    host: str = "127.0.0.1"
    port: int = 50051
    # Server processes sharing the ports (SO_REUSEPORT), each with its own event loop and pools
    # (db_pool_size + db_max_overflow connections per engine, two engines, per process); 0: one
    # per core.
    server_processes: int = Field(default=0, ge=0)
    # Seconds in-flight rpcs get to finish on shutdown.
    shutdown_grace: float = 10.0
    max_message_bytes: int = 16 * 1024 * 1024
    # Load shedding: unary rpcs running at once in this process beyond which a new one is refused
    # at once with RESOURCE_EXHAUSTED and RetryInfo (rather than queueing without bound); 0: no cap.
    # Streams (watches, downloads) are not counted: they are long and mostly idle.
    max_in_flight_rpcs: int = 256
    # The RetryInfo delay a shed call is told to wait (jittered up to twice that).
    shed_retry_after_seconds: float = 0.05
    # Also shed a rising share of new unary calls while the process's event loop has less than this
    # share of its time idle (server/api/shedding.py: a loop that is never idle leaves new calls
    # queued unseen inside grpc's C core); checked every `shed_interval_ms`; 0: off, the default
    # (bench/soak.py: on a shared machine it refused calls below the ceiling too, and the tail
    # grew); 0.05 is what bench/load_ceiling.py measured. Safe to turn on: a refusal happens before
    # any work, and the clients (Python, TypeScript, Go) retry it for every rpc after its delay.
    shed_min_idle: float = Field(default=0.0, ge=0, lt=1)
    shed_interval_ms: float = Field(default=100.0, gt=0)
    # HTTP/2 streams one gRPC connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS):
    # a bound on what one client can queue inside the server. Not lower: a client's burst on a new
    # connection, sent before the server's SETTINGS reach it, has the streams past it refused.
    max_concurrent_streams: int = Field(default=1000, ge=1)
    # Per-principal rate limits (server/api/rate_limit.py): calls a second each principal (a
    # token's subject, or a public link) may make, shared by every server through Redis; bursts of
    # `rate_limit_burst` (0: twice the rate, at least 1). 0: no limit (the default; the servers
    # still protect themselves by shedding load).
    rate_limit_per_principal: float = Field(default=0.0, ge=0)
    rate_limit_burst: int = Field(default=0, ge=0)
    # Prometheus /metrics over HTTP on `host`; 0 picks a free port, -1 disables the endpoint.
    metrics_port: int = 9464
    # The HTTP/JSON face (REST routes, /openapi.json, /docs) on `host`; 0 picks a free port, -1 off.
    http_port: int = 8080
    # Origins allowed to call the HTTP face from a browser, comma-separated ("*" for any).
    http_cors_origins: str = ""

    # --- TLS (server/tls.py; the same files serve every face) ---
    # PEM certificate chain and private key: the server speaks only TLS when both are set.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # PEM CA bundle: when set, callers must present a client certificate it signed (mTLS).
    tls_client_ca_file: Path | None = None
    # A production server refuses to listen without TLS unless this says a proxy in front
    # terminates it (server/tls.py; workers and beat serve nothing and need no certificate).
    tls_terminated_by_proxy: bool = False

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
    # The role user SQL runs as (created by migration 0002); empty runs as the login role.
    query_role: str = "tessera_reader"
    # The role that owns and reads managed materialized views (migration 0003); user SQL, run
    # as query_role, cannot reach them.
    view_role: str = "tessera_view_owner"
    # Key of the HMAC that HASH-masked PHI values are replaced with. Production needs one.
    masking_key: SecretStr = SecretStr("")
    # How long widget data stays fresh, for widgets created without a refresh_interval: they get
    # this one (it is also how often the workers recompute them; the range widgets accept). A
    # widget's own interval rules.
    cache_ttl_seconds: int = Field(default=300, ge=10, le=86400)
    # Widget data older than its TTL is still served (marked STALE, refreshed in the background)
    # for at most this long; beyond it a read is a miss.
    cache_max_stale_seconds: int = 3600
    # The lease of the single-flight lock: renewed while the holder computes, so a holder that
    # dies blocks the others for at most this long.
    cache_lock_lease_seconds: float = 10.0
    # Tier 0: each server process's copies of serialized widget-data responses (bytes, payloads
    # and bookkeeping); 0 turns it off.
    cache_tier0_max_bytes: int = Field(default=64 * 2**20, ge=0)
    # ListDashboards pages and GetDashboard answers each server process keeps until the next
    # change (server/dashboards/kept.py): at most this many bytes of each; 0 turns them off.
    kept_answers_max_bytes: int = Field(default=32 * 2**20, ge=0)
    query_timeout_seconds: float = 30.0
    query_timeout_cap_seconds: float = 300.0
    query_row_limit: int = 10_000
    query_row_limit_cap: int = 100_000
    worker_concurrency: int = 10

    # --- jobs and workers ---
    # A watch stream sends a Heartbeat after this many idle seconds (and re-reads the job row,
    # so an event lost between commit and XADD is delivered at the latest then).
    job_heartbeat_seconds: float = 10.0
    # While Redis is unavailable a watch polls the job row this often.
    job_poll_seconds: float = 1.0
    # Entries kept per job stream (XADD MAXLEN ~): a watcher that falls further behind re-reads the row.
    job_stream_max_len: int = 1000
    # A job's stream expires this long after its last event; cleanup removes ended jobs' streams earlier.
    job_stream_ttl_seconds: int = 7 * 24 * 3600
    job_stream_retention_seconds: int = 24 * 3600
    # Redis broker: a task unacknowledged this long (its worker died) is delivered again. Tasks
    # running longer may run twice; they are idempotent. RabbitMQ redelivers on connection loss.
    broker_visibility_timeout_seconds: int = 3600
    # How often a Redis-broker worker sweeps for such messages.
    broker_restore_interval_seconds: int = 60
    # Redis broker: every key of the broker (queues, unacked, remote control) starts with this,
    # so deployments (or test runs) sharing one Redis database never take each other's tasks.
    broker_key_prefix: str = ""
    # A job still QUEUED this long after its last change had its broker message lost: the sweep
    # (every minute, on beat) sends its task again. Longer than the queue's worst backlog.
    job_queued_timeout_seconds: float = 600.0
    task_max_retries: int = 5
    # The due-widget sweep (server/materialization/sweep.py) drains what is due each beat minute:
    # widgets per task, tasks allowed to wait in the materialize queue before it holds off
    # (back-pressure), and how long it may go on claiming (less than the beat period).
    materialize_chunk_size: int = Field(default=25, ge=1)
    materialize_max_waiting_tasks: int = Field(default=20, ge=1)
    materialize_sweep_budget_seconds: float = Field(default=50.0, gt=0)
    # Widgets one worker process refreshes at once (a sweep's chunk, or the widgets of one job);
    # within the worker's connection pools (server/app.py: 6 per engine).
    materialize_concurrency: int = Field(default=4, ge=1, le=6)
    task_retry_backoff_max_seconds: int = 300

    # --- exports ---
    # Where files go (any fsspec URL); a relative file:// path is relative to the working directory.
    export_storage_url: str = "file://./var/exports"
    # Chromium to drive; empty: Playwright's own browser when installed, else the system's.
    chromium_path: str = ""
    # A worker process's browser is replaced after this many exports (bounds leaks in long runs).
    export_browser_max_uses: int = 50
    # Pages printed at once on one machine by all the worker processes of this deployment (each
    # holds a warm Chromium; more prints than cores only slow each other down); 0: one per core.
    export_print_slots: int = Field(default=0, ge=0)
    export_launch_timeout_seconds: float = 30.0
    # One print (PDF or screenshot) may take this long before it counts as a failed attempt.
    export_print_timeout_seconds: float = 90.0
    # Attempts at printing (a crashed or hung browser is relaunched in between) before FAILED.
    export_print_attempts: int = 3
    # Files (and their jobs' download) expire this long after they were stored.
    export_retention_seconds: int = 7 * 24 * 3600
    # Keys that encrypt export files at rest (server/exports/crypto.py): `id:base64-of-32-bytes`,
    # comma-separated; the first encrypts, all decrypt. `tessera export-key ID` makes one.
    # Production needs it; development without it uses a fixed development key.
    export_keys: SecretStr = SecretStr("")
    # CSV/XLSX data exports: at most this many rows (the file says when it was cut short in the
    # job's row count; the interactive query caps do not apply), read this many at a time, each
    # read bounded by the timeout; the plaintext is written under data_export_temp_dir (empty:
    # the system's temporary directory) before it is encrypted into storage.
    data_export_row_limit: int = Field(default=5_000_000, ge=1)
    data_export_batch_rows: int = Field(default=5_000, ge=1, le=100_000)
    data_export_timeout_seconds: float = Field(default=600.0, gt=0)
    data_export_temp_dir: str = ""

    # --- report deliveries (server/notify, server/reports) ---
    # SMTP for e-mailed reports; no host: e-mail recipients fail with a clear error.
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_from: str = "tessera@localhost"
    # Upgrade the connection with STARTTLS before authenticating (required when a password is set
    # in production).
    smtp_starttls: bool = False
    # PEM CA bundle the SMTP server's certificate is verified against under STARTTLS (a private
    # CA); empty: the system's trust store. Verification is never turned off.
    smtp_ca_file: Path | None = None
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    # Webhooks: attempts per recipient, the first backoff (doubled each time, with jitter), one
    # request's timeout, and the largest file sent inline (bigger ones send only its download path).
    webhook_attempts: int = Field(default=4, ge=1, le=10)
    webhook_backoff_seconds: float = Field(default=2.0, ge=0)
    webhook_timeout_seconds: float = Field(default=15.0, gt=0)
    webhook_inline_max_bytes: int = Field(default=10 * 1024 * 1024, ge=0)
    # Plain-http webhooks to a loopback address (tests, development); never in production.
    webhook_allow_loopback_http: bool = True
    # Internal networks webhooks may reach after all (server/notify/targets.py refuses private,
    # loopback in production, link-local, multicast and reserved addresses): a JSON list of CIDRs,
    # e.g. TESSERA_WEBHOOK_ALLOWED_NETWORKS='["10.20.0.0/16", "fd12:3456::/32"]'.
    webhook_allowed_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []

    # --- audit ---
    # Audit events the database will not take (refused rows, a full buffer, a shutdown with the
    # database away) are appended here as JSON lines; `tessera audit-replay` writes them back.
    audit_dead_letter_path: str = "var/audit-dead-letter.jsonl"

    # --- logs ---
    log_level: str = "INFO"
    log_json: bool | None = None  # default: JSON in production, text in development

    # --- observability ---
    # A worker's Prometheus /metrics (its prefork children aggregated) on `host`; 0 picks a free
    # port, -1 disables it. Two workers on one machine need two ports.
    worker_metrics_port: int = 9465
    # How often the server re-checks its dependencies (PostgreSQL, Redis, the broker, whether a
    # worker answers) for the health service; probes read the last result, never wait on a check.
    health_interval_seconds: float = Field(default=5.0, gt=0)
    # How long one dependency check may wait (a worker roll call always waits this long for answers).
    health_probe_timeout_seconds: float = Field(default=2.0, gt=0)
    # OpenTelemetry tracing: "off", "otlp" (the exporter reads the standard OTEL_EXPORTER_OTLP_*
    # variables) or "console" (spans printed to stdout). Spans cover rpcs and Celery tasks, with
    # the trace context carried in task headers.
    tracing: Literal["off", "otlp", "console"] = "off"

    @model_validator(mode="after")
    def _production_needs_real_keys(self) -> Settings:
        if self.mode is Mode.PRODUCTION:
            if not (self.jwt_public_key_file or self.jwt_jwks_file):
                raise ValueError("production mode needs TESSERA_JWT_PUBLIC_KEY_FILE or TESSERA_JWT_JWKS_FILE")
            if not self.masking_key.get_secret_value():
                raise ValueError("production mode needs TESSERA_MASKING_KEY")
            if not self.export_keys.get_secret_value():
                raise ValueError("production mode needs TESSERA_EXPORT_KEYS (export files are encrypted at rest)")
            if not self.database_url or not self.redis_url:
                raise ValueError("production mode needs DATABASE_URL and REDIS_URL")
        return self

    @model_validator(mode="after")
    def _tls_files_go_together(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("TESSERA_TLS_CERT_FILE and TESSERA_TLS_KEY_FILE are set together or not at all")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("TESSERA_TLS_CLIENT_CA_FILE (mTLS) needs TESSERA_TLS_CERT_FILE and TESSERA_TLS_KEY_FILE")
        return self

    @model_validator(mode="after")
    def _redis_cluster_needs_a_broker(self) -> Settings:
        # Celery's Redis transport speaks to one Redis: a cluster cannot be the broker.
        if names_redis_cluster(self.effective_broker_url):
            raise ValueError(
                "Celery cannot use a Redis Cluster as its broker: set BROKER_URL to RabbitMQ "
                "(amqp://...) or to a plain redis:// when REDIS_URL names a cluster"
            )
        if "{" in self.redis_prefix or "}" in self.redis_prefix:
            raise ValueError("TESSERA_REDIS_PREFIX may not contain { or }: keys carry Redis Cluster hash tags")
        return self

    @cached_property
    def effective_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def masking_key_bytes(self) -> bytes:
        return (self.masking_key.get_secret_value() or "tessera-development-masking-key").encode()

    @property
    def json_logs(self) -> bool:
        return self.mode is Mode.PRODUCTION if self.log_json is None else self.log_json


# URL schemes of a Redis Cluster, and the one-node scheme each stands for (server/redis_client.py).
REDIS_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def names_redis_cluster(url: str) -> bool:
    return url.split("://", 1)[0].lower() in REDIS_CLUSTER_SCHEMES


class _ModeOnly(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TESSERA_", env_file=".env", extra="ignore")

    mode: Mode = Mode.DEVELOPMENT


def configured_mode() -> Mode:
    """The mode, read as `Settings` reads it but without validating anything else: a command
    that must refuse to run in production can tell before other settings are checked."""
    return _ModeOnly().mode
