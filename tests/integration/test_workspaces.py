"""Workspace registry routes (api.md §4.2-4.3): list, create, get, patch, delete, state.

Every state change must commit together with its structure_events rows: the tests read both
back, and inject a failing event insert (a trigger) to prove a half-written change never lands.
"""
import json
import os
import re
import subprocess
import threading
import uuid

import pytest

from conftest import ADMIN_TOKEN

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
LIST_KEYS = {"active_tasks", "agent_card", "budget_limit", "collapsed", "current_task", "id",
             "last_error_rate", "last_sample_error", "max_concurrent_tasks", "monthly_spend",
             "name", "parent_id", "role", "runtime", "status", "tier", "uptime_seconds", "url",
             "workspace_dir", "x", "y"}
GET_KEYS = (LIST_KEYS - {"budget_limit", "current_task", "last_sample_error", "monthly_spend",
                         "workspace_dir"}) | {"last_outbound_at"}
CONFIRM_MSG = "This workspace has sub-workspaces. Delete with ?confirm=true to cascade delete."


def uniq(prefix="ws"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def create(stack, **body):
    body.setdefault("name", uniq())
    r = stack.admin("POST", "/workspaces", body=body)
    assert r.status == 201, r.body
    return r.json()


def events(stack, wid):
    """[(event_type, payload)] of one workspace, oldest first."""
    out = stack.psql("SELECT coalesce(json_agg(json_build_array(event_type, payload) "
                     "ORDER BY created_at), '[]') FROM structure_events "
                     "WHERE workspace_id = '%s'" % wid)
    return [tuple(e) for e in json.loads(out)]


def event_types(stack, wid):
    return sorted(t for t, _ in events(stack, wid))


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def listed(stack):
    r = stack.admin("GET", "/workspaces")
    assert r.status == 200, r.body
    return r


def find(stack, wid):
    for w in listed(stack).json():
        if w["id"] == wid:
            return w
    return None


def redis(stack, *args):
    sock = os.path.join(stack.run_dir, "redis.sock")
    res = subprocess.run(["redis-cli", "-s", sock] + list(args), capture_output=True, text=True,
                         timeout=10)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


class FailingEvent:
    """A trigger that makes the structure_events INSERT matching `cond` fail (fault injection)."""

    def __init__(self, stack, cond):
        self.stack = stack
        self.cond = cond
        self.tag = "wsa_fail_" + uuid.uuid4().hex[:8]

    def __enter__(self):
        self.stack.psql(
            "CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF %s THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$; "
            "CREATE TRIGGER %s BEFORE INSERT ON structure_events FOR EACH ROW "
            "EXECUTE FUNCTION %s();" % (self.tag, self.cond, self.tag, self.tag))
        return self

    def __exit__(self, *exc):
        self.stack.psql("DROP TRIGGER %s ON structure_events; DROP FUNCTION %s();"
                        % (self.tag, self.tag))


# ---------------------------------------------------------------- auth


@pytest.mark.parametrize("method,path", [
    ("GET", "/workspaces"), ("POST", "/workspaces"),
    ("DELETE", "/workspaces/00000000-0000-4000-8000-000000000001"),
])
def test_admin_routes_need_a_bearer(stack, method, path):
    r = stack.request(method, path, body={"name": uniq()} if method == "POST" else None)
    assert r.status == 401
    assert r.json() == {"error": "admin auth required"}
    r = stack.request(method, path, headers=bearer("not-the-admin-token"),
                      body={"name": uniq()} if method == "POST" else None)
    assert r.status == 401
    assert r.json() == {"error": "invalid admin auth token"}


def test_workspace_token_is_not_an_admin_credential(stack):
    ext = create(stack, external=True)
    r = stack.request("GET", "/workspaces", headers=bearer(ext["connection"]["auth_token"]))
    assert r.status == 401
    assert r.json() == {"error": "invalid admin auth token"}


# ---------------------------------------------------------------- create


def test_create_provisioning_is_one_transaction(stack):
    name = uniq("prov")
    r = stack.admin("POST", "/workspaces", body={"name": name})
    assert r.status == 201, r.body
    body = r.json()
    wid = body["id"]
    assert body == {"id": wid, "status": "provisioning", "awareness_namespace": "workspace:" + wid,
                    "workspace_access": "none"}
    assert r.body == ('{"awareness_namespace":"workspace:%s","id":"%s","status":"provisioning",'
                      '"workspace_access":"none"}' % (wid, wid)).encode()
    row = stack.psql("SELECT name, status, tier, runtime, awareness_namespace, max_concurrent_tasks, "
                     "workspace_access, role IS NULL, parent_id IS NULL FROM workspaces "
                     "WHERE id = '%s'" % wid)
    assert row == "%s|provisioning|3|langgraph|workspace:%s|1|none|t|t" % (name, wid)
    assert stack.psql("SELECT x, y, collapsed FROM canvas_layouts WHERE workspace_id = '%s'"
                      % wid) == "0|0|f"
    assert stack.psql("SELECT kind, status FROM provision_jobs WHERE workspace_id = '%s'"
                      % wid) == "provision|queued"
    assert events(stack, wid) == [("WORKSPACE_PROVISIONING",
                                   {"name": name, "tier": 3, "runtime": "langgraph", "x": 0, "y": 0})]


def test_create_with_every_field_and_compact_numbers(stack):
    parent = create(stack)["id"]
    name = uniq("full")
    body = create(stack, name=name, role="researcher", tier=2, runtime="hermes", model="m-1",
                  template="team/default", workspace_dir="/srv/work//proj/", workspace_access="read_only",
                  parent_id=parent.upper(), budget_limit=5000, max_concurrent_tasks=4,
                  canvas={"x": 100, "y": -20.5}, secrets={"K": "v"},
                  initial_memories=[{"content": "c", "scope": "LOCAL"}])
    wid = body["id"]
    assert body["workspace_access"] == "read_only"
    w = find(stack, wid)
    assert set(w) == LIST_KEYS
    assert w == {"id": wid, "name": name, "role": "researcher", "tier": 2, "status": "provisioning",
                 "url": "", "parent_id": parent, "agent_card": None, "active_tasks": 0,
                 "max_concurrent_tasks": 4, "last_error_rate": 0, "last_sample_error": "",
                 "uptime_seconds": 0, "current_task": "", "runtime": "hermes",
                 "workspace_dir": "/srv/work//proj/", "x": 100, "y": -20.5, "collapsed": False,
                 "budget_limit": 5000, "monthly_spend": 0}
    raw = listed(stack).body
    item = raw[raw.index(('"id":"%s"' % wid).encode()) - 200:]
    for frag in (b'"x":100,', b'"y":-20.5}', b'"tier":2,', b'"agent_card":null,', b'"url":"",',
                 b'"budget_limit":5000,', b'"last_error_rate":0,'):
        assert frag in item, frag
    assert stack.psql("SELECT payload FROM provision_jobs WHERE workspace_id = '%s'" % wid) == \
        '{"model": "m-1", "template": "team/default"}'
    (etype, payload), secret_set = events(stack, wid)
    assert etype == "WORKSPACE_PROVISIONING"
    assert payload == {"name": name, "tier": 2, "runtime": "hermes", "parent_id": parent,
                       "x": 100, "y": -20.5}
    assert secret_set == ("SECRET_SET", {"key": "K", "scope": "workspace"})
    assert stack.psql("SELECT content FROM agent_memories WHERE workspace_id = '%s'" % wid) == "c"


def test_create_stores_quotes_and_semicolons_verbatim(stack):
    name = "x'; DROP TABLE workspaces; -- \"q\" %s %d \\ é" + uuid.uuid4().hex[:6]
    wid = create(stack, name=name, role="o'brien; --")["id"]
    assert stack.get("/workspaces/" + wid).json()["name"] == name
    assert stack.psql("SELECT count(*) FROM workspaces WHERE id = '%s' AND role = 'o''brien; --'"
                      % wid) == "1"


@pytest.mark.parametrize("body,msg", [
    ({}, "name is required"),
    ({"name": ""}, "name is required"),
    ({"name": "  "}, "name is required"),
    ({"name": 5}, "name must be a string"),
    ({"name": "a\nb"}, "name must not contain newline characters"),
    ({"name": "ok", "role": "a\rb"}, "role must not contain newline characters"),
    ({"name": "ok", "model": "a\nb"}, "model must not contain newline characters"),
    ({"name": "ok", "runtime": "a\nb"}, "runtime must not contain newline characters"),
    ({"name": "a{b"}, "name contains invalid characters"),
    ({"name": "a}b"}, "name contains invalid characters"),
    ({"name": "a[b"}, "name contains invalid characters"),
    ({"name": "a]b"}, "name contains invalid characters"),
    ({"name": "a|b"}, "name contains invalid characters"),
    ({"name": "a>b"}, "name contains invalid characters"),
    ({"name": "a*b"}, "name contains invalid characters"),
    ({"name": "a&b"}, "name contains invalid characters"),
    ({"name": "a!b"}, "name contains invalid characters"),
    ({"name": "ok", "role": "x|y"}, "role contains invalid characters"),
    ({"name": "n" * 256}, "name must be at most 255 characters"),
    ({"name": "é" * 256}, "name must be at most 255 characters"),
    ({"name": "ok", "role": "r" * 1001}, "role must be at most 1000 characters"),
    ({"name": "ok", "model": "m" * 101}, "model must be at most 100 characters"),
    ({"name": "ok", "runtime": "r" * 101}, "runtime must be at most 100 characters"),
    ({"name": "ok", "model": 7}, "model must be a string"),
    ({"name": "ok", "tier": 5}, "tier must be between 1 and 4"),
    ({"name": "ok", "tier": -1}, "tier must be between 1 and 4"),
    ({"name": "ok", "tier": "2"}, "tier must be an integer"),
    ({"name": "ok", "tier": 2.5}, "tier must be an integer"),
    ({"name": "ok", "workspace_dir": "relative/dir"}, "invalid workspace directory"),
    ({"name": "ok", "workspace_dir": "/etc"}, "invalid workspace directory"),
    ({"name": "ok", "workspace_dir": "/etc/app"}, "invalid workspace directory"),
    ({"name": "ok", "workspace_dir": "//usr/./lib"}, "invalid workspace directory"),
    ({"name": "ok", "workspace_dir": "/home/../etc"}, "invalid workspace directory"),
    ({"name": "ok", "workspace_dir": "/"}, "invalid workspace directory"),
    ({"name": "ok", "workspace_dir": "/srv/a\nb"}, "invalid workspace directory"),
    ({"name": "ok", "workspace_access": "all"}, "invalid workspace access"),
    ({"name": "ok", "workspace_access": "read_write"}, "invalid workspace access"),
    ({"name": "ok", "parent_id": "not-a-uuid"}, "invalid parent_id"),
    ({"name": "ok", "parent_id": "'; DROP TABLE workspaces; --"}, "invalid parent_id"),
    ({"name": "ok", "parent_id": str(uuid.uuid4())}, "parent workspace not found"),
    ({"name": "ok", "template": "../../etc"}, "invalid template"),
    ({"name": "ok", "template": "/abs/path"}, "invalid template"),
    ({"name": "ok", "template": "t" * 256}, "template must be at most 255 characters"),
    ({"name": "ok", "external": "yes"}, "external must be a boolean"),
    ({"name": "ok", "external": True, "url": "ftp://agent.example"}, "url must be an http or https URL"),
    ({"name": "ok", "external": True, "url": "javascript:alert(1)"}, "url must be an http or https URL"),
    ({"name": "ok", "runtime": "external", "url": "http://a b"}, "url must be an http or https URL"),
    ({"name": "ok", "external": True, "url": "http://user:pw@host"}, "url must be an http or https URL"),
    ({"name": "ok", "canvas": [1, 2]}, "canvas must be an object with numeric x and y"),
    ({"name": "ok", "canvas": {"x": "1", "y": 2}}, "canvas must be an object with numeric x and y"),
    ({"name": "ok", "budget_limit": -1}, "budget_limit must not be negative"),
    ({"name": "ok", "budget_limit": "lots"}, "budget_limit must be an integer"),
    ({"name": "ok", "max_concurrent_tasks": 1001}, "max_concurrent_tasks must be at most 1000"),
    ({"name": "a\u0000b"}, "name must not contain NUL characters"),
])
def test_create_rejects_bad_fields_with_specific_messages(stack, body, msg):
    body = dict(body, role=body.get("role", uniq("role")))  # a marker: nothing may be written
    r = stack.admin("POST", "/workspaces", body=body)
    assert r.status == 400, r.body
    assert r.json() == {"error": msg}
    if isinstance(body["role"], str) and "'" not in body["role"]:
        assert stack.psql("SELECT count(*) FROM workspaces WHERE role = '%s'" % body["role"]) == "0"


@pytest.mark.parametrize("raw", [b"{nope", b"[1,2]", b'"name"', b"", b'{"name":"a"} trailing'])
def test_create_unusable_body(stack, raw):
    r = stack.admin("POST", "/workspaces", body=raw, headers={"Content-Type": "application/json"})
    assert r.status == 400
    assert r.json() == {"error": "invalid workspace payload"}


def test_create_invalid_utf8(stack):
    r = stack.admin("POST", "/workspaces", body=b'{"name":"a\xff\xfeb"}',
                    headers={"Content-Type": "application/json"})
    assert r.status == 400
    assert r.json() == {"error": "name must be valid UTF-8"}


def test_create_oversize_body(stack):
    r = stack.admin("POST", "/workspaces", body=json.dumps({"name": "x" * (2 << 20)}),
                    headers={"Content-Type": "application/json"})
    assert r.status == 413


def test_create_defaults_tier_zero_and_max_tasks(stack):
    wid = create(stack, tier=0, max_concurrent_tasks=-3, role="")["id"]
    assert stack.psql("SELECT tier, max_concurrent_tasks, role IS NULL FROM workspaces "
                      "WHERE id = '%s'" % wid) == "3|1|t"
    for t in (1, 4):
        wid = create(stack, tier=t)["id"]
        assert find(stack, wid)["tier"] == t


def test_create_under_removed_parent_is_refused(stack):
    parent = create(stack)["id"]
    assert stack.admin("DELETE", "/workspaces/" + parent).status == 200
    r = stack.admin("POST", "/workspaces", body={"name": uniq(), "parent_id": parent})
    assert r.status == 400
    assert r.json() == {"error": "parent workspace not found"}


def test_create_external_with_url(stack):
    name = uniq("ext")
    r = stack.admin("POST", "/workspaces", body={"name": name, "external": True,
                                                 "url": "https://agent.example.com/a2a"})
    assert r.status == 201, r.body
    wid = r.json()["id"]
    assert r.body == ('{"external":true,"id":"%s","status":"online"}' % wid).encode()
    assert stack.psql("SELECT status, url, runtime FROM workspaces WHERE id = '%s'" % wid) == \
        "online|https://agent.example.com/a2a|external"
    assert stack.psql("SELECT count(*) FROM provision_jobs WHERE workspace_id = '%s'" % wid) == "0"
    assert stack.psql("SELECT count(*) FROM workspace_auth_tokens WHERE workspace_id = '%s'" % wid) == "0"
    evs = dict(events(stack, wid))
    assert sorted(evs) == ["WORKSPACE_ONLINE", "WORKSPACE_PROVISIONING"]
    assert evs["WORKSPACE_ONLINE"] == {"name": name, "external": True}
    assert redis(stack, "GET", "ws:%s:url" % wid) == "https://agent.example.com/a2a"
    w = find(stack, wid)
    assert w["url"] == "https://agent.example.com/a2a" and w["status"] == "online"


def test_create_external_without_url_returns_connection(stack):
    name = uniq("ext")
    r = stack.admin("POST", "/workspaces", body={"name": name, "runtime": "external"})
    assert r.status == 201, r.body
    body = r.json()
    wid = body["id"]
    conn = body.pop("connection")
    assert body == {"id": wid, "external": True, "status": "awaiting_agent"}
    assert set(conn) == {"workspace_id", "platform_url", "auth_token", "registry_endpoint",
                         "heartbeat_endpoint", "curl_register_template", "python_snippet"}
    pu = "http://127.0.0.1:%d" % stack.port
    assert conn["workspace_id"] == wid
    assert conn["platform_url"] == pu
    assert conn["registry_endpoint"] == pu + "/registry/register"
    assert conn["heartbeat_endpoint"] == pu + "/registry/heartbeat"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", conn["auth_token"])
    for snippet in (conn["curl_register_template"], conn["python_snippet"]):
        assert wid in snippet and pu in snippet
        assert conn["auth_token"] not in snippet
    assert stack.psql("SELECT status FROM workspaces WHERE id = '%s'" % wid) == "awaiting_agent"
    assert stack.psql("SELECT count(*) FROM workspace_auth_tokens WHERE workspace_id = '%s' "
                      "AND revoked_at IS NULL" % wid) == "1"
    evs = dict(events(stack, wid))
    assert sorted(evs) == ["WORKSPACE_AWAITING_AGENT", "WORKSPACE_PROVISIONING"]
    assert evs["WORKSPACE_AWAITING_AGENT"] == {"name": name, "external": True}
    assert conn["auth_token"] not in stack.log("moleculed.log")


def test_external_platform_url_from_forwarded_headers(stack):
    r = stack.admin("POST", "/workspaces", body={"name": uniq(), "external": True},
                    headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "molecule.example.com"})
    assert r.status == 201
    assert r.json()["connection"]["platform_url"] == "https://molecule.example.com"
    # A forged host that would break out of the shell snippet is ignored.
    r = stack.admin("POST", "/workspaces", body={"name": uniq(), "external": True},
                    headers={"X-Forwarded-Host": "evil\"; rm -rf / #", "X-Forwarded-Proto": "gopher"})
    assert r.status == 201
    assert r.json()["connection"]["platform_url"] == "http://127.0.0.1:%d" % stack.port


def test_create_is_atomic_when_the_event_insert_fails(stack):
    name = uniq("atomic")
    with FailingEvent(stack, "NEW.payload->>'name' = '%s'" % name):
        r = stack.admin("POST", "/workspaces", body={"name": name})
        assert r.status == 500
        assert r.json()["error"] == "failed to create workspace"
        r = stack.admin("POST", "/workspaces", body={"name": name, "external": True})
        assert r.status == 500
    assert stack.psql("SELECT count(*) FROM workspaces WHERE name = '%s'" % name) == "0"
    assert stack.psql("SELECT count(*) FROM workspace_auth_tokens t LEFT JOIN workspaces w "
                      "ON w.id = t.workspace_id WHERE w.id IS NULL") == "0"


# ---------------------------------------------------------------- list and get


def test_list_shapes_stored_values_compactly(stack):
    wid = create(stack, canvas={"x": 1.5, "y": 2})["id"]
    stack.psql("UPDATE workspaces SET last_error_rate = 0.8, agent_card = "
               "'{\"name\": \"a\", \"skills\": [1, 2.5], \"url\": \"http://x/y\"}', "
               "url = 'http://h:1', active_tasks = 2, uptime_seconds = 30, current_task = 'job', "
               "last_sample_error = 'boom', monthly_spend = 12, "
               "platform_inbound_secret = 'secret-bytes' WHERE id = '%s'" % wid)
    raw = listed(stack).body
    start = raw.index(b'{"active_tasks"', raw.index(('"id":"%s"' % wid).encode()) - 400)
    item = raw[start:raw.index(b'"y":2}', start) + 6]
    # jsonb's key order (shorter keys first), compacted as Go compacts a json.RawMessage.
    assert item.startswith(b'{"active_tasks":2,"agent_card":{"url":"http://x/y","name":"a",'
                           b'"skills":[1,2.5]},"budget_limit":null,"collapsed":false,'
                           b'"current_task":"job","id":"' + wid.encode())
    assert b'"last_error_rate":0.8,"last_sample_error":"boom","max_concurrent_tasks":1,' \
           b'"monthly_spend":12,' in item
    assert b'"parent_id":null,"role":null,"runtime":"langgraph","status":"provisioning","tier":3,' \
           b'"uptime_seconds":30,"url":"http://h:1","workspace_dir":null,"x":1.5,"y":2}' in item
    assert b"platform_inbound_secret" not in raw
    assert b"awareness_namespace" not in item and b"created_at" not in item


def test_list_is_ordered_and_skips_removed(stack):
    a = create(stack)["id"]
    b = create(stack)["id"]
    c = create(stack)["id"]
    assert stack.admin("DELETE", "/workspaces/" + b).status == 200
    ids = [w["id"] for w in listed(stack).json()]
    assert a in ids and c in ids and b not in ids
    assert ids.index(a) < ids.index(c)


def test_list_without_layout_row_defaults_position(stack):
    wid = create(stack, canvas={"x": 5, "y": 6})["id"]
    stack.psql("DELETE FROM canvas_layouts WHERE workspace_id = '%s'" % wid)
    w = find(stack, wid)
    assert (w["x"], w["y"], w["collapsed"]) == (0, 0, False)


def test_get_is_open_and_strips_sensitive_fields(stack):
    wid = create(stack, workspace_dir="/srv/secret", budget_limit=10, canvas={"x": 100, "y": 0})["id"]
    stack.psql("UPDATE workspaces SET current_task = 't', last_sample_error = 'e', "
               "platform_inbound_secret = 'xx' WHERE id = '%s'" % wid)
    r = stack.get("/workspaces/" + wid)
    assert r.status == 200, r.body
    w = r.json()
    assert set(w) == GET_KEYS
    assert w["last_outbound_at"] is None
    assert b'"last_outbound_at":null' in r.body and b'"x":100,' in r.body
    for secret in (b"/srv/secret", b"platform_inbound_secret", b"monthly_spend", b"budget_limit"):
        assert secret not in r.body
    stack.psql("UPDATE workspaces SET last_outbound_at = '2026-01-02T03:04:05.5Z' WHERE id = '%s'" % wid)
    assert stack.get("/workspaces/" + wid).json()["last_outbound_at"] == "2026-01-02T03:04:05.5Z"
    stack.psql("UPDATE workspaces SET last_outbound_at = '2026-01-02T03:04:05Z' WHERE id = '%s'" % wid)
    assert stack.get("/workspaces/" + wid).json()["last_outbound_at"] == "2026-01-02T03:04:05Z"
    assert stack.get("/workspaces/" + wid.upper()).json()["id"] == wid


def test_get_errors_and_removed(stack):
    for bad in ("nope", "1", "00000000-0000-0000-0000-00000000000g", "%27%3B--"):
        r = stack.get("/workspaces/" + bad)
        assert r.status == 400, bad
        assert r.json() == {"error": "invalid workspace ID"}
    r = stack.get("/workspaces/" + str(uuid.uuid4()))
    assert r.status == 404
    assert r.json() == {"error": "workspace not found"}
    wid = create(stack)["id"]
    stack.admin("DELETE", "/workspaces/" + wid)
    assert stack.get("/workspaces/" + wid).json()["status"] == "removed"


# ---------------------------------------------------------------- patch


def test_patch_auth(stack):
    wid = create(stack)["id"]
    r = stack.request("PATCH", "/workspaces/" + wid, body={"name": "x"})
    assert r.status == 401
    assert r.json() == {"error": "missing workspace auth token"}
    r = stack.request("PATCH", "/workspaces/" + wid, body={"name": "x"}, headers=bearer("bogus"))
    assert r.status == 401
    assert r.json() == {"error": "invalid workspace auth token"}
    # Another workspace's real token does not open this one; its own does.
    own = create(stack, external=True)
    other = create(stack, external=True)
    r = stack.request("PATCH", "/workspaces/" + own["id"], body={"role": "mine"},
                      headers=bearer(other["connection"]["auth_token"]))
    assert r.status == 401
    assert r.json() == {"error": "invalid workspace auth token"}
    r = stack.request("PATCH", "/workspaces/" + own["id"], body={"role": "mine"},
                      headers=bearer(own["connection"]["auth_token"]))
    assert r.status == 200, r.body
    assert stack.psql("SELECT role FROM workspaces WHERE id = '%s'" % own["id"]) == "mine"


def test_patch_fields_and_events(stack):
    wid = create(stack, canvas={"x": 1, "y": 1})["id"]
    new = uniq("renamed")
    r = stack.admin("PATCH", "/workspaces/" + wid, body={
        "name": new, "role": "lead", "tier": 4, "runtime": "claude-code", "collapsed": True,
        "x": 12.5, "y": -3, "budget_limit": 1, "unknown": "ignored"})
    assert r.status == 200, r.body
    assert r.body == b'{"status":"updated"}'
    w = find(stack, wid)
    assert (w["name"], w["role"], w["tier"], w["runtime"], w["collapsed"], w["x"], w["y"]) == \
        (new, "lead", 4, "claude-code", True, 12.5, -3)
    assert w["budget_limit"] is None
    upd = [p for t, p in events(stack, wid) if t == "WORKSPACE_UPDATED"]
    assert upd == [{"fields": ["name", "role", "tier", "runtime", "collapsed", "x", "y"],
                    "name": new, "role": "lead", "tier": 4, "runtime": "claude-code",
                    "collapsed": True, "x": 12.5, "y": -3}]
    # Sending the same values again changes nothing and records nothing.
    r = stack.admin("PATCH", "/workspaces/" + wid, body={"name": new, "x": 12.5, "y": -3})
    assert r.status == 200
    assert len([t for t, _ in events(stack, wid) if t == "WORKSPACE_UPDATED"]) == 1
    # role "" / null clears it.
    assert stack.admin("PATCH", "/workspaces/" + wid, body={"role": None}).status == 200
    assert find(stack, wid)["role"] is None


def test_patch_workspace_dir_needs_restart(stack):
    wid = create(stack)["id"]
    r = stack.admin("PATCH", "/workspaces/" + wid, body={"workspace_dir": "/srv/data"})
    assert r.status == 200
    assert r.body == b'{"needs_restart":true,"status":"updated"}'
    r = stack.admin("PATCH", "/workspaces/" + wid, body={"workspace_dir": "/srv/data"})
    assert r.body == b'{"status":"updated"}'
    r = stack.admin("PATCH", "/workspaces/" + wid, body={"workspace_dir": None})
    assert r.json() == {"status": "updated", "needs_restart": True}
    assert find(stack, wid)["workspace_dir"] is None
    upd = [p for t, p in events(stack, wid) if t == "WORKSPACE_UPDATED"]
    assert upd == [{"fields": ["workspace_dir"]}] * 2  # the host path stays out of events
    bound = create(stack, workspace_dir="/srv/b", workspace_access="read_write")["id"]
    r = stack.admin("PATCH", "/workspaces/" + bound, body={"workspace_dir": None})
    assert r.status == 400
    assert r.json() == {"error": "invalid workspace access"}


@pytest.mark.parametrize("body,msg", [
    ({"name": "n" * 256}, "name must be at most 255 characters"),
    ({"name": "a|b"}, "name contains invalid characters"),
    ({"name": "a\nb"}, "name must not contain newline characters"),
    ({"name": ""}, "name must not be empty"),
    ({"name": None}, "name must be a string"),
    ({"name": 3}, "name must be a string"),
    ({"role": "a\rb"}, "role must not contain newline characters"),
    ({"role": "r" * 1001}, "role must be at most 1000 characters"),
    ({"role": "a*b"}, "role contains invalid characters"),
    ({"runtime": "r" * 101}, "runtime must be at most 100 characters"),
    ({"runtime": ""}, "runtime must not be empty"),
    ({"runtime": None}, "runtime must be a string"),
    ({"tier": 0}, "tier must be between 1 and 4"),
    ({"tier": 9}, "tier must be between 1 and 4"),
    ({"tier": "3"}, "tier must be an integer"),
    ({"tier": None}, "tier must be an integer"),
    ({"collapsed": "yes"}, "collapsed must be a boolean"),
    ({"collapsed": None}, "collapsed must be a boolean"),
    ({"x": 1}, "x and y must be provided together"),
    ({"y": 1}, "x and y must be provided together"),
    ({"x": "1", "y": 2}, "x and y must be numbers"),
    ({"x": None, "y": 2}, "x and y must be numbers"),
    ({"workspace_dir": "/proc/self"}, "invalid workspace directory"),
    ({"workspace_dir": "rel"}, "invalid workspace directory"),
    ({"workspace_dir": 5}, "workspace_dir must be a string"),
    ({"parent_id": "nope"}, "invalid parent_id"),
    ({"parent_id": 5}, "parent_id must be a string"),
    ({"parent_id": str(uuid.uuid4())}, "parent workspace not found"),
])
def test_patch_rejects_bad_fields(stack, body, msg):
    wid = create(stack)["id"]
    before = stack.psql("SELECT name, role, tier, runtime FROM workspaces WHERE id = '%s'" % wid)
    r = stack.admin("PATCH", "/workspaces/" + wid, body=body)
    assert r.status == 400, r.body
    assert r.json() == {"error": msg}
    assert stack.psql("SELECT name, role, tier, runtime FROM workspaces WHERE id = '%s'" % wid) == before
    assert event_types(stack, wid) == ["WORKSPACE_PROVISIONING"]


def test_patch_is_all_or_nothing(stack):
    wid = create(stack)["id"]
    name = stack.psql("SELECT name FROM workspaces WHERE id = '%s'" % wid)
    r = stack.admin("PATCH", "/workspaces/" + wid, body={"name": uniq(), "tier": 7})
    assert r.status == 400
    assert stack.psql("SELECT name FROM workspaces WHERE id = '%s'" % wid) == name
    with FailingEvent(stack, "NEW.workspace_id = '%s' AND NEW.event_type = 'WORKSPACE_UPDATED'" % wid):
        r = stack.admin("PATCH", "/workspaces/" + wid, body={"name": uniq(), "x": 9, "y": 9})
        assert r.status == 500
        assert r.json()["error"] == "failed to update workspace"
    assert stack.psql("SELECT name FROM workspaces WHERE id = '%s'" % wid) == name
    assert stack.psql("SELECT x FROM canvas_layouts WHERE workspace_id = '%s'" % wid) == "0"


def test_patch_errors(stack):
    for bad in ("nope", "12345"):
        r = stack.admin("PATCH", "/workspaces/" + bad, body={"name": "x"})
        assert r.status == 400
        assert r.json() == {"error": "invalid workspace ID"}
    r = stack.admin("PATCH", "/workspaces/" + str(uuid.uuid4()), body={"name": "x"})
    assert r.status == 404
    assert r.json() == {"error": "workspace not found"}
    wid = create(stack)["id"]
    for raw in (b"[1]", b"nope", b'"str"', b""):
        r = stack.admin("PATCH", "/workspaces/" + wid, body=raw,
                        headers={"Content-Type": "application/json"})
        assert r.status == 400
        assert r.json() == {"error": "invalid request body"}
    stack.admin("DELETE", "/workspaces/" + wid)
    r = stack.admin("PATCH", "/workspaces/" + wid, body={"name": "x"})
    assert r.status == 404


def test_patch_parent_moves_and_refuses_cycles(stack):
    a = create(stack)["id"]
    b = create(stack, parent_id=a)["id"]
    c = create(stack, parent_id=b)["id"]
    other = create(stack)["id"]
    for target, parent in ((a, a), (a, b), (a, c), (b, c)):
        r = stack.admin("PATCH", "/workspaces/" + target, body={"parent_id": parent})
        assert r.status == 400, (target, parent)
        assert r.json() == {"error": "parent_id would create a cycle"}
    r = stack.admin("PATCH", "/workspaces/" + c, body={"parent_id": other})
    assert r.status == 200
    assert find(stack, c)["parent_id"] == other
    r = stack.admin("PATCH", "/workspaces/" + c, body={"parent_id": None})
    assert r.status == 200
    assert find(stack, c)["parent_id"] is None
    moves = [p for t, p in events(stack, c) if t == "WORKSPACE_MOVED"]
    assert moves == [{"parent_id": other, "old_parent_id": b}, {"parent_id": None, "old_parent_id": other}]
    # Now c is a root: a may move under it.
    assert stack.admin("PATCH", "/workspaces/" + a, body={"parent_id": c}).status == 200
    removed = create(stack)["id"]
    stack.admin("DELETE", "/workspaces/" + removed)
    r = stack.admin("PATCH", "/workspaces/" + other, body={"parent_id": removed})
    assert r.status == 400
    assert r.json() == {"error": "parent workspace not found"}


def test_concurrent_moves_never_make_a_cycle(stack):
    for _ in range(8):
        a = create(stack)["id"]
        b = create(stack)["id"]
        results = []

        def move(child, parent):
            results.append(stack.admin("PATCH", "/workspaces/" + child, body={"parent_id": parent}).status)

        threads = [threading.Thread(target=move, args=(a, b)), threading.Thread(target=move, args=(b, a))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [200, 400], results
        parents = stack.psql("SELECT count(*) FROM workspaces WHERE id IN ('%s','%s') "
                             "AND parent_id IS NOT NULL" % (a, b))
        assert parents == "1"


def test_concurrent_create_under_a_deleted_parent_leaves_no_orphan(stack):
    for _ in range(5):
        parent = create(stack)["id"]
        results = {}

        def add():
            results["create"] = stack.admin("POST", "/workspaces", body={"name": uniq(), "parent_id": parent})

        def remove():
            results["delete"] = stack.admin("DELETE", "/workspaces/%s?confirm=true" % parent)

        threads = [threading.Thread(target=add), threading.Thread(target=remove)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results["delete"].status == 200
        assert stack.psql("SELECT count(*) FROM workspaces WHERE parent_id = '%s' "
                          "AND status <> 'removed'" % parent) == "0"
        if results["create"].status == 201:
            assert results["delete"].json()["cascade_deleted"] == 1
        else:
            assert results["create"].json() == {"error": "parent workspace not found"}


# ---------------------------------------------------------------- delete


def test_delete_leaf(stack):
    wid = create(stack)["id"]
    redis(stack, "SET", "ws:%s" % wid, "online")
    redis(stack, "SET", "ws:%s:url" % wid, "http://x")
    redis(stack, "SET", "ws:%s:internal_url" % wid, "http://y")
    r = stack.admin("DELETE", "/workspaces/" + wid)
    assert r.status == 200, r.body
    assert r.body == b'{"cascade_deleted":0,"status":"removed"}'
    assert stack.psql("SELECT status FROM workspaces WHERE id = '%s'" % wid) == "removed"
    assert stack.psql("SELECT count(*) FROM canvas_layouts WHERE workspace_id = '%s'" % wid) == "0"
    assert stack.psql("SELECT kind || ':' || status FROM provision_jobs WHERE workspace_id = '%s' "
                      "ORDER BY created_at" % wid).split("\n") == ["provision:failed", "remove:queued"]
    assert events(stack, wid)[-1] == ("WORKSPACE_REMOVED", {"cascade_deleted": 0})
    assert redis(stack, "EXISTS", "ws:%s" % wid, "ws:%s:url" % wid, "ws:%s:internal_url" % wid) == "0"
    assert find(stack, wid) is None
    # Idempotent: a second delete answers the same and records nothing new.
    n = len(events(stack, wid))
    r = stack.admin("DELETE", "/workspaces/" + wid)
    assert r.status == 200
    assert r.json() == {"status": "removed", "cascade_deleted": 0}
    assert len(events(stack, wid)) == n


def test_delete_errors(stack):
    r = stack.admin("DELETE", "/workspaces/nope")
    assert r.status == 400
    assert r.json() == {"error": "invalid workspace ID"}
    r = stack.admin("DELETE", "/workspaces/" + str(uuid.uuid4()))
    assert r.status == 404
    assert r.json() == {"error": "workspace not found"}


def tree(stack):
    root = create(stack, name=uniq("root"))["id"]
    kid = create(stack, name=uniq("kid"), parent_id=root)
    ext = create(stack, name=uniq("ext"), parent_id=root, external=True)
    grand = create(stack, name=uniq("grand"), parent_id=kid["id"])["id"]
    return root, kid["id"], ext, grand


def test_delete_with_children_needs_confirmation(stack):
    root, kid, ext, grand = tree(stack)
    r = stack.admin("DELETE", "/workspaces/" + root)
    assert r.status == 409
    body = r.json()
    kids = json.loads(stack.psql("SELECT json_agg(json_build_object('id', id, 'name', name) "
                                 "ORDER BY created_at, id) FROM workspaces WHERE parent_id = '%s'" % root))
    assert [k["id"] for k in kids] == [kid, ext["id"]]
    assert body == {"status": "confirmation_required", "message": CONFIRM_MSG,
                    "children": kids, "children_count": 2}
    assert r.body.startswith(b'{"children":[{"id":"')
    assert stack.psql("SELECT count(*) FROM workspaces WHERE id IN ('%s','%s','%s') AND status = 'removed'"
                      % (root, kid, grand)) == "0"
    assert event_types(stack, root) == ["WORKSPACE_PROVISIONING"]
    r = stack.admin("DELETE", "/workspaces/" + root + "?confirm=false")
    assert r.status == 409

    r = stack.admin("DELETE", "/workspaces/" + root + "?confirm=true")
    assert r.status == 200, r.body
    assert r.json() == {"status": "removed", "cascade_deleted": 3}
    for wid in (root, kid, ext["id"], grand):
        assert stack.psql("SELECT status FROM workspaces WHERE id = '%s'" % wid) == "removed"
        assert stack.psql("SELECT count(*) FROM provision_jobs WHERE workspace_id = '%s' "
                          "AND kind = 'remove'" % wid) == "1"
        assert "WORKSPACE_REMOVED" in event_types(stack, wid)
    assert events(stack, root)[-1] == ("WORKSPACE_REMOVED", {"cascade_deleted": 3})
    assert dict(events(stack, grand))["WORKSPACE_REMOVED"] == {}
    assert stack.psql("SELECT count(*) FROM workspace_auth_tokens WHERE workspace_id = '%s' "
                      "AND revoked_at IS NULL" % ext["id"]) == "0"
    r = stack.request("GET", "/workspaces/%s/state" % ext["id"], headers=bearer(ext["connection"]["auth_token"]))
    assert r.status == 401


def test_delete_is_atomic_when_an_event_fails(stack):
    root, kid, ext, grand = tree(stack)
    with FailingEvent(stack, "NEW.workspace_id = '%s' AND NEW.event_type = 'WORKSPACE_REMOVED'" % grand):
        r = stack.admin("DELETE", "/workspaces/" + root + "?confirm=true")
        assert r.status == 500
        assert r.json()["error"] == "failed to delete workspace"
    assert stack.psql("SELECT count(*) FROM workspaces WHERE id IN ('%s','%s','%s','%s') "
                      "AND status = 'removed'" % (root, kid, ext["id"], grand)) == "0"
    assert stack.psql("SELECT count(*) FROM workspace_auth_tokens WHERE workspace_id = '%s' "
                      "AND revoked_at IS NULL" % ext["id"]) == "1"
    assert stack.psql("SELECT count(*) FROM canvas_layouts WHERE workspace_id = '%s'" % root) == "1"
    assert "WORKSPACE_REMOVED" not in event_types(stack, kid)


def test_delete_purge(stack):
    root, kid, ext, grand = tree(stack)
    fwd = create(stack)["id"]
    stack.psql("UPDATE workspaces SET forwarded_to = '%s' WHERE id = '%s'" % (kid, fwd))
    stack.psql("INSERT INTO activity_logs (workspace_id, activity_type) VALUES ('%s', 'a2a_send')" % kid)
    stack.psql("INSERT INTO org_api_tokens (token_hash, prefix, org_id) "
               "VALUES (decode(md5(random()::text), 'hex'), 'wsaprefx', '%s')" % root)
    r = stack.admin("DELETE", "/workspaces/" + root + "?purge=true")
    assert r.status == 409
    r = stack.admin("DELETE", "/workspaces/" + root + "?purge=true&confirm=true")
    assert r.status == 200, r.body
    assert r.body == b'{"cascade_deleted":3,"status":"purged"}'
    ids = "','".join((root, kid, ext["id"], grand))
    for table, col in (("workspaces", "id"), ("canvas_layouts", "workspace_id"),
                       ("workspace_auth_tokens", "workspace_id"), ("activity_logs", "workspace_id")):
        assert stack.psql("SELECT count(*) FROM %s WHERE %s IN ('%s')" % (table, col, ids)) == "0", table
    # Only 'remove' jobs survive (no FK), so the provisioner still cleans the containers up.
    assert stack.psql("SELECT count(DISTINCT workspace_id) FROM provision_jobs WHERE workspace_id IN ('%s') "
                      "AND kind = 'remove'" % ids) == "4"
    assert stack.psql("SELECT count(*) FROM provision_jobs WHERE workspace_id IN ('%s') "
                      "AND kind <> 'remove' AND status = 'queued'" % ids) == "0"
    assert stack.psql("SELECT forwarded_to IS NULL FROM workspaces WHERE id = '%s'" % fwd) == "t"
    assert stack.psql("SELECT count(*) FROM org_api_tokens WHERE prefix = 'wsaprefx' AND org_id IS NULL") == "1"
    # The event log outlives the rows.
    assert events(stack, root)[-1] == ("WORKSPACE_REMOVED", {"cascade_deleted": 3, "purged": True})
    assert "WORKSPACE_REMOVED" in event_types(stack, grand)
    assert stack.get("/workspaces/" + root).status == 404
    r = stack.admin("DELETE", "/workspaces/" + root + "?purge=true")
    assert r.status == 404


def test_purge_after_soft_delete_takes_removed_descendants(stack):
    root, kid, ext, grand = tree(stack)
    assert stack.admin("DELETE", "/workspaces/" + root + "?confirm=true").status == 200
    r = stack.admin("DELETE", "/workspaces/" + root + "?purge=true")
    assert r.status == 200, r.body
    assert r.json() == {"status": "purged", "cascade_deleted": 3}
    assert stack.psql("SELECT count(*) FROM workspaces WHERE id IN ('%s','%s','%s','%s')"
                      % (root, kid, ext["id"], grand)) == "0"


# ---------------------------------------------------------------- state


def test_state_shapes(stack):
    wid = create(stack)["id"]
    r = stack.admin("GET", "/workspaces/%s/state" % wid)
    assert r.status == 200, r.body
    assert r.body == ('{"deleted":false,"paused":false,"status":"provisioning","workspace_id":"%s"}'
                      % wid).encode()
    stack.psql("UPDATE workspaces SET status = 'paused' WHERE id = '%s'" % wid)
    assert stack.admin("GET", "/workspaces/%s/state" % wid).json() == {
        "workspace_id": wid, "status": "paused", "paused": True, "deleted": False}
    stack.admin("DELETE", "/workspaces/" + wid)
    r = stack.admin("GET", "/workspaces/%s/state" % wid)
    assert r.status == 404
    assert r.body == ('{"deleted":true,"status":"removed","workspace_id":"%s"}' % wid).encode()
    gone = str(uuid.uuid4())
    r = stack.admin("GET", "/workspaces/%s/state" % gone)
    assert r.status == 404
    assert r.body == ('{"deleted":true,"workspace_id":"%s"}' % gone).encode()


def test_state_auth(stack):
    ext = create(stack, external=True)
    wid, tok = ext["id"], ext["connection"]["auth_token"]
    r = stack.request("GET", "/workspaces/%s/state" % wid)
    assert r.status == 401
    assert r.json() == {"error": "missing workspace auth token"}
    r = stack.request("GET", "/workspaces/%s/state" % wid, headers=bearer("x" * 43))
    assert r.status == 401
    assert r.json() == {"error": "invalid workspace auth token"}
    # Strict lazy bootstrap: once the workspace has a token, only that token reads its state.
    r = stack.admin("GET", "/workspaces/%s/state" % wid)
    assert r.status == 401
    assert r.json() == {"error": "invalid workspace auth token"}
    r = stack.request("GET", "/workspaces/%s/state" % wid, headers=bearer(tok))
    assert r.status == 200
    assert r.json() == {"workspace_id": wid, "status": "awaiting_agent", "paused": False, "deleted": False}
    r = stack.admin("GET", "/workspaces/nope/state")
    assert r.status == 400
    assert r.json() == {"error": "invalid workspace ID"}


def test_create_external_url_follows_register_address_rules(stack):
    # discover hands this URL to peers: loopback and metadata addresses are refused like register.
    for url, why in (("http://127.0.0.1:8000", "loopback"), ("http://169.254.169.254/", "link-local")):
        r = stack.admin("POST", "/workspaces", body={"name": "ext-bad-url", "external": True, "url": url})
        assert r.status == 400, (url, r.body)
        assert r.json()["error"].startswith("invalid agent url: "), r.body
        assert why in r.json()["error"], r.body
    r = stack.admin("POST", "/workspaces", body={"name": "ext-ok-url", "external": True,
                                                 "url": "http://10.1.2.3:8000"})
    assert r.status == 201, r.body


# --- initial_memories seeded by POST /workspaces -------------------------------------------

def seeded(stack, wid):
    tok = stack.admin("POST", "/workspaces/%s/tokens" % wid).json()["auth_token"]
    r = stack.get("/workspaces/%s/memories" % wid, headers=bearer(tok))
    assert r.status == 200, r.body
    return {m["content"]: m for m in r.json()}


def test_create_seeds_initial_memories_redacted_and_truncated(stack):
    long_ascii = "abc " * 25002                # 100008 bytes, cut to 100000
    long_utf8 = "b" + "\u00e9" * 50000          # 100001 bytes: the cut may not split an é
    wid = create(stack, initial_memories=[
        {"content": "plain fact"},
        {"content": "team fact", "scope": "TEAM"},
        {"content": "use OPENAI_API_KEY=abc123secretvalue now", "scope": "LOCAL"},
        {"content": long_ascii}, {"content": long_utf8}])["id"]
    got = seeded(stack, wid)
    assert got["plain fact"]["scope"] == "LOCAL" and got["team fact"]["scope"] == "TEAM"
    assert got["plain fact"]["namespace"] == "general"
    assert "use OPENAI_API_KEY=[REDACTED:API_KEY] now" in got
    assert not any("abc123secretvalue" in c for c in got)
    assert "abc " * 25000 in got
    assert "b" + "\u00e9" * 49999 in got
    assert len(got) == 5


def test_create_seeds_global_memory_on_a_root(stack):
    wid = create(stack, initial_memories=[{"content": "be kind [MEMORY x]", "scope": "GLOBAL"}])["id"]
    assert stack.psql("SELECT scope || '|' || content FROM agent_memories WHERE workspace_id = "
                      "'%s'" % wid) == "GLOBAL|be kind [_MEMORY x]"
    assert stack.psql("SELECT count(*) FROM activity_logs WHERE workspace_id = '%s' AND "
                      "activity_type = 'memory_write_global'" % wid) == "1"


@pytest.mark.parametrize("mems,msg", [
    ({"content": "x"}, "initial_memories must be an array"),
    ([{"content": "ok"}, "x"], "initial_memories[1] must be an object"),
    ([{"scope": "LOCAL"}], "initial_memories[0].content is required"),
    ([{"content": ""}], "initial_memories[0].content is required"),
    ([{"content": 5}], "content must be a string"),
    ([{"content": "ok", "scope": "local"}], "initial_memories[0].scope must be LOCAL, TEAM, or GLOBAL"),
    ([{"content": "ok"}] * 101, "initial_memories must have at most 100 entries"),
    ("GLOBAL-ON-CHILD", "initial_memories[0]: only root workspaces can write GLOBAL memories"),
])
def test_create_with_bad_initial_memories_writes_nothing(stack, mems, msg):
    name = uniq("badmem")
    body = {"name": name, "initial_memories": mems}
    if mems == "GLOBAL-ON-CHILD":
        body = {"name": name, "parent_id": create(stack)["id"],
                "initial_memories": [{"content": "g", "scope": "GLOBAL"}]}
    r = stack.admin("POST", "/workspaces", body=body)
    assert r.status == 400, r.body
    assert r.json() == {"error": msg}
    assert stack.psql("SELECT count(*) FROM workspaces WHERE name = '%s'" % name) == "0"


def test_create_with_secrets_and_memories_is_one_transaction(stack):
    # A failing memory insert (trigger) rolls back the workspace and its secrets too.
    name = uniq("atomic")
    stack.psql("CREATE OR REPLACE FUNCTION seed_fail() RETURNS trigger AS $$ BEGIN "
               "IF NEW.content = 'boom' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$ "
               "LANGUAGE plpgsql; DROP TRIGGER IF EXISTS seed_fail ON agent_memories; "
               "CREATE TRIGGER seed_fail BEFORE INSERT ON agent_memories FOR EACH ROW "
               "EXECUTE FUNCTION seed_fail()")
    try:
        r = stack.admin("POST", "/workspaces", body={
            "name": name, "secrets": {"ATOMIC_K": "v"},
            "initial_memories": [{"content": "first"}, {"content": "boom"}]})
        assert r.status == 500, r.body
    finally:
        stack.psql("DROP TRIGGER IF EXISTS seed_fail ON agent_memories")
    assert stack.psql("SELECT count(*) FROM workspaces WHERE name = '%s'" % name) == "0"
    assert stack.psql("SELECT count(*) FROM agent_memories WHERE content = 'first'") == "0"
    assert stack.psql("SELECT count(*) FROM workspace_secrets WHERE key = 'ATOMIC_K'") == "0"
