"""End-to-end latency and throughput of POST /okta/telephony through local workerd (`wrangler dev`).

Starts, all on 127.0.0.1:
- an INSTANT fake End User Messaging endpoint (threaded http.server; answers every POST with a
  fresh {"MessageId": ...} at once, checks nothing);
- the Okta mock of tests/e2e/mocks/okta.py (JWKS, token minting);
- `wrangler dev` on a copy of the already built Worker (bash scripts/build first; the copy and a
  config without [build] keep edits under src/ from rebuilding and reloading it mid-run), with
  local KV seeded by `scripts/seed-kv --persist-to DIR`.

Then sends SMS requests with unique eventIds and one access token (cached by the Worker after its
first use): N sequential requests (p50/p90/p99/max), then C concurrent clients for D seconds
(requests/second, p50/p99). Everything is bounded in count and time; wrangler is stopped at the end.

`--ledger-compare`: instead, in one run, the same build twice side by side: with the OTP_LEDGER
Durable Object (every request claims its eventId in the object before sending and settles the
answer after) and with the binding removed from the config (the fail-open path: no claim, an alert
line per request). Sequential and 8 concurrent clients against each, in alternating rounds; prints
p50/p99 of each and the difference: what the object adds per request.

The toll-fraud guard is off (`--guard-mode off`, OTP_GUARD_MODE): its per-number and per-prefix
limits would refuse a benchmark's thousands of codes, and its own object calls are not the ledger.

Figures are printed as `BENCH ...` lines. Usage (after `source scripts/env.sh`):
    .venv/bin/python bench/e2e_latency.py [--sequential 1000] [--concurrency 16] [--seconds 10]
    .venv/bin/python bench/e2e_latency.py --ledger-compare [--sequential 500] [--seconds 8] [--rounds 2]
"""
from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from mocks.okta import MockOkta  # noqa: E402
from helpers import iso  # noqa: E402
from _common import InstantMessaging, Wrangler, percentile, session_cpu, summary  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "okta" / "telephony-sms-password-reset.json"
AKID = "AKIDLOCALBENCH000001"
AWS_SECRET = "local-bench-secret-key-not-a-real-aws-key"
START_TIMEOUT_S = 180          # wrangler dev until /healthz answers (the Worker is already built)
BUILD_TIMEOUT_S = 900          # waiting for someone else's build of build/ to finish before copying it
REQUEST_TIMEOUT_S = 10
SEQUENTIAL_BUDGET_S = 180      # the sequential phase stops here even if N requests are not done
MAX_CONCURRENT_REQUESTS = 200_000


class Bodies:
    """Request bodies with unique eventIds, cheap to make (a string substitution per request).
    eventTime is the start of the run and otpExpires 30 minutes later: the run is shorter."""

    def __init__(self, phones: int = 0):
        """`phones` > 0: cycle through that many distinct US numbers (+1415555xxxx), so that the
        per-number ledger objects are spread as in real traffic; 0: the fixture's one number."""
        body = json.loads(FIXTURE.read_text())
        now = datetime.now(timezone.utc)
        body["eventId"] = "@@EVENT@@"
        body["eventTime"] = iso(now)
        body["data"]["messageProfile"]["otpExpires"] = iso(now + timedelta(minutes=30))
        if phones:
            body["data"]["messageProfile"]["phoneNumber"] = "@@PHONE@@"
        self.phones = min(phones, 10_000)
        self.template = json.dumps(body)
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}-"
        self.counter = itertools.count()

    def next(self) -> bytes:
        n = next(self.counter)  # atomic under the GIL
        out = self.template.replace("@@EVENT@@", f"{self.prefix}{n:07d}")
        if self.phones:
            out = out.replace("@@PHONE@@", f"+1415555{n % self.phones:04d}")
        return out.encode()


class Client:
    """One keep-alive HTTP/1.1 connection to the Worker."""

    def __init__(self, port: int, token: str):
        self.port = port
        self.headers = {"Content-Type": "application/json", "Accept": "application/json",
                        "Authorization": f"Bearer {token}"}
        self.conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes) -> tuple[float, bool, str]:
        """(latency ms, answered SUCCESSFUL, detail)."""
        for attempt in (0, 1):  # one reconnect if the kept-alive connection was closed
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
            t0 = time.perf_counter()
            try:
                self.conn.request("POST", "/okta/telephony", body=body, headers=self.headers)
                resp = self.conn.getresponse()
                data = resp.read()
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                self.close()
                if attempt == 0 and not isinstance(e, TimeoutError):
                    continue
                return (time.perf_counter() - t0) * 1000, False, f"{type(e).__name__}: {e}"
            ms = (time.perf_counter() - t0) * 1000
            ok = resp.status == 200 and b'"SUCCESSFUL"' in data
            return ms, ok, "" if ok else f"HTTP {resp.status}: {data[:300]!r}"
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ---- wrangler dev --------------------------------------------------------------------------------
def snapshot_build(tmp: Path) -> Path:
    """A copy of the built Worker (build/), once a build in progress has finished."""
    build = ROOT / "build"
    t0 = time.monotonic()
    while (build / ".tmp").exists() or not (build / "index.js").exists():  # a build is in progress
        if time.monotonic() - t0 > BUILD_TIMEOUT_S:
            raise RuntimeError("no finished build in build/ (a build seems to be in progress)")
        time.sleep(1)
    snap = tmp / "build"
    if not snap.exists():
        shutil.copytree(build, snap, ignore=shutil.ignore_patterns(".tmp", "dry-run", "bench"))
    return snap


# Tables dropped from wrangler.toml for the run without the ledger object.
LEDGER_TABLES = ("[[durable_objects.bindings]]", "[[migrations]]", "[[env.production.durable_objects.bindings]]")


def snapshot_config(tmp: Path, ledger: bool = True) -> Path:
    """A copy of the built Worker (build/) and a wrangler config that runs it: wrangler.toml with
    `main` pointing at the copy and no [build] section. With the plain config, wrangler dev rebuilds
    and reloads the Worker whenever a file under src/ changes — mid-measurement, while others edit.
    `ledger=False` also drops the OTP_LEDGER Durable Object binding and the migrations."""
    snap = snapshot_build(tmp)
    out, skipping, main_done = [], False, False
    for line in (ROOT / "wrangler.toml").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            skipping = stripped == "[build]" or (not ledger and stripped in LEDGER_TABLES)
        if skipping:
            continue
        if not main_done and stripped.startswith("main") and "=" in stripped:
            line = f"main = {json.dumps(str(snap / 'index.js'))}"
            main_done = True
        out.append(line)
    if not main_done:
        raise RuntimeError("wrangler.toml has no top-level `main`")
    config = tmp / ("wrangler.bench.toml" if ledger else "wrangler.bench.no-ledger.toml")
    config.write_text("\n".join(out) + "\n")
    return config


# ---- where the CPU goes --------------------------------------------------------------------------
def cpu_per_request(before: dict[str, float], after: dict[str, float], requests: int) -> str:
    if requests <= 0:
        return ""
    parts = []
    for name in sorted(after, key=lambda k: -(after[k] - before.get(k, 0.0))):
        ms = (after[name] - before.get(name, 0.0)) * 1000 / requests
        if ms >= 0.05:
            parts.append(f"{name}={ms:.2f}")
    return "cpu_ms_per_request: " + " ".join(parts)


# ---- phases --------------------------------------------------------------------------------------
def sequential(port: int, token: str, bodies: Bodies, n: int) -> tuple[list[float], list[str]]:
    client = Client(port, token)
    lat, errors = [], []
    deadline = time.monotonic() + SEQUENTIAL_BUDGET_S
    for _ in range(n):
        if time.monotonic() > deadline:
            errors.append(f"stopped after {SEQUENTIAL_BUDGET_S}s budget")
            break
        body = bodies.next()
        ms, ok, detail = client.post(body)
        lat.append(ms)
        if not ok:
            errors.append(detail)
    client.close()
    return lat, errors


def concurrent(port: int, token: str, bodies: Bodies, clients: int, seconds: float):
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    done = itertools.count()
    start = threading.Event()
    stop_at = [0.0]

    def worker():
        client = Client(port, token)
        mine, bad = [], []
        start.wait()
        while time.monotonic() < stop_at[0] and next(done) < MAX_CONCURRENT_REQUESTS:
            body = bodies.next()
            ms, ok, detail = client.post(body)
            mine.append(ms)
            if not ok:
                bad.append(detail)
        client.close()
        with lock:
            lat.extend(mine)
            errors.extend(bad)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    stop_at[0] = t0 + seconds
    start.set()
    for t in threads:
        t.join(seconds + REQUEST_TIMEOUT_S * 2 + 5)
    elapsed = time.monotonic() - t0
    return lat, errors, elapsed


def direct_messaging_baseline(endpoint_port: int, n: int = 300) -> list[float]:
    """The fake messaging endpoint alone, from Python (what it adds to every Worker request)."""
    conn = http.client.HTTPConnection("127.0.0.1", endpoint_port, timeout=5)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("POST", "/", body=b"{}", headers={"Content-Type": "application/x-amz-json-1.0"})
        conn.getresponse().read()
        out.append((time.perf_counter() - t0) * 1000)
    conn.close()
    return out


def _interrupt(*_):
    raise KeyboardInterrupt


def worker_vars(okta: MockOkta, messaging: InstantMessaging, guard_mode: str) -> dict:
    v = {
        "OKTA_AUTH_MODE": "oauth",
        "OKTA_ISSUER": okta.issuer,
        "OKTA_AUDIENCE": okta.audience,
        "OKTA_ALLOWED_CLIENT_IDS": okta.client_id,
        "OKTA_REQUIRED_SCOPE": okta.scope,
        "OKTA_ALLOW_INSECURE_ISSUER": "true",
        "AWS_REGION": "us-east-1",
        "AWS_SMS_VOICE_ENDPOINT": messaging.endpoint,
        "AWS_ACCESS_KEY_ID": AKID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "ORIGINATION_IDENTITIES": json.dumps({"US": "arn:aws:sms-voice:us-east-1:111122223333:pool/pool-us",
                                              "default": "arn:aws:sms-voice:us-east-1:111122223333:pool/pool"},
                                             separators=(",", ":")),
        "SMS_CONFIGURATION_SET": "okta-otp",
    }
    if guard_mode:
        v["OTP_GUARD_MODE"] = guard_mode
    return v


def _diff(with_ms: list[float], without_ms: list[float]) -> str:
    a, b = sorted(with_ms), sorted(without_ms)
    if not a or not b:
        return "n/a"
    parts = []
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        parts.append(f"{name}={percentile(a, q) - percentile(b, q):+.2f}ms")
    return " ".join(parts)


def ledger_compare(args, tmp: Path, messaging: InstantMessaging, okta: MockOkta, env_file: Path,
                   workers: list) -> int:
    """The same build with and without the OTP_LEDGER object, measured in alternating rounds."""
    seeded = tmp / "seeded"
    r = subprocess.run([str(ROOT / "scripts" / "seed-kv"), "--persist-to", str(seeded)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        print(f"scripts/seed-kv failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}", file=sys.stderr)
        return 1
    vars = worker_vars(okta, messaging, args.guard_mode)
    modes = {}
    for label, ledger in (("with_object", True), ("without_object", False)):
        persist = tmp / f"state-{label}"
        shutil.copytree(seeded, persist)
        w = Wrangler(snapshot_config(tmp, ledger), vars, persist, tmp / f"wrangler-{label}.log", env_file)
        workers.append(w)
        took = w.wait_ready(START_TIMEOUT_S, START_TIMEOUT_S)
        modes[label] = w
        print(f"BENCH ledger_setup_{label}: wrangler dev ready in {took:.1f}s on 127.0.0.1:{w.port}"
              f"{'' if ledger else ' (OTP_LEDGER binding removed: fail-open, one alert line per request)'}",
              flush=True)

    token = okta.mint(exp=int(time.time()) + 6 * 3600)
    bodies = Bodies(phones=args.phones)
    print(f"BENCH ledger_setup: {args.phones or 1} distinct destination numbers, guard mode "
          f"{args.guard_mode or '(Worker default)'}, {args.rounds} alternating rounds per phase", flush=True)
    for label, w in modes.items():
        warm, errs = sequential(w.port, token, bodies, args.warmup)
        if errs:
            print(f"warm-up ({label}) failed: {errs[:3]}\n{w.tail()}", file=sys.stderr)
            return 1
        print(f"BENCH ledger_first_request_{label}: {warm[0]:.2f}ms", flush=True)

    order = [("with_object", "without_object") if i % 2 == 0 else ("without_object", "with_object")
             for i in range(args.rounds)]
    seq = {k: [] for k in modes}
    seq_err = {k: 0 for k in modes}
    for rnd in order:
        for label in rnd:
            lat, errs = sequential(modes[label].port, token, bodies, max(1, args.sequential // args.rounds))
            seq[label] += lat
            seq_err[label] += len(errs)
            for e in errs[:2]:
                print(f"  error ({label}): {e}", file=sys.stderr)
    for label in modes:
        print(f"BENCH ledger_sequential_{label}: {summary(seq[label])} errors={seq_err[label]}", flush=True)
    print(f"BENCH ledger_sequential_object_adds: {_diff(seq['with_object'], seq['without_object'])} "
          f"(with − without, per request)", flush=True)

    c = args.compare_concurrency
    conc = {k: [] for k in modes}
    conc_err = {k: 0 for k in modes}
    conc_s = {k: 0.0 for k in modes}
    for rnd in order:
        for label in rnd:
            lat, errs, elapsed = concurrent(modes[label].port, token, bodies, c, args.seconds / args.rounds)
            conc[label] += lat
            conc_err[label] += len(errs)
            conc_s[label] += elapsed
            for e in errs[:2]:
                print(f"  error ({label}): {e}", file=sys.stderr)
    for label in modes:
        s = sorted(conc[label])
        rps = len(s) / conc_s[label] if conc_s[label] > 0 else float("nan")
        print(f"BENCH ledger_concurrency_{c}_{label}: {rps:.0f} req/s over {conc_s[label]:.1f}s "
              f"p50={percentile(s, 0.5):.2f}ms p99={percentile(s, 0.99):.2f}ms n={len(s)} errors={conc_err[label]}",
              flush=True)
    a, b = len(conc["with_object"]) / max(conc_s["with_object"], 1e-9), \
        len(conc["without_object"]) / max(conc_s["without_object"], 1e-9)
    print(f"BENCH ledger_concurrency_{c}_object_adds: {_diff(conc['with_object'], conc['without_object'])} "
          f"throughput {a / b if b else float('nan'):.2f}× (with ÷ without)", flush=True)
    return 0 if not any(seq_err.values()) and not any(conc_err.values()) else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sequential", type=int, default=None, help="default 1000 (500 with --ledger-compare)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=None, help="default 10 (8 per mode with --ledger-compare)")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--ledger-compare", action="store_true",
                    help="with and without the OTP_LEDGER Durable Object, side by side")
    ap.add_argument("--compare-concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds per phase (--ledger-compare)")
    ap.add_argument("--guard-mode", default="off", help="OTP_GUARD_MODE for the Worker ('' = its default)")
    ap.add_argument("--phones", type=int, default=10_000,
                    help="--ledger-compare: distinct destination numbers, cycled (one ledger object each); "
                         "1 = every request on one object")
    args = ap.parse_args()
    if args.sequential is None:
        args.sequential = 500 if args.ledger_compare else 1000
    if args.seconds is None:
        args.seconds = 8.0 if args.ledger_compare else 10.0
    if not (1 <= args.sequential <= 20_000 and 1 <= args.concurrency <= 64 and 0 < args.seconds <= 120
            and 1 <= args.compare_concurrency <= 64 and 1 <= args.rounds <= 10 and 1 <= args.phones <= 10_000):
        print("bounds: --sequential 1..20000, --concurrency 1..64, --seconds (0, 120], "
              "--compare-concurrency 1..64, --rounds 1..10, --phones 1..10000", file=sys.stderr)
        return 2
    for f in ("index.js", "index_bg.wasm"):
        if not (ROOT / "build" / f).exists():
            print(f"build/{f} is missing: run `bash scripts/build` first", file=sys.stderr)
            return 1

    # SIGTERM (e.g. from a timeout) must still stop wrangler: turn it into KeyboardInterrupt.
    signal.signal(signal.SIGTERM, _interrupt)

    tmp = Path(tempfile.mkdtemp(prefix="oeh-bench-"))
    messaging = InstantMessaging()
    okta = MockOkta("aus_bench")
    worker = None
    workers: list = []
    try:
        if args.ledger_compare:
            env_file = tmp / "empty.env"
            env_file.touch()
            return ledger_compare(args, tmp, messaging, okta, env_file, workers)
        persist = tmp / "state"
        r = subprocess.run([str(ROOT / "scripts" / "seed-kv"), "--persist-to", str(persist)], cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            print(f"scripts/seed-kv failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}", file=sys.stderr)
            return 1
        env_file = tmp / "empty.env"
        env_file.touch()
        vars = worker_vars(okta, messaging, args.guard_mode)
        worker = Wrangler(snapshot_config(tmp), vars, persist, tmp / "wrangler.log", env_file)
        took = worker.wait_ready(START_TIMEOUT_S, START_TIMEOUT_S)
        print(f"BENCH e2e_setup: wrangler dev ready in {took:.1f}s on 127.0.0.1:{worker.port}; "
              f"instant messaging {messaging.endpoint}; Okta mock {okta.issuer}", flush=True)

        token = okta.mint(exp=int(time.time()) + 6 * 3600)
        bodies = Bodies()
        warm, warm_errors = sequential(worker.port, token, bodies, args.warmup)
        if warm_errors:
            print(f"warm-up failed: {warm_errors[:3]}\n{worker.tail()}", file=sys.stderr)
            return 1
        print(f"BENCH e2e_first_request: {warm[0]:.2f}ms (JWKS fetch, key import, RS256 verify, template load)",
              flush=True)

        base = direct_messaging_baseline(messaging.port)
        print(f"BENCH e2e_fake_messaging_alone: {summary(base)} (Python client → fake endpoint, keep-alive)",
              flush=True)

        cpu0 = session_cpu(worker.proc.pid, include_self=True)
        lat, errors = sequential(worker.port, token, bodies, args.sequential)
        cpu1 = session_cpu(worker.proc.pid, include_self=True)
        print(f"BENCH e2e_sequential: {summary(lat)} errors={len(errors)}", flush=True)
        print(f"BENCH e2e_sequential_{cpu_per_request(cpu0, cpu1, len(lat))}", flush=True)
        for e in errors[:3]:
            print(f"  error: {e}", file=sys.stderr)

        cpu0 = session_cpu(worker.proc.pid, include_self=True)
        lat, errors, elapsed = concurrent(worker.port, token, bodies, args.concurrency, args.seconds)
        cpu1 = session_cpu(worker.proc.pid, include_self=True)
        rps = len(lat) / elapsed if elapsed > 0 else float("nan")
        s = sorted(lat)
        print(f"BENCH e2e_concurrency_{args.concurrency}: {rps:.0f} req/s over {elapsed:.1f}s "
              f"p50={percentile(s, 0.5):.2f}ms p99={percentile(s, 0.99):.2f}ms max={s[-1] if s else float('nan'):.2f}ms "
              f"n={len(s)} errors={len(errors)}", flush=True)
        print(f"BENCH e2e_concurrency_{args.concurrency}_{cpu_per_request(cpu0, cpu1, len(lat))}", flush=True)
        for e in errors[:3]:
            print(f"  error: {e}", file=sys.stderr)
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if worker is not None:
            worker.stop()
            if os.environ.get("BENCH_KEEP_LOG"):
                shutil.copy(worker.log_path, os.environ["BENCH_KEEP_LOG"])
        for i, w in enumerate(workers):
            w.stop()
            if os.environ.get("BENCH_KEEP_LOG"):
                shutil.copy(w.log_path, f"{os.environ['BENCH_KEEP_LOG']}.{i}")
        messaging.close()
        okta.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
