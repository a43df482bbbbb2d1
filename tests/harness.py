"""Test harness: run a real ``portico`` (or Debian's ``nginx``) on loopback.

Invariants:
- Every server runs in its own temporary prefix with its own config, logs
  and pid file; ports come from ``free_port()`` (bound to 127.0.0.1 by the
  kernel, then released), so tests never collide.
- ``start()`` returns only once the pid file exists (written after every
  listen socket is bound); ``stop()`` always reaps the process.
- Only loopback addresses are used.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Iterator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def wait_for(cond: Callable[[], object], timeout: float = 10.0, step: float = 0.02) -> bool:
    """Poll ``cond`` until it is true or ``timeout`` passes; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


def stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (state, ppid, ...), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return None
    return st[st.rindex(")") + 2:].split()


def children(pid: int) -> list[int]:
    """Live (not zombie) child processes of ``pid``, from /proc, sorted."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            fields = stat_fields(int(d))
            if fields is not None and int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(d))
    return sorted(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def have_nginx() -> bool:
    return os.path.exists(NGINX)


class Server:
    """A server process under test; ``kind`` is "portico" or "nginx"."""

    def __init__(self, conf: str, kind: str = "portico", files: dict[str, Any] | None = None,
                 prefix: str | None = None) -> None:
        self.kind = kind
        self.prefix = prefix or tempfile.mkdtemp(prefix=f"{kind}-")
        # nginx started as root runs its workers as "nobody": let them read.
        os.chmod(self.prefix, 0o755)
        os.makedirs(os.path.join(self.prefix, "logs"), exist_ok=True)
        os.makedirs(os.path.join(self.prefix, "conf"), exist_ok=True)
        shutil.copy(os.path.join(REPO, "conf", "mime.types"), os.path.join(self.prefix, "conf", "mime.types"))
        for rel, content in (files or {}).items():
            path = os.path.join(self.prefix, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            mode = "wb" if isinstance(content, bytes) else "w"
            with open(path, mode) as f:
                f.write(content)
        self.conf_path = os.path.join(self.prefix, "conf", "nginx.conf")
        self.write_conf(conf)
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid_path = os.path.join(self.prefix, "logs", "nginx.pid")

    def write_conf(self, conf: str) -> None:
        conf = conf.replace("%PREFIX%", self.prefix)
        with open(self.conf_path, "w") as f:
            f.write(conf)

    def command(self, *extra: str) -> list[str]:
        if self.kind == "nginx":
            return [NGINX, "-p", self.prefix + "/", "-c", self.conf_path, *extra]
        return [sys.executable, "-m", "portico", "-p", self.prefix, "-c", self.conf_path, *extra]

    def run(self, *extra: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*extra), capture_output=True, text=True, timeout=timeout)

    def start(self, *extra: str, wait: float = 10.0) -> "Server":
        if os.path.exists(self.pid_path):
            os.unlink(self.pid_path)
        self.proc = subprocess.Popen(self.command(*extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if os.path.exists(self.pid_path):
                with open(self.pid_path) as f:
                    if f.read().strip():
                        return self
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}: {err.decode()}{out.decode()}")
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.kind} did not write its pid file in {wait}s")

    @property
    def master_pid(self) -> int:
        with open(self.pid_path) as f:
            return int(f.read().strip())

    def kill(self, sig: int) -> None:
        """Send ``sig`` to the master process named in the pid file."""
        os.kill(self.master_pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()
        self.proc = None
        return rc

    def log(self, name: str = "error.log") -> str:
        path = os.path.join(self.prefix, "logs", name)
        if not os.path.exists(path):
            return ""
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def path(self, rel: str) -> str:
        return os.path.join(self.prefix, rel)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.prefix, ignore_errors=True)


def read_until_close(s: socket.socket, quiet: tuple[type[BaseException], ...] = (socket.timeout,)) -> bytes:
    """Everything ``s`` receives until the peer closes, or until one of
    ``quiet`` (the socket's timeout: the server went quiet) is raised."""
    chunks = []
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    except quiet:
        pass
    return b"".join(chunks)


def raw_request(port: int, data: bytes, timeout: float = 5.0, host: str = "127.0.0.1") -> bytes:
    """Send raw bytes, read until the server closes or goes quiet."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        return read_until_close(s)


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes, bytes]:
    """(status, headers lower-cased, body, rest) of the first response in ``data``."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError(f"no complete response in {data[:200]!r}")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        n = int(headers["content-length"])
        return status, headers, rest[:n], rest[n:]
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                _, _, rest = rest.partition(b"\r\n")
                break
            body += rest[:size]
            rest = rest[size + 2:]
        return status, headers, body, rest
    return status, headers, rest, b""


def base_conf(server_block: str, http_extra: str = "", main_extra: str = "", workers: int = 1,
              master: bool = True, error_level: str = "info") -> str:
    return f"""
worker_processes {workers};
daemon off;
master_process {'on' if master else 'off'};
pid logs/nginx.pid;
error_log logs/error.log {error_level};
{main_extra}
events {{ worker_connections 1024; }}
http {{
    include mime.types;
    default_type application/octet-stream;
    access_log logs/access.log;
    {http_extra}
    {server_block}
}}
"""


@contextlib.contextmanager
def loaded_cycle(conf: str) -> Iterator[Any]:
    """A ``Cycle`` loaded (not run) from the config text ``conf`` in a
    temporary prefix with conf/mime.types and logs/; removed afterwards."""
    from portico.core.cycle import Cycle
    prefix = tempfile.mkdtemp(prefix="cycle-")
    try:
        for d in ("conf", "logs"):
            os.makedirs(os.path.join(prefix, d))
        shutil.copy(os.path.join(REPO, "conf", "mime.types"), os.path.join(prefix, "conf"))
        path = os.path.join(prefix, "conf", "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        cycle = Cycle(path, prefix)
        cycle.load()
        yield cycle
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
