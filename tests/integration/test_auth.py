"""The auth guards end to end through real routes (api.md §2, holes closed).

WorkspaceAuth is exercised on GET /workspaces/:id/tokens, AdminAuth on GET /org/tokens.
Three extra stacks, one per configuration the shared stack cannot have: no ADMIN_TOKEN
(bootstrap fail-open), dev mode, and TenantGuard (MOLECULE_ORG_ID, in production).
"""
import subprocess
import uuid

import pytest

from conftest import start_stack, stop_stack

ORG_ID = "3f2b8c1e-9d4a-4e6b-8a7c-1234567890ab"
TENANT_ADMIN = "tenant-admin-token-0123456789"


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def new_ws(stack):
    return stack.psql("INSERT INTO workspaces (id, name, status) VALUES (gen_random_uuid(), "
                      "'auth-%s', 'online') RETURNING id" % uuid.uuid4().hex[:12]).splitlines()[0]


def reset_org_limiter(stack):
    sock = stack.stack_env()["REDIS_URL"][len("unix://"):]
    subprocess.run(["redis-cli", "-s", sock, "DEL", "org_tokens_rl:127.0.0.1"],
                   capture_output=True, timeout=10, check=True)


def ws_route(ws):
    return "/workspaces/%s/tokens" % ws


ADMIN_ROUTE = "/org/tokens"


def expect(r, status, error=None):
    assert r.status == status, (r.status, r.body)
    if error is not None:
        assert r.json() == {"error": error}


# --- the shared stack: ADMIN_TOKEN set, MOLECULE_ENV=test ------------------------------

@pytest.fixture(scope="module")
def creds(stack):
    """Two workspaces with a token each, and a live org token."""
    a, b = new_ws(stack), new_ws(stack)
    ta = stack.admin("POST", ws_route(a)).json()["auth_token"]
    tb = stack.admin("POST", ws_route(b)).json()["auth_token"]
    reset_org_limiter(stack)
    org = stack.admin("POST", "/org/tokens").json()
    return {"a": a, "b": b, "ta": ta, "tb": tb, "org": org["auth_token"], "org_id": org["id"]}


def test_admin_token_passes_both_guards(stack, creds):
    expect(stack.admin("GET", ws_route(creds["a"])), 200)
    expect(stack.admin("GET", ADMIN_ROUTE), 200)
    # ADMIN_TOKEN opens any :id, even one with no workspace behind it (the handler 404s).
    expect(stack.admin("GET", ws_route(uuid.uuid4())), 404, "workspace not found")


def test_org_token_passes_both_guards(stack, creds):
    expect(stack.get(ws_route(creds["a"]), headers=bearer(creds["org"])), 200)
    expect(stack.get(ws_route(creds["b"]), headers=bearer(creds["org"])), 200)
    expect(stack.get(ADMIN_ROUTE, headers=bearer(creds["org"])), 200)


def test_workspace_token_opens_only_its_own_workspace(stack, creds):
    expect(stack.get(ws_route(creds["a"]), headers=bearer(creds["ta"])), 200)
    expect(stack.get(ws_route(creds["b"]), headers=bearer(creds["ta"])), 401,
           "invalid workspace auth token")
    expect(stack.get(ws_route(creds["a"]), headers=bearer(creds["tb"])), 401,
           "invalid workspace auth token")


def test_workspace_token_is_not_an_admin_credential(stack, creds):
    expect(stack.get(ADMIN_ROUTE, headers=bearer(creds["ta"])), 401, "invalid admin auth token")
    expect(stack.request("POST", ADMIN_ROUTE, headers=bearer(creds["ta"])), 401,
           "invalid admin auth token")


def test_wrong_bearers(stack, creds):
    a = creds["a"]
    expect(stack.get(ws_route(a)), 401, "missing workspace auth token")
    expect(stack.get(ADMIN_ROUTE), 401, "admin auth required")
    for tok in ("nope", "x" * 43, creds["ta"][:-1], creds["ta"] + "A", "'; DROP TABLE workspaces;--"):
        expect(stack.get(ws_route(a), headers=bearer(tok)), 401, "invalid workspace auth token")
        expect(stack.get(ADMIN_ROUTE, headers=bearer(tok)), 401, "invalid admin auth token")
    # Only the exact "Bearer " scheme carries a credential.
    admin = stack.env["ADMIN_TOKEN"]
    for h in ({"Authorization": admin}, {"Authorization": "bearer " + admin},
              {"Authorization": "Basic " + admin}, {"Authorization": "Bearer "}):
        expect(stack.get(ws_route(a), headers=h), 401, "missing workspace auth token")
        expect(stack.get(ADMIN_ROUTE, headers=h), 401, "admin auth required")


def test_revoked_tokens_fail(stack, creds):
    ws = new_ws(stack)
    tok = stack.admin("POST", ws_route(ws)).json()["auth_token"]
    tid = stack.admin("GET", ws_route(ws)).json()["tokens"][0]["id"]
    expect(stack.admin("DELETE", "%s/%s" % (ws_route(ws), tid)), 200)
    expect(stack.get(ws_route(ws), headers=bearer(tok)), 401, "invalid workspace auth token")
    reset_org_limiter(stack)
    org = stack.admin("POST", "/org/tokens").json()
    expect(stack.get(ADMIN_ROUTE, headers=bearer(org["auth_token"])), 200)
    expect(stack.admin("DELETE", "/org/tokens/%s" % org["id"]), 200)
    expect(stack.get(ADMIN_ROUTE, headers=bearer(org["auth_token"])), 401, "invalid admin auth token")
    expect(stack.get(ws_route(ws), headers=bearer(org["auth_token"])), 401, "invalid workspace auth token")


# --- no ADMIN_TOKEN, MOLECULE_ENV=test: AdminAuth fails open until a workspace token exists ---

@pytest.fixture(scope="module")
def bare_stack():
    s = start_stack({"MOLECULE_ENV": "test"})
    assert not s.env.get("ADMIN_TOKEN")
    yield s
    problems = stop_stack(s)
    assert not problems, "\n".join(problems)


def test_bootstrap_fail_open_until_the_first_workspace_token(bare_stack):
    s = bare_stack
    ws = new_ws(s)
    # 1. Fresh install: AdminAuth is open, WorkspaceAuth is not (no grace there).
    expect(s.get(ADMIN_ROUTE), 200)
    expect(s.get(ws_route(ws)), 401, "missing workspace auth token")
    # 2. Org tokens minted during bootstrap do not end it.
    r = s.request("POST", "/org/tokens")
    expect(r, 200)
    org = r.json()
    assert s.psql("SELECT created_by FROM org_api_tokens WHERE id = '%s'" % org["id"]) == "admin-token"
    expect(s.get(ADMIN_ROUTE), 200)
    # 3. test-token is open during bootstrap too (AdminAuth's conditions), and mints the first token.
    r = s.get("/admin/workspaces/%s/test-token" % ws)
    expect(r, 200)
    wtok = r.json()["auth_token"]
    # 4. Now a credential is required, and a workspace token is not one.
    expect(s.get(ADMIN_ROUTE), 401, "admin auth required")
    expect(s.get(ADMIN_ROUTE, headers=bearer(wtok)), 401, "invalid admin auth token")
    expect(s.get(ADMIN_ROUTE, headers=bearer(org["auth_token"])), 200)
    expect(s.get(ws_route(ws), headers=bearer(wtok)), 200)
    # 5. test-token follows: no credential, a workspace token or an org token all fail.
    path = "/admin/workspaces/%s/test-token" % ws
    expect(s.get(path), 401, "admin auth required")
    expect(s.get(path, headers=bearer(wtok)), 401, "invalid admin auth token")
    expect(s.get(path, headers=bearer(org["auth_token"])), 401, "admin auth required")
    # 6. Revoking the last workspace token re-opens bootstrap.
    tid = s.get(ws_route(ws), headers=bearer(wtok)).json()["tokens"][0]["id"]
    expect(s.request("DELETE", "%s/%s" % (ws_route(ws), tid), headers=bearer(org["auth_token"])), 200)
    expect(s.get(ADMIN_ROUTE), 200)


# --- dev mode: MOLECULE_ENV=development and no ADMIN_TOKEN ---------------------------------

@pytest.fixture(scope="module")
def dev_stack():
    s = start_stack({"MOLECULE_ENV": "development"})
    yield s
    problems = stop_stack(s)
    assert not problems, "\n".join(problems)


def test_dev_hatch_opens_both_guards(dev_stack):
    s = dev_stack
    ws, other = new_ws(s), new_ws(s)
    r = s.request("POST", ws_route(ws))
    expect(r, 201)
    tok = r.json()["auth_token"]
    # Live tokens exist, so this is the hatch and not bootstrap.
    expect(s.get(ADMIN_ROUTE), 200)
    expect(s.get(ws_route(ws)), 200)
    expect(s.get(ws_route(other)), 200)
    expect(s.get("/admin/workspaces/%s/test-token" % other), 200)
    # A bearer that is presented is still checked by WorkspaceAuth.
    expect(s.get(ws_route(other), headers=bearer(tok)), 401, "invalid workspace auth token")
    expect(s.get(ws_route(ws), headers=bearer(tok)), 200)


# --- TenantGuard: MOLECULE_ORG_ID set (and production) -----------------------------------

@pytest.fixture(scope="module")
def tenant_stack():
    # Production refuses to start without a secrets key source.
    s = start_stack({"MOLECULE_ORG_ID": ORG_ID, "ADMIN_TOKEN": TENANT_ADMIN, "MOLECULE_ENV": "production",
                     "SECRETS_ENCRYPTION_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="})
    yield s
    problems = stop_stack(s)
    assert not problems, "\n".join(problems)


def test_tenant_guard(tenant_stack):
    s = tenant_stack
    ws = new_ws(s)
    adm = bearer(TENANT_ADMIN)
    for path in (ADMIN_ROUTE, ws_route(ws), "/nope", "/admin/workspaces/%s/test-token" % ws):
        r = s.get(path, headers=adm)
        assert (r.status, r.body) == (404, b""), path
    for hdr in ({"X-Molecule-Org-Id": str(uuid.uuid4())}, {"X-Molecule-Org-Id": ORG_ID.upper()},
                {"X-Molecule-Org-Id": ORG_ID[:-1]}, {"Fly-Replay-Src": "instance=x;state=nope"},
                {"Fly-Replay-Src": "instance=x;state=%s0" % ORG_ID},
                {"Fly-Replay-Src": "instance=%s" % ORG_ID}):
        r = s.get(ADMIN_ROUTE, headers=dict(adm, **hdr))
        assert (r.status, r.body) == (404, b""), hdr
    for hdr in ({"X-Molecule-Org-Id": ORG_ID}, {"Fly-Replay-Src": "instance=x;state=%s" % ORG_ID},
                {"Fly-Replay-Src": "state=%s;instance=x" % ORG_ID}):
        expect(s.get(ADMIN_ROUTE, headers=dict(adm, **hdr)), 200)
        expect(s.get(ws_route(ws), headers=dict(adm, **hdr)), 200)
        # Past the tenant check the auth guards still apply.
        expect(s.get(ADMIN_ROUTE, headers=hdr), 401, "admin auth required")
    org = {"X-Molecule-Org-Id": ORG_ID}
    # Open paths need no tenant header.
    expect(s.get("/health"), 200)
    expect(s.get("/metrics"), 200)
    r = s.request("POST", "/registry/heartbeat", body={})
    assert r.body != b"" and r.status != 404, (r.status, r.body)
    # In production the test-token route is hidden, even for the operator.
    expect(s.get("/admin/workspaces/%s/test-token" % ws, headers=dict(adm, **org)), 404, "not found")
