"""The Okta event hook (`/okta/events`): verification, authentication, body checks, and each
delivery acknowledged. Queue contents are not observable under `wrangler dev` without a consumer, so
the counts come from the one log line per delivery."""
from __future__ import annotations

import json
import uuid

import pytest
import requests

from conftest import EVENT_HOOK_SECRET
from helpers import fixture

EVENT_FIXTURES = ["event-hook-app-membership-add.json", "event-hook-group-membership-add.json",
                  "event-hook-batch-mixed.json"]


@pytest.fixture
def ew(events_worker):
    return events_worker


def fresh(name: str) -> dict:
    """A fixture with a new delivery id and new event uuids (tests must not dedupe each other)."""
    body = fixture(name)
    body["eventId"] = str(uuid.uuid4())
    for e in body["data"]["events"]:
        e["uuid"] = str(uuid.uuid4())
    return body


def post(w, body, *, secret: str | None = EVENT_HOOK_SECRET, headers: dict | None = None) -> requests.Response:
    h = {"Content-Type": "application/json"}
    if secret is not None:
        h["Authorization"] = secret
    h.update(headers or {})
    data = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
    return w.request("POST", "/okta/events", data=data, headers=h)


def log_for(w, event_id: str) -> dict:
    lines = [l for l in w.wait_for_log(event_id) if '"msg":"okta event hook"' in l]
    assert len(lines) == 1, lines
    line = lines[0]
    return json.loads(line[line.index("{"):])


def error_reason(resp) -> str:
    assert resp.headers["content-type"].startswith("application/json")
    return resp.json()["error"]["errorCauses"][0]["reason"]


# ---- verification -------------------------------------------------------------------------------
def test_verification_echoes_the_challenge(ew):
    r = ew.request("GET", "/okta/events", headers={"X-Okta-Verification-Challenge": "fk4cgWH2ygWv6kDNNJ6N"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"verification": "fk4cgWH2ygWv6kDNNJ6N"}


def test_verification_needs_the_header_and_bounds_it(ew):
    r = ew.request("GET", "/okta/events")
    assert r.status_code == 400 and error_reason(r) == "MISSING_CHALLENGE"
    r = ew.request("GET", "/okta/events", headers={"X-Okta-Verification-Challenge": "x" * 1025})
    assert r.status_code == 400 and error_reason(r) == "CHALLENGE_TOO_LONG"


def test_other_methods_are_405(ew):
    r = ew.request("PUT", "/okta/events", data=b"{}")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, POST"


# ---- authentication and bodies --------------------------------------------------------------------
@pytest.mark.parametrize("secret", [None, "", "wrong-" + "x" * 20, EVENT_HOOK_SECRET + "x", EVENT_HOOK_SECRET.upper()])
def test_missing_or_bad_secret_is_401(ew, secret):
    body = fresh(EVENT_FIXTURES[0])
    r = post(ew, body, secret=secret)
    assert r.status_code == 401
    assert error_reason(r) in ("MISSING_CREDENTIALS", "INVALID_CREDENTIALS")


def test_secret_in_another_header_is_401(ew):
    r = post(ew, fresh(EVENT_FIXTURES[0]), secret=None, headers={"X-Okta-Secret": EVENT_HOOK_SECRET})
    assert r.status_code == 401


@pytest.mark.parametrize("data", [b"", b"not json", b"{}", b'{"eventType":"com.okta.event_hook","data":{}}',
                                  b'{"eventType":"com.okta.event_hook","data":{"events":[{"eventType":"x"}]}}',
                                  b'{"eventType":"com.okta.telephony.provider","data":{"events":[]}}'])
def test_malformed_is_400(ew, data):
    r = post(ew, data)
    assert r.status_code == 400
    assert error_reason(r) in ("MALFORMED_BODY", "UNEXPECTED_EVENT_TYPE")


def test_oversized_is_413_only_past_the_documented_bound(ew):
    body = fresh(EVENT_FIXTURES[0])
    body["padding"] = "x" * (1024 * 1024)  # Okta sends no such thing, but a big delivery is never lost
    assert post(ew, body).status_code == 200
    body = fresh(EVENT_FIXTURES[0])
    body["padding"] = "x" * (32 * 1024 * 1024)
    r = post(ew, body)
    assert r.status_code == 413 and error_reason(r) == "BODY_TOO_LARGE"


# ---- deliveries -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name,relevant", [(EVENT_FIXTURES[0], 1), (EVENT_FIXTURES[1], 1), (EVENT_FIXTURES[2], 3)])
def test_each_fixture_is_acknowledged_and_enqueued(ew, name, relevant):
    body = fresh(name)
    r = post(ew, body)
    assert r.status_code == 200, r.text
    assert r.content == b""
    line = log_for(ew, body["eventId"])
    assert line["status"] == 200
    assert (line["received"], line["relevant"], line["duplicates"], line["enqueued"]) == \
        (len(body["data"]["events"]), relevant, 0, relevant)
    assert "kvErrors" not in line


def test_duplicate_delivery_is_acknowledged_not_enqueued_again(ew):
    body = fresh(EVENT_FIXTURES[2])
    assert post(ew, body).status_code == 200
    first = log_for(ew, body["eventId"])
    assert first["enqueued"] == 3
    again = dict(body, eventId=str(uuid.uuid4()))  # Okta's retry of the same events
    r = post(ew, again)
    assert r.status_code == 200 and r.content == b""
    line = log_for(ew, again["eventId"])
    assert (line["relevant"], line["duplicates"], line["enqueued"]) == (3, 3, 0)


def test_irrelevant_and_failed_events_are_acknowledged_and_ignored(ew):
    body = fresh(EVENT_FIXTURES[2])
    events = body["data"]["events"]
    events[0]["outcome"]["result"] = "FAILURE"
    events[1]["target"][1]["id"] = "00gSOMEOTHERGROUP"
    events[2]["eventType"] = "user.session.start"
    r = post(ew, body)
    assert r.status_code == 200 and r.content == b""
    line = log_for(ew, body["eventId"])
    assert (line["received"], line["relevant"], line["enqueued"]) == (3, 0, 0)


def test_log_line_has_no_secret_or_headers(ew):
    body = fresh(EVENT_FIXTURES[0])
    post(ew, body)
    line = json.dumps(log_for(ew, body["eventId"]))
    assert EVENT_HOOK_SECRET not in line
    assert "ana.garcia" not in line


def test_unconfigured_event_hook_is_503(oauth_worker):
    r = oauth_worker.request("POST", "/okta/events", data=b"{}", headers={"Authorization": "anything"})
    assert r.status_code == 503 and error_reason(r) == "NOT_CONFIGURED"
    # the verification needs no settings
    r = oauth_worker.request("GET", "/okta/events", headers={"X-Okta-Verification-Challenge": "v"})
    assert r.status_code == 200 and r.json() == {"verification": "v"}
