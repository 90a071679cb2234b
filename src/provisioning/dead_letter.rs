//! Dead letters an admin can act on.
//!
//! The dead-letter queue's consumer ([`store`]) keeps each dead letter in the `HOOK_STATE` KV
//! namespace under `dead-letters/<deadAtMs, 13 digits>/<queueMessageId>` for [`TTL_S`] (14 days),
//! with a summary (reason, error, attempts, event type, Okta user id) as the key's metadata, so
//! that listing needs no read per record. At most [`MAX_KEPT`] are kept ([`trim`] deletes the
//! oldest) and a record is at most [`MAX_RECORD_BYTES`]: a larger one keeps the provisioning
//! fields of its message (or, failing that, none) and says so (`truncated`). Dead letters the
//! Queues runtime made itself (the consumer crashed: not the Worker's shape) are kept as
//! `{message: <raw>, reason: "RUNTIME_DEAD_LETTER"}`.
//!
//! Admin endpoints (`Authorization: Bearer <ADMIN_SECRET>`, as the others):
//!
//! - `GET /admin/provisioning/dead-letters[?limit=N]` ([`list`]): newest first, summaries only
//!   (never the login or the original message); `?id=<id>` answers one record in full;
//! - `POST /admin/provisioning/redrive` with an optional `{"ids": [...]}` ([`redrive`]): sends
//!   each original message back to the provisioning queue (its attempts start again), oldest
//!   first, at most [`MAX_REDRIVE`] per call, and deletes a record only once its message was sent.
//!
//! Also here: [`unmatched_cron`], the scheduled handler's check that a cron tick has a job.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::admin::{refuse, AdminSecret};
use crate::edge::{queue_batches, KvError, KvList, Queue};
use crate::http::Handled;
use crate::http::{self, Answer};
use crate::okta::is_okta_id;
use crate::provisioning::message::QueueMessage;
use crate::settings::ConfigError;

/// The KV prefix of the records.
pub const PREFIX: &str = "dead-letters/";
/// How long a record is kept.
pub const TTL_S: u64 = 14 * 24 * 3600;
/// Records kept at most; storing more deletes the oldest.
pub const MAX_KEPT: usize = 1000;
/// The largest record kept whole.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Largest body of `POST /admin/provisioning/redrive` (a list of ids).
pub const MAX_REDRIVE_BODY_BYTES: usize = 64 * 1024;

/// Whether a batch comes from a dead-letter queue: by the project's naming (`wrangler.toml`:
/// `okta-provisioning-dlq`, every environment's DLQ ends in `-dlq`).
pub fn is_dead_letter_queue(name: &str) -> bool {
    name.ends_with("-dlq")
}
/// Messages redriven per call at most.
pub const MAX_REDRIVE: usize = 100;
/// Default and largest `limit` of the listing.
pub const DEFAULT_LIST_LIMIT: usize = 100;
pub const MAX_LIST_LIMIT: usize = 1000;
/// The reason of a dead letter the Queues runtime made (the Worker's own have theirs).
pub const RUNTIME_DEAD_LETTER: &str = "RUNTIME_DEAD_LETTER";
/// Listing pages read at most (1000 keys each): well above the bound, so a failed trim shows.
const MAX_LIST_PAGES: usize = 10;
/// Characters of the error kept in the record and in the summary (KV metadata is ≤ 1024 bytes).
const MAX_ERROR_CHARS: usize = 2000;
const MAX_SUMMARY_ERROR_CHARS: usize = 300;
const RUNTIME_ERROR: &str = "dead-lettered by the Queues runtime after the consumer's max_retries \
     (the consumer crashed or left the message unsettled), not by the Worker";

/// One message of the dead-letter queue: its id, its JSON body and when it was sent there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrived {
    pub id: String,
    pub body: String,
    pub timestamp_ms: u64,
}

/// What a listing shows of a record (also its KV metadata).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub dead_at_ms: u64,
    pub reason: String,
    pub error: Option<String>,
    pub attempts: Option<u32>,
    pub event_type: Option<String>,
    pub okta_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// A record as stored: its key, its JSON value and its summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    pub value: String,
    pub summary: Summary,
}

impl Record {
    /// The id the admin endpoints use: the key without [`PREFIX`].
    pub fn id(&self) -> &str {
        &self.key[PREFIX.len()..]
    }
}

fn cap(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Errors can quote an answer from Okta or AWS: anything that looks like an e-mail or a login goes.
fn scrub(error: &str, login: Option<&str>) -> String {
    // A word with an `@` and a letter or digit could be an address; a bare "`@`" (a rule's text) stays.
    let address = |w: &str| w.contains('@') && w.bytes().any(|b| b.is_ascii_alphanumeric());
    let mut out: String =
        error.split(' ').map(|w| if address(w) { "[redacted]" } else { w }).collect::<Vec<_>>().join(" ");
    if let Some(l) = login.filter(|l| l.len() >= 3) {
        out = out.replace(l, "[redacted]");
    }
    out
}

/// The error-level log line of one arrived dead letter: the dead letter without the message's
/// login, its error scrubbed as when it is stored (logs never carry a login).
pub fn log_line(queue: &str, body: &str) -> String {
    let mut letter: Value = serde_json::from_str(body).unwrap_or_default();
    let login = letter.pointer_mut("/message").and_then(Value::as_object_mut).and_then(|m| m.remove("login"));
    let login = login.as_ref().and_then(Value::as_str);
    if let Some(e) = letter.get_mut("error") {
        if let Some(text) = e.as_str() {
            *e = Value::String(scrub(text, login));
        }
    }
    serde_json::json!({"msg": "provisioning dead letter", "level": "error", "queue": queue, "deadLetter": letter})
        .to_string()
}

/// A message id usable in a key: `[A-Za-z0-9_-]`, at most 128.
fn key_part(id: &str) -> String {
    id.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')).take(128).collect()
}

/// Whether `id` is one of ours (`<13 digits>/<message id>`): ids from requests are checked first.
pub fn valid_id(id: &str) -> bool {
    let Some((at, msg)) = id.split_once('/') else { return false };
    at.len() == 13
        && at.bytes().all(|b| b.is_ascii_digit())
        && (1..=128).contains(&msg.len())
        && msg.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

fn str_field(v: &Value, name: &str, max: usize) -> Option<String> {
    v.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).map(|s| cap(s, max))
}

/// The record of one dead-letter queue message.
pub fn record(m: &Arrived) -> Record {
    let parsed: Option<Value> = serde_json::from_str(&m.body).ok();
    let ours = parsed
        .as_ref()
        .filter(|v| v.is_object() && v.get("message").is_some() && v.get("reason").is_some_and(Value::is_string));
    let (message, reason, error, attempts, queue_message_id, dead_at_ms) = match ours {
        Some(v) => (
            v["message"].clone(),
            cap(v["reason"].as_str().unwrap_or_default(), 64),
            v.get("error").and_then(Value::as_str).map(str::to_string),
            v.get("attempts").and_then(Value::as_u64).map(|a| a.min(u64::from(u32::MAX)) as u32),
            v.get("queueMessageId").and_then(Value::as_str).map(key_part).unwrap_or_default(),
            v.get("deadAtMs").and_then(Value::as_u64).unwrap_or(m.timestamp_ms),
        ),
        None => (
            parsed.clone().unwrap_or_else(|| Value::String(m.body.clone())),
            RUNTIME_DEAD_LETTER.to_string(),
            Some(RUNTIME_ERROR.to_string()),
            None,
            String::new(),
            m.timestamp_ms,
        ),
    };
    let queue_message_id = match queue_message_id {
        id if !id.is_empty() => id,
        _ => Some(key_part(&m.id)).filter(|id| !id.is_empty()).unwrap_or_else(|| "unknown".into()),
    };
    let dead_at_ms = dead_at_ms.min(9_999_999_999_999);
    let login = message.get("login").and_then(Value::as_str);
    let error = error.map(|e| cap(&scrub(&e, login), MAX_ERROR_CHARS));
    let okta_user_id = message.get("userId").and_then(Value::as_str).filter(|u| is_okta_id(u)).map(str::to_string);
    let summary = Summary {
        dead_at_ms,
        reason: reason.clone(),
        error: error.as_ref().map(|e| cap(e, MAX_SUMMARY_ERROR_CHARS)),
        attempts,
        event_type: str_field(&message, "eventType", 100),
        okta_user_id,
        truncated: false,
    };
    let key = format!("{PREFIX}{dead_at_ms:013}/{queue_message_id}");
    let body = |message: Value, truncated: Option<usize>| {
        let mut v = json!({"message": message, "reason": reason, "error": error, "attempts": attempts,
                           "queueMessageId": queue_message_id, "deadAtMs": dead_at_ms});
        if let Some(n) = truncated {
            v["truncated"] = json!(true);
            v["originalBytes"] = json!(n);
        }
        v.to_string()
    };
    let value = body(message.clone(), None);
    if value.len() <= MAX_RECORD_BYTES {
        return Record { key, value, summary };
    }
    // Too large: the provisioning fields still let it be redriven (the consumer reads Okta anew).
    let kept = serde_json::from_value::<QueueMessage>(message)
        .ok()
        .and_then(|q| serde_json::to_value(q).ok())
        .filter(|v| v.to_string().len() < MAX_RECORD_BYTES / 2)
        .unwrap_or(Value::Null);
    let value = body(kept, Some(value.len()));
    Record { key, value, summary: Summary { truncated: true, ..summary } }
}

/// What storing a batch did: per message (in order) whether it is kept, and lines to log.
#[derive(Debug, Default)]
pub struct Stored {
    pub kept: Vec<Result<String, KvError>>,
    pub alerts: Vec<String>,
}

/// Stores each dead letter (then the shell acks it; a failure retries it), then trims to the bound.
pub async fn store<K: KvList>(kv: &K, batch: &[Arrived]) -> Stored {
    let mut out = Stored::default();
    for m in batch {
        let r = record(m);
        let metadata = serde_json::to_string(&r.summary).expect("plain fields");
        let kept = kv.put_with_metadata(&r.key, &r.value, Some(TTL_S), &metadata).await.map(|()| r.key.clone());
        if let Err(e) = &kept {
            out.alerts.push(format!("dead letter {} not stored (retried): {e}", r.id()));
        }
        out.kept.push(kept);
    }
    if out.kept.iter().any(Result::is_ok) {
        match trim(kv).await {
            Ok(0) => {}
            Ok(n) => out.alerts.push(format!(
                "{n} oldest dead letter(s) deleted: more than {MAX_KEPT} are kept (redrive or fix the cause)"
            )),
            Err(e) => out.alerts.push(format!("dead letters not trimmed to {MAX_KEPT}: {e}")),
        }
    }
    out
}

/// All record keys (oldest first) with their summaries; `complete` is false past the page bound.
pub async fn list_keys<K: KvList>(kv: &K) -> Result<(Vec<(String, Option<Summary>)>, bool), KvError> {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_LIST_PAGES {
        let page = kv.list(PREFIX, cursor.as_deref()).await?;
        keys.extend(page.keys.into_iter().filter(|k| k.name.starts_with(PREFIX)).map(|k| {
            let summary = k.metadata.and_then(|m| serde_json::from_str(&m).ok());
            (k.name, summary)
        }));
        cursor = page.cursor;
        if cursor.is_none() {
            return Ok((keys, true));
        }
    }
    Ok((keys, false))
}

/// Deletes the oldest records past [`MAX_KEPT`]; answers how many.
pub async fn trim<K: KvList>(kv: &K) -> Result<usize, KvError> {
    let (keys, _) = list_keys(kv).await?;
    let excess = keys.len().saturating_sub(MAX_KEPT);
    for (key, _) in &keys[..excess] {
        kv.delete(key).await?;
    }
    Ok(excess)
}

/// The raw query's value of `name`, percent-decoded.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or(""))?;
    let raw = query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })?;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn plain(answer: Answer) -> Handled {
    Handled::plain(answer)
}

fn kv_unavailable(what: &str, e: &KvError) -> Handled {
    Handled {
        answer: http::plain_error(503, "The dead letters could not be read from KV", "KV_UNAVAILABLE"),
        log: None,
        alerts: vec![format!("{what}: {e}")],
    }
}

fn item(key: &str, summary: Option<Summary>) -> Value {
    let id = &key[PREFIX.len()..];
    let s = summary.unwrap_or_else(|| Summary {
        dead_at_ms: id.get(..13).and_then(|t| t.parse().ok()).unwrap_or(0),
        reason: "UNKNOWN".into(),
        ..Summary::default()
    });
    let mut v = json!({"id": id, "deadAtMs": s.dead_at_ms, "reason": s.reason, "error": s.error,
                       "attempts": s.attempts, "eventType": s.event_type, "oktaUserId": s.okta_user_id});
    if s.truncated {
        v["truncatedRecord"] = json!(true);
    }
    v
}

/// `GET /admin/provisioning/dead-letters[?limit=N | ?id=<id>]`. `url`: the request's raw URL.
pub async fn list<K: KvList>(
    authorization: Option<&str>,
    admin: Result<Option<AdminSecret>, ConfigError>,
    kv: &K,
    url: &str,
) -> Handled {
    if let Some(refused) = refuse(authorization, admin) {
        return refused;
    }
    if let Some(id) = query_param(url, "id") {
        if !valid_id(&id) {
            return plain(http::plain_error(400, "`id` is not a dead-letter id", "INVALID_ID"));
        }
        return match kv.get(&format!("{PREFIX}{id}"), None).await {
            Ok(Some(v)) => {
                let mut record: Value = serde_json::from_str(&v).unwrap_or_else(|_| json!({"raw": v}));
                if let Some(o) = record.as_object_mut() {
                    o.insert("id".into(), json!(id));
                }
                plain(Answer { status: 200, body: record.to_string() })
            }
            Ok(None) => plain(http::plain_error(404, "No such dead letter (redriven, or expired)", "NOT_FOUND")),
            Err(e) => kv_unavailable("dead letters: read", &e),
        };
    }
    let limit = match query_param(url, "limit").map(|l| l.parse::<usize>()) {
        None => DEFAULT_LIST_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIST_LIMIT).contains(&n) => n,
        Some(_) => {
            return plain(http::plain_error(400, &format!("`limit` must be 1-{MAX_LIST_LIMIT}"), "INVALID_LIMIT"))
        }
    };
    let (keys, complete) = match list_keys(kv).await {
        Ok(k) => k,
        Err(e) => return kv_unavailable("dead letters: list", &e),
    };
    let count = keys.len();
    let items: Vec<Value> = keys.into_iter().rev().take(limit).map(|(k, s)| item(&k, s)).collect();
    let mut body = json!({"count": count, "items": items, "truncated": items.len() < count});
    if !complete {
        body["countIsAtLeast"] = json!(true);
    }
    plain(Answer { status: 200, body: body.to_string() })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedriveRequest {
    #[serde(default)]
    ids: Option<Vec<String>>,
}

/// The original message of a record, when it can go back to the provisioning queue.
fn redrivable(record: &str) -> Result<String, &'static str> {
    let v: Value = serde_json::from_str(record).map_err(|_| "NOT_REDRIVABLE")?;
    let message = v.get("message").cloned().unwrap_or(Value::Null);
    match serde_json::from_value::<QueueMessage>(message.clone()) {
        Ok(q) if is_okta_id(&q.user_id) => Ok(message.to_string()),
        _ => Err("NOT_REDRIVABLE"),
    }
}

/// `POST /admin/provisioning/redrive`, `body` the request's (empty: all, oldest first).
pub async fn redrive<K: KvList, Q: Queue>(
    authorization: Option<&str>,
    admin: Result<Option<AdminSecret>, ConfigError>,
    kv: &K,
    queue: &Q,
    body: &[u8],
) -> Handled {
    if let Some(refused) = refuse(authorization, admin) {
        return refused;
    }
    let requested = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let parsed = serde_json::from_slice::<Value>(body).ok().filter(Value::is_object);
        match parsed.map(serde_json::from_value::<RedriveRequest>) {
            Some(Ok(r)) => r.ids,
            _ => {
                return plain(http::plain_error(
                    400,
                    "The body must be empty or {\"ids\": [\"<id>\", ...]}",
                    "INVALID_REQUEST",
                ))
            }
        }
    };
    if let Some(bad) = requested.iter().flatten().find(|id| !valid_id(id)) {
        let shown = cap(bad, 40).replace(|c: char| !c.is_ascii_graphic(), "?");
        return plain(http::plain_error(400, &format!("Not a dead-letter id: {shown}"), "INVALID_ID"));
    }
    let (keys, _) = match list_keys(kv).await {
        Ok(k) => k,
        Err(e) => return kv_unavailable("dead letters: list", &e),
    };
    let mut ids: Vec<String> = match requested {
        Some(mut ids) => {
            ids.sort();
            ids.dedup();
            ids
        }
        None => keys.iter().map(|(k, _)| k[PREFIX.len()..].to_string()).collect(),
    };
    let later = ids.len().saturating_sub(MAX_REDRIVE);
    ids.truncate(MAX_REDRIVE);

    let mut failures: Vec<Value> = Vec::new();
    let mut alerts = Vec::new();
    let mut ready: Vec<(String, String)> = Vec::new();
    for id in &ids {
        match kv.get(&format!("{PREFIX}{id}"), None).await {
            Ok(Some(v)) => match redrivable(&v) {
                Ok(message) => ready.push((id.clone(), message)),
                Err(reason) => failures.push(json!({"id": id, "reason": reason})),
            },
            Ok(None) => failures.push(json!({"id": id, "reason": "NOT_FOUND"})),
            Err(e) => {
                alerts.push(format!("redrive: dead letter {id} not read: {e}"));
                failures.push(json!({"id": id, "reason": "KV_UNAVAILABLE"}));
            }
        }
    }
    let mut redriven: Vec<String> = Vec::new();
    let mut queue_failed = false;
    let messages: Vec<String> = ready.iter().map(|(_, m)| m.clone()).collect();
    let mut offset = 0;
    for batch in queue_batches(&messages) {
        let ids = &ready[offset..offset + batch.len()];
        offset += batch.len();
        match queue.send_batch(batch).await {
            Ok(()) => {
                for (id, _) in ids {
                    if let Err(e) = kv.delete(&format!("{PREFIX}{id}")).await {
                        // Sent: a second redrive would only converge the user again.
                        alerts.push(format!("redrive: dead letter {id} was sent but its record stays: {e}"));
                    }
                    redriven.push(id.clone());
                }
            }
            Err(e) => {
                queue_failed = true;
                alerts.push(format!("redrive: {} message(s) not sent, their records stay: {e}", ids.len()));
                for (id, _) in ids {
                    failures.push(json!({"id": id, "reason": "QUEUE_UNAVAILABLE"}));
                }
            }
        }
    }
    let remaining = keys.len().saturating_sub(redriven.len()).max(later);
    let status = if queue_failed { 502 } else { 200 };
    let answer = json!({"redriven": redriven.len(), "failed": failures.len(), "remaining": remaining,
                        "ids": redriven, "failures": failures});
    let log = json!({"msg": "provisioning-redrive", "level": if failures.is_empty() { "info" } else { "warn" },
                     "redriven": answer["ids"], "failures": answer["failures"], "remaining": remaining});
    Handled { answer: Answer { status, body: answer.to_string() }, log: Some(log.to_string()), alerts }
}

/// A cron tick that would do other than intended: `None` when `cron` is `RECONCILE_CRON`, or
/// when it runs the template sync and nothing suggests it was meant for the reconciliation. The
/// scheduled handler alerts with this and still runs what it always runs.
pub fn unmatched_cron(cron: &str, reconcile_cron: &str, provisioning_on: bool, sync_on: bool) -> Option<String> {
    if cron == reconcile_cron || !provisioning_on {
        return None;
    }
    let normalised = |c: &str| c.split_whitespace().collect::<Vec<_>>().join(" ");
    if normalised(cron) == normalised(reconcile_cron) {
        return Some(format!(
            "cron `{cron}` differs from RECONCILE_CRON `{reconcile_cron}` only in spacing: the reconciliation \
             does not run on it; write both alike (scripts/check-config checks this)"
        ));
    }
    if cron == super::config::DEFAULT_RECONCILE_CRON {
        return Some(format!(
            "cron `{cron}` (the default RECONCILE_CRON) fired, but RECONCILE_CRON is `{reconcile_cron}`: the \
             reconciliation runs only if `{reconcile_cron}` is in [triggers] crons (scripts/check-config checks this)"
        ));
    }
    if !sync_on {
        return Some(format!(
            "cron `{cron}` runs nothing: it is not RECONCILE_CRON (`{reconcile_cron}`) and the template sync is \
             off (TEMPLATE_TABLE unset); if it is meant for the reconciliation, set RECONCILE_CRON to it"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;

    use super::*;
    use crate::edge::{Kv, KvKey, KvPage, QueueError};
    use crate::testing::block_on;

    const SECRET: &str = "0123456789abcdef0123456789";
    const AUTH: Option<&str> = Some("Bearer 0123456789abcdef0123456789");
    const UID: &str = "00u1a2b3c4d5e6f7g8h9";

    fn admin() -> Result<Option<AdminSecret>, ConfigError> {
        let settings = BTreeMap::from([("ADMIN_SECRET".to_string(), SECRET.to_string())]);
        crate::admin::admin_secret(&settings)
    }

    type Entry = (String, Option<u64>, Option<String>);

    /// KV with listing (pages of `page` keys), metadata, TTLs and injectable failures.
    struct ListKv {
        /// key → (value, TTL, metadata)
        map: RefCell<BTreeMap<String, Entry>>,
        page: usize,
        fail_puts: Cell<bool>,
        fail_lists: Cell<bool>,
        lists: Cell<usize>,
    }

    impl Default for ListKv {
        fn default() -> Self {
            ListKv {
                map: RefCell::default(),
                page: 1000,
                fail_puts: Cell::new(false),
                fail_lists: Cell::new(false),
                lists: Cell::new(0),
            }
        }
    }

    impl ListKv {
        fn keys(&self) -> Vec<String> {
            self.map.borrow().keys().cloned().collect()
        }
        fn value(&self, key: &str) -> Value {
            serde_json::from_str(&self.map.borrow()[key].0).unwrap()
        }
    }

    impl Kv for ListKv {
        async fn get(&self, key: &str, _: Option<u64>) -> Result<Option<String>, KvError> {
            Ok(self.map.borrow().get(key).map(|v| v.0.clone()))
        }
        async fn put(&self, key: &str, value: &str, ttl_s: Option<u64>) -> Result<(), KvError> {
            self.map.borrow_mut().insert(key.into(), (value.into(), ttl_s, None));
            Ok(())
        }
        async fn delete(&self, key: &str) -> Result<(), KvError> {
            self.map.borrow_mut().remove(key);
            Ok(())
        }
    }

    impl KvList for ListKv {
        async fn put_with_metadata(&self, key: &str, value: &str, ttl_s: Option<u64>, md: &str) -> Result<(), KvError> {
            if self.fail_puts.get() {
                return Err(KvError("injected failure".into()));
            }
            assert!(md.len() <= 1024, "metadata is {} bytes", md.len());
            self.map.borrow_mut().insert(key.into(), (value.into(), ttl_s, Some(md.into())));
            Ok(())
        }
        async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<KvPage, KvError> {
            if self.fail_lists.get() {
                return Err(KvError("injected failure".into()));
            }
            self.lists.set(self.lists.get() + 1);
            let skip: usize = cursor.map(|c| c.parse().unwrap()).unwrap_or(0);
            let all: Vec<_> = self
                .map
                .borrow()
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| KvKey { name: k.clone(), metadata: v.2.clone() })
                .collect();
            let keys: Vec<_> = all.iter().skip(skip).take(self.page).cloned().collect();
            let next = skip + keys.len();
            Ok(KvPage { keys, cursor: (next < all.len()).then(|| next.to_string()) })
        }
    }

    #[derive(Default)]
    struct FakeQueue {
        sent: RefCell<Vec<String>>,
        fail: Cell<bool>,
    }

    impl Queue for FakeQueue {
        async fn send_batch(&self, messages: &[String]) -> Result<(), QueueError> {
            if self.fail.get() {
                return Err(QueueError("injected failure".into()));
            }
            assert!(messages.len() <= 100);
            self.sent.borrow_mut().extend_from_slice(messages);
            Ok(())
        }
    }

    fn message(uid: &str, login: &str) -> Value {
        json!({"uuid": "e1", "eventType": "group.user_membership.add", "userId": uid, "login": login})
    }

    /// A dead letter as `provisioning::dead_letter` builds it.
    fn ours(qid: &str, at: u64, reason: &str) -> Arrived {
        let body = json!({"message": message(UID, "ana@example.com"), "reason": reason,
                          "error": "Connect: InvalidParameterException: user ana@example.com exists", "attempts": 3,
                          "queueMessageId": qid, "deadAtMs": at});
        Arrived { id: format!("dlq-{qid}"), body: body.to_string(), timestamp_ms: at + 5 }
    }

    fn body(h: &Handled) -> Value {
        serde_json::from_str(&h.answer.body).unwrap()
    }

    #[test]
    fn a_dead_letter_is_kept_under_its_time_with_a_summary_and_a_ttl() {
        let kv = ListKv::default();
        let stored = block_on(store(&kv, &[ours("abc123", 1_700_000_000_000, "INVALID_USERNAME")]));
        assert!(stored.alerts.is_empty(), "{:?}", stored.alerts);
        let key = "dead-letters/1700000000000/abc123";
        assert_eq!(stored.kept, vec![Ok(key.to_string())]);
        let (value, ttl, md) = kv.map.borrow()[key].clone();
        assert_eq!(ttl, Some(TTL_S));
        let v: Value = serde_json::from_str(&value).unwrap();
        assert_eq!(v["message"], message(UID, "ana@example.com"), "the original message is kept whole");
        assert_eq!(v["attempts"], 3);
        let s: Summary = serde_json::from_str(&md.unwrap()).unwrap();
        assert_eq!(s.reason, "INVALID_USERNAME");
        assert_eq!(s.okta_user_id.as_deref(), Some(UID));
        assert_eq!(s.event_type.as_deref(), Some("group.user_membership.add"));
        assert!(!s.error.unwrap().contains("ana@example.com"), "no login in the error");
        // Delivered twice (at least once): one record.
        block_on(store(&kv, &[ours("abc123", 1_700_000_000_000, "INVALID_USERNAME")]));
        assert_eq!(kv.keys().len(), 1);
    }

    #[test]
    fn a_runtime_dead_letter_is_kept_as_raw_with_its_reason() {
        let kv = ListKv::default();
        let raw = Arrived { id: "rt1".into(), body: message(UID, "x@example.com").to_string(), timestamp_ms: 42 };
        block_on(store(&kv, std::slice::from_ref(&raw)));
        let v = kv.value("dead-letters/0000000000042/rt1");
        assert_eq!(v["reason"], RUNTIME_DEAD_LETTER);
        assert_eq!(v["message"], message(UID, "x@example.com"));
        assert_eq!(v["attempts"], Value::Null);
        let not_json = Arrived { id: "rt2".into(), body: "not json".into(), timestamp_ms: 43 };
        assert!(record(&not_json).value.contains(r#""message":"not json""#));
        // Redrivable: the runtime dead-letters the original message as it was.
        assert!(redrivable(&record(&raw).value).is_ok());
        assert_eq!(redrivable(&record(&not_json).value), Err("NOT_REDRIVABLE"));
    }

    #[test]
    fn a_large_record_keeps_its_provisioning_fields_and_says_so() {
        let mut m = message(UID, "ana@example.com");
        m["junk"] = json!("x".repeat(100_000));
        let body = json!({"message": m, "reason": "CONNECT_UNAVAILABLE", "error": "e".repeat(50_000), "attempts": 5,
                          "queueMessageId": "big", "deadAtMs": 7});
        let r = record(&Arrived { id: "big".into(), body: body.to_string(), timestamp_ms: 7 });
        assert!(r.value.len() <= MAX_RECORD_BYTES);
        assert!(r.summary.truncated);
        let v: Value = serde_json::from_str(&r.value).unwrap();
        assert_eq!(v["truncated"], true);
        assert!(v["originalBytes"].as_u64().unwrap() > 100_000);
        assert_eq!(v["message"]["userId"], UID);
        assert!(v["message"].get("junk").is_none());
        assert!(redrivable(&r.value).is_ok());
        assert!(serde_json::to_string(&r.summary).unwrap().len() <= 1024);
        // Not a provisioning message: nothing of it is kept, the reason is.
        let body = json!({"message": "y".repeat(100_000), "reason": "MALFORMED_MESSAGE", "error": "e",
                          "attempts": 1, "queueMessageId": "junk", "deadAtMs": 8});
        let r = record(&Arrived { id: "junk".into(), body: body.to_string(), timestamp_ms: 8 });
        let v: Value = serde_json::from_str(&r.value).unwrap();
        assert_eq!((v["message"].clone(), v["reason"].clone()), (Value::Null, json!("MALFORMED_MESSAGE")));
        assert!(r.value.len() < 10_000);
    }

    #[test]
    fn storing_past_the_bound_deletes_the_oldest() {
        let kv = ListKv { page: 300, ..ListKv::default() };
        for i in 0..MAX_KEPT as u64 {
            let r = record(&ours(&format!("m{i}"), 1000 + i, "R"));
            kv.map.borrow_mut().insert(r.key, (r.value, None, None));
        }
        let stored = block_on(store(&kv, &[ours("new1", 5000, "R"), ours("new2", 5001, "R")]));
        assert_eq!(kv.keys().len(), MAX_KEPT);
        assert!(!kv.keys().contains(&"dead-letters/0000000001000/m0".to_string()));
        assert!(!kv.keys().contains(&"dead-letters/0000000001001/m1".to_string()));
        assert!(kv.keys().contains(&"dead-letters/0000000005001/new2".to_string()));
        assert!(stored.alerts.iter().any(|a| a.starts_with("2 oldest")), "{:?}", stored.alerts);
    }

    #[test]
    fn a_storage_failure_is_reported_per_message() {
        let kv = ListKv::default();
        kv.fail_puts.set(true);
        let stored = block_on(store(&kv, &[ours("a", 1, "R")]));
        assert!(stored.kept[0].is_err());
        assert_eq!(kv.lists.get(), 0, "nothing stored, nothing to trim");
        assert!(stored.alerts[0].contains("not stored (retried)"));
    }

    #[test]
    fn the_listing_is_newest_first_without_logins_or_messages() {
        let kv = ListKv::default();
        block_on(store(&kv, &[ours("a", 1_000, "INVALID_USERNAME"), ours("b", 2_000, "CONNECT_UNAVAILABLE")]));
        let h = block_on(list(AUTH, admin(), &kv, "https://w/admin/provisioning/dead-letters"));
        assert_eq!(h.answer.status, 200);
        let v = body(&h);
        assert_eq!(v["count"], 2);
        assert_eq!(v["truncated"], false);
        assert_eq!(v["items"][0]["id"], "0000000002000/b");
        assert_eq!(v["items"][0]["reason"], "CONNECT_UNAVAILABLE");
        assert_eq!(v["items"][0]["attempts"], 3);
        assert_eq!(v["items"][0]["deadAtMs"], 2000);
        assert_eq!(v["items"][1]["oktaUserId"], UID);
        assert!(!h.answer.body.contains("example.com"), "{}", h.answer.body);
        assert!(!h.answer.body.contains("\"message\""));
        let v = body(&block_on(list(AUTH, admin(), &kv, "https://w/x?limit=1")));
        assert_eq!(
            (v["count"].clone(), v["items"].as_array().unwrap().len(), v["truncated"].clone()),
            (json!(2), 1, json!(true))
        );
        assert_eq!(block_on(list(AUTH, admin(), &kv, "https://w/x?limit=0")).answer.status, 400);
        assert_eq!(block_on(list(AUTH, admin(), &kv, "https://w/x?limit=abc")).answer.status, 400);
    }

    #[test]
    fn one_record_in_full_by_id() {
        let kv = ListKv::default();
        block_on(store(&kv, &[ours("a", 1_000, "INVALID_USERNAME")]));
        let h = block_on(list(AUTH, admin(), &kv, "https://w/x?id=0000000001000%2Fa"));
        assert_eq!(h.answer.status, 200);
        assert_eq!(body(&h)["message"]["userId"], UID);
        assert_eq!(body(&h)["id"], "0000000001000/a");
        assert_eq!(block_on(list(AUTH, admin(), &kv, "https://w/x?id=0000000001000/zz")).answer.status, 404);
        assert_eq!(block_on(list(AUTH, admin(), &kv, "https://w/x?id=../templates")).answer.status, 400);
    }

    #[test]
    fn admin_endpoints_need_the_secret() {
        let kv = ListKv::default();
        let q = FakeQueue::default();
        block_on(store(&kv, &[ours("a", 1_000, "R")]));
        for auth in [None, Some("Bearer wrong-secret-0000"), Some("0123456789abcdef0123456789")] {
            let h = block_on(list(auth, admin(), &kv, "https://w/x"));
            assert_eq!(h.answer.status, 401);
            assert!(!h.answer.body.contains("items"));
            assert_eq!(block_on(redrive(auth, admin(), &kv, &q, b"")).answer.status, 401);
        }
        assert_eq!(block_on(list(AUTH, Ok(None), &kv, "https://w/x")).answer.status, 503);
        assert_eq!(block_on(redrive(AUTH, Ok(None), &kv, &q, b"")).answer.status, 503);
        assert!(q.sent.borrow().is_empty());
        assert_eq!(kv.keys().len(), 1);
    }

    #[test]
    fn redrive_sends_the_originals_back_then_deletes_their_records() {
        let kv = ListKv::default();
        let q = FakeQueue::default();
        let malformed = Arrived {
            id: "m".into(),
            body: json!({"message": {"nope": 1}, "reason": "MALFORMED_MESSAGE", "error": "not a provisioning message",
                         "attempts": 1, "queueMessageId": "m", "deadAtMs": 500})
            .to_string(),
            timestamp_ms: 500,
        };
        block_on(store(&kv, &[ours("a", 1_000, "R"), ours("b", 2_000, "R"), malformed]));
        let h = block_on(redrive(AUTH, admin(), &kv, &q, b""));
        assert_eq!(h.answer.status, 200);
        let v = body(&h);
        assert_eq!(
            (v["redriven"].clone(), v["failed"].clone(), v["remaining"].clone()),
            (json!(2), json!(1), json!(1))
        );
        assert_eq!(v["failures"][0], json!({"id": "0000000000500/m", "reason": "NOT_REDRIVABLE"}));
        let sent: Vec<Value> = q.sent.borrow().iter().map(|m| serde_json::from_str(m).unwrap()).collect();
        assert_eq!(sent, vec![message(UID, "ana@example.com"); 2], "the original messages, as they were");
        assert_eq!(kv.keys(), vec!["dead-letters/0000000000500/m".to_string()]);
        assert!(h.log.unwrap().contains("provisioning-redrive"));
    }

    #[test]
    fn redrive_by_ids() {
        let kv = ListKv::default();
        let q = FakeQueue::default();
        block_on(store(&kv, &[ours("a", 1_000, "R"), ours("b", 2_000, "R")]));
        let h = block_on(redrive(AUTH, admin(), &kv, &q, br#"{"ids": ["0000000002000/b", "0000000009999/gone"]}"#));
        let v = body(&h);
        assert_eq!(
            (v["redriven"].clone(), v["failed"].clone(), v["remaining"].clone()),
            (json!(1), json!(1), json!(1))
        );
        assert_eq!(v["failures"][0]["reason"], "NOT_FOUND");
        assert_eq!(kv.keys(), vec!["dead-letters/0000000001000/a".to_string()]);
        for bad in [&br#"{"ids": ["../x"]}"#[..], br#"{"ids": [1]}"#, b"[]", br#"{"id": []}"#, b"nope"] {
            assert_eq!(
                block_on(redrive(AUTH, admin(), &kv, &q, bad)).answer.status,
                400,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(body(&block_on(redrive(AUTH, admin(), &kv, &q, b"{}")))["redriven"], 1);
        assert!(kv.keys().is_empty());
    }

    #[test]
    fn a_queue_failure_keeps_the_records() {
        let kv = ListKv::default();
        let q = FakeQueue::default();
        block_on(store(&kv, &[ours("a", 1_000, "R")]));
        q.fail.set(true);
        let h = block_on(redrive(AUTH, admin(), &kv, &q, b""));
        assert_eq!(h.answer.status, 502);
        assert_eq!(body(&h)["failures"][0]["reason"], "QUEUE_UNAVAILABLE");
        assert_eq!(body(&h)["remaining"], 1);
        assert_eq!(kv.keys().len(), 1);
        assert!(!h.alerts.is_empty());
    }

    #[test]
    fn redrive_takes_at_most_its_bound_per_call_oldest_first() {
        let kv = ListKv::default();
        let q = FakeQueue::default();
        block_on(store(&kv, &(0..150).map(|i| ours(&format!("m{i:03}"), 1000 + i, "R")).collect::<Vec<_>>()));
        let v = body(&block_on(redrive(AUTH, admin(), &kv, &q, b"")));
        assert_eq!((v["redriven"].clone(), v["remaining"].clone()), (json!(MAX_REDRIVE), json!(50)));
        assert_eq!(kv.keys()[0], "dead-letters/0000000001100/m100");
        let v = body(&block_on(redrive(AUTH, admin(), &kv, &q, b"")));
        assert_eq!((v["redriven"].clone(), v["remaining"].clone()), (json!(50), json!(0)));
        assert_eq!(q.sent.borrow().len(), 150);
    }

    #[test]
    fn kv_failures_answer_503() {
        let kv = ListKv::default();
        kv.fail_lists.set(true);
        assert_eq!(block_on(list(AUTH, admin(), &kv, "https://w/x")).answer.status, 503);
        assert_eq!(block_on(redrive(AUTH, admin(), &kv, &FakeQueue::default(), b"")).answer.status, 503);
    }

    #[test]
    fn a_cron_tick_without_its_job_is_named() {
        let d = super::super::config::DEFAULT_RECONCILE_CRON;
        assert_eq!(unmatched_cron(d, d, true, true), None);
        assert_eq!(unmatched_cron("*/5 * * * *", d, true, true), None, "the template sync's tick");
        assert_eq!(unmatched_cron(d, "0 4 * * *", false, true), None, "provisioning off: nothing to say");
        assert!(unmatched_cron(d, "0 4 * * *", true, true).unwrap().contains("`0 4 * * *` is in [triggers] crons"));
        assert!(unmatched_cron("*/5 * * * *", d, true, false).unwrap().contains("runs nothing"));
        assert!(unmatched_cron("17  3 * * *", d, true, true).unwrap().contains("spacing"));
    }

    #[test]
    fn ids_and_query_values() {
        assert!(valid_id("0000000001000/a-b_C9"));
        for bad in ["", "1000/a", "0000000001000/", "0000000001000/a/b", "000000000100x/a", "0000000001000/a.b"] {
            assert!(!valid_id(bad), "{bad}");
        }
        assert_eq!(query_param("https://w/x?a=1&id=0%2F1+2#f", "id").as_deref(), Some("0/1 2"));
        assert_eq!(query_param("https://w/x?id=%", "id").as_deref(), Some("%"));
        assert_eq!(query_param("https://w/x", "id"), None);
        assert_eq!(scrub("user ana@example.com exists", None), "user [redacted] exists");
        assert_eq!(scrub("name ana.k exists", Some("ana.k")), "name [redacted] exists");
    }

    #[test]
    fn the_log_line_carries_no_login() {
        let body = json!({"message": {"uuid": "u1", "eventType": "x", "userId": "00uA", "login": "ana@example.com"},
                          "reason": "INVALID_USERNAME", "error": "user ana@example.com refused", "attempts": 1});
        let line = log_line("okta-provisioning-dlq", &body.to_string());
        assert!(!line.contains("ana@example.com"), "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (v["deadLetter"]["reason"].as_str(), v["deadLetter"]["message"]["userId"].as_str()),
            (Some("INVALID_USERNAME"), Some("00uA"))
        );
        assert!(log_line("q", "not json").contains("provisioning dead letter"));
        assert_eq!(scrub("it has 2 `@` but ana@x.io is not", None), "it has 2 `@` but [redacted] is not");
    }
}
