"""MockOktaOrg: an Okta org on loopback: the org authorization server's token endpoint (client
credentials with a `private_key_jwt` client assertion) and the read-only Management API the
provisioning sync uses (users, a user's groups, group members, app assignments).

    private_jwk, public_jwk = MockOktaOrg.new_client_key(kid="k1")   # MockOktaOrg.private_pem(private_jwk)
    org = MockOktaOrg("0oaSERVICEAPP", public_jwk)                    # org.org_url == org.endpoint
    uid = org.add_user("alice@example.com", "Alice", "Liddell"); gid = org.add_group("Connect agents")
    org.add_to_group(gid, uid); app = org.add_app("Amazon Connect"); org.assign_app(app, uid)
    org.set_status(uid, "SUSPENDED"); org.update_profile(uid, mobilePhone="+14155550123"); org.delete_user(uid)
    org.script([{"status": 429, "reset_in": 2}, {"path_contains": "/groups/", "status": 500},
                {"hang": 5}, {"abort": True}])                        # API faults
    org.script_token([{"status": 500}, {"status": 429, "reset_in": 2}, {"hang": 5}, {"abort": True}])
    org.token_requests(); org.api_calls("/groups/"); org.early_calls(); org.issued_tokens(); org.revoke_tokens()

Token endpoint, POST /oauth2/v1/token (form-encoded grant_type=client_credentials, scope,
client_assertion_type=...:jwt-bearer, client_assertion; no client_secret, no Authorization header).
The assertion is verified with PyJWT: RS256 only, against the client's public JWK (a `kid` in the
header must match the JWK's), iss == sub == client id, aud exactly "{org_url}/oauth2/v1/token" (a
string, not a list), exp in the future (no leeway) and at most 3600 s after iat, iat at most 60 s in
the future, a jti never seen before. Failures: 401 invalid_client with the precise reason; 400
invalid_request / unsupported_grant_type / invalid_scope for framing and scopes. Success: an opaque
access token, remembered with its expiry and scopes.

Management API (GET only, `Authorization: Bearer <token from this mock>` with the scope the
endpoint needs: okta.users.read for /users/*, okta.groups.read for /groups/*, okta.apps.read for
/apps/*; else 401 E0000011 / 403 E0000006):
    /api/v1/users/{id or login}          user object (404 E0000007 "(User)")
    /api/v1/users/{id}/groups            "Everyone" first, then the user's groups; limit <= 200
    /api/v1/groups/{gid}                 the group (404 E0000007 "(UserGroup)")
    /api/v1/apps/{appId}                 the app (404 E0000007 "(AppInstance)")
    /api/v1/groups/{gid}/users           user objects in membership order; limit <= 1000
    /api/v1/apps/{appId}/users           AppUser objects (expand=user embeds the user); limit <= 500
    /api/v1/apps/{appId}/users/{userId}  one AppUser, 404 when not assigned
Lists paginate with an opaque `after` cursor and absolute `Link: <...>; rel="self"` / `rel="next"`
headers. Every API answer carries X-Rate-Limit-Limit/-Remaining/-Reset. A scripted 429 with
`reset_in` opens a window: until X-Rate-Limit-Reset (now + reset_in, rounded up) every API call is
answered 429 too, and its record is marked `early` (the client did not honour the reset).

Records (`requests()`): time, method, path (with query), kind ("token" | "api" | "other"), status,
auth_ok, reason, early, script, and for token requests form (field names), scopes, assertion_header,
assertion_claims (decoded without verification).
"""
from __future__ import annotations

import json
import math
import re
import secrets
import string
import time
from collections import deque
from urllib.parse import parse_qs, unquote, urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm

from ._server import RecordingMock, Reply, hang
from .okta import KeyPair, b64u, b64u_decode

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EVERYONE_ID = "00geveryone0000000001"
STATUSES = {"STAGED", "PROVISIONED", "ACTIVE", "RECOVERY", "PASSWORD_EXPIRED", "LOCKED_OUT", "SUSPENDED",
            "DEPROVISIONED"}
MAX_ASSERTION_LIFETIME_S = 3600
CLOCK_SKEW_S = 60
RATE_LIMIT = 600  # X-Rate-Limit-Limit reported per minute (reported, not enforced)
# path regex -> (endpoint name, scope needed, (default limit, max limit) for lists)
API_ROUTES = [
    (re.compile(r"/api/v1/users/([^/]+)"), "user", "okta.users.read", None),
    (re.compile(r"/api/v1/users/([^/]+)/groups"), "user_groups", "okta.users.read", (200, 200)),
    (re.compile(r"/api/v1/groups/([^/]+)"), "group", "okta.groups.read", None),
    (re.compile(r"/api/v1/groups/([^/]+)/users"), "group_users", "okta.groups.read", (1000, 1000)),
    (re.compile(r"/api/v1/apps/([^/]+)"), "app", "okta.apps.read", None),
    (re.compile(r"/api/v1/apps/([^/]+)/users"), "app_users", "okta.apps.read", (50, 500)),
    (re.compile(r"/api/v1/apps/([^/]+)/users/([^/]+)"), "app_user", "okta.apps.read", None),
]


def _okta_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(17))


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def _okta_error(code: str, summary: str) -> dict:
    return {"errorCode": code, "errorSummary": summary, "errorLink": code,
            "errorId": "oae" + secrets.token_urlsafe(16).replace("-", "x").replace("_", "y"), "errorCauses": []}


class _Fail(Exception):
    """An error answer: status and body."""

    def __init__(self, status: int, body: dict, reason: str):
        super().__init__(reason)
        self.status = status
        self.body = body
        self.reason = reason


def _not_found(what: str, kind: str) -> _Fail:
    return _Fail(404, _okta_error("E0000007", f"Not found: Resource not found: {what} ({kind})"),
                 f"{kind} {what} not found")


def _oauth_fail(status: int, error: str, description: str) -> _Fail:
    return _Fail(status, {"error": error, "error_description": description}, description)


class MockOktaOrg(RecordingMock):
    def __init__(self, client_id: str, public_jwk: dict, *,
                 allowed_scopes=("okta.users.read", "okta.groups.read", "okta.apps.read"),
                 token_lifetime_s: int = 3600):
        self.client_id = client_id
        self.public_jwk = dict(public_jwk)
        self._public_key = RSAAlgorithm.from_jwk(json.dumps(self.public_jwk))
        self.allowed_scopes = set(allowed_scopes)
        self.token_lifetime_s = token_lifetime_s
        self.type_id = _okta_id("oty")
        self.created = time.time()
        self.users: dict[str, dict] = {}      # id -> {"profile", "status", timestamps, "seq"}, in creation order
        self.groups: dict[str, dict] = {}     # gid -> {"name", "members": {uid: (order, added at)}, ...}
        self.apps: dict[str, dict] = {}       # appId -> {"label", "members": {uid: (order, assigned at)}}
        self._tokens: dict[str, dict] = {}    # access token -> {"expires_at", "scopes"}
        self._jtis: set[str] = set()
        self._token_script: deque = deque()
        self._throttled_until = 0.0           # end of a scripted 429 window (epoch seconds)
        self._minute, self._minute_calls = 0, 0
        self._seq = 0                          # ordering of users, groups, memberships (cursors)
        super().__init__("MockOktaOrg")

    # ---- keys ----------------------------------------------------------------------------------
    @staticmethod
    def new_client_key(kid: str | None = None) -> tuple[dict, dict]:
        """(private JWK, public JWK) of a new RSA 2048 key, alg RS256 (kid random when not given)."""
        kp = KeyPair(kid)
        private = json.loads(RSAAlgorithm.to_jwk(kp.private))
        private.update(kid=kp.kid, alg="RS256")
        return private, kp.jwk()

    @staticmethod
    def private_pem(private_jwk: dict) -> str:
        """The private JWK as a PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----")."""
        key = RSAAlgorithm.from_jwk(json.dumps(private_jwk))
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()

    @property
    def org_url(self) -> str:
        return self.endpoint

    @property
    def token_url(self) -> str:
        return f"{self.org_url}/oauth2/v1/token"

    # ---- state -----------------------------------------------------------------------------------
    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def add_user(self, login: str, first_name: str, last_name: str, email: str | None = None,
                 status: str = "ACTIVE", id: str | None = None) -> str:
        if status not in STATUSES:
            raise ValueError(status)
        now = time.time()
        uid = id or _okta_id("00u")
        with self._lock:
            self.users[uid] = {"status": status, "created": now, "statusChanged": now, "lastUpdated": now,
                                "activated": now if status == "ACTIVE" else None, "seq": self._next(),
                                "profile": {"firstName": first_name, "lastName": last_name, "email": email or login,
                                            "login": login, "mobilePhone": None, "secondEmail": None}}
        return uid

    def set_status(self, uid: str, status: str):
        if status not in STATUSES:
            raise ValueError(status)
        now = time.time()
        with self._lock:
            u = self.users[uid]
            u.update(status=status, statusChanged=now, lastUpdated=now)
            if status == "ACTIVE" and u["activated"] is None:
                u["activated"] = now

    def update_profile(self, uid: str, **profile_fields):
        with self._lock:
            u = self.users[uid]
            u["profile"].update(profile_fields)
            u["lastUpdated"] = time.time()

    def delete_user(self, uid: str):
        """Hard delete: gone from every group and app; GET answers 404."""
        with self._lock:
            del self.users[uid]
            for coll in [*self.groups.values(), *self.apps.values()]:
                coll["members"].pop(uid, None)

    def add_group(self, name: str, id: str | None = None) -> str:
        gid = id or _okta_id("00g")
        now = time.time()
        with self._lock:
            self.groups[gid] = {"name": name, "members": {}, "created": now, "lastUpdated": now,
                                "lastMembershipUpdated": now, "seq": self._next()}
        return gid

    def add_app(self, label: str, id: str | None = None) -> str:
        app_id = id or _okta_id("0oa")
        with self._lock:
            self.apps[app_id] = {"label": label, "members": {}}
        return app_id

    def delete_group(self, gid: str):
        """The group is gone: GET /groups/{gid} and its member list answer 404."""
        with self._lock:
            del self.groups[gid]

    def delete_app(self, app_id: str):
        """The app is gone: every /apps/{app_id}... call answers 404 (as a missing assignment does)."""
        with self._lock:
            del self.apps[app_id]

    def _join(self, coll: dict, uid: str):
        """Under self._lock: membership uid -> (order, assigned at); joining twice keeps the first."""
        if uid not in self.users:
            raise KeyError(uid)
        now = time.time()
        coll["members"].setdefault(uid, (self._next(), now))
        coll["lastMembershipUpdated"] = now

    def add_to_group(self, gid: str, uid: str):
        with self._lock:
            self._join(self.groups[gid], uid)

    def remove_from_group(self, gid: str, uid: str):
        with self._lock:
            self.groups[gid]["members"].pop(uid, None)
            self.groups[gid]["lastMembershipUpdated"] = time.time()

    def assign_app(self, app_id: str, uid: str):
        with self._lock:
            self._join(self.apps[app_id], uid)

    def unassign_app(self, app_id: str, uid: str):
        with self._lock:
            self.apps[app_id]["members"].pop(uid, None)

    def user(self, uid: str) -> dict:
        """The user object as GET /api/v1/users/{id} returns it."""
        with self._lock:
            return self._user_json(uid)

    def group_members(self, gid: str) -> list[str]:
        with self._lock:
            return list(self.groups[gid]["members"])

    def app_users(self, app_id: str) -> list[str]:
        with self._lock:
            return list(self.apps[app_id]["members"])

    # ---- controls ------------------------------------------------------------------------------
    def script_token(self, entries: list[dict]):
        """Queue faults for the next token requests: {"status": 500}, {"status": 429, "reset_in": s},
        {"hang": s} (then answers normally), {"abort": True}."""
        with self._lock:
            self._token_script.extend(dict(e) for e in entries)

    def reset(self):
        """Forget records, both scripts and an open 429 window (users, groups, apps, tokens stay)."""
        super().reset()
        with self._lock:
            self._token_script.clear()
            self._throttled_until = 0.0

    def revoke_tokens(self):
        """Every issued access token becomes invalid (API calls answer 401)."""
        with self._lock:
            self._tokens.clear()

    def issued_tokens(self) -> list[dict]:
        with self._lock:
            return [{"access_token": t, **v, "scopes": list(v["scopes"])} for t, v in self._tokens.items()]

    def token_requests(self) -> list[dict]:
        return [r for r in self.requests() if r["kind"] == "token"]

    def api_calls(self, path_contains: str | None = None) -> list[dict]:
        return [r for r in self.requests()
                if r["kind"] == "api" and (path_contains is None or path_contains in r["path"])]

    def early_calls(self) -> list[dict]:
        """API calls made while a scripted 429 window was open."""
        return [r for r in self.api_calls() if r["early"]]

    # ---- JSON shapes ---------------------------------------------------------------------------
    def _user_json(self, uid: str) -> dict:
        u = self.users[uid]
        return {"id": uid, "status": u["status"], "created": _iso(u["created"]), "activated": _iso(u["activated"]),
                "statusChanged": _iso(u["statusChanged"]), "lastLogin": None, "lastUpdated": _iso(u["lastUpdated"]),
                "passwordChanged": None, "type": {"id": self.type_id}, "profile": dict(u["profile"]),
                "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
                "_links": {"self": {"href": f"{self.org_url}/api/v1/users/{uid}"}}}

    def _group_json(self, gid: str) -> dict:
        if gid == EVERYONE_ID:
            return {"id": gid, "created": _iso(self.created), "lastUpdated": _iso(self.created),
                    "lastMembershipUpdated": _iso(time.time()),
                    "objectClass": ["okta:user_group"], "type": "BUILT_IN",
                    "profile": {"name": "Everyone", "description": "All users in your organization"}, "_links": {}}
        g = self.groups[gid]
        return {"id": gid, "created": _iso(g["created"]), "lastUpdated": _iso(g["lastUpdated"]),
                "lastMembershipUpdated": _iso(g["lastMembershipUpdated"]), "objectClass": ["okta:user_group"],
                "type": "OKTA_GROUP", "profile": {"name": g["name"], "description": None}, "_links": {}}

    def _app_user_json(self, app_id: str, uid: str, expand: bool) -> dict:
        _, assigned = self.apps[app_id]["members"][uid]
        out = {"id": uid, "externalId": None, "created": _iso(assigned), "lastUpdated": _iso(assigned),
               "scope": "USER", "status": "ACTIVE", "statusChanged": _iso(assigned), "passwordChanged": None,
               "syncState": "DISABLED", "credentials": {"userName": self.users[uid]["profile"]["login"]},
               "profile": {}, "_links": {"app": {"href": f"{self.org_url}/api/v1/apps/{app_id}"},
                                         "user": {"href": f"{self.org_url}/api/v1/users/{uid}"}}}
        if expand:
            out["_embedded"] = {"user": self._user_json(uid)}
        return out

    # ---- HTTP ----------------------------------------------------------------------------------
    def _handle(self, method, path, raw_headers, body, _h) -> Reply:
        headers = {k.lower(): v for k, v in raw_headers.items()}
        path_only, _, query = path.partition("?")
        kind = "token" if path_only == "/oauth2/v1/token" else "api" if path_only.startswith("/api/") else "other"
        rec = {"time": time.time(), "method": method, "path": path, "kind": kind, "status": None,
               "auth_ok": False, "reason": None, "early": False, "script": None}
        if kind == "token":
            rec.update(form=None, scopes=None, assertion_header=None, assertion_claims=None)
        with self._lock:
            self._records.append(rec)
        if kind == "token":
            reply = self._token(method, headers, body, rec)
        elif kind == "api":
            reply = self._api(method, path_only, parse_qs(query, keep_blank_values=True), headers, rec)
        else:
            reply = Reply(404, _okta_error("E0000007", f"Not found: Resource not found: {path_only} (Resource)"))
        rec["status"] = reply.status
        return reply

    def _fault(self, entry: dict, rec: dict, rate_headers: dict) -> Reply | None:
        """A scripted fault's answer; None after a hang (the request then proceeds normally)."""
        rec["script"] = entry
        if hang(entry):
            return None
        if entry.get("abort"):
            rec["reason"] = "scripted abort"
            return Reply(0, abort=True)
        rec["reason"] = f"scripted {entry['status']}"
        if entry["status"] == 429:
            reset = math.ceil(time.time() + float(entry.get("reset_in", 1)))
            return Reply(429, _okta_error("E0000047", "API call exceeded rate limit due to too many requests."),
                         headers={"X-Rate-Limit-Limit": str(RATE_LIMIT), **rate_headers,
                                  "X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": str(reset)})
        return Reply(entry["status"], entry.get("body") or _okta_error("E0000009", "Internal Server Error"),
                     headers=rate_headers)

    # ---- token endpoint --------------------------------------------------------------------------
    def _token(self, method: str, headers: dict, body: bytes, rec: dict) -> Reply:
        entry = self.take_script(queue=self._token_script)
        if entry is not None:
            reply = self._fault(entry, rec, {})
            if reply is not None:
                return reply
        try:
            form = self._token_form(method, headers, body, rec)
            claims = self._verify_assertion(form["client_assertion"], rec)
            rec["auth_ok"] = True
            scopes = form["scope"].split()
            rec["scopes"] = scopes
            denied = [s for s in scopes if s not in self.allowed_scopes]
            if denied:
                raise _oauth_fail(400, "invalid_scope", f"The following scopes are not allowed: {' '.join(denied)}")
        except _Fail as f:
            rec["reason"] = f.reason
            return Reply(f.status, f.body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
        token = secrets.token_urlsafe(36)
        with self._lock:
            self._tokens[token] = {"expires_at": time.time() + self.token_lifetime_s, "scopes": set(scopes),
                                   "jti": claims["jti"]}
        return Reply(200, {"token_type": "Bearer", "expires_in": self.token_lifetime_s, "access_token": token,
                           "scope": " ".join(scopes)}, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _token_form(self, method: str, headers: dict, body: bytes, rec: dict) -> dict:
        if method != "POST":
            raise _oauth_fail(405, "invalid_request", f"{method} is not allowed on the token endpoint")
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise _oauth_fail(400, "invalid_request",
                              f"Content-Type {headers.get('content-type')!r} is not form-encoded")
        try:
            fields = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError) as e:
            raise _oauth_fail(400, "invalid_request", f"malformed form body: {e}")
        rec["form"] = sorted(fields)
        repeated = [k for k, v in fields.items() if len(v) > 1]
        if repeated:
            raise _oauth_fail(400, "invalid_request", f"repeated parameters {repeated}")
        form = {k: v[0] for k, v in fields.items()}
        if "authorization" in headers:
            raise _oauth_fail(400, "invalid_request", "Authorization header sent with a client assertion")
        if "client_secret" in form:
            raise _oauth_fail(400, "invalid_request", "client_secret sent with a client assertion")
        if form.get("grant_type") != "client_credentials":
            if "grant_type" not in form:
                raise _oauth_fail(400, "invalid_request", "grant_type is required")
            raise _oauth_fail(400, "unsupported_grant_type", f"grant_type {form['grant_type']!r} is not supported")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise _oauth_fail(400, "invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
        if not form.get("client_assertion"):
            raise _oauth_fail(400, "invalid_request", "client_assertion is required")
        if not form.get("scope", "").strip():
            raise _oauth_fail(400, "invalid_scope", "scope is required for client_credentials")
        if form.get("client_id", self.client_id) != self.client_id:
            raise _oauth_fail(401, "invalid_client", f"client_id {form['client_id']!r} is unknown")
        return form

    def _verify_assertion(self, assertion: str, rec: dict) -> dict:
        def fail(reason: str):
            raise _oauth_fail(401, "invalid_client", reason)

        try:
            header = jwt.get_unverified_header(assertion)
            rec["assertion_header"] = header
            rec["assertion_claims"] = json.loads(b64u_decode(assertion.split(".")[1]))
        except (jwt.PyJWTError, ValueError, IndexError) as e:
            fail(f"client_assertion is not a JWT: {e}")
        if header.get("alg") != "RS256":
            fail(f"client_assertion alg {header.get('alg')!r} is not allowed (RS256 only)")
        jwk_kid = self.public_jwk.get("kid")
        if "kid" in header and jwk_kid is not None and header["kid"] != jwk_kid:
            fail(f"client_assertion kid {header['kid']!r} does not match the client's key {jwk_kid!r}")
        try:
            claims = jwt.decode(assertion, self._public_key, algorithms=["RS256"], audience=self.token_url,
                                leeway=0, options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"],
                                                   "verify_iat": False, "verify_nbf": False, "strict_aud": True})
        except jwt.InvalidSignatureError:
            fail("client_assertion signature does not verify with the client's key")
        except jwt.ExpiredSignatureError:
            fail("client_assertion has expired")
        except jwt.InvalidAudienceError as e:
            fail(f"client_assertion aud must be exactly {self.token_url!r}: {e}")
        except jwt.MissingRequiredClaimError as e:
            fail(f"client_assertion lacks the {e.claim!r} claim")
        except jwt.PyJWTError as e:
            fail(f"client_assertion rejected: {e}")
        now = time.time()
        if claims["iss"] != self.client_id:
            fail(f"client_assertion iss {claims['iss']!r} != client id {self.client_id!r}")
        if claims["sub"] != self.client_id:
            fail(f"client_assertion sub {claims['sub']!r} != client id {self.client_id!r}")
        iat = claims["iat"]
        if not isinstance(iat, (int, float)) or isinstance(iat, bool):
            fail("client_assertion iat is not a number")
        if iat > now + CLOCK_SKEW_S:
            fail(f"client_assertion iat is {iat - now:.0f} s in the future")
        if claims["exp"] - iat > MAX_ASSERTION_LIFETIME_S:
            fail(f"client_assertion lifetime exp - iat = {claims['exp'] - iat:.0f} s > {MAX_ASSERTION_LIFETIME_S} s")
        if "nbf" in claims and claims["nbf"] > now + CLOCK_SKEW_S:
            fail("client_assertion is not valid yet (nbf)")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            fail("client_assertion jti must be a non-empty string")
        with self._lock:
            if jti in self._jtis:
                fail(f"client_assertion jti {jti!r} was already used (replay)")
            self._jtis.add(jti)
        return claims

    # ---- Management API ------------------------------------------------------------------------
    def _rate_headers(self, now: float) -> dict:
        """Under self._lock: the per-minute rate-limit headers, counting this call."""
        minute = int(now // 60) * 60
        if minute != self._minute:
            self._minute, self._minute_calls = minute, 0
        self._minute_calls += 1
        return {"X-Rate-Limit-Limit": str(RATE_LIMIT),
                "X-Rate-Limit-Remaining": str(max(0, RATE_LIMIT - self._minute_calls)),
                "X-Rate-Limit-Reset": str(minute + 60)}

    def _api(self, method: str, path: str, query: dict, headers: dict, rec: dict) -> Reply:
        now = time.time()
        with self._lock:
            rate = self._rate_headers(now)
            throttled_until = self._throttled_until
        if method != "GET":
            rec["reason"] = f"{method} not allowed"
            return Reply(405, _okta_error("E0000022", "The endpoint does not support the provided HTTP method"),
                         headers=rate)
        if now < throttled_until:
            rec.update(early=True, reason="inside a 429 window")
            return Reply(429, _okta_error("E0000047", "API call exceeded rate limit due to too many requests."),
                         headers=dict(rate, **{"X-Rate-Limit-Remaining": "0",
                                               "X-Rate-Limit-Reset": str(int(throttled_until))}))
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        with self._lock:
            grant = self._tokens.get(token) if scheme == "Bearer" else None
        if grant is None or grant["expires_at"] <= now:
            rec["reason"] = ("no Bearer token" if scheme != "Bearer" else
                             "unknown token" if grant is None else "expired token")
            return Reply(401, _okta_error("E0000011", "Invalid token provided"), headers=rate)
        rec["auth_ok"] = True

        entry = self.take_script(lambda e: e.get("path_contains", "") in path)
        if entry is not None:
            reply = self._fault(entry, rec, rate)
            if reply is not None:
                if reply.status == 429:
                    with self._lock:
                        self._throttled_until = float(reply.headers["X-Rate-Limit-Reset"])
                return reply
        try:
            with self._lock:
                body, links = self._route(path, query, grant["scopes"])
        except _Fail as f:
            rec["reason"] = f.reason
            return Reply(f.status, f.body, headers=rate)
        extra = [("Link", f'<{url}>; rel="{rel}"') for rel, url in links]
        return Reply(200, body, headers=rate, extra_headers=extra)

    def _route(self, path: str, query: dict, scopes: set) -> tuple[object, list]:
        """Under self._lock: (JSON body, [(rel, url)] links) for an authenticated GET."""
        for rx, name, scope, limits in API_ROUTES:
            m = rx.fullmatch(path)
            if m is None:
                continue
            if scope not in scopes:
                raise _Fail(403, _okta_error("E0000006", "You do not have permission to perform the requested action"),
                            f"token lacks {scope}")
            args = [unquote(g) for g in m.groups()]
            if limits is None:
                return getattr(self, f"_get_{name}")(*args), []
            items = getattr(self, f"_list_{name}")(*args, query)    # [(order, build json)]
            return self._paginate(path, query, items, limits)
        raise _Fail(404, _okta_error("E0000007", f"Not found: Resource not found: {path} (Resource)"),
                    f"no endpoint {path}")

    def _paginate(self, path: str, query: dict, items: list, limits: tuple[int, int]) -> tuple[list, list]:
        default, cap = limits
        params = {k: v[-1] for k, v in query.items()}
        try:
            limit = min(cap, int(params.get("limit", default)))
            after = int(b64u_decode(params["after"]).decode()) if "after" in params else -1
        except ValueError:
            raise _Fail(400, _okta_error("E0000001", "Api validation failed: limit/after"), "bad limit or after")
        if limit < 1:
            raise _Fail(400, _okta_error("E0000001", "Api validation failed: limit"), "limit < 1")
        rest = [(order, build) for order, build in sorted(items, key=lambda i: i[0]) if order > after]
        page = rest[:limit]
        base = f"{self.org_url}{path}"
        links = [("self", f"{base}?{urlencode(params)}" if params else base)]
        if len(rest) > limit:
            cursor = b64u(str(page[-1][0]).encode())
            links.append(("next", f"{base}?{urlencode(dict(params, limit=str(limit), after=cursor))}"))
        return [build() for _, build in page], links

    def _find_user(self, key: str) -> str:
        if key in self.users:
            return key
        uid = next((uid for uid, u in self.users.items() if u["profile"]["login"].lower() == key.lower()), None)
        if uid is None:
            raise _not_found(key, "User")
        return uid

    def _get_user(self, key: str) -> dict:
        return self._user_json(self._find_user(key))

    def _list_user_groups(self, key: str, _query: dict) -> list:
        uid = self._find_user(key)
        items = [(0, lambda: self._group_json(EVERYONE_ID))]
        items += [(g["seq"], lambda gid=gid: self._group_json(gid))
                  for gid, g in self.groups.items() if uid in g["members"]]
        return items

    def _get_group(self, gid: str) -> dict:
        if gid != EVERYONE_ID and gid not in self.groups:
            raise _not_found(gid, "UserGroup")
        return self._group_json(gid)

    def _get_app(self, app_id: str) -> dict:
        if app_id not in self.apps:
            raise _not_found(app_id, "AppInstance")
        return {"id": app_id, "name": "amazon_connect", "label": self.apps[app_id]["label"], "status": "ACTIVE",
                "signOnMode": "SAML_2_0", "_links": {"self": {"href": f"{self.org_url}/api/v1/apps/{app_id}"}}}

    def _list_group_users(self, gid: str, _query: dict) -> list:
        if gid == EVERYONE_ID:
            return [(u["seq"], lambda uid=uid: self._user_json(uid)) for uid, u in self.users.items()]
        if gid not in self.groups:
            raise _not_found(gid, "UserGroup")
        return [(order, lambda uid=uid: self._user_json(uid))
                for uid, (order, _) in self.groups[gid]["members"].items()]

    def _list_app_users(self, app_id: str, query: dict) -> list:
        if app_id not in self.apps:
            raise _not_found(app_id, "AppInstance")
        expand = "user" in query.get("expand", [])
        return [(order, lambda uid=uid: self._app_user_json(app_id, uid, expand))
                for uid, (order, _) in self.apps[app_id]["members"].items()]

    def _get_app_user(self, app_id: str, uid: str) -> dict:
        if app_id not in self.apps:
            raise _not_found(app_id, "AppInstance")
        if uid not in self.apps[app_id]["members"]:
            raise _not_found(uid, "AppUser")
        return self._app_user_json(app_id, uid, False)
