//! Provisioning: Okta memberships and lifecycle → Amazon Connect users.
//!
//! The queue consumer ([`handle_batch`]) receives the events `/okta/events` enqueued. It never
//! trusts an event's order or content: for each Okta user in the batch it reads the user's current
//! state from Okta (status, configured groups, configured app assignments), decides the Connect
//! user they should have ([`mapping`]) and converges Connect to it ([`converge`]). Duplicates and
//! reordering therefore cannot produce a wrong result: the last convergence wins, and it reflects
//! Okta as it is.
//!
//! Failures: throttling, 5xx and network errors are retried inside the call, then by the queue
//! with exponential backoff (or at Okta's rate-limit reset); after `PROVISIONING_MAX_ATTEMPTS`
//! deliveries, or at once for a message that can never succeed (malformed, unprovisionable user,
//! permission denied), the message goes to the dead-letter queue with its reason and a structured
//! error log. Each user's outcome decides only that user's messages: one poison message never
//! holds back the others.
//!
//! [`reconcile`] compares all of Okta with all managed Connect users (cron and admin endpoint).

pub mod client;
pub mod config;
pub mod dead_letter;
pub mod mapping;
pub mod message;
pub mod reconcile;
pub mod safety;

use std::collections::BTreeMap;
use std::fmt;

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};

use crate::budget::{Budget, Metered, Reservation};
use crate::edge::{Clock, Durable, Http};
use crate::okta::assertion::RsaSigner;
use crate::okta::{is_okta_id, OktaApi, OktaError, OktaUser, Session};
use crate::provisioning::message::QueueMessage;
use crate::settings::ConfigError;
use client::{diff, is_managed, owner, CallError, Connect, Created, OKTA_USER_TAG};
use config::ProvisioningConfig;
use mapping::{desired, has_access_status, Desired, Unprovisionable};
use safety::{DeleteGate, Deletions, Held, SourcesCache};

/// Users converged concurrently within one batch.
pub const CONCURRENCY: usize = 4;
/// Subrequests admitted per user: the Okta reads (user, groups) and Connect's searches, writes
/// and deletion budget, with room for a retry; plus one per configured app (assignment checks).
/// The actual count is enforced by [`crate::budget::Metered`] whatever this estimate says.
pub const SUBREQUESTS_PER_USER: u32 = 10;
/// Held for the batch as a whole: the Okta token, the dead-letter and the requeue sends.
const SUBREQUESTS_PER_BATCH: u32 = 3;
/// The queue consumer waits at most this long for an Okta rate-limit reset; a later reset
/// becomes the message's retry delay.
pub const MAX_OKTA_WAIT_MS: u64 = 5_000;
/// Longest retry delay (Cloudflare Queues accept up to 12 h).
pub const MAX_RETRY_DELAY_S: u64 = 3600;
/// A message the consumer did not decide on, or whose forward to another queue failed, is
/// retried after this long.
pub const REQUEUE_DELAY_S: u32 = 60;
/// Largest Okta or Connect response read (a page of 200 Okta users, 1,000 Connect summaries).
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// The edge services provisioning uses.
pub struct ProvisioningEdge<'a, H, C, S: RsaSigner, D> {
    pub http: &'a H,
    pub clock: &'a C,
    pub signer: &'a S,
    pub session: &'a Session<S::PrivateKey>,
    /// The ledger objects (`OTP_LEDGER`): the deletion budget lives in one.
    pub ledger: &'a D,
    /// Isolate memory of the configured groups' and apps' existence.
    pub sources: &'a SourcesCache,
}

/// An edge's HTTP and ledger calls, counted against one invocation's [`Budget`].
pub struct Metering<'a, H, D> {
    http: Metered<'a, H>,
    ledger: Metered<'a, D>,
}

impl<'a, H, D> Metering<'a, H, D> {
    pub fn new<C, S: RsaSigner>(edge: &ProvisioningEdge<'a, H, C, S, D>, budget: &'a Budget) -> Self {
        Metering { http: Metered { inner: edge.http, budget }, ledger: Metered { inner: edge.ledger, budget } }
    }
}

impl<'a, H, C, S: RsaSigner, D> ProvisioningEdge<'a, H, C, S, D> {
    /// This edge with its calls counted by `m` (see [`crate::budget`]).
    pub fn metered<'b>(&self, m: &'b Metering<'a, H, D>) -> ProvisioningEdge<'b, Metered<'a, H>, C, S, Metered<'a, D>>
    where
        'a: 'b,
    {
        ProvisioningEdge {
            http: &m.http,
            clock: self.clock,
            signer: self.signer,
            session: self.session,
            ledger: &m.ledger,
            sources: self.sources,
        }
    }
}

impl<H: Http, C: Clock, S: RsaSigner, D: Durable> ProvisioningEdge<'_, H, C, S, D> {
    /// An Okta client for one unit of work, waiting at most `max_wait_ms` for a rate-limit reset.
    pub fn okta<'b>(&'b self, cfg: &'b crate::okta::OktaApiConfig, max_wait_ms: u64) -> OktaApi<'b, H, C, S> {
        OktaApi {
            cfg,
            http: self.http,
            clock: self.clock,
            signer: self.signer,
            session: self.session,
            max_wait_ms,
            calls: Default::default(),
            rate: Default::default(),
        }
    }
}

/// Why a user could not be converged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConvergeError {
    Okta(OktaError),
    Connect(CallError),
    Unprovisionable(Unprovisionable),
    /// A deletion did not pass the safety checks (see [`safety`]): retried later.
    Held(Held),
}

impl ConvergeError {
    pub fn reason(&self) -> &'static str {
        match self {
            ConvergeError::Okta(e) => e.reason(),
            ConvergeError::Connect(e) => e.reason(),
            ConvergeError::Unprovisionable(u) => u.reason(),
            ConvergeError::Held(h) => h.reason(),
        }
    }

    pub fn is_transient(&self) -> bool {
        match self {
            ConvergeError::Okta(e) => e.is_transient(),
            ConvergeError::Connect(e) => e.is_transient(),
            ConvergeError::Unprovisionable(_) => false,
            ConvergeError::Held(_) => true,
        }
    }

    /// The earliest time a retry can succeed (an Okta rate-limit reset, a hold's end).
    fn not_before_ms(&self, now_ms: u64) -> Option<u64> {
        match self {
            ConvergeError::Okta(OktaError::RateLimited { reset_ms }) => Some(*reset_ms),
            ConvergeError::Held(h) => Some(now_ms + h.retry_after_ms()),
            _ => None,
        }
    }
}

impl fmt::Display for ConvergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConvergeError::Okta(e) => e.fmt(f),
            ConvergeError::Connect(e) => e.fmt(f),
            ConvergeError::Unprovisionable(u) => u.fmt(f),
            ConvergeError::Held(h) => write!(f, "deletion held: {h}"),
        }
    }
}

impl From<OktaError> for ConvergeError {
    fn from(e: OktaError) -> Self {
        ConvergeError::Okta(e)
    }
}

impl From<Held> for ConvergeError {
    fn from(h: Held) -> Self {
        ConvergeError::Held(h)
    }
}

impl From<CallError> for ConvergeError {
    fn from(e: CallError) -> Self {
        ConvergeError::Connect(e)
    }
}

/// What converging one user did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Converged {
    /// `created`, `updated`, `unchanged`, `deleted`, `absent` (no access, no managed user) or
    /// `conflict` (another user holds the username: left alone, see `reason`).
    pub action: &'static str,
    /// Why a conflict: [`UNMANAGED_USER_EXISTS`] or [`OWNED_BY_ANOTHER_OKTA_USER`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_user_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<&'static str>,
    /// Managed users deleted (no access, or left under an old username).
    #[serde(skip_serializing_if = "is_zero")]
    pub deleted: u32,
}

/// A conflict: a Connect user this Worker did not create holds the username.
pub const UNMANAGED_USER_EXISTS: &str = "UNMANAGED_USER_EXISTS";
/// A conflict: a managed user holds the username, but its `oktaUserId` tag names another Okta user
/// (a login or e-mail reused): it is that user's, and is never updated or deleted on this one's behalf.
pub const OWNED_BY_ANOTHER_OKTA_USER: &str = "OWNED_BY_ANOTHER_OKTA_USER";

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The Okta side of one user: `Some(groups)` (the configured groups they are in) when they
/// should have a Connect user, with the user; `None` when not.
pub async fn access<H: Http, C: Clock, S: RsaSigner>(
    cfg: &ProvisioningConfig,
    okta: &OktaApi<'_, H, C, S>,
    user_id: &str,
) -> Result<Option<(OktaUser, Vec<String>)>, OktaError> {
    let Some(user) = okta.user(user_id).await? else { return Ok(None) };
    if !has_access_status(&user.status) {
        return Ok(None);
    }
    let mut groups = Vec::new();
    if !cfg.group_ids.is_empty() {
        let Some(all) = okta.group_ids(user_id).await? else { return Ok(None) };
        groups = cfg.group_ids.iter().filter(|g| all.contains(g)).cloned().collect();
    }
    if groups.is_empty() {
        let mut assigned = false;
        for app in &cfg.app_ids {
            if okta.is_assigned(app, user_id).await? {
                assigned = true;
                break;
            }
        }
        if !assigned {
            return Ok(None);
        }
    }
    Ok(Some((user, groups)))
}

/// Makes Connect match `target` for Okta user `okta_user_id`: `Some` = this user should exist,
/// `None` = no managed user of theirs should. Only users tagged with `okta_user_id` are ever
/// written to or deleted; each deletion first passes `gate`.
pub async fn converge<H: Http, C: Clock, G: DeleteGate>(
    connect: &Connect<'_, H, C>,
    gate: &G,
    okta_user_id: &str,
    target: Option<&Desired>,
) -> Result<Converged, ConvergeError> {
    let Some(d) = target else {
        let ours: Vec<_> =
            connect.find_by_tag(OKTA_USER_TAG, okta_user_id).await?.into_iter().filter(is_managed).collect();
        for u in &ours {
            gate.allow().await?;
            connect.delete(&u.id).await?;
        }
        let action = if ours.is_empty() { "absent" } else { "deleted" };
        return Ok(Converged { action, deleted: ours.len() as u32, ..Converged::default() });
    };
    let mut deleted = 0;
    for round in 0..2 {
        if let Some(u) = connect.find_by_username(&d.username).await?.into_iter().next() {
            let reason = if !is_managed(&u) {
                Some(UNMANAGED_USER_EXISTS)
            } else if owner(&u) != Some(okta_user_id) {
                Some(OWNED_BY_ANOTHER_OKTA_USER)
            } else {
                None
            };
            if reason.is_some() {
                return Ok(Converged {
                    action: "conflict",
                    reason,
                    connect_user_id: Some(u.id),
                    ..Converged::default()
                });
            }
            let changes = diff(d, &u);
            connect.update(&u.id, d, &changes).await?;
            let action = if changes.is_empty() { "unchanged" } else { "updated" };
            let changes = changes.iter().map(|c| c.as_str()).collect();
            return Ok(Converged { action, connect_user_id: Some(u.id), changes, deleted, ..Converged::default() });
        }
        if round == 0 {
            // The Okta login may have changed: their managed user under the old name goes.
            for u in connect.find_by_tag(OKTA_USER_TAG, okta_user_id).await?.into_iter().filter(is_managed) {
                gate.allow().await?;
                connect.delete(&u.id).await?;
                deleted += 1;
            }
        }
        match connect.create(d).await? {
            Created::New(id) => {
                return Ok(Converged { action: "created", connect_user_id: Some(id), deleted, ..Converged::default() })
            }
            // Created meanwhile (a concurrent delivery, or our earlier attempt whose answer was
            // lost): look again and converge that user.
            Created::Exists => continue,
        }
    }
    Err(ConvergeError::Connect(CallError::Network(
        "CreateUser answered 409 but SearchUsers does not find the user".into(),
    )))
}

/// One user, end to end: Okta's state → the desired user → Connect.
pub async fn provision_user<H: Http, C: Clock, S: RsaSigner, G: DeleteGate>(
    cfg: &ProvisioningConfig,
    okta: &OktaApi<'_, H, C, S>,
    connect: &Connect<'_, H, C>,
    gate: &G,
    user_id: &str,
) -> Result<Converged, ConvergeError> {
    let target = match access(cfg, okta, user_id).await? {
        None => None,
        Some((user, groups)) => {
            Some(desired(&user, &groups, &cfg.mapping, cfg.username).map_err(ConvergeError::Unprovisionable)?)
        }
    };
    converge(connect, gate, user_id, target.as_ref()).await
}

/// One delivered queue message: its id, its body as JSON text and how often it was delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    pub id: String,
    pub body: String,
    pub attempts: u32,
}

/// What to do with a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    Ack,
    /// Send these bodies to the provisioning queue, then ack (retry if the send fails): a bulk
    /// message split into one message per user, or a message this invocation's subrequest budget
    /// had no room for, sent again as it was.
    Requeue {
        bodies: Vec<String>,
    },
    Retry {
        delay_s: u32,
    },
    /// Send this body to the dead-letter queue, then ack.
    DeadLetter {
        body: String,
    },
}

/// What the shell does with a batch.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Per message id.
    pub dispositions: Vec<(String, Disposition)>,
    /// Structured log lines (one per user, one per refused message).
    pub logs: Vec<String>,
    /// Lines operators must see.
    pub alerts: Vec<String>,
}

impl BatchOutcome {
    /// The disposition of message `id`.
    pub fn disposition(&self, id: &str) -> Option<&Disposition> {
        self.dispositions.iter().find(|(m, _)| m == id).map(|(_, d)| d)
    }
}

/// A bulk message as one message per user (each converged on its own, with its own retries).
fn split(bulk: &QueueMessage) -> Vec<String> {
    std::iter::once(&bulk.user_id)
        .chain(&bulk.users)
        .enumerate()
        .map(|(i, user)| {
            let one = QueueMessage {
                uuid: format!("{}#{i}", bulk.uuid),
                user_id: user.clone(),
                users: Vec::new(),
                login: None,
                app_id: None,
                group_id: None,
                ..bulk.clone()
            };
            serde_json::to_string(&one).expect("string fields")
        })
        .collect()
}

/// The body of a dead letter: the original message and why it died.
fn dead_letter(m: &Incoming, reason: &str, error: &str, now_ms: u64) -> String {
    let original: Value = serde_json::from_str(&m.body).unwrap_or_else(|_| Value::String(m.body.clone()));
    json!({"message": original, "reason": reason, "error": error, "attempts": m.attempts,
           "queueMessageId": m.id, "deadAtMs": now_ms})
    .to_string()
}

/// The retry delay after the `attempts`-th delivery failed.
pub fn backoff_s(base_s: u32, attempts: u32, not_before_ms: Option<u64>, now_ms: u64) -> u32 {
    let exp = u64::from(base_s).saturating_mul(1u64 << attempts.saturating_sub(1).min(20));
    let reset = not_before_ms.map(|t| t.saturating_sub(now_ms).div_ceil(1000)).unwrap_or(0);
    exp.max(reset).min(MAX_RETRY_DELAY_S) as u32
}

/// Why a message failed, as far as its disposition cares.
struct Why<'a> {
    reason: &'a str,
    error: String,
    transient: bool,
    not_before_ms: Option<u64>,
}

impl<'a> Why<'a> {
    fn of(f: &'a ConvergeError, now_ms: u64) -> Self {
        Why {
            reason: f.reason(),
            error: f.to_string(),
            transient: f.is_transient(),
            not_before_ms: f.not_before_ms(now_ms),
        }
    }
}

/// Retry with backoff while attempts remain and a retry can help; otherwise dead-letter.
fn dispose(max_attempts: u32, base_s: u32, m: &Incoming, why: &Why<'_>, now_ms: u64) -> Disposition {
    if why.transient && m.attempts < max_attempts {
        Disposition::Retry { delay_s: backoff_s(base_s, m.attempts, why.not_before_ms, now_ms) }
    } else {
        Disposition::DeadLetter { body: dead_letter(m, why.reason, &why.error, now_ms) }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserLog<'a> {
    msg: &'static str,
    level: &'static str,
    okta_user_id: &'a str,
    events: Vec<&'a str>,
    #[serde(flatten)]
    converged: Option<&'a Converged>,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_in_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    max_attempt: u32,
    okta_calls: u32,
    connect_calls: u32,
    ms: u64,
}

/// Handles one batch of queue messages.
pub async fn handle_batch<H: Http, C: Clock, S: RsaSigner, D: Durable>(
    cfg: Result<&ProvisioningConfig, &ConfigError>,
    edge: &ProvisioningEdge<'_, H, C, S, D>,
    batch: &[Incoming],
) -> BatchOutcome {
    let now = edge.clock.now_ms();
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => return not_configured(batch, e, now),
    };
    let mut out = BatchOutcome::default();
    let budget = Budget::new(cfg.subrequest_budget);
    let sources = (cfg.group_ids.len() + cfg.app_ids.len()) as u32;
    let _batch = budget.reserve(SUBREQUESTS_PER_BATCH + sources);
    let (by_user, _sends) = sort_messages(batch, &budget, &mut out, now);
    let admitted = admit(by_user, &budget, SUBREQUESTS_PER_USER + cfg.app_ids.len() as u32, &mut out);
    let metering = Metering::new(edge, &budget);
    let edge = &edge.metered(&metering);
    let results: Vec<UserResult<'_>> = stream::iter(admitted)
        .map(|(user_id, msgs, reservation)| async move {
            let _reservation = reservation;
            let started = edge.clock.now_ms();
            let okta = edge.okta(&cfg.okta, MAX_OKTA_WAIT_MS);
            let connect = Connect::new(&cfg.connect, edge.http, edge.clock, 0);
            let gate = Deletions { cfg, okta: &okta, cache: edge.sources, ledger: edge.ledger, clock: edge.clock };
            let result = provision_user(cfg, &okta, &connect, &gate, &user_id).await;
            let ms = edge.clock.now_ms().saturating_sub(started);
            UserResult { user_id, msgs, result, okta_calls: okta.calls.get(), connect_calls: connect.calls.get(), ms }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    record(cfg, results, edge.clock.now_ms(), &mut out);
    out
}

/// One user's messages of a batch, as read.
type UserMessages<'m> = Vec<(&'m Incoming, QueueMessage)>;

/// What converging one user gave, and what it cost.
struct UserResult<'m> {
    user_id: String,
    msgs: UserMessages<'m>,
    result: Result<Converged, ConvergeError>,
    okta_calls: u32,
    connect_calls: u32,
    ms: u64,
}

/// Provisioning is misconfigured (perhaps fixed soon): every message is retried, and
/// dead-lettered after the default number of attempts.
fn not_configured(batch: &[Incoming], e: &ConfigError, now: u64) -> BatchOutcome {
    let mut out = BatchOutcome::default();
    out.alerts.push(format!("provisioning is misconfigured; {} message(s) wait: {e}", batch.len()));
    for m in batch {
        let why = Why { reason: "NOT_CONFIGURED", error: e.to_string(), transient: true, not_before_ms: None };
        out.dispositions.push((m.id.clone(), dispose(5, 60, m, &why, now)));
    }
    out
}

/// Reads every message: per-user messages grouped by user; bulk messages split into per-user
/// messages requeued (their sends reserved in `budget`, the reservations returned to be held
/// until the batch ends); poison messages straight to the dead-letter queue.
fn sort_messages<'m, 'b>(
    batch: &'m [Incoming],
    budget: &'b Budget,
    out: &mut BatchOutcome,
    now: u64,
) -> (BTreeMap<String, UserMessages<'m>>, Vec<Reservation<'b>>) {
    let mut sends = Vec::new();
    let mut by_user: BTreeMap<String, UserMessages<'m>> = BTreeMap::new();
    for m in batch {
        match serde_json::from_str::<QueueMessage>(&m.body) {
            Ok(q) if !q.users.is_empty() && q.users.iter().chain([&q.user_id]).all(|u| is_okta_id(u)) => {
                // Its sends (one per 100 users) come out of this invocation's budget too.
                let bodies = split(&q);
                match budget.reserve(bodies.len().div_ceil(crate::edge::QUEUE_BATCH) as u32) {
                    Some(r) => {
                        sends.push(r);
                        out.dispositions.push((m.id.clone(), Disposition::Requeue { bodies }));
                    }
                    None => out.dispositions.push((m.id.clone(), Disposition::Retry { delay_s: 1 })),
                }
            }
            Ok(q) if is_okta_id(&q.user_id) && q.users.is_empty() => {
                by_user.entry(q.user_id.clone()).or_default().push((m, q))
            }
            parsed => {
                let why = if parsed.is_ok() { "a user id is not an Okta id" } else { "not a provisioning message" };
                out.logs.push(
                    json!({"msg": "provisioning", "level": "error", "queueMessageId": m.id, "outcome": "dead-letter",
                           "reason": "MALFORMED_MESSAGE", "error": why})
                    .to_string(),
                );
                out.dispositions.push((
                    m.id.clone(),
                    Disposition::DeadLetter { body: dead_letter(m, "MALFORMED_MESSAGE", why, now) },
                ));
            }
        }
    }
    (by_user, sends)
}

/// Admits users while the invocation's subrequest budget has room for `per_user` calls each; the
/// rest go back to the queue as they came, for a later invocation. One user is always admitted:
/// a budget too small for one still makes progress.
#[allow(clippy::type_complexity)]
fn admit<'m, 'b>(
    by_user: BTreeMap<String, UserMessages<'m>>,
    budget: &'b Budget,
    per_user: u32,
    out: &mut BatchOutcome,
) -> Vec<(String, UserMessages<'m>, Option<Reservation<'b>>)> {
    let mut admitted = Vec::new();
    for (user_id, msgs) in by_user {
        match budget.reserve(per_user) {
            Some(r) => admitted.push((user_id, msgs, Some(r))),
            None if admitted.is_empty() => admitted.push((user_id, msgs, None)),
            None => {
                for (m, _) in msgs {
                    out.dispositions.push((m.id.clone(), Disposition::Requeue { bodies: vec![m.body.clone()] }));
                }
            }
        }
    }
    admitted
}

/// Each user's log line, alerts and dispositions: ack on success (a conflict alerts), else retry
/// or dead-letter by [`dispose`]; one alert per kind of held deletion.
fn record(cfg: &ProvisioningConfig, results: Vec<UserResult<'_>>, now: u64, out: &mut BatchOutcome) {
    let mut held: Vec<&'static str> = Vec::new();
    for UserResult { user_id, msgs, result, okta_calls, connect_calls, ms } in results {
        let max_attempt = msgs.iter().map(|(m, _)| m.attempts).max().unwrap_or(1);
        let mut log = UserLog {
            msg: "provisioning",
            level: "info",
            okta_user_id: &user_id,
            events: msgs.iter().map(|(_, q)| q.event_type.as_str()).collect(),
            converged: None,
            outcome: "ack",
            retry_in_s: None,
            reason: None,
            error: None,
            max_attempt,
            okta_calls,
            connect_calls,
            ms,
        };
        match &result {
            Ok(c) => {
                log.converged = Some(c);
                if let Some(reason) = c.reason {
                    log.level = "warn";
                    out.alerts.push(format!(
                        "provisioning conflict for Okta user {user_id}: {reason} (Connect user {}); nothing was changed in Connect",
                        c.connect_user_id.as_deref().unwrap_or("?")
                    ));
                }
                for (m, _) in &msgs {
                    out.dispositions.push((m.id.clone(), Disposition::Ack));
                }
            }
            Err(f) => {
                log.reason = Some(f.reason());
                log.error = Some(f.to_string());
                if let ConvergeError::Held(h) = f {
                    if !held.contains(&h.reason()) {
                        held.push(h.reason());
                        out.alerts.push(format!("provisioning deletions held: {h}"));
                    }
                }
                for (m, _) in &msgs {
                    let d = dispose(cfg.max_attempts, cfg.retry_base_s, m, &Why::of(f, now), now);
                    match &d {
                        Disposition::Retry { delay_s } => {
                            log.level = "warn";
                            log.outcome = "retry";
                            log.retry_in_s = Some(*delay_s);
                        }
                        _ => {
                            log.level = "error";
                            log.outcome = "dead-letter";
                        }
                    }
                    out.dispositions.push((m.id.clone(), d));
                }
            }
        }
        out.logs.push(serde_json::to_string(&log).expect("plain fields"));
    }
}

#[cfg(test)]
mod tests;
