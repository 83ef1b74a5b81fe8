#!/usr/bin/env bash
# .ci/fuzz-checks.sh: schemathesis against the running API's /openapi.json.
#
#   bash .ci/fuzz-checks.sh
#
# Builds the binaries (debug), starts a private redis-server on a free port, the API and
# a worker, seeds a finished, a failed and a waiting task and a workflow (so the
# operations on ids reach real records), then runs schemathesis (PyPI, pinned, in a venv
# under ~/.cache/celeriac-ci/) bounded: FUZZ_MAX_EXAMPLES (50) examples per operation
# and phase, each run killed after FUZZ_RUN_SECS (240).
#
# Gating checks, per operation: no 5xx, and no answer that violates the spec (status
# code, content type, headers, body schema). The other checks of schemathesis
# (negative data rejected, schema-valid data accepted, undeclared methods) are printed
# as advisory notes under the operation.
#
# Runs once without a token (CELERIAC_AUTH=off), and once with a bearer token when
# `celeriac-api --help` names CELERIAC_API_TOKENS. Prints PASS/FAIL per operation and
# run, and ends with "N passed, N failed"; exits 1 if any failed.
set -uo pipefail
# shellcheck source=.ci/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

readonly ST_VERSION=4.32.5
readonly CI_TOKEN=ci-fuzz-token-0123456789abcdefgh # 32 characters, test only
readonly GATING=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
max_examples=${FUZZ_MAX_EXAMPLES:-50}
run_secs=${FUZZ_RUN_SECS:-240}
st_venv=$ci_cache/schemathesis-venv
cd "$ci_repo" || exit 1

# ---------------------------------------------------------------- tools

setup_schemathesis() {
	local stamp=$st_venv/.celeriac-st
	if [[ -x $st_venv/bin/st && -f $stamp && $(<"$stamp") == "$ST_VERSION" ]]; then
		return 0
	fi
	mkdir -p "$ci_cache"
	if ! python3 -m venv "$st_venv" >"$ci_work/st-venv.log" 2>&1; then
		rm -rf "$st_venv"
		apt_install python3-venv || true
		python3 -m venv "$st_venv" >"$ci_work/st-venv.log" 2>&1 || {
			cat "$ci_work/st-venv.log"
			return 1
		}
	fi
	"$st_venv/bin/python" -m pip install -q --disable-pip-version-check "schemathesis==$ST_VERSION" \
		>"$ci_work/st-pip.log" 2>&1 || {
		tail -n 30 "$ci_work/st-pip.log"
		return 1
	}
	printf '%s' "$ST_VERSION" >"$stamp"
}

# seed BASE [TOKEN]: enqueue the records the id operations are pointed at; prints a schemathesis
# config (TOML) that fixes each operation's id to one of them.
seed() {
	"$st_venv/bin/python" - "$1" "${2:-}" <<'EOF'
import json, sys, urllib.error, urllib.request
base, token = sys.argv[1], sys.argv[2]
def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)
done = call("POST", "/tasks", {"name": "add", "args": [2, 3]})["task_id"]
failed = call("POST", "/tasks", {"name": "fail", "args": {"message": "on purpose"}})["task_id"]
deletable = call("POST", "/tasks", {"name": "noop"})["task_id"]
# No worker consumes this queue: the task waits, so cancel has something to cancel.
waiting = call("POST", "/tasks", {"name": "noop", "queue": "fuzz-idle", "countdown": 3600})["task_id"]
wf = call("POST", "/workflows", {"type": "chain", "tasks": [{"name": "add", "args": [1, 2]}, {"name": "fail"}]})["workflow_id"]
# A schedule far from due, for the schedule operations (an API without schedules skips it).
sched = None
try:
    sched = call("POST", "/schedules", {"name": "fuzz-hourly", "task": "noop", "every": 3600})["name"]
    doomed = call("POST", "/schedules", {"name": "fuzz-doomed", "task": "noop", "every": 3600})["name"]
except urllib.error.HTTPError as e:
    if e.code not in (404, 405):
        raise
for t in (done, failed, deletable):
    call("GET", f"/tasks/{t}?wait=20")
call("GET", f"/workflows/{wf}?wait=20")
# GET reads a task nothing resubmits: a retried one may queue behind fuzzed `sleep`s,
# and a `?wait=` on it would outlast the request timeout.
ops = [("GET", "/tasks/{task_id}", "task_id", done), ("DELETE", "/tasks/{task_id}", "task_id", deletable),
       ("POST", "/tasks/{task_id}/cancel", "task_id", waiting), ("POST", "/tasks/{task_id}/retry", "task_id", failed),
       ("GET", "/workflows/{workflow_id}", "workflow_id", wf)]
# Task names the workers know, so that schema-valid bodies also reach the engine.
print('[dictionaries.tasks]\nvalues = ["add", "noop", "echo", "sleep", "fail"]\n')
print('[parameters]\n"body.name" = { dictionary = "tasks", probability = 0.7 }')
print('"body.tasks[*].name" = { dictionary = "tasks", probability = 0.7 }')
print('"body.callback.name" = { dictionary = "tasks", probability = 0.7 }\n')
if sched:
    ops += [(m, "/schedules/{name}" + tail, "name", sched)
            for m, tail in (("GET", ""), ("POST", "/pause"), ("POST", "/resume"), ("POST", "/run"))]
    ops.append(("DELETE", "/schedules/{name}", "name", doomed))
for method, path, name, value in ops:
    print(f'[[operations]]\ninclude-name = "{method} {path}"\nparameters = {{ "{name}" = "{value}" }}\n')
EOF
}

# ---------------------------------------------------------------- the stack

# start_stack NAME [ENV=VALUE...]: redis-server, API (with the given env) and worker;
# sets $api_base. Returns 1 if any of them does not come up.
start_stack() {
	local name=$1 rport aport hport
	shift
	start_redis "$name" "$ci_work/$name-redis" rport && free_port aport && free_port hport || return 1
	local redis_url=redis://127.0.0.1:$rport
	start "celeriac-api ($name)" "$ci_work/$name-api.log" \
		env CELERIAC_BROKER_URL="$redis_url" PORT="$aport" RUST_LOG=warn "$@" "$bin_dir/celeriac-api" --host 127.0.0.1
	local api_pid=$last_pid
	start "celeriac-worker ($name)" "$ci_work/$name-worker.log" \
		env CELERIAC_BROKER_URL="$redis_url" RUST_LOG=warn "$bin_dir/celeriac-worker" --concurrency 4 --health-port "$hport"
	local worker_pid=$last_pid
	api_base=http://127.0.0.1:$aport
	if ! wait_http "$api_base/healthz" 30 "$api_pid"; then
		show_log "$ci_work/$name-api.log"
		return 1
	fi
	wait_http "http://127.0.0.1:$hport/healthz" 30 "$worker_pid" || {
		show_log "$ci_work/$name-worker.log"
		return 1
	}
}

# fuzz NAME TOKEN [schemathesis args...]: one bounded schemathesis run; PASS/FAIL per operation.
fuzz() {
	local name=$1 token=$2 rc=0 out=$ci_work/${1// /-}
	shift 2
	mkdir -p "$out"
	if ! seed "$api_base" "$token" >"$out/schemathesis.toml" 2>"$out/seed.log"; then
		fail "$name: seed records through the API" "$(tail -n 20 "$out/seed.log")"
		return 1
	fi
	say "      schemathesis $ST_VERSION: $max_examples examples per operation and phase, at most ${run_secs}s"
	# In $out, where schemathesis leaves its .schemathesis/ cache. GET /events is a
	# never-ending SSE stream (tested in tests/it/ops.rs), so it is left out.
	(cd "$out" && exec timeout --kill-after=10 "$run_secs" "$st_venv/bin/st" --config-file "$out/schemathesis.toml" run \
		"$api_base/openapi.json" --exclude-path /events --checks all --continue-on-failure -n "$max_examples" \
		--phases examples,coverage,fuzzing -w 1 --seed "${FUZZ_SEED:-1}" --no-color \
		--request-timeout 10 --generation-database none --report ndjson --report-ndjson-path "$out/report.ndjson" "$@" \
		>"$out/st.log" 2>&1) || rc=$?
	if ((rc == 124 || rc == 137)); then
		fail "$name: schemathesis finished within ${run_secs}s" "$(tail -n 30 "$out/st.log")"
	fi
	if [[ ! -s $out/report.ndjson ]]; then
		fail "$name: schemathesis ran" "$(tail -n 30 "$out/st.log")"
		return 1
	fi
	sed -n '/^Test cases:/,/^$/p' "$out/st.log" | sed 's/^/      /'
	local status op cases detail
	while IFS=$'\t' read -r status op cases detail; do
		if [[ $status == pass ]]; then
			pass "$name: $op ($cases)"
			[[ ! -s $detail ]] || sed 's/^/      /' "$detail"
		else
			fail "$name: $op ($cases)" "$(cat "$detail")"
		fi
	done < <("$st_venv/bin/python" "$ci_repo/.ci/fuzz_report.py" "$out/report.ndjson" "$out/details" "$GATING")
}

# ---------------------------------------------------------------- run

section "build (debug)"
if cargo build --bins --locked >"$ci_work/build.log" 2>&1; then
	pass "cargo build --bins"
else
	fail "cargo build --bins" "$(tail -n 30 "$ci_work/build.log")"
	ci_summary "fuzz checks"
	exit 1
fi
bin_dir=${CARGO_TARGET_DIR:-$ci_repo/target}/debug
[[ $bin_dir == /* ]] || bin_dir=$ci_repo/$bin_dir

section "schemathesis"
if ! command -v redis-server >/dev/null 2>&1; then
	fail "redis-server installed" "see .ci/run, which installs it"
elif ! setup_schemathesis; then
	fail "schemathesis $ST_VERSION installed in $st_venv"
else
	if start_stack open CELERIAC_AUTH=off; then
		fuzz "no token" ""
	else
		fail "no token: API and worker start"
	fi
	if "$bin_dir/celeriac-api" --help 2>&1 | grep -q CELERIAC_API_TOKENS; then
		if start_stack token CELERIAC_API_TOKENS="$CI_TOKEN:admin"; then
			fuzz "token" "$CI_TOKEN" -H "Authorization: Bearer $CI_TOKEN"
		else
			fail "token: API and worker start"
		fi
	else
		skip "token run" "celeriac-api --help does not name CELERIAC_API_TOKENS yet"
	fi
fi

ci_summary "fuzz checks"
