"""The requester of an export, kept on the job so the worker acts exactly as they would.

Widget data in an export is read through the same domain as GetWidgetData, with this principal:
facility scope, role, shares and PHI masking carry over unchanged, and access is checked again
when the worker renders (a share revoked in between stops the export).
"""

from __future__ import annotations

from typing import Any

from server.auth.principal import Principal, Role

__all__ = ["principal_from_json", "principal_to_json"]


def principal_to_json(principal: Principal) -> dict[str, Any]:
    return {
        "subject": principal.subject,
        "role": int(principal.role),
        "facilities": sorted(principal.facilities),
        "permissions": sorted(principal.permissions),
        "link_id": principal.link_id,
        "link_dashboard_id": principal.link_dashboard_id,
    }


def principal_from_json(data: dict[str, Any]) -> Principal:
    return Principal(
        subject=str(data["subject"]),
        role=Role(int(data["role"])),
        facilities=frozenset(data.get("facilities") or ()),
        permissions=frozenset(data.get("permissions") or ()),
        link_id=data.get("link_id"),
        link_dashboard_id=data.get("link_dashboard_id"),
    )
