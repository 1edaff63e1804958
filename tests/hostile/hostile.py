"""Hostile requests against a running dev server (scripts/test starts it).

Sends several hundred requests a stranger could send, over raw sockets so nothing is tidied on
the way: malformed, deep and huge JSON, invalid UTF-8 and NUL bytes, odd methods, traversal,
header tricks, very long and non-ASCII ids, huge numbers, broken framing. Then checks:

- no answer is a 5xx;
- every answer a handler gave has a JSON error body (or a JSON-RPC error, for /mcp); framing
  the HTTP layer itself refuses before any handler sees a request (a malformed request line, an
  oversized header) is answered by it with a bare 4xx, as a load balancer would;
- the server is still up (/api/v1/health);
- every 202 it answered has an execution that finishes.

Usage: python hostile.py BASE_URL STATE_DIR
"""

import hashlib
import hmac
import json
import socket
import sys
import time
import urllib.parse

ADMIN_KEY = "swy_dev_admin_key_for_local_use_only"
DEMO_SECRET = "demo-webhook-secret-change-me"


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except Exception:
            return None


def exchange(host, port, raw, timeout=20.0):
    """Send raw bytes, read the answer until the server closes (we always send Connection: close)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        try:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    if not data:
        return Answer(None, {}, b"")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1]) if len(lines[0].split(b" ")) > 1 else None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = dechunk(body)
    return Answer(status, headers, body)


def dechunk(data):
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return out


def request(method, path, headers=(), body=b"", version=b"HTTP/1.1", content_length=True):
    if isinstance(method, str):
        method = method.encode()
    if isinstance(path, str):
        path = path.encode()
    lines = [method + b" " + path + b" " + version, b"Host: 127.0.0.1", b"Connection: close"]
    for name, value in headers:
        name = name.encode() if isinstance(name, str) else name
        value = value.encode() if isinstance(value, str) else value
        lines.append(name + b": " + value)
    if content_length and body is not None:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def nested(depth, open_=b"[", close=b"]"):
    return open_ * depth + b"1" + close * depth


def github(body, delivery=None, event=b"push", secret=DEMO_SECRET):
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = [("Content-Type", "application/json"), ("X-GitHub-Event", event), ("X-Hub-Signature-256", signature)]
    headers.append(("X-GitHub-Delivery", delivery if delivery is not None else ("h-%d" % time.time_ns())))
    return headers


def main():
    base, state = sys.argv[1], sys.argv[2]
    parsed = urllib.parse.urlparse(base)
    host, port = parsed.hostname, parsed.port
    key = open(state + "/demo-api-key").read().strip()
    api = [("x-fastn-api-key", key), ("x-fastn-space-id", "demo"), ("Content-Type", "application/json")]
    mcp = api + [("x-fastn-space-tenantid", "acme"), ("Accept", "application/json, text/event-stream")]

    cases = []  # (name, raw bytes, kind) kind: "handler" | "mcp" | "framing"

    def add(name, raw, kind="handler"):
        cases.append((name, raw, kind))

    # --- JSON that must not be carried: every entry point -------------------------------------
    bodies = {
        "deep 65": b'{"a": ' + nested(64) + b"}",
        "deep 1000": nested(1000),
        "deep 100000": nested(100000),
        "deep objects": b'{"a":' * 500 + b"1" + b"}" * 500,
        "lone surrogate": b'{"a": "\\ud800"}',
        "lone low surrogate": b'{"a": "\\udc00x"}',
        "huge exponent": b'{"n": -1e999999}',
        "5000 digits": b'{"n": ' + b"9" * 5000 + b"}",
        "truncated": b'{"ref": "refs/heads/ma',
        "trailing garbage": b'{"a": 1} trailing',
        "invalid utf-8": b'{"a": "\xff\xfe"}',
        "nul in string": b'{"a": "x\x00y"}',
        "raw nul": b'\x00\x00\x00',
        "not json": b"hello world",
        "empty": b"",
        "array": b"[1, 2, 3]",
        "string": b'"just a string"',
        "number": b"12345678901234567890123456789",
        "null": b"null",
        "duplicate keys": b'{"a": 1, "a": 2}',
        "bom": b'\xef\xbb\xbf{"a": 1}',
        "control chars": b'{"a": "\x01\x02"}',
        "very long key": b'{"' + b"k" * 100000 + b'": 1}',
        "many keys": b"{" + b",".join(b'"k%d": %d' % (i, i) for i in range(20000)) + b"}",
    }
    for name, body in bodies.items():
        add("webhook signed " + name, request("POST", "/webhooks/acme/github", github(body), body))
        add("webhook unsigned " + name, request("POST", "/webhooks/acme/github", [("Content-Type", "application/json")], body))
        add("api tenants " + name, request("POST", "/api/v1/tenants", api, body))
        add("api workflow " + name, request("POST", "/api/v1/tenants/acme/workflows", api, body))
        add("api run " + name, request("POST", "/api/v1/tenants/acme/workflows/demo-push-summary/run", api, body))
        add("mcp " + name, request("POST", "/mcp", mcp, body), "mcp")

    # Valid pushes with odd but legal content: these are accepted and must finish.
    for i, payload in enumerate([
        b'{"ref": "refs/heads/main", "commits": []}',
        b'{"a": ' + nested(63) + b"}",
        b'{"emoji": "\\ud83d\\ude00", "n": 1e308, "big": 123456789012345678901234567890}',
        b'{"unicode": "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"}',
    ]):
        add("webhook accepted %d" % i, request("POST", "/webhooks/acme/github", github(payload), payload))

    # --- delivery ids ----------------------------------------------------------------------------
    body = b'{"ref": "refs/heads/main"}'
    for name, delivery in [
        ("long id", b"x" * 10000),
        ("non-ascii id", "délivery-é".encode()),
        ("invalid utf-8 id", b"id-\xff\xfe"),
        ("id with spaces", b"a b c"),
        ("empty id", b""),
        ("id with quotes", b'"\'<>'),
    ]:
        add("webhook " + name, request("POST", "/webhooks/acme/github", github(body, delivery), body))

    # --- methods, paths, traversal ---------------------------------------------------------------
    paths = [
        "/webhooks/acme/github", "/webhooks/acme", "/webhooks", "/webhooks/nobody/github",
        "/webhooks/acme/nope", "/webhooks/../api/v1/spaces", "/webhooks/%2e%2e/api", "/webhooks/acme/github/../../x",
        "/webhooks/acme%2fgithub", "/webhooks/%00/github", "/webhooks/%ff%fe/github", "/webhooks/acme/github%00",
        "/api/v1/tenants/..", "/api/v1/tenants/%2e%2e/workflows", "/api/v1/tenants/acme/workflows/%2F",
        "/api/v1/tenants/acme/executions/ex_%00", "/api/v1/%zz", "/api/v1/tenants/" + "a" * 5000,
        "/api/v1/tenants/acme/executions?limit=-1", "/api/v1/tenants/acme/executions?limit=1e99",
        "/api/v1/tenants/acme/executions?cursor=%ff%fe", "/api/v1/tenants/acme/executions?cursor=!!!",
        "/api/v1/tenants/acme/executions?cursor=" + "A" * 3000, "/api/v1/dlq?queue=../../etc",
        "/api/v1/tenants/acme/events?limit=abc", "/mcp/../api", "/nothing", "/" + "a/" * 500,
    ]
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO", "HEAD"]:
        for path in paths:
            kind = "mcp" if path.startswith("/mcp") else "handler"
            add("%s %s" % (method, path[:60]), request(method, path, api, b"" if method in ("GET", "HEAD") else b"{}"), kind)

    # --- headers: keys, versions, injection, odd values -------------------------------------------
    header_cases = [
        ("non-utf8 key", [("x-fastn-api-key", b"swy_\xff\xfe"), ("x-fastn-space-id", "demo")]),
        ("nul key", [("x-fastn-api-key", b"swy_\x00"), ("x-fastn-space-id", "demo")]),
        ("long key", [("x-fastn-api-key", "swy_" + "a" * 20000), ("x-fastn-space-id", "demo")]),
        ("bearer junk", [("Authorization", "Bearer \xff"), ("x-fastn-space-id", "demo")]),
        ("bad space", [("x-fastn-api-key", key), ("x-fastn-space-id", "../demo")]),
        ("non-utf8 space", [("x-fastn-api-key", key), ("x-fastn-space-id", b"d\xffmo")]),
        ("bad tenant header", [("x-fastn-api-key", key), ("x-fastn-space-id", "demo"), ("x-fastn-space-tenantid", "a#b")]),
        ("crlf in value", [("x-fastn-api-key", key + "\r\nX-Injected: 1"), ("x-fastn-space-id", "demo")]),
        ("no headers", []),
    ]
    for name, headers in header_cases:
        # A NUL byte makes the header itself invalid HTTP: the HTTP layer refuses it.
        kind = "framing" if any(b"\x00" in (v if isinstance(v, bytes) else v.encode()) for _, v in headers) else "handler"
        for path in ["/api/v1/tenants", "/api/v1/tenants/acme/executions", "/api/v1/spaces/demo"]:
            add("header %s %s" % (name, path), request("GET", path, headers), kind)
    for version in [b"2025-06-18\xff", b"\x00", b"9999-99-99", b"x" * 5000, b"2025-06-18, 2025-03-26"]:
        ping = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
        kind = "framing" if b"\x00" in version else "mcp"
        add("mcp version %r" % version[:20], request("POST", "/mcp", mcp + [("MCP-Protocol-Version", version)], ping), kind)

    # --- MCP messages ------------------------------------------------------------------------------
    rpc = [
        b'{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}',
        b'{"jsonrpc":"2.0","id":1e400,"method":"ping"}',
        b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}',
        b'{"jsonrpc":"2.0","id":[1],"method":"ping"}',
        b'{"jsonrpc":"1.0","id":1,"method":"ping"}',
        b'{"jsonrpc":"2.0","id":1,"method":12}',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nope"}}',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"switchyard_run_flow","arguments":' + nested(64) + b"}}",
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"string"}',
        b'{"jsonrpc":"2.0","id":1,"method":"' + b"m" * 10000 + b'"}',
        b"[" + b",".join([b'{"jsonrpc":"2.0","id":1,"method":"ping"}'] * 50) + b"]",
        b"[]",
        b'[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}]',
        b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
        b'{"jsonrpc":"2.0","id":1,"result":{}}',
        b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"\\ud800"}}',
        b'{"jsonrpc":"2.0","id":"\\u0000","method":"ping"}',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"\xff"}}',
    ]
    for body in rpc:
        for version in [b"2025-03-26", b"2025-11-25"]:
            add("mcp rpc %r" % body[:40], request("POST", "/mcp", mcp + [("MCP-Protocol-Version", version)], body), "mcp")

    # --- framing -----------------------------------------------------------------------------------
    framing = [
        ("bad chunk size", b"POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n"),
        ("chunk too short", b"POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nabc"),
        ("body shorter than length", b"POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 100\r\n\r\n{}"),
        ("two lengths", b"POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n{}"),
        ("length and chunked", b"POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
        ("negative length", b"POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: -1\r\n\r\n"),
        ("over the limit", b"POST /webhooks/acme/github HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 99999999999\r\n\r\n"),
        ("http/0.9", b"GET /\r\n\r\n"),
        ("garbage line", b"\x00\x01\x02 / HTTP/1.1\r\n\r\n"),
        ("space in path", b"GET /api/v1/ health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        ("long header", b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n"),
        ("many headers", b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(500)) + b"\r\n"),
        ("folded header", b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-A: 1\r\n  continued\r\n\r\n"),
        ("bad header name", b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX A: 1\r\n\r\n"),
        ("unknown version", b"GET /api/v1/health HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n"),
    ]
    for name, raw in framing:
        add("framing " + name, raw, "framing")
    huge = b'{"a": "' + b"x" * (11 * 1024 * 1024) + b'"}'
    add("webhook over 10 MiB", request("POST", "/webhooks/acme/github", github(huge), huge))
    big = b'{"a": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    add("webhook over 1 MiB", request("POST", "/webhooks/acme/github", github(big), big))

    # --- flows nobody should be able to store, and one that runs away ------------------------------
    for expr in ["[" * 1024 + "1" + "]" * 1024, "1" + "+1" * 2047, "-" * 1024 + "1", ".|" * 2047 + ".", "def f: 1 + f; f",
                 '"x" * 1e12', "reduce range(40) as $x (\"x\"; . + .)", "[range(1e9)]", "0 | until(false; .)"]:
        flow = {"name": "hostile", "trigger": {"type": "manual"}, "steps": [{"id": "a", "kind": "transform", "expr": expr}]}
        add("flow %s" % expr[:30], request("POST", "/api/v1/tenants/acme/workflows", api, json.dumps(flow).encode()))
    yaml_bomb = b"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
    add("yaml bomb", request("POST", "/api/v1/tenants/acme/workflows", [(k, v) for k, v in api if k != "Content-Type"] + [("Content-Type", "application/yaml")], yaml_bomb))
    add("yaml deep", request("POST", "/api/v1/tenants/acme/workflows", [(k, v) for k, v in api if k != "Content-Type"] + [("Content-Type", "application/yaml")], b"[" * 10000))

    # --- run them -----------------------------------------------------------------------------------
    failures = []
    accepted = []
    created = []
    statuses = {}
    for name, raw, kind in cases:
        answer = exchange(host, port, raw)
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
        if answer.status is None:
            if kind != "framing":
                failures.append("%s: no answer" % name)
            continue
        if answer.status >= 500:
            failures.append("%s: %d %r" % (name, answer.status, answer.body[:200]))
            continue
        # The valid pushes are the control group: if they are not accepted, the tenant or the
        # key is missing and every other answer proves nothing.
        if name.startswith("webhook accepted") and answer.status != 202:
            failures.append("%s: expected 202, got %d %r" % (name, answer.status, answer.body[:200]))
        is_head = raw.startswith(b"HEAD ")
        if kind == "framing" and not answer.body:
            continue
        if answer.status in (200, 201, 202):
            body = answer.json()
            if answer.status == 201 and name.startswith("flow ") and isinstance(body, dict) and body.get("id"):
                created.append(body["id"])
            if answer.status == 202 and isinstance(body, dict):
                for run in body.get("runs") or []:
                    accepted.append(run.get("execution_id"))
                if body.get("execution_id"):
                    accepted.append(body["execution_id"])
            continue
        if is_head or answer.status == 204:
            continue
        body = answer.json()
        if kind == "mcp" and isinstance(body, dict) and isinstance(body.get("error"), dict):
            continue
        if not (isinstance(body, dict) and isinstance(body.get("error"), dict) and "code" in body["error"]):
            failures.append("%s: %d without a JSON error body: %r" % (name, answer.status, answer.body[:200]))

    # The runaway flows that could be stored run, and fail on their limits.
    for flow in created:
        answer = exchange(host, port, request("POST", "/api/v1/tenants/acme/workflows/%s/run" % flow, api, b"{}"))
        if answer.status != 202:
            failures.append("running stored flow %s: %r %r" % (flow, answer.status, answer.body[:200]))
        else:
            accepted.append((answer.json() or {}).get("execution_id"))

    health = exchange(host, port, request("GET", "/api/v1/health"))
    if health.status != 200:
        failures.append("the server is not healthy after the run: %r" % health.status)

    # Every 202 is an execution that finishes.
    deadline = time.time() + 120
    pending = [e for e in accepted if e]
    while pending and time.time() < deadline:
        still = []
        for execution in pending:
            answer = exchange(host, port, request("GET", "/api/v1/tenants/acme/executions/" + execution, api))
            status = (answer.json() or {}).get("status")
            if status not in ("succeeded", "failed", "cancelled"):
                still.append(execution)
        pending = still
        if pending:
            time.sleep(0.5)
    for execution in pending:
        failures.append("accepted execution %s did not finish" % execution)

    print("hostile requests: %d sent, answers by status %s, %d accepted runs finished"
          % (len(cases), dict(sorted((str(k), v) for k, v in statuses.items())), len(accepted) - len(pending)))
    if len(cases) < 300:
        failures.append("only %d hostile requests" % len(cases))
    if failures:
        print("\n".join("FAIL " + f for f in failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
