//! The sync natively: a scripted DynamoDB serving a table page by page, an in-memory KV, a fake
//! clock.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::{json, Value};

use super::admin::{self, Op, SyncEdge};
use super::config::SyncConfig;
use super::items::{own_item, parse_item, Format};
use super::*;
use crate::admin::admin_secret;
use crate::admin::Gate;
use crate::edge::{FetchError, HttpResponse};
use crate::http::Handled;
use crate::template::store::{Origin, TemplateCache};
use crate::testing::{block_on, json_response, FakeClock, MemKv, ScriptedHttp};

const NOW_MS: u64 = 1_800_000_000_000;
const ADMIN: &str = "admin-secret-for-the-tests-0123456789";

fn own(locale: &str, channel: &str, body: &str, voice: Option<&str>) -> Value {
    let mut v = json!({"locale": {"S": locale}, "channel": {"S": channel}, "body": {"S": body},
                       "updatedAt": {"S": "2026-01-31T12:00:00Z"}});
    if let Some(id) = voice {
        v["voiceId"] = json!({"S": id});
    }
    v
}

fn legacy(id: &str, kind: &str, language: &str, message: &str, voice: Option<&str>) -> Value {
    let mut v = json!({"id": {"S": id}, "messagetype": {"S": kind}, "language": {"S": language},
                       "message": {"S": message}});
    if let Some(id) = voice {
        v["voiceid"] = json!({"S": id});
    }
    v
}

fn item(v: Value) -> Item {
    serde_json::from_value(v).unwrap()
}

fn sample_table() -> Vec<Value> {
    vec![
        own("en-US", "sms", "Your code is {{otp}}.", None),
        own("en-US", "voice", "<speak>Your code is {{otp}}. Again: {{otp}}.</speak>", Some("JOANNA")),
        own("es-ES", "sms", "Tu código es {{otp}}.", None),
        own("fr-FR", "sms", "Votre code : {{otp}}", None),
        own("de-DE", "sms", "Ihr Code lautet {{otp}}.", None),
    ]
}

struct World {
    cfg: SyncConfig,
    http: ScriptedHttp,
    kv: MemKv,
    clock: FakeClock,
    table: Rc<RefCell<Vec<Value>>>,
}

/// Serves `table` like DynamoDB: `Limit` items per page, `LastEvaluatedKey` = `{"pos": N}`.
fn world_with(items: Vec<Value>, page_size: u32) -> World {
    let settings: BTreeMap<String, String> = [
        ("TEMPLATE_TABLE", "otp-templates"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        ("SYNC_PAGE_SIZE", &page_size.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let cfg = SyncConfig::from_source(&settings).unwrap().unwrap();
    let table = Rc::new(RefCell::new(items));
    let http = ScriptedHttp::default();
    let served = table.clone();
    http.answer_with(move |req| Ok(serve_page(&served.borrow(), req)));
    World { cfg, http, kv: MemKv::default(), clock: FakeClock::at(NOW_MS), table }
}

fn serve_page(items: &[Value], req: &crate::edge::HttpRequest) -> HttpResponse {
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    let limit = body["Limit"].as_u64().unwrap() as usize;
    let start =
        body.get("ExclusiveStartKey").map(|k| k["pos"]["N"].as_str().unwrap().parse::<usize>().unwrap()).unwrap_or(0);
    let end = (start + limit).min(items.len());
    let page = &items[start..end];
    let mut out = json!({"Items": page, "Count": page.len(), "ScannedCount": page.len()});
    if end < items.len() {
        out["LastEvaluatedKey"] = json!({"pos": {"N": end.to_string()}});
    }
    json_response(200, &out.to_string())
}

fn world(items: Vec<Value>) -> World {
    world_with(items, 100)
}

impl World {
    fn run(&self) -> SyncReport {
        block_on(run(&self.cfg, &self.http, &self.kv, &self.clock, Trigger::Admin))
    }

    fn pointer(&self) -> SyncPointer {
        serde_json::from_str(&self.kv.value(CURRENT_KEY).expect("a pointer")).unwrap()
    }

    fn set_keys(&self) -> Vec<String> {
        // MemKv has no listing; probe the versions this test saw.
        self.seen_versions().into_iter().filter(|k| self.kv.value(k).is_some()).collect()
    }

    fn seen_versions(&self) -> Vec<String> {
        SEEN.with(|s| s.borrow().iter().map(|v| set_key(v)).collect())
    }

    fn remember(&self, r: &SyncReport) {
        if let Some(v) = &r.built_version {
            SEEN.with(|s| {
                if !s.borrow().contains(v) {
                    s.borrow_mut().push(v.clone())
                }
            });
        }
    }

    fn sms_for(&self, locale: &str) -> Option<String> {
        let cache = TemplateCache::new();
        let loaded = block_on(cache.current(&self.kv, self.clock.now_ms(), 0));
        assert_eq!(loaded.origin, Origin::Kv);
        let l = Locale::parse(locale).unwrap();
        loaded.set.resolve(Channel::Sms, Some(&l), &l).filter(|(found, _)| **found == l).map(|(_, t)| t.body.clone())
    }
}

thread_local! {
    static SEEN: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn throttled() -> Result<HttpResponse, FetchError> {
    Ok(json_response(
        400,
        r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}"#,
    ))
}

// ---- item formats -------------------------------------------------------------------------------

#[test]
fn reads_the_own_format() {
    let e = parse_item(&item(own("EN-us", "SMS", "Code {{otp}}", None)), 0);
    assert_eq!(e.format, Some(Format::Own));
    assert_eq!(e.label, "EN-us/SMS");
    let (locale, channel) = e.key.unwrap();
    assert_eq!((locale.to_string().as_str(), channel), ("en-US", Channel::Sms));
    assert_eq!(e.template.unwrap().body, "Code {{otp}}");
    let v = parse_item(&item(own("cmn-CN", "voice", "<speak>{{otp}}</speak>", Some("ZHIYU"))), 1);
    assert_eq!(v.template.unwrap().voice_id.as_deref(), Some("ZHIYU"));
}

#[test]
fn reads_the_legacy_format_of_the_aws_guidance() {
    let sms = parse_item(
        &item(legacy("1", "sms", "en", "Your One-Time Passcode from the AWS End User Messaging service is @otp", None)),
        0,
    );
    assert_eq!(sms.format, Some(Format::Legacy));
    assert_eq!(sms.label, "id 1");
    assert_eq!(sms.key.as_ref().map(|(l, c)| (l.to_string(), *c)), Some(("en".into(), Channel::Sms)));
    assert!(sms.template.is_ok());
    let ssml = "<speak> <prosody rate='slow'> Your code is <emphasis>@otp</emphasis>. <break time='0.5s'/> \
                I repeat, your code is <emphasis>@otp2</emphasis>. <amazon:effect phonation='soft'>Thank you \
                for listening.</amazon:effect> </prosody> </speak>";
    let voice = parse_item(&item(legacy("2", "voice call", "en", ssml, Some("MATTHEW"))), 1);
    assert_eq!(voice.key.as_ref().map(|(_, c)| *c), Some(Channel::Voice));
    assert_eq!(voice.template.unwrap().voice_id.as_deref(), Some("MATTHEW"));
    // A numeric id is fine for the label.
    let mut n = legacy("3", "sms", "es", "Su código es @otp", None);
    n["id"] = json!({"N": "3"});
    assert_eq!(parse_item(&item(n), 2).label, "id 3");
}

#[test]
fn explains_what_is_wrong_with_an_item() {
    let reason = |v: Value| parse_item(&item(v), 7).template.unwrap_err();
    assert!(reason(own("en-US", "fax", "{{otp}}", None)).contains("neither `sms` nor `voice`"));
    assert!(reason(own("english", "sms", "{{otp}}", None)).contains("not a locale"));
    assert!(reason(own("en-US", "sms", "no code here", None)).contains("placeholder"));
    assert!(reason(own("en-US", "voice", "<speak>{{otp}}</speak>", None)).contains("voiceId"));
    assert!(reason(own("en-US", "voice", "<speak>{{otp}}", Some("JOANNA"))).contains("SSML"));
    assert!(reason(own("en-US", "voice", "<speak>{{otp}}</speak>", Some("Joanna"))).contains("VoiceId"));
    let mut typed = own("en-US", "sms", "{{otp}}", None);
    typed["body"] = json!({"N": "5"});
    assert_eq!(reason(typed), "attribute body is of type N, not S");
    assert!(reason(legacy("9", "email", "en", "@otp", None)).contains("voice call"));
    assert!(reason(json!({"locale": {"S": "en-US"}, "note": {"S": "x"}})).contains("neither format"));
    let both = parse_item(&item(json!({"channel": {"S": "sms"}, "message": {"S": "@otp"}})), 7);
    assert_eq!(both.label, "item 7");
    assert!(both.template.unwrap_err().contains("both formats"));
    // The key is known even when the template is bad: duplicates are found among all items.
    assert!(parse_item(&item(own("en-US", "sms", "no code", None)), 0).key.is_some());
}

#[test]
fn long_or_odd_labels_are_cut_and_cleaned() {
    let e = parse_item(&item(own(&"x".repeat(200), "sms\n", "{{otp}}", None)), 0);
    assert!(e.label.chars().count() <= 65 && !e.label.contains('\n'), "{}", e.label);
}

#[test]
fn own_item_is_what_the_parser_reads() {
    let t = Template { body: "<speak>{{otp}}</speak>".into(), voice_id: Some("JOANNA".into()) };
    let l = Locale::parse("en-GB").unwrap();
    let it = own_item(&l, Channel::Voice, &t, Some("2026-01-31T12:00:00Z"));
    let e = parse_item(&it, 0);
    assert_eq!(e.template, Ok(t));
    assert_eq!(e.key, Some((l, Channel::Voice)));
}

// ---- publishing ---------------------------------------------------------------------------------

#[test]
fn first_sync_publishes_set_then_pointer() {
    let w = world(sample_table());
    let r = w.run();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.outcome, RunOutcome::Published);
    assert_eq!((r.scanned, r.valid, r.invalid, r.templates, r.added), (5, 5, 0, 5, 5));
    assert_eq!((r.dynamodb_requests, r.dynamodb_pages, r.dynamodb_retries), (1, 1, 0));
    assert_eq!((r.kv_reads, r.kv_writes), (1, 2));
    let p = w.pointer();
    assert_eq!(Some(p.pointer.version.clone()), r.version);
    assert_eq!(p.previous, None);
    assert_eq!(p.pointer.templates, 5);
    assert_eq!(p.pointer.published_at_ms, NOW_MS);
    assert!(w.kv.value(&p.pointer.key).is_some());
    assert_eq!(w.sms_for("fr-FR").as_deref(), Some("Votre code : {{otp}}"));
}

#[test]
fn scan_requests_are_signed_consistent_and_bounded() {
    let w = world(sample_table());
    w.run();
    let reqs = w.http.requests.borrow();
    let (req, timeout) = &reqs[0];
    assert_eq!(req.url, "https://dynamodb.eu-west-1.amazonaws.com/");
    assert_eq!(req.header("x-amz-target"), Some("DynamoDB_20120810.Scan"));
    let auth = req.header("authorization").unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20270115/eu-west-1/dynamodb/aws4_request"),
        "{auth}"
    );
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body, json!({"TableName": "otp-templates", "Limit": 100, "ConsistentRead": true}));
    assert_eq!(*timeout, REQUEST_TIMEOUT_MS);
}

#[test]
fn unchanged_table_means_zero_kv_writes() {
    let w = world(sample_table());
    let first = w.run();
    let writes = w.kv.writes();
    let again = w.run();
    assert!(again.ok);
    assert_eq!(again.outcome, RunOutcome::Unchanged);
    assert_eq!(w.kv.writes(), writes, "no KV write at all");
    assert_eq!((again.kv_reads, again.kv_writes), (2, 0));
    assert_eq!(again.version, first.version);
    assert_eq!(again.previous_version, first.version);
    assert_eq!((again.unchanged, again.added, again.changed, again.removed), (5, 0, 0, 0));
}

#[test]
fn a_change_writes_set_and_pointer_and_drops_the_set_two_versions_back() {
    let w = world(sample_table());
    let r1 = w.run();
    w.remember(&r1);
    w.table.borrow_mut()[3] = own("fr-FR", "sms", "Code de vérification : {{otp}}", None);
    let r2 = w.run();
    w.remember(&r2);
    assert_eq!(r2.outcome, RunOutcome::Published);
    assert_eq!((r2.added, r2.changed, r2.unchanged, r2.removed), (0, 1, 4, 0));
    assert_eq!((r2.kv_reads, r2.kv_writes), (2, 2), "no older set to delete yet");
    assert_eq!(w.pointer().previous, Some(set_key(r1.version.as_deref().unwrap())));
    assert_eq!(w.sms_for("fr-FR").as_deref(), Some("Code de vérification : {{otp}}"));
    // Both sets are still there: an edge location that still reads the old pointer still works.
    assert!(w.kv.value(&set_key(r1.version.as_deref().unwrap())).is_some());

    w.table.borrow_mut().remove(4); // de-DE sms deleted
    let r3 = w.run();
    w.remember(&r3);
    assert_eq!((r3.removed, r3.removed_templates.clone()), (1, vec!["de-DE/sms".to_string()]));
    assert_eq!((r3.kv_reads, r3.kv_writes), (2, 3), "set, pointer, delete");
    assert!(w.kv.value(&set_key(r1.version.as_deref().unwrap())).is_none(), "two versions back is gone");
    assert!(w.kv.value(&set_key(r2.version.as_deref().unwrap())).is_some());
    assert_eq!(w.set_keys().len(), 2);
    assert_eq!(w.sms_for("de-DE"), None, "gone from the edge");

    // Back to the r2 content: the set still exists, nothing must delete the one in service.
    w.table.borrow_mut().push(own("de-DE", "sms", "Ihr Code lautet {{otp}}.", None));
    let r4 = w.run();
    assert_eq!(r4.version, r2.version);
    assert!(w.kv.value(&set_key(r2.version.as_deref().unwrap())).is_some());
    assert!(w.kv.value(&set_key(r3.version.as_deref().unwrap())).is_some());
}

#[test]
fn replaces_a_kv_seed_publication_and_later_deletes_it() {
    let w = world(sample_table());
    let (seed, _) = TemplateSet::build([(
        "en-US".to_string(),
        LocaleTemplates { sms: Some(Template { body: "Seed {{otp}}".into(), voice_id: None }), voice: None },
    )]);
    w.kv.insert(&set_key(seed.version()), &seed.to_json());
    w.kv.insert(CURRENT_KEY, &serde_json::to_string(&Pointer::for_set(&seed, 1)).unwrap());
    let r = w.run();
    assert_eq!(r.previous_version.as_deref(), Some(seed.version()));
    assert_eq!((r.added, r.changed), (4, 1));
    w.table.borrow_mut().pop();
    w.run();
    assert!(w.kv.value(&set_key(seed.version())).is_none());
}

#[test]
fn kv_operations_stay_bounded_for_a_large_table() {
    let mut items = Vec::new();
    for lang in ["aa", "ab", "ae", "af", "ak"] {
        for region in 100..300 {
            items.push(own(&format!("{lang}-{region}"), "sms", &format!("{lang} {region}: {{{{otp}}}}"), None));
        }
    }
    let w = world_with(items, 100);
    let r = w.run();
    assert!(r.ok, "{:?}", r.error);
    assert_eq!((r.templates, r.dynamodb_pages), (1000, 10));
    assert!(r.kv_reads + r.kv_writes <= 5, "{r:?}");
    w.table.borrow_mut()[500] = own("ae-200", "sms", "changed {{otp}}", None);
    let r = w.run();
    assert_eq!((r.changed, r.unchanged), (1, 999));
    assert!(r.kv_reads + r.kv_writes <= 5, "{r:?}");
}

// ---- pagination ---------------------------------------------------------------------------------

#[test]
fn follows_last_evaluated_key_across_pages() {
    let w = world_with(sample_table(), 2);
    let r = w.run();
    assert!(r.ok);
    assert_eq!((r.dynamodb_pages, r.dynamodb_requests, r.scanned, r.templates), (3, 3, 5, 5));
    let reqs = w.http.requests.borrow();
    let starts: Vec<Value> = reqs
        .iter()
        .map(|(req, _)| serde_json::from_slice::<Value>(&req.body).unwrap()["ExclusiveStartKey"].clone())
        .collect();
    assert_eq!(starts, vec![Value::Null, json!({"pos": {"N": "2"}}), json!({"pos": {"N": "4"}})]);
}

#[test]
fn an_empty_page_with_a_key_is_not_the_end() {
    let w = world(sample_table());
    w.http.push(Ok(json_response(
        200,
        r#"{"Items":[],"Count":0,"ScannedCount":9,"LastEvaluatedKey":{"pos":{"N":"0"}}}"#,
    )));
    let r = w.run();
    assert!(r.ok, "{:?}", r.error);
    assert_eq!((r.dynamodb_pages, r.templates), (2, 5));
}

#[test]
fn a_key_that_does_not_advance_fails_instead_of_looping() {
    let w = world(sample_table());
    let page = r#"{"Items":[],"Count":0,"LastEvaluatedKey":{"pos":{"N":"7"}}}"#;
    w.http.push(Ok(json_response(200, page)));
    w.http.push(Ok(json_response(200, page)));
    let r = w.run();
    assert!(!r.ok);
    assert!(r.error.unwrap().contains("same LastEvaluatedKey"));
    assert_eq!(w.kv.writes(), 0);
}

#[test]
fn more_pages_than_allowed_publishes_nothing() {
    let mut w = world_with(sample_table(), 1);
    w.cfg.max_pages = 3;
    let r = w.run();
    assert!(!r.ok);
    assert!(r.error.unwrap().contains("SYNC_MAX_PAGES"));
    assert_eq!((r.dynamodb_pages, w.kv.writes()), (3, 0));
}

#[test]
fn a_run_stays_within_the_subrequest_budget_and_says_what_to_raise() {
    let mut w = world_with(sample_table(), 1);
    w.cfg.subrequest_budget = 3;
    let r = w.run();
    assert!(!r.ok);
    let e = r.error.unwrap();
    assert!(e.contains("WORKER_SUBREQUEST_BUDGET (3)") && e.contains("SYNC_PAGE_SIZE"), "{e}");
    assert_eq!((w.http.count(), r.dynamodb_pages, w.kv.writes()), (3, 3, 0), "the fourth Scan never left");
}

// ---- invalid items ------------------------------------------------------------------------------

#[test]
fn invalid_and_ambiguous_items_are_skipped_and_reported() {
    let mut items = sample_table();
    items.push(own("it-IT", "sms", "Il tuo codice", None)); // no placeholder
    items.push(own("es-ES", "sms", "Otra vez {{otp}}", None)); // second es-ES sms
    items.push(legacy("7", "sms", "ES-es", "Y otra @otp", None)); // third, legacy, other spelling
    items.push(json!({"locale": {"S": "xx"}}));
    let w = world(items);
    let r = w.run();
    assert!(r.ok);
    assert_eq!((r.scanned, r.valid, r.invalid, r.templates), (9, 4, 5, 4));
    assert_eq!((r.own_format, r.legacy_format), (7, 1));
    let reasons: Vec<String> = r.invalid_items.iter().map(|i| format!("{}: {}", i.item, i.reason)).collect();
    assert!(reasons.iter().any(|r| r.starts_with("it-IT/sms: ") && r.contains("placeholder")), "{reasons:?}");
    assert_eq!(reasons.iter().filter(|r| r.contains("ambiguous: 3 items are es-ES sms")).count(), 3, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("item 8: ")), "{reasons:?}");
    assert_eq!(w.sms_for("es-ES"), None, "an ambiguous template is not published");
    assert_eq!(w.sms_for("it-IT"), None);
}

#[test]
fn the_invalid_list_is_capped_but_the_count_is_not() {
    let mut items = sample_table();
    for i in 0..50 {
        items.push(legacy(&i.to_string(), "sms", "en", "no marker", None));
    }
    let r = world(items).run();
    assert_eq!((r.invalid, r.invalid_items.len()), (50, MAX_LISTED));
    assert!(r.to_json().len() < 8_000);
}

#[test]
fn a_table_without_any_valid_template_publishes_nothing() {
    let w = world(sample_table());
    let first = w.run();
    *w.table.borrow_mut() = vec![own("en-US", "sms", "no code", None)];
    let writes = w.kv.writes();
    let r = w.run();
    assert!(!r.ok);
    assert_eq!(r.outcome, RunOutcome::Failed);
    assert!(r.error.as_deref().unwrap().contains("no valid template"));
    assert_eq!(w.kv.writes(), writes);
    assert_eq!(r.version, first.version, "the previous set stays in service");
    *w.table.borrow_mut() = vec![];
    assert!(!w.run().ok, "an empty table does not wipe the edge");
    assert_eq!(w.pointer().pointer.version, first.version.unwrap());
}

// ---- DynamoDB failures ----------------------------------------------------------------------------

#[test]
fn throttling_and_5xx_are_retried_with_backoff() {
    let w = world(sample_table());
    w.http.push(throttled());
    w.http.push(Ok(json_response(500, r#"{"__type":"InternalServerError"}"#)));
    w.http.push(Err(FetchError::Network("reset".into())));
    let r = w.run();
    assert!(r.ok, "{:?}", r.error);
    assert_eq!((r.dynamodb_requests, r.dynamodb_retries), (4, 3));
    assert_eq!(w.clock.now_ms() - NOW_MS, 100 + 400 + 1600, "slept between attempts");
    assert_eq!(r.duration_ms, 2100);
}

#[test]
fn persistent_throttling_keeps_the_previous_set() {
    let w = world(sample_table());
    let first = w.run();
    w.table.borrow_mut()[0] = own("en-US", "sms", "New {{otp}}", None);
    for _ in 0..MAX_ATTEMPTS {
        w.http.push(throttled());
    }
    let writes = w.kv.writes();
    let r = w.run();
    assert!(!r.ok);
    assert!(r.error.as_deref().unwrap().contains("ProvisionedThroughputExceededException"), "{:?}", r.error);
    assert!(r.error.as_deref().unwrap().contains("after 4 attempts"));
    assert_eq!((r.dynamodb_requests, w.kv.writes()), (4, writes));
    assert_eq!((r.version.clone(), r.previous_version.clone()), (first.version.clone(), first.version.clone()));
    assert_eq!(w.sms_for("en-US").as_deref(), Some("Your code is {{otp}}."));
}

#[test]
fn permanent_errors_and_garbage_are_not_retried_and_publish_nothing() {
    for (status, body, expect) in [
        (
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#,
            "ResourceNotFoundException",
        ),
        (400, r#"{"__type":"com.amazon.coral.service#UnrecognizedClientException"}"#, "UnrecognizedClientException"),
        (200, "<html>captive portal</html>", "MalformedResponse"),
        (200, r#"{"Items":[{"locale":{"Q":"?"}}],"Count":1}"#, "MalformedResponse"),
        (200, r#"{"Items":[],"Count":3}"#, "MalformedResponse"),
    ] {
        let w = world(sample_table());
        let first = w.run();
        w.table.borrow_mut().pop();
        w.http.push(Ok(json_response(status, body)));
        let writes = w.kv.writes();
        let r = w.run();
        assert!(!r.ok, "{body}");
        assert!(r.error.as_deref().unwrap().contains(expect), "{:?}", r.error);
        assert_eq!(r.dynamodb_requests, 1, "{body}");
        assert_eq!(w.kv.writes(), writes, "{body}");
        assert_eq!(w.pointer().pointer.version, first.version.clone().unwrap());
    }
}

#[test]
fn garbage_on_a_later_page_publishes_nothing() {
    let w = world_with(sample_table(), 2);
    let first = w.run();
    w.table.borrow_mut().remove(0);
    let served = w.table.clone();
    let calls = Rc::new(RefCell::new(0));
    let c = calls.clone();
    w.http.answer_with(move |req| {
        *c.borrow_mut() += 1;
        if *c.borrow() == 2 {
            return Ok(json_response(200, r#"{"Items":"nope"}"#));
        }
        Ok(serve_page(&served.borrow(), req))
    });
    let r = w.run();
    assert!(!r.ok);
    assert!(r.error.as_deref().unwrap().contains("page 2"), "{:?}", r.error);
    assert_eq!(w.pointer().pointer.version, first.version.unwrap());
}

#[test]
fn the_run_is_time_bounded() {
    let w = world(sample_table());
    let clock = Rc::new(FakeClock::at(NOW_MS));
    let c = clock.clone();
    w.http.answer_with(move |_| {
        c.advance(REQUEST_TIMEOUT_MS);
        Err(FetchError::Timeout)
    });
    let r = block_on(run(&w.cfg, &w.http, &w.kv, &clock, Trigger::Cron));
    assert!(!r.ok);
    assert!(r.error.as_deref().unwrap().contains("no response before the timeout"), "{:?}", r.error);
    assert!(r.duration_ms <= RUN_BUDGET_MS);
    // Every page times out near the budget's end: the run stops instead of starting another.
    let slow = world_with(sample_table(), 1);
    let clock = Rc::new(FakeClock::at(NOW_MS));
    let c = clock.clone();
    let served = slow.table.clone();
    slow.http.answer_with(move |req| {
        c.advance(40_000);
        Ok(serve_page(&served.borrow(), req))
    });
    let r = block_on(run(&slow.cfg, &slow.http, &slow.kv, &clock, Trigger::Cron));
    assert!(!r.ok);
    assert!(r.error.as_deref().unwrap().contains("longer than 120 s"), "{:?}", r.error);
    assert_eq!(slow.kv.writes(), 0);
}

#[test]
fn kv_failures_are_reported() {
    let w = world(sample_table());
    w.kv.fail_all(true);
    let r = w.run();
    assert!(!r.ok);
    assert!(r.error.unwrap().contains("templates/current"));
}

#[test]
fn an_unreadable_pointer_is_replaced_and_a_lost_set_is_rewritten() {
    let w = world(sample_table());
    w.kv.insert(CURRENT_KEY, "garbage");
    let r = w.run();
    assert!(r.ok);
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    let key = w.pointer().pointer.key;
    w.kv.insert(&key, "{}");
    let r = w.run();
    assert_eq!((r.outcome, r.kv_writes), (RunOutcome::Unchanged, 1));
    assert!(r.warnings[0].contains("rewritten"));
    assert!(w.sms_for("en-US").is_some());
}

// ---- report, status and admin ---------------------------------------------------------------------

#[test]
fn reports_are_kept_newest_first_and_bounded() {
    let w = world(sample_table());
    for _ in 0..(STATUS_RUNS + 3) {
        let r = w.run();
        block_on(record(&w.kv, &r)).unwrap();
        w.clock.advance(1000);
    }
    let s = block_on(status(&w.kv)).unwrap();
    let runs = s["runs"].as_array().unwrap();
    assert_eq!(runs.len(), STATUS_RUNS);
    assert!(runs[0]["startedAtMs"].as_u64() > runs[1]["startedAtMs"].as_u64());
    assert_eq!(runs[0]["outcome"], "unchanged");
    assert_eq!(s["inService"]["version"], w.pointer().pointer.version.as_str());
    assert_eq!(s["inService"]["templates"], 5);
}

#[test]
fn quiet_cron_runs_are_recorded_once_an_hour() {
    let w = world(sample_table());
    let cron = |w: &World| block_on(run(&w.cfg, &w.http, &w.kv, &w.clock, Trigger::Cron));
    let first = cron(&w);
    assert!(block_on(record(&w.kv, &first)).unwrap(), "a publication is always recorded");
    let quiet = |w: &World| {
        w.clock.advance(300_000);
        let r = cron(w);
        assert_eq!(r.outcome, RunOutcome::Unchanged);
        block_on(record(&w.kv, &r)).unwrap()
    };
    assert!(quiet(&w), "the first unchanged run after a publication");
    let writes = w.kv.writes();
    for _ in 0..11 {
        assert!(!quiet(&w), "same result within the hour (every 5 minutes): no write");
    }
    assert_eq!(w.kv.writes(), writes, "a quiet table costs no KV write at all");
    assert!(quiet(&w), "recorded again once the last record is an hour old");
    // Anything new is recorded at once: an admin run, an invalid item, a failure.
    w.clock.advance(1000);
    let admin = w.run();
    assert!(block_on(record(&w.kv, &admin)).unwrap());
    assert!(quiet(&w));
    w.table.borrow_mut().push(own("it-IT", "sms", "no code", None));
    assert!(quiet(&w), "a new invalid item is news");
    w.http.push(Ok(json_response(400, r#"{"__type":"ResourceNotFoundException"}"#)));
    w.clock.advance(1000);
    let failed = cron(&w);
    assert!(!failed.ok && block_on(record(&w.kv, &failed)).unwrap());
    assert!(quiet(&w), "the first quiet run after a failure");
    let runs = block_on(status(&w.kv)).unwrap()["runs"].as_array().unwrap().len();
    assert_eq!(runs, 8);
}

#[test]
fn log_line_is_one_json_object_with_the_counts() {
    let mut items = sample_table();
    items.push(own("it-IT", "sms", "x", None));
    let r = world(items).run();
    let line = r.log_line();
    assert!(!line.contains('\n'));
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!((v["msg"].as_str(), v["level"].as_str()), (Some("template-sync"), Some("info")));
    for k in [
        "scanned",
        "valid",
        "invalid",
        "invalidItems",
        "added",
        "changed",
        "unchanged",
        "removed",
        "durationMs",
        "dynamodbRequests",
        "kvReads",
        "kvWrites",
        "version",
        "error",
    ] {
        assert!(v.get(k).is_some(), "{k} missing from {line}");
    }
}

fn admin_settings(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> =
        [("ADMIN_SECRET", ADMIN)].into_iter().map(|(k, v)| (k.into(), v.into())).collect();
    for (k, v) in extra {
        m.insert(k.to_string(), v.to_string());
    }
    m
}

fn call(w: &World, op: Op, auth: Option<&str>, settings: &BTreeMap<String, String>, sync_on: bool) -> Handled {
    let edge = SyncEdge { http: &w.http, kv: &w.kv, clock: &w.clock };
    let sync = if sync_on { Ok(Some(w.cfg.clone())) } else { Ok(None) };
    block_on(admin::handle(op, auth, admin_secret(settings), sync, &Gate::default(), &edge))
}

fn reason(h: &Handled) -> String {
    let v: Value = serde_json::from_str(&h.answer.body).unwrap();
    v["error"]["errorCauses"][0]["reason"].as_str().unwrap_or_default().to_string()
}

#[test]
fn admin_endpoints_need_the_bearer_secret() {
    let w = world(sample_table());
    let s = admin_settings(&[]);
    let good = format!("Bearer {ADMIN}");
    for (auth, want) in [
        (None, "MISSING_CREDENTIALS"),
        (Some("Basic abc"), "MALFORMED_CREDENTIALS"),
        (Some(ADMIN), "MALFORMED_CREDENTIALS"),
        (Some("Bearer wrong-secret-wrong-secret-wrong"), "INVALID_CREDENTIALS"),
        (Some(&good[..good.len() - 1]), "INVALID_CREDENTIALS"),
    ] {
        let h = call(&w, Op::Sync, auth, &s, true);
        assert_eq!((h.answer.status, reason(&h)), (401, want.to_string()), "{auth:?}");
        assert!(!h.answer.body.contains(ADMIN));
    }
    assert_eq!(w.http.count(), 0, "nothing ran");
    let h = call(&w, Op::Sync, Some(&good), &s, true);
    assert_eq!(h.answer.status, 200, "{}", h.answer.body);
    let report: SyncReport = serde_json::from_str(&h.answer.body).unwrap();
    assert_eq!((report.outcome, report.trigger.as_str()), (RunOutcome::Published, "admin"));
    assert!(h.log.unwrap().contains("template-sync"));
    let lower = format!("bearer  {ADMIN} ");
    let h = call(&w, Op::Status, Some(&lower), &s, true);
    assert_eq!(h.answer.status, 200);
    let v: Value = serde_json::from_str(&h.answer.body).unwrap();
    assert_eq!(v["inService"]["version"].as_str(), report.version.as_deref());
    assert_eq!(v["runs"][0]["trigger"], "admin");
}

#[test]
fn admin_endpoints_answer_503_when_off_or_not_configured() {
    let w = world(sample_table());
    let good = format!("Bearer {ADMIN}");
    let h = call(&w, Op::Status, Some(&good), &BTreeMap::new(), true);
    assert_eq!((h.answer.status, reason(&h)), (503, "ADMIN_DISABLED".to_string()));
    let h = call(&w, Op::Status, Some(&good), &admin_settings(&[("ADMIN_SECRET", "short")]), true);
    assert_eq!((h.answer.status, reason(&h)), (503, "ADMIN_MISCONFIGURED".to_string()));
    assert!(h.alerts[0].contains("ADMIN_SECRET"));
    let h = call(&w, Op::Sync, Some(&good), &admin_settings(&[]), false);
    assert_eq!((h.answer.status, reason(&h)), (503, "SYNC_NOT_CONFIGURED".to_string()));
    // Unauthenticated callers learn nothing about the sync's configuration.
    let h = call(&w, Op::Sync, None, &admin_settings(&[]), false);
    assert_eq!(h.answer.status, 401);
}

#[test]
fn a_failed_admin_sync_is_502_with_the_report_and_an_alert() {
    let w = world(sample_table());
    w.http.push(Ok(json_response(400, r#"{"__type":"ResourceNotFoundException"}"#)));
    let h = call(&w, Op::Sync, Some(&format!("Bearer {ADMIN}")), &admin_settings(&[]), true);
    assert_eq!(h.answer.status, 502);
    let report: SyncReport = serde_json::from_str(&h.answer.body).unwrap();
    assert_eq!(report.outcome, RunOutcome::Failed);
    assert!(h.alerts.iter().any(|a| a.contains("ResourceNotFoundException")));
    assert!(w.kv.value(STATUS_KEY).unwrap().contains("ResourceNotFoundException"), "failures are kept too");
}

#[test]
fn one_run_at_a_time_per_isolate() {
    let w = world(sample_table());
    let gate = Gate::default();
    let edge = SyncEdge { http: &w.http, kv: &w.kv, clock: &w.clock };
    let held = gate.try_enter().unwrap();
    let h = block_on(admin::handle(
        Op::Sync,
        Some(&format!("Bearer {ADMIN}")),
        admin_secret(&admin_settings(&[])),
        Ok(Some(w.cfg.clone())),
        &gate,
        &edge,
    ));
    assert_eq!((h.answer.status, reason(&h)), (409, "SYNC_IN_PROGRESS".to_string()));
    let cron = block_on(admin::scheduled(Ok(Some(w.cfg.clone())), &gate, &edge));
    assert!(cron.log.unwrap().contains("already running"));
    drop(held);
    let cron = block_on(admin::scheduled(Ok(Some(w.cfg.clone())), &gate, &edge));
    let v: Value = serde_json::from_str(&cron.log.unwrap()).unwrap();
    assert_eq!((v["trigger"].as_str(), v["outcome"].as_str()), (Some("cron"), Some("published")));
    assert!(gate.try_enter().is_some(), "released after the run");
}

#[test]
fn cron_without_configuration_only_logs() {
    let w = world(sample_table());
    let edge = SyncEdge { http: &w.http, kv: &w.kv, clock: &w.clock };
    let h = block_on(admin::scheduled(Ok(None), &Gate::default(), &edge));
    assert!(h.log.unwrap().contains("TEMPLATE_TABLE is not set"));
    assert!(h.alerts.is_empty());
    let bad = crate::settings::ConfigError { setting: "SYNC_PAGE_SIZE", problem: "x".into() };
    let h = block_on(admin::scheduled(Err(bad), &Gate::default(), &edge));
    assert!(h.alerts[0].contains("SYNC_PAGE_SIZE"));
    assert_eq!((w.http.count(), w.kv.writes()), (0, 0));
}
