"""Discovery: GET /registry/discover/:id, GET /registry/:id/peers, POST /registry/check-access (api.md §4.7, §7)."""
import subprocess
import uuid

import pytest

from conftest import start_stack, stop_stack


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def new_ws(stack, name, parent=None, status="online", url=None, runtime=None, role=None, card=None):
    wid = str(uuid.uuid4())
    stack.psql("INSERT INTO workspaces (id, name, parent_id, status, url, runtime, role, agent_card) "
               "VALUES ('%s', $q$%s$q$, %s, '%s', %s, %s, %s, %s)" % (
                   wid, name, "'%s'" % parent if parent else "NULL", status,
                   "'%s'" % url if url else "NULL", "'%s'" % runtime if runtime else "'langgraph'",
                   "$q$%s$q$" % role if role else "NULL", "'%s'::jsonb" % card if card else "NULL"))
    return wid


def token_for(stack, wid):
    """The workspace's first token, minted by register (the agent's own path)."""
    r = stack.request("POST", "/registry/register",
                      body={"id": wid, "url": "http://agent-%s:8000" % wid[:8], "agent_card": {"name": "a"}})
    assert r.status == 200, r.body
    return r.json()["auth_token"]


def redis(stack, *args):
    sock = stack.stack_env()["REDIS_URL"][len("unix://"):]
    return subprocess.run(["redis-cli", "-s", sock] + list(args), capture_output=True, text=True,
                          timeout=10, check=True).stdout.strip()


def check(stack, caller, target, headers=None):
    h = headers if headers is not None else {"Authorization": "Bearer " + stack.env["ADMIN_TOKEN"]}
    return stack.request("POST", "/registry/check-access", headers=h,
                         body={"caller_id": caller, "target_id": target})


@pytest.fixture(scope="module")
def tree(stack):
    """Two roots; A has A1 (-> A11 -> A111) and A2 (-> A21); B has B1. A3 is removed."""
    tag = uuid.uuid4().hex[:6]
    t = {}
    t["A"] = new_ws(stack, "disc-%s-A" % tag)
    t["B"] = new_ws(stack, "disc-%s-B" % tag)
    t["A1"] = new_ws(stack, "disc-%s-A1" % tag, t["A"], role="Researcher")
    t["A2"] = new_ws(stack, "disc-%s-A2" % tag, t["A"], status="offline")
    t["A3"] = new_ws(stack, "disc-%s-A3" % tag, t["A"], status="removed")
    t["A11"] = new_ws(stack, "disc-%s-A11" % tag, t["A1"])
    t["A111"] = new_ws(stack, "disc-%s-A111" % tag, t["A11"])
    t["A21"] = new_ws(stack, "disc-%s-A21" % tag, t["A2"])
    t["B1"] = new_ws(stack, "disc-%s-B1" % tag, t["B"])
    t["tag"] = tag
    return t


ALLOWED = [
    ("A", "A"), ("A1", "A1"),
    ("A1", "A2"), ("A2", "A1"),                 # siblings
    ("A", "B"), ("B", "A"),                     # roots
    ("A", "A1"), ("A1", "A"),                   # parent <-> child
    ("A", "A11"), ("A11", "A"),                 # grandparent <-> grandchild
    ("A", "A111"), ("A111", "A"), ("A1", "A111"), ("A111", "A1"),
    ("A", "A3"), ("A3", "A2"),                  # status is not considered
]
DENIED = [
    ("A11", "A21"), ("A21", "A11"),             # cousins
    ("A2", "A11"), ("A11", "A2"),               # uncle <-> nephew
    ("A111", "A21"),
    ("A1", "B1"), ("B1", "A1"), ("A", "B1"), ("B1", "A"),  # other trees
    ("A", "unknown"), ("unknown", "A"), ("unknown", "unknown"),
]


@pytest.mark.parametrize("caller,target", ALLOWED)
def test_check_access_allowed(stack, tree, caller, target):
    r = check(stack, tree[caller], tree[target])
    assert r.status == 200 and r.body == b'{"allowed":true}'


@pytest.mark.parametrize("caller,target", DENIED)
def test_check_access_denied(stack, tree, caller, target):
    ids = dict(tree, unknown=str(uuid.uuid4()))
    r = check(stack, ids[caller], ids[target])
    assert r.status == 200 and r.body == b'{"allowed":false}'


def test_check_access_parent_cycle_terminates(stack):
    x = new_ws(stack, "disc-cycle-x")
    y = new_ws(stack, "disc-cycle-y", x)
    z = new_ws(stack, "disc-cycle-z", y)
    other = new_ws(stack, "disc-cycle-o", x)
    stack.psql("UPDATE workspaces SET parent_id = '%s' WHERE id = '%s'" % (z, x))
    try:
        assert check(stack, z, x).json() == {"allowed": True}
        r = check(stack, str(uuid.uuid4()), z)
        assert r.json() == {"allowed": False}
        # A peer outside the loop: answered, not hung.
        assert check(stack, other, z).status == 200
    finally:
        stack.psql("UPDATE workspaces SET parent_id = NULL, status = 'removed' WHERE id IN ('%s','%s','%s','%s')"
                   % (x, y, z, other))


def test_check_access_auth(stack, tree):
    top = new_ws(stack, "disc-%s-auth-top" % tree["tag"])
    kid = new_ws(stack, "disc-%s-auth-kid" % tree["tag"], top)
    caller_tok = token_for(stack, kid)
    other_tok = token_for(stack, new_ws(stack, "disc-%s-auth-other" % tree["tag"]))
    r = check(stack, kid, top, headers=bearer(caller_tok))
    assert r.status == 200 and r.json() == {"allowed": True}
    r = check(stack, kid, tree["A"], headers=bearer(caller_tok))
    assert r.status == 200 and r.json() == {"allowed": False}
    r = check(stack, kid, top, headers={})
    assert r.status == 401 and r.json() == {"error": "admin auth required"}
    r = check(stack, kid, top, headers=bearer(other_tok))
    assert r.status == 401 and r.json() == {"error": "invalid admin auth token"}
    r = check(stack, kid, top, headers=bearer("nope"))
    assert r.status == 401 and r.json() == {"error": "invalid admin auth token"}
    # The token speaks only for its own workspace as caller.
    r = check(stack, top, kid, headers=bearer(caller_tok))
    assert r.status == 401 and r.json() == {"error": "invalid admin auth token"}


@pytest.mark.parametrize("body", [
    {}, {"caller_id": "%s"}, {"target_id": "%s"},
    {"caller_id": 1, "target_id": "%s"}, {"caller_id": "%s", "target_id": None},
    {"caller_id": "x", "target_id": "%s"}, {"caller_id": "%s", "target_id": "%s'; DROP TABLE workspaces;--"},
])
def test_check_access_bad_bodies(stack, body):
    body = {k: (v.replace("%s", str(uuid.uuid4())) if isinstance(v, str) else v) for k, v in body.items()}
    r = stack.request("POST", "/registry/check-access", headers=bearer(stack.env["ADMIN_TOKEN"]), body=body)
    assert r.status == 400 and r.json() == {"error": "invalid request body"}
    r = stack.request("POST", "/registry/check-access", headers={"Content-Type": "application/json"}, body="{x")
    assert r.status == 400 and r.json() == {"error": "invalid request body"}


# --- discover ---------------------------------------------------------------------------------

def discover(stack, caller, target, headers=None):
    h = dict(headers or {})
    if caller is not None:
        h["X-Workspace-ID"] = caller
    return stack.get("/registry/discover/%s" % target, headers=h)


def test_discover_requires_caller_header(stack, tree):
    r = discover(stack, None, tree["A1"])
    assert r.status == 400 and r.json() == {"error": "X-Workspace-ID header is required"}
    r = discover(stack, "", tree["A1"])
    assert r.status == 400 and r.json() == {"error": "X-Workspace-ID header is required"}


def test_discover_rejects_non_uuid_target(stack, tree):
    for bad in ("nope", "1%27%3B%20DROP%20TABLE%20workspaces", tree["A"][:-1]):
        r = discover(stack, tree["A"], bad)
        assert r.status == 400 and r.json() == {"error": "invalid workspace ID"}


def test_discover_matrix_matches_check_access(stack, tree):
    ids = dict(tree, unknown=str(uuid.uuid4()))
    for caller, target in DENIED:
        r = discover(stack, ids[caller], ids[target])
        assert r.status == 403, (caller, target, r.body)
        assert r.json() == {"error": "not authorized to discover this workspace"}
    r = discover(stack, "not-a-uuid", tree["A"])
    assert r.status == 403


def test_discover_url_sources(stack, tree):
    tag = tree["tag"]
    parent = new_ws(stack, "disc-%s-P" % tag)
    caller = new_ws(stack, "disc-%s-C" % tag, parent)
    stored = new_ws(stack, "disc-%s-S" % tag, parent, url="http://stored-host:8000")
    ext = new_ws(stack, "disc-%s-E" % tag, parent, url="https://ext.example/a2a", runtime="external")
    bare = new_ws(stack, "disc-%s-N" % tag, parent)
    degraded = new_ws(stack, "disc-%s-D" % tag, parent, status="degraded")
    off = new_ws(stack, "disc-%s-O" % tag, parent, status="offline")
    off_url = new_ws(stack, "disc-%s-OU" % tag, parent, status="offline", url="http://off-host:8000")
    gone = new_ws(stack, "disc-%s-G" % tag, parent, status="removed", url="http://gone-host:8000")

    r = discover(stack, caller, stored)
    assert r.status == 200 and r.body == ('{"id":"%s","name":"disc-%s-S","url":"http://stored-host:8000"}'
                                          % (stored, tag)).encode()
    # The agent-reported internal URL wins over the stored one, except for external runtimes.
    redis(stack, "SET", "ws:%s:internal_url" % stored, "http://internal-host:8000", "EX", "60")
    redis(stack, "SET", "ws:%s:internal_url" % ext, "http://internal-ext:8000", "EX", "60")
    assert discover(stack, caller, stored).json()["url"] == "http://internal-host:8000"
    assert discover(stack, caller, ext).json()["url"] == "https://ext.example/a2a"
    # Online/degraded with no URL at all: the provisioner's container name.
    assert discover(stack, caller, bare).json() == {"id": bare, "name": "disc-%s-N" % tag,
                                                    "url": "http://ws-%s:8000" % bare[:12]}
    assert discover(stack, caller, degraded).json()["url"] == "http://ws-%s:8000" % degraded[:12]
    r = discover(stack, caller, off)
    assert r.status == 503 and r.json() == {"error": "workspace not available", "status": "offline"}
    assert discover(stack, caller, off_url).json()["url"] == "http://off-host:8000"
    r = discover(stack, caller, gone)
    assert r.status == 503 and r.json() == {"error": "workspace not available", "status": "removed"}
    # Upper-case ids are the same workspaces.
    r = discover(stack, caller.upper(), stored.upper())
    assert r.status == 200 and r.json()["id"] == stored


def test_discover_registered_agent(stack, tree):
    tag = tree["tag"]
    parent = new_ws(stack, "disc-%s-RP" % tag)
    a = new_ws(stack, "disc-%s-RA" % tag, parent)
    b = new_ws(stack, "disc-%s-RB" % tag, parent)
    tok_a = token_for(stack, a)
    token_for(stack, b)
    r = discover(stack, a, b, headers=bearer(tok_a))
    assert r.status == 200 and r.json() == {"id": b, "name": "disc-%s-RB" % tag, "url": "http://agent-%s:8000" % b[:8]}


def test_discover_lazy_bootstrap_on_caller(stack, tree):
    tag = tree["tag"]
    parent = new_ws(stack, "disc-%s-LP" % tag)
    a = new_ws(stack, "disc-%s-LA" % tag, parent)
    b = new_ws(stack, "disc-%s-LB" % tag, parent, url="http://lb-host:8000")
    cousin = new_ws(stack, "disc-%s-LC" % tag)
    tok = token_for(stack, a)
    r = discover(stack, a, b)
    assert r.status == 401 and r.json() == {"error": "missing workspace auth token"}
    r = discover(stack, a, b, headers=bearer("z" * 43))
    assert r.status == 401 and r.json() == {"error": "invalid workspace auth token"}
    r = discover(stack, a, b, headers=bearer(stack.env["ADMIN_TOKEN"]))
    assert r.status == 401 and r.json() == {"error": "invalid workspace auth token"}
    assert discover(stack, a, b, headers=bearer(tok)).status == 200
    # Authenticated but not related: 403, and a token for A cannot speak for B.
    assert discover(stack, a, cousin, headers=bearer(tok)).status == 403
    token_for(stack, b)
    r = discover(stack, b, a, headers=bearer(tok))
    assert r.status == 401 and r.json() == {"error": "invalid workspace auth token"}


# --- peers ------------------------------------------------------------------------------------

def peers(stack, wid, q=None, headers=None):
    path = "/registry/%s/peers" % wid
    if q is not None:
        path += "?q=" + q
    return stack.get(path, headers=headers)


def test_peers_order_siblings_children_parent(stack, tree):
    r = peers(stack, tree["A1"])
    assert r.status == 200, r.body
    got = [p["id"] for p in r.json()]
    # Sibling A2 (A3 is removed), child A11, then parent A; no grandchild A111.
    assert got == [tree["A2"], tree["A11"], tree["A"]]
    first = r.json()[0]
    assert list(first) == ["active_tasks", "agent_card", "id", "name", "parent_id", "role", "status", "tier", "url"]
    assert first == {"active_tasks": 0, "agent_card": None, "id": tree["A2"], "name": "disc-%s-A2" % tree["tag"],
                     "parent_id": tree["A"], "role": None, "status": "offline", "tier": 1, "url": ""}
    assert r.json()[2]["parent_id"] is None


def test_peers_of_a_root_lists_other_roots_then_children(stack, tree):
    r = peers(stack, tree["A"])
    assert r.status == 200
    got = [p["id"] for p in r.json()]
    assert tree["B"] in got and tree["A"] not in got
    assert tree["B1"] not in got and tree["A3"] not in got
    # Roots first, then A's children (oldest first); a root has no parent entry.
    assert got[-2:] == [tree["A1"], tree["A2"]]
    assert got.index(tree["B"]) < got.index(tree["A1"])
    assert all(p["parent_id"] is None for p in r.json()[:-2])


def test_peers_leaf_and_query_filter(stack, tree):
    r = peers(stack, tree["A111"])
    assert [p["id"] for p in r.json()] == [tree["A11"]]
    # ?q= matches name or role, case-insensitively, as a plain substring.
    r = peers(stack, tree["A2"], q="researcher")
    assert [p["id"] for p in r.json()] == [tree["A1"]]
    assert r.json()[0]["role"] == "Researcher"
    r = peers(stack, tree["A2"], q="DISC-%s-A21" % tree["tag"].upper())
    assert [p["id"] for p in r.json()] == [tree["A21"]]
    assert peers(stack, tree["A2"], q="%25").json() == []
    assert peers(stack, tree["A2"], q="_").json() == []
    assert peers(stack, tree["A2"], q="%27%3B%20DROP%20TABLE%20workspaces%3B--").json() == []
    assert len(peers(stack, tree["A2"], q="").json()) == 3


def test_peers_agent_card_and_url(stack, tree):
    tag = tree["tag"]
    p = new_ws(stack, "disc-%s-CP" % tag)
    kid = new_ws(stack, "disc-%s-CK" % tag, p, url="http://kid:8000", card='{"name": "kid", "n": 1.5}')
    r = peers(stack, p)
    mine = [x for x in r.json() if x["id"] == kid]
    assert mine == [{"active_tasks": 0, "agent_card": {"name": "kid", "n": 1.5}, "id": kid,
                     "name": "disc-%s-CK" % tag, "parent_id": p, "role": None, "status": "online", "tier": 1,
                     "url": "http://kid:8000"}]


def test_peers_errors(stack, tree):
    r = peers(stack, "not-a-uuid")
    assert r.status == 400 and r.json() == {"error": "invalid workspace ID"}
    r = peers(stack, str(uuid.uuid4()))
    assert r.status == 404 and r.json() == {"error": "workspace not found"}
    r = peers(stack, tree["A3"])
    assert r.status == 404 and r.json() == {"error": "workspace not found"}


def test_peers_lazy_bootstrap_on_path_id(stack, tree):
    tag = tree["tag"]
    p = new_ws(stack, "disc-%s-PP" % tag)
    kid = new_ws(stack, "disc-%s-PK" % tag, p)
    tok = token_for(stack, kid)
    r = peers(stack, kid)
    assert r.status == 401 and r.json() == {"error": "missing workspace auth token"}
    r = peers(stack, kid, headers=bearer("q" * 43))
    assert r.status == 401 and r.json() == {"error": "invalid workspace auth token"}
    r = peers(stack, kid, headers=bearer(tok))
    assert r.status == 200 and [x["id"] for x in r.json()] == [p]
    # The path id is the identity: the same token does not open the parent's list.
    token_for(stack, p)
    assert peers(stack, p, headers=bearer(tok)).status == 401


# --- dev mode: the discovery hatch --------------------------------------------------------------

@pytest.fixture(scope="module")
def dev_stack():
    s = start_stack({"MOLECULE_ENV": "development", "ADMIN_TOKEN": ""})
    yield s
    problems = stop_stack(s)
    assert not problems, "\n".join(problems)


def test_dev_mode_opens_discovery_but_not_registry(dev_stack):
    root = new_ws(dev_stack, "dev-root")
    kid = new_ws(dev_stack, "dev-kid", root, url="http://kid-host:8000")
    token_for(dev_stack, kid)
    token_for(dev_stack, root)
    r = peers(dev_stack, kid)
    assert r.status == 200 and [x["id"] for x in r.json()] == [root]
    r = discover(dev_stack, root, kid)
    assert r.status == 200 and r.json()["url"] == "http://agent-%s:8000" % kid[:8]
    r = check(dev_stack, root, kid, headers={})
    assert r.status == 200 and r.json() == {"allowed": True}
    # The registry's own checks are not part of the hatch (api.md §2.4).
    r = dev_stack.request("POST", "/registry/heartbeat", body={"workspace_id": kid})
    assert r.status == 401 and r.json() == {"error": "missing workspace auth token"}


# --- the audience query (common/access.c) agrees with CanCommunicate ------------------------------

def audience_sql():
    """access_audience's SQL text, read from the C source (the wrapper only copies rows out)."""
    import os
    import re
    src = open(os.path.join(os.path.dirname(__file__), "..", "..", "common", "access.c")).read()
    body = src.split("audience_sql[] =", 1)[1].split(";\n", 1)[0]
    return "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', body))


def audience(stack, sql, name, wid):
    out = stack.psql("PREPARE aud_%s(text) AS %s; EXECUTE aud_%s('%s')" % (name, sql, name, wid))
    return set(l for l in out.split() if l != "PREPARE")


def test_audience_is_everyone_allowed_to_talk(stack, tree):
    sql = audience_sql()
    nodes = ["A", "B", "A1", "A2", "A3", "A11", "A111", "A21", "B1"]
    for n in nodes:
        got = audience(stack, sql, n, tree[n])
        for m in nodes:
            allowed = check(stack, tree[n], tree[m]).json()["allowed"]
            assert (tree[m] in got) == allowed, (n, m, allowed)
        # Other trees' roots are in a root's audience, never in a child's.
        roots = set(stack.psql("SELECT id FROM workspaces WHERE parent_id IS NULL").split())
        assert roots <= got if n in ("A", "B") else not (roots - {tree["A"], tree["B"]}) & got
    assert audience(stack, sql, "x", str(uuid.uuid4())) == set()
