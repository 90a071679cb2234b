"""Runs the Worker locally in workerd (wrangler dev) against local stand-ins for Okta and AWS.

- A local Okta custom authorization server (JWKS at {issuer}/v1/keys) that also mints a token.
- A local End User Messaging endpoint that checks every SigV4 signature with botocore and every
  body against botocore's pinpoint-sms-voice-v2 model, and shows each message it accepts.
- Provisioning: a local Okta org (token endpoint verifying the service app's client assertion,
  Users/Groups/Apps API) holding the event-hook fixture's user in the Connect group, and a local
  Amazon Connect (SigV4 and bodies checked against botocore's connect model) that shows each user
  it creates, updates or deletes.
- Local KV seeded from kv-seed/.

Prints ready-to-paste curl requests; Ctrl-C stops everything.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from launcher import WranglerDev, write_env_file  # noqa: E402
from mocks.aws import MockMessaging  # noqa: E402
from mocks.connect import MockConnect  # noqa: E402
from mocks.okta import MockOkta  # noqa: E402
from mocks.okta_api import MockOktaOrg  # noqa: E402

PORT = int(os.environ.get("PORT", "8787"))
AWS_KEY = "AKIDLOCALDEV00000001"
AWS_SECRET = "local-dev-secret-key-not-a-real-aws-key-000"
CLIENT_ID = "0oaLOCALCLIENT"
EVENT_HOOK_SECRET = "local-event-hook-secret"
SERVICE_APP = "0oaLOCALSERVICEAPP01"
INSTANCE = "11111111-2222-3333-4444-555555555555"
GROUP, APP = "00g1connectgrp000x1", "0oa1connectapp000x1"          # as in the event-hook fixtures


def main() -> int:
    okta = MockOkta(auth_server_id="aus_local")
    okta.client_id = CLIENT_ID
    aws = MockMessaging(AWS_KEY, AWS_SECRET)
    private_jwk, public_jwk = MockOktaOrg.new_client_key()
    org = MockOktaOrg(SERVICE_APP, public_jwk)
    org.add_group("amazon_connect", id=GROUP)
    org.add_app("Amazon Connect Agents", id=APP)
    jordan = org.add_user("jordan.lee@example.com", "Jordan", "Lee", id="00u9z8y7x6w5v4u3t2s1")
    org.add_to_group(GROUP, jordan)
    connect = MockConnect(AWS_KEY, AWS_SECRET, instance_id=INSTANCE)
    mapping = {"default": {"securityProfileIds": ["sp-agent"], "routingProfileId": "rp-basic"}}
    state = ROOT / ".wrangler" / "local-run"
    subprocess.run([str(ROOT / "scripts" / "seed-kv"), "--persist-to", str(state)], check=True)

    variables = {
        "OKTA_ISSUER": okta.issuer,
        "OKTA_ALLOWED_CLIENT_IDS": CLIENT_ID,
        "AWS_SMS_VOICE_ENDPOINT": aws.endpoint,
        "OKTA_CONNECT_GROUP_IDS": GROUP,
        "OKTA_CONNECT_APP_IDS": APP,
        "CONNECT_INSTANCE_ID": INSTANCE,
        "AWS_CONNECT_ENDPOINT": connect.endpoint,
        "CONNECT_PROFILE_MAPPING": json.dumps(mapping),
        "OKTA_ORG_URL": org.org_url,
        "OKTA_API_CLIENT_ID": SERVICE_APP,
    }
    # Secrets go through an env file: wrangler prints every --var in its banner.
    secrets = {
        "AWS_ACCESS_KEY_ID": AWS_KEY,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "OKTA_EVENT_HOOK_SECRET": EVENT_HOOK_SECRET,
        "OKTA_API_PRIVATE_KEY": json.dumps(private_jwk),
    }
    state.mkdir(parents=True, exist_ok=True)
    env_file = write_env_file(state / "local-dev.vars", secrets)
    worker = WranglerDev(persist=state, env_file=env_file, vars=variables, port=PORT, env=dict(os.environ),
                         name="scripts/dev")
    try:
        worker.wait_ready(180, 900)
    except RuntimeError as e:
        print(f"the Worker did not start: {e}", file=sys.stderr)
        worker.stop()
        return 1

    token = okta.mint(exp=int(time.time()) + 24 * 3600)
    body = json.loads((ROOT / "tests" / "fixtures" / "okta" / "telephony-sms-password-reset.json").read_text())
    body["eventId"] = uuid.uuid4().hex[:22]
    body["eventTime"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body["data"]["messageProfile"]["otpExpires"] = (datetime.now(timezone.utc) + timedelta(hours=24)).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")
    example = ROOT / "build" / "example-request.json"
    example.write_text(json.dumps(body, indent=2))
    print(f"""
==> okta-edge-hooks is running at http://127.0.0.1:{PORT}
    local Okta issuer:        {okta.issuer}
    local messaging endpoint: {aws.endpoint}

Try it (token valid 24 h; change "eventId" to send again):

curl -s http://127.0.0.1:{PORT}/okta/telephony \\
  -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer {token}' \\
  --data @{example.relative_to(ROOT)}

Provisioning: deliver the event-hook fixture (Jordan joins the Connect group); the Worker reads Okta
and creates the Connect user a second later:

curl -s http://127.0.0.1:{PORT}/okta/events \\
  -H 'Content-Type: application/json' \\
  -H 'Authorization: {EVENT_HOOK_SECRET}' \\
  --data @tests/fixtures/okta/event-hook-group-membership-add.json

Messages accepted by the local messaging endpoint and changes to local Connect users appear below.
Ctrl-C stops everything.
""", flush=True)

    seen = seen_writes = 0
    try:
        while worker.proc.poll() is None:
            msgs = aws.messages()
            for m in msgs[seen:]:
                p = m.get("params") or {}
                print(f"[messaging] {m.get('op')} to {p.get('DestinationPhoneNumber')} via "
                      f"{p.get('OriginationIdentity')}: {p.get('MessageBody')!r}", flush=True)
            seen = len(msgs)
            writes = connect.writes()
            for c in writes[seen_writes:]:
                p = c.get("params") or {}
                print(f"[connect] {c.get('op')} {p.get('Username') or p.get('UserId')}", flush=True)
            seen_writes = len(writes)
            time.sleep(0.3)
    except KeyboardInterrupt:
        pass
    finally:
        worker.stop()
        for m in (okta, aws, org, connect):
            m.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
