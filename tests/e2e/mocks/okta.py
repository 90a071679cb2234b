"""MockOkta: an Okta custom authorization server on loopback (JWKS endpoint) plus token minting.

    okta = MockOkta()                      # issuer http://127.0.0.1:PORT/oauth2/aus_test
    okta.mint()                            # a valid Okta-style access token (RS256, current kid)
    okta.mint(aud=["x", okta.audience])    # claim overrides; None deletes a claim
    okta.mint(headers={"kid": "nope"})     # header overrides; None deletes a header field
    okta.add_key(); okta.remove_key(kid); okta.publish([...]); okta.fail_next(2)
    okta.attack("hs256_public_key")        # hostile tokens, see ATTACKS
"""
from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import json
import secrets
import threading
import time
from typing import Callable, Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm, RSAPSSAlgorithm

from ._server import LoopbackServer, Reply

AUDIENCE = "api://okta-edge-hooks"
CLIENT_ID = "0oaTESTCLIENT"
SCOPE = "okta.telephony.send"


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_json(obj) -> str:
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def b64u_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def encode_jws(header: dict, claims: dict | bytes, sign: Callable[[bytes], bytes] | None) -> str:
    """Compact JWS. `sign=None` leaves the signature segment empty."""
    payload = claims if isinstance(claims, bytes) else json.dumps(claims, separators=(",", ":")).encode()
    signing_input = f"{b64u_json(header)}.{b64u(payload)}".encode()
    sig = sign(signing_input) if sign else b""
    return f"{signing_input.decode()}.{b64u(sig)}"


class KeyPair:
    """An RSA 2048 signing key with its kid."""

    def __init__(self, kid: str | None = None):
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public = self.private.public_key()
        self.kid = kid or b64u(secrets.token_bytes(24))
        self._cert: bytes | None = None

    def jwk(self) -> dict:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.public))
        return {"kty": "RSA", "alg": "RS256", "kid": self.kid, "use": "sig", "e": jwk["e"], "n": jwk["n"]}

    def public_pem(self, fmt: str = "spki") -> bytes:
        f = (serialization.PublicFormat.SubjectPublicKeyInfo if fmt == "spki"
             else serialization.PublicFormat.PKCS1)
        return self.public.public_bytes(serialization.Encoding.PEM, f)

    def cert_der(self) -> bytes:
        """A self-signed certificate for the key (for x5c / x5u attacks)."""
        if self._cert is None:
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker.invalid")])
            now = _dt.datetime.now(_dt.timezone.utc)
            cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                    .public_key(self.public).serial_number(x509.random_serial_number())
                    .not_valid_before(now - _dt.timedelta(days=1)).not_valid_after(now + _dt.timedelta(days=30))
                    .sign(self.private, hashes.SHA256()))
            self._cert = cert.public_bytes(serialization.Encoding.DER)
        return self._cert

    def signer(self, alg: str = "RS256") -> Callable[[bytes], bytes]:
        if alg in ("RS256", "RS384", "RS512"):
            algo = RSAAlgorithm(getattr(RSAAlgorithm, "SHA" + alg[2:]))
        elif alg in ("PS256", "PS384", "PS512"):
            algo = RSAPSSAlgorithm(getattr(RSAPSSAlgorithm, "SHA" + alg[2:]))
        else:
            raise ValueError(alg)
        return lambda data: algo.sign(data, self.private)


def _hmac_signer(secret: bytes) -> Callable[[bytes], bytes]:
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


# name -> one-line description; build them with MockOkta.attack(name)
ATTACKS = {
    "alg_none": "alg none, unsigned, empty signature",
    "alg_none_capitalised": "alg None, unsigned",
    "empty_signature_rs256": "alg RS256 with an empty signature segment",
    "hs256_public_key": "HS256, HMAC keyed with the real public key's SPKI PEM",
    "hs256_public_key_pkcs1": "HS256, HMAC keyed with the real public key's PKCS#1 PEM",
    "rs384": "RS384 signed with the right key",
    "ps256": "PS256 signed with the right key",
    "no_kid": "valid RS256 signature, no kid header",
    "wrong_key_legit_kid": "signed with an attacker key, kid of the real key",
    "jku_attacker": "jku -> attacker JWKS, signed with the attacker key, attacker kid",
    "x5u_attacker": "x5u -> attacker certificate, signed with the attacker key, attacker kid",
    "jwk_attacker": "embedded jwk of the attacker key, attacker kid",
    "jwk_attacker_legit_kid": "embedded jwk of the attacker key, kid of the real key",
    "x5c_attacker": "embedded x5c certificate of the attacker key, attacker kid",
    "tampered_claims": "payload changed after signing (cid)",
    "tampered_scope": "payload changed after signing (scp)",
    "truncated_signature": "signature cut short",
    "two_segments": "header.payload only",
    "four_segments": "an extra segment",
    "bad_base64": "characters outside base64url in the payload",
    "oversized": "~10 KB token (7.5 KB of claims), validly signed",
}


class MockOkta:
    """An Okta custom authorization server: GET {issuer}/v1/keys, plus token minting."""

    audience = AUDIENCE
    client_id = CLIENT_ID
    scope = SCOPE

    def __init__(self, auth_server_id: str = "aus_test"):
        self._lock = threading.Lock()
        self.auth_server_id = auth_server_id
        self.keys: dict[str, KeyPair] = {}          # every key ever generated, by kid
        self._published: list[dict] = []            # the JWKS "keys" array as served
        self.current: KeyPair | None = None          # key that mint() signs with
        self.attacker = KeyPair(kid="attacker-" + secrets.token_hex(6))
        self.cache_control = "max-age=3600"
        self._fail = 0
        self.jwks_requests = 0                       # GETs of {issuer}/v1/keys, failed ones included
        self.attacker_requests = 0                   # any request to /attacker/*: must stay 0
        self.log: list[tuple[float, str, str, int]] = []  # (time, method, path, status)
        self._server = LoopbackServer(self._handle, "MockOkta")
        self.port = self._server.port
        self.add_key()

    # ---- addresses -------------------------------------------------------------------------
    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.base}/oauth2/{self.auth_server_id}"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/v1/keys"

    @property
    def attacker_jwks_uri(self) -> str:
        return f"{self.base}/attacker/keys"

    @property
    def attacker_cert_uri(self) -> str:
        return f"{self.base}/attacker/cert.pem"

    # ---- controls ----------------------------------------------------------------------------
    def jwks(self) -> dict:
        with self._lock:
            return {"keys": [dict(k) for k in self._published]}

    def publish(self, keys: Iterable[KeyPair | str | dict]):
        """Replace the served key set. Items: KeyPair, a known kid, or a raw JWK dict."""
        out = []
        for k in keys:
            if isinstance(k, KeyPair):
                self.keys.setdefault(k.kid, k)
                out.append(k.jwk())
            elif isinstance(k, str):
                out.append(self.keys[k].jwk())
            else:
                out.append(dict(k))
        with self._lock:
            self._published = out

    def add_key(self, kid: str | None = None, make_current: bool = True) -> str:
        """Rotation: generate a key and publish it alongside the existing ones."""
        kp = KeyPair(kid)
        self.keys[kp.kid] = kp
        with self._lock:
            self._published.append(kp.jwk())
        if make_current or self.current is None:
            self.current = kp
        return kp.kid

    def remove_key(self, kid: str):
        with self._lock:
            self._published = [k for k in self._published if k.get("kid") != kid]

    def fail_next(self, n: int):
        """The next n JWKS requests answer 503."""
        with self._lock:
            self._fail = n

    def reset_counters(self):
        with self._lock:
            self.jwks_requests = 0
            self.attacker_requests = 0
            self.log.clear()

    def close(self):
        self._server.close()

    # ---- HTTP ----------------------------------------------------------------------------
    def _handle(self, method, path, headers, body, _h) -> Reply:
        path_only = path.split("?", 1)[0]
        with self._lock:
            if path_only.startswith("/attacker/"):
                self.attacker_requests += 1
                reply = (Reply(200, {"keys": [self.attacker.jwk()]}) if path_only.endswith("/keys")
                         else Reply(200, self._attacker_pem(), content_type="application/x-pem-file"))
            elif method == "GET" and path_only == f"/oauth2/{self.auth_server_id}/v1/keys":
                self.jwks_requests += 1
                if self._fail > 0:
                    self._fail -= 1
                    reply = Reply(503, {"errorCode": "E0000009", "errorSummary": "Service unavailable"})
                else:
                    reply = Reply(200, {"keys": [dict(k) for k in self._published]},
                                  headers={"Cache-Control": self.cache_control} if self.cache_control else {})
            elif method == "GET" and path_only in (f"/oauth2/{self.auth_server_id}/.well-known/openid-configuration",
                                                   f"/oauth2/{self.auth_server_id}/.well-known/oauth-authorization-server"):
                reply = Reply(200, {"issuer": self.issuer, "jwks_uri": self.jwks_uri,
                                    "token_endpoint": f"{self.issuer}/v1/token"})
            else:
                reply = Reply(404, {"errorCode": "E0000022", "errorSummary": "The endpoint does not support the provided HTTP method"})
            self.log.append((time.time(), method, path, reply.status))
        return reply

    def _attacker_pem(self) -> bytes:
        return b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(self.attacker.cert_der()) + b"-----END CERTIFICATE-----\n"

    # ---- tokens --------------------------------------------------------------------------
    def claims(self, **overrides) -> dict:
        now = int(time.time())
        c = {
            "ver": 1,
            "jti": "AT." + b64u(secrets.token_bytes(30)),
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + 3600,
            "cid": self.client_id,
            "scp": [self.scope],
            "sub": self.client_id,
        }
        for k, v in overrides.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        return c

    def mint(self, *, key: KeyPair | None = None, alg: str = "RS256", headers: dict | None = None,
             **claim_overrides) -> str:
        """A valid Okta-style access token unless overridden. `key` signs (default: current key);
        the header kid defaults to that key's kid."""
        key = key or self.current
        header = {"alg": alg, "kid": key.kid}
        for k, v in (headers or {}).items():
            if v is None:
                header.pop(k, None)
            else:
                header[k] = v
        return encode_jws(header, self.claims(**claim_overrides), key.signer(alg))

    def attack(self, name: str) -> str:
        cur = self.current
        att = self.attacker
        legit = self.claims()
        if name == "alg_none":
            return encode_jws({"alg": "none", "kid": cur.kid}, legit, None)
        if name == "alg_none_capitalised":
            return encode_jws({"alg": "None", "kid": cur.kid}, legit, None)
        if name == "empty_signature_rs256":
            return encode_jws({"alg": "RS256", "kid": cur.kid}, legit, None)
        if name == "hs256_public_key":
            return encode_jws({"alg": "HS256", "kid": cur.kid}, legit, _hmac_signer(cur.public_pem("spki")))
        if name == "hs256_public_key_pkcs1":
            return encode_jws({"alg": "HS256", "kid": cur.kid}, legit, _hmac_signer(cur.public_pem("pkcs1")))
        if name == "rs384":
            return self.mint(alg="RS384")
        if name == "ps256":
            return self.mint(alg="PS256")
        if name == "no_kid":
            return self.mint(headers={"kid": None})
        if name == "wrong_key_legit_kid":
            return self.mint(key=att, headers={"kid": cur.kid})
        if name == "jku_attacker":
            return self.mint(key=att, headers={"jku": self.attacker_jwks_uri})
        if name == "x5u_attacker":
            return self.mint(key=att, headers={"x5u": self.attacker_cert_uri})
        if name == "jwk_attacker":
            return self.mint(key=att, headers={"jwk": att.jwk()})
        if name == "jwk_attacker_legit_kid":
            return self.mint(key=att, headers={"kid": cur.kid, "jwk": dict(att.jwk(), kid=cur.kid)})
        if name == "x5c_attacker":
            return self.mint(key=att, headers={"x5c": [base64.b64encode(att.cert_der()).decode()]})
        if name in ("tampered_claims", "tampered_scope"):
            h, p, s = self.mint().split(".")
            claims = json.loads(b64u_decode(p))
            if name == "tampered_claims":
                claims["cid"] = "0oaOTHERCLIENT"
                claims["sub"] = "0oaOTHERCLIENT"
            else:
                claims["scp"] = ["okta.users.manage"]
            return f"{h}.{b64u_json(claims)}.{s}"
        if name == "truncated_signature":
            h, p, s = self.mint().split(".")
            return f"{h}.{p}.{s[:-12]}"
        if name == "two_segments":
            h, p, _ = self.mint().split(".")
            return f"{h}.{p}"
        if name == "four_segments":
            return self.mint() + "." + b64u(b"extra")
        if name == "bad_base64":
            h, p, s = self.mint().split(".")
            return f"{h}.{p[:10]}*!%{p[13:]}.{s}"
        if name == "oversized":
            return self.mint(pad="A" * 7_500)  # ~10 KB: over 8192, under proxies' 16 KB header limits
        raise KeyError(name)

    def attacks(self) -> dict[str, str]:
        return {name: self.attack(name) for name in ATTACKS}
