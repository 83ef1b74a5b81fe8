#!/usr/bin/env bash
# Where the time goes under the e2e load: `perf record` on celeriac-api, celeriac-worker and
# redis-server (release build, private Redis) while httpbench.py runs only its e2e phase.
#
#   bench/profile.sh [E2E_N]     (default 40000; needs perf, a release build, the bench venv)
#   NO_PERF=1 bench/profile.sh   only the e2e phase and CPU seconds per process (A/B runs)
#   PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 bench/profile.sh
#                                LD_PRELOAD for the API and the worker (try another malloc)
#   FLAME=1 BIN=target/profiling/release bench/profile.sh
#                                also call graphs and flamegraphs ({api,worker}.svg; needs
#                                inferno: `cargo install inferno`) from binaries with line
#                                tables, built apart so the release build stays as it is:
#                                CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
#                                  CARGO_TARGET_DIR=target/profiling cargo build --release --bins
#
# Writes bench/results/profile-<stamp>/{api,worker,redis}.perf.data and .txt (flat profile by
# symbol, then by shared object) and the harness output. Symbols come from the release
# binaries' symbol table (no debug info needed); without FLAME call graphs are not recorded.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SHARED="${SHARED_DIR:-$ROOT/../shared}"
BIN="${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release}"
N="${1:-40000}"
if [ -z "${PY:-}" ]; then  # the bench venv run.sh made (uvloop), else the system python
  PY=python3
  for p in "${BENCH_CACHE:-$HOME/.cache/celeriac-bench}"/venv-*/bin/python; do [ -x "$p" ] && PY="$p" && break; done
fi
OUT="$HERE/results/profile-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
read -r RP AP <<< "$(python3 "$HERE/helper.py" freeports 2)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --dir "$OUT" > "$OUT/redis.log" 2>&1 &
RPID=$!; PIDS+=("$RPID")
sleep 0.5
export RUST_LOG="${RUST_LOG:-warn}" CELERIAC_BROKER_URL="redis://127.0.0.1:$RP" CELERIAC_NAMESPACE=celeriac
CELERIAC_HOST=127.0.0.1 PORT="$AP" CELERIAC_AUTH="${CELERIAC_AUTH:-off}" LD_PRELOAD="${PRELOAD:-}" "$BIN/celeriac-api" > "$OUT/api.log" 2>&1 &
APID=$!; PIDS+=("$APID")
LD_PRELOAD="${PRELOAD:-}" "$BIN/celeriac-worker" --concurrency "${WORKER_CONCURRENCY:-16}" --queues default > "$OUT/worker.log" 2>&1 &
WPID=$!; PIDS+=("$WPID")
python3 "$HERE/helper.py" ready "http://127.0.0.1:$AP" 60 "$APID" "$WPID" "$RPID"
for t in api:$APID worker:$WPID redis:$RPID; do
  [ "${NO_PERF:-0}" = 1 ] && break
  # DWARF call graphs for our binaries (Rust keeps no frame pointers); Redis flat only.
  graph=()
  [ "${FLAME:-0}" = 1 ] && [ "${t%%:*}" != redis ] && graph=(--call-graph "dwarf,16384")
  perf record -F "${FREQ:-999}" "${graph[@]}" -o "$OUT/${t%%:*}.perf.data" -p "${t#*:}" > "$OUT/${t%%:*}.perf.log" 2>&1 &
  PIDS+=("$!")
done
sleep 1
"$PY" "$SHARED/bench/httpbench.py" --base-url "http://127.0.0.1:$AP" --phases b --e2e-n "$N" \
  --pids "api=$APID,worker=$WPID,redis=$RPID" > "$OUT/httpbench.json" 2> "$OUT/httpbench.log"
for p in "${PIDS[@]:3}"; do kill -INT "$p" 2>/dev/null || true; done
sleep 2
for t in api worker redis; do
  [ "${NO_PERF:-0}" = 1 ] && break
  # Flat (-g none even when call graphs were recorded); sed, not head, reads to the end
  # (no SIGPIPE for pipefail).
  { perf report -i "$OUT/$t.perf.data" --no-children -g none --sort symbol --percent-limit 0.7 --stdio 2>/dev/null | grep -v '^#' | sed '/^$/d'
    echo "--- by shared object"
    perf report -i "$OUT/$t.perf.data" --no-children -g none --sort dso --stdio 2>/dev/null | grep -v '^#' | sed '/^$/d' | sed -n 1,12p
  } > "$OUT/$t.txt"
  echo "== $t"; head -40 "$OUT/$t.txt"
  if [ "${FLAME:-0}" = 1 ] && [ "$t" != redis ]; then
    perf script -i "$OUT/$t.perf.data" 2>/dev/null | inferno-collapse-perf > "$OUT/$t.folded"
    inferno-flamegraph --minwidth 1 --title "celeriac-$t under the e2e load" < "$OUT/$t.folded" > "$OUT/$t.svg"
    echo "flamegraph: $OUT/$t.svg"
  fi
done
python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().splitlines()[-1]); n=d["e2e"]["n"] if "e2e" in d and "n" in d["e2e"] else int(sys.argv[2]); c=d.get("cpu_s",{}).get("e2e",{})
print("e2e tasks/s:", d.get("e2e_tasks_per_s"), "| CPU us/task:", {k: round(1e6*c[k]/n, 1) for k in ("api","worker","redis","harness") if k in c}, "| rss_kb peak:", {g: v.get("peak_sampled") for g, v in d.get("rss_kb",{}).items()}, "| other CPU s:", c.get("other"))' "$OUT/httpbench.json" "$N"
echo "profile in $OUT" >&2
