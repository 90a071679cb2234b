//! The per-phone-number ledger: durable, strongly consistent state owned by one Durable Object
//! per number (`OTP_LEDGER`, class `OtpLedger`). Today it holds the exactly-once claims of OTP
//! sends; the toll-fraud guard's per-number counters belong here too.
//!
//! The object's logic is here, pure, over a synchronous [`Store`] (SQLite in the object, a map in
//! tests): [`serve`] answers one JSON request, [`sweep`] is the alarm. The shell's object class
//! only maps SQL rows and the alarm onto these.
//!
//! A claim is atomic because the object is single-threaded and [`serve`] reads and writes the
//! store with no `await` in between; the output gate keeps the reply (and so the caller's send)
//! back until the claim is durable. A duplicate waits, on the object's own timer, for the first
//! request to settle, and then gets the first answer byte for byte.
//!
//! Deliberately absent: resending anything. A claim that is never settled (the first request died
//! between claiming and settling) stays "outcome unknown" until it expires.

use serde::{Deserialize, Serialize};

use crate::edge::Clock;

/// Most records one object keeps; beyond it the ones expiring first are dropped.
pub const MAX_RECORDS: usize = 256;
/// How often a waiting duplicate looks at the record again.
const POLL_MS: u64 = 20;
/// Largest request the object accepts (a settled answer is a few hundred bytes).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Longest a duplicate may ask to wait.
const MAX_WAIT_MS: u64 = 3_000;

/// An answer as it was given: HTTP status and exact body bytes (as text).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub status: u16,
    pub body: String,
}

/// One request's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub state: State,
    /// When the record may be deleted (epoch ms).
    pub expires_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Claimed at `since_ms`; the send may be under way.
    Claimed { since_ms: u64 },
    /// The answer the first request gave.
    Settled(Stored),
}

/// A failure of the object's storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError(pub String);

/// The object's storage: synchronous, as SQLite in a Durable Object is.
pub trait Store {
    fn get(&self, key: &str) -> Result<Option<Record>, StoreError>;
    fn put(&self, key: &str, record: &Record) -> Result<(), StoreError>;
    /// Deletes every record expired at `now_ms` and, past [`MAX_RECORDS`], those expiring first.
    fn purge(&self, now_ms: u64, keep: usize) -> Result<(), StoreError>;
    /// The earliest expiry of any record left.
    fn next_expiry(&self) -> Result<Option<u64>, StoreError>;
}

/// What the Worker asks the object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Request {
    /// Claim `key` for sending, unless it is already claimed or settled. A claim younger than
    /// `in_flight_ms` is in flight: wait up to `wait_ms` for it to settle.
    #[serde(rename_all = "camelCase")]
    Claim { key: String, in_flight_ms: u64, wait_ms: u64, ttl_s: u64 },
    /// Store the answer the claim ended with.
    #[serde(rename_all = "camelCase")]
    Settle { key: String, answer: Stored, ttl_s: u64 },
}

/// What the object answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum Reply {
    /// This request owns the send.
    Claimed,
    /// Answered before: give this answer again.
    Settled { answer: Stored },
    /// Another copy is still being sent (and did not settle within `wait_ms`).
    InFlight,
    /// Claimed long ago and never settled: the send may or may not have happened.
    Unknown,
    /// The answer is stored.
    Ok,
    /// The request was malformed or the storage failed.
    Error { reason: LedgerFault },
}

/// Why the object refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LedgerFault {
    MalformedRequest,
    StorageFailed,
}

/// Answers one request (a JSON text) at `clock`'s time; the reply as JSON.
pub async fn serve<S: Store, C: Clock>(store: &S, clock: &C, body: &str) -> String {
    let reply = match parse(body) {
        Some(req) => handle(store, clock, req).await,
        None => Reply::Error { reason: LedgerFault::MalformedRequest },
    };
    serde_json::to_string(&reply).unwrap_or_else(|_| r#"{"result":"error","reason":"STORAGE_FAILED"}"#.into())
}

fn parse(body: &str) -> Option<Request> {
    if body.len() > MAX_REQUEST_BYTES {
        return None;
    }
    let req: Request = serde_json::from_str(body).ok()?;
    let key = match &req {
        Request::Claim { key, .. } | Request::Settle { key, .. } => key,
    };
    (!key.is_empty() && key.len() <= 128).then_some(req)
}

async fn handle<S: Store, C: Clock>(store: &S, clock: &C, req: Request) -> Reply {
    match req {
        Request::Claim { key, in_flight_ms, wait_ms, ttl_s } => {
            let wait_until = clock.now_ms() + wait_ms.min(MAX_WAIT_MS);
            loop {
                let now = clock.now_ms();
                // Read and (maybe) write with no await in between: atomic in the object.
                let current = match store.get(&key) {
                    Ok(r) => r.filter(|r| r.expires_ms > now),
                    Err(_) => return Reply::Error { reason: LedgerFault::StorageFailed },
                };
                match current {
                    None => {
                        let record = Record { state: State::Claimed { since_ms: now }, expires_ms: now + ttl_s * 1000 };
                        return match store.put(&key, &record).and_then(|_| store.purge(now, MAX_RECORDS)) {
                            Ok(()) => Reply::Claimed,
                            Err(_) => Reply::Error { reason: LedgerFault::StorageFailed },
                        };
                    }
                    Some(Record { state: State::Settled(answer), .. }) => return Reply::Settled { answer },
                    Some(Record { state: State::Claimed { since_ms }, .. }) if now >= since_ms + in_flight_ms => {
                        return Reply::Unknown
                    }
                    Some(_) if now >= wait_until => return Reply::InFlight,
                    Some(_) => clock.sleep(POLL_MS.min(wait_until - now)).await,
                }
            }
        }
        Request::Settle { key, answer, ttl_s } => {
            let now = clock.now_ms();
            let record = Record { state: State::Settled(answer), expires_ms: now + ttl_s * 1000 };
            match store.put(&key, &record) {
                Ok(()) => Reply::Ok,
                Err(_) => Reply::Error { reason: LedgerFault::StorageFailed },
            }
        }
    }
}

/// The alarm: deletes expired records; the time of the next alarm, if any record is left.
pub fn sweep<S: Store>(store: &S, now_ms: u64) -> Result<Option<u64>, StoreError> {
    store.purge(now_ms, MAX_RECORDS)?;
    store.next_expiry()
}

/// An in-memory [`Store`], for tests (native and in the Worker's test builds).
#[cfg(any(test, feature = "testing"))]
#[derive(Default)]
pub struct MemStore {
    pub records: std::cell::RefCell<std::collections::BTreeMap<String, Record>>,
    pub fail: std::cell::Cell<bool>,
}

#[cfg(any(test, feature = "testing"))]
impl Store for MemStore {
    fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        if self.fail.get() {
            return Err(StoreError("failing".into()));
        }
        Ok(self.records.borrow().get(key).cloned())
    }
    fn put(&self, key: &str, record: &Record) -> Result<(), StoreError> {
        if self.fail.get() {
            return Err(StoreError("failing".into()));
        }
        self.records.borrow_mut().insert(key.to_string(), record.clone());
        Ok(())
    }
    fn purge(&self, now_ms: u64, keep: usize) -> Result<(), StoreError> {
        let mut records = self.records.borrow_mut();
        records.retain(|_, r| r.expires_ms > now_ms);
        while records.len() > keep {
            let first = records.iter().min_by_key(|(_, r)| r.expires_ms).map(|(k, _)| k.clone());
            match first {
                Some(k) => records.remove(&k),
                None => break,
            };
        }
        Ok(())
    }
    fn next_expiry(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.records.borrow().values().map(|r| r.expires_ms).min())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, FakeClock};

    fn claim(key: &str, wait_ms: u64) -> String {
        serde_json::to_string(&Request::Claim { key: key.into(), in_flight_ms: 3_500, wait_ms, ttl_s: 600 }).unwrap()
    }

    fn settle(key: &str, body: &str) -> String {
        let answer = Stored { status: 200, body: body.into() };
        serde_json::to_string(&Request::Settle { key: key.into(), answer, ttl_s: 600 }).unwrap()
    }

    fn reply(s: String) -> Reply {
        serde_json::from_str(&s).unwrap()
    }

    #[test]
    fn first_claims_then_duplicates_get_the_settled_answer() {
        let (store, clock) = (MemStore::default(), FakeClock::at(1_000_000));
        assert_eq!(reply(block_on(serve(&store, &clock, &claim("k", 0)))), Reply::Claimed);
        assert_eq!(reply(block_on(serve(&store, &clock, &claim("k", 0)))), Reply::InFlight);
        assert_eq!(reply(block_on(serve(&store, &clock, &settle("k", "{\"a\":1}")))), Reply::Ok);
        let again = reply(block_on(serve(&store, &clock, &claim("k", 0))));
        assert_eq!(again, Reply::Settled { answer: Stored { status: 200, body: "{\"a\":1}".into() } });
        assert_eq!(reply(block_on(serve(&store, &clock, &claim("other", 0)))), Reply::Claimed);
    }

    #[test]
    fn a_waiting_duplicate_gets_the_answer_settled_meanwhile() {
        let (store, clock) = (MemStore::default(), FakeClock::at(1_000_000));
        assert_eq!(reply(block_on(serve(&store, &clock, &claim("k", 0)))), Reply::Claimed);
        let request = claim("k", 2_000);
        let waiting = serve(&store, &clock, &request);
        let settling = async {
            clock.sleep(100).await;
            serve(&store, &clock, &settle("k", "first")).await
        };
        let (dup, _) = block_on(futures_util::future::join(waiting, settling));
        assert_eq!(reply(dup), Reply::Settled { answer: Stored { status: 200, body: "first".into() } });
    }

    #[test]
    fn a_claim_never_settled_becomes_unknown_and_is_never_reclaimed() {
        let (store, clock) = (MemStore::default(), FakeClock::at(1_000_000));
        assert_eq!(reply(block_on(serve(&store, &clock, &claim("k", 0)))), Reply::Claimed);
        clock.advance(3_500);
        assert_eq!(reply(block_on(serve(&store, &clock, &claim("k", 1_000)))), Reply::Unknown);
        // Once the record expires (ttl 600 s) the key is free again.
        clock.advance(600_000);
        assert_eq!(reply(block_on(serve(&store, &clock, &claim("k", 0)))), Reply::Claimed);
    }

    #[test]
    fn storage_is_bounded_and_swept() {
        let (store, clock) = (MemStore::default(), FakeClock::at(1_000_000));
        for i in 0..(MAX_RECORDS + 10) {
            clock.advance(1);
            block_on(serve(&store, &clock, &claim(&format!("k{i}"), 0)));
        }
        assert_eq!(store.records.borrow().len(), MAX_RECORDS);
        assert!(store.records.borrow().contains_key(&format!("k{}", MAX_RECORDS + 9)), "the newest are kept");
        let next = sweep(&store, clock.now_ms()).unwrap().unwrap();
        assert!(next > clock.now_ms());
        assert_eq!(sweep(&store, next + 600_000).unwrap(), None);
        assert!(store.records.borrow().is_empty());
    }

    #[test]
    fn malformed_requests_and_storage_failures_are_typed_errors() {
        let (store, clock) = (MemStore::default(), FakeClock::at(1));
        for bad in ["", "{}", "not json", r#"{"op":"claim","key":""}"#, &"x".repeat(MAX_REQUEST_BYTES + 1)] {
            assert_eq!(
                reply(block_on(serve(&store, &clock, bad))),
                Reply::Error { reason: LedgerFault::MalformedRequest }
            );
        }
        store.fail.set(true);
        assert_eq!(
            reply(block_on(serve(&store, &clock, &claim("k", 0)))),
            Reply::Error { reason: LedgerFault::StorageFailed }
        );
    }
}
