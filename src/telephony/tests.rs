//! The request path end to end, natively: real auth (pure-Rust RS256), templates from an
//! in-memory KV, a scripted End User Messaging peer.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::Value;

use super::*;
use crate::auth::rs256::PureRust;
use crate::template::store::{set_key, Pointer, CURRENT_KEY};
use crate::testing::issuer::{self, claims, mint};
use crate::testing::{block_on, json_response, FakeClock, MemDurable, MemKv, ScriptedHttp};

const NOW_MS: u64 = 1_800_000_000_000;
const RESET: &str = include_str!("../../tests/fixtures/okta/telephony-sms-password-reset.json");
const VOICE: &str = include_str!("../../tests/fixtures/okta/telephony-voice-mfa.json");
const PREVIEW: &str = include_str!("../../tests/fixtures/okta/telephony-sms-preview.json");

struct World {
    iso: Isolate<<PureRust as Rs256>::Key>,
    http: Rc<ScriptedHttp>,
    templates: MemKv,
    ledger: Rc<MemDurable>,
    clock: Rc<FakeClock>,
    _jwks: issuer::Jwks,
}

fn settings(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = [
        ("OKTA_ISSUER", issuer::ISSUER),
        ("OKTA_AUDIENCE", issuer::AUDIENCE),
        ("OKTA_ALLOWED_CLIENT_IDS", issuer::CLIENT),
        ("OKTA_REQUIRED_SCOPE", issuer::SCOPE),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        ("ORIGINATION_IDENTITIES", r#"{"US":"pool-us","default":"pool-any"}"#),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        m.insert(k.to_string(), v.to_string());
    }
    m
}

fn world(extra: &[(&str, &str)]) -> World {
    let http = Rc::new(ScriptedHttp::default());
    let jwks = issuer::serve(&http, |req| {
        req.header("x-amz-target").map(|_| json_response(200, &format!(r#"{{"MessageId":"mid-{}"}}"#, req.body.len())))
    });
    let templates = MemKv::default();
    let set = crate::template::tests::sample_set();
    templates.insert(&set_key(set.version()), &set.to_json());
    templates.insert(CURRENT_KEY, &serde_json::to_string(&Pointer::for_set(&set, 0)).unwrap());
    let config = Config::from_source(&settings(extra)).unwrap();
    let clock = Rc::new(FakeClock::at(NOW_MS));
    World {
        iso: Isolate::new(config),
        http,
        templates,
        ledger: Rc::new(MemDurable::new(clock.clone())),
        clock,
        _jwks: jwks,
    }
}

impl World {
    fn call(&self, headers: &[(&str, String)], body: Vec<u8>) -> Outcome {
        block_on(self.handle(headers, body))
    }
    async fn handle(&self, headers: &[(&str, String)], body: Vec<u8>) -> Outcome {
        self.handle_with(&self.http, headers, body).await
    }
    async fn handle_with(&self, http: &impl Http, headers: &[(&str, String)], body: Vec<u8>) -> Outcome {
        let edge = TelephonyEdge {
            http,
            templates_kv: &self.templates,
            ledger: &*self.ledger,
            clock: &self.clock,
            rs256: &PureRust,
        };
        let header = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        handle(&self.iso, &edge, header, || async { Ok(body) }, self.clock.now_ms()).await
    }
    fn bearer(&self) -> Vec<(&'static str, String)> {
        vec![("Authorization", format!("Bearer {}", mint("a", &claims((NOW_MS / 1000) as i64))))]
    }
    fn sends(&self) -> Vec<Value> {
        self.http
            .requests
            .borrow()
            .iter()
            .filter(|(r, _)| r.header("x-amz-target").is_some())
            .map(|(r, _)| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }
}

fn body(fixture: &str, f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_str(fixture).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

fn json_of(o: &Outcome) -> Value {
    serde_json::from_str(&o.answer.body).unwrap()
}

#[test]
fn sends_sms_and_answers_successful() {
    let w = world(&[]);
    let o = w.call(&w.bearer(), RESET.as_bytes().to_vec());
    assert_eq!(o.answer.status, 200);
    let v = json_of(&o);
    assert_eq!(v["commands"][0]["value"][0]["status"], "SUCCESSFUL");
    let sends = w.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["MessageBody"], "Your code is 905127.");
    assert_eq!(sends[0]["OriginationIdentity"], "pool-us");
    // otpExpires in the fixture has passed: TimeToLive is clamped to the API minimum.
    assert_eq!(sends[0]["TimeToLive"], 5);
    assert_eq!(
        v["commands"][0]["value"][0]["transactionId"],
        format!("mid-{}", serde_json::to_vec(&sends[0]).unwrap().len())
    );
}

#[test]
fn log_line_masks_the_number_and_never_carries_the_code() {
    let w = world(&[]);
    let o = w.call(&w.bearer(), RESET.as_bytes().to_vec());
    assert!(o.log.contains("\"phone\":\"+14******123\""), "{}", o.log);
    assert!(!o.log.contains("905127") && !o.log.contains("4155550123"), "{}", o.log);
    assert!(o.log.contains("\"eventId\":\"Zp0cE3nR8tYw2xQa6vBd4g\""));
}

#[test]
fn voice_uses_the_language_fallback_and_speaks_digits() {
    let w = world(&[]);
    let o = w.call(&w.bearer(), VOICE.as_bytes().to_vec());
    assert_eq!(json_of(&o)["commands"][0]["value"][0]["status"], "SUCCESSFUL");
    let sends = w.sends();
    assert_eq!(sends[0]["VoiceId"], "LUCIA");
    assert_eq!(sends[0]["OriginationIdentity"], "pool-any");
    let ssml = sends[0]["MessageBody"].as_str().unwrap();
    assert!(ssml.starts_with("<speak>") && !ssml.contains("482913") && ssml.contains(r#"4<break time="400ms"/>8"#));
}

#[test]
fn refuses_without_auth_and_sends_nothing() {
    let w = world(&[]);
    let o = w.call(&[], RESET.as_bytes().to_vec());
    assert_eq!(o.answer.status, 401);
    assert_eq!(json_of(&o)["error"]["errorCauses"][0]["reason"], "MISSING_CREDENTIALS");
    assert!(w.sends().is_empty());
}

#[test]
fn header_mode_compares_the_secret() {
    let w = world(&[
        ("OKTA_AUTH_MODE", "header"),
        ("OKTA_AUTH_HEADER", "X-Hook-Secret"),
        ("OKTA_HOOK_SECRET", "0123456789abcdef-secret"),
    ]);
    let bad = w.call(&[("X-Hook-Secret", "0123456789abcdef-secreT".into())], RESET.as_bytes().to_vec());
    assert_eq!(bad.answer.status, 401);
    let good = w.call(&[("x-hook-secret", "0123456789abcdef-secret".into())], RESET.as_bytes().to_vec());
    assert_eq!(good.answer.status, 200);
    assert_eq!(w.sends().len(), 1);
}

#[test]
fn malformed_body_is_400_and_oversized_is_413() {
    let w = world(&[]);
    let o = w.call(&w.bearer(), b"{not json".to_vec());
    assert_eq!(o.answer.status, 400);
    let o = w.call(&w.bearer(), body(RESET, |v| v["data"]["messageProfile"]["deliveryChannel"] = "fax".into()));
    assert_eq!(
        (o.answer.status, json_of(&o)["error"]["errorCauses"][0]["reason"].as_str()),
        (400, Some("UNSUPPORTED_DELIVERY_CHANNEL"))
    );
    let o = w.call(&w.bearer(), vec![b' '; 70_000]);
    assert_eq!(o.answer.status, 413);
    assert!(w.sends().is_empty());
}

#[test]
fn replay_returns_the_stored_answer_without_sending() {
    let w = world(&[]);
    let first = w.call(&w.bearer(), RESET.as_bytes().to_vec());
    assert!(first.log.contains(r#""ledger":"claimed""#), "{}", first.log);
    let second = w.call(&w.bearer(), RESET.as_bytes().to_vec());
    assert_eq!(first.answer, second.answer);
    assert!(second.log.contains(r#""ledger":"replayed""#), "{}", second.log);
    assert_eq!(w.sends().len(), 1);
    // Another isolate (its own memory) reaches the same ledger object.
    let other = World { iso: Isolate::new(Config::from_source(&settings(&[])).unwrap()), ..world(&[]) };
    let other = World { ledger: w.ledger.clone(), clock: w.clock.clone(), ..other };
    let third = other.call(&other.bearer(), RESET.as_bytes().to_vec());
    assert_eq!(third.answer, first.answer);
    assert!(other.sends().is_empty());
    // Same eventId, different content: a different request.
    let changed = w.call(&w.bearer(), body(RESET, |v| v["data"]["messageProfile"]["otpCode"] = "111222".into()));
    assert_eq!(changed.answer.status, 200);
    assert_eq!(w.sends().len(), 2);
}

#[test]
fn concurrent_copies_send_once_and_answer_alike() {
    let w = world(&[]);
    let _ = w.call(&w.bearer(), body(RESET, |v| v["eventId"] = "warm".into()));
    let slow = crate::testing::Yielding(w.http.clone());
    let (h1, h2, h3) = (w.bearer(), w.bearer(), w.bearer());
    let copies = futures_util::future::join3(
        w.handle_with(&slow, &h1, RESET.as_bytes().to_vec()),
        w.handle_with(&slow, &h2, RESET.as_bytes().to_vec()),
        w.handle_with(&slow, &h3, RESET.as_bytes().to_vec()),
    );
    let (a, b, c) = block_on(copies);
    assert_eq!(w.sends().len(), 2, "the warm-up and one send for three copies");
    assert_eq!(a.answer, b.answer);
    assert_eq!(a.answer, c.answer);
    assert_eq!(json_of(&a)["commands"][0]["value"][0]["status"], "SUCCESSFUL");
}

#[test]
fn failure_answers_are_replayed_too() {
    let w = world(&[]);
    // Warm the keys first so the scripted AWS answer below is not consumed by the JWKS fetch.
    let _ = w.call(&w.bearer(), body(RESET, |v| v["eventId"] = "warm".into()));
    let n = w.sends().len();
    w.http.push(Ok(json_response(400, r#"{"__type":"ConflictException","Reason":"DESTINATION_PHONE_NUMBER_OPTED_OUT","Message":"opted out +14155550123"}"#)));
    let first = w.call(&w.bearer(), RESET.as_bytes().to_vec());
    let v = json_of(&first);
    // A refusal for this destination: FAILED, so Okta's providers are not asked to send it.
    assert_eq!(v["commands"][0]["value"][0]["status"], "FAILED");
    let meta: Value =
        serde_json::from_str(v["commands"][0]["value"][0]["transactionMetadata"].as_str().unwrap()).unwrap();
    assert_eq!(meta["reason"], "OPTED_OUT");
    assert!(!first.answer.body.contains("Conflict") && !first.answer.body.contains("4155550123"));
    let again = w.call(&w.bearer(), RESET.as_bytes().to_vec());
    assert_eq!(first.answer, again.answer);
    assert_eq!(w.sends().len(), n + 1);
}

#[test]
fn a_timeout_is_pending_and_its_copy_is_not_resent() {
    let w = world(&[]);
    let _ = w.call(&w.bearer(), body(RESET, |v| v["eventId"] = "warm".into()));
    w.http.push(Err(crate::edge::FetchError::Timeout));
    let first = w.call(&w.bearer(), RESET.as_bytes().to_vec());
    let v = json_of(&first);
    assert_eq!(v["commands"][0]["value"][0]["status"], "PENDING", "{v}");
    assert!(v.get("error").is_none(), "an error object would have Okta send a second code");
    assert!(first.log.contains("PENDING:TIMEOUT"));
    let again = w.call(&w.bearer(), RESET.as_bytes().to_vec());
    assert_eq!(again.answer, first.answer);
    assert_eq!(w.sends().len(), 2, "the warm-up and the one that timed out");
}

#[test]
fn our_side_failures_keep_the_error_object() {
    let w = world(&[]);
    let _ = w.call(&w.bearer(), body(RESET, |v| v["eventId"] = "warm".into()));
    for _ in 0..3 {
        w.http.push(Ok(json_response(500, r#"{"__type":"InternalServerException","Message":"boom"}"#)));
    }
    let o = w.call(&w.bearer(), RESET.as_bytes().to_vec());
    assert_eq!(json_of(&o)["error"]["errorCauses"][0]["reason"], "PROVIDER_UNAVAILABLE");
}

#[test]
fn a_claim_never_settled_is_pending_outcome_unknown() {
    let w = world(&[]);
    let req = request::parse(RESET.as_bytes()).unwrap();
    let ticket = Ticket::new(&req, NOW_MS);
    let store = w.ledger.objects.borrow_mut().entry(ticket.object.clone()).or_default().clone();
    let record = crate::ledger::Record {
        state: crate::ledger::State::Claimed { since_ms: NOW_MS - 60_000 },
        expires_ms: NOW_MS + 600_000,
    };
    crate::ledger::Store::put(&*store, &ticket.key, &record).unwrap();
    let o = w.call(&w.bearer(), RESET.as_bytes().to_vec());
    assert!(o.log.contains("PENDING:OUTCOME_UNKNOWN"), "{}", o.log);
    assert!(w.sends().is_empty());
}

#[test]
fn ledger_unavailable_fails_open_by_default_and_closed_when_configured() {
    let w = world(&[]);
    w.ledger.fail.set(true);
    let o = w.call(&w.bearer(), RESET.as_bytes().to_vec());
    assert_eq!(json_of(&o)["commands"][0]["value"][0]["status"], "SUCCESSFUL");
    assert!(o.alerts.iter().any(|a| a.contains("OTP ledger")), "{:?}", o.alerts);
    assert_eq!(w.sends().len(), 1);

    let w = world(&[("OTP_GUARD_FAILURE", "closed")]);
    w.ledger.fail.set(true);
    let o = w.call(&w.bearer(), RESET.as_bytes().to_vec());
    assert_eq!(json_of(&o)["error"]["errorCauses"][0]["reason"], "LEDGER_UNAVAILABLE");
    assert!(w.sends().is_empty());
}

#[test]
fn preview_policy_simulate_sends_nothing() {
    let w = world(&[("PREVIEW_POLICY", "simulate")]);
    let o = w.call(&w.bearer(), PREVIEW.as_bytes().to_vec());
    let v = json_of(&o);
    assert_eq!(v["commands"][0]["value"][0]["status"], "SUCCESSFUL");
    assert!(v["commands"][0]["value"][0]["transactionId"].as_str().unwrap().starts_with("preview-"));
    assert!(w.sends().is_empty());
    // The default policy sends previews like any request.
    let w = world(&[]);
    w.call(&w.bearer(), PREVIEW.as_bytes().to_vec());
    assert_eq!(w.sends()[0]["DestinationPhoneNumber"], "+9876543210");
}

#[test]
fn without_published_templates_both_channels_use_the_builtin_set_never_oktas_text() {
    let w = world(&[]);
    let empty = MemKv::default();
    let w = World { templates: empty, ..w };
    let o = w.call(&w.bearer(), RESET.as_bytes().to_vec());
    assert!(o.alerts.iter().any(|a| a.contains("built-in")));
    let sms = w.sends()[0]["MessageBody"].as_str().unwrap().to_string();
    assert!(sms.contains("905127"), "{sms}");
    let okta_text: Value = serde_json::from_str(RESET).unwrap();
    assert_ne!(
        sms,
        okta_text["data"]["messageProfile"]["msgTemplate"].as_str().unwrap(),
        "caller-supplied text is never sent"
    );
    w.call(&w.bearer(), VOICE.as_bytes().to_vec());
    assert_eq!(w.sends()[1]["VoiceId"], "JOANNA");
    // Per request: the claim (with the number's windows), the prefix, country and user windows,
    // and the settle.
    assert_eq!(w.ledger.calls.get(), 10);
}

// ---- the toll-fraud guard ------------------------------------------------------------------------

fn status_and_reason(o: &Outcome) -> (String, String) {
    let v = json_of(o);
    let action = &v["commands"][0]["value"][0];
    let meta: Value = serde_json::from_str(action["transactionMetadata"].as_str().unwrap_or("{}")).unwrap_or_default();
    (action["status"].as_str().unwrap_or("").to_string(), meta["reason"].as_str().unwrap_or("").to_string())
}

fn to(number: &str, event: &str) -> Vec<u8> {
    body(RESET, |v| {
        v["eventId"] = event.into();
        v["data"]["messageProfile"]["phoneNumber"] = number.into();
    })
}

#[test]
fn guard_refuses_countries_outside_the_list_and_blocked_ranges_without_any_call() {
    let w = world(&[("OTP_ALLOWED_COUNTRIES", "US,CA"), ("OTP_VOICE_ALLOWED_COUNTRIES", "US")]);
    let o = w.call(&w.bearer(), to("+37120123456", "lv-1"));
    assert_eq!(status_and_reason(&o), ("FAILED".into(), "COUNTRY_NOT_ALLOWED".into()));
    assert!(
        o.log.contains(r#""guard":"COUNTRY_NOT_ALLOWED""#) && o.log.contains(r#""guardKey":"country""#),
        "{}",
        o.log
    );
    let o = w.call(&w.bearer(), to("+19005550123", "premium-1"));
    assert_eq!(status_and_reason(&o).1, "NUMBER_RANGE_BLOCKED");
    let voice_ca = body(VOICE, |v| v["data"]["messageProfile"]["phoneNumber"] = "+16135550123".into());
    assert_eq!(status_and_reason(&w.call(&w.bearer(), voice_ca)).1, "COUNTRY_NOT_ALLOWED");
    assert!(w.sends().is_empty());
    assert_eq!(w.ledger.calls.get(), 0, "static refusals need no state");
}

#[test]
fn number_limit_trips_at_exactly_n_plus_one_and_the_refusal_repeats_for_copies() {
    let w = world(&[("OTP_RATE_LIMITS", r#"{"number":[{"max":2,"per_s":600}]}"#)]);
    for i in 0..2 {
        assert_eq!(status_and_reason(&w.call(&w.bearer(), to("+14155550123", &format!("n{i}")))).0, "SUCCESSFUL");
    }
    let third = w.call(&w.bearer(), to("+14155550123", "n2"));
    assert_eq!(status_and_reason(&third), ("FAILED".into(), "RATE_LIMITED".into()));
    assert!(third.log.contains(r#""guardKey":"number""#));
    assert_eq!(w.call(&w.bearer(), to("+14155550123", "n2")).answer, third.answer);
    // Another number is unaffected; copies of an allowed request are not counted.
    assert_eq!(status_and_reason(&w.call(&w.bearer(), to("+14155550124", "m0"))).0, "SUCCESSFUL");
    assert_eq!(status_and_reason(&w.call(&w.bearer(), to("+14155550123", "n0"))).0, "SUCCESSFUL");
    assert_eq!(w.sends().len(), 3);
}

#[test]
fn prefix_limit_trips_alerts_once_and_is_then_refused_by_the_isolate() {
    let w = world(&[("OTP_RATE_LIMITS", r#"{"prefix":[{"max":3,"per_s":3600}]}"#)]);
    for i in 0..3 {
        let o = w.call(&w.bearer(), to(&format!("+1415555010{i}"), &format!("p{i}")));
        assert_eq!(status_and_reason(&o).0, "SUCCESSFUL");
    }
    let o = w.call(&w.bearer(), to("+14155550109", "p9"));
    assert_eq!(status_and_reason(&o).1, "RATE_LIMITED");
    assert!(o.log.contains(r#""guardKey":"prefix""#));
    assert!(o.alerts.iter().any(|a| a.contains("prefix +1415555")), "{:?}", o.alerts);
    let calls = w.ledger.calls.get();
    let o = w.call(&w.bearer(), to("+14155550108", "p8"));
    assert_eq!(status_and_reason(&o).1, "RATE_LIMITED");
    assert!(o.alerts.is_empty(), "one alert per trip");
    assert!(w.ledger.calls.get() - calls < 5, "the tripped prefix object was not asked again");
    assert_eq!(w.sends().len(), 3);
}

#[test]
fn enrollment_windows_apply_in_addition() {
    let w = world(&[("OTP_RATE_LIMITS", r#"{"user":[],"enrollment":{"user":[{"max":1,"per_s":86400}]}}"#)]);
    let enrol = |event: &str| {
        body(RESET, |v| {
            v["eventId"] = event.into();
            v["requestType"] = "com.okta.user.telephony.pre-enrollment".into();
            v["data"]["messageProfile"]["phoneNumber"] = format!("+1415555{}", &event[1..]).into();
        })
    };
    assert_eq!(status_and_reason(&w.call(&w.bearer(), enrol("e0101"))).0, "SUCCESSFUL");
    let o = w.call(&w.bearer(), enrol("e0202"));
    assert_eq!(status_and_reason(&o).1, "RATE_LIMITED");
    assert!(o.log.contains(r#""guardKey":"user""#), "{}", o.log);
    // Not an enrolment: the user has no windows of its own here.
    assert_eq!(status_and_reason(&w.call(&w.bearer(), to("+14155550303", "x3"))).0, "SUCCESSFUL");
}

#[test]
fn monitor_mode_sends_and_logs_what_it_would_refuse() {
    let w = world(&[
        ("OTP_GUARD_MODE", "monitor"),
        ("OTP_ALLOWED_COUNTRIES", "US"),
        ("OTP_RATE_LIMITS", r#"{"number":[{"max":1,"per_s":600}]}"#),
    ]);
    let o = w.call(&w.bearer(), to("+447911123456", "gb"));
    assert_eq!(status_and_reason(&o).0, "SUCCESSFUL");
    assert!(o.log.contains(r#""guard":"COUNTRY_NOT_ALLOWED""#) && o.log.contains(r#""guardMode":"monitor""#));
    w.call(&w.bearer(), to("+14155550123", "a"));
    let o = w.call(&w.bearer(), to("+14155550123", "b"));
    assert_eq!(status_and_reason(&o).0, "SUCCESSFUL");
    assert!(o.log.contains(r#""guard":"RATE_LIMITED""#) && o.log.contains(r#""guardMode":"monitor""#), "{}", o.log);
    assert_eq!(w.sends().len(), 3);
}

#[test]
fn off_mode_checks_nothing() {
    let w = world(&[("OTP_GUARD_MODE", "off"), ("OTP_ALLOWED_COUNTRIES", "US")]);
    let o = w.call(&w.bearer(), to("+19005550123", "premium"));
    assert_eq!(status_and_reason(&o).0, "SUCCESSFUL");
    assert_eq!(w.ledger.calls.get(), 2, "the claim and the settle only");
}

#[test]
fn guard_objects_unavailable_fail_open_or_closed() {
    let w = world(&[]);
    w.ledger.fail_objects.borrow_mut().extend(["pfx:", "cc:", "user:"]);
    let o = w.call(&w.bearer(), RESET.as_bytes().to_vec());
    assert_eq!(status_and_reason(&o).0, "SUCCESSFUL");
    assert!(o.alerts.iter().any(|a| a.contains("guard objects did not answer")));
    let w = world(&[("OTP_GUARD_FAILURE", "closed")]);
    w.ledger.fail_objects.borrow_mut().push("cc:");
    let o = w.call(&w.bearer(), RESET.as_bytes().to_vec());
    assert_eq!(json_of(&o)["error"]["errorCauses"][0]["reason"], "GUARD_UNAVAILABLE");
    assert!(w.sends().is_empty());
    // The refusal is recorded: a copy gets it again.
    assert_eq!(w.call(&w.bearer(), RESET.as_bytes().to_vec()).answer, o.answer);
}

#[test]
fn tallies_go_to_the_status_object_at_most_every_few_seconds() {
    let w = world(&[("OTP_ALLOWED_COUNTRIES", "US")]);
    let first = w.call(&w.bearer(), to("+37120123456", "lv-1"));
    let d = first.deferred.expect("the first tally is sent at once");
    assert_eq!(d.object, "guard:status");
    assert!(d.body.contains("t:refused:COUNTRY_NOT_ALLOWED:LV"), "{}", d.body);
    assert!(w.call(&w.bearer(), to("+37120123457", "lv-2")).deferred.is_none());
    w.clock.advance(crate::guard::TALLY_EVERY_MS);
    assert!(w.call(&w.bearer(), to("+37120123458", "lv-3")).deferred.unwrap().body.contains(r#",2]"#));
}
