//! Okta's event-hook delivery (`com.okta.event_hook`) → the relevant events, as queue messages.
//! Only the fields the provisioning needs are read; everything else in a LogEvent is ignored.

use serde::Deserialize;

use super::config::EventsConfig;
use crate::provisioning::message::QueueMessage;

/// The largest delivery accepted (413 beyond). Okta does not document a maximum; a delivery is
/// never refused for its size or event count below this bound, far above what Okta sends (a 4xx is
/// never retried by Okta, so a refused delivery is lost).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

const MEMBERSHIP_APP: &[&str] = &["application.user_membership.add", "application.user_membership.remove"];
const MEMBERSHIP_GROUP: &[&str] = &["group.user_membership.add", "group.user_membership.remove"];
const USER_EVENTS: &[&str] = &[
    "user.lifecycle.activate",
    "user.lifecycle.deactivate",
    "user.lifecycle.suspend",
    "user.lifecycle.unsuspend",
    "user.lifecycle.reactivate",
    "user.lifecycle.delete.initiated",
    "user.account.update_profile",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delivery {
    event_type: String,
    event_id: Option<String>,
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    events: Vec<LogEvent>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogEvent {
    uuid: String,
    event_type: String,
    published: Option<String>,
    outcome: Option<EventOutcome>,
    target: Option<Vec<Target>>,
}

#[derive(Deserialize)]
struct EventOutcome {
    result: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    id: Option<String>,
    #[serde(rename = "type")]
    type_: Option<String>,
    alternate_id: Option<String>,
}

/// A parsed delivery: its id, how many events it carried, and the relevant ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub event_id: Option<String>,
    pub received: usize,
    pub relevant: Vec<QueueMessage>,
}

/// Why a delivery body was refused (400).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON, or not the delivery shape (the serde message names the field).
    Malformed(String),
    /// `eventType` is not `com.okta.event_hook`.
    WrongType,
}

impl ParseError {
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::Malformed(_) => "MALFORMED_BODY",
            ParseError::WrongType => "UNEXPECTED_EVENT_TYPE",
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Malformed(e) => write!(f, "malformed delivery: {e}"),
            ParseError::WrongType => f.write_str("eventType is not com.okta.event_hook"),
        }
    }
}

/// serde's message without any value from the body (it quotes offending strings, which may be a
/// login): only a missing field's name, or the error class, and the position.
fn describe(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    if msg.starts_with("missing field") {
        msg
    } else {
        format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column())
    }
}

fn target<'a>(targets: &'a [Target], type_: &str) -> Option<&'a Target> {
    targets.iter().find(|t| t.type_.as_deref() == Some(type_) && t.id.as_deref().is_some_and(|id| !id.is_empty()))
}

fn target_id(targets: &[Target], type_: &str) -> Option<String> {
    target(targets, type_).and_then(|t| t.id.clone())
}

/// Parses a delivery and keeps the events that matter for provisioning: a known type, outcome
/// `SUCCESS`, a `User` target, and, for memberships, a configured app or group.
pub fn parse(body: &[u8], cfg: &EventsConfig) -> Result<Parsed, ParseError> {
    let delivery: Delivery = serde_json::from_slice(body).map_err(|e| ParseError::Malformed(describe(&e)))?;
    if delivery.event_type != "com.okta.event_hook" {
        return Err(ParseError::WrongType);
    }
    let received = delivery.data.events.len();
    let relevant = delivery.data.events.into_iter().filter_map(|e| relevant(e, cfg)).collect();
    Ok(Parsed { event_id: delivery.event_id, received, relevant })
}

fn relevant(e: LogEvent, cfg: &EventsConfig) -> Option<QueueMessage> {
    if e.outcome.as_ref().and_then(|o| o.result.as_deref()) != Some("SUCCESS") || e.uuid.is_empty() {
        return None;
    }
    let targets = e.target.as_deref().unwrap_or(&[]);
    let ty = e.event_type.as_str();
    let (mut app_id, mut group_id) = (None, None);
    if MEMBERSHIP_APP.contains(&ty) {
        app_id = Some(target_id(targets, "AppInstance").filter(|id| cfg.app_ids.contains(id))?);
    } else if MEMBERSHIP_GROUP.contains(&ty) {
        group_id = Some(target_id(targets, "UserGroup").filter(|id| cfg.group_ids.contains(id))?);
    } else if !USER_EVENTS.contains(&ty) {
        return None;
    }
    let user = target(targets, "User")?;
    Some(QueueMessage {
        uuid: e.uuid,
        event_type: e.event_type,
        user_id: user.id.clone()?,
        login: user.alternate_id.clone().filter(|s| !s.is_empty()),
        published: e.published,
        app_id,
        group_id,
        users: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provisioning::message::pack;
    use serde_json::{json, Value};

    pub(crate) fn cfg() -> EventsConfig {
        EventsConfig {
            auth_header: "Authorization".into(),
            secret: "0123456789abcdef".into(),
            app_ids: vec!["0oa1connectapp000x1".into()],
            group_ids: vec!["00g1connectgrp000x1".into()],
        }
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/fixtures/okta/event-hook-{name}.json", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn delivery(events: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"eventType": "com.okta.event_hook", "eventId": "d1", "data": {"events": events}}))
            .unwrap()
    }

    fn event(ty: &str, result: &str, targets: Value) -> Value {
        json!({"uuid": format!("u-{ty}"), "eventType": ty, "published": "2026-11-20T13:47:07.306Z",
               "outcome": {"result": result, "reason": null}, "target": targets})
    }

    fn user() -> Value {
        json!({"id": "00uUSER", "type": "User", "alternateId": "ana@example.com"})
    }

    #[test]
    fn app_fixture_takes_the_user_target_not_the_app_user() {
        let p = parse(&fixture("app-membership-add"), &cfg()).unwrap();
        assert_eq!(p.event_id.as_deref(), Some("ffe9af67-e56c-4229-b6c9-96f66ed382f1"));
        assert_eq!(p.received, 1);
        assert_eq!(
            p.relevant,
            vec![QueueMessage {
                uuid: "4a19d863-4e0e-4645-bce4-2850f783a55f".into(),
                event_type: "application.user_membership.add".into(),
                user_id: "00u1a2b3c4d5e6f7g8h9".into(),
                login: Some("ana.garcia@example.com".into()),
                published: Some("2026-11-20T13:47:07.306Z".into()),
                app_id: Some("0oa1connectapp000x1".into()),
                group_id: None,
                users: vec![],
            }]
        );
    }

    #[test]
    fn group_and_batch_fixtures() {
        let p = parse(&fixture("group-membership-add"), &cfg()).unwrap();
        assert_eq!(p.relevant.len(), 1);
        assert_eq!(p.relevant[0].user_id, "00u9z8y7x6w5v4u3t2s1");
        assert_eq!(p.relevant[0].group_id.as_deref(), Some("00g1connectgrp000x1"));
        let p = parse(&fixture("batch-mixed"), &cfg()).unwrap();
        let types: Vec<_> = p.relevant.iter().map(|m| m.event_type.as_str()).collect();
        assert_eq!(types, ["group.user_membership.add", "group.user_membership.remove", "user.lifecycle.deactivate"]);
        assert_eq!(p.relevant[2].app_id, None);
        assert_eq!(p.relevant[2].group_id, None);
    }

    #[test]
    fn membership_must_name_a_configured_app_or_group() {
        let app = |id: &str| json!({"id": id, "type": "AppInstance"});
        let grp = |id: &str| json!({"id": id, "type": "UserGroup"});
        let events = json!([
            event("application.user_membership.remove", "SUCCESS", json!([user(), app("0oaOTHER")])),
            event("group.user_membership.add", "SUCCESS", json!([user(), grp("00gOTHER")])),
            event("group.user_membership.add", "SUCCESS", json!([user(), app("0oa1connectapp000x1")])),
            event("application.user_membership.add", "SUCCESS", json!([user(), grp("00g1connectgrp000x1")])),
            event("application.user_membership.remove", "SUCCESS", json!([user()])),
        ]);
        let p = parse(&delivery(events), &cfg()).unwrap();
        assert_eq!(p.received, 5);
        assert!(p.relevant.is_empty());
        let mut c = cfg();
        c.app_ids.clear();
        let p = parse(&fixture("app-membership-add"), &c).unwrap();
        assert!(p.relevant.is_empty(), "no configured app: no app membership counts");
    }

    #[test]
    fn lifecycle_and_profile_events_always_count() {
        let events: Vec<Value> = USER_EVENTS.iter().map(|t| event(t, "SUCCESS", json!([user()]))).collect();
        let mut c = cfg();
        c.app_ids.clear();
        c.group_ids.clear();
        let p = parse(&delivery(Value::Array(events)), &c).unwrap();
        assert_eq!(p.relevant.len(), USER_EVENTS.len());
        assert!(p.relevant.iter().all(|m| m.user_id == "00uUSER" && m.login.as_deref() == Some("ana@example.com")));
    }

    #[test]
    fn failures_other_types_and_userless_events_are_ignored() {
        let events = json!([
            event("user.lifecycle.deactivate", "FAILURE", json!([user()])),
            event("user.lifecycle.suspend", "DENY", json!([user()])),
            json!({"uuid": "x", "eventType": "user.lifecycle.suspend", "target": [user()]}),
            event("user.session.start", "SUCCESS", json!([user()])),
            event("user.account.lock", "SUCCESS", json!([user()])),
            event("user.lifecycle.suspend", "SUCCESS", json!([{"id": "0uaAPPUSER", "type": "AppUser"}])),
            event("user.lifecycle.suspend", "SUCCESS", Value::Null),
        ]);
        let p = parse(&delivery(events), &cfg()).unwrap();
        assert_eq!(p.received, 7);
        assert!(p.relevant.is_empty());
    }

    #[test]
    fn message_json_shape() {
        let p = parse(&fixture("batch-mixed"), &cfg()).unwrap();
        let v: Value = serde_json::to_value(&p.relevant[2]).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["eventType", "login", "published", "userId", "uuid"]);
        let v: Value = serde_json::to_value(&p.relevant[0]).unwrap();
        assert_eq!(v["groupId"], "00g1connectgrp000x1");
    }

    #[test]
    fn refuses_malformed_deliveries() {
        let cases: [&[u8]; 5] = [
            b"not json",
            b"{}",
            br#"{"eventType":"com.okta.event_hook","data":{}}"#,
            br#"{"eventType":"com.okta.event_hook","data":{"events":[{"eventType":"x"}]}}"#,
            br#"[1,2]"#,
        ];
        for body in cases {
            assert!(matches!(parse(body, &cfg()), Err(ParseError::Malformed(_))), "{}", String::from_utf8_lossy(body));
        }
        let leaky = br#"{"eventType":"com.okta.event_hook","data":{"events":[{"uuid":"1","eventType":"x","target":"ana@example.com"}]}}"#;
        let Err(ParseError::Malformed(m)) = parse(leaky, &cfg()) else { panic!() };
        assert!(!m.contains("ana@"), "{m}");
        let Err(ParseError::Malformed(m)) = parse(b"{}", &cfg()) else { panic!() };
        assert!(m.contains("missing field `eventType`"), "{m}");
        let wrong = br#"{"eventType":"com.okta.telephony.provider","data":{"events":[]}}"#;
        assert_eq!(parse(wrong, &cfg()), Err(ParseError::WrongType));
    }

    #[test]
    fn any_number_of_events_is_accepted_and_large_sets_pack_by_user() {
        let n = 5_000;
        let events: Vec<Value> = (0..n)
            .map(|i| {
                let mut e = event("user.account.update_profile", "SUCCESS", json!([user()]));
                e["uuid"] = format!("e{i}").into();
                e["target"][0]["id"] = format!("00u{:017}", i % 1200).into();
                e
            })
            .collect();
        let p = parse(&delivery(Value::Array(events)), &cfg()).unwrap();
        assert_eq!((p.received, p.relevant.len()), (n, n));
        let refs: Vec<&QueueMessage> = p.relevant.iter().collect();
        let packed = pack(&refs);
        assert_eq!(packed.len(), 3, "1,200 distinct users, 500 to a message");
        let mut users: Vec<&str> = packed
            .iter()
            .flat_map(|m| std::iter::once(m.user_id.as_str()).chain(m.users.iter().map(String::as_str)))
            .collect();
        assert_eq!(users.len(), 1200);
        users.sort();
        users.dedup();
        assert_eq!(users.len(), 1200, "each user once");
        assert!(packed.iter().all(|m| m.login.is_none() && serde_json::to_string(m).unwrap().len() < 128 * 1024));
    }
}
