"""Supervision through the real stack: kill -9, fatal exit 2, SIGHUP rolling restart, SIGTERM."""
import os
import signal
import subprocess
import tempfile
import threading
import time

from conftest import BIN_DIR


def children_of(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


class Hammer(threading.Thread):
    """Sends /health in a loop and counts failures while something is being killed."""

    def __init__(self, stack):
        super().__init__(daemon=True)
        self.stack = stack
        self.ok = 0
        self.failed = []
        self.stop = False

    def run(self):
        while not self.stop:
            try:
                r = self.stack.get("/health", timeout=5)
                if r.status == 200:
                    self.ok += 1
                else:
                    self.failed.append(r.status)
            except Exception as e:  # a reset connection counts as a failure
                self.failed.append(repr(e))


def api_master_pid(stack):
    return stack.liveness()["api"]["pid"]


def test_killed_worker_is_replaced_and_counted(stack):
    subs = stack.liveness()
    victim = subs["api-worker-1"]["pid"]
    before = subs["api-worker-1"]["restarts"]
    assert comm(victim) == "api-worker-1"
    hammer = Hammer(stack)
    hammer.start()
    time.sleep(0.3)
    os.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()
    master = api_master_pid(stack)
    replaced = stack.wait_for(lambda: [p for p in children_of(master) if comm(p) == "api-worker-1" and p != victim],
                              timeout=5, interval=0.05)
    elapsed = time.monotonic() - t0
    time.sleep(0.5)
    hammer.stop = True
    hammer.join()
    assert replaced, "worker not replaced"
    assert elapsed < 2.0, elapsed
    # Only a request in flight on the killed worker may fail.
    assert len(hammer.failed) <= 1, hammer.failed
    assert hammer.ok > 10
    entry = stack.wait_for(lambda: (lambda e: e if e["restarts"] == before + 1 else None)(
        stack.liveness()["api-worker-1"]), timeout=5)
    assert entry, stack.liveness()["api-worker-1"]
    assert entry["pid"] == replaced[0]
    assert "api-worker-1: killed by signal 9" in stack.log("moleculed.log")
    metrics = stack.get("/metrics").body.decode()
    assert "molecule_api_worker_restarts_total 0" not in metrics


def test_killed_api_master_is_restarted_by_supervisor(stack):
    subs = stack.liveness()
    master = subs["api"]["pid"]
    before = subs["api"]["restarts"]
    workers = children_of(master)
    os.kill(master, signal.SIGKILL)
    # Its workers die with it (PR_SET_PDEATHSIG) and the supervisor starts a new master.
    gone = stack.wait_for(lambda: not any(comm(p).startswith("api-worker") for p in workers), timeout=10)
    assert gone, [comm(p) for p in workers]
    entry = stack.wait_for(lambda: (lambda s: s["api"] if s["api"]["pid"] != master
                                    and s["api"]["restarts"] == before + 1 else None)(
        stack.liveness() if stack.get("/health").status == 200 else {"api": {"pid": master, "restarts": before}}),
        timeout=15)
    assert entry, "api master not restarted"
    assert stack.get("/health").status == 200
    assert "api: killed by signal 9" in stack.log("moleculed.log")


def test_sighup_rolls_workers_without_failed_requests(stack):
    master = api_master_pid(stack)
    old = set(children_of(master))
    hammer = Hammer(stack)
    hammer.start()
    os.kill(stack.moleculed_pid(), signal.SIGHUP)
    rolled = stack.wait_for(lambda: (lambda now: now if len(now) == len(old) and not (now & old) else None)(
        set(children_of(master))), timeout=20, interval=0.1)
    time.sleep(0.3)
    hammer.stop = True
    hammer.join()
    assert rolled, (old, children_of(master))
    assert hammer.failed == [], hammer.failed
    assert api_master_pid(stack) == master
    assert "rolling restart done" in stack.log("moleculed.log")


def run_supervisor(env_extra, seconds):
    tmp = tempfile.mkdtemp(prefix="molecule-sup-")
    env = dict(os.environ)
    env.update({
        "MOLECULE_MIGRATE_ON_START": "0",
        "REDIS_URL": "unix://%s/no-redis.sock" % tmp,
        "MOLECULE_FCGI_SOCKET": "%s/api.sock" % tmp,
        "MOLECULE_API_WORKERS": "1",
        "MOLECULE_STOP_TIMEOUT": "3",
        "MOLECULE_ENV": "test",
        "ASAN_OPTIONS": "detect_leaks=0",
    })
    env.update(env_extra)
    log = open(os.path.join(tmp, "sup.log"), "w+")
    p = subprocess.Popen([os.path.join(BIN_DIR, "moleculed")], env=env, stdout=log, stderr=log)
    time.sleep(seconds)
    return p, log


def test_child_exiting_2_is_not_restarted():
    # A socket path in a folder that does not exist is a fatal start-up error of the API.
    p, log = run_supervisor({"MOLECULE_FCGI_SOCKET": "/nonexistent-dir/api.sock"}, 3.5)
    try:
        assert p.poll() is None, "supervisor must keep running"
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
    log.seek(0)
    text = log.read()
    assert text.count("api: started") == 1, text
    assert "api: exited with code 2 (fatal): not restarting" in text, text


def test_sigterm_drains_and_exits():
    p, log = run_supervisor({}, 2.0)
    try:
        kids = children_of(p.pid)
        assert kids, "api master not started"
        grandkids = [g for k in kids for g in children_of(k)]
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=15) == 0
        assert time.monotonic() - t0 < 10
        time.sleep(0.2)
        assert not [pid for pid in kids + grandkids if os.path.exists("/proc/%d" % pid)
                    and comm(pid) not in ("", "<defunct>")]
    finally:
        if p.poll() is None:
            p.kill()
    log.seek(0)
    text = log.read()
    assert "stopping every process" in text
    assert "api: exited with code 0 after stop request" in text, text


def test_supervisor_death_takes_children_along():
    p, log = run_supervisor({}, 2.0)
    kids = children_of(p.pid)
    grandkids = [g for k in kids for g in children_of(k)]
    assert kids and grandkids
    p.kill()
    p.wait()
    deadline = time.monotonic() + 10
    alive = kids + grandkids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if os.path.exists("/proc/%d/comm" % pid)
                 and open("/proc/%d/stat" % pid).read().split()[2] != "Z"]
        time.sleep(0.1)
    assert not alive, [comm(x) for x in alive]


def test_production_without_a_secrets_key_refuses_to_start():
    p, log = run_supervisor({"MOLECULE_ENV": "production", "SECRETS_ENCRYPTION_KEY": "",
                             "KMS_KEY_ARN": ""}, 1.0)
    try:
        assert p.wait(timeout=10) == 2
    finally:
        if p.poll() is None:
            p.kill()
    log.seek(0)
    text = log.read()
    assert "no secrets key source" in text, text
    assert "api: started" not in text


def test_a_malformed_secrets_key_is_a_clear_start_up_error():
    p, log = run_supervisor({"SECRETS_ENCRYPTION_KEY": "not-a-key"}, 1.0)
    try:
        assert p.wait(timeout=10) == 2
    finally:
        if p.poll() is None:
            p.kill()
    log.seek(0)
    text = log.read()
    assert "SECRETS_ENCRYPTION_KEY must be 32 bytes" in text, text
    assert "not-a-key" not in text
