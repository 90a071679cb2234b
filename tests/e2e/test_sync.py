"""The template sync end to end: DynamoDB (moto server, behind a proxy that checks every request's
SigV4 and body against botocore's dynamodb model) → the Worker in workerd → KV → the telephony hook.

The own-format table is created by deploying infra-aws/template-table.yaml into moto with
CloudFormation. Instances: `sync_worker` (that table, SYNC_PAGE_SIZE=2) and `legacy_worker` (a
table in the AWS guidance's format); both have TEMPLATE_CACHE_SECONDS=0 so the hook sees a
publication at once.
"""
from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
import xml.etree.ElementTree as ET

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import AKID, AWS_SECRET
from helpers import (ROOT, SMS_FIXTURE, TEMPLATES, VOICE_FIXTURE, assert_clean_request, assert_delivery_error,
                     assert_successful, digits_subsequence, expected_sms_body, mp, variant)
from mocks.aws import MockMessaging
from mocks.dynamodb import DynamoDBProxy, MotoServer

ADMIN_SECRET = "adm-" + secrets.token_urlsafe(30)
STACK = "oeh-e2e-templates"
STACK_TABLE = "oeh-e2e-templates"
LEGACY_TABLE = "oeh-e2e-guidance-templates"
CRON = "*/5 * * * *"

# The AWS guidance's sample items (deployment/English-Spanish-Data.txt), as its table holds them.
GUIDANCE_VOICE_EN = ("<speak> <prosody rate='slow'> Your One-Time Passcode from the AWS End User Messaging "
                     "service is <emphasis>@otp</emphasis>. <break time='0.5s'/> I repeat, your code is "
                     "<emphasis>@otp2</emphasis>. <amazon:effect phonation='soft'>Thank you for listening."
                     "</amazon:effect> </prosody> </speak>")
GUIDANCE_SMS_EN = "Your One-Time Passcode from the AWS End User Messaging service is @otp"
GUIDANCE_ITEMS = [
    {"id": {"S": "1"}, "messagetype": {"S": "sms"}, "language": {"S": "en"}, "message": {"S": GUIDANCE_SMS_EN}},
    {"id": {"S": "2"}, "messagetype": {"S": "voice call"}, "language": {"S": "en"},
     "message": {"S": GUIDANCE_VOICE_EN}, "voiceid": {"S": "MATTHEW"}},
    {"id": {"S": "3"}, "messagetype": {"S": "voice call"}, "language": {"S": "es"},
     "message": {"S": "<speak> Su código de acceso es <emphasis>@otp</emphasis>. Repito, su código es "
                      "<emphasis>@otp2</emphasis>. </speak>"}, "voiceid": {"S": "MIA"}},
    {"id": {"S": "4"}, "messagetype": {"S": "sms"}, "language": {"S": "es"},
     "message": {"S": "Su código de acceso de AWS End User Messaging es @otp"}},
]


def own(locale: str, channel: str, body: str, voice: str | None = None) -> dict:
    item = {"locale": {"S": locale}, "channel": {"S": channel}, "body": {"S": body},
            "updatedAt": {"S": "2026-11-20T12:00:00Z"}}
    if voice:
        item["voiceId"] = {"S": voice}
    return item


BASELINE = [
    own("en-US", "sms", "E2E baseline code {{otp}}. Do not share it."),
    own("en-US", "voice", '<speak>Your code is <break time="300ms"/>{{otp}}. Again: {{otp}}.</speak>', "JOANNA"),
    own("fr-FR", "sms", "Votre code : {{otp}}"),
    own("de-DE", "sms", "Ihr Code lautet {{otp}}."),
    own("es-ES", "sms", "Tu código es {{otp}}."),
]


# ---- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto():
    m = MotoServer()
    yield m
    m.close()


@pytest.fixture(scope="module")
def stack(moto) -> dict:
    """infra-aws/template-table.yaml deployed into moto; its outputs."""
    cfn = moto.client("cloudformation")
    cfn.create_stack(StackName=STACK, TemplateBody=(ROOT / "infra-aws" / "template-table.yaml").read_text(),
                     Parameters=[{"ParameterKey": "TableName", "ParameterValue": STACK_TABLE},
                                 {"ParameterKey": "DeletionProtection", "ParameterValue": "false"}])
    deadline = time.monotonic() + 60
    while True:
        s = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
        if s["StackStatus"] == "CREATE_COMPLETE":
            return {o["OutputKey"]: o["OutputValue"] for o in s.get("Outputs", [])}
        assert not s["StackStatus"].endswith(("FAILED", "ROLLBACK_COMPLETE")), s
        assert time.monotonic() < deadline, s
        time.sleep(0.2)


@pytest.fixture(scope="module")
def legacy_table(moto) -> str:
    """A table shaped like the AWS guidance's (key id + messagetype)."""
    moto.client("dynamodb").create_table(
        TableName=LEGACY_TABLE, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"},
                              {"AttributeName": "messagetype", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}, {"AttributeName": "messagetype", "KeyType": "RANGE"}])
    return LEGACY_TABLE


@pytest.fixture(scope="module")
def ddb(moto):
    p = DynamoDBProxy(moto.endpoint, AKID, AWS_SECRET)
    yield p
    p.close()


@pytest.fixture(scope="module")
def messaging():
    m = MockMessaging(AKID, AWS_SECRET)
    yield m
    m.close()


def sync_vars(table: str, ddb: DynamoDBProxy, **extra) -> dict:
    v = {"TEMPLATE_TABLE": table, "AWS_DYNAMODB_ENDPOINT": ddb.endpoint, "ADMIN_SECRET": ADMIN_SECRET,
         "TEMPLATE_CACHE_SECONDS": "0"}
    v.update(extra)
    return v


@pytest.fixture(scope="module")
def sync_worker(worker_factory, sensitive, stack, ddb, messaging):
    sensitive.add(ADMIN_SECRET, "admin secret")
    return worker_factory.get("sync", sync_vars(stack["TableName"], ddb, SYNC_PAGE_SIZE="2"), aws=messaging)


@pytest.fixture(scope="module")
def legacy_worker(worker_factory, sensitive, legacy_table, ddb, messaging):
    sensitive.add(ADMIN_SECRET, "admin secret")
    return worker_factory.get("sync-legacy", sync_vars(legacy_table, ddb), aws=messaging)


@pytest.fixture
def sw(sync_worker, ddb, moto, stack):
    """The sync instance with the table at BASELINE, synced, and the mocks' records cleared."""
    set_table(moto, stack["TableName"], BASELINE)
    r = sync(sync_worker)
    assert r.status_code == 200 and r.json()["ok"], r.text
    ddb.reset()
    sync_worker.aws.reset()
    return sync_worker


# ---- helpers ----------------------------------------------------------------------------------------
ADMIN = {"Authorization": "Bearer " + ADMIN_SECRET}


def key_of(item: dict, table_keys: list[str]) -> dict:
    return {k: item[k] for k in table_keys}


def set_table(moto: MotoServer, table: str, items: list[dict]):
    """Replaces the table's content (straight to moto, not through the proxy)."""
    c = moto.client("dynamodb")
    keys = [k["AttributeName"] for k in c.describe_table(TableName=table)["Table"]["KeySchema"]]
    for page in c.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            c.delete_item(TableName=table, Key=key_of(item, keys))
    for item in items:
        c.put_item(TableName=table, Item=item)


def sync(w, headers: dict | None = None):
    return w.request("POST", "/admin/templates/sync", headers=ADMIN if headers is None else headers, timeout=120)


def status(w) -> dict:
    r = w.request("GET", "/admin/templates/status", headers=ADMIN)
    assert r.status_code == 200, r.text
    return r.json()


def report_of(r, ok: bool = True) -> dict:
    assert r.status_code == (200 if ok else 502), f"{r.status_code}: {r.text[:800]}"
    assert r.headers.get("Content-Type", "").startswith("application/json")
    rep = r.json()
    assert rep["ok"] is ok, rep
    return rep


def assert_scans_clean(ddb: DynamoDBProxy, table: str, page_size: int | None):
    reqs = ddb.requests()
    assert reqs, "the Worker made no DynamoDB request"
    for rec in reqs:
        assert rec["signature_ok"], f"SigV4 rejected: {rec['signature_error']}"
        assert rec["model_errors"] == [], rec["model_errors"]
        assert rec["op"] == "Scan", rec["op"]
        p = rec["params"]
        assert p["TableName"] == table and p["ConsistentRead"] is True, p
        if page_size is not None:
            assert p["Limit"] == page_size, p
    # Pagination: the first page has no start key, every later one has one.
    assert "ExclusiveStartKey" not in reqs[0]["params"]
    assert all("ExclusiveStartKey" in r["params"] for r in reqs[1:])


def sms_sent(w, locale: str) -> tuple[dict, str]:
    """Sends an SMS telephony request for `locale`; returns (request body, MessageBody sent)."""
    w.aws.reset()
    body = variant(SMS_FIXTURE, locale=locale)
    sent = assert_successful(w.post_telephony(body), w.aws)
    assert_clean_request(sent)
    return body, sent["params"]["MessageBody"]


# ---- the proxy itself --------------------------------------------------------------------------------
def test_the_proxy_checks_what_aws_would(moto, stack, ddb):
    """The proxy is only as good as its checks: botocore's own well-formed requests pass, others fail."""
    def client(secret=AWS_SECRET):
        cfg = Config(retries={"total_max_attempts": 1}, parameter_validation=False)
        return boto3.client("dynamodb", endpoint_url=ddb.endpoint, region_name="us-east-1",
                            aws_access_key_id=AKID, aws_secret_access_key=secret, config=cfg)

    set_table(moto, stack["TableName"], BASELINE[:3])
    ddb.reset()
    out = client().scan(TableName=stack["TableName"], Limit=2, ConsistentRead=True)
    assert out["Count"] == 2 and "LastEvaluatedKey" in out
    assert [r["outcome"] for r in ddb.requests()] == ["forwarded"]
    with pytest.raises(ClientError) as e:
        client(secret="not-the-secret").scan(TableName=stack["TableName"])
    assert e.value.response["Error"]["Code"] == "InvalidSignatureException"
    with pytest.raises(ClientError) as e:
        client().scan(TableName=stack["TableName"], Limit=0)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as e:
        client().put_item(TableName=stack["TableName"], Item=own("it-IT", "sms", "{{otp}}"))
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert len(ddb.rejected()) == 3
    ddb.script([{"type": "ProvisionedThroughputExceededException"}])
    with pytest.raises(ClientError) as e:
        client().scan(TableName=stack["TableName"])
    assert e.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


# ---- the own format, pagination, publication ----------------------------------------------------------
def test_first_sync_reads_every_page_and_publishes(sync_worker, ddb, moto, stack):
    set_table(moto, stack["TableName"], BASELINE)
    ddb.reset()
    rep = report_of(sync(sync_worker))
    assert rep["outcome"] in ("published", "unchanged"), rep
    assert (rep["scanned"], rep["valid"], rep["invalid"], rep["templates"]) == (5, 5, 0, 5), rep
    assert (rep["ownFormat"], rep["legacyFormat"]) == (5, 0)
    assert rep["trigger"] == "admin" and rep["table"] == stack["TableName"]
    # 5 items, 2 per page: 3 pages (moto may add an empty last page after a full one).
    assert rep["dynamodbPages"] >= 3 and rep["dynamodbRequests"] == rep["dynamodbPages"], rep
    assert len(ddb.scans()) == rep["dynamodbRequests"]
    assert_scans_clean(ddb, stack["TableName"], 2)
    assert rep["kvReads"] + rep["kvWrites"] <= 5, rep
    assert status(sync_worker)["inService"]["version"] == rep["version"]


def test_the_hook_serves_the_synced_templates(sw):
    body, text = sms_sent(sw, "fr-FR")
    assert text == "Votre code : " + mp(body)["otpCode"]
    body, text = sms_sent(sw, "en-US")
    assert text == f"E2E baseline code {mp(body)['otpCode']}. Do not share it."


def test_nothing_changed_means_zero_kv_writes(sw, ddb):
    before = status(sw)["inService"]
    rep = report_of(sync(sw))
    assert rep["outcome"] == "unchanged", rep
    assert rep["kvWrites"] == 0, rep
    assert rep["kvReads"] == 2, rep
    assert (rep["unchanged"], rep["added"], rep["changed"], rep["removed"]) == (5, 0, 0, 0), rep
    after = status(sw)["inService"]
    assert after == before, "the pointer was not rewritten"


def test_one_changed_item_is_one_publication_and_the_hook_uses_it(sw, moto, stack, ddb):
    old = status(sw)["inService"]
    moto.client("dynamodb").put_item(TableName=stack["TableName"],
                                     Item=own("fr-FR", "sms", "Code de vérification : {{otp}}"))
    rep = report_of(sync(sw))
    assert rep["outcome"] == "published", rep
    assert (rep["changed"], rep["unchanged"], rep["added"], rep["removed"]) == (1, 4, 0, 0), rep
    assert rep["previousVersion"] == old["version"] and rep["version"] != old["version"]
    assert rep["kvWrites"] in (2, 3), rep  # set + pointer (+ the set two versions back, when there is one)
    now = status(sw)["inService"]
    assert now["version"] == rep["version"] and now["previousKey"] == old["key"]
    body, text = sms_sent(sw, "fr-FR")
    assert text == "Code de vérification : " + mp(body)["otpCode"]
    # And again: no further publication.
    assert report_of(sync(sw))["outcome"] == "unchanged"


def test_a_deleted_item_disappears_from_the_edge(sw, moto, stack):
    moto.client("dynamodb").delete_item(TableName=stack["TableName"],
                                        Key={"locale": {"S": "de-DE"}, "channel": {"S": "sms"}})
    rep = report_of(sync(sw))
    assert rep["outcome"] == "published"
    assert (rep["removed"], rep["removedTemplates"], rep["templates"]) == (1, ["de-DE/sms"], 4), rep
    assert status(sw)["inService"]["templates"] == 4
    body, text = sms_sent(sw, "de-DE")
    # No German SMS template any more: the default locale's (en-US) is sent.
    assert "Ihr Code" not in text
    assert text == f"E2E baseline code {mp(body)['otpCode']}. Do not share it."


def test_invalid_items_are_skipped_and_reported(sw, moto, stack):
    c = moto.client("dynamodb")
    bad = [
        own("it-IT", "sms", "Il tuo codice di verifica"),                          # no placeholder
        own("pt-BR", "voice", "<speak>Seu código {{otp}}", "CAMILA"),              # SSML not closed
        own("nl-NL", "voice", "<speak>Uw code {{otp}}</speak>", "HAL9000"),         # unknown voice
        own("en-GB", "sms", "Your code {{otp}} and {{name}}"),                       # unknown placeholder
        own("EN-us", "sms", "A second en-US SMS template {{otp}}"),                  # en-US sms twice
        own("xx-bogus-locale-that-is-far-too-long", "sms", "{{otp}}"),               # bad locale
        own("fr-CA", "fax", "{{otp}}"),                                              # bad channel
    ]
    for item in bad:
        c.put_item(TableName=stack["TableName"], Item=item)
    c.put_item(TableName=stack["TableName"],
               Item={"locale": {"S": "sv-SE"}, "channel": {"S": "sms"}, "body": {"N": "42"}})  # wrong type
    rep = report_of(sync(sw))
    assert rep["outcome"] == "published", rep
    assert rep["scanned"] == len(BASELINE) + len(bad) + 1
    assert rep["invalid"] == len(bad) + 1 + 1, rep  # the original en-US sms is ambiguous too
    assert rep["valid"] == len(BASELINE) - 1
    reasons = {i["item"]: i["reason"] for i in rep["invalidItems"]}
    assert "placeholder" in reasons["it-IT/sms"], reasons
    assert "SSML" in reasons["pt-BR/voice"]
    assert "HAL9000" in reasons["nl-NL/voice"]
    assert "{{name}}" in reasons["en-GB/sms"]
    assert reasons["EN-us/sms"].startswith("ambiguous: 2 items are en-US sms") and "en-US/sms" in reasons
    assert "not a locale" in next(v for k, v in reasons.items() if k.startswith("xx-bogus"))
    assert "fax" in reasons["fr-CA/fax"]
    assert "type N" in reasons["sv-SE/sms"]
    assert all(i["format"] == "own" for i in rep["invalidItems"])
    # None of them is served. it-IT falls back to the default en-US, whose two SMS items are
    # ambiguous and dropped: with no SMS template along the chain nothing is sent (never Okta's
    # caller-supplied msgTemplate), and the answer is the error object NO_TEMPLATE (our configuration).
    for locale in ("it-IT", "en-US"):
        sw.aws.reset()
        r = sw.post_telephony(variant(SMS_FIXTURE, locale=locale))
        assert_delivery_error(r, "NO_TEMPLATE")
        assert sw.aws.requests() == [], f"{locale}: sent without a published template"
    log = [l for l in sw.wait_for_log('"msg":"template-sync"') if '"invalid":9' in l]
    assert log, "the run's log line lists the invalid items"


# ---- failures -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("faults,expect,attempts", [
    ([{"type": "ProvisionedThroughputExceededException"}] * 4, "ProvisionedThroughputExceededException", 4),
    ([{"type": "ThrottlingException"}] * 4, "ThrottlingException", 4),
    ([{"type": "InternalServerError"}] * 4, "InternalServerError", 4),
    ([{"status": 503, "raw": "<html>Service Unavailable</html>", "content_type": "text/html"}] * 4, "Http503", 4),
    ([{"abort": True}] * 4, "network error", 4),
    ([{"type": "ResourceNotFoundException", "message": "Requested resource not found"}], "ResourceNotFound", 1),
    ([{"type": "AccessDeniedException"}], "AccessDeniedException", 1),
    ([{"status": 200, "raw": "<html>captive portal</html>"}], "MalformedResponse", 1),
    ([{"status": 200, "raw": '{"Items": [{"locale": {"Q": "?"}}], "Count": 1}'}], "MalformedResponse", 1),
    ([{"forward": True}, {"status": 200, "raw": '{"Items": "nope"}'}], "page 2", 2),
], ids=["throughput", "throttling", "internal-error", "html-503", "connection-reset", "no-table", "access-denied",
        "html-200", "unknown-attribute-type", "garbage-on-page-2"])
def test_dynamodb_failures_keep_the_previous_set(sw, moto, stack, ddb, faults, expect, attempts):
    before = status(sw)["inService"]
    moto.client("dynamodb").put_item(TableName=stack["TableName"], Item=own("fr-FR", "sms", "Nouveau {{otp}}"))
    ddb.script(faults)
    rep = report_of(sync(sw), ok=False)
    assert rep["outcome"] == "failed" and expect in rep["error"], rep
    assert rep["dynamodbRequests"] == attempts, rep
    assert rep["dynamodbRetries"] == (attempts - 1 if attempts > 1 and faults[0].get("forward") is None else 0), rep
    assert rep["kvWrites"] == 0, rep
    assert rep["version"] == before["version"] == rep["previousVersion"]
    assert ddb.pending_script() == 0
    assert status(sw)["inService"] == before
    body, text = sms_sent(sw, "fr-FR")
    assert text == "Votre code : " + mp(body)["otpCode"], "the previous set is still served"
    # The failure is on record and logged as an alert.
    assert status(sw)["runs"][0]["error"] == rep["error"]
    assert sw.wait_for_log("template sync failed")


def test_throttling_then_success_is_retried(sw, moto, stack, ddb):
    moto.client("dynamodb").put_item(TableName=stack["TableName"], Item=own("fr-FR", "sms", "Nouveau {{otp}}"))
    ddb.script([{"type": "ProvisionedThroughputExceededException"}, {"type": "InternalServerError"}])
    rep = report_of(sync(sw))
    assert rep["outcome"] == "published" and rep["dynamodbRetries"] == 2, rep
    assert rep["dynamodbRequests"] == rep["dynamodbPages"] + 2
    assert [r["outcome"] for r in ddb.scans()[:3]] == ["scripted", "scripted", "forwarded"]
    assert all(r["signature_ok"] for r in ddb.requests()), "every retry is signed afresh"


def test_an_empty_table_does_not_wipe_the_edge(sw, moto, stack):
    before = status(sw)["inService"]
    set_table(moto, stack["TableName"], [own("en-US", "sms", "no code in here")])
    rep = report_of(sync(sw), ok=False)
    assert "no valid template" in rep["error"] and rep["invalid"] == 1, rep
    set_table(moto, stack["TableName"], [])
    rep = report_of(sync(sw), ok=False)
    assert rep["scanned"] == 0 and "no valid template" in rep["error"]
    assert status(sw)["inService"] == before


# ---- admin endpoints and the cron trigger ---------------------------------------------------------------
@pytest.mark.parametrize("headers,reason", [
    ({}, "MISSING_CREDENTIALS"),
    ({"Authorization": "Bearer " + "x" * 40}, "INVALID_CREDENTIALS"),
    ({"Authorization": "Bearer " + ADMIN_SECRET[:-1]}, "INVALID_CREDENTIALS"),
    ({"Authorization": "Bearer " + ADMIN_SECRET + "x"}, "INVALID_CREDENTIALS"),
    ({"Authorization": ADMIN_SECRET}, "MALFORMED_CREDENTIALS"),
    ({"Authorization": "Basic " + ADMIN_SECRET}, "MALFORMED_CREDENTIALS"),
    ({"X-Admin-Secret": ADMIN_SECRET}, "MISSING_CREDENTIALS"),
], ids=["none", "wrong", "prefix", "longer", "no-scheme", "basic", "other-header"])
@pytest.mark.parametrize("method,path", [("POST", "/admin/templates/sync"), ("GET", "/admin/templates/status")])
def test_admin_endpoints_refuse_bad_credentials(sync_worker, ddb, method, path, headers, reason):
    ddb.reset()
    r = sync_worker.request(method, path, headers=headers)
    assert r.status_code == 401, r.text
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert r.json()["error"]["errorCauses"][0]["reason"] == reason
    assert ADMIN_SECRET not in r.text
    assert ddb.requests() == [], "nothing ran"


def test_admin_endpoints_with_good_credentials(sw):
    r = sw.request("GET", "/admin/templates/status", headers={"Authorization": "bearer " + ADMIN_SECRET})
    assert r.status_code == 200, r.text
    st = r.json()
    assert set(st) == {"inService", "runs"}
    assert {"version", "key", "publishedAtMs", "templates"} <= set(st["inService"])
    assert 1 <= len(st["runs"]) <= 20 and st["runs"][0]["trigger"] == "admin"
    assert st["runs"][0]["version"] == st["inService"]["version"]
    assert report_of(sync(sw))["outcome"] == "unchanged"
    for method, path in [("GET", "/admin/templates/sync"), ("POST", "/admin/templates/status")]:
        assert sw.request(method, path, headers=ADMIN).status_code == 405


def test_admin_endpoints_are_off_without_admin_secret(oauth_worker):
    r = oauth_worker.request("POST", "/admin/templates/sync", headers=ADMIN)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["errorCauses"][0]["reason"] == "ADMIN_DISABLED"


def test_the_cron_trigger_runs_the_sync(sw, moto, stack, ddb):
    moto.client("dynamodb").put_item(TableName=stack["TableName"], Item=own("fr-FR", "sms", "Cron {{otp}}"))
    r = sw.request("GET", "/cdn-cgi/handler/scheduled", params={"cron": CRON})
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 30
    while True:
        runs = status(sw)["runs"]
        if runs[0]["trigger"] == "cron":
            break
        assert time.monotonic() < deadline, runs[0]
        time.sleep(0.2)
    assert runs[0]["outcome"] == "published" and runs[0]["changed"] == 1, runs[0]
    assert_scans_clean(ddb, stack["TableName"], 2)
    line = next(l for l in sw.wait_for_log('"trigger":"cron"') if '"msg":"template-sync"' in l)
    assert '"outcome":"published"' in line
    body, text = sms_sent(sw, "fr-FR")
    assert text == "Cron " + mp(body)["otpCode"]


# ---- the AWS guidance's legacy table ------------------------------------------------------------------
def test_legacy_guidance_table_is_read_unchanged(legacy_worker, moto, legacy_table, ddb):
    set_table(moto, legacy_table, GUIDANCE_ITEMS)
    ddb.reset()
    rep = report_of(sync(legacy_worker))
    assert rep["outcome"] == "published", rep
    assert (rep["legacyFormat"], rep["ownFormat"], rep["valid"], rep["templates"]) == (4, 0, 4, 4), rep
    assert_scans_clean(ddb, legacy_table, 100)

    # Okta sends en-US; the table says "en": the locale chain finds it.
    body, text = sms_sent(legacy_worker, "en-US")
    assert text == GUIDANCE_SMS_EN.replace("@otp", mp(body)["otpCode"])
    legacy_worker.aws.reset()
    body = variant(VOICE_FIXTURE, locale="es-ES")
    sent = assert_successful(legacy_worker.post_telephony(body), legacy_worker.aws)
    assert_clean_request(sent)
    p = sent["params"]
    assert p["VoiceId"] == "MIA" and p["MessageBodyTextType"] == "SSML"
    ET.fromstring(p["MessageBody"])
    assert "@otp" not in p["MessageBody"]
    assert digits_subsequence(mp(body)["otpCode"], p["MessageBody"])

    # A legacy item that is broken is reported with its id.
    moto.client("dynamodb").put_item(TableName=legacy_table, Item={
        "id": {"S": "5"}, "messagetype": {"S": "voice call"}, "language": {"S": "fr"},
        "message": {"S": "<speak>Votre code</speak>"}, "voiceid": {"S": "LEA"}})
    rep = report_of(sync(legacy_worker))
    assert rep["outcome"] == "unchanged" and rep["invalid"] == 1, rep
    assert rep["invalidItems"][0]["item"] == "id 5" and rep["invalidItems"][0]["format"] == "legacy"


# ---- infra-aws/template-table.yaml + scripts/seed-dynamodb ----------------------------------------------
def test_cloudformation_table_seeded_with_seed_dynamodb_serves_the_hook(sync_worker, moto, stack, ddb):
    c = moto.client("dynamodb")
    table = stack["TableName"]
    assert stack["TableArn"].endswith(":table/" + table)
    schema = c.describe_table(TableName=table)["Table"]["KeySchema"]
    assert schema == [{"AttributeName": "locale", "KeyType": "HASH"}, {"AttributeName": "channel", "KeyType": "RANGE"}]
    # Something else in service first, so that the seed's publication is visible.
    set_table(moto, table, BASELINE)
    report_of(sync(sync_worker))
    set_table(moto, table, [])

    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDSEED", AWS_SECRET_ACCESS_KEY="seed-secret")
    env.pop("AWS_PROFILE", None)
    r = subprocess.run([str(ROOT / "scripts" / "seed-dynamodb"), "--table", table, "--endpoint", moto.endpoint,
                        "--region", "us-east-1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    # kv-seed validated kv-seed/templates and names the set's version, as scripts/seed-kv does.
    m = re.search(r"kv-seed: (\d+) locales, (\d+) templates, version ([0-9a-f]+)", r.stderr)
    assert m, r.stderr
    locales, templates, version = int(m[1]), int(m[2]), m[3]
    assert locales == len(list(TEMPLATES.glob("*.json")))
    assert f"{templates} items written to {table}" in r.stderr
    assert c.scan(TableName=table, Select="COUNT")["Count"] == templates

    ddb.reset()
    rep = report_of(sync(sync_worker))
    assert rep["outcome"] == "published", rep
    assert (rep["valid"], rep["invalid"], rep["templates"]) == (templates, 0, templates), rep
    assert rep["version"] == version, "DynamoDB round trip: the same content digest as scripts/seed-kv"
    assert rep["dynamodbPages"] >= templates // 2 and rep["kvReads"] + rep["kvWrites"] <= 5, rep
    assert_scans_clean(ddb, table, 2)

    body, text = sms_sent(sync_worker, "en-US")
    assert text == expected_sms_body("en-US", mp(body)["otpCode"])
    body, text = sms_sent(sync_worker, "pt-BR")
    assert text == expected_sms_body("pt-BR", mp(body)["otpCode"])
