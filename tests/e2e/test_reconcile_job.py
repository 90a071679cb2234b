"""The reconciliation as a resumable job in the `ReconcileJob` Durable Object, in workerd: runs
carried across the object's alarms within WORKER_SUBREQUEST_BUDGET, Okta's rate limits waited out
between invocations, one run at a time, the status endpoint, cancel, a restart mid-run, and the
opt-in adoption of untagged users (CONNECT_ADOPT_EXISTING)."""
from __future__ import annotations

import time

import pytest

from conftest import ADMIN_SECRET
from test_provisioning import (parse_line, reconcile, reconcile_status, start_reconcile, unique_login, wait_for_run,
                               wait_until)
from test_provisioning_safety import instance

AUTH = {"Authorization": f"Bearer {ADMIN_SECRET}"}


def member(p, login: str, group=None) -> str:
    uid = p.org.add_user(login, "Job", "Member")
    p.org.add_to_group(group or p.group, uid)
    return uid


def wait_for(pred, what: str, timeout: float = 30):
    return wait_until(pred, timeout=timeout, what=what)


def started_waiting_for_okta(w, p, tag: str, reset_in: int) -> tuple[str, dict]:
    """A new member, then a run whose first Okta page gets a 429 (X-Rate-Limit-Reset in
    `reset_in` s): (the member's login, the run) once the status shows the run waiting."""
    login = unique_login(tag)
    member(p, login)
    p.org.reset()
    p.org.script([{"path_contains": "/groups/", "status": 429, "reset_in": reset_in}])
    started = start_reconcile(w)
    assert started.status_code == 202, started.text
    run = started.json()["run"]
    wait_for(lambda: (reconcile_status(w)["run"] or {}).get("waiting") == "OKTA_RATE_LIMITED", "the run waiting")
    return login, run


def steps(w, run_id: str) -> list[dict]:
    return [parse_line(l) for l in w.log_lines()
            if '"msg":"provisioning-reconcile-step"' in l and f'"run":"{run_id}"' in l]


@pytest.fixture(scope="module")
def small(worker_factory, mocks):
    """The Free plan's shape, tighter: 10 subrequests per invocation."""
    return instance(worker_factory, mocks, "job-small-budget", WORKER_SUBREQUEST_BUDGET="10",
                    RECONCILE_CONNECT_RPS="100")


@pytest.fixture(scope="module")
def job(worker_factory, mocks):
    return instance(worker_factory, mocks, "job", RECONCILE_CONNECT_RPS="100")


def test_the_status_endpoint_needs_the_admin_secret_and_get(job):
    w, _ = job
    assert w.request("GET", "/admin/provisioning/status").status_code == 401
    assert w.request("GET", "/admin/provisioning/status", headers={"Authorization": "Bearer nope"}).status_code == 401
    r = w.request("POST", "/admin/provisioning/status", headers=AUTH)
    assert r.status_code == 405 and r.headers["allow"] == "GET", r.headers
    r = w.request("GET", "/admin/provisioning/cancel", headers=AUTH)
    assert r.status_code == 405 and r.headers["allow"] == "POST", r.headers
    assert w.request("POST", "/admin/provisioning/cancel").status_code == 401
    s = reconcile_status(w)
    assert s["state"] in ("idle", "running") and "last" in s


def test_a_run_of_many_invocations_stays_within_the_budget_and_converges(small):
    w, p = small
    logins = [unique_login(f"many{i}") for i in range(12)]
    for login in logins:
        member(p, login)
    for i in range(3):
        p.connect.add_user(unique_login(f"orphan{i}"), tags={"managedBy": "okta-edge-hooks",
                                                            "oktaUserId": f"00uGONE{i:013d}"},
                           security_profile_ids=["sp-agent"], routing_profile_id="rp-basic")
    r = reconcile(w)
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["applied"]["create"] == 12 and rep["applied"]["delete"] == 3, rep
    assert all(p.connect.user_by_username(l) for l in logins)
    lines = steps(w, rep["id"])
    assert len(lines) > 3, f"one run, many invocations: {len(lines)}"
    assert max(l["subrequests"] for l in lines) <= 10, [l["subrequests"] for l in lines]
    assert [l["invocation"] for l in lines] == list(range(1, len(lines) + 1)), "one alarm after another"
    assert not p.connect.rejected()


def test_an_okta_rate_limit_is_waited_out_between_invocations_and_one_run_runs_at_a_time(job):
    w, p = job
    login, run = started_waiting_for_okta(w, p, "limited", 3)
    s = reconcile_status(w)
    assert s["state"] == "running" and s["run"]["id"] == run["id"] and s["run"]["oktaRateLimitWaits"] >= 1, s
    second = start_reconcile(w, dry_run=True)
    assert second.status_code == 409, second.text
    assert second.json()["error"]["errorCauses"][0]["reason"] == "RECONCILE_IN_PROGRESS"
    assert second.json()["status"]["run"]["id"] == run["id"]
    rep = wait_for_run(w, run["id"])
    assert rep["ok"] and rep["applied"]["create"] >= 1, rep
    assert p.connect.user_by_username(login)
    assert not p.org.early_calls(), "no Okta call before X-Rate-Limit-Reset"


def test_a_cancel_ends_the_run_and_nothing_more_is_called(job):
    w, p = job
    login, run = started_waiting_for_okta(w, p, "cancelled", 4)
    r = w.request("POST", "/admin/provisioning/cancel", headers=AUTH)
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["state"] == "idle" and s["last"]["id"] == run["id"] and "cancelled" in s["last"]["error"], s
    calls = len(p.org.api_calls())
    time.sleep(5.5)
    assert len(p.org.api_calls()) == calls, "the cancelled run's alarm does nothing"
    assert not p.connect.user_by_username(login)
    assert reconcile_status(w)["state"] == "idle"


def test_a_run_goes_on_after_a_restart(worker_factory, job):
    w, p = job
    login, run = started_waiting_for_okta(w, p, "restarted", 4)
    worker_factory.restart(w)
    rep = wait_for_run(w, run["id"], timeout=60)
    assert rep["ok"] and p.connect.user_by_username(login), rep


@pytest.fixture(scope="module")
def adopting(worker_factory, mocks):
    return instance(worker_factory, mocks, "job-adopt", CONNECT_ADOPT_EXISTING="true", RECONCILE_CONNECT_RPS="100")


def test_adoption_tags_an_untagged_holder_only_when_switched_on(job, adopting):
    for (w, p), on in ((job, False), (adopting, True)):
        login = unique_login("adopt")
        uid = member(p, login)
        p.connect.add_user(login, tags={}, security_profile_ids=["sp-supervisor"], routing_profile_id="rp-basic")
        dry = reconcile(w, dry_run=True).json()
        mine = [c for c in dry["changes"] if c["username"] == login]
        assert [(c["action"], c["result"]) for c in mine] == ([("adopt", "planned")] if on else [("skip", "skipped")]), mine
        assert not p.connect.calls("TagResource"), "a dry run tags nothing"
        rep = reconcile(w).json()
        u = p.connect.user_by_username(login)
        if not on:
            assert rep["applied"]["adopt"] == 0 and u["Tags"] == {}, rep
            continue
        assert rep["ok"] and rep["applied"]["adopt"] == 1, rep
        assert u["Tags"] == {"managedBy": "okta-edge-hooks", "oktaUserId": uid}
        assert sorted(u["SecurityProfileIds"]) == ["sp-agent"] and u["RoutingProfileId"] == "rp-sales", u
        tag = p.connect.calls("TagResource")
        assert len(tag) == 1 and tag[0]["params"]["resourceArn"] == u["Arn"], tag
        assert not p.connect.rejected(), p.connect.rejected()
        again = reconcile(w, dry_run=True).json()
        assert not [c for c in again["changes"] if c["username"] == login], "managed and in step from then on"


def test_the_cron_starts_a_job_and_a_second_tick_waits_for_it(job):
    w, p = job
    p.org.reset()
    p.org.script([{"path_contains": "/groups/", "status": 429, "reset_in": 3}])
    assert w.request("GET", "/cdn-cgi/handler/scheduled", params={"cron": "17 3 * * *"}).status_code == 200
    run = wait_for(lambda: reconcile_status(w)["run"], "the cron's run")
    assert run["trigger"] == "cron"
    assert w.request("GET", "/cdn-cgi/handler/scheduled", params={"cron": "17 3 * * *"}).status_code == 200
    wait_for(lambda: any('"skipped":"a reconciliation is already running"' in l for l in w.log_lines()),
             "the second tick's log line")
    rep = wait_for_run(w, run["id"])
    assert rep["trigger"] == "cron" and rep["ok"], rep
