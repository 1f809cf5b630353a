#!/usr/bin/env bash
# provision.sh: create -> online of echo workspaces on the private Podman engine with a warm image
# cache (min/median/max of N sequential), and the throughput of 50 creates at once, beside the
# baseline of a bare engine create+start (+ first HTTP answer of the agent) of the same image.
# Prints a table and rewrites the "provision-bench" section of docs/performance.md if present.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
SEQ="${BENCH_PROVISION_SEQ:-5}"
BURST="${BENCH_PROVISION_BURST:-50}"

admin="bench-admin-token-0123456789"
export ADMIN_TOKEN="$admin" MOLECULE_ENGINE=1 MOLECULE_PROVISION=1 MOLECULE_START_TIMEOUT=60
unset DOCKER_HOST
bench_stack_up
# shellcheck disable=SC1091
. "$run/stack.env"

table="$(python3 - "$port" "$admin" "${DOCKER_HOST#unix://}" "$SEQ" "$BURST" <<'EOF'
import http.client, json, socket, statistics, sys, time

port, admin, sock, seq, burst = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
H = {"Authorization": "Bearer " + admin, "Content-Type": "application/json"}

def api(method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=H)
    r = c.getresponse()
    out = r.status, r.read()
    c.close()
    return out

def engine(method, path, body=None):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    c = http.client.HTTPConnection("d", timeout=60)
    c.sock = s
    c.request(method, "/v1.41" + path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    out = r.status, r.read()
    c.close()
    return out

def create(name):
    st, b = api("POST", "/workspaces", {"name": name, "runtime": "echo", "tier": 2})
    assert st == 201, b
    return json.loads(b)["id"]

def status(wid):
    return json.loads(api("GET", "/workspaces/" + wid)[1])["status"]

def wait_online(ids, timeout=600):
    pending, t0 = set(ids), time.monotonic()
    while pending and time.monotonic() - t0 < timeout:
        for w in list(pending):
            s = status(w)
            if s == "online":
                pending.discard(w)
            elif s == "failed":
                raise SystemExit("workspace %s failed" % w)
        time.sleep(0.05)
    if pending:
        raise SystemExit("%d workspaces not online after %ds" % (len(pending), timeout))

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

# Warm the image cache (the one build).
t0 = time.monotonic(); wait_online([create("bench-warm")]); cold = time.monotonic() - t0

seq_t = []
for i in range(seq):
    t0 = time.monotonic(); wait_online([create("bench-seq-%d" % i)]); seq_t.append(time.monotonic() - t0)

# Baseline: the same image, created and started straight on the engine, until the agent answers.
image = [t for i in json.loads(engine("GET", "/images/json")[1]) for t in (i.get("RepoTags") or [])
         if "workspace-template-echo" in t][0]
base_t = []
for i in range(seq):
    p = free_port()
    t0 = time.monotonic()
    st, b = engine("POST", "/containers/create?name=bench-base-%d" % i, {"Image": image,
        "Env": ["AGENT_PORT=%d" % p], "HostConfig": {"NetworkMode": "host"}})
    assert st == 201, b
    assert engine("POST", "/containers/bench-base-%d/start" % i)[0] == 204
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", p, timeout=2)
            c.request("POST", "/", body='{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"role":"user","parts":[{"kind":"text","text":"hi"}],"messageId":"b"}}}')
            c.getresponse().read(); c.close(); break
        except OSError:
            time.sleep(0.02)
    base_t.append(time.monotonic() - t0)
    engine("DELETE", "/containers/bench-base-%d?force=1" % i)

t0 = time.monotonic()
ids = [create("bench-burst-%d" % i) for i in range(burst)]
wait_online(ids)
burst_t = time.monotonic() - t0

def row(name, xs):
    return "| %s | %.2f | %.2f | %.2f |" % (name, min(xs), statistics.median(xs), max(xs))
print("| case | min s | median s | max s |")
print("|---|---|---|---|")
print(row("baseline: engine create+start until the agent answers (%d)" % seq, base_t))
print(row("POST /workspaces -> online, warm cache (%d)" % seq, seq_t))
print("| first workspace incl. image build (cold) | %.2f | %.2f | %.2f |" % (cold, cold, cold))
print()
print("| burst | workspaces | seconds | workspaces/s |")
print("|---|---|---|---|")
print("| %d creates at once -> all online | %d | %.2f | %.2f |" % (burst, burst, burst_t, burst / burst_t))
EOF
)"
echo "$table"
bench_write_doc provision-bench "Provisioning on the private Podman engine (tests/bench/provision.sh, host networking, echo agent, $(nproc) cores):" "$table"
