#!/usr/bin/env bash
# .ci/smoke-checks.sh: the roles of entrypoint.sh, run for real on this host.
#
#   bash .ci/smoke-checks.sh
#
# 1. Dispatch contract, with stub binaries that print their argv: each role execs the
#    right binary with the right arguments (api, worker --beat, beat -> --beat-only,
#    inspect, tasks, pass-through, flags only, $CELERIAC_ROLE, dev -> scripts/dev.sh).
# 2. The real binaries from target/release (built with cargo when missing) against a
#    private redis-server: `api` and `worker --health-port` answer their health checks,
#    `entrypoint.sh healthcheck` works for both, the entrypoint exec'd (same pid), a task
#    round-trips, and each exits 0 on SIGTERM in time. `beat` the same way once
#    celeriac-worker has --beat-only (skipped before).
# 3. `dev` in a fresh directory: it runs `cargo build --release` first (a no-op here), its
#    own Redis with data in ./.celeriac-dev, CELERIAC_AUTH=off for its API, health, the
#    printed URL, a round trip without a token, exit 0 on SIGTERM with no child left; and
#    with CELERIAC_BROKER_URL set it starts no Redis.
#
# Auth: the API under test gets CELERIAC_API_TOKENS (a 32-character test token with the
# admin scope) and every request carries it as a bearer token. A binary without auth
# ignores both, so the checks pass before and after auth lands; once `celeriac-api
# --help` names CELERIAC_API_TOKENS, a request without the token must get 401.
#
# No Docker engine here, so the image itself is not built; see docs/deployment.md.
# Prints PASS/FAIL per check and ends with "N passed, N failed"; exits 1 if any failed.
set -uo pipefail
# shellcheck source=.ci/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

repo=$ci_repo
readonly CI_TOKEN=ci-smoke-token-0123456789abcdef # 32 characters, test only

ensure_binaries() {
	local dir=${CARGO_TARGET_DIR:-$repo/target}/release
	[[ $dir == /* ]] || dir=$repo/$dir
	bin_dir=$dir
	if [[ -x $dir/celeriac-api && -x $dir/celeriac-worker ]]; then
		return 0
	fi
	say "      binaries missing in $dir: cargo build --release --locked"
	(cd "$repo" && cargo build --release --locked) >"$ci_work/cargo-build.log" 2>&1 || {
		tail -n 40 "$ci_work/cargo-build.log"
		return 1
	}
	[[ -x $dir/celeriac-api && -x $dir/celeriac-worker ]]
}

ensure_redis() {
	command -v redis-server >/dev/null 2>&1 || apt_install redis-server || true
	command -v redis-server >/dev/null 2>&1
}

expect_exe() {
	local exe
	exe=$(exe_of "$2")
	if [[ $exe == */"$3" ]]; then pass "$1"; else fail "$1" "pid $2 runs ${exe:-?}"; fi
}

# service_children PID: child pids of PID, without the transient `sleep` of dev's loop.
service_children() {
	local k out=''
	for k in $(children_of "$1"); do
		[[ $(exe_of "$k") == */sleep ]] || out+=" $k"
	done
	printf '%s' "$out"
}

# wait_for_log FILE PATTERN SECS PID
wait_for_log() {
	local deadline=$(($3 + SECONDS))
	until grep -q -- "$2" "$1" 2>/dev/null; do
		((SECONDS < deadline)) && kill -0 "$4" 2>/dev/null || return 1
		sleep 0.2
	done
}

# env_of PID NAME: the value of NAME in the environment PID started with.
env_of() { tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | sed -n "s/^$2=//p"; }

# ---------------------------------------------------------------- 1. dispatch contract

# expect_argv NAME EXPECTED ENTRYPOINT-ARGS...: the stub binaries print "name args...".
expect_argv() {
	local name=$1 want=$2 out
	shift 2
	out=$(env CELERIAC_BIN_DIR="$ci_work/stubs" "$repo/entrypoint.sh" "$@" 2>&1)
	if [[ $out == "$want" ]]; then pass "$name"; else fail "$name" "want: $want"$'\n'"got:  $out"; fi
}

dispatch_checks() {
	section "dispatch: entrypoint.sh roles (stub binaries print their argv)"
	mkdir -p "$ci_work/stubs"
	local b
	for b in celeriac-api celeriac-worker; do
		printf '#!/bin/sh\necho "%s $*"\n' "$b" >"$ci_work/stubs/$b"
		chmod +x "$ci_work/stubs/$b"
	done
	expect_argv "api -> celeriac-api ARGS" "celeriac-api --port 9" api --port 9
	expect_argv "worker -> celeriac-worker ARGS (--beat passed through)" "celeriac-worker --beat --queues a" worker --beat --queues a
	expect_argv "beat -> celeriac-worker --beat-only ARGS" "celeriac-worker --beat-only --health-port 9" beat --health-port 9
	expect_argv "inspect -> celeriac-api inspect ARGS" "celeriac-api inspect queues" inspect queues
	expect_argv "tasks -> celeriac-api tasks ARGS" "celeriac-api tasks list --status FAILURE" tasks list --status FAILURE
	expect_argv "healthcheck --url -> celeriac-api healthcheck --url" "celeriac-api healthcheck --url http://x/healthz" healthcheck --url http://x/healthz
	expect_argv "flags only -> the api role" "celeriac-api --port 9" --port 9
	expect_argv "CELERIAC_ROLE=beat with no arguments" "celeriac-worker --beat-only" env CELERIAC_ROLE=beat "$repo/entrypoint.sh"
	expect_argv "anything else is executed as given" "hello" echo hello
	local out
	if out=$("$repo/entrypoint.sh" dev --help 2>&1) && [[ $out == *"usage: entrypoint.sh dev"* ]]; then
		pass "dev -> scripts/dev.sh (dev --help)"
	else
		fail "dev -> scripts/dev.sh (dev --help)" "$out"
	fi
	if out=$("$repo/entrypoint.sh" 2>&1); [[ $? == 2 && $out == *usage:* ]]; then
		pass "no role and no CELERIAC_ROLE: usage, exit 2"
	else
		fail "no role and no CELERIAC_ROLE: usage, exit 2" "$out"
	fi
	if out=$(env CELERIAC_BIN_DIR="$ci_work/nowhere" "$repo/entrypoint.sh" api 2>&1); [[ $? != 0 && $out == *"celeriac-api not found"* ]]; then
		pass "a missing binary is a clear error"
	else
		fail "a missing binary is a clear error" "$out"
	fi
}

# ---------------------------------------------------------------- 2. api, worker, beat

roles_checks() {
	local broker=$1 api_port health_port api_pid worker_pid
	section "smoke: entrypoint.sh api and entrypoint.sh worker"
	free_port api_port
	free_port health_port
	start "entrypoint.sh api" "$ci_work/api.log" env PORT="$api_port" CELERIAC_BROKER_URL="$broker" \
		CELERIAC_API_TOKENS="$CI_TOKEN:admin" "$repo/entrypoint.sh" api
	api_pid=$last_pid
	start "entrypoint.sh worker" "$ci_work/worker.log" env CELERIAC_BROKER_URL="$broker" \
		"$repo/entrypoint.sh" worker --health-port "$health_port"
	worker_pid=$last_pid

	if wait_http "http://127.0.0.1:$api_port/healthz" 30 "$api_pid"; then
		pass "api: GET /healthz -> 200"
		expect_http "api: GET /readyz -> 200" "http://127.0.0.1:$api_port/readyz"
		expect_http "api: GET /queues/default -> 200 with \"ready\" (KEDA's figure)" "http://127.0.0.1:$api_port/queues/default" ready
		check "api: celeriac-api healthcheck --url .../healthz" "$bin_dir/celeriac-api" healthcheck --url "http://127.0.0.1:$api_port/healthz"
		check "api: entrypoint.sh healthcheck (PORT=$api_port)" env PORT="$api_port" "$repo/entrypoint.sh" healthcheck
		expect_exe "api: entrypoint.sh exec'd celeriac-api (same pid)" "$api_pid" celeriac-api
		if grep -q CELERIAC_API_TOKENS <<<"$("$bin_dir/celeriac-api" --help 2>&1)"; then
			local out
			out=$(CELERIAC_CI_TOKEN='' http POST "http://127.0.0.1:$api_port/tasks")
			if [[ $out == 401* ]]; then pass "api: POST /tasks without a token -> 401"; else fail "api: POST /tasks without a token -> 401" "${out:0:300}"; fi
		else
			skip "api: POST /tasks without a token -> 401" "celeriac-api has no CELERIAC_API_TOKENS yet"
		fi
	else
		fail "api: GET /healthz -> 200 within 30s"
		show_log "$ci_work/api.log"
	fi
	if wait_http "http://127.0.0.1:$health_port/healthz" 30 "$worker_pid"; then
		pass "worker: GET :$health_port/healthz -> 200"
		expect_http "worker: GET :$health_port/readyz -> 200" "http://127.0.0.1:$health_port/readyz"
		check "worker: entrypoint.sh healthcheck (CELERIAC_HEALTH_PORT=$health_port)" \
			env PORT=1 CELERIAC_HEALTH_PORT="$health_port" "$repo/entrypoint.sh" healthcheck
		expect_exe "worker: entrypoint.sh exec'd celeriac-worker (same pid)" "$worker_pid" celeriac-worker
	else
		fail "worker: GET :$health_port/healthz -> 200 within 30s"
		show_log "$ci_work/worker.log"
	fi
	check_verbose "api + worker: task round trip with the bearer token (POST /tasks -> SUCCESS)" \
		py roundtrip "http://127.0.0.1:$api_port" 30
	stop_and_check "api" "$api_pid" 20 || show_log "$ci_work/api.log"
	stop_and_check "worker" "$worker_pid" $((CELERIAC_GRACE_SECS + 10)) || show_log "$ci_work/worker.log"

	section "smoke: entrypoint.sh beat"
	if ! grep -q -- --beat-only <<<"$("$bin_dir/celeriac-worker" --help 2>&1)"; then
		skip "beat: health, exec, exit 0 on SIGTERM" "celeriac-worker has no --beat-only yet"
		return
	fi
	local beat_port beat_pid
	free_port beat_port
	start "entrypoint.sh beat" "$ci_work/beat.log" env CELERIAC_BROKER_URL="$broker" \
		"$repo/entrypoint.sh" beat --health-port "$beat_port"
	beat_pid=$last_pid
	if wait_http "http://127.0.0.1:$beat_port/healthz" 30 "$beat_pid"; then
		pass "beat: GET :$beat_port/healthz -> 200"
		expect_http "beat: GET :$beat_port/readyz -> 200" "http://127.0.0.1:$beat_port/readyz"
		check "beat: entrypoint.sh healthcheck (CELERIAC_HEALTH_PORT=$beat_port)" \
			env PORT=1 CELERIAC_HEALTH_PORT="$beat_port" "$repo/entrypoint.sh" healthcheck
		expect_exe "beat: entrypoint.sh exec'd celeriac-worker (same pid)" "$beat_pid" celeriac-worker
	else
		fail "beat: GET :$beat_port/healthz -> 200 within 30s"
		show_log "$ci_work/beat.log"
	fi
	stop_and_check "beat" "$beat_pid" $((CELERIAC_GRACE_SECS + 10)) || show_log "$ci_work/beat.log"
}

# ---------------------------------------------------------------- 3. dev

dev_checks() {
	local broker=$1
	# dev needs no token: it turns auth off for its own API.
	local CELERIAC_CI_TOKEN=''
	section "smoke: entrypoint.sh dev (own redis-server, builds first)"
	local dev_dir=$ci_work/dev dev_port dev_pid kids k names='' api_kid=''
	mkdir -p "$dev_dir"
	free_port dev_port
	# No CELERIAC_BIN_DIR and the default build mode: dev runs cargo build --release in
	# this checkout (a no-op: the binaries are current) and takes them from target/release.
	start "entrypoint.sh dev" "$ci_work/dev.log" in_dir "$dev_dir" env -u CELERIAC_BIN_DIR -u CELERIAC_DEV_BUILD \
		PORT="$dev_port" "$repo/entrypoint.sh" dev
	dev_pid=$last_pid
	if wait_http "http://127.0.0.1:$dev_port/readyz" 120 "$dev_pid"; then
		pass "dev: API answers GET /readyz on PORT=$dev_port"
		if grep -q 'cargo build --release' "$ci_work/dev.log"; then
			pass "dev: ran cargo build --release first (source checkout)"
		else
			fail "dev: ran cargo build --release first (source checkout)"
		fi
		expect_http "dev: GET /healthz -> 200" "http://127.0.0.1:$dev_port/healthz"
		# The banner comes once the worker's health port answers too.
		if wait_for_log "$ci_work/dev.log" "curl -X POST http://[0-9.]*:$dev_port/tasks" 30 "$dev_pid"; then
			pass "dev: prints the API URL and a curl example"
		else
			fail "dev: prints the API URL and a curl example"
			show_log "$ci_work/dev.log"
		fi
		check_verbose "dev: task round trip without a token (POST /tasks -> SUCCESS)" py roundtrip "http://127.0.0.1:$dev_port" 30
		if [[ -d $dev_dir/.celeriac-dev ]]; then pass "dev: Redis data in ./.celeriac-dev"; else fail "dev: Redis data in ./.celeriac-dev"; fi
	else
		fail "dev: API answers GET /readyz within 120s"
		show_log "$ci_work/dev.log"
	fi
	kids=$(service_children "$dev_pid")
	read -ra ci_orphans <<<"$kids"
	for k in $kids; do
		names+=" $(basename "$(exe_of "$k")")"
		[[ $(exe_of "$k") != */celeriac-api ]] || api_kid=$k
	done
	if [[ $(wc -w <<<"$kids") == 3 ]]; then
		pass "dev: 3 children:$names"
	else
		fail "dev: 3 children (redis-server, api, worker)" "children:$names"
	fi
	if [[ -n $api_kid && $(env_of "$api_kid" CELERIAC_AUTH) == off ]]; then
		pass "dev: its API runs with CELERIAC_AUTH=off"
	else
		fail "dev: its API runs with CELERIAC_AUTH=off" "api pid ${api_kid:-?}"
	fi
	stop_and_check "dev" "$dev_pid" $((CELERIAC_GRACE_SECS + 30)) || show_log "$ci_work/dev.log"
	local alive='' pid
	for pid in $kids; do kill -0 "$pid" 2>/dev/null && alive+=" $pid"; done
	if [[ -z $alive ]]; then pass "dev: no child left running after it exits"; else fail "dev: no child left running after it exits" "still running:$alive"; fi

	section "smoke: entrypoint.sh dev (CELERIAC_BROKER_URL set)"
	mkdir -p "$ci_work/dev2"
	free_port dev_port
	start "entrypoint.sh dev" "$ci_work/dev2.log" in_dir "$ci_work/dev2" env PORT="$dev_port" CELERIAC_BROKER_URL="$broker" "$repo/entrypoint.sh" dev
	dev_pid=$last_pid
	if wait_http "http://127.0.0.1:$dev_port/readyz" 60 "$dev_pid"; then
		pass "dev+broker: API answers GET /readyz"
		kids=$(service_children "$dev_pid")
		read -ra more <<<"$kids"
		ci_orphans+=("${more[@]}")
		local has_redis=0
		for k in $kids; do [[ $(exe_of "$k") != *redis* ]] || has_redis=1; done
		if ((has_redis == 0)) && [[ ! -d $ci_work/dev2/.celeriac-dev ]]; then
			pass "dev+broker: no redis-server started"
		else
			fail "dev+broker: no redis-server started" "children: $kids"
		fi
	else
		fail "dev+broker: API answers GET /readyz within 60s"
		show_log "$ci_work/dev2.log"
	fi
	stop_and_check "dev+broker" "$dev_pid" $((CELERIAC_GRACE_SECS + 30)) || show_log "$ci_work/dev2.log"
}

# ---------------------------------------------------------------- main

say "smoke-checks: repo $repo, cache $ci_cache"
dispatch_checks

section "smoke: binaries and redis"
if ! { [[ -x $ci_venv/bin/python ]] || setup_python_tools; }; then
	fail "python tools for the smoke test"
elif ! ensure_binaries; then
	fail "binaries in $bin_dir (cargo build --release)"
elif ! ensure_redis; then
	fail "redis-server available"
else
	pass "binaries in $bin_dir"
	check "celeriac-api --help" "$bin_dir/celeriac-api" --help
	check "celeriac-worker --help" "$bin_dir/celeriac-worker" --help
	pass "redis-server available ($(redis-server --version | grep -o 'v=[0-9.]*'))"

	# A clean environment for the roles: only what each check sets.
	unset CELERIAC_BROKER_URL CELERY_BROKER_URI CELERY_BROKER_URL REDIS_URL CELERIAC_RESULT_BACKEND CELERY_RESULT_BACKEND \
		PORT0 PORT CELERIAC_HOST CELERIAC_HEALTH_PORT CELERIAC_QUEUES CELERIAC_DEV_DIR CELERIAC_DEV_REDIS_PORT \
		CELERIAC_AUTH CELERIAC_API_TOKENS CELERIAC_API_TOKENS_FILE CELERIAC_ROLE
	export CELERIAC_BIN_DIR=$bin_dir CELERIAC_DEV_BUILD=never CELERIAC_GRACE_SECS=10
	export CELERIAC_NAMESPACE=ci-$$ RUST_LOG=${RUST_LOG:-info}
	# The bearer token of every request (lib.sh `http`, deploy_checks.py `roundtrip`).
	export CELERIAC_CI_TOKEN=$CI_TOKEN

	redis_port=
	start_redis redis-server "$ci_work/redis" redis_port
	redis_pid=$last_pid
	broker=redis://127.0.0.1:$redis_port/0

	roles_checks "$broker"
	dev_checks "$broker"

	kill -TERM "$redis_pid" 2>/dev/null
	wait "$redis_pid" 2>/dev/null
	forget "$redis_pid"
fi

ci_summary smoke-checks
