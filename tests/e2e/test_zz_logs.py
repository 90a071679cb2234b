"""Runs last (file order): nothing sensitive used during the run reached the Worker's logs."""
from __future__ import annotations


def test_logs_never_contain_secrets_otps_tokens_or_full_numbers(worker_factory, sensitive):
    instances = worker_factory.all()
    hits = worker_factory.leaks()
    assert not hits, "sensitive values in the wrangler logs: " + "; ".join(
        f"{name}: " + ", ".join(f"{kind} {value[:6]}…" for kind, value in found) for name, found in hits.items())
    if instances:  # the check is only meaningful if something was logged and registered
        assert sum(len(i.log_lines()) for i in instances) > 0
        assert any(kind == "OTP" for kind in sensitive.items.values())
