"""The persisted event log: GET /events and GET /events/:workspaceId (AdminAuth, newest 100)."""
import re
import uuid

import pytest

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
EVENT_KEYS = {"id", "event_type", "workspace_id", "payload", "created_at"}


@pytest.mark.parametrize("path", ["/events", "/events/" + str(uuid.uuid4())])
def test_events_need_admin(stack, path):
    r = stack.get(path)
    assert r.status == 401
    assert r.json() == {"error": "admin auth required"}
    r = stack.get(path, headers={"Authorization": "Bearer wrong"})
    assert r.status == 401
    assert r.json() == {"error": "invalid admin auth token"}


def test_events_bad_and_unknown_ids(stack):
    for bad in ("nope", "123", "%27%20OR%201=1"):
        r = stack.admin("GET", "/events/" + bad)
        assert r.status == 400, bad
        assert r.json() == {"error": "invalid workspace ID"}
    r = stack.admin("GET", "/events/" + str(uuid.uuid4()))
    assert r.status == 200
    assert r.body == b"[]"


def test_events_of_a_workspace_lifecycle(stack):
    name = "ev-" + uuid.uuid4().hex[:8]
    r = stack.admin("POST", "/workspaces", body={"name": name, "canvas": {"x": 10, "y": 20}})
    wid = r.json()["id"]
    assert stack.admin("PATCH", "/workspaces/" + wid, body={"tier": 2}).status == 200
    assert stack.admin("DELETE", "/workspaces/" + wid).status == 200
    r = stack.admin("GET", "/events/" + wid)
    assert r.status == 200, r.body
    evs = r.json()
    assert [e["event_type"] for e in evs] == ["WORKSPACE_REMOVED", "WORKSPACE_UPDATED",
                                              "WORKSPACE_PROVISIONING"]
    for e in evs:
        assert set(e) == EVENT_KEYS
        assert e["workspace_id"] == wid
        assert TS_RE.match(e["created_at"]), e["created_at"]
        uuid.UUID(e["id"])
    assert evs[2]["payload"] == {"name": name, "tier": 3, "runtime": "langgraph", "x": 10, "y": 20}
    assert evs[1]["payload"] == {"fields": ["tier"], "tier": 2}
    assert evs[0]["payload"] == {"cascade_deleted": 0}
    assert r.body.startswith(b'[{"created_at":"')
    assert b'"payload":{"cascade_deleted":0},"workspace_id":"' + wid.encode() in r.body
    latest = stack.admin("GET", "/events").json()
    assert latest[0]["id"] == evs[0]["id"]


def test_events_newest_hundred_and_nulls(stack):
    wid = str(uuid.uuid4())
    stack.psql("INSERT INTO structure_events (event_type, workspace_id, payload, created_at) "
               "SELECT 'TEST_EVENT', '%s', jsonb_build_object('n', g), "
               "now() - interval '1 hour' + g * interval '1 ms' FROM generate_series(1, 105) g" % wid)
    stack.psql("INSERT INTO structure_events (event_type, workspace_id, payload, created_at) "
               "VALUES ('TEST_NULL', '%s', NULL, now() - interval '2 hours')" % wid)
    evs = stack.admin("GET", "/events/" + wid).json()
    assert len(evs) == 100
    assert [e["payload"]["n"] for e in evs] == list(range(105, 5, -1))
    stamps = [e["created_at"] for e in evs]
    assert stamps == sorted(stamps, reverse=True)
    stack.psql("INSERT INTO structure_events (event_type, workspace_id, payload) "
               "VALUES ('TEST_GLOBAL', NULL, NULL)")
    r = stack.admin("GET", "/events")
    assert r.status == 200
    evs = r.json()
    assert len(evs) <= 100
    assert evs[0]["event_type"] == "TEST_GLOBAL"
    assert evs[0]["workspace_id"] is None and evs[0]["payload"] is None
    assert b'"payload":null,"workspace_id":null}' in r.body
