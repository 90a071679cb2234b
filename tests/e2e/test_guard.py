"""The toll-fraud guard, end to end: what POST /okta/telephony refuses before any OTP send (country
allow-lists, always-refused ranges, velocity windows per number, prefix, country and user, the
stricter enrolment windows), monitor and off modes, the admin status and release, state across a
restart, the guard's objects unavailable (open / closed), and production's required allow-list.

Every instance here sets its own OTP_GUARD_MODE, OTP_ALLOWED_COUNTRIES and OTP_RATE_LIMITS (the
suite's base vars turn the guard off for the older tests) and its own messaging stand-in, so AWS
calls are counted per test exactly. Tests on one instance share its Durable Object state: each
uses numbers of its own country or prefix block, so that only the key under test can trip.
"""
from __future__ import annotations

import inspect
import json
import re
import time
import uuid

import pytest

from conftest import ADMIN_SECRET, AKID, AWS_SECRET
from helpers import (ROOT, SMS_FIXTURE, assert_clean_request, assert_delivery_error,
                     assert_failed, masked, mp, variant)
from mocks.aws import MockMessaging

ENROLLMENT = "com.okta.user.telephony.pre-enrollment"
KINDS = ("number", "prefix", "country", "user")
INSTANCES: list = []  # every instance this module started (for the log scan at the end)


# ---- settings ----------------------------------------------------------------------------------------
def rate(max_: int, per_s: int = 3600) -> list[dict]:
    return [{"max": max_, "per_s": per_s}]


def rate_limits(enrollment: dict | None = None, **kinds) -> str:
    """OTP_RATE_LIMITS with every key given: those not named are off (`[]`), so that no default
    window can trip in a test about another key."""
    doc = {k: kinds.get(k, []) for k in KINDS}
    doc["enrollment"] = {k: (enrollment or {}).get(k, []) for k in KINDS}
    return json.dumps(doc, separators=(",", ":"))


OFF_LIMITS = rate_limits()


@pytest.fixture(scope="module")
def guard_aws():
    """A messaging stand-in for this module's instances only (signature and model checks as usual)."""
    m = MockMessaging(AKID, AWS_SECRET)
    yield m
    m.close()


def start(worker_factory, aws, name: str, *, mode: str | None = "enforce", sms: str | None = "*",
          voice: str | None = None, limits: str | None = OFF_LIMITS, failure: str | None = None,
          ledger: bool = True, **extra):
    """An instance of its own (`E2E_GUARD_INSTANCE` makes its vars unique: own persist dir)."""
    v = {"E2E_GUARD_INSTANCE": name, "OTP_GUARD_MODE": mode, "OTP_ALLOWED_COUNTRIES": sms,
         "OTP_VOICE_ALLOWED_COUNTRIES": voice, "OTP_RATE_LIMITS": limits, "OTP_GUARD_FAILURE": failure}
    v.update(extra)
    kw = {"aws": aws}
    if not ledger:
        if "ledger" not in inspect.signature(worker_factory.get).parameters:
            pytest.skip("conftest has no facility for an instance without the OTP_LEDGER binding")
        kw["ledger"] = False
    inst = worker_factory.get("guard-" + name, v, **kw)
    if inst not in INSTANCES:
        INSTANCES.append(inst)
    return inst


def restart(worker_factory, inst):
    """Stops `inst` and starts it again on the same persist dir (conftest's facility)."""
    if hasattr(worker_factory, "restart"):
        return worker_factory.restart(inst)
    if hasattr(inst, "restart"):
        inst.restart()
        return inst
    pytest.skip("conftest has no restart facility (WorkerFactory.restart / WorkerInstance.restart)")


# ---- requests and what they leave ---------------------------------------------------------------------
def new_user() -> str:
    return "00u" + uuid.uuid4().hex[:17]


def req(phone: str, *, channel: str = "sms", user: str | None = None, request_type: str | None = None) -> dict:
    """An OTP request to `phone`, a fresh eventId and OTP, its own user unless `user` is given, and
    a distinctive msgTemplate (Okta's free text: it must never be what is sent)."""
    body = variant(SMS_FIXTURE, phone=phone, channel=channel, request_type=request_type)
    body["data"]["userProfile"]["userId"] = user or new_user()
    mp(body)["msgTemplate"] = f"Okta free text {uuid.uuid4().hex[:10]}: {mp(body)['otpCode']}"
    return body


def send(w, body):
    """(response, the AWS requests it caused)."""
    before = len(w.aws.requests())
    r = w.post_telephony(body)
    return r, w.aws.requests()[before:]


def parse_line(line: str) -> dict | None:
    i = line.find("{")
    if i < 0:
        return None
    try:
        return json.JSONDecoder().raw_decode(line[i:])[0]
    except ValueError:
        return None


def telephony_lines(w, event_id: str, n: int = 1, timeout: float = 5.0) -> list[dict]:
    """The request log lines (`"msg":"telephony"`) of `event_id`, waiting for at least `n`."""
    deadline = time.monotonic() + timeout
    while True:
        out = []
        for l in w.log_lines():
            if event_id in l and '"telephony"' in l:
                d = parse_line(l)
                if isinstance(d, dict) and d.get("msg") == "telephony" and d.get("eventId") == event_id:
                    out.append(d)
        if len(out) >= n or time.monotonic() > deadline:
            return out
        time.sleep(0.05)


def the_line(w, body) -> dict:
    lines = telephony_lines(w, body["eventId"])
    assert len(lines) == 1, f"expected one telephony log line for {body['eventId']}, got {lines}"
    return lines[0]


def alerts(w, needle: str) -> list[dict]:
    out = []
    for l in w.log_lines():
        if needle in l and '"alert"' in l:
            d = parse_line(l)
            if isinstance(d, dict) and d.get("msg") == "alert" and needle in str(d.get("alert", "")):
                out.append(d)
    return out


def wait_alerts(w, needle: str, n: int = 1, timeout: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = alerts(w, needle)
        if len(found) >= n or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def e164(body) -> str:
    return mp(body)["phoneNumber"]


def assert_sent(w, r, new, body) -> dict:
    """SUCCESSFUL, exactly one accepted AWS request for this number, never Okta's msgTemplate;
    returns the log line."""
    assert r.status_code == 200, f"{r.status_code}: {r.text[:500]}"
    v = r.json()["commands"][0]["value"][0]
    assert v["status"] == "SUCCESSFUL", f"{e164(body)}: {r.text[:500]}"
    sent = [x for x in new if x["outcome"] == "sent"]
    assert len(new) == 1 and len(sent) == 1, f"expected one send for {e164(body)}, got {[(x['op'], x['outcome']) for x in new]}"
    assert_clean_request(sent[0])
    assert v["transactionId"] == sent[0]["message_id"]
    p = sent[0]["params"]
    assert p["DestinationPhoneNumber"] == e164(body)
    assert mp(body)["msgTemplate"] not in json.dumps(p), "Okta's msgTemplate was sent"
    assert mp(body)["otpCode"] in p["MessageBody"] or sent[0]["op"] == "SendVoiceMessage"
    return the_line(w, body)


ANY = object()  # assert_refused: do not check the country


def assert_refused(w, r, new, body, reason: str, key: str, country=ANY) -> dict:
    """FAILED with `reason`, no AWS call, one log line with guard/guardKey, the masked phone and the
    country; returns the line."""
    meta = assert_failed(r, reason)
    assert "transactionId" not in r.json()["commands"][0]["value"][0]
    assert new == [], f"AWS was called for a refused request: {[(x['op'], x['outcome']) for x in new]}"
    line = the_line(w, body)
    assert line.get("guard") == reason and line.get("guardKey") == key, line
    assert "guardMode" not in line, line
    assert masked(e164(body)).fullmatch(line.get("phone", "")), line
    assert line.get("status") == 200, line
    if country is not ANY:
        if country is None:  # non-geographic calling codes have no ISO country
            assert line.get("country") in (None, "", "ZZ"), line
            assert meta.get("country") in (None, "", "ZZ"), meta
        else:
            assert line.get("country") == country, line
            assert meta.get("country") in (None, country), meta
    return line


def num(block: str, i: int) -> str:
    """`+<block><i as 4 digits>`: numbers of one block share the prefix `+<block>`."""
    return f"+{block}{i:04d}"


# ---- country allow-lists --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lists_worker(worker_factory, guard_aws):
    """SMS to US, CA, GB; voice only to the US. No velocity window."""
    return start(worker_factory, guard_aws, "lists", sms="US,CA,GB", voice="US")


LIST_CASES = [
    # phone, channel, refused reason (None = sent), country
    ("+14155550101", "sms", None, "US"),
    ("+14155550102", "voice", None, "US"),
    ("+16135550103", "sms", None, "CA"),                      # NANP area code 613 is Canada
    ("+16135550104", "voice", "COUNTRY_NOT_ALLOWED", "CA"),   # the voice list is narrower
    ("+18765550105", "sms", "COUNTRY_NOT_ALLOWED", "JM"),     # +1 876 is Jamaica, not the US
    ("+18765550106", "voice", "COUNTRY_NOT_ALLOWED", "JM"),
    ("+447700900107", "sms", None, "GB"),
    ("+447700900108", "voice", "COUNTRY_NOT_ALLOWED", "GB"),
    ("+37120123109", "sms", "COUNTRY_NOT_ALLOWED", "LV"),
    ("+37120123110", "voice", "COUNTRY_NOT_ALLOWED", "LV"),
    ("+34612345111", "sms", "COUNTRY_NOT_ALLOWED", "ES"),
]


@pytest.mark.parametrize("phone,channel,reason,country", LIST_CASES,
                         ids=[f"{c}-{ch}-{'sent' if r is None else 'refused'}" for _, ch, r, c in LIST_CASES])
def test_country_allow_lists(lists_worker, phone, channel, reason, country):
    w = lists_worker
    body = req(phone, channel=channel)
    r, new = send(w, body)
    if reason is None:
        line = assert_sent(w, r, new, body)
        assert new[0]["op"] == ("SendTextMessage" if channel == "sms" else "SendVoiceMessage")
        assert "guard" not in line and line.get("country") == country, line
    else:
        assert_refused(w, r, new, body, reason, "country", country)


# ---- always-refused ranges ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ranges_worker(worker_factory, guard_aws):
    """Every country allowed on both channels, no velocity window: only the ranges can refuse."""
    return start(worker_factory, guard_aws, "ranges", sms="*", voice="*")


ALWAYS_BLOCKED = [
    # phone, country in the log (None: non-geographic), what
    ("+80012345678", None, "UIFN freephone +800"),
    ("+80812345678", None, "shared-cost +808"),
    ("+870301234567", None, "Inmarsat +870"),
    ("+878101234567890", None, "UPT +878"),
    ("+881612345678", None, "GMSS satellite +881"),
    ("+8823421234", None, "international networks +882"),
    ("+883510012345", None, "international networks +883"),
    ("+88812345678901", None, "OCHA +888"),
    ("+979123456789", None, "international premium +979"),
    ("+99112345678", None, "ITPCS trial +991"),
    ("+19005550123", "US", "NANP premium 900"),
    ("+14159761234", "US", "976 exchange (415)"),
    ("+12129760000", "US", "976 exchange (212)"),
    ("+16139765555", "CA", "976 exchange in a Canadian area code"),
]


@pytest.mark.parametrize("phone,country,what", ALWAYS_BLOCKED, ids=[w for _, _, w in ALWAYS_BLOCKED])
@pytest.mark.parametrize("channel", ["sms", "voice"])
def test_always_blocked_range(ranges_worker, phone, country, what, channel):
    w = ranges_worker
    body = req(phone, channel=channel)
    r, new = send(w, body)
    assert_refused(w, r, new, body, "NUMBER_RANGE_BLOCKED", "range", country)


TOLL_FREE = ["800", "833", "844", "855", "866", "877", "888"]


@pytest.mark.parametrize("npa", TOLL_FREE)
def test_nanp_toll_free_refused_for_sms_but_voice_allowed(ranges_worker, npa):
    w = ranges_worker
    body = req(f"+1{npa}5550123", channel="sms")
    r, new = send(w, body)
    assert_refused(w, r, new, body, "NUMBER_RANGE_BLOCKED", "range", "US")
    body = req(f"+1{npa}5550124", channel="voice")
    r, new = send(w, body)
    assert_sent(w, r, new, body)
    assert new[0]["op"] == "SendVoiceMessage"


def national_premium() -> list[tuple[str, str]]:
    """(prefix, description) of src/guard/ranges.rs `NATIONAL_PREMIUM`."""
    src = (ROOT / "src" / "guard" / "ranges.rs").read_text(encoding="utf-8")
    m = re.search(r"const\s+NATIONAL_PREMIUM\b[^=]*=\s*&\[(.*?)\n\];", src, re.S)
    assert m, "no NATIONAL_PREMIUM table in src/guard/ranges.rs"
    return re.findall(r'\(\s*"(\d+)"\s*,\s*"([^"]*)"\s*\)', m.group(1))


NATIONAL = national_premium()


@pytest.mark.parametrize("prefix,what", NATIONAL, ids=[p for p, _ in NATIONAL])
def test_national_premium_prefix_refused_on_both_channels(ranges_worker, prefix, what):
    w = ranges_worker
    phone = "+" + prefix + "1234567890"[: max(2, 12 - len(prefix))]
    for channel in ("sms", "voice"):
        body = req(phone, channel=channel)
        r, new = send(w, body)
        assert_refused(w, r, new, body, "NUMBER_RANGE_BLOCKED", "range", what.split()[0])


@pytest.mark.parametrize("phone", ["+447911123456", "+37120123456", "+14159751234", "+4915112345678",
                                   "+37060012345", "+3726123456", "+9607712345"])
def test_ordinary_mobiles_next_to_blocked_ranges_are_sent(ranges_worker, phone):
    w = ranges_worker
    body = req(phone)
    r, new = send(w, body)
    line = assert_sent(w, r, new, body)
    assert "guard" not in line, line


# ---- velocity ---------------------------------------------------------------------------------------------
VELOCITY_LIMITS = rate_limits(
    number=rate(2), prefix=rate(3), country=rate(8), user=rate(2),
    enrollment={"number": rate(1), "prefix": rate(2), "country": rate(3), "user": rate(1)},
)


@pytest.fixture(scope="module")
def velocity_worker(worker_factory, guard_aws):
    """Every key on, small exact windows (1 hour): number 2, prefix 3, country 8, user 2; enrolment in
    addition: number 1, prefix 2, country 3, user 1. Each test uses a country of its own (a request
    refused on its prefix or user still counts in its country: the objects count independently)."""
    return start(worker_factory, guard_aws, "velocity", sms="*", limits=VELOCITY_LIMITS)


def run(w, bodies, allowed: int, key: str):
    """The first `allowed` are sent, the rest refused RATE_LIMITED on `key`."""
    for i, body in enumerate(bodies):
        r, new = send(w, body)
        if i < allowed:
            assert_sent(w, r, new, body)
        else:
            assert_refused(w, r, new, body, "RATE_LIMITED", key)


def test_number_limit_trips_at_n_plus_one(velocity_worker):
    w = velocity_worker
    phone = num("44770090", 1)  # GB; a new user each time, so only the number counts up
    run(w, [req(phone) for _ in range(3)], allowed=2, key="number")
    # A neighbour in the same block is not affected (prefix 2 of 3 so far).
    r, new = send(w, b := req(num("44770090", 2)))
    assert_sent(w, r, new, b)


def test_prefix_limit_trips_at_n_plus_one_and_alerts_once(velocity_worker):
    w = velocity_worker
    block = "491512345"  # DE: 5 numbers of one block, each once, each its own user
    run(w, [req(num(block, i)) for i in range(4)], allowed=3, key="prefix")
    r, new = send(w, b := req(num(block, 4)))
    assert_refused(w, r, new, b, "RATE_LIMITED", "prefix", "DE")
    found = wait_alerts(w, f"toll-fraud guard: prefix +{block} is over")
    time.sleep(0.3)
    assert len(alerts(w, f"toll-fraud guard: prefix +{block} is over")) == 1, found
    # Another block of the same country still goes out.
    r, new = send(w, b := req(num("491512346", 0)))
    assert_sent(w, r, new, b)


def test_country_limit_trips_at_n_plus_one_and_alerts_once(velocity_worker):
    w = velocity_worker
    # FR: 10 numbers in 10 different blocks, each its own user: only the country counts up.
    bodies = [req(num(f"336{10 + i:02d}34", i)) for i in range(10)]
    run(w, bodies, allowed=8, key="country")
    wait_alerts(w, "toll-fraud guard: country FR is over")
    time.sleep(0.3)
    assert len(alerts(w, "toll-fraud guard: country FR is over")) == 1


def test_user_limit_trips_at_n_plus_one(velocity_worker):
    w = velocity_worker
    user = new_user()
    # ES: one user, three numbers in three blocks.
    bodies = [req(num(f"3461{20 + i:02d}3", i), user=user) for i in range(3)]
    run(w, bodies, allowed=2, key="user")
    line = the_line(w, bodies[-1])
    assert user not in json.dumps(line), "the user id must not be logged"
    # Another user, same country: sent.
    r, new = send(w, b := req(num("3461299", 0)))
    assert_sent(w, r, new, b)


def assert_not_enrolment_unaffected(w, body):
    """A request that is not an enrolment is checked against the general windows only: an
    enrolment window that just tripped on the same key must not refuse it."""
    r, new = send(w, body)
    v = r.json().get("commands", [{}])[0].get("value", [{}])[0] if r.status_code == 200 else {}
    if v.get("status") != "SUCCESSFUL":
        line = (telephony_lines(w, body["eventId"]) or [{}])[0]
        pytest.fail(f"a non-enrolment request was refused by an enrolment window: {r.text[:300]} "
                    f"(log guardKey={line.get('guardKey')!r})", pytrace=False)
    assert_sent(w, r, new, body)


def test_enrollment_number_window_applies_in_addition(velocity_worker):
    w = velocity_worker
    phone = num("3161234", 1)  # NL
    r, new = send(w, b := req(phone, request_type=ENROLLMENT))
    assert_sent(w, r, new, b)
    r, new = send(w, b := req(phone, request_type=ENROLLMENT))
    assert_refused(w, r, new, b, "RATE_LIMITED", "number", "NL")
    # Not an enrolment: only the general window (2) counts, and it holds one.
    r, new = send(w, b := req(phone))
    assert_sent(w, r, new, b)
    r, new = send(w, b := req(phone))
    assert_refused(w, r, new, b, "RATE_LIMITED", "number", "NL")


def test_enrollment_prefix_window_applies_in_addition(velocity_worker):
    w = velocity_worker
    block = "3247012"  # BE
    run(w, [req(num(block, i), request_type=ENROLLMENT) for i in range(3)], allowed=2, key="prefix")
    assert_not_enrolment_unaffected(w, req(num(block, 3)))  # the general prefix window (3) holds 2


def test_enrollment_country_window_applies_in_addition(velocity_worker):
    w = velocity_worker
    # SE: four blocks, four users.
    run(w, [req(num(f"4670{10 + i:02d}1", i), request_type=ENROLLMENT) for i in range(4)], allowed=3, key="country")
    assert_not_enrolment_unaffected(w, req(num("4670991", 0)))  # the general country window (8) holds 3


def test_enrollment_user_window_applies_in_addition(velocity_worker):
    w = velocity_worker
    user = new_user()
    # PT: one user, three blocks.
    r, new = send(w, b := req(num("35191201", 0), user=user, request_type=ENROLLMENT))
    assert_sent(w, r, new, b)
    r, new = send(w, b := req(num("35191202", 0), user=user, request_type=ENROLLMENT))
    assert_refused(w, r, new, b, "RATE_LIMITED", "user", "PT")
    assert_not_enrolment_unaffected(w, req(num("35191203", 0), user=user))  # the general user window (2) holds 1


def test_copies_are_not_counted_and_get_the_same_bytes(velocity_worker):
    w = velocity_worker
    phone = num("39320123", 1)  # IT; number window 2
    first = req(phone)
    r1, new = send(w, first)
    assert_sent(w, r1, new, first)
    for _ in range(2):
        r, new = send(w, first)
        assert (r.status_code, r.content) == (r1.status_code, r1.content)
        assert new == [], "a copy was sent again"
    second = req(phone)
    r, new = send(w, second)
    assert_sent(w, r, new, second)  # the copies did not use up the window
    third = req(phone)
    r3, new = send(w, third)
    assert_refused(w, r3, new, third, "RATE_LIMITED", "number", "IT")
    r, new = send(w, third)
    assert (r.status_code, r.content) == (r3.status_code, r3.content)
    assert new == []
    # A copy of the first, after the refusal: still its own answer.
    r, new = send(w, first)
    assert (r.status_code, r.content) == (r1.status_code, r1.content) and new == []


# ---- monitor and off ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def monitor_worker(worker_factory, guard_aws):
    return start(worker_factory, guard_aws, "monitor", mode="monitor", sms="US",
                 limits=rate_limits(number=rate(1), prefix=rate(2)))


def assert_monitored(w, body, reason: str, key: str) -> dict:
    r, new = send(w, body)
    line = assert_sent(w, r, new, body)
    assert (line.get("guard"), line.get("guardKey"), line.get("guardMode")) == (reason, key, "monitor"), line
    assert masked(e164(body)).fullmatch(line.get("phone", "")), line
    return line


def test_monitor_mode_sends_and_logs_what_it_would_refuse(monitor_worker):
    w = monitor_worker
    assert_monitored(w, req("+447700900201"), "COUNTRY_NOT_ALLOWED", "country")
    assert_monitored(w, req("+37190123456"), "NUMBER_RANGE_BLOCKED", "range")
    assert_monitored(w, req("+80012345678"), "NUMBER_RANGE_BLOCKED", "range")
    a = num("1646555", 1)
    r, new = send(w, b := req(a))
    line = assert_sent(w, r, new, b)
    assert not {"guard", "guardKey", "guardMode"} & set(line), line
    assert_monitored(w, req(a), "RATE_LIMITED", "number")          # number window 1
    assert_monitored(w, req(num("1646555", 2)), "RATE_LIMITED", "prefix")  # the block's third
    assert wait_alerts(w, "toll-fraud guard: prefix +1646555 is over"), "a prefix over its limit alerts in monitor mode too"


@pytest.fixture(scope="module")
def off_worker(worker_factory, guard_aws):
    return start(worker_factory, guard_aws, "off", mode="off", sms="US", limits=rate_limits(number=rate(1)))


def test_off_mode_checks_nothing(off_worker):
    w = off_worker
    bodies = [req("+80012345678"), req("+19005550123", channel="voice"), req("+18005550123"),
              req("+447700900301"), req("+37190123456")]
    bodies += [req("+14155550301") for _ in range(3)]
    for body in bodies:
        r, new = send(w, body)
        line = assert_sent(w, r, new, body)
        assert not {"guard", "guardKey", "guardMode"} & set(line), line
    assert alerts(w, "toll-fraud guard") == []


# ---- admin status and release --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def admin_worker(worker_factory, guard_aws):
    return start(worker_factory, guard_aws, "admin", sms="US,GB", ADMIN_SECRET=ADMIN_SECRET,
                 limits=rate_limits(number=rate(1), prefix=rate(2)))


def bearer(secret: str = ADMIN_SECRET) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def status(w, expect, timeout: float = 8.0) -> dict:
    """GET /admin/guard/status until `expect(body)` holds (tallies are sent after the answers)."""
    deadline = time.monotonic() + timeout
    while True:
        r = w.request("GET", "/admin/guard/status", headers=bearer())
        assert r.status_code == 200, f"{r.status_code}: {r.text[:500]}"
        body = r.json()
        assert set(body) == {"refusals", "busiestKeys"}, body
        if expect(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.25)


def refusal_counts(body) -> dict:
    return {(x["reason"], x["country"]): x["lastHour"] for x in body["refusals"]}


def key_counts(body) -> dict:
    return {(x["kind"], x["key"]): x["refusedLastHour"] for x in body["busiestKeys"]}


def test_admin_endpoints_need_the_admin_secret(admin_worker):
    w = admin_worker
    for headers in ({}, bearer("not-the-admin-secret-but-32-chars-long"), {"Authorization": ADMIN_SECRET}):
        r = w.request("GET", "/admin/guard/status", headers=headers)
        assert r.status_code == 401, r.text
        r = w.request("POST", "/admin/guard/release", headers={**headers, "Content-Type": "application/json"},
                      data=json.dumps({"prefix": "+1415555"}))
        assert r.status_code == 401, r.text


def test_admin_status_counts_refusals_and_busiest_keys_and_release_restores(admin_worker):
    w = admin_worker
    number = num("1718555", 1)
    block = "1212555"
    # 2 × FR and 1 × JM outside the list, 1 × LV premium range, the number twice over its window
    # of 1, the block twice over its window of 2.
    plan = [(req("+33612345401"), "COUNTRY_NOT_ALLOWED", "country"),
            (req("+33612345402"), "COUNTRY_NOT_ALLOWED", "country"),
            (req("+18765550403"), "COUNTRY_NOT_ALLOWED", "country"),
            (req("+37190123404"), "NUMBER_RANGE_BLOCKED", "range"),
            (req(number), None, None),
            (req(number), "RATE_LIMITED", "number"),
            (req(number), "RATE_LIMITED", "number"),
            (req(num(block, 1)), None, None),
            (req(num(block, 2)), None, None),
            (req(num(block, 3)), "RATE_LIMITED", "prefix"),
            (req(num(block, 4)), "RATE_LIMITED", "prefix")]
    for body, reason, key in plan:
        r, new = send(w, body)
        if reason is None:
            assert_sent(w, r, new, body)
        else:
            assert_refused(w, r, new, body, reason, key)

    want = {("COUNTRY_NOT_ALLOWED", "FR"): 2, ("COUNTRY_NOT_ALLOWED", "JM"): 1,
            ("NUMBER_RANGE_BLOCKED", "LV"): 1, ("RATE_LIMITED", "US"): 4}

    def number_key(b):
        return [(k, n) for (kind, k), n in key_counts(b).items() if kind == "number" and masked(number).fullmatch(k)]

    body = status(w, lambda b: refusal_counts(b) == want and key_counts(b).get(("prefix", f"+{block}")) == 2
                  and number_key(b) and number_key(b)[0][1] == 2)
    assert refusal_counts(body) == want, body
    assert key_counts(body).get(("prefix", f"+{block}")) == 2, body
    assert [n for _, n in number_key(body)] == [2], body
    lasts = [x["lastHour"] for x in body["refusals"]]
    assert lasts == sorted(lasts, reverse=True), "refusals are listed busiest first"
    assert number not in json.dumps(body) and number[1:] not in json.dumps(body), "status shows numbers masked"

    # Release the number: its counters are cleared, a new request is sent.
    r = w.request("POST", "/admin/guard/release", headers={**bearer(), "Content-Type": "application/json"},
                  data=json.dumps({"number": number}))
    assert r.status_code == 200, r.text
    assert r.json() == {"released": "number", "objects": 1}
    r, new = send(w, b := req(number))
    assert_sent(w, r, new, b)
    r, new = send(w, b := req(number))  # and the window of 1 counts again from there
    assert_refused(w, r, new, b, "RATE_LIMITED", "number", "US")

    # Release the block: every shard (one here: windows ≤ 250) cleared, its numbers are sent again.
    r = w.request("POST", "/admin/guard/release", headers={**bearer(), "Content-Type": "application/json"},
                  data=json.dumps({"prefix": f"+{block}"}))
    assert r.status_code == 200, r.text
    assert r.json() == {"released": "prefix", "objects": 1}
    for i in (5, 6):
        r, new = send(w, b := req(num(block, i)))
        assert_sent(w, r, new, b)
    r, new = send(w, b := req(num(block, 7)))
    assert_refused(w, r, new, b, "RATE_LIMITED", "prefix", "US")
    release_lines = [l for l in w.log_lines() if '"guard-release"' in l]
    assert len(release_lines) == 2, release_lines
    assert all(number not in l and number[1:] not in l for l in release_lines), "the release log masks the number"


@pytest.mark.parametrize("raw", [b"{}", b'{"number":"x"}', b'{"prefix":"1415"}', b'{"prefix":"+"}',
                                 b'{"number":"+14155550123","prefix":"+1415555"}', b"nope", b'{"other":"+1"}',
                                 b'{"prefix":"+14155abc"}'])
def test_admin_release_refuses_a_bad_body(admin_worker, raw):
    r = admin_worker.request("POST", "/admin/guard/release",
                             headers={**bearer(), "Content-Type": "application/json"}, data=raw)
    assert r.status_code == 400, f"{raw!r}: {r.status_code} {r.text[:300]}"
    assert "error" in r.json()


# ---- state across a restart ------------------------------------------------------------------------------
def test_tripped_keys_stay_refused_after_a_restart(worker_factory, guard_aws):
    w = start(worker_factory, guard_aws, "restart", sms="*", limits=rate_limits(number=rate(1), prefix=rate(2)))
    number = num("1415555", 1)
    block = "1312555"
    first = req(number)
    r1, new = send(w, first)
    assert_sent(w, r1, new, first)
    r, new = send(w, b := req(number))
    assert_refused(w, r, new, b, "RATE_LIMITED", "number", "US")
    for i in (1, 2):
        r, new = send(w, b := req(num(block, i)))
        assert_sent(w, r, new, b)
    r, new = send(w, b := req(num(block, 3)))
    assert_refused(w, r, new, b, "RATE_LIMITED", "prefix", "US")

    w = restart(worker_factory, w)  # same persist dir; isolate memory (tripped keys, caches) is gone

    r, new = send(w, b := req(number))
    assert_refused(w, r, new, b, "RATE_LIMITED", "number", "US")
    r, new = send(w, b := req(num(block, 4)))
    assert_refused(w, r, new, b, "RATE_LIMITED", "prefix", "US")
    r, new = send(w, first)  # a copy of the first request: its answer, byte for byte, not resent
    assert (r.status_code, r.content) == (r1.status_code, r1.content) and new == []
    r, new = send(w, b := req(num("1415556", 9)))  # anything else goes out
    assert_sent(w, r, new, b)


# ---- the guard's objects unavailable ---------------------------------------------------------------------
def test_objects_unavailable_fail_open_sends_and_alerts(worker_factory, guard_aws):
    w = start(worker_factory, guard_aws, "no-ledger-open", sms="*", failure="open", ledger=False,
              limits=rate_limits(number=rate(1), prefix=rate(2), country=rate(5), user=rate(2)))
    body = req("+14155550501")
    r, new = send(w, body)
    assert_sent(w, r, new, body)
    found = wait_alerts(w, body["eventId"])
    assert any("did not answer" in a["alert"] for a in found), found


def test_objects_unavailable_fail_closed_answers_the_error_object(worker_factory, guard_aws):
    w = start(worker_factory, guard_aws, "no-ledger-closed", sms="*", failure="closed", ledger=False,
              limits=rate_limits(number=rate(1), prefix=rate(2), country=rate(5), user=rate(2)))
    body = req("+14155550502")
    r, new = send(w, body)
    err = assert_delivery_error(r, None)
    assert err["error"]["errorCauses"][0]["reason"] == "LEDGER_UNAVAILABLE", err
    assert new == [], "nothing may be sent when the guard cannot be checked (closed)"
    assert wait_alerts(w, body["eventId"]), "an alert names the request"
    # The stateless checks still hold without any object.
    body = req("+80012345678")
    r, new = send(w, body)
    assert_refused(w, r, new, body, "NUMBER_RANGE_BLOCKED", "range", None)


# ---- production ------------------------------------------------------------------------------------------
def test_production_requires_otp_allowed_countries(worker_factory, guard_aws):
    w = start(worker_factory, guard_aws, "production-unset", sms=None, ENVIRONMENT="production")
    body = req("+14155550601")
    r, new = send(w, body)
    assert r.status_code == 500, f"{r.status_code}: {r.text[:500]}"
    assert r.json()["error"]["errorCauses"][0]["reason"] == "CONFIGURATION_ERROR", r.text
    assert new == [], "nothing is sent by a misconfigured hook"
    lines = [l for l in w.log_lines() if "OTP_ALLOWED_COUNTRIES" in l]
    assert lines, "the configuration error names the setting"
    # The same production instance with the list set serves.
    ok = start(worker_factory, guard_aws, "production-set", sms="US", ENVIRONMENT="production")
    body = req("+14155550602")
    r, new = send(ok, body)
    assert_sent(ok, r, new, body)


# ---- logs --------------------------------------------------------------------------------------------------
def test_zz_no_otp_or_full_number_in_the_guard_instances_logs(worker_factory):
    """The suite's sensitive-value scan (every OTP, msgTemplate and number sent through
    post_telephony), on this module's instances; and every request line's phone is masked."""
    if not INSTANCES:
        pytest.skip("no guard instance ran")
    for inst in INSTANCES:
        hits = worker_factory.sensitive.find_in(inst.logs())
        assert not hits, f"{inst.name}: sensitive values in the log: {sorted({kind for kind, _ in hits})}"
        for l in inst.log_lines():
            if '"msg":"telephony"' in l:
                d = parse_line(l) or {}
                if "phone" in d:
                    assert re.fullmatch(r"\+\d{2}\*+\d{3}", d["phone"]), f"{inst.name}: unmasked phone {d['phone'][:3]}…"
