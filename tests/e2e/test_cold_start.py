"""Concurrency at a cold start (issue #9): a fresh isolate gets many requests at once, before any
key, template, token or Durable Object stub is cached. workerd refuses to let one request await I/O
another request started ("Cannot perform I/O on behalf of a different request"), so nothing such
may be shared: every request must still be answered normally.

Each test starts its own instance (a new `wrangler dev` process: distinct vars), so it is cold."""
from __future__ import annotations

import threading

import pytest
import requests

from conftest import AKID, AWS_SECRET
from helpers import SMS_FIXTURE, answer_kind, mp, random_us_number, variant
from mocks.aws import MockMessaging
from test_events import EVENT_FIXTURES, fresh, log_for
from test_events import post as post_event
from test_provisioning import dead_letters, deliver, event, member, unique_login, user_logs, wait_until

IO_ERROR = "Cannot perform I/O"


def run_at_once(n: int, fn) -> list:
    """fn(i, session) in n threads released together; returns the results (or exceptions)."""
    results: list = [None] * n
    barrier = threading.Barrier(n)

    def go(i):
        s = requests.Session()
        barrier.wait()
        try:
            results[i] = fn(i, s)
        except Exception as e:  # noqa: BLE001 - reported by the caller
            results[i] = e
        finally:
            s.close()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.fixture(scope="module")
def cold_aws():
    m = MockMessaging(AKID, AWS_SECRET)  # its own: counts this test's sends only
    yield m
    m.close()


def test_cold_start_50_concurrent_telephony_requests(worker_factory, cold_aws):
    w = worker_factory.get("cold-telephony", {"TEMPLATE_CACHE_SECONDS": "57", "DEADLINE_MS": "2900"},
                           aws=cold_aws)
    n = 50
    phones: set[str] = set()
    while len(phones) < n:  # distinct numbers, so that each answer maps to its send
        phones.add(random_us_number())
    bodies = [variant(SMS_FIXTURE, phone=ph) for ph in sorted(phones)]
    headers = [w.auth_headers() for _ in range(n)]  # n distinct fresh tokens, minted beforehand
    results = run_at_once(n, lambda i, s: w.post_telephony(bodies[i], headers[i], auth=False, session=s,
                                                           timeout=30))
    errors = [r for r in results if not isinstance(r, requests.Response)]
    assert not errors, f"{len(errors)} requests got no answer: {errors[:3]}"
    kinds: dict = {}
    for r in results:
        kinds[answer_kind(r)] = kinds.get(answer_kind(r), 0) + 1
    bad = [r for r in results if answer_kind(r) != ("SUCCESSFUL", None)]
    assert not [r for r in results if IO_ERROR in r.text], "an answer carries workerd's cross-request I/O error"
    assert not bad, f"{len(bad)} of {n} not SUCCESSFUL at a cold start: {kinds}; e.g. {bad[0].status_code} {bad[0].text[:300]}"
    sent = {rec["params"]["DestinationPhoneNumber"]: rec for rec in cold_aws.messages()}
    assert len(sent) == n, f"{len(sent)} sends for {n} requests"
    for b, r in zip(bodies, results):
        assert r.json()["commands"][0]["value"][0]["transactionId"] == sent[mp(b)["phoneNumber"]]["message_id"]
    assert IO_ERROR not in w.logs(), "workerd reported cross-request I/O"


def test_cold_start_20_concurrent_event_hook_deliveries(worker_factory):
    from conftest import CONNECT_APP_ID, CONNECT_GROUP_ID, EVENT_HOOK_SECRET
    w = worker_factory.get("cold-events", {
        "OKTA_EVENT_HOOK_SECRET": EVENT_HOOK_SECRET,
        "OKTA_CONNECT_APP_IDS": CONNECT_APP_ID,
        "OKTA_CONNECT_GROUP_IDS": CONNECT_GROUP_ID,
        "TEMPLATE_CACHE_SECONDS": "58",
    })
    n = 20
    bodies = [fresh(EVENT_FIXTURES[i % len(EVENT_FIXTURES)]) for i in range(n)]
    results = run_at_once(n, lambda i, s: post_event(w, bodies[i]))
    errors = [r for r in results if not isinstance(r, requests.Response)]
    assert not errors, f"{len(errors)} deliveries got no answer: {errors[:3]}"
    statuses = [r.status_code for r in results]
    assert all(s in (200, 204) for s in statuses), f"statuses at a cold start: {statuses}; " + \
        next((r.text[:300] for r in results if r.status_code not in (200, 204)), "")
    assert not [r for r in results if IO_ERROR in r.text]
    for body in bodies:
        line = log_for(w, body["eventId"])
        assert line["status"] in (200, 204), line
        assert line["duplicates"] == 0 and line["enqueued"] == line["relevant"], line
        assert "kvErrors" not in line, line
    assert IO_ERROR not in w.logs(), "workerd reported cross-request I/O"


def test_cold_start_concurrent_queue_batches_all_converge(worker_factory, mocks):
    """Many events for many users at once on a fresh provisioning instance: several consumer batches
    run while the Okta service-app token is first fetched. Every user ends up in Connect, nothing is
    dead-lettered."""
    p = mocks.prov("cold")
    w = worker_factory.get("cold-provisioning", {**p.vars(), "TEMPLATE_CACHE_SECONDS": "59"})
    users = []
    for _ in range(40):
        login = unique_login("cold")
        users.append((member(p, login), login))
    chunks = [users[i:i + 5] for i in range(0, len(users), 5)]
    results = run_at_once(len(chunks), lambda i, s: deliver(w, [event("group.user_membership.add", uid, login,
                                                                      group=p.group) for uid, login in chunks[i]]))
    errors = [r for r in results if not isinstance(r, requests.Response)]
    assert not errors, f"{len(errors)} deliveries failed: {errors[:3]}"

    def missing():
        return [login for _, login in users if not p.connect.user_by_username(login)]

    try:
        wait_until(lambda: not missing(), timeout=120, what="every user in Connect")
    except AssertionError:
        gone = missing()
        letters = {uid: dead_letters(w, uid) for uid, _ in users if dead_letters(w, uid)}
        raise AssertionError(f"{len(gone)} of {len(users)} users never reached Connect (e.g. {gone[:3]}); "
                             f"dead letters: {letters}; last outcomes: "
                             f"{[(user_logs(w, uid) or [{}])[-1].get('outcome') for uid, l in users if l in gone][:5]}")
    for uid, _ in users:
        assert not dead_letters(w, uid), f"{uid} dead-lettered: {dead_letters(w, uid)}"
    assert not p.connect.rejected(), p.connect.rejected()[:3]
    logins = [u["Username"] for u in p.connect.users()]
    assert all(logins.count(login) == 1 for _, login in users), "a user was created twice"
    assert p.org.token_requests() and all(t["status"] == 200 for t in p.org.token_requests()), \
        [t["status"] for t in p.org.token_requests()]
    assert all(c["auth_ok"] for c in p.org.api_calls())
    assert IO_ERROR not in w.logs(), "workerd reported cross-request I/O"
    p.note_tokens()
