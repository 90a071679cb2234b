"""Toll-fraud guard benchmark: an SMS-pumping simulation through local workerd (`wrangler dev`).

Not a test: it prints figures (`BENCH ...` lines) and asserts nothing about them. Everything runs on
127.0.0.1: the verifying End User Messaging stand-in of tests/e2e/mocks/aws.py (SigV4 and the
service model checked on every send, every send recorded; `--messaging instant` uses the instant
stand-in of bench/_common.py instead), the Okta mock (JWKS), KV seeded by `scripts/seed-kv`, and
`wrangler dev` (bench/_common.py's launcher) on a copy of the built Worker (`build/`, with a config
without `[build]`, so edits under src/ do not rebuild it mid-run). It never builds.

1. Simulation (two instances side by side, same traffic, chunks alternating between them):
   guard on (`OTP_GUARD_MODE=enforce`, `OTP_ALLOWED_COUNTRIES=LV,LT,EE,GB,US`, the Worker's default
   velocity windows unless `--rate-limits`) and guard off (`OTP_GUARD_MODE=off`). Traffic: pumping,
   10,000 requests over 2,000 numbers in 30 prefixes of 5 countries (self-service enrolment by
   default, a new user id per request), interleaved with a legitimate background of 500 users (a
   distinct number each, in prefixes of their own in the same countries, 1 or 2 MFA requests each).
   Reported: sends allowed vs blocked per class, with the guard's reasons and keys (from the
   Worker's log lines); false refusals of legitimate users (the goal is 0); p50/p99 latency per
   class; CPU (utime + stime from /proc) of the workerd and wrangler processes per request.
2. Saturation (a fresh guard-on instance): the same kind of traffic concentrated on one country and
   one prefix, as fast as `--concurrency` clients (16–32) can drive it, for at most `--seconds`
   (≤ 30): requests/s, p50/p99, the answers, and the Worker's alerts in the order they first
   appeared (e.g. `the OTP ledger did not answer` = the number objects, `toll-fraud guard objects
   did not answer` = prefix/country/user objects): which object gives first.

Usage (after `bash scripts/build`, `source scripts/env.sh`):
    .venv/bin/python bench/guard_bench.py [--quick] [--concurrency 8] [--seconds 30]
        [--saturation-concurrency 24] [--messaging verify|instant] [--rate-limits JSON]
        [--pump-type enrollment|mfa]
`--quick`: about 500 requests and a 5 s saturation phase, for a smoke run.
"""
from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))

from _common import InstantMessaging, Wrangler, percentile, session_cpu  # noqa: E402
from helpers import iso  # noqa: E402
from mocks.aws import MockMessaging  # noqa: E402
from mocks.okta import MockOkta  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "okta" / "telephony-sms-password-reset.json"
AKID = "AKIDLOCALBENCH000002"
AWS_SECRET = "local-guard-bench-secret-not-a-real-key"
START_TIMEOUT_S = 180
BUILD_WAIT_S = 900
REQUEST_TIMEOUT_S = 10
SIM_BUDGET_S = 900           # the whole simulation stops here, whatever is left
MAX_SATURATION_REQUESTS = 200_000
ENROLLMENT = "com.okta.user.telephony.pre-enrollment"
MFA = "com.okta.user.telephony.mfa-verification"
COUNTRIES = ("LV", "LT", "EE", "GB", "US")
US_AREAS = ("212", "213", "305", "312", "415", "646", "702", "808")  # none Canadian, no 976 exchange used

# Blocks ("prefixes": a number without its last 4 digits), per country. Pumped blocks and the
# legitimate users' blocks never overlap.
def pump_prefix(country: str, k: int) -> str:
    return {"LV": f"+37126{k:02d}", "LT": f"+37066{k:02d}", "EE": f"+37251{k:02d}",
            "GB": f"+447400{k:02d}", "US": f"+1{US_AREAS[k % len(US_AREAS)]}55{k // len(US_AREAS)}"}[country]


def legit_prefix(country: str, k: int) -> str:
    return {"LV": f"+37129{k:02d}", "LT": f"+37069{k:02d}", "EE": f"+37258{k:02d}",
            "GB": f"+447800{k:02d}", "US": f"+1617{200 + k:03d}"}[country]


SATURATION_PREFIX = "+3712777"  # LV


# ---- traffic -------------------------------------------------------------------------------------------
class Traffic:
    """Request bodies from the fixture: fresh eventId, the given phone, user and request type."""

    def __init__(self):
        body = json.loads(FIXTURE.read_text())
        now = datetime.now(timezone.utc)
        body["eventTime"] = iso(now)
        body["data"]["messageProfile"]["otpExpires"] = iso(now + timedelta(hours=2))
        self.base = body
        self.run = f"gb{os.getpid():x}{int(time.time()) % 100000:05d}"
        self.n = 0
        self.lock = threading.Lock()

    def body(self, phone: str, user: str, request_type: str) -> tuple[str, bytes]:
        with self.lock:
            self.n += 1
            n = self.n
        event_id = f"{self.run}-{n:07d}"
        b = json.loads(json.dumps(self.base))
        b["eventId"] = event_id
        b["requestType"] = request_type
        b["data"]["userProfile"]["userId"] = user
        m = b["data"]["messageProfile"]
        m["phoneNumber"] = phone
        otp = f"{random.randrange(10**7, 10**8)}"
        m["otpCode"] = otp
        m["msgTemplate"] = f"Your verification code is {otp}"
        return event_id, json.dumps(b).encode()


def simulation_plan(rng: random.Random, pump_requests: int, pump_numbers: int, prefixes: int,
                    legit_users: int, pump_type: str, pump_users: int) -> list[dict]:
    """The interleaved request list: dicts with class, phone, user, request type."""
    per_country = max(1, prefixes // len(COUNTRIES))
    blocks = [pump_prefix(c, k) for c in COUNTRIES for k in range(per_country)]
    numbers: list[str] = []
    used: set[str] = set()
    i = 0
    while len(numbers) < pump_numbers:
        block = blocks[i % len(blocks)]
        n = f"{block}{rng.randrange(10000):04d}"
        if n not in used:
            used.add(n)
            numbers.append(n)
            i += 1
    pump = []
    attackers = [f"00uPUMP{k:012d}" for k in range(pump_users)]
    for j in range(pump_requests):
        user = attackers[j % len(attackers)] if attackers else f"00uPUMP{rng.randrange(16**12):012x}"
        pump.append({"cls": "pump", "phone": numbers[j % len(numbers)], "user": user, "type": pump_type})
    rng.shuffle(pump)
    legit = []
    for u in range(legit_users):
        country = COUNTRIES[u % len(COUNTRIES)]
        phone = f"{legit_prefix(country, u // len(COUNTRIES))}{rng.randrange(10000):04d}"
        user = f"00uLEGIT{u:011d}"
        for _ in range(rng.choice((1, 2))):
            legit.append({"cls": "legit", "phone": phone, "user": user, "type": MFA})
    # Interleave: each legitimate request at a random position of the pumping stream (in order per user).
    slots = sorted(rng.randrange(len(pump) + 1) for _ in legit)
    out, li = [], 0
    for pos in range(len(pump) + 1):
        while li < len(legit) and slots[li] == pos:
            out.append(legit[li])
            li += 1
        if pos < len(pump):
            out.append(pump[pos])
    return out


# ---- HTTP ----------------------------------------------------------------------------------------------
class Client:
    """One keep-alive connection to a Worker."""

    def __init__(self, port: int, token: str):
        self.port = port
        self.headers = {"Content-Type": "application/json", "Accept": "application/json",
                        "Authorization": f"Bearer {token}"}
        self.conn = None

    def post(self, body: bytes) -> tuple[float, str, str]:
        """(latency ms, kind, reason): kind SUCCESSFUL/FAILED/PENDING/error/HTTP n/exception."""
        for attempt in (0, 1):
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
                return (time.perf_counter() - t0) * 1000, "exception", type(e).__name__
            ms = (time.perf_counter() - t0) * 1000
            return (ms,) + classify(resp.status, data)
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def classify(status: int, data: bytes) -> tuple[str, str]:
    try:
        body = json.loads(data)
    except ValueError:
        return f"HTTP {status}", "not JSON"
    if "error" in body:
        try:
            return ("error" if status == 200 else f"HTTP {status}"), body["error"]["errorCauses"][0]["reason"]
        except (KeyError, IndexError, TypeError):
            return f"HTTP {status}", ""
    try:
        v = body["commands"][0]["value"][0]
        meta = json.loads(v.get("transactionMetadata") or "{}")
        return v["status"], (meta.get("reason") or "") if isinstance(meta, dict) else ""
    except (KeyError, IndexError, TypeError, ValueError):
        return f"HTTP {status}", "unknown"


def drive(port: int, token: str, items: list[tuple[dict, str, bytes]], clients: int,
          stop_at: float | None = None) -> list[tuple[dict, str, float, str, str]]:
    """Sends `items` ((request, eventId, body)) with `clients` keep-alive clients, in list order;
    returns (request, eventId, ms, kind, reason) per request sent."""
    q: queue.Queue = queue.Queue()
    for it in items:
        q.put(it)
    results, lock = [], threading.Lock()

    def worker():
        c, mine = Client(port, token), []
        while stop_at is None or time.monotonic() < stop_at:
            try:
                r, eid, body = q.get_nowait()
            except queue.Empty:
                break
            ms, kind, reason = c.post(body)
            mine.append((r, eid, ms, kind, reason))
        c.close()
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# ---- processes and logs ----------------------------------------------------------------------------------
def cpu_delta(before: dict, after: dict) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in set(before) | set(after)}


def log_records(path: Path, msg: str) -> list[dict]:
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if f'"msg":"{msg}"' not in line:
            continue
        i = line.find("{")
        try:
            out.append(json.JSONDecoder().raw_decode(line[i:])[0])
        except ValueError:
            pass
    return out


def alert_kind(text: str) -> str:
    """An alert without its eventId, number or counts: what kind of thing gave."""
    t = re.sub(r"\(eventId [^)]*\)", "", text)
    t = re.sub(r"for eventId \S+", "", t)
    t = re.sub(r"(prefix|country) \S+ is over \d+ per \d+ s", r"\1 <key> is over its limit", t)
    t = re.sub(r"\(.*\)$", "(…)", t.strip())
    return re.sub(r"\s+", " ", t).strip()[:120]


# ---- setup ----------------------------------------------------------------------------------------------
def snapshot_config(tmp: Path) -> Path:
    """A copy of build/ and wrangler.toml without [build], `main` on the copy (bindings kept)."""
    build = ROOT / "build"
    t0 = time.monotonic()
    while (build / ".tmp").exists() or not (build / "index.js").exists():
        if time.monotonic() - t0 > BUILD_WAIT_S:
            raise RuntimeError("no finished build in build/ (run `bash scripts/build`)")
        time.sleep(1)
    snap = tmp / "build"
    if not snap.exists():
        shutil.copytree(build, snap, ignore=shutil.ignore_patterns(".tmp", "dry-run", "bench"))
    out, skipping, main_done = [], False, False
    for line in (ROOT / "wrangler.toml").read_text().splitlines():
        s = line.strip()
        if s.startswith("["):
            skipping = s == "[build]"
        if skipping:
            continue
        if not main_done and s.startswith("main") and "=" in s:
            line, main_done = f"main = {json.dumps(str(snap / 'index.js'))}", True
        out.append(line)
    config = tmp / "wrangler.guard-bench.toml"
    config.write_text("\n".join(out) + "\n")
    return config


def worker_vars(okta: MockOkta, endpoint: str, mode: str, rate_limits: str) -> dict:
    return {
        "OKTA_AUTH_MODE": "oauth",
        "OKTA_ISSUER": okta.issuer,
        "OKTA_AUDIENCE": okta.audience,
        "OKTA_ALLOWED_CLIENT_IDS": okta.client_id,
        "OKTA_REQUIRED_SCOPE": okta.scope,
        "OKTA_ALLOW_INSECURE_ISSUER": "true",
        "AWS_REGION": "us-east-1",
        "AWS_SMS_VOICE_ENDPOINT": endpoint,
        "AWS_ACCESS_KEY_ID": AKID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "ORIGINATION_IDENTITIES": json.dumps({"US": "arn:aws:sms-voice:us-east-1:111122223333:pool/pool-us",
                                              "default": "arn:aws:sms-voice:us-east-1:111122223333:pool/pool"},
                                             separators=(",", ":")),
        "SMS_CONFIGURATION_SET": "okta-otp",
        "OTP_GUARD_MODE": mode,
        "OTP_ALLOWED_COUNTRIES": ",".join(COUNTRIES),
        "OTP_RATE_LIMITS": rate_limits,  # "" = the Worker's defaults (an empty var counts as unset)
        "OTP_GUARD_FAILURE": "open",
    }


class Instance:
    def __init__(self, label: str, tmp: Path, seeded: Path, config: Path, okta: MockOkta, messaging: str,
                 mode: str, rate_limits: str, env_file: Path):
        self.label = label
        if messaging == "instant":
            self.aws = InstantMessaging(prefix=label)
        else:
            self.aws = MockMessaging(AKID, AWS_SECRET)
        persist = tmp / f"state-{label}"
        shutil.copytree(seeded, persist)
        self.log_path = tmp / f"wrangler-{label}.log"
        self.w = Wrangler(config, worker_vars(okta, self.aws.endpoint, mode, rate_limits), persist,
                          self.log_path, env_file)
        self.cpu = collections.defaultdict(float)
        self.results: list = []

    def ready(self) -> float:
        return self.w.wait_ready(START_TIMEOUT_S, START_TIMEOUT_S)

    def run(self, token: str, items, clients: int, stop_at: float | None = None):
        c0 = session_cpu(self.w.proc.pid)
        res = drive(self.w.port, token, items, clients, stop_at)
        for k, v in cpu_delta(c0, session_cpu(self.w.proc.pid)).items():
            self.cpu[k] += v
        self.results.extend(res)
        return res

    def provider_sends(self) -> collections.Counter | None:
        """Accepted sends per destination, as the verifying stand-in recorded them."""
        if not isinstance(self.aws, MockMessaging):
            return None
        return collections.Counter((r.get("params") or {}).get("DestinationPhoneNumber")
                                   for r in self.aws.messages())

    def stop(self):
        self.w.stop()
        self.aws.close()


# ---- reports --------------------------------------------------------------------------------------------
def pct(values: list[float]) -> str:
    s = sorted(values)
    if not s:
        return "n=0"
    return f"p50={percentile(s, 0.5):.2f}ms p99={percentile(s, 0.99):.2f}ms max={s[-1]:.2f}ms n={len(s)}"


def cpu_line(cpu: dict, n: int) -> str:
    if n <= 0:
        return "n/a"
    parts = [f"{k}={v * 1000 / n:.2f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v * 1000 / n >= 0.01]
    return "cpu_ms_per_request " + (" ".join(parts) or "0")


def report_simulation(inst: Instance, plan_size: int):
    logs = {r.get("eventId"): r for r in log_records(inst.log_path, "telephony")}
    by_cls = collections.defaultdict(list)
    for r, eid, ms, kind, reason in inst.results:
        by_cls[r["cls"]].append((eid, ms, kind, reason, r))
    for cls in ("pump", "legit"):
        rows = by_cls.get(cls, [])
        kinds = collections.Counter(k for _, _, k, _, _ in rows)
        refused = collections.Counter()
        for eid, _, kind, reason, _ in rows:
            if kind != "SUCCESSFUL":
                line = logs.get(eid, {})
                refused[f"{kind}:{reason or '-'}/{line.get('guardKey', '-')}"] += 1
        print(f"BENCH guard_sim_{inst.label}_{cls}: requests={len(rows)} allowed={kinds.get('SUCCESSFUL', 0)} "
              f"blocked={len(rows) - kinds.get('SUCCESSFUL', 0)} "
              f"refusals={dict(refused.most_common()) or '{}'}", flush=True)
        print(f"BENCH guard_sim_{inst.label}_{cls}_latency: {pct([ms for _, ms, _, _, _ in rows])}", flush=True)
    legit = by_cls.get("legit", [])
    false = [(eid, kind, reason, r) for eid, _, kind, reason, r in legit if kind != "SUCCESSFUL"]
    users = {r["user"] for _, _, _, r in false}
    print(f"BENCH guard_sim_{inst.label}_false_refusals: {len(false)} requests of {len(legit)} "
          f"({len(users)} legitimate users refused at least once; goal 0)", flush=True)
    sent = inst.provider_sends()
    if sent is not None:
        pump_phones = {r["phone"] for r, *_ in inst.results if r["cls"] == "pump"}
        legit_phones = {r["phone"] for r, *_ in inst.results if r["cls"] == "legit"}
        at_pump = sum(n for p, n in sent.items() if p in pump_phones)
        at_legit = sum(n for p, n in sent.items() if p in legit_phones)
        print(f"BENCH guard_sim_{inst.label}_provider: accepted sends to pumped numbers {at_pump}, "
              f"to legitimate users {at_legit}, other (warm-up) {sum(sent.values()) - at_pump - at_legit}; "
              f"rejected by the stand-in's checks {len(inst.aws.rejected())}", flush=True)
    n = len(inst.results)
    print(f"BENCH guard_sim_{inst.label}_all: {pct([x[2] for x in inst.results])} "
          f"{cpu_line(inst.cpu, n)} (of {plan_size} planned)", flush=True)
    ledger_ms = [r["ledgerMs"] for r in logs.values() if isinstance(r.get("ledgerMs"), int)]
    if ledger_ms:
        print(f"BENCH guard_sim_{inst.label}_claim_ms (number object, Worker's own timing): "
              f"{pct([float(x) for x in ledger_ms]).replace('ms', '')}", flush=True)
    alerts = collections.Counter(alert_kind(str(a.get("alert", ""))) for a in log_records(inst.log_path, "alert"))
    print(f"BENCH guard_sim_{inst.label}_alerts: {dict(alerts.most_common(8)) or 'none'}", flush=True)


def report_saturation(inst: Instance, elapsed: float):
    rows = inst.results
    s = sorted(x[2] for x in rows)
    kinds = collections.Counter(f"{k}:{r or '-'}" for _, _, _, k, r in rows)
    logs = {r.get("eventId"): r for r in log_records(inst.log_path, "telephony")}
    keys = collections.Counter(logs.get(eid, {}).get("guardKey", "-") for _, eid, _, k, _ in rows if k == "FAILED")
    rps = len(rows) / elapsed if elapsed > 0 else float("nan")
    print(f"BENCH guard_saturation: {rps:.0f} req/s over {elapsed:.1f}s n={len(rows)} "
          f"p50={percentile(s, 0.5):.2f}ms p99={percentile(s, 0.99):.2f}ms max={s[-1] if s else float('nan'):.2f}ms "
          f"{cpu_line(inst.cpu, len(rows))}", flush=True)
    print(f"BENCH guard_saturation_answers: {dict(kinds.most_common())}", flush=True)
    print(f"BENCH guard_saturation_refused_on: {dict(keys.most_common())}", flush=True)
    ledger_ms = [float(r["ledgerMs"]) for r in logs.values() if isinstance(r.get("ledgerMs"), int)]
    if ledger_ms:
        print(f"BENCH guard_saturation_claim_ms (number object): {pct(ledger_ms).replace('ms', '')}", flush=True)
    # Alerts in the order they first appeared: which object gave first.
    first: dict[str, int] = {}
    count = collections.Counter()
    for i, a in enumerate(log_records(inst.log_path, "alert")):
        k = alert_kind(str(a.get("alert", "")))
        first.setdefault(k, i)
        count[k] += 1
    order = sorted(first, key=first.get)
    print(f"BENCH guard_saturation_alerts_in_order: "
          f"{'; '.join(f'{k} ×{count[k]}' for k in order) if order else 'none'}", flush=True)
    gave = [k for k in order if "did not answer" in k or "overran" in k or "not recorded" in k]
    verdict = gave[0] if gave else "no object failed to answer at this rate"
    print(f"BENCH guard_saturation_first_to_give: {verdict}", flush=True)


# ---- main -----------------------------------------------------------------------------------------------
def _interrupt(*_):
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="≈500 requests and a 5 s saturation phase")
    ap.add_argument("--concurrency", type=int, default=8, help="clients in the simulation (1–32)")
    ap.add_argument("--saturation-concurrency", type=int, default=24, help="clients in the saturation phase (16–32)")
    ap.add_argument("--seconds", type=float, default=30.0, help="saturation phase length (≤ 30)")
    ap.add_argument("--chunk", type=int, default=1000, help="requests per alternating chunk (guard on / off)")
    ap.add_argument("--messaging", choices=("verify", "instant"), default="verify")
    ap.add_argument("--rate-limits", default="", help="OTP_RATE_LIMITS for the guard-on instances ('' = defaults)")
    ap.add_argument("--pump-type", choices=("enrollment", "mfa"), default="enrollment")
    ap.add_argument("--pump-users", type=int, default=0, help="attacker accounts (0 = a new user id per request)")
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--skip-saturation", action="store_true")
    args = ap.parse_args()
    if not (1 <= args.concurrency <= 32 and 16 <= args.saturation_concurrency <= 32 and 0 < args.seconds <= 30
            and 100 <= args.chunk <= 20_000 and 0 <= args.pump_users <= 10_000):
        print("bounds: --concurrency 1..32, --saturation-concurrency 16..32, --seconds (0, 30], --chunk 100..20000, "
              "--pump-users 0..10000", file=sys.stderr)
        return 2
    if args.rate_limits:
        json.loads(args.rate_limits)  # fail early on a typo
    if args.quick:
        pump_requests, pump_numbers, prefixes, legit_users, sat_seconds = 400, 80, 10, 50, min(args.seconds, 5.0)
        args.chunk = min(args.chunk, 250)
    else:
        pump_requests, pump_numbers, prefixes, legit_users, sat_seconds = 10_000, 2_000, 30, 500, args.seconds
    for f in ("index.js", "index_bg.wasm"):
        if not (ROOT / "build" / f).exists():
            print(f"build/{f} is missing: run `bash scripts/build` first", file=sys.stderr)
            return 1

    signal.signal(signal.SIGTERM, _interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="oeh-guard-bench-"))
    okta = MockOkta("aus_guard_bench")
    instances: list[Instance] = []
    try:
        seeded = tmp / "seeded"
        r = subprocess.run([str(ROOT / "scripts" / "seed-kv"), "--persist-to", str(seeded)], cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            print(f"scripts/seed-kv failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}", file=sys.stderr)
            return 1
        env_file = tmp / "empty.env"
        env_file.touch()
        config = snapshot_config(tmp)
        token = okta.mint(exp=int(time.time()) + 6 * 3600)
        traffic = Traffic()
        rng = random.Random(args.seed)

        # ---- 1. the simulation, guard on and off side by side ----
        on = Instance("on", tmp, seeded, config, okta, args.messaging, "enforce", args.rate_limits, env_file)
        instances.append(on)
        off = Instance("off", tmp, seeded, config, okta, args.messaging, "off", args.rate_limits, env_file)
        instances.append(off)
        for inst in (on, off):
            took = inst.ready()
            print(f"BENCH guard_setup_{inst.label}: wrangler dev ready in {took:.1f}s on 127.0.0.1:{inst.w.port} "
                  f"(OTP_GUARD_MODE={'enforce' if inst is on else 'off'}, messaging {args.messaging})", flush=True)
        # Warm both isolates (JWKS, key import, templates) outside the figures.
        for inst in (on, off):
            warm = [({"cls": "warm", "phone": "+14155550100", "user": "00uWARM", "type": MFA},)
                    + traffic.body("+14155550100", "00uWARM", MFA)]
            drive(inst.w.port, token, warm, 1)
        plan = simulation_plan(rng, pump_requests, pump_numbers, prefixes, legit_users,
                               ENROLLMENT if args.pump_type == "enrollment" else MFA, args.pump_users)
        print(f"BENCH guard_sim_setup: {len(plan)} requests: pumping {pump_requests} over {pump_numbers} numbers in "
              f"{prefixes} prefixes of {len(COUNTRIES)} countries ({args.pump_type}, "
              f"{f'{args.pump_users} attacker user ids' if args.pump_users else 'a new user id per request'}), "
              f"legitimate {sum(1 for p in plan if p['cls'] == 'legit')} from {legit_users} users (MFA, ≤ 2 each); "
              f"OTP_RATE_LIMITS={args.rate_limits or '(defaults)'}; {args.concurrency} clients, "
              f"chunks of {args.chunk} alternating on/off", flush=True)
        budget_end = time.monotonic() + SIM_BUDGET_S
        t_sim = time.monotonic()
        for ci, start in enumerate(range(0, len(plan), args.chunk)):
            if time.monotonic() > budget_end:
                print(f"  simulation stopped at its {SIM_BUDGET_S}s budget", file=sys.stderr)
                break
            chunk = plan[start:start + args.chunk]
            bodies = [(p,) + traffic.body(p["phone"], p["user"], p["type"]) for p in chunk]
            order = (on, off) if ci % 2 == 0 else (off, on)
            for inst in order:
                inst.run(token, bodies, args.concurrency, stop_at=budget_end)
        print(f"BENCH guard_sim_wall: {time.monotonic() - t_sim:.1f}s for both instances", flush=True)
        time.sleep(1.0)  # the last log lines
        for inst in (on, off):
            report_simulation(inst, len(plan))
        a, b = on.results, off.results
        if a and b:
            d50 = percentile(sorted(x[2] for x in a), 0.5) - percentile(sorted(x[2] for x in b), 0.5)
            d99 = percentile(sorted(x[2] for x in a), 0.99) - percentile(sorted(x[2] for x in b), 0.99)
            wa = on.cpu.get("workerd", 0.0) * 1000 / len(a)
            wb = off.cpu.get("workerd", 0.0) * 1000 / len(b)
            print(f"BENCH guard_sim_guard_adds: p50={d50:+.2f}ms p99={d99:+.2f}ms workerd_cpu={wa - wb:+.2f}ms/request "
                  f"(on − off; the off instance sends every request, the on instance refuses most)", flush=True)
        for inst in (on, off):
            inst.stop()
        instances.clear()

        # ---- 2. saturation: one country, one prefix, as fast as the clients go ----
        if not args.skip_saturation:
            sat = Instance("saturation", tmp, seeded, config, okta, args.messaging, "enforce", args.rate_limits,
                           env_file)
            instances.append(sat)
            took = sat.ready()
            drive(sat.w.port, token, [({"cls": "warm"},) + traffic.body("+14155550100", "00uWARM", MFA)], 1)
            sat.results.clear()
            pump_type = ENROLLMENT if args.pump_type == "enrollment" else MFA
            # Bodies are made lazily in batches: at most MAX_SATURATION_REQUESTS in total.
            print(f"BENCH guard_saturation_setup: ready in {took:.1f}s; all traffic to {SATURATION_PREFIX}xxxx "
                  f"(LV), {args.saturation_concurrency} clients, ≤ {sat_seconds:.0f}s", flush=True)
            t0 = time.monotonic()
            stop_at = t0 + sat_seconds
            made = 0
            while time.monotonic() < stop_at and made < MAX_SATURATION_REQUESTS:
                batch = []
                for _ in range(2000):
                    phone = f"{SATURATION_PREFIX}{made % 10000:04d}"
                    user = f"00uSAT{made:014d}"
                    batch.append(({"cls": "sat", "phone": phone},) + traffic.body(phone, user, pump_type))
                    made += 1
                sat.run(token, batch, args.saturation_concurrency, stop_at=stop_at)
            elapsed = time.monotonic() - t0
            time.sleep(1.0)
            report_saturation(sat, elapsed)
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for inst in instances:
            try:
                inst.stop()
            except Exception:
                pass
        if os.environ.get("BENCH_KEEP_LOG"):
            for p in tmp.glob("wrangler-*.log"):
                shutil.copy(p, f"{os.environ['BENCH_KEEP_LOG']}.{p.stem}")
        okta.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
