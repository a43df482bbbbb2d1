"""Main-context directives: ngx_core_module, ngx_events_module, ngx_errlog_module.

Invariants:
- ``CoreConf`` holds process-level settings; after ``init_cycle`` every field
  is set (defaults applied) and ``cycle.log`` holds the configured error logs
  (not yet opened: the master or ``-t`` opens them).
- ``error_log`` at http/server/location level is stored on the http core loc
  conf by the http module; here only the main-level ones are handled.
"""
from __future__ import annotations

import os
from typing import Any

from ..conf.errors import ConfError
from ..conf.parser import Node
from . import log as logmod
from .module import (EVENTS, MAIN, MORE1, NOARGS, TAKE1, TAKE12, Conf, Module, UNSET, dir,
                     ignore, set_flag, set_msec, set_num, set_str)


class CoreConf(Conf):
    daemon: bool = True
    master_process: bool = True
    worker_processes: int = 1
    pid: str = "logs/nginx.pid"
    user: Any = None  # (uid, gid, name) when workers must drop root
    worker_rlimit_nofile: int | None = None
    worker_shutdown_timeout: float | None = None
    working_directory: str | None = None
    env: list = None  # type: ignore[assignment]
    error_logs: list = None  # type: ignore[assignment]
    worker_connections: int = 512
    events_seen: bool = False


def parse_error_log(cf: Any, node: Node) -> logmod.LogTarget:
    path = node.args[0]
    level = logmod.ERROR
    if len(node.args) > 1:
        lv = node.args[1]
        if lv not in logmod.LEVEL_NUM or lv == "stderr":
            raise node.error(f'invalid log level "{lv}"')
        level = logmod.LEVEL_NUM[lv]
        if len(node.args) > 2:
            # nginx accepts debug_* masks after "debug"; we accept and ignore them.
            for extra in node.args[2:]:
                if not extra.startswith("debug_"):
                    raise node.error(f'invalid log level "{extra}"')
    if path == "stderr":
        return logmod.LogTarget("stderr", level)
    if path.startswith("syslog:"):
        raise node.error("syslog error_log is not supported by portico yet")
    if path.startswith("memory:"):
        raise node.error("memory error_log is not supported by portico yet")
    return logmod.LogTarget(cf.full_path(path), level)


def _error_log(cf: Any, node: Node, conf: CoreConf) -> None:
    if conf.error_logs is UNSET:
        conf.error_logs = []
    conf.error_logs.append(parse_error_log(cf, node))


def _worker_processes(cf: Any, node: Node, conf: CoreConf) -> None:
    if conf.worker_processes is not UNSET:
        raise node.error('"worker_processes" directive is duplicate')
    v = node.args[0]
    if v == "auto":
        conf.worker_processes = os.cpu_count() or 1
    elif v.isdigit():
        conf.worker_processes = int(v)
    else:
        raise node.error('"worker_processes" directive invalid value')


def _env(cf: Any, node: Node, conf: CoreConf) -> None:
    if conf.env is UNSET:
        conf.env = []
    conf.env.append(node.args[0])


def _user(cf: Any, node: Node, conf: CoreConf) -> None:
    if conf.user is not UNSET:
        raise node.error('"user" directive is duplicate')
    if os.geteuid() != 0:
        # nginx: the directive has no effect unless the master runs as root
        conf.user = None
        cf.cycle.warn('the "user" directive makes sense only if the master process runs '
                      'with super-user privileges, ignored', node)
        return
    conf.user = resolve_user(node.args[0], node.args[1] if len(node.args) > 1 else None, node)


def resolve_user(name: str, group: str | None, node: Node | None) -> tuple[int, int, str]:
    """(uid, gid, name) as nginx's ngx_set_user: getpwnam, then getgrnam."""
    import grp
    import pwd
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        msg = f'getpwnam("{name}") failed'
        raise (node.error(msg) if node else ConfError(msg)) from None
    gname = group or name
    try:
        gid = grp.getgrnam(gname).gr_gid
    except KeyError:
        if group is None and name == "nobody":
            gid = pwd.getpwnam(name).pw_gid  # Debian has "nogroup", not "nobody"
        else:
            msg = f'getgrnam("{gname}") failed'
            raise (node.error(msg) if node else ConfError(msg)) from None
    return uid, gid, name


_PRELOAD = ("base64", "ctypes", "json", "zlib", "hashlib", "uuid", "email.utils", "tempfile", "shutil",
            "encodings.idna", "encodings.ascii", "encodings.latin_1", "http.client")


def worker_process_init(cycle: Any) -> None:
    """What a new worker does before serving, as ngx_worker_process_init:
    environment, rlimits, then dropping root privileges."""
    import resource
    cycle.is_worker = True
    conf = cycle.confs["core"]
    keep = {"TZ": os.environ.get("TZ")}
    for item in conf.env or []:
        name, eq, value = item.partition("=")
        keep[name] = value if eq else os.environ.get(name)
    os.environ.clear()
    for k, v in keep.items():
        if v is not None:
            os.environ[k] = v
    if conf.worker_rlimit_nofile:
        n = conf.worker_rlimit_nofile
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
        except (OSError, ValueError) as e:
            cycle.log.log(logmod.ALERT, f"setrlimit(RLIMIT_NOFILE, {n}) failed ({getattr(e, 'errno', 0)}: {e})")
    if conf.user and os.geteuid() == 0:
        # After setuid the worker may not read the interpreter's own files
        # (e.g. a Python under /root): import what runtime paths need now.
        # Kept here, per fork: done in the master's _preload instead, the idle
        # case of bench/static.py measured ~200 B more per connection (likely
        # copy-on-write of pages the worker first touches while serving).
        import importlib
        for mod in _PRELOAD:
            try:
                importlib.import_module(mod)
            except ImportError:
                pass
        uid, gid, name = conf.user
        try:
            os.setgid(gid)
            os.initgroups(name, gid)
            os.setuid(uid)
        except OSError as e:
            cycle.log.log(logmod.EMERG, f"setuid({uid}) failed ({e.errno}: {e.strerror})")
            raise SystemExit(2)


def _events(cf: Any, node: Node, conf: CoreConf) -> None:
    if conf.events_seen:
        raise node.error('"events" directive is duplicate')
    conf.events_seen = True
    sub = cf.child(EVENTS)
    sub.process(node.block or [])


def _worker_connections(cf: Any, node: Node, conf: CoreConf) -> None:
    if conf.worker_connections is not UNSET:
        raise node.error('"worker_connections" directive is duplicate')
    v = node.args[0]
    if not v.isdigit():
        raise node.error(f'invalid number "{v}"')
    conf.worker_connections = int(v)


def _pid(cf: Any, node: Node, conf: CoreConf) -> None:
    if conf.pid is not UNSET:
        raise node.error('"pid" directive is duplicate')
    conf.pid = node.args[0]


def _unsupported(cf: Any, node: Node, conf: Any) -> None:
    raise node.error(f'"{node.name}" directive is not supported by portico')


class CoreModule(Module):
    name = "core"
    nginx_name = "ngx_core_module"
    core_conf = CoreConf
    M = frozenset({MAIN})
    E = frozenset({EVENTS})
    directives = [
        dir("daemon", M, TAKE1, set_flag("daemon"), "core"),
        dir("master_process", M, TAKE1, set_flag("master_process"), "core"),
        dir("worker_processes", M, TAKE1, _worker_processes, "core"),
        dir("pid", M, TAKE1, _pid, "core"),
        dir("user", M, TAKE12, _user, "core"),
        dir("worker_rlimit_nofile", M, TAKE1, set_num("worker_rlimit_nofile"), "core"),
        dir("worker_shutdown_timeout", M, TAKE1, set_msec("worker_shutdown_timeout"), "core"),
        dir("working_directory", M, TAKE1, set_str("working_directory"), "core"),
        dir("env", M, TAKE1, _env, "core"),
        dir("error_log", M, MORE1, _error_log, "core"),
        dir("events", M, NOARGS, _events, "core", block=True),
        dir("worker_connections", E, TAKE1, _worker_connections, "core"),
        # Accepted; uvloop (epoll) has its own accept strategy.
        dir("use", E, TAKE1, ignore, "none"),
        dir("multi_accept", E, TAKE1, ignore, "none"),
        dir("accept_mutex", E, TAKE1, ignore, "none"),
        dir("accept_mutex_delay", E, TAKE1, ignore, "none"),
        dir("worker_aio_requests", E, TAKE1, ignore, "none"),
        dir("debug_connection", E, TAKE1, ignore, "none"),
        dir("pcre_jit", M, TAKE1, ignore, "none"),
        dir("timer_resolution", M, TAKE1, ignore, "none"),
        dir("worker_priority", M, TAKE1, ignore, "none"),
        dir("worker_cpu_affinity", M, MORE1, ignore, "none"),
        dir("lock_file", M, TAKE1, ignore, "none"),
        dir("thread_pool", M, MORE1, ignore, "none"),
        dir("worker_rlimit_core", M, TAKE1, ignore, "none"),
        dir("debug_points", M, TAKE1, ignore, "none"),
        dir("load_module", M, TAKE1, _unsupported, "none"),
    ]

    def init_cycle(self, cycle: Any) -> None:
        conf: CoreConf = cycle.confs[self.name]
        if not conf.events_seen:
            raise ConfError('no "events" section in configuration')
        conf.merge(None)
        if conf.env is None:
            conf.env = []
        # -e only replaces the default: error_log directives still win (nginx)
        targets = list(conf.error_logs or [])
        if not targets:
            p = cycle.error_log_path or "logs/error.log"
            targets = [logmod.LogTarget("stderr" if p == "stderr" else cycle.full_path(p), logmod.ERROR)]
        cycle.log = logmod.ErrorLog(targets)
        conf.pid = cycle.full_path(conf.pid)
        if conf.user is None and os.geteuid() == 0:
            # nginx's default when started as root: workers run as nobody
            conf.user = resolve_user("nobody", None, None)
