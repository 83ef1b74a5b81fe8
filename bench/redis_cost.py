#!/usr/bin/env python3
"""Redis CPU per task lifecycle (enqueue + claim + complete), from Redis' own counters.

  bench/redis_cost.py [--n 5000] [--bin-dir target/release] [--concurrency 16] [--runs 1] [--detail]

Starts a private redis-server on a free port, a release celeriac-api and
celeriac-worker (as bench/run.sh does), waits for one noop round trip, then:

  1. enqueue: stops the worker, CONFIG RESETSTAT, submits N `noop` tasks over
     HTTP (POST /tasks, 16 client threads), reads INFO commandstats;
  2. drain: CONFIG RESETSTAT, starts the worker again, waits until the queue and
     the leases are empty, reads INFO commandstats.

lifecycle_us = (EVALSHA usec of 1 + EVALSHA usec of 2) / N. Every script call is
one EVALSHA, so commandstats cannot tell scripts apart: the drain's split into
claim and complete comes from a second enqueue + drain with SLOWLOG on
(`slowlog-log-slower-than 0`: every command with its duration and arguments;
an EVALSHA whose keys include a delayed ZSET is a claim, the script called about
N times is complete, the rest, heartbeat and reap, is "other"). A busy worker
records its successes in its claim calls (claim.lua records, then claims), so
claim_us holds most completions and complete_us only those sent alone (a
success without a slot to fill, at the start or end of the drain); a script
called fewer than N/4 times is not taken for complete. Logging slows the
scripts (their inner commands are logged too), so only its shares are applied
to the drain's commandstats total.

redis_cpu_us: the CPU time of Redis' main thread over both phases / N (all
commands, networking included; robust when the host is busy, where
commandstats' wall-clock usec grows). Redis runs on CPU 0, everything else on CPU 1 (when there are two and taskset
exists), since commandstats counts wall time and a preempted Redis looks slow.
Prints one JSON line on stdout (µs per task, medians and minima over --runs);
progress on stderr.
stdlib only: a tiny RESP client, urllib-free HTTP via http.client.
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NS = "celeriac"


def log(*a):
    print("[redis_cost]", *a, file=sys.stderr, flush=True)


class Resp:
    """Just enough RESP2 for CONFIG, INFO, SLOWLOG and ZCARD."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def __call__(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.s.sendall(b"".join(out))
        return self._read()

    def _read(self):
        line = self.f.readline()
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data.decode("utf-8", "replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RuntimeError(f"bad reply {line!r}")


def freeports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def commandstats(r):
    """{command: (calls, usec)} from INFO commandstats."""
    out = {}
    for line in r("INFO", "commandstats").splitlines():
        if not line.startswith("cmdstat_"):
            continue
        name, fields = line[len("cmdstat_"):].split(":", 1)
        kv = dict(f.split("=", 1) for f in fields.split(","))
        out[name] = (int(kv["calls"]), int(kv["usec"]))
    return out


def cpu_usec(r):
    """CPU time of Redis' main thread so far (user + system), µs: unlike
    commandstats' wall time it does not grow when Redis is preempted."""
    kv = dict(ln.split(":", 1) for ln in r("INFO", "cpu").splitlines() if ":" in ln)
    user = kv.get("used_cpu_user_main_thread", kv.get("used_cpu_user"))
    system = kv.get("used_cpu_sys_main_thread", kv.get("used_cpu_sys"))
    return (float(user) + float(system)) * 1e6


def slowlog_by_script(r, n):
    """Sums EVALSHA durations of the slowlog by script: {sha: [calls, usec, is_claim]}."""
    by = {}
    for entry in r("SLOWLOG", "GET", "-1"):
        args = entry[3]
        if not args or args[0].lower() != "evalsha":
            continue
        sha = args[1]
        numkeys = int(args[2]) if len(args) > 2 and args[2].isdigit() else 0
        keys = args[3:3 + numkeys]
        s = by.setdefault(sha, [0, 0, False])
        s[0] += 1
        s[1] += int(entry[2])
        s[2] = s[2] or any(f"{{{NS}}}:delayed:" in k for k in keys)
    return by


def post_tasks(base_port, n, threads=16):
    done, errors = [0], [0]
    lock = threading.Lock()
    body = json.dumps({"name": "noop"})

    def run(count):
        c = http.client.HTTPConnection("127.0.0.1", base_port, timeout=10)
        for _ in range(count):
            c.request("POST", "/tasks", body, {"Content-Type": "application/json"})
            resp = c.getresponse()
            resp.read()
            with lock:
                if resp.status // 100 == 2:
                    done[0] += 1
                else:
                    errors[0] += 1
        c.close()

    per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
    ts = [threading.Thread(target=run, args=(c,)) for c in per]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return done[0], errors[0]


def wait_ready(port, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    tid = None
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            if tid is None:
                c.request("POST", "/tasks", json.dumps({"name": "noop"}), {"Content-Type": "application/json"})
                resp = c.getresponse()
                body = resp.read()
                if resp.status // 100 == 2:
                    tid = json.loads(body)["task_id"]
            else:
                c.request("GET", f"/tasks/{tid}")
                resp = c.getresponse()
                body = resp.read()
                if resp.status == 200 and json.loads(body).get("status") == "SUCCESS":
                    return True
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    return False


def stop(p, secs=30):
    if p is None or p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(secs)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def pinned(cmd, cpu):
    """`cmd` pinned to one CPU (with taskset, on hosts with 2+ CPUs): commandstats
    times are wall time, so Redis must not share its core with the client."""
    if cpu is None or (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        return cmd
    return ["taskset", "-c", str(cpu)] + cmd


def start_redis(port, d, cpu=None):
    """A private redis-server (no persistence) on `port`, its data and log in `d`, pinned to
    `cpu` when given; -> (the process, a Resp connection) once it answers PING."""
    p = subprocess.Popen(
        pinned(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", d], cpu), stdout=open(os.path.join(d, "redis.log"), "wb"), stderr=subprocess.STDOUT)
    for _ in range(100):
        try:
            r = Resp(port)
            r("PING")
            return p, r
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError(f"redis-server on port {port} did not start (log in {d})")


def one_run(args, i):
    rport, aport = freeports(2)
    d = tempfile.mkdtemp(prefix=f"redis_cost-{i}-")
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"),
               CELERIAC_BROKER_URL=f"redis://127.0.0.1:{rport}", CELERIAC_NAMESPACE=NS)
    api_bin = os.path.join(args.bin_dir, "celeriac-api")
    worker_bin = os.path.join(args.bin_dir, "celeriac-worker")
    procs = {}

    def start_worker():
        return subprocess.Popen(pinned([worker_bin, "--concurrency", str(args.concurrency), "--queues", "default"], 1),
                                env=dict(env, CELERIAC_CONCURRENCY=str(args.concurrency)),
                                stdout=open(os.path.join(d, "worker.log"), "ab"), stderr=subprocess.STDOUT)

    try:
        procs["redis"], r = start_redis(rport, d, cpu=0)
        procs["api"] = subprocess.Popen(pinned([api_bin], 1), env=dict(env, CELERIAC_HOST="127.0.0.1", PORT=str(aport),
                                                                    CELERIAC_AUTH=os.environ.get("CELERIAC_AUTH", "off")),
                                        stdout=open(os.path.join(d, "api.log"), "wb"), stderr=subprocess.STDOUT)
        procs["worker"] = start_worker()
        if not wait_ready(aport):
            raise RuntimeError(f"stack not ready (logs in {d})")
        stop(procs.pop("worker"))

        def reset():
            r("CONFIG", "RESETSTAT")
            r("SLOWLOG", "RESET")

        def drain():
            t0 = time.monotonic()
            procs["worker"] = start_worker()
            queue, leases = f"{{{NS}}}:queue:default", f"{{{NS}}}:leases"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if r("ZCARD", queue) == 0 and r("ZCARD", leases) == 0:
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError("the worker did not drain the queue within 120 s")
            time.sleep(0.3)
            return time.monotonic() - t0

        def enqueue():
            t0 = time.monotonic()
            ok, bad = post_tasks(aport, args.n)
            if bad:
                # a busy host can time a request out; the rest still counts per task
                log(f"{bad} of {args.n} POSTs failed")
            return time.monotonic() - t0, ok

        # 1. enqueue (no worker running), 2. drain: totals from commandstats
        reset()
        cpu0 = cpu_usec(r)
        enq_s, n_ok = enqueue()
        cpu1 = cpu_usec(r)
        enq = commandstats(r)
        reset()
        cpu2 = cpu_usec(r)
        drain_s = drain()
        cpu3 = cpu_usec(r)
        drained = commandstats(r)
        stop(procs.pop("worker"))
        # 3. the same again with every command in the slowlog, only to split the
        # drain's EVALSHA time between scripts (logging inflates script times:
        # each inner command is logged too, so only the shares are used)
        r("CONFIG", "SET", "slowlog-log-slower-than", "0")
        r("CONFIG", "SET", "slowlog-max-len", str(args.n * 40 + 10000))
        enqueue()
        r("SLOWLOG", "RESET")
        drain()
        r("CONFIG", "SET", "slowlog-log-slower-than", "-1")
        drain_scripts = slowlog_by_script(r, args.n)
        r("SLOWLOG", "RESET")
    finally:
        for name in ("worker", "api", "redis"):
            stop(procs.get(name))
        shutil.rmtree(d, ignore_errors=True)  # logs included: nothing left behind in /tmp

    n = n_ok
    per = lambda usec: round(usec / n, 2)  # noqa: E731
    # Commands Redis ran per task, scripts' inner commands included: exact, so it
    # shows a change of cost that the busy host's timing noise can hide.
    ours = {"info", "config|resetstat", "config|set", "config", "slowlog", "slowlog|reset", "zcard"}
    calls = lambda st: sum(c for name, (c, _) in st.items() if name not in ours)  # noqa: E731
    enq_us = enq.get("evalsha", (0, 0))[1]
    drain_us = drained.get("evalsha", (0, 0))[1]
    logged = sum(s[1] for s in drain_scripts.values()) or 1
    claim = [s for s in drain_scripts.values() if s[2]]
    rest = {sha: s for sha, s in drain_scripts.items() if not s[2]}
    complete_sha = min(rest, key=lambda sha: abs(rest[sha][0] - n)) if rest else None
    if complete_sha and rest[complete_sha][0] < n / 4:
        complete_sha = None
    share = lambda usec: drain_us * usec / logged  # noqa: E731
    claim_us = share(sum(s[1] for s in claim))
    complete_us = share(rest[complete_sha][1]) if complete_sha else 0
    out = {
        "lifecycle_us": per(enq_us + drain_us),
        "enqueue_us": per(enq_us),
        "drain_us": per(drain_us),
        "claim_us": per(claim_us),
        "complete_us": per(complete_us),
        "other_scripts_us": per(drain_us - claim_us - complete_us),
        "calls_enqueue": per(calls(enq)),
        "calls_drain": per(calls(drained)),
        "redis_cpu_enqueue_us": per(cpu1 - cpu0),
        "redis_cpu_drain_us": per(cpu3 - cpu2),
        "redis_cpu_us": per(cpu1 - cpu0 + cpu3 - cpu2),
        "all_commands_us": per(sum(u for _, u in enq.values()) + sum(u for _, u in drained.values())),
        "claim_calls": sum(s[0] for s in claim),
        "complete_calls": rest[complete_sha][0] if complete_sha else 0,
        "enqueue_s": round(enq_s, 2),
        "drain_s": round(drain_s, 2),
    }
    log(f"run {i}: {out}")
    if args.detail:
        for phase, st in (("enqueue", enq), ("drain", drained)):
            rows = sorted(((u, c, name) for name, (c, u) in st.items() if name not in ours), reverse=True)
            log(f"{phase}, per task: " + ", ".join(f"{name} {c / n:.2f}x {u / n:.2f}us" for u, c, name in rows))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--bin-dir", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                                                      "release"))
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--detail", action="store_true", help="log each command's calls and usec per task")
    args = ap.parse_args()
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        os.sched_setaffinity(0, {1})  # the HTTP client shares CPU 1 with the API and worker
    runs = [one_run(args, i + 1) for i in range(args.runs)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    low = {k: min(r[k] for r in runs)
           for k in ("lifecycle_us", "enqueue_us", "drain_us", "claim_us", "complete_us", "redis_cpu_us")}
    print(json.dumps({"n": args.n, "runs": args.runs, "bin_dir": args.bin_dir, "median": med, "min": low}))


if __name__ == "__main__":
    main()
