"""Dead letters an admin can act on, end to end: messages the consumer dead-letters reach the
dead-letter queue (Miniflare), whose consumer keeps them in HOOK_STATE; `GET
/admin/provisioning/dead-letters` lists them, `POST /admin/provisioning/redrive` sends them back to
the provisioning queue once the cause is fixed. And the RECONCILE_CRON checks: scripts/check-config
before a deploy, an alert from the scheduled handler at runtime."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest

from conftest import ADMIN_SECRET
from helpers import ROOT
from test_provisioning import dead_letters, deliver, event, member, unique_login, wait_until

AUTH = {"Authorization": f"Bearer {ADMIN_SECRET}"}
LIST = "/admin/provisioning/dead-letters"
REDRIVE = "/admin/provisioning/redrive"


@pytest.fixture(scope="module")
def dl(worker_factory, mocks):
    """An instance of its own (its own KV, so the listing holds only this module's letters), with a
    RECONCILE_CRON that is not among wrangler.toml's crons (for the runtime alert)."""
    p = mocks.prov("dead-letters")
    p.org.reset()
    p.connect.reset()
    return worker_factory.get("dead-letters", {**p.vars(), "RECONCILE_CRON": "0 4 * * *"}), p


def listing(w, **params) -> dict:
    r = w.request("GET", LIST, headers=AUTH, params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json" and r.headers["cache-control"] == "no-store"
    return r.json()


def test_dead_letters_are_listed_then_redriven_once_the_cause_is_fixed(dl):
    w, p = dl
    t0 = int(time.time() * 1000)
    # Unprovisionable: Connect with SAML refuses '+'; dead-lettered at once (attempt 1).
    bad_login = "dana+okta." + uuid.uuid4().hex[:6] + "@example.com"
    bad = member(p, bad_login)
    # Connect keeps failing for this one: dead-lettered after PROVISIONING_MAX_ATTEMPTS (3).
    broken_login = unique_login("broken")
    broken = member(p, broken_login)
    p.connect.script([{"op": "CreateUser", "type": "InternalServiceException"}] * 12)
    deliver(w, [event("group.user_membership.add", u, l, group=p.group)
                for u, l in ((bad, bad_login), (broken, broken_login))])

    def both_listed():
        items = listing(w)["items"]
        return items if {i["oktaUserId"] for i in items} >= {bad, broken} else None

    items = wait_until(both_listed, timeout=60, what="both dead letters listed")
    by_user = {i["oktaUserId"]: i for i in items}
    assert by_user[bad]["reason"] == "INVALID_USERNAME" and by_user[bad]["attempts"] == 1
    assert by_user[broken]["reason"] == "CONNECT_UNAVAILABLE" and by_user[broken]["attempts"] == 3
    now = int(time.time() * 1000)
    for i in items:
        assert t0 <= i["deadAtMs"] <= now, i
        assert i["eventType"] == "group.user_membership.add"
        assert isinstance(i["error"], str) and i["error"]
        assert i["id"].startswith(f"{i['deadAtMs']:013d}/")
    # The existing log line (level error) is still written.
    assert dead_letters(w, bad) and dead_letters(w, broken)
    body = listing(w)
    assert body["count"] == 2 and body["truncated"] is False
    raw = json.dumps(body)
    assert bad_login not in raw and broken_login not in raw and '"message"' not in raw
    assert [i["deadAtMs"] for i in body["items"]] == sorted((i["deadAtMs"] for i in body["items"]), reverse=True)
    limited = listing(w, limit=1)
    assert limited["count"] == 2 and len(limited["items"]) == 1 and limited["truncated"] is True
    # One record in full: the original message.
    detail = listing(w, id=by_user[bad]["id"])
    assert detail["message"]["userId"] == bad and detail["reason"] == "INVALID_USERNAME"
    assert w.request("GET", LIST, headers=AUTH, params={"id": "0000000000000/nope"}).status_code == 404
    assert w.request("GET", LIST, headers=AUTH, params={"id": "../x"}).status_code == 400

    # Fix the causes: a valid e-mail in Okta; Connect healthy again.
    fixed_login = unique_login("dana")
    p.org.update_profile(bad, login=fixed_login, email=fixed_login)
    p.connect.reset()
    assert not p.connect.user_by_username(fixed_login) and not p.connect.user_by_username(broken_login)

    # Redrive one by id, then the rest.
    r = w.request("POST", REDRIVE, headers=AUTH, json={"ids": [by_user[bad]["id"]]})
    assert r.status_code == 200, r.text
    assert (r.json()["redriven"], r.json()["failed"], r.json()["remaining"]) == (1, 0, 1)
    wait_until(lambda: p.connect.user_by_username(fixed_login), what="the fixed user converged")
    r = w.request("POST", REDRIVE, headers=AUTH)
    assert r.status_code == 200, r.text
    assert (r.json()["redriven"], r.json()["failed"], r.json()["remaining"]) == (1, 0, 0)
    u = wait_until(lambda: p.connect.user_by_username(broken_login), what="the broken user converged")
    assert u["Tags"]["oktaUserId"] == broken
    assert listing(w) == {"count": 0, "items": [], "truncated": False}
    # Their attempts started again: each converged in one delivery, nothing dead-lettered anew.
    time.sleep(2)
    assert listing(w)["count"] == 0
    # Nothing left: a redrive is a no-op.
    r = w.request("POST", REDRIVE, headers=AUTH, json={})
    assert r.json()["redriven"] == 0 and r.json()["remaining"] == 0


def test_dead_letter_endpoints_refuse_without_the_admin_secret(dl):
    w, _ = dl
    for headers in ({}, {"Authorization": "Bearer not-the-admin-secret-000000"}, {"Authorization": ADMIN_SECRET}):
        for method, path in (("GET", LIST), ("POST", REDRIVE)):
            r = w.request(method, path, headers=headers)
            assert r.status_code == 401, (method, path, r.text)
            assert r.headers["www-authenticate"] == 'Bearer realm="admin"'
            assert "items" not in r.text and "redriven" not in r.text
    r = w.request("POST", LIST, headers=AUTH)
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    r = w.request("GET", REDRIVE, headers=AUTH)
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = w.request("POST", REDRIVE, headers=AUTH, data=b"[1]")
    assert r.status_code == 400, r.text


def test_dead_letter_endpoints_are_off_without_an_admin_secret(worker_factory, mocks):
    p = mocks.prov("dead-letters")
    w = worker_factory.get("dead-letters-no-admin", {**p.vars(), "ADMIN_SECRET": None,
                                                      "RECONCILE_CRON": "0 4 * * *"})
    for method, path in (("GET", LIST), ("POST", REDRIVE)):
        r = w.request(method, path, headers=AUTH)
        assert r.status_code == 503 and "ADMIN_DISABLED" in r.text, r.text


def test_a_cron_tick_meant_for_the_reconciliation_alerts(dl):
    w, _ = dl
    # RECONCILE_CRON is "0 4 * * *" but the default reconciliation cron fires: said loudly.
    r = w.request("GET", "/cdn-cgi/handler/scheduled", params={"cron": "17 3 * * *"})
    assert r.status_code == 200, r.text
    lines = w.wait_for_log("(the default RECONCILE_CRON) fired, but RECONCILE_CRON is `0 4 * * *`", timeout=10)
    assert lines and '"level":"alert"' in lines[0]
    # The template sync is off here: the sync's tick runs nothing, also said.
    w.request("GET", "/cdn-cgi/handler/scheduled", params={"cron": "*/5 * * * *"})
    assert w.wait_for_log("cron `*/5 * * * *` runs nothing", timeout=10)


def check_config(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "check-config"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_check_config_fails_loudly_on_a_reconcile_cron_outside_the_triggers(tmp_path):
    ok = check_config()
    assert ok.returncode == 0, ok.stderr
    text = (ROOT / "wrangler.toml").read_text()
    assert text.count('RECONCILE_CRON = "17 3 * * *"') == 1
    bad = tmp_path / "wrangler.toml"
    bad.write_text(text.replace('RECONCILE_CRON = "17 3 * * *"', 'RECONCILE_CRON = "0 4 * * *"'))
    r = check_config("--config", str(bad))
    assert r.returncode == 1
    assert "[env.production]" in r.stderr and "RECONCILE_CRON = '0 4 * * *' is not in its [triggers] crons" in r.stderr
    # The top level's default ("17 3 * * *", RECONCILE_CRON unset there) without its trigger.
    bad.write_text(text.replace('crons = ["*/5 * * * *", "17 3 * * *"]', 'crons = ["*/5 * * * *"]', 1))
    r = check_config("--config", str(bad))
    assert r.returncode == 1 and "top level: RECONCILE_CRON (unset: default '17 3 * * *')" in r.stderr, r.stderr
    # Only the spacing differs: still refused (the runtime compares the strings), with a hint.
    bad.write_text(text.replace('RECONCILE_CRON = "17 3 * * *"', 'RECONCILE_CRON = "17  3 * * *"'))
    r = check_config("--config", str(bad))
    assert r.returncode == 1 and "differs only in spacing" in r.stderr


def test_check_config_refuses_queue_names_the_worker_would_misread(tmp_path):
    text = (ROOT / "wrangler.toml").read_text()
    assert text.count('dead_letter_queue = "okta-provisioning-dlq"') == 2
    bad = tmp_path / "wrangler.toml"
    bad.write_text(text.replace('dead_letter_queue = "okta-provisioning-dlq"', 'dead_letter_queue = "okta-provisioning-dead"', 1))
    r = check_config("--config", str(bad))
    assert r.returncode == 1 and "dead_letter_queue 'okta-provisioning-dead' must end in '-dlq'" in r.stderr, r.stderr
    bad.write_text(text.replace('queue = "okta-provisioning"\nmax_batch_size', 'queue = "okta-provisioning-x-dlq"\nmax_batch_size', 1))
    r = check_config("--config", str(bad))
    assert r.returncode == 1 and "is no consumer's dead_letter_queue" in r.stderr, r.stderr
