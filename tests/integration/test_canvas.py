"""The canvas viewport: GET /canvas/viewport (open) and PUT (CanvasOrBearer), one global row."""
import json
import uuid

import pytest

BAD_VIEWPORTS = [
    {"x": 1, "y": 2},
    {"x": "1", "y": 2, "zoom": 1},
    {"x": 1, "y": None, "zoom": 1},
    {"x": 1, "y": 2, "zoom": 0},
    {"x": 1, "y": 2, "zoom": -1.5},
    {"x": True, "y": 2, "zoom": 1},
]


def saved(stack, body):
    r = stack.admin("PUT", "/canvas/viewport", body=body)
    assert r.status == 200, r.body
    assert r.body == b'{"status":"saved"}'


def live_token(stack):
    """CanvasOrBearer only checks once some workspace token exists: make sure one does."""
    r = stack.admin("POST", "/workspaces", body={"name": "vp-" + uuid.uuid4().hex[:8], "external": True})
    assert r.status == 201, r.body
    return r.json()["connection"]["auth_token"]


def test_viewport_defaults_then_round_trips(stack):
    stack.psql("DELETE FROM canvas_viewport")
    r = stack.get("/canvas/viewport")
    assert r.status == 200
    assert r.body == b'{"x":0,"y":0,"zoom":1}'
    saved(stack, {"x": 100, "y": -50.5, "zoom": 1.25})
    assert stack.get("/canvas/viewport").body == b'{"x":100,"y":-50.5,"zoom":1.25}'
    saved(stack, {"x": 0.1, "y": 3e5, "zoom": 2})
    assert stack.get("/canvas/viewport").body == b'{"x":0.1,"y":300000,"zoom":2}'
    assert stack.psql("SELECT count(*) FROM canvas_viewport") == "1"


def test_viewport_put_auth(stack):
    tok = live_token(stack)
    body = {"x": 1, "y": 2, "zoom": 1}
    r = stack.request("PUT", "/canvas/viewport", body=body)
    assert r.status == 401
    assert r.json() == {"error": "admin auth required"}
    r = stack.request("PUT", "/canvas/viewport", body=body, headers={"Authorization": "Bearer nope"})
    assert r.status == 401
    assert r.json() == {"error": "invalid admin auth token"}
    # The browser canvas from an allowed origin.
    r = stack.request("PUT", "/canvas/viewport", body=body, headers={"Origin": "http://localhost:3000"})
    assert r.status == 200, r.body
    assert tok  # a workspace token is not needed for the canvas; it only arms the guard


@pytest.mark.parametrize("body", BAD_VIEWPORTS)
def test_viewport_rejects_bad_data(stack, body):
    saved(stack, {"x": 7, "y": 8, "zoom": 0.5})
    r = stack.admin("PUT", "/canvas/viewport", body=body)
    assert r.status == 400
    assert r.json() == {"error": "invalid viewport data"}
    assert stack.get("/canvas/viewport").body == b'{"x":7,"y":8,"zoom":0.5}'


@pytest.mark.parametrize("raw", [b"{x", b"[1,2,3]", b"", b"42"])
def test_viewport_rejects_unusable_bodies(stack, raw):
    r = stack.admin("PUT", "/canvas/viewport", body=raw, headers={"Content-Type": "application/json"})
    assert r.status == 400
    assert r.json() == {"error": "invalid viewport data"}


def test_viewport_oversize_body(stack):
    r = stack.admin("PUT", "/canvas/viewport", headers={"Content-Type": "application/json"},
                    body=json.dumps({"x": 1, "y": 2, "zoom": 1, "pad": "p" * (2 << 20)}))
    assert r.status == 413
