"""The Docker Engine API client (common/engine.c, common/tar.c) against a real Podman engine
(tests/engine.sh), driven through the test tool $BIN_DIR/enginectl."""
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import BIN_DIR, REPO

ENGINE_SH = os.path.join(REPO, "tests", "engine.sh")
ENGINECTL = os.path.join(BIN_DIR, "enginectl")
BASE = "localhost/molecule-base:latest"


@pytest.fixture(scope="module")
def engine():
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (tests/deps.sh installs it)")
    # short path: the socket must fit in sun_path (108 bytes)
    d = tempfile.mkdtemp(prefix="molecule-eng-", dir="/tmp")
    t0 = time.monotonic()
    out = subprocess.run([ENGINE_SH, "start", d], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    print("engine.sh start took %.2f s" % (time.monotonic() - t0))
    host = [ln for ln in out.stdout.splitlines() if ln.startswith("DOCKER_HOST=")][-1].split("=", 1)[1]
    assert host == "unix://%s/engine.sock" % d
    yield {"dir": d, "host": host}
    subprocess.run([ENGINE_SH, "stop", d], capture_output=True, text=True, timeout=120)
    shutil.rmtree(d, ignore_errors=True)


def ctl(engine, *args, host=None, timeout=120):
    env = dict(os.environ)
    env["DOCKER_HOST"] = host or engine["host"]
    env.pop("DOCKER_CERT_PATH", None)
    return subprocess.run([ENGINECTL] + list(args), capture_output=True, text=True, env=env, timeout=timeout)


def ok(engine, *args, **kw):
    r = ctl(engine, *args, **kw)
    assert r.returncode == 0, "enginectl %s: %s" % (" ".join(args), r.stderr)
    return r.stdout


def wait_for(fn, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.1)


def name(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def test_ping_and_idempotent_start(engine):
    assert ok(engine, "ping").strip() == "OK"
    # a second start on a running engine is a no-op that still prints the address
    out = subprocess.run([ENGINE_SH, "start", engine["dir"]], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and engine["host"] in out.stdout
    assert ok(engine, "image-exists", BASE).strip() == "yes"
    assert ok(engine, "image-exists", "localhost/no-such-image:latest").strip() == "no"


def test_volume_create_remove(engine):
    v = name("vol")
    ok(engine, "volume-create", v)
    ok(engine, "volume-rm", v)
    # removing what is already gone is success, not an error
    ok(engine, "volume-rm", v)


def test_container_lifecycle_archive_logs_list(engine, tmp_path):
    c = name("ctr")
    secret = tmp_path / "auth_token"
    secret.write_text("tok-%s\n" % uuid.uuid4().hex)
    # the container waits for the uploaded file, so archive upload into a running container is proven
    ok(engine, "run", c, BASE, "sh", "-c",
       "echo started; echo to-stderr >&2; "
       "while [ ! -f /configs/auth_token ]; do sleep 0.1; done; "
       "echo mode=$(stat -c %a /configs/auth_token); cat /configs/auth_token; sleep 600")
    try:
        assert ok(engine, "state", c).strip() == "running"
        ok(engine, "put", c, "/configs", str(secret))
        logs = wait_for(lambda: (lambda s: s if secret.read_text() in s else None)(ok(engine, "logs", c)),
                        what="the uploaded file in the container's log")
        assert "started" in logs and "to-stderr" in logs and "mode=600" in logs
        # tail limits the lines
        assert ok(engine, "logs", c, "1") == secret.read_text()

        listed = ok(engine, "list", "enginectl.name=" + c)
        assert c in listed and '"enginectl":"1"' in listed
        assert ok(engine, "list", "enginectl.name=nobody-" + c).strip() == ""

        ok(engine, "pause", c)
        assert ok(engine, "state", c).strip() == "paused"
        ok(engine, "unpause", c)
        assert ok(engine, "state", c).strip() == "running"
        ok(engine, "kill", c)
        wait_for(lambda: ok(engine, "state", c).strip() == "stopped", what="stopped after kill")
    finally:
        ok(engine, "rm", c)
    assert ok(engine, "state", c).strip() == "missing"
    ok(engine, "rm", c)  # already gone: still success


def test_engine_error_message_is_passed_on(engine):
    r = ctl(engine, "run", name("bad"), "localhost/no-such-image:latest", "true")
    assert r.returncode == 1
    assert "container create:" in r.stderr and "no-such-image" in r.stderr, r.stderr


def test_build(engine, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM %s\nCOPY hello.txt /hello.txt\nRUN echo hi > /x\n" % BASE)
    (ctx / "hello.txt").write_text("from the context\n")
    (ctx / ".git").mkdir()
    (ctx / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    tag = "localhost/eng-test-%s:1" % uuid.uuid4().hex[:8]
    out = ok(engine, "build", tag, str(ctx), timeout=300)
    assert "RUN echo hi > /x" in out and ("built " + tag) in out
    assert ok(engine, "image-exists", tag).strip() == "yes"
    c = name("built")
    ok(engine, "run", c, tag, "sh", "-c", "cat /x /hello.txt; test -e /.git && echo GIT-LEAKED; sleep 600")
    try:
        logs = wait_for(lambda: (lambda s: s if "from the context" in s else None)(ok(engine, "logs", c)),
                        what="the built image's files")
        assert logs.startswith("hi\n") and "GIT-LEAKED" not in logs
    finally:
        ok(engine, "rm", c)


def test_build_error_surfaces_the_error_line(engine, tmp_path):
    ctx = tmp_path / "bad"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM %s\nRUN echo before-failing; exit 7\n" % BASE)
    r = ctl(engine, "build", "localhost/eng-bad-%s:1" % uuid.uuid4().hex[:8], str(ctx), timeout=300)
    assert r.returncode == 1
    assert "build:" in r.stderr and "exit status 7" in r.stderr, r.stderr
    assert "before-failing" in r.stdout  # the progress lines streamed before the error


def test_engine_down_names_the_socket(engine):
    gone = "/tmp/molecule-eng-nowhere-%s.sock" % uuid.uuid4().hex[:8]
    r = ctl(engine, "ping", host="unix://" + gone)
    assert r.returncode == 1
    assert gone in r.stderr and "cannot connect" in r.stderr, r.stderr


def test_tcp_without_certs_only_loopback(engine):
    r = ctl(engine, "ping", host="tcp://203.0.113.7:2376")
    assert r.returncode == 1 and "TLS client certs" in r.stderr, r.stderr
    # loopback tcp without certs is accepted (nothing listens: a connection error, not a config error)
    r = ctl(engine, "ping", host="tcp://127.0.0.1:1")
    assert r.returncode == 1 and "tcp://127.0.0.1:1" in r.stderr and "TLS" not in r.stderr, r.stderr


def test_stop_cleans_up(engine):
    d = tempfile.mkdtemp(prefix="molecule-eng2-", dir="/tmp")
    try:
        out = subprocess.run([ENGINE_SH, "start", d], capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stderr
        host = "unix://%s/engine.sock" % d
        c = name("left")
        ok(engine, "run", c, BASE, "sleep", "600", host=host)
        r = subprocess.run([ENGINE_SH, "stop", d], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert not os.path.exists(os.path.join(d, "storage"))
        with open("/proc/self/mountinfo") as f:
            assert d + "/" not in f.read()
        left = subprocess.run(["pgrep", "-f", d + "/"], capture_output=True, text=True)
        assert left.stdout.strip() == "", "processes left: " + left.stdout
        # stop again: idempotent
        r = subprocess.run([ENGINE_SH, "stop", d], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    finally:
        subprocess.run([ENGINE_SH, "stop", d], capture_output=True, text=True, timeout=60)
        shutil.rmtree(d, ignore_errors=True)
