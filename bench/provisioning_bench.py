"""Provisioning at scale through local workerd (figures, not tests: nothing asserts a timing).

Starts, all on 127.0.0.1, the e2e stand-ins of tests/e2e/mocks: the Okta org (`MockOktaOrg`:
token endpoint verifying every client assertion with PyJWT, Users/Groups/Apps API) and Connect
(`MockConnect`: SigV4 recomputed with botocore and every body validated against botocore's
`connect` model on each call; their cost is part of the figures, as AWS's own request handling
would be), and `wrangler dev` on the built Worker (the e2e `WorkerInstance`).

1. `ack_100_events`: POST /okta/events deliveries of 100 relevant events each (100 users of the
   Connect group), --deliveries times: the latency Okta sees (it needs a 2xx within 3 s).
2. `consume_100_events`: from the first delivery until Connect holds all 100 users (queue batches
   of 10, the consumer reading Okta and writing Connect).
3. `reconcile_2000_*`: an org of --users group members against a Connect instance holding none of
   them (all created), then an unchanged re-run, then a dry run: wall time (start until the status
   shows the report), invocations (alarms) and API calls per side (from the report).
   bench/reconcile_scale.py runs 100,000 users on the Free plan's budget. RECONCILE_CONNECT_RPS=100 (the maximum) so the run measures the Worker, not
   the pacing; the line `reconcile_2000_paced_estimate` gives the time at the default 5 calls/s.

Usage (after `source scripts/env.sh` and `bash scripts/build`):
    .venv/bin/python bench/provisioning_bench.py [--users 2000] [--deliveries 20]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import conftest as e2e  # noqa: E402  (the e2e launcher and mocks, reused as they are)
from _common import percentile  # noqa: E402
from reconcile_scale import run as reconcile_run  # noqa: E402


def bench(name: str, **fields):
    print("BENCH " + name + " " + " ".join(f"{k}={v}" for k, v in fields.items()), flush=True)


def delivery(events: list[dict]) -> bytes:
    return json.dumps({"eventType": "com.okta.event_hook", "eventTypeVersion": "1.0", "cloudEventsVersion": "0.1",
                       "source": "https://example.okta.com/api/v1/eventHooks/whoBENCH", "eventId": str(uuid.uuid4()),
                       "eventTime": "2026-11-21T10:00:00.000Z", "contentType": "application/json",
                       "data": {"events": events}}).encode()


def member_event(uid: str, login: str, group: str) -> dict:
    return {"uuid": str(uuid.uuid4()), "published": "2026-11-21T10:00:00.000Z",
            "eventType": "group.user_membership.add", "version": "0", "severity": "INFO",
            "displayMessage": "Add user to group membership", "outcome": {"result": "SUCCESS", "reason": None},
            "actor": {"id": "00uADMIN", "type": "User", "alternateId": "admin@example.com"},
            "target": [{"id": uid, "type": "User", "alternateId": login, "displayName": "Bench User"},
                       {"id": group, "type": "UserGroup", "alternateId": "unknown", "displayName": "agents"}]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--deliveries", type=int, default=20)
    args = ap.parse_args()

    sensitive = e2e.Sensitive()
    mocks = e2e.Mocks(sensitive)
    tmp = Path(tempfile.mkdtemp(prefix="oeh-prov-bench-"))
    factory = e2e.WorkerFactory(mocks, sensitive, tmp)
    try:
        p = mocks.prov("bench")
        extra = p.vars()
        extra["RECONCILE_CONNECT_RPS"] = "100"
        extra["WORKER_SUBREQUEST_BUDGET"] = "10000"  # the Paid plan: 2,000 users in one run
        extra["RECONCILE_MAX_DELETES"] = str(args.users)
        w = factory.get("provisioning-bench", extra)

        # 1 + 2: acknowledgement and consumption of 100-event deliveries.
        acks, first_consumed = [], None
        for d in range(args.deliveries):
            users = [(p.org.add_user(f"ack{d}.{i}@example.com", "Bench", f"U{i}"), f"ack{d}.{i}@example.com")
                     for i in range(100)]
            for uid, _ in users:
                p.org.add_to_group(p.group, uid)
            body = delivery([member_event(uid, login, p.group) for uid, login in users])
            t0 = time.perf_counter()
            r = w.http.post(w.url + "/okta/events", data=body, timeout=30,
                            headers={"Content-Type": "application/json", "Authorization": e2e.EVENT_HOOK_SECRET})
            acks.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                bench("ack_100_events_error", status=r.status_code, body=r.text[:200].replace(" ", "_"))
                return 1
            if d == 0:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline and not all(p.connect.user_by_username(l) for _, l in users):
                    time.sleep(0.05)
                first_consumed = (time.perf_counter() - t0) * 1000
        s = sorted(acks)
        bench("ack_100_events", n=len(acks), p50_ms=f"{percentile(s, 0.5):.1f}", p90_ms=f"{percentile(s, 0.9):.1f}",
              p99_ms=f"{percentile(s, 0.99):.1f}", max_ms=f"{max(acks):.1f}", mean_ms=f"{statistics.mean(acks):.1f}")
        bench("consume_100_events", ms=f"{first_consumed:.0f}",
              users_in_connect=sum(1 for u in p.connect.users() if u["Username"].startswith("ack0.")))

        # 3: reconciliation of a large org, in a fresh pair of stand-ins.
        q = mocks.prov("bench-reconcile")
        extra = q.vars()
        extra["RECONCILE_CONNECT_RPS"] = "100"
        extra["WORKER_SUBREQUEST_BUDGET"] = "10000"  # the Paid plan: a 2,000-user run in one or two alarms
        w2 = factory.get("reconcile-bench", extra)
        for i in range(args.users):
            q.org.add_to_group(q.group, q.org.add_user(f"agent{i:05d}@example.com", "Agent", f"N{i}"))
        for run in ("create", "unchanged", "dry_run"):
            rep, _, wall = reconcile_run(w2, run == "dry_run", 1800)
            bench(f"reconcile_{args.users}_{run}", ok=rep.get("ok"), wall_s=f"{wall:.1f}",
                  worker_ms=rep.get("durationMs"), invocations=rep["invocations"],
                  max_subrequests=rep["maxSubrequests"], okta_users=rep["okta"]["users"],
                  okta_calls=rep["okta"]["calls"], connect_users=rep["connect"]["users"],
                  connect_calls=rep["connect"]["calls"], created=rep["applied"]["create"],
                  unchanged=rep["planned"]["unchanged"], failed=rep.get("failed"),
                  rejected_by_mock=len(q.connect.rejected()))
            if run == "create":
                writes = rep["applied"]["create"]
                bench(f"reconcile_{args.users}_paced_estimate", connect_calls=rep["connect"]["calls"],
                      at_5_per_s_s=f"{rep['connect']['calls'] / 5:.0f}", writes=writes)
    finally:
        factory.close()
        mocks.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
