"""Who is acting: roles and the actor attached to every service call and audit entry."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    MANAGER = "manager"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: Role) -> bool:
        """Roles are ordered: each one may do what the ones below it may."""
        return self.rank >= other.rank


_RANK = {Role.AGENT: 0, Role.SUPERVISOR: 1, Role.MANAGER: 2, Role.ADMIN: 3}


class PermissionDenied(Exception):
    """The actor's role does not allow this action; the message says what was refused."""


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    username: str
    role: Role

    @property
    def label(self) -> str:
        return f"{self.username} ({self.role})"

    def require(self, role: Role, action: str) -> None:
        if not self.role.at_least(role):
            raise PermissionDenied(f"{action} requires the {role} role; you are {self.role}")


# Actions taken by the server itself (imports from the command line, the dialer engine).
SYSTEM = Actor(None, "system", Role.ADMIN)
