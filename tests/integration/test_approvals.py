"""Approvals (api.md §4.12): create, list, decide by an ancestor or an admin (never the
requester itself), escalation to the parent on request or deadline, expiry, pending lists."""
import json
import uuid


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def new_ws(s, parent=None):
    return s.psql("INSERT INTO workspaces (name, status, parent_id) VALUES ('apr-%s', 'online', %s) "
                  "RETURNING id" % (uuid.uuid4().hex[:10], "'%s'" % parent if parent else "NULL")).splitlines()[0]


class WS:
    def __init__(self, s, parent=None):
        self.s = s
        self.id = new_ws(s, parent.id if parent else None)
        r = s.admin("POST", "/workspaces/%s/tokens" % self.id)
        assert r.status == 201, r.body
        self.tok = r.json()["auth_token"]

    def on(self, method, ws_id, path, body=None, as_caller=True):
        """A request to /workspaces/<ws_id><path> with this workspace's token (and X-Workspace-ID)."""
        h = bearer(self.tok)
        if as_caller:
            h["X-Workspace-ID"] = self.id
        return self.s.request(method, "/workspaces/%s%s" % (ws_id, path), headers=h, body=body)


def tree(s):
    g = WS(s)            # root
    p = WS(s, g)         # parent of the requester
    c = WS(s, p)         # the requester
    sib = WS(s, p)       # the requester's sibling
    return g, p, c, sib


def create(c, **kw):
    body = dict({"action": "deploy", "task_id": "t-1", "reason": "prod push", "context": {"env": "prod"}}, **kw)
    r = c.on("POST", c.id, "/approvals", body, as_caller=False)
    assert r.status == 201, r.body
    assert set(r.json()) == {"approval_id", "status"} and r.json()["status"] == "pending"
    return r.json()["approval_id"]


def events(s, aid):
    out = s.psql("SELECT event_type || '|' || workspace_id || '|' || payload::text FROM structure_events "
                 "WHERE payload->>'approval_id' = '%s' ORDER BY created_at, id" % aid)
    return [(l.split("|", 2)[0], l.split("|", 2)[1], json.loads(l.split("|", 2)[2])) for l in out.splitlines()]


def listing(c):
    r = c.on("GET", c.id, "/approvals", as_caller=False)
    assert r.status == 200, r.body
    return r.json()


def test_create_list_and_events(stack):
    g, p, c, _ = tree(stack)
    aid = create(c)
    rows = listing(c)
    assert [a["id"] for a in rows] == [aid]
    row = rows[0]
    for k in ("id", "task_id", "action", "reason", "status", "decided_by", "decided_at", "created_at"):
        assert k in row
    assert (row["action"], row["reason"], row["task_id"], row["status"]) == ("deploy", "prod push", "t-1", "pending")
    assert row["decided_by"] is None and row["assignee_id"] == p.id
    ev = events(stack, aid)
    assert ev[0] == ("APPROVAL_REQUESTED", c.id, {"approval_id": aid, "action": "deploy", "reason": "prod push",
                                                  "task_id": "t-1"})
    assert ev[1] == ("APPROVAL_ESCALATED", p.id, {"approval_id": aid, "from_workspace_id": c.id, "action": "deploy",
                                                  "reason": "prod push"})
    # A root's request goes to humans only: no parent, no ESCALATED.
    rid = create(g)
    assert [e[0] for e in events(stack, rid)] == ["APPROVAL_REQUESTED"]


def test_create_validation(stack):
    c = WS(stack)
    cases = [({}, 400, "invalid request body"), ({"action": ""}, 400, "invalid request body"),
             ({"action": 1}, 400, None), ({"action": "x", "context": []}, 400, "context must be an object"),
             ({"action": "x", "expires_in_seconds": 0}, 400, None),
             ({"action": "x", "escalate_after_seconds": "soon"}, 400, None),
             ({"action": "x", "reason": "r" * 5000}, 400, None),
             ({"action": "x", "context": {"blob": "b" * 70000}}, 413, None)]
    for body, status, msg in cases:
        r = c.on("POST", c.id, "/approvals", body, as_caller=False)
        assert r.status == status, (body, r.body)
        if msg:
            assert r.json() == {"error": msg}
    # Not JSON, or not an object: the reference's route message, not a generic one.
    for raw in ("{not json", "[1]"):
        r = c.on("POST", c.id, "/approvals", raw, as_caller=False)
        assert (r.status, r.json()) == (400, {"error": "invalid request body"}), raw
    other = WS(stack)
    r = stack.request("POST", "/workspaces/%s/approvals" % c.id, headers=bearer(other.tok), body={"action": "x"})
    assert r.status == 401


def test_decide_only_by_ancestor_or_admin(stack):
    g, p, c, sib = tree(stack)
    aid = create(c)
    path = "/approvals/%s/decide" % aid
    # The requester itself: with or without X-Workspace-ID.
    r = c.on("POST", c.id, path, {"decision": "approved"}, as_caller=False)
    assert r.status == 403 and r.json() == {"error": "a workspace cannot decide its own approval request"}
    assert c.on("POST", c.id, path, {"decision": "approved"}).status == 403
    # A sibling, and a child of the requester, are not ancestors.
    assert sib.on("POST", c.id, path, {"decision": "approved"}).status == 403
    kid = WS(stack, c)
    assert kid.on("POST", c.id, path, {"decision": "approved"}).status == 403
    # No credentials, a forged caller, a token of someone else.
    assert stack.request("POST", "/workspaces/%s%s" % (c.id, path), body={"decision": "approved"}).status == 401
    r = stack.request("POST", "/workspaces/%s%s" % (c.id, path), body={"decision": "approved"},
                      headers={"X-Workspace-ID": p.id, "Authorization": "Bearer " + sib.tok})
    assert r.status == 401 and r.json() == {"error": "invalid caller auth token"}
    assert p.on("POST", c.id, path, {"decision": "maybe"}).status == 400
    assert listing(c)[0]["status"] == "pending"

    # The parent decides; decided_by is its id whatever the body says.
    r = p.on("POST", c.id, path, {"decision": "approved", "decided_by": "the-ceo"})
    assert r.status == 200 and r.json() == {"status": "approved", "approval_id": aid}
    row = listing(c)[0]
    assert row["status"] == "approved" and row["decided_by"] == p.id and row["decided_at"]
    assert events(stack, aid)[-1] == ("APPROVAL_APPROVED", c.id, {"approval_id": aid, "decision": "approved",
                                                                   "decided_by": p.id})
    r = g.on("POST", c.id, path, {"decision": "denied"})
    assert r.status == 404 and r.json() == {"error": "approval not found or already decided"}

    # The grandparent (an ancestor of the assignee) and an admin may decide too.
    aid2 = create(c)
    assert g.on("POST", c.id, "/approvals/%s/decide" % aid2, {"decision": "denied"}).status == 200
    aid3 = create(c)
    r = stack.admin("POST", "/workspaces/%s/approvals/%s/decide" % (c.id, aid3), body={"decision": "denied"})
    assert r.status == 200 and r.json() == {"status": "denied", "approval_id": aid3}
    assert [a for a in listing(c) if a["id"] == aid3][0]["decided_by"] == "human"
    assert events(stack, aid3)[-1][0] == "APPROVAL_DENIED"
    # Wrong workspace in the path: not found.
    aid4 = create(c)
    r = stack.admin("POST", "/workspaces/%s/approvals/%s/decide" % (sib.id, aid4), body={"decision": "denied"})
    assert r.status == 404


def test_escalation_on_request(stack):
    g, p, c, _ = tree(stack)
    aid = create(c)
    r = c.on("POST", c.id, "/approvals/%s/escalate" % aid, as_caller=False)
    assert r.status == 200, r.body
    assert r.json() == {"approval_id": aid, "status": "pending", "assignee_id": g.id, "escalation_level": 1}
    ev = events(stack, aid)[-1]
    assert ev[0] == "APPROVAL_ESCALATED" and ev[1] == g.id and ev[2]["from_workspace_id"] == c.id
    # The parent's time is up: it can no longer decide; the grandparent can.
    assert p.on("POST", c.id, "/approvals/%s/decide" % aid, {"decision": "approved"}).status == 403
    # Past the root only a human remains.
    r = g.on("POST", c.id, "/approvals/%s/escalate" % aid)
    assert r.status == 200 and r.json()["assignee_id"] is None
    assert c.on("POST", c.id, "/approvals/%s/escalate" % aid, as_caller=False).status == 409
    assert g.on("POST", c.id, "/approvals/%s/decide" % aid, {"decision": "approved"}).status == 403
    r = stack.admin("POST", "/workspaces/%s/approvals/%s/decide" % (c.id, aid), body={"decision": "approved"})
    assert r.status == 200


def test_escalation_on_deadline(stack):
    g, p, c, _ = tree(stack)
    aid = create(c, escalate_after_seconds=1)

    def assignee():
        return [a for a in listing(c) if a["id"] == aid][0]["assignee_id"]

    assert stack.wait_for(lambda: assignee() == g.id, timeout=15, interval=0.3)
    row = [a for a in listing(c) if a["id"] == aid][0]
    assert row["escalation_level"] == 1 and row["status"] == "pending"
    assert stack.wait_for(lambda: assignee() is None, timeout=15, interval=0.3)
    kinds = [(e[0], e[1]) for e in events(stack, aid)]
    assert ("APPROVAL_ESCALATED", g.id) in kinds
    assert [k for k in kinds if k[0] == "APPROVAL_ESCALATED"].count(("APPROVAL_ESCALATED", g.id)) == 1


def test_expiry_and_pending_lists(stack):
    g, p, c, sib = tree(stack)
    keep = create(c)
    gone = create(c, expires_in_seconds=1)

    r = stack.admin("GET", "/approvals/pending")
    assert r.status == 200
    mine = [a for a in r.json() if a["id"] == keep]
    assert len(mine) == 1
    for k in ("id", "workspace_id", "workspace_name", "action", "reason", "status", "created_at"):
        assert k in mine[0]
    assert mine[0]["workspace_id"] == c.id
    assert stack.request("GET", "/approvals/pending", headers=bearer(c.tok)).status == 401

    # What a workspace may decide: the parent and grandparent see it, the sibling does not.
    def pending_for(w):
        r = w.on("GET", w.id, "/approvals/pending", as_caller=False)
        assert r.status == 200, r.body
        return {a["id"] for a in r.json()}
    assert keep in pending_for(p) and keep in pending_for(g)
    assert keep not in pending_for(sib) and keep not in pending_for(c)

    def expired():
        ids = {a["id"] for a in stack.admin("GET", "/approvals/pending").json()}
        return gone not in ids
    assert stack.wait_for(expired, timeout=15, interval=0.3)
    row = [a for a in listing(c) if a["id"] == gone][0]
    assert (row["status"], row["decided_by"]) == ("denied", "auto-expired")
    assert events(stack, gone)[-1] == ("APPROVAL_DENIED", c.id, {"approval_id": gone, "decision": "denied",
                                                                  "decided_by": "auto-expired"})
    r = p.on("POST", c.id, "/approvals/%s/decide" % gone, {"decision": "approved"})
    assert r.status == 404
