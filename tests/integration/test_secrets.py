"""Secrets (api.md §4.14): workspace and global secrets, /values, /model, restart jobs, events.

Runs on its own stack in static-key mode (SECRETS_ENCRYPTION_KEY set); at the end every log of
that stack is searched for every secret value used: none may appear.
"""
import base64
import json
import os
import uuid

import pytest

from conftest import start_stack, stop_stack

ADMIN = "sec-admin-token-0123456789abcdef"
KEY_B64 = base64.b64encode(os.urandom(32)).decode()
# Every plaintext value sent to the stack; the teardown greps all logs for each of them.
VALUES = []
FAILED_MSG = "one or more secrets failed to decrypt; refusing to return partial bundle"


def secret(tag):
    v = "sv-%s-%s" % (tag, uuid.uuid4().hex)
    VALUES.append(v)
    return v


@pytest.fixture(scope="module")
def sstack():
    s = start_stack({"ADMIN_TOKEN": ADMIN, "SECRETS_ENCRYPTION_KEY": KEY_B64})
    yield s
    leaks = []
    logdir = os.path.join(s.run_dir, "logs")
    for name in sorted(os.listdir(logdir)) if os.path.isdir(logdir) else []:
        with open(os.path.join(logdir, name), errors="replace") as f:
            text = f.read()
        leaks += ["%s in %s" % (v, name) for v in VALUES + [KEY_B64] if v in text]
    problems = stop_stack(s)
    assert not leaks, "secret values found in logs: %s" % leaks
    assert not problems, "\n".join(problems)


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def new_ws(s, status="online", runtime="langgraph"):
    return s.psql("INSERT INTO workspaces (name, status, runtime) VALUES ('sec-%s', '%s', '%s') "
                  "RETURNING id" % (uuid.uuid4().hex[:10], status, runtime)).splitlines()[0]


def mint(s, ws):
    r = s.admin("POST", "/workspaces/%s/tokens" % ws)
    assert r.status == 201, r.body
    return r.json()["auth_token"]


def put(s, ws, key, value, method="POST"):
    return s.admin(method, "/workspaces/%s/secrets" % ws, body={"key": key, "value": value})


def restart_jobs(s, ws):
    out = s.psql("SELECT payload::text FROM provision_jobs WHERE workspace_id = '%s' "
                 "AND kind = 'restart' ORDER BY created_at" % ws)
    return [json.loads(l) for l in out.splitlines() if l]


# --- round trip ---------------------------------------------------------------------------

def test_round_trip_list_never_shows_values(sstack):
    ws = new_ws(sstack)
    v1, v2 = secret("a"), secret("b")
    r = put(sstack, ws, "API_KEY", v1)
    assert r.status == 200, r.body
    assert r.json() == {"status": "saved", "key": "API_KEY"}
    r = put(sstack, ws, "OTHER", v2, method="PUT")
    assert r.status == 200 and r.json() == {"status": "saved", "key": "OTHER"}

    r = sstack.admin("GET", "/workspaces/%s/secrets" % ws)
    assert r.status == 200
    assert v1.encode() not in r.body and v2.encode() not in r.body
    rows = [x for x in r.json() if x["scope"] == "workspace"]
    assert [x["key"] for x in rows] == ["API_KEY", "OTHER"]
    for x in rows:
        assert set(x) == {"key", "has_value", "scope", "created_at", "updated_at"}
        assert x["has_value"] is True

    # No token yet: lazy bootstrap lets WorkspaceAuth's ADMIN_TOKEN through.
    r = sstack.admin("GET", "/workspaces/%s/secrets/values" % ws)
    assert r.status == 200, r.body
    vals = r.json()
    assert vals["API_KEY"] == v1 and vals["OTHER"] == v2

    # Upsert replaces the value.
    v3 = secret("c")
    assert put(sstack, ws, "API_KEY", v3).status == 200
    assert sstack.admin("GET", "/workspaces/%s/secrets/values" % ws).json()["API_KEY"] == v3


def test_stored_sealed_with_version_2(sstack):
    ws = new_ws(sstack)
    v = secret("stored")
    assert put(sstack, ws, "SEALED", v).status == 200
    row = sstack.psql("SELECT encryption_version, encode(encrypted_value, 'hex') FROM "
                      "workspace_secrets WHERE workspace_id = '%s' AND key = 'SEALED'" % ws)
    ver, hexblob = row.split("|")
    assert ver == "2"
    assert v.encode().hex() not in hexblob
    assert len(hexblob) // 2 >= len(v) + 28  # nonce + tag


def test_values_needs_own_token_once_it_has_one(sstack):
    ws = new_ws(sstack)
    v = secret("tok")
    assert put(sstack, ws, "TOKENED", v).status == 200
    tok = mint(sstack, ws)
    r = sstack.admin("GET", "/workspaces/%s/secrets/values" % ws)
    assert r.status == 401 and r.json() == {"error": "invalid workspace auth token"}
    other = mint(sstack, new_ws(sstack))
    r = sstack.get("/workspaces/%s/secrets/values" % ws, headers=bearer(other))
    assert r.status == 401
    r = sstack.get("/workspaces/%s/secrets/values" % ws, headers=bearer(tok))
    assert r.status == 200 and r.json()["TOKENED"] == v
    r = sstack.get("/workspaces/%s/secrets/values" % ws)
    assert r.status == 401 and r.json() == {"error": "missing workspace auth token"}


# --- integrity ------------------------------------------------------------------------------

def test_row_copied_to_another_workspace_fails_to_decrypt(sstack):
    a, b = new_ws(sstack), new_ws(sstack)
    va, vb = secret("copy-a"), secret("copy-b")
    assert put(sstack, a, "SHARED", va).status == 200
    assert put(sstack, b, "SHARED", vb).status == 200
    sstack.psql("UPDATE workspace_secrets SET encrypted_value = (SELECT encrypted_value FROM "
                "workspace_secrets WHERE workspace_id = '%s' AND key = 'SHARED') "
                "WHERE workspace_id = '%s' AND key = 'SHARED'" % (a, b))
    r = sstack.admin("GET", "/workspaces/%s/secrets/values" % b)
    assert r.status == 500
    body = r.json()
    assert body == {"error": FAILED_MSG, "failed_keys": ["workspace:SHARED"]}
    assert va.encode() not in r.body
    # Moving a blob to another key name of the same workspace fails too.
    sstack.psql("INSERT INTO workspace_secrets (workspace_id, key, encrypted_value, "
                "encryption_version) SELECT workspace_id, 'RENAMED', encrypted_value, "
                "encryption_version FROM workspace_secrets WHERE workspace_id = '%s' "
                "AND key = 'SHARED'" % a)
    r = sstack.admin("GET", "/workspaces/%s/secrets/values" % a)
    assert r.status == 500 and r.json()["failed_keys"] == ["workspace:RENAMED"]


def test_flipped_byte_fails_to_decrypt(sstack):
    ws = new_ws(sstack)
    assert put(sstack, ws, "GOOD", secret("good")).status == 200
    assert put(sstack, ws, "FLIP", secret("flip")).status == 200
    sstack.psql("UPDATE workspace_secrets SET encrypted_value = set_byte(encrypted_value, 20, "
                "get_byte(encrypted_value, 20) # 1) WHERE workspace_id = '%s' AND key = 'FLIP'"
                % ws)
    r = sstack.admin("GET", "/workspaces/%s/secrets/values" % ws)
    assert r.status == 500
    assert r.json() == {"error": FAILED_MSG, "failed_keys": ["workspace:FLIP"]}
    assert b"sv-good" not in r.body


# --- globals --------------------------------------------------------------------------------

def test_globals_overlay_and_list(sstack):
    key = "GLOBAL_%s" % uuid.uuid4().hex[:8].upper()
    gv, wv = secret("global"), secret("override")
    plain = new_ws(sstack)
    override = new_ws(sstack)
    paused = new_ws(sstack, status="paused")
    external = new_ws(sstack, runtime="external")
    assert put(sstack, override, key, wv).status == 200
    before = {w: len(restart_jobs(sstack, w)) for w in (plain, override, paused, external)}

    r = sstack.admin("PUT", "/settings/secrets", body={"key": key, "value": gv})
    assert r.status == 200 and r.json() == {"status": "saved", "key": key, "scope": "global"}
    r = sstack.admin("GET", "/settings/secrets")
    assert r.status == 200 and gv.encode() not in r.body
    rows = [x for x in r.json() if x["key"] == key]
    assert len(rows) == 1 and rows[0]["scope"] == "global" and rows[0]["has_value"] is True

    lst = sstack.admin("GET", "/workspaces/%s/secrets" % plain).json()
    assert {"key": key, "scope": "global"}.items() <= [x for x in lst if x["key"] == key][0].items()
    lst = sstack.admin("GET", "/workspaces/%s/secrets" % override).json()
    mine = [x for x in lst if x["key"] == key]
    assert len(mine) == 1 and mine[0]["scope"] == "workspace"
    scopes = [x["scope"] for x in lst]
    assert scopes == sorted(scopes, key=lambda s: s != "workspace")  # workspace rows first

    assert sstack.admin("GET", "/workspaces/%s/secrets/values" % plain).json()[key] == gv
    assert sstack.admin("GET", "/workspaces/%s/secrets/values" % override).json()[key] == wv

    # Restart jobs: running, provisioned, not overriding workspaces only.
    after = {w: len(restart_jobs(sstack, w)) for w in before}
    assert after[plain] == before[plain] + 1
    assert after[override] == before[override]
    assert after[paused] == before[paused] and after[external] == before[external]
    job = restart_jobs(sstack, plain)[-1]
    assert job == {"reason": "secret_changed", "key": key, "scope": "global"}

    # A global blob moved to another key name fails as "global:<key>".
    sstack.psql("INSERT INTO global_secrets (key, encrypted_value, encryption_version) "
                "SELECT '%s_MOVED', encrypted_value, encryption_version FROM global_secrets "
                "WHERE key = '%s'" % (key, key))
    r = sstack.admin("GET", "/workspaces/%s/secrets/values" % plain)
    assert r.status == 500 and "global:%s_MOVED" % key in r.json()["failed_keys"]
    sstack.psql("DELETE FROM global_secrets WHERE key = '%s_MOVED'" % key)

    r = sstack.admin("DELETE", "/settings/secrets/%s" % key)
    assert r.status == 200 and r.json() == {"status": "deleted", "key": key, "scope": "global"}
    r = sstack.admin("DELETE", "/settings/secrets/%s" % key)
    assert r.status == 404 and r.json() == {"error": "secret not found"}
    assert key not in sstack.admin("GET", "/workspaces/%s/secrets/values" % plain).json()


def test_admin_aliases(sstack):
    key = "ALIAS_%s" % uuid.uuid4().hex[:8].upper()
    r = sstack.admin("POST", "/admin/secrets", body={"key": key, "value": secret("alias")})
    assert r.status == 200 and r.json()["scope"] == "global"
    r = sstack.admin("GET", "/admin/secrets")
    assert r.status == 200 and key in [x["key"] for x in r.json()]
    r = sstack.admin("DELETE", "/admin/secrets/%s" % key)
    assert r.status == 200 and r.json() == {"status": "deleted", "key": key, "scope": "global"}
    assert sstack.admin("PUT", "/admin/secrets", body={"key": key, "value": "x"}).status in (404, 405)


def test_global_routes_need_admin(sstack):
    tok = mint(sstack, new_ws(sstack))
    for method, path in (("GET", "/settings/secrets"), ("PUT", "/settings/secrets"),
                         ("POST", "/settings/secrets"), ("DELETE", "/settings/secrets/X"),
                         ("GET", "/admin/secrets"), ("POST", "/admin/secrets"),
                         ("DELETE", "/admin/secrets/X")):
        body = {"key": "X", "value": "y"} if method in ("PUT", "POST") else None
        r = sstack.request(method, path, body=body)
        assert r.status == 401 and r.json() == {"error": "admin auth required"}, (method, path)
        r = sstack.request(method, path, body=body, headers=bearer(tok))
        assert r.status == 401 and r.json() == {"error": "invalid admin auth token"}


# --- delete, restart jobs, events ----------------------------------------------------------

def test_delete_restart_jobs_and_events(sstack):
    ws = new_ws(sstack)
    v = secret("del")
    assert put(sstack, ws, "TO_DELETE", v).status == 200
    r = sstack.admin("DELETE", "/workspaces/%s/secrets/TO_DELETE" % ws)
    assert r.status == 200 and r.json() == {"status": "deleted", "key": "TO_DELETE"}
    r = sstack.admin("DELETE", "/workspaces/%s/secrets/TO_DELETE" % ws)
    assert r.status == 404 and r.json() == {"error": "secret not found"}
    r = sstack.admin("DELETE", "/workspaces/%s/secrets/not-a-key" % ws)
    assert r.status == 404 and r.json() == {"error": "secret not found"}

    assert restart_jobs(sstack, ws) == [{"reason": "secret_changed", "key": "TO_DELETE"}] * 2
    ev = sstack.psql("SELECT event_type || ' ' || payload::text FROM structure_events "
                     "WHERE workspace_id = '%s' AND event_type LIKE 'SECRET_%%' "
                     "ORDER BY created_at" % ws).splitlines()
    assert [e.split(" ", 1)[0] for e in ev] == ["SECRET_SET", "SECRET_DELETED"]
    for e in ev:
        assert json.loads(e.split(" ", 1)[1]) == {"key": "TO_DELETE", "scope": "workspace"}
    assert v not in sstack.psql("SELECT coalesce(string_agg(payload::text, ''), '') FROM "
                                "structure_events")
    assert v not in sstack.psql("SELECT coalesce(string_agg(payload::text, ''), '') FROM "
                                "provision_jobs")
    # Paused and external workspaces get no restart job.
    for w in (new_ws(sstack, status="paused"), new_ws(sstack, runtime="external")):
        assert put(sstack, w, "K", secret("nojob")).status == 200
        assert restart_jobs(sstack, w) == []


def test_unknown_workspace_writes_nothing(sstack):
    ws = str(uuid.uuid4())
    assert put(sstack, ws, "K", secret("ghost")).json() == {"error": "workspace not found"}
    for method, path in (("GET", "/secrets"), ("GET", "/secrets/values"), ("GET", "/model"),
                         ("DELETE", "/secrets/K")):
        r = sstack.admin(method, "/workspaces/%s%s" % (ws, path))
        assert r.status == 404 and r.json() == {"error": "workspace not found"}, path
    removed = new_ws(sstack, status="removed")
    assert put(sstack, removed, "K", "v").status == 404
    assert sstack.psql("SELECT count(*) FROM provision_jobs WHERE workspace_id = '%s'" % ws) == "0"


# --- model ---------------------------------------------------------------------------------

def test_model_get_put_clear(sstack):
    ws = new_ws(sstack)
    r = sstack.admin("GET", "/workspaces/%s/model" % ws)
    assert r.status == 200 and r.json() == {"model": "", "source": "default"}
    r = sstack.admin("PUT", "/workspaces/%s/model" % ws, body={"model": "anthropic:claude-x"})
    assert r.status == 200 and r.json() == {"status": "saved", "model": "anthropic:claude-x"}
    r = sstack.admin("GET", "/workspaces/%s/model" % ws)
    assert r.json() == {"model": "anthropic:claude-x", "source": "workspace_secrets"}
    assert "MODEL_PROVIDER" in [x["key"] for x in
                                sstack.admin("GET", "/workspaces/%s/secrets" % ws).json()]
    r = sstack.admin("PUT", "/workspaces/%s/model" % ws, body={"model": ""})
    assert r.status == 200 and r.json() == {"status": "cleared"}
    assert sstack.admin("GET", "/workspaces/%s/model" % ws).json()["source"] == "default"
    assert len(restart_jobs(sstack, ws)) == 2
    for body in ({}, {"model": 5}, {"model": None}):
        r = sstack.admin("PUT", "/workspaces/%s/model" % ws, body=body)
        assert r.status == 400 and r.json() == {"error": "invalid request body"}, body


# --- bad inputs ------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["1ABC", "A-B", "a b", "k'; DROP TABLE workspaces;--",
                                 "K" * 129, "ключ", "A.B"])
def test_invalid_key_names(sstack, key):
    ws = new_ws(sstack)
    r = put(sstack, ws, key, "value")
    assert r.status == 400 and r.json() == {"error": "invalid secret key"}, key
    r = sstack.admin("PUT", "/settings/secrets", body={"key": key, "value": "value"})
    assert r.status == 400 and r.json() == {"error": "invalid secret key"}, key


def test_valid_key_edges(sstack):
    ws = new_ws(sstack)
    for key in ("_", "a", "K" * 128, "snake_Case_9"):
        assert put(sstack, ws, key, secret("edge")).status == 200, key


@pytest.mark.parametrize("body", [{"key": "K"}, {"value": "v"}, {"key": "K", "value": ""},
                                  {"key": "", "value": "v"}, {"key": "K", "value": 5},
                                  {"key": 5, "value": "v"}, {"key": "K", "value": None},
                                  {"key": "K", "value": ["v"]}])
def test_invalid_bodies(sstack, body):
    ws = new_ws(sstack)
    r = sstack.admin("POST", "/workspaces/%s/secrets" % ws, body=body)
    assert r.status == 400 and r.json() == {"error": "invalid request body"}, body
    r = sstack.admin("POST", "/settings/secrets", body=body)
    assert r.status == 400 and r.json() == {"error": "invalid request body"}, body


def test_value_size_limit_and_malformed_json(sstack):
    ws = new_ws(sstack)
    r = put(sstack, ws, "BIG", "x" * 65537)
    assert r.status == 400 and r.json() == {"error": "secret value too large (max 65536 bytes)"}
    big = "y" * 65536
    VALUES.append(big)
    assert put(sstack, ws, "BIG", big).status == 200
    assert sstack.admin("GET", "/workspaces/%s/secrets/values" % ws).json()["BIG"] == big
    r = sstack.admin("POST", "/workspaces/%s/secrets" % ws, body='{"key": "K", ',
                     headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.json() == {"error": "invalid JSON"}
    r = sstack.admin("POST", "/workspaces/%s/secrets" % ws, body="[1]")
    assert r.status == 400


def test_unicode_and_injection_values_round_trip(sstack):
    ws = new_ws(sstack)
    v = secret("'; DROP TABLE workspace_secrets; -- \"q\" ünïcødé \\n")
    assert put(sstack, ws, "WEIRD", v).status == 200
    assert sstack.admin("GET", "/workspaces/%s/secrets/values" % ws).json()["WEIRD"] == v


def test_non_uuid_and_auth(sstack):
    for method, path in (("GET", "/secrets"), ("GET", "/secrets/values"), ("POST", "/secrets"),
                         ("PUT", "/secrets"), ("DELETE", "/secrets/K"), ("GET", "/model"),
                         ("PUT", "/model")):
        body = {"key": "K", "value": "v", "model": "m"} if method in ("POST", "PUT") else None
        r = sstack.admin(method, "/workspaces/not-a-uuid%s" % path, body=body)
        assert r.status == 400 and r.json() == {"error": "invalid workspace ID"}, path
    ws = new_ws(sstack)
    other = mint(sstack, new_ws(sstack))
    for method, path in (("GET", "/secrets"), ("POST", "/secrets"), ("DELETE", "/secrets/K"),
                         ("GET", "/model"), ("PUT", "/model")):
        body = {"key": "K", "value": "v", "model": "m"} if method in ("POST", "PUT") else None
        r = sstack.request(method, "/workspaces/%s%s" % (ws, path), body=body)
        assert r.status == 401 and r.json() == {"error": "missing workspace auth token"}, path
        r = sstack.request(method, "/workspaces/%s%s" % (ws, path), body=body,
                           headers=bearer(other))
        assert r.status == 401 and r.json() == {"error": "invalid workspace auth token"}, path
    # The workspace's own token may write its secrets.
    own = mint(sstack, ws)
    r = sstack.request("POST", "/workspaces/%s/secrets" % ws, headers=bearer(own),
                       body={"key": "OWN", "value": secret("own")})
    assert r.status == 200


# --- secrets seeded by POST /workspaces ------------------------------------------------------

def create_ws(s, **body):
    body.setdefault("name", "seed-%s" % uuid.uuid4().hex[:10])
    return s.admin("POST", "/workspaces", body=body), body["name"]


def test_create_stores_secrets_sealed_with_events_and_no_restart(sstack):
    va, vb = secret("seed-a"), secret("seed-b")
    r, _ = create_ws(sstack, secrets={"SEED_A": va, "seed_b": vb})
    assert r.status == 201, r.body
    assert va.encode() not in r.body and vb.encode() not in r.body
    ws = r.json()["id"]
    rows = sstack.psql("SELECT key, encryption_version, encode(encrypted_value, 'hex') FROM "
                       "workspace_secrets WHERE workspace_id = '%s' ORDER BY key" % ws).splitlines()
    assert [row.split("|")[:2] for row in rows] == [["SEED_A", "2"], ["seed_b", "2"]]
    for row, v in zip(rows, (va, vb)):
        assert v.encode().hex() not in row.split("|")[2]
    tok = mint(sstack, ws)
    got = sstack.get("/workspaces/%s/secrets/values" % ws, headers=bearer(tok))
    assert got.status == 200, got.body
    assert got.json()["SEED_A"] == va and got.json()["seed_b"] == vb
    ev = sstack.psql("SELECT payload::text FROM structure_events WHERE workspace_id = '%s' AND "
                     "event_type = 'SECRET_SET' ORDER BY payload->>'key'" % ws).splitlines()
    assert [json.loads(e) for e in ev] == [{"key": "SEED_A", "scope": "workspace"},
                                           {"key": "seed_b", "scope": "workspace"}]
    assert restart_jobs(sstack, ws) == []
    assert sstack.psql("SELECT count(*) FROM provision_jobs WHERE workspace_id = '%s' AND "
                       "kind = 'provision'" % ws) == "1"


@pytest.mark.parametrize("secrets,msg", [
    ({"1BAD": "v"}, "invalid secret key"),
    ({"BAD-KEY": "v"}, "invalid secret key"),
    ({"K" * 129: "v"}, "invalid secret key"),
    ({"BIG": "x" * 65537}, "secret value too large (max 65536 bytes)"),
    ({"NUM": 5}, "invalid workspace payload"),
    ({"NUL": None}, "invalid workspace payload"),
    ({"EMPTY": ""}, "invalid workspace payload"),
    (["K", "v"], "invalid workspace payload"),
])
def test_create_with_bad_secrets_writes_nothing(sstack, secrets, msg):
    ok = secret("not-stored")
    body = {"OK_FIRST": ok}
    body.update(secrets if isinstance(secrets, dict) else {})
    r, name = create_ws(sstack, secrets=body if isinstance(secrets, dict) else secrets)
    assert r.status == 400, r.body
    assert r.json() == {"error": msg}
    assert sstack.psql("SELECT count(*) FROM workspaces WHERE name = '%s'" % name) == "0"
    assert sstack.psql("SELECT count(*) FROM workspace_secrets s LEFT JOIN workspaces w ON "
                       "w.id = s.workspace_id WHERE w.id IS NULL OR w.name = '%s'" % name) == "0"
