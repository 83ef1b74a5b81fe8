#!/usr/bin/env bash
# .ci/examples-check.sh: the examples, built and run against a real Redis.
#
#   bash .ci/examples-check.sh
#
# Builds examples/ (debug), starts a private redis-server on a free port, runs
# examples/custom_worker.rs in the background, waits until it registered its typed
# `transcode` task (with the JSON Schema of its arguments), runs examples/producer.rs
# (the typed client: enqueue, wait, print the result) and checks its output, then stops
# the worker (exit 0 on SIGTERM) and Redis. Prints PASS/FAIL per check and ends with
# "N passed, N failed"; exits 1 if any failed.
set -uo pipefail
# shellcheck source=.ci/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

repo=$ci_repo
examples=${CARGO_TARGET_DIR:-$repo/target}/debug/examples
[[ $examples == /* ]] || examples=$repo/$examples

section "examples: build"
if ! (cd "$repo" && cargo build --locked --examples) >"$ci_work/build.log" 2>&1; then
	show_log "$ci_work/build.log"
	fail "cargo build --examples"
elif ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
	pass "cargo build --examples"
	fail "redis-server and redis-cli available"
else
	pass "cargo build --examples"
	section "examples: custom_worker + producer against a private redis-server"
	unset CELERIAC_NAMESPACE REDIS_URL
	redis_port=
	start_redis redis-server "$ci_work/redis" redis_port
	redis_pid=$last_pid
	export CELERIAC_BROKER_URL=redis://127.0.0.1:$redis_port RUST_LOG=${RUST_LOG:-info}

	start custom_worker "$ci_work/worker.log" "$examples/custom_worker"
	worker_pid=$last_pid
	registered=0
	for _ in $(seq 300); do
		if [[ $(redis-cli -p "$redis_port" SISMEMBER '{celeriac}:task_names' transcode 2>/dev/null) == 1 ]]; then
			registered=1
			break
		fi
		sleep 0.1
	done
	if ((registered)); then
		pass "custom_worker registers transcode"
		schema=$(redis-cli -p "$redis_port" HGET '{celeriac}:task_schemas' transcode 2>/dev/null)
		if [[ $schema == *'"required"'*'"file"'* ]]; then
			pass "custom_worker publishes the JSON Schema of transcode's arguments"
		else
			fail "custom_worker publishes the JSON Schema of transcode's arguments" "got: $schema"
		fi
		out=$(timeout 60 "$examples/producer" 2>&1)
		rc=$?
		if ((rc == 0)) && grep -q '^transcoded a.mov -> a.mp4$' <<<"$out"; then
			pass "producer enqueues, waits and prints the result"
		else
			fail "producer enqueues, waits and prints the result" "exit $rc: $out"
		fi
	else
		show_log "$ci_work/worker.log"
		fail "custom_worker registers transcode" "not registered within 30 s"
	fi
	stop_and_check custom_worker "$worker_pid" 40 || show_log "$ci_work/worker.log"
	kill -TERM "$redis_pid" 2>/dev/null
	wait "$redis_pid" 2>/dev/null
	forget "$redis_pid"
fi

ci_summary examples-check
