#!/usr/bin/env python3
"""Summarize a schemathesis NDJSON report for .ci/fuzz-checks.sh.

    fuzz_report.py REPORT.ndjson OUT_DIR GATING_CHECK[,...]

Prints one line per API operation, tab-separated:
    pass|fail <op> <cases and answers> <detail file>
An operation fails when a gating check failed on it (a 5xx, or a response that violates
the spec) or when it errored. Failures of the other checks are written to the detail
file as advisory notes. Each failure names the operation, the request and the answer.
"""

import base64
import json
import os
import sys
from collections import defaultdict


def body_text(body):
    if not body:
        return ""
    if isinstance(body, dict) and "$base64" in body:
        raw = base64.b64decode(body["$base64"])
    elif isinstance(body, dict) and "string" in body:
        raw = body["string"].encode()
    else:
        raw = json.dumps(body).encode()
    text = raw.decode("utf-8", "replace")
    return text if len(text) <= 600 else text[:600] + "..."


def main():
    report, out_dir, gating = sys.argv[1], sys.argv[2], set(sys.argv[3].split(","))
    cases = defaultdict(int)
    statuses = defaultdict(lambda: defaultdict(int))
    failures = defaultdict(dict)  # op -> (check, message) -> text
    notes = defaultdict(dict)
    errors = defaultdict(list)
    with open(report) as f:
        for line in f:
            event = json.loads(line)
            kind, data = next(iter(event.items()))
            if kind == "NonFatalError":
                label = data.get("label") or "(run)"
                value = data.get("value") or {}
                errors[label].append(f"{value.get('type', 'error')} in {data.get('phase')}: {str(value.get('message', ''))[:300]}")
                continue
            if kind != "ScenarioFinished":
                continue
            rec = data.get("recorder") or {}
            label = rec.get("label", "?")
            cases[label] += len(rec.get("cases", {}))
            for inter in (rec.get("interactions") or {}).values():
                code = ((inter or {}).get("response") or {}).get("status_code")
                if code is not None:
                    statuses[label][code] += 1
            for case_id, checks in (rec.get("checks") or {}).items():
                for check in checks:
                    if check.get("status") != "failure":
                        continue
                    info = (check.get("failure_info") or {}).get("failure") or {}
                    inter = (rec.get("interactions") or {}).get(case_id) or {}
                    req, resp = inter.get("request") or {}, inter.get("response") or {}
                    text = (
                        f"{check['name']} ({info.get('code', '')}): {info.get('title', '')}\n"
                        f"  {str(info.get('message', '')).strip()[:800]}\n"
                        f"  request:  {req.get('method', '')} {req.get('uri', '')} {body_text(req.get('body'))}\n"
                        f"  response: {resp.get('status_code', '')} {body_text(resp.get('content'))}"
                    )
                    if check["name"] in gating:
                        key = (check["name"], str(info.get("message", "")).split("\n")[0])
                        failures[label].setdefault(key, text)
                    else:
                        # Advisory: one example and a count per kind.
                        key = (check["name"], info.get("code", ""))
                        first, n = notes[label].get(key, (text, 0))
                        notes[label][key] = (first, n + 1)
    os.makedirs(out_dir, exist_ok=True)
    for i, label in enumerate(sorted(set(cases) | set(failures) | set(notes) | set(errors))):
        detail = os.path.join(out_dir, f"op-{i}.txt")
        with open(detail, "w") as f:
            for text in failures[label].values():
                f.write(text + "\n")
            for text in errors[label]:
                f.write("error: " + text + "\n")
            for text, n in notes[label].values():
                f.write(f"(advisory, {n} case{'s' if n > 1 else ''}, e.g.) " + text + "\n")
        status = "fail" if failures[label] or errors[label] else "pass"
        answers = ", ".join(f"{code}x{n}" for code, n in sorted(statuses[label].items()))
        print(f"{status}\t{label}\t{cases[label]} cases; answers {answers or 'none'}\t{detail}")


if __name__ == "__main__":
    main()
