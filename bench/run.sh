#!/usr/bin/env bash
# celeriac benchmark (issue 13): celeriac (release build) against the reference Flask + Celery
# + Redis stack over HTTP, in the same run, with the same harness (../shared/bench/httpbench.py);
# then the engine phases (bench/engine.py): drain against BullMQ, batch enqueue, idle, Redis
# memory, growth, worker scaling, Redis cost per task. Writes bench/results/<UTC timestamp>/
# report.{json,md} (bench/results/latest points to the last run); prints report.json as one
# JSON line on stdout; progress and the Markdown table go to stderr.
#
#   bench/run.sh [--no-build] [--celeriac-only | --reference-only] [--runs N] [--quick]
#                [--phases http,drain,bullmq,batch,idle,redismem,growth,scale,cost]
#
# Options (each also as an env var):
#   --no-build        NO_BUILD=1        use target/release as it is (no cargo build)
#   --celeriac-only   CELERIAC_ONLY=1   skip the Celery reference (ratio is null)
#   --reference-only  REFERENCE_ONLY=1  only the Celery reference (no build)
#   --runs N          RUNS=N            N runs per target, each on a fresh stack, interleaved
#                                       (celeriac 1, reference 1, celeriac 2, ...); medians
#   --quick           QUICK=1           short phases (smoke test; numbers not comparable)
#   --phases LIST     PHASES=LIST       a subset (default: all). http = the httpbench phases
#                                       (enqueue, e2e, latency, GET, RSS) for both targets;
#                                       the others are bench/engine.py's (see its --help)
# Other env knobs:
#   WORKER_CONCURRENCY (16)   celeriac-worker --concurrency
#   LONGPOLL_S (5)            celeriac latency phase uses GET ?wait=<s>; 0 = short polls
#   QUIET_WAIT_S (60; QUICK 0) harness waits up to this long for an idle host per run
#   SETTLE_S (3)              idle seconds between a stack's start and the harness
#   HARNESS_ARGS              extra httpbench.py options for both targets (word-split)
#   BENCH_CACHE (~/.cache/celeriac-bench)  where the reference's venv lives
#   BENCH_VENV                use this venv instead (e.g. bench/.venv)
#   SKIP_INSTALL=1            do not apt-get / pip install anything
#   RESULTS_DIR               where raw outputs go (default bench/results/<timestamp>)
#   SHARED_DIR                the shared/ checkout (default <repo>/../shared)
#   ENGINE_ARGS               extra bench/engine.py run options (word-split), e.g. --idle-s 10
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/.." && pwd))"
SHARED="${SHARED_DIR:-$ROOT/../shared}"
HB="$SHARED/bench/httpbench.py"
SUMMARIZE="$SHARED/bench/summarize.py"
STACK="$SHARED/bench/celery/stack.sh"
LOCK="$SHARED/bench/celery/requirements.lock.txt"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

NO_BUILD="${NO_BUILD:-0}"
CELERIAC_ONLY="${CELERIAC_ONLY:-0}"
REFERENCE_ONLY="${REFERENCE_ONLY:-0}"
RUNS="${RUNS:-1}"
QUICK="${QUICK:-0}"
ALL_PHASES=http,drain,bullmq,batch,idle,redismem,growth,scale,cost
PHASES="${PHASES:-$ALL_PHASES}"
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) NO_BUILD=1 ;;
    --celeriac-only) CELERIAC_ONLY=1 ;;
    --reference-only) REFERENCE_ONLY=1 ;;
    --runs) RUNS="${2:?--runs needs a number}"; shift ;;
    --runs=*) RUNS="${1#--runs=}" ;;
    --quick) QUICK=1 ;;
    --phases) PHASES="${2:?--phases needs a list}"; shift ;;
    --phases=*) PHASES="${1#--phases=}" ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$RUNS" in ''|*[!0-9]*|0) echo "RUNS must be a positive integer" >&2; exit 2 ;; esac
if [ "$CELERIAC_ONLY" = 1 ] && [ "$REFERENCE_ONLY" = 1 ]; then
  echo "--celeriac-only and --reference-only exclude each other" >&2; exit 2
fi
for p in ${PHASES//,/ }; do
  case ",$ALL_PHASES," in *",$p,"*) ;; *) echo "unknown phase: $p (known: $ALL_PHASES)" >&2; exit 2 ;; esac
done
has_phase() { case ",$PHASES," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
ENGINE_PHASES="$(echo "${PHASES//,/ }" | tr ' ' '\n' | grep -vx http | paste -sd, - || true)"
DO_CELERIAC=1; DO_REFERENCE=1
[ "$REFERENCE_ONLY" = 1 ] && DO_CELERIAC=0
[ "$CELERIAC_ONLY" = 1 ] && DO_REFERENCE=0
if ! has_phase http; then DO_REFERENCE=0; fi
DO_HTTP_CELERIAC=$DO_CELERIAC
has_phase http || DO_HTTP_CELERIAC=0
[ -z "$ENGINE_PHASES" ] || [ "$REFERENCE_ONLY" = 1 ] || DO_CELERIAC=1

WORKER_CONCURRENCY="${WORKER_CONCURRENCY:-16}"
LONGPOLL_S="${LONGPOLL_S:-5}"
SETTLE_S="${SETTLE_S:-3}"
if [ "$QUICK" = 1 ]; then
  QUIET_WAIT_S="${QUIET_WAIT_S:-0}"
  PHASE_ARGS=(--enqueue-duration 2 --e2e-n 500 --lat-duration 2 --get-duration 2)
  QUICK_ENGINE_ARGS=(--drain-n 2000 --batch-n 5000 --idle-s 3 --mem-n 5000 --growth-depth 5000 --scale-n 2000)
else
  QUIET_WAIT_S="${QUIET_WAIT_S:-60}"
  PHASE_ARGS=(--e2e-n 20000)  # issue 13: e2e is 20,000 noop
  QUICK_ENGINE_ARGS=()
fi
read -r -a EXTRA_ARGS <<< "${HARNESS_ARGS:-}"
COMMON_ARGS=(--quiet-wait-s "$QUIET_WAIT_S" --quiet-seconds 3 "${PHASE_ARGS[@]}" "${EXTRA_ARGS[@]}")

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${RESULTS_DIR:-$HERE/results/$STAMP}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
if [ -z "${RESULTS_DIR:-}" ]; then ln -sfn "$STAMP" "$HERE/results/latest"; fi
: > "$OUT/warnings.txt"
T_START=$SECONDS

log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }
warn() { log "WARNING: $*"; echo "$*" >> "$OUT/warnings.txt"; }
die() { log "ERROR: $*"; exit 1; }

running() {  # pid exists and is not a zombie
  local st
  st=$(sed -n 's/^[0-9]* (.*) \([A-Z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

stop_pid() {  # pid name seconds: TERM, wait, KILL; returns 1 if KILL was needed
  local pid=$1 name=$2 secs=$3 i
  [ -n "$pid" ] || return 0
  running "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    running "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  log "$name ($pid) did not exit ${secs}s after SIGTERM: sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return 1
}

# ---------------------------------------------------------------- state + cleanup
API_PID="" WORKER_PID="" REDIS_PID="" HARNESS_PID="" REF_RUN_DIR="" REF_PORTS=()

# shellcheck disable=SC2317  # called from cleanup (trap)
stop_harness() {  # the harness and its children (wrk), by pid
  [ -n "$HARNESS_PID" ] || return 0
  local kids
  kids=$(cat /proc/"$HARNESS_PID"/task/*/children 2>/dev/null || true)
  stop_pid "$HARNESS_PID" httpbench 5 || true
  for k in $kids; do kill -TERM "$k" 2>/dev/null || true; done
  HARNESS_PID=""
}

stop_celeriac() {  # stops what this script started for celeriac; warns on a slow exit
  if [ -n "$API_PID" ]; then
    stop_pid "$API_PID" celeriac-api 10 || warn "celeriac-api did not exit within 10 s of SIGTERM"
  fi
  if [ -n "$WORKER_PID" ]; then
    stop_pid "$WORKER_PID" celeriac-worker 30 || warn "celeriac-worker did not exit within 30 s of SIGTERM"
  fi
  [ -z "$REDIS_PID" ] || stop_pid "$REDIS_PID" redis-server 10 || true
  API_PID="" WORKER_PID="" REDIS_PID=""
}

stop_reference() {
  [ -n "$REF_RUN_DIR" ] || return 0
  RUN_DIR="$REF_RUN_DIR" REDIS_PORT="${REF_PORTS[0]}" API_BIND="127.0.0.1:${REF_PORTS[1]}" \
    bash "$STACK" stop >&2 || true
  REF_RUN_DIR=""
}

# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_harness 2>/dev/null || true
  stop_celeriac 2>/dev/null || true
  stop_reference 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -f "$HB" ] || die "harness not found: $HB (set SHARED_DIR)"

# ---------------------------------------------------------------- install
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_install() {
  log "apt-get install $*"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >&2
}
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-cli >/dev/null || missing+=(redis-tools)
  command -v curl >/dev/null || missing+=(curl)
  command -v python3 >/dev/null || missing+=(python3 python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
fi
for c in wrk redis-server python3; do command -v "$c" >/dev/null || die "$c not found"; done

BENCH_CACHE="${BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/celeriac-bench}"
LOCK_HASH="$(sha256sum "$LOCK" | cut -c1-12)"
VENV="${BENCH_VENV:-$BENCH_CACHE/venv-$LOCK_HASH}"
if [ ! -f "$VENV/.celeriac-bench-ok" ] && [ "${SKIP_INSTALL:-0}" != 1 ]; then
  log "creating the reference venv in $VENV (from $LOCK)"
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  if ! python3 -m venv "$VENV" >&2; then
    rm -rf "$VENV"
    apt_install python3-venv
    python3 -m venv "$VENV" >&2
  fi
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$LOCK" >&2
  touch "$VENV/.celeriac-bench-ok"
fi
if [ -x "$VENV/bin/python" ]; then
  PY="$VENV/bin/python"
else
  PY="python3"
  [ "$DO_REFERENCE" = 0 ] || die "no venv at $VENV (SKIP_INSTALL=1?)"
  warn "no venv at $VENV: harness runs on $(python3 --version 2>&1) without uvloop"
fi
HELPER=("$PY" "$HERE/helper.py")

# ---------------------------------------------------------------- build
BUILD_S=null
API_BIN="$TARGET_DIR/release/celeriac-api"
WORKER_BIN="$TARGET_DIR/release/celeriac-worker"
if [ "$DO_CELERIAC" = 1 ]; then
  if [ "$NO_BUILD" != 1 ]; then
    log "cargo build --release --locked (in $ROOT)"
    t=$SECONDS
    (cd "$ROOT" && cargo build --release --locked --bins --example batch_enqueue) >&2 || die "cargo build failed"
    BUILD_S=$((SECONDS - t))
  fi
  for b in "$API_BIN" "$WORKER_BIN"; do [ -x "$b" ] || die "$b not found (build first, or drop --no-build)"; done
fi

# ---------------------------------------------------------------- one run per target
dump_logs() {  # files...: last lines of each to stderr
  local f
  for f in "$@"; do
    [ -f "$f" ] || continue
    log "--- tail of $f"
    tail -n 20 "$f" >&2 || true
  done
}

harness() {  # label outfile harness-args...
  local label=$1 out=$2; shift 2
  log "$label: $PY httpbench.py $*"
  # in the background + wait, so that a signal stops us at once (the trap kills it)
  "$PY" "$HB" --label "$label" "$@" > "$out" 2> >(tee "${out%.json}.log" >&2) &
  HARNESS_PID=$!
  local rc=0
  wait "$HARNESS_PID" || rc=$?
  HARNESS_PID=""
  if [ "$rc" = 0 ] && [ -s "$out" ]; then return 0; fi
  warn "$label: harness failed (see ${out%.json}.log)"
  mv -f "$out" "${out%.json}.failed" 2>/dev/null || true
  return 1
}

OK_CELERIAC=0 OK_REFERENCE=0
LONGPOLL_USED=()

run_celeriac() {  # run index
  local i=$1 d="$OUT/celeriac-$1" rport aport base lp probe
  mkdir -p "$d"
  read -r rport aport <<< "$("${HELPER[@]}" freeports 2)"
  base="http://127.0.0.1:$aport"
  log "celeriac run $i: redis :$rport, api :$aport, worker concurrency $WORKER_CONCURRENCY (logs in $d)"
  redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$d" \
    > "$d/redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 1 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
  export RUST_LOG="${RUST_LOG:-warn}"
  CELERIAC_BROKER_URL="redis://127.0.0.1:$rport" CELERIAC_NAMESPACE=celeriac \
    CELERIAC_HOST=127.0.0.1 PORT="$aport" CELERIAC_AUTH="${CELERIAC_AUTH:-off}" \
    "$API_BIN" > "$d/api.log" 2>&1 &
  API_PID=$!
  CELERIAC_BROKER_URL="redis://127.0.0.1:$rport" CELERIAC_NAMESPACE=celeriac \
    CELERIAC_CONCURRENCY="$WORKER_CONCURRENCY" \
    "$WORKER_BIN" --concurrency "$WORKER_CONCURRENCY" --queues default > "$d/worker.log" 2>&1 &
  WORKER_PID=$!
  if ! "${HELPER[@]}" ready "$base" 60 "$API_PID" "$WORKER_PID" "$REDIS_PID"; then
    warn "celeriac run $i: did not become ready (60 s limit; api alive: $(running "$API_PID" && echo yes || echo no), worker alive: $(running "$WORKER_PID" && echo yes || echo no)); logs in $d"
    dump_logs "$d/api.log" "$d/worker.log"
    stop_celeriac
    return 1
  fi
  lp=$LONGPOLL_S
  if [ "$lp" != 0 ]; then
    probe=$("${HELPER[@]}" probe-longpoll "$base" "$lp")
    log "celeriac run $i: long-poll probe: $probe"
    case "$probe" in
      ok*) ;;
      ignored*) warn "celeriac run $i: GET ?wait=$lp was not honoured ($probe); the harness short-polls then" ;;
      *) warn "celeriac run $i: long-poll misbehaved ($probe): latency phase falls back to short polls every 5 ms"
         lp=0 ;;
    esac
  fi
  LONGPOLL_USED+=("$lp")
  sleep "$SETTLE_S"
  local rc=0
  harness "celeriac-$i" "$OUT/celeriac-$i.json" --base-url "$base" \
    --pids "api=$API_PID,worker=$WORKER_PID,redis=$REDIS_PID" --longpoll-s "$lp" \
    "${COMMON_ARGS[@]}" || rc=1
  running "$API_PID" || warn "celeriac run $i: celeriac-api died during the run (see $d/api.log)"
  running "$WORKER_PID" || warn "celeriac run $i: celeriac-worker died during the run (see $d/worker.log)"
  stop_celeriac
  [ "$rc" = 0 ] && OK_CELERIAC=$((OK_CELERIAC + 1))
  return 0
}

run_reference() {  # run index
  local i=$1 d="$OUT/reference-$1" pids rc=0
  read -r -a REF_PORTS <<< "$("${HELPER[@]}" freeports 2)"
  REF_RUN_DIR="$d"
  log "reference run $i: celery stack, redis :${REF_PORTS[0]}, api :${REF_PORTS[1]} (logs in $d)"
  # PYTHONDONTWRITEBYTECODE: shared/ is read-only for us (no __pycache__ in it)
  if ! env -u CELERY_BROKER_URL -u CELERY_RESULT_BACKEND PYTHONDONTWRITEBYTECODE=1 \
      RUN_DIR="$d" REDIS_PORT="${REF_PORTS[0]}" API_BIND="127.0.0.1:${REF_PORTS[1]}" \
      API_WORKERS=2 CELERY_CONCURRENCY=2 CELERY_LOGLEVEL=WARNING VENV="$VENV" \
      bash "$STACK" start >&2; then
    warn "reference run $i: stack.sh start failed; logs in $d"
    dump_logs "$d/gunicorn.log" "$d/celery.log" "$d/redis.log"
    stop_reference
    return 1
  fi
  pids=$(RUN_DIR="$d" bash "$STACK" pids)
  sleep "$SETTLE_S"
  harness "reference-$i" "$OUT/reference-$i.json" --base-url "http://127.0.0.1:${REF_PORTS[1]}" \
    --pids "$pids" "${COMMON_ARGS[@]}" || rc=1
  stop_reference
  [ "$rc" = 0 ] && OK_REFERENCE=$((OK_REFERENCE + 1))
  return 0
}

[ "$QUICK" = 1 ] && warn "QUICK=1: short phases (2 s, e2e 500 tasks): a smoke test, not comparable to full runs"
for i in $(seq 1 "$RUNS"); do
  [ "$DO_HTTP_CELERIAC" = 1 ] && { run_celeriac "$i" || true; }
  [ "$DO_REFERENCE" = 1 ] && { run_reference "$i" || true; }
done

# ---------------------------------------------------------------- summarize + report
summarize() {  # target
  local files
  files=$(find "$OUT" -maxdepth 1 -name "$1-[0-9]*.json" | sort -V)
  [ -n "$files" ] || return 0
  # shellcheck disable=SC2086
  python3 "$SUMMARIZE" $files > "$OUT/$1-summary.json"
  # shellcheck disable=SC2086
  python3 "$SUMMARIZE" --markdown $files > "$OUT/$1-summary.md"
}
[ "$DO_HTTP_CELERIAC" = 1 ] && summarize celeriac
[ "$DO_REFERENCE" = 1 ] && summarize reference

GIT_REV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
[ -z "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ] || GIT_REV="$GIT_REV+dirty"
meta() {  # key=string | key:=json ...
  python3 - "$OUT/meta.json" "$OUT/warnings.txt" "$@" <<'PY'
import json, sys
out, wfile, *kv = sys.argv[1:]
d = {}
for item in kv:
    k, v = item.split("=", 1)
    if k.endswith(":"):
        d[k[:-1]] = json.loads(v)
    else:
        d[k] = v
with open(wfile) as f:
    d["warnings"] = [ln.rstrip("\n") for ln in f if ln.strip()]
with open(out, "w") as f:
    json.dump(d, f, indent=1)
PY
}
lp_json="[$(IFS=,; echo "${LONGPOLL_USED[*]-}")]"
meta results_dir="$OUT" started_utc="$STAMP" celeriac_git="$GIT_REV" \
  runs:="$RUNS" runs_ok:="{\"celeriac\": $OK_CELERIAC, \"reference\": $OK_REFERENCE}" \
  quick:="$([ "$QUICK" = 1 ] && echo true || echo false)" \
  worker_concurrency:="$WORKER_CONCURRENCY" longpoll_s_used:="$lp_json" \
  reference_stack="gunicorn 2 sync workers + celery prefork concurrency 2 + redis" \
  harness_args="${COMMON_ARGS[*]}" build_s:="$BUILD_S" wall_s:="$((SECONDS - T_START))" \
  stats="median over runs; e2e_lost: max over runs" phases="$PHASES" \
  e2e_n:="$( [ "$QUICK" = 1 ] && echo 500 || echo 20000 )"
"${HELPER[@]}" combine "$OUT" > /dev/null

# ---------------------------------------------------------------- engine phases
ENGINE_RC=0
if [ -n "$ENGINE_PHASES" ] && [ "$DO_CELERIAC" = 1 ]; then
  BULLMQ_DIR=""
  if has_phase bullmq; then
    # BullMQ's harness with its packages in a cache folder: ../shared stays untouched
    BSRC="$SHARED/bench/bullmq"
    BULLMQ_DIR="$BENCH_CACHE/bullmq-$(cat "$BSRC/package.json" "$BSRC/package-lock.json" | sha256sum | cut -c1-12)"
    if [ ! -f "$BULLMQ_DIR/.celeriac-bench-ok" ] && [ "${SKIP_INSTALL:-0}" != 1 ]; then
      command -v npm >/dev/null || die "npm not found (needed for the bullmq phase)"
      log "installing BullMQ's harness into $BULLMQ_DIR (npm install)"
      mkdir -p "$BULLMQ_DIR"
      cp "$BSRC"/{package.json,package-lock.json,bench.mjs,worker.mjs} "$BULLMQ_DIR/"
      chmod u+w "$BULLMQ_DIR"/*
      (cd "$BULLMQ_DIR" && npm install --no-audit --no-fund >&2) || die "npm install failed"
      touch "$BULLMQ_DIR/.celeriac-bench-ok"
    fi
  fi
  read -r -a ENGINE_EXTRA <<< "${ENGINE_ARGS:-}"
  log "engine phases: $ENGINE_PHASES ($RUNS runs where repeated)"
  "$PY" "$HERE/engine.py" run --out "$OUT" --phases "$ENGINE_PHASES" --runs "$RUNS" \
    --bin-dir "$TARGET_DIR/release" --bullmq-dir "$BULLMQ_DIR" \
    --worker-concurrency "$WORKER_CONCURRENCY" "${QUICK_ENGINE_ARGS[@]}" "${ENGINE_EXTRA[@]}" || ENGINE_RC=1
fi
"$PY" "$HERE/engine.py" report "$OUT" >&2
python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), separators=(",", ":")))' "$OUT/report.json"
log "raw outputs: $OUT (result.json, <target>-<i>.json/.log, <target>-summary.{json,md}, per-run logs)"

rc=0
[ "$DO_HTTP_CELERIAC" = 0 ] || [ "$OK_CELERIAC" -gt 0 ] || rc=1
[ "$DO_REFERENCE" = 0 ] || [ "$OK_REFERENCE" -gt 0 ] || rc=1
[ "$ENGINE_RC" = 0 ] || rc=1
exit "$rc"
