"""MockConnect: Amazon Connect (restJson1) on loopback, for the user-provisioning operations.

    connect = MockConnect(access_key, secret_key, session_token=None, region="us-east-1",
                          instance_id=INSTANCE, security_profiles={"sp-agent"}, routing_profiles={"rp-basic"})
    connect.add_user("legacy.agent", tags={"owner": "someone-else"})        # an unmanaged user -> Id
    connect.script([{"type": "ThrottlingException"}, {"op": "CreateUser", "type": "InternalServiceException"},
                    {"type": "DuplicateResourceException", "apply": True},   # performed, answered 409 anyway
                    {"status": 500, "raw": "<html>oops</html>"}, {"abort": True},
                    {"hang": 5}])                                          # sleeps, then answers normally
    connect.users(); connect.user_by_username("alice"); connect.calls("CreateUser"); connect.writes()
    connect.rejected(); connect.requests(); connect.reset()

Every request is checked the way AWS would, independently of the Worker's code:
  * SigV4 (`mocks.aws.verify_sigv4`, signing name `connect`), on the URL exactly as received, so a
    percent-encoded label (TagResource's ARN) must be signed the way AWS canonicalises it;
  * routing by botocore's `connect` model: method + `requestUri` template of every operation;
  * the operation's input, assembled from URI labels, query string, headers and the JSON body
    (Content-Type application/json), against the model (`mocks.aws.validate_params`, incl. the
    length/range/enum/pattern constraints botocore skips). The model's broken patterns are repaired
    first (see `_fixed_pattern`);
  * usernames as Connect accepts them with SAML identity management: up to 64 of [a-zA-Z0-9_-.@].
Then the FIFO of scripted faults (the first entry whose "op", if any, matches), or the operation.

`saml=True` (constructor, or set `connect.saml` at any time) makes it an instance with SAML
identity management, as the CreateUser/UserIdentityInfo documentation describes it; by default
(False) none of this is checked:
  * CreateUser and UpdateUserIdentityInfo need IdentityInfo.FirstName and .LastName, non-empty and
    in Unicode NFC ("text containing characters in a non-NFC form ... [is] not accepted");
  * IdentityInfo.Email, Password and DirectoryUserId are errors with SAML;
  * the Username's `@` only in an e-mail form: once, a local part, a domain with a dot
    ("testuser@example" is refused);
all answered 400 InvalidRequestException (outcome "error", nothing stored).

Implemented: CreateUser, DescribeUser, SearchUsers, ListUsers, UpdateUserSecurityProfiles,
UpdateUserRoutingProfile, UpdateUserIdentityInfo, UpdateUserPhoneConfig, DeleteUser, TagResource,
UntagResource. Any other operation of the model is answered 400 InvalidRequestException.

Deliberately adversarial: SearchUsers' StringCondition matches case-INSENSITIVELY, for EXACT too.
The real service's case behaviour is undocumented; usernames are case-sensitive in Connect (CreateUser
of "Alice" next to "alice" succeeds, as here), so a client must compare the usernames it gets back
exactly itself. Tag filters match exactly.

Records (`requests()`): time, method, path, headers (lower-case), body, op, params, signature_ok,
signature_error, model_errors, status, error_type, outcome ("ok" | "error" | "rejected" | "aborted"),
applied (the operation ran and succeeded), script (the entry used).
"""
from __future__ import annotations

import copy
import json
import re
import secrets
import time
import unicodedata
import uuid
from urllib.parse import parse_qs, unquote

import botocore.model
import botocore.session

from ._server import Reply, fault_reply, hang
from .aws import SigV4Mock, model_status, validate_params

JSON_CT = "application/json"
USERNAME_RE = re.compile(r"[a-zA-Z0-9_\-.@]{1,64}")
# With SAML, `@` only in an e-mail form: local@domain.tld (each dot-separated label non-empty).
SAML_EMAIL_FORM_RE = re.compile(r"[a-zA-Z0-9_\-.]+@[a-zA-Z0-9_\-]+(\.[a-zA-Z0-9_\-]+)+")
SEARCH_FIELDS = {"Username", "FirstName", "LastName", "RoutingProfileId", "SecurityProfileId",
                 "resourceId", "ResourceId"}
DEFAULT_PHONE_CONFIG = {"PhoneType": "SOFT_PHONE", "AutoAccept": False, "AfterContactWorkTimeLimit": 0}


def _fixed_pattern(pattern: str) -> str:
    """The connect model's patterns as the service means them: some are JavaScript literals
    (`/^...$/`), some doubly escaped (`\\\\+[1-9]\\\\d{1,14}$`: a literal backslash for Python), and
    some use Unicode classes Python's `re` lacks: `\\p{L}`/`\\p{N}` become `\\w`, `\\p{Z}` becomes `\\s`
    (close enough for tag keys; patterns that still do not compile are skipped by the validator)."""
    if len(pattern) > 1 and pattern.startswith("/") and pattern.endswith("/"):
        pattern = pattern[1:-1]
    pattern = pattern.replace("\\\\", "\\")
    return pattern.replace(r"\p{L}", r"\w").replace(r"\p{N}", r"\w").replace(r"\p{Z}", r"\s")


def _load_model() -> botocore.model.ServiceModel:
    data = copy.deepcopy(botocore.session.get_session().get_service_data("connect"))
    for shape in data["shapes"].values():
        if "pattern" in shape:
            shape["pattern"] = _fixed_pattern(shape["pattern"])
    return botocore.model.ServiceModel(data, service_name="connect")


CONNECT_MODEL = _load_model()
SIGNING_NAME = CONNECT_MODEL.metadata["signingName"]     # connect
USER_SHAPE = CONNECT_MODEL.shape_for("User")


class _Route:
    """One operation's `http.requestUri` template as a regex over the raw (still encoded) path:
    `{Label}` is one segment, `{Label+}` any run of segments; a `?key[=value]` part must be present."""

    def __init__(self, op: str, method: str, request_uri: str):
        self.op = op
        self.method = method
        path_t, _, query_t = request_uri.partition("?")
        self.query = {k: v for k, v in (q.partition("=")[::2] for q in query_t.split("&") if q)}
        self.labels: list[str] = []
        rx, self.literal = "", 0
        for part in re.split(r"(\{[^}]+\})", path_t):
            if part.startswith("{"):
                greedy = part.endswith("+}")
                self.labels.append(part[1:-2] if greedy else part[1:-1])
                rx += "(.+)" if greedy else "([^/]+)"
            else:
                rx += re.escape(part)
                self.literal += len(part)
        self.rx = re.compile(rx)

    def match(self, method: str, path: str, query: dict[str, list[str]]) -> dict[str, str] | None:
        if method != self.method:
            return None
        m = self.rx.fullmatch(path)
        if m is None or any(k not in query or (v and v not in query[k]) for k, v in self.query.items()):
            return None
        return {name: unquote(value) for name, value in zip(self.labels, m.groups())}


# most specific first: required query keys, then literal characters, then fewer labels
ROUTES = sorted((_Route(name, CONNECT_MODEL.operation_model(name).http["method"],
                        CONNECT_MODEL.operation_model(name).http["requestUri"])
                 for name in CONNECT_MODEL.operation_names),
                key=lambda r: (-len(r.query), -r.literal, len(r.labels)))


def _coerce(values: list[str], shape, name: str, problems: list[str]):
    """A query-string or header value as its model type (lists take every occurrence)."""
    if shape.type_name == "list":
        return [_coerce([v], shape.member, name, problems) for v in values]
    value = values[-1]
    if shape.type_name in ("integer", "long"):
        try:
            return int(value)
        except ValueError:
            problems.append(f"{name}: {value!r} is not an integer")
            return value
    if shape.type_name == "boolean":
        if value not in ("true", "false"):
            problems.append(f"{name}: {value!r} is not a boolean")
        return value == "true"
    return value


def _is_read(op: str) -> bool:
    return op.startswith(("Describe", "Search", "List", "Get"))


class _Fail(Exception):
    """An operation's own error answer (e.g. ResourceNotFoundException)."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class MockConnect(SigV4Mock):
    def __init__(self, access_key: str, secret_key: str, session_token: str | None = None, *,
                 region: str = "us-east-1", instance_id: str = "11111111-2222-3333-4444-555555555555",
                 account: str = "111122223333", security_profiles=None, routing_profiles=None,
                 max_skew_s: int = 300, saml: bool = False):
        self.instance_id = instance_id
        self.saml = saml                       # SAML identity management rules (see the module doc)
        self.account = account
        self.security_profiles = set(security_profiles) if security_profiles is not None else None
        self.routing_profiles = set(routing_profiles) if routing_profiles is not None else None
        self._users: dict[str, dict] = {}      # Id -> user, in creation order
        self._seq: dict[str, int] = {}         # Id -> creation sequence number (pagination)
        self._next_seq = 0
        self._page_tokens: dict[str, tuple] = {}   # NextToken -> (op, query fingerprint, last seq)
        super().__init__("MockConnect", access_key, secret_key, session_token, region, SIGNING_NAME, max_skew_s)

    # ---- state -------------------------------------------------------------------------------
    def arn(self, user_id: str) -> str:
        return f"arn:aws:connect:{self.region}:{self.account}:instance/{self.instance_id}/agent/{user_id}"

    def users(self) -> list[dict]:
        with self._lock:
            return [copy.deepcopy(u) for u in self._users.values()]

    def user_by_username(self, username: str) -> dict | None:
        """The user with exactly this (case-sensitive) username, or None."""
        return next((u for u in self.users() if u["Username"] == username), None)

    def add_user(self, username: str, *, tags: dict | None = None, security_profile_ids=None,
                 routing_profile_id: str | None = None, first_name: str = "X", last_name: str = "Y") -> str:
        """Creates a user directly (no request, no profile checks), e.g. one the Worker does not manage."""
        with self._lock:
            return self._store({"Username": username, "IdentityInfo": {"FirstName": first_name, "LastName": last_name},
                                "SecurityProfileIds": list(security_profile_ids or ["mock-security-profile"]),
                                "RoutingProfileId": routing_profile_id or "mock-routing-profile",
                                "Tags": dict(tags or {})})

    def _store(self, fields: dict) -> str:
        """Under self._lock: a new user from the User-shape fields given."""
        user_id = str(uuid.uuid4())
        user = {"Id": user_id, "Arn": self.arn(user_id), "PhoneConfig": dict(DEFAULT_PHONE_CONFIG), "Tags": {}}
        user.update(copy.deepcopy(fields))
        self._users[user_id] = user
        self._seq[user_id] = self._next_seq
        self._next_seq += 1
        self._touch(user)
        return user_id

    def _touch(self, user: dict):
        user["LastModifiedTime"] = time.time()
        user["LastModifiedRegion"] = self.region

    # ---- records -----------------------------------------------------------------------------
    def calls(self, op: str | None = None) -> list[dict]:
        """Accepted calls (signature and model valid), optionally of one operation."""
        return [r for r in self.requests() if r["outcome"] != "rejected" and (op is None or r["op"] == op)]

    def writes(self) -> list[dict]:
        """Accepted calls of mutating operations."""
        return [r for r in self.calls() if not _is_read(r["op"])]

    def rejected(self) -> list[dict]:
        return [r for r in self.requests() if r["outcome"] == "rejected"]

    # ---- HTTP --------------------------------------------------------------------------------
    @staticmethod
    def _error(error_type: str, message: str, status: int | None = None) -> Reply:
        return Reply(status or model_status(error_type, CONNECT_MODEL), {"Message": message},
                     headers={"x-amzn-ErrorType": error_type, "x-amzn-RequestId": str(uuid.uuid4())})

    @staticmethod
    def _ok(body: dict | None) -> Reply:
        return Reply(200, body if body is not None else b"", headers={"x-amzn-RequestId": str(uuid.uuid4())},
                     content_type=JSON_CT)

    def _handle(self, method, path, raw_headers, body, _h) -> Reply:
        headers = {k.lower(): v for k, v in raw_headers.items()}
        rec = {"time": time.time(), "method": method, "path": path, "headers": headers, "body": body,
               "op": None, "params": None, "signature_ok": False, "signature_error": None,
               "model_errors": [], "status": None, "error_type": None, "outcome": None,
               "applied": False, "script": None}
        with self._lock:
            self._records.append(rec)

        def finish(reply: Reply, outcome: str) -> Reply:
            rec["status"] = reply.status
            rec["error_type"] = reply.headers.get("x-amzn-ErrorType")
            rec["outcome"] = outcome
            return reply

        ok, why, _info = self.verify_signature(method, path, headers, body)
        rec["signature_ok"] = ok
        rec["signature_error"] = why
        if not ok:
            return finish(self._error("InvalidSignatureException", why, 403), "rejected")

        raw_path, _, raw_query = path.partition("?")
        query = parse_qs(raw_query, keep_blank_values=True)
        route, labels = next(((r, m) for r in ROUTES if (m := r.match(method, raw_path, query)) is not None),
                             (None, None))
        if route is None:
            return finish(self._error("UnknownOperationException", f"no operation for {method} {raw_path}", 404),
                          "rejected")
        rec["op"] = route.op
        params, problems = self._params(route.op, labels, query, headers, body)
        rec["params"] = params
        if params is not None and not problems:
            problems = validate_params(route.op, params, model=CONNECT_MODEL)
        if problems:
            rec["model_errors"] = problems
            error_type = "InvalidRequestException" if params is None else "InvalidParameterException"
            return finish(self._error(error_type, "; ".join(problems)), "rejected")

        entry = self.take_script(lambda e: e.get("op") in (None, route.op))
        rec["script"] = entry
        return self._answer(entry, route.op, params, rec, finish)

    def _params(self, op_name: str, labels: dict, query: dict, headers: dict, body: bytes):
        """(params, problems) for the operation; params is None when the body cannot be read."""
        shape = CONNECT_MODEL.operation_model(op_name).input_shape
        members = shape.members if shape is not None else {}
        params, problems, body_members = {}, [], set()
        for name, member in members.items():
            location = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if location == "uri":
                params[name] = _coerce([labels[wire]], member, name, problems)
            elif location == "querystring" and wire in query:
                params[name] = _coerce(query[wire], member, name, problems)
            elif location == "header" and wire.lower() in headers:
                params[name] = _coerce([headers[wire.lower()]], member, name, problems)
            elif location is None:
                body_members.add(name)
        if not body:
            return params, problems
        if not body_members:
            return None, [f"{op_name} takes no body"]
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != JSON_CT:
            return None, [f"Content-Type {headers.get('content-type')!r} != {JSON_CT!r}"]
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return None, [f"body is not JSON: {e}"]
        if not isinstance(doc, dict):
            return None, ["body is not a JSON object"]
        problems.extend(f"{k} belongs in the {members[k].serialization['location']}, not the body"
                        for k in doc if k in members and k not in body_members)
        params.update({k: v for k, v in doc.items() if k not in params})
        return params, problems

    def _answer(self, entry: dict | None, op: str, params: dict, rec: dict, finish) -> Reply:
        if entry is not None and hang(entry):
            entry = None
        if entry is None or entry.get("apply"):
            with self._lock:
                try:
                    handler = getattr(self, f"_op_{op}", None)
                    if handler is None:
                        raise _Fail("InvalidRequestException", f"MockConnect does not implement {op}")
                    out = handler(params)
                    rec["applied"] = True
                    reply, outcome = self._ok(out), "ok"
                except _Fail as f:
                    reply, outcome = self._error(f.error_type, f.message), "error"
            if entry is None:
                return finish(reply, outcome)
        error = lambda e: self._error(e["type"], e.get("message", f"injected {e['type']}"), e.get("status"))  # noqa: E731
        return finish(*fault_reply(entry, error, raw_status=500, raw_type="text/html"))

    # ---- operations (called under self._lock with validated params) --------------------------
    def _instance(self, params: dict):
        if params["InstanceId"] != self.instance_id:
            raise _Fail("ResourceNotFoundException", f"instance {params['InstanceId']} not found")

    def _user(self, params: dict) -> dict:
        self._instance(params)
        user = self._users.get(params["UserId"])
        if user is None:
            raise _Fail("ResourceNotFoundException", f"user {params['UserId']} not found")
        return user

    def _check_profiles(self, params: dict):
        unknown = [p for p in params.get("SecurityProfileIds", [])
                   if self.security_profiles is not None and p not in self.security_profiles]
        if unknown:
            raise _Fail("InvalidParameterException", f"unknown security profile(s) {unknown}")
        rp = params.get("RoutingProfileId")
        if rp is not None and self.routing_profiles is not None and rp not in self.routing_profiles:
            raise _Fail("InvalidParameterException", f"unknown routing profile {rp}")

    def _check_saml_identity(self, info: dict | None):
        """With SAML: FirstName and LastName required, in NFC; Email refused."""
        if not self.saml:
            return
        info = info or {}
        for field in ("FirstName", "LastName"):
            value = info.get(field)
            if not value:
                raise _Fail("InvalidRequestException", f"IdentityInfo.{field} is required with SAML identity management")
            if not unicodedata.is_normalized("NFC", value):
                raise _Fail("InvalidRequestException", f"IdentityInfo.{field} must be in Unicode Normalization Form C")
        if "Email" in info:
            raise _Fail("InvalidRequestException", "IdentityInfo.Email is not allowed with SAML identity management")

    def _op_CreateUser(self, p: dict) -> dict:
        self._instance(p)
        if not USERNAME_RE.fullmatch(p["Username"]):
            raise _Fail("InvalidParameterException", f"Username {p['Username']!r}: up to 64 of [a-zA-Z0-9_-.@]")
        if self.saml:
            if "@" in p["Username"] and not SAML_EMAIL_FORM_RE.fullmatch(p["Username"]):
                raise _Fail("InvalidRequestException", f"Username {p['Username']!r}: @ only in an e-mail form")
            for field in ("Password", "DirectoryUserId"):
                if field in p:
                    raise _Fail("InvalidRequestException", f"{field} is not allowed with SAML identity management")
        self._check_saml_identity(p.get("IdentityInfo"))
        self._check_profiles(p)
        if any(u["Username"] == p["Username"] for u in self._users.values()):
            raise _Fail("DuplicateResourceException", f"User with username {p['Username']} already exists")
        user_id = self._store({k: v for k, v in p.items() if k in USER_SHAPE.members})
        return {"UserId": user_id, "UserArn": self.arn(user_id)}

    def _op_DescribeUser(self, p: dict) -> dict:
        return {"User": copy.deepcopy(self._user(p))}

    def _op_DeleteUser(self, p: dict) -> None:
        user = self._user(p)
        del self._users[user["Id"]]
        del self._seq[user["Id"]]

    def _update(self, p: dict, field: str) -> None:
        user = self._user(p)
        self._check_profiles(p)
        user[field] = copy.deepcopy(p[field])
        self._touch(user)

    def _op_UpdateUserSecurityProfiles(self, p: dict) -> None:
        self._update(p, "SecurityProfileIds")

    def _op_UpdateUserRoutingProfile(self, p: dict) -> None:
        self._update(p, "RoutingProfileId")

    def _op_UpdateUserIdentityInfo(self, p: dict) -> None:
        self._user(p)
        self._check_saml_identity(p.get("IdentityInfo"))
        self._update(p, "IdentityInfo")

    def _op_UpdateUserPhoneConfig(self, p: dict) -> None:
        self._update(p, "PhoneConfig")

    def _by_arn(self, arn: str) -> dict:
        user = next((u for u in self._users.values() if u["Arn"] == arn), None)
        if user is None:
            raise _Fail("ResourceNotFoundException", f"resource {arn} not found")
        return user

    def _op_TagResource(self, p: dict) -> None:
        user = self._by_arn(p["resourceArn"])
        user["Tags"].update(p["tags"])
        self._touch(user)

    def _op_UntagResource(self, p: dict) -> None:
        user = self._by_arn(p["resourceArn"])
        for key in p["tagKeys"]:
            user["Tags"].pop(key, None)
        self._touch(user)

    def _page(self, op: str, fingerprint, matches: list[dict], max_results: int, token: str | None):
        """(page, NextToken or None) over users in creation order; tokens are opaque and bound to the query."""
        after = -1
        if token is not None:
            saved = self._page_tokens.get(token)
            if saved is None or saved[:2] != (op, fingerprint):
                raise _Fail("InvalidRequestException", "invalid NextToken")
            after = saved[2]
        rest = [u for u in matches if self._seq[u["Id"]] > after]
        page = rest[:max_results]
        if len(rest) <= max_results:
            return page, None
        nxt = secrets.token_urlsafe(48)
        self._page_tokens[nxt] = (op, fingerprint, self._seq[page[-1]["Id"]])
        return page, nxt

    def _op_ListUsers(self, p: dict) -> dict:
        self._instance(p)
        page, nxt = self._page("ListUsers", None, list(self._users.values()), p.get("MaxResults", 100),
                               p.get("NextToken"))
        out = {"UserSummaryList": [{k: u[k] for k in ("Id", "Arn", "Username", "LastModifiedTime",
                                                       "LastModifiedRegion")} for u in page]}
        if nxt:
            out["NextToken"] = nxt
        return out

    def _op_SearchUsers(self, p: dict) -> dict:
        self._instance(p)
        criteria, search_filter = p.get("SearchCriteria"), p.get("SearchFilter") or {}
        if set(search_filter) - {"TagFilter"}:
            raise _Fail("InvalidParameterException", "MockConnect supports SearchFilter.TagFilter only")
        matches = [u for u in self._users.values()
                   if (criteria is None or self._criteria(u, criteria))
                   and self._tag_filter(u, search_filter.get("TagFilter") or {})]
        fingerprint = json.dumps([criteria, search_filter], sort_keys=True)
        page, nxt = self._page("SearchUsers", fingerprint, matches, p.get("MaxResults", 100), p.get("NextToken"))
        out = {"Users": [{"Arn": u["Arn"], "Id": u["Id"], "Username": u["Username"],
                          "IdentityInfo": {k: v for k, v in u.get("IdentityInfo", {}).items()
                                           if k in ("FirstName", "LastName")},
                          "PhoneConfig": copy.deepcopy(u["PhoneConfig"]), "RoutingProfileId": u["RoutingProfileId"],
                          "SecurityProfileIds": list(u["SecurityProfileIds"]), "Tags": dict(u["Tags"])}
                         for u in page],
               "ApproximateTotalCount": len(matches)}
        if nxt:
            out["NextToken"] = nxt
        return out

    def _criteria(self, user: dict, c: dict) -> bool:
        """UserSearchCriteria: every condition present must hold; String conditions ignore case."""
        unsupported = set(c) - {"OrConditions", "AndConditions", "StringCondition"}
        if unsupported:
            raise _Fail("InvalidParameterException", f"MockConnect does not support {sorted(unsupported)}")
        if "OrConditions" in c and not any(self._criteria(user, sub) for sub in c["OrConditions"]):
            return False
        if "AndConditions" in c and not all(self._criteria(user, sub) for sub in c["AndConditions"]):
            return False
        if "StringCondition" in c:
            return self._string_condition(user, c["StringCondition"])
        return True

    @staticmethod
    def _string_condition(user: dict, sc: dict) -> bool:
        field, value, how = sc.get("FieldName"), sc.get("Value"), sc.get("ComparisonType")
        if field not in SEARCH_FIELDS or value is None or how is None:
            raise _Fail("InvalidParameterException", f"StringCondition needs FieldName (one of "
                                                      f"{sorted(SEARCH_FIELDS)}), Value and ComparisonType")
        candidates = {"Username": [user["Username"]],
                      "FirstName": [user.get("IdentityInfo", {}).get("FirstName", "")],
                      "LastName": [user.get("IdentityInfo", {}).get("LastName", "")],
                      "RoutingProfileId": [user["RoutingProfileId"]],
                      "SecurityProfileId": user["SecurityProfileIds"]}.get(field, [user["Id"]])
        v = value.casefold()
        test = {"EXACT": lambda s: s == v, "STARTS_WITH": lambda s: s.startswith(v),
                "CONTAINS": lambda s: v in s}[how]
        return any(test(s.casefold()) for s in candidates)

    @staticmethod
    def _tag_filter(user: dict, tf: dict) -> bool:
        """ControlPlaneTagFilter: TagCondition, AndConditions (all), OrConditions (any of the AND-lists)."""
        def has(cond: dict) -> bool:
            return cond.get("TagKey") in user["Tags"] and ("TagValue" not in cond
                                                           or user["Tags"][cond["TagKey"]] == cond["TagValue"])
        return ((("TagCondition" not in tf) or has(tf["TagCondition"]))
                and all(has(c) for c in tf.get("AndConditions", []))
                and ("OrConditions" not in tf or any(all(has(c) for c in group) for group in tf["OrConditions"])))
