use std::cell::{Cell, RefCell};

use serde_json::{json, Value};

use super::*;
use crate::edge::QueueError;
use crate::testing::{block_on, MemKv};

const SECRET: &str = "0123456789abcdef";

#[derive(Default)]
struct FakeQueue {
    sent: RefCell<Vec<String>>,
    batches: Cell<usize>,
    fail: Cell<bool>,
}

impl Queue for FakeQueue {
    async fn send_batch(&self, messages: &[String]) -> Result<(), QueueError> {
        if self.fail.get() {
            return Err(QueueError("injected failure".into()));
        }
        assert!(messages.len() <= QUEUE_BATCH);
        self.batches.set(self.batches.get() + 1);
        self.sent.borrow_mut().extend_from_slice(messages);
        Ok(())
    }
}

impl FakeQueue {
    fn uuids(&self) -> Vec<String> {
        self.sent.borrow().iter().map(|m| serde_json::from_str::<QueueMessage>(m).unwrap().uuid).collect()
    }
}

fn cfg() -> EventsConfig {
    EventsConfig {
        auth_header: "Authorization".into(),
        secret: SECRET.into(),
        app_ids: vec!["0oa1connectapp000x1".into()],
        group_ids: vec!["00g1connectgrp000x1".into()],
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/okta/event-hook-{name}.json", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn run(seen: &Seen, kv: &MemKv, q: &FakeQueue, presented: Option<&str>, body: Result<Vec<u8>, BodyError>) -> Handled {
    block_on(handle(&cfg(), seen, kv, q, presented, || async move { body }))
}

fn log(h: &Handled) -> Value {
    serde_json::from_str(h.log.as_deref().expect("a log line")).unwrap()
}

#[test]
fn verification_echoes_the_challenge() {
    let a = verification(Some("abc-123"));
    assert_eq!((a.status, a.body.as_str()), (200, r#"{"verification":"abc-123"}"#));
    let a = verification(Some("a\"b"));
    assert_eq!(serde_json::from_str::<Value>(&a.body).unwrap(), json!({"verification": "a\"b"}));
    assert_eq!(verification(None).status, 400);
    assert_eq!(verification(Some("")).status, 400);
    assert_eq!(verification(Some(&"x".repeat(MAX_CHALLENGE_LEN))).status, 200);
    assert_eq!(verification(Some(&"x".repeat(MAX_CHALLENGE_LEN + 1))).status, 400);
}

#[test]
fn auth_is_checked_before_the_body_is_read() {
    let (seen, kv, q) = (Seen::default(), MemKv::default(), FakeQueue::default());
    for presented in [None, Some("wrong-secret-value"), Some("0123456789abcdeF")] {
        let read = Cell::new(false);
        let h = block_on(handle(&cfg(), &seen, &kv, &q, presented, || async {
            read.set(true);
            Ok(fixture("batch-mixed"))
        }));
        assert_eq!(h.answer.status, 401);
        assert!(!read.get());
        assert!(!h.log.as_deref().expect("a log line").contains(SECRET));
    }
    assert!(q.sent.borrow().is_empty());
}

#[test]
fn refused_bodies() {
    let (seen, kv, q) = (Seen::default(), MemKv::default(), FakeQueue::default());
    assert_eq!(run(&seen, &kv, &q, Some(SECRET), Err(BodyError::TooLarge)).answer.status, 413);
    assert_eq!(run(&seen, &kv, &q, Some(SECRET), Err(BodyError::Unreadable)).answer.status, 400);
    let h = run(&seen, &kv, &q, Some(SECRET), Ok(b"{\"eventType\":".to_vec()));
    assert_eq!(h.answer.status, 400);
    assert_eq!(log(&h)["reason"], "MALFORMED_BODY");
    let v: Value = serde_json::from_str(&h.answer.body).unwrap();
    assert_eq!(v["error"]["errorCauses"][0]["reason"], "MALFORMED_BODY");
}

#[test]
fn relevant_events_are_enqueued_and_recorded() {
    let (seen, kv, q) = (Seen::default(), MemKv::default(), FakeQueue::default());
    let h = run(&seen, &kv, &q, Some(SECRET), Ok(fixture("batch-mixed")));
    assert_eq!((h.answer.status, h.answer.body.as_str()), (200, ""));
    let l = log(&h);
    assert_eq!(l["eventId"], "7c1e2f60-3b7d-4c9a-9f5e-2a8b6d4c1e0f");
    assert_eq!((l["received"].as_u64(), l["relevant"].as_u64()), (Some(3), Some(3)));
    assert_eq!((l["duplicates"].as_u64(), l["enqueued"].as_u64()), (Some(0), Some(3)));
    assert_eq!(q.batches.get(), 1);
    for uuid in q.uuids() {
        assert_eq!(kv.value(&seen_key(&uuid)).as_deref(), Some("1"));
        assert_eq!(kv.ttl(&seen_key(&uuid)), Some(SEEN_TTL_S));
    }
}

#[test]
fn duplicates_across_deliveries_are_acknowledged_not_enqueued() {
    let (kv, q) = (MemKv::default(), FakeQueue::default());
    let seen = Seen::default();
    run(&seen, &kv, &q, Some(SECRET), Ok(fixture("group-membership-add")));
    // Same isolate: memory answers, KV is not read.
    let reads = kv.reads();
    let h = run(&seen, &kv, &q, Some(SECRET), Ok(fixture("group-membership-add")));
    assert_eq!(h.answer.status, 200);
    assert_eq!(kv.reads(), reads);
    assert_eq!((log(&h)["duplicates"].as_u64(), log(&h)["enqueued"].as_u64()), (Some(1), Some(0)));
    // Another isolate: the KV record answers.
    let other = Seen::default();
    let h = run(&other, &kv, &q, Some(SECRET), Ok(fixture("group-membership-add")));
    assert_eq!((log(&h)["duplicates"].as_u64(), log(&h)["enqueued"].as_u64()), (Some(1), Some(0)));
    assert!(other.contains(&q.uuids()[0]));
    assert_eq!(q.sent.borrow().len(), 1);
}

#[test]
fn duplicates_within_one_delivery() {
    let mut d: Value = serde_json::from_slice(&fixture("group-membership-add")).unwrap();
    let e = d["data"]["events"][0].clone();
    d["data"]["events"].as_array_mut().unwrap().push(e);
    let (seen, kv, q) = (Seen::default(), MemKv::default(), FakeQueue::default());
    let h = run(&seen, &kv, &q, Some(SECRET), Ok(serde_json::to_vec(&d).unwrap()));
    assert_eq!((log(&h)["relevant"].as_u64(), log(&h)["duplicates"].as_u64()), (Some(2), Some(1)));
    assert_eq!(q.sent.borrow().len(), 1);
}

#[test]
fn enqueue_failure_answers_503_and_records_nothing() {
    let (seen, kv, q) = (Seen::default(), MemKv::default(), FakeQueue::default());
    q.fail.set(true);
    let h = run(&seen, &kv, &q, Some(SECRET), Ok(fixture("batch-mixed")));
    assert_eq!(h.answer.status, 503);
    assert_eq!(log(&h)["reason"], "ENQUEUE_FAILED");
    assert_eq!(log(&h)["enqueued"].as_u64(), Some(0));
    assert_eq!(kv.writes(), 0, "no KV record before a successful enqueue");
    // Okta's retry goes through once the queue is back.
    q.fail.set(false);
    let h = run(&seen, &kv, &q, Some(SECRET), Ok(fixture("batch-mixed")));
    assert_eq!(h.answer.status, 200);
    assert_eq!(q.sent.borrow().len(), 3);
    assert_eq!(kv.writes(), 3);
}

#[test]
fn kv_failure_still_enqueues() {
    let (seen, kv, q) = (Seen::default(), MemKv::default(), FakeQueue::default());
    kv.fail_all(true);
    let h = run(&seen, &kv, &q, Some(SECRET), Ok(fixture("app-membership-add")));
    assert_eq!(h.answer.status, 200);
    assert_eq!(q.sent.borrow().len(), 1);
    assert_eq!(log(&h)["kvErrors"].as_u64(), Some(2));
}

#[test]
fn irrelevant_deliveries_are_acknowledged_without_enqueueing() {
    let (seen, kv, q) = (Seen::default(), MemKv::default(), FakeQueue::default());
    let body = json!({"eventType": "com.okta.event_hook", "eventId": "e1", "data": {"events": [
        {"uuid": "1", "eventType": "user.session.start", "outcome": {"result": "SUCCESS"}, "target": []}]}});
    let h = run(&seen, &kv, &q, Some(SECRET), Ok(serde_json::to_vec(&body).unwrap()));
    assert_eq!(h.answer.status, 200);
    assert_eq!(q.batches.get(), 0);
    assert_eq!(kv.reads() + kv.writes(), 0);
}

#[test]
fn large_deliveries_are_packed_into_bulk_messages_by_user() {
    let events = |n: usize, users: usize| -> Value {
        let events: Vec<Value> = (0..n)
            .map(|i| {
                json!({"uuid": format!("u{i}"), "eventType": "user.lifecycle.suspend", "outcome": {"result": "SUCCESS"},
                       "target": [{"id": format!("00u{:017}", i % users), "type": "User", "alternateId": "x@example.com"}]})
            })
            .collect();
        json!({"eventType": "com.okta.event_hook", "data": {"events": events}})
    };
    // Up to 100 fresh events: one message each, one sendBatch.
    let (seen, kv, q) = (Seen::default(), MemKv::default(), FakeQueue::default());
    let h = run(&seen, &kv, &q, Some(SECRET), Ok(serde_json::to_vec(&events(100, 100)).unwrap()));
    assert_eq!((h.answer.status, q.batches.get(), q.sent.borrow().len()), (200, 1, 100));
    // 2,000 events of 1,100 users: three bulk messages (500 + 500 + 100 users), one sendBatch.
    let (seen, kv, q) = (Seen::default(), MemKv::default(), FakeQueue::default());
    let h = run(&seen, &kv, &q, Some(SECRET), Ok(serde_json::to_vec(&events(2000, 1100)).unwrap()));
    assert_eq!((h.answer.status, q.batches.get()), (200, 1));
    let sent: Vec<QueueMessage> = q.sent.borrow().iter().map(|t| serde_json::from_str(t).unwrap()).collect();
    assert_eq!(sent.iter().map(|m| 1 + m.users.len()).collect::<Vec<_>>(), [500, 500, 100]);
    let log: Value = serde_json::from_str(h.log.as_deref().expect("a log line")).unwrap();
    assert_eq!(
        (log["received"].as_u64(), log["enqueued"].as_u64(), log["messages"].as_u64()),
        (Some(2000), Some(2000), Some(3))
    );
}
