#!/usr/bin/env python3
"""Cost of `GET /tasks?status=SUCCESS&limit=100` over N SUCCESS records (issue 8).

  bench/listing_cost.py [--sizes 1000,100000] [--bin-dir target/debug] [--requests 50]

For each size: a private redis-server, N SUCCESS task records written with their
status index entry (as the scripts write them, via `redis-cli --pipe`), a
celeriac-api; then the first page and the page after it, `--requests` times
each. Prints one JSON line per size: median latency (ms) of a first page and of
a next page, and Redis commands per request (INFO commandstats deltas, the
commands scripts run included). stdlib only.
"""
import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from redis_cost import freeports, start_redis  # noqa: E402

NS = "bench"


def resp_cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def fill(port, n):
    now = int(time.time() * 1000)
    path = tempfile.mktemp(prefix="listing_cost-", suffix=".resp")
    with open(path, "wb") as f:
        for i in range(n):
            tid = str(uuid.uuid4())
            created = now - n + i
            f.write(resp_cmd("HSET", f"{{{NS}}}:task:{tid}", "id", tid, "name", "noop", "queue", "default",
                             "status", "SUCCESS", "priority", 0, "attempts", 1, "retries", 0, "options", "{}",
                             "created_at", created, "finished_at", created + 1, "result", "null", "args", "{}"))
            f.write(resp_cmd("ZADD", f"{{{NS}}}:idx:status:SUCCESS", created, tid))
    with open(path, "rb") as f:
        subprocess.run(["redis-cli", "-p", str(port), "--pipe"], stdin=f, stdout=subprocess.DEVNULL, check=True)
    os.unlink(path)


def commands(r):
    info = r("INFO", "commandstats")
    total = 0
    for line in info.splitlines():
        if line.startswith("cmdstat_") and "calls=" in line:
            total += int(line.split("calls=")[1].split(",")[0])
    return total


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    t = time.perf_counter()
    c.request("GET", path)
    body = json.loads(c.getresponse().read())
    return (time.perf_counter() - t) * 1000, body


def one(args, n):
    rport, aport = freeports(2)
    d = tempfile.mkdtemp(prefix="listing_cost-")
    procs = []
    try:
        redis, r = start_redis(rport, d)
        procs.append(redis)
        fill(rport, n)
        env = dict(os.environ, CELERIAC_BROKER_URL=f"redis://127.0.0.1:{rport}", CELERIAC_NAMESPACE=NS,
                   CELERIAC_AUTH="off", CELERIAC_HOST="127.0.0.1", PORT=str(aport), RUST_LOG="warn")
        procs.append(subprocess.Popen([os.path.join(args.bin_dir, "celeriac-api")], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(200):
            try:
                get(aport, "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        path = "/tasks?status=SUCCESS&limit=100"
        _, page = get(aport, path)
        assert len(page["tasks"]) == 100, page
        cursor = page["next_cursor"]
        first, nxt, cmds = [], [], []
        for _ in range(args.requests):
            before = commands(r)
            ms, _ = get(aport, path)
            cmds.append(commands(r) - before - 1)  # minus the INFO itself
            first.append(ms)
            ms, _ = get(aport, f"{path}&cursor={cursor}")
            nxt.append(ms)
        return {"records": n, "first_page_ms": round(statistics.median(first), 2),
                "next_page_ms": round(statistics.median(nxt), 2),
                "redis_commands_per_request": statistics.median(cmds),
                "used_memory_mb": round(int(r("INFO", "memory").split("used_memory:")[1].split()[0]) / 2**20, 1)}
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,100000")
    ap.add_argument("--bin-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target",
                                                        "debug"))
    ap.add_argument("--requests", type=int, default=50)
    args = ap.parse_args()
    for n in [int(s) for s in args.sizes.split(",")]:
        print(json.dumps(one(args, n)), flush=True)


if __name__ == "__main__":
    main()
