"""The command line, compared with nginx's: -v -V -h/-? -t -T -q -g -p -e -c -s.

Invariants:
- Every test runs a real ``python -m portico`` process; where Debian's nginx
  is installed the exact wording is compared with nginx's own output (the
  program name and the build-specific defaults masked), otherwise with the
  stock nginx text written here.
- nginx is only ever run with a command line that cannot start a server
  (an option error, ``-t``/``-T``, ``-s`` against a temporary prefix).
- Servers run on loopback ports from ``free_port()`` in temporary prefixes.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable

import pytest

from harness import wait_for, children, NGINX, REPO, Server, base_conf, free_port, have_nginx, raw_request, parse_response

PORTICO = [sys.executable, "-m", "portico"]
ENV = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
TS = r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}"

needs_nginx = pytest.mark.skipif(not have_nginx(), reason="Debian's nginx is not installed")


def portico(*args: str, cwd: str | None = None, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PORTICO, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd or REPO, env=ENV)


def nginx(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NGINX, *args], capture_output=True, text=True, timeout=20, cwd=cwd or "/")


def nginx_message(line: str) -> str:
    """nginx's stderr line without Debian's timestamp prefix, as stock nginx
    prints it: ``nginx: [level] message``."""
    m = re.match(rf"{TS} \[(\w+)\] \d+#\d+: (.*)", line)
    return f"nginx: [{m.group(1)}] {m.group(2)}" if m else line


@pytest.fixture
def prefix() -> "Callable[..., str]":
    made: list[str] = []

    def make(conf: str, files: dict[str, str] | None = None) -> str:
        p = tempfile.mkdtemp(prefix="portico-cli-")
        os.chmod(p, 0o755)
        made.append(p)
        for d in ("conf", "logs", "html"):
            os.makedirs(os.path.join(p, d), exist_ok=True)
        shutil.copy(os.path.join(REPO, "conf", "mime.types"), os.path.join(p, "conf", "mime.types"))
        with open(os.path.join(p, "conf", "nginx.conf"), "w") as f:
            f.write(conf.replace("%PREFIX%", p))
        for rel, text in (files or {}).items():
            path = os.path.join(p, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        return p

    yield make
    for p in made:
        shutil.rmtree(p, ignore_errors=True)


def simple_conf(port: int, extra_main: str = "", extra_http: str = "") -> str:
    return f"""daemon off;
pid logs/nginx.pid;
{extra_main}
events {{ worker_connections 64; }}
http {{
    access_log off;
    {extra_http}
    server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok"; }} }}
}}
"""


# --- -v -V -h -? ------------------------------------------------------------------------------

def test_v_prints_version_lines_on_stderr() -> None:
    r = portico("-v")
    assert r.returncode == 0
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert re.fullmatch(r"portico version: portico/\d+\.\d+\.\d+", lines[0])
    assert re.fullmatch(r"nginx version: nginx/\d+\.\d+\.\d+", lines[1])
    assert len(lines) == 2


def test_V_prints_build_facts_like_nginx() -> None:
    r = portico("-V")
    assert r.returncode == 0 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[:2] == portico("-v").stderr.splitlines()
    assert re.fullmatch(r"built with OpenSSL \S+.*", lines[2])
    assert lines[3] == "TLS SNI support enabled"
    assert lines[4].startswith("configure arguments: --prefix=")
    args = lines[4].split()
    assert "--with-http_stub_status_module" in args
    assert len(lines) == 5


@needs_nginx
def test_V_has_the_lines_tools_probe_in_nginx_V() -> None:
    mine = portico("-V").stderr.splitlines()
    theirs = nginx("-V").stderr.splitlines()
    probe = ("nginx version: ", "built with OpenSSL", "TLS SNI support enabled", "configure arguments: ")
    for p in probe:
        assert any(line.startswith(p) for line in theirs), p
        assert any(line.startswith(p) for line in mine), p


@pytest.mark.parametrize("flag", ["-h", "-?"])
def test_help_text(flag: str) -> None:
    r = portico(flag)
    assert r.returncode == 0 and r.stdout == ""
    text = r.stderr
    assert text.startswith(portico("-v").stderr)
    usage = text[len(portico("-v").stderr):]
    assert usage.startswith("Usage: portico [-?hvVtTq] [-s signal] [-p prefix]\n")
    assert "  -c filename   : set configuration file (default: conf/nginx.conf)\n" in usage
    assert "  -e filename   : set error log file (default: logs/error.log)\n" in usage
    assert portico("-h").stderr == portico("-?").stderr


@needs_nginx
def test_help_text_matches_nginx() -> None:
    mine = portico("-h").stderr.split("Usage:", 1)[1]
    theirs = nginx("-h").stderr.split("Usage:", 1)[1]

    def norm(s: str) -> str:
        return re.sub(r"\(default: [^)]*\)", "(default: X)", s.replace("nginx", "portico"))
    assert norm(mine) == norm(theirs)


def test_help_with_t_also_tests(prefix: Callable[..., str]) -> None:
    p = prefix(simple_conf(free_port()))
    r = portico("-p", p, "-h", "-t")
    assert r.returncode == 0
    assert "Usage: portico" in r.stderr
    assert r.stderr.rstrip().endswith("test is successful")


# --- invalid options -----------------------------------------------------------------------------

BAD = [["-x"], ["-vx"], ["-xyz"], ["foo"], ["-s"], ["-s", "foo"], ["-sfoo"], ["-c"], ["-p"], ["-g"],
       ["-e"], ["-t", "extra"]]
STOCK = {  # stock nginx's text, for machines without nginx
    "-x": 'invalid option: "x"', "-vx": 'invalid option: "x"', "-xyz": 'invalid option: "x"',
    "foo": 'invalid option: "foo"', "-s": 'option "-s" requires parameter',
    "-s foo": 'invalid option: "-s foo"', "-sfoo": 'invalid option: "-s foo"',
    "-c": 'option "-c" requires file name', "-p": 'option "-p" requires directory name',
    "-g": 'option "-g" requires parameter', "-e": 'option "-e" requires file name',
    "-t extra": 'invalid option: "extra"',
}


@pytest.mark.parametrize("args", BAD, ids=[" ".join(a) for a in BAD])
def test_invalid_option_wording(args: list[str]) -> None:
    r = portico(*args)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == f"portico: {STOCK[' '.join(args)]}\n"
    assert "Traceback" not in r.stderr


@needs_nginx
@pytest.mark.parametrize("args", BAD, ids=[" ".join(a) for a in BAD])
def test_invalid_option_matches_nginx(args: list[str]) -> None:
    mine = portico(*args)
    theirs = nginx(*args)
    assert mine.returncode == theirs.returncode == 1
    assert mine.stderr == theirs.stderr.replace("nginx: ", "portico: ", 1)


# --- -t -T -q ------------------------------------------------------------------------------------

def test_t_ok(prefix: Callable[..., str]) -> None:
    p = prefix(simple_conf(free_port()))
    r = portico("-p", p, "-t")
    conf = os.path.join(p, "conf", "nginx.conf")
    assert r.returncode == 0
    assert r.stdout == ""
    assert r.stderr == (f"portico: the configuration file {conf} syntax is ok\n"
                        f"portico: configuration file {conf} test is successful\n")


def test_t_failed_names_file_and_line(prefix: Callable[..., str]) -> None:
    port = free_port()
    p = prefix(simple_conf(port, extra_http="include extra.conf;"),
               {"conf/extra.conf": "# one\n\nbogus_directive on;\n"})
    r = portico("-p", p, "-t")
    conf = os.path.join(p, "conf", "nginx.conf")
    assert r.returncode == 1
    assert r.stderr == (f'portico: [emerg] unknown directive "bogus_directive" in '
                        f'{os.path.join(p, "conf", "extra.conf")}:3\n'
                        f"portico: configuration file {conf} test failed\n")


def test_t_missing_file(prefix: Callable[..., str]) -> None:
    p = prefix(simple_conf(free_port()))
    missing = os.path.join(p, "conf", "nope.conf")
    r = portico("-p", p, "-c", missing, "-t")
    assert r.returncode == 1
    assert r.stderr == (f'portico: [emerg] open() "{missing}" failed (2: No such file or directory)\n'
                        f"portico: configuration file {missing} test failed\n")


def test_q_hides_only_the_success_lines(prefix: Callable[..., str]) -> None:
    p = prefix(simple_conf(free_port()))
    r = portico("-p", p, "-t", "-q")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    r = portico("-p", p, "-tq")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    with open(os.path.join(p, "conf", "nginx.conf"), "a") as f:
        f.write("oops;\n")
    r = portico("-p", p, "-t", "-q")
    assert r.returncode == 1
    assert "[emerg] unknown directive \"oops\"" in r.stderr
    assert "test failed" in r.stderr


DUMP_CONF = """daemon off;
pid logs/nginx.pid;
events { worker_connections 64; }
http {
    include mime.types;
    include note.conf;
    include site.conf;
    include note.conf;
    access_log off;
}
"""
NOTE = "# included twice, dumped once\n"


def test_T_dumps_every_file_once(prefix: Callable[..., str]) -> None:
    port = free_port()
    site = f"server {{ listen 127.0.0.1:{port}; location / {{ return 200; }} }}"  # no final newline
    p = prefix(DUMP_CONF, {"conf/site.conf": site, "conf/note.conf": NOTE})
    r = portico("-p", p, "-T")
    assert r.returncode == 0
    assert r.stderr.endswith("test is successful\n")
    conf = os.path.join(p, "conf")
    with open(os.path.join(conf, "mime.types")) as f:
        mime = f.read()
    assert r.stdout == (f"# configuration file {conf}/nginx.conf:\n{DUMP_CONF}\n"
                        f"# configuration file {conf}/mime.types:\n{mime}\n"
                        f"# configuration file {conf}/note.conf:\n{NOTE}\n"
                        f"# configuration file {conf}/site.conf:\n{site}\n")
    q = portico("-p", p, "-T", "-q")
    assert q.stdout == r.stdout and q.stderr == ""


@needs_nginx
def test_T_matches_nginx(prefix: Callable[..., str]) -> None:
    port = free_port()
    site = f"server {{ listen 127.0.0.1:{port}; location / {{ return 200; }} }}"
    p = prefix(DUMP_CONF, {"conf/site.conf": site, "conf/note.conf": NOTE})
    mine = portico("-p", p, "-T")
    theirs = nginx("-p", p + "/", "-c", os.path.join(p, "conf", "nginx.conf"), "-T")
    assert theirs.returncode == 0, theirs.stderr
    assert mine.stdout == theirs.stdout
    assert mine.stderr == theirs.stderr.replace("nginx: ", "portico: ")


# --- -g -p -c -e ---------------------------------------------------------------------------------

def test_g_sets_worker_processes(server: Callable[..., Server]) -> None:
    port = free_port()
    conf = simple_conf(port, extra_main="error_log logs/error.log info;")
    s = server(conf, args=("-g", "worker_processes 2;"))
    assert wait_for(lambda: len(children(s.master_pid)) == 2)
    assert parse_response(raw_request(port, b"GET / HTTP/1.0\r\n\r\n"))[0] == 200


@pytest.mark.parametrize("g, message", [
    ("worker_processes 2", 'unexpected end of parameter, expecting ";" in command line'),
    ("foo 2;", 'unknown directive "foo" in command line'),
])
def test_g_errors(prefix: Callable[..., str], g: str, message: str) -> None:
    p = prefix(simple_conf(free_port()))
    r = portico("-p", p, "-g", g, "-t")
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == f"portico: [emerg] {message}"
    if have_nginx():
        n = nginx("-p", p + "/", "-c", os.path.join(p, "conf", "nginx.conf"), "-g", g, "-t")
        assert nginx_message(n.stderr.splitlines()[0]) == f"nginx: [emerg] {message}"


def test_g_duplicate_with_file(prefix: Callable[..., str]) -> None:
    p = prefix(simple_conf(free_port(), extra_main="worker_processes 1;"))
    r = portico("-p", p, "-g", "worker_processes 2;", "-t")
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == (f'portico: [emerg] "worker_processes" directive is duplicate in '
                                        f'{p}/conf/nginx.conf:3')


def test_p_and_relative_c_are_relative_to_the_prefix(prefix: Callable[..., str]) -> None:
    port = free_port()
    conf = f"""daemon off;
pid logs/other.pid;
events {{ }}
http {{ access_log logs/acc.log; server {{ listen 127.0.0.1:{port}; root html; }} }}
"""
    p = prefix(simple_conf(free_port()), {"conf/other.conf": conf, "html/index.html": "prefixed\n"})
    # from an unrelated working directory, -c conf/other.conf means PREFIX/conf/other.conf
    r = portico("-p", p, "-c", "conf/other.conf", "-t", cwd="/")
    assert r.returncode == 0, r.stderr
    assert f"{p}/conf/other.conf syntax is ok" in r.stderr
    proc = subprocess.Popen([*PORTICO, "-p", p, "-c", "conf/other.conf"], cwd="/", env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: os.path.exists(f"{p}/logs/other.pid"), 10)
        st, _, body, _ = parse_response(raw_request(port, b"GET / HTTP/1.0\r\n\r\n"))
        assert (st, body) == (200, b"prefixed\n")
        assert wait_for(lambda: os.path.getsize(f"{p}/logs/acc.log") > 0 if os.path.exists(f"{p}/logs/acc.log") else False, 5)
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stderr.close()  # type: ignore[union-attr]
    assert not os.path.exists(f"{p}/logs/other.pid")


@needs_nginx
def test_relative_c_resolution_matches_nginx(prefix: Callable[..., str]) -> None:
    p = prefix(simple_conf(free_port()))
    theirs = nginx("-p", p + "/", "-c", "conf/nginx.conf", "-t", cwd="/")
    mine = portico("-p", p, "-c", "conf/nginx.conf", "-t", cwd="/")
    assert theirs.returncode == mine.returncode == 0
    assert mine.stderr == theirs.stderr.replace("nginx: ", "portico: ").replace(p + "//", p + "/")


NO_ERROR_LOG = """daemon off;
master_process {master};
pid logs/nginx.pid;
events {{ worker_connections 64; }}
http {{ access_log off; server {{ listen 127.0.0.1:{port}; root html; }} }}
"""


@pytest.mark.parametrize("master", ["on", "off"])
def test_e_stderr(prefix: Callable[..., str], master: str) -> None:
    port = free_port()
    p = prefix(NO_ERROR_LOG.format(port=port, master=master))
    proc = subprocess.Popen([*PORTICO, "-p", p, "-e", "stderr"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: os.path.exists(f"{p}/logs/nginx.pid"), 10)
        assert parse_response(raw_request(port, b"GET /missing HTTP/1.0\r\n\r\n"))[0] == 404
    finally:
        time.sleep(0.2)
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    text = err.decode()
    assert re.search(rf'^{TS} \[error\] \d+#\d+: \*\d+ open\(\) "{p}/html/missing" failed '
                     r"\(2: No such file or directory\)", text, re.M), text
    assert not os.path.exists(f"{p}/logs/error.log")


def test_e_relative_file(prefix: Callable[..., str]) -> None:
    port = free_port()
    p = prefix(NO_ERROR_LOG.format(port=port, master="on"))
    proc = subprocess.Popen([*PORTICO, "-p", p, "-e", "logs/alt.log"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: os.path.exists(f"{p}/logs/nginx.pid"), 10)
        raw_request(port, b"GET /missing HTTP/1.0\r\n\r\n")
        assert wait_for(lambda: "/html/missing" in open(f"{p}/logs/alt.log").read(), 5)
    finally:
        proc.terminate()
        proc.wait(10)
    assert not os.path.exists(f"{p}/logs/error.log")


def test_e_does_not_override_error_log_directive(prefix: Callable[..., str]) -> None:
    port = free_port()
    conf = NO_ERROR_LOG.format(port=port, master="on").replace("pid logs/nginx.pid;",
                                                                "pid logs/nginx.pid;\nerror_log logs/conf.log;")
    p = prefix(conf)
    proc = subprocess.Popen([*PORTICO, "-p", p, "-e", "logs/alt.log"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: os.path.exists(f"{p}/logs/nginx.pid"), 10)
        raw_request(port, b"GET /missing HTTP/1.0\r\n\r\n")
        assert wait_for(lambda: os.path.exists(f"{p}/logs/conf.log")
                        and "/html/missing" in open(f"{p}/logs/conf.log").read(), 3)
    finally:
        proc.terminate()
        proc.wait(10)


# --- -s --------------------------------------------------------------------------------------------

def _log_count(s: Server, text: str) -> int:
    return s.log().count(text)


def test_s_reload_reopen_quit(server: Callable[..., Server]) -> None:
    port = free_port()
    s = server(base_conf(f"server {{ listen 127.0.0.1:{port}; location / {{ return 200 ok; }} }}",
                         workers=2))
    master = s.master_pid
    assert wait_for(lambda: len(children(master)) == 2)
    before = set(children(master))
    r = s.run("-s", "reload")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert wait_for(lambda: "(SIGHUP) received from" in s.log())
    assert wait_for(lambda: len(set(children(master)) - before) == 2 and not (set(children(master)) & before))
    r = s.run("-s", "reopen")
    assert r.returncode == 0
    assert wait_for(lambda: "signal 10 (SIGUSR1) received from" in s.log())
    assert wait_for(lambda: _log_count(s, "] reopening logs") + _log_count(s, ": reopening logs") >= 2)
    r = s.run("-s", "quit")
    assert r.returncode == 0
    assert s.proc is not None
    assert s.proc.wait(10) == 0
    assert "signal 3 (SIGQUIT) received from" in s.log()
    assert not os.path.exists(s.pid_path)


def test_s_stop(server: Callable[..., Server]) -> None:
    port = free_port()
    s = server(base_conf(f"server {{ listen 127.0.0.1:{port}; location / {{ return 200 ok; }} }}"))
    t0 = time.monotonic()
    assert s.run("-s", "stop").returncode == 0
    assert s.proc is not None and s.proc.wait(10) == 0
    assert time.monotonic() - t0 < 3
    assert "signal 15 (SIGTERM) received from" in s.log()
    assert not os.path.exists(s.pid_path)


@pytest.mark.parametrize("sig", ["reload", "reopen", "quit", "stop"])
def test_s_without_pid_file(prefix: Callable[..., str], sig: str) -> None:
    p = prefix(simple_conf(free_port()))
    r = portico("-p", p, "-s", sig)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == f'portico: [error] open() "{p}/logs/nginx.pid" failed (2: No such file or directory)\n'


@needs_nginx
def test_s_without_pid_file_matches_nginx(prefix: Callable[..., str]) -> None:
    p = prefix(simple_conf(free_port()))
    theirs = nginx("-p", p + "/", "-c", os.path.join(p, "conf", "nginx.conf"), "-s", "reload")
    mine = portico("-p", p, "-s", "reload")
    assert theirs.returncode == mine.returncode == 1
    their_lines = [nginx_message(x) for x in theirs.stderr.splitlines() if "signal process started" not in x]
    assert mine.stderr.splitlines() == [x.replace("nginx: ", "portico: ").replace(p + "//", p + "/")
                                        for x in their_lines]


def test_s_bad_pid_file(prefix: Callable[..., str]) -> None:
    p = prefix(simple_conf(free_port()))
    pid_path = f"{p}/logs/nginx.pid"
    with open(pid_path, "w") as f:
        f.write("garbage\n")
    r = portico("-p", p, "-s", "stop")
    assert (r.returncode, r.stderr) == (1, f'portico: [error] invalid PID number "garbage" in "{pid_path}"\n')
    with open(pid_path, "w") as f:
        f.write("")
    r = portico("-p", p, "-s", "stop")
    assert (r.returncode, r.stderr) == (1, f'portico: [error] invalid PID number "" in "{pid_path}"\n')
    # a pid that names no process
    dead = subprocess.Popen(["true"])
    dead.wait()
    with open(pid_path, "w") as f:
        f.write(f"{dead.pid}\n")
    r = portico("-p", p, "-s", "stop")
    assert r.returncode == 1
    assert r.stderr == f"portico: [alert] kill({dead.pid}, 15) failed (3: No such process)\n"


def test_s_with_broken_config_does_not_signal(server: Callable[..., Server]) -> None:
    port = free_port()
    good = base_conf(f"server {{ listen 127.0.0.1:{port}; location / {{ return 200 ok; }} }}")
    s = server(good)
    s.write_conf(good + "\nbroken_directive;\n")
    r = s.run("-s", "reload")
    assert r.returncode == 1
    assert r.stderr.startswith('portico: [emerg] unknown directive "broken_directive" in ')
    time.sleep(0.3)
    assert "SIGHUP" not in s.log()
    assert s.proc is not None and s.proc.poll() is None
