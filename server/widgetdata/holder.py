"""Who holds a widget's single-flight lock. A lock's token names the holder's machine and
process, `<machine>/<pid>/<random>`, so a waiter on the same machine can tell a holder that died
(a worker child SIGKILLed while computing) from one still computing, and take over at once rather
than wait out the lease. A holder on another machine, or a token in any other form, is never
judged: its lease still bounds the wait.

The machine is the host name plus the kernel's boot id: containers sharing a kernel have their
own host names (and their own pid namespaces, which is why the host name must differ).
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

__all__ = ["MACHINE", "known_dead", "new_token"]


def _machine() -> str:
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return f"{socket.gethostname()}~{boot}".replace("/", "_")


MACHINE = _machine()


def new_token() -> str:
    return f"{MACHINE}/{os.getpid()}/{secrets.token_hex(12)}"


def known_dead(token: bytes | str) -> bool:
    """True only when the token names a process of this machine that no longer runs (gone, or a
    zombie its parent has not reaped yet)."""
    text = token.decode(errors="replace") if isinstance(token, bytes) else token
    parts = text.rsplit("/", 2)
    if len(parts) != 3 or parts[0] != MACHINE or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    # "pid (comm) S ...": the state follows the last ")"; Z zombie, X dead.
    return stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] in {"Z", "X"}
