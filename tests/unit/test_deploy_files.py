"""The deployment files an operator starts from (deploy/): valid YAML, and consistent with the
code: every setting they name exists, every command they run is a `tessera` command with those
options, and the ports agree. (No container runtime, Kubernetes or Envoy on this machine: they
are not started here; README "Scaling out" says so.)"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.main import get_command

from server.cli import app as cli_app
from server.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
YAML_FILES = sorted([*DEPLOY.glob("*.yaml"), *DEPLOY.glob("kubernetes/*.yaml")])


def documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def setting_names() -> set[str]:
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.add(alias if isinstance(alias, str) else f"TESSERA_{name.upper()}")
    return names


def test_there_are_deploy_files_and_each_is_valid_yaml() -> None:
    assert {p.name for p in YAML_FILES} >= {"compose.yaml", "envoy.yaml", "tessera.yaml"}
    for path in YAML_FILES:
        assert documents(path), path


def _environment_names(node: Any) -> set[str]:
    """Setting-like keys anywhere in the tree: environment blocks, ConfigMap data, Secret data."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("environment", "data", "stringData") and isinstance(value, dict):
                found |= {k for k in value if re.fullmatch(r"[A-Z][A-Z0-9_]+", str(k))}
            found |= _environment_names(value)
    elif isinstance(node, list):
        for item in node:
            found |= _environment_names(item)
    return found


@pytest.mark.parametrize("name", ["compose.yaml", "kubernetes/tessera.yaml"])
def test_every_setting_named_exists(name: str) -> None:
    named = set().union(*(_environment_names(doc) for doc in documents(DEPLOY / name)))
    ours = {n for n in named if n.startswith("TESSERA_") or n in ("DATABASE_URL", "REDIS_URL", "BROKER_URL")}
    ours |= {n for n in named if n == "DATABASE_REPLICA_URL"}
    assert ours, name
    unknown = ours - setting_names()
    assert not unknown, f"{name} names settings that do not exist: {sorted(unknown)}"


def _commands(node: Any) -> list[list[str]]:
    found: list[list[str]] = []
    if isinstance(node, dict):
        image = str(node.get("image", ""))
        run = node.get("command") if "command" in node else node.get("args")
        if image.startswith("tessera") and isinstance(run, list):
            found.append([str(part) for part in run])
        for value in node.values():
            found += _commands(value)
    elif isinstance(node, list):
        for item in node:
            found += _commands(item)
    return found


@pytest.mark.parametrize("name", ["compose.yaml", "kubernetes/tessera.yaml"])
def test_every_command_is_a_tessera_command(name: str) -> None:
    cli = get_command(cli_app)
    commands = [c for doc in documents(DEPLOY / name) for c in _commands(doc)]
    assert {c[0] for c in commands} >= {"serve", "worker", "beat", "migrate"}
    for command in commands:
        sub = cli.commands[command[0]]  # type: ignore[attr-defined]
        options = {opt for param in sub.params for opt in param.opts}
        assert all(part in options for part in command[1:] if part.startswith("--")), command


def test_the_load_balancers_point_at_the_grpc_port() -> None:
    port = Settings.model_fields["port"].default
    [envoy] = documents(DEPLOY / "envoy.yaml")
    [cluster] = envoy["static_resources"]["clusters"]
    assert cluster["lb_policy"] == "ROUND_ROBIN" and cluster["health_checks"][0]["grpc_health_check"] is not None
    endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert {e["endpoint"]["address"]["socket_address"]["port_value"] for e in endpoints} == {port}
    kube = documents(DEPLOY / "kubernetes/tessera.yaml")
    [service] = [d for d in kube if d["kind"] == "Service"]
    assert service["spec"]["clusterIP"] == "None"  # headless: clients balance over the pods
    assert {p["port"] for p in service["spec"]["ports"]} >= {port}
    assert 'ENTRYPOINT ["tessera"]' in (DEPLOY / "Containerfile").read_text()


# --- the image: deploy/Containerfile and its build context --------------------------------------

CONTEXT = DEPLOY.parent  # compose builds with context ".." from deploy/, i.e. the repository root


def instructions(path: Path) -> list[tuple[str, list[str]]]:
    """(INSTRUCTION, words) per instruction, continuation lines joined, comments dropped."""
    joined, current = [], ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") and not current:
            continue
        current += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            if current.strip():
                joined.append(current.strip())
            current = ""
    return [(text.split()[0].upper(), text.split()[1:]) for text in joined]


def ignored() -> list[str]:
    lines = (CONTEXT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def test_compose_builds_the_containerfile_from_the_repository_root() -> None:
    [compose] = documents(DEPLOY / "compose.yaml")
    builds = [s["build"] for s in compose["services"].values() if isinstance(s, dict) and "build" in s]
    assert builds
    for build in builds:
        assert (DEPLOY / build["context"]).resolve() == CONTEXT.resolve()
        assert (CONTEXT / build["dockerfile"]).resolve() == (DEPLOY / "Containerfile").resolve()


def test_every_file_the_containerfile_copies_exists_and_is_not_ignored() -> None:
    copies = [words for kind, words in instructions(DEPLOY / "Containerfile") if kind in ("COPY", "ADD")]
    sources = [
        source
        for words in copies
        if not any(w.startswith("--from=") for w in words)  # from another image, not the context
        for source in [w for w in words if not w.startswith("--")][:-1]
    ]
    assert {"pyproject.toml", "uv.lock", "."} <= set(sources), sources
    patterns = ignored()
    for source in sources:
        assert (CONTEXT / source).exists(), source
        if source != ".":
            assert not any(fnmatch.fnmatch(source, p) for p in patterns), f"{source} is in .dockerignore"


def test_the_build_context_leaves_out_what_uv_and_the_host_make() -> None:
    patterns = set(ignored())
    assert {".git", ".venv", "node_modules", "build", "example-exports", ".env"} <= patterns
    assert {".mypy_cache", ".ruff_cache", ".pytest_cache", "**/__pycache__"} <= patterns
    # ...and never the code or the lock file the image is built from.
    for needed in ("server", "workers", "tessera_client", "gen", "migrations", "pyproject.toml", "uv.lock"):
        assert not any(fnmatch.fnmatch(needed, p) for p in patterns), needed


def test_the_settings_the_image_sets_exist() -> None:
    pairs = [w for kind, words in instructions(DEPLOY / "Containerfile") if kind == "ENV" for w in words]
    names = {pair.split("=", 1)[0] for pair in pairs if "=" in pair}
    ours = {n for n in names if n != "PATH"}
    assert {"TESSERA_MODE", "TESSERA_HOST", "TESSERA_CHROMIUM_PATH"} <= ours
    assert not ours - setting_names(), sorted(ours - setting_names())
    exposed = {int(p) for kind, words in instructions(DEPLOY / "Containerfile") if kind == "EXPOSE" for p in words}
    assert Settings.model_fields["port"].default in exposed
    assert Settings.model_fields["http_port"].default in exposed
