"""Schedules: a five-field cron expression read in an IANA time zone (cronsim, which handles
daylight-saving gaps and repeats), validated with field-level errors."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from server.errors import FieldViolation

__all__ = ["next_due", "schedule_problems"]


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def schedule_problems(cron: str, time_zone: str, prefix: str = "subscription.schedule") -> list[FieldViolation]:
    problems: list[FieldViolation] = []
    zone = _zone(time_zone) if time_zone else None
    if not time_zone:
        problems.append(FieldViolation(f"{prefix}.time_zone", "an IANA time zone is required", "REQUIRED"))
    elif zone is None:
        problems.append(
            FieldViolation(f"{prefix}.time_zone", f"{time_zone!r} is not an IANA time zone", "UNKNOWN_TIME_ZONE")
        )
    if not cron.strip():
        problems.append(FieldViolation(f"{prefix}.cron", "a cron expression is required", "REQUIRED"))
    else:
        try:
            next(CronSim(cron, datetime.now(zone or UTC)))
        except (CronSimError, StopIteration) as exc:
            problems.append(
                FieldViolation(
                    f"{prefix}.cron",
                    f"not a five-field cron expression (minute hour day-of-month month day-of-week): {exc}",
                    "INVALID_CRON",
                )
            )
    return problems


def next_due(cron: str, time_zone: str, after: datetime) -> datetime:
    """The first due time strictly after `after`, in UTC."""
    zone = ZoneInfo(time_zone)
    return next(CronSim(cron, after.astimezone(zone))).astimezone(UTC)
