"""Image resolution against a real Podman engine and the loopback Gitea stand-in (tests/fixtures/gitserver.py).

Drives common/images.c through tests/tools/imagectl: cold build then cache hit, concurrent callers
sharing one build, every fail-closed case with its specific message, the Gitea token never showing up
in any output or file, and the echo test agent's image answering A2A message/send on the host network.
"""
import glob
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import BIN_DIR, REPO, free_port

ENGINE_SH = os.path.join(REPO, "tests", "engine.sh")
GITSERVER = os.path.join(REPO, "tests", "fixtures", "gitserver.py")
TEMPLATES = os.path.join(REPO, "tests", "fixtures", "templates")
IMAGECTL = os.path.join(BIN_DIR, "imagectl")
TOKEN = "gitea-tok-3f9a1c7e5b2d4086"

pytestmark = pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed (tests/deps.sh)")


class World:
    """One engine, one token-protected git server, one cache dir: shared by the module's tests."""

    def __init__(self):
        # Unix socket paths are short (108 bytes): keep the engine folder near /.
        self.dir = tempfile.mkdtemp(prefix="mi-img-", dir="/tmp")
        self.engine_dir = os.path.join(self.dir, "e")
        self.cache = os.path.join(self.dir, "cache")
        self.templates = os.path.join(self.dir, "templates")
        self.git_log = os.path.join(self.dir, "gitserver.log")
        self.outputs = []
        shutil.copytree(TEMPLATES, self.templates, symlinks=True)
        # A second copy of echo, so the concurrency test builds something not cached yet.
        shutil.copytree(os.path.join(TEMPLATES, "echo"), os.path.join(self.templates, "echotwin"), symlinks=True)
        with open(os.path.join(self.templates, "echotwin", "TWIN"), "w") as f:
            f.write("twin\n")
        out = subprocess.run([ENGINE_SH, "start", self.engine_dir], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        self.docker_host = [l for l in out.stdout.splitlines() if l.startswith("DOCKER_HOST=")][-1].split("=", 1)[1]
        self.git = subprocess.Popen(
            ["/usr/bin/python3", GITSERVER, "--port", "0", "--root", self.templates, "--token", TOKEN,
             "--log", self.git_log], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.git_port = int(self.git.stdout.readline())
        self.prefix = "http://127.0.0.1:%d/molecule-ai/molecule-ai-workspace-template-" % self.git_port

    def env(self, **over):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("MOLECULE_") and k not in ("DOCKER_HOST", "DATABASE_URL")}
        env.update({
            "DOCKER_HOST": self.docker_host,
            "MOLECULE_LOCAL_TEMPLATE_REPO_PREFIX": self.prefix,
            "MOLECULE_GITEA_TOKEN": TOKEN,
            "MOLECULE_EXTRA_RUNTIMES": "echo, echotwin,broken,ghost",
            "MOLECULE_IMAGE_CACHE_DIR": self.cache,
            "MOLECULE_IMAGE_BUILD_TIMEOUT": "300",
        })
        for k, v in over.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def ensure(self, runtime, **over):
        out = subprocess.run([IMAGECTL, "ensure", runtime], env=self.env(**over), capture_output=True,
                             text=True, timeout=400)
        self.outputs.append(out.stdout + out.stderr)
        return Result(out)

    def git_requests(self, what):
        if not os.path.exists(self.git_log):
            return 0
        with open(self.git_log) as f:
            return sum(1 for line in f if what in line)

    def close(self):
        self.git.terminate()
        try:
            self.git.wait(timeout=15)
        finally:
            subprocess.run([ENGINE_SH, "stop", self.engine_dir], capture_output=True, timeout=300)
            shutil.rmtree(self.dir, ignore_errors=True)


class Result:
    def __init__(self, out):
        self.rc = out.returncode
        self.stdout = out.stdout
        self.stderr = out.stderr
        self.events = []
        self.ref = None
        self.error = None
        for line in out.stdout.splitlines():
            if line.startswith("EVENT "):
                _, kind, payload = line.split(" ", 2)
                self.events.append((kind, json.loads(payload)))
            elif line.startswith("REF "):
                self.ref = line[4:]
            elif line.startswith("ERROR "):
                self.error = line[6:]

    def kinds(self):
        return [k for k, _ in self.events]


@pytest.fixture(scope="module")
def world():
    w = World()
    yield w
    w.close()


def test_cold_build_then_cache_hit(world):
    fetches = world.git_requests("git-upload-pack")
    r = world.ensure("echo")
    assert r.rc == 0, r.stderr
    assert r.ref is not None and r.ref.startswith("workspace-template-echo:sha-")
    kinds = r.kinds()
    assert kinds[0] == "IMAGE_BUILD_STARTED" and kinds[-1] == "IMAGE_BUILD_FINISHED", kinds
    assert "IMAGE_BUILD_LOG" in kinds
    started = r.events[0][1]
    assert started["runtime"] == "echo" and len(started["sha"]) == 40
    assert r.ref.endswith(started["sha"][:12])
    assert r.events[-1][1]["image"] == r.ref and r.events[-1][1]["duration_ms"] >= 0
    assert world.git_requests("git-upload-pack") > fetches
    log = os.path.join(world.cache, "echo", started["sha"] + ".build.log")
    assert "Successfully" in open(log).read()

    fetches = world.git_requests("git-upload-pack")
    api = world.git_requests("/api/v1/")
    r2 = world.ensure("echo")
    assert r2.rc == 0, r2.stderr
    assert r2.ref == r.ref
    assert r2.events == []
    assert "cache hit" in r2.stderr
    assert world.git_requests("git-upload-pack") == fetches  # no clone
    assert world.git_requests("/api/v1/") == api + 1  # exactly one Gitea call


def test_concurrent_callers_share_one_build(world):
    req = urllib.request.Request(
        "http://127.0.0.1:%d/api/v1/repos/molecule-ai/molecule-ai-workspace-template-echotwin/branches/main"
        % world.git_port, headers={"Authorization": "token " + TOKEN})
    with urllib.request.urlopen(req, timeout=10) as resp:
        sha = json.loads(resp.read())["commit"]["id"]
    # what a process killed mid-fetch leaves behind: removed by the next builder
    partial = os.path.join(world.cache, "echotwin", sha + ".tmp.999999")
    os.makedirs(os.path.join(partial, "half"))
    results = [None, None, None]

    def run(i):
        results[i] = world.ensure("echotwin")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.rc == 0 for r in results), [r.stderr for r in results]
    assert len({r.ref for r in results}) == 1
    assert sum(r.kinds().count("IMAGE_BUILD_STARTED") for r in results) == 1
    assert world.git_requests("molecule-ai-workspace-template-echotwin/git-upload-pack") >= 1
    assert results[0].ref.endswith(sha[:12])
    assert not os.path.exists(partial)
    assert os.path.isfile(os.path.join(world.cache, "echotwin", sha, "TWIN"))


def test_unknown_runtime_and_external(world):
    r = world.ensure("nosuchruntime")
    assert r.rc == 1 and 'unknown runtime "nosuchruntime"' in r.error and "MOLECULE_EXTRA_RUNTIMES" in r.error
    r = world.ensure("external")
    assert r.rc == 1 and "external workspaces run their own agent" in r.error
    r = world.ensure("../etc")
    assert r.rc == 1 and "(invalid name)" in r.error


def test_repo_missing(world):
    r = world.ensure("ghost")
    assert r.rc == 1
    assert "template repository" in r.error and "workspace-template-ghost not found on Gitea" in r.error
    assert r.events == []


def test_branch_missing(world):
    r = world.ensure("echo", MOLECULE_LOCAL_TEMPLATE_BRANCH="release-9")
    assert r.rc == 1 and "branch release-9 not found in template repository" in r.error


def test_gitea_down(world):
    port = free_port()
    prefix = "http://127.0.0.1:%d/molecule-ai/molecule-ai-workspace-template-" % port
    r = world.ensure("echo", MOLECULE_LOCAL_TEMPLATE_REPO_PREFIX=prefix)
    assert r.rc == 1 and r.error.startswith("Gitea unreachable") and str(port) in r.error
    assert r.ref is None


def test_gitea_rejects_missing_token(world):
    r = world.ensure("echo", MOLECULE_GITEA_TOKEN=None)
    assert r.rc == 1 and "Gitea refused access" in r.error and "HTTP 401" in r.error


def test_build_error(world):
    r = world.ensure("broken")
    assert r.rc == 1
    assert "building image workspace-template-broken:sha-" in r.error and "does-not-exist" in r.error
    assert r.kinds()[0] == "IMAGE_BUILD_STARTED" and r.kinds()[-1] == "IMAGE_BUILD_FAILED"
    assert r.events[-1][1]["error"] == r.error
    # fails closed: nothing tagged, so the next attempt builds (and fails) again
    r2 = world.ensure("broken")
    assert r2.rc == 1 and "IMAGE_BUILD_STARTED" in r2.kinds()


def test_engine_down(world):
    r = world.ensure("echo", DOCKER_HOST="unix://%s/no-engine.sock" % world.dir)
    assert r.rc == 1 and "cannot reach the container engine" in r.error


def test_registry_mode_pulls_and_never_asks_gitea(world):
    api = world.git_requests("/api/v1/")
    r = world.ensure("echo", MOLECULE_IMAGE_REGISTRY="127.0.0.1:%d/molecule" % free_port())
    assert r.rc == 1 and "pulling image 127.0.0.1:" in r.error
    assert r.kinds() == ["IMAGE_PULL_STARTED", "IMAGE_PULL_FAILED"]
    assert world.git_requests("/api/v1/") == api


def test_token_never_leaks(world):
    # Runs after the cases above (pytest keeps file order): every output and every file they left.
    assert world.outputs
    for out in world.outputs:
        assert TOKEN not in out
        assert "Sanitizer" not in out and "runtime error:" not in out, out
    for path in glob.glob(os.path.join(world.cache, "**"), recursive=True) + [world.git_log]:
        if os.path.isfile(path):
            with open(path, "rb") as f:
                assert TOKEN.encode() not in f.read(), path


# --- the echo agent image ---------------------------------------------------------------

class FakePlatform(BaseHTTPRequestHandler):
    calls = []

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        FakePlatform.calls.append((self.path, self.headers.get("Authorization"), json.loads(body)))
        out = b'{"status":"ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def a2a(port, text, rid=1, timeout=10):
    body = json.dumps({"jsonrpc": "2.0", "id": rid, "method": "message/send",
                       "params": {"message": {"role": "user", "messageId": "m-%s" % rid,
                                              "parts": [{"kind": "text", "text": text}]}}}).encode()
    req = urllib.request.Request("http://127.0.0.1:%d/" % port, data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def wait_for(pred, timeout=30.0, step=0.2):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


def test_echo_agent_answers_and_registers(world):
    r = world.ensure("echo")
    assert r.rc == 0, r.stderr
    platform = ThreadingHTTPServer(("127.0.0.1", 0), FakePlatform)
    threading.Thread(target=platform.serve_forever, daemon=True).start()
    agent_port = free_port()
    wsid = "7b0c6f0e-3f7e-4a59-9d0a-2f5a3c1e9b11"
    name = "mi-echo-%d" % agent_port
    env = world.env()
    agent_token = "agent-bearer-0123456789"
    run = subprocess.run(
        [IMAGECTL, "run", name, r.ref, agent_token, "WORKSPACE_ID=" + wsid, "AGENT_PORT=%d" % agent_port,
         "PLATFORM_URL=http://127.0.0.1:%d" % platform.server_address[1], "HEARTBEAT_INTERVAL=1"],
        env=env, capture_output=True, text=True, timeout=120)
    try:
        assert run.returncode == 0, run.stderr

        def answers():
            try:
                return a2a(agent_port, "ping", rid=0, timeout=2)
            except OSError:
                return None
        first = wait_for(answers, timeout=60)
        assert first is not None, subprocess.run([IMAGECTL, "logs", name], env=env, capture_output=True,
                                                 text=True).stdout
        assert first["result"]["parts"][0]["text"] == "echo: ping"

        resp = a2a(agent_port, 'hello "world"', rid=42)
        assert resp["jsonrpc"] == "2.0" and resp["id"] == 42
        assert resp["result"]["kind"] == "message" and resp["result"]["role"] == "agent"
        assert resp["result"]["parts"] == [{"kind": "text", "text": 'echo: hello "world"'}]
        assert a2a(agent_port, "error", rid="e1")["error"]["code"] == -32000
        assert a2a(agent_port, "empty", rid=3)["result"]["parts"][0]["text"] == ""
        t0 = time.time()
        assert a2a(agent_port, "sleep 2", rid=4)["result"]["parts"][0]["text"] == "echo: sleep 2"
        assert time.time() - t0 >= 1.9

        beats = wait_for(lambda: [c for c in FakePlatform.calls if c[0] == "/registry/heartbeat"], timeout=30)
        assert beats, FakePlatform.calls
        reg = [c for c in FakePlatform.calls if c[0] == "/registry/register"]
        assert reg and reg[0][1] == "Bearer " + agent_token
        card = reg[0][2]
        assert card["id"] == wsid and card["url"] == "http://127.0.0.1:%d" % agent_port
        assert card["agent_card"]["name"] == "echo" and card["agent_card"]["skills"][0]["id"] == "echo"
        hb = beats[0]
        assert hb[1] == "Bearer " + agent_token and hb[2]["workspace_id"] == wsid
        assert isinstance(hb[2]["uptime_seconds"], int)
    finally:
        subprocess.run([IMAGECTL, "rm", name], env=env, capture_output=True, timeout=60)
        platform.shutdown()
