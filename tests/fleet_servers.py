"""Real Redis and PostgreSQL servers for the fleet tests, started on 127.0.0.1 on a free port in a
temporary directory and stopped afterwards. Tests skip (with the reason) where the binaries or the
Python clients are absent; `.ci/run` installs them."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


class RedisServer:
    """`redis-server` on a free loopback port; `stop()` kills it, `start()` brings it back on the
    same port (with `persistent=True` its data survives: an fsync'ed append-only file)."""

    def __init__(self, directory: Path, *, persistent: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        pytest.importorskip(
            "redis", reason="the redis client is not installed (pip install 'llmroute[redis]')"
        )
        self.binary = binary
        self.dir = directory
        self.port = free_port()
        self.persistent = persistent
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--dir", str(self.dir), "--daemonize", "no", "--protected-mode", "no"]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.proc, "redis-server")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@contextlib.contextmanager
def redis_server(*, persistent: bool = False) -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="llmroute-redis-") as tmp:
        server = RedisServer(Path(tmp), persistent=persistent)
        try:
            yield server
        finally:
            server.stop()


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster; yields its DSN. Run as the `postgres` user when root (initdb
    refuses root)."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'llmroute[postgres]')")
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
        as_user = ["runuser", "-u", "postgres", "--"]
    tmp = tempfile.mkdtemp(prefix="llmroute-pg-")
    os.chmod(tmp, 0o777)
    data = Path(tmp) / "data"
    port = free_port()
    if as_user:
        shutil.chown(tmp, "postgres")
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "llmroute", "--auth=trust", "-E", "UTF8"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    options = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=on"
    proc = subprocess.Popen(
        [*as_user, str(bindir / "postgres"), "-D", str(data), *options.split()],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, proc, "postgres")
        dsn = f"postgresql://llmroute@127.0.0.1:{port}/postgres"
        import psycopg

        deadline = time.monotonic() + 30
        while True:  # listening is not yet accepting queries
            try:
                psycopg.connect(dsn, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield dsn
    finally:
        proc.send_signal(signal.SIGINT)  # fast shutdown
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


class RedisCluster:
    """A Redis Cluster of `masters` `redis-server` masters (no replicas) on free loopback ports, all
    slots assigned by `redis-cli --cluster create`. `stop(port)` kills one node, `start(port)` brings
    it back on the same port with the same `nodes-<port>.conf` (so it rejoins, owning what it owned;
    with `persistent=True` its data survives too: an fsync'ed append-only file per node), `pause` /
    `resume` make one hang (SIGSTOP: it accepts connections and never answers) and continue.
    `owner(key)` is the port of the node serving the key's slot, `url(port)` the `redis+cluster://`
    URL that bootstraps through that node."""

    def __init__(self, directory: Path, masters: int = 3, *, persistent: bool = False) -> None:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if server is None or cli is None:
            pytest.skip("redis-server / redis-cli are not installed (apt-get install redis-server)")
        pytest.importorskip(
            "redis", reason="the redis client is not installed (pip install 'llmroute[redis]')"
        )
        self.binary, self.cli = server, cli
        self.dir = directory
        self.persistent = persistent
        self.ports: list[int] = []
        while len(self.ports) < masters:
            port = free_port()
            # the cluster bus listens on port + 10000: both must be free
            if port + 10000 < 65536 and port not in self.ports and _free(port + 10000):
                self.ports.append(port)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        try:
            for port in self.ports:
                self.start(port, wait=False)
            for port in self.ports:
                _wait_port(port, self.procs[port], f"redis-server (cluster node {port})")
            nodes = [f"127.0.0.1:{p}" for p in self.ports]
            subprocess.run(
                [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
            )
            self.wait_ok()
        except BaseException:
            self.stop()
            raise

    def url(self, port: int | None = None) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0] if port is None else port}"

    def start(self, port: int, *, wait: bool = True) -> None:
        data = self.dir / str(port)  # each node its own append-only file
        data.mkdir(exist_ok=True)
        args = [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--dir", str(data), "--daemonize", "no", "--protected-mode", "no"]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        args += ["--cluster-enabled", "yes", "--cluster-config-file", str(self.dir / f"nodes-{port}.conf")]
        # a killed master is marked failed after this long; it owns its slots again when back
        args += ["--cluster-node-timeout", "2000"]
        self.procs[port] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if wait:
            _wait_port(port, self.procs[port], f"redis-server (cluster node {port})")
            self.wait_ok()

    def stop(self, port: int | None = None) -> None:
        """Kill one node (every node when `port` is None)."""
        for p in self.ports if port is None else [port]:
            proc = self.procs.pop(p, None)
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)

    def pause(self, port: int) -> None:
        """The node hangs: its socket accepts connections, nothing answers."""
        self.procs[port].send_signal(signal.SIGSTOP)

    def resume(self, port: int) -> None:
        self.procs[port].send_signal(signal.SIGCONT)
        self.wait_ok()

    def client(self, port: int) -> Any:
        """A plain (non-cluster) client of one node."""
        import redis

        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every running node says `cluster_state:ok` and agrees on who owns every slot."""
        deadline = time.monotonic() + timeout
        while True:
            states = []
            for port in self.procs:
                try:
                    with self.client(port) as c:
                        info = c.execute_command("CLUSTER", "INFO")
                        text = info.decode() if isinstance(info, bytes) else str(info)
                        states.append("cluster_state:ok" in text and self._owners(c) == self._owners())
                except Exception:
                    states.append(False)
            if states and all(states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Redis Cluster was not ok within {timeout}s")
            time.sleep(0.05)

    def _owners(self, client: Any = None) -> list[tuple[int, int, int]]:
        """(first slot, last slot, port) per slot range, as one node sees them."""
        if client is None:
            with self.client(next(iter(self.procs))) as c:
                return self._owners(c)
        return sorted(
            (int(r[0]), int(r[1]), int(r[2][1])) for r in client.execute_command("CLUSTER", "SLOTS")
        )

    def owner(self, key: str = "{llmroute}") -> int:
        """The port of the node that owns `key`'s slot."""
        from redis.crc import key_slot

        slot = key_slot(key.encode())
        for first, last, port in self._owners():
            if first <= slot <= last:
                return port
        raise LookupError(f"slot {slot} is not served")

    def other(self, key: str = "{llmroute}") -> int:
        """A node that does not own `key`'s slot (a client bootstrapped there is redirected)."""
        return next(p for p in self.ports if p != self.owner(key))

    def node_id(self, port: int) -> str:
        with self.client(port) as c:
            return str(c.execute_command("CLUSTER", "MYID").decode())

    def move_slot(self, key: str, to: int) -> None:
        """Migrate `key`'s slot, with its keys, to the node on port `to`, the way `redis-cli --cluster
        reshard` does: IMPORTING on the target, MIGRATING on the source, MIGRATE every key, then
        SETSLOT NODE on both and the other nodes."""
        from redis.crc import key_slot

        slot, source = key_slot(key.encode()), self.owner(key)
        if source == to:
            return
        source_id, target_id = self.node_id(source), self.node_id(to)
        with self.client(source) as src, self.client(to) as dst:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                src.execute_command("MIGRATE", "127.0.0.1", to, "", 0, 5000, "KEYS", *keys)
            dst.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        for port in self.procs:
            if port not in (source, to):
                with self.client(port) as c:
                    c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        self.wait_ok()


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def redis_cluster(masters: int = 3, *, persistent: bool = False) -> Iterator[RedisCluster]:
    """A throwaway Redis Cluster (see `RedisCluster`); every node is killed afterwards."""
    with tempfile.TemporaryDirectory(prefix="llmroute-cluster-") as tmp:
        cluster = RedisCluster(Path(tmp), masters, persistent=persistent)
        try:
            yield cluster
        finally:
            cluster.stop()
