"""The provisioner and the lifecycle routes (issue 5) against a real Podman engine.

The engine module (engine_stack) builds the echo test agent from the loopback git server once,
runs it with host networking and watches it register; the plain `stack` (no engine, no
provisioner) checks the routes' status codes and the job queue deterministically.
"""
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import tarfile
import threading
import time
import urllib.parse

import pytest

from conftest import REPO, podman_available, start_engine_stack, stop_stack

ONLINE_TIMEOUT = 240  # a cold build on a slow 2-core CI machine
EXTRA_RUNTIMES = "echo,broken,nomirror,slow"


# --- helpers ------------------------------------------------------------------------------

class Engine:
    """Docker Engine API over the stack's unix socket (the same API the provisioner uses)."""

    def __init__(self, docker_host):
        assert docker_host.startswith("unix://"), docker_host
        self.path = docker_host[len("unix://"):]

    def request(self, method, path, timeout=30):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.path)
        conn = http.client.HTTPConnection("d", timeout=timeout)
        conn.sock = s
        try:
            conn.request(method, "/v1.41" + path)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def container(self, name):
        st, body = self.request("GET", "/containers/%s/json" % name)
        return json.loads(body) if st == 200 else None

    def volume_exists(self, name):
        return self.request("GET", "/volumes/%s" % name)[0] == 200

    def file(self, container, path):
        """(mode, bytes) of one file through GET /archive."""
        st, body = self.request("GET", "/containers/%s/archive?path=%s" % (
            container, urllib.parse.quote(path)))
        assert st == 200, body
        with tarfile.open(fileobj=io.BytesIO(body)) as t:
            m = t.getmembers()[0]
            return m.mode, t.extractfile(m).read()


def id12(wid):
    return wid[:12]


def create(s, name, runtime="echo", **kw):
    body = {"name": name, "runtime": runtime, "tier": 2}
    body.update(kw)
    r = s.admin("POST", "/workspaces", body=body)
    assert r.status == 201, r.body
    return r.json()["id"]


def status(s, wid):
    return s.psql("SELECT status FROM workspaces WHERE id = '%s'" % wid)


def wait_status(s, wid, want, timeout=ONLINE_TIMEOUT):
    want = (want,) if isinstance(want, str) else want
    got = s.wait_for(lambda: status(s, wid) in want, timeout=timeout, interval=0.3)
    if not got:
        pytest.fail("workspace %s is %s, not %s (last_sample_error=%r)\n%s" % (
            wid, status(s, wid), want,
            s.psql("SELECT last_sample_error FROM workspaces WHERE id = '%s'" % wid),
            s.log("moleculed.log")[-4000:]))


def events(s, wid):
    out = s.psql("SELECT event_type || ' ' || COALESCE(payload::text, '{}') FROM structure_events "
                 "WHERE workspace_id = '%s' ORDER BY created_at" % wid)
    return [(l.split(" ", 1)[0], json.loads(l.split(" ", 1)[1])) for l in out.splitlines() if l]


def jobs(s, wid):
    return s.psql("SELECT kind || ':' || status FROM provision_jobs WHERE workspace_id = '%s' "
                  "ORDER BY created_at" % wid).splitlines()


def wait_jobs_settled(s, wid, timeout=120):
    assert s.wait_for(lambda: s.psql(
        "SELECT count(*) FROM provision_jobs WHERE workspace_id = '%s' "
        "AND status IN ('queued', 'running')" % wid) == "0", timeout=timeout, interval=0.3), jobs(s, wid)


def all_logs(s):
    out = ""
    logdir = os.path.join(s.run_dir, "logs")
    for name in sorted(os.listdir(logdir)):
        p = os.path.join(logdir, name)
        if os.path.isfile(p):
            with open(p, errors="replace") as f:
                out += f.read()
    return out


# --- routes without an engine (deterministic: nothing consumes the jobs) --------------------

def plain(stack, name="lc"):
    r = stack.admin("POST", "/workspaces", body={"name": name})
    assert r.status == 201, r.body
    wid = r.json()["id"]
    # As if provisioned: online, the create's job finished.
    stack.psql("UPDATE provision_jobs SET status = 'done' WHERE workspace_id = '%s'" % wid)
    stack.psql("UPDATE workspaces SET status = 'online', url = 'http://127.0.0.1:9' WHERE id = '%s'" % wid)
    return wid


def test_routes_validate_and_404(stack):
    for verb in ("restart", "pause", "resume", "hibernate"):
        r = stack.admin("POST", "/workspaces/not-a-uuid/" + verb)
        assert r.status == 400 and r.json() == {"error": "invalid workspace ID"}, (verb, r.body)
        r = stack.admin("POST", "/workspaces/00000000-0000-4000-8000-000000000000/" + verb)
        assert r.status == 404, (verb, r.body)


def test_restart_sets_provisioning_and_coalesces_concurrent_requests(stack):
    wid = plain(stack, "lc-restart")
    results = []

    def hit():
        results.append(stack.admin("POST", "/workspaces/%s/restart" % wid))

    threads = [threading.Thread(target=hit) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status for r in results] == [200] * 12, [r.body for r in results]
    assert results[0].json() == {"config_dir": "", "reset_session": False, "status": "provisioning"}
    # Twelve racing restarts, one queued job: the row lock serialises them and they coalesce.
    assert jobs(stack, wid) == ["provision:done", "restart:queued"]
    assert status(stack, wid) == "provisioning"
    assert stack.psql("SELECT url IS NULL FROM workspaces WHERE id = '%s'" % wid) == "t"
    ev = [e for e in events(stack, wid) if e[0] == "WORKSPACE_PROVISIONING"]
    assert ev[-1][1] == {"name": "lc-restart", "runtime": "langgraph", "tier": 3}
    # The unique index: two running jobs of one workspace cannot exist.
    stack.psql("UPDATE provision_jobs SET status = 'running' WHERE workspace_id = '%s' AND kind = 'restart'" % wid)
    res = os.popen("psql '%s' -Atc \"INSERT INTO provision_jobs (workspace_id, kind, status) "
                   "VALUES ('%s', 'stop', 'running')\" 2>&1" % (stack.stack_env()["DATABASE_URL"], wid)).read()
    assert "provision_jobs_one_running" in res, res
    stack.psql("UPDATE provision_jobs SET status = 'done' WHERE workspace_id = '%s'" % wid)

    r = stack.admin("POST", "/workspaces/%s/restart?reset=true" % wid, body={"template": "x"})
    assert r.json() == {"config_dir": "x", "reset_session": True, "status": "provisioning"}
    assert stack.psql("SELECT payload->>'reset' FROM provision_jobs WHERE workspace_id = '%s' "
                      "AND status = 'queued'" % wid) == "true"
    # A restart that coalesces into the waiting job still gets its options applied.
    stack.psql("UPDATE provision_jobs SET payload = '{}' WHERE workspace_id = '%s' AND status = 'queued'" % wid)
    r = stack.admin("POST", "/workspaces/%s/restart" % wid, body={"reset": True, "template": "y"})
    assert r.json() == {"config_dir": "y", "reset_session": True, "status": "provisioning"}
    assert stack.psql("SELECT payload->>'reset' || ' ' || (payload->>'template') FROM provision_jobs "
                      "WHERE workspace_id = '%s' AND status = 'queued'" % wid) == "true y"
    assert len([j for j in jobs(stack, wid) if j.endswith(":queued")]) == 1


def test_pause_resume_subtree(stack):
    root = plain(stack, "lc-root")
    r = stack.admin("POST", "/workspaces", body={"name": "lc-kid", "parent_id": root})
    kid = r.json()["id"]
    stack.psql("UPDATE provision_jobs SET status = 'done' WHERE workspace_id = '%s'" % kid)
    r = stack.admin("POST", "/workspaces", body={"name": "lc-ext", "parent_id": kid, "external": True})
    ext = r.json()["id"]

    r = stack.admin("POST", "/workspaces/%s/pause" % root)
    assert r.status == 200, r.body
    assert r.body == b'{"paused_count":3,"status":"paused"}'
    for w in (root, kid, ext):
        assert status(stack, w) == "paused"
        assert events(stack, w)[-1][0] == "WORKSPACE_PAUSED"
    # Containers stop; an external agent has none.
    assert jobs(stack, root)[-1] == "stop:queued" and jobs(stack, kid)[-1] == "stop:queued"
    assert jobs(stack, ext) == []
    r = stack.admin("POST", "/workspaces/%s/pause" % root)
    assert r.status == 404 and r.json()["error"] == "workspace not found or already paused"
    # Restarting or resuming below a paused parent is refused.
    r = stack.admin("POST", "/workspaces/%s/restart" % kid)
    assert r.status == 409, r.body
    r = stack.admin("POST", "/workspaces/%s/resume" % kid)
    assert r.status == 409 and "parent" in r.json()["error"]

    r = stack.admin("POST", "/workspaces/%s/resume" % root)
    assert r.status == 200, r.body
    assert r.body == b'{"resumed_count":3,"status":"provisioning"}'
    assert status(stack, root) == "provisioning" and status(stack, kid) == "provisioning"
    assert status(stack, ext) == "offline"
    assert jobs(stack, kid)[-1] == "provision:queued"
    r = stack.admin("POST", "/workspaces/%s/resume" % root)
    assert r.status == 404


def test_hibernate_rules(stack):
    wid = plain(stack, "lc-hib")
    stack.psql("UPDATE workspaces SET active_tasks = 2 WHERE id = '%s'" % wid)
    r = stack.admin("POST", "/workspaces/%s/hibernate" % wid)
    assert r.status == 409
    assert r.json() == {"error": "workspace has active tasks; use ?force=true to terminate them",
                        "active_tasks": 2}
    r = stack.admin("POST", "/workspaces/%s/hibernate?force=true" % wid)
    assert r.status == 200 and r.json() == {"status": "hibernating"}
    # The enum admits hibernating (the reference's F2): the worker completes it to hibernated.
    assert status(stack, wid) == "hibernating"
    assert jobs(stack, wid)[-1] == "hibernate:queued"
    assert events(stack, wid)[-1] == ("WORKSPACE_HIBERNATING", {"name": "lc-hib", "tier": 3})
    r = stack.admin("POST", "/workspaces/%s/hibernate" % wid)
    assert r.status == 409, r.body
    r = stack.admin("POST", "/workspaces/%s/restart" % wid)
    assert r.status == 409, r.body


def test_lifecycle_routes_need_the_workspace_token(stack):
    wid = plain(stack, "lc-auth")
    stack.psql("INSERT INTO workspace_auth_tokens (workspace_id, token_hash, prefix) "
               "VALUES ('%s', decode(md5(random()::text), 'hex'), 'xxxxxxxx')" % wid)
    r = stack.request("POST", "/workspaces/%s/restart" % wid)
    assert r.status == 401, r.body


# --- the real engine ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def es():
    if not podman_available():
        pytest.skip("podman is not installed (tests/deps.sh installs it)")
    # Tier caps come from the configuration (reference names): not the 512 MiB / 1 CPU default.
    s = start_engine_stack({"MOLECULE_EXTRA_RUNTIMES": EXTRA_RUNTIMES, "TIER2_MEMORY_MB": "384",
                            "TIER2_CPU_SHARES": "512"})
    s.engine = Engine(s.stack_env()["DOCKER_HOST"])
    yield s
    problems = stop_stack(s)
    assert not problems, "\n".join(problems)


def test_echo_goes_online_built_once_then_cache_hit(es):
    wid = create(es, "e2e")
    wait_status(es, wid, "online")
    c = es.engine.container("ws-" + id12(wid))
    assert c is not None and c["State"]["Running"], c
    assert c["Config"]["Labels"]["molecule.platform.managed"] == "true"
    env = dict(e.split("=", 1) for e in c["Config"]["Env"])
    assert env["WORKSPACE_ID"] == wid and env["WORKSPACE_CONFIG_PATH"] == "/configs"
    assert env["PLATFORM_URL"] == "http://127.0.0.1:%d" % es.port and env["TIER"] == "2"
    assert env["AGENT_PORT"] == env["PORT"]
    assert c["HostConfig"]["Memory"] == 384 * 1024 * 1024
    assert c["HostConfig"]["NanoCpus"] == 500000000
    assert es.engine.volume_exists("ws-%s-configs" % id12(wid))
    # /configs was written before start: the token file is private and is the live token.
    mode, tok = es.engine.file("ws-" + id12(wid), "/configs/.auth_token")
    assert mode & 0o777 == 0o600
    mode, _ = es.engine.file("ws-" + id12(wid), "/configs/.platform_inbound_secret")
    assert mode & 0o777 == 0o600
    _, yaml = es.engine.file("ws-" + id12(wid), "/configs/config.yaml")
    assert b'name: "e2e"' in yaml and b'runtime: "echo"' in yaml
    r = es.request("GET", "/workspaces/%s/state" % wid, headers={"Authorization": "Bearer " + tok.decode()})
    assert r.status == 200, r.body
    assert es.psql("SELECT url FROM workspaces WHERE id = '%s'" % wid) == "http://127.0.0.1:" + env["PORT"]
    assert jobs(es, wid) == ["provision:done"]
    assert "images: building" in es.log("moleculed.log")

    # Same runtime again: no clone, no build.
    wid2 = create(es, "e2e-2")
    wait_status(es, wid2, "online", timeout=90)
    log = es.log("moleculed.log")
    assert log.count("images: building") == 1, log[-3000:]
    assert "images: cache hit" in log
    # No token in any log (the supervisor, every worker, nginx, git server, engine).
    text = all_logs(es)
    assert tok.decode() not in text
    lv = es.liveness()
    assert "provisioner" in lv and lv["provisioner"]["seconds_ago"] <= 10, lv


def test_restart_pause_resume_hibernate_delete(es):
    wid = create(es, "e2e-life")
    wait_status(es, wid, "online")
    name = "ws-" + id12(wid)
    first = es.engine.container(name)["Id"]

    r = es.admin("POST", "/workspaces/%s/restart" % wid)
    assert r.status == 200, r.body
    wait_jobs_settled(es, wid)
    wait_status(es, wid, "online", timeout=90)
    assert es.engine.container(name)["Id"] != first

    r = es.admin("POST", "/workspaces/%s/pause" % wid)
    assert r.status == 200, r.body
    wait_jobs_settled(es, wid)
    assert es.engine.container(name) is None
    assert status(es, wid) == "paused"
    assert es.engine.volume_exists("ws-%s-configs" % id12(wid))

    r = es.admin("POST", "/workspaces/%s/resume" % wid)
    assert r.status == 200, r.body
    wait_status(es, wid, "online", timeout=90)

    r = es.admin("POST", "/workspaces/%s/hibernate" % wid)
    assert r.status == 200, r.body
    wait_status(es, wid, "hibernated", timeout=60)
    assert es.engine.container(name) is None
    assert events(es, wid)[-1] == ("WORKSPACE_HIBERNATED", {"name": "e2e-life", "tier": 2})
    # A restart wakes a hibernated workspace (the reference's F3).
    r = es.admin("POST", "/workspaces/%s/restart" % wid)
    assert r.status == 200, r.body
    wait_status(es, wid, "online", timeout=90)

    r = es.admin("DELETE", "/workspaces/%s" % wid)
    assert r.status == 200, r.body
    wait_jobs_settled(es, wid)
    assert jobs(es, wid)[-1] == "remove:done"
    assert es.engine.container(name) is None
    assert not es.engine.volume_exists("ws-%s-configs" % id12(wid))


def test_secret_reaches_the_container_and_reserved_names_do_not(es):
    r = es.admin("PUT", "/settings/secrets", body={"key": "GLOBAL_ONE", "value": "g1"})
    assert r.status == 200, r.body
    r = es.admin("PUT", "/settings/secrets", body={"key": "TIER", "value": "9"})
    assert r.status == 200, r.body
    wid = create(es, "e2e-secret")
    r = es.admin("POST", "/workspaces/%s/secrets" % wid, body={"key": "GLOBAL_ONE", "value": "mine"})
    assert r.status == 200, r.body
    wait_status(es, wid, "online")
    wait_jobs_settled(es, wid)
    wait_status(es, wid, "online", timeout=90)
    env = dict(e.split("=", 1) for e in es.engine.container("ws-" + id12(wid))["Config"]["Env"])
    assert env["GLOBAL_ONE"] == "mine" and env["TIER"] == "2"
    for k in ("GLOBAL_ONE", "TIER"):
        es.admin("DELETE", "/settings/secrets/" + k)


@pytest.mark.parametrize("runtime,needle", [
    ("nosuch", 'unknown runtime "nosuch"'),
    ("nomirror", "not found on Gitea"),
    ("broken", "build"),
])
def test_fail_closed(es, runtime, needle):
    wid = create(es, "e2e-" + runtime, runtime=runtime)
    wait_status(es, wid, "failed", timeout=180)
    err = es.psql("SELECT last_sample_error FROM workspaces WHERE id = '%s'" % wid)
    assert needle in err, err
    ev = events(es, wid)[-1]
    assert ev == ("WORKSPACE_PROVISION_FAILED", {"error": err}), ev
    assert es.engine.container("ws-" + id12(wid)) is None
    assert "images: pulling" not in es.log("moleculed.log")


def test_a_later_job_never_overtakes_a_waiting_one(es):
    # A stop retried after an engine hiccup waits (not_before); a resume queued meanwhile must not
    # start the container first, or the old stop would remove the fresh one.
    wid = es.psql("INSERT INTO workspaces (name, status, runtime) VALUES ('order', 'paused', 'echo') "
                  "RETURNING id").splitlines()[0]
    es.psql("INSERT INTO provision_jobs (workspace_id, kind, not_before, created_at) VALUES "
            "('%s', 'stop', now() + interval '3 seconds', now() - interval '1 second')" % wid)
    es.psql("INSERT INTO provision_jobs (workspace_id, kind) VALUES ('%s', 'provision')" % wid)
    time.sleep(2)
    assert jobs(es, wid) == ["stop:queued", "provision:queued"], jobs(es, wid)
    wait_jobs_settled(es, wid)
    order = es.psql("SELECT kind FROM provision_jobs WHERE workspace_id = '%s' "
                    "ORDER BY updated_at" % wid).splitlines()
    assert order == ["stop", "provision"], order


def test_sigterm_mid_job_requeues_and_the_next_provisioner_finishes_it(es):
    # The slow template's build runs for seconds: SIGTERM arrives while the job is held.
    wid = create(es, "e2e-term", runtime="slow")
    held = lambda: es.psql("SELECT claimed_by FROM provision_jobs WHERE workspace_id = '%s' "
                           "AND status = 'running'" % wid)
    assert es.wait_for(lambda: held() != "", timeout=60, interval=0.2), jobs(es, wid)
    first = es.liveness()["provisioner"]["pid"]
    assert held().endswith(":%d" % first), held()
    os.kill(first, signal.SIGTERM)
    assert es.wait_for(lambda: "requeued (stopping)" in es.log("moleculed.log"), timeout=ONLINE_TIMEOUT)
    # The supervisor starts a new provisioner, which takes the job over and starts the container.
    assert es.wait_for(lambda: es.liveness()["provisioner"]["pid"] != first, timeout=30)
    wait_jobs_settled(es, wid, timeout=ONLINE_TIMEOUT)
    assert jobs(es, wid) == ["provision:done"], jobs(es, wid)
    assert es.psql("SELECT attempts FROM provision_jobs WHERE workspace_id = '%s'" % wid) == "1"  # a requeue does not count
    c = es.engine.container("ws-" + id12(wid))
    assert c is not None and c["State"]["Running"], c
    assert status(es, wid) == "provisioning"   # the slow image has no agent that registers
    es.admin("DELETE", "/workspaces/%s" % wid)


def test_gitea_down_fails_closed(es):
    pid = int(open(os.path.join(es.run_dir, "gitserver.pid")).read())
    os.kill(pid, signal.SIGTERM)
    assert es.wait_for(lambda: not os.path.exists("/proc/%d" % pid) or
                       open("/proc/%d/stat" % pid).read().split()[2] == "Z", timeout=10)
    wid = create(es, "e2e-nogitea")
    wait_status(es, wid, "failed", timeout=60)
    err = es.psql("SELECT last_sample_error FROM workspaces WHERE id = '%s'" % wid)
    assert "Gitea unreachable" in err, err


def test_engine_down_fails_with_the_engine_message(es):
    # Last: it stops the engine (the stack's down copes with an engine already gone).
    engine_dir = os.path.dirname(es.engine.path)
    res = subprocess.run([os.path.join(REPO, "tests", "engine.sh"), "stop", engine_dir],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    wid = create(es, "e2e-noengine")
    wait_status(es, wid, "failed", timeout=60)
    err = es.psql("SELECT last_sample_error FROM workspaces WHERE id = '%s'" % wid)
    assert "engine" in err and es.engine.path in err, err
    assert es.liveness()["provisioner"]["seconds_ago"] <= 10
