#!/usr/bin/env bash
# entrypoint.sh: one entry point for every celeriac role, in the image and on a host.
#
#   entrypoint.sh api    [ARGS...]        exec celeriac-api    (HTTP API)
#   entrypoint.sh worker [ARGS...]        exec celeriac-worker (task worker)
#   entrypoint.sh dev    [OPTIONS]        local all-in-one: redis-server (unless a broker
#                                         URL is set), one API and one worker; Ctrl-C stops all
#   entrypoint.sh inspect active|reserved|workers|queues|registered [--json]
#                                         celeriac-api inspect (reads Redis; broker settings from env)
#   entrypoint.sh healthcheck [--url URL] exit 0 if this container's API or worker is healthy
#   entrypoint.sh COMMAND [ARGS...]       anything else is executed as given
#
# `api` and `worker` end in `exec`: the binary replaces this shell, so the SIGTERM that
# Docker, Marathon and Kubernetes send to the container's main process reaches the Rust
# code, which drains and exits 0. A shell left in between would swallow the signal and
# the process would be SIGKILLed at the end of the grace period.
#
# Binaries are looked up in $CELERIAC_BIN_DIR (only there, when set), then in the cargo
# target directory next to this script (${CARGO_TARGET_DIR:-target}/release), then on
# PATH (the image installs them in /usr/local/bin), then in ./target/release.
#
# Run `entrypoint.sh dev --help` for the dev options and environment.
set -euo pipefail

readonly API_BIN_NAME=celeriac-api
readonly WORKER_BIN_NAME=celeriac-worker

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
readonly script_dir

log() { printf 'entrypoint: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

usage() {
	cat <<'EOF'
usage: entrypoint.sh api|worker|dev|healthcheck [ARGS...]
       entrypoint.sh COMMAND [ARGS...]      (executed as given)

  api          run celeriac-api    (listens on $PORT0, $PORT or 8000)
  worker       run celeriac-worker (health port: $CELERIAC_HEALTH_PORT / --health-port)
  dev          local all-in-one: redis-server + API + worker (see `entrypoint.sh dev --help`)
  healthcheck  probe http://127.0.0.1:${PORT0:-${PORT:-8000}}/healthz, then the worker's
               health port $CELERIAC_HEALTH_PORT; exit 0 if either answers 200

With no arguments the role comes from $CELERIAC_ROLE; arguments that start with '-' are
passed to the `api` role. Broker: CELERIAC_BROKER_URL (or CELERY_BROKER_URI, CELERY_BROKER_URL, REDIS_URL).
EOF
}

dev_usage() {
	cat <<'EOF'
usage: entrypoint.sh dev [OPTIONS]

Starts a private redis-server (unless a broker URL is set), one celeriac-api and one
celeriac-worker, prints the API URL and waits. Ctrl-C (or SIGTERM) stops the API and the
worker gracefully, then Redis, and exits 0.

options:
  --port N                API port (default: $PORT0 or $PORT, else 8000 when free, else a free port)
  --host ADDR             API listen address (default: $CELERIAC_HOST, else 127.0.0.1; 0.0.0.0 in a container)
  --redis-port N          port of the dev redis-server (default: $CELERIAC_DEV_REDIS_PORT, else a free port)
  --data-dir DIR          Redis data directory (default: $CELERIAC_DEV_DIR, else ./.celeriac-dev)
  --worker-health-port N  worker health port (default: $CELERIAC_HEALTH_PORT, else a free port)
  --build                 run `cargo build --release` first even if binaries exist
  --no-build              never build; fail if the binaries are missing
  -h, --help              this help

environment:
  CELERIAC_BROKER_URL, CELERY_BROKER_URI, CELERY_BROKER_URL, REDIS_URL
                          use this Redis and start none
  CELERIAC_DEV_BUILD      always | missing (default) | never: when to run cargo build
  CELERIAC_BIN_DIR        take celeriac-api and celeriac-worker from this directory only
  CELERIAC_GRACE_SECS     worker grace time (default 30); dev waits that long plus 15 s

When redis-server is missing it is installed with apt-get (as root, or through sudo).
EOF
}

# find_bin NAME: print the path of a celeriac binary, or fail.
find_bin() {
	local name=$1 dir
	if [[ -n ${CELERIAC_BIN_DIR:-} ]]; then
		[[ -x $CELERIAC_BIN_DIR/$name ]] || return 1
		printf '%s\n' "$CELERIAC_BIN_DIR/$name"
		return 0
	fi
	dir=${CARGO_TARGET_DIR:-$script_dir/target}/release
	[[ $dir == /* ]] || dir=$script_dir/$dir
	if [[ -x $dir/$name ]]; then
		printf '%s\n' "$dir/$name"
	elif command -v "$name" >/dev/null 2>&1; then
		command -v "$name"
	elif [[ -x ./target/release/$name ]]; then
		printf '%s\n' "$PWD/target/release/$name"
	else
		return 1
	fi
}

require_bin() {
	find_bin "$1" || die "$1 not found (looked in ${CELERIAC_BIN_DIR:-the cargo target dir, PATH and ./target/release}); build it with 'cargo build --release' or run 'entrypoint.sh dev'"
}

# ---------------------------------------------------------------- small network helpers

# port_in_use PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port [TAKEN...]: print a port that nothing listens on and that is not in TAKEN.
# It is drawn below the kernel's ephemeral range, where outgoing connections take their
# local ports: such a port refuses connections, yet a server cannot bind it.
free_port() {
	local port tries taken lo=10000 hi=32767 range
	if range=$(cat /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null); then
		read -r hi _ <<<"$range"
		hi=$((hi - 1))
		((hi - lo >= 1000)) || { lo=20000 hi=60999; }
	fi
	for ((tries = 0; tries < 200; tries++)); do
		port=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
		for taken in "$@"; do
			[[ $port == "$taken" ]] && continue 2
		done
		port_in_use "$port" || {
			printf '%s\n' "$port"
			return 0
		}
	done
	die "no free TCP port found"
}

# redis_ping PORT: a Redis without a password answers PING on 127.0.0.1:PORT.
redis_ping() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf 'PING\r\n' >&3
		IFS= read -r -t 2 reply <&3 || exit 1
		[[ $reply == +PONG* ]]
	) 2>/dev/null
}

# redact_url URL: hide the password of a redis://user:password@host URL.
redact_url() {
	local url=$1
	if [[ $url =~ ^([A-Za-z0-9+.-]+://[^:/@]*:)[^@]*@(.*)$ ]]; then
		url="${BASH_REMATCH[1]}***@${BASH_REMATCH[2]}"
	fi
	printf '%s\n' "$url"
}

is_port() { [[ $1 =~ ^[0-9]{1,5}$ ]] && ((10#$1 > 0 && 10#$1 < 65536)); }

# ---------------------------------------------------------------- roles

run_healthcheck() {
	local api_bin
	api_bin=$(require_bin "$API_BIN_NAME")
	# Explicit arguments (`healthcheck --url ...`) go straight to the binary.
	(($# == 0)) || exec "$api_bin" healthcheck "$@"
	# One image runs either role, so probe the API port first and then the worker's
	# health port: a container is healthy when its one process answers.
	if "$api_bin" healthcheck --url "http://127.0.0.1:${PORT0:-${PORT:-8000}}/healthz" >/dev/null 2>&1; then
		exit 0
	fi
	if [[ -n ${CELERIAC_HEALTH_PORT:-} ]]; then
		exec "$api_bin" healthcheck --url "http://127.0.0.1:${CELERIAC_HEALTH_PORT}/healthz"
	fi
	exit 1
}

# ---------------------------------------------------------------- dev

ensure_binaries() {
	local mode=$1 lock=()
	if [[ $mode != always ]] && find_bin "$API_BIN_NAME" >/dev/null && find_bin "$WORKER_BIN_NAME" >/dev/null; then
		return 0
	fi
	[[ $mode != never ]] || die "celeriac binaries not found and building is disabled"
	[[ -f $script_dir/Cargo.toml ]] || die "celeriac binaries not found, and $script_dir is not a source checkout to build them in"
	command -v cargo >/dev/null 2>&1 || die "celeriac binaries not found and cargo is not installed: install Rust with rustup, then run this again"
	[[ -f $script_dir/Cargo.lock ]] && lock=(--locked)
	log "building release binaries: cargo build --release ${lock[*]} (the first build takes a few minutes)"
	(cd "$script_dir" && cargo build --release "${lock[@]}") || die "cargo build failed"
	if [[ -n ${CELERIAC_BIN_DIR:-} ]]; then
		log "note: CELERIAC_BIN_DIR is set, so the binaries are taken from $CELERIAC_BIN_DIR, not from the build"
	fi
}

ensure_redis_server() {
	local sudo=()
	command -v redis-server >/dev/null 2>&1 && return 0
	command -v apt-get >/dev/null 2>&1 ||
		die "redis-server not found: install Redis >= 6.2, or set CELERIAC_BROKER_URL to an existing one"
	if ((EUID != 0)); then
		command -v sudo >/dev/null 2>&1 ||
			die "redis-server not found and not root (no sudo): run 'apt-get install redis-server' as root, or set CELERIAC_BROKER_URL"
		sudo=(sudo)
	fi
	log "redis-server not found: installing it with ${sudo[*]:+sudo }apt-get"
	local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
	# Try without `apt-get update` first: a fresh image has no package lists, a machine
	# with lists does not need the round trip.
	if ! "${apt[@]}" install -y --no-install-recommends redis-server </dev/null; then
		"${apt[@]}" update </dev/null || die "apt-get update failed"
		"${apt[@]}" install -y --no-install-recommends redis-server </dev/null || die "could not install redis-server"
	fi
	command -v redis-server >/dev/null 2>&1 || die "redis-server still not on PATH after installing it"
}

check_redis_version() {
	local version
	version=$(redis-server --version 2>/dev/null | sed -n 's/.* v=\([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p')
	[[ -n $version ]] || return 0
	local major=${version%%.*} minor=${version#*.}
	if ((major < 6 || (major == 6 && minor < 2))); then
		log "warning: redis-server $version is older than 6.2, which celeriac needs"
	fi
}

# Child processes of `dev`, by role.
declare -A dev_pid=()
dev_stop_requested=0

# wait_exit PID TIMEOUT_SECS: wait for PID to end, SIGKILL it after TIMEOUT_SECS, and
# leave its exit status in $exit_status. (Not usable in $(...): only this shell can
# `wait` for its own children.)
exit_status=0
wait_exit() {
	local pid=$1 deadline=$((SECONDS + $2))
	while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
		sleep 0.2
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "process $pid did not stop within $2 s: sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	exit_status=0
	wait "$pid" 2>/dev/null || exit_status=$?
}

# start_child ROLE COMMAND...: start COMMAND in the background, in its own process group
# (job control on for just this fork), so that a Ctrl-C in the terminal reaches only this
# script, which then stops the children in order: API and worker first, Redis last
# (otherwise Redis would vanish under a draining worker). Foreground commands stay in
# this script's group.
start_child() {
	local role=$1
	shift
	set -m
	"$@" </dev/null &
	dev_pid[$role]=$!
	set +m
}

# On any exit (including `set -e` failures), leave no child behind.
dev_on_exit() {
	local role
	for role in "${!dev_pid[@]}"; do
		kill -TERM "${dev_pid[$role]}" 2>/dev/null || true
	done
}

# dev_shutdown: TERM the API and the worker, wait for both, then stop Redis.
# Returns non-zero if a process did not exit 0.
dev_shutdown() {
	local role rc=0 grace=${CELERIAC_GRACE_SECS:-30}
	[[ $grace =~ ^[0-9]+$ ]] || grace=30
	for role in api worker; do
		if [[ -n ${dev_pid[$role]:-} ]]; then
			kill -TERM "${dev_pid[$role]}" 2>/dev/null || true
		fi
	done
	for role in api worker; do
		[[ -n ${dev_pid[$role]:-} ]] || continue
		wait_exit "${dev_pid[$role]}" $((grace + 15))
		if ((exit_status == 0)); then
			log "$role stopped"
		else
			log "$role exited with status $exit_status"
			rc=1
		fi
		unset 'dev_pid[$role]'
	done
	if [[ -n ${dev_pid[redis]:-} ]]; then
		# Redis fsyncs its append-only file on SIGTERM before it exits.
		kill -TERM "${dev_pid[redis]}" 2>/dev/null || true
		wait_exit "${dev_pid[redis]}" 30
		if ((exit_status == 0)); then
			log "redis-server stopped"
		else
			log "redis-server exited with status $exit_status"
			rc=1
		fi
		unset 'dev_pid[redis]'
	fi
	return "$rc"
}

# dev_fail MESSAGE: stop whatever dev started, then exit 1.
dev_fail() {
	log "error: $*"
	dev_shutdown || true
	exit 1
}

# dev_wait_http ROLE URL SECS: poll URL with `celeriac-api healthcheck` until it answers
# 200, while the process of ROLE is alive.
dev_wait_http() {
	local role=$1 url=$2 deadline=$((SECONDS + $3))
	until "$api_bin" healthcheck --url "$url" >/dev/null 2>&1; do
		((dev_stop_requested == 0)) || return 1
		kill -0 "${dev_pid[$role]}" 2>/dev/null || dev_fail "$role exited during startup (see its log above)"
		((SECONDS < deadline)) || dev_fail "$role did not answer $url within $3 s"
		sleep 0.2
	done
}

run_dev() {
	local api_port='' host='' redis_port='' data_dir='' health_port='' build=${CELERIAC_DEV_BUILD:-missing}
	while (($#)); do
		case $1 in
		--port) api_port=${2:?--port needs a value}; shift 2 ;;
		--port=*) api_port=${1#*=}; shift ;;
		--host) host=${2:?--host needs a value}; shift 2 ;;
		--host=*) host=${1#*=}; shift ;;
		--redis-port) redis_port=${2:?--redis-port needs a value}; shift 2 ;;
		--redis-port=*) redis_port=${1#*=}; shift ;;
		--data-dir) data_dir=${2:?--data-dir needs a value}; shift 2 ;;
		--data-dir=*) data_dir=${1#*=}; shift ;;
		--worker-health-port) health_port=${2:?--worker-health-port needs a value}; shift 2 ;;
		--worker-health-port=*) health_port=${1#*=}; shift ;;
		--build) build=always; shift ;;
		--no-build) build=never; shift ;;
		-h | --help) dev_usage; exit 0 ;;
		*) dev_usage >&2; die "dev: unknown option '$1'" ;;
		esac
	done
	case $build in always | missing | never) ;; *) die "CELERIAC_DEV_BUILD must be always, missing or never" ;; esac

	ensure_binaries "$build"
	api_bin=$(require_bin "$API_BIN_NAME")
	worker_bin=$(require_bin "$WORKER_BIN_NAME")

	trap 'dev_stop_requested=1' INT TERM HUP
	trap dev_on_exit EXIT

	# --- broker
	local broker='' var
	for var in CELERIAC_BROKER_URL CELERY_BROKER_URI CELERY_BROKER_URL REDIS_URL; do
		if [[ -n ${!var:-} ]]; then
			broker=${!var}
			log "using the broker from $var: $(redact_url "$broker")"
			break
		fi
	done
	if [[ -z $broker ]]; then
		ensure_redis_server
		check_redis_version
		redis_port=${redis_port:-${CELERIAC_DEV_REDIS_PORT:-}}
		local pick_port=0 attempt deadline
		if [[ -z $redis_port ]]; then
			pick_port=1
		else
			is_port "$redis_port" || die "invalid Redis port '$redis_port'"
			! port_in_use "$redis_port" || die "port $redis_port is already in use (choose another with --redis-port)"
		fi
		data_dir=${data_dir:-${CELERIAC_DEV_DIR:-./.celeriac-dev}}
		mkdir -p -- "$data_dir"
		data_dir=$(cd -- "$data_dir" && pwd -P)
		# A port found free can be taken before Redis binds it: then try another one.
		for attempt in 1 2 3; do
			((pick_port == 0)) || redis_port=$(free_port)
			log "starting redis-server on 127.0.0.1:$redis_port (data in $data_dir, log in $data_dir/redis.log)"
			start_child redis redis-server --bind 127.0.0.1 --port "$redis_port" --protected-mode yes \
				--dir "$data_dir" --appendonly yes --save '' --daemonize no \
				--logfile "$data_dir/redis.log"
			deadline=$((SECONDS + 15))
			until redis_ping "$redis_port"; do
				if ! kill -0 "${dev_pid[redis]}" 2>/dev/null; then
					wait "${dev_pid[redis]}" 2>/dev/null || true
					unset 'dev_pid[redis]'
					break
				fi
				((SECONDS < deadline)) || dev_fail "redis-server did not answer PING within 15 s"
				((dev_stop_requested == 0)) || break 2
				sleep 0.1
			done
			[[ -z ${dev_pid[redis]:-} ]] || break
			((pick_port == 1 && attempt < 3)) || dev_fail "redis-server exited during startup (see $data_dir/redis.log)"
			log "redis-server could not start on port $redis_port; trying another port"
		done
		broker="redis://127.0.0.1:$redis_port/0"
		export CELERIAC_BROKER_URL=$broker
	fi

	# --- API
	if [[ -z $api_port ]]; then
		api_port=${PORT0:-${PORT:-}}
	fi
	if [[ -z $api_port ]]; then
		if port_in_use 8000; then
			api_port=$(free_port "$redis_port")
			log "port 8000 is taken: the API uses port $api_port"
		else
			api_port=8000
		fi
	else
		is_port "$api_port" || dev_fail "invalid API port '$api_port'"
		! port_in_use "$api_port" || dev_fail "port $api_port is already in use (choose another with --port or PORT)"
	fi
	if [[ -z $host ]]; then
		host=${CELERIAC_HOST:-127.0.0.1}
		# In a container the API must listen on all interfaces to be reachable.
		if [[ -z ${CELERIAC_HOST:-} && (-f /.dockerenv || -f /run/.containerenv) ]]; then
			host=0.0.0.0
		fi
	fi
	# PORT0 is unset and the port goes through PORT alone, so no precedence question arises.
	start_child api env -u PORT0 PORT="$api_port" CELERIAC_HOST="$host" "$api_bin"

	# --- worker
	health_port=${health_port:-${CELERIAC_HEALTH_PORT:-}}
	if [[ -z $health_port ]]; then
		health_port=$(free_port "$redis_port" "$api_port")
	else
		is_port "$health_port" || dev_fail "invalid worker health port '$health_port'"
	fi
	start_child worker env CELERIAC_HEALTH_PORT="$health_port" "$worker_bin"

	local shown_host=$host
	[[ $shown_host == 0.0.0.0 || $shown_host == '::' ]] && shown_host=127.0.0.1
	local api_url="http://$shown_host:$api_port"
	dev_wait_http api "http://127.0.0.1:$api_port/readyz" 60 || true
	dev_wait_http worker "http://127.0.0.1:$health_port/healthz" 60 || true

	if ((dev_stop_requested == 0)); then
		cat <<EOF

  celeriac dev is running
    API      $api_url        (docs: $api_url/docs)
    worker   health on http://127.0.0.1:$health_port/healthz
    broker   $(redact_url "$broker")

  try it:
    curl -X POST $api_url/tasks
    curl $api_url/tasks/<task_id>

  Press Ctrl-C to stop.

EOF
	fi

	# Wake up every second (or at once on a signal) to notice a stop request or a child
	# that died; a short sleep keeps the signal-before-wait race harmless.
	local died='' role sleeper=''
	while ((dev_stop_requested == 0)); do
		for role in redis api worker; do
			if [[ -n ${dev_pid[$role]:-} ]] && ! kill -0 "${dev_pid[$role]}" 2>/dev/null; then
				died=$role
				break 2
			fi
		done
		sleep 1 &
		sleeper=$!
		wait "$sleeper" 2>/dev/null || true
	done
	if [[ -n $sleeper ]]; then
		kill "$sleeper" 2>/dev/null || true
	fi

	if [[ -n $died ]]; then
		local status=0
		wait "${dev_pid[$died]}" 2>/dev/null || status=$?
		unset 'dev_pid[$died]'
		dev_fail "$died exited unexpectedly with status $status"
	fi
	log "stopping (API and worker first, then Redis)"
	dev_shutdown || exit 1
	exit 0
}

# ---------------------------------------------------------------- dispatch

if (($# == 0)); then
	if [[ -n ${CELERIAC_ROLE:-} ]]; then
		set -- "$CELERIAC_ROLE"
	else
		usage >&2
		exit 2
	fi
fi
# `docker run IMAGE --port 9000` means the default role with these flags.
if [[ $1 == -* && $1 != -h && $1 != --help ]]; then
	set -- "${CELERIAC_ROLE:-api}" "$@"
fi

role=$1
shift
case $role in
api)
	bin=$(require_bin "$API_BIN_NAME")
	exec "$bin" "$@"
	;;
worker)
	bin=$(require_bin "$WORKER_BIN_NAME")
	exec "$bin" "$@"
	;;
inspect)
	bin=$(require_bin "$API_BIN_NAME")
	exec "$bin" inspect "$@"
	;;
dev) run_dev "$@" ;;
healthcheck) run_healthcheck "$@" ;;
help | -h | --help) usage ;;
*) exec "$role" "$@" ;;
esac
