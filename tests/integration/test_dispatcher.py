"""The dispatcher worker (a2a_queue -> agents) and delegations (api.md §4.11), against python echo agents.

The agents run in this process on loopback; the stack allows loopback targets (A2A_ALLOW_LOOPBACK=1).
"""
import json
import os
import signal
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import start_stack, stop_stack

ADMIN = "disp-admin-token-0123456789abcdef"


class Agent:
    """An A2A echo agent: records every call, its concurrency, and can be slow, hang or fail."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []          # (messageId, text, headers)
        self.inflight = 0
        self.max_inflight = 0
        self.delay = 0.0
        self.hang_first = 0      # this many calls hang until the client gives up
        self.fail_status = None  # answer every call with this HTTP status
        self.busy_first = 0      # this many calls are answered 503 (busy)
        self.raw_reply = None    # answer with these bytes (200) instead of the echo
        self.release = threading.Event()
        agent = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                msg = body["params"]["message"]
                text = msg["parts"][0].get("text", "")
                with agent.lock:
                    agent.calls.append((msg.get("messageId"), text, dict(self.headers)))
                    n = len(agent.calls)
                    agent.inflight += 1
                    agent.max_inflight = max(agent.max_inflight, agent.inflight)
                try:
                    if n <= agent.hang_first:
                        agent.release.wait(15)
                        return
                    if agent.delay:
                        time.sleep(agent.delay)
                    if agent.fail_status or n <= agent.busy_first:
                        out = json.dumps({"error": "down"}).encode()
                        self.send_response(agent.fail_status or 503)
                    elif agent.raw_reply is not None:
                        out = agent.raw_reply
                        self.send_response(200)
                    else:
                        out = json.dumps({"jsonrpc": "2.0", "id": body.get("id"), "result": {
                            "kind": "message", "role": "agent", "messageId": str(uuid.uuid4()),
                            "parts": [{"kind": "text", "text": "echo: " + text}]}}).encode()
                        self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with agent.lock:
                        agent.inflight -= 1

        ThreadingHTTPServer.request_queue_size = 128   # socketserver's 5 drops SYNs under bursts
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def ids(self):
        with self.lock:
            return [c[0] for c in self.calls]

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def ds():
    s = start_stack({"ADMIN_TOKEN": ADMIN, "A2A_ALLOW_LOOPBACK": "1", "DISPATCHER_POLL_MS": "200",
                     "DISPATCHER_RETRIES": "3", "A2A_QUEUE_RETENTION_HOURS": "1"})
    yield s
    problems = stop_stack(s)
    assert not problems, "\n".join(problems)


@pytest.fixture
def agent():
    a = Agent()
    yield a
    a.close()


def new_ws(s, url=None, parent=None, max_tasks=1):
    return s.psql("INSERT INTO workspaces (name, status, url, parent_id, max_concurrent_tasks) VALUES "
                  "('d-%s', 'online', %s, %s, %d) RETURNING id" % (
                      uuid.uuid4().hex[:8], "'%s'" % url if url else "NULL",
                      "'%s'" % parent if parent else "NULL", max_tasks)).splitlines()[0]


def enqueue(s, ws, text, kind="a2a", deadline_ms=300000, mid=None, **cols):
    """Queues a message/send; cols are further columns as SQL expressions, set in the same INSERT."""
    mid = mid or "m-" + uuid.uuid4().hex
    body = {"jsonrpc": "2.0", "id": mid, "method": "message/send", "params": {"message": {
        "role": "user", "messageId": mid, "parts": [{"kind": "text", "text": text}]}}}
    qid = s.psql("INSERT INTO a2a_queue (workspace_id, kind, message_id, body, deadline_ms%s) VALUES "
                 "('%s', '%s', '%s', '%s'::jsonb, %d%s) RETURNING id" % (
                     "".join(", " + k for k in cols), ws, kind, mid, json.dumps(body).replace("'", "''"),
                     deadline_ms, "".join(", " + v for v in cols.values()))).splitlines()[0]
    return qid, mid


def row(s, qid, cols="status"):
    return s.psql("SELECT %s FROM a2a_queue WHERE id = '%s'" % (cols, qid))


def wait_status(s, qid, want, timeout=30):
    got = s.wait_for(lambda: row(s, qid) in want and row(s, qid), timeout=timeout, interval=0.1)
    assert got in want, (row(s, qid, "status, attempts, error"), want)
    return got


def events(s, ws, etype):
    out = s.psql("SELECT payload::text FROM structure_events WHERE workspace_id = '%s' AND event_type = '%s' "
                 "ORDER BY created_at, id" % (ws, etype))
    return [json.loads(l) for l in out.splitlines() if l]


def test_dispatcher_is_supervised_and_beats(ds):
    live = ds.wait_for(lambda: "dispatcher" in ds.liveness() and ds.liveness(), timeout=20)
    assert "dispatcher" in live, live


def test_queued_row_is_delivered_and_recorded(ds, agent):
    ws = new_ws(ds, agent.url)
    qid, mid = enqueue(ds, ws, "hello", deadline_ms=4500)
    wait_status(ds, qid, ("done",), timeout=15)
    assert agent.ids() == [mid]
    headers = agent.calls[0][2]
    assert headers.get("Content-Type") == "application/json"
    assert headers.get("X-Timeout") == "5"          # the row's deadline, seconds rounded up
    assert row(ds, qid, "attempts, response->'result'->'parts'->0->>'text', error IS NULL, "
               "duration_ms >= 0") == "1|echo: hello|t|t"
    act = ds.psql("SELECT activity_type, method, status, response_body->'result'->'parts'->0->>'text' "
                  "FROM activity_logs WHERE workspace_id = '%s'" % ws)
    assert act == "a2a_receive|message/send|ok|echo: hello"


def test_per_workspace_limit_is_honoured(ds, agent):
    agent.delay = 0.4
    ws = new_ws(ds, agent.url, max_tasks=2)
    qids = [enqueue(ds, ws, "n%d" % i)[0] for i in range(6)]
    for q in qids:
        wait_status(ds, q, ("done",), timeout=30)
    assert len(agent.ids()) == 6
    assert agent.max_inflight == 2, agent.max_inflight


def test_deadline_cuts_a_hanging_agent_and_is_final(ds, agent):
    # The prompt reached the agent and may be running: sending it again would run it twice.
    agent.hang_first = 1
    ws = new_ws(ds, agent.url)
    qid, mid = enqueue(ds, ws, "slow", deadline_ms=1000)
    t0 = time.monotonic()
    wait_status(ds, qid, ("failed",), timeout=20)
    assert time.monotonic() - t0 < 12
    assert row(ds, qid, "attempts, error") == "1|agent did not answer within the deadline (1000 ms)"
    time.sleep(1.5)  # well past the 1 s backoff a retry would have had
    assert agent.ids() == [mid]


def test_error_after_sending_is_not_retried(ds, agent):
    agent.fail_status = 500
    ws = new_ws(ds, agent.url)
    qid, mid = enqueue(ds, ws, "x")
    wait_status(ds, qid, ("failed",), timeout=30)
    assert row(ds, qid, "attempts, error") == "1|agent answered 500"
    time.sleep(1.5)
    assert agent.ids() == [mid]
    assert ds.psql("SELECT status FROM activity_logs WHERE workspace_id = '%s'" % ws) == "error"


def closed_port_url():
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return "http://127.0.0.1:%d" % sk.getsockname()[1]


def test_connection_refused_is_retried_until_failed(ds):
    ws = new_ws(ds, closed_port_url())
    qid, _ = enqueue(ds, ws, "nobody home")
    wait_status(ds, qid, ("failed",), timeout=30)
    attempts, error = row(ds, qid, "attempts, error").split("|", 1)
    assert attempts == "3" and error.startswith("failed to reach workspace agent"), error


def test_busy_answer_does_not_consume_attempts(ds, agent):
    agent.busy_first = 4         # more busy answers than DISPATCHER_RETRIES
    ws = new_ws(ds, agent.url)
    qid, mid = enqueue(ds, ws, "when you can")
    wait_status(ds, qid, ("done",), timeout=30)
    assert agent.ids() == [mid] * 5   # the same messageId every time
    assert row(ds, qid, "attempts, error IS NULL") == "1|t"


def test_agent_reported_active_tasks_hold_the_target(ds, agent):
    ws = new_ws(ds, agent.url, max_tasks=1)
    ds.psql("UPDATE workspaces SET active_tasks = 1 WHERE id = '%s'" % ws)
    qid, mid = enqueue(ds, ws, "wait your turn")
    time.sleep(1.0)  # several poll ticks: the agent says it is full
    assert row(ds, qid) == "queued" and agent.ids() == []
    ds.psql("UPDATE workspaces SET active_tasks = 0 WHERE id = '%s'" % ws)
    wait_status(ds, qid, ("done",), timeout=15)
    assert agent.ids() == [mid]


def test_expired_lease_with_attempts_used_is_failed(ds, agent):
    ws = new_ws(ds, agent.url)
    # Leased by a dispatcher elsewhere that never recorded an outcome; the lease has run out.
    lease = dict(status="'running'", lease_owner="'elsewhere:1'", lease_until="now() - interval '1 second'")
    spent, _ = enqueue(ds, ws, "poison", attempts="3", **lease)
    fresh, mid = enqueue(ds, ws, "once more", attempts="1", **lease)
    wait_status(ds, spent, ("failed",), timeout=15)
    assert row(ds, spent, "attempts, error") == "3|gave up after 3 attempts"
    wait_status(ds, fresh, ("done",), timeout=15)
    assert agent.ids() == [mid]


def test_unstorable_reply_is_recorded_failed(ds, agent):
    # jsonb refuses \u0000: the outcome is recorded without the reply instead of staying 'running'.
    agent.raw_reply = b'{"jsonrpc":"2.0","id":"x","result":{"parts":[{"kind":"text","text":"a\\u0000b"}]}}'
    ws = new_ws(ds, agent.url)
    qid, mid = enqueue(ds, ws, "say nul")
    wait_status(ds, qid, ("failed",), timeout=15)
    assert row(ds, qid, "attempts, error, response IS NULL") == "1|reply not storable|t"
    assert agent.ids() == [mid]
    assert ds.psql("SELECT status, error_detail FROM activity_logs WHERE workspace_id = '%s'" % ws) == \
        "error|reply not storable"


def test_finished_rows_are_pruned_after_retention(ds):
    ws = new_ws(ds, None)                    # no URL: nothing here is sent
    ids = {}
    for name, status, age in (("done_old", "done", "2 hours"), ("failed_old", "failed", "2 hours"),
                              ("dropped_old", "dropped", "2 hours"), ("done_new", "done", "10 minutes"),
                              ("queued_old", "queued", "2 hours")):
        ids[name], _ = enqueue(ds, ws, name, status="'%s'" % status, not_before="now() + interval '1 hour'",
                               updated_at="now() - interval '%s'" % age)
    gone = lambda: ds.psql("SELECT count(*) FROM a2a_queue WHERE id IN ('%s', '%s', '%s')" % (
        ids["done_old"], ids["failed_old"], ids["dropped_old"])) == "0"
    assert ds.wait_for(gone, timeout=10)
    assert row(ds, ids["done_new"]) == "done" and row(ds, ids["queued_old"]) == "queued"


def test_fires_of_deleted_or_disabled_schedules_are_dropped(ds, agent):
    ws = new_ws(ds, agent.url)

    def schedule(enabled):
        return ds.psql("INSERT INTO workspace_schedules (workspace_id, name, cron_expr, prompt, enabled, "
                       "next_run_at) VALUES ('%s', '%s', '@yearly', 'p', %s, now() + interval '1 year') "
                       "RETURNING id" % (ws, uuid.uuid4().hex[:8], "true" if enabled else "false")).splitlines()[0]

    def fire(sid, mid):
        # Queued, waiting for its retry: the schedule changes meanwhile.
        return enqueue(ds, ws, "fire", kind="cron", mid=mid, ref_id="'%s'" % sid,
                       not_before="now() + interval '2 seconds'")[0]

    kept, disabled, deleted = schedule(True), schedule(True), schedule(True)
    q_kept = fire(kept, "cron-%s-1" % kept)
    q_disabled = fire(disabled, "cron-%s-1" % disabled)
    q_deleted = fire(deleted, "cron-%s-1" % deleted)
    q_manual = fire(disabled, "cron-%s-run-1" % disabled)   # an explicit run of a disabled schedule
    ds.psql("UPDATE workspace_schedules SET enabled = false WHERE id = '%s'" % disabled)
    ds.psql("DELETE FROM workspace_schedules WHERE id = '%s'" % deleted)
    for q in (q_disabled, q_deleted):
        wait_status(ds, q, ("dropped",), timeout=10)
        assert row(ds, q, "error") == "schedule deleted or disabled"
    wait_status(ds, q_kept, ("done",), timeout=15)
    wait_status(ds, q_manual, ("done",), timeout=15)
    assert sorted(agent.ids()) == sorted(["cron-%s-1" % kept, "cron-%s-run-1" % disabled])


def test_dispatcher_survives_losing_its_connection_mid_call(ds, agent):
    # The backend it LISTENs on dies while a call is in flight: the outcome is recorded on a new
    # connection, which it LISTENs on again (the teardown checks the logs for sanitizer reports).
    agent.delay = 1.0
    ws = new_ws(ds, agent.url)
    qid, mid = enqueue(ds, ws, "hold on")
    assert ds.wait_for(lambda: len(agent.ids()) == 1, timeout=10)
    ds.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = "
            "'molecule' AND pid <> pg_backend_pid()")
    wait_status(ds, qid, ("done",), timeout=20)
    qid2, mid2 = enqueue(ds, ws, "again")
    wait_status(ds, qid2, ("done",), timeout=15)
    assert agent.ids() == [mid, mid2]


def test_no_url_is_retried_until_the_agent_registers(ds, agent):
    ws = new_ws(ds, None)
    qid, mid = enqueue(ds, ws, "later")
    ds.wait_for(lambda: row(ds, qid, "attempts") >= "1" and row(ds, qid) == "queued", timeout=10)
    assert "no URL" in row(ds, qid, "COALESCE(error, '')")
    ds.psql("UPDATE workspaces SET url = '%s' WHERE id = '%s'" % (agent.url, ws))
    wait_status(ds, qid, ("done",), timeout=20)
    assert agent.ids() == [mid]


def test_kill9_mid_delivery_redelivers_same_message(ds, agent):
    agent.hang_first = 1
    ws = new_ws(ds, agent.url)
    qid, mid = enqueue(ds, ws, "survive", deadline_ms=20000)
    assert ds.wait_for(lambda: len(agent.ids()) == 1, timeout=10)
    assert row(ds, qid) == "running"
    pid = ds.liveness()["dispatcher"]["pid"]
    os.kill(pid, signal.SIGKILL)
    # The restarted dispatcher requeues the dead one's lease at once (same host), not after 30 s.
    wait_status(ds, qid, ("done",), timeout=20)
    assert agent.ids() == [mid, mid]
    new = ds.wait_for(lambda: ds.liveness()["dispatcher"]["pid"] != pid and ds.liveness()["dispatcher"],
                      timeout=10)
    assert new and new["restarts"] >= 1


def test_restart_context_waits_for_online(ds, agent):
    ws = new_ws(ds, agent.url)
    ds.psql("UPDATE workspaces SET status = 'provisioning' WHERE id = '%s'" % ws)
    qid, mid = enqueue(ds, ws, "=== WORKSPACE RESTART CONTEXT ===", kind="restart_context")
    time.sleep(1.0)  # several poll ticks: nothing may be sent while it is provisioning
    assert row(ds, qid) == "queued" and agent.ids() == []
    ds.psql("UPDATE workspaces SET status = 'online' WHERE id = '%s'" % ws)
    wait_status(ds, qid, ("done",), timeout=15)
    assert agent.ids() == [mid]


def mint(s, ws):
    r = s.admin("POST", "/workspaces/%s/tokens" % ws)
    assert r.status == 201, r.body
    return {"Authorization": "Bearer " + r.json()["auth_token"]}


def test_delegation_round_trip_with_idempotency(ds, agent):
    parent = new_ws(ds, None)
    child = new_ws(ds, agent.url, parent=parent)
    auth = mint(ds, parent)
    body = {"target_id": child, "task": "summarise the logs", "idempotency_key": "k-" + uuid.uuid4().hex}
    r = ds.request("POST", "/workspaces/%s/delegate" % parent, headers=auth, body=body)
    assert r.status == 202, r.body
    d = r.json()
    assert d["status"] == "delegated" and d["target_id"] == child
    did = d["delegation_id"]
    again = ds.request("POST", "/workspaces/%s/delegate" % parent, headers=auth, body=body)
    assert again.status == 200, again.body
    assert again.json()["delegation_id"] == did and again.json()["idempotent_hit"] is True
    assert ds.psql("SELECT count(*) FROM a2a_queue WHERE kind = 'delegation' AND ref_id = '%s'" % did) == "1"

    assert ds.wait_for(lambda: events(ds, parent, "DELEGATION_COMPLETE"), timeout=15)
    assert agent.calls[0][1] == "summarise the logs"
    assert agent.ids() == ["delegation-" + did]
    sent = events(ds, parent, "DELEGATION_SENT")
    assert sent == [{"delegation_id": did, "target_id": child, "task_preview": "summarise the logs"}]
    assert events(ds, parent, "DELEGATION_STATUS")[0]["status"] == "dispatched"
    assert events(ds, parent, "DELEGATION_COMPLETE") == [
        {"delegation_id": did, "target_id": child, "response_preview": "echo: summarise the logs"}]

    lst = ds.request("GET", "/workspaces/%s/delegations" % parent, headers=auth)
    assert lst.status == 200, lst.body
    items = lst.json()
    assert [i["status"] for i in items] == ["completed", "completed"]
    assert all(i["delegation_id"] == did for i in items)
    assert items[0]["response_preview"] == "echo: summarise the logs"
    # The same key once more is still the same delegation.
    third = ds.request("POST", "/workspaces/%s/delegate" % parent, headers=auth, body=body)
    assert third.status == 200 and third.json()["status"] == "completed"


def test_delegation_checks(ds, agent):
    a = new_ws(ds, None)
    b = new_ws(ds, agent.url)            # another root: roots may talk to each other
    c_parent = new_ws(ds, None, parent=b)
    c = new_ws(ds, agent.url, parent=c_parent)  # a grandchild of another root: not allowed for a
    auth = mint(ds, a)
    post = lambda body: ds.request("POST", "/workspaces/%s/delegate" % a, headers=auth, body=body)
    assert post({"task": "t"}).json() == {"error": "invalid delegation request"}
    assert post({"target_id": "nope", "task": "t"}).json() == {"error": "target_id must be a valid UUID"}
    r = post({"target_id": a, "task": "t"})
    assert r.status == 400 and r.json() == {"error": "self-delegation not permitted"}
    assert post({"target_id": str(uuid.uuid4()), "task": "t"}).status == 404
    r = post({"target_id": c, "task": "t"})
    assert r.status == 403, r.body
    assert post({"target_id": b, "task": "t"}).status == 202
    # Without the workspace's token: refused.
    assert ds.request("POST", "/workspaces/%s/delegate" % a, body={"target_id": b, "task": "t"}).status == 401
    # Not JSON: the reference's route messages.
    for path, want in (("/delegate", "invalid delegation request"), ("/delegations/record", "invalid request body")):
        r = ds.request("POST", "/workspaces/%s%s" % (a, path), headers=auth, body="{not json")
        assert (r.status, r.json()) == (400, {"error": want}), path


def test_update_cannot_fail_a_delegation_still_in_the_queue(ds):
    parent = new_ws(ds, None)
    child = new_ws(ds, None, parent=parent)   # no URL: its queue row stays queued
    auth = mint(ds, parent)
    body = {"target_id": child, "task": "slow", "idempotency_key": "k-" + uuid.uuid4().hex}
    r = ds.request("POST", "/workspaces/%s/delegate" % parent, headers=auth, body=body)
    assert r.status == 202, r.body
    did = r.json()["delegation_id"]
    upd = lambda: ds.request("POST", "/workspaces/%s/delegations/%s/update" % (parent, did), headers=auth,
                             body={"status": "failed", "error": "gave up"})
    r = upd()
    assert r.status == 409 and r.json() == {"error": "delegation is still being delivered by the platform"}
    # The key is still held: a retry is the same delegation, not a second queued copy.
    again = ds.request("POST", "/workspaces/%s/delegate" % parent, headers=auth, body=body)
    assert again.status == 200 and again.json()["delegation_id"] == did, again.body
    assert ds.psql("SELECT count(*) FROM a2a_queue WHERE kind = 'delegation' AND workspace_id = '%s'"
                   % child) == "1"
    assert events(ds, parent, "DELEGATION_FAILED") == []
    # Once the platform lets go of it (dropped here), the agent may close it.
    ds.psql("UPDATE a2a_queue SET status = 'dropped' WHERE kind = 'delegation' AND ref_id = '%s'" % did)
    r = upd()
    assert r.status == 200 and r.json() == {"status": "failed", "delegation_id": did}, r.body


def test_record_and_update(ds):
    a = new_ws(ds, None)
    b = new_ws(ds, None)
    auth = mint(ds, a)
    r = ds.request("POST", "/workspaces/%s/delegations/record" % a, headers=auth,
                   body={"target_id": b, "task": "agent-sent", "delegation_id": "task-123"})
    assert r.status == 202 and r.json() == {"delegation_id": "task-123", "status": "recorded"}
    r = ds.request("POST", "/workspaces/%s/delegations/task-123/update" % a, headers=auth,
                   body={"status": "done"})
    assert r.status == 400 and r.json() == {"error": "status must be 'completed' or 'failed'"}
    r = ds.request("POST", "/workspaces/%s/delegations/task-123/update" % a, headers=auth,
                   body={"status": "completed", "response_preview": "all good"})
    assert r.status == 200 and r.json() == {"status": "completed", "delegation_id": "task-123"}
    items = ds.request("GET", "/workspaces/%s/delegations" % a, headers=auth).json()
    assert {i["status"] for i in items} == {"completed"} and len(items) == 2
    assert events(ds, a, "DELEGATION_COMPLETE") == [{"delegation_id": "task-123", "response_preview": "all good"}]
    assert events(ds, a, "DELEGATION_SENT")[0]["task_preview"] == "agent-sent"


def test_admin_drop_stale(ds):
    ws = new_ws(ds, None)
    qid, _ = enqueue(ds, ws, "old")
    ds.psql("UPDATE a2a_queue SET created_at = now() - interval '2 hours', not_before = now() + "
            "interval '1 hour' WHERE id = '%s'" % qid)
    assert ds.request("POST", "/admin/a2a-queue/drop-stale").status == 401
    r = ds.admin("POST", "/admin/a2a-queue/drop-stale?max_age_minutes=0")
    assert r.status == 400
    r = ds.admin("POST", "/admin/a2a-queue/drop-stale?max_age_minutes=60&workspace_id=%s" % ws)
    assert r.status == 200 and r.json() == {"dropped": 1}
    assert row(ds, qid) == "dropped"
