"""A2A proxy: POST /workspaces/:id/a2a (api.md §4.9, subsystems §9.1) against echo agents on loopback,
and the A2A worker pool of ADR 005 (slow agents do not hold the API workers)."""
import base64
import hashlib
import http.server
import json
import os
import socket
import subprocess
import threading
import time
import uuid

import pytest

from conftest import ADMIN_TOKEN, start_stack, stop_stack

NIL = "00000000-0000-0000-0000-000000000000"
ADMIN = {"Authorization": "Bearer " + ADMIN_TOKEN}


class Agent:
    """A JSON-RPC agent on 127.0.0.1: /echo answers, /rpcerror and /http500 fail, /hang never answers."""

    def __init__(self):
        self.seen = []
        self.release = threading.Event()
        agent = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                try:
                    req = json.loads(raw)
                except ValueError:
                    req = None
                agent.seen.append((self.path, dict(self.headers), req))
                if self.path == "/hang":
                    agent.release.wait(30)
                    return
                rid = req.get("id") if isinstance(req, dict) else None
                if self.path == "/http500":
                    return self.reply(500, {"error": "agent exploded"})
                if self.path == "/rpcerror":
                    return self.reply(200, {"jsonrpc": "2.0", "id": rid,
                                            "error": {"code": -32601, "message": "method not found"}})
                text = ""
                try:
                    text = req["params"]["message"]["parts"][0]["text"]
                except (KeyError, IndexError, TypeError):
                    pass
                self.reply(200, {"jsonrpc": "2.0", "id": rid, "result": {
                    "kind": "message", "role": "agent", "messageId": str(uuid.uuid4()),
                    "parts": [{"kind": "text", "text": "echo: " + text}]}})

            def reply(self, status, obj):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path, host="localhost"):
        return "http://%s:%d%s" % (host, self.port, path)

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def new_ws(stack, name, parent=None, status="online", url=None):
    wid = str(uuid.uuid4())
    stack.psql("INSERT INTO workspaces (id, name, parent_id, status, url, runtime) VALUES "
               "('%s', $q$%s$q$, %s, '%s', %s, 'langgraph')" % (
                   wid, name, "'%s'" % parent if parent else "NULL", status,
                   "'%s'" % url if url else "NULL"))
    return wid


def mint_token(stack, wid):
    tok = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    digest = hashlib.sha256(tok.encode()).hexdigest()
    stack.psql("INSERT INTO workspace_auth_tokens (workspace_id, token_hash, prefix) "
               "VALUES ('%s', decode('%s', 'hex'), '%s')" % (wid, digest, tok[:8]))
    return tok


def msg(text):
    return {"message": {"role": "user", "parts": [{"kind": "text", "text": text}]}}


def a2a(stack, target, body, headers=None, timeout=20):
    return stack.request("POST", "/workspaces/%s/a2a" % target, headers=headers, body=body, timeout=timeout)


@pytest.fixture(scope="module")
def agent():
    a = Agent()
    yield a
    a.close()


@pytest.fixture(scope="module")
def a2a_stack():
    """Loopback agents allowed (A2A_ALLOW_LOOPBACK=1), a small A2A pool next to 3 API workers."""
    s = start_stack({"ADMIN_TOKEN": ADMIN_TOKEN, "A2A_ALLOW_LOOPBACK": "1", "MOLECULE_A2A_WORKERS": "4"})
    yield s
    problems = stop_stack(s)
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def org(a2a_stack, agent):
    """Root A with children A1, A2 (agents); root B with child B1 (another tree)."""
    s, t = a2a_stack, {}
    t["A"] = new_ws(s, "a2a-A", url=agent.url("/echo"))
    t["A1"] = new_ws(s, "a2a-A1", t["A"], url=agent.url("/echo"))
    t["A2"] = new_ws(s, "a2a-A2", t["A"], url=agent.url("/echo"))
    t["B"] = new_ws(s, "a2a-B", url=agent.url("/echo"))
    t["B1"] = new_ws(s, "a2a-B1", t["B"], url=agent.url("/echo"))
    return t


def test_bare_and_full_bodies_keep_ids(a2a_stack, org, agent):
    r = a2a(a2a_stack, org["A"], msg("hello"), headers=ADMIN)
    assert r.status == 200, r.body
    assert r.json()["result"]["parts"][0]["text"] == "echo: hello"
    path, hdrs, sent = agent.seen[-1]
    assert path == "/echo" and hdrs["Content-Type"] == "application/json"
    assert sent["jsonrpc"] == "2.0" and sent["method"] == "message/send"
    assert len(sent["params"]["message"]["messageId"]) == 36 and sent["id"]
    assert "Authorization" not in hdrs  # the caller's credentials never reach the agent

    full = {"jsonrpc": "2.0", "id": "custom-42", "method": "message/send",
            "params": {"message": {"role": "user", "messageId": "mid-1",
                                   "parts": [{"kind": "text", "text": "full"}]}}}
    r = a2a(a2a_stack, org["A"], full, headers=ADMIN)
    assert r.status == 200, r.body
    assert r.json()["id"] == "custom-42"
    sent = agent.seen[-1][2]
    assert sent["id"] == "custom-42" and sent["params"]["message"]["messageId"] == "mid-1"

    # A bare {method, params} body with its own id: wrapped, the id kept.
    r = a2a(a2a_stack, org["A"], {"id": 7, "method": "message/send", "params": msg("p")}, headers=ADMIN)
    assert r.status == 200 and r.json()["id"] == 7
    assert a2a(a2a_stack, org["A"], "not json", headers=ADMIN).status == 400


def test_agent_errors_pass_through(a2a_stack, agent):
    ws = new_ws(a2a_stack, "a2a-rpcerr", url=agent.url("/rpcerror"))
    r = a2a(a2a_stack, ws, msg("x"), headers=ADMIN)
    assert r.status == 200
    assert r.json()["error"] == {"code": -32601, "message": "method not found"}
    ws = new_ws(a2a_stack, "a2a-500", url=agent.url("/http500"))
    r = a2a(a2a_stack, ws, msg("x"), headers=ADMIN)
    assert r.status == 500 and r.json() == {"error": "agent exploded"}


def test_unknown_unregistered_and_hibernated_targets(a2a_stack):
    assert a2a(a2a_stack, NIL, msg("x"), headers=ADMIN).status == 404
    assert a2a(a2a_stack, str(uuid.uuid4()), msg("x"), headers=ADMIN).status == 404
    assert a2a(a2a_stack, "not-a-uuid", msg("x"), headers=ADMIN).status == 404

    ws = new_ws(a2a_stack, "a2a-nourl", status="provisioning")
    r = a2a(a2a_stack, ws, msg("x"), headers=ADMIN)
    assert r.status == 503 and r.json() == {"error": "workspace has no URL", "status": "provisioning"}

    ws = new_ws(a2a_stack, "a2a-hib", status="hibernated")
    r = a2a(a2a_stack, ws, msg("x"), headers=ADMIN)
    assert r.status == 503 and r.header("Retry-After") == "15"
    assert r.json() == {"error": "workspace is waking from hibernation — retry in ~15 seconds",
                        "waking": True, "retry_after": 15}
    assert a2a_stack.psql("SELECT status FROM workspaces WHERE id = '%s'" % ws) == "provisioning"
    # A second call while it wakes queues nothing more.
    a2a(a2a_stack, ws, msg("x"), headers=ADMIN)
    assert a2a_stack.psql("SELECT count(*) FROM provision_jobs WHERE workspace_id = '%s' "
                          "AND kind = 'restart' AND payload->>'reason' = 'a2a_wake'" % ws) == "1"

    ws = new_ws(a2a_stack, "a2a-budget", url="http://localhost:9/")
    a2a_stack.psql("UPDATE workspaces SET budget_limit = 100, monthly_spend = 100 WHERE id = '%s'" % ws)
    r = a2a(a2a_stack, ws, msg("x"), headers=ADMIN)
    assert r.status == 402 and r.json()["error"] == "workspace budget limit exceeded"


def test_callers_hierarchy_tokens_and_forgery(a2a_stack, org):
    # Siblings may talk; a caller without tokens needs canvas credentials (here the admin bearer).
    r = a2a(a2a_stack, org["A2"], msg("hi"), headers={"X-Workspace-ID": org["A1"], **ADMIN})
    assert r.status == 200, r.body
    r = a2a(a2a_stack, org["A1"], msg("hi"), headers={"X-Workspace-ID": org["B1"], **ADMIN})
    assert r.status == 403
    assert r.json()["error"] == "access denied: workspaces cannot communicate per hierarchy rules"
    for forged in ("system:restart-context", "webhook:github", "test:x", "channel:slack", "nope"):
        r = a2a(a2a_stack, org["A1"], msg("hi"), headers={"X-Workspace-ID": forged})
        assert r.status == 403 and r.json()["error"] == "invalid caller ID", forged
    # Once the caller has a token, it must present it.
    tok = mint_token(a2a_stack, org["A"])
    r = a2a(a2a_stack, org["A1"], msg("hi"), headers={"X-Workspace-ID": org["A"]})
    assert r.status == 401 and r.json()["error"] == "missing caller auth token"
    r = a2a(a2a_stack, org["A1"], msg("hi"), headers={"X-Workspace-ID": org["A"], "Authorization": "Bearer x"})
    assert r.status == 401 and r.json()["error"] == "invalid caller auth token"
    r = a2a(a2a_stack, org["A1"], msg("hi"),
            headers={"X-Workspace-ID": org["A"], "Authorization": "Bearer " + tok})
    assert r.status == 200, r.body
    assert a2a_stack.psql("SELECT last_outbound_at IS NOT NULL FROM workspaces WHERE id = '%s'" % org["A"]) == "t"


def test_tokenless_or_removed_callers_get_no_free_pass(a2a_stack, org, agent):
    # The reference's lazy bootstrap lets anyone speak for a workspace that has no live token.
    ext = new_ws(a2a_stack, "a2a-ext", org["A"], url=agent.url("/echo"))  # external: a url, never a token
    r = a2a(a2a_stack, org["A1"], msg("hi"), headers={"X-Workspace-ID": ext})
    assert r.status == 401 and r.json() == {"error": "missing caller auth token"}
    r = a2a(a2a_stack, org["A1"], msg("hi"), headers={"X-Workspace-ID": ext, "Authorization": "Bearer x"})
    assert r.status == 401 and r.json() == {"error": "invalid caller auth token"}
    r = a2a(a2a_stack, org["A1"], msg("hi"), headers={"X-Workspace-ID": ext, **ADMIN})
    assert r.status == 200, r.body
    # All tokens revoked: the same as never having one.
    tok = mint_token(a2a_stack, ext)
    a2a_stack.psql("UPDATE workspace_auth_tokens SET revoked_at = now() WHERE workspace_id = '%s'" % ext)
    r = a2a(a2a_stack, org["A1"], msg("hi"), headers={"X-Workspace-ID": ext, "Authorization": "Bearer " + tok})
    assert r.status == 401 and r.json() == {"error": "invalid caller auth token"}
    # Removed or unknown callers: refused whatever credentials come along.
    gone = new_ws(a2a_stack, "a2a-gone", org["A"], status="removed", url=agent.url("/echo"))
    for caller in (gone, str(uuid.uuid4())):
        for h in ({}, ADMIN):
            r = a2a(a2a_stack, org["A1"], msg("hi"), headers={"X-Workspace-ID": caller, **h})
            assert r.status == 403 and r.json() == {"error": "invalid caller ID"}, (caller, h)


def test_canvas_calls_need_canvas_credentials(a2a_stack, org):
    # MOLECULE_ENV=test with an ADMIN_TOKEN: no dev hatch. The reference lets this through.
    r = a2a(a2a_stack, org["A"], msg("x"))
    assert r.status == 401
    r = a2a(a2a_stack, org["A"], msg("x"), headers={"Authorization": "Bearer wrong"})
    assert r.status == 401
    r = a2a(a2a_stack, org["A"], msg("x"), headers={"Origin": "http://localhost:3000"})
    assert r.status == 200, r.body


def test_deadline_cuts_a_silent_agent(a2a_stack, agent):
    ws = new_ws(a2a_stack, "a2a-hang", url=agent.url("/hang"))
    t0 = time.monotonic()
    r = a2a(a2a_stack, ws, msg("x"), headers=dict(ADMIN, **{"X-Timeout": "2"}))
    took = time.monotonic() - t0
    assert r.status == 504, r.body
    assert r.json()["timeout_s"] == 2
    assert 1.8 <= took < 6, took
    row = a2a_stack.psql("SELECT status, duration_ms >= 1900 FROM activity_logs WHERE workspace_id = '%s' "
                         "AND activity_type = 'a2a_receive'" % ws)
    assert row == "error|t"
    assert a2a(a2a_stack, ws, msg("x"), headers=dict(ADMIN, **{"X-Timeout": "soon"})).status == 400


def test_body_cap(a2a_stack, org):
    big = json.dumps(msg("x" * (1024 * 1024 + 10)))
    r = a2a(a2a_stack, org["A"], big, headers=dict(ADMIN, **{"Content-Type": "application/json"}))
    assert r.status == 413


def test_activity_row_and_a2a_response_event(a2a_stack, agent):
    sock = a2a_stack.stack_env()["REDIS_URL"][len("unix://"):]
    sub = subprocess.Popen(["redis-cli", "-s", sock, "SUBSCRIBE", "molecule:events"],
                           stdout=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: [lines.append(l) for l in sub.stdout], daemon=True)
    reader.start()
    try:
        assert a2a_stack.wait_for(lambda: any("molecule:events" in l for l in lines), timeout=10)
        ws = new_ws(a2a_stack, "a2a-act", url=agent.url("/echo"))
        r = a2a(a2a_stack, ws, {"jsonrpc": "2.0", "id": "act-1", "method": "message/send",
                                "params": msg("log me")}, headers=ADMIN)
        assert r.status == 200, r.body

        def event(kind):
            for l in lines:
                if l.startswith("{"):
                    e = json.loads(l)
                    if e["event"] == kind and e["workspace_id"] == ws:
                        return e
            return None
        e = a2a_stack.wait_for(lambda: event("A2A_RESPONSE"), timeout=10)
        assert e, lines[-5:]
        assert e["payload"]["method"] == "message/send"
        assert e["payload"]["response_body"]["result"]["parts"][0]["text"] == "echo: log me"
        assert isinstance(e["payload"]["duration_ms"], int)
        a = a2a_stack.wait_for(lambda: event("ACTIVITY_LOGGED"), timeout=10)
        assert a["payload"]["activity_type"] == "a2a_receive" and a["payload"]["status"] == "ok"
    finally:
        sub.terminate()
        sub.wait(10)
    row = a2a_stack.psql(
        "SELECT method, summary, request_body->>'id', response_body->'result'->'parts'->0->>'text', "
        "duration_ms >= 0, status, source_id IS NULL FROM activity_logs WHERE workspace_id = '%s' "
        "AND activity_type = 'a2a_receive'" % ws)
    assert row == "message/send|log me|act-1|echo: log me|t|ok|t"


def test_refused_addresses_even_with_loopback_allowed(a2a_stack):
    for url in ("http://169.254.169.254/latest", "http://[fe80::1]:80/", "http://0.0.0.0:80/"):
        ws = new_ws(a2a_stack, "a2a-ssrf", url=url)
        r = a2a(a2a_stack, ws, msg("x"), headers=ADMIN)
        assert r.status == 502 and r.json()["error"] == "workspace URL is not publicly routable", url


def test_loopback_refused_by_default(stack, agent):
    # The shared stack runs without A2A_ALLOW_LOOPBACK: a name resolving to loopback and a
    # loopback literal are both refused after resolution, and the agent sees nothing.
    before = len(agent.seen)
    for url in (agent.url("/echo"), agent.url("/echo", host="127.0.0.1"), agent.url("/echo", host="[::1]")):
        ws = new_ws(stack, "a2a-lo", url=url)
        r = stack.request("POST", "/workspaces/%s/a2a" % ws, headers=ADMIN, body=msg("x"))
        assert r.status == 502 and r.json()["error"] == "workspace URL is not publicly routable", url
    assert len(agent.seen) == before


def test_slow_calls_do_not_hold_the_api(a2a_stack, agent):
    """8 agent calls that hang (twice the A2A pool) while GET /health stays fast on the API pool."""
    assert any(k.startswith("a2a-worker-") for k in a2a_stack.liveness())
    ws = new_ws(a2a_stack, "a2a-slow", url=agent.url("/hang"))
    results = []

    def call():
        results.append(a2a(a2a_stack, ws, msg("x"), headers=dict(ADMIN, **{"X-Timeout": "4"}), timeout=30).status)
    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # let them reach the agent
    worst = 0.0
    for _ in range(20):
        t0 = time.monotonic()
        assert a2a_stack.get("/health").status == 200
        worst = max(worst, time.monotonic() - t0)
    for t in threads:
        t.join(30)
    assert worst < 1.0, worst
    assert results == [504] * 8
