"""The reconciliation job at enterprise scale through local workerd (figures, not tests).

An Okta org of --users group members (default 100,000) against a Connect instance that already
holds them, with --drift of them out of step (default 1 %: half missing, three tenths with a
drifted routing profile, a fifth orphans to delete). The Worker runs with the Free plan's
WORKER_SUBREQUEST_BUDGET (50, or --budget) and RECONCILE_CONNECT_RPS=100 (the maximum, so the run
measures the Worker, not the pacing). The stand-ins are the e2e ones (tests/e2e/mocks): Okta's
Management API with its `X-Rate-Limit-*` headers (--okta-rate-limit a minute, default 600: the job
pauses when under a tenth is left), and Connect recomputing every SigV4 signature with botocore and
validating every body against botocore's model, so their cost is part of the wall time.

Printed (`BENCH <name> k=v ...`), for a dry run and then the real run:
  wall_s                 POST /admin/provisioning/reconcile until GET /admin/provisioning/status
                         shows the run's report
  invocations            alarms that worked on the run (one Durable Object invocation each)
  max_subrequests        the most subrequests one invocation made (must stay <= the budget)
  max_invocation_ms      the longest invocation, wall (its `ms` in the step log line)
  planning_invocation_ms the invocation that planned: it reads every listed row and plans (CPU)
  okta_calls/connect_calls   from the report (every try counted)
  okta_waits             pauses for Okta's rate-limit reset (429 or a nearly spent window)
  okta_429 / early_calls 429s the mock answered / calls made before a reset (must be 0)
  cpu_s                  utime + stime of the wrangler session (workerd + wrangler's node)
  planned / applied      the report's counts

Usage (after `source scripts/env.sh` and `bash scripts/build`):
    .venv/bin/python bench/reconcile_scale.py [--users 100000] [--drift 0.01] [--budget 50]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import conftest as e2e  # noqa: E402  (the e2e launcher and mocks, reused as they are)
import mocks.okta_api as okta_api  # noqa: E402
from _common import session_cpu  # noqa: E402

AUTH = {"Authorization": f"Bearer {e2e.ADMIN_SECRET}"}
TAGS = "okta-edge-hooks"


def bench(name: str, **fields):
    print("BENCH " + name + " " + " ".join(f"{k}={v}" for k, v in fields.items()), flush=True)


def run(w, dry_run: bool, timeout_s: float) -> tuple[dict, dict, float]:
    """Starts a run and polls its status until it ends: (report, the run's last status, wall s)."""
    t0 = time.perf_counter()
    r = w.http.post(w.url + "/admin/provisioning/reconcile" + ("?dryRun=true" if dry_run else ""),
                    headers=AUTH, timeout=60)
    if r.status_code != 202:
        raise SystemExit(f"start: {r.status_code} {r.text[:300]}")
    run_id, last_run = r.json()["run"]["id"], r.json()["run"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        s = w.http.get(w.url + "/admin/provisioning/status", headers=AUTH, timeout=60).json()
        if s["state"] == "running" and s["run"]["id"] == run_id:
            last_run = s["run"]
        elif (s.get("last") or {}).get("id") == run_id:
            return s["last"], last_run, time.perf_counter() - t0
        time.sleep(0.5)
    raise SystemExit(f"run {run_id} did not end within {timeout_s:.0f} s; last status: {last_run}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--drift", type=float, default=0.01)
    ap.add_argument("--budget", type=int, default=50, help="WORKER_SUBREQUEST_BUDGET")
    ap.add_argument("--okta-rate-limit", type=int, default=600, help="X-Rate-Limit-Limit the Okta mock reports")
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args()
    okta_api.RATE_LIMIT = args.okta_rate_limit

    sensitive = e2e.Sensitive()
    mocks = e2e.Mocks(sensitive)
    tmp = Path(tempfile.mkdtemp(prefix="oeh-reconcile-scale-"))
    factory = e2e.WorkerFactory(mocks, sensitive, tmp)
    try:
        q = mocks.prov("scale")
        drifted = int(args.users * args.drift)
        missing, changed, orphans = drifted // 2, drifted * 3 // 10, drifted - drifted // 2 - drifted * 3 // 10
        t0 = time.perf_counter()
        for i in range(args.users):
            login = f"agent{i:06d}@example.com"
            uid = q.org.add_user(login, "Agent", f"N{i}")
            q.org.add_to_group(q.group, uid)
            if i < missing:
                continue  # not in Connect yet: a create
            q.connect.add_user(login, tags={"managedBy": TAGS, "oktaUserId": uid}, security_profile_ids=["sp-agent"],
                               routing_profile_id="rp-basic" if i < missing + changed else "rp-sales",
                               first_name="Agent", last_name=f"N{i}")
        for i in range(orphans):
            q.connect.add_user(f"left{i:06d}@example.com", tags={"managedBy": TAGS, "oktaUserId": f"00uLEFT{i:013d}"},
                               security_profile_ids=["sp-agent"], routing_profile_id="rp-sales")
        bench("reconcile_scale_setup", users=args.users, missing=missing, changed=changed, orphans=orphans,
              seed_s=f"{time.perf_counter() - t0:.1f}")

        extra = q.vars()
        extra.update({"RECONCILE_CONNECT_RPS": "100", "WORKER_SUBREQUEST_BUDGET": str(args.budget),
                      "RECONCILE_MAX_DELETES": str(max(orphans, 1) * 2),
                      "PROVISIONING_MAX_DELETES_PER_HOUR": str(max(orphans, 1) * 2)})
        w = factory.get("reconcile-scale", extra)
        for dry_run in (True, False):
            q.org.reset()
            q.connect.reset()
            cpu0 = session_cpu(w.proc.pid)
            rep, _, wall = run(w, dry_run, args.timeout)
            cpu = sum(session_cpu(w.proc.pid).values()) - sum(cpu0.values())
            reqs = q.org.requests()
            steps = [json.loads(l[l.index("{"):]) for l in w.log_lines()
                     if '"msg":"provisioning-reconcile-step"' in l and f'"run":"{rep["id"]}"' in l]
            planning = [s["ms"] for s in steps if s["phase"] == "applying" and s["invocation"] == min(
                (t["invocation"] for t in steps if t["phase"] == "applying"), default=0)]
            bench("reconcile_scale_dry_run" if dry_run else "reconcile_scale_apply",
                  ok=rep["ok"], wall_s=f"{wall:.1f}", worker_ms=rep["durationMs"], cpu_s=f"{cpu:.1f}",
                  invocations=rep["invocations"], max_subrequests=rep["maxSubrequests"],
                  max_invocation_ms=max((s["ms"] for s in steps), default=0),
                  planning_invocation_ms=planning[0] if planning else "-",
                  budget=args.budget, okta_users=rep["okta"]["users"], okta_calls=rep["okta"]["calls"],
                  connect_users=rep["connect"]["users"],
                  connect_calls=rep["connect"]["calls"],
                  okta_waits=rep["oktaRateLimitWaits"],
                  okta_429=sum(1 for r in reqs if r.get("status") == 429),
                  early_calls=len(q.org.early_calls()),
                  planned=f"{rep['planned']['create']}/{rep['planned']['update']}/{rep['planned']['delete']}"
                          f"/{rep['planned']['unchanged']}",
                  applied=f"{rep['applied']['create']}/{rep['applied']['update']}/{rep['applied']['delete']}",
                  failed=rep["failed"], held=rep["deletesHeld"], rejected_by_mock=len(q.connect.rejected()),
                  error=(rep.get("error") or "-").replace(" ", "_")[:120])
    finally:
        factory.close()
        mocks.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
