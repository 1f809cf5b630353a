"""Activity feed and agent notify: GET/POST /workspaces/:id/activity, POST /workspaces/:id/notify."""
import json
import re
import socket
import time
import urllib.parse
import uuid

import pytest

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
TYPE_MSG = ("invalid activity_type, must be one of: a2a_send, a2a_receive, task_update, "
            "agent_log, skill_promotion, memory_write, error")
BASE_KEYS = ["id", "workspace_id", "activity_type", "source_id", "target_id", "method", "summary",
             "duration_ms", "status", "error_detail", "created_at"]


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def new_ws(stack, status="online", name=None):
    name = name or "act-%s" % uuid.uuid4().hex[:12]
    return stack.psql("INSERT INTO workspaces (id, name, status) VALUES (gen_random_uuid(), "
                      "'%s', '%s') RETURNING id" % (name, status)).splitlines()[0]


def mint(stack, ws):
    r = stack.admin("POST", "/workspaces/%s/tokens" % ws)
    assert r.status == 201, r.body
    return r.json()["auth_token"]


def post(stack, ws, body, **kw):
    return stack.admin("POST", "/workspaces/%s/activity" % ws, body=body, **kw)


def listing(stack, ws, query=""):
    r = stack.admin("GET", "/workspaces/%s/activity%s" % (ws, query))
    assert r.status == 200, r.body
    return r.json()


class Subscriber:
    """A bare RESP client on the stack's Redis: SUBSCRIBE to the live-event channel."""

    def __init__(self, stack):
        path = stack.stack_env()["REDIS_URL"][len("unix://"):]
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.sock.settimeout(0.2)
        self.buf = b""
        self.sock.sendall(b"SUBSCRIBE molecule:events\r\n")
        assert self.wait(lambda m: m[0] == b"subscribe", 5)

    def _parse(self):
        """One complete RESP array of bulk strings from buf, or None."""
        if not self.buf.startswith(b"*"):
            return None
        lines = self.buf.split(b"\r\n", 1)
        if len(lines) < 2:
            return None
        n, rest, out = int(lines[0][1:]), lines[1], []
        for _ in range(n):
            head, sep, rest2 = rest.partition(b"\r\n")
            if not sep:
                return None
            if head.startswith(b":"):
                out.append(int(head[1:]))
                rest = rest2
                continue
            size = int(head[1:])
            if len(rest2) < size + 2:
                return None
            out.append(rest2[:size])
            rest = rest2[size + 2:]
        self.buf = rest
        return out

    def wait(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self._parse()
            if msg is not None:
                if pred(msg):
                    return msg
                continue
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                break
            self.buf += data
        return None

    def event(self, kind, ws, timeout=5.0):
        def match(m):
            if m[0] != b"message":
                return False
            env = json.loads(m[2])
            return env["event"] == kind and env["workspace_id"] == ws
        m = self.wait(match, timeout)
        return json.loads(m[2]) if m else None

    def close(self):
        self.sock.close()


@pytest.fixture
def sub(stack):
    s = Subscriber(stack)
    yield s
    s.close()


# --- POST /workspaces/:id/activity --------------------------------------------------------

def test_report_minimal_defaults(stack, sub):
    ws = new_ws(stack)
    r = post(stack, ws, {"activity_type": "agent_log"})
    assert (r.status, r.body) == (200, b'{"status":"logged"}')
    row = stack.psql("SELECT activity_type, source_id, status, method IS NULL, request_body IS NULL "
                     "FROM activity_logs WHERE workspace_id = '%s'" % ws)
    assert row == "agent_log|%s|ok|t|t" % ws
    env = sub.event("ACTIVITY_LOGGED", ws)
    assert env is not None
    assert env["payload"] == {"activity_type": "agent_log", "method": None, "summary": None,
                              "status": "ok", "source_id": ws, "target_id": None, "duration_ms": None}
    # Broadcast only: nothing in the persisted event log.
    assert stack.psql("SELECT count(*) FROM structure_events WHERE workspace_id = '%s'" % ws) == "0"


def test_report_full_and_list_it_back(stack, sub):
    ws, peer = new_ws(stack), new_ws(stack)
    body = {"activity_type": "a2a_send", "method": "message/send", "summary": "asked 'peer'; ok",
            "target_id": peer, "source_id": ws.upper(), "status": "error", "error_detail": "boom",
            "duration_ms": 1234, "request_body": {"q": [1, 2.5, "x"], "n": None},
            "response_body": "plain", "metadata": {"ignored": True}}
    r = post(stack, ws, body)
    assert r.status == 200, r.body
    env = sub.event("ACTIVITY_LOGGED", ws)
    assert env["payload"] == {"activity_type": "a2a_send", "method": "message/send",
                              "summary": "asked 'peer'; ok", "status": "error", "source_id": ws,
                              "target_id": peer, "duration_ms": 1234}
    [e] = listing(stack, ws)
    assert list(e) == BASE_KEYS + ["request_body", "response_body"]
    assert e["workspace_id"] == ws and e["source_id"] == ws and e["target_id"] == peer
    assert e["method"] == "message/send" and e["summary"] == "asked 'peer'; ok"
    assert e["duration_ms"] == 1234 and e["status"] == "error" and e["error_detail"] == "boom"
    assert e["request_body"] == {"q": [1, 2.5, "x"], "n": None} and e["response_body"] == "plain"
    assert TS_RE.match(e["created_at"])


def test_report_metadata_falls_back_for_request_body(stack):
    ws = new_ws(stack)
    assert post(stack, ws, {"activity_type": "task_update", "metadata": {"k": "v"},
                            "request_body": None}).status == 200
    [e] = listing(stack, ws)
    assert e["request_body"] == {"k": "v"} and "response_body" not in e


def test_report_activity_type_whitelist(stack):
    ws = new_ws(stack)
    for t in ("a2a_send", "a2a_receive", "task_update", "agent_log", "skill_promotion",
              "memory_write", "error"):
        assert post(stack, ws, {"activity_type": t}).status == 200, t
    for body, msg in (({"activity_type": "delegation"}, TYPE_MSG),
                      ({"activity_type": "agent_log'; DROP TABLE activity_logs;--"}, TYPE_MSG),
                      ({"activity_type": "AGENT_LOG"}, TYPE_MSG),
                      ({}, "activity_type is required"),
                      ({"activity_type": ""}, "activity_type is required"),
                      ({"activity_type": None}, "activity_type is required"),
                      ({"activity_type": 7}, "activity_type must be a string")):
        r = post(stack, ws, body)
        assert (r.status, r.json()) == (400, {"error": msg}), body
    assert len(listing(stack, ws)) == 7


def test_report_source_id_must_be_the_caller(stack):
    ws, other = new_ws(stack), new_ws(stack)
    tok = mint(stack, ws)
    for src in (other, "not-a-uuid", "x'; --"):
        r = stack.request("POST", "/workspaces/%s/activity" % ws, headers=bearer(tok),
                          body={"activity_type": "agent_log", "source_id": src})
        assert (r.status, r.json()) == (403, {"error": "source_id must match authenticated workspace"})
    r = stack.request("POST", "/workspaces/%s/activity" % ws, headers=bearer(tok),
                      body={"activity_type": "agent_log", "source_id": ws})
    assert r.status == 200
    assert listing(stack, ws)[0]["source_id"] == ws


@pytest.mark.parametrize("field,value,msg", [
    ("method", 5, "method must be a string"),
    ("summary", ["x"], "summary must be a string"),
    ("status", {"a": 1}, "status must be a string"),
    ("error_detail", True, "error_detail must be a string"),
    ("target_id", 12, "target_id must be a string"),
    ("source_id", 1, "source_id must be a string"),
    ("target_id", "not-a-uuid", "target_id must be a UUID"),
    ("duration_ms", 1.5, "duration_ms must be a non-negative integer"),
    ("duration_ms", "12", "duration_ms must be a non-negative integer"),
    ("duration_ms", -1, "duration_ms must be a non-negative integer"),
    ("duration_ms", 2 ** 31, "duration_ms must be a non-negative integer"),
    ("summary", "s" * 4097, "summary too long (max 4096 bytes)"),
    ("method", "m" * 257, "method too long (max 256 bytes)"),
    ("status", "s" * 65, "status too long (max 64 bytes)"),
    ("error_detail", "e" * 16385, "error_detail too long (max 16384 bytes)"),
    ("summary", "a\u0000b", "summary must not contain NUL characters"),
])
def test_report_field_validation(stack, field, value, msg):
    ws = new_ws(stack)
    r = post(stack, ws, {"activity_type": "agent_log", field: value})
    assert (r.status, r.json()) == (400, {"error": msg})
    assert listing(stack, ws) == []


def test_report_size_limits_accept_the_maximum(stack):
    ws = new_ws(stack)
    assert post(stack, ws, {"activity_type": "agent_log", "summary": "é" * 2048,
                            "duration_ms": 2 ** 31 - 1}).status == 200
    assert listing(stack, ws)[0]["summary"] == "é" * 2048


def test_report_rejects_text_postgres_cannot_store(stack):
    ws = new_ws(stack)
    r = post(stack, ws, {"activity_type": "agent_log", "request_body": {"k": "a\u0000b"}})
    assert (r.status, r.json()) == (400, {"error": "invalid text in request (NUL character or invalid UTF-8)"})
    r = post(stack, ws, body=b'{"activity_type":"agent_log","summary":"\xff\xfe"}',
             headers={"Content-Type": "application/json"})
    assert r.status == 400, r.body


def test_report_bad_bodies(stack):
    ws = new_ws(stack)
    h = {"Content-Type": "application/json"}
    for raw, msg in (('{"activity_type":', "invalid JSON"), ("[1]", "invalid JSON: expected an object"),
                     ("", "request body is empty: expected a JSON object")):
        r = post(stack, ws, raw, headers=h)
        assert (r.status, r.json()) == (400, {"error": msg}), raw
    r = post(stack, ws, {"activity_type": "agent_log", "summary": "x" * (1 << 20)})
    assert r.status == 413
    assert r.json()["error"] == "request body too large"


def test_report_unknown_and_invalid_workspaces(stack):
    gone = new_ws(stack, status="removed")
    for ws, status, msg in (("nope", 400, "invalid workspace ID"),
                            (urllib.parse.quote("' OR 1=1"), 400, "invalid workspace ID"),
                            (str(uuid.uuid4()), 404, "workspace not found"),
                            (gone, 404, "workspace not found")):
        r = post(stack, ws, {"activity_type": "agent_log"})
        assert (r.status, r.json()) == (status, {"error": msg}), ws


def test_activity_routes_need_the_workspace_credential(stack):
    a, b = new_ws(stack), new_ws(stack)
    ta = mint(stack, a)
    for method, path, body in (("GET", "activity", None), ("POST", "activity", {"activity_type": "error"}),
                               ("POST", "notify", {"message": "hi"})):
        r = stack.request(method, "/workspaces/%s/%s" % (b, path), body=body)
        assert (r.status, r.json()) == (401, {"error": "missing workspace auth token"})
        r = stack.request(method, "/workspaces/%s/%s" % (b, path), body=body, headers=bearer(ta))
        assert (r.status, r.json()) == (401, {"error": "invalid workspace auth token"})
        r = stack.request(method, "/workspaces/%s/%s" % (a, path), body=body, headers=bearer(ta))
        assert r.status == 200, (path, r.body)
    assert stack.psql("SELECT count(*) FROM activity_logs WHERE workspace_id = '%s'" % b) == "0"


# --- GET /workspaces/:id/activity -------------------------------------------------------

def test_list_filters_order_and_limits(stack):
    ws = new_ws(stack)
    for i in range(3):
        assert post(stack, ws, {"activity_type": "agent_log", "summary": "log %d" % i}).status == 200
    assert post(stack, ws, {"activity_type": "error", "summary": "bad"}).status == 200
    assert stack.admin("POST", "/workspaces/%s/notify" % ws, body={"message": "to canvas"}).status == 200
    all_rows = listing(stack, ws)
    assert [e["summary"] for e in all_rows] == ["to canvas", "bad", "log 2", "log 1", "log 0"]
    assert [e["summary"] for e in listing(stack, ws, "?type=agent_log")] == ["log 2", "log 1", "log 0"]
    assert [e["summary"] for e in listing(stack, ws, "?source=canvas")] == ["to canvas"]
    assert len(listing(stack, ws, "?source=agent")) == 4
    assert [e["summary"] for e in listing(stack, ws, "?type=error&source=agent&limit=5")] == ["bad"]
    assert [e["summary"] for e in listing(stack, ws, "?limit=2")] == ["to canvas", "bad"]
    assert listing(stack, ws, "?type=" + urllib.parse.quote("x' OR '1'='1")) == []
    assert len(listing(stack, ws, "?type=&source=&limit=")) == 5


@pytest.mark.parametrize("query,msg", [
    ("?source=bogus", "source must be 'canvas' or 'agent'"),
    ("?source=CANVAS", "source must be 'canvas' or 'agent'"),
    ("?limit=abc", "limit must be a positive integer"),
    ("?limit=0", "limit must be a positive integer"),
    ("?limit=-5", "limit must be a positive integer"),
    ("?limit=10;", "limit must be a positive integer"),
    ("?type=" + "t" * 65, "type too long (max 64 bytes)"),
])
def test_list_bad_queries(stack, query, msg):
    ws = new_ws(stack)
    r = stack.admin("GET", "/workspaces/%s/activity%s" % (ws, query))
    assert (r.status, r.json()) == (400, {"error": msg})


def test_list_default_100_and_cap_500(stack):
    ws = new_ws(stack)
    stack.psql("INSERT INTO activity_logs (workspace_id, activity_type, summary, created_at) "
               "SELECT '%s', 'agent_log', 'row ' || g, now() - g * interval '1 second' "
               "FROM generate_series(1, 501) g" % ws)
    assert len(listing(stack, ws)) == 100
    rows = listing(stack, ws, "?limit=100000")
    assert len(rows) == 500
    assert rows[0]["summary"] == "row 1" and rows[-1]["summary"] == "row 500"


def test_list_includes_json_columns_only_when_present(stack):
    ws = new_ws(stack)
    stack.psql("INSERT INTO activity_logs (workspace_id, activity_type, tool_trace, response_body, "
               "status, created_at) VALUES ('%s', 'a2a_receive', '[{\"tool\":\"bash\",\"ms\":0.25}]', "
               "'null', NULL, now() - interval '1 minute')" % ws)
    stack.psql("INSERT INTO activity_logs (workspace_id, activity_type) VALUES ('%s', 'agent_log')" % ws)
    newest, oldest = listing(stack, ws)
    assert list(newest) == BASE_KEYS
    assert list(oldest) == BASE_KEYS + ["response_body", "tool_trace"]
    assert oldest["tool_trace"] == [{"tool": "bash", "ms": 0.25}]
    assert oldest["response_body"] is None and oldest["status"] is None
    raw = stack.admin("GET", "/workspaces/%s/activity?type=a2a_receive" % ws).body
    # jsonb stores object keys shortest first
    assert b'"tool_trace":[{"ms":0.25,"tool":"bash"}]' in raw and b'"source_id":null' in raw


def test_list_unknown_and_invalid_workspaces(stack):
    r = stack.admin("GET", "/workspaces/not-a-uuid/activity")
    assert (r.status, r.json()) == (400, {"error": "invalid workspace ID"})
    r = stack.admin("GET", "/workspaces/%s/activity" % uuid.uuid4())
    assert (r.status, r.json()) == (404, {"error": "workspace not found"})
    # A removed workspace keeps its history readable for operators.
    gone = new_ws(stack, status="removed")
    assert listing(stack, gone) == []


# --- POST /workspaces/:id/notify --------------------------------------------------------

def test_notify_broadcasts_and_persists(stack, sub):
    name = "notify 'quoted'; name"
    ws = new_ws(stack, name=name.replace("'", "''"))
    tok = mint(stack, ws)
    r = stack.request("POST", "/workspaces/%s/notify" % ws, headers=bearer(tok),
                      body={"message": "Done: see \"report\" ✓", "extra": 1})
    assert (r.status, r.body) == (200, b'{"status":"sent"}')
    env = sub.event("AGENT_MESSAGE", ws)
    assert env["payload"] == {"message": "Done: see \"report\" ✓", "workspace_id": ws, "name": name}
    [e] = listing(stack, ws)
    assert e["activity_type"] == "a2a_receive" and e["method"] == "notify"
    assert e["source_id"] is None and e["status"] == "ok"
    assert e["summary"] == "Done: see \"report\" ✓"
    assert e["response_body"] == {"result": "Done: see \"report\" ✓"}


def test_notify_attachments(stack, sub):
    ws = new_ws(stack)
    atts = [{"uri": "workspace:/out/a.pdf", "name": "a.pdf", "mimeType": "application/pdf",
             "size": 1024, "junk": "dropped"},
            {"uri": "workspace:/out/b.txt", "name": "b.txt"}]
    r = stack.admin("POST", "/workspaces/%s/notify" % ws, body={"message": "files", "attachments": atts})
    assert r.status == 200, r.body
    clean = [{"uri": "workspace:/out/a.pdf", "name": "a.pdf", "mimeType": "application/pdf",
              "size": 1024}, {"uri": "workspace:/out/b.txt", "name": "b.txt"}]
    env = sub.event("AGENT_MESSAGE", ws)
    assert env["payload"]["attachments"] == clean
    assert listing(stack, ws)[0]["response_body"] == {"result": "files", "attachments": clean}
    r = stack.admin("POST", "/workspaces/%s/notify" % ws, body={"message": "none", "attachments": []})
    assert r.status == 200
    assert "attachments" not in sub.event("AGENT_MESSAGE", ws)["payload"]


@pytest.mark.parametrize("body,msg", [
    ({}, "message is required"),
    ({"message": ""}, "message is required"),
    ({"message": None}, "message is required"),
    ({"message": 42}, "message is required"),
    ({"message": "m" * 65537}, "message too long (max 65536 bytes)"),
    ({"message": "a\u0000b"}, "message must not contain NUL characters"),
    ({"message": "m", "attachments": "a.pdf"}, "attachments must be an array"),
    ({"message": "m", "attachments": [{"uri": "u", "name": "n"}, {"uri": "u"}]},
     "attachment[1]: uri and name are required"),
    ({"message": "m", "attachments": ["u"]}, "attachment[0]: uri and name are required"),
    ({"message": "m", "attachments": [{"uri": "", "name": "n"}]}, "attachment[0]: uri and name are required"),
    ({"message": "m", "attachments": [{"uri": 1, "name": "n"}]}, "attachment[0]: uri and name are required"),
    ({"message": "m", "attachments": [{"uri": "u", "name": "n", "size": -1}]},
     "attachment[0]: size must be a non-negative integer"),
    ({"message": "m", "attachments": [{"uri": "u", "name": "n", "size": "1"}]},
     "attachment[0]: size must be a non-negative integer"),
    ({"message": "m", "attachments": [{"uri": "u", "name": "n", "mimeType": 3}]},
     "attachment[0]: mimeType must be a string"),
    ({"message": "m", "attachments": [{"uri": "u" * 4097, "name": "n"}]},
     "attachment[0]: uri or name too long"),
    ({"message": "m", "attachments": [{"uri": "u", "name": "n"}] * 21}, "too many attachments (max 20)"),
])
def test_notify_validation(stack, body, msg):
    ws = new_ws(stack)
    r = stack.admin("POST", "/workspaces/%s/notify" % ws, body=body)
    assert (r.status, r.json()) == (400, {"error": msg})
    assert listing(stack, ws) == []


def test_notify_long_message_summary_is_cut_on_a_character(stack):
    ws = new_ws(stack)
    msg = "é" * 30000  # 60000 bytes
    assert stack.admin("POST", "/workspaces/%s/notify" % ws, body={"message": msg}).status == 200
    e = listing(stack, ws)[0]
    assert e["summary"] == "é" * 2048 and e["response_body"]["result"] == msg


def test_notify_unknown_and_invalid_workspaces(stack):
    gone = new_ws(stack, status="removed")
    for ws, status, msg in (("nope", 400, "invalid workspace ID"),
                            (str(uuid.uuid4()), 404, "workspace not found"),
                            (gone, 404, "workspace not found")):
        r = stack.admin("POST", "/workspaces/%s/notify" % ws, body={"message": "hi"})
        assert (r.status, r.json()) == (status, {"error": msg}), ws
    r = stack.admin("POST", "/workspaces/%s/notify" % gone, body='{"message":',
                    headers={"Content-Type": "application/json"})
    assert (r.status, r.json()) == (400, {"error": "invalid JSON"})
