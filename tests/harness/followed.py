"""Kept definitions followed as a server process follows them: a `Definitions` fed by a LISTEN
connection of its own on `tessera_definitions` (migration 0016), named so a test can cut it
(`pg_terminate_backend` by application name)."""

from __future__ import annotations

from server.db.listen import Listener
from server.widgetdata.definitions import CHANNEL, Definitions


def listener_for(url: str, definitions: Definitions, application_name: str) -> Listener:
    """A listener (not started) that tells `definitions` what it hears, when it listens and when
    it lost its connection."""
    return Listener(
        url,
        CHANNEL,
        on_notify=definitions.on_notify,
        on_listening=definitions.on_listening,
        on_lost=definitions.on_lost,
        application_name=application_name,
    )
