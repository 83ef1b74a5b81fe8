#!/usr/bin/env bash
# celeriac soak test (outside CI): steady load against the release binaries for a while,
# sampling the resident memory (RSS) and open file descriptors of the API and the worker
# from /proc, to show they stay flat.
#
#   bench/soak.sh                 # 10 minutes
#   SOAK_SECS=120 bench/soak.sh   # 2 minutes
#
# Load: LOAD_THREADS clients, together about LOAD_RATE tasks a second; each enqueues
# `add(i, i)` then long-polls `GET /tasks/{id}?wait=30` and checks the result.
# Every SAMPLE_SECS: RSS (kB) and fd count of celeriac-api, celeriac-worker and
# redis-server, and the tasks done so far, as one CSV row. At the end: a summary
# (start, end, max of each; tasks done, failed, lost) on stdout and in summary.txt.
#
# Knobs: SOAK_SECS (600), SAMPLE_SECS (10), LOAD_RATE (100), LOAD_THREADS (8),
# WORKER_CONCURRENCY (8), NO_BUILD=1 (use target/release as it is),
# RESULTS_DIR (default bench/results/soak-<UTC timestamp>).
# Needs redis-server and python3 (standard library only). All traffic on loopback.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/.." && pwd))"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
SOAK_SECS="${SOAK_SECS:-600}"
SAMPLE_SECS="${SAMPLE_SECS:-10}"
LOAD_RATE="${LOAD_RATE:-100}"
LOAD_THREADS="${LOAD_THREADS:-8}"
WORKER_CONCURRENCY="${WORKER_CONCURRENCY:-8}"
OUT="${RESULTS_DIR:-$ROOT/bench/results/soak-$(date -u +%Y%m%dT%H%M%SZ)}"
for v in SOAK_SECS SAMPLE_SECS LOAD_RATE LOAD_THREADS WORKER_CONCURRENCY; do
  case "${!v}" in ''|*[!0-9]*|0) echo "$v must be a positive integer" >&2; exit 2 ;; esac
done
mkdir -p "$OUT"
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [ "${NO_BUILD:-0}" != 1 ]; then
  log "cargo build --release --locked --bins"
  (cd "$ROOT" && cargo build --release --locked --bins >&2)
fi
BIN="$TARGET_DIR/release"
if [ ! -x "$BIN/celeriac-api" ] || [ ! -x "$BIN/celeriac-worker" ]; then
  echo "no release binaries in $BIN" >&2; exit 1
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(free_port); API_PORT=$(free_port); HEALTH_PORT=$(free_port)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$OUT" >"$OUT/redis.log" 2>&1 &
REDIS_PID=$!; PIDS+=("$REDIS_PID")
URL="redis://127.0.0.1:$REDIS_PORT"
# A short result TTL keeps Redis from growing with the records of the soak itself.
CELERIAC_AUTH=off CELERIAC_BROKER_URL="$URL" CELERIAC_RESULT_TTL_SECS=60 PORT="$API_PORT" RUST_LOG=warn \
  "$BIN/celeriac-api" --host 127.0.0.1 >"$OUT/api.log" 2>&1 &
API_PID=$!; PIDS+=("$API_PID")
CELERIAC_BROKER_URL="$URL" CELERIAC_RESULT_TTL_SECS=60 RUST_LOG=warn \
  "$BIN/celeriac-worker" --concurrency "$WORKER_CONCURRENCY" --health-port "$HEALTH_PORT" >"$OUT/worker.log" 2>&1 &
WORKER_PID=$!; PIDS+=("$WORKER_PID")

wait_ok() {
  local url=$1 _
  for _ in $(seq 100); do
    python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$url" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "$url did not answer" >&2; return 1
}
wait_ok "http://127.0.0.1:$API_PORT/readyz"
wait_ok "http://127.0.0.1:$HEALTH_PORT/readyz"
log "api pid $API_PID, worker pid $WORKER_PID, redis pid $REDIS_PID; ${SOAK_SECS}s at ~${LOAD_RATE} tasks/s; results in $OUT"

# The load: enqueue + long-poll, paced; progress (done failed) in progress.txt every second.
python3 - "http://127.0.0.1:$API_PORT" "$SOAK_SECS" "$LOAD_RATE" "$LOAD_THREADS" "$OUT/progress.txt" >"$OUT/load.json" 2>"$OUT/load.log" <<'EOF' &
import json, sys, threading, time, urllib.request
base, secs, rate, threads, progress = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
end = time.monotonic() + secs
lock = threading.Lock()
stats = {"done": 0, "failed": 0, "errors": 0}
def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)
def client(k):
    interval, i, nxt = threads / rate, k, time.monotonic()
    while time.monotonic() < end:
        try:
            tid = call("POST", "/tasks", {"name": "add", "args": [i, i]})["task_id"]
            task = call("GET", f"/tasks/{tid}?wait=30")
            key = "done" if task.get("status") == "SUCCESS" and task.get("result") == 2 * i else "failed"
        except Exception as e:  # counted, and the soak goes on
            key = "errors"
            print(repr(e), file=sys.stderr)
        with lock:
            stats[key] += 1
        i += threads
        nxt += interval
        time.sleep(max(0.0, nxt - time.monotonic()))
def report():
    while time.monotonic() < end + 60:
        with lock:
            line = f"{stats['done']} {stats['failed']} {stats['errors']}\n"
        with open(progress, "w") as f:
            f.write(line)
        time.sleep(1)
ts = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
threading.Thread(target=report, daemon=True).start()
for t in ts: t.start()
for t in ts: t.join()
with lock:
    print(json.dumps(stats))
EOF
LOAD_PID=$!; PIDS+=("$LOAD_PID")

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
CSV="$OUT/samples.csv"
echo "elapsed_s,api_rss_kb,api_fds,worker_rss_kb,worker_fds,redis_rss_kb,redis_fds,tasks_done,tasks_failed,errors" >"$CSV"
sample() {
  local t=$1 progress
  progress=$(cat "$OUT/progress.txt" 2>/dev/null || echo "0 0 0")
  echo "$t,$(rss "$API_PID"),$(fds "$API_PID"),$(rss "$WORKER_PID"),$(fds "$WORKER_PID"),$(rss "$REDIS_PID"),$(fds "$REDIS_PID"),${progress// /,}" >>"$CSV"
}
START=$SECONDS
sample 0
while kill -0 "$LOAD_PID" 2>/dev/null; do
  sleep "$SAMPLE_SECS"
  if ! kill -0 "$API_PID" 2>/dev/null || ! kill -0 "$WORKER_PID" 2>/dev/null; then
    log "a process died"; break
  fi
  sample $((SECONDS - START))
  tail -n 1 "$CSV" >&2
done
wait "$LOAD_PID" || true
sleep 1
sample $((SECONDS - START))

python3 - "$CSV" "$OUT/load.json" "$SOAK_SECS" <<'EOF' | tee "$OUT/summary.txt"
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
try:
    load = json.load(open(sys.argv[2]))
except Exception:
    load = {"done": int(rows[-1]["tasks_done"]), "failed": int(rows[-1]["tasks_failed"]), "errors": int(rows[-1]["errors"])}
print(f"soak: {sys.argv[3]}s, {len(rows)} samples; tasks done {load['done']} "
      f"({load['done'] / float(sys.argv[3]):.0f}/s), failed {load['failed']}, errors {load['errors']}")
print(f"{'':16} {'start':>8} {'end':>8} {'max':>8} {'end-start':>10}")
for col in ("api_rss_kb", "api_fds", "worker_rss_kb", "worker_fds", "redis_rss_kb", "redis_fds"):
    v = [int(r[col]) for r in rows]
    print(f"{col:16} {v[0]:>8} {v[-1]:>8} {max(v):>8} {v[-1] - v[0]:>+10}")
# Flat means: after the first minute (warm-up), the end is within 10% (RSS) of the sample
# taken at one minute, and the fd count no higher than its maximum then plus a few.
warm = next((r for r in rows if int(r["elapsed_s"]) >= 60), rows[min(1, len(rows) - 1)])
for who in ("api", "worker"):
    r0, r1 = int(warm[f"{who}_rss_kb"]), int(rows[-1][f"{who}_rss_kb"])
    f0, f1 = int(warm[f"{who}_fds"]), int(rows[-1][f"{who}_fds"])
    growth = (r1 - r0) / r0 * 100 if r0 else 0.0
    print(f"{who}: RSS after warm-up {r0} kB -> {r1} kB ({growth:+.1f}%), fds {f0} -> {f1}")
EOF
