//! The ledger objects (`OTP_LEDGER`, class `OtpLedger`): durable, strongly consistent state, one
//! Durable Object per key. A phone number's object holds the exactly-once claims of its OTP sends
//! and its velocity counters (checked in the same atomic step as the claim); prefix, country and
//! user objects hold counters only; one `guard:status` object holds the tallies the admin status
//! shows.
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

use crate::edge::{Clock, Durable, DurableError};
use crate::guard::window::{self, Counter, Limit, Window};

/// Why a ledger call has no usable reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerError {
    /// Refused before it left: the invocation's subrequest budget is spent.
    BudgetSpent,
    /// No reply in time, no object, or a reply outside the protocol; the text says which.
    Failed(String),
}

impl std::fmt::Display for LedgerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedgerError::BudgetSpent => f.write_str(crate::budget::SPENT),
            LedgerError::Failed(e) => f.write_str(e),
        }
    }
}

/// The client side: one request to one ledger object and its reply; the object's own refusals are errors.
pub async fn call<D: Durable>(
    ledger: &D,
    object: &str,
    request: &Request,
    timeout_ms: u64,
) -> Result<Reply, LedgerError> {
    let body = serde_json::to_string(request).map_err(|e| LedgerError::Failed(e.to_string()))?;
    let text = ledger.call(object, body, timeout_ms).await.map_err(|e| match e {
        DurableError::Timeout => LedgerError::Failed(format!("no reply within {timeout_ms} ms")),
        DurableError::Unavailable(e) => LedgerError::Failed(e),
        DurableError::BudgetSpent => LedgerError::BudgetSpent,
    })?;
    match serde_json::from_str::<Reply>(&text) {
        Ok(Reply::Error { reason }) => Err(LedgerError::Failed(format!("the object refused: {reason:?}"))),
        Ok(reply) => Ok(reply),
        Err(_) => Err(LedgerError::Failed("the object's reply is not the ledger protocol".into())),
    }
}

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
    fn counter(&self, name: &str) -> Result<Option<Counter>, StoreError>;
    fn put_counter(&self, name: &str, counter: &Counter) -> Result<(), StoreError>;
    fn counters(&self) -> Result<Vec<(String, Counter)>, StoreError>;
    /// Deletes the counters whose current bucket started before `before_ms` (all with `u64::MAX`).
    fn drop_counters(&self, before_ms: u64) -> Result<(), StoreError>;
}

/// Counters whose bucket has not moved for this long are deleted by the alarm (longer than the
/// longest window, a week, plus its previous bucket).
pub const COUNTER_IDLE_MS: u64 = 15 * 86_400_000;
/// Tallies in the status object: at most this many names.
pub const MAX_TALLIES: usize = 512;

/// What the Worker asks the object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Request {
    /// Claim `key` for sending, unless it is already claimed or settled. A claim younger than
    /// `in_flight_ms` is in flight: wait up to `wait_ms` for it to settle. A new claim is first
    /// counted in `windows` (the number's); over a limit it is refused when `enforce`, and
    /// claimed anyway otherwise (monitor mode), the limit reported.
    #[serde(rename_all = "camelCase")]
    Claim {
        key: String,
        in_flight_ms: u64,
        wait_ms: u64,
        ttl_s: u64,
        #[serde(default)]
        windows: Vec<Window>,
        #[serde(default)]
        enforce: bool,
    },
    /// Count one request in `windows` (a prefix, country or user object).
    Hit { windows: Vec<Window> },
    /// Forget every counter (the admin release).
    Release,
    /// Add to named tallies (the status object), each a one-hour window.
    Tally { names: Vec<(String, u64)> },
    /// Every counter and tally, for the admin status.
    Counters,
    /// Store the answer the claim ended with.
    #[serde(rename_all = "camelCase")]
    Settle { key: String, answer: Stored, ttl_s: u64 },
}

/// What the object answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum Reply {
    /// This request owns the send (`limit`: a window it would have hit, in monitor mode).
    Claimed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<Limit>,
    },
    /// Counted, within every window.
    Counted,
    /// Over a window's limit: not counted, not claimed.
    Limited { limit: Limit },
    /// The counters and tallies of the object: `(name, count in the window so far)`.
    Counters { counters: Vec<(String, u64)> },
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
    let ok = match &req {
        Request::Claim { key, windows, .. } => valid_key(key) && windows.len() <= 16,
        Request::Settle { key, .. } => valid_key(key),
        Request::Hit { windows } => windows.len() <= 16,
        Request::Tally { names } => names.len() <= 256 && names.iter().all(|(n, _)| !n.is_empty() && n.len() <= 128),
        Request::Release | Request::Counters => true,
    };
    ok.then_some(req)
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 128
}

async fn handle<S: Store, C: Clock>(store: &S, clock: &C, req: Request) -> Reply {
    match req {
        Request::Claim { key, in_flight_ms, wait_ms, ttl_s, windows, enforce } => {
            let wait_until = clock.now_ms() + wait_ms.min(MAX_WAIT_MS);
            loop {
                let now = clock.now_ms();
                // Read, count and write with no await in between: atomic in the object.
                let current = match store.get(&key) {
                    Ok(r) => r.filter(|r| r.expires_ms > now),
                    Err(_) => return Reply::Error { reason: LedgerFault::StorageFailed },
                };
                match current {
                    None => {
                        let limit = match count(store, &windows, now) {
                            Ok(limit) => limit,
                            Err(_) => return Reply::Error { reason: LedgerFault::StorageFailed },
                        };
                        if let (Some(limit), true) = (&limit, enforce) {
                            return Reply::Limited { limit: limit.clone() };
                        }
                        let record = Record { state: State::Claimed { since_ms: now }, expires_ms: now + ttl_s * 1000 };
                        return match store.put(&key, &record).and_then(|_| store.purge(now, MAX_RECORDS)) {
                            Ok(()) => Reply::Claimed { limit },
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
        Request::Hit { windows } => match count(store, &windows, clock.now_ms()) {
            Ok(None) => Reply::Counted,
            Ok(Some(limit)) => Reply::Limited { limit },
            Err(_) => Reply::Error { reason: LedgerFault::StorageFailed },
        },
        Request::Release => match store.drop_counters(u64::MAX) {
            Ok(()) => Reply::Ok,
            Err(_) => Reply::Error { reason: LedgerFault::StorageFailed },
        },
        Request::Tally { names } => {
            let now = clock.now_ms();
            let tally = |name: &str, n: u64| -> Result<(), StoreError> {
                let c = store.counter(name)?.unwrap_or_default().rolled(now, 3_600);
                store.put_counter(name, &Counter { count: c.count + n, ..c })
            };
            let known: std::collections::BTreeSet<String> = match store.counters() {
                Ok(list) => list.into_iter().map(|(n, _)| n).collect(),
                Err(_) => return Reply::Error { reason: LedgerFault::StorageFailed },
            };
            let mut room = MAX_TALLIES.saturating_sub(known.len());
            let result = names.iter().try_for_each(|(n, k)| {
                if known.contains(n) {
                    return tally(n, *k);
                }
                if room == 0 {
                    return Ok(()); // full: new names wait for the alarm to drop idle ones
                }
                room -= 1;
                tally(n, *k)
            });
            match result {
                Ok(()) => Reply::Ok,
                Err(_) => Reply::Error { reason: LedgerFault::StorageFailed },
            }
        }
        Request::Counters => {
            let now = clock.now_ms();
            match store.counters() {
                Ok(list) => Reply::Counters {
                    counters: list
                        .into_iter()
                        .map(|(name, c)| {
                            let per_s = window_length(&name);
                            let est = c.rolled(now, per_s).estimate(now, per_s);
                            (name, est)
                        })
                        .filter(|(_, n)| *n > 0)
                        .collect(),
                },
                Err(_) => Reply::Error { reason: LedgerFault::StorageFailed },
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

/// Checks one more request against every window; counts it in all of them only if none is over
/// its limit. `Ok(Some(limit))`: the first window over (refusals counted, for the alert).
fn count<S: Store>(store: &S, windows: &[Window], now_ms: u64) -> Result<Option<Limit>, StoreError> {
    let mut next = Vec::with_capacity(windows.len());
    let mut over = None;
    for w in windows {
        let current = store.counter(&w.name)?.unwrap_or_default();
        let (counted, result) = window::admit(current, w, now_ms);
        if let (Err(limit), None) = (result, &over) {
            over = Some(limit);
        }
        next.push((w, current, counted));
    }
    for (w, current, counted) in next {
        // Over a limit: only the refusal marks change (the request is not counted anywhere).
        let value = match over {
            None => counted,
            Some(_) => Counter { refused: counted.refused, ..current.rolled(now_ms, w.per_s) },
        };
        store.put_counter(&w.name, &value)?;
    }
    Ok(over)
}

/// The window length in a counter's name (`w:600` → 600); tallies are one-hour windows.
fn window_length(name: &str) -> u64 {
    name.rsplit(':').next().and_then(|s| s.parse().ok()).filter(|_| !name.starts_with("t:")).unwrap_or(3_600)
}

/// The alarm: deletes expired records and idle counters; the time of the next alarm, if any
/// record is left (counters alone re-arm it a day later).
pub fn sweep<S: Store>(store: &S, now_ms: u64) -> Result<Option<u64>, StoreError> {
    store.purge(now_ms, MAX_RECORDS)?;
    store.drop_counters(now_ms.saturating_sub(COUNTER_IDLE_MS))?;
    let counters_left = !store.counters()?.is_empty();
    Ok(match store.next_expiry()? {
        Some(t) => Some(t),
        None if counters_left => Some(now_ms + 86_400_000),
        None => None,
    })
}

/// An in-memory [`Store`], for tests (native and in the Worker's test builds).
#[cfg(any(test, feature = "testing"))]
#[derive(Default)]
pub struct MemStore {
    pub records: std::cell::RefCell<std::collections::BTreeMap<String, Record>>,
    pub counters: std::cell::RefCell<std::collections::BTreeMap<String, Counter>>,
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
    fn counter(&self, name: &str) -> Result<Option<Counter>, StoreError> {
        if self.fail.get() {
            return Err(StoreError("failing".into()));
        }
        Ok(self.counters.borrow().get(name).copied())
    }
    fn put_counter(&self, name: &str, counter: &Counter) -> Result<(), StoreError> {
        self.counters.borrow_mut().insert(name.to_string(), *counter);
        Ok(())
    }
    fn counters(&self) -> Result<Vec<(String, Counter)>, StoreError> {
        Ok(self.counters.borrow().iter().map(|(k, v)| (k.clone(), *v)).collect())
    }
    fn drop_counters(&self, before_ms: u64) -> Result<(), StoreError> {
        self.counters.borrow_mut().retain(|_, c| before_ms != u64::MAX && c.start_ms >= before_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, FakeClock};

    fn claim(key: &str, wait_ms: u64) -> String {
        serde_json::to_string(&Request::Claim {
            key: key.into(),
            in_flight_ms: 3_500,
            wait_ms,
            ttl_s: 600,
            windows: vec![],
            enforce: true,
        })
        .unwrap()
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
        assert_eq!(reply(block_on(serve(&store, &clock, &claim("k", 0)))), Reply::Claimed { limit: None });
        assert_eq!(reply(block_on(serve(&store, &clock, &claim("k", 0)))), Reply::InFlight);
        assert_eq!(reply(block_on(serve(&store, &clock, &settle("k", "{\"a\":1}")))), Reply::Ok);
        let again = reply(block_on(serve(&store, &clock, &claim("k", 0))));
        assert_eq!(again, Reply::Settled { answer: Stored { status: 200, body: "{\"a\":1}".into() } });
        assert_eq!(reply(block_on(serve(&store, &clock, &claim("other", 0)))), Reply::Claimed { limit: None });
    }

    #[test]
    fn a_waiting_duplicate_gets_the_answer_settled_meanwhile() {
        let (store, clock) = (MemStore::default(), FakeClock::at(1_000_000));
        assert_eq!(reply(block_on(serve(&store, &clock, &claim("k", 0)))), Reply::Claimed { limit: None });
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
        assert_eq!(reply(block_on(serve(&store, &clock, &claim("k", 0)))), Reply::Claimed { limit: None });
        clock.advance(3_500);
        assert_eq!(reply(block_on(serve(&store, &clock, &claim("k", 1_000)))), Reply::Unknown);
        // Once the record expires (ttl 600 s) the key is free again.
        clock.advance(600_000);
        assert_eq!(reply(block_on(serve(&store, &clock, &claim("k", 0)))), Reply::Claimed { limit: None });
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

    fn limited_claim(key: &str, enforce: bool) -> String {
        let windows = vec![Window { name: "w:600".into(), max: 2, per_s: 600 }];
        serde_json::to_string(&Request::Claim {
            key: key.into(),
            in_flight_ms: 3_500,
            wait_ms: 0,
            ttl_s: 600,
            windows,
            enforce,
        })
        .unwrap()
    }

    #[test]
    fn a_claim_counts_the_numbers_windows_and_duplicates_do_not() {
        let (store, clock) = (MemStore::default(), FakeClock::at(1_000_000));
        assert_eq!(reply(block_on(serve(&store, &clock, &limited_claim("a", true)))), Reply::Claimed { limit: None });
        // A copy of "a" is not a new request: not counted.
        assert!(matches!(reply(block_on(serve(&store, &clock, &limited_claim("a", true)))), Reply::InFlight));
        assert_eq!(reply(block_on(serve(&store, &clock, &limited_claim("b", true)))), Reply::Claimed { limit: None });
        let Reply::Limited { limit } = reply(block_on(serve(&store, &clock, &limited_claim("c", true)))) else {
            panic!("the third request is over 2 per 600 s")
        };
        assert!(limit.first);
        assert!(store.records.borrow().get("c").is_none(), "a refused request is not claimed");
        // Monitor mode: claimed anyway, the limit reported.
        let Reply::Claimed { limit: Some(l) } = reply(block_on(serve(&store, &clock, &limited_claim("d", false))))
        else {
            panic!("monitor mode claims")
        };
        assert!(!l.first);
        // The admin release forgets the counters, not the claims.
        assert_eq!(reply(block_on(serve(&store, &clock, r#"{"op":"release"}"#))), Reply::Ok);
        assert_eq!(reply(block_on(serve(&store, &clock, &limited_claim("e", true)))), Reply::Claimed { limit: None });
        assert!(store.records.borrow().contains_key("a"));
    }

    #[test]
    fn hits_count_every_window_or_none() {
        let (store, clock) = (MemStore::default(), FakeClock::at(1_000_000));
        let hit = |max_short: u64| {
            serde_json::to_string(&Request::Hit {
                windows: vec![
                    Window { name: "w:60".into(), max: max_short, per_s: 60 },
                    Window { name: "w:3600".into(), max: 10, per_s: 3600 },
                ],
            })
            .unwrap()
        };
        assert_eq!(reply(block_on(serve(&store, &clock, &hit(1)))), Reply::Counted);
        assert!(matches!(reply(block_on(serve(&store, &clock, &hit(1)))), Reply::Limited { .. }));
        assert_eq!(store.counters.borrow()["w:3600"].count, 1, "the refused hit is counted nowhere");
        let Reply::Counters { counters } = reply(block_on(serve(&store, &clock, r#"{"op":"counters"}"#))) else {
            panic!()
        };
        assert!(counters.contains(&("w:3600".to_string(), 1)));
    }

    #[test]
    fn tallies_add_up_and_are_bounded() {
        let (store, clock) = (MemStore::default(), FakeClock::at(1_000_000));
        let tally = r#"{"op":"tally","names":[["t:refused:RATE_LIMITED:LV",3],["t:refused:RATE_LIMITED:LV",2]]}"#;
        assert_eq!(reply(block_on(serve(&store, &clock, tally))), Reply::Ok);
        assert_eq!(store.counters.borrow()["t:refused:RATE_LIMITED:LV"].count, 5);
        for i in 0..(MAX_TALLIES + 5) {
            let t = format!(r#"{{"op":"tally","names":[["t:n{i}",1]]}}"#);
            block_on(serve(&store, &clock, &t));
        }
        assert_eq!(store.counters.borrow().len(), MAX_TALLIES);
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
