"""MockMessaging: AWS End User Messaging SMS & Voice v2 (`pinpoint-sms-voice-v2`) on loopback.

Every POST is checked the way AWS would, with implementations independent of the Worker's:
  * SigV4, recomputed with botocore from the method, URL, body and only the signed headers;
  * awsJson1_0 framing (Content-Type, X-Amz-Target) and the request body against botocore's
    service model (ParamValidator, plus the length/range/enum/pattern constraints it skips).
Then it answers from a FIFO of scripted faults, or with success `{"MessageId": <uuid>}`.

    aws = MockMessaging(access_key, secret_key, session_token=None)
    aws.script([{"type": "ThrottlingException"}, {"hang": 10}, {"status": 500, "raw": "<html>oops</html>"},
                {"abort": True}, {"type": "ConflictException", "body": {"Reason": "..."}},
                {"delay": 0.3, "ok": True},    # sleep 0.3 s, then answer the rest of the entry as usual
                {"stall_body": 10}])           # 200 + headers + half the body, then 10 s of silence
    aws.requests(); aws.messages(); aws.reset()
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import re
import time
import uuid

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.validate import ParamValidator

from ._server import RecordingMock, Reply, fault_reply, hang

SERVICE_MODEL_NAME = "pinpoint-sms-voice-v2"
JSON_CT = "application/x-amz-json-1.0"

_session = botocore.session.get_session()
MODEL = _session.get_service_model(SERVICE_MODEL_NAME)
TARGET_PREFIX = MODEL.metadata["targetPrefix"]          # PinpointSMSVoiceV2
SIGNING_NAME = MODEL.metadata["signingName"]             # sms-voice


def model_status(error_type: str, model=None) -> int:
    """HTTP status for an exception shape of `model` (default: pinpoint-sms-voice-v2): its
    `error.httpStatusCode` trait when the model has one; otherwise the awsJson1_0 default: 500 for
    `fault` shapes, 400 for client errors. (pinpoint-sms-voice-v2 carries no httpStatusCode on any of
    its exceptions.)"""
    try:
        shape = (model or MODEL).shape_for(error_type)
    except Exception:
        return 400
    meta = shape.metadata
    err = meta.get("error") or {}
    if err.get("httpStatusCode"):
        return int(err["httpStatusCode"])
    return 500 if meta.get("fault") or getattr(shape, "_shape_model", {}).get("fault") else 400


def _strict_errors(value, shape, path: str, out: list[str]):
    """Constraints botocore's ParamValidator does not enforce: max lengths/ranges, enums, patterns
    Patterns are matched against the whole value (re.fullmatch), as AWS's validators do: the model's
    patterns carry no anchors yet describe whole values (e.g. PhoneNumber `\\+?[1-9][0-9]{1,18}`)."""
    meta = shape.metadata
    t = shape.type_name
    if t == "structure" and isinstance(value, dict):
        for name, sub in shape.members.items():
            if name in value:
                _strict_errors(value[name], sub, f"{path}.{name}", out)
    elif t == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            out.append(f"{path}: list length {len(value)} > max {meta['max']}")
        for i, v in enumerate(value):
            _strict_errors(v, shape.member, f"{path}[{i}]", out)
    elif t == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            out.append(f"{path}: map size {len(value)} > max {meta['max']}")
        for k, v in value.items():
            _strict_errors(k, shape.key, f"{path} key {k!r}", out)
            _strict_errors(v, shape.value, f"{path}[{k!r}]", out)
    elif t == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            out.append(f"{path}: length {len(value)} > max {meta['max']}")
        if shape.enum and value not in shape.enum:
            out.append(f"{path}: {value!r} not in enum {shape.enum}")
        pat = meta.get("pattern")
        if pat:
            try:
                rx = re.compile(pat)
            except re.error:
                rx = None
            if rx is not None and not rx.fullmatch(value):
                out.append(f"{path}: {value!r} does not match pattern {pat!r}")
    elif t in ("integer", "long") and isinstance(value, int) and not isinstance(value, bool):
        if "max" in meta and value > meta["max"]:
            out.append(f"{path}: {value} > max {meta['max']}")


def validate_params(op_name: str, params, model=None) -> list[str]:
    """Errors of `params` against operation `op_name` of `model` (default: pinpoint-sms-voice-v2)."""
    op = (model or MODEL).operation_model(op_name)
    errors: list[str] = []
    report = ParamValidator().validate(params, op.input_shape)
    if report.has_errors():
        errors.extend(line.strip() for line in report.generate_report().splitlines() if line.strip())
    if isinstance(params, dict):
        _strict_errors(params, op.input_shape, "input", errors)
    return errors


def _parse_authorization(value: str) -> dict:
    algo, _, rest = value.strip().partition(" ")
    if algo != "AWS4-HMAC-SHA256":
        raise ValueError(f"unsupported algorithm {algo!r}")
    parts = {}
    for item in rest.split(","):
        k, sep, v = item.strip().partition("=")
        if not sep:
            raise ValueError(f"malformed Authorization component {item!r}")
        parts[k] = v
    for k in ("Credential", "SignedHeaders", "Signature"):
        if k not in parts:
            raise ValueError(f"Authorization lacks {k}")
    cred = parts["Credential"].split("/")
    if len(cred) != 5 or cred[4] != "aws4_request":
        raise ValueError(f"malformed Credential {parts['Credential']!r}")
    return {"access_key": cred[0], "date": cred[1], "region": cred[2], "service": cred[3],
            "signed_headers": parts["SignedHeaders"], "signature": parts["Signature"]}


def verify_sigv4(method: str, url: str, headers: dict, body: bytes, *, access_key: str, secret_key: str,
                 session_token: str | None, region: str, service: str,
                 max_skew_s: int = 300) -> tuple[bool, str | None, dict]:
    """Checks a SigV4-signed request as AWS would, recomputing the signature with botocore from the
    method, URL, body and only the signed headers. `headers` keys must be lower-case.
    Returns (ok, reason, info); shared by every AWS mock."""
    info: dict = {}
    auth = headers.get("authorization")
    if not auth:
        return False, "missing Authorization header", info
    try:
        a = _parse_authorization(auth)
    except ValueError as e:
        return False, str(e), info
    info.update(a)
    if a["access_key"] != access_key:
        return False, f"unknown access key id {a['access_key']!r}", info
    if a["region"] != region:
        return False, f"credential scope region {a['region']!r} != {region!r}", info
    if a["service"] != service:
        return False, f"credential scope service {a['service']!r} != {service!r}", info
    amz_date = headers.get("x-amz-date")
    if not amz_date:
        return False, "missing x-amz-date", info
    try:
        t = _dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return False, f"malformed x-amz-date {amz_date!r}", info
    skew = abs(time.time() - t.timestamp())
    info["skew_s"] = skew
    if skew > max_skew_s:
        return False, f"x-amz-date {amz_date} is {skew:.0f}s away from now", info
    if amz_date[:8] != a["date"]:
        return False, f"scope date {a['date']} != x-amz-date {amz_date}", info
    signed = a["signed_headers"].split(";")
    info["signed_header_list"] = signed
    if signed != sorted(signed) or any(h != h.lower() for h in signed):
        return False, f"SignedHeaders not lower-case and sorted: {a['signed_headers']}", info
    if "host" not in signed:
        return False, "host is not signed", info
    missing = [h for h in signed if h not in headers]
    if missing:
        return False, f"signed headers absent from the request: {missing}", info
    token = headers.get("x-amz-security-token")
    if session_token is not None and token != session_token:
        return False, "x-amz-security-token missing or wrong", info
    if session_token is None and token is not None:
        return False, "unexpected x-amz-security-token", info
    declared = headers.get("x-amz-content-sha256")
    if declared is not None and declared != hashlib.sha256(body).hexdigest():
        return False, "x-amz-content-sha256 does not match the body", info

    req = AWSRequest(method=method, url=url, data=body, headers={h: headers[h] for h in signed})
    req.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(access_key, secret_key, session_token), service, region)
    canonical = signer.canonical_request(req)
    expected_signed = canonical.split("\n")[-2]
    if expected_signed != a["signed_headers"]:
        return False, f"signed header list {a['signed_headers']!r} != rebuilt {expected_signed!r}", info
    string_to_sign = signer.string_to_sign(req, canonical)
    expected = signer.signature(string_to_sign, req)
    info["canonical_request"] = canonical
    info["string_to_sign"] = string_to_sign
    if not hmac.compare_digest(expected.encode(), a["signature"].encode()):
        return False, "signature mismatch", info
    return True, None, info


class SigV4Mock(RecordingMock):
    """A RecordingMock for one AWS service: one set of credentials and one signing scope, checked
    on each request with `verify_sigv4` (shared by every AWS mock)."""

    def __init__(self, name: str, access_key: str, secret_key: str, session_token: str | None, region: str,
                 service: str, max_skew_s: int):
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token
        self.region = region
        self.service = service
        self.max_skew_s = max_skew_s
        super().__init__(name)

    def verify_signature(self, method: str, path: str, headers: dict, body: bytes) -> tuple[bool, str | None, dict]:
        """(ok, reason, info) for a request to this mock. `headers` keys must be lower-case."""
        return verify_sigv4(method, f"{self.endpoint}{path}", headers, body,
                            access_key=self.access_key, secret_key=self.secret_key,
                            session_token=self.session_token, region=self.region, service=self.service,
                            max_skew_s=self.max_skew_s)


class MockMessaging(SigV4Mock):
    def __init__(self, access_key: str, secret_key: str, session_token: str | None = None,
                 region: str = "us-east-1", service: str = SIGNING_NAME, max_skew_s: int = 300):
        super().__init__("MockMessaging", access_key, secret_key, session_token, region, service, max_skew_s)

    # ---- controls -------------------------------------------------------------------------
    def messages(self) -> list[dict]:
        """Accepted sends: requests that were answered 200 with a MessageId."""
        return [r for r in self.requests() if r["outcome"] == "sent"]

    def rejected(self) -> list[dict]:
        return [r for r in self.requests() if not r["signature_ok"] or r["model_errors"]]

    # ---- HTTP -------------------------------------------------------------------------------
    @staticmethod
    def _error(error_type: str, body: dict | None = None, status: int | None = None) -> Reply:
        payload = {"__type": error_type}
        payload.update(body or {})
        if "Message" not in payload and "message" not in payload:
            payload["message"] = f"mock {error_type}"
        return Reply(status or model_status(error_type), json.dumps(payload).encode(),
                     headers={"x-amzn-ErrorType": error_type, "x-amzn-RequestId": str(uuid.uuid4())},
                     content_type=JSON_CT)

    def _handle(self, method, path, raw_headers, body, _h) -> Reply:
        headers = {k.lower(): v for k, v in raw_headers.items()}
        rec = {"time": time.time(), "method": method, "path": path, "headers": headers, "body": body,
               "op": None, "params": None, "signature_ok": False, "signature_error": None,
               "signed_headers": [], "model_errors": [], "status": None, "outcome": None,
               "message_id": None, "script": None}
        with self._lock:
            self._records.append(rec)

        def finish(reply: Reply, outcome: str) -> Reply:
            rec["status"] = reply.status
            rec["outcome"] = outcome
            return reply

        if method != "POST":
            return finish(self._error("UnknownOperationException", {"message": f"{method} not supported"}, 404),
                          "rejected")
        ok, why, info = self.verify_signature(method, path, headers, body)
        rec["signature_ok"] = ok
        rec["signature_error"] = why
        rec["signed_headers"] = info.get("signed_header_list", [])
        rec["signature_info"] = info
        if not ok:
            return finish(self._error("InvalidSignatureException", {"message": why}, 403), "rejected")

        # awsJson1_0 framing
        target = headers.get("x-amz-target", "")
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        problems = []
        if path != "/":
            problems.append(f"path {path!r} != '/'")
        if ctype != JSON_CT:
            problems.append(f"Content-Type {headers.get('content-type')!r} != {JSON_CT!r}")
        prefix, _, op_name = target.partition(".")
        if prefix != TARGET_PREFIX or op_name not in MODEL.operation_names:
            rec["model_errors"] = problems + [f"unknown X-Amz-Target {target!r}"]
            return finish(self._error("UnknownOperationException", {"message": rec["model_errors"][-1]}), "rejected")
        rec["op"] = op_name
        try:
            params = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            rec["model_errors"] = problems + [f"body is not JSON: {e}"]
            return finish(self._error("SerializationException", {"message": "body is not JSON"}), "rejected")
        rec["params"] = params
        if not isinstance(params, dict):
            problems.append("body is not a JSON object")
        else:
            problems.extend(validate_params(op_name, params))
        if problems:
            rec["model_errors"] = problems
            return finish(self._error("ValidationException", {
                "Message": "; ".join(problems), "Reason": "FIELD_VALIDATION_FAILED"}), "rejected")

        entry = self.take_script()
        rec["script"] = entry
        return self._answer(entry, rec, finish)

    def _answer(self, entry: dict | None, rec: dict, finish) -> Reply:
        if entry is not None and "delay" in entry:
            # Answer as the rest of the entry says, `delay` seconds late (so that copies overlap).
            time.sleep(float(entry["delay"]))
            entry = {k: v for k, v in entry.items() if k != "delay"} or None
        if entry is not None and "stall_body" in entry:
            # Accepted (a MessageId exists), but the answer's body stalls half way.
            mid = entry.get("MessageId") or str(uuid.uuid4())
            rec["message_id"] = mid
            return finish(Reply(200, json.dumps({"MessageId": mid}).encode(),
                                headers={"x-amzn-RequestId": str(uuid.uuid4())}, content_type=JSON_CT,
                                stall_s=float(entry["stall_body"]), stall_after=entry.get("stall_after")),
                          "stalled")
        if entry is None or entry.get("ok"):
            mid = (entry or {}).get("MessageId") or str(uuid.uuid4())
            rec["message_id"] = mid
            return finish(Reply(200, json.dumps({"MessageId": mid}).encode(),
                                headers={"x-amzn-RequestId": str(uuid.uuid4())}, content_type=JSON_CT), "sent")
        if "hang" in entry:
            rec["outcome"] = "hang"  # recorded before the sleep
            hang(entry)
            reply = self._answer(entry.get("then"), dict(rec), lambda r, o: r)
            rec["status"] = reply.status
            return reply
        return finish(*fault_reply(entry, lambda e: self._error(e["type"], e.get("body"), e.get("status")),
                                   raw_status=500, raw_type="text/html"))
