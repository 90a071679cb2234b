"""The built Worker on bare workerd (`workerd serve`): no wrangler, no miniflare, no inspector.

`bench` (default): serves build/index.js + build/index_bg.wasm (as `wrangler deploy` uploads them)
from a generated config.capnp in which everything the Worker binds is served by workerd itself
(the JS workers of bench/workerd/): the KV namespaces TEMPLATES (seeded with kv-seed/, as
scripts/seed-kv does) and HOOK_STATE, the OtpLedger Durable Object (SQLite on a temporary
localDisk), the queues PROVISIONING / PROVISIONING_DLQ (a broker delivering batches to the Worker's
queue() handler), and the upstreams (JWKS, End User Messaging: globalOutbound). Vars: wrangler.toml
[vars]; compatibility date and flags: wrangler.toml. Then, per request kind (warm token, fresh
token, voice, replay, refused): workerd CPU per request, latency sequential and at concurrency 8
and 32, throughput, RSS; cold start (process, isolate, first request); the stand-in floor; the
event hook, the queue consumer and the template sync against the verifying loopback stand-ins of
tests/e2e/mocks. Every answer is checked; wrong answers are counted. Raw numbers:
build/bench/workerd.json. What each figure means: bench/README.md, section 5.

`--profile KIND`: instead of the bench, V8's CPU profile of N requests of KIND over workerd's
inspector (Chrome DevTools Protocol; the raw .cpuprofile under build/bench/), summarised per
function and per group (our wasm, the JS glue, workerd's API/runtime, GC, idle). `--no-ledger`: no
OTP_LEDGER binding (the fail-open path); the bench also runs `warm_token_no_ledger` beside
`warm_token`. `--build-dir DIR`: another build (e.g. one with the wasm names kept).

`serve`: the same process with every setting from the command line, up until Ctrl-C (section 6).

Usage (after `source scripts/env.sh`; never builds: run `bash scripts/build` first):
    .venv/bin/python bench/workerd_bench.py [bench] [--stand-ins inprocess|loopback] [--sequential 500]
        [--requests 2000] [--cold-rounds 5] [--only warm_token,voice,...] [--skip-upstreams]
    .venv/bin/python bench/workerd_bench.py --profile warm_token [--profile-requests 2000]
        [--profile-concurrency 8] [--sampling-us 50] [--profile-targets main|all] [--no-ledger] [--build-dir DIR]
    .venv/bin/python bench/workerd_bench.py serve [--port 8787] [--stand-ins inprocess|loopback|none]
        [--var NAME=VALUE ...] [--vars-file FILE] [--no-ledger] [--inspector-port PORT]
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import itertools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))

from _common import percentile  # noqa: E402
from bundle_size import gzip9  # noqa: E402
from e2e_latency import snapshot_build  # noqa: E402
from helpers import iso  # noqa: E402
from mocks._server import free_port, stop_group  # noqa: E402
from mocks.okta import MockOkta  # noqa: E402

WORKERD = ROOT / "node_modules" / "@cloudflare" / "workerd-linux-64" / "bin" / "workerd"
JS = ROOT / "bench" / "workerd"
FIXTURES = ROOT / "tests" / "fixtures" / "okta"
OUT = ROOT / "build" / "bench" / "workerd.json"
AKID = "AKIDLOCALWORKERD0001"
AWS_SECRET = "local-workerd-bench-secret-not-a-real-k"
START_TIMEOUT_S = 60
REQUEST_TIMEOUT_S = 10
PHASE_BUDGET_S = 90        # any load phase stops here, whatever is left (the rest counts as wrong)
BUILD_WAIT_S = 900
PHONES = 1000              # destination numbers cycled (one ledger object each; the warm-up creates them all)


# ---- the config --------------------------------------------------------------------------------
def capnp(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def wrangler_settings() -> dict:
    return tomllib.loads((ROOT / "wrangler.toml").read_text())


def consumers(cfg: dict) -> dict[str, dict]:
    return {c["queue"]: c for c in cfg.get("queues", {}).get("consumers", [])}


@dataclass
class Setup:
    """What one workerd process serves. `main=None`: the trivial Worker instead of the bundle."""
    vars: dict
    dir: Path                       # the config, the bundle copy and the JS stand-ins live here
    main: Path | None               # the build snapshot (index.js, index_bg.wasm)
    seed: Path | None               # the kv-seed bulk file ([{key, value}])
    jwks: str = '{"keys":[]}'
    outbound: str = "inprocess"     # inprocess | loopback | none
    consumer: bool = True           # the queue broker delivers to the Worker's queue() handler
    trivial_only: bool = False      # the process-start baseline: one trivial Worker, nothing else
    ledger: bool = True             # False: no OTP_LEDGER binding nor namespace (the Worker's fail-open path)
    inspector: int | None = None    # `--inspector-addr=127.0.0.1:<port>` (the Chrome DevTools Protocol)
    ports: dict = field(default_factory=lambda: {"http": free_port(), "control": free_port(),
                                                 "standins": free_port()})


def render(s: Setup) -> str:
    cfg = wrangler_settings()
    date = capnp(cfg["compatibility_date"])
    flags = ", ".join(capnp(f) for f in cfg.get("compatibility_flags", []))
    for f in ("kv.js", "queue.js", "standins.js", "trivial.js", "control.js"):
        shutil.copy(JS / f, s.dir / f)
    if s.seed:
        shutil.copy(s.seed, s.dir / "kv-seed.json")
    else:
        (s.dir / "kv-seed.json").write_text("[]")

    def worker(modules: str, bindings: list[str], extra: str = "", wflags: str = flags) -> str:
        return (f"(compatibilityDate = {date}, compatibilityFlags = [{wflags}], modules = [{modules}], "
                f"bindings = [{', '.join(bindings)}]{extra})")

    def esm(name: str) -> str:
        return f'(name = "{name}", esModule = embed "{name}")'

    trivial = worker(esm("trivial.js"), [])
    if s.trivial_only:
        return (f'using Workerd = import "/workerd/workerd.capnp";\nconst config :Workerd.Config = (\n'
                f'  services = [(name = "main", worker = {trivial})],\n'
                f'  sockets = [(name = "http", address = "127.0.0.1:{s.ports["http"]}", http = (), service = "main")]);\n')
    if s.main:
        for f in s.main.iterdir():
            if f.is_file():
                shutil.copy(f, s.dir / f.name)
        text = [f"(name = {capnp(k)}, text = {capnp(str(v))})" for k, v in sorted(s.vars.items())]
        ledger = ['(name = "OTP_LEDGER", durableObjectNamespace = (className = "OtpLedger"))'] if s.ledger else []
        namespaces = (', durableObjectNamespaces = [(className = "OtpLedger", uniqueKey = "okta-edge-hooks-OtpLedger", '
                      'enableSql = true)], durableObjectStorage = (localDisk = "do-disk")') if s.ledger else ""
        main = worker(
            # index.js imports "./index_bg.wasm": that module name, as wrangler uploads it.
            f'{esm("index.js")}, (name = "index_bg.wasm", wasm = embed "index_bg.wasm")',
            text + ['(name = "TEMPLATES", kvNamespace = "kv-templates")',
                    '(name = "HOOK_STATE", kvNamespace = "kv-hook-state")']
            + ledger + ['(name = "PROVISIONING", queue = "queue-provisioning")',
                        '(name = "PROVISIONING_DLQ", queue = "queue-dlq")'],
            namespaces + f', globalOutbound = "{"standins" if s.outbound == "inprocess" else "net"}"')
    else:
        main = trivial
    qc = consumers(cfg)

    def broker(queue: str, dlq: str | None) -> str:
        c = qc.get(queue, {})
        b = [f'(name = "QUEUE_NAME", text = {capnp(queue)})',
             f'(name = "MAX_BATCH_SIZE", text = "{c.get("max_batch_size", 10)}")',
             f'(name = "MAX_BATCH_TIMEOUT_MS", text = "{int(float(c.get("max_batch_timeout", 1)) * 1000)}")',
             f'(name = "MAX_RETRIES", text = "{c.get("max_retries", 3)}")']
        if s.consumer and s.main and queue in qc:
            b.append('(name = "CONSUMER", service = "main")')
        if dlq:
            b.append(f'(name = "DLQ", service = "{dlq}")')
        return worker(esm("queue.js"), b, wflags='"service_binding_extra_handlers"')

    producers = {p["binding"]: p["queue"] for p in cfg.get("queues", {}).get("producers", [])}
    main_q, dlq_q = producers["PROVISIONING"], producers["PROVISIONING_DLQ"]
    issuer = s.vars.get("OKTA_ISSUER", "")
    okta_origin = issuer.split("/oauth2/")[0]
    messaging = s.vars.get("AWS_SMS_VOICE_ENDPOINT", "")
    standins = worker(esm("standins.js"), [f"(name = \"JWKS\", text = {capnp(s.jwks)})",
                                           f"(name = \"OKTA_ORIGIN\", text = {capnp(okta_origin)})",
                                           f"(name = \"MESSAGING_ORIGIN\", text = {capnp(messaging)})",
                                           '(name = "NET", service = "net")'])
    kv = lambda seed: worker(esm("kv.js"), [f'(name = "SEED", json = embed "{seed}")'])  # noqa: E731
    (s.dir / "empty.json").write_text("[]")
    control = worker(esm("control.js"), [f'(name = "{n}", service = "{n}")' for n in
                                         ("kv-templates", "kv-hook-state", "queue-provisioning", "queue-dlq", "standins")])
    (s.dir / "do").mkdir(exist_ok=True)
    # `net`: where outbound fetches go when the stand-ins are not in process (loopback: the Python
    # stand-ins; none: anywhere, TLS checked against the usual CAs).
    allow = '["local"]' if s.outbound in ("inprocess", "loopback") else '["public", "private", "local"]'
    services = [
        f'(name = "main", worker = {main})',
        f'(name = "kv-templates", worker = {kv("kv-seed.json")})',
        f'(name = "kv-hook-state", worker = {kv("empty.json")})',
        f'(name = "queue-provisioning", worker = {broker(main_q, "queue-dlq")})',
        f'(name = "queue-dlq", worker = {broker(dlq_q, None)})',
        f'(name = "standins", worker = {standins})',
        f'(name = "control", worker = {control})',
        f'(name = "net", network = (allow = {allow}, tlsOptions = (trustBrowserCas = true)))',
        f'(name = "do-disk", disk = (path = {capnp(str(s.dir / "do"))}, writable = true))',
    ]
    sockets = [f'(name = "{n}", address = "127.0.0.1:{p}", http = (), service = "{"main" if n == "http" else n}")'
               for n, p in s.ports.items()]
    return ('using Workerd = import "/workerd/workerd.capnp";\nconst config :Workerd.Config = (\n  services = [\n    '
            + ",\n    ".join(services) + "\n  ],\n  sockets = [" + ", ".join(sockets) + "]);\n")


# ---- the process ------------------------------------------------------------------------------
class Workerd:
    """`workerd serve --experimental config.capnp` in its own process group, output to a log file.
    (--experimental: the queue broker's `service_binding_extra_handlers` and localDisk need it.)"""

    def __init__(self, setup: Setup, name: str):
        self.setup = setup
        self.port = setup.ports["http"]
        self.name = name
        config = setup.dir / "config.capnp"
        config.write_text(render(setup))
        self.log_path = setup.dir / "workerd.log"
        self._log = open(self.log_path, "wb")
        self.t_spawn = time.perf_counter()
        inspector = [f"--inspector-addr=127.0.0.1:{setup.inspector}"] if setup.inspector else []
        self.proc = subprocess.Popen([str(WORKERD), "serve", "--experimental", *inspector, str(config)], cwd=setup.dir,
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_accepting(self, timeout_s: float = START_TIMEOUT_S) -> float:
        """Seconds from spawn until the http socket accepts (workerd listens after every service is
        started: src/workerd/server/server.c++, Server::run)."""
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return time.perf_counter() - self.t_spawn
            if self.proc.poll() is not None:
                raise RuntimeError(f"workerd ({self.name}) exited with {self.proc.returncode}:\n{self.tail()}")
            if time.perf_counter() - self.t_spawn > timeout_s:
                raise RuntimeError(f"workerd ({self.name}) not accepting after {timeout_s}s:\n{self.tail()}")
            time.sleep(0.001)

    def tail(self, n: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")

    def cpu_s(self) -> float:
        """utime + stime of the process (all threads) from /proc/<pid>/stat."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_kb(self) -> dict:
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
        return out

    def call(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
             timeout: float = 30, port: int | None = None) -> tuple[int, bytes]:
        """One request on a fresh connection (the same signature as bench/_common.py's Wrangler.call,
        so bench/sync_bench.py's helpers take this process too)."""
        c = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def stats(self) -> dict:
        return json.loads(self.call("GET", "/stats", port=self.setup.ports["control"])[1])

    def stop(self):
        stop_group(self.proc, term_wait_s=5)
        self._log.close()


# ---- load --------------------------------------------------------------------------------------
def http_request(path: str, body: bytes, headers: dict) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode() + b"\r\n" + body


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
    status = int(head.split(" ", 2)[1])
    close = "connection: close" in head
    if "transfer-encoding: chunked" in head:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            body += await reader.readexactly(size + 2)
            if size == 0:
                return status, body[:-2], close
            body = body[:-2]
    length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0]) if "content-length:" in head else 0
    return status, await reader.readexactly(length), close


def drive(port: int, make: Callable[[int], bytes], check: Callable[[int, int, bytes], str | None], n: int,
          concurrency: int, first: int = 0) -> dict:
    """Requests `first`..`first+n-1` over `concurrency` keep-alive connections (asyncio, raw
    HTTP/1.1). Returns latencies (ms), wrong answers (index → reason) and the elapsed time."""
    lat: list[float] = []
    wrong: dict[int, str] = {}
    idx = itertools.count(first)

    async def connection():
        reader = writer = None
        while (i := next(idx)) < first + n:
            req = make(i)
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                t0 = time.perf_counter()
                writer.write(req)
                status, body, close = await _response(reader)
                lat.append((time.perf_counter() - t0) * 1000)
            except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                wrong[i] = f"{type(e).__name__}: {e}"
                writer = None
                continue
            if (why := check(i, status, body)) is not None:
                wrong[i] = why
            if close:
                writer.close()
                writer = None
        if writer is not None:
            writer.close()

    async def run():
        tasks = [asyncio.ensure_future(connection()) for _ in range(concurrency)]
        done, pending = await asyncio.wait(tasks, timeout=PHASE_BUDGET_S)
        for t in pending:
            t.cancel()
        return len(pending)

    t0 = time.perf_counter()
    stuck = asyncio.run(run())
    elapsed = time.perf_counter() - t0
    unanswered = max(0, n - len(lat) - len(wrong))  # the phase budget ran out
    return {"lat": lat, "wrong": wrong, "unanswered": unanswered, "elapsed_s": elapsed, "n": n,
            "concurrency": concurrency}


# ---- request kinds -----------------------------------------------------------------------------
class Telephony:
    """Okta telephony hook requests from a fixture: each its own eventId, destination numbers
    cycled over PHONES (`phone` fixes one), otpExpires in 30 minutes."""

    def __init__(self, fixture: str, phone_prefix: str = "+1415555", phone: str | None = None,
                 locale: str | None = None):
        body = json.loads((FIXTURES / fixture).read_text())
        if locale:
            body["data"]["messageProfile"]["locale"] = locale
        now = datetime.now(timezone.utc)
        body["eventId"] = "@@EVENT@@"
        body["eventTime"] = iso(now)
        body["data"]["messageProfile"]["otpExpires"] = iso(now + timedelta(minutes=30))
        body["data"]["messageProfile"]["phoneNumber"] = phone or "@@PHONE@@"
        self.template = json.dumps(body)
        self.prefix = f"wd-{uuid.uuid4().hex[:8]}-"
        self.phone_prefix = phone_prefix

    def body(self, i: int) -> bytes:
        return (self.template.replace("@@EVENT@@", f"{self.prefix}{i:07d}")
                .replace("@@PHONE@@", f"{self.phone_prefix}{i % PHONES:04d}").encode())


def bearer(token: str) -> dict:
    return {"Content-Type": "application/json", "Accept": "application/json", "Authorization": f"Bearer {token}"}


def successful(status: int, body: bytes) -> str | None:
    return None if status == 200 and b'"SUCCESSFUL"' in body else f"HTTP {status}: {body[:200]!r}"


@dataclass
class Kind:
    name: str
    what: str
    make: Callable[[int], bytes]
    check: Callable[[int, int, bytes], str | None]
    target: str = "main"            # main | guard | noledger | standins: which process/socket
    sends: str | None = None        # the stand-in counter each request must move by exactly one


def kinds(okta: MockOkta, claims: dict, fresh_tokens: list[str], messaging_host: str) -> dict[str, Kind]:
    warm_token = okta.mint(**claims)
    sms, voice, refused = Telephony("telephony-sms-password-reset.json"), Telephony("telephony-voice-mfa.json"), \
        Telephony("telephony-sms-password-reset.json", phone_prefix="+44770090")
    answers: dict[int, bytes] = {}

    def warm_check(i, status, body):
        answers[i] = body
        return successful(status, body)

    def replay_check(i, status, body):
        if i not in answers:
            return "no original answer to compare with"
        return None if (status == 200 and body == answers[i]) else f"HTTP {status}, not the original bytes: {body[:200]!r}"

    def refused_check(_, status, body):
        return None if status == 200 and b'"FAILED"' in body and b"COUNTRY_NOT_ALLOWED" in body \
            else f"HTTP {status}: {body[:200]!r}"

    bad_token = okta.attack("wrong_key_legit_kid")
    # Host: the messaging endpoint's, so that the stand-in sees the URL the Worker's fetch has.
    floor_req = (f"POST / HTTP/1.1\r\nHost: {messaging_host}\r\nContent-Type: application/x-amz-json-1.0\r\n"
                 f"X-Amz-Target: PinpointSMSVoiceV2.SendTextMessage\r\nContent-Length: 2\r\n\r\n{{}}").encode()
    return {k.name: k for k in [
        Kind("warm_token", "SMS, one token reused (verified-token cache hit, no RSA)",
             lambda i: http_request("/okta/telephony", sms.body(i), bearer(warm_token)), warm_check,
             sends="SendTextMessage"),
        Kind("warm_token_no_ledger", "warm_token on a process without the OTP_LEDGER binding (fail-open: no claim)",
             lambda i: http_request("/okta/telephony", sms.body(5_000_000 + i), bearer(warm_token)),
             lambda i, s, b: successful(s, b), target="noledger", sends="SendTextMessage"),
        Kind("fresh_token", "SMS, a never-seen token per request (RS256 verify each)",
             lambda i: http_request("/okta/telephony", sms.body(1_000_000 + i), bearer(fresh_tokens[i])),
             lambda i, s, b: successful(s, b), sends="SendTextMessage"),
        Kind("voice", "voice call (SSML template, SendVoiceMessage), one token",
             lambda i: http_request("/okta/telephony", voice.body(i), bearer(warm_token)),
             lambda i, s, b: successful(s, b), sends="SendVoiceMessage"),
        Kind("replay", "a warm_token request again (same eventId): answered from the ledger, nothing sent",
             lambda i: http_request("/okta/telephony", sms.body(i), bearer(warm_token)), replay_check, sends=""),
        Kind("refused_country", "SMS to GB with OTP_GUARD_MODE=enforce, OTP_ALLOWED_COUNTRIES=US: FAILED",
             lambda i: http_request("/okta/telephony", refused.body(i), bearer(warm_token)), refused_check,
             target="guard", sends=""),
        Kind("refused_bad_token", "token signed by another key with the real kid: 401",
             lambda i: http_request("/okta/telephony", sms.body(2_000_000 + i), bearer(bad_token)),
             lambda i, s, b: None if s == 401 else f"HTTP {s}: {b[:200]!r}", sends=""),
        Kind("standin_floor", "the in-process messaging stand-in alone, hit directly over TCP",
             lambda i: floor_req, lambda i, s, b: None if s == 200 and b"MessageId" in b else f"HTTP {s}: {b[:200]!r}",
             target="standins", sends="SendTextMessage"),
    ]}


# ---- phases ------------------------------------------------------------------------------------
def summary(lat: list[float]) -> dict:
    s = sorted(lat)
    return {"p50": percentile(s, 0.5), "p90": percentile(s, 0.9), "p99": percentile(s, 0.99),
            "max": s[-1] if s else float("nan"), "mean": statistics.fmean(s) if s else float("nan")}


def measure(w: Workerd, port: int, kind: Kind, n: int, concurrency: int, first: int) -> dict:
    """One phase: the requests, workerd's CPU and this process's CPU over it, the stand-in counters."""
    before = w.stats() if kind.sends is not None else None
    cpu0, me0 = w.cpu_s(), os.times()
    r = drive(port, kind.make, kind.check, n, concurrency, first)
    cpu1, me1 = w.cpu_s(), os.times()
    done = len(r["lat"])
    r["workerd_cpu_s"] = cpu1 - cpu0
    r["bench_cpu_s"] = (me1.user + me1.system) - (me0.user + me0.system)
    r["cpu_ms_per_request"] = (cpu1 - cpu0) * 1000 / done if done else float("nan")
    r["rps"] = done / r["elapsed_s"] if r["elapsed_s"] > 0 else float("nan")
    r["memory_kb"] = w.memory_kb()
    if before is not None:
        after = w.stats()
        counts = {k: after["standins"][k] - before["standins"][k] for k in ("SendTextMessage", "SendVoiceMessage")}
        expected = {k: (n if k == kind.sends else 0) for k in counts}
        r["standin_sends"], r["standin_sends_expected"] = counts, expected
        if w.setup.outbound == "inprocess":  # a send too many or too few is a wrong answer too
            r["send_mismatch"] = sum(abs(counts[k] - expected[k]) for k in counts)
    r.update(summary(r["lat"]))
    r["wrong_count"] = len(r["wrong"]) + r["unanswered"] + r.get("send_mismatch", 0)
    return r


def cold_start(rounds: int, make_setup: Callable[..., Setup], first: Callable[[Workerd], float]) -> dict:
    """Per round, three fresh processes: trivial Worker only; the full config with the trivial
    Worker as main; the full config. Spawn → accepting each; the first request of the last."""
    out = {"process": [], "standins": [], "bundle": [], "first_request_ms": [], "rss_idle_kb": [],
           "rss_trivial_kb": []}
    for _ in range(rounds):
        for label, kw in (("process", {"trivial_only": True}), ("standins", {"main": None}), ("bundle", {})):
            w = Workerd(make_setup(**kw), f"cold-{label}")
            try:
                out[label].append(w.wait_accepting())
                if label == "process":
                    out["rss_trivial_kb"].append(w.memory_kb()["VmRSS"])
                if label == "bundle":
                    out["rss_idle_kb"].append(w.memory_kb()["VmRSS"])
                    out["first_request_ms"].append(first(w))
            finally:
                w.stop()
    med = {k: statistics.median(v) for k, v in out.items() if v}
    out["median"] = {"process_start_ms": med["process"] * 1000,
                     "standins_start_ms": (med["standins"] - med["process"]) * 1000,
                     "isolate_start_ms": (med["bundle"] - med["standins"]) * 1000,
                     "first_request_ms": med["first_request_ms"],
                     "rss_trivial_mb": med["rss_trivial_kb"] / 1024, "rss_idle_mb": med["rss_idle_kb"] / 1024}
    return out


# ---- the KV seed -------------------------------------------------------------------------------
def kv_seed(snapshot: Path, given: str | None, tmp: Path) -> Path | None:
    """The `wrangler kv bulk put` file scripts/seed-kv loads into TEMPLATES: --kv-seed FILE; else
    build/kv-seed.json (scripts/seed-kv's output) when no template is newer; else the same file
    written here from kv-seed/templates (`seed_from_templates`). `--kv-seed cargo`: `cargo run
    --release --bin kv-seed` as scripts/seed-kv does (a native build: minutes on 2 CPUs the first
    time). `--kv-seed builtin`: TEMPLATES empty, so the Worker uses its built-in English templates."""
    if given == "builtin":
        return None
    if given and given != "cargo":
        return Path(given)
    made = snapshot / "kv-seed.json"
    newest = max(p.stat().st_mtime for p in (ROOT / "kv-seed" / "templates").glob("*.json"))
    if not given and made.exists() and made.stat().st_mtime >= newest:
        return made
    out = tmp / "kv-seed.json"
    if given == "cargo":
        subprocess.run(["cargo", "run", "-q", "--release", "--bin", "kv-seed", "--", "--dir", "kv-seed/templates",
                        "--out", str(out)], cwd=ROOT, check=True, timeout=1800)
    else:
        out.write_text(json.dumps(seed_from_templates(ROOT / "kv-seed" / "templates")))
    return out


def seed_from_templates(folder: Path) -> list[dict]:
    """What `kv-seed --out` writes (src/bin/kv-seed.rs), without building it: the set
    `{"version", "templates": {locale: {sms, voice}}}` under `templates/set/<version>` and the
    pointer under `templates/current`; the version the same digest as `TemplateSet::digest` (SHA-256
    over the length-prefixed locale, channel, voiceId and body of every template, locales in
    `Locale`'s order, first 8 bytes in hex). No validation here: the Worker re-validates every
    template it loads (`TemplateSet::from_json`) and drops, with an alert in its log, any it rejects;
    the bench checks that a localized request gets the localized text (`check_templates`)."""
    import hashlib

    def order(locale: str):
        lang, _, region = locale.partition("-")
        return (lang, bool(region), region)

    templates = {f.stem: json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))}
    h = hashlib.sha256()
    count = 0
    for locale in sorted(templates, key=order):
        for channel in ("sms", "voice"):
            t = templates[locale].get(channel)
            if t is None:
                continue
            count += 1
            for part in (locale, channel, t.get("voiceId") or "", t["body"]):
                b = part.encode()
                h.update(len(b).to_bytes(8, "little") + b)
    version = h.digest()[:8].hex()
    key = f"templates/set/{version}"
    pointer = {"version": version, "key": key, "publishedAtMs": int(time.time() * 1000), "templates": count}
    return [{"key": key, "value": json.dumps({"version": version, "templates": dict(sorted(templates.items()))},
                                             ensure_ascii=False, separators=(",", ":"))},
            {"key": "templates/current", "value": json.dumps(pointer, separators=(",", ":"))}]


def wait_for_build() -> None:
    t0 = time.monotonic()
    while Path("/tmp/oeh-building").exists():
        if time.monotonic() - t0 > BUILD_WAIT_S:
            raise RuntimeError("/tmp/oeh-building still there: a build seems to be stuck")
        time.sleep(1)
    if not (ROOT / "build" / "index_bg.wasm").exists():
        raise RuntimeError("build/index_bg.wasm is missing: run `bash scripts/build` first")


# ---- the upstream phases: event hook, queue consumer, template sync ------------------------------
def provisioning_phases(base: dict, setup_for: Callable[..., Setup], deliveries: int) -> dict:
    import conftest as e2e
    from provisioning_bench import delivery, member_event
    mocks = e2e.Mocks(e2e.Sensitive())
    out = {}
    try:
        for mode in ("ack", "consume"):
            p = mocks.prov(f"workerd-{mode}")
            v = dict(base, **p.vars(), AWS_ACCESS_KEY_ID=e2e.AKID, AWS_SECRET_ACCESS_KEY=e2e.AWS_SECRET)
            w = Workerd(setup_for(vars=v, consumer=(mode == "consume")), f"events-{mode}")
            try:
                w.wait_accepting()
                rounds = deliveries if mode == "ack" else 1
                lat, cpu, wrong = [], [], []
                for d in range(rounds):
                    users = [(p.org.add_user(f"{mode}{d}.{i}@example.com", "Bench", f"U{i}"),
                              f"{mode}{d}.{i}@example.com") for i in range(100)]
                    for uid, _ in users:
                        p.org.add_to_group(p.group, uid)
                    body = delivery([member_event(uid, login, p.group) for uid, login in users])
                    sent0, c0, t0 = w.stats()["queue-provisioning"]["sent"], w.cpu_s(), time.perf_counter()
                    status, answer = w.call("POST", "/okta/events", body, timeout=30, headers={
                        "Content-Type": "application/json", "Authorization": e2e.EVENT_HOOK_SECRET})
                    lat.append((time.perf_counter() - t0) * 1000)
                    cpu.append((w.cpu_s() - c0) * 1000)
                    enq = w.stats()["queue-provisioning"]["sent"] - sent0
                    if status != 200 or enq != 100:
                        wrong.append(f"HTTP {status}, {enq} messages enqueued: {answer[:200]!r}")
                    if mode == "consume":
                        deadline = time.monotonic() + 120
                        while time.monotonic() < deadline and not (
                                all(p.connect.user_by_username(l) for _, l in users)
                                and w.stats()["queue-provisioning"]["acked"] >= 100):
                            time.sleep(0.02)
                        took, spent = (time.perf_counter() - t0) * 1000, (w.cpu_s() - c0) * 1000
                        made = sum(1 for _, l in users if p.connect.user_by_username(l))
                        q = w.stats()["queue-provisioning"]
                        out["consume"] = {"ms": took, "cpu_ms": spent, "users_converged": made, "queue": q,
                                          "ms_per_user": took / 100, "cpu_ms_per_user": spent / 100,
                                          "connect_rejected": len(p.connect.rejected()),
                                          "wrong": 100 - made + len(wrong)}
                if mode == "ack":
                    out["ack"] = dict(summary(lat), n=len(lat), cpu_ms=cpu, lat=lat,
                                      cpu_ms_per_delivery=statistics.median(cpu), wrong=len(wrong), errors=wrong[:3])
            finally:
                w.stop()
    finally:
        mocks.close()
    return out


def sync_phase(base: dict, setup_for: Callable[..., Setup], templates: int) -> dict:
    from mocks.dynamodb import DynamoDBProxy, MotoServer
    import sync_bench
    from sync_bench import TABLE, generate, load_table, sync
    moto = proxy = w = None
    try:
        moto = MotoServer()
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        load_table(moto, generate(templates, stamp))
        proxy = DynamoDBProxy(moto.endpoint, AKID, AWS_SECRET)
        v = dict(base, TEMPLATE_TABLE=TABLE, AWS_DYNAMODB_ENDPOINT=proxy.endpoint, ADMIN_SECRET=sync_bench.ADMIN_SECRET,
                 SYNC_PAGE_SIZE="100", SYNC_MAX_PAGES="1000", TEMPLATE_CACHE_SECONDS="0")
        w = Workerd(setup_for(vars=v), "sync")
        w.wait_accepting()
        out = {}
        for run in ("first", "unchanged"):
            c0 = w.cpu_s()
            wall, rep = sync(w, proxy)
            out[run] = {"wall_ms": wall, "cpu_ms": (w.cpu_s() - c0) * 1000, "worker_ms": rep["durationMs"],
                        "dynamodb_side_ms": rep["_proxy_ms"], "outcome": rep["outcome"], "templates": rep["templates"],
                        "dynamodb_requests": rep["dynamodbRequests"], "kv_writes": rep["kvWrites"],
                        "kv_reads": rep["kvReads"]}
        ok = out["first"]["outcome"] == "published" and out["first"]["templates"] == templates \
            and out["unchanged"]["outcome"] == "unchanged"
        out["wrong"] = 0 if ok else 1
        return out
    finally:
        if w:
            w.stop()
        for x in (proxy, moto):
            if x:
                x.close()


# ---- main --------------------------------------------------------------------------------------
def base_vars(stand_ins: str, okta: MockOkta, messaging_endpoint: str | None, guard_mode: str) -> dict:
    v = dict(wrangler_settings().get("vars", {}))
    v.update(AWS_ACCESS_KEY_ID=AKID, AWS_SECRET_ACCESS_KEY=AWS_SECRET)
    if stand_ins == "loopback":
        v.update(OKTA_ISSUER=okta.issuer, OKTA_ALLOWED_CLIENT_IDS=okta.client_id,
                 AWS_SMS_VOICE_ENDPOINT=messaging_endpoint)
    if guard_mode:
        v["OTP_GUARD_MODE"] = guard_mode
    return v


def setting_storage(setting: str) -> str:
    return "on disk" if "ledger disk" in setting else "in memory"


def check_templates(w: Workerd, token: str, seed: Path | None) -> dict:
    """Proof of where the templates come from: one SMS with the locale de-DE and one voice call
    with fr-FR through the Worker, the text that reached the messaging stand-in compared with the
    seed file's template for that locale ({{otp}} filled in), and the Worker's own log field
    (template_locale, `builtin:` prefixed when the built-in set answered)."""
    out: dict = {"checks": []}
    if w.setup.outbound != "inprocess":
        out.update(origin="kv-seed" if seed else "built-in (TEMPLATES empty)", summary="not checked (stand-ins loopback)")
        return out
    entries = json.loads(seed.read_text()) if seed else []
    sets = [json.loads(e["value"]) for e in entries if e["key"].startswith("templates/set/")]
    wanted = sets[0]["templates"] if sets else {}
    ok_all = True
    for fixture, locale, channel, op in (("telephony-sms-password-reset.json", "de-DE", "sms", "SendTextMessage"),
                                         ("telephony-voice-mfa.json", "fr-FR", "voice", "SendVoiceMessage")):
        t = Telephony(fixture, phone="+14155559999", locale=locale)
        body = t.body(0)
        otp = json.loads(body)["data"]["messageProfile"]["otpCode"]
        status, answer = w.call("POST", "/okta/telephony", body, headers=bearer(token))
        sent = json.loads(w.stats()["standins"]["last"].get(op, "{}") or "{}").get("MessageBody", "")
        tpl = wanted.get(locale, {}).get(channel)
        expected = tpl["body"].replace("{{otp}}", otp) if tpl else None
        # Voice: each digit spoken on its own (ssml.rs), so compare the text before the code.
        head = expected.split(otp)[0] if expected else None
        ok = status == 200 and b'"SUCCESSFUL"' in answer and (sent.startswith(head) if head is not None else not seed)
        ok_all &= ok
        out["checks"].append({"locale": locale, "channel": channel, "status": status, "sent": sent[:300],
                              "expected_start": head and head[:300], "ok": ok})
    log = w.tail(20000)
    out["builtin_in_log"] = "builtin:" in log
    if seed and ok_all:
        out["origin"] = f"kv-seed ({len(wanted)} locales, version {sets[0]['version']}; de-DE/fr-FR checked)"
    elif seed:
        out["origin"] = "kv-seed, but the localized check FAILED (see workerd.json: templates)"
    else:
        out["origin"] = "built-in (TEMPLATES empty)"
    out["summary"] = out["origin"] + "; " + "; ".join(
        f"{c['locale']} {c['channel']}: {'ok' if c['ok'] else 'MISMATCH'} {c['sent'][:70]!r}" for c in out["checks"])
    return out


def workerd_version() -> str:
    r = subprocess.run([str(WORKERD), "--version"], capture_output=True, text=True, timeout=30)
    return (r.stdout or r.stderr).strip()


def fmt(x: float, d: int = 2) -> str:
    return "-" if x != x else f"{x:.{d}f}"


def table(results: dict, cold: dict | None, upstream: dict, setting: str) -> list[str]:
    rows = [setting, f"{'kind':<20} {'n':>6} {'wrong':>5} {'cpu ms/req seq/c8/c32':>22} {'seq p50/p90/p99 ms':>20} "
            f"{'c8 p50/p99 ms':>14} {'c8 req/s':>8} {'c32 p50/p99 ms':>15} {'c32 req/s':>9} {'rss MB':>6}"]
    for name, ph in results.items():
        s, c8, c32 = ph.get("seq"), ph.get("c8"), ph.get("c32")
        get = lambda p, k: p[k] if p else float("nan")  # noqa: E731
        n = sum(p["n"] for p in (s, c8, c32) if p)
        wrong = sum(p["wrong_count"] for p in (s, c8, c32) if p)
        rss = max((p["memory_kb"].get("VmRSS", 0) for p in (s, c8, c32) if p), default=0) / 1024
        rows.append(f"{name:<20} {n:>6} {wrong:>5} "
                    f"{fmt(get(s, 'cpu_ms_per_request')) + '/' + fmt(get(c8, 'cpu_ms_per_request')) + '/' + fmt(get(c32, 'cpu_ms_per_request')):>22} "
                    f"{fmt(get(s, 'p50')) + '/' + fmt(get(s, 'p90')) + '/' + fmt(get(s, 'p99')):>20} "
                    f"{fmt(get(c8, 'p50')) + '/' + fmt(get(c8, 'p99')):>14} {fmt(get(c8, 'rps'), 0):>8} "
                    f"{fmt(get(c32, 'p50')) + '/' + fmt(get(c32, 'p99')):>15} {fmt(get(c32, 'rps'), 0):>9} {rss:>6.1f}")
    lines = ["workerd " + r for r in rows]
    if "warm_token" in results and "warm_token_no_ledger" in results:
        w, nl = results["warm_token"], results["warm_token_no_ledger"]
        diff = "/".join(fmt(w[p]["cpu_ms_per_request"] - nl[p]["cpu_ms_per_request"]) for p in ("seq", "c8", "c32")
                        if p in w and p in nl)
        lines.append(f"workerd_ledger_share: warm_token minus warm_token_no_ledger = {diff} ms workerd CPU per request "
                     f"(seq/c8/c32): the claim and the settle in the OtpLedger object (SQLite {setting_storage(setting)})")
    if cold:
        m = cold["median"]
        lines.append(f"workerd_cold_start (median of {len(cold['bundle'])}): process_start={m['process_start_ms']:.1f}ms "
                     f"(trivial Worker only) stand-ins_start=+{m['standins_start_ms']:.1f}ms "
                     f"isolate_start=+{m['isolate_start_ms']:.1f}ms (bundle compile + instantiate) "
                     f"first_request={m['first_request_ms']:.1f}ms rss_trivial={m['rss_trivial_mb']:.1f}MB "
                     f"rss_idle={m['rss_idle_mb']:.1f}MB")
    if "ack" in upstream:
        a = upstream["ack"]
        lines.append(f"workerd_event_hook_100_events: n={a['n']} p50={a['p50']:.1f}ms p90={a['p90']:.1f}ms "
                     f"max={a['max']:.1f}ms cpu_ms_per_delivery={a['cpu_ms_per_delivery']:.1f} wrong={a['wrong']}")
    if "consume" in upstream:
        c = upstream["consume"]
        lines.append(f"workerd_queue_consumer_100_users: converged={c['users_converged']}/100 in {c['ms']:.0f}ms "
                     f"({c['ms_per_user']:.1f}ms/user) workerd_cpu={c['cpu_ms_per_user']:.2f}ms/user "
                     f"(incl. the delivery) batches={c['queue']['batches_out']} retried={c['queue']['retried']} "
                     f"dead_lettered={c['queue']['dead_lettered']} connect_rejected={c['connect_rejected']} "
                     f"wrong={c['wrong']}")
    if "sync" in upstream:
        for run in ("first", "unchanged"):
            r = upstream["sync"][run]
            lines.append(f"workerd_sync_{r['templates']}_{run}: wall={r['wall_ms']:.0f}ms worker={r['worker_ms']}ms "
                         f"workerd_cpu={r['cpu_ms']:.0f}ms dynamodb_side={r['dynamodb_side_ms']:.0f}ms "
                         f"outcome={r['outcome']} dynamodb_requests={r['dynamodb_requests']} "
                         f"kv_reads={r['kv_reads']} kv_writes={r['kv_writes']} wrong={upstream['sync']['wrong']}")
    for k, why in upstream.get("skipped", {}).items():
        lines.append(f"workerd_{k}: not measured ({why})")
    return ["BENCH " + line for line in lines]


def compare_table(before: dict, after: dict, cold_before: dict | None, cold_after: dict | None, before_dir: Path,
                  after_dir: Path) -> list[str]:
    """--compare: the same phases on both bundles, measured alternately in one run."""
    def cpu(ph: dict) -> str:
        return "/".join(fmt(ph[p]["cpu_ms_per_request"]) for p in ("seq", "c8", "c32") if p in ph)

    def size(d: Path) -> str:
        wasm = (d / "index_bg.wasm").read_bytes()
        return f"{len(wasm):,} B raw / {gzip9(wasm):,} B gzip -9"

    rows = [f"compare: before ({size(before_dir)}) -> after ({size(after_dir)})",
            f"{'kind':<20} {'cpu ms/req seq/c8/c32 before -> after':>40} {'seq p50 ms':>14} {'seq p99 ms':>14} "
            f"{'c8 req/s':>12} {'c32 req/s':>12}"]
    for name, b in before.items():
        a = after[name]
        pair = lambda p, k, d=2: f"{fmt(b[p][k], d)}->{fmt(a[p][k], d)}"  # noqa: E731
        rows.append(f"{name:<20} {cpu(b) + ' -> ' + cpu(a):>40} {pair('seq', 'p50'):>14} {pair('seq', 'p99'):>14} "
                    f"{pair('c8', 'rps', 0):>12} {pair('c32', 'rps', 0):>12}")
    if cold_before and cold_after:
        mb, ma = cold_before["median"], cold_after["median"]
        rows.append(f"cold start (medians): isolate_start {mb['isolate_start_ms']:.1f} -> {ma['isolate_start_ms']:.1f} ms, "
                    f"first_request {mb['first_request_ms']:.1f} -> {ma['first_request_ms']:.1f} ms, "
                    f"rss_idle {mb['rss_idle_mb']:.1f} -> {ma['rss_idle_mb']:.1f} MB")
    return ["BENCH workerd_compare " + r for r in rows]


def start_common(args, tmp: Path):
    """What both modes serve: the bundle's snapshot, the KV seed, the Okta stand-in and, with
    `--stand-ins loopback`, the verifying messaging stand-in."""
    snap = build_snapshot(args, tmp)
    seed = kv_seed(snap, args.kv_seed, tmp)
    okta = MockOkta("aus_local")
    messaging = None
    if args.stand_ins == "loopback":
        from mocks.aws import MockMessaging
        messaging = MockMessaging(AKID, AWS_SECRET)
    return snap, seed, okta, messaging


def bench(args, tmp: Path) -> int:
    snap, seed, okta, messaging = start_common(args, tmp)
    base = base_vars(args.stand_ins, okta, messaging and messaging.endpoint, args.guard_mode)
    counter = itertools.count()

    def setup_for(vars: dict = base, main: Path | None = snap, **kw) -> Setup:
        d = tmp / f"p{next(counter)}"
        d.mkdir()
        return Setup(vars=vars, dir=d, main=main, seed=seed, jwks=json.dumps(okta.jwks()), outbound=args.stand_ins, **kw)

    claims = {"iss": base["OKTA_ISSUER"], "cid": base["OKTA_ALLOWED_CLIENT_IDS"], "sub": base["OKTA_ALLOWED_CLIENT_IDS"],
              "aud": base["OKTA_AUDIENCE"], "scp": [base["OKTA_REQUIRED_SCOPE"]], "exp": int(time.time()) + 6 * 3600}
    only = set(args.only.split(",")) if args.only else None
    want = lambda k: only is None or k in only  # noqa: E731
    n_fresh = args.sequential + 2 * args.requests if want("fresh_token") else 0
    t0 = time.perf_counter()
    fresh = [okta.mint(**claims) for _ in range(n_fresh)]
    print(f"minted {n_fresh} fresh tokens in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    messaging_host = base["AWS_SMS_VOICE_ENDPOINT"].split("://", 1)[1]
    ks = kinds(okta, claims, fresh, messaging_host)
    results: dict = {}
    compared: dict = {}             # --compare: the same phases on the other bundle
    raw: dict = {"stand_ins": args.stand_ins, "vars": sorted(base), "phases": results, "before": compared}
    procs: list[Workerd] = []
    try:
        main = Workerd(setup_for(ledger=not args.no_ledger), "main")
        procs.append(main)
        print(f"workerd main ready in {main.wait_accepting() * 1000:.0f}ms on 127.0.0.1:{main.port}", file=sys.stderr)
        guard = None
        if want("refused_country"):
            guard = Workerd(setup_for(vars=dict(base, OTP_GUARD_MODE="enforce", OTP_ALLOWED_COUNTRIES="US")), "guard")
            procs.append(guard)
            guard.wait_accepting()
        before = None
        if args.compare:
            # --compare: a second main process serving the other bundle, same vars, seed and
            # stand-ins; every main-process phase runs on both, alternately (drift hits both).
            before_snap = copy_bundle(Path(args.compare), tmp / "before-build")
            before = Workerd(setup_for(main=before_snap, ledger=not args.no_ledger), "before")
            procs.append(before)
            before.wait_accepting()
        noledger = None
        if want("warm_token_no_ledger"):
            # The same config without the OTP_LEDGER binding and namespace: the Worker's fail-open
            # path (OTP_GUARD_FAILURE=open: no claim, sends anyway, logs an alert) — what the
            # ledger object costs per request is warm_token minus this.
            noledger = Workerd(setup_for(ledger=False), "noledger")
            procs.append(noledger)
            noledger.wait_accepting()
        templates = check_templates(main, okta.mint(**claims), seed)
        raw["templates"] = templates
        print(f"templates: {templates['summary']}", file=sys.stderr)
        # Warm up each process (JWKS fetch, key import, tier-up) outside the figures, with the
        # kind of request it will serve.
        warm = ks["warm_token"]
        # The before process has kinds of its own (its own token, eventIds and replay answers).
        ks_before = kinds(okta, claims, fresh, messaging_host) if before is not None else {}
        for w, k in ((main, warm), (before, ks_before.get("warm_token")), (guard, ks["refused_country"]),
                     (noledger, ks["warm_token_no_ledger"])):
            if w is None:
                continue
            check = k.check if k.name == "refused_country" else lambda i, s, b: successful(s, b)
            # At least one request per destination number: every measured request then finds its
            # ledger object created (creating one is a local SQLite file, not the Worker's CPU at the edge).
            r = drive(w.port, lambda i: k.make(3_000_000 + i), check, max(args.warmup, PHONES), 8)
            if r["wrong"]:
                print(f"warm-up failed on {w.name}: {list(r['wrong'].values())[:3]}\n{w.tail()}", file=sys.stderr)
                return 1
            # A process meant to have the ledger must not be failing open (the answers look alike).
            if w.setup.ledger and '"ledger":"unavailable"' in w.tail():
                print(f"warm-up on {w.name}: the OTP ledger did not answer\n{w.tail()}", file=sys.stderr)
                return 1
        order = ["standin_floor", "warm_token", "warm_token_no_ledger", "fresh_token", "voice", "replay",
                 "refused_country", "refused_bad_token"]
        for name in order:
            if not want(name) or (name == "standin_floor" and args.stand_ins != "inprocess"):
                continue
            if name == "replay" and "warm_token" not in results:
                print("replay needs warm_token: skipped", file=sys.stderr)
                continue
            k = ks[name]
            w = {"guard": guard, "noledger": noledger}.get(k.target, main)
            port = w.setup.ports["standins"] if k.target == "standins" else w.port
            results[name] = {}
            runs = [(w, port, k, results[name], name)]
            if before is not None and w is main:
                compared[name] = {}
                runs.append((before, before.port, ks_before[name], compared[name], f"{name} (before)"))
            first = 0
            for turn, (label, n, c) in enumerate((("seq", args.sequential, 1), ("c8", args.requests, 8),
                                                  ("c32", args.requests, 32))):
                for proc, at, kind, into, tag in (runs if turn % 2 == 0 else runs[::-1]):
                    r = measure(proc, at, kind, n, c, first)
                    into[label] = r
                    print(f"{tag} {label}: p50={r['p50']:.2f}ms p99={r['p99']:.2f}ms {r['rps']:.0f} req/s "
                          f"cpu={r['cpu_ms_per_request']:.3f}ms/req wrong={r['wrong_count']}", file=sys.stderr)
                    for why in list(r["wrong"].values())[:2]:
                        print(f"  wrong: {why}", file=sys.stderr)
                first += n
        for w in procs:
            raw.setdefault("memory_kb", {})[w.name] = w.memory_kb()
            raw.setdefault("logs", {})[w.name] = w.tail(3000)
            w.stop()
        procs.clear()
        if messaging is not None:
            raw["loopback_messaging_rejected"] = len(messaging.rejected())

        cold = None
        if args.cold_rounds and want("cold_start"):
            def first_request(w: Workerd) -> float:
                r = drive(w.port, lambda i: warm.make(4_000_000 + i), lambda i, s, b: successful(s, b), 1, 1)
                if r["wrong"]:
                    raise RuntimeError(f"first request failed: {r['wrong']}\n{w.tail()}")
                return r["lat"][0]
            cold = cold_start(args.cold_rounds, setup_for, first_request)
            raw["cold_start"] = cold
            if args.compare:
                raw["cold_start_before"] = cold_start(args.cold_rounds, lambda **kw: setup_for(
                    **({"main": before_snap} | kw)), first_request)

        upstream: dict = {"skipped": {}}
        if args.skip_upstreams:
            upstream["skipped"]["upstreams"] = "--skip-upstreams"
        else:
            if want("events"):
                try:
                    upstream.update(provisioning_phases(base, setup_for, args.deliveries))
                except Exception as e:  # report, do not hide: the other figures still stand
                    upstream["skipped"]["events"] = f"{type(e).__name__}: {str(e)[:300]}"
            if want("sync"):
                try:
                    upstream["sync"] = sync_phase(base, setup_for, args.templates)
                except Exception as e:
                    upstream["skipped"]["sync"] = f"{type(e).__name__}: {str(e)[:300]}"
        raw["upstream"] = upstream
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(raw, default=str, indent=1))
        print(f"raw numbers: {OUT.relative_to(ROOT)}", file=sys.stderr)
        setting = (f"(stand-ins {args.stand_ins}; templates {templates['origin']}; "
                   f"ledger {args.do_storage}, {PHONES} numbers; guard {args.guard_mode or 'default'}; "
                   f"{workerd_version()}; {os.cpu_count()} CPUs shared with the load generator)")
        print("\n".join(table(results, cold, upstream, setting)), flush=True)
        if args.compare:
            print("\n".join(compare_table(compared, results, raw.get("cold_start_before"), cold, before_snap, snap)),
                  flush=True)
        wrong = sum(p["wrong_count"] for d in (results, compared) for ph in d.values() for p in ph.values())
        wrong += sum(upstream.get(k, {}).get("wrong", 0) for k in ("ack", "consume", "sync"))
        return 1 if wrong or upstream["skipped"] and not args.skip_upstreams else 0
    finally:
        for w in procs:
            w.stop()
        okta.close()
        if messaging is not None:
            messaging.close()


# ---- the profiler (--profile KIND) ------------------------------------------------------------
class Cdp:
    """One Chrome DevTools Protocol session over the inspector's WebSocket (websocket-client: the
    `websocket` module; `pip install websocket-client`, listed in tests/requirements.txt)."""

    def __init__(self, url: str):
        try:
            import websocket
        except ImportError as e:
            raise SystemExit("--profile needs the websocket-client package: "
                             ".venv/bin/pip install websocket-client") from e
        self.ws = websocket.create_connection(url, timeout=120, suppress_origin=True)
        self.next_id = itertools.count(1)

    def call(self, method: str, **params) -> dict:
        i = next(self.next_id)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == i:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})

    def close(self):
        self.ws.close()


SPECIAL = ("(program)", "(garbage collector)", "(idle)", "(root)")


def group_of(frame: dict, at_root: bool = False) -> str:
    name, url = frame.get("functionName") or "", frame.get("url") or ""
    if name in SPECIAL:
        return name
    if url.startswith("wasm://") or frame.get("codeType") == "wasm":
        return "wasm (ours: index_bg.wasm)"
    if url.rsplit("/", 1)[-1] == "index.js":
        return "JS glue (index.js)"
    if not url and not name and at_root:
        return "native, isolate entered, no JS frame (workerd C++)"
    if not url:
        return "runtime API/builtins called from JS (exec, fetch, Response, …)"
    return f"other JS ({url.rsplit('/', 1)[-1]})"


def frame_label(f: dict) -> str:
    name, url, line, col = (f.get("functionName") or "", f.get("url") or "", f.get("lineNumber", -1),
                            f.get("columnNumber", -1))
    if url.startswith("wasm://"):
        return f"wasm {name}"
    short = url.rsplit("/", 1)[-1]
    return f"{name or '(anonymous)'} ({short}:{line + 1}:{col + 1})" if short else (name or "(no JS frame)")


def summarise_profile(prof: dict, n_requests: int, cpu_ms_per_req: float, top: int = 30) -> dict:
    """Self and inclusive samples per function, self samples per group. The estimate `est µs/req`
    = a function's share of the busy samples (all but (idle)) × the workerd CPU per request
    measured without the profiler: V8's sampler falls behind on 2 busy CPUs (median gap ~3× the
    interval asked), and the gaps are longest where the CPU is scarcest, so sample counts, not
    gap-weighted times, are the measure. (Gap-weighted ms, as DevTools shows them: `gap_ms`.)"""
    nodes = {n["id"]: n for n in prof["nodes"]}
    parent = {c: n["id"] for n in prof["nodes"] for c in n.get("children", [])}
    samples, deltas = prof.get("samples", []), prof.get("timeDeltas", [])
    gaps = deltas[1:] + [statistics.fmean(deltas) if deltas else 0]
    self_n: dict[int, int] = {}
    self_gap: dict[int, float] = {}
    for node_id, gap in zip(samples, gaps):
        self_n[node_id] = self_n.get(node_id, 0) + 1
        self_gap[node_id] = self_gap.get(node_id, 0.0) + max(gap, 0)
    by_fn: dict[str, list] = {}
    by_group: dict[str, list] = {}
    incl: dict[str, int] = {}
    for node_id, cnt in self_n.items():
        f = nodes[node_id]["callFrame"]
        at_root = nodes.get(parent.get(node_id), {}).get("callFrame", {}).get("functionName") == "(root)"
        for table_, key in ((by_fn, frame_label(f)), (by_group, group_of(f, at_root))):
            e = table_.setdefault(key, [0, 0.0])
            e[0] += cnt
            e[1] += self_gap[node_id]
        seen, x = set(), node_id
        while x is not None:
            lbl = frame_label(nodes[x]["callFrame"])
            if lbl not in seen:
                seen.add(lbl)
                incl[lbl] = incl.get(lbl, 0) + cnt
            x = parent.get(x)
    total = len(samples) or 1
    busy = total - by_group.get("(idle)", [0])[0] or 1
    est = lambda c: c / busy * cpu_ms_per_req * 1000  # noqa: E731
    row = lambda k, e: {"function": k, "samples": e[0], "pct": 100 * e[0] / total, "est_us_per_req": est(e[0]),  # noqa: E731
                        "gap_ms": e[1] / 1000}
    named_wasm = any(k.startswith("wasm ") and not k.startswith(("wasm $func", "wasm func", "wasm wasm-function[", "wasm js-to-wasm", "wasm wasm-to-js")) for k in by_fn)
    inclusive = [{"function": k, "samples": c, "pct": 100 * c / total, "est_us_per_req": est(c)}
                 for k, c in sorted(incl.items(), key=lambda kv: -kv[1])
                 if k.startswith("wasm ") or k.rsplit(" (", 1)[-1].startswith("index.js")][:top]
    return {"samples": total, "busy_samples": busy, "wall_ms": (prof["endTime"] - prof["startTime"]) / 1000,
            "median_gap_us": statistics.median(deltas) if deltas else float("nan"), "requests": n_requests,
            "cpu_ms_per_req_unprofiled": cpu_ms_per_req, "wasm_names": named_wasm,
            "groups": sorted((row(g, e) for g, e in by_group.items()), key=lambda x: -x["samples"]),
            "top": sorted((row(k, e) for k, e in by_fn.items()), key=lambda x: -x["samples"])[:top],
            "inclusive": inclusive}


def profile_lines(label: str, sm: dict, cpu_ms: float, base_cpu_ms: float) -> list[str]:
    n = sm["requests"]
    out = [f"PROFILE {label}: {n} requests, {sm['samples']} samples ({sm['busy_samples']} not idle) over "
           f"{sm['wall_ms']:.0f} ms wall, median gap {sm['median_gap_us']:.0f} µs; workerd CPU "
           f"{cpu_ms * 1000 / n:.0f} µs/req profiled, {base_cpu_ms * 1000 / n:.0f} µs/req unprofiled "
           f"(the same number of requests just before): est µs/req below = share of the not-idle samples × "
           f"{base_cpu_ms * 1000 / n:.0f}",
           f"PROFILE {label} groups (self samples)            samples     %  est µs/req   gap ms"]
    for g in sm["groups"]:
        out.append(f"PROFILE   {g['function']:<64} {g['samples']:7} {g['pct']:5.1f} {g['est_us_per_req']:8.1f} {g['gap_ms']:8.1f}")
    out.append(f"PROFILE {label} top {len(sm['top'])} functions by self samples"
               + ("" if sm["wasm_names"] else " (wasm names stripped by scripts/build: build with "
                  "`KEEP_WASM_NAMES=1 bash scripts/build` and pass --build-dir for names)"))
    for i, f in enumerate(sm["top"], 1):
        out.append(f"PROFILE   {i:>2}. {f['samples']:6} {f['pct']:5.1f}% {f['est_us_per_req']:7.1f} µs/req  {f['function'][:140]}")
    out.append(f"PROFILE {label} top {len(sm['inclusive'])} wasm/glue functions by inclusive samples (on the stack)")
    for i, f in enumerate(sm["inclusive"], 1):
        out.append(f"PROFILE   {i:>2}. {f['samples']:6} {f['pct']:5.1f}% {f['est_us_per_req']:7.1f} µs/req  {f['function'][:140]}")
    return out


def run_profile(args, tmp: Path) -> int:
    """--profile KIND: workerd with its inspector; after the warm-up, N requests of KIND without
    the profiler (the reference CPU), then N more with V8's sampling profiler running in the chosen
    isolates (Profiler.enable / setSamplingInterval / start … stop over CDP); the raw .cpuprofile
    files under build/bench/ (open them in Chrome DevTools or speedscope), a summary on stdout."""
    kind_name = args.profile
    snap = build_snapshot(args, tmp)
    seed = kv_seed(snap, args.kv_seed, tmp)
    okta = MockOkta("aus_local")
    base = base_vars("inprocess", okta, None, args.guard_mode)
    if kind_name == "refused_country":
        base = dict(base, OTP_GUARD_MODE="enforce", OTP_ALLOWED_COUNTRIES="US")
    claims = {"iss": base["OKTA_ISSUER"], "cid": base["OKTA_ALLOWED_CLIENT_IDS"], "sub": base["OKTA_ALLOWED_CLIENT_IDS"],
              "aud": base["OKTA_AUDIENCE"], "scp": [base["OKTA_REQUIRED_SCOPE"]], "exp": int(time.time()) + 6 * 3600}
    n, conc = args.profile_requests, args.profile_concurrency
    fresh = [okta.mint(**claims) for _ in range(2 * n + 200)] if kind_name == "fresh_token" else []
    ks = kinds(okta, claims, fresh, base["AWS_SMS_VOICE_ENDPOINT"].split("://", 1)[1])
    if kind_name not in ks or kind_name in ("replay", "standin_floor"):
        print(f"--profile: one of warm_token, warm_token_no_ledger, fresh_token, voice, refused_country, "
              f"refused_bad_token (not {kind_name})", file=sys.stderr)
        return 2
    k = ks[kind_name]
    ledger = not args.no_ledger and k.target != "noledger"
    d = tmp / "profile"
    d.mkdir()
    insp = free_port()
    w = Workerd(Setup(vars=base, dir=d, main=snap, seed=seed, jwks=json.dumps(okta.jwks()), outbound="inprocess",
                      ledger=ledger, inspector=insp), "profile")
    sessions: dict[str, Cdp] = {}
    try:
        w.wait_accepting()
        targets = json.loads(urllib_get(f"http://127.0.0.1:{insp}/json"))
        print("inspector targets: " + ", ".join(f"{t['id']} ({t['title']})" for t in targets), file=sys.stderr)
        templates = check_templates(w, okta.mint(**claims), seed)
        print(f"templates: {templates['summary']}", file=sys.stderr)
        warm = ks["warm_token"]
        r = drive(w.port, lambda i: warm.make(3_000_000 + i), lambda i, s, b: successful(s, b), max(args.warmup, PHONES), 8)
        if kind_name != "warm_token":  # the kind's own code paths warm too (JIT tier-up), outside the figures
            r2 = drive(w.port, k.make, k.check, 200, conc, 2 * n)
            r["wrong"].update(r2["wrong"])
        if r["wrong"] and kind_name != "refused_country":
            print(f"warm-up failed: {list(r['wrong'].values())[:3]}\n{w.tail()}", file=sys.stderr)
            return 1
        plain = measure(w, w.port, k, n, conc, 0)
        want_t = [t["id"] for t in targets] if args.profile_targets == "all" else args.profile_targets.split(",")
        for t in targets:
            if t["id"] in want_t:
                sessions[t["id"]] = c = Cdp(t["webSocketDebuggerUrl"])
                c.call("Profiler.enable")
                c.call("Profiler.setSamplingInterval", interval=args.sampling_us)
        for c in sessions.values():
            c.call("Profiler.start")
        prof = measure(w, w.port, k, n, conc, n)
        profiles = {tid: c.call("Profiler.stop")["profile"] for tid, c in sessions.items()}
        tag = kind_name + ("" if ledger else "-noledger") + (f"-c{conc}" if conc != 1 else "")
        OUT.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"PROFILE setting: {snap_label(args, snap)}; templates {templates['origin']}; ledger "
                 f"{('on ' + args.do_storage) if ledger else 'REMOVED (fail-open)'}; {n} requests at concurrency {conc}; "
                 f"sampling every {args.sampling_us} µs; targets {', '.join(t['id'] for t in targets)} "
                 f"(one isolate per service; the OtpLedger objects run in the isolate of 'main', whose class "
                 f"they are: no target of their own); {workerd_version()}",
                 f"PROFILE {kind_name}: unprofiled p50={plain['p50']:.2f}ms {plain['rps']:.0f} req/s "
                 f"cpu={plain['cpu_ms_per_request']:.3f}ms/req wrong={plain['wrong_count']}; profiled p50={prof['p50']:.2f}ms "
                 f"{prof['rps']:.0f} req/s cpu={prof['cpu_ms_per_request']:.3f}ms/req wrong={prof['wrong_count']}"]
        summaries = {}
        for tid, pr in profiles.items():
            path = OUT.parent / f"workerd-{tag}-{tid}.cpuprofile"
            path.write_text(json.dumps(pr))
            sm = summarise_profile(pr, n, plain["cpu_ms_per_request"])
            summaries[tid] = sm
            lines += profile_lines(f"{kind_name}{'' if ledger else ' (no ledger)'} [{tid}]", sm,
                                   prof["workerd_cpu_s"] * 1000, plain["workerd_cpu_s"] * 1000)
            lines.append(f"PROFILE raw: {path.relative_to(ROOT)}")
        (OUT.parent / f"workerd-{tag}.profile.json").write_text(json.dumps(
            {"summaries": summaries, "unprofiled": {k2: v for k2, v in plain.items() if k2 not in ("lat", "wrong")},
             "profiled": {k2: v for k2, v in prof.items() if k2 not in ("lat", "wrong")}, "targets": targets,
             "templates": templates}, default=str, indent=1))
        print("\n".join(lines), flush=True)
        return 1 if plain["wrong_count"] or prof["wrong_count"] else 0
    finally:
        for c in sessions.values():
            try:
                c.close()
            except Exception:
                pass
        w.stop()
        okta.close()


def urllib_get(url: str) -> str:
    import urllib.request
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def build_snapshot(args, tmp: Path) -> Path:
    """build/ (after any build in progress), or --build-dir DIR (index.js + index_bg.wasm), copied."""
    if not getattr(args, "build_dir", None):
        wait_for_build()
        return snapshot_build(tmp)
    return copy_bundle(Path(args.build_dir), tmp / "build")


def copy_bundle(src: Path, snap: Path) -> Path:
    """A private copy of a build directory (index.js + index_bg.wasm), so a build meanwhile
    changes nothing under a running process."""
    if not (src / "index.js").exists() or not (src / "index_bg.wasm").exists():
        raise SystemExit(f"{src}: needs index.js and index_bg.wasm")
    snap.mkdir()
    for f in src.iterdir():
        if f.is_file():
            shutil.copy2(f, snap / f.name)
    return snap


def snap_label(args, snap: Path) -> str:
    d = Path(args.build_dir) if getattr(args, "build_dir", None) else ROOT / "build"
    return f"bundle {d} (index_bg.wasm {(snap / 'index_bg.wasm').stat().st_size / 1024:.0f} KiB)"


def serve(args, tmp: Path) -> int:
    snap, seed, okta, messaging = start_common(args, tmp)
    v = base_vars(args.stand_ins, okta, messaging and messaging.endpoint, args.guard_mode) \
        if args.stand_ins != "none" else dict(wrangler_settings().get("vars", {}))
    for item in args.var:
        k, sep, val = item.partition("=")
        if not sep:
            raise SystemExit(f"--var {item!r}: expected NAME=VALUE")
        v[k] = val
    if args.vars_file:  # NAME=VALUE lines (a .dev.vars file): secrets, never printed
        for line in Path(args.vars_file).read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#") and "=" in line:
                k, _, val = line.partition("=")
                v[k.strip()] = val.strip().strip('"')
    d = tmp / "serve"
    d.mkdir()
    s = Setup(vars=v, dir=d, main=snap, seed=seed, jwks=json.dumps(okta.jwks()), outbound=args.stand_ins,
              ports={"http": args.port, "control": free_port(), "standins": free_port()},
              ledger=not args.no_ledger, inspector=args.inspector_port)
    w = Workerd(s, "serve")
    try:
        took = w.wait_accepting()
        url = f"http://127.0.0.1:{args.port}"
        print(f"workerd serving {snap.name}/ on {url} (ready in {took * 1000:.0f}ms; stand-ins: {args.stand_ins}; "
              f"config {d / 'config.capnp'}; log {w.log_path})")
        print(f"stand-in counters: curl -s http://127.0.0.1:{s.ports['control']}/stats")
        if args.stand_ins != "none":
            token = d / "token"
            token.write_text(okta.mint(iss=v["OKTA_ISSUER"], cid=v["OKTA_ALLOWED_CLIENT_IDS"],
                                       sub=v["OKTA_ALLOWED_CLIENT_IDS"], exp=int(time.time()) + 12 * 3600))
            body = d / "sms.json"
            body.write_bytes(Telephony("telephony-sms-password-reset.json").body(0))
            print(f"sample: curl -s {url}/okta/telephony -H 'Content-Type: application/json' "
                  f"-H \"Authorization: Bearer $(cat {token})\" --data @{body}")
        if args.inspector_port:
            print(f"inspector: http://127.0.0.1:{args.inspector_port}/json (one target per service; chrome://inspect)")
        print(f"health: curl -s {url}/healthz\nCtrl-C to stop.", flush=True)
        while w.proc.poll() is None:
            time.sleep(0.5)
        print(f"workerd exited with {w.proc.returncode}:\n{w.tail()}", file=sys.stderr)
        return 1
    finally:
        w.stop()
        okta.close()
        if messaging is not None:
            messaging.close()


def _interrupt(*_):
    raise KeyboardInterrupt


def main() -> int:
    global PHONES
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", nargs="?", default="bench", choices=("bench", "serve"))
    ap.add_argument("--stand-ins", default="inprocess", choices=("inprocess", "loopback", "none"))
    ap.add_argument("--guard-mode", default="off", help="OTP_GUARD_MODE of the main process ('' = the Worker's default)")
    ap.add_argument("--kv-seed", help="a kv-seed bulk file (default: build/kv-seed.json or `cargo run --bin kv-seed`); "
                                      "'builtin': TEMPLATES empty (the Worker's built-in English templates)")
    ap.add_argument("--do-storage", default="disk", choices=("disk", "memory"),
                    help="OtpLedger storage: SQLite files in a temporary directory on disk, or on tmpfs (/dev/shm)")
    ap.add_argument("--phones", type=int, default=PHONES,
                    help="destination numbers cycled (one ledger object each, all created by the warm-up); "
                         "1 = every request on one object")
    ap.add_argument("--sequential", type=int, default=500)
    ap.add_argument("--requests", type=int, default=2000, help="per concurrent phase (8 and 32 clients)")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--cold-rounds", type=int, default=5)
    ap.add_argument("--deliveries", type=int, default=10, help="event-hook deliveries of 100 events")
    ap.add_argument("--templates", type=int, default=5000)
    ap.add_argument("--only", help="comma-separated: warm_token,fresh_token,voice,replay,refused_country,"
                                   "refused_bad_token,standin_floor,cold_start,events,sync")
    ap.add_argument("--skip-upstreams", action="store_true", help="no event hook, consumer or sync phases")
    ap.add_argument("--build-dir", help="serve this index.js + index_bg.wasm instead of build/ (e.g. a build with "
                                        "the wasm names section kept: KEEP_WASM_NAMES=1 bash scripts/build)")
    ap.add_argument("--compare", metavar="BEFORE_DIR",
                    help="also serve this build (index.js + index_bg.wasm) in a second main process and run every "
                         "main-process phase on both, alternately: a before/after table from one run")
    ap.add_argument("--no-ledger", action="store_true",
                    help="no OTP_LEDGER binding nor namespace in the main process (the Worker's fail-open path)")
    ap.add_argument("--profile", metavar="KIND", help="instead of the bench: V8's CPU profile of KIND (warm_token, "
                                                      "fresh_token, voice, ...) over the inspector; .cpuprofile in build/bench/")
    ap.add_argument("--profile-requests", type=int, default=2000, help="--profile: requests profiled (and as many before, unprofiled)")
    ap.add_argument("--profile-concurrency", type=int, default=8)
    ap.add_argument("--profile-targets", default="main", help="--profile: inspector targets (services), comma-separated, or 'all'")
    ap.add_argument("--sampling-us", type=int, default=50, help="--profile: Profiler.setSamplingInterval (µs)")
    ap.add_argument("--inspector-port", type=int, help="serve: also open workerd's inspector on this port (DevTools)")
    ap.add_argument("--port", type=int, default=8787, help="serve: the port")
    ap.add_argument("--var", action="append", default=[], help="serve: NAME=VALUE (repeatable)")
    ap.add_argument("--vars-file", help="serve: NAME=VALUE lines (secrets; never printed)")
    args = ap.parse_args()
    PHONES = args.phones
    if not (1 <= args.sequential <= 20_000 and 1 <= args.requests <= 50_000 and 0 <= args.cold_rounds <= 20
            and 1 <= args.deliveries <= 100 and 1 <= args.phones <= 10_000 and 2 <= args.templates <= 20_000 and 1 <= args.warmup <= 1000):
        print("bounds: --sequential 1..20000, --requests 1..50000, --cold-rounds 0..20, --deliveries 1..100, "
              "--templates 2..20000, --warmup 1..1000", file=sys.stderr)
        return 2
    if args.mode == "bench" and args.stand_ins == "none":
        print("bench needs stand-ins (inprocess or loopback)", file=sys.stderr)
        return 2
    if not WORKERD.exists():
        print(f"{WORKERD} is missing: run scripts/setup", file=sys.stderr)
        return 1
    # SIGTERM (e.g. from `timeout`) must still stop workerd: turn it into KeyboardInterrupt.
    signal.signal(signal.SIGTERM, _interrupt)
    # The OtpLedger's SQLite files live in the temporary directory: on disk, or in RAM (tmpfs).
    # (workerd's `inMemory` storage has no SQL API: the ledger would fail and the Worker fail open.)
    shm = Path("/dev/shm")
    if args.do_storage == "memory" and not shm.is_dir():
        print("--do-storage memory needs /dev/shm (tmpfs)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="oeh-workerd-", dir=shm if args.do_storage == "memory" else None))
    try:
        if args.profile:
            return run_profile(args, tmp)
        return (serve if args.mode == "serve" else bench)(args, tmp)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130 if args.mode == "bench" else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
