"""Run one configuration through ``nginx -t`` and ``portico -t`` and normalise.

Invariants:
- Each run gets its own fresh temporary prefix DIR (with ``logs/``) holding
  ``nginx.conf`` and any extra files; the prefix is removed afterwards.
- ``Outcome.emerg`` is the first ``[emerg]`` line of stderr with the program
  name replaced by ``PROG`` and the prefix by ``DIR``, so the two servers'
  outcomes compare equal exactly when nginx and Portico agree.
- Nothing is bound or started: only ``-t`` is run.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    emerg: str | None

    def __str__(self) -> str:
        return "ok" if self.ok else f"failed: {self.emerg}"


def have_nginx() -> bool:
    return os.path.exists(NGINX)


_EMERG = re.compile(r"^(?:(?:nginx|portico): |\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )"
                    r"\[emerg\] (?:\d+#\d+: )?(.*)$")


def _normalise(stderr: str, prefix: str) -> str | None:
    """The first emerg message, in either nginx's stderr or its log-line form."""
    for line in stderr.splitlines():
        m = _EMERG.match(line)
        if m:
            return "[emerg] " + m.group(1).replace(prefix, "DIR")
    return None


def run(kind: str, conf: str, files: dict[str, str] | None = None,
        extra: tuple[str, ...] = ()) -> Outcome:
    """Test ``conf`` with ``kind`` ("nginx" or "portico")."""
    prefix = os.path.realpath(tempfile.mkdtemp(prefix=f"confdiff-{kind}-"))
    try:
        os.makedirs(os.path.join(prefix, "logs"))
        for rel, text in (files or {}).items():
            path = os.path.join(prefix, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", newline="") as f:
                f.write(text)
        conf_path = os.path.join(prefix, "nginx.conf")
        with open(conf_path, "w", newline="") as f:
            f.write(conf)
        if kind == "nginx":
            cmd = [NGINX, "-t", "-p", prefix + "/", "-c", conf_path, *extra]
        else:
            cmd = [sys.executable, "-m", "portico", "-t", "-p", prefix, "-c", conf_path, *extra]
        env = dict(os.environ, PYTHONPATH=REPO)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=prefix, env=env)
        return Outcome(p.returncode == 0, _normalise(p.stderr, prefix))
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
