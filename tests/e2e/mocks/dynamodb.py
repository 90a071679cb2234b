"""DynamoDB for the template sync: a moto server, and a proxy in front of it that checks every
request the Worker sends the way AWS would before moto sees it.

    moto = MotoServer(); moto.client("dynamodb").create_table(...)
    ddb = DynamoDBProxy(moto.endpoint, access_key, secret_key)   # the Worker's AWS_DYNAMODB_ENDPOINT
    ddb.script([{"type": "ProvisionedThroughputExceededException"}, {"status": 200, "raw": "<html>"},
                {"type": "InternalServerError"}, {"forward": True}, {"hang": 3}, {"abort": True}])
    ddb.requests(); ddb.rejected(); ddb.scans(); ddb.reset()
    (each record: op, params, signature_ok/error, model_errors, status, outcome, and check_ms,
     upstream_ms, elapsed_ms: time spent checking, in moto, and in the proxy in all)

The proxy, for every request:
  * SigV4, recomputed with botocore (`mocks.aws.verify_sigv4`, signing name `dynamodb`);
  * awsJson1_0 framing (POST /, Content-Type, X-Amz-Target `DynamoDB_20120810.<Op>`);
  * the body against botocore's `dynamodb` model (ParamValidator plus length/range/enum/pattern);
  * only `Scan` and `GetItem`, like the Worker's least-privilege IAM policy (infra-aws/worker-iam.yaml):
    anything else is AccessDeniedException.
Then it answers from the FIFO of scripted faults, or forwards the request to moto and relays the answer.
"""
from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import boto3
import botocore.session
import requests

from ._server import Reply, fault_reply, free_port, hang, stop_group
from .aws import SigV4Mock, validate_params
from .aws import model_status as aws_model_status

JSON_CT = "application/x-amz-json-1.0"
MODEL = botocore.session.get_session().get_service_model("dynamodb")
TARGET_PREFIX = MODEL.metadata["targetPrefix"]        # DynamoDB_20120810
SIGNING_NAME = MODEL.metadata.get("signingName") or MODEL.metadata["endpointPrefix"]  # dynamodb
ALLOWED_OPS = {"Scan", "GetItem"}
ROOT = Path(__file__).resolve().parents[3]


def model_status(error_type: str) -> int:
    """HTTP status of a DynamoDB exception shape (one rule for every mock: `aws.model_status`)."""
    return aws_model_status(error_type, MODEL)


class MotoServer:
    """`moto_server` on a free loopback port, in its own process group; `close()` stops it."""

    def __init__(self, region: str = "us-east-1"):
        self.port = free_port()
        self.region = region
        exe = ROOT / ".venv" / "bin" / "moto_server"
        self.proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.proc.returncode}")
            try:
                if requests.get(self.endpoint + "/moto-api/", timeout=1).status_code < 500:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("moto_server did not start within 60 s")
            time.sleep(0.1)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str):
        """A boto3 client for moto (any credentials do)."""
        return boto3.client(service, endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id="AKIDMOTO", aws_secret_access_key="moto-secret")

    def close(self):
        stop_group(self.proc)


class DynamoDBProxy(SigV4Mock):
    def __init__(self, upstream: str, access_key: str, secret_key: str, session_token: str | None = None,
                 region: str = "us-east-1", max_skew_s: int = 300):
        self.upstream = upstream.rstrip("/")
        self._http = requests.Session()
        super().__init__("DynamoDBProxy", access_key, secret_key, session_token, region, SIGNING_NAME, max_skew_s)

    # ---- controls -------------------------------------------------------------------------
    def scans(self) -> list[dict]:
        return [r for r in self.requests() if r["op"] == "Scan"]

    def rejected(self) -> list[dict]:
        return [r for r in self.requests() if not r["signature_ok"] or r["model_errors"] or r["outcome"] == "denied"]

    # ---- HTTP -------------------------------------------------------------------------------
    @staticmethod
    def _error(error_type: str, message: str, status: int | None = None) -> Reply:
        payload = {"__type": f"com.amazonaws.dynamodb.v20120810#{error_type}", "message": message}
        return Reply(status or model_status(error_type), json.dumps(payload).encode(),
                     headers={"x-amzn-RequestId": str(uuid.uuid4())}, content_type=JSON_CT)

    def _handle(self, method, path, raw_headers, body, _h) -> Reply:
        headers = {k.lower(): v for k, v in raw_headers.items()}
        t0 = time.perf_counter()
        rec = {"time": time.time(), "method": method, "path": path, "headers": headers, "body": body,
               "op": None, "params": None, "signature_ok": False, "signature_error": None,
               "model_errors": [], "status": None, "outcome": None, "script": None,
               "check_ms": None, "upstream_ms": None, "elapsed_ms": None}
        with self._lock:
            self._records.append(rec)

        def finish(reply: Reply, outcome: str) -> Reply:
            rec["status"] = reply.status
            rec["outcome"] = outcome
            rec["elapsed_ms"] = (time.perf_counter() - t0) * 1000
            return reply

        if method != "POST":
            return finish(self._error("UnknownOperationException", f"{method} not supported", 404), "rejected")
        ok, why, _info = self.verify_signature(method, path, headers, body)
        rec["signature_ok"] = ok
        rec["signature_error"] = why
        if not ok:
            return finish(self._error("InvalidSignatureException", why, 400), "rejected")

        problems = []
        if path != "/":
            problems.append(f"path {path!r} != '/'")
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != JSON_CT:
            problems.append(f"Content-Type {headers.get('content-type')!r} != {JSON_CT!r}")
        target = headers.get("x-amz-target", "")
        prefix, _, op_name = target.partition(".")
        if prefix != TARGET_PREFIX or op_name not in MODEL.operation_names:
            rec["model_errors"] = problems + [f"unknown X-Amz-Target {target!r}"]
            return finish(self._error("UnknownOperationException", rec["model_errors"][-1]), "rejected")
        rec["op"] = op_name
        try:
            params = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            rec["model_errors"] = problems + [f"body is not JSON: {e}"]
            return finish(self._error("SerializationException", "body is not JSON"), "rejected")
        rec["params"] = params
        if not isinstance(params, dict):
            problems.append("body is not a JSON object")
        else:
            problems.extend(validate_params(op_name, params, MODEL))
        if problems:
            rec["model_errors"] = problems
            return finish(self._error("ValidationException", "; ".join(problems)), "rejected")
        if op_name not in ALLOWED_OPS:
            return finish(self._error("AccessDeniedException", f"{op_name} is not allowed for the Worker"),
                          "denied")

        rec["check_ms"] = (time.perf_counter() - t0) * 1000
        entry = self.take_script()
        rec["script"] = entry
        return self._answer(entry, rec, headers, body, finish)

    def _answer(self, entry, rec, headers, body, finish) -> Reply:
        if entry is None or entry.get("forward"):
            fwd = {k: v for k, v in headers.items()
                   if k in ("content-type", "x-amz-target", "authorization", "x-amz-date", "x-amz-security-token")}
            t1 = time.perf_counter()
            try:
                r = self._http.post(self.upstream + "/", data=body, headers=fwd, timeout=30)
            except requests.RequestException as e:
                return finish(Reply(502, {"proxyError": repr(e)}), "upstream-error")
            finally:
                rec["upstream_ms"] = (time.perf_counter() - t1) * 1000
            keep = {k: v for k, v in r.headers.items() if k.lower() in ("x-amzn-requestid", "x-amz-crc32")}
            return finish(Reply(r.status_code, r.content, headers=keep,
                                content_type=r.headers.get("content-type", JSON_CT)), "forwarded")
        if hang(entry):
            return self._answer(entry.get("then"), rec, headers, body, finish)
        error = lambda e: self._error(e["type"], e.get("message", f"injected {e['type']}"), e.get("status"))  # noqa: E731
        return finish(*fault_reply(entry, error, raw_status=200, raw_type=JSON_CT, label="scripted"))
