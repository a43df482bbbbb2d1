"""nginx's command line: -c -p -e -g -t -T -q -s -v -V -h.

Invariants:
- Output wording matches nginx's with the program name ``portico``.
- Configuration problems print ``portico: [emerg] MESSAGE in FILE:LINE``
  and exit 1; no Python traceback reaches the terminal for expected errors.
- The default prefix is the directory holding the bundled ``conf/`` and
  ``html/`` (the source checkout), so ``portico`` alone serves the welcome page.
"""
from __future__ import annotations

import os
import signal
import ssl
import sys

import portico

from .conf.errors import ConfError
from .core import log as logmod
from .core.cycle import Cycle

USAGE = """Usage: portico [-?hvVtTq] [-s signal] [-p prefix]
             [-e filename] [-c filename] [-g directives]

Options:
  -?,-h         : this help
  -v            : show version and exit
  -V            : show version and configure options then exit
  -t            : test configuration and exit
  -T            : test configuration, dump it and exit
  -q            : suppress non-error messages during configuration testing
  -s signal     : send signal to a master process: stop, quit, reopen, reload
  -p prefix     : set prefix path (default: {prefix})
  -e filename   : set error log file (default: logs/error.log)
  -c filename   : set configuration file (default: conf/nginx.conf)
  -g directives : set global directives out of configuration file
"""

SIGNALS = {"stop": signal.SIGTERM, "quit": signal.SIGQUIT, "reopen": signal.SIGUSR1,
           "reload": signal.SIGHUP}


def default_prefix() -> str:
    env = os.environ.get("PORTICO_PREFIX")
    if env:
        return env
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.exists(os.path.join(here, "conf", "nginx.conf")):
        return here
    return os.getcwd()


def version_lines() -> str:
    return (f"portico version: portico/{portico.__version__}\n"
            f"nginx version: nginx/{portico.NGINX_VERSION}\n")


def _err(msg: str) -> None:
    sys.stderr.write(f"portico: {msg}\n")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    prefix: str | None = None
    conf: str | None = None
    error_log: str | None = None
    globals_: str | None = None
    test = dump = quiet = False
    sig: str | None = None
    show_v = show_V = show_h = False
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("-") or len(a) < 2:
            _err(f'invalid option: "{a}"')
            return 1
        j = 1
        while j < len(a):
            ch = a[j]
            j += 1
            if ch in "?h":
                show_h = True
            elif ch == "v":
                show_v = True
            elif ch == "V":
                show_V = True
            elif ch == "t":
                test = True
            elif ch == "T":
                test = dump = True
            elif ch == "q":
                quiet = True
            elif ch in "cpegs":
                if j < len(a):
                    val = a[j:]
                elif i + 1 < len(args):
                    i += 1
                    val = args[i]
                else:
                    _err(f'option "-{ch}" requires {_what(ch)}')
                    return 1
                j = len(a)
                if ch == "c":
                    conf = val
                elif ch == "p":
                    prefix = val
                elif ch == "e":
                    error_log = val
                elif ch == "g":
                    globals_ = val
                else:
                    if val not in SIGNALS:
                        _err(f'invalid option: "-s {val}"')
                        return 1
                    sig = val
            else:
                _err(f'invalid option: "{a[j - 1:]}"')
                return 1
        i += 1

    if show_v or show_V or show_h:
        sys.stderr.write(version_lines())
        if show_V:
            from .modules import configure_arguments
            sys.stderr.write(f"built with {ssl.OPENSSL_VERSION}\n")
            sys.stderr.write("TLS SNI support enabled\n")
            sys.stderr.write(f"configure arguments: --prefix={prefix or default_prefix()}/ "
                             f"{configure_arguments()}\n")
        if show_h:
            sys.stderr.write(USAGE.format(prefix=(prefix or default_prefix()) + "/"))
        return 0

    prefix = os.path.abspath(prefix or default_prefix())
    conf_file = conf or "conf/nginx.conf"
    if not os.path.isabs(conf_file):
        conf_file = os.path.join(prefix if conf is None else os.getcwd(), conf_file)
    conf_file = os.path.abspath(conf_file)

    cycle = Cycle(conf_file, prefix, None, globals_, error_log)
    try:
        cycle.load()
    except ConfError as e:
        logmod.stderr_line("emerg", e.line_text())
        if test:
            _err(f"configuration file {conf_file} test failed")
        return 1
    for w in cycle.warnings:
        if not (test and quiet):
            logmod.stderr_line("warn", w)

    if sig:
        return _send_signal(cycle, sig)

    if test:
        if not quiet:
            _err(f"the configuration file {conf_file} syntax is ok")
            _err(f"configuration file {conf_file} test is successful")
        if dump:
            out = sys.stdout
            for path, text in cycle.files:
                out.write(f"# configuration file {path}:\n{text}")
                if not text.endswith("\n"):
                    out.write("\n")
                out.write("\n")
            out.flush()
        return 0

    return _run(cycle)


def _what(ch: str) -> str:
    return {"c": "file name", "p": "prefix path", "e": "file name", "g": "directives",
            "s": "parameter"}[ch]


def _send_signal(cycle: Cycle, name: str) -> int:
    path = cycle.confs["core"].pid
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError as e:
        logmod.stderr_line("error", f'open() "{path}" failed ({e.errno}: {e.strerror})')
        return 1
    if not text.isdigit():
        logmod.stderr_line("error", f'invalid PID number "{text}" in "{path}"')
        return 1
    pid = int(text)
    try:
        os.kill(pid, SIGNALS[name])
    except OSError as e:
        logmod.stderr_line("alert", f"kill({pid}, {int(SIGNALS[name])}) failed ({e.errno}: {e.strerror})")
        return 1
    return 0


def _run(cycle: Cycle) -> int:
    from .core.process.master import Master, run_single
    try:
        os.makedirs(os.path.join(cycle.prefix, "logs"), exist_ok=True)
    except OSError:
        pass
    try:
        cycle.open_logs()
    except OSError as e:
        logmod.stderr_line("emerg", f'open() "{e.filename}" failed ({e.errno}: {e.strerror})')
        return 1
    core = cycle.confs["core"]
    try:
        if not core.master_process:
            return run_single(cycle)
        return Master(cycle).start()
    except ConfError as e:
        logmod.stderr_line("emerg", e.line_text())
        cycle.log.log(logmod.EMERG, e.line_text())
        return 1
    except KeyboardInterrupt:
        return 0
