"""Runs last (file order): nothing sensitive used during the run reached the Worker's logs.

Run alone (or after tests that sent no OTP), it starts the default instance and sends one request
itself first, so that it never passes for lack of anything to check."""
from __future__ import annotations

from helpers import SMS_FIXTURE, assert_successful, variant


def test_logs_never_contain_secrets_otps_tokens_or_full_numbers(worker_factory, sensitive):
    if not any(kind == "OTP" for kind in sensitive.items.values()):
        w = worker_factory.get("oauth")
        w.aws.reset()
        body = variant(SMS_FIXTURE)
        assert_successful(w.post_telephony(body), w.aws)
        assert w.wait_for_log(body["eventId"]), "the request left no log line"
    instances = worker_factory.all()
    assert instances, "no Worker instance ran"
    hits = worker_factory.leaks()
    assert not hits, "sensitive values in the wrangler logs: " + "; ".join(
        f"{name}: " + ", ".join(f"{kind} {value[:6]}…" for kind, value in found) for name, found in hits.items())
    assert sum(len(i.log_lines()) for i in instances) > 0
    assert any(kind == "OTP" for kind in sensitive.items.values())
    assert any(kind == "token" for kind in sensitive.items.values()) or \
        any(i.vars.get("OKTA_AUTH_MODE") == "header" for i in instances)
