"""Exactly-once sends on the OTP_LEDGER Durable Object (issue #9).

A copy of a request (same eventId, phone, channel and OTP; Okta retries with a fresh token) must
never send a second code: copies that overlap wait for the first to settle and answer the same
bytes; later copies replay them, across a restart too. Without the object the hook fails open
(sends, and alerts) or closed (`OTP_GUARD_FAILURE=closed`: nothing sent, LEDGER_UNAVAILABLE)."""
from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from helpers import (SMS_FIXTURE, VOICE_FIXTURE, answer_kind, assert_delivery_error, assert_pending,
                     assert_successful, log_entries, log_mark, random_us_number, variant)


def send_copies(w, body: dict, n: int, *, timeout: float = 20) -> list[requests.Response]:
    """`n` copies of `body` at once: one thread and one connection each, each with its own freshly
    minted token (header mode: the secret), released together by a barrier."""
    headers = [w.auth_headers() for _ in range(n)]  # minted before the start: RSA signing takes time
    sessions = [requests.Session() for _ in range(n)]
    results: list = [None] * n
    barrier = threading.Barrier(n)

    def go(i):
        barrier.wait()
        try:
            results[i] = w.post_telephony(body, headers[i], auth=False, session=sessions[i], timeout=timeout)
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = e

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 10)
    for s in sessions:
        s.close()
    errors = [r for r in results if not isinstance(r, requests.Response)]
    assert not errors, f"{len(errors)} of {n} copies got no answer: {errors[:3]}"
    return results


def describe(results) -> str:
    kinds = {}
    for r in results:
        k = answer_kind(r)
        kinds[k] = kinds.get(k, 0) + 1
    return ", ".join(f"{n}× {k[0]}{'/' + k[1] if k[1] else ''}" for k, n in kinds.items())


# ---- copies in flight together -------------------------------------------------------------------
@pytest.mark.parametrize("copies", [2, 10])
def test_concurrent_copies_send_once_and_answer_identical_bytes(w, copies):
    w.aws.script([{"delay": 0.3, "ok": True}])  # AWS answers late: the copies really overlap
    body = variant(SMS_FIXTURE, phone=random_us_number())
    results = send_copies(w, body, copies)
    assert len(w.aws.requests()) == 1, f"{len(w.aws.requests())} AWS requests for {copies} copies ({describe(results)})"
    first = results[0]
    assert_successful(first, w.aws)
    for r in results[1:]:
        assert (r.status_code, r.content) == (first.status_code, first.content), \
            f"copies answered differently: {describe(results)}\n{first.content!r}\n{r.content!r}"
    # a copy after they all settled: the same bytes again, nothing sent
    again = w.post_telephony(body)
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert len(w.aws.requests()) == 1


def test_concurrent_voice_copies_send_once(w):
    w.aws.script([{"delay": 0.3, "ok": True}])
    body = variant(VOICE_FIXTURE, phone=random_us_number())
    results = send_copies(w, body, 4)
    assert len(w.aws.requests()) == 1, describe(results)
    assert w.aws.requests()[0]["op"] == "SendVoiceMessage"
    assert len({(r.status_code, r.content) for r in results}) == 1, describe(results)
    assert_successful(results[0], w.aws)


def test_concurrent_requests_differing_only_in_otp_are_each_sent(w):
    """Same eventId, a different OTP: not a copy (already covered sequentially in
    test_telephony.py); sent concurrently, each is delivered with its own code."""
    phone = random_us_number()
    bodies = [variant(SMS_FIXTURE, phone=phone) for _ in range(3)]
    for b in bodies[1:]:
        b["eventId"] = bodies[0]["eventId"]
    w.aws.script([{"delay": 0.3, "ok": True}] * 3)
    results = [None] * 3
    barrier = threading.Barrier(3)

    def go(i):
        s = requests.Session()
        barrier.wait()
        results[i] = w.post_telephony(bodies[i], session=s)
        s.close()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    sent = w.aws.messages()
    assert len(sent) == 3, f"{len(sent)} sends for 3 distinct codes ({describe(results)})"
    otps = {b["data"]["messageProfile"]["otpCode"] for b in bodies}
    assert {next(o for o in otps if o in rec["params"]["MessageBody"]) for rec in sent} == otps
    for r in results:
        assert answer_kind(r) == ("SUCCESSFUL", None), r.text


def test_copies_of_a_send_that_times_out_are_pending_and_sent_once(hw):
    """AWS never answers (DEADLINE_MS=1500): every copy answers PENDING (never an error object, which
    would have Okta send a second code), AWS sees one request, and later copies replay the first."""
    hw.aws.script([{"hang": 10}])
    body = variant(SMS_FIXTURE, phone=random_us_number())
    t0 = time.monotonic()
    results = send_copies(hw, body, 3)
    elapsed = time.monotonic() - t0
    assert elapsed < 1.5 + 1.5, f"copies answered after {elapsed:.2f}s with DEADLINE_MS=1500"
    time.sleep(0.5)
    assert len(hw.aws.requests()) == 1, describe(results)
    timeouts = []
    for r in results:
        meta = assert_pending(r, ("TIMEOUT", "DUPLICATE_IN_PROGRESS"))
        if meta["reason"] == "TIMEOUT":
            timeouts.append(r.content)
    assert timeouts, f"no copy carried the send's own outcome: {describe(results)}"
    assert len(set(timeouts)) == 1, "the copies that waited for the outcome must answer its exact bytes"
    again = hw.post_telephony(body)
    assert_pending(again, ("TIMEOUT", "OUTCOME_UNKNOWN"))
    if json.loads(again.json()["commands"][0]["value"][0]["transactionMetadata"])["reason"] == "TIMEOUT":
        assert again.content == timeouts[0]
    time.sleep(0.3)
    assert len(hw.aws.requests()) == 1, "a later copy sent the code again"


# ---- across a restart ----------------------------------------------------------------------------
def test_replay_survives_a_restart(worker_factory, mocks):
    """The ledger is durable: after wrangler dev restarts on the same persistence directory (new
    isolate, empty memory), a copy gets the same bytes and nothing is sent."""
    w = worker_factory.get("restart", {"TEMPLATE_CACHE_SECONDS": "61"})
    w.aws.reset()
    body = variant(SMS_FIXTURE, phone=random_us_number())
    r1 = w.post_telephony(body)
    assert_successful(r1, w.aws)
    failed = variant(SMS_FIXTURE, phone=random_us_number())
    w.aws.script([{"type": "ConflictException", "body": {"Reason": "DESTINATION_PHONE_NUMBER_OPTED_OUT",
                                                          "ResourceType": "phone-number", "ResourceId": "x"}}])
    f1 = w.post_telephony(failed)
    assert answer_kind(f1) == ("FAILED", "OPTED_OUT"), f1.text
    assert len(w.aws.requests()) == 2

    worker_factory.restart(w)
    w.aws.reset()
    r2 = w.post_telephony(body)
    assert (r2.status_code, r2.content) == (r1.status_code, r1.content), (r1.content, r2.content)
    f2 = w.post_telephony(failed)
    assert (f2.status_code, f2.content) == (f1.status_code, f1.content)
    assert w.aws.requests() == [], "a copy was sent again after the restart"
    # and the restarted instance still sends new requests
    assert_successful(w.post_telephony(variant(SMS_FIXTURE, phone=random_us_number())), w.aws)


# ---- the object unavailable ------------------------------------------------------------------------
def test_without_the_ledger_fail_open_sends_and_alerts(worker_factory):
    w = worker_factory.get("no-ledger", {"TEMPLATE_CACHE_SECONDS": "62"}, ledger=False)
    w.aws.reset()
    body = variant(SMS_FIXTURE, phone=random_us_number())
    mark = log_mark(w)
    r = w.post_telephony(body)
    assert_successful(r, w.aws)
    alerts = log_entries(w, mark, msg="alert", pred=lambda e: "ledger" in json.dumps(e).lower())
    assert alerts, "no alert about the unavailable ledger:\n" + "\n".join(w.log_lines()[mark:][-20:])
    assert "Cannot perform I/O" not in w.logs()


def test_without_the_ledger_fail_closed_sends_nothing(worker_factory):
    w = worker_factory.get("no-ledger-closed", {"TEMPLATE_CACHE_SECONDS": "63", "OTP_GUARD_FAILURE": "closed"},
                           ledger=False)
    w.aws.reset()
    mark = log_mark(w)
    r = w.post_telephony(variant(SMS_FIXTURE, phone=random_us_number()))
    assert_delivery_error(r, "LEDGER_UNAVAILABLE")
    time.sleep(0.3)
    assert w.aws.requests() == [], "sent although the ledger could not be checked (fail closed)"
    assert log_entries(w, mark, msg="alert", pred=lambda e: "ledger" in json.dumps(e).lower()), \
        "no alert about the unavailable ledger"
