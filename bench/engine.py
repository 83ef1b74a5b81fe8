#!/usr/bin/env python3
"""The engine phases of issue 13 (everything that is not an HTTP phase of httpbench.py).

  bench/engine.py run --out DIR [--phases LIST] [--runs N] [--bin-dir D] [--bullmq-dir D]
  bench/engine.py report DIR      merge DIR/result.json (HTTP phases) and DIR/engine.json
                                  into DIR/report.json and DIR/report.md (the table)

Phases (each on a fresh private redis-server and fresh release processes):

  drain     50,000 `noop` pre-filled (POST /tasks/batch, or POST /tasks when the
            endpoint is missing), no worker running; then one worker process
            (--drain-concurrency, 64 like BullMQ's row) drains them, each task under its
            own lease. Rate = tasks / (first claim seen .. queue and leases empty),
            observed by ZCARD every 5 ms.
  bullmq    ../shared/bench/bullmq `node bench.mjs process 64` (N=50,000, removeOnComplete
            {count:1000}) on its own private redis-server; interleaved with `drain`.
  batch     POST /tasks/batch, 1,000 `noop` per request, 50 requests, 1 and 4 connections;
            skipped with a note when the endpoint answers 404/405. Then the library call
            (examples/batch_enqueue: Queue::enqueue_batch), 1 and 4 concurrent callers.
  idle      1 API + 2 workers, no tasks, 60 s (--idle-s): CPU of the three processes
            from /proc/<pid>/stat, Redis commands/s from INFO stats (our own INFO excluded).
  redismem  no worker: INFO used_memory before and after 100,000 queued `noop`.
  growth    claim+complete at 1,000 and at 1,000,000 queued (--growth-depth; the pre-fill
            takes about 12 s per run): rate of the first 1,000 completions and Redis
            EVALSHA µs per completed task, one worker.
  scale     drain of 50,000 pre-filled with 1, 2 and 4 worker processes.
  cost      bench/redis_cost.py (Redis µs per task lifecycle, INFO commandstats).

Prints nothing on stdout; writes DIR/engine.json; progress on stderr. stdlib only.
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from redis_cost import NS, commandstats, cpu_usec, freeports, post_tasks, start_redis, stop, wait_ready  # noqa: E402

QUEUE = f"{{{NS}}}:queue:default"
LEASES = f"{{{NS}}}:leases"
CLK_TCK = os.sysconf("SC_CLK_TCK")
ALL_PHASES = ["drain", "bullmq", "batch", "idle", "redismem", "growth", "scale", "cost"]


def log(*a):
    print(f"[engine {time.strftime('%H:%M:%S')}]", *a, file=sys.stderr, flush=True)


def med(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    return round(statistics.median(xs), 3) if xs else None


class Stack:
    """A private redis-server, an optional API and any number of workers."""

    def __init__(self, args, label):
        self.args = args
        self.dir = os.path.join(args.out, label)
        os.makedirs(self.dir, exist_ok=True)
        self.rport, self.aport = freeports(2)
        self.env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"),
                        CELERIAC_BROKER_URL=f"redis://127.0.0.1:{self.rport}", CELERIAC_NAMESPACE=NS)
        self.redis, self.r = start_redis(self.rport, self.dir)
        self.api = None
        self.workers = []

    def start_api(self):
        self.api = subprocess.Popen([os.path.join(self.args.bin_dir, "celeriac-api")],
                                    env=dict(self.env, CELERIAC_HOST="127.0.0.1", PORT=str(self.aport),
                                             CELERIAC_AUTH=os.environ.get("CELERIAC_AUTH", "off")),
                                    stdout=open(os.path.join(self.dir, "api.log"), "ab"),
                                    stderr=subprocess.STDOUT)

    def start_worker(self, concurrency):
        i = len(self.workers)
        p = subprocess.Popen([os.path.join(self.args.bin_dir, "celeriac-worker"), "--concurrency",
                              str(concurrency), "--queues", "default", "--name", f"bench-{i}-{os.getpid()}"],
                             env=self.env, stdout=open(os.path.join(self.dir, f"worker-{i}.log"), "ab"),
                             stderr=subprocess.STDOUT)
        self.workers.append(p)
        return p

    def stop_workers(self):
        for w in self.workers:
            stop(w)
        self.workers = []

    def ready(self):
        """API up and one noop round trip (needs a worker for the moment), then no worker."""
        self.start_api()
        self.start_worker(1)
        if not wait_ready(self.aport):
            raise RuntimeError(f"stack not ready (logs in {self.dir})")
        self.stop_workers()
        deadline = time.monotonic() + 10
        while self.r("ZCARD", LEASES) and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self):
        self.stop_workers()
        stop(self.api, 10)
        try:
            self.r("SHUTDOWN", "NOSAVE")
        except (OSError, RuntimeError):
            pass
        stop(self.redis, 10)


def post_json(port, path, body, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    resp = c.getresponse()
    data = resp.read()
    if conn is None:
        c.close()
    return resp.status, data


def batch_endpoint(port):
    """None when POST /tasks/batch works, else why not (e.g. 'HTTP 405')."""
    st, data = post_json(port, "/tasks/batch", {"tasks": [{"name": "noop"}]})
    if st // 100 == 2:
        return None
    return f"HTTP {st} {data[:120].decode('utf-8', 'replace')}"


def prefill(stack, n):
    """n noop tasks queued through the batch endpoint when it exists; -> how."""
    if batch_endpoint(stack.aport) is None:  # the probe queued one task
        ok = 1 + enqueue_batches(stack.aport, n - 1, 1000, 2)[1]
        how = "POST /tasks/batch (1,000 per request)"
    else:
        ok, _ = post_tasks(stack.aport, n, threads=16)
        how = "POST /tasks x 16 connections (no batch endpoint in this build)"
    queued = stack.r("ZCARD", QUEUE)
    if queued < n:
        raise RuntimeError(f"prefill: {queued} of {n} queued ({ok} accepted)")
    return how


def enqueue_batches(port, n, per, conns):
    """n tasks in requests of `per` over `conns` connections -> (seconds, accepted)."""
    body = {"tasks": [{"name": "noop"}] * per}
    reqs = [min(per, n - i) for i in range(0, n, per)]
    lock, done, errs = threading.Lock(), [0], []

    def run(share):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for k in share:
            st, data = post_json(port, "/tasks/batch", body if k == per else {"tasks": body["tasks"][:k]}, c)
            with lock:
                if st // 100 == 2:
                    done[0] += k
                else:
                    errs.append(f"HTTP {st}: {data[:120]!r}")
        c.close()

    shares = [reqs[i::conns] for i in range(conns)]
    t0 = time.monotonic()
    ts = [threading.Thread(target=run, args=(s,)) for s in shares]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errs:
        log(f"batch enqueue: {len(errs)} failed requests, first: {errs[0]}")
    return time.monotonic() - t0, done[0]


def watch_drain(r, n, until_done, timeout_s=300):
    """Polls queue + leases; -> (t_first_claim, t_reached, done) where done = n - queued - leased."""
    t_first = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        q, leased = r("ZCARD", QUEUE), r("ZCARD", LEASES)
        now = time.monotonic()
        if t_first is None and q < n:
            t_first = now
        done = n - q - leased
        if done >= until_done and (until_done < n or (q == 0 and leased == 0)):
            return t_first, now, done
        time.sleep(0.005)
    raise RuntimeError(f"drain: not done within {timeout_s} s")


def drain_run(args, label, n, workers, concurrency):
    s = Stack(args, label)
    try:
        s.ready()
        how = prefill(s, n)
        s.r("CONFIG", "RESETSTAT")
        cpu0 = cpu_usec(s.r)
        for _ in range(workers):
            s.start_worker(concurrency)
        t_first, t_end, done = watch_drain(s.r, n, n)
        cpu1 = cpu_usec(s.r)
        # The workers' CPU from their start (start-up included, a few ms).
        worker_us = sum(proc_ticks(w.pid) for w in s.workers) * 1e6 / CLK_TCK
        st = commandstats(s.r)
        rate = n / (t_end - t_first)
        out = {"tasks_per_s": round(rate, 1), "secs": round(t_end - t_first, 3), "prefill": how,
               "workers": workers, "concurrency": concurrency,
               "redis_evalsha_us_per_task": round(st.get("evalsha", (0, 0))[1] / n, 2),
               "redis_cpu_us_per_task": round((cpu1 - cpu0) / n, 2),
               "worker_cpu_us_per_task": round(worker_us / n, 2)}
        log(f"{label}: {out}")
        return out
    finally:
        s.close()


def bullmq_run(args, label):
    if not args.bullmq_dir or not os.path.exists(os.path.join(args.bullmq_dir, "node_modules", "bullmq")):
        raise RuntimeError(f"no BullMQ install at {args.bullmq_dir} (run.sh installs it)")
    s = Stack(args, label)
    try:
        p = subprocess.run(["node", "bench.mjs", "process", str(args.bullmq_concurrency)], cwd=args.bullmq_dir,
                           env=dict(os.environ, REDIS_PORT=str(s.rport), N=str(args.drain_n)),
                           capture_output=True, text=True, timeout=600)
        with open(os.path.join(s.dir, "bullmq.log"), "w") as f:
            f.write(p.stderr)
        if p.returncode != 0:
            raise RuntimeError(f"bench.mjs exit {p.returncode}: {p.stderr[-300:]}")
        out = json.loads(p.stdout.strip().splitlines()[-1])
        out = {"tasks_per_s": round(out["jobs_per_s"], 1), "secs": round(out["secs_first_to_last"], 3),
               "rss_peak_mib": round(out["rss_peak_mib"], 1), "concurrency": args.bullmq_concurrency}
        log(f"{label}: {out}")
        return out
    finally:
        s.close()


def batch_run(args, label):
    s = Stack(args, label)
    try:
        s.ready()
        why = batch_endpoint(s.aport)
        if why is not None:
            log(f"{label}: skipped: POST /tasks/batch answers {why}")
            return {"skipped": f"POST /tasks/batch not available in this build ({why})"}
        out = {}
        for conns in (1, 4):
            secs, ok = enqueue_batches(s.aport, args.batch_n, 1000, conns)
            out[f"http_tasks_per_s_{conns}conn"] = round(ok / secs, 1)
        # The library call (examples/batch_enqueue.rs: Queue::enqueue_batch, no HTTP hop).
        lib = os.path.join(args.bin_dir, "examples", "batch_enqueue")
        if os.access(lib, os.X_OK):
            for callers in (1, 4):
                p = subprocess.run([lib, str(args.batch_n), "1000", str(callers)], env=s.env,
                                   capture_output=True, text=True, timeout=600)
                if p.returncode == 0:
                    out[f"library_tasks_per_s_{callers}caller"] = json.loads(p.stdout)["rate"]
                else:
                    log(f"{label}: batch_enqueue failed: {p.stderr.strip()[-300:]}")
        else:
            log(f"{label}: {lib} not built (cargo build --release --examples): library call not measured")
        log(f"{label}: {out}")
        return out
    finally:
        s.close()


def proc_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def idle_run(args, label):
    s = Stack(args, label)
    try:
        s.ready()
        s.start_worker(16)
        s.start_worker(16)
        time.sleep(5)  # startup and registration settle
        pids = {"api": s.api.pid, "worker-0": s.workers[0].pid, "worker-1": s.workers[1].pid}
        s.r("CONFIG", "RESETSTAT")
        t0 = time.monotonic()
        before = {k: proc_ticks(p) for k, p in pids.items()}
        c0 = int(dict(ln.split(":", 1) for ln in s.r("INFO", "stats").splitlines() if ":" in ln)["total_commands_processed"])
        time.sleep(args.idle_s)
        c1 = int(dict(ln.split(":", 1) for ln in s.r("INFO", "stats").splitlines() if ":" in ln)["total_commands_processed"])
        after = {k: proc_ticks(p) for k, p in pids.items()}
        secs = time.monotonic() - t0
        cpu = {k: round(100 * (after[k] - before[k]) / CLK_TCK / secs, 3) for k in pids}
        stats = commandstats(s.r)
        ours = {"info", "config|resetstat", "config"}
        by_cmd = {k: round(c / secs, 2) for k, (c, _) in stats.items() if k not in ours}
        out = {"secs": round(secs, 1), "cpu_pct_total": round(sum(cpu.values()), 3), "cpu_pct": cpu,
               "redis_cmds_per_s": round((c1 - c0 - 1) / secs, 2), "redis_cmds_per_s_by_command": by_cmd}
        log(f"{label}: {out}")
        return out
    finally:
        s.close()


def used_memory(r):
    return int(dict(ln.split(":", 1) for ln in r("INFO", "memory").splitlines() if ":" in ln)["used_memory"])


def redismem_run(args, label):
    s = Stack(args, label)
    try:
        s.ready()
        time.sleep(0.5)
        m0 = used_memory(s.r)
        how = prefill(s, args.mem_n)
        m1 = used_memory(s.r)
        stream = s.r("XLEN", f"{{{NS}}}:events")
        out = {"bytes_per_task": round((m1 - m0) / args.mem_n, 1), "tasks": args.mem_n, "prefill": how,
               "used_memory_before": m0, "used_memory_after": m1, "events_stream_len": stream}
        log(f"{label}: {out}")
        return out
    finally:
        s.close()


def growth_run(args, label, depth, k):
    s = Stack(args, label)
    try:
        s.ready()
        prefill(s, depth)
        s.r("CONFIG", "RESETSTAT")
        s.start_worker(args.worker_concurrency)
        t_first, t_end, done = watch_drain(s.r, depth, k)
        st = commandstats(s.r)
        out = {"depth": depth, "measured_tasks": done, "tasks_per_s": round(done / (t_end - t_first), 1),
               "redis_evalsha_us_per_task": round(st.get("evalsha", (0, 0))[1] / done, 2)}
        log(f"{label}: {out}")
        return out
    finally:
        s.close()


def cost_runs(args):
    p = subprocess.run([sys.executable, os.path.join(HERE, "redis_cost.py"), "--runs", str(args.runs),
                        "--bin-dir", args.bin_dir], capture_output=True, text=True, timeout=1800)
    with open(os.path.join(args.out, "redis_cost.log"), "w") as f:
        f.write(p.stderr)
    if p.returncode != 0:
        raise RuntimeError(f"redis_cost.py exit {p.returncode}: {p.stderr[-300:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def attempt(res, key, fn, *a):
    try:
        v = fn(*a)
    except Exception as e:  # noqa: BLE001  (one failed run is reported, the rest goes on)
        log(f"{key}: FAILED: {e}")
        res.setdefault("errors", []).append(f"{key}: {e}")
        return None
    return v


def run(args):
    phases = args.phases.split(",")
    bad = set(phases) - set(ALL_PHASES)
    if bad:
        sys.exit(f"unknown phases {sorted(bad)}; known: {','.join(ALL_PHASES)}")
    res = {"runs": args.runs, "phases": phases}
    t0 = time.monotonic()
    if "drain" in phases or "bullmq" in phases:
        cel, bull = [], []
        for i in range(1, args.runs + 1):  # interleaved, like run.sh's HTTP runs
            if "drain" in phases:
                cel.append(attempt(res, f"drain-{i}", drain_run, args, f"drain-{i}", args.drain_n, 1,
                                   args.drain_concurrency))
            if "bullmq" in phases:
                bull.append(attempt(res, f"bullmq-{i}", bullmq_run, args, f"bullmq-{i}"))
        for key, runs in (("drain", cel), ("bullmq_drain", bull)):
            ok = [r for r in runs if r]
            if ok:
                res[key] = {"runs": ok, "n": args.drain_n, "runs_ok": len(ok),
                            "median": {k: med([r[k] for r in ok]) for k in ok[0] if isinstance(ok[0][k], (int, float))}}
    if "batch" in phases:
        # Each run on a fresh stack; the figures are the medians, the runs are kept.
        runs = [attempt(res, f"batch-{i}", batch_run, args, f"batch-{i}") for i in range(1, args.runs + 1)]
        ok = [r for r in runs if r and "skipped" not in r]
        if ok:
            res["batch"] = {k: med([r[k] for r in ok if k in r]) for k in ok[0]}
            res["batch"]["runs"] = ok
        elif any(r and "skipped" in r for r in runs):
            res["batch"] = next(r for r in runs if r and "skipped" in r)
    if "idle" in phases:
        v = attempt(res, "idle", idle_run, args, "idle")
        if v is not None:
            res["idle"] = v
    if "redismem" in phases:
        v = attempt(res, "redismem", redismem_run, args, "redismem")
        if v is not None:
            res["redismem"] = v
    if "growth" in phases:
        g = {}
        for depth in (1000, args.growth_depth):
            runs = [attempt(res, f"growth-{depth}-{i}", growth_run, args, f"growth-{depth}-{i}", depth, 1000)
                    for i in range(1, args.runs + 1)]
            ok = [r for r in runs if r]
            if ok:
                g[str(depth)] = {"runs": ok, "median": {k: med([r[k] for r in ok]) for k in ("tasks_per_s",
                                                                                           "redis_evalsha_us_per_task")}}
        res["growth"] = g
    if "scale" in phases:
        sc = {}
        for w in (1, 2, 4):
            runs = [attempt(res, f"scale-{w}-{i}", drain_run, args, f"scale-{w}-{i}", args.scale_n, w,
                            args.worker_concurrency) for i in range(1, args.runs + 1)]
            ok = [r for r in runs if r]
            if ok:
                sc[str(w)] = {"runs": ok, "median": {"tasks_per_s": med([r["tasks_per_s"] for r in ok])}}
        res["scale"] = sc
    if "cost" in phases:
        v = attempt(res, "cost", cost_runs, args)
        if v is not None:
            res["cost"] = v
    res["wall_s"] = round(time.monotonic() - t0, 1)
    with open(os.path.join(args.out, "engine.json"), "w") as f:
        json.dump(res, f, indent=1)
    log(f"engine phases done in {res['wall_s']} s -> {args.out}/engine.json")
    return 1 if res.get("errors") else 0


# ---------------------------------------------------------------- report

def fmt(x, nd=1):
    if x is None:
        return "–"
    if isinstance(x, float) and abs(x) >= 1000:
        return f"{x:,.0f}"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def report(d):
    def load(name):
        p = os.path.join(d, name)
        if not os.path.exists(p):
            return {}
        with open(p) as f:
            return json.load(f)

    http_res, eng = load("result.json"), load("engine.json")
    cel, ref = http_res.get("celeriac") or {}, http_res.get("reference") or {}
    ratio = http_res.get("ratio") or {}
    cfg = http_res.get("config") or {}
    runs_http = (cfg.get("runs_ok") or {})
    rows = []  # (what, target, measured, ratio/compare, met, runs)

    def row(what, target, measured, comp, met, runs):
        rows.append({"what": what, "target": target, "measured": measured, "comparison": comp,
                     "met": met, "runs": runs})

    rh = f"{runs_http.get('celeriac', 0)} + {runs_http.get('reference', 0)}" if runs_http else "–"
    if cel:
        r = ratio.get("e2e_tasks_per_s")
        row(f"e2e over HTTP ({cfg.get('e2e_n', '20,000')} noop, tasks/s)", "≥ 20× Celery",
            f"{fmt(cel.get('e2e_tasks_per_s'))} vs Celery {fmt(ref.get('e2e_tasks_per_s'))}",
            f"{fmt(r, 1)}×" if r else "–", r is not None and r >= 20, rh)
        r = ratio.get("enqueue_rps")
        row("HTTP enqueue POST /tasks, 32 conns (req/s)", "≥ 45× Celery",
            f"{fmt(cel.get('enqueue_rps'))} vs Celery {fmt(ref.get('enqueue_rps'))}",
            f"{fmt(r, 1)}×" if r else "–", r is not None and r >= 45, rh)
        p99 = cel.get("latency_p99_ms")
        row("p99 POST → SUCCESS seen with ?wait=, 50 tasks/s (ms)", "≤ 2 ms",
            f"p50 {fmt(cel.get('latency_p50_ms'), 2)}, p99 {fmt(p99, 2)} (Celery {fmt(ref.get('latency_p99_ms'), 2)})",
            "–", p99 is not None and p99 <= 2, rh)
        row("GET /tasks/{id} (req/s)", "(reported)", f"{fmt(cel.get('get_rps'))} vs Celery {fmt(ref.get('get_rps'))}",
            f"{fmt(ratio.get('get_rps'), 1)}×" if ratio.get("get_rps") else "–", None, rh)
        a, w = cel.get("api_peak_rss_mib"), cel.get("worker_peak_rss_mib")
        row("RSS under the HTTP load incl. e2e (peak MiB)", "each ≤ 20 MiB",
            f"API {fmt(a)}, worker {fmt(w)} (Celery {fmt(ref.get('api_peak_rss_mib'))} / "
            f"{fmt(ref.get('worker_peak_rss_mib'))})", "–",
            a is not None and w is not None and a <= 20 and w <= 20, rh)
    c = (eng.get("cost") or {}).get("median")
    if c:
        v = c.get("lifecycle_us")
        row("Redis µs per task lifecycle (commandstats)", "≤ 45 µs",
            f"{fmt(v)} (enqueue {fmt(c.get('enqueue_us'))}, claim with completions {fmt(c.get('claim_us'))}, "
            f"complete alone {fmt(c.get('complete_us'))}; Redis CPU {fmt(c.get('redis_cpu_us'))})", "BullMQ ≈ 89",
            v is not None and v <= 45, str(eng["cost"].get("runs")))
    dr, bu = eng.get("drain"), eng.get("bullmq_drain")
    if dr or bu:
        a = dr and dr["median"].get("tasks_per_s")
        b = bu and bu["median"].get("tasks_per_s")
        r = a / b if a and b else None
        row(f"engine drain {(dr or bu)['n']:,} noop pre-filled, 1 worker process (tasks/s)", "≥ 3× BullMQ and > 37,500",
            f"{fmt(a)} (c={dr['runs'][0]['concurrency'] if dr else '–'}) vs BullMQ {fmt(b)} (c=64)",
            f"{fmt(r, 2)}×" if r else "–", r is not None and r >= 3 and a > 37500,
            f"{dr['runs_ok'] if dr else 0} + {bu['runs_ok'] if bu else 0}")
    bt = eng.get("batch")
    if bt is not None:
        if "skipped" in bt:
            row("batch enqueue POST /tasks/batch ×1,000 (tasks/s)", "≥ 80,000 via library",
                f"skipped: {bt['skipped']}", "–", None, "0")
        else:
            lib = max(bt.get("library_tasks_per_s_1caller") or 0, bt.get("library_tasks_per_s_4caller") or 0)
            row("batch enqueue ×1,000 per call (tasks/s)", "≥ 80,000 via library; HTTP close",
                f"library 1 caller {fmt(bt.get('library_tasks_per_s_1caller'))}, 4 callers "
                f"{fmt(bt.get('library_tasks_per_s_4caller'))}; HTTP 1 conn {fmt(bt.get('http_tasks_per_s_1conn'))}, "
                f"4 conns {fmt(bt.get('http_tasks_per_s_4conn'))}", "–", lib >= 80000 if lib else None,
                str(len(bt.get("runs") or [bt])))
    idl = eng.get("idle")
    if idl:
        row(f"idle {idl['secs']:.0f} s, 1 API + 2 workers", "< 1 % CPU; < 10 Redis cmds/s",
            f"{fmt(idl['cpu_pct_total'], 2)} % CPU, {fmt(idl['redis_cmds_per_s'], 1)} cmds/s", "–",
            idl["cpu_pct_total"] < 1 and idl["redis_cmds_per_s"] < 10, "1")
    rm = eng.get("redismem")
    if rm:
        row(f"Redis memory per queued noop ({rm['tasks']:,} queued)", "≤ 400 bytes", f"{fmt(rm['bytes_per_task'])} B",
            "–", rm["bytes_per_task"] <= 400, "1")
    g = eng.get("growth") or {}
    if len(g) == 2:
        lo, hi = (g[k]["median"] for k in sorted(g, key=int))
        depths = sorted(g, key=int)
        r = hi["tasks_per_s"] / lo["tasks_per_s"] if lo.get("tasks_per_s") and hi.get("tasks_per_s") else None
        row(f"growth: claim+complete at {int(depths[0]):,} vs {int(depths[1]):,} queued (first 1,000)",
            "flat (1,000 → 1,000,000)",
            f"{fmt(lo['tasks_per_s'])} vs {fmt(hi['tasks_per_s'])} tasks/s; EVALSHA "
            f"{fmt(lo['redis_evalsha_us_per_task'])} vs {fmt(hi['redis_evalsha_us_per_task'])} µs/task",
            f"{fmt(r, 2)}×" if r else "–", None, str(len(g[depths[0]]["runs"])))
    sc = eng.get("scale") or {}
    if sc:
        row("throughput with 1 / 2 / 4 worker processes (tasks/s, drain)", "reported",
            " / ".join(fmt(sc[k]["median"]["tasks_per_s"]) if k in sc else "–" for k in ("1", "2", "4")),
            "–", None, str(max(len(v["runs"]) for v in sc.values())))
    out = {"rows": rows, "http": http_res, "engine": eng}
    with open(os.path.join(d, "report.json"), "w") as f:
        json.dump(out, f, indent=1)
    m = http_res.get("machine") or {}
    lines = ["| what | target | measured (medians) | ratio | met | runs |", "|---|---|---|---|---|---|"]
    for r_ in rows:
        met = {True: "yes", False: "**no**", None: "–"}[r_["met"]]
        lines.append(f"| {r_['what']} | {r_['target']} | {r_['measured']} | {r_['comparison']} | {met} | {r_['runs']} |")
    lines.append("")
    if m:
        lines.append(f"Machine: {m.get('nproc')} vCPU {m.get('cpu_model')}, {m.get('mem_total_mib')} MiB, "
                     f"{m.get('os')}, Redis {m.get('redis')}, {m.get('rustc')}.")
    if cfg:
        lines.append(f"celeriac {cfg.get('celeriac_git')}, worker concurrency {cfg.get('worker_concurrency')}, "
                     f"harness: `{cfg.get('harness_args')}`.")
    warns = (http_res.get("warnings") or []) + (eng.get("errors") or [])
    if warns:
        lines.append("")
        lines.append("Warnings:")
        lines += [f"- {w}" for w in warns]
    with open(os.path.join(d, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--phases", default=",".join(ALL_PHASES))
    r.add_argument("--runs", type=int, default=3)
    r.add_argument("--bin-dir", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                                                     "release"))
    r.add_argument("--bullmq-dir")
    r.add_argument("--bullmq-concurrency", type=int, default=64)
    r.add_argument("--drain-n", type=int, default=50000)
    r.add_argument("--drain-concurrency", type=int, default=64)
    r.add_argument("--worker-concurrency", type=int, default=16)
    r.add_argument("--batch-n", type=int, default=50000)
    r.add_argument("--idle-s", type=float, default=60)
    r.add_argument("--mem-n", type=int, default=100000)
    r.add_argument("--growth-depth", type=int, default=1000000)
    r.add_argument("--scale-n", type=int, default=50000)
    p = sub.add_parser("report")
    p.add_argument("dir")
    a = ap.parse_args()
    if a.cmd == "run":
        os.makedirs(a.out, exist_ok=True)
        return run(a)
    return report(a.dir)


if __name__ == "__main__":
    sys.exit(main())
