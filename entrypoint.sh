#!/usr/bin/env bash
# entrypoint.sh: one entry point for every celeriac role, in the image and on a host.
#
#   entrypoint.sh api    [ARGS...]        exec celeriac-api               (HTTP API)
#   entrypoint.sh worker [ARGS...]        exec celeriac-worker            (consumer; --beat adds the scheduler)
#   entrypoint.sh beat   [ARGS...]        exec celeriac-worker --beat-only (scheduler only, consumes nothing)
#   entrypoint.sh inspect [ARGS...]       exec celeriac-api inspect       (operator queries)
#   entrypoint.sh tasks  [ARGS...]        exec celeriac-api tasks         (task commands)
#   entrypoint.sh dev    [OPTIONS]        exec scripts/dev.sh: local all-in-one (Redis + API + worker)
#   entrypoint.sh healthcheck [--url URL] exit 0 if this container's API, worker or beat is healthy
#   entrypoint.sh COMMAND [ARGS...]       anything else is executed as given
#
# Every role ends in `exec`: the program replaces this shell, so the SIGTERM that Docker,
# Marathon and Kubernetes send to the container's main process reaches the Rust code,
# which drains and exits 0. A shell left in between would swallow the signal and the
# process would be SIGKILLed at the end of the grace period.
#
# Binaries are looked up in $CELERIAC_BIN_DIR (only there, when set), then in the cargo
# target directory next to this script (${CARGO_TARGET_DIR:-target}/release), then on
# PATH (the image installs them in /usr/local/bin), then in ./target/release.
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
usage: entrypoint.sh api|worker|beat|inspect|tasks|dev|healthcheck [ARGS...]
       entrypoint.sh COMMAND [ARGS...]      (executed as given)

  api          run celeriac-api    (listens on $PORT0, $PORT or 8000)
  worker       run celeriac-worker (health port: $CELERIAC_HEALTH_PORT / --health-port;
               `worker --beat` also runs the scheduler)
  beat         run the scheduler only: celeriac-worker --beat-only (leader-elected, so
               any number may run; health port as the worker's)
  inspect      celeriac-api inspect ARGS   (read-only operator queries)
  tasks        celeriac-api tasks ARGS     (task commands)
  dev          local all-in-one: redis-server + API + worker (see `entrypoint.sh dev --help`)
  healthcheck  probe http://127.0.0.1:${PORT0:-${PORT:-8000}}/healthz, then the health port
               $CELERIAC_HEALTH_PORT; exit 0 if either answers 200

With no arguments the role comes from $CELERIAC_ROLE; arguments that start with '-' are
passed to that role (default `api`). Broker: CELERIAC_BROKER_URL (or CELERY_BROKER_URI,
CELERY_BROKER_URL, REDIS_URL). API tokens: CELERIAC_API_TOKENS or CELERIAC_API_TOKENS_FILE.
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

# dev_script: scripts/dev.sh of a source checkout, or the copy the image installs.
dev_script() {
	local f
	for f in "$script_dir/scripts/dev.sh" "$script_dir/../libexec/celeriac/dev.sh"; do
		if [[ -f $f ]]; then
			printf '%s\n' "$f"
			return 0
		fi
	done
	die "scripts/dev.sh not found next to $script_dir/entrypoint.sh"
}

# One image runs one role per container, so probe the API port first and then the
# health port of a worker or beat: a container is healthy when its one process answers.
run_healthcheck() {
	local api_bin api_url=http://127.0.0.1:${PORT0:-${PORT:-8000}}/healthz
	api_bin=$(require_bin "$API_BIN_NAME")
	# Explicit arguments (`healthcheck --url ...`) go straight to the binary.
	(($# == 0)) || exec "$api_bin" healthcheck "$@"
	[[ -n ${CELERIAC_HEALTH_PORT:-} ]] || exec "$api_bin" healthcheck --url "$api_url"
	if "$api_bin" healthcheck --url "$api_url" >/dev/null 2>&1; then
		exit 0
	fi
	exec "$api_bin" healthcheck --url "http://127.0.0.1:${CELERIAC_HEALTH_PORT}/healthz"
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
api | inspect | tasks | healthcheck) bin=$(require_bin "$API_BIN_NAME") ;;
worker | beat) bin=$(require_bin "$WORKER_BIN_NAME") ;;
dev) bin=$(dev_script) ;;
esac
case $role in
api) exec "$bin" "$@" ;;
worker) exec "$bin" "$@" ;;
beat) exec "$bin" --beat-only "$@" ;;
inspect) exec "$bin" inspect "$@" ;;
tasks) exec "$bin" tasks "$@" ;;
dev) exec bash "$bin" "$@" ;;
healthcheck) run_healthcheck "$@" ;;
help | -h | --help) usage ;;
*) exec "$role" "$@" ;;
esac
