"""The sweeper (workers/sweeper.c): liveness key expiry and catch-up, provision timeouts, the
container health sweep and the orphan sweep, against real Redis, PostgreSQL and a Podman engine.

Two stacks: `sw` has no container engine (DOCKER_HOST points nowhere, the provisioner is off), so
jobs the sweeper queues stay visible; `esw` has tests/engine.sh's engine and the provisioner.
Both run the sweeps every 1-2 s instead of 15/60 s.
"""
import http.client
import json
import os
import socket
import subprocess
import time
import uuid

import pytest

from conftest import ADMIN_TOKEN, podman_available, start_engine_stack, start_stack, stop_stack

SWEEP_ENV = {
    "MOLECULE_HEALTH_SWEEP_INTERVAL": "1",
    "MOLECULE_ORPHAN_SWEEP_INTERVAL": "2",
    "PROVISION_TIMEOUT_SECONDS": "5",
    "MOLECULE_AUTO_RESTART_PER_HOUR": "2",
}
PARTS = ("sweeper", "sweeper.expiry", "sweeper.health", "sweeper.timeout", "sweeper.orphans")


@pytest.fixture(scope="module")
def sw():
    env = dict(SWEEP_ENV, ADMIN_TOKEN=ADMIN_TOKEN, DOCKER_HOST="unix:///nonexistent/engine.sock")
    s = start_stack(env)
    yield s
    problems = stop_stack(s)
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def esw():
    if not podman_available():
        pytest.skip("podman is not installed (tests/deps.sh installs it)")
    # A real provision (image build included) must not run into the short timeout of `sw`.
    s = start_engine_stack(dict(SWEEP_ENV, MOLECULE_HEALTH_SWEEP_INTERVAL="2", PROVISION_TIMEOUT_SECONDS="600"))
    yield s
    problems = stop_stack(s)
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ helpers

def redis(stack, *args):
    url = stack.stack_env()["REDIS_URL"]
    assert url.startswith("unix://"), url
    res = subprocess.run(["redis-cli", "-s", url[len("unix://"):]] + [str(a) for a in args],
                         capture_output=True, text=True, timeout=10)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def new_row(stack, status="online", runtime="langgraph", heartbeat_age_s=0, updated_age_s=0):
    """A workspace row written directly, so no provisioner or agent is involved."""
    wid = str(uuid.uuid4())
    stack.psql("INSERT INTO workspaces (id, name, status, runtime, last_heartbeat_at, updated_at) "
               "VALUES ('%s', 'swp-%s', '%s', '%s', now() - interval '%d seconds', "
               "now() - interval '%d seconds')"
               % (wid, wid[:8], status, runtime, heartbeat_age_s, updated_age_s))
    return wid


def status(stack, wid):
    return stack.psql("SELECT status FROM workspaces WHERE id = '%s'" % wid)


def events(stack, wid, kind):
    out = stack.psql("SELECT payload::text FROM structure_events WHERE workspace_id = '%s' "
                     "AND event_type = '%s' ORDER BY created_at" % (wid, kind))
    return [json.loads(line) for line in out.splitlines() if line]


def sweeper_jobs(stack, wid):
    out = stack.psql("SELECT kind || ' ' || status || ' ' || payload::text FROM provision_jobs "
                     "WHERE workspace_id = '%s' AND payload->>'source' = 'sweeper' "
                     "ORDER BY created_at" % wid)
    return [line for line in out.splitlines() if line]


def expire_now(stack, wid, ms=200):
    """A liveness key that runs out at once: what a missed heartbeat looks like to Redis."""
    assert redis(stack, "SET", "ws:" + wid, "online", "PX", ms) == "OK"


def notify_flags(stack):
    lines = redis(stack, "CONFIG", "GET", "notify-keyspace-events").splitlines()
    return lines[1] if len(lines) > 1 else ""


def engine_sock(stack):
    host = stack.stack_env().get("DOCKER_HOST") or stack.env.get("DOCKER_HOST", "")
    assert host.startswith("unix://"), host
    return host[len("unix://"):]


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("d", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def engine(stack, method, path, body=None):
    """One Docker Engine API call on the stack's engine socket: (status, parsed body or text)."""
    c = UnixHTTPConnection(engine_sock(stack))
    try:
        headers = {}
        if body is not None:
            body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        c.request(method, "/v1.41" + path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        try:
            return r.status, json.loads(data) if data else None
        except ValueError:
            return r.status, data.decode(errors="replace")
    finally:
        c.close()


def run_container(stack, name, labels=None):
    code, body = engine(stack, "POST", "/containers/create?name=" + name, {
        "Image": "localhost/molecule-base:latest", "Cmd": ["sleep", "600"],
        "Labels": labels or {}, "HostConfig": {"NetworkMode": "host"}})
    assert code == 201, body
    code, body = engine(stack, "POST", "/containers/%s/start" % name)
    assert code in (204, 304), body


def container_exists(stack, name):
    return engine(stack, "GET", "/containers/%s/json" % name)[0] == 200


def container_gone(stack, name):
    # Podman answers 500 for a container in the middle of its removal: not gone yet.
    return engine(stack, "GET", "/containers/%s/json" % name)[0] == 404


def running(stack, name):
    code, body = engine(stack, "GET", "/containers/%s/json" % name)
    return code == 200 and body["State"]["Running"]


def volume_gone(stack, name):
    return engine(stack, "GET", "/volumes/%s" % name)[0] == 404


def id12():
    return uuid.uuid4().hex[:12]


# ------------------------------------------------------------------ liveness

def test_liveness_lists_every_sweeper_part(sw):
    subs = sw.wait_for(lambda: (lambda s: s if set(PARTS) <= set(s) else None)(sw.liveness()), timeout=10)
    assert subs, sw.liveness()
    for name in PARTS:
        assert subs[name]["seconds_ago"] <= 3, (name, subs[name])
    # Expiry notifications are on (tests/stack.sh sets Ex; the sweeper merges into whatever is set).
    flags = notify_flags(sw)
    assert "E" in flags and ("x" in flags or "A" in flags), flags


def test_expired_liveness_key_takes_external_workspace_offline(sw):
    wid = new_row(sw, runtime="external")
    expire_now(sw, wid)
    assert sw.wait_for(lambda: status(sw, wid) == "offline", timeout=5), status(sw, wid)
    assert events(sw, wid, "WORKSPACE_OFFLINE") == [{}]
    # external: the agent is not ours to restart
    assert sweeper_jobs(sw, wid) == []
    assert "workspace %s offline (liveness_expired)" % wid in sw.log("moleculed.log")


def test_expired_key_queues_one_restart_for_a_container_workspace(sw):
    wid = new_row(sw, runtime="langgraph")
    expire_now(sw, wid)
    assert sw.wait_for(lambda: status(sw, wid) == "offline", timeout=5), status(sw, wid)
    jobs = sw.wait_for(lambda: sweeper_jobs(sw, wid), timeout=5)
    assert len(jobs) == 1, jobs
    kind, st, payload = jobs[0].split(" ", 2)
    assert (kind, st) == ("restart", "queued")
    assert json.loads(payload) == {"reason": "liveness_expired", "source": "sweeper"}
    assert len(events(sw, wid, "WORKSPACE_OFFLINE")) == 1


def test_expiry_leaves_paused_provisioning_and_url_keys_alone(sw):
    paused = new_row(sw, status="paused")
    prov = new_row(sw, status="provisioning")
    online = new_row(sw, status="online")
    expire_now(sw, paused)
    expire_now(sw, prov)
    redis(sw, "SET", "ws:%s:url" % online, "http://x", "PX", 100)
    # A marker expiring after the others proves their notifications were handled first.
    marker = new_row(sw, runtime="external")
    time.sleep(0.3)
    expire_now(sw, marker, ms=100)
    assert sw.wait_for(lambda: status(sw, marker) == "offline", timeout=5)
    assert (status(sw, paused), status(sw, prov), status(sw, online)) == ("paused", "provisioning", "online")
    for wid in (paused, prov, online):
        assert events(sw, wid, "WORKSPACE_OFFLINE") == []
        assert sweeper_jobs(sw, wid) == []


def test_auto_restarts_are_capped_per_hour(sw):
    wid = new_row(sw, runtime="langgraph")
    for round_ in range(3):
        sw.psql("UPDATE provision_jobs SET status = 'done' WHERE workspace_id = '%s'" % wid)
        sw.psql("UPDATE workspaces SET status = 'online' WHERE id = '%s'" % wid)
        expire_now(sw, wid)
        assert sw.wait_for(lambda: len(events(sw, wid, "WORKSPACE_OFFLINE")) == round_ + 1, timeout=5)
    # MOLECULE_AUTO_RESTART_PER_HOUR=2: the third outage is recorded but not restarted.
    assert len(sweeper_jobs(sw, wid)) == 2
    assert status(sw, wid) == "offline"
    assert sw.wait_for(lambda: "workspace %s not restarted: 2 automatic restarts in the last hour" % wid
                       in sw.log("moleculed.log"), timeout=5)


def test_flushall_catch_up_marks_silent_workspaces_offline_and_keeps_live_ones(sw):
    silent = new_row(sw, runtime="external", heartbeat_age_s=3600, updated_age_s=3600)
    live = new_row(sw, runtime="external", heartbeat_age_s=5)
    for wid in (silent, live):
        redis(sw, "SET", "ws:" + wid, "online", "EX", 3600)
    time.sleep(1.5)
    # While the key is there, the key is the authority: an old heartbeat alone changes nothing.
    assert status(sw, silent) == "online"
    redis(sw, "FLUSHALL")
    t0 = time.monotonic()
    assert sw.wait_for(lambda: status(sw, silent) == "offline", timeout=10), status(sw, silent)
    # Within a few seconds, not at the 30 s stale pass: the wiped Redis was noticed.
    assert time.monotonic() - t0 < 6
    assert events(sw, silent, "WORKSPACE_OFFLINE") == [{}]
    assert "redis was wiped" in sw.log("moleculed.log")
    # A flush is not an expiry: the live one stays online until its key would have run out
    # (its next heartbeat SETs the key again), and nothing restarts it.
    time.sleep(1)
    assert status(sw, live) == "online"
    assert events(sw, live, "WORKSPACE_OFFLINE") == []
    assert redis(sw, "EXISTS", "ws:" + live) == "0"


def test_resubscribes_and_restores_notifications_after_losing_redis(sw):
    redis(sw, "CONFIG", "SET", "notify-keyspace-events", "")
    redis(sw, "CLIENT", "KILL", "TYPE", "pubsub")
    assert sw.wait_for(lambda: [line for line in sw.log("moleculed.log").splitlines()
                                if " sweeper[" in line and "lost the redis subscription" in line], timeout=5)
    flags = sw.wait_for(lambda: (lambda f: f if "E" in f and "x" in f else None)(notify_flags(sw)), timeout=5)
    assert flags, notify_flags(sw)
    wid = new_row(sw, runtime="external")
    assert sw.wait_for(lambda: redis(sw, "PUBSUB", "NUMSUB", "__keyevent@0__:expired").splitlines()[1] == "1",
                       timeout=5)
    expire_now(sw, wid)
    assert sw.wait_for(lambda: status(sw, wid) == "offline", timeout=5)


# ------------------------------------------------------------------ provision timeout

def test_provisioning_past_the_timeout_fails_with_an_event(sw):
    old = new_row(sw, status="provisioning", updated_age_s=3600)
    fresh = new_row(sw, status="provisioning")
    waiting = new_row(sw, status="awaiting_agent", runtime="external", updated_age_s=3600)
    assert sw.wait_for(lambda: status(sw, old) == "failed", timeout=5), status(sw, old)
    assert sw.psql("SELECT last_sample_error FROM workspaces WHERE id = '%s'" % old) == \
        "provisioning timed out after 5 s"
    assert events(sw, old, "WORKSPACE_PROVISION_FAILED") == [{
        "error": "provisioning timed out after 5 s", "timeout_secs": 5, "runtime": "langgraph",
        "source": "provision_timeout_sweep"}]
    assert status(sw, fresh) == "provisioning"
    # PROVISION_TIMEOUT_SECONDS=5: the fresh one goes too, once it is 5 s old.
    assert sw.wait_for(lambda: status(sw, fresh) == "failed", timeout=10)
    # An external workspace waiting for its agent is never timed out.
    assert status(sw, waiting) == "awaiting_agent"


def test_a_timeout_backlog_drains_without_waiting_a_period_per_batch(sw):
    # 250 rows are three batches of 100. A full batch asks for the next pass at once; the
    # period (1 s here) used to overwrite that, spreading the backlog over 2 s or more.
    tag = uuid.uuid4().hex[:8]
    sw.psql("INSERT INTO workspaces (name, status, runtime, updated_at) SELECT 'swp-bl-%s-' || g, "
            "'provisioning', 'langgraph', now() - interval '1 hour' FROM generate_series(1, 250) g" % tag)
    left = "SELECT count(*) FROM workspaces WHERE name LIKE 'swp-bl-%s-%%' AND status = 'provisioning'" % tag
    assert sw.wait_for(lambda: sw.psql(left) == "0", timeout=10), sw.psql(left)
    spread = sw.psql("SELECT extract(epoch FROM max(updated_at) - min(updated_at)) FROM workspaces "
                     "WHERE name LIKE 'swp-bl-%s-%%'" % tag)
    assert float(spread) < 0.9, spread


# ------------------------------------------------------------------ health without an engine

def test_engine_errors_never_take_workspaces_offline(sw):
    wid = new_row(sw, runtime="langgraph")
    redis(sw, "SET", "ws:" + wid, "online", "EX", 600)
    assert sw.wait_for(lambda: "health sweep stopped: engine" in sw.log("moleculed.log") or
                       "health sweep skipped" in sw.log("moleculed.log"), timeout=10)
    time.sleep(3)   # three more health sweeps (every 1 s), each failing on the engine
    assert status(sw, wid) == "online"
    assert events(sw, wid, "WORKSPACE_OFFLINE") == [] and sweeper_jobs(sw, wid) == []
    assert sw.liveness()["sweeper.health"]["seconds_ago"] <= 3


# ------------------------------------------------------------------ with an engine

def test_orphan_containers_and_volumes_are_removed(esw):
    orphan = "ws-" + id12()                          # managed, no workspace row at all
    removed_ws = new_row(esw, status="removed")
    removed = "ws-" + removed_ws[:12]                 # managed, its workspace was deleted
    live_ws = new_row(esw, status="online", runtime="external")
    live = "ws-" + live_ws[:12]                       # managed, live row: left alone
    unmanaged = "ws-" + id12()                       # no label: not ours
    # The volume first, as the provisioner does: it goes with its container.
    code, body = engine(esw, "POST", "/volumes/create", {
        "Name": orphan + "-configs", "Labels": {"molecule.platform.managed": "true"}})
    assert code == 201, body
    # Volumes left without any container (a failed provision): the dead one goes, the live one stays.
    lonely = "ws-" + id12() + "-configs"
    for vol in (lonely, live + "-configs"):
        code, body = engine(esw, "POST", "/volumes/create", {
            "Name": vol, "Labels": {"molecule.platform.managed": "true"}})
        assert code == 201, body
    for name in (orphan, removed, live):
        run_container(esw, name, {"molecule.platform.managed": "true"})
    run_container(esw, unmanaged)
    try:
        assert esw.wait_for(lambda: container_gone(esw, orphan) and container_gone(esw, removed), timeout=15)
        assert esw.wait_for(lambda: volume_gone(esw, orphan + "-configs"), timeout=5)
        assert esw.wait_for(lambda: volume_gone(esw, lonely), timeout=5)
        assert "removed orphan container %s" % orphan in esw.log("moleculed.log")
        time.sleep(2.5)   # one more orphan sweep
        assert container_exists(esw, live) and container_exists(esw, unmanaged)
        assert not volume_gone(esw, live + "-configs")
    finally:
        engine(esw, "DELETE", "/volumes/%s-configs?force=1" % live)
        for name in (live, unmanaged):
            engine(esw, "DELETE", "/containers/%s?force=1" % name)
    assert esw.liveness()["sweeper.orphans"]["seconds_ago"] <= 3


def test_stopped_container_takes_workspace_offline_and_queues_restart(esw):
    # A container-backed workspace with a running container of its own making; nobody heartbeats
    # it, so its key is set by hand. The provisioner's restart will fail (langgraph is not
    # built here): only the sweeper's part is checked.
    wid = new_row(esw, runtime="langgraph")
    name = "ws-" + wid[:12]
    redis(esw, "SET", "ws:" + wid, "online", "EX", 600)
    redis(esw, "SET", "ws:%s:url" % wid, "http://127.0.0.1:1", "EX", 600)
    run_container(esw, name, {"molecule.platform.managed": "true"})
    try:
        time.sleep(4.5)   # two health sweeps (every 2 s) with the container running
        assert status(esw, wid) == "online"
        code, body = engine(esw, "POST", "/containers/%s/kill?signal=KILL" % name)
        assert code == 204, body
        t0 = time.monotonic()
        assert esw.wait_for(lambda: events(esw, wid, "WORKSPACE_OFFLINE"), timeout=10)
        assert time.monotonic() - t0 < 6
        jobs = esw.wait_for(lambda: sweeper_jobs(esw, wid), timeout=5)
        assert len(jobs) == 1 and jobs[0].startswith("restart ")
        assert json.loads(jobs[0].split(" ", 2)[2])["reason"] == "container_stopped"
        # The container is gone: its cached URL is dead.
        assert redis(esw, "EXISTS", "ws:%s:url" % wid) == "0"
    finally:
        engine(esw, "DELETE", "/containers/%s?force=1" % name)


def test_killed_agent_container_goes_offline_and_comes_back_online(esw):
    r = esw.admin("POST", "/workspaces", body={"name": "swp-e2e", "runtime": "echo"})
    assert r.status == 201, r.body
    wid = r.json()["id"]
    name = "ws-" + wid[:12]
    esw.wait_for(lambda: status(esw, wid) in ("online", "failed"), timeout=90, interval=0.5)
    if status(esw, wid) != "online":
        pytest.skip("the echo workspace did not come online (provisioner/images not ready): %s, %s"
                    % (status(esw, wid), esw.psql("SELECT last_sample_error FROM workspaces WHERE id = '%s'"
                                                   % wid)))
    code, body = engine(esw, "POST", "/containers/%s/kill?signal=KILL" % name)
    assert code == 204, body
    t0 = time.monotonic()
    assert esw.wait_for(lambda: events(esw, wid, "WORKSPACE_OFFLINE"), timeout=10, interval=0.2)
    assert time.monotonic() - t0 < 6   # health sweep every 2 s
    assert esw.wait_for(lambda: sweeper_jobs(esw, wid), timeout=5)
    t_offline = time.monotonic() - t0
    assert esw.wait_for(lambda: status(esw, wid) == "online" and running(esw, name),
                        timeout=90, interval=0.5), status(esw, wid)
    print("kill -> offline %.1f s, kill -> online again %.1f s" % (t_offline, time.monotonic() - t0))
    kinds = esw.psql("SELECT event_type FROM structure_events WHERE workspace_id = '%s' "
                     "ORDER BY created_at" % wid).splitlines()
    after = kinds[kinds.index("WORKSPACE_OFFLINE"):]
    assert after[:2] == ["WORKSPACE_OFFLINE", "WORKSPACE_PROVISIONING"] and "WORKSPACE_ONLINE" in after, kinds
    r = esw.admin("DELETE", "/workspaces/%s" % wid)
    assert r.status == 200, r.body
