"""Which Chromium the export printer launches: the configured path, else Playwright's bundled
browser, else the system's; and an error naming every place looked at when there is none."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.exports.chromium import ChromiumNotFound, find_chromium


def executable(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)


def test_a_configured_path_is_used_as_given() -> None:
    assert find_chromium("/opt/chrome/chrome", "/elsewhere/chrome") == "/opt/chrome/chrome"


def test_search_order_and_an_error_naming_every_place_tried(tmp_path: Path) -> None:
    bundled = tmp_path / "ms-playwright" / "chrome"
    system = tmp_path / "usr-lib-chromium"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()

    def find() -> str:
        return find_chromium("", str(bundled), system_executables=[str(system)], search_path=str(bin_dir))

    with pytest.raises(ChromiumNotFound) as missing:
        find()
    message = str(missing.value)
    for tried in (str(bundled), str(system), "'chromium' on PATH", "'chromium-browser' on PATH"):
        assert tried in message
    assert "TESSERA_CHROMIUM_PATH" in message

    # Each found in turn, the earlier place winning.
    executable(bin_dir / "chromium-browser")
    assert find() == str(bin_dir / "chromium-browser")
    executable(bin_dir / "chromium")
    assert find() == str(bin_dir / "chromium")
    executable(system)
    assert find() == str(system)
    executable(bundled)
    assert find() == str(bundled)


def test_a_file_that_is_not_executable_is_not_chromium(tmp_path: Path) -> None:
    system = tmp_path / "chromium"
    system.write_text("not a program")
    with pytest.raises(ChromiumNotFound):
        find_chromium("", None, system_executables=[str(system)], search_path=str(tmp_path / "empty"))
