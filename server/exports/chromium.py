"""Which Chromium to drive, and the flags it is started with.

Order: the configured path (`TESSERA_CHROMIUM_PATH`), Playwright's own browser when it is
installed, then the system's. Exports run offline, so the flags also make sure that nothing
the page asks for can leave the machine even if it slipped past request interception.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

__all__ = ["SYSTEM_EXECUTABLES", "SYSTEM_NAMES", "ChromiumNotFound", "find_chromium", "launch_args", "needs_no_sandbox"]

# Debian's real binary starts faster than its /usr/bin/chromium wrapper script.
SYSTEM_EXECUTABLES: tuple[str, ...] = ("/usr/lib/chromium/chromium",)
SYSTEM_NAMES: tuple[str, ...] = ("chromium", "chromium-browser")

# No host name or address resolves and every request goes to a proxy that does not exist: some
# requests (<link rel=prefetch>, preconnect, the favicon) are made by the browser process and
# never reach Playwright's routes, so these two are what stops them.
_NO_NETWORK = (
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://no-network.invalid:9",
    "--proxy-bypass-list=<-loopback>",
)
_QUIET = (
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


class ChromiumNotFound(Exception):
    """No Chromium executable could be found; the message lists every place looked at."""


def launch_args() -> list[str]:
    """Flags for every launch (Playwright adds --no-sandbox itself unless the sandbox is asked for)."""
    return [*_QUIET, *_NO_NETWORK]


def needs_no_sandbox() -> bool:
    """Chromium's sandbox cannot start as root; anyone else keeps it."""
    return os.geteuid() == 0


def find_chromium(
    configured: str,
    bundled: str | None,
    *,
    system_executables: Sequence[str] = SYSTEM_EXECUTABLES,
    system_names: Sequence[str] = SYSTEM_NAMES,
    search_path: str | None = None,
) -> str:
    """The executable to launch. A configured path is returned as it is (a missing file then fails
    the launch, which names it); otherwise the first that exists of Playwright's bundled browser,
    the system executables and the names on PATH (`search_path`, default $PATH)."""
    if configured:
        return configured
    tried: list[str] = []
    candidates: list[tuple[str, str]] = []
    if bundled:
        candidates.append((bundled, "Playwright's bundled browser"))
    candidates.extend((path, "system") for path in system_executables)
    for path, what in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        tried.append(f"{path} ({what}: not found)")
    for name in system_names:
        found = shutil.which(name, path=search_path)
        if found:
            return found
        tried.append(f"{name!r} on PATH (not found)")
    raise ChromiumNotFound(
        "no Chromium to print with: TESSERA_CHROMIUM_PATH is not set and none of these exists: "
        + ", ".join(tried)
        + ". Install Chromium (Debian: apt-get install chromium) or set TESSERA_CHROMIUM_PATH."
    )
