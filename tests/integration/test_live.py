"""Live events: the broadcaster (Redis -> nchan), GET /ws (WebSocket and EventSource) and
GET /workspaces/:id/events/stream (SSE), with the authorize checks of fcgi/h_stream.c."""
import base64
import datetime
import hashlib
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import time
import uuid

import pytest

from conftest import ADMIN_TOKEN, BIN_DIR, start_stack, stop_stack

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ALLOWED_ORIGIN = "http://localhost:3000"
# After the upgrade, nchan may still be wiring the subscription across its workers.
SETTLE_S = 0.3


# ------------------------------------------------------------------ clients

class WebSocket:
    """A minimal RFC 6455 client: handshake, then text frames from the server."""

    def __init__(self, port, path, headers=None, timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % port, "Upgrade: websocket",
                 "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        lines += ["%s: %s" % kv for kv in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = self._read_until(b"\r\n\r\n").decode("latin-1")
        status_line, *hdr_lines = head.split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for line in hdr_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                self.headers[k.strip().lower()] = v.strip()
        self.body = b""
        if self.status == 101:
            want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            assert self.headers.get("sec-websocket-accept") == want, self.headers
        else:
            n = int(self.headers.get("content-length", "0"))
            self.body = self._read_exact(n)
            self.sock.close()

    def json(self):
        return json.loads(self.body)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        self.buf += chunk

    def _read_until(self, sep):
        while sep not in self.buf:
            self._fill()
        out, self.buf = self.buf.split(sep, 1)
        return out

    def _read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        mask = os.urandom(4)
        hdr = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack("!Q", n)
        self.sock.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv(self, timeout):
        """The next text message, or None when nothing arrives within timeout seconds."""
        deadline = time.monotonic() + timeout
        parts = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0 and len(self.buf) < 2:
                return None
            self.sock.settimeout(max(left, 0.01))
            try:
                b0, b1 = self._read_exact(2)
                n = b1 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", self._read_exact(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", self._read_exact(8))[0]
                mask = self._read_exact(4) if b1 & 0x80 else None
                payload = self._read_exact(n)
            except socket.timeout:
                return None
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = b0 & 0x0F
            if opcode == 9:
                self._send_frame(10, payload)
            elif opcode == 8:
                raise ConnectionError("server closed the websocket")
            elif opcode in (0, 1, 2):
                parts += payload
                if b0 & 0x80:
                    return parts.decode()

    def messages(self, window):
        """Every message received during window seconds, parsed as JSON."""
        out = []
        deadline = time.monotonic() + window
        while True:
            m = self.recv(deadline - time.monotonic())
            if m is None:
                return out
            out.append(json.loads(m))

    def wait_for(self, pred, timeout):
        """The first message (JSON) satisfying pred, plus everything received before it."""
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.recv(deadline - time.monotonic())
            if m is None:
                break
            obj = json.loads(m)
            seen.append(obj)
            if pred(obj):
                return obj, seen
        return None, seen

    def close(self):
        try:
            self._send_frame(8, b"")
        except OSError:
            pass
        self.sock.close()


class EventStream:
    """An EventSource-like client: GET with Accept: text/event-stream, then data: lines."""

    def __init__(self, port, path, headers=None, timeout=5):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        h = {"Accept": "text/event-stream"}
        h.update(headers or {})
        self.conn.request("GET", path, headers=h)
        self.sock = self.conn.sock  # http.client forgets it once the response is open-ended
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}
        self.body = b"" if self.status == 200 else self.resp.read()

    def json(self):
        return json.loads(self.body)

    def data_lines(self, window):
        """The raw payloads of the data: lines received during window seconds."""
        out = []
        deadline = time.monotonic() + window
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            self.sock.settimeout(left)
            try:
                line = self.resp.readline()
            except (socket.timeout, TimeoutError):
                return out
            if not line:
                return out
            line = line.decode().rstrip("\r\n")
            if line.startswith("data: "):
                out.append(line[len("data: "):])

    def close(self):
        self.resp.close()
        self.conn.close()


# ------------------------------------------------------------------ helpers

def redis_sock(stack):
    url = stack.stack_env()["REDIS_URL"]
    assert url.startswith("unix://"), url
    return url[len("unix://"):]


def redis_cli(stack, *args):
    res = subprocess.run(["redis-cli", "-s", redis_sock(stack)] + list(args),
                         capture_output=True, text=True, timeout=10)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def envelope(event, workspace_id, payload=None, ts="2026-11-22T07:30:00.123456Z"):
    return {"event": event, "workspace_id": workspace_id, "timestamp": ts, "payload": payload or {}}


def publish(stack, env):
    """What db_commit does after COMMIT: PUBLISH the envelope on molecule:events."""
    redis_cli(stack, "PUBLISH", "molecule:events", json.dumps(env, separators=(",", ":")))


def new_workspace(stack, name, parent=None):
    sql = "INSERT INTO workspaces (name, parent_id) VALUES ('%s', %s) RETURNING id" % (
        name, "'%s'::uuid" % parent if parent else "NULL")
    return stack.psql(sql).splitlines()[0]


def mint_token(stack, workspace_id):
    """A live workspace token, stored as tokens.c does (sha256 + 8-char prefix)."""
    tok = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    digest = hashlib.sha256(tok.encode()).hexdigest()
    stack.psql("INSERT INTO workspace_auth_tokens (workspace_id, token_hash, prefix) "
               "VALUES ('%s', decode('%s', 'hex'), '%s')" % (workspace_id, digest, tok[:8]))
    return tok


def ws(stack, path="/ws", headers=None):
    w = WebSocket(stack.port, path, headers)
    if w.status == 101:
        time.sleep(SETTLE_S)
    return w


def canvas(stack):
    w = ws(stack, headers={"Authorization": "Bearer " + ADMIN_TOKEN})
    assert w.status == 101, (w.status, w.body)
    return w


def broadcaster_entry(stack):
    return stack.liveness().get("broadcaster")


def epoch_ms(ts):
    dt = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(dt.timestamp() * 1000)


def uid():
    return uuid.uuid4().hex[:10]


# ------------------------------------------------------------------ broadcaster

def test_broadcaster_is_supervised_and_beats(stack):
    entry = stack.wait_for(lambda: broadcaster_entry(stack), timeout=5)
    assert entry, stack.liveness()
    assert entry["seconds_ago"] <= 2, entry
    # Idle (no events) it still beats every heartbeat_interval (1 s here).
    time.sleep(2.2)
    assert broadcaster_entry(stack)["seconds_ago"] <= 2
    assert redis_cli(stack, "PUBSUB", "NUMSUB", "molecule:events").splitlines()[1] == "1"


def test_canvas_client_receives_published_envelope_verbatim(stack):
    wid = new_workspace(stack, "live-verbatim-" + uid())
    env = envelope("WORKSPACE_ONLINE", wid, {"url": "http://localhost:1", "quote": "it's; \"x\""})
    c = canvas(stack)
    try:
        t0 = time.monotonic()
        publish(stack, env)
        got, _ = c.wait_for(lambda m: m.get("workspace_id") == wid, timeout=1.0)
        assert got is not None, "no event within 1 s"
        assert time.monotonic() - t0 < 1.0
        assert got == env
    finally:
        c.close()


def test_register_emits_workspace_online_to_canvas(stack):
    wid = str(uuid.uuid4())
    c = canvas(stack)
    try:
        t0 = time.monotonic()
        r = stack.request("POST", "/registry/register",
                          body={"id": wid, "url": "http://localhost:8999", "agent_card": {"name": "live"}})
        if r.status == 501:
            pytest.skip("POST /registry/register not implemented yet")
        assert r.status == 200, r.body
        got, _ = c.wait_for(lambda m: m.get("workspace_id") == wid and m.get("event") == "WORKSPACE_ONLINE",
                            timeout=1.0)
        assert got is not None, "WORKSPACE_ONLINE not delivered within 1 s"
        assert time.monotonic() - t0 < 1.5
        assert set(got) == {"event", "workspace_id", "timestamp", "payload"}
        assert got["payload"]["url"] == "http://localhost:8999"
    finally:
        c.close()


def test_malformed_envelopes_are_dropped_not_fatal(stack):
    pid = broadcaster_entry(stack)["pid"]
    wid = new_workspace(stack, "live-malformed-" + uid())
    c = canvas(stack)
    try:
        redis_cli(stack, "PUBLISH", "molecule:events", "not json at all")
        redis_cli(stack, "PUBLISH", "molecule:events", '{"workspace_id":"%s"}' % wid)
        redis_cli(stack, "PUBLISH", "molecule:events", '[1,2,3]')
        good = envelope("LIVE_AFTER_GARBAGE", wid)
        publish(stack, good)
        got, seen = c.wait_for(lambda m: m.get("event") == "LIVE_AFTER_GARBAGE" and m["workspace_id"] == wid,
                               timeout=2)
        assert got == good
        assert not [m for m in seen if m.get("workspace_id") == wid and m is not got]
    finally:
        c.close()
    assert broadcaster_entry(stack)["pid"] == pid
    assert "dropping a malformed event envelope" in stack.log("moleculed.log")


def test_killed_broadcaster_is_restarted_and_events_flow_again(stack):
    before = stack.wait_for(lambda: broadcaster_entry(stack), timeout=5)
    os.kill(before["pid"], signal.SIGKILL)
    after = stack.wait_for(lambda: (lambda e: e if e and e["pid"] != before["pid"] else None)(
        broadcaster_entry(stack)), timeout=10)
    assert after, "broadcaster not restarted"
    assert after["restarts"] == before["restarts"] + 1
    assert "broadcaster: killed by signal 9" in stack.log("moleculed.log")
    assert stack.wait_for(lambda: redis_cli(stack, "PUBSUB", "NUMSUB", "molecule:events").splitlines()[1] == "1",
                          timeout=5)
    wid = new_workspace(stack, "live-restart-" + uid())
    c = canvas(stack)
    try:
        env = envelope("LIVE_AFTER_RESTART", wid)
        publish(stack, env)
        got, _ = c.wait_for(lambda m: m.get("workspace_id") == wid, timeout=1.0)
        assert got == env
    finally:
        c.close()


def test_broadcaster_resubscribes_after_losing_redis(stack):
    pid = broadcaster_entry(stack)["pid"]
    redis_cli(stack, "CLIENT", "KILL", "TYPE", "pubsub")
    assert stack.wait_for(lambda: "lost the redis subscription" in stack.log("moleculed.log"), timeout=5)
    assert stack.wait_for(lambda: redis_cli(stack, "PUBSUB", "NUMSUB", "molecule:events").splitlines()[1] == "1",
                          timeout=5)
    wid = new_workspace(stack, "live-resub-" + uid())
    c = canvas(stack)
    try:
        env = envelope("LIVE_AFTER_RESUBSCRIBE", wid)
        publish(stack, env)
        got, _ = c.wait_for(lambda m: m.get("workspace_id") == wid, timeout=1.0)
        assert got == env
    finally:
        c.close()
    assert broadcaster_entry(stack)["pid"] == pid


@pytest.mark.parametrize("sock", [None, "", "relative/nchan.sock", "/" + "x" * 120])
def test_broadcaster_bad_publish_socket_is_fatal(stack, sock):
    env = {k: v for k, v in os.environ.items() if k != "NCHAN_PUBLISH_SOCKET"}
    env.update({"DATABASE_URL": stack.stack_env()["DATABASE_URL"], "REDIS_URL": stack.stack_env()["REDIS_URL"],
                "MOLECULE_ENV": "test"})
    if sock is not None:
        env["NCHAN_PUBLISH_SOCKET"] = sock
    res = subprocess.run([os.path.join(BIN_DIR, "molecule-broadcaster")], env=env, capture_output=True,
                         text=True, timeout=10)
    assert res.returncode == 2, res.stderr
    assert "NCHAN_PUBLISH_SOCKET" in res.stderr


# ------------------------------------------------------------------ /ws: canvas clients

def test_canvas_client_refused_without_credentials(stack):
    w = ws(stack)
    assert w.status == 403
    assert w.json() == {"error": "event stream requires canvas credentials"}
    assert w.headers.get("x-request-id")
    w = ws(stack, headers={"Authorization": "Bearer not-the-admin-token"})
    assert w.status == 403
    assert w.json() == {"error": "event stream requires canvas credentials"}
    w = ws(stack, "/ws?token=wrong%27%3Btoken")
    assert w.status == 403


def test_canvas_client_allowed_with_admin_bearer_or_token_query(stack):
    w = ws(stack, headers={"Authorization": "Bearer " + ADMIN_TOKEN})
    assert w.status == 101
    w.close()
    w = ws(stack, "/ws?token=" + ADMIN_TOKEN)
    assert w.status == 101
    w.close()
    # The credential in the query never reaches a log.
    time.sleep(0.2)
    assert ADMIN_TOKEN not in stack.log("nginx-access.log")
    assert ADMIN_TOKEN not in stack.log("moleculed.log")


def test_canvas_client_allowed_from_allowed_origin(stack):
    w = ws(stack, headers={"Origin": ALLOWED_ORIGIN})
    assert w.status == 101
    w.close()
    w = ws(stack, headers={"Origin": "http://evil.example"})
    assert w.status == 403
    assert w.json() == {"error": "origin not allowed"}


def test_canvas_client_with_org_token(stack):
    tok = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    stack.psql("INSERT INTO org_api_tokens (token_hash, prefix, name) VALUES (decode('%s', 'hex'), '%s', 'live')"
               % (hashlib.sha256(tok.encode()).hexdigest(), tok[:8]))
    w = ws(stack, headers={"Authorization": "Bearer " + tok})
    assert w.status == 101
    w.close()
    w = ws(stack, "/ws?token=" + tok)
    assert w.status == 101
    w.close()
    stack.psql("UPDATE org_api_tokens SET revoked_at = now() WHERE prefix = '%s'" % tok[:8])
    w = ws(stack, headers={"Authorization": "Bearer " + tok})
    assert w.status == 403


def test_eventsource_on_ws_for_non_websocket_clients(stack):
    wid = new_workspace(stack, "live-es-" + uid())
    es = EventStream(stack.port, "/ws", {"Authorization": "Bearer " + ADMIN_TOKEN})
    try:
        assert es.status == 200
        assert es.headers["content-type"].startswith("text/event-stream")
        time.sleep(SETTLE_S)
        env = envelope("LIVE_ES", wid, {"n": 1})
        publish(stack, env)
        lines = [json.loads(x) for x in es.data_lines(1.0)]
        assert env in lines
    finally:
        es.close()
    es = EventStream(stack.port, "/ws")
    assert es.status == 403
    assert es.json() == {"error": "event stream requires canvas credentials"}


def test_non_stream_requests_get_json_errors(stack):
    wpath = "/workspaces/%s/events/stream" % new_workspace(stack, "live-406-" + uid())
    for method, path, want in (("GET", "/ws", 406), ("POST", "/ws", 405), ("DELETE", "/ws", 405),
                               ("GET", wpath, 406), ("PUT", wpath, 405)):
        r = stack.admin(method, path)
        assert r.status == want, (method, path, r.status, r.body)
        assert r.header("content-type") == "application/json"
        assert "error" in r.json()
        assert r.header("x-content-type-options") == "nosniff"


def test_internal_auth_routes_are_not_reachable_from_outside(stack):
    for path in ("/internal/ws-auth", "/internal/sse-auth/%s" % uuid.uuid4(), "/internal/",
                 "/%69nternal/ws-auth", "//internal/ws-auth?token=" + ADMIN_TOKEN):
        r = stack.admin("GET", path)
        assert r.status == 404, path
        assert r.json() == {"error": "not found"}
    r = stack.get("/ws/extra")
    assert r.status == 404


# ------------------------------------------------------------------ /ws: workspace clients

def test_workspace_client_bad_ids(stack):
    for hdr in ("not-a-uuid", "x'; DROP TABLE workspaces;--", str(uuid.uuid4()).upper()):
        w = ws(stack, headers={"X-Workspace-ID": hdr})
        assert w.status == 400, hdr
        assert w.json() == {"error": "invalid workspace ID"}
    w = ws(stack, "/ws?workspace_id=%27%3B--")
    assert w.status == 400
    assert w.json() == {"error": "invalid workspace ID"}
    w = ws(stack, headers={"X-Workspace-ID": str(uuid.uuid4())})
    assert w.status == 404
    assert w.json() == {"error": "workspace not found"}


def test_workspace_client_token_checks(stack):
    wid = new_workspace(stack, "live-tok-" + uid())
    # No live token yet: lazily bootstrapped, as the reference.
    w = ws(stack, headers={"X-Workspace-ID": wid})
    assert w.status == 101
    w.close()
    tok = mint_token(stack, wid)
    other = mint_token(stack, new_workspace(stack, "live-tok-other-" + uid()))
    w = ws(stack, headers={"X-Workspace-ID": wid})
    assert w.status == 401
    assert w.json() == {"error": "missing workspace auth token"}
    for bad in (other, ADMIN_TOKEN, "garbage"):
        w = ws(stack, headers={"X-Workspace-ID": wid, "Authorization": "Bearer " + bad})
        assert w.status == 401
        assert w.json() == {"error": "invalid workspace auth token"}
    w = ws(stack, headers={"X-Workspace-ID": wid, "Authorization": "Bearer " + tok})
    assert w.status == 101
    w.close()
    w = ws(stack, "/ws?workspace_id=%s&token=%s" % (wid, tok))
    assert w.status == 101
    w.close()
    time.sleep(0.2)
    assert tok not in stack.log("nginx-access.log")
    # A removed workspace no longer streams.
    stack.psql("UPDATE workspaces SET status = 'removed' WHERE id = '%s'" % wid)
    w = ws(stack, headers={"X-Workspace-ID": wid, "Authorization": "Bearer " + tok})
    assert w.status == 404


def test_workspace_client_gets_own_events_not_cousins(stack):
    tag = uid()
    r1 = new_workspace(stack, "live-r1-" + tag)
    a = new_workspace(stack, "live-a-" + tag, r1)
    r2 = new_workspace(stack, "live-r2-" + tag)
    cousin = new_workspace(stack, "live-c-" + tag, r2)
    w = ws(stack, headers={"X-Workspace-ID": a})
    assert w.status == 101
    try:
        publish(stack, envelope("LIVE_COUSIN", cousin, {"secret": "no"}))
        publish(stack, envelope("LIVE_GLOBAL", None))
        own = envelope("LIVE_OWN", a, {"n": 1})
        publish(stack, own)
        got, seen = w.wait_for(lambda m: m.get("event") == "LIVE_OWN", timeout=1.0)
        assert got == own
        more = w.messages(0.5)
        events = [m["event"] for m in seen + more]
        assert "LIVE_COUSIN" not in events
        assert "LIVE_GLOBAL" not in events
    finally:
        w.close()


def test_workspace_client_hears_its_audience(stack):
    tag = uid()
    root = new_workspace(stack, "live-root-" + tag)
    a = new_workspace(stack, "live-a-" + tag, root)
    sib = new_workspace(stack, "live-sib-" + tag, root)
    grandchild = new_workspace(stack, "live-gc-" + tag, new_workspace(stack, "live-child-" + tag, a))
    r = stack.admin("POST", "/registry/check-access", body={"caller_id": a, "target_id": sib})
    if r.status == 501:
        pytest.skip("the access policy (common/access.c) is not implemented yet")
    assert r.json() == {"allowed": True}
    w = ws(stack, "/ws?workspace_id=" + a)
    assert w.status == 101
    try:
        envs = [envelope("LIVE_SIBLING", sib), envelope("LIVE_PARENT", root), envelope("LIVE_GRANDCHILD", grandchild)]
        for env in envs:
            publish(stack, env)
        got = w.messages(1.0)
        for env in envs:
            assert env in got, (env["event"], got)
    finally:
        w.close()


# ------------------------------------------------------------------ SSE per workspace

def test_sse_stream_gets_only_its_workspace_in_reference_form(stack):
    tag = uid()
    wid = new_workspace(stack, "live-sse-" + tag)
    other = new_workspace(stack, "live-sse-other-" + tag)
    es = EventStream(stack.port, "/workspaces/%s/events/stream" % wid, {"Authorization": "Bearer " + ADMIN_TOKEN})
    try:
        assert es.status == 200, es.body
        assert es.headers["content-type"].startswith("text/event-stream")
        assert es.headers.get("x-accel-buffering") == "no"
        assert es.headers.get("cache-control") == "no-cache"
        time.sleep(SETTLE_S)
        publish(stack, envelope("LIVE_SSE_OTHER", other, {"n": 0}))
        env = envelope("LIVE_SSE", wid, {"n": 1, "s": "a\"b"})
        publish(stack, env)
        publish(stack, envelope("LIVE_SSE_NULL", None))
        lines = es.data_lines(1.0)
        want = '{"type":"LIVE_SSE","timestamp":%d,"data":{"n":1,"s":"a\\"b"}}' % epoch_ms(env["timestamp"])
        assert lines == [want], lines
    finally:
        es.close()


def test_sse_stream_auth(stack):
    wid = new_workspace(stack, "live-sse-auth-" + uid())
    path = "/workspaces/%s/events/stream" % wid
    es = EventStream(stack.port, path)
    assert es.status == 401
    assert es.json() == {"error": "missing workspace auth token"}
    tok = mint_token(stack, wid)
    es = EventStream(stack.port, path, {"Authorization": "Bearer wrong"})
    assert es.status == 401
    assert es.json() == {"error": "invalid workspace auth token"}
    es = EventStream(stack.port, path, {"Authorization": "Bearer " + tok})
    assert es.status == 200
    es.close()
    es = EventStream(stack.port, "/workspaces/%s/events/stream" % uuid.uuid4(),
                     {"Authorization": "Bearer " + ADMIN_TOKEN})
    assert es.status == 404
    assert es.json() == {"error": "workspace not found"}
    for bad in ("not-a-uuid", wid.upper()):
        es = EventStream(stack.port, "/workspaces/%s/events/stream" % bad, {"Authorization": "Bearer " + ADMIN_TOKEN})
        assert es.status == 400, bad
        assert es.json() == {"error": "invalid workspace ID"}
    es = EventStream(stack.port, "/workspaces/a%3Bb/events/stream", {"Authorization": "Bearer " + ADMIN_TOKEN})
    assert es.status == 404


# ------------------------------------------------------------------ bootstrap (no ADMIN_TOKEN)

@pytest.fixture(scope="module")
def open_stack():
    """No ADMIN_TOKEN, MOLECULE_ENV=test: canvas clients pass only until a workspace token exists."""
    env = {"MOLECULE_ENV": "test", "ADMIN_TOKEN": ""}
    s = start_stack(env)
    yield s
    problems = stop_stack(s)
    assert not problems, "\n".join(problems)


def test_canvas_bootstrap_until_first_token(open_stack):
    w = ws(open_stack)
    assert w.status == 101
    w.close()
    wid = new_workspace(open_stack, "live-boot-" + uid())
    mint_token(open_stack, wid)
    w = ws(open_stack)
    assert w.status == 403
    assert w.json() == {"error": "event stream requires canvas credentials"}
    w = ws(open_stack, headers={"Origin": ALLOWED_ORIGIN})
    assert w.status == 101
    w.close()
