//! Okta event hooks (`/okta/events`): the one-time verification, then each delivery
//! authenticated, parsed, filtered to the events that matter for Amazon Connect provisioning,
//! deduplicated by event `uuid` and enqueued. The queue consumer (`crate::provisioning`) acts on them.
//!
//! Deliberately absent: any call to Okta or AWS. Okta only needs a quick 2xx; a 5xx (enqueue
//! failed) makes it retry the delivery once.

pub mod config;
pub mod parse;

use std::cell::RefCell;
use std::collections::HashSet;
use std::future::Future;

use futures_util::future::join_all;
use serde::Serialize;

use crate::auth::secret;
use crate::edge::{queue_batches as batches, Kv, Queue, QueueError, QUEUE_BATCH};
use crate::http::BodyError;
use crate::http::{self, Answer, Handled};
use crate::provisioning::message::{self, QueueMessage};
use config::EventsConfig;
use parse::ParseError;

/// A verification challenge longer than this is refused.
pub const MAX_CHALLENGE_LEN: usize = 1024;
/// How long a `events/seen/<uuid>` record lives in `HOOK_STATE` (Okta retries within hours).
pub const SEEN_TTL_S: u64 = 7 * 24 * 3600;
/// More fresh relevant events than this are packed into bulk messages (see [`message::pack`]),
/// so that any delivery takes a handful of queue sends.
pub const SINGLE_MESSAGES_MAX: usize = QUEUE_BATCH;
/// KV look-ups and records per delivery are bounded (Workers allow 1,000 KV operations per
/// request); relevant events beyond this are deduplicated in isolate memory only.
pub const MAX_KV_EVENTS: usize = 400;
/// Isolate memory of seen uuids; cleared when full.
const MAX_SEEN_IN_MEMORY: usize = 10_000;

pub fn seen_key(uuid: &str) -> String {
    format!("events/seen/{uuid}")
}

/// Event uuids enqueued by this isolate.
#[derive(Default)]
pub struct Seen(RefCell<HashSet<String>>);

impl Seen {
    pub fn contains(&self, uuid: &str) -> bool {
        self.0.borrow().contains(uuid)
    }

    fn insert(&self, uuid: &str) {
        let mut set = self.0.borrow_mut();
        if set.len() >= MAX_SEEN_IN_MEMORY {
            set.clear();
        }
        set.insert(uuid.to_string());
    }
}

/// `GET /okta/events`: Okta's one-time verification echoes `X-Okta-Verification-Challenge`.
pub fn verification(challenge: Option<&str>) -> Answer {
    match challenge {
        None | Some("") => http::plain_error(400, "Missing X-Okta-Verification-Challenge", "MISSING_CHALLENGE"),
        Some(c) if c.len() > MAX_CHALLENGE_LEN => {
            http::plain_error(400, "X-Okta-Verification-Challenge is too long", "CHALLENGE_TOO_LONG")
        }
        Some(c) => Answer { status: 200, body: serde_json::json!({ "verification": c }).to_string() },
    }
}

/// The one log line per delivery: counts and a reason, never headers, bodies or secrets.
#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryLog {
    msg: &'static str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<String>,
    received: usize,
    relevant: usize,
    duplicates: usize,
    enqueued: usize,
    /// Queue messages sent (fewer than `enqueued` when the delivery was packed).
    messages: usize,
    #[serde(skip_serializing_if = "is_zero")]
    kv_errors: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl DeliveryLog {
    fn finish(mut self, answer: Answer) -> Handled {
        self.status = answer.status;
        Handled { answer, log: Some(serde_json::to_string(&self).expect("plain fields")), alerts: vec![] }
    }
}

/// `POST /okta/events`. `presented` is the configured auth header's value; `read_body` is
/// called only after authentication succeeded and must enforce [`parse::MAX_BODY_BYTES`].
pub async fn handle<B, Fut>(
    cfg: &EventsConfig,
    seen: &Seen,
    kv: &impl Kv,
    queue: &impl Queue,
    presented: Option<&str>,
    read_body: B,
) -> Handled
where
    B: FnOnce() -> Fut,
    Fut: Future<Output = Result<Vec<u8>, BodyError>>,
{
    let mut log = DeliveryLog { msg: "okta event hook", ..DeliveryLog::default() };
    let parsed = match read_delivery(cfg, presented, read_body, &mut log).await {
        Ok(p) => p,
        Err(refused) => return log.finish(refused),
    };
    log.event_id = parsed.event_id.map(|id| id.chars().take(64).collect());
    log.received = parsed.received;
    log.relevant = parsed.relevant.len();
    let to_send = dedupe(parsed.relevant, seen, kv, &mut log).await;
    log.duplicates = log.relevant - to_send.len();
    let (enqueued, failure) = enqueue(&to_send, queue, &mut log).await;
    remember(&enqueued, seen, kv, &mut log).await;
    if let Some(e) = failure {
        log.reason = Some("ENQUEUE_FAILED");
        log.error = Some(e.to_string());
        return log.finish(http::plain_error(503, "Could not enqueue the events; please retry", "ENQUEUE_FAILED"));
    }
    log.finish(Answer { status: 200, body: String::new() })
}

/// Authenticates the delivery, reads and parses its body; a refusal is the answer to give.
async fn read_delivery<B, Fut>(
    cfg: &EventsConfig,
    presented: Option<&str>,
    read_body: B,
    log: &mut DeliveryLog,
) -> Result<parse::Parsed, Answer>
where
    B: FnOnce() -> Fut,
    Fut: Future<Output = Result<Vec<u8>, BodyError>>,
{
    if let Err(e) = secret::check(presented, &cfg.secret) {
        log.reason = Some(e.reason());
        return Err(http::unauthorized(401, "Missing or invalid event hook secret", e.reason(), &cfg.auth_header));
    }
    let body = match read_body().await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            log.reason = Some("BODY_TOO_LARGE");
            return Err(http::plain_error(413, "The delivery is larger than 32 MiB", "BODY_TOO_LARGE"));
        }
        Err(BodyError::Unreadable) => {
            log.reason = Some("BODY_UNREADABLE");
            return Err(http::plain_error(400, "The body could not be read", "BODY_UNREADABLE"));
        }
    };
    parse::parse(&body, cfg).map_err(|e| {
        log.reason = Some(e.reason());
        let summary = match e {
            ParseError::Malformed(_) => "Malformed event hook delivery",
            ParseError::WrongType => "Not an Okta event hook delivery",
        };
        log.error = Some(e.to_string());
        http::plain_error(400, summary, e.reason())
    })
}

/// The events not seen before: deduplicated within the delivery, against this isolate, then
/// against KV (the first [`MAX_KV_EVENTS`]; an unknown answer counts as not seen: the consumer
/// decides from Okta's current state).
async fn dedupe(relevant: Vec<QueueMessage>, seen: &Seen, kv: &impl Kv, log: &mut DeliveryLog) -> Vec<QueueMessage> {
    let mut in_delivery = HashSet::new();
    let fresh: Vec<QueueMessage> =
        relevant.into_iter().filter(|m| in_delivery.insert(m.uuid.clone()) && !seen.contains(&m.uuid)).collect();
    let checked = fresh.len().min(MAX_KV_EVENTS);
    let mut lookups = join_all(fresh[..checked].iter().map(|m| kv.get_seen(&m.uuid))).await.into_iter();
    let mut to_send = Vec::new();
    for m in fresh {
        match lookups.next() {
            Some(Ok(true)) => seen.insert(&m.uuid),
            Some(Ok(false)) | None => to_send.push(m),
            Some(Err(())) => {
                log.kv_errors += 1;
                to_send.push(m);
            }
        }
    }
    to_send
}

/// Sends one message per event, or (a large delivery) bulk messages of many users each. Returns
/// the events that reached the queue, and the failure that stopped the sends. All or nothing for
/// a packed delivery (a bulk message is many users'); a 503 makes Okta retry, and the users
/// already enqueued are converged twice at worst (idempotent).
async fn enqueue<'a>(
    to_send: &'a [QueueMessage],
    queue: &impl Queue,
    log: &mut DeliveryLog,
) -> (Vec<&'a QueueMessage>, Option<QueueError>) {
    let refs: Vec<&QueueMessage> = to_send.iter().collect();
    let packed = (to_send.len() > SINGLE_MESSAGES_MAX).then(|| message::pack(&refs));
    let texts: Vec<String> = match &packed {
        Some(bulk) => bulk.iter().map(|m| serde_json::to_string(m).expect("string fields")).collect(),
        None => to_send.iter().map(|m| serde_json::to_string(m).expect("string fields")).collect(),
    };
    let mut sent = 0;
    let mut failure = None;
    for chunk in batches(&texts) {
        match queue.send_batch(chunk).await {
            Ok(()) => sent += chunk.len(),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let enqueued: Vec<&QueueMessage> = match packed {
        Some(_) if failure.is_none() => refs,
        Some(_) => Vec::new(),
        None => refs.into_iter().take(sent).collect(),
    };
    log.enqueued = enqueued.len();
    log.messages = sent;
    (enqueued, failure)
}

/// Remembers what reached the queue (and only that): in this isolate, and in KV for the first
/// [`MAX_KV_EVENTS`].
async fn remember(enqueued: &[&QueueMessage], seen: &Seen, kv: &impl Kv, log: &mut DeliveryLog) {
    for m in enqueued {
        seen.insert(&m.uuid);
    }
    let keys: Vec<String> = enqueued.iter().take(MAX_KV_EVENTS).map(|m| seen_key(&m.uuid)).collect();
    let records = join_all(keys.iter().map(|k| kv.put(k, "1", Some(SEEN_TTL_S)))).await;
    log.kv_errors += records.iter().filter(|r| r.is_err()).count();
}

trait SeenLookup {
    async fn get_seen(&self, uuid: &str) -> Result<bool, ()>;
}

impl<K: Kv> SeenLookup for K {
    async fn get_seen(&self, uuid: &str) -> Result<bool, ()> {
        self.get(&seen_key(uuid), None).await.map(|v| v.is_some()).map_err(|_| ())
    }
}

#[cfg(test)]
mod tests;
