//! Exactly-once sends: each request is claimed in its phone number's ledger object (see
//! [`crate::ledger`]) before anything is sent, and its answer is settled there after. A copy of
//! the request, from any isolate or location, gets the first answer byte for byte.
//!
//! "The same request" is the same `eventId` with the same phone, channel and OTP: the same
//! eventId with other content is a different request (and is sent).

use sha2::{Digest, Sha256};

use super::answer::Answer;
use super::request::OtpRequest;
use crate::edge::{Clock, Durable};
use crate::guard::window::{Limit, Window};
use crate::ledger::{self, call, Reply, Stored};

/// How long a copy is answered from the record: the OTP's remaining life plus this margin, within
/// [`RECORD_MIN_S`]..=[`RECORD_MAX_S`].
const RECORD_MARGIN_S: u64 = 300;
pub const RECORD_MIN_S: u64 = 600;
pub const RECORD_MAX_S: u64 = 86_400;
/// The most a ledger call may take of the time left (its "slice"), and never more than this.
const SLICE_MAX_MS: u64 = 300;
/// A claim older than the deadline plus this is no longer in flight: its outcome is unknown.
const IN_FLIGHT_MARGIN_MS: u64 = 1_000;

/// Where one request's record lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// The ledger object: one per phone number, named by a digest (no number in object names).
    pub object: String,
    /// The record in it: a digest of the event and its content.
    pub key: String,
    pub ttl_s: u64,
}

impl Ticket {
    pub fn new(req: &OtpRequest, now_ms: u64) -> Ticket {
        let lifetime_s = req.otp_expires_ms.map_or(0, |e| e.saturating_sub(now_ms) / 1000);
        Ticket {
            object: object_name(req.phone.as_str()),
            key: digest(&[req.event_id.as_str(), req.phone.as_str(), req.channel.as_str(), req.otp_code.as_str()]),
            ttl_s: (lifetime_s + RECORD_MARGIN_S).clamp(RECORD_MIN_S, RECORD_MAX_S),
        }
    }
}

/// The ledger object of a phone number (E.164).
pub fn object_name(e164: &str) -> String {
    format!("num:{}", digest(&["otp-ledger/v1", e164]))
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u32).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// What the claim found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This request sends (`Some`: a number window it is over, in monitor mode).
    Owned(Option<Limit>),
    /// Over one of the number's windows (enforced): not claimed, nothing sent.
    Limited(Limit),
    /// Answered before: this answer, again.
    Answered(Answer),
    /// A copy is still being sent and did not finish before this request must answer.
    InFlight,
    /// A copy claimed it long ago and never settled: the message may or may not have gone out.
    Unknown,
    /// The object did not answer within its slice (or failed): see `OTP_GUARD_FAILURE`.
    Unavailable(String),
}

impl Claim {
    /// The word for the log line.
    pub fn label(&self) -> &'static str {
        match self {
            Claim::Owned(_) => "claimed",
            Claim::Limited(_) => "limited",
            Claim::Answered(_) => "replayed",
            Claim::InFlight => "in_flight",
            Claim::Unknown => "unknown",
            Claim::Unavailable(_) => "unavailable",
        }
    }
}

/// The slice of the time left that one ledger call may take.
fn slice_ms(now_ms: u64, deadline_ms: u64) -> u64 {
    (deadline_ms.saturating_sub(now_ms) / 4).clamp(20, SLICE_MAX_MS)
}

/// Claims the ticket, counting it in the number's `windows` (over a limit: refused when
/// `enforce`). A copy in flight is waited for (inside the object) until `answer_by_ms`.
pub async fn claim<D: Durable, C: Clock>(
    ledger: &D,
    clock: &C,
    ticket: &Ticket,
    (windows, enforce): (Vec<Window>, bool),
    deadline_ms: u64,
    answer_by_ms: u64,
) -> Claim {
    let now = clock.now_ms();
    let slice = slice_ms(now, deadline_ms);
    let wait_ms = answer_by_ms.saturating_sub(now + slice);
    let request = ledger::Request::Claim {
        key: ticket.key.clone(),
        in_flight_ms: deadline_ms.saturating_sub(now) + IN_FLIGHT_MARGIN_MS,
        wait_ms,
        ttl_s: ticket.ttl_s,
        windows,
        enforce,
    };
    match call(ledger, &ticket.object, &request, wait_ms + slice).await {
        Ok(Reply::Claimed { limit }) => Claim::Owned(limit),
        Ok(Reply::Limited { limit }) => Claim::Limited(limit),
        Ok(Reply::Settled { answer }) => Claim::Answered(Answer { status: answer.status, body: answer.body }),
        Ok(Reply::InFlight) => Claim::InFlight,
        Ok(Reply::Unknown) => Claim::Unknown,
        Ok(other) => Claim::Unavailable(format!("unexpected reply {other:?}")),
        Err(e) => Claim::Unavailable(e.to_string()),
    }
}

/// Stores the answer the owner gave, within the slice left before `deadline_ms`.
pub async fn settle<D: Durable, C: Clock>(
    ledger: &D,
    clock: &C,
    ticket: &Ticket,
    answer: &Answer,
    deadline_ms: u64,
) -> Result<(), String> {
    let timeout = deadline_ms.saturating_sub(clock.now_ms()).clamp(50, SLICE_MAX_MS);
    let request = ledger::Request::Settle {
        key: ticket.key.clone(),
        answer: Stored { status: answer.status, body: answer.body.clone() },
        ttl_s: ticket.ttl_s,
    };
    match call(ledger, &ticket.object, &request, timeout).await.map_err(|e| e.to_string())? {
        Reply::Ok => Ok(()),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

/// The slice a ledger call may take when `now_ms` and `deadline_ms` are as given.
pub fn slice(now_ms: u64, deadline_ms: u64) -> u64 {
    slice_ms(now_ms, deadline_ms)
}
