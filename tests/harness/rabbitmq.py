"""A RabbitMQ node of the test's own (Debian's rabbitmq-server, its own node name, ports and data
directory), so chaos tests can kill and restart it without touching the shared broker. Its data
directory survives a restart: durable queues and persistent messages come back, as in production.

    node = PrivateRabbit(folder).start()
    node.url                 # amqp://guest:guest@127.0.0.1:<port>//
    node.kill(); node.start()
    node.stop()
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["RABBITMQ_SERVER", "PrivateRabbit"]

RABBITMQ_SERVER = shutil.which("rabbitmq-server") or "/usr/sbin/rabbitmq-server"
RABBITMQCTL = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRabbit:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.node = f"tessera-chaos-{secrets.token_hex(4)}@localhost"
        self._dist_port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "enabled_plugins").write_text("[].\n")
        if os.geteuid() == 0 and _has_user("rabbitmq"):  # Debian's wrapper runs the node as rabbitmq
            for path in (folder, folder / "enabled_plugins"):
                shutil.chown(path, "rabbitmq", "rabbitmq")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _env(self) -> dict[str, str]:
        f = self.folder
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self._dist_port),
            "RABBITMQ_MNESIA_BASE": str(f / "mnesia"),
            "RABBITMQ_LOG_BASE": str(f / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(f / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(f / "none"),
            "RABBITMQ_PID_FILE": str(f / "pid"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(f / "feature_flags"),
        }

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def start(self, timeout: float = 60.0) -> PrivateRabbit:
        with (self.folder / "out.log").open("ab") as out:
            self._process = subprocess.Popen(
                [RABBITMQ_SERVER], env=self._env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._process.poll() is not None or time.monotonic() > deadline:
                log = (self.folder / "out.log").read_text(errors="replace")[-3000:]
                self.kill()
                raise RuntimeError(f"rabbitmq-server did not start:\n{log}")
            time.sleep(0.2)
        return self

    def _ready(self) -> bool:
        if not self.answers():
            return False
        done = subprocess.run(
            [RABBITMQCTL, "-n", self.node, "await_startup", "--timeout", "5"],
            env=self._env(),
            capture_output=True,
            timeout=30,
            check=False,
        )
        return done.returncode == 0

    def kill(self) -> None:
        """SIGKILL to the node's whole process group (beam and epmd-less helpers), like a lost host.
        As root, Debian's wrapper starts the node through `su`, in a session of its own that the
        group misses (the node lived on, still answering, and a "restart" found it up): the node
        itself, named by its pid file, is killed too."""
        node = self._node_pid()
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=30)
        self._process = None
        if node is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(node, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while (self.answers() or (node is not None and Path(f"/proc/{node}").exists())) and time.monotonic() < deadline:
            time.sleep(0.1)

    def _node_pid(self) -> int | None:
        """The node's process (beam), from its pid file, while it is still this node's."""
        try:
            pid = int((self.folder / "pid").read_text().strip())
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if f"RABBITMQ_NODENAME={self.node}".encode() in environ else None

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            subprocess.run(
                [RABBITMQCTL, "-n", self.node, "stop"], env=self._env(), capture_output=True, timeout=60, check=False
            )
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._process = None


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
