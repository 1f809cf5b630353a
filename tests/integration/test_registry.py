"""The registry routes agents call about themselves: register, heartbeat, update-card (api.md §4.4-4.6)."""
import json
import re
import subprocess
import time
import uuid

import pytest

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
CARD = {"name": "agent", "description": "d", "version": "1", "skills": [{"id": "s", "name": "S"}]}


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def new_ws(stack, status="online", parent=None, url=None, name=None):
    wid = str(uuid.uuid4())
    stack.psql("INSERT INTO workspaces (id, name, parent_id, status, url) VALUES ('%s', '%s', %s, '%s', %s)" % (
        wid, name or "reg-" + wid[:8], "'%s'" % parent if parent else "NULL", status,
        "'%s'" % url if url else "NULL"))
    return wid


def register(stack, wid, url="http://agent-host:8000", card=None, headers=None):
    return stack.request("POST", "/registry/register", headers=headers,
                         body={"id": wid, "url": url, "agent_card": card if card is not None else CARD})


def heartbeat(stack, wid, headers=None, **fields):
    return stack.request("POST", "/registry/heartbeat", headers=headers, body=dict(fields, workspace_id=wid))


def row(stack, wid, cols):
    return stack.psql("SELECT %s FROM workspaces WHERE id = '%s'" % (cols, wid))


def events(stack, wid, etype=None):
    sql = "SELECT event_type, payload::text FROM structure_events WHERE workspace_id = '%s'" % wid
    if etype:
        sql += " AND event_type = '%s'" % etype
    out = stack.psql(sql + " ORDER BY created_at, id")
    return [(l.split("|", 1)[0], json.loads(l.split("|", 1)[1])) for l in out.splitlines() if l]


def redis(stack, *args):
    sock = stack.stack_env()["REDIS_URL"][len("unix://"):]
    res = subprocess.run(["redis-cli", "-s", sock] + list(args), capture_output=True, text=True,
                         timeout=10, check=True)
    return res.stdout.strip()


def raw_post(stack, path, body):
    return stack.request("POST", path, headers={"Content-Type": "application/json"}, body=body)


# --- register ---------------------------------------------------------------------------------

def test_register_unknown_id_creates_root_and_mints_once(stack):
    wid = str(uuid.uuid4())
    r = register(stack, wid)
    assert r.status == 200, r.body
    body = r.json()
    assert set(body) == {"status", "auth_token", "platform_inbound_secret"}
    assert body["status"] == "registered"
    assert TOKEN_RE.match(body["auth_token"]) and TOKEN_RE.match(body["platform_inbound_secret"])
    assert body["auth_token"] != body["platform_inbound_secret"]
    # Keys sorted, compact: what the reference (a Go map) sends.
    assert r.body.startswith(b'{"auth_token":"') and b'"status":"registered"}' in r.body
    assert row(stack, wid, "name, status, parent_id IS NULL, url, agent_card->>'name', "
               "last_heartbeat_at IS NOT NULL") == "%s|online|t|http://agent-host:8000|agent|t" % wid
    assert stack.psql("SELECT count(*) FROM workspace_auth_tokens WHERE workspace_id = '%s' "
                      "AND revoked_at IS NULL" % wid) == "1"
    # The secret is stored encrypted (version 2: the stack's static key), never as plaintext.
    assert row(stack, wid, "platform_inbound_secret_version") == "2"
    stored = row(stack, wid, "encode(platform_inbound_secret, 'hex')")
    assert body["platform_inbound_secret"].encode().hex() not in stored
    ev = events(stack, wid, "WORKSPACE_ONLINE")
    assert ev == [("WORKSPACE_ONLINE", {"url": "http://agent-host:8000", "agent_card": CARD})]

    # Now the workspace has a token: register needs it, and does not mint another.
    r = register(stack, wid)
    assert r.status == 401 and r.json() == {"error": "missing workspace auth token"}
    r = register(stack, wid, headers=bearer("x" * 43))
    assert r.status == 401 and r.json() == {"error": "invalid workspace auth token"}
    r = register(stack, wid, url="https://moved.example:9443/a2a", headers=bearer(body["auth_token"]))
    assert r.status == 200, r.body
    again = r.json()
    assert again == {"status": "registered", "platform_inbound_secret": body["platform_inbound_secret"]}
    assert stack.psql("SELECT count(*) FROM workspace_auth_tokens WHERE workspace_id = '%s'" % wid) == "1"
    assert row(stack, wid, "url") == "https://moved.example:9443/a2a"
    assert len(events(stack, wid, "WORKSPACE_ONLINE")) == 2


def test_register_existing_row_goes_online_and_keeps_provisioner_url(stack):
    wid = new_ws(stack, status="provisioning", url="http://127.0.0.1:41234")
    r = register(stack, wid, url="http://ws-agent:8000")
    assert r.status == 200, r.body
    assert "auth_token" in r.json()
    assert row(stack, wid, "status, url, agent_card->>'name', name") == \
        "online|http://127.0.0.1:41234|agent|%s" % ("reg-" + wid[:8])
    assert events(stack, wid, "WORKSPACE_ONLINE")[0][1]["url"] == "http://127.0.0.1:41234"
    # Host-reachable URL for the proxy, the agent's own for peers.
    assert redis(stack, "GET", "ws:%s:url" % wid) == "http://127.0.0.1:41234"
    assert redis(stack, "GET", "ws:%s:internal_url" % wid) == "http://ws-agent:8000"


def test_register_sets_liveness_key_with_ttl(stack):
    wid = new_ws(stack, status="offline")
    assert register(stack, wid).status == 200
    assert redis(stack, "GET", "ws:%s" % wid) == "online"
    ttl = int(redis(stack, "TTL", "ws:%s" % wid))
    assert 170 <= ttl <= 180
    assert 290 <= int(redis(stack, "TTL", "ws:%s:url" % wid)) <= 300


def test_register_removed_workspace_is_404(stack):
    wid = new_ws(stack, status="removed")
    r = register(stack, wid)
    assert r.status == 404 and r.json() == {"error": "workspace not found"}
    assert row(stack, wid, "status, url IS NULL, platform_inbound_secret IS NULL") == "removed|t|t"
    assert stack.psql("SELECT count(*) FROM workspace_auth_tokens WHERE workspace_id = '%s'" % wid) == "0"
    assert events(stack, wid) == []


def test_register_uppercase_id_is_the_same_workspace(stack):
    wid = str(uuid.uuid4())
    tok = register(stack, wid).json()["auth_token"]
    # A non-canonical spelling of the id must not slip past the token check.
    r = register(stack, wid.upper())
    assert r.status == 401 and r.json() == {"error": "missing workspace auth token"}
    r = register(stack, wid.upper(), headers=bearer(tok))
    assert r.status == 200 and "auth_token" not in r.json()
    assert redis(stack, "GET", "ws:%s" % wid) == "online"


def test_register_stores_hostile_strings_verbatim(stack):
    wid = str(uuid.uuid4())
    card = {"name": "x'; DROP TABLE workspaces; --", "q": "\"\\", "n": 1.5, "u": "é☃"}
    r = register(stack, wid, url="http://agent.example/a?b='c';d", card=card)
    assert r.status == 200, r.body
    assert json.loads(row(stack, wid, "agent_card::text")) == card
    assert row(stack, wid, "url") == "http://agent.example/a?b='c';d"
    # A string or array card is any JSON value too.
    wid2 = str(uuid.uuid4())
    assert register(stack, wid2, card="just text").status == 200
    assert row(stack, wid2, "agent_card::text") == '"just text"'


@pytest.mark.parametrize("body", [
    {"url": "http://a.example", "agent_card": {}},
    {"id": "not-a-uuid", "url": "http://a.example", "agent_card": {}},
    {"id": "123e4567-e89b-12d3-a456-42661417400", "url": "http://a.example", "agent_card": {}},
    {"id": 12345, "url": "http://a.example", "agent_card": {}},
    {"id": "%s", "agent_card": {}},
    {"id": "%s", "url": 80, "agent_card": {}},
    {"id": "%s", "url": "", "agent_card": {}},
    {"id": "%s", "url": None, "agent_card": {}},
    {"id": "%s", "url": "http://a.example"},
    {"id": "%s", "url": "http://a.example", "agent_card": None},
    {"id": "%s'; DROP TABLE workspaces; --", "url": "http://a.example", "agent_card": {}},
])
def test_register_bad_bodies(stack, body):
    body = {k: (v % uuid.uuid4() if isinstance(v, str) and "%s" in v else v) for k, v in body.items()}
    r = stack.request("POST", "/registry/register", body=body)
    assert r.status == 400 and r.json() == {"error": "invalid request body"}


@pytest.mark.parametrize("raw", ["{", "[]", "\"x\"", "{\"id\":1,}", "null"])
def test_register_malformed_json(stack, raw):
    r = raw_post(stack, "/registry/register", raw)
    assert r.status == 400 and r.json() == {"error": "invalid request body"}


def test_register_oversize_body(stack):
    big = {"id": str(uuid.uuid4()), "url": "http://a.example", "agent_card": {"x": "y" * (2 << 20)}}
    r = stack.request("POST", "/registry/register", body=big)
    assert r.status == 413


@pytest.mark.parametrize("url,reason", [
    ("ftp://agent.example", "scheme must be http or https"),
    ("agent.example:8000", "scheme must be http or https"),
    ("http://", "host is missing"),
    ("http://user:pw@agent.example", "credentials in the url are not allowed"),
    ("http://agent.example:99999", "port is out of range"),
    ("http://agent.example:http", "port is not a number"),
    ("http://127.0.0.1:8000", "loopback address (127.0.0.0/8) is not allowed"),
    ("http://169.254.169.254/latest", "link-local address (169.254.0.0/16, cloud metadata) is not allowed"),
    ("http://0.0.0.0:80", "unspecified address (0.0.0.0/8) is not allowed"),
    ("http://224.0.0.1", "multicast address (224.0.0.0/4) is not allowed"),
    ("http://255.255.255.255", "reserved address (240.0.0.0/4) is not allowed"),
    ("http://100.64.1.1", "shared address space (100.64.0.0/10) is not allowed"),
    ("http://198.51.100.4", "documentation address (198.51.100.0/24) is not allowed"),
    ("http://[::1]:8000", "loopback address (::1) is not allowed"),
    ("http://[fe80::1]", "link-local address (fe80::/10) is not allowed"),
    ("http://[ff02::1]", "multicast address (ff00::/8) is not allowed"),
    ("http://[2001:db8::5]", "documentation address (2001:db8::/32) is not allowed"),
    ("http://[::ffff:127.0.0.1]", "loopback address (127.0.0.0/8) is not allowed"),
    ("http://[::ffff:169.254.169.254]", "link-local address (169.254.0.0/16, cloud metadata) is not allowed"),
    ("http://2130706433", "non-canonical IPv4 address"),
    ("http://127.1", "non-canonical IPv4 address"),
    ("http://bad_host!.example", "invalid host name"),
    ("http://agent.example';DROP-TABLE-x;--", "invalid host name"),
    ("http://agent.example'; DROP TABLE x;--", "url contains whitespace or control characters"),
])
def test_register_rejects_unsafe_urls_with_reason(stack, url, reason):
    wid = str(uuid.uuid4())
    r = register(stack, wid, url=url)
    assert r.status == 400, r.body
    assert r.json() == {"error": "invalid agent url: " + reason}
    assert row(stack, wid, "count(*)") == "0"


@pytest.mark.parametrize("url", [
    "http://localhost:9999", "http://10.1.2.3:8000", "http://172.17.0.2:8000", "http://192.168.0.9",
    "http://[fd00::1]:8000", "https://agent.example.com/a2a", "http://ws-abc_1:8000", "http://8.8.8.8",
])
def test_register_accepts_container_and_public_urls(stack, url):
    r = register(stack, str(uuid.uuid4()), url=url)
    assert r.status == 200, r.body


# --- heartbeat --------------------------------------------------------------------------------

def test_heartbeat_writes_counters_and_answers_ok(stack):
    wid = new_ws(stack)
    r = heartbeat(stack, wid, error_rate=0.25, sample_error="boom 'x'; --", active_tasks=3,
                  uptime_seconds=120, current_task="summarise \"doc\"", monthly_spend=1500)
    assert r.status == 200 and r.body == b'{"status":"ok"}'
    assert row(stack, wid, "last_error_rate, last_sample_error, active_tasks, uptime_seconds, current_task, "
               "monthly_spend, status, last_heartbeat_at IS NOT NULL") == \
        "0.25|boom 'x'; --|3|120|summarise \"doc\"|1500|online|t"
    # 0 and negatives leave the spend alone; absurd values are clamped.
    heartbeat(stack, wid, monthly_spend=0)
    assert row(stack, wid, "monthly_spend") == "1500"
    heartbeat(stack, wid, monthly_spend=-5)
    assert row(stack, wid, "monthly_spend") == "1500"
    heartbeat(stack, wid, monthly_spend=9223372036854775807)
    assert row(stack, wid, "monthly_spend") == "1000000000000"
    # Absent fields take zero values, as the reference binds them.
    heartbeat(stack, wid)
    assert row(stack, wid, "last_error_rate, last_sample_error, active_tasks, current_task") == "0||0|"


def test_heartbeat_unknown_and_removed_ids_answer_ok(stack):
    wid = str(uuid.uuid4())
    r = heartbeat(stack, wid, active_tasks=1)
    assert r.status == 200 and r.json() == {"status": "ok"}
    assert row(stack, wid, "count(*)") == "0"
    gone = new_ws(stack, status="removed")
    assert heartbeat(stack, gone, active_tasks=7).status == 200
    assert row(stack, gone, "status, active_tasks, last_heartbeat_at IS NULL") == "removed|0|t"
    assert redis(stack, "EXISTS", "ws:%s" % gone) == "0"


TRANSITIONS = [
    # from, body, to, event
    ("online", {"runtime_state": "wedged", "sample_error": "sdk stuck"}, "degraded",
     ("WORKSPACE_DEGRADED", {"runtime_state": "wedged", "sample_error": "sdk stuck"})),
    ("online", {"runtime_state": "wedged", "runtime_metadata": {"capabilities": {"status_mgmt": True}}},
     "degraded", ("WORKSPACE_DEGRADED", {"runtime_state": "wedged", "sample_error": ""})),
    ("online", {"error_rate": 0.5, "sample_error": "503s"}, "degraded",
     ("WORKSPACE_DEGRADED", {"error_rate": 0.5, "sample_error": "503s"})),
    ("online", {"error_rate": 1}, "degraded", ("WORKSPACE_DEGRADED", {"error_rate": 1, "sample_error": ""})),
    ("online", {"error_rate": 0.9, "runtime_metadata": {"capabilities": {"status_mgmt": True, "session": False}}},
     "online", None),
    ("online", {"error_rate": 0.49}, "online", None),
    ("online", {"runtime_state": "ok"}, "online", None),
    ("degraded", {"error_rate": 0.05}, "online", ("WORKSPACE_ONLINE", {})),
    ("degraded", {}, "online", ("WORKSPACE_ONLINE", {})),
    ("degraded", {"error_rate": 0.1}, "degraded", None),
    ("degraded", {"error_rate": 0.0, "runtime_state": "wedged"}, "degraded", None),
    ("degraded", {"error_rate": 0.0, "runtime_state": "ok"}, "degraded", None),
    ("degraded", {"error_rate": 0.0, "runtime_metadata": {"capabilities": {"status_mgmt": True}}}, "degraded", None),
    ("degraded", {"error_rate": 0.0, "runtime_metadata": {"capabilities": {"status_mgmt": False}}},
     "online", ("WORKSPACE_ONLINE", {})),
    ("offline", {"error_rate": 0.9}, "online", ("WORKSPACE_ONLINE", {})),
    ("offline", {}, "online", ("WORKSPACE_ONLINE", {})),
    ("provisioning", {}, "online", ("WORKSPACE_ONLINE", {"recovered_from": "provisioning"})),
    ("failed", {}, "failed", None),
    ("paused", {"error_rate": 0.9}, "paused", None),
    ("hibernated", {}, "hibernated", None),
    ("awaiting_agent", {}, "awaiting_agent", None),
]


@pytest.mark.parametrize("start,body,end,event", TRANSITIONS)
def test_heartbeat_status_transitions(stack, start, body, end, event):
    wid = new_ws(stack, status=start)
    r = heartbeat(stack, wid, active_tasks=2, **body)
    assert r.status == 200, r.body
    assert row(stack, wid, "status, active_tasks") == "%s|2" % end
    assert events(stack, wid) == ([event] if event else [])
    # The counters were written by the same heartbeat whatever the path.
    assert row(stack, wid, "last_heartbeat_at IS NOT NULL") == "t"


def test_heartbeat_without_transition_writes_no_event(stack):
    wid = new_ws(stack)
    for i in range(5):
        assert heartbeat(stack, wid, active_tasks=i, current_task="t%d" % i).status == 200
    assert events(stack, wid) == []
    assert row(stack, wid, "active_tasks, current_task") == "4|t4"


def test_concurrent_heartbeats_alternate_transitions(stack):
    """Under the row lock every transition is decided once."""
    import threading
    wid = new_ws(stack)
    errors = []

    def beat(i):
        for j in range(10):
            r = heartbeat(stack, wid, error_rate=0.9 if (i + j) % 2 else 0.0, active_tasks=j)
            if r.status != 200:
                errors.append(r.body)

    threads = [threading.Thread(target=beat, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    kinds = [e[0] for e in events(stack, wid)]
    degraded, online = kinds.count("WORKSPACE_DEGRADED"), kinds.count("WORKSPACE_ONLINE")
    assert degraded >= 1 and degraded + online == len(kinds)
    # Starting online, each degrade is followed by at most one recovery: no double transitions.
    # (created_at is the transaction's start, so the log's order can differ from commit order.)
    assert degraded - online in (0, 1), kinds
    assert row(stack, wid, "status") == ("degraded" if degraded > online else "online")


def test_heartbeat_degrade_then_recover_round_trip(stack):
    wid = new_ws(stack)
    heartbeat(stack, wid, error_rate=0.75, sample_error="e1")
    heartbeat(stack, wid, error_rate=0.75, sample_error="e2")   # already degraded: nothing new
    heartbeat(stack, wid, error_rate=0.05)
    assert [e[0] for e in events(stack, wid)] == ["WORKSPACE_DEGRADED", "WORKSPACE_ONLINE"]
    assert events(stack, wid)[0][1] == {"error_rate": 0.75, "sample_error": "e1"}
    assert row(stack, wid, "status") == "online"


@pytest.mark.parametrize("fields", [
    {"workspace_id": "nope"},
    {"workspace_id": 5},
    {},
    {"error_rate": "high"},
    {"error_rate": True},
    {"sample_error": 5},
    {"active_tasks": 1.5},
    {"active_tasks": "2"},
    {"active_tasks": -1},
    {"active_tasks": 2147483648},
    {"uptime_seconds": [1]},
    {"current_task": {"a": 1}},
    {"monthly_spend": 1.25},
    {"runtime_state": 1},
    {"runtime_metadata": "caps"},
    {"runtime_metadata": {"capabilities": {"status_mgmt": "yes"}}},
    {"runtime_metadata": {"capabilities": ["status_mgmt"]}},
    {"runtime_metadata": {"idle_timeout_seconds": "60"}},
])
def test_heartbeat_bad_bodies(stack, fields):
    wid = new_ws(stack, status="offline")
    body = {"workspace_id": wid}
    body.update(fields)
    if "workspace_id" not in fields and fields == {}:
        body = {"active_tasks": 1}
    r = stack.request("POST", "/registry/heartbeat", body=body)
    assert r.status == 400 and r.json() == {"error": "invalid request body"}
    assert row(stack, wid, "status") == "offline"


def test_heartbeat_accepts_nulls_and_full_metadata(stack):
    wid = new_ws(stack)
    r = heartbeat(stack, wid, error_rate=None, sample_error=None, current_task=None, monthly_spend=None,
                  runtime_state="", runtime_metadata={"capabilities": {
                      "heartbeat": True, "scheduler": False, "session": True, "status_mgmt": False, "retry": True,
                      "activity_decoration": False, "channel_dispatch": False}, "idle_timeout_seconds": 600})
    assert r.status == 200, r.body
    r = raw_post(stack, "/registry/heartbeat", "nope")
    assert r.status == 400 and r.json() == {"error": "invalid request body"}


def test_heartbeat_lazy_bootstrap(stack):
    wid = str(uuid.uuid4())
    tok = register(stack, wid).json()["auth_token"]
    other = register(stack, str(uuid.uuid4())).json()["auth_token"]
    r = heartbeat(stack, wid, active_tasks=9)
    assert r.status == 401 and r.json() == {"error": "missing workspace auth token"}
    r = heartbeat(stack, wid, headers=bearer(other), active_tasks=9)
    assert r.status == 401 and r.json() == {"error": "invalid workspace auth token"}
    r = heartbeat(stack, wid, headers={"Authorization": "Bearer " + stack.env["ADMIN_TOKEN"]}, active_tasks=9)
    assert r.status == 401 and r.json() == {"error": "invalid workspace auth token"}
    assert row(stack, wid, "active_tasks") == "0"
    assert heartbeat(stack, wid.upper(), active_tasks=9).status == 401
    r = heartbeat(stack, wid, headers=bearer(tok), active_tasks=9)
    assert r.status == 200
    assert row(stack, wid, "active_tasks") == "9"


def test_heartbeat_broadcasts_task_and_heartbeat_events(stack):
    wid = new_ws(stack)
    sock = stack.stack_env()["REDIS_URL"][len("unix://"):]
    sub = subprocess.Popen(["redis-cli", "-s", sock, "SUBSCRIBE", "molecule:events"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(0.3)
        heartbeat(stack, wid, active_tasks=1, uptime_seconds=10, current_task="a")
        heartbeat(stack, wid, active_tasks=1, uptime_seconds=20, current_task="a")
        heartbeat(stack, wid, active_tasks=0, uptime_seconds=30, current_task="")
        time.sleep(0.5)
    finally:
        sub.terminate()
    out = sub.communicate(timeout=10)[0]
    mine = [json.loads(l) for l in out.splitlines() if l.startswith("{") and wid in l]
    kinds = [(m["event"], m["payload"]) for m in mine]
    # TASK_UPDATED exactly when current_task changes.
    assert [k for k in kinds if k[0] == "TASK_UPDATED"] == [
        ("TASK_UPDATED", {"active_tasks": 1, "current_task": "a"}),
        ("TASK_UPDATED", {"active_tasks": 0, "current_task": ""}),
    ]
    # WORKSPACE_HEARTBEAT is a snapshot: the first always goes out; repeats within
    # heartbeat_event_interval (5 s) go out at most once per API worker (3 in this stack).
    beats = [k for k in kinds if k[0] == "WORKSPACE_HEARTBEAT"]
    assert beats[0] == ("WORKSPACE_HEARTBEAT", {"active_tasks": 1, "uptime_seconds": 10})
    assert 1 <= len(beats) <= 3
    assert kinds[0][0] == "TASK_UPDATED"
    assert all(m["workspace_id"] == wid for m in mine)
    # Broadcast-only: nothing persisted.
    assert events(stack, wid) == []


def test_heartbeat_rearms_liveness_after_flushall(stack):
    wid = str(uuid.uuid4())
    tok = register(stack, wid).json()["auth_token"]
    assert redis(stack, "GET", "ws:%s" % wid) == "online"
    redis(stack, "FLUSHALL")
    try:
        assert redis(stack, "EXISTS", "ws:%s" % wid) == "0"
        # A flush is not an expiry: nothing marks the workspace offline.
        time.sleep(1.5)
        assert row(stack, wid, "status") == "online"
        assert events(stack, wid, "WORKSPACE_OFFLINE") == []
        assert heartbeat(stack, wid, headers=bearer(tok), active_tasks=1).status == 200
        assert redis(stack, "GET", "ws:%s" % wid) == "online"
        assert 170 <= int(redis(stack, "TTL", "ws:%s" % wid)) <= 180
    finally:
        # Give the supervisor's liveness hash time to come back for the tests after this one.
        stack.wait_for(lambda: redis(stack, "HLEN", "molecule:liveness") not in ("", "0"), timeout=10)


def test_heartbeat_transition_recovers_offline_with_key(stack):
    wid = new_ws(stack, status="offline")
    assert heartbeat(stack, wid).status == 200
    assert row(stack, wid, "status") == "online"
    assert redis(stack, "GET", "ws:%s" % wid) == "online"


# --- update-card ------------------------------------------------------------------------------

def test_update_card_records_event(stack):
    wid = new_ws(stack)
    card = {"name": "new ' card; --", "skills": []}
    r = stack.request("POST", "/registry/update-card", body={"workspace_id": wid, "agent_card": card})
    assert r.status == 200 and r.body == b'{"status":"updated"}'
    assert json.loads(row(stack, wid, "agent_card::text")) == card
    assert events(stack, wid) == [("AGENT_CARD_UPDATED", {"agent_card": card})]


def test_update_card_unknown_and_removed_ids(stack):
    wid = str(uuid.uuid4())
    r = stack.request("POST", "/registry/update-card", body={"workspace_id": wid, "agent_card": {}})
    assert r.status == 200 and r.json() == {"status": "updated"}
    assert row(stack, wid, "count(*)") == "0"
    assert events(stack, wid) == []
    gone = new_ws(stack, status="removed")
    r = stack.request("POST", "/registry/update-card", body={"workspace_id": gone, "agent_card": {"a": 1}})
    assert r.status == 200
    assert row(stack, gone, "agent_card IS NULL") == "t"
    assert events(stack, gone) == []


@pytest.mark.parametrize("body", [
    {"agent_card": {}},
    {"workspace_id": "x", "agent_card": {}},
    {"workspace_id": 7, "agent_card": {}},
    {"workspace_id": "%s"},
    {"workspace_id": "%s", "agent_card": None},
])
def test_update_card_bad_bodies(stack, body):
    body = {k: (str(uuid.uuid4()) if v == "%s" else v) for k, v in body.items()}
    r = stack.request("POST", "/registry/update-card", body=body)
    assert r.status == 400 and r.json() == {"error": "invalid request body"}
    r = raw_post(stack, "/registry/update-card", "{]")
    assert r.status == 400 and r.json() == {"error": "invalid request body"}


def test_update_card_lazy_bootstrap(stack):
    wid = str(uuid.uuid4())
    tok = register(stack, wid).json()["auth_token"]
    r = stack.request("POST", "/registry/update-card", body={"workspace_id": wid, "agent_card": {"v": 2}})
    assert r.status == 401 and r.json() == {"error": "missing workspace auth token"}
    r = stack.request("POST", "/registry/update-card", headers=bearer("y" * 43),
                      body={"workspace_id": wid, "agent_card": {"v": 2}})
    assert r.status == 401 and r.json() == {"error": "invalid workspace auth token"}
    r = stack.request("POST", "/registry/update-card", headers=bearer(tok),
                      body={"workspace_id": wid, "agent_card": {"v": 2}})
    assert r.status == 200
    assert row(stack, wid, "agent_card->>'v'") == "2"


def test_nul_in_agent_card_is_a_bad_body_not_a_500(stack):
    wid = str(uuid.uuid4())
    r = register(stack, wid, card={"name": "a\u0000b"})
    assert r.status == 400 and r.json() == {"error": "invalid request body"}
    assert row(stack, wid, "count(*)") == "0"
    wid = new_ws(stack)
    r = stack.request("POST", "/registry/update-card", body={"workspace_id": wid, "agent_card": {"n": "\u0000"}})
    assert r.status == 400 and r.json() == {"error": "invalid request body"}
    assert events(stack, wid) == []
