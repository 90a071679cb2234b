"""Runs the Worker locally in workerd (wrangler dev) against local stand-ins for Okta and AWS.

- A local Okta custom authorization server (JWKS at {issuer}/v1/keys) that also mints a token.
- A local End User Messaging endpoint that checks every SigV4 signature with botocore and every
  body against botocore's pinpoint-sms-voice-v2 model, and shows each message it accepts.
- Local KV seeded from kv-seed/.

Prints a ready-to-paste curl request; Ctrl-C stops everything.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from mocks.aws import MockMessaging  # noqa: E402
from mocks.okta import MockOkta  # noqa: E402

PORT = int(os.environ.get("PORT", "8787"))
AWS_KEY = "AKIDLOCALDEV00000001"
AWS_SECRET = "local-dev-secret-key-not-a-real-aws-key-000"
CLIENT_ID = "0oaLOCALCLIENT"


def main() -> int:
    okta = MockOkta(auth_server_id="aus_local")
    okta.client_id = CLIENT_ID
    aws = MockMessaging(AWS_KEY, AWS_SECRET)
    state = ROOT / ".wrangler" / "local-run"
    subprocess.run([str(ROOT / "scripts" / "seed-kv"), "--persist-to", str(state)], check=True)

    variables = {
        "OKTA_ISSUER": okta.issuer,
        "OKTA_ALLOWED_CLIENT_IDS": CLIENT_ID,
        "AWS_SMS_VOICE_ENDPOINT": aws.endpoint,
        "AWS_ACCESS_KEY_ID": AWS_KEY,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
    }
    cmd = [str(ROOT / "node_modules" / ".bin" / "wrangler"), "dev", "--ip", "127.0.0.1", "--port", str(PORT),
           "--persist-to", str(state), "--show-interactive-dev-session=false"]
    for k, v in variables.items():
        cmd += ["--var", f"{k}:{v}"]
    worker = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)

    import urllib.request
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        print("the Worker did not start", file=sys.stderr)
        worker.terminate()
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

Messages accepted by the local messaging endpoint appear below. Ctrl-C stops everything.
""", flush=True)

    seen = 0
    try:
        while worker.poll() is None:
            msgs = aws.messages()
            for m in msgs[seen:]:
                p = m.get("params") or {}
                print(f"[messaging] {m.get('op')} to {p.get('DestinationPhoneNumber')} via "
                      f"{p.get('OriginationIdentity')}: {p.get('MessageBody')!r}", flush=True)
            seen = len(msgs)
            time.sleep(0.3)
    except KeyboardInterrupt:
        pass
    finally:
        try:
            os.killpg(worker.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        okta.close()
        aws.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
