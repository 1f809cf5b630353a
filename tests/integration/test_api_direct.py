"""molecule-api without nginx (cgi-fcgi talks FastCGI to the socket): the cgit-style layer."""
import os
import subprocess
import tempfile
import time

from conftest import BIN_DIR


def fcgi_get(sock, path, extra=None):
    env = {"REQUEST_METHOD": "GET", "REQUEST_URI": path, "PATH": os.environ.get("PATH", "")}
    env.update(extra or {})
    out = subprocess.run(["cgi-fcgi", "-bind", "-connect", sock], env=env, capture_output=True,
                         timeout=10).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    return head.decode(), body


def start_api(tmp, extra):
    env = dict(os.environ)
    env.update({"MOLECULE_ENV": "test", "MOLECULE_FCGI_SOCKET": os.path.join(tmp, "api.sock"),
                "REDIS_URL": "unix://%s/none.sock" % tmp, "ASAN_OPTIONS": "detect_leaks=0"})
    env.update(extra)
    log = open(os.path.join(tmp, "api.log"), "w+")
    p = subprocess.Popen([os.path.join(BIN_DIR, "molecule-api")], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while not os.path.exists(os.path.join(tmp, "api.sock")) and time.monotonic() < deadline:
        time.sleep(0.05)
    return p, log


def test_workers_recycle_after_max_requests():
    tmp = tempfile.mkdtemp(prefix="molecule-api-")
    p, log = start_api(tmp, {"MOLECULE_API_WORKERS": "1", "MOLECULE_MAX_REQUESTS": "3"})
    try:
        sock = os.path.join(tmp, "api.sock")
        for i in range(10):
            head, body = fcgi_get(sock, "/health", {"REQUEST_ID": "rid-%d" % i})
            assert head.startswith("Status: 200"), (i, head)
            assert body == b'{"status":"ok"}'
            assert "X-Request-Id: rid-%d" % i in head
    finally:
        p.terminate()
        assert p.wait(timeout=10) == 0
    log.seek(0)
    text = log.read()
    assert text.count("served 3 requests, recycling") == 3, text
    assert "killed by signal" not in text


def test_redis_down_liveness_is_503_and_health_still_ok():
    tmp = tempfile.mkdtemp(prefix="molecule-api-")
    p, log = start_api(tmp, {"MOLECULE_API_WORKERS": "1", "ADMIN_TOKEN": "direct-admin-123456"})
    try:
        sock = os.path.join(tmp, "api.sock")
        head, body = fcgi_get(sock, "/admin/liveness", {"HTTP_AUTHORIZATION": "Bearer direct-admin-123456"})
        assert head.startswith("Status: 503"), head
        assert body == '{"error":"liveness store unavailable — retry shortly","code":"platform_unavailable"}'.encode()
        head, body = fcgi_get(sock, "/health")
        assert head.startswith("Status: 200")
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_invalid_config_exits_2_with_reason():
    tmp = tempfile.mkdtemp(prefix="molecule-api-")
    env = dict(os.environ, MOLECULE_API_WORKERS="lots", MOLECULE_ENV="test", ASAN_OPTIONS="detect_leaks=0")
    r = subprocess.run([os.path.join(BIN_DIR, "molecule-api")], env=env, capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert "MOLECULE_API_WORKERS" in r.stderr and "not a number" in r.stderr
    r = subprocess.run([os.path.join(BIN_DIR, "moleculed"), "-t"], env=env, capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
