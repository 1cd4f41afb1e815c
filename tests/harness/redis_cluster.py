"""A real Redis Cluster for a test session: three masters from Debian's `redis-server
--cluster-enabled yes`, joined by `redis-cli --cluster create`, in a temp dir, stopped at the end;
with a replica per master when a test fails a master over.

    with start_redis_cluster(tmp_path) as cluster:
        cluster.url            # redis+cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/0
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

__all__ = ["REDIS_CLI", "REDIS_SERVER", "RedisClusterProcesses", "start_redis_cluster", "sync_client", "wait_ping"]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
CLUSTER_BUS_OFFSET = 10000
CREATE_FLAGS = ("--cluster-yes",)  # Redis listens on port + 10000 for the cluster bus


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> list[int]:
    """Ports whose cluster-bus twin (port + 10000) is free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port + CLUSTER_BUS_OFFSET < 65536 and port not in ports and _port_free(port + CLUSTER_BUS_OFFSET):
            ports.append(port)
    return ports


@dataclass
class RedisClusterProcesses:
    ports: list[int]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports) + "/0"

    def client(self) -> redis.RedisCluster:
        """A synchronous cluster client, for tests that look at keys."""
        return redis.RedisCluster(host="127.0.0.1", port=self.ports[0], socket_timeout=5)

    def alive(self) -> list[int]:
        return [port for port, process in zip(self.ports, self.processes, strict=True) if process.poll() is None]

    def master_of(self, key: str) -> int:
        """The port of the master serving `key`'s slot now."""
        with redis.Redis(host="127.0.0.1", port=self.alive()[0], socket_timeout=2) as node:
            slot = int(node.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, master, *_ in node.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(master[1])
        raise LookupError(f"no master serves slot {slot}")

    def kill(self, port: int) -> None:
        """SIGKILL the node on `port` (its replica, if any, is promoted by the others)."""
        process = self.processes[self.ports.index(port)]
        process.kill()
        process.wait(timeout=10)

    def fail_over(self, key: str, timeout: float = 30.0) -> tuple[int, int, float]:
        """SIGKILL the master serving `key` and wait until its replica serves the slot and every
        live node reports cluster_state:ok: (the old master's port, the new one's, seconds)."""
        victim = self.master_of(key)
        self.kill(victim)
        started = time.monotonic()
        while True:
            try:
                promoted = self.master_of(key)
                if promoted != victim and all(_cluster_ok(port) for port in self.alive()):
                    return victim, promoted, time.monotonic() - started
            except (redis.exceptions.RedisError, LookupError):
                pass
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"no replica took over from {victim} within {timeout} s")
            time.sleep(0.05)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            process.wait(timeout=10)
        self.processes.clear()

    def __enter__(self) -> RedisClusterProcesses:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def wait_ping(port: int, deadline: float) -> None:
    """Until the redis-server on `port` answers PING (RuntimeError past `deadline`, monotonic)."""
    while True:
        try:
            with redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2) as client:
                client.ping()
            return
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {port} did not start") from None
            time.sleep(0.05)


def _cluster_ok(port: int) -> bool:
    with redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, decode_responses=True) as client:
        info = client.cluster("info")  # parsed into a dict by redis-py
    return bool(info.get("cluster_state") == "ok")


def _replicating(port: int) -> bool:
    """A master, or a replica whose link to its master is up (its first sync done): a replica
    still syncing when its master dies could not take over."""
    with redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, decode_responses=True) as client:
        info = client.info("replication")
    return info.get("role") == "master" or info.get("master_link_status") == "up"


def start_redis_cluster(
    directory: Path, masters: int = 3, replicas: int = 0, timeout: float = 30.0
) -> RedisClusterProcesses:
    """`masters` masters with `replicas` replicas each (a replica is what a failover promotes)."""
    cluster = RedisClusterProcesses(_free_ports(masters * (1 + replicas)))
    deadline = time.monotonic() + timeout
    try:
        for port in cluster.ports:
            folder = directory / str(port)
            folder.mkdir(parents=True)
            command = [
                REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no",
                # A replica may take over however long it was cut off (tests kill masters at will).
                "--cluster-replica-validity-factor", "0",
            ]  # fmt: skip
            cluster.processes.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder)
            )
        for port in cluster.ports:
            wait_ping(port, deadline)
        nodes = [f"127.0.0.1:{p}" for p in cluster.ports]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *nodes, "--cluster-replicas", str(replicas), *CREATE_FLAGS],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        while not all(_cluster_ok(p) for p in cluster.ports) or not all(_replicating(p) for p in cluster.ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not reach cluster_state:ok with every replica in sync")
            time.sleep(0.1)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def sync_client(url: str) -> redis.Redis | redis.RedisCluster:
    """A synchronous client for a test to look at keys, for one Redis or a cluster URL alike."""
    from server.redis_client import cluster_nodes, is_cluster_url

    if is_cluster_url(url):
        host, port = cluster_nodes(url)[0]
        return redis.RedisCluster(host=host, port=port, socket_timeout=5)
    return redis.Redis.from_url(url, socket_timeout=5)
