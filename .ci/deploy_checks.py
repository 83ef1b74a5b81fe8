#!/usr/bin/env python3
"""Helpers for .ci/static-checks.sh and .ci/smoke-checks.sh (standard library + PyYAML
from the tools venv).

Subcommands:
  policy-marathon DIR         the app definitions say what issue #4 asks (beyond the schema)
  policy-k8s DIR              the same for the Kubernetes manifests
  policy-image REPO           Dockerfile, .dockerignore and docker-compose.yml
  group-sync DIR              marathon/group.json holds exactly redis/api/worker/beat.json
  split-yaml FILE OUTDIR      one file per document (for single-document schema checks)
  free-port                   print a free TCP port on 127.0.0.1
  http METHOD URL             print "<status> <body>" (status 000 when unreachable)
  roundtrip BASE_URL SECS     POST /tasks, then GET /tasks/{id} until SUCCESS

http and roundtrip send "Authorization: Bearer $CELERIAC_CI_TOKEN" when it is set.

Each policy prints one line per rule ("ok" or "FAIL") and exits 1 if any rule failed.
"""

import json
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

failures = 0


def rule(ok, text):
    global failures
    print(("  ok    " if ok else "  FAIL  ") + text)
    if not ok:
        failures += 1
    return ok


def done():
    sys.exit(1 if failures else 0)


# A URL that carries a literal password: scheme://user:password@host
URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:([^@/\s]+)@", re.I)


def literal_password(value):
    m = URL_WITH_PASSWORD.match(value or "")
    return bool(m) and not m.group(1).startswith("$")


# ---------------------------------------------------------------- Marathon

# The apps of marathon/group.json, in order.
APPS = ("redis", "api", "worker", "beat")


def port_mappings(app):
    return app.get("container", {}).get("portMappings", []) or app.get(
        "container", {}
    ).get("docker", {}).get("portMappings", [])


def policy_marathon(d):
    d = Path(d)
    apps = {n: json.loads((d / f"{n}.json").read_text()) for n in APPS}
    redis, api, worker, beat = apps["redis"], apps["api"], apps["worker"], apps["beat"]

    print("redis.json")
    cmd = redis.get("cmd", "")
    rule(redis.get("container", {}).get("docker", {}).get("image", "").startswith("redis:"), "official redis image")
    rule("--appendonly yes" in cmd, "redis-server --appendonly yes")
    m = re.search(r"--requirepass\s+(\S+)", cmd)
    rule(bool(m) and "$" in m.group(1), "--requirepass takes the password from the environment")
    pw = redis.get("env", {}).get("REDIS_PASSWORD")
    rule(isinstance(pw, dict) and "secret" in pw, "REDIS_PASSWORD comes from a Marathon secret")
    vols = redis.get("container", {}).get("volumes", [])
    rule(any(v.get("containerPath") == "/data" for v in vols), "volume mounted at /data")
    rule(any("persistent" in v for v in vols), "the /data volume is a local persistent volume")
    rule(any(c[0] == "hostname" for c in redis.get("constraints", [])), "hostname constraint keeps Redis with its volume")
    redis_ports = {i: p for i, p in enumerate(port_mappings(redis))}
    rule(
        any(
            hc.get("protocol") in ("TCP", "MESOS_TCP")
            and redis_ports.get(hc.get("portIndex", 0), {}).get("containerPort") == 6379
            for hc in redis.get("healthChecks", [])
        ),
        "TCP health check on 6379",
    )
    rule(redis.get("instances") == 1, "one instance")

    print("api.json")
    rule(api.get("instances") == 3, "3 instances")
    rule(re.search(r"(^|\s)entrypoint\.sh api(\s|$)", api.get("cmd", "")) is not None, "command entrypoint.sh api")
    rule(api.get("cmd", "").startswith("exec "), "the shell execs the entrypoint (SIGTERM reaches the binary)")
    names = {p.get("name") for p in port_mappings(api)}
    rule(len(port_mappings(api)) >= 1, "port mapping to the container port")
    labels = api.get("labels", {})
    rule(labels.get("HAPROXY_0_MODE") == "http", "label HAPROXY_0_MODE=http")
    rule(bool(labels.get("HAPROXY_0_VHOST")), "label HAPROXY_0_VHOST")
    rule(
        any(h.get("path") == "/healthz" and h.get("protocol") in ("HTTP", "MESOS_HTTP") for h in api.get("healthChecks", [])),
        "HTTP health check on /healthz",
    )
    rule(
        any(r.get("path") == "/readyz" and r.get("portName") in names for r in api.get("readinessChecks", [])),
        "readiness check on /readyz (on a named port)",
    )
    env = api.get("env", {})
    rule("CELERY_BROKER_URI" in env and "CELERY_RESULT_BACKEND" in env, "CELERY_BROKER_URI and CELERY_RESULT_BACKEND set")
    tokens = env.get("CELERIAC_API_TOKENS")
    rule(
        isinstance(tokens, dict) and tokens.get("secret") in api.get("secrets", {}),
        "CELERIAC_API_TOKENS comes from a Marathon secret (declared in `secrets`)",
    )
    rule("CELERIAC_AUTH" not in env, "auth is not turned off")
    up = api.get("upgradeStrategy", {})
    rule(up.get("minimumHealthCapacity") == 1 and up.get("maximumOverCapacity", 0) > 0, "upgrade keeps full capacity")

    print("worker.json")
    rule(worker.get("instances") == 3, "3 instances")
    rule(re.search(r"(^|\s)entrypoint\.sh worker(\s|$)", worker.get("cmd", "")) is not None, "command entrypoint.sh worker")
    rule(worker.get("cmd", "").startswith("exec "), "the shell execs the entrypoint (SIGTERM reaches the binary)")
    wenv = worker.get("env", {})
    health_port = int(wenv.get("CELERIAC_HEALTH_PORT", "0") or 0)
    wports = {i: p for i, p in enumerate(port_mappings(worker))}
    rule(
        any(
            h.get("path") == "/healthz" and wports.get(h.get("portIndex", 0), {}).get("containerPort") == health_port
            for h in worker.get("healthChecks", [])
        ),
        f"health check on the worker's health port ({health_port})",
    )
    grace = int(wenv.get("CELERIAC_GRACE_SECS", "30"))
    rule(worker.get("taskKillGracePeriodSeconds", 0) > grace, f"taskKillGracePeriodSeconds > worker grace ({grace} s)")

    print("beat.json")
    rule(beat.get("instances") == 2, "2 instances (leader-elected: one fires, the other stands by)")
    rule(re.search(r"(^|\s)entrypoint\.sh beat(\s|$)", beat.get("cmd", "")) is not None, "command entrypoint.sh beat")
    rule(beat.get("cmd", "").startswith("exec "), "the shell execs the entrypoint (SIGTERM reaches the binary)")
    benv = beat.get("env", {})
    bport = int(benv.get("CELERIAC_HEALTH_PORT", "0") or 0)
    bports = {i: p for i, p in enumerate(port_mappings(beat))}
    rule(
        any(
            h.get("path") == "/healthz" and bports.get(h.get("portIndex", 0), {}).get("containerPort") == bport
            for h in beat.get("healthChecks", [])
        ),
        f"health check on the health port ({bport}), as the worker's",
    )
    rule(
        [{k: v for k, v in h.items()} for h in beat.get("healthChecks", [])] == worker.get("healthChecks"),
        "health checks identical to the worker's",
    )
    rule(benv.get("CELERY_BROKER_URI") == wenv.get("CELERY_BROKER_URI"), "same broker secret as the worker")

    print("all apps")
    for name, app in apps.items():
        for k, v in app.get("env", {}).items():
            if isinstance(v, str):
                rule(not literal_password(v), f"{name}: env {k} carries no literal password")
    for name in ("api", "worker", "beat"):
        rule("/celeriac/redis" in apps[name].get("dependencies", []), f"{name} depends on /celeriac/redis")
    for name, app in apps.items():
        for k, v in app.get("env", {}).items():
            if isinstance(v, dict) and "secret" in v:
                rule(v["secret"] in app.get("secrets", {}), f"{name}: env {k} names a declared secret ({v['secret']})")
    done()


def group_sync(d):
    d = Path(d)
    group = json.loads((d / "group.json").read_text())
    want = [json.loads((d / f"{n}.json").read_text()) for n in APPS]
    rule(group.get("id") == "/celeriac", "group id /celeriac")
    rule(group.get("apps") == want, "group.json apps == " + ", ".join(f"{n}.json" for n in APPS))
    if failures:
        print("  regenerate: python3 -c 'import json; print(json.dumps({\"id\": \"/celeriac\", \"apps\": "
              "[json.load(open(f\"marathon/{n}.json\")) for n in (\"redis\", \"api\", \"worker\", \"beat\")]}, indent=2))'"
              " > marathon/group.json")
    done()


# ---------------------------------------------------------------- Kubernetes


def load_k8s(d):
    import yaml

    docs = []
    for f in sorted(Path(d).glob("*.yaml")):
        if f.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(f.read_text()):
            if doc:
                docs.append((f.name, doc))
    return docs


def containers(doc):
    return doc["spec"]["template"]["spec"].get("containers", [])


def env_of(c):
    return {e["name"]: e for e in c.get("env", [])}


def port_number(c, port):
    if isinstance(port, int):
        return port
    for p in c.get("ports", []):
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def probe_path(c, kind):
    p = c.get(kind) or {}
    return (p.get("httpGet") or {}).get("path"), port_number(c, (p.get("httpGet") or {}).get("port"))


def policy_k8s(d):
    import yaml

    docs = load_k8s(d)
    by_kind = {}
    for fname, doc in docs:
        by_kind.setdefault(doc["kind"], []).append((fname, doc))
    kust = yaml.safe_load((Path(d) / "kustomization.yaml").read_text())

    print("all manifests")
    for fname, doc in docs:
        rule("namespace" not in doc.get("metadata", {}), f"{fname}: {doc['kind']}/{doc['metadata']['name']} names no namespace")
    secrets = {}
    for fname, doc in by_kind.get("Secret", []):
        rule("example" in fname and fname not in kust.get("resources", []), f"{fname}: Secret is an example, not deployed")
        secrets[doc["metadata"]["name"]] = doc
    for fname, doc in docs:
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for c in containers(doc):
            for name, e in env_of(c).items():
                if re.search(r"PASSWORD|SECRET|TOKEN", name):
                    rule("valueFrom" in e, f"{fname}: {c['name']} env {name} comes from a Secret")
                rule(not literal_password(e.get("value", "")), f"{fname}: {c['name']} env {name} carries no literal password")

    print("redis")
    sts = [doc for _, doc in by_kind.get("StatefulSet", []) if doc["metadata"]["name"] == "celeriac-redis"]
    if rule(len(sts) == 1, "StatefulSet celeriac-redis"):
        s = sts[0]
        args = " ".join(containers(s)[0].get("command", []) + containers(s)[0].get("args", []))
        rule("--appendonly yes" in args, "AOF on (--appendonly yes)")
        rule("--requirepass $(REDIS_PASSWORD)" in args, "password from the Secret")
        rule(bool(s["spec"].get("volumeClaimTemplates")), "persistent volume claim template")

    deployments = {doc["metadata"]["name"]: doc for _, doc in by_kind.get("Deployment", [])}
    services = {doc["metadata"]["name"]: doc for _, doc in by_kind.get("Service", [])}

    print("api")
    api = deployments.get("celeriac-api")
    if rule(api is not None, "Deployment celeriac-api"):
        c = containers(api)[0]
        rule(c.get("args", [None])[0] == "api", "role api")
        rule(probe_path(c, "livenessProbe")[0] == "/healthz", "liveness /healthz")
        rule(probe_path(c, "readinessProbe")[0] == "/readyz", "readiness /readyz")
        rule("startupProbe" in c, "startup probe")
        env = env_of(c)
        ref = (env.get("CELERIAC_API_TOKENS", {}).get("valueFrom") or {}).get("secretKeyRef") or {}
        rule(bool(ref.get("name")) and bool(ref.get("key")), "CELERIAC_API_TOKENS from a Secret (secretKeyRef)")
        ex = secrets.get(ref.get("name"), {})
        rule(
            ref.get("key") in (ex.get("stringData") or {}) or ref.get("key") in (ex.get("data") or {}),
            f"secret.example.yaml shows the Secret {ref.get('name')} with key {ref.get('key')}",
        )
        rule("CELERIAC_AUTH" not in env, "auth is not turned off")
        labels = api["spec"]["template"]["metadata"]["labels"]
        svc = services.get("celeriac-api")
        rule(svc is not None and all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), "Service selects the API pods")
        pdbs = [doc for _, doc in by_kind.get("PodDisruptionBudget", [])]
        rule(
            any(all(labels.get(k) == v for k, v in p["spec"]["selector"]["matchLabels"].items()) for p in pdbs),
            "PodDisruptionBudget covers the API pods",
        )

    print("worker")
    worker = deployments.get("celeriac-worker")
    queues = ["default"]
    if rule(worker is not None, "Deployment celeriac-worker"):
        c = containers(worker)[0]
        env = env_of(c)
        rule(c.get("args", [None])[0] == "worker", "role worker")
        grace = int(env.get("CELERIAC_GRACE_SECS", {}).get("value", "30"))
        tgps = worker["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        rule(tgps > grace, f"terminationGracePeriodSeconds ({tgps}) > worker grace ({grace} s)")
        hp = int(env.get("CELERIAC_HEALTH_PORT", {}).get("value", "0") or 0)
        for kind in ("livenessProbe", "readinessProbe"):
            path, port = probe_path(c, kind)
            rule(path is not None and port == hp, f"{kind} on the health port {hp} ({path})")
        queues = env.get("CELERIAC_QUEUES", {}).get("value", "default").split(",")

    print("beat")
    beat = deployments.get("celeriac-beat")
    if rule(beat is not None, "Deployment celeriac-beat"):
        c = containers(beat)[0]
        env = env_of(c)
        rule(c.get("args", [None])[0] == "beat", "role beat")
        rule(beat["spec"].get("replicas") == 2, "2 replicas (leader-elected: one fires, the other stands by)")
        hp = int(env.get("CELERIAC_HEALTH_PORT", {}).get("value", "0") or 0)
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            path, port = probe_path(c, kind)
            rule(path is not None and port == hp, f"{kind} on the health port {hp} ({path})")
        if worker is not None:
            wc = containers(worker)[0]
            rule(
                all(c.get(k) == wc.get(k) for k in ("startupProbe", "livenessProbe", "readinessProbe")),
                "probes identical to the worker's",
            )
            rule(env.get("CELERIAC_BROKER_URL") == env_of(wc).get("CELERIAC_BROKER_URL"), "same broker URL as the worker")
    pols = [doc for _, doc in by_kind.get("NetworkPolicy", []) if doc["metadata"]["name"] == "celeriac-redis"]
    allowed = set()
    for p in pols:
        for ing in p["spec"].get("ingress", []):
            for frm in ing.get("from", []):
                for ex in (frm.get("podSelector") or {}).get("matchExpressions", []):
                    if ex.get("key") == "app.kubernetes.io/component":
                        allowed.update(ex.get("values", []))
    rule({"api", "worker", "beat"} <= allowed, f"NetworkPolicy lets api, worker and beat reach Redis ({sorted(allowed)})")

    print("keda")
    sos = [doc for _, doc in by_kind.get("ScaledObject", [])]
    if rule(len(sos) == 1, "one ScaledObject"):
        so = sos[0]["spec"]
        rule(so["scaleTargetRef"]["name"] == "celeriac-worker", "scales the worker Deployment")
        rule(so.get("minReplicaCount", 0) >= 1, "minReplicaCount >= 1 (running tasks are not scaled away)")
        trig = so["triggers"][0]
        meta = trig.get("metadata", {})
        rule(trig["type"] in ("metrics-api", "prometheus"), f"scaler on a figure the API exposes ({trig['type']})")
        if trig["type"] == "metrics-api":
            rule(meta.get("valueLocation") == "ready", "valueLocation: ready (GET /queues/{name})")
            m = re.match(r"^http://([a-z0-9-]+)\.[a-z0-9-]+\.svc(\.cluster\.local)?(:\d+)?/queues/([A-Za-z0-9_.-]+)$", meta.get("url", ""))
            rule(bool(m) and m.group(1) in services and m.group(4) in queues, f"url targets the API Service and a worker queue: {meta.get('url')}")
            rule(meta.get("authMode") == "bearer", "authMode: bearer (GET /queues/{name} needs a read token)")
            tas = {doc["metadata"]["name"]: doc for _, doc in by_kind.get("TriggerAuthentication", [])}
            ta = tas.get((trig.get("authenticationRef") or {}).get("name"))
            if rule(ta is not None, "authenticationRef names a TriggerAuthentication of k8s/"):
                refs = [r for r in ta["spec"].get("secretTargetRef", []) if r.get("parameter") == "token"]
                ref = refs[0] if refs else {}
                ex = secrets.get(ref.get("name"), {})
                rule(
                    ref.get("key") in (ex.get("stringData") or {}),
                    f"its token comes from the Secret {ref.get('name')} key {ref.get('key')} (shown in secret.example.yaml)",
                )
    done()


# ---------------------------------------------------------------- image and compose


def policy_image(repo):
    import yaml

    repo = Path(repo)
    text = (repo / "Dockerfile").read_text()
    lines = [ln.strip() for ln in re.sub(r"\\\n", " ", text).splitlines() if ln.strip() and not ln.strip().startswith("#")]
    froms = [ln for ln in lines if ln.upper().startswith("FROM ")]
    final = lines[lines.index(froms[-1]):]

    print("Dockerfile")
    rule(len(froms) >= 2, "multi-stage")
    rule(any("cargo build --release" in ln for ln in lines[: lines.index(froms[-1])]), "build stage runs cargo build --release")
    rule(any(ln.startswith("COPY Cargo.toml Cargo.lock") for ln in lines), "dependency layer from Cargo.toml + Cargo.lock")
    users = [ln.split(None, 1)[1] for ln in final if ln.upper().startswith("USER ")]
    rule(bool(users) and users[-1].split(":")[0] not in ("root", "0"), "runtime runs as a non-root user")
    rule('ENTRYPOINT ["entrypoint.sh"]' in final, 'ENTRYPOINT ["entrypoint.sh"]')
    rule('CMD ["api"]' in final, 'CMD ["api"]')
    rule(any(ln.startswith("EXPOSE ") for ln in final), "EXPOSE")
    rule("STOPSIGNAL SIGTERM" in final, "STOPSIGNAL SIGTERM")
    hc = [ln for ln in final if ln.startswith("HEALTHCHECK ")]
    rule(bool(hc) and not re.search(r"\b(curl|wget)\b", hc[0]), "HEALTHCHECK without curl")
    rule(any("celeriac-api" in ln and "celeriac-worker" in ln for ln in final if ln.startswith("COPY")), "both binaries in the runtime image")
    rule(any(ln.startswith("COPY") and "entrypoint.sh" in ln for ln in final), "entrypoint.sh in the runtime image")
    rule(
        any(ln.startswith("COPY") and "scripts/dev.sh" in ln and "/usr/local/libexec/celeriac/dev.sh" in ln for ln in final),
        "scripts/dev.sh in the runtime image (/usr/local/libexec/celeriac, where entrypoint.sh finds it)",
    )
    ignore = (repo / ".dockerignore").read_text().split()
    rule("target" in ignore and ".git" in ignore, ".dockerignore leaves out target/ and .git")

    print("docker-compose.yml")
    comp = yaml.safe_load((repo / "docker-compose.yml").read_text())
    svcs = comp["services"]
    redis = svcs.get("redis", {})
    rcmd = " ".join(str(x) for x in redis.get("command", []))
    rule("--appendonly yes" in rcmd and "--requirepass" in rcmd, "redis: --appendonly yes and a password")
    apis = [n for n, s in svcs.items() if s.get("command") == ["api"]]
    workers = [n for n, s in svcs.items() if s.get("command") == ["worker"]]
    rule(len(apis) == 2, f"2 API services ({', '.join(apis)})")
    rule(sum(svcs[n].get("deploy", {}).get("replicas", 1) for n in workers) == 3, "3 workers")
    lbs = [n for n, s in svcs.items() if set(apis) <= set(s.get("depends_on", {}))]
    rule(len(lbs) == 1 and bool(svcs[lbs[0]].get("ports")), "a load balancer in front of the APIs publishes the port")
    for n, s in svcs.items():
        rule("healthcheck" in s, f"{n}: health check")
        for dep, cond in (s.get("depends_on") or {}).items():
            rule(isinstance(cond, dict) and cond.get("condition") == "service_healthy", f"{n}: depends_on {dep} service_healthy")
        for k, v in (s.get("environment") or {}).items():
            rule(not literal_password(str(v)) or "${" in str(v), f"{n}: env {k} carries no literal password")
    beats = [n for n, s in svcs.items() if s.get("command") == ["beat"]]
    rule(len(beats) == 1, f"a beat (scheduler) service ({', '.join(beats)})")
    for n in beats:
        rule(svcs[n].get("healthcheck") == svcs[workers[0]].get("healthcheck") if workers else False, f"{n}: health check as the worker's")
    for n in apis:
        tok = str((svcs[n].get("environment") or {}).get("CELERIAC_API_TOKENS", ""))
        rule(tok.startswith("${CELERIAC_API_TOKENS"), f"{n}: CELERIAC_API_TOKENS from the environment file (.env)")
        rule("CELERIAC_AUTH" not in (svcs[n].get("environment") or {}), f"{n}: auth is not turned off")
    for n, s in svcs.items():
        if n not in apis:
            rule("CELERIAC_API_TOKENS" not in (s.get("environment") or {}), f"{n}: no API tokens (only the APIs need them)")
    for n in workers:
        grace = int(svcs[n].get("environment", {}).get("CELERIAC_GRACE_SECS", 30))
        sgp = svcs[n].get("stop_grace_period", "10s")
        rule(int(sgp.rstrip("s")) > grace, f"{n}: stop_grace_period {sgp} > worker grace {grace}s")
    done()


# ---------------------------------------------------------------- small tools


def split_yaml(path, outdir):
    import yaml

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    for i, doc in enumerate(d for d in yaml.safe_load_all(Path(path).read_text()) if d):
        name = f"{i:02d}-{doc['kind']}-{doc['metadata']['name']}.yaml"
        (out / name).write_text(yaml.safe_dump(doc, sort_keys=False))
        print(out / name)


def free_port():
    """A bindable port below the ephemeral range: a port from bind(0) could be taken as
    the local port of an outgoing connection before the server under test binds it."""
    import random

    try:
        lo_eph = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        lo_eph = 32768
    for _ in range(200):
        port = random.randint(10000, max(lo_eph - 1, 10001))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        print(port)
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def http(method, url, timeout=5):
    req = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method)
    if os.environ.get("CELERIAC_CI_TOKEN"):
        req.add_header("Authorization", "Bearer " + os.environ["CELERIAC_CI_TOKEN"])
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except Exception as e:  # noqa: BLE001 - any failure to connect is "000"
        return 0, str(e)


def roundtrip(base, secs):
    code, body = http("POST", base + "/tasks")
    print(f"  POST /tasks -> {code} {body.strip()[:200]}")
    if code != 202:
        return 1
    task_id = json.loads(body)["task_id"]
    deadline = time.monotonic() + float(secs)
    last = None
    while time.monotonic() < deadline:
        code, body = http("GET", f"{base}/tasks/{task_id}")
        if code == 200:
            last = json.loads(body)
            if last.get("status") in ("SUCCESS", "FAILURE", "REVOKED"):
                break
        time.sleep(0.2)
    print(f"  GET /tasks/{task_id} -> {code} {json.dumps(last)[:300] if last else body.strip()[:200]}")
    return 0 if last and last.get("status") == "SUCCESS" else 1


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "policy-marathon":
        policy_marathon(*args)
    elif cmd == "policy-k8s":
        policy_k8s(*args)
    elif cmd == "policy-image":
        policy_image(*args)
    elif cmd == "group-sync":
        group_sync(*args)
    elif cmd == "split-yaml":
        split_yaml(*args)
    elif cmd == "free-port":
        free_port()
    elif cmd == "http":
        code, body = http(args[0], args[1])
        print(f"{code:03d} {body}")
    elif cmd == "roundtrip":
        return roundtrip(args[0].rstrip("/"), args[1])
    else:
        print(f"unknown subcommand {cmd}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
