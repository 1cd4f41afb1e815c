"""Kept definitions followed as a server process follows them: a `Definitions` fed by a LISTEN
connection of its own on `tessera_definitions` (migration 0016), named so a test can cut it
(`TERMINATE`, by application name)."""

from __future__ import annotations

import asyncio

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


# Ends the follower's connection from the server side (bind `name`: its application name).
TERMINATE = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"


def lost_event(listener: Listener) -> asyncio.Event:
    """An event set once `listener` has told what it feeds that its connection is lost."""
    lost = asyncio.Event()
    original = listener._on_lost

    def on_lost() -> None:
        original()
        lost.set()

    listener._on_lost = on_lost
    return lost
