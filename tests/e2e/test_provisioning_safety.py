"""Provisioning must never damage a Connect instance, end to end in workerd: ownership by the
`oktaUserId` tag (a reused login or e-mail is a conflict, not a takeover), deletion safety (a
deleted Okta app or group deletes nothing; a burst of removals over `PROVISIONING_MAX_DELETES_PER_HOUR`
is held, then released), the reconciliation seeing usernames held by users it did not create, and
`user.lifecycle.activate`.

Each scenario runs on its own instance with its own Okta org and Connect, so that their states and
the deletion budget's Durable Object are theirs alone."""
from __future__ import annotations

import json
import time
import uuid

import pytest

from conftest import EVENT_HOOK_SECRET
from test_provisioning import deliver, event, parse_line, reconcile, unique_login, user_logs, wait_until


def instance(worker_factory, mocks, name: str, **extra):
    p = mocks.prov(name)
    return worker_factory.get(name, {**p.vars(), **extra}), p


def alerts(w) -> list[str]:
    return [parse_line(l)["alert"] for l in w.log_lines() if '"msg":"alert"' in l]


def outcome(w, uid: str, pred) -> dict:
    return wait_until(lambda: next((l for l in user_logs(w, uid) if pred(l)), None), what=f"a log line of {uid}")


@pytest.fixture(scope="module")
def owned(worker_factory, mocks):
    return instance(worker_factory, mocks, "prov-ownership")


@pytest.fixture(scope="module")
def owned_by_email(worker_factory, mocks):
    return instance(worker_factory, mocks, "prov-email", CONNECT_USERNAME_ATTRIBUTE="email")


def test_a_reused_login_is_a_conflict_and_bobs_user_is_untouched(owned):
    w, p = owned
    bob_login = unique_login("bob")
    bob = p.org.add_user(bob_login, "Bob", "Builder")
    p.org.add_to_group(p.group, bob)
    deliver(w, [event("group.user_membership.add", bob, bob_login, group=p.group)])
    bob_user = wait_until(lambda: p.connect.user_by_username(bob_login), what="Bob in Connect")

    # Bob's login changes; Amy is given his old one and joins the group before Bob's event is seen.
    p.org.update_profile(bob, login=unique_login("robert"))
    amy = p.org.add_user(bob_login, "Amy", "Pond")
    p.org.add_to_group(p.supervisors, amy)
    writes_before = len(p.connect.writes())
    deliver(w, [event("group.user_membership.add", amy, bob_login, group=p.supervisors)])
    line = outcome(w, amy, lambda l: l.get("action") == "conflict")
    assert line["reason"] == "OWNED_BY_ANOTHER_OKTA_USER" and line["level"] == "warn", line
    assert p.connect.user_by_username(bob_login) == bob_user, "Bob's user is untouched"
    assert len(p.connect.writes()) == writes_before, p.connect.writes()[writes_before:]
    assert any(amy in a and "OWNED_BY_ANOTHER_OKTA_USER" in a for a in alerts(w)), alerts(w)

    # Amy's removal deletes nothing of Bob's: deletion goes by her own oktaUserId only.
    p.org.remove_from_group(p.supervisors, amy)
    deliver(w, [event("group.user_membership.remove", amy, bob_login, group=p.supervisors)])
    outcome(w, amy, lambda l: l.get("action") == "absent")
    assert p.connect.user_by_username(bob_login) == bob_user


def test_a_shared_email_is_a_conflict_too(owned_by_email):
    w, p = owned_by_email
    email = unique_login("shared")
    bob = p.org.add_user(unique_login("bob"), "Bob", "Builder", email=email)
    p.org.add_to_group(p.group, bob)
    deliver(w, [event("group.user_membership.add", bob, "x", group=p.group)])
    bob_user = wait_until(lambda: p.connect.user_by_username(email), what="Bob in Connect by e-mail")
    # Okta does not make e-mails unique: Amy sets hers to Bob's.
    amy = p.org.add_user(unique_login("amy"), "Amy", "Pond", email=email)
    p.org.add_to_group(p.group, amy)
    deliver(w, [event("group.user_membership.add", amy, "x", group=p.group)])
    line = outcome(w, amy, lambda l: l.get("action") == "conflict")
    assert line["reason"] == "OWNED_BY_ANOTHER_OKTA_USER", line
    assert p.connect.user_by_username(email) == bob_user
    assert bob_user["Tags"]["oktaUserId"] == bob


def test_the_reconciliation_plans_a_conflict_for_an_untagged_holder(owned):
    w, p = owned
    login = unique_login("held")
    uid = p.org.add_user(login, "Held", "Name")
    p.org.add_to_group(p.group, uid)
    p.connect.add_user(login, tags={}, security_profile_ids=["sp-supervisor"], routing_profile_id="rp-basic")
    r = reconcile(w, dry_run=True)
    assert r.status_code == 200, r.text
    mine = [c for c in r.json()["changes"] if c["username"] == login]
    assert [(c["action"], c["result"]) for c in mine] == [("skip", "skipped")], mine
    assert "UNMANAGED_USER_EXISTS" in mine[0]["reason"]
    assert r.json()["planned"]["conflict"] >= 1
    reconcile(w)
    assert not [c for c in p.connect.calls("CreateUser") if c["params"]["Username"] == login], "no CreateUser for it"
    assert p.connect.user_by_username(login)["SecurityProfileIds"] == ["sp-supervisor"]


def test_activation_of_a_staged_member_provisions_at_once(owned):
    w, p = owned
    login = unique_login("staged")
    uid = p.org.add_user(login, "Staged", "User", status="STAGED")
    p.org.add_to_group(p.group, uid)
    deliver(w, [event("group.user_membership.add", uid, login, group=p.group)])
    outcome(w, uid, lambda l: l.get("action") == "absent")
    assert p.connect.user_by_username(login) is None
    p.org.set_status(uid, "ACTIVE")
    deliver(w, [event("user.lifecycle.activate", uid, login)])
    created = wait_until(lambda: p.connect.user_by_username(login), what="the activated user in Connect")
    assert created["Tags"]["oktaUserId"] == uid


@pytest.fixture(scope="module")
def sources(worker_factory, mocks):
    return instance(worker_factory, mocks, "prov-sources")


def test_a_deleted_app_or_group_deletes_nothing_and_alerts(sources):
    w, p = sources
    by_app, by_group = unique_login("byapp"), unique_login("bygroup")
    app_user = p.org.add_user(by_app, "App", "User")
    p.org.assign_app(p.app, app_user)
    group_user = p.org.add_user(by_group, "Group", "User")
    p.org.add_to_group(p.supervisors, group_user)
    deliver(w, [event("application.user_membership.add", app_user, by_app, app=p.app),
                event("group.user_membership.add", group_user, by_group, group=p.supervisors)])
    wait_until(lambda: p.connect.user_by_username(by_app) and p.connect.user_by_username(by_group),
               what="both users in Connect")

    # The Okta app is deleted: every assignment check answers 404, as for an unassigned user.
    p.org.delete_app(p.app)
    deliver(w, [event("user.account.update_profile", app_user, by_app)])
    line = outcome(w, app_user, lambda l: l.get("reason", "").startswith("DELETION_HELD"))
    assert (line["reason"], line["outcome"]) == ("DELETION_HELD_SOURCE_MISSING", "retry"), line
    assert any(p.app in a and "does not exist" in a for a in alerts(w)), alerts(w)
    assert p.connect.user_by_username(by_app), "not deleted"

    # Restored, then the supervisors group is deleted.
    p.org.add_app("Amazon Connect", id=p.app)
    p.org.delete_group(p.supervisors)
    deliver(w, [event("group.user_membership.remove", group_user, by_group, group=p.supervisors)])
    line = outcome(w, group_user, lambda l: l.get("reason", "").startswith("DELETION_HELD"))
    assert line["reason"] == "DELETION_HELD_SOURCE_MISSING" and p.supervisors in line["error"], line
    time.sleep(1)
    assert p.connect.user_by_username(by_group) and p.connect.user_by_username(by_app)
    assert not p.connect.calls("DeleteUser"), p.connect.calls("DeleteUser")


@pytest.fixture(scope="module")
def budget(worker_factory, mocks):
    return instance(worker_factory, mocks, "prov-budget", PROVISIONING_MAX_DELETES_PER_HOUR="3",
                    RECONCILE_CONNECT_RPS="100")


def test_removals_over_the_hourly_budget_are_held_then_released(budget, worker_factory):
    w, p = budget
    logins = [unique_login(f"burst{i}") for i in range(5)]
    uids = [p.org.add_user(l, "Burst", "User") for l in logins]
    for uid in uids:
        p.org.add_to_group(p.group, uid)
    deliver(w, [event("group.user_membership.add", u, l, group=p.group) for u, l in zip(uids, logins)])
    wait_until(lambda: all(p.connect.user_by_username(l) for l in logins), what="five users in Connect")

    for uid in uids:
        p.org.remove_from_group(p.group, uid)
    deliver(w, [event("group.user_membership.remove", u, l, group=p.group) for u, l in zip(uids, logins)])
    def held_users():
        held = [u for u in uids if any(l.get("reason") == "DELETION_HELD_BUDGET_SPENT" for l in user_logs(w, u))]
        return held if len(held) == 2 else None
    held = wait_until(held_users, what="two removals held")
    assert len(p.connect.users()) == 2, "three deleted, two held"
    assert len(p.connect.calls("DeleteUser")) == 3
    assert any("PROVISIONING_MAX_DELETES_PER_HOUR (3)" in a for a in alerts(w)), alerts(w)
    lines = [l for u in held for l in user_logs(w, u) if l.get("reason") == "DELETION_HELD_BUDGET_SPENT"]
    assert all(l["outcome"] == "retry" and l["retryInS"] >= 60 for l in lines), lines
    time.sleep(2)
    assert len(p.connect.users()) == 2, "held, not deleted"

    # The operator raises the budget; the next reconciliation deletes what was held.
    w.vars["PROVISIONING_MAX_DELETES_PER_HOUR"] = "20"
    worker_factory.restart(w)
    r = reconcile(w)
    assert r.status_code == 200, r.text
    assert r.json()["applied"]["delete"] == 2
    assert p.connect.users() == []


@pytest.fixture(scope="module")
def reconcile_budget(worker_factory, mocks):
    return instance(worker_factory, mocks, "prov-reconcile-budget", PROVISIONING_MAX_DELETES_PER_HOUR="10",
                    RECONCILE_CONNECT_RPS="100")


def test_the_reconciliation_holds_deletions_over_the_budget(reconcile_budget):
    w, p = reconcile_budget
    for i in range(25):
        p.connect.add_user(f"orphan{i}@example.com", tags={"managedBy": "okta-edge-hooks", "oktaUserId": f"00uGONE{i:013d}"},
                           security_profile_ids=["sp-agent"], routing_profile_id="rp-basic")
    r = reconcile(w)
    assert r.status_code == 502, r.text
    rep = r.json()
    assert (rep["planned"]["delete"], rep["applied"]["delete"], rep["deletesHeld"]) == (25, 10, 15), rep["planned"]
    assert "DELETION_HELD_BUDGET_SPENT" in rep["error"], rep["error"]
    assert sum(c["result"] == "held" for c in rep["changes"]) == 15
    assert len(p.connect.users()) == 15


@pytest.fixture(scope="module")
def bulk(worker_factory, mocks):
    return instance(worker_factory, mocks, "prov-bulk")


def test_a_delivery_of_2000_events_and_17_mb_is_accepted_and_every_user_converges(bulk):
    w, p = bulk
    users = []
    for i in range(200):
        login = unique_login(f"bulk{i}")
        uid = p.org.add_user(login, "Bulk", f"User{i}")
        p.org.add_to_group(p.group, uid)
        users.append((uid, login))
    events = [event("group.user_membership.add", uid, login, group=p.group)
              for _ in range(10) for uid, login in users]
    assert len(events) == 2000
    body = {"eventType": "com.okta.event_hook", "eventTypeVersion": "1.0", "cloudEventsVersion": "0.1",
            "source": "https://example.okta.com/api/v1/eventHooks/whoXXX", "eventId": str(uuid.uuid4()),
            "eventTime": "2026-11-21T10:00:00.000Z", "contentType": "application/json",
            "data": {"events": events}, "padding": "x" * (17 * 1024 * 1024)}
    data = json.dumps(body).encode()
    assert len(data) > 16 * 1024 * 1024
    r = w.request("POST", "/okta/events", data=data, timeout=60,
                  headers={"Content-Type": "application/json", "Authorization": EVENT_HOOK_SECRET})
    assert r.status_code == 200, r.text
    line = wait_until(lambda: next((parse_line(l) for l in reversed(w.log_lines())
                                    if body["eventId"] in l and '"okta event hook"' in l), None), what="the hook's log line")
    assert (line["received"], line["relevant"], line["enqueued"], line["messages"]) == (2000, 2000, 2000, 1), line
    wait_until(lambda: all(p.connect.user_by_username(login) for _, login in users), timeout=240,
               what="all 200 users in Connect")
    assert len([c for c in p.connect.calls("CreateUser")]) == 200
    assert not p.connect.rejected()
    # Past the documented bound (32 MiB) a delivery is refused with 413, and only then.
    huge = json.dumps(dict(body, padding="x" * (33 * 1024 * 1024))).encode()
    r = w.request("POST", "/okta/events", data=huge, timeout=60,
                  headers={"Content-Type": "application/json", "Authorization": EVENT_HOOK_SECRET})
    assert r.status_code == 413
