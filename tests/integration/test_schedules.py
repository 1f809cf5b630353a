"""Schedules (api.md §4.13) and the scheduler worker: CRUD, validation, run, history, health,
claiming due rows exactly once (kill -9, two schedulers, a broken neighbour), end to end with an
echo agent through the dispatcher (cron_run activity + CRON_EXECUTED).

Cron has minute resolution, so tests make a schedule due by moving next_run_at into the past.
"""
import datetime
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import BIN_DIR, start_stack, stop_stack

ADMIN = "sched-admin-token-0123456789abcdef"
TS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$"


@pytest.fixture(scope="module")
def st():
    s = start_stack({"ADMIN_TOKEN": ADMIN, "SCHEDULER_TICK_MS": "200", "SCHEDULER_BATCH": "50",
                     "A2A_ALLOW_LOOPBACK": "1", "DISPATCHER_POLL_MS": "200"})
    yield s
    problems = stop_stack(s)
    assert not problems, "\n".join(problems)


class EchoAgent:
    """A loopback A2A agent answering 'echo: <text>' and recording message ids."""

    def __init__(self):
        self.ids = []
        agent = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                msg = body["params"]["message"]
                agent.ids.append(msg.get("messageId"))
                out = json.dumps({"jsonrpc": "2.0", "id": body.get("id"), "result": {
                    "kind": "message", "role": "agent", "messageId": str(uuid.uuid4()),
                    "parts": [{"kind": "text", "text": "echo: " + msg["parts"][0]["text"]}]}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def new_ws(s, parent=None, url=None, status="online"):
    # No URL by default: the dispatcher keeps those fires queued, so queue rows stay countable.
    return s.psql("INSERT INTO workspaces (name, status, parent_id, url) VALUES ('s-%s', '%s', %s, %s) "
                  "RETURNING id" % (uuid.uuid4().hex[:8], status, "'%s'" % parent if parent else "NULL",
                                    "'%s'" % url if url else "NULL")).splitlines()[0]


def create(s, ws, **body):
    body.setdefault("cron_expr", "*/5 * * * *")
    body.setdefault("prompt", "do the thing")
    return s.admin("POST", "/workspaces/%s/schedules" % ws, body=body)


def make(s, ws, **body):
    r = create(s, ws, **body)
    assert r.status == 201, r.body
    return r.json()["id"]


def bulk(s, ws, n, expr="0 0 1 1 *"):
    """n schedules straight into the table, due now."""
    s.psql("INSERT INTO workspace_schedules (workspace_id, name, cron_expr, prompt, next_run_at) "
           "SELECT '%s', 'bulk-' || g, '%s', 'bulk ' || g, now() - interval '1 second' "
           "FROM generate_series(1, %d) g" % (ws, expr, n))
    return s.psql("SELECT id FROM workspace_schedules WHERE workspace_id = '%s'" % ws).split()


def make_due(s, ws):
    s.psql("UPDATE workspace_schedules SET next_run_at = now() - interval '1 second' "
           "WHERE workspace_id = '%s' AND enabled" % ws)


def not_due(s, ws):
    return s.psql("SELECT count(*) FROM workspace_schedules WHERE workspace_id = '%s' AND enabled "
                  "AND (next_run_at IS NULL OR next_run_at <= now())" % ws) == "0"


def fires(s, ws):
    """{schedule_id: number of queued fires} and the count of duplicated message ids."""
    rows = s.psql("SELECT ref_id, count(*) FROM a2a_queue WHERE workspace_id = '%s' AND kind = 'cron' "
                  "GROUP BY ref_id" % ws)
    dup = s.psql("SELECT count(*) FROM (SELECT message_id FROM a2a_queue WHERE workspace_id = '%s' "
                 "GROUP BY message_id HAVING count(*) > 1) d" % ws)
    out = {}
    for line in rows.splitlines():
        k, v = line.split("|")
        out[k] = int(v)
    return out, int(dup)


# --- routes -------------------------------------------------------------------------------

def test_create_list_patch_delete(st):
    ws = new_ws(st)
    r = create(st, ws, name="nightly", cron_expr="30 2 * * *", timezone="America/New_York",
               prompt="line one\r\nline two\r\n")
    assert r.status == 201, r.body
    body = r.json()
    assert sorted(body) == ["id", "next_run_at", "status"] and body["status"] == "created"
    sid = body["id"]
    r = st.admin("GET", "/workspaces/%s/schedules" % ws)
    assert r.status == 200
    [row] = r.json()
    assert list(row) == ["id", "workspace_id", "name", "cron_expr", "timezone", "prompt", "enabled",
                         "last_run_at", "next_run_at", "run_count", "last_status", "last_error",
                         "source", "created_at", "updated_at"]
    assert row["prompt"] == "line one\nline two\n"
    assert (row["name"], row["timezone"], row["enabled"], row["run_count"], row["source"],
            row["last_run_at"]) == ("nightly", "America/New_York", True, 0, "runtime", None)
    # 02:30 New York is 06:30 or 07:30 UTC (or the 07:00Z end of a spring-forward gap).
    assert row["next_run_at"][11:16] in ("06:30", "07:30", "07:00"), row
    assert b'"enabled":true' in r.body and b": " not in r.body

    r = st.admin("PATCH", "/workspaces/%s/schedules/%s" % (ws, sid),
                 body={"cron_expr": "0 12 * * *", "timezone": "UTC", "enabled": False, "prompt": "a\rb"})
    assert (r.status, r.json()) == (200, {"status": "updated"})
    row = st.admin("GET", "/workspaces/%s/schedules" % ws).json()[0]
    assert (row["cron_expr"], row["enabled"], row["prompt"]) == ("0 12 * * *", False, "ab")
    assert row["next_run_at"][11:19] == "12:00:00"

    r = st.admin("PATCH", "/workspaces/%s/schedules/%s" % (ws, uuid.uuid4()), body={"name": "x"})
    assert (r.status, r.json()) == (404, {"error": "schedule not found"})
    r = st.admin("DELETE", "/workspaces/%s/schedules/%s" % (ws, sid))
    assert (r.status, r.json()) == (200, {"status": "deleted"})
    r = st.admin("DELETE", "/workspaces/%s/schedules/%s" % (ws, sid))
    assert (r.status, r.json()) == (404, {"error": "schedule not found"})
    assert st.admin("GET", "/workspaces/%s/schedules" % ws).json() == []
    events = st.psql("SELECT event_type FROM structure_events WHERE workspace_id = '%s' "
                     "AND event_type LIKE 'SCHEDULE_%%' ORDER BY created_at" % ws).split()
    assert events == ["SCHEDULE_CREATED", "SCHEDULE_UPDATED", "SCHEDULE_DELETED"]


@pytest.mark.parametrize("body,msg", [
    ({"prompt": "x"}, "cron_expr and prompt are required"),
    ({"cron_expr": "* * * * *"}, "cron_expr and prompt are required"),
    ({"cron_expr": "* * * * *", "prompt": ""}, "cron_expr and prompt are required"),
    ({"cron_expr": "61 * * * *", "prompt": "x"}, "invalid cron expression: minute field: 61 out of range 0-59"),
    ({"cron_expr": "* * * *", "prompt": "x"},
     "invalid cron expression: expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
    ({"cron_expr": "0 0 30 2 *", "prompt": "x"}, "invalid cron expression: it never fires"),
    ({"cron_expr": "@reboot", "prompt": "x"}, "invalid cron expression: unsupported descriptor @reboot "
     "(use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)"),
    ({"cron_expr": "* * * * *", "prompt": "x", "timezone": "Mars/Base"}, "invalid timezone: Mars/Base"),
    ({"cron_expr": "* * * * *", "prompt": "x", "timezone": "../../etc/passwd"},
     "invalid timezone: ../../etc/passwd"),
    ({"cron_expr": "* * * * *", "prompt": "x", "enabled": "yes"}, "enabled must be a boolean"),
    ({"cron_expr": 5, "prompt": "x"}, "cron_expr must be a string"),
])
def test_create_validation(st, body, msg):
    ws = new_ws(st)
    r = st.admin("POST", "/workspaces/%s/schedules" % ws, body=body)
    assert (r.status, r.json()) == (400, {"error": msg})


def test_create_other_errors(st):
    ws = new_ws(st)
    assert create(st, ws, cron_expr="@daily").status == 201
    assert create(st, ws, cron_expr="@hourly").status == 201   # unnamed: distinct default names
    make(st, ws, name="dup")
    r = create(st, ws, name="dup")
    assert (r.status, r.json()) == (409, {"error": "a schedule with this name already exists"})
    r = create(st, str(uuid.uuid4()))
    assert (r.status, r.json()) == (404, {"error": "workspace not found"})
    sid = make(st, ws, name="p")
    r = st.admin("PATCH", "/workspaces/%s/schedules/%s" % (ws, sid), body={"cron_expr": "1-0 * * * *"})
    assert (r.status, r.json()) == (400, {"error": "invalid cron expression: minute field: range 1-0 is reversed"})


@pytest.mark.parametrize("raw", ["{bad", "[1]", "", "null"])
def test_unusable_bodies_get_the_reference_messages(st, raw):
    # The reference's bind errors: POST says what it requires, PATCH says "invalid JSON".
    ws = new_ws(st)
    sid = make(st, ws)
    hdr = {"Content-Type": "application/json"}
    r = st.admin("POST", "/workspaces/%s/schedules" % ws, body=raw, headers=hdr)
    assert (r.status, r.json()) == (400, {"error": "cron_expr and prompt are required"})
    r = st.admin("PATCH", "/workspaces/%s/schedules/%s" % (ws, sid), body=raw, headers=hdr)
    assert (r.status, r.json()) == (400, {"error": "invalid JSON"})


def test_routes_need_the_workspace_token(st):
    ws = new_ws(st)
    tok = st.admin("POST", "/workspaces/%s/tokens" % ws).json()["auth_token"]
    r = st.request("GET", "/workspaces/%s/schedules" % ws)
    assert r.status == 401
    r = st.request("GET", "/workspaces/%s/schedules" % ws, headers={"Authorization": "Bearer " + tok})
    assert r.status == 200


def test_run_returns_prompt_and_dispatch_queues(st):
    ws = new_ws(st)
    sid = make(st, ws, prompt="hello\r\nthere")
    r = st.admin("POST", "/workspaces/%s/schedules/%s/run" % (ws, sid))
    assert (r.status, r.json()) == (200, {"status": "fired", "workspace_id": ws, "prompt": "hello\nthere"})
    assert fires(st, ws) == ({}, 0)          # nothing dispatched
    r = st.admin("POST", "/workspaces/%s/schedules/%s/run?dispatch=true" % (ws, sid))
    assert r.status == 202, r.body
    assert r.json()["status"] == "queued"
    assert fires(st, ws) == ({sid: 1}, 0)
    body = json.loads(st.psql("SELECT body FROM a2a_queue WHERE id = '%s'" % r.json()["queue_id"]))
    assert body["params"]["message"]["parts"][0]["text"] == "hello\nthere"
    r = st.admin("POST", "/workspaces/%s/schedules/%s/run" % (ws, uuid.uuid4()))
    assert r.status == 404


def test_history_and_health(st):
    parent = new_ws(st)
    a, b = new_ws(st, parent), new_ws(st, parent)
    stranger = new_ws(st)
    sid = make(st, a, name="h")
    # Two recorded fires (as the dispatcher records them), newest first in the history.
    st.psql("INSERT INTO activity_logs (workspace_id, activity_type, method, status, duration_ms, "
            "request_body, created_at) VALUES ('%s', 'cron_run', 'cron', 'ok', 12, "
            "jsonb_build_object('schedule_id', '%s', 'prompt', 'p1'), now() - interval '1 minute'), "
            "('%s', 'cron_run', 'cron', 'error', 7, jsonb_build_object('schedule_id', '%s', 'prompt', 'p2'), now())"
            % (a, sid, a, sid))
    r = st.admin("GET", "/workspaces/%s/schedules/%s/history" % (a, sid))
    assert r.status == 200
    h = r.json()
    assert [x["status"] for x in h] == ["error", "ok"]
    assert list(h[0]) == ["timestamp", "duration_ms", "status", "error_detail", "request"]
    assert h[0]["request"]["prompt"] == "p2" and h[1]["duration_ms"] == 12

    path = "/workspaces/%s/schedules/health" % a
    r = st.request("GET", path)
    assert (r.status, r.json()) == (401, {"error": "X-Workspace-ID header required"})
    r = st.request("GET", path, headers={"X-Workspace-ID": stranger})
    assert (r.status, r.json()) == (403, {"error": "access denied"})
    for caller in (a, b, parent):
        r = st.request("GET", path, headers={"X-Workspace-ID": caller})
        assert r.status == 200, r.body
        [row] = r.json()
        assert list(row) == ["id", "name", "enabled", "last_run_at", "next_run_at", "run_count",
                             "last_status", "last_error"]
    # A caller with tokens must present its own.
    tok = st.admin("POST", "/workspaces/%s/tokens" % b).json()["auth_token"]
    r = st.request("GET", path, headers={"X-Workspace-ID": b})
    assert (r.status, r.json()) == (401, {"error": "missing caller auth token"})
    r = st.request("GET", path, headers={"X-Workspace-ID": b, "Authorization": "Bearer " + tok})
    assert r.status == 200

    st.psql("UPDATE workspace_schedules SET last_run_at = now() - interval '3 days' WHERE id = '%s'" % sid)
    make(st, a, name="never", cron_expr="@hourly")
    r = st.admin("GET", "/admin/schedules/health")
    assert r.status == 200
    mine = {x["schedule_name"]: x for x in r.json() if x["workspace_id"] == a}
    assert mine["h"]["status"] == "stale" and mine["h"]["stale_threshold_seconds"] == 600
    assert mine["never"]["status"] == "never_run" and mine["never"]["stale_threshold_seconds"] == 7200
    assert sorted(mine["h"]) == sorted(["workspace_id", "workspace_name", "schedule_id", "schedule_name",
                                        "cron_expr", "last_run_at", "expected_next_run", "status",
                                        "stale_threshold_seconds"])
    assert st.request("GET", "/admin/schedules/health").status == 401


# --- the scheduler worker -----------------------------------------------------------------

def test_due_schedule_fires_exactly_once_per_fire(st):
    ws = new_ws(st)
    sid = make(st, ws, cron_expr="@yearly")
    for rounds in (1, 2, 3):
        make_due(st, ws)
        assert st.wait_for(lambda: fires(st, ws)[0].get(sid) == rounds, timeout=20), fires(st, ws)
        assert st.wait_for(lambda: not_due(st, ws), timeout=10)
        time.sleep(1.1)    # the next forced fire time is a different second: a different messageId
    assert fires(st, ws) == ({sid: 3}, 0)
    mids = st.psql("SELECT message_id FROM a2a_queue WHERE ref_id = '%s'" % sid).split()
    assert all(m.startswith("cron-%s-" % sid) for m in mids)
    nxt = st.psql("SELECT extract(month FROM next_run_at AT TIME ZONE 'UTC')::int || '-' || "
                  "extract(day FROM next_run_at AT TIME ZONE 'UTC')::int FROM workspace_schedules "
                  "WHERE id = '%s'" % sid)
    assert nxt == "1-1"
    assert st.liveness()["scheduler"]["seconds_ago"] <= 5


def test_broken_row_does_not_affect_neighbours(st):
    ws = new_ws(st)
    good = make(st, ws, name="good", cron_expr="@daily")
    bad = st.psql("INSERT INTO workspace_schedules (workspace_id, name, cron_expr, prompt, next_run_at) "
                  "VALUES ('%s', 'bad', '99 * * * *', 'x', now() - interval '1 second') RETURNING id" % ws
                  ).splitlines()[0]
    badtz = st.psql("INSERT INTO workspace_schedules (workspace_id, name, cron_expr, timezone, prompt, "
                    "next_run_at) VALUES ('%s', 'badtz', '* * * * *', 'No/Where', 'x', "
                    "now() - interval '1 second') RETURNING id" % ws).splitlines()[0]
    # The quoted step is cut at 16 bytes, which would split an 'é': last_error must stay UTF-8.
    badutf8 = st.psql("INSERT INTO workspace_schedules (workspace_id, name, cron_expr, prompt, next_run_at) "
                      "VALUES ('%s', 'badutf8', '*/a%s * * * *', 'x', now() - interval '1 second') "
                      "RETURNING id" % (ws, "\u00e9" * 9)).splitlines()[0]
    make_due(st, ws)
    assert st.wait_for(lambda: fires(st, ws)[0].get(good) == 1, timeout=20)
    assert st.wait_for(lambda: not_due(st, ws), timeout=10)
    rows = st.psql("SELECT name, enabled, last_status, last_error FROM workspace_schedules "
                   "WHERE workspace_id = '%s' ORDER BY name" % ws).splitlines()
    assert rows == ["bad|f|error|invalid cron expression: minute field: 99 out of range 0-59",
                    "badtz|f|error|invalid timezone: No/Where",
                    "badutf8|f|error|invalid cron expression: minute field: step 'a%s' is not a number"
                    % ("\u00e9" * 7), "good|t||"]
    skipped = st.psql("SELECT payload->>'schedule_id' FROM structure_events WHERE workspace_id = '%s' "
                      "AND event_type = 'CRON_SKIPPED'" % ws).split()
    assert sorted(skipped) == sorted([bad, badtz, badutf8])
    assert fires(st, ws) == ({good: 1}, 0)


def test_a_row_that_cannot_be_disabled_does_not_block_its_neighbours(st):
    # A trigger refuses to disable one broken row: its savepoint is rolled back, the row is
    # pushed back an hour, and the rest of the batch still commits (every tick, not never).
    ws = new_ws(st)
    tag = uuid.uuid4().hex[:8]
    fn = "refuse_disable_" + tag
    st.psql("CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'refused by the test'; END $$" % fn)
    st.psql("CREATE TRIGGER %s BEFORE UPDATE ON workspace_schedules FOR EACH ROW "
            "WHEN (NEW.name = 'stuck-%s' AND NOT NEW.enabled) EXECUTE FUNCTION %s()" % (fn, tag, fn))
    try:
        good = make(st, ws, name="good", cron_expr="@daily")
        stuck = st.psql("INSERT INTO workspace_schedules (workspace_id, name, cron_expr, prompt, next_run_at) "
                        "VALUES ('%s', 'stuck-%s', '99 * * * *', 'x', now() - interval '1 second') "
                        "RETURNING id" % (ws, tag)).splitlines()[0]
        make_due(st, ws)
        assert st.wait_for(lambda: fires(st, ws)[0].get(good) == 1, timeout=20), fires(st, ws)
        assert st.wait_for(lambda: not_due(st, ws), timeout=10)
        row = st.psql("SELECT enabled, next_run_at > now() + interval '55 minutes', "
                      "next_run_at <= now() + interval '1 hour', last_fire_at IS NULL "
                      "FROM workspace_schedules WHERE id = '%s'" % stuck)
        assert row == "t|t|t|t"
        assert st.psql("SELECT count(*) FROM structure_events WHERE workspace_id = '%s' "
                       "AND event_type = 'CRON_SKIPPED'" % ws) == "0"
        assert fires(st, ws) == ({good: 1}, 0)
    finally:
        st.psql("DROP TRIGGER %s ON workspace_schedules" % fn)
        st.psql("DROP FUNCTION %s()" % fn)


def test_a_fire_late_in_its_second_is_not_skipped(st):
    # now() at hh:mm:59.6 used to round to the next minute, so "* * * * *" skipped that minute.
    # Every tick's now() is its a2a_queue rows' created_at: the next fire is the minute after it.
    ws = new_ws(st)
    sid = make(st, ws, cron_expr="* * * * *", enabled=False)
    for _ in range(2):
        now = datetime.datetime.now()
        wait = (59.55 - now.second - now.microsecond / 1e6) % 60
        time.sleep(wait)
        st.psql("UPDATE workspace_schedules SET enabled = true, next_run_at = now() - interval '1 second' "
                "WHERE id = '%s'" % sid)
        assert st.wait_for(lambda: not_due(st, ws), timeout=10)
        st.psql("UPDATE workspace_schedules SET enabled = false WHERE id = '%s'" % sid)
        got = st.psql("SELECT extract(epoch FROM s.next_run_at - date_trunc('minute', q.created_at))::int, "
                      "extract(second FROM q.created_at) >= 59.5 FROM workspace_schedules s JOIN a2a_queue q "
                      "ON q.ref_id::text = s.id::text WHERE s.id = '%s' ORDER BY q.created_at DESC LIMIT 1" % sid)
        gap, late = got.split("|")
        assert gap == "60", got
        if late == "t":
            break       # the tick did run in the last half second of a minute
        time.sleep(1)


def sched_pid(st):
    return st.liveness()["scheduler"]["pid"]


def test_kill_9_mid_tick_loses_and_duplicates_nothing(st):
    ws = new_ws(st)
    ids = bulk(st, ws, 3000)
    before = st.liveness()["scheduler"]["restarts"]
    kills = 0
    for rounds in (1, 2):
        if rounds > 1:
            time.sleep(1.1)
            make_due(st, ws)
        # Kill it while the batches of this round are being claimed (50 per transaction).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            n = sum(fires(st, ws)[0].values())
            if n > (rounds - 1) * len(ids):
                break
            time.sleep(0.02)
        pid = sched_pid(st)
        os.kill(pid, signal.SIGKILL)
        kills += 1
        assert st.wait_for(lambda: st.liveness()["scheduler"]["pid"] != pid, timeout=20)
        assert st.wait_for(lambda: not_due(st, ws), timeout=60)
        counts, dup = fires(st, ws)
        assert dup == 0
        assert len(counts) == len(ids) and set(counts.values()) == {rounds}, \
            "lost or duplicated fires: %r" % sorted(set(counts.values()))
    assert st.liveness()["scheduler"]["restarts"] >= before + kills


def test_two_schedulers_never_double_fire(st):
    ws = new_ws(st)
    ids = bulk(st, ws, 1500)
    env = dict(os.environ)
    env.update(st.stack_env())
    env.update({"SCHEDULER_TICK_MS": "50", "SCHEDULER_BATCH": "20", "MOLECULE_ENV": "test",
                "ADMIN_TOKEN": ADMIN, "ASAN_OPTIONS": "detect_leaks=1"})
    log = open(os.path.join(st.run_dir, "logs", "scheduler-2.log"), "w")
    second = subprocess.Popen([os.path.join(BIN_DIR, "molecule-scheduler")], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        for rounds in (1, 2, 3):
            if rounds > 1:
                time.sleep(1.1)
                make_due(st, ws)
            assert st.wait_for(lambda: not_due(st, ws), timeout=60)
            counts, dup = fires(st, ws)
            assert dup == 0 and len(counts) == len(ids) and set(counts.values()) == {rounds}, \
                sorted(set(counts.values()))
        assert second.poll() is None
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=15) == 0
        log.close()
    text = open(os.path.join(st.run_dir, "logs", "scheduler-2.log")).read()
    assert "queued" in text     # the second one did take part
    assert "AddressSanitizer" not in text and "runtime error" not in text


def test_end_to_end_with_echo_agent_and_dispatcher(st):
    if not os.path.exists(os.path.join(BIN_DIR, "molecule-dispatcher")):
        pytest.skip("the dispatcher worker is not built")
    agent = EchoAgent()
    try:
        ws = new_ws(st, url=agent.url)
        sid = make(st, ws, name="e2e", cron_expr="*/1 * * * *", prompt="ping")
        make_due(st, ws)
        got = st.wait_for(lambda: st.psql(
            "SELECT status || '|' || (response_body->>'result') FROM activity_logs WHERE workspace_id = '%s' "
            "AND activity_type = 'cron_run'" % ws), timeout=30)
        assert got == "ok|echo: ping"
        assert len(agent.ids) == 1 and agent.ids[0].startswith("cron-%s-" % sid)
        ev = st.psql("SELECT payload FROM structure_events WHERE workspace_id = '%s' "
                     "AND event_type = 'CRON_EXECUTED'" % ws)
        assert json.loads(ev) == {"schedule_id": sid, "schedule_name": "e2e", "status": "ok"}
        row = st.admin("GET", "/workspaces/%s/schedules" % ws).json()[0]
        assert row["run_count"] == 1 and row["last_status"] == "ok" and row["last_run_at"]
        h = st.admin("GET", "/workspaces/%s/schedules/%s/history" % (ws, sid)).json()
        assert len(h) == 1 and h[0]["status"] == "ok" and h[0]["request"]["prompt"] == "ping"
    finally:
        agent.close()
