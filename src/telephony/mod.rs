//! The telephony inline hook, top to bottom in [`handle`]:
//! authenticate → parse → claim (exactly once) → resolve template → render → send → settle → answer.
//!
//! Each step is a function taking typed input and returning typed output. Whatever happens after
//! authentication and parsing, Okta gets HTTP 200 within the deadline, in the shape
//! [`answer`] chooses for the outcome, and the same answer again for a copy of the request.
//!
//! Deliberately absent: HTTP plumbing (the shell), and any I/O shared between requests.

pub mod answer;
pub mod config;
pub mod log;
pub mod replay;
pub mod request;
pub mod send;

use std::future::Future;
use std::rc::Rc;

use self::answer::Answer;
use self::log::LogLine;
use self::replay::{Claim, Ticket};
use self::request::{BadRequest, OtpRequest};
use self::send::{Fault, Message, NotDelivered};
use crate::auth::jwks::JwksCache;
use crate::auth::jwt::{self, TokenCache, Verifier};
use crate::auth::rs256::Rs256;
use crate::auth::{secret, AuthError};
use crate::aws::messaging::{clamp_ttl, SendFailure};
use crate::edge::{Clock, Durable, Http, Kv};
use crate::guard::config::Mode;
use crate::guard::{self, Check, KeyKind, Refusal, Tallies, Tripped};
use crate::http::BodyError;
use crate::ledger::{self as ledger_proto, Reply};
use crate::locale::Locale;
use crate::telephony::config::{Config, FailurePolicy, HookAuth, PreviewPolicy};
use crate::template::store::{Origin, TemplateCache};
use crate::template::{render::render, Channel, Template};

const DEFAULT_TTL_S: i64 = 300;
/// Time kept back from the send for settling the answer in the ledger.
const SETTLE_RESERVE_MS: u64 = 100;

/// State kept by the isolate between requests: data only, never a pending I/O.
pub struct Isolate<K> {
    pub config: Rc<Config>,
    pub jwks: Option<JwksCache<K>>,
    pub tokens: TokenCache,
    pub templates: TemplateCache,
    /// Guard keys this isolate saw over their limits (refused here for a few seconds).
    pub tripped: Tripped,
    /// Guard tallies not yet sent to the status object.
    pub tallies: Tallies,
}

impl<K: Clone> Isolate<K> {
    pub fn new(config: Config) -> Self {
        let jwks = match &config.auth {
            HookAuth::OAuth(o) => Some(JwksCache::new(o.jwks_url.clone(), o.refetch_cooldown_s, o.max_stale_s)),
            HookAuth::Header { .. } => None,
        };
        Isolate {
            config: Rc::new(config),
            jwks,
            tokens: TokenCache::default(),
            templates: TemplateCache::new(),
            tripped: Tripped::default(),
            tallies: Tallies::default(),
        }
    }
}

/// The edge services one request uses.
pub struct TelephonyEdge<'a, H, T, L, C, V> {
    pub http: &'a H,
    /// The `TEMPLATES` namespace.
    pub templates_kv: &'a T,
    /// The per-number ledger objects (`OTP_LEDGER`).
    pub ledger: &'a L,
    pub clock: &'a C,
    pub rs256: &'a V,
}

/// What the shell does with one request.
#[derive(Debug)]
pub struct Outcome {
    pub answer: Answer,
    /// One JSON line for the request log.
    pub log: String,
    /// Lines operators must see (logged at error level).
    pub alerts: Vec<String>,
    /// A Durable Object call to make after answering (`waitUntil`): the guard's tallies.
    pub deferred: Option<Deferred>,
}

/// A call for after the answer: `body` to the object `object`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deferred {
    pub object: &'static str,
    pub body: String,
}

/// What Okta gets when the request overran its deadline (the shell's safety net): the send may
/// have been accepted, so `PENDING`, never an error object that would bring a second code.
pub fn overrun_answer() -> Answer {
    answer::pending(&reason_metadata("TIMEOUT"))
}

/// Handles one `POST /okta/telephony`. `header` looks up a request header; `read_body` is
/// called only after authentication succeeded. `started_ms` is when the request arrived.
pub async fn handle<H, T, L, C, V, B>(
    iso: &Isolate<V::Key>,
    edge: &TelephonyEdge<'_, H, T, L, C, V>,
    header: impl Fn(&str) -> Option<String>,
    read_body: impl FnOnce() -> B,
    started_ms: u64,
) -> Outcome
where
    H: Http,
    T: Kv,
    L: Durable,
    C: Clock,
    V: Rs256,
    B: Future<Output = Result<Vec<u8>, BodyError>>,
{
    let cfg = iso.config.clone();
    let deadline_ms = started_ms + cfg.deadline_ms;
    let mut log = LogLine::new(started_ms);

    if let Err(e) = authenticate(iso, edge, &header, deadline_ms).await {
        log.outcome = format!("REFUSED:{}", e.reason());
        let auth_header = match &cfg.auth {
            HookAuth::OAuth(_) => "Authorization",
            HookAuth::Header { header, .. } => header.as_str(),
        };
        let missing = e == AuthError::MissingCredentials;
        return finish(iso, edge, log, answer::auth_refused(e.status(), missing, auth_header), vec![]);
    }

    let parsed = match read_body().await {
        Err(BodyError::TooLarge) => Err(BadRequest::too_large()),
        Err(BodyError::Unreadable) => Err(BadRequest::unreadable()),
        Ok(body) => request::parse(&body),
    }
    .map_err(|e| (e.status, e));
    let req = match parsed {
        Ok(r) => r,
        Err((status, e)) => {
            log.outcome = format!("INVALID:{}", e.reason);
            return finish(iso, edge, log, answer::bad_request(status, &e.detail, e.reason, e.location), vec![]);
        }
    };
    log.describe(&req);

    let mut alerts = Vec::new();
    let guard = &cfg.guard;
    let guarding = guard.mode != Mode::Off;
    let enforce = guard.mode == Mode::Enforce;
    if guarding {
        if let Some((refusal, _what)) = guard::static_check(guard, &req.phone, req.channel) {
            let key = if refusal == Refusal::NumberRangeBlocked { "range" } else { "country" };
            if note_refusal(iso, &mut log, &req, refusal, key, enforce) {
                return refused(iso, edge, log, &req, refusal, alerts);
            }
        }
    }

    let ticket = Ticket::new(&req, edge.clock.now_ms());
    let answer_by_ms = deadline_ms.saturating_sub(send::ANSWER_MARGIN_MS);
    let number_windows =
        if guarding { guard::windows_for(guard, KeyKind::Number, &req.request_type) } else { Vec::new() };
    let ledger_started = edge.clock.now_ms();
    let claim =
        replay::claim(edge.ledger, edge.clock, &ticket, (number_windows, enforce), deadline_ms, answer_by_ms).await;
    log.ledger = Some(claim.label());
    log.ledger_ms = Some(edge.clock.now_ms().saturating_sub(ledger_started));
    match claim {
        Claim::Owned(None) => {}
        Claim::Owned(Some(_)) => {
            note_refusal(iso, &mut log, &req, Refusal::RateLimited, "number", false);
        }
        Claim::Limited(_) => {
            note_refusal(iso, &mut log, &req, Refusal::RateLimited, "number", true);
            iso.tallies.add(guard::limited_tally(KeyKind::Number, &req.phone.masked()));
            return refused(iso, edge, log, &req, Refusal::RateLimited, alerts);
        }
        Claim::Answered(previous) => {
            log.replay = true;
            log.outcome = "REPLAY".into();
            return finish(iso, edge, log, previous, vec![]);
        }
        Claim::InFlight => return unconfirmed(iso, edge, log, &req, "DUPLICATE_IN_PROGRESS"),
        Claim::Unknown => return unconfirmed(iso, edge, log, &req, "OUTCOME_UNKNOWN"),
        Claim::Unavailable(e) => {
            alerts.push(format!("the OTP ledger did not answer for eventId {} ({e})", req.event_id));
            if cfg.guard_failure == FailurePolicy::Closed {
                log.outcome = "FAILED:LEDGER_UNAVAILABLE".into();
                let refused =
                    answer::delivery_failed(SendFailure::ProviderUnavailable.user_message(), "LEDGER_UNAVAILABLE");
                return finish(iso, edge, log, refused, alerts);
            }
        }
    }

    let answer = match guarding {
        true => velocity(iso, edge, &req, deadline_ms, &mut log, &mut alerts).await,
        false => None,
    };
    let answer = match answer {
        Some(refusal) => refusal,
        None => deliver(iso, edge, &req, deadline_ms - SETTLE_RESERVE_MS, &mut log, &mut alerts).await,
    };

    if claim_is_owned(&log) {
        if let Err(e) = replay::settle(edge.ledger, edge.clock, &ticket, &answer, deadline_ms).await {
            alerts.push(format!("could not record the answer for eventId {} in the OTP ledger ({e})", req.event_id));
        }
    }
    finish(iso, edge, log, answer, alerts)
}

/// Records a guard decision in the log and the tallies; `true` when the request is to be refused
/// (enforced), `false` when it only would have been (monitor mode).
fn note_refusal<K>(
    iso: &Isolate<K>,
    log: &mut LogLine,
    req: &OtpRequest,
    refusal: Refusal,
    key: &'static str,
    enforced: bool,
) -> bool {
    log.guard = Some(refusal.reason());
    log.guard_key = Some(key);
    iso.tallies.add(guard::refusal_tally(refusal, req.phone.country()));
    if !enforced {
        log.guard_mode = Some("monitor");
    }
    enforced
}

/// A guard refusal: `FAILED` with the reason, nothing sent (see [`answer`] for why not the error
/// object).
fn refused<K, H, T, L, C: Clock, V>(
    iso: &Isolate<K>,
    edge: &TelephonyEdge<'_, H, T, L, C, V>,
    mut log: LogLine,
    req: &OtpRequest,
    refusal: Refusal,
    alerts: Vec<String>,
) -> Outcome {
    log.outcome = format!("FAILED:{}", refusal.reason());
    let meta = metadata(req.channel, 0, req.phone.country().unwrap_or(""), Some(refusal.reason()));
    finish(iso, edge, log, answer::failed(&meta), alerts)
}

/// The prefix, country and user windows, each in its own object, in parallel. `Some(answer)`
/// when the request is refused (or cannot be checked under `OTP_GUARD_FAILURE=closed`).
async fn velocity<H, T, L, C, V>(
    iso: &Isolate<V::Key>,
    edge: &TelephonyEdge<'_, H, T, L, C, V>,
    req: &OtpRequest,
    deadline_ms: u64,
    log: &mut LogLine,
    alerts: &mut Vec<String>,
) -> Option<Answer>
where
    L: Durable,
    C: Clock,
    V: Rs256,
{
    let cfg = &iso.config;
    let enforce = cfg.guard.mode == Mode::Enforce;
    let checks = guard::checks(&cfg.guard, &req.phone, req.user_id.as_deref(), &req.request_type);
    let enrollment = req.request_type == guard::ENROLLMENT;
    let now = edge.clock.now_ms();
    let timeout = replay::slice(now, deadline_ms);
    let hit = |check: Check| {
        let request = ledger_proto::Request::Hit { windows: check.windows.clone() };
        let tripped = iso.tripped.is_tripped(&check.object, enrollment, now);
        async move {
            if tripped {
                return Ok(Reply::Limited { limit: guard::window::Limit::remembered() });
            }
            crate::ledger::call(edge.ledger, &check.object, &request, timeout).await
        }
    };
    let replies = futures_util::future::join_all(checks.iter().cloned().map(hit)).await;
    let mut over: Option<&Check> = None;
    let mut unavailable = None;
    for (check, reply) in checks.iter().zip(replies) {
        match reply {
            Ok(Reply::Counted) => {}
            Ok(Reply::Limited { limit }) => {
                if limit.retry_after_ms > 0 {
                    let scope = guard::Scope::of(&limit.name);
                    iso.tripped.remember(&check.object, scope, edge.clock.now_ms(), limit.retry_after_ms);
                }
                if limit.first && matches!(check.kind, KeyKind::Prefix | KeyKind::Country) {
                    alerts.push(format!(
                        "toll-fraud guard: {} {} is over {} per {} s (eventId {})",
                        check.kind.as_str(),
                        check.label,
                        limit.max,
                        limit.per_s,
                        req.event_id
                    ));
                }
                iso.tallies.add(guard::limited_tally(check.kind, &check.label));
                over = over.or(Some(check));
            }
            Ok(other) => unavailable = Some(format!("unexpected reply {other:?}")),
            Err(e) => unavailable = Some(e.to_string()),
        }
    }
    if let Some(check) = over {
        if note_refusal(iso, log, req, Refusal::RateLimited, check.kind.as_str(), enforce) {
            log.outcome = format!("FAILED:{}", Refusal::RateLimited.reason());
            let meta = metadata(req.channel, 0, req.phone.country().unwrap_or(""), Some(Refusal::RateLimited.reason()));
            return Some(answer::failed(&meta));
        }
    }
    if let Some(e) = unavailable {
        alerts.push(format!("toll-fraud guard objects did not answer for eventId {} ({e})", req.event_id));
        if cfg.guard_failure == FailurePolicy::Closed {
            log.outcome = "FAILED:GUARD_UNAVAILABLE".into();
            return Some(answer::delivery_failed(SendFailure::ProviderUnavailable.user_message(), "GUARD_UNAVAILABLE"));
        }
    }
    None
}

fn claim_is_owned(log: &LogLine) -> bool {
    log.ledger == Some(Claim::Owned(None).label())
}

/// `PENDING` for a request whose copy may have been sent: nothing is sent now.
fn unconfirmed<K, H, T, L, C: Clock, V>(
    iso: &Isolate<K>,
    edge: &TelephonyEdge<'_, H, T, L, C, V>,
    mut log: LogLine,
    req: &OtpRequest,
    reason: &str,
) -> Outcome {
    log.outcome = format!("PENDING:{reason}");
    let meta = metadata(req.channel, 0, req.phone.country().unwrap_or(""), Some(reason));
    finish(iso, edge, log, answer::pending(&meta), vec![])
}

async fn authenticate<H, T, L, C, V>(
    iso: &Isolate<V::Key>,
    edge: &TelephonyEdge<'_, H, T, L, C, V>,
    header: &impl Fn(&str) -> Option<String>,
    deadline_ms: u64,
) -> Result<(), AuthError>
where
    H: Http,
    C: Clock,
    V: Rs256,
{
    match &iso.config.auth {
        HookAuth::Header { header: name, secret: expected } => secret::check(header(name).as_deref(), expected),
        HookAuth::OAuth(oauth) => {
            let value = header("authorization");
            let token = jwt::bearer(value.as_deref())?;
            let jwks = iso.jwks.as_ref().expect("an OAuth isolate always has a JWKS cache");
            let verifier = Verifier {
                config: oauth,
                jwks,
                tokens: &iso.tokens,
                http: edge.http,
                rs256: edge.rs256,
                clock: edge.clock,
            };
            let now = edge.clock.now_ms();
            // Keys must arrive in time to still send: at most a third of what is left.
            let jwks_timeout = (deadline_ms.saturating_sub(now) / 3).clamp(100, 1000);
            verifier.verify(token, now, jwks_timeout).await.map(|_| ())
        }
    }
}

/// Resolve → render → send → answer, for an authenticated, well-formed request.
async fn deliver<H, T, L, C, V>(
    iso: &Isolate<V::Key>,
    edge: &TelephonyEdge<'_, H, T, L, C, V>,
    req: &OtpRequest,
    deadline_ms: u64,
    log: &mut LogLine,
    alerts: &mut Vec<String>,
) -> Answer
where
    H: Http,
    T: Kv,
    C: Clock,
    V: Rs256,
{
    let cfg = &iso.config;
    if req.preview && cfg.preview == PreviewPolicy::Simulate {
        log.outcome = "SIMULATED".into();
        return answer::successful(&format!("preview-{}", req.event_id), &metadata(req.channel, 0, "preview", None));
    }

    let now = edge.clock.now_ms();
    let loaded = iso.templates.current(edge.templates_kv, now, cfg.template_cache_s * 1000).await;
    alerts.extend(loaded.alert.clone());
    let default = Locale::parse(&cfg.default_locale).expect("validated in config");
    let (template, template_locale) = match resolve(&loaded.set, req, &default) {
        Some(found) => found,
        None => {
            alerts.push(format!("no {} template at all for eventId {}", req.channel.as_str(), req.event_id));
            log.outcome = "FAILED:NO_TEMPLATE".into();
            return answer::delivery_failed(SendFailure::ConfigurationError.user_message(), "NO_TEMPLATE");
        }
    };
    log.template_locale = Some(match loaded.origin {
        Origin::Kv => template_locale,
        Origin::Builtin => format!("builtin:{template_locale}"),
    });
    let body = render(&template, req.channel, &req.otp_code);

    let ttl_s = clamp_ttl(req.otp_expires_ms.map_or(DEFAULT_TTL_S, |e| (e as i64 - now as i64) / 1000));
    let message = Message {
        destination: req.phone.as_str(),
        country: req.phone.country(),
        body,
        voice_id: template.voice_id.as_deref(),
        ttl_s,
        event_id: &req.event_id,
    };
    let sent = send::send(&cfg.messaging, &cfg.aws, &message, edge.http, edge.clock, deadline_ms).await;
    let latency = edge.clock.now_ms().saturating_sub(log.started_ms);
    let country = req.phone.country().unwrap_or("");
    match sent {
        Ok(d) => {
            log.attempts = d.attempts;
            log.outcome = "SUCCESSFUL".into();
            log.message_id = Some(d.message_id.clone());
            answer::successful(&d.message_id, &metadata(req.channel, latency, country, None))
        }
        Err(nd) => not_delivered(req, &nd, latency, log, alerts),
    }
}

/// The answer, log fields and alerts for a message that was not (or not surely) delivered: by
/// [`Fault`], `PENDING` (it may have been sent), `FAILED` (this destination is refused) or Okta's
/// `error` object (nothing sent, our side failed).
fn not_delivered(
    req: &OtpRequest,
    nd: &NotDelivered,
    latency: u64,
    log: &mut LogLine,
    alerts: &mut Vec<String>,
) -> Answer {
    log.attempts = nd.attempts;
    let (reason, shape) = match &nd.failure {
        Fault::Refused(kind, detail) => {
            log.detail = Some(detail.clone());
            if matches!(
                kind,
                SendFailure::ConfigurationError | SendFailure::SpendLimitReached | SendFailure::AccountBlocked
            ) {
                alerts.push(format!("AWS refused eventId {} as {}: {detail}", req.event_id, kind.reason()));
            }
            let shape = if kind.is_destination_refusal() { Shape::Failed } else { Shape::Error(*kind) };
            (kind.reason(), shape)
        }
        Fault::Timeout => ("TIMEOUT", Shape::Pending),
        Fault::Unconfirmed(detail) => {
            log.detail = Some(detail.clone());
            ("OUTCOME_UNKNOWN", Shape::Pending)
        }
        Fault::NoOriginationIdentity => {
            alerts.push(format!(
                "no origination identity for {:?} (ORIGINATION_IDENTITIES has no default)",
                req.phone.country()
            ));
            ("CONFIGURATION_ERROR", Shape::Error(SendFailure::ConfigurationError))
        }
        Fault::Signing(e) => {
            alerts.push(format!("could not sign the AWS request: {e}"));
            ("CONFIGURATION_ERROR", Shape::Error(SendFailure::ConfigurationError))
        }
    };
    let country = req.phone.country().unwrap_or("");
    let meta = || metadata(req.channel, latency, country, Some(reason));
    match shape {
        Shape::Pending => {
            log.outcome = format!("PENDING:{reason}");
            answer::pending(&meta())
        }
        Shape::Failed => {
            log.outcome = format!("FAILED:{reason}");
            answer::failed(&meta())
        }
        Shape::Error(kind) => {
            log.outcome = format!("FAILED:{reason}");
            answer::delivery_failed(kind.user_message(), reason)
        }
    }
}

/// Which of Okta's shapes an unsuccessful send gets (see [`answer`]).
enum Shape {
    Pending,
    Failed,
    Error(SendFailure),
}

/// The template for the request's channel along the locale chain: the published set, or the
/// built-in one when none is published. Never Okta's `msgTemplate`: that is caller-supplied free
/// text (up to 1,600 characters) and would go out under our sender id.
fn resolve(set: &crate::template::TemplateSet, req: &OtpRequest, default: &Locale) -> Option<(Template, String)> {
    set.resolve(req.channel, req.locale.as_ref(), default).map(|(l, t)| (t.clone(), l.to_string()))
}

/// `transactionMetadata`: what Okta's System Log shows of the outcome (never the number or code).
fn metadata(channel: Channel, latency_ms: u64, country: &str, reason: Option<&str>) -> String {
    let mut m = serde_json::json!({"channel": channel.as_str(), "country": country, "latencyMs": latency_ms});
    if let Some(r) = reason {
        m["reason"] = r.into();
    }
    m.to_string()
}

fn reason_metadata(reason: &str) -> String {
    serde_json::json!({ "reason": reason }).to_string()
}

fn finish<K, H, T, L, C: Clock, V>(
    iso: &Isolate<K>,
    edge: &TelephonyEdge<'_, H, T, L, C, V>,
    mut log: LogLine,
    answer: Answer,
    alerts: Vec<String>,
) -> Outcome {
    let now = edge.clock.now_ms();
    log.status = answer.status;
    log.latency_ms = now.saturating_sub(log.started_ms);
    let deferred = iso.tallies.take_due(now).map(|names| Deferred {
        object: guard::STATUS_OBJECT,
        body: serde_json::to_string(&ledger_proto::Request::Tally { names }).unwrap_or_default(),
    });
    Outcome { answer, log: log.to_json(), alerts, deferred }
}

#[cfg(test)]
mod tests;
