"""Bearer-token routes: /workspaces/:id/tokens, /org/tokens, /admin/workspaces/:id/test-token."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import uuid

import pytest

from conftest import BIN_DIR

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
SAVE_MSG = "Save this token now — it cannot be retrieved again."
ORG_WARNING = "copy this token now; it will not be shown again"


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def new_ws(stack, status="online"):
    return stack.psql("INSERT INTO workspaces (id, name, status) VALUES (gen_random_uuid(), "
                      "'tok-%s', '%s') RETURNING id" % (uuid.uuid4().hex[:12], status)).splitlines()[0]


def mint(stack, ws):
    r = stack.admin("POST", "/workspaces/%s/tokens" % ws)
    assert r.status == 201, r.body
    return r.json()["auth_token"]


def reset_org_limiter(stack):
    sock = stack.stack_env()["REDIS_URL"][len("unix://"):]
    subprocess.run(["redis-cli", "-s", sock, "DEL", "org_tokens_rl:127.0.0.1"],
                   capture_output=True, timeout=10, check=True)


def mint_org(stack, name=None, headers=None):
    reset_org_limiter(stack)
    h = headers if headers is not None else bearer(stack.env["ADMIN_TOKEN"])
    r = stack.request("POST", "/org/tokens", headers=h, body={"name": name} if name else None)
    assert r.status == 200, r.body
    return r.json()


# --- workspace tokens -------------------------------------------------------------------

def test_create_returns_plaintext_once_and_stores_only_the_hash(stack):
    ws = new_ws(stack)
    r = stack.admin("POST", "/workspaces/%s/tokens" % ws)
    assert r.status == 201
    body = r.json()
    assert set(body) == {"auth_token", "workspace_id", "message"}
    assert body["workspace_id"] == ws
    assert body["message"] == SAVE_MSG
    tok = body["auth_token"]
    assert TOKEN_RE.match(tok)
    row = stack.psql("SELECT prefix, encode(token_hash, 'hex'), revoked_at IS NULL "
                     "FROM workspace_auth_tokens WHERE workspace_id = '%s'" % ws)
    assert row == "%s|%s|t" % (tok[:8], hashlib.sha256(tok.encode()).hexdigest())
    assert tok not in stack.log("moleculed.log")
    # The new token opens its own workspace at once.
    assert stack.get("/workspaces/%s/tokens" % ws, headers=bearer(tok)).status == 200


def test_list_shape_order_and_last_used(stack):
    ws = new_ws(stack)
    toks = [mint(stack, ws) for _ in range(3)]
    r = stack.admin("GET", "/workspaces/%s/tokens" % ws)
    assert r.status == 200
    body = r.json()
    assert set(body) == {"tokens", "count"}
    assert body["count"] == 3 and len(body["tokens"]) == 3
    for t in body["tokens"]:
        assert list(t) == ["id", "prefix", "created_at", "last_used_at"]
        assert TS_RE.match(t["created_at"]), t
        assert t["last_used_at"] is None
    # Newest first.
    assert [t["prefix"] for t in body["tokens"]] == [x[:8] for x in reversed(toks)]
    assert stack.get("/workspaces/%s/tokens" % ws, headers=bearer(toks[0])).status == 200
    used = {t["prefix"]: t for t in stack.admin("GET", "/workspaces/%s/tokens" % ws).json()["tokens"]}
    assert TS_RE.match(used[toks[0][:8]]["last_used_at"])
    assert used[toks[1][:8]]["last_used_at"] is None
    assert "token_hash" not in r.body.decode() and toks[0] not in r.body.decode()


def test_list_limit_and_offset(stack):
    ws = new_ws(stack)
    for _ in range(3):
        mint(stack, ws)
    path = "/workspaces/%s/tokens" % ws
    assert stack.admin("GET", path + "?limit=2").json()["count"] == 2
    assert stack.admin("GET", path + "?limit=2&offset=2").json()["count"] == 1
    assert stack.admin("GET", path + "?offset=5").json() == {"tokens": [], "count": 0}
    assert stack.admin("GET", path + "?limit=100000").json()["count"] == 3  # clamped to 200
    assert stack.admin("GET", path + "?limit=").json()["count"] == 3
    for q, msg in (("limit=abc", "limit must be a positive integer"),
                   ("limit=0", "limit must be a positive integer"),
                   ("limit=1;DROP", "limit must be a positive integer"),
                   ("offset=-1", "offset must be a non-negative integer"),
                   ("offset=x", "offset must be a non-negative integer")):
        r = stack.admin("GET", path + "?" + q)
        assert r.status == 400, q
        assert r.json() == {"error": msg}


def test_list_caps_at_200(stack):
    ws = new_ws(stack)
    stack.psql("INSERT INTO workspace_auth_tokens (workspace_id, token_hash, prefix) "
               "SELECT '%s', sha256(('%s' || g)::bytea), 'fake' || g FROM generate_series(1, 205) g"
               % (ws, uuid.uuid4().hex))
    r = stack.admin("GET", "/workspaces/%s/tokens?limit=500" % ws)
    assert r.json()["count"] == 200
    assert stack.admin("GET", "/workspaces/%s/tokens" % ws).json()["count"] == 50


def test_at_most_50_live_tokens(stack):
    ws = new_ws(stack)
    stack.psql("INSERT INTO workspace_auth_tokens (workspace_id, token_hash, prefix) "
               "SELECT '%s', sha256(('%s' || g)::bytea), 'fake' || g FROM generate_series(1, 49) g"
               % (ws, uuid.uuid4().hex))
    mint(stack, ws)  # the 50th
    r = stack.admin("POST", "/workspaces/%s/tokens" % ws)
    assert r.status == 429
    assert r.json() == {"error": "maximum 50 active tokens per workspace"}
    tid = stack.psql("SELECT id FROM workspace_auth_tokens WHERE workspace_id = '%s' LIMIT 1" % ws)
    assert stack.admin("DELETE", "/workspaces/%s/tokens/%s" % (ws, tid)).status == 200
    assert stack.admin("POST", "/workspaces/%s/tokens" % ws).status == 201


def test_revoke_takes_effect_on_the_next_request(stack):
    ws = new_ws(stack)
    tok = mint(stack, ws)
    keep = mint(stack, ws)
    path = "/workspaces/%s/tokens" % ws
    assert stack.get(path, headers=bearer(tok)).status == 200
    tid = [t["id"] for t in stack.admin("GET", path).json()["tokens"] if t["prefix"] == tok[:8]][0]
    # A workspace may revoke its own tokens with another of its tokens.
    r = stack.request("DELETE", "%s/%s" % (path, tid), headers=bearer(keep))
    assert r.status == 200
    assert r.json() == {"status": "revoked"}
    r = stack.get(path, headers=bearer(tok))
    assert r.status == 401
    assert r.json() == {"error": "invalid workspace auth token"}
    r = stack.admin("DELETE", "%s/%s" % (path, tid))
    assert r.status == 404
    assert r.json() == {"error": "token not found or already revoked"}
    assert [t["prefix"] for t in stack.admin("GET", path).json()["tokens"]] == [keep[:8]]


def test_revoke_is_bound_to_the_workspace(stack):
    a, b = new_ws(stack), new_ws(stack)
    mint(stack, a)
    tid = stack.psql("SELECT id FROM workspace_auth_tokens WHERE workspace_id = '%s'" % a)
    r = stack.admin("DELETE", "/workspaces/%s/tokens/%s" % (b, tid))
    assert r.status == 404
    assert r.json() == {"error": "token not found or already revoked"}
    r = stack.admin("DELETE", "/workspaces/%s/tokens/%s" % (a, uuid.uuid4()))
    assert r.status == 404
    for bad in ("not-a-uuid", urllib.parse.quote("1'; DELETE FROM workspace_auth_tokens;--")):
        r = stack.admin("DELETE", "/workspaces/%s/tokens/%s" % (a, bad))
        assert r.status == 400
        assert r.json() == {"error": "invalid token ID"}
    assert stack.psql("SELECT count(*) FROM workspace_auth_tokens WHERE id = '%s' "
                      "AND revoked_at IS NULL" % tid) == "1"


def test_workspace_ids_are_validated(stack):
    gone = new_ws(stack, status="removed")
    tid = uuid.uuid4()
    for method, suffix in (("GET", ""), ("POST", ""), ("DELETE", "/%s" % tid)):
        for ws, status, msg in (("not-a-uuid", 400, "invalid workspace ID"),
                                (urllib.parse.quote("x' OR '1'='1"), 400, "invalid workspace ID"),
                                (str(uuid.uuid4()), 404, "workspace not found"),
                                (gone, 404, "workspace not found")):
            r = stack.admin(method, "/workspaces/%s/tokens%s" % (ws, suffix))
            assert (r.status, r.json()) == (status, {"error": msg}), (method, ws)


def test_workspace_token_routes_need_the_workspace_credential(stack):
    a, b = new_ws(stack), new_ws(stack)
    ta = mint(stack, a)
    for method in ("GET", "POST"):
        r = stack.request(method, "/workspaces/%s/tokens" % b)
        assert (r.status, r.json()) == (401, {"error": "missing workspace auth token"})
        r = stack.request(method, "/workspaces/%s/tokens" % b, headers=bearer(ta))
        assert (r.status, r.json()) == (401, {"error": "invalid workspace auth token"})
    r = stack.request("POST", "/workspaces/%s/tokens" % a, headers=bearer(ta))
    assert r.status == 201 and r.json()["workspace_id"] == a


def test_removed_workspace_tokens_stop_working(stack):
    ws = new_ws(stack)
    tok = mint(stack, ws)
    stack.psql("UPDATE workspaces SET status = 'removed' WHERE id = '%s'" % ws)
    r = stack.get("/workspaces/%s/tokens" % ws, headers=bearer(tok))
    assert (r.status, r.json()) == (401, {"error": "invalid workspace auth token"})


# --- org tokens ---------------------------------------------------------------------------

def test_org_token_create_shape_and_row(stack):
    body = mint_org(stack, name="ci 'bot'; DROP TABLE org_api_tokens;--")
    assert list(body) == ["id", "prefix", "name", "auth_token", "warning"]
    assert body["warning"] == ORG_WARNING
    assert body["name"] == "ci 'bot'; DROP TABLE org_api_tokens;--"
    assert TOKEN_RE.match(body["auth_token"]) and body["prefix"] == body["auth_token"][:8]
    row = stack.psql("SELECT prefix, name, created_by, org_id IS NULL, encode(token_hash, 'hex') "
                     "FROM org_api_tokens WHERE id = '%s'" % body["id"])
    assert row == "%s|%s|admin-token|t|%s" % (body["prefix"], body["name"],
                                              hashlib.sha256(body["auth_token"].encode()).hexdigest())
    assert body["auth_token"] not in stack.log("moleculed.log")


def test_org_token_create_without_body_or_name(stack):
    reset_org_limiter(stack)
    r = stack.admin("POST", "/org/tokens")
    assert r.status == 200
    assert list(r.json()) == ["id", "prefix", "auth_token", "warning"]
    r = stack.admin("POST", "/org/tokens", body={"name": ""})
    assert r.status == 200 and "name" not in r.json()
    r = stack.admin("POST", "/org/tokens", body={"name": None})
    assert r.status == 200 and "name" not in r.json()


def test_org_token_name_validation(stack):
    reset_org_limiter(stack)
    r = stack.admin("POST", "/org/tokens", body={"name": "x" * 101})
    assert (r.status, r.json()) == (400, {"error": "name too long (max 100 chars)"})
    r = stack.admin("POST", "/org/tokens", body={"name": "é" * 100})
    assert r.status == 200 and r.json()["name"] == "é" * 100
    r = stack.admin("POST", "/org/tokens", body={"name": 5})
    assert (r.status, r.json()) == (400, {"error": "name must be a string"})
    r = stack.admin("POST", "/org/tokens", body='{"name": ', headers={"Content-Type": "application/json"})
    assert (r.status, r.json()) == (400, {"error": "invalid JSON"})
    r = stack.admin("POST", "/org/tokens", body={"name": "a\u0000b"})
    assert (r.status, r.json()) == (400, {"error": "name must not contain NUL characters"})


def test_org_token_is_an_admin_credential_and_records_provenance(stack):
    first = mint_org(stack, name="parent")
    anchor = new_ws(stack)
    stack.psql("UPDATE org_api_tokens SET org_id = '%s' WHERE id = '%s'" % (anchor, first["id"]))
    child = mint_org(stack, name="child", headers=bearer(first["auth_token"]))
    row = stack.psql("SELECT created_by, org_id FROM org_api_tokens WHERE id = '%s'" % child["id"])
    assert row == "org-token:%s|%s" % (first["prefix"], anchor)
    # A token minted by the anchored child inherits the same org.
    grand = mint_org(stack, headers=bearer(child["auth_token"]))
    row = stack.psql("SELECT created_by, org_id FROM org_api_tokens WHERE id = '%s'" % grand["id"])
    assert row == "org-token:%s|%s" % (child["prefix"], anchor)


def test_org_token_list_shape(stack):
    a = mint_org(stack, name="listed")
    b = mint_org(stack)
    assert stack.get("/org/tokens", headers=bearer(a["auth_token"])).status == 200
    r = stack.admin("GET", "/org/tokens")
    assert r.status == 200
    body = r.json()
    assert set(body) == {"tokens", "count"} and body["count"] == len(body["tokens"])
    ids = [t["id"] for t in body["tokens"]]
    assert ids.index(b["id"]) < ids.index(a["id"])  # newest first
    ta = body["tokens"][ids.index(a["id"])]
    tb = body["tokens"][ids.index(b["id"])]
    assert list(ta) == ["id", "prefix", "name", "created_by", "created_at", "last_used_at"]
    assert ta["name"] == "listed" and ta["created_by"] == "admin-token"
    assert TS_RE.match(ta["created_at"]) and TS_RE.match(ta["last_used_at"])
    assert list(tb) == ["id", "prefix", "created_by", "created_at"]
    assert a["auth_token"] not in r.body.decode()


def test_org_token_revoke(stack):
    t = mint_org(stack)
    assert stack.get("/org/tokens", headers=bearer(t["auth_token"])).status == 200
    r = stack.admin("DELETE", "/org/tokens/%s" % t["id"])
    assert (r.status, r.json()) == (200, {"revoked": t["id"]})
    r = stack.get("/org/tokens", headers=bearer(t["auth_token"]))
    assert (r.status, r.json()) == (401, {"error": "invalid admin auth token"})
    assert t["id"] not in [x["id"] for x in stack.admin("GET", "/org/tokens").json()["tokens"]]
    for bad in (t["id"], str(uuid.uuid4()), "not-a-uuid", urllib.parse.quote("'; DROP TABLE x;--")):
        r = stack.admin("DELETE", "/org/tokens/%s" % bad)
        assert (r.status, r.json()) == (404, {"error": "token not found or already revoked"}), bad


def test_org_token_routes_need_admin(stack):
    ws = new_ws(stack)
    wtok = mint(stack, ws)
    for method, path in (("GET", "/org/tokens"), ("POST", "/org/tokens"),
                         ("DELETE", "/org/tokens/%s" % uuid.uuid4())):
        r = stack.request(method, path)
        assert (r.status, r.json()) == (401, {"error": "admin auth required"})
        r = stack.request(method, path, headers=bearer(wtok))
        assert (r.status, r.json()) == (401, {"error": "invalid admin auth token"})


def test_org_token_mint_rate_limit(stack):
    reset_org_limiter(stack)
    try:
        for i in range(10):
            assert stack.admin("POST", "/org/tokens").status == 200, i
        r = stack.admin("POST", "/org/tokens")
        assert r.status == 429
        body = r.json()
        assert set(body) == {"error", "retry_after"} and body["error"] == "rate limit exceeded"
        assert 1 <= body["retry_after"] <= 3600
        assert r.header("retry-after") == str(body["retry_after"])
        # Listing and revoking are not limited.
        assert stack.admin("GET", "/org/tokens").status == 200
    finally:
        reset_org_limiter(stack)


# --- test-token ---------------------------------------------------------------------------

def test_test_token_with_admin_token(stack):
    ws = new_ws(stack)
    r = stack.admin("GET", "/admin/workspaces/%s/test-token" % ws)
    assert r.status == 200
    body = r.json()
    assert list(body) == ["auth_token", "workspace_id"] and body["workspace_id"] == ws
    assert TOKEN_RE.match(body["auth_token"])
    assert stack.get("/workspaces/%s/tokens" % ws, headers=bearer(body["auth_token"])).status == 200
    # Existing tokens are not revoked.
    assert stack.admin("GET", "/admin/workspaces/%s/test-token" % ws).status == 200
    assert stack.admin("GET", "/workspaces/%s/tokens" % ws).json()["count"] == 2


def test_test_token_rejects_everything_but_admin_token(stack):
    ws = new_ws(stack)
    wtok = mint(stack, ws)
    org = mint_org(stack)
    path = "/admin/workspaces/%s/test-token" % ws
    for h in ({}, bearer("wrong"), bearer(wtok), bearer(org["auth_token"]),
              {"Authorization": stack.env["ADMIN_TOKEN"]},
              {"Authorization": "bearer " + stack.env["ADMIN_TOKEN"]}):
        r = stack.get(path, headers=h)
        assert (r.status, r.json()) == (401, {"error": "admin auth required"}), h


def test_test_token_ids(stack):
    gone = new_ws(stack, status="removed")
    for ws, status, msg in (("nope", 400, "invalid workspace ID"),
                            (urllib.parse.quote("' OR 1=1;--"), 400, "invalid workspace ID"),
                            (str(uuid.uuid4()), 404, "workspace not found"),
                            (gone, 404, "workspace not found")):
        r = stack.admin("GET", "/admin/workspaces/%s/test-token" % ws)
        assert (r.status, r.json()) == (status, {"error": msg}), ws


def fcgi(sock, path, headers=None):
    env = {"REQUEST_METHOD": "GET", "REQUEST_URI": path, "PATH": os.environ.get("PATH", "")}
    for k, v in (headers or {}).items():
        env["HTTP_" + k.upper().replace("-", "_")] = v
    out = subprocess.run(["cgi-fcgi", "-bind", "-connect", sock], env=env, capture_output=True,
                         timeout=10).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize("env_name,enable,expect", [
    ("production", "0", 404), ("prod", "0", 404), ("PRODUCTION", "0", 404), ("production", "1", 200),
])
def test_test_token_is_off_in_production(stack, env_name, enable, expect):
    """molecule-api alone (no nginx) against the shared database with production settings."""
    ws = new_ws(stack)
    tmp = tempfile.mkdtemp(prefix="molecule-tok-")
    sock = os.path.join(tmp, "api.sock")
    senv = stack.stack_env()
    env = dict(os.environ, MOLECULE_FCGI_SOCKET=sock, DATABASE_URL=senv["DATABASE_URL"],
               REDIS_URL=senv["REDIS_URL"], MOLECULE_ENV=env_name, MOLECULE_ENABLE_TEST_TOKENS=enable,
               SECRETS_ENCRYPTION_KEY="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
               ADMIN_TOKEN="prod-admin-token-123456", MOLECULE_API_WORKERS="1",
               ASAN_OPTIONS="detect_leaks=0")
    log = open(os.path.join(tmp, "api.log"), "w+")
    p = subprocess.Popen([os.path.join(BIN_DIR, "molecule-api")], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.05)
        path = "/admin/workspaces/%s/test-token" % ws
        status, body = fcgi(sock, path, {"Authorization": "Bearer prod-admin-token-123456"})
        assert status == expect, body
        if expect == 404:
            assert body == b'{"error":"not found"}'
            # Hidden even from a caller without credentials or with a bad id.
            assert fcgi(sock, path) == (404, b'{"error":"not found"}')
            assert fcgi(sock, "/admin/workspaces/x/test-token") == (404, b'{"error":"not found"}')
        else:
            assert json.loads(body)["workspace_id"] == ws
            assert fcgi(sock, path)[0] == 401
    finally:
        p.terminate()
        p.wait(timeout=10)
        log.seek(0)
        text = log.read()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    assert "AddressSanitizer" not in text and "runtime error:" not in text, text
