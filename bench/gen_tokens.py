"""Writes bench/tokens.txt: distinct RS256 access tokens signed with tests/fixtures/keys/rsa-a.json,
one per line, for tests/wasm_bench.rs (which cannot sign inside wasm without measuring the signing).

The claims match the test issuer of src/testing.rs (`testing::issuer`); each token has its own
`jti` and expires in 2100. Deterministic: RS256 (PKCS#1 v1.5) signatures are, and so are the claims.

Usage: .venv/bin/python bench/gen_tokens.py [COUNT] (default 500)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import jwt
from jwt.algorithms import RSAAlgorithm

ROOT = Path(__file__).resolve().parent.parent
KEY = ROOT / "tests" / "fixtures" / "keys" / "rsa-a.json"
OUT = ROOT / "bench" / "tokens.txt"

ISSUER = "https://example.okta.com/oauth2/aus1"
AUDIENCE = "api://okta-edge-hooks"
CLIENT = "0oaTESTCLIENT"
SCOPE = "okta.telephony.send"
IAT = 1_767_225_600  # 2026-01-01T00:00:00Z
EXP = 4_102_444_800  # 2100-01-01T00:00:00Z


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    if not 1 <= count <= 10_000:
        print("COUNT must be 1..10000", file=sys.stderr)
        return 2
    jwk = json.loads(KEY.read_text())
    key = RSAAlgorithm.from_jwk(json.dumps(jwk))
    lines = []
    for i in range(count):
        claims = {"ver": 1, "jti": f"AT.bench-{i:05d}", "iss": ISSUER, "aud": AUDIENCE, "iat": IAT, "exp": EXP,
                  "cid": CLIENT, "scp": [SCOPE], "sub": CLIENT}
        lines.append(jwt.encode(claims, key, algorithm="RS256", headers={"kid": jwk["kid"]}))
    if len(set(lines)) != count:
        raise SystemExit("tokens are not distinct")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"bench/gen_tokens.py: {count} tokens → {OUT.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
