//! The guard's admin endpoints (Bearer `ADMIN_SECRET`, like every admin endpoint):
//!
//! - `GET /admin/guard/status`: refusals in the last hour by reason and country, and the keys
//!   most often over their limits, from the status object's tallies plus what this isolate has
//!   not sent yet. Other isolates' tallies arrive within [`super::TALLY_EVERY_MS`] of their next
//!   request.
//! - `POST /admin/guard/release` with `{"number": "+…"}` or `{"prefix": "+…"}`: forgets that
//!   key's counters (every shard of a prefix). Other isolates may go on refusing a tripped key
//!   for up to [`super::TRIP_MEMORY_MS`].

use serde::Deserialize;
use serde_json::json;

use super::config::GuardConfig;
use super::{prefix_objects, shards_for, windows_for, KeyKind, Tripped, ENROLLMENT, STATUS_OBJECT};
use crate::admin::{refuse, AdminSecret};
use crate::edge::Durable;
use crate::http::Handled;
use crate::http::{self, Answer};
use crate::ledger::{Reply, Request};
use crate::phone::E164;
use crate::settings::ConfigError;
use crate::telephony::answer;
use crate::telephony::replay;

const CALL_TIMEOUT_MS: u64 = 2_000;
const MAX_BODY_BYTES: usize = 1024;
/// Rows of each list in the status.
const TOP: usize = 50;

fn plain(answer: Answer) -> Handled {
    Handled::plain(answer)
}

fn ok(body: serde_json::Value) -> Handled {
    plain(Answer { status: 200, body: body.to_string() })
}

/// `GET /admin/guard/status`.
pub async fn status<D: Durable>(
    authorization: Option<&str>,
    admin: Result<Option<AdminSecret>, ConfigError>,
    ledger: &D,
    pending: Vec<(String, u64)>,
) -> Handled {
    if let Some(refused) = refuse(authorization, admin) {
        return refused;
    }
    let stored = match crate::ledger::call(ledger, STATUS_OBJECT, &Request::Counters, CALL_TIMEOUT_MS).await {
        Ok(Reply::Counters { counters }) => counters,
        Ok(_) | Err(_) => {
            return plain(http::plain_error(503, "The guard's status object did not answer", "GUARD_UNAVAILABLE"))
        }
    };
    let mut totals = std::collections::BTreeMap::<String, u64>::new();
    for (name, n) in stored.into_iter().chain(pending) {
        *totals.entry(name).or_default() += n;
    }
    let mut refusals = Vec::new();
    let mut keys = Vec::new();
    for (name, n) in totals {
        let parts: Vec<&str> = name.splitn(4, ':').collect();
        match parts.as_slice() {
            ["t", "refused", reason, country] => {
                refusals.push(json!({"reason": reason, "country": country, "lastHour": n}))
            }
            ["t", "limited", kind, key] => keys.push(json!({"kind": kind, "key": key, "refusedLastHour": n})),
            _ => {}
        }
    }
    let by_count = |field: &'static str| {
        move |a: &serde_json::Value, b: &serde_json::Value| b[field].as_u64().cmp(&a[field].as_u64())
    };
    refusals.sort_by(by_count("lastHour"));
    keys.sort_by(by_count("refusedLastHour"));
    refusals.truncate(TOP);
    keys.truncate(TOP);
    ok(json!({"refusals": refusals, "busiestKeys": keys}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseBody {
    number: Option<String>,
    prefix: Option<String>,
}

/// `POST /admin/guard/release`.
pub async fn release<D: Durable>(
    authorization: Option<&str>,
    admin: Result<Option<AdminSecret>, ConfigError>,
    cfg: &GuardConfig,
    ledger: &D,
    tripped: &Tripped,
    body: &[u8],
) -> Handled {
    if let Some(refused) = refuse(authorization, admin) {
        return refused;
    }
    let bad = |detail: &str| plain(answer::bad_request(400, detail, "MALFORMED_REQUEST", "body"));
    if body.len() > MAX_BODY_BYTES {
        return bad("the body is too large");
    }
    let Ok(req) = serde_json::from_slice::<ReleaseBody>(body) else {
        return bad(r#"expected {"number": "+…"} or {"prefix": "+…"}"#);
    };
    let (kind, objects, shown) = match (req.number, req.prefix) {
        (Some(n), None) => match E164::parse(&n) {
            Ok(e) => (KeyKind::Number, vec![replay::object_name(e.as_str())], e.masked()),
            Err(_) => return bad("number is not a phone number"),
        },
        (None, Some(p)) => {
            let digits = p.strip_prefix('+').unwrap_or("");
            if digits.is_empty() || digits.len() > 14 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return bad("prefix must be '+' and 1 to 14 digits (a number without its last 4 digits)");
            }
            let shards = shards_for(&windows_for(cfg, KeyKind::Prefix, ENROLLMENT));
            (KeyKind::Prefix, prefix_objects(&p, shards), p.clone())
        }
        _ => return bad(r#"give exactly one of "number" and "prefix""#),
    };
    for object in &objects {
        match crate::ledger::call(ledger, object, &Request::Release, CALL_TIMEOUT_MS).await {
            Ok(Reply::Ok) => tripped.forget(object),
            _ => return plain(http::plain_error(503, "A guard object did not answer", "GUARD_UNAVAILABLE")),
        }
    }
    let line = json!({"msg": "guard-release", "kind": kind.as_str(), "key": shown, "objects": objects.len()});
    Handled {
        answer: Answer { status: 200, body: json!({"released": kind.as_str(), "objects": objects.len()}).to_string() },
        log: Some(line.to_string()),
        alerts: vec![],
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use super::*;
    use crate::admin::admin_secret;
    use crate::guard::config::GuardConfig;
    use crate::testing::{block_on, FakeClock, MemDurable};

    const SECRET: &str = "an-admin-secret-of-32-characters";

    fn secret() -> Result<Option<AdminSecret>, ConfigError> {
        admin_secret(&BTreeMap::from([("ADMIN_SECRET".to_string(), SECRET.to_string())]))
    }

    fn bearer() -> String {
        format!("Bearer {SECRET}")
    }

    #[test]
    fn status_needs_the_admin_secret_and_merges_pending_tallies() {
        let ledger = MemDurable::new(Rc::new(FakeClock::at(1_000_000)));
        assert_eq!(block_on(status(None, secret(), &ledger, vec![])).answer.status, 401);
        let tally = r#"{"op":"tally","names":[["t:refused:RATE_LIMITED:LV",4],["t:limited:prefix:+371201",4]]}"#;
        block_on(crate::edge::Durable::call(&ledger, STATUS_OBJECT, tally.into(), 100)).unwrap();
        let pending =
            vec![("t:refused:RATE_LIMITED:LV".to_string(), 1), ("t:refused:COUNTRY_NOT_ALLOWED:CU".to_string(), 2)];
        let h = block_on(status(Some(&bearer()), secret(), &ledger, pending));
        let v: serde_json::Value = serde_json::from_str(&h.answer.body).unwrap();
        assert_eq!(v["refusals"][0], json!({"reason": "RATE_LIMITED", "country": "LV", "lastHour": 5}));
        assert_eq!(v["refusals"][1]["country"], "CU");
        assert_eq!(v["busiestKeys"][0], json!({"kind": "prefix", "key": "+371201", "refusedLastHour": 4}));
    }

    #[test]
    fn release_clears_a_number_or_every_shard_of_a_prefix() {
        let ledger = MemDurable::new(Rc::new(FakeClock::at(1_000_000)));
        let cfg = GuardConfig::from_getter(&|k: &str| {
            (k == "OTP_RATE_LIMITS").then(|| r#"{"prefix":[{"max":1000,"per_s":3600}]}"#.to_string())
        })
        .unwrap();
        let tripped = Tripped::default();
        let hit = r#"{"op":"hit","windows":[{"name":"w:3600","max":1,"per_s":3600}]}"#;
        for object in prefix_objects("+1415555", 4).iter().chain([&replay::object_name("+14155550123")]) {
            block_on(crate::edge::Durable::call(&ledger, object, hit.into(), 100)).unwrap();
            tripped.remember(object, crate::guard::Scope::All, 1_000_000, 60_000);
        }
        let h = block_on(release(Some(&bearer()), secret(), &cfg, &ledger, &tripped, br#"{"prefix":"+1415555"}"#));
        assert_eq!(h.answer.status, 200, "{}", h.answer.body);
        assert!(h.answer.body.contains(r#""objects":4"#));
        for object in prefix_objects("+1415555", 4) {
            assert!(ledger.objects.borrow()[&object].counters.borrow().is_empty(), "{object}");
            assert!(!tripped.is_tripped(&object, true, 1_000_001));
        }
        let number = replay::object_name("+14155550123");
        assert!(!ledger.objects.borrow()[&number].counters.borrow().is_empty());
        let h =
            block_on(release(Some(&bearer()), secret(), &cfg, &ledger, &tripped, br#"{"number":"+1 415 555 0123"}"#));
        assert_eq!(h.answer.status, 200);
        assert!(ledger.objects.borrow()[&number].counters.borrow().is_empty());
        assert!(!h.log.unwrap().contains("4155550123"), "the log shows the number masked");
        for bad in [
            &br#"{}"#[..],
            br#"{"number":"x"}"#,
            br#"{"prefix":"1415"}"#,
            br#"{"number":"+14155550123","prefix":"+1"}"#,
            b"nope",
        ] {
            assert_eq!(block_on(release(Some(&bearer()), secret(), &cfg, &ledger, &tripped, bad)).answer.status, 400);
        }
    }
}
