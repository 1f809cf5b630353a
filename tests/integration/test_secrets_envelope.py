"""Secrets in KMS envelope mode (encryption_version 3) against tests/integration/fake_kms.py.

One stack holds both key sources (SECRETS_ENCRYPTION_KEY for version 2 rows, KMS for new
writes), so `moleculed secrets rotate` can be checked end to end: v0 -> v2 -> v3, interrupted
and resumed, every value read back through the API. Also: blobs bound to their row, a KMS
outage (503 kms_unavailable), a badly signed request (rejected, logged without the secret key)
and platform_inbound_secret sealed at register. No log may contain a secret value or key.
"""
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import pytest

from conftest import BIN_DIR, free_port, start_stack, stop_stack

ADMIN = "env-admin-token-0123456789abcdef"
KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/test"
ACCESS_KEY = "AKIDTEST"
SECRET_KEY = "sk-" + uuid.uuid4().hex + uuid.uuid4().hex
STATIC_KEY = base64.b64encode(os.urandom(32)).decode()
FAKE_KMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_kms.py")
FAILED_MSG = "one or more secrets failed to decrypt; refusing to return partial bundle"
VALUES = []


def secret(tag):
    v = "ev-%s-%s" % (tag, uuid.uuid4().hex)
    VALUES.append(v)
    return v


class Kms:
    def __init__(self):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = tempfile.TemporaryFile()
        # fake_kms.py as is, with Nagle off: its headers and body go out in two writes, and
        # on a kept-alive connection each call would otherwise wait out a delayed ACK (40 ms),
        # which makes the 10 000-row rotation take minutes.
        launcher = ("import sys; sys.path.insert(0, %r); import fake_kms; "
                    "fake_kms.Handler.disable_nagle_algorithm = True; "
                    "sys.argv = ['fake_kms.py'] + sys.argv[1:]; fake_kms.main()"
                    % os.path.dirname(FAKE_KMS))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", launcher, "--port", str(self.port), "--key-arn", KEY_ARN,
             "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY],
            stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.stats()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("fake_kms did not start")

    def stats(self):
        with urllib.request.urlopen(self.url + "/__stats", timeout=5) as r:
            return json.loads(r.read())

    def fail(self, on):
        req = urllib.request.Request(self.url + "/__fail", data=b"1" if on else b"0", method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            assert json.loads(r.read())["fail"] is on

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def kms_env(kms, secret_key=SECRET_KEY):
    return {"KMS_KEY_ARN": KEY_ARN, "KMS_ENDPOINT": kms.url, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": secret_key}


@pytest.fixture(scope="module")
def kms():
    k = Kms()
    yield k
    k.stop()


def both_keys_stack(kms):
    env = {"ADMIN_TOKEN": ADMIN, "SECRETS_ENCRYPTION_KEY": STATIC_KEY}
    env.update(kms_env(kms))
    return start_stack(env)


def stop_checked(s):
    leaks = []
    logdir = os.path.join(s.run_dir, "logs")
    for name in sorted(os.listdir(logdir)) if os.path.isdir(logdir) else []:
        with open(os.path.join(logdir, name), errors="replace") as f:
            text = f.read()
        leaks += ["%s in %s" % (v[:12], name) for v in VALUES + [SECRET_KEY, STATIC_KEY]
                  if v in text]
    problems = stop_stack(s)
    assert not leaks, "secret material found in logs: %s" % leaks
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def estack(kms):
    """Envelope mode for new writes; the static key kept so version 2 rows stay readable."""
    s = both_keys_stack(kms)
    yield s
    stop_checked(s)


@pytest.fixture(scope="module")
def rstack(kms):
    """The same settings on a database of its own: rotation sees only its own rows."""
    s = both_keys_stack(kms)
    yield s
    stop_checked(s)


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def new_ws(s):
    return s.psql("INSERT INTO workspaces (name, status, runtime) VALUES ('env-%s', 'online', "
                  "'langgraph') RETURNING id" % uuid.uuid4().hex[:10]).splitlines()[0]


def put(s, ws, key, value):
    return s.admin("POST", "/workspaces/%s/secrets" % ws, body={"key": key, "value": value})


def values(s, ws):
    return s.admin("GET", "/workspaces/%s/secrets/values" % ws, timeout=60)


def moleculed(s, env, *args, wait=True):
    e = dict(os.environ)
    for k in ("SECRETS_ENCRYPTION_KEY", "KMS_KEY_ARN", "KMS_ENDPOINT", "AWS_ACCESS_KEY_ID",
              "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        e.pop(k, None)
    e.update({"DATABASE_URL": s.stack_env()["DATABASE_URL"], "ASAN_OPTIONS": "detect_leaks=0",
              "MOLECULE_ENV": "test"})
    e.update(env)
    cmd = [os.path.join(BIN_DIR, "moleculed")] + list(args)
    if not wait:
        return subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=300)


# --- envelope round trip --------------------------------------------------------------------

def test_round_trip_stores_version_3(estack, kms):
    ws = new_ws(estack)
    v = secret("rt")
    before = kms.stats()
    r = put(estack, ws, "API_KEY", v)
    assert r.status == 200, r.body
    assert kms.stats()["GenerateDataKey"] > before["GenerateDataKey"]
    row = estack.psql("SELECT encryption_version, encode(encrypted_value, 'hex') FROM "
                      "workspace_secrets WHERE workspace_id = '%s' AND key = 'API_KEY'" % ws)
    ver, hexblob = row.split("|")
    assert ver == "3"
    assert hexblob.startswith("03")
    assert v.encode().hex() not in hexblob
    r = values(estack, ws)
    assert r.status == 200 and r.json()["API_KEY"] == v


def test_row_copied_to_another_workspace_fails(estack):
    a, b = new_ws(estack), new_ws(estack)
    va, vb = secret("ca"), secret("cb")
    assert put(estack, a, "SHARED", va).status == 200
    assert put(estack, b, "SHARED", vb).status == 200
    estack.psql("UPDATE workspace_secrets SET encrypted_value = (SELECT encrypted_value FROM "
                "workspace_secrets WHERE workspace_id = '%s' AND key = 'SHARED') "
                "WHERE workspace_id = '%s' AND key = 'SHARED'" % (a, b))
    r = values(estack, b)
    assert r.status == 500
    assert r.json() == {"error": FAILED_MSG, "failed_keys": ["workspace:SHARED"]}
    assert va.encode() not in r.body and vb.encode() not in r.body
    assert values(estack, a).json()["SHARED"] == va


def test_kms_outage_answers_503(estack, kms):
    # A row sealed by another process (moleculed secrets rotate): no API worker has its data
    # key cached, so reading it needs KMS.
    ws = new_ws(estack)
    v = secret("outage")
    estack.psql("INSERT INTO workspace_secrets (workspace_id, key, encrypted_value, "
                "encryption_version) VALUES ('%s', 'OUT', convert_to('%s', 'UTF8'), 0)" % (ws, v))
    r = moleculed(estack, dict(kms_env(kms), SECRETS_ENCRYPTION_KEY=STATIC_KEY), "secrets", "rotate")
    assert r.returncode == 0, r.stdout + r.stderr
    assert estack.psql("SELECT encryption_version FROM workspace_secrets WHERE workspace_id = "
                       "'%s'" % ws) == "3"
    kms.fail(True)
    try:
        failed = kms.stats()["failed"]
        r = values(estack, ws)
        assert r.status == 503, r.body
        body = r.json()
        assert body["code"] == "kms_unavailable"
        assert v.encode() not in r.body
        assert kms.stats()["failed"] > failed
        # Writes need a fresh data key: also 503.
        r = put(estack, ws, "NEW", secret("new"))
        assert r.status == 503 and r.json()["code"] == "kms_unavailable"
        # A create with secrets writes nothing at all when they cannot be sealed.
        name = "env-seed-%s" % uuid.uuid4().hex[:10]
        r = estack.admin("POST", "/workspaces", body={"name": name,
                                                      "secrets": {"SEEDED": secret("seed")}})
        assert r.status == 503 and r.json()["code"] == "kms_unavailable", r.body
        assert estack.psql("SELECT count(*) FROM workspaces WHERE name = '%s'" % name) == "0"
    finally:
        kms.fail(False)
    r = values(estack, ws)
    assert r.status == 200 and r.json()["OUT"] == v


def fcgi(sock, method, path, headers=None, body=b""):
    env = {"REQUEST_METHOD": method, "REQUEST_URI": path, "PATH": os.environ.get("PATH", ""),
           "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json"}
    for k, v in (headers or {}).items():
        env["HTTP_" + k.upper().replace("-", "_")] = v
    out = subprocess.run(["cgi-fcgi", "-bind", "-connect", sock], env=env, input=body,
                         capture_output=True, timeout=20).stdout
    head, _, rest = out.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest


@pytest.fixture(scope="module")
def badsig(estack, kms):
    """molecule-api alone against the same database, with a wrong AWS secret key: one
    POST /secrets through it. Yields (status, body, log text, workspace, value, wrong key)."""
    ws = new_ws(estack)
    tmp = tempfile.mkdtemp(prefix="molecule-env-")
    sock = os.path.join(tmp, "api.sock")
    wrong = "wrong-" + uuid.uuid4().hex
    VALUES.append(wrong)
    senv = estack.stack_env()
    env = dict(os.environ, MOLECULE_FCGI_SOCKET=sock, DATABASE_URL=senv["DATABASE_URL"],
               REDIS_URL=senv["REDIS_URL"], MOLECULE_ENV="test", ADMIN_TOKEN=ADMIN,
               MOLECULE_API_WORKERS="1", ASAN_OPTIONS="detect_leaks=0",
               **kms_env(kms, secret_key=wrong))
    env.pop("SECRETS_ENCRYPTION_KEY", None)
    logpath = os.path.join(tmp, "api.log")
    log = open(logpath, "w+")
    p = subprocess.Popen([os.path.join(BIN_DIR, "molecule-api")], env=env, stdout=log, stderr=log)
    v = secret("badsig")
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.05)
        rejected = kms.stats()["rejected"]
        status, body = fcgi(sock, "POST", "/workspaces/%s/secrets" % ws, bearer(ADMIN),
                            json.dumps({"key": "SIG", "value": v}).encode())
        assert kms.stats()["rejected"] > rejected
    finally:
        p.terminate()
        p.wait(timeout=10)
        log.close()
    with open(logpath, errors="replace") as f:
        text = f.read()
    yield status, body, text, ws, v, wrong


def test_badly_signed_request_fails_and_key_not_logged(estack, badsig):
    status, body, text, ws, v, wrong = badsig
    assert 500 <= status < 600, body
    assert v.encode() not in body and wrong.encode() not in body
    assert SECRET_KEY.encode() not in body
    assert "InvalidSignatureException" in text
    assert wrong not in text and SECRET_KEY not in text and v not in text
    assert estack.psql("SELECT count(*) FROM workspace_secrets WHERE workspace_id = '%s'" % ws) == "0"


def test_badly_signed_request_body_names_key_service(badsig):
    status, body = badsig[0], badsig[1]
    assert status == 502, (status, body)
    msg = json.loads(body)["error"]
    assert "key service" in msg and "reject" in msg, msg
    assert json.loads(body)["code"] == "kms_rejected"


# --- platform_inbound_secret ----------------------------------------------------------------

def test_inbound_secret_sealed_at_register(estack):
    ws = str(uuid.uuid4())
    body = {"id": ws, "url": "http://10.20.0.7:8000", "agent_card": {"name": "env"}}
    r = estack.request("POST", "/registry/register", body=body)
    assert r.status == 200, r.body
    first = r.json()
    sec = first["platform_inbound_secret"]
    VALUES.append(sec)
    tok = first["auth_token"]
    VALUES.append(tok)
    ver, hexblob = estack.psql("SELECT platform_inbound_secret_version, encode("
                               "platform_inbound_secret, 'hex') FROM workspaces WHERE id = '%s'"
                               % ws).split("|")
    assert ver == "3" and hexblob.startswith("03")
    assert sec.encode().hex() not in hexblob
    for _ in range(3):
        r = estack.request("POST", "/registry/register", body=body, headers=bearer(tok))
        assert r.status == 200, r.body
        assert r.json()["platform_inbound_secret"] == sec
        assert "auth_token" not in r.json()
    assert estack.psql("SELECT encode(platform_inbound_secret, 'hex') FROM workspaces "
                       "WHERE id = '%s'" % ws) == hexblob
    # A blob moved to another workspace does not open: 500, and the secret is not leaked.
    other = str(uuid.uuid4())
    obody = dict(body, id=other)
    r = estack.request("POST", "/registry/register", body=obody)
    assert r.status == 200
    otok = r.json()["auth_token"]
    VALUES.append(otok)
    VALUES.append(r.json()["platform_inbound_secret"])
    estack.psql("UPDATE workspaces SET platform_inbound_secret = decode('%s', 'hex') "
                "WHERE id = '%s'" % (hexblob, other))
    r = estack.request("POST", "/registry/register", body=obody, headers=bearer(otok))
    assert r.status == 500 and r.json() == {"error": "registration failed"}
    assert sec.encode() not in r.body


def test_inbound_secret_legacy_plaintext_still_returned(estack):
    """A row written before this change (version 0 bytes) is returned as stored."""
    ws = str(uuid.uuid4())
    legacy = "legacy-" + uuid.uuid4().hex
    VALUES.append(legacy)
    estack.psql("INSERT INTO workspaces (id, name, status, platform_inbound_secret, "
                "platform_inbound_secret_version) VALUES ('%s', 'env-legacy', 'online', "
                "convert_to('%s', 'UTF8'), 0)" % (ws, legacy))
    body = {"id": ws, "url": "http://10.20.0.8:8000", "agent_card": {"name": "legacy"}}
    r = estack.request("POST", "/registry/register", body=body)
    assert r.status == 200, r.body
    VALUES.append(r.json()["auth_token"])
    assert r.json()["platform_inbound_secret"] == legacy


# --- rotation: v0 -> v2 -> v3, interrupted and resumed -------------------------------------

NWS_ROT = 20
PER_WS = 500


def versions(s, wss):
    out = s.psql("SELECT encryption_version, count(*) FROM workspace_secrets WHERE "
                 "workspace_id = ANY ('{%s}'::uuid[]) GROUP BY 1 ORDER BY 1" % ",".join(wss))
    return {int(l.split("|")[0]): int(l.split("|")[1]) for l in out.splitlines() if l}


def test_rotation_v0_v2_v3_interrupted(rstack, kms):
    estack = rstack
    wss = [new_ws(estack) for _ in range(NWS_ROT)]
    # 10 000 plaintext (v0) rows with known values: 'rot-<ws index>-<n>-<tag>'.
    tag = uuid.uuid4().hex[:8]
    estack.psql("INSERT INTO workspace_secrets (workspace_id, key, encrypted_value, "
                "encryption_version) SELECT (ARRAY['%s']::uuid[])[w], 'K_' || n, "
                "convert_to('rot-' || w || '-' || n || '-%s', 'UTF8'), 0 "
                "FROM generate_series(1, %d) w, generate_series(1, %d) n"
                % ("','".join(wss), tag, NWS_ROT, PER_WS))
    expected = [{"K_%d" % n: "rot-%d-%d-%s" % (w, n, tag) for n in range(1, PER_WS + 1)}
                for w in range(1, NWS_ROT + 1)]
    total = NWS_ROT * PER_WS
    assert versions(estack, wss) == {0: total}

    # Static key only: everything becomes version 2.
    r = moleculed(estack, {"SECRETS_ENCRYPTION_KEY": STATIC_KEY}, "secrets", "rotate")
    assert r.returncode == 0, r.stdout + r.stderr
    assert versions(estack, wss) == {2: total}
    assert estack.psql("SELECT count(*) FROM workspace_secrets WHERE workspace_id = ANY "
                       "('{%s}'::uuid[]) AND position(convert_to('rot-', 'UTF8') in "
                       "encrypted_value) > 0" % ",".join(wss)) == "0"

    # KMS (static key kept so version 2 stays readable): killed part way through.
    env = dict(kms_env(kms), SECRETS_ENCRYPTION_KEY=STATIC_KEY)
    started = time.monotonic()
    p = moleculed(estack, env, "secrets", "rotate", wait=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if versions(estack, wss).get(3, 0) > 0:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    killed_at = time.monotonic() - started
    p.wait(timeout=10)
    p.stdout.close()
    mid = versions(estack, wss)
    assert mid.get(3, 0) > 0 and mid.get(2, 0) > 0, (mid, killed_at)
    assert sum(mid.values()) == total

    r = moleculed(estack, env, "secrets", "rotate")
    assert r.returncode == 0, r.stdout + r.stderr
    assert versions(estack, wss) == {3: total}
    assert estack.psql("SELECT count(*) FROM workspace_secrets WHERE workspace_id = ANY "
                       "('{%s}'::uuid[]) AND get_byte(encrypted_value, 0) <> 3" % ",".join(wss)) == "0"

    # Every value, read back through the API.
    for ws, want in zip(wss, expected):
        r = values(estack, ws)
        assert r.status == 200, r.body[:300]
        got = r.json()
        assert got == want
