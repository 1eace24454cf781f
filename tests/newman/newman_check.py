"""Run the vendor's Postman collection with newman and check every request's outcome.

Called by scripts/newman.sh once Odoo serves the demo database. Plain Python (no odoo
import, standard library only) so that it runs beside any Odoo process:

1. creates, through JSON-RPC as the administrator, the partner that the collection's
   single-record requests (GET/PUT/DELETE ``/partners/123``) will address;
2. writes a copy of the collection in which the literal ``123`` of those URLs becomes
   ``{{partner_id}}`` (the vendor's file itself is left untouched) and runs
   ``newman run`` on it with ``--env-var`` for base_url, bearer_token and partner_id;
3. reads newman's JSON report and compares each request's status (and a few body
   facts) with tests/newman/expected.json, prints a table and a closing line
   ``newman: N passed, N failed``; exits 1 on any failure.

The collection's own test script expects 200 from every request, the Error Scenarios
included, so newman's exit code and assertion count are reported for information only.
"""

import argparse
import copy
import json
import os
import subprocess
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PARTNER_ID_VAR = "{{partner_id}}"
PLACEHOLDER_SEGMENT = "123"


def jsonrpc(base_url, service, method, *args):
    payload = {"jsonrpc": "2.0", "method": "call", "id": 1,
               "params": {"service": service, "method": method, "args": list(args)}}
    request = urllib.request.Request(
        base_url + "/jsonrpc", data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.loads(response.read())
    if answer.get("error"):
        raise RuntimeError("JSON-RPC %s.%s failed: %s" % (service, method, json.dumps(answer["error"])[:2000]))
    return answer["result"]


def create_partner(base_url, db, login, password):
    """The record the collection's /partners/123 requests work on; DELETE removes it at the end."""
    uid = jsonrpc(base_url, "common", "authenticate", db, login, password, {})
    if not uid:
        raise RuntimeError("JSON-RPC login %r refused on database %r" % (login, db))
    return jsonrpc(
        base_url, "object", "execute_kw", db, uid, password, "res.partner", "create",
        [{"name": "Newman Partner", "email": "newman@example.com", "phone": "+100200300", "is_company": False}],
    )


def walk(items, folder=()):
    """(folder path, request item) for every request, in the collection's order."""
    for item in items:
        if "item" in item:
            yield from walk(item["item"], folder + (item["name"],))
        else:
            yield folder, item


def parametrize(collection):
    """A copy whose URL path segment ``123`` is ``{{partner_id}}``; returns (copy, replaced count)."""
    result = copy.deepcopy(collection)
    replaced = 0
    for _folder, item in walk(result["item"]):
        url = item["request"].get("url")
        if not isinstance(url, dict):
            continue
        path = url.get("path") or []
        if PLACEHOLDER_SEGMENT in path:
            url["path"] = [PARTNER_ID_VAR if segment == PLACEHOLDER_SEGMENT else segment for segment in path]
            url["raw"] = url["raw"].replace("/" + PLACEHOLDER_SEGMENT, "/" + PARTNER_ID_VAR)
            replaced += 1
    return result, replaced


def response_json(execution):
    stream = (execution.get("response") or {}).get("stream") or {}
    data = stream.get("data") if isinstance(stream, dict) else None
    if not data:
        return None
    try:
        return json.loads(bytes(data).decode("utf-8"))
    except ValueError:
        return None


def substitute(value, variables):
    if isinstance(value, str) and value in variables:
        return variables[value]
    return value


def check_body(expected, body, status, variables):
    """Problems found in the response body (empty list when all is well)."""
    problems = []
    if body is None:
        return ["no JSON body"]
    if status >= 400:
        if not isinstance(body, dict) or body.get("status_code") != status:
            problems.append("error body without status_code %s" % status)
        elif not (body.get("message") or body.get("error")):
            problems.append("error body without message/error")
    if expected.get("body_is_list") and not isinstance(body, list):
        problems.append("expected a JSON array")
    for key, want in (expected.get("body") or {}).items():
        want = substitute(want, variables)
        got = body.get(key) if isinstance(body, dict) else None
        if got != want:
            problems.append("%s=%r, expected %r" % (key, got, want))
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--login", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--token", default="demo-token")
    parser.add_argument("--collection", required=True)
    parser.add_argument("--newman", required=True, help="path of the newman executable")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--expected", default=os.path.join(HERE, "expected.json"))
    args = parser.parse_args()

    with open(args.expected, encoding="utf-8") as handle:
        expected = json.load(handle)["requests"]
    with open(args.collection, encoding="utf-8") as handle:
        collection = json.load(handle)

    partner_id = create_partner(args.base_url, args.db, args.login, args.password)
    print("newman: the collection's /partners/123 requests address partner %s (created for this run)" % partner_id)
    variables = {PARTNER_ID_VAR: partner_id}
    runnable, replaced = parametrize(collection)
    collection_copy = os.path.join(args.workdir, "collection.json")
    report = os.path.join(args.workdir, "newman-report.json")
    with open(collection_copy, "w", encoding="utf-8") as handle:
        json.dump(runnable, handle, indent=2)

    command = [
        args.newman, "run", collection_copy,
        "--env-var", "base_url=%s" % args.base_url,
        "--env-var", "bearer_token=%s" % args.token,
        "--env-var", "partner_id=%s" % partner_id,
        "--reporters", "cli,json", "--reporter-json-export", report,
        "--reporter-cli-no-failures", "--color", "off", "--disable-unicode", "--timeout-request", "60000",
    ]
    sys.stdout.flush()
    newman_rc = subprocess.call(command)

    rows, failed = [], 0
    try:
        with open(report, encoding="utf-8") as handle:
            run = json.load(handle)["run"]
    except (OSError, ValueError, KeyError) as exc:
        print("newman: no JSON report (%s); newman exited %s" % (exc, newman_rc))
        print("newman: 0 passed, %d failed" % len(expected))
        return 1

    folders = {item["name"]: " / ".join(folder + (item["name"],)) for folder, item in walk(collection["item"])}
    executions = {}
    order = []
    for execution in run.get("executions", []):
        full_name = folders.get(execution["item"]["name"], execution["item"]["name"])
        executions.setdefault(full_name, []).append(execution)
        order.append(full_name)
    vendor = {}  # the collection's own assertions: name -> [failed, total]
    for execution in run.get("executions", []):
        for assertion in execution.get("assertions") or []:
            counts = vendor.setdefault(assertion.get("assertion", "?"), [0, 0])
            counts[0] += bool(assertion.get("error"))
            counts[1] += 1

    expected_order = [request["name"] for request in expected]
    for request in expected:
        name, want = request["name"], request["status"]
        runs = executions.get(name) or []
        if len(runs) != 1:
            rows.append((name, want, "-", "FAIL: executed %d times" % len(runs)))
            failed += 1
            continue
        execution = runs[0]
        response = execution.get("response")
        if not response:
            error = (execution.get("requestError") or {}).get("message", "no response")
            rows.append((name, want, "-", "FAIL: %s" % error))
            failed += 1
            continue
        got = response.get("code")
        problems = [] if got == want else ["status"]
        problems += check_body(request, response_json(execution), got or 0, variables)
        rows.append((name, want, got, "ok" if not problems else "FAIL: " + "; ".join(problems)))
        failed += bool(problems)
    unexpected = [name for name in executions if name not in expected_order]
    for name in unexpected:
        rows.append((name, "-", executions[name][0].get("response", {}).get("code", "-"), "FAIL: not expected"))
        failed += 1
    ran_in_order = [name for name in order if name in expected_order] == expected_order

    width = max(len(row[0]) for row in rows)
    print()
    print("%-*s  %8s  %3s  %s" % (width, "request", "expected", "got", "result"))
    print("%s  %s  %s  %s" % ("-" * width, "-" * 8, "-" * 3, "-" * 6))
    for name, want, got, result in rows:
        print("%-*s  %8s  %3s  %s" % (width, name, want, got, result))
    print()
    print("newman: requests ran in the collection's order: %s" % ("yes" if ran_in_order else "NO"))
    if not ran_in_order:
        failed += 1
    print("newman: the collection's own test script (informative; it expects 200 even from the Error Scenarios), "
          "newman exited %s:" % newman_rc)
    for assertion, (bad, total) in vendor.items():
        print("newman:   %-40s %2d of %2d failed" % (assertion, bad, total))
    passed = len(rows) - sum(1 for row in rows if row[3] != "ok")
    print("newman: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
