"""Lay out the third-party .proto files buf and protoc need, from pinned packages.

- google/api, google/rpc, google/type: from the installed googleapis-common-protos wheel.
- buf/validate/validate.proto: from the sdist of the locked protovalidate release (its wheel
  carries only the compiled descriptor). The sdist URL and sha256 come from uv.lock, so the
  file is exactly the one the runtime was built from, and a tampered download is refused.

Output: build/proto-deps/ (git-ignored). Idempotent and cached.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "proto-deps"
CACHE = ROOT / "build" / "cache"
GOOGLE_DIRS = ("google/api", "google/rpc", "google/type")
VALIDATE = "buf/validate/validate.proto"


def _copy_googleapis() -> None:
    import google.api  # the googleapis-common-protos wheel

    site = Path(next(iter(google.api.__path__))).parent.parent
    for sub in GOOGLE_DIRS:
        dest = OUT / sub
        dest.mkdir(parents=True, exist_ok=True)
        for proto in sorted((site / sub).glob("*.proto")):
            shutil.copyfile(proto, dest / proto.name)


def _locked_sdist(package: str) -> tuple[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    for pkg in lock["package"]:
        if pkg["name"] == package:
            sdist = pkg["sdist"]
            return sdist["url"], sdist["hash"].removeprefix("sha256:")
    raise SystemExit(f"{package} is not in uv.lock")


def _fetch_validate_proto() -> None:
    url, sha = _locked_sdist("protovalidate")
    dest = OUT / VALIDATE
    marker = CACHE / f"validate-{sha}.proto"
    if not marker.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=120) as resp:
            data = resp.read()
        if hashlib.sha256(data).hexdigest() != sha:
            raise SystemExit(f"sha256 mismatch for {url}")
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("/proto/" + VALIDATE))
            extracted = tar.extractfile(member)
            assert extracted is not None
            marker.write_bytes(extracted.read())
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(marker, dest)


def _format_like_ours() -> None:
    """`buf format` sees the whole workspace, third-party modules included: lay them out already
    formatted (whitespace only; the build artifact is never committed) so the check speaks of
    our protos alone."""
    buf = Path(sys.executable).parent / "buf"
    if buf.exists():
        env = {**os.environ, "BUF_CACHE_DIR": os.environ.get("BUF_CACHE_DIR", str(ROOT / "build" / "buf-cache"))}
        subprocess.run([str(buf), "format", "-w", str(OUT)], check=True, cwd=ROOT, env=env)


def main() -> int:
    _copy_googleapis()
    _fetch_validate_proto()
    _format_like_ours()
    print(f"proto deps ready in {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
