"""nginx's command line: -c -p -e -g -t -T -q -s -v -V -h.

Invariants:
- Options are parsed as nginx's ``ngx_get_options`` does: flags may be
  grouped (``-tq``), a value may be glued (``-cfile``) or the next argument,
  a lone ``-`` is ignored, and the wording of every complaint is nginx's
  with the program name ``portico`` (``invalid option: "x"`` names the one
  bad character).
- ``-v``/``-V``/``-h`` print and exit 0, unless ``-t``/``-T`` is also given:
  then the configuration is tested too (nginx's order).
- A relative ``-c`` path is relative to the prefix, as nginx's
  ``ngx_conf_full_name(cycle, &conf_file, 0)``; a relative ``-e`` too.
- ``-q`` hides only the two "syntax is ok"/"test is successful" lines;
  warnings are still printed.  ``-T`` dumps every file read, each once, as
  ``# configuration file PATH:`` + its text + a newline, on stdout.
- Configuration problems print ``portico: [emerg] MESSAGE in FILE:LINE``
  and exit 1; start-up problems after the logs are open (bind, pid file) go
  to stderr and to the error log; no Python traceback reaches the terminal
  for expected errors.
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

#: what nginx says an option lacks: ``option "-p" requires directory name``
_REQUIRES = {"c": "file name", "p": "directory name", "e": "file name", "g": "parameter",
             "s": "parameter"}


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
    sys.stderr.flush()


class Options:
    """The parsed command line."""

    def __init__(self) -> None:
        self.prefix: str | None = None
        self.conf: str | None = None
        self.error_log: str | None = None
        self.globals: str | None = None
        self.test = self.dump = self.quiet = False
        self.signal: str | None = None
        self.show_v = self.show_V = self.show_h = False


def parse_args(args: list[str]) -> Options | str:
    """Options, or the complaint to print (without ``portico: ``)."""
    o = Options()
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("-"):
            return f'invalid option: "{a}"'
        j = 1
        while j < len(a):
            ch = a[j]
            j += 1
            if ch in "?h":
                o.show_v = o.show_h = True
            elif ch == "v":
                o.show_v = True
            elif ch == "V":
                o.show_v = o.show_V = True
            elif ch == "t":
                o.test = True
            elif ch == "T":
                o.test = o.dump = True
            elif ch == "q":
                o.quiet = True
            elif ch in "cpegs":
                if j < len(a):
                    val = a[j:]
                elif i + 1 < len(args):
                    i += 1
                    val = args[i]
                else:
                    return f'option "-{ch}" requires {_REQUIRES[ch]}'
                j = len(a)
                if ch == "c":
                    o.conf = val
                elif ch == "p":
                    o.prefix = val
                elif ch == "e":
                    o.error_log = val
                elif ch == "g":
                    o.globals = val
                else:
                    if val not in SIGNALS:
                        return f'invalid option: "-s {val}"'
                    o.signal = val
            else:
                return f'invalid option: "{ch}"'
        i += 1
    return o


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--self-signed-cert":  # not an nginx option: see portico/tls/selfsigned.py
        from .tls import selfsigned
        return selfsigned.main(args[1:], default_prefix())
    parsed = parse_args(args)
    if isinstance(parsed, str):
        _err(parsed)
        return 1
    o = parsed

    if o.show_v:
        sys.stderr.write(version_lines())
        if o.show_h:
            sys.stderr.write(USAGE.format(prefix=(o.prefix or default_prefix()).rstrip("/") + "/"))
        if o.show_V:
            from .modules import configure_arguments
            sys.stderr.write(f"built with {ssl.OPENSSL_VERSION}\n")
            sys.stderr.write("TLS SNI support enabled\n")
            sys.stderr.write(f"configure arguments: --prefix={(o.prefix or default_prefix()).rstrip('/')}/ "
                             f"{configure_arguments()}\n")
        sys.stderr.flush()
        if not o.test:
            return 0

    prefix = os.path.abspath(o.prefix or default_prefix())
    conf_file = o.conf or "conf/nginx.conf"
    if not os.path.isabs(conf_file):
        conf_file = os.path.join(prefix, conf_file)
    conf_file = os.path.abspath(conf_file)

    cycle = Cycle(conf_file, prefix, None, o.globals, o.error_log)
    try:
        cycle.load()
    except ConfError as e:
        logmod.stderr_line("emerg", e.line_text())
        if o.test:
            _err(f"configuration file {conf_file} test failed")
        return 1
    except Exception as e:  # a module bug: say so in one line, not a traceback
        logmod.stderr_line("emerg", f"loading the configuration failed: {e!r}")
        if o.test:
            _err(f"configuration file {conf_file} test failed")
        return 1
    for w in cycle.warnings:
        logmod.stderr_line("warn", w)

    if o.signal:
        return _send_signal(cycle, o.signal)

    if o.test:
        if not o.quiet:
            _err(f"the configuration file {conf_file} syntax is ok")
            _err(f"configuration file {conf_file} test is successful")
        if o.dump:
            dump_config(cycle)
        return 0

    return _run(cycle)


def dump_config(cycle: Cycle) -> None:
    """``-T``: every configuration file read, each once, in reading order."""
    out = sys.stdout
    seen: set[str] = set()
    for path, text in cycle.files:
        if path in seen:
            continue
        seen.add(path)
        out.write(f"# configuration file {path}:\n{text}\n")
    out.flush()


def _send_signal(cycle: Cycle, name: str) -> int:
    path = cycle.confs["core"].pid
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        logmod.stderr_line("error", f'open() "{path}" failed ({e.errno}: {e.strerror})')
        return 1
    text = text.strip()
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
    # nginx's ngx_use_stderr: until the master runs, [warn] and worse are
    # also printed on stderr.
    cycle.log.echo_stderr = True
    core = cycle.confs["core"]
    try:
        if not core.master_process:
            return run_single(cycle)
        return Master(cycle).start()
    except ConfError as e:
        cycle.log.echo_stderr = True
        cycle.log.log(logmod.EMERG, e.line_text())
        return 1
    except KeyboardInterrupt:
        return 0
    except Exception as e:  # a bug: one [alert] line, not a traceback
        cycle.log.echo_stderr = True
        cycle.log.log(logmod.ALERT, f"{type(e).__name__}: {e}")
        return 1
