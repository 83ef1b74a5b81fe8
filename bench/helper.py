#!/usr/bin/env python3
"""Small stdlib-only helpers for bench/run.sh (progress on stderr, data on stdout).

  helper.py freeports N                 N free TCP ports on 127.0.0.1, space separated
  helper.py ready BASE_URL TIMEOUT_S [PID...]
                                        wait for GET /readyz == 200, then for one noop
                                        task to round-trip to SUCCESS (exit 1 on timeout,
                                        or at once when one of the PIDs has exited)
  helper.py probe-longpoll BASE_URL S   check GET /tasks/<id>?wait=S on a 1 s sleep task;
                                        prints "ok", "ignored: ..." or "bad: ..." (exit 0)
  helper.py combine RESULTS_DIR         read <target>-summary.json, <target>-*.json and
                                        meta.json there; print the one-line report
"""
import glob
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

FIELDS = [  # report field, summarize.py metric, statistic
    ("enqueue_rps", "enqueue_rps", "median"),
    ("e2e_tasks_per_s", "e2e_tasks_per_s", "median"),
    ("e2e_lost", "e2e_lost", "max"),  # worst run: any lost task matters
    ("latency_p50_ms", "e2e_latency_p50_ms", "median"),
    ("latency_p99_ms", "e2e_latency_p99_ms", "median"),
    ("get_rps", "get_rps", "median"),
    ("api_peak_rss_mib", "rss_mib.api.peak_sampled", "median"),
    ("worker_peak_rss_mib", "rss_mib.worker.peak_sampled", "median"),
]
TERMINAL = {"SUCCESS", "FAILURE", "REVOKED"}
# warn when a phase's host CPU outside the measured trees exceeds this share of one core;
# undisturbed runs here show up to ~15-20 % (kernel networking under wrk load)
OTHER_CPU_WARN = 0.3


def log(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)


def http(method, url, body=None, timeout=5.0):
    """-> (status, parsed JSON or raw text or None)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw, st = r.read(), r.status
    except urllib.error.HTTPError as e:
        raw, st = e.read(), e.code
    try:
        return st, json.loads(raw)
    except ValueError:
        return st, raw.decode("utf-8", "replace")[:300]


def freeports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    print(" ".join(map(str, ports)))


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def ready(base, timeout_s, pids=()):
    deadline = time.monotonic() + timeout_s
    last = None

    def dead():
        gone = [p for p in pids if not alive(p)]
        if gone:
            log(f"process(es) {gone} exited before the service was ready; last: {last}")
        return gone

    while time.monotonic() < deadline:  # 1. /readyz
        if dead():
            return 1
        try:
            st, body = http("GET", base + "/readyz", timeout=2)
            last = f"/readyz -> {st} {body!r}"[:200]
            if st == 200:
                break
        except OSError as e:
            last = f"/readyz -> {type(e).__name__}: {e}"[:200]
        time.sleep(0.1)
    else:
        log(f"not ready after {timeout_s} s: {last}")
        return 1
    tid = None
    while time.monotonic() < deadline:  # 2. one noop round trip
        if dead():
            return 1
        try:
            if tid is None:
                st, body = http("POST", base + "/tasks", {"name": "noop"})
                last = f"POST /tasks -> {st} {body!r}"[:200]
                if st // 100 == 2 and isinstance(body, dict) and body.get("task_id"):
                    tid = body["task_id"]
            else:
                st, body = http("GET", f"{base}/tasks/{tid}")
                last = f"GET /tasks/{tid} -> {st} {body!r}"[:300]
                if st == 200 and isinstance(body, dict) and body.get("status") == "SUCCESS":
                    return 0
        except OSError as e:
            last = f"{type(e).__name__}: {e}"[:200]
        time.sleep(0.1)
    log(f"no noop round trip within {timeout_s} s: {last}")
    return 1


def probe_longpoll(base, wait_s):
    """A 1 s sleep task observed with one ?wait= GET: a server that long-polls answers
    SUCCESS after about 1 s; one that ignores the parameter answers at once with a
    non-final state (harmless: httpbench then short-polls); anything else is bad."""
    try:
        st, body = http("POST", base + "/tasks", {"name": "sleep", "args": {"seconds": 1}})
        if st // 100 != 2 or not isinstance(body, dict) or not body.get("task_id"):
            print(f"bad: POST sleep -> {st} {body!r}"[:300])
            return 0
        tid = body["task_id"]
        t0 = time.monotonic()
        st, body = http("GET", f"{base}/tasks/{tid}?wait={wait_s:g}", timeout=wait_s + 10)
        dt = time.monotonic() - t0
    except OSError as e:
        print(f"bad: {type(e).__name__}: {e}"[:300])
        return 0
    status = body.get("status") if isinstance(body, dict) else None
    if st != 200:
        print(f"bad: GET ?wait={wait_s:g} -> HTTP {st} {body!r}"[:300])
    elif status == "SUCCESS" and dt < wait_s + 2:
        print(f"ok: SUCCESS after {dt:.2f} s")
    elif status not in TERMINAL and dt < 0.5:
        print(f"ignored: answered {status!r} after {dt:.2f} s")
    elif status not in TERMINAL:
        print(f"bad: answered {status!r} only after {dt:.2f} s (wait={wait_s:g})")
    else:
        print(f"bad: answered {status!r} after {dt:.2f} s")
    return 0


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def machine():
    m = {"nproc": os.cpu_count(), "kernel": platform.release(), "arch": platform.machine()}
    try:
        with open("/proc/cpuinfo") as f:
            m["cpu_model"] = next((ln.split(":", 1)[1].strip() for ln in f
                                   if ln.startswith("model name")), None)
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(ln for ln in f if ln.startswith("MemTotal:")).split()[1])
        m["mem_total_mib"] = kb // 1024
    except (OSError, StopIteration, ValueError):
        pass
    try:
        with open("/etc/os-release") as f:
            m["os"] = next((ln.split("=", 1)[1].strip().strip('"') for ln in f
                            if ln.startswith("PRETTY_NAME=")), None)
    except OSError:
        pass
    m["python"] = platform.python_version()
    try:
        import uvloop  # noqa: F401  (the harness uses it when importable)
        m["harness_loop"] = "uvloop " + uvloop.__version__
    except ImportError:
        m["harness_loop"] = "asyncio"
    v = sh(["wrk", "--version"]) or ""
    m["wrk"] = v.split("\n")[0].split(" [")[0] or None
    v = sh(["redis-server", "--version"]) or ""
    m["redis"] = next((w.split("=", 1)[1] for w in v.split() if w.startswith("v=")), None)
    m["rustc"] = sh(["rustc", "--version"])
    return m


def load_runs(d, target):
    runs = []
    for p in sorted(glob.glob(os.path.join(d, f"{target}-*.json")),
                    key=lambda p: int(p.rsplit("-", 1)[1].split(".")[0])
                    if p.rsplit("-", 1)[1].split(".")[0].isdigit() else 0):
        if p.endswith("-summary.json"):
            continue
        try:
            with open(p) as f:
                line = f.read().strip()
            if line:
                runs.append((os.path.basename(p), json.loads(line.splitlines()[-1])))
        except (OSError, ValueError) as e:
            log(f"skipping {p}: {e}")
    return runs


def target_fields(d, target, warnings):
    path = os.path.join(d, f"{target}-summary.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        metrics = json.load(f)["metrics"]
    out = {}
    for field, key, stat in FIELDS:
        s = metrics.get(key)
        out[field] = s.get(stat) if s else None
    for name, run in load_runs(d, target):
        errs = dict(run.get("client_errors") or {})
        probe_404 = run.get("unknown_id_get") is None and errs.get("get_http_404", 0) > 0
        if probe_404:
            # httpbench GETs one random unknown id after warm-up; celeriac answers 404 by
            # design (DESIGN.md: "an unknown task id is a 404"), Celery a fake PENDING.
            errs["get_http_404"] -= 1
            errs = {k: v for k, v in errs.items() if v}
        for w in run.get("warnings") or []:
            if probe_404 and w.startswith("client errors:"):
                if errs:
                    warnings.append(f"{target} ({name}): client errors (not counting the expected "
                                    f"404 for the unknown-id probe): {errs}")
                continue
            warnings.append(f"{target} ({name}): {w}")
        # httpbench's interference check counts only processes alive at the end of a
        # phase; "other" (host busy CPU outside the listed trees, the harness and wrk,
        # incl. irq/softirq) also sees short-lived ones: compilers, test runs, scripts
        for ph, v in (run.get("cpu_s") or {}).items():
            wall, other = v.get("wall_s") or 0, v.get("other")
            if wall >= 1 and other is not None and other > OTHER_CPU_WARN * wall:
                warnings.append(f"{target} ({name}): {ph}: {100 * other / wall:.0f}% of a core busy "
                                "outside the measured processes, harness and wrk (other load on "
                                "the host, e.g. short-lived build or test processes)")
        lat = run.get("latency") or {}
        if lat.get("lost"):
            warnings.append(f"{target} ({name}): latency phase lost {lat['lost']} task(s) "
                            f"(statuses {lat.get('statuses')})")
    return out


def combine(d):
    with open(os.path.join(d, "meta.json")) as f:
        meta = json.load(f)
    warnings = list(meta.pop("warnings", []))
    cel = target_fields(d, "celeriac", warnings)
    ref = target_fields(d, "reference", warnings)
    ratio = None
    if cel is not None and ref is not None:
        ratio = {}
        for field, _, _ in FIELDS:
            a, b = cel.get(field), ref.get(field)
            ratio[field] = round(a / b, 3) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None
    m = machine()
    m.update(meta.pop("machine", {}))
    out = {"celeriac": cel, "reference": ref, "ratio": ratio, "machine": m,
           "config": meta, "warnings": warnings}
    line = json.dumps(out, separators=(",", ":"))
    with open(os.path.join(d, "result.json"), "w") as f:
        f.write(line + "\n")
    print(line)
    return 0


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    cmd = a[0]
    if cmd == "freeports":
        return freeports(int(a[1]))
    if cmd == "ready":
        return ready(a[1].rstrip("/"), float(a[2]), [int(p) for p in a[3:]])
    if cmd == "probe-longpoll":
        return probe_longpoll(a[1].rstrip("/"), float(a[2]))
    if cmd == "combine":
        return combine(a[1])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main() or 0)
