"""The dispatcher worker (a2a_queue -> agents) and delegations (api.md §4.11), against python echo agents.

The agents run in this process on loopback; the stack allows loopback targets (A2A_ALLOW_LOOPBACK=1).
"""
import json
import os
import signal
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
                    if agent.fail_status:
                        out = json.dumps({"error": "down"}).encode()
                        self.send_response(agent.fail_status)
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
                     "DISPATCHER_RETRIES": "3"})
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


def enqueue(s, ws, text, kind="a2a", deadline_ms=300000, mid=None):
    mid = mid or "m-" + uuid.uuid4().hex
    body = {"jsonrpc": "2.0", "id": mid, "method": "message/send", "params": {"message": {
        "role": "user", "messageId": mid, "parts": [{"kind": "text", "text": text}]}}}
    qid = s.psql("INSERT INTO a2a_queue (workspace_id, kind, message_id, body, deadline_ms) VALUES "
                 "('%s', '%s', '%s', '%s'::jsonb, %d) RETURNING id" % (
                     ws, kind, mid, json.dumps(body).replace("'", "''"), deadline_ms)).splitlines()[0]
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


def test_deadline_cuts_a_hanging_agent_and_retries(ds, agent):
    agent.hang_first = 1
    ws = new_ws(ds, agent.url)
    qid, mid = enqueue(ds, ws, "slow", deadline_ms=1000)
    t0 = time.monotonic()
    wait_status(ds, qid, ("done",), timeout=20)
    assert time.monotonic() - t0 < 12
    # Same messageId on both attempts: the agent can de-duplicate.
    assert agent.ids() == [mid, mid]
    assert row(ds, qid, "attempts") == "2"


def test_retries_end_in_failed(ds, agent):
    agent.fail_status = 503
    ws = new_ws(ds, agent.url)
    qid, mid = enqueue(ds, ws, "x")
    wait_status(ds, qid, ("failed",), timeout=30)
    assert row(ds, qid, "attempts, error") == "3|agent answered 503"
    assert agent.ids() == [mid] * 3
    assert ds.psql("SELECT status FROM activity_logs WHERE workspace_id = '%s'" % ws) == "error"


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
