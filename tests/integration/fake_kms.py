#!/usr/bin/env python3
"""fake_kms.py: a tiny AWS KMS-compatible endpoint for tests (GenerateDataKey, Decrypt).

Verifies every request's SigV4 signature (independently of the C signer), keeps data keys in
memory (CiphertextBlob = base64(b"fakekms:" + id)), simulates outages (--fail, POST /__fail)
and counts calls (GET /__stats). Stdlib only.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote

STATE = {"keys": {}, "fail": False, "stats": {"GenerateDataKey": 0, "Decrypt": 0,
         "rejected": 0, "failed": 0}}
LOCK = threading.Lock()
ARGS = None


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _enc(s, slash):
    return quote(unquote(s), safe="-_.~" + ("/" if slash else ""))


def expected_signature(method, path, query, headers, signed, body, date, scope):
    """Recomputes a SigV4 signature from the request as received."""
    qs = []
    for part in query.split("&") if query else []:
        k, _, v = part.partition("=")
        qs.append((_enc(k, False), _enc(v, False)))
    cq = "&".join(f"{k}={v}" for k, v in sorted(qs))
    ch = "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed)
    creq = "\n".join([method, _enc(path or "/", True), cq, ch, ";".join(signed),
                      hashlib.sha256(body).hexdigest()])
    sts = "\n".join(["AWS4-HMAC-SHA256", date, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    day, region, service, _ = scope.split("/")
    k = _hmac(_hmac(_hmac(_hmac(("AWS4" + ARGS.secret_key).encode(), day), region), service),
              "aws4_request")
    return hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def reply(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, code, typ, msg):
        self.reply(code, {"__type": typ, "message": msg})

    def do_GET(self):
        if self.path == "/__stats":
            with LOCK:
                self.reply(200, dict(STATE["stats"], fail=STATE["fail"]))
            return
        self.error(404, "UnknownOperationException", "not found")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.path.startswith("/__fail"):
            with LOCK:
                STATE["fail"] = body.strip() not in (b"0", b"false", b"off")
                self.reply(200, {"fail": STATE["fail"]})
            return
        if STATE["fail"]:
            with LOCK:
                STATE["stats"]["failed"] += 1
            self.error(503, "KMSInternalException", "simulated outage")
            return
        why = self.check_signature(body)
        if why:
            with LOCK:
                STATE["stats"]["rejected"] += 1
            self.error(400, "InvalidSignatureException", why)
            return
        target = self.headers.get("X-Amz-Target", "")
        if self.headers.get("Content-Type") != "application/x-amz-json-1.1":
            self.error(400, "SerializationException", "bad content type")
            return
        try:
            req = json.loads(body)
        except ValueError:
            self.error(400, "SerializationException", "bad JSON")
            return
        if target == "TrentService.GenerateDataKey":
            self.generate(req)
        elif target == "TrentService.Decrypt":
            self.decrypt(req)
        else:
            self.error(400, "UnknownOperationException", "unknown target")

    def check_signature(self, body):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return "missing or unsupported Authorization"
        try:
            fields = dict(p.strip().split("=", 1) for p in auth[17:].split(","))
            cred = fields["Credential"].split("/", 1)
            signed = fields["SignedHeaders"].split(";")
            sig = fields["Signature"]
        except (KeyError, ValueError):
            return "malformed Authorization"
        if cred[0] != ARGS.access_key:
            return "The security token included in the request is invalid."
        if "host" not in signed or "x-amz-date" not in signed:
            return "host and x-amz-date must be signed"
        scope = cred[1]
        date = self.headers.get("X-Amz-Date", "")
        if not scope.startswith(date[:8]) or not scope.endswith("/kms/aws4_request"):
            return "credential scope does not match"
        if scope.split("/")[1] != ARGS.region:
            return "credential scope region does not match the key's region"
        headers = {k.lower(): v for k, v in self.headers.items()}
        path, _, query = self.path.partition("?")
        want = expected_signature(self.command, path, query, headers, signed, body, date, scope)
        if not hmac.compare_digest(want, sig):
            return ("The request signature we calculated does not match the signature "
                    "you provided.")
        return None

    def check_key(self, req):
        if req.get("KeyId") not in (None, ARGS.key_arn):
            self.error(400, "NotFoundException", "key not found")
            return False
        return True

    def generate(self, req):
        if not self.check_key(req) or req.get("KeyId") is None:
            if req.get("KeyId") is None:
                self.error(400, "ValidationException", "KeyId is required")
            return
        if req.get("KeySpec") != "AES_256":
            self.error(400, "ValidationException", "KeySpec must be AES_256")
            return
        key, kid = os.urandom(32), os.urandom(16).hex()
        with LOCK:
            STATE["keys"][kid] = (key, json.dumps(req.get("EncryptionContext") or {},
                                                   sort_keys=True))
            STATE["stats"]["GenerateDataKey"] += 1
        self.reply(200, {"KeyId": ARGS.key_arn,
                         "Plaintext": base64.b64encode(key).decode(),
                         "CiphertextBlob": base64.b64encode(b"fakekms:" + kid.encode()).decode()})

    def decrypt(self, req):
        if not self.check_key(req):
            return
        try:
            blob = base64.b64decode(req.get("CiphertextBlob", ""), validate=True)
        except ValueError:
            blob = b""
        kid = blob[8:].decode(errors="replace") if blob.startswith(b"fakekms:") else ""
        ctx = json.dumps(req.get("EncryptionContext") or {}, sort_keys=True)
        with LOCK:
            STATE["stats"]["Decrypt"] += 1
            ent = STATE["keys"].get(kid)
        if ent is None or ent[1] != ctx:
            self.error(400, "InvalidCiphertextException", "invalid ciphertext")
            return
        self.reply(200, {"KeyId": ARGS.key_arn, "Plaintext": base64.b64encode(ent[0]).decode(),
                         "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"})


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key-arn", required=True)
    ap.add_argument("--access-key", required=True)
    ap.add_argument("--secret-key", required=True)
    ap.add_argument("--fail", action="store_true")
    ARGS = ap.parse_args()
    ARGS.region = ARGS.key_arn.split(":")[3]
    STATE["fail"] = ARGS.fail
    srv = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    print(f"fake_kms listening on {ARGS.port}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
