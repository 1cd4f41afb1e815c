"""Who is calling: the identity every access decision starts from."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class Role(IntEnum):
    """Ordered: a higher role can do everything a lower one can. Values match dashboard.v1.Role."""

    VIEWER = 1
    EDITOR = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> Role | None:
        # A mapping lookup, not cls[...] and KeyError: the policy parses each role share of
        # every listed dashboard.
        return cls.__members__.get(name.strip().upper())


PHI_READ = "phi:read"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    `link_dashboard_id` is set for a public-link caller: such a principal may read that one
    dashboard's published version and nothing else.
    """

    subject: str
    role: Role
    facilities: frozenset[str]
    permissions: frozenset[str] = field(default_factory=frozenset)
    link_id: str | None = None
    link_dashboard_id: str | None = None

    @property
    def is_link(self) -> bool:
        return self.link_id is not None

    @property
    def can_read_phi(self) -> bool:
        return PHI_READ in self.permissions and not self.is_link

    def in_facility(self, facility_id: str) -> bool:
        return facility_id in self.facilities

    def at_least(self, role: Role) -> bool:
        return self.role >= role
