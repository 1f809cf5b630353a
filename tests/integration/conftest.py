"""Fixtures that start real stacks (PostgreSQL, Redis, nginx, moleculed) on loopback.

Each stack lives in its own temp folder and a free port, started and stopped with
tests/stack.sh exactly as `make up`/`make down` do. Teardown fails the run when any log
holds a sanitizer report or nginx logged [alert]/[crit]/[emerg].
"""
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STACK = os.path.join(REPO, "tests", "stack.sh")
BIN_DIR = os.environ.get("BIN_DIR", os.path.join(REPO, "build"))
SANITIZER_MARKS = ("AddressSanitizer", "runtime error:", "LeakSanitizer", "UndefinedBehaviorSanitizer")
NGINX_MARKS = ("[alert]", "[crit]", "[emerg]")
ADMIN_TOKEN = "it-admin-token-0123456789abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body)


class Stack:
    """A running stack: its folder, port, environment and a small HTTP client."""

    def __init__(self, run_dir, port, env, https_port=None):
        self.run_dir = run_dir
        self.port = port
        self.https_port = https_port
        self.env = env
        self.base = "http://127.0.0.1:%d" % port

    def request(self, method, path, headers=None, body=None, tls=False, timeout=10):
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection("127.0.0.1", self.https_port, timeout=timeout, context=ctx)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
                headers = dict(headers or {}, **{"Content-Type": "application/json"})
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            hdrs = {}
            for k, v in r.getheaders():
                hdrs.setdefault(k.lower(), v)
            return Response(r.status, hdrs, r.read())
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def admin(self, method, path, body=None, headers=None, **kw):
        """A request with the stack's ADMIN_TOKEN bearer (the canvas/operator credential)."""
        h = dict(headers or {})
        if self.env.get("ADMIN_TOKEN"):
            h["Authorization"] = "Bearer " + self.env["ADMIN_TOKEN"]
        return self.request(method, path, headers=h, body=body, **kw)

    def psql(self, sql, *args):
        """Runs one statement through psql against the stack's database; returns stdout."""
        cmd = ["psql", self.stack_env()["DATABASE_URL"], "-v", "ON_ERROR_STOP=1", "-Atc", sql]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()

    def stack_env(self):
        out = {}
        with open(os.path.join(self.run_dir, "stack.env")) as f:
            for line in f:
                line = line.strip()
                if "=" in line and not line.startswith("#"):
                    k, v = line.split("=", 1)
                    out[k] = v.strip("'\"")
        return out

    def moleculed_pid(self):
        with open(os.path.join(self.run_dir, "moleculed.pid")) as f:
            return int(f.read().strip())

    def log(self, name):
        path = os.path.join(self.run_dir, "logs", name)
        if not os.path.exists(path):
            return ""
        with open(path, errors="replace") as f:
            return f.read()

    def liveness(self):
        r = self.admin("GET", "/admin/liveness")
        assert r.status == 200, r.body
        return r.json()["subsystems"]

    def wait_for(self, predicate, timeout=10.0, interval=0.1):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        return last


def start_stack(extra_env=None, https=False):
    run_dir = tempfile.mkdtemp(prefix="molecule-it-")
    os.chmod(run_dir, 0o755)
    port = free_port()
    env = dict(os.environ)
    env.update({
        "MOLECULE_RUN_DIR": run_dir,
        "MOLECULE_HTTP_PORT": str(port),
        "BIN_DIR": BIN_DIR,
        "MOLECULE_ENV": "test",
        "RATE_LIMIT": "0",
        "MOLECULE_API_WORKERS": "3",
        "MOLECULE_A2A_WORKERS": "2",  # the A2A pool (ADR 005), small in tests
        "MOLECULE_HEARTBEAT_INTERVAL": "1",
        "MOLECULE_STOP_TIMEOUT": "5",
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:log_path=%s/logs/asan" % run_dir,
        "UBSAN_OPTIONS": "print_stacktrace=1:log_path=%s/logs/ubsan" % run_dir,
        "LSAN_OPTIONS": "suppressions=%s/tests/lsan.supp:print_suppressions=0" % REPO,
        # No container engine unless a test asks for one (engine_stack): jobs stay queued.
        "MOLECULE_ENGINE": "0",
        "MOLECULE_PROVISION": "0",
    })
    https_port = None
    if https:
        https_port = free_port()
        env["MOLECULE_HTTPS_PORT"] = str(https_port)
    env.update(extra_env or {})
    for k in [k for k, v in env.items() if v is None]:  # None in extra_env unsets
        del env[k]
    res = subprocess.run([STACK, "up"], env=env, capture_output=True, text=True, timeout=180)
    if res.returncode != 0:
        logs = ""
        logdir = os.path.join(run_dir, "logs")
        if os.path.isdir(logdir):
            for name in sorted(os.listdir(logdir)):
                with open(os.path.join(logdir, name), errors="replace") as f:
                    logs += "\n--- %s ---\n%s" % (name, f.read()[-3000:])
        subprocess.run([STACK, "down"], env=env, capture_output=True, timeout=120)
        raise RuntimeError("stack up failed (%d):\n%s\n%s%s" % (res.returncode, res.stdout, res.stderr, logs))
    return Stack(run_dir, port, env, https_port)


def stop_stack(stack):
    res = subprocess.run([STACK, "down"], env=stack.env, capture_output=True, text=True, timeout=120)
    problems = []
    if res.returncode != 0:
        problems.append("stack down failed: %s %s" % (res.stdout, res.stderr))
    logdir = os.path.join(stack.run_dir, "logs")
    for name in sorted(os.listdir(logdir)) if os.path.isdir(logdir) else []:
        with open(os.path.join(logdir, name), errors="replace") as f:
            text = f.read()
        marks = SANITIZER_MARKS + (NGINX_MARKS if name.startswith("nginx") else ())
        if name.startswith(("asan", "ubsan")):
            marks = ("",)
        for mark in marks:
            if mark in text:
                problems.append("%s contains %r:\n%s" % (name, mark or "a sanitizer report", text[-4000:]))
                break
    if os.environ.get("TEST_LEAVE") != "1" and not problems:
        shutil.rmtree(stack.run_dir, ignore_errors=True)
    return problems


@pytest.fixture(scope="session")
def stack():
    """The shared stack: MOLECULE_ENV=test with an ADMIN_TOKEN (no dev hatch, no bootstrap)."""
    s = start_stack({"ADMIN_TOKEN": ADMIN_TOKEN})
    yield s
    problems = stop_stack(s)
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def limited_stack():
    """A second stack side by side: rate limiting on, TLS on, an admin token set."""
    s = start_stack({"RATE_LIMIT": "10", "ADMIN_TOKEN": "adm-test-token-123456"}, https=True)
    yield s
    problems = stop_stack(s)
    assert not problems, "\n".join(problems)


# --- container engine (provisioner) ------------------------------------------------------

def podman_available():
    return shutil.which("podman") is not None


def start_engine_stack(extra_env=None):
    """A stack with tests/engine.sh's private Podman engine and the template git server
    (tests/stack.sh's dev default), the provisioner on, containers on the host network."""
    env = {"ADMIN_TOKEN": ADMIN_TOKEN, "MOLECULE_ENGINE": "1", "MOLECULE_PROVISION": "1",
           "MOLECULE_START_TIMEOUT": "60"}
    env.update(extra_env or {})
    env.setdefault("DOCKER_HOST", None)
    return start_stack(env)


@pytest.fixture(scope="module")
def engine_stack():
    """A module-wide stack with a real engine: POST /workspaces {"runtime":"echo"} goes online.
    stack.env has DOCKER_HOST (the engine socket) and GITSERVER_PORT."""
    if not podman_available():
        pytest.skip("podman is not installed (tests/deps.sh installs it)")
    s = start_engine_stack()
    yield s
    problems = stop_stack(s)
    assert not problems, "\n".join(problems)
