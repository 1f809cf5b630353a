"""The HTTP surface through nginx: health, JSON errors, security headers, CORS, limits, TLS."""
import json

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "x-xss-protection": "1; mode=block",
    "referrer-policy": "strict-origin-when-cross-origin",
}


def assert_security_headers(r, tls=False):
    for name, value in SECURITY_HEADERS.items():
        assert r.header(name) == value, (name, r.status, r.headers)
    assert r.header("content-security-policy"), r.headers
    if tls:
        assert r.header("strict-transport-security").startswith("max-age="), r.headers
    else:
        assert r.header("strict-transport-security") is None


def test_health_is_exact_compact_json(stack):
    r = stack.get("/health")
    assert r.status == 200
    assert r.body == b'{"status":"ok"}'
    assert r.header("content-type").startswith("application/json")
    assert_security_headers(r)
    assert r.header("x-request-id")


def test_unknown_path_is_json_404_with_headers(stack):
    r = stack.get("/nope")
    assert r.status == 404
    assert r.json() == {"error": "not found"}
    assert_security_headers(r)


def test_request_id_reaches_the_app_logs(stack):
    r = stack.get("/nope-for-log")
    rid = r.header("x-request-id")
    assert rid and len(rid) >= 16
    # 4xx are not logged at info; the access log carries the id nginx generated (written
    # after the response, so wait for it).
    assert stack.wait_for(lambda: rid in stack.log("nginx-access.log"), timeout=5)


def test_cors_preflight_from_allowed_origin(stack):
    r = stack.request("OPTIONS", "/workspaces", headers={
        "Origin": "http://localhost:3000",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,authorization",
    })
    assert r.status == 204
    assert r.header("access-control-allow-origin") == "http://localhost:3000"
    assert r.header("access-control-allow-credentials") == "true"
    methods = r.header("access-control-allow-methods")
    for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        assert m in methods
    allowed = r.header("access-control-allow-headers").lower()
    for h in ("authorization", "content-type", "x-workspace-id", "x-molecule-org-id", "x-timeout"):
        assert h in allowed
    assert_security_headers(r)


def test_cors_simple_request_echoes_allowed_origin(stack):
    r = stack.get("/health", headers={"Origin": "http://localhost:3001"})
    assert r.status == 200
    assert r.header("access-control-allow-origin") == "http://localhost:3001"
    assert "Origin" in (r.header("vary") or "")


def test_cors_rejects_unknown_origin(stack):
    r = stack.request("OPTIONS", "/workspaces", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert r.header("access-control-allow-origin") is None
    assert r.status == 403
    assert r.json() == {"error": "origin not allowed"}
    assert_security_headers(r)
    r = stack.get("/health", headers={"Origin": "http://evil.example"})
    assert r.status == 403
    assert r.header("access-control-allow-origin") is None


def test_nginx_body_cap_is_json_413(stack):
    r = stack.request("POST", "/health", body=b"x" * (11 * 1024 * 1024),
                      headers={"Content-Type": "application/json"})
    assert r.status == 413
    assert r.json()["error"]
    assert_security_headers(r)


def test_metrics_count_requests_by_route_and_status(stack):
    for _ in range(3):
        stack.get("/health")
    stack.get("/definitely-missing")
    r = stack.get("/metrics")
    assert r.status == 200
    text = r.body.decode()
    assert r.header("content-type").startswith("text/plain")
    line = [l for l in text.splitlines()
            if l.startswith('molecule_http_requests_total{method="GET",route="/health",status="200"}')]
    assert line and int(line[0].split()[-1]) >= 3
    assert 'route="unmatched",status="404"' in text
    assert 'molecule_http_request_duration_seconds_bucket{method="GET",route="/health",le="+Inf"}' in text
    assert "molecule_process_restarts_total" in text


def test_admin_liveness_lists_every_process(stack):
    subs = stack.wait_for(lambda: (lambda s: s if {"supervisor", "api", "api-worker-0",
                                                      "api-worker-1", "api-worker-2"} <= set(s) else None)(stack.liveness()))
    assert subs, stack.liveness()
    for name, entry in subs.items():
        assert set(entry) == {"last_tick_at", "seconds_ago", "pid", "restarts"}, entry
        assert entry["last_tick_at"].endswith("Z")
        assert entry["seconds_ago"] <= 5, (name, entry)


def test_admin_token_guards_admin_routes(limited_stack):
    r = limited_stack.get("/admin/liveness")
    assert r.status == 401
    assert r.json() == {"error": "admin auth required"}
    r = limited_stack.get("/admin/liveness", headers={"Authorization": "Bearer wrong-token-000"})
    assert r.status == 401
    assert r.json() == {"error": "invalid admin auth token"}
    r = limited_stack.get("/admin/liveness", headers={"Authorization": "Bearer adm-test-token-123456"})
    assert r.status == 200
    assert "adm-test-token-123456" not in limited_stack.log("moleculed.log")


def test_tls_listener_adds_hsts(limited_stack):
    r = limited_stack.get("/health", tls=True)
    assert r.status == 200
    assert r.body == b'{"status":"ok"}'
    assert_security_headers(r, tls=True)


def test_rate_limit_is_json_429_with_retry_after(limited_stack):
    statuses = []
    last = None
    for _ in range(40):
        last = limited_stack.get("/nope")
        statuses.append(last.status)
        if last.status == 429:
            break
    assert 429 in statuses, statuses
    assert statuses[0] != 429
    body = last.json()
    assert body["error"] == "rate limit exceeded"
    assert isinstance(body["retry_after"], int) and body["retry_after"] > 0
    assert last.header("retry-after") == str(body["retry_after"])
    assert_security_headers(last)
