"""The template sync at scale: 5,000 templates from DynamoDB (moto) into KV through local workerd.

Starts, all on 127.0.0.1:
- moto_server, with the table of infra-aws/template-table.yaml (deployed with CloudFormation) and
  N generated valid templates (N/2 locales `xx-NNN`, one SMS and one SSML voice template each);
- the verifying DynamoDB proxy of tests/e2e/mocks/dynamodb.py (SigV4 + model checks on every Scan:
  its cost is part of the figures, as AWS's own request handling would be);
- an instant End User Messaging stand-in (answers every POST with a MessageId, checks nothing);
- `wrangler dev` on the built Worker, its local KV seeded by scripts/seed-kv (so the first sync
  replaces a real publication), with TEMPLATE_CACHE_SECONDS=0 and header-secret hook auth.

Then, through POST /admin/templates/sync:
  1. first sync (the kv-seed set in service → N templates published);
  2. unchanged re-sync, --repeat times;
  3. one item changed, then sync, --repeat times;
and after 1 and each 3, one telephony request (the hook's first read of the new set: it parses and
re-validates every template), after 1 followed by 5 more (pointer read only: TEMPLATE_CACHE_SECONDS=0).
Every DynamoDB request must pass the proxy's SigV4/model checks, or the bench stops.

Figures come from the sync reports (durationMs, DynamoDB requests, KV reads/writes) and from the
client's wall clock, and are printed as `BENCH ...` lines. Not a test: nothing asserts a timing.
Usage (after `source scripts/env.sh` and `bash scripts/build`):
    .venv/bin/python bench/sync_bench.py [--templates 5000] [--page-size 100] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from mocks.dynamodb import DynamoDBProxy, MotoServer  # noqa: E402
from helpers import iso  # noqa: E402
from _common import InstantMessaging, Wrangler  # noqa: E402

AKID = "AKIDLOCALSYNCBENCH01"
AWS_SECRET = "local-sync-bench-secret-not-a-real-key00"
ADMIN_SECRET = "bench-admin-" + secrets.token_urlsafe(24)
HOOK_SECRET = "bench-hook-" + secrets.token_urlsafe(24)
TABLE = "oeh-bench-templates"
FIXTURE = ROOT / "tests" / "fixtures" / "okta" / "telephony-sms-password-reset.json"
START_TIMEOUT_S = 180
BUILD_TIMEOUT_S = 900
SYNC_TIMEOUT_S = 300
# Languages without an alias in locale::Locale::parse (zh, ar, no, nn are rewritten).
LANGS = ["aa", "ab", "ae", "af", "ak", "am", "an", "as", "av", "ay", "az", "ba", "be", "bg", "bh", "bi", "bm",
         "bn", "bo", "br", "bs", "ca", "ce", "ch", "co", "cr", "cs", "cu", "cv", "cy", "da", "de", "dv", "dz"]


def generate(n: int, stamp: str) -> list[dict]:
    """n valid own-format items: n/2 locales, an SMS and a voice template each."""
    items = []
    for i in range(n // 2 + n % 2):
        locale = f"{LANGS[i // 900]}-{100 + i % 900}"
        items.append({"locale": {"S": locale}, "channel": {"S": "sms"}, "updatedAt": {"S": stamp},
                      "body": {"S": f"Your {locale} verification code is {{{{otp}}}}. Do not share it."}})
        if len(items) < n:
            items.append({"locale": {"S": locale}, "channel": {"S": "voice"}, "voiceId": {"S": "JOANNA"},
                          "updatedAt": {"S": stamp},
                          "body": {"S": f'<speak><prosody rate="90%">Your {locale} code is <break time="300ms"/>'
                                        f'{{{{otp}}}}.<break time="700ms"/> Again: {{{{otp}}}}.</prosody></speak>'}})
    assert n // 2 // 900 < len(LANGS), "too many templates for the locale generator"
    return items


def load_table(moto: MotoServer, items: list[dict]) -> float:
    cfn = moto.client("cloudformation")
    cfn.create_stack(StackName="oeh-bench", TemplateBody=(ROOT / "infra-aws" / "template-table.yaml").read_text(),
                     Parameters=[{"ParameterKey": "TableName", "ParameterValue": TABLE},
                                 {"ParameterKey": "DeletionProtection", "ParameterValue": "false"}])
    ddb = moto.client("dynamodb")
    t0 = time.monotonic()
    for start in range(0, len(items), 25):
        pending = {TABLE: [{"PutRequest": {"Item": it}} for it in items[start:start + 25]]}
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
    return time.monotonic() - t0


def sync(w: Wrangler, proxy: DynamoDBProxy) -> tuple[float, dict]:
    proxy.reset()
    t0 = time.perf_counter()
    status, body = w.call("POST", "/admin/templates/sync", headers={"Authorization": f"Bearer {ADMIN_SECRET}"},
                          timeout=SYNC_TIMEOUT_S)
    wall = (time.perf_counter() - t0) * 1000
    report = json.loads(body)
    bad = proxy.rejected()
    if bad:
        raise RuntimeError(f"{len(bad)} DynamoDB requests failed the SigV4/model checks: {bad[0]['signature_error']} "
                           f"{bad[0]['model_errors']}")
    if status != 200 or not report.get("ok"):
        raise RuntimeError(f"sync failed (HTTP {status}): {body[:2000]!r}")
    recs = proxy.requests()
    # Time on the DynamoDB side of the loopback: the proxy's checks and moto's Scan.
    report["_proxy_ms"] = sum(r["elapsed_ms"] or 0 for r in recs)
    report["_check_ms"] = sum(r["check_ms"] or 0 for r in recs)
    report["_moto_ms"] = sum(r["upstream_ms"] or 0 for r in recs)
    return wall, report


def hook(w: Wrangler, locale: str) -> tuple[float, bool]:
    body = json.loads(FIXTURE.read_text())
    now = datetime.now(timezone.utc)
    body["eventId"] = uuid.uuid4().hex
    body["eventTime"] = iso(now)
    mp = body["data"]["messageProfile"]
    mp["otpExpires"] = iso(now + timedelta(minutes=5))
    mp["locale"] = locale
    t0 = time.perf_counter()
    status, data = w.call("POST", "/okta/telephony", json.dumps(body).encode(),
                          {"Content-Type": "application/json", "X-Okta-Hook-Secret": HOOK_SECRET})
    return (time.perf_counter() - t0) * 1000, status == 200 and b'"SUCCESSFUL"' in data


def line(name: str, wall_ms: float, r: dict) -> str:
    rest = r["durationMs"] - r["_proxy_ms"]
    return (f"BENCH sync_{name}: wall={wall_ms:.0f}ms worker_duration={r['durationMs']}ms "
            f"[dynamodb side {r['_proxy_ms']:.0f}ms = moto {r['_moto_ms']:.0f}ms + proxy checks "
            f"{r['_check_ms']:.0f}ms; rest (Worker + loopback) {rest:.0f}ms] outcome={r['outcome']} "
            f"templates={r['templates']} scanned={r['scanned']} dynamodb_requests={r['dynamodbRequests']} "
            f"dynamodb_pages={r['dynamodbPages']} kv_reads={r['kvReads']} kv_writes={r['kvWrites']} "
            f"kv_ops={r['kvReads'] + r['kvWrites']} (+1 read +1 write for the status document) "
            f"added={r['added']} changed={r['changed']} removed={r['removed']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--templates", type=int, default=5000)
    ap.add_argument("--page-size", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="oeh-sync-bench-"))
    moto = proxy = messaging = worker = None
    try:
        moto = MotoServer()
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        items = generate(args.templates, stamp)
        took = load_table(moto, items)
        print(f"BENCH sync_setup: {len(items)} items written to moto in {took:.1f}s "
              f"(page size {args.page_size})", flush=True)
        proxy = DynamoDBProxy(moto.endpoint, AKID, AWS_SECRET)
        messaging = InstantMessaging("sync-bench")
        persist = tmp / "state"
        subprocess.run([str(ROOT / "scripts" / "seed-kv"), "--persist-to", str(persist)], cwd=ROOT, check=True,
                       capture_output=True, timeout=900)
        env_file = tmp / "empty.env"
        env_file.touch()
        worker = Wrangler("wrangler.toml", {
            "OKTA_AUTH_MODE": "header", "OKTA_AUTH_HEADER": "X-Okta-Hook-Secret", "OKTA_HOOK_SECRET": HOOK_SECRET,
            "AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "AWS_SMS_VOICE_ENDPOINT": messaging.endpoint,
            "TEMPLATE_TABLE": TABLE, "AWS_DYNAMODB_ENDPOINT": proxy.endpoint, "ADMIN_SECRET": ADMIN_SECRET,
            "SYNC_PAGE_SIZE": str(args.page_size), "SYNC_MAX_PAGES": "1000", "TEMPLATE_CACHE_SECONDS": "0",
        }, persist, tmp / "wrangler.log", env_file)
        worker.wait_ready(START_TIMEOUT_S, BUILD_TIMEOUT_S)
        probe = items[len(items) // 2]["locale"]["S"]

        wall, r = sync(worker, proxy)
        print(line("first", wall, r), flush=True)
        cold, ok = hook(worker, probe)
        warm = [hook(worker, probe) for _ in range(5)]
        print(f"BENCH hook_after_publication: first={cold:.0f}ms (loads and re-validates {r['templates']} templates) "
              f"next_median={statistics.median(t for t, _ in warm):.0f}ms (pointer read only) "
              f"ok={ok and all(o for _, o in warm)}", flush=True)

        walls, durations = [], []
        for _ in range(args.repeat):
            wall, r = sync(worker, proxy)
            assert r["outcome"] == "unchanged" and r["kvWrites"] == 0, r
            walls.append(wall)
            durations.append(r["durationMs"])
            print(line("unchanged", wall, r), flush=True)
        print(f"BENCH sync_unchanged_median: wall={statistics.median(walls):.0f}ms "
              f"worker_duration={statistics.median(durations):.0f}ms", flush=True)

        ddb = moto.client("dynamodb")
        walls, durations, colds = [], [], []
        for i in range(args.repeat):
            ddb.put_item(TableName=TABLE, Item={"locale": {"S": probe}, "channel": {"S": "sms"},
                                                "body": {"S": f"Changed #{i}: your code is {{{{otp}}}}."}})
            wall, r = sync(worker, proxy)
            assert r["outcome"] == "published" and r["changed"] == 1, r
            walls.append(wall)
            durations.append(r["durationMs"])
            print(line("one_change", wall, r), flush=True)
            cold, ok = hook(worker, probe)
            colds.append(cold)
        print(f"BENCH sync_one_change_median: wall={statistics.median(walls):.0f}ms "
              f"worker_duration={statistics.median(durations):.0f}ms "
              f"hook_first_request_after={statistics.median(colds):.0f}ms", flush=True)
        return 0
    finally:
        if worker:
            worker.stop()
        for x in (proxy, messaging, moto):
            if x:
                x.close()


if __name__ == "__main__":
    sys.exit(main())
