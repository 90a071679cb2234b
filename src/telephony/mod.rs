//! The telephony inline hook, top to bottom in [`handle`]:
//! authenticate → parse → (replay?) → resolve template → render → send → answer.
//!
//! Each step is a function taking typed input and returning typed output. Whatever happens after
//! authentication and parsing, Okta gets HTTP 200 (Okta skips the hook on anything else and never
//! retries it), within the deadline, and the same answer again for a replayed request.
//!
//! Deliberately absent: HTTP plumbing (the shell), KV writes on the hot path (the answer record
//! is handed back as [`Outcome::persist`] for the shell to write after answering).

pub mod answer;
pub mod delivery;
pub mod log;
pub mod request;

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use sha2::{Digest, Sha256};

use self::answer::Answer;
use self::delivery::{Failure, Message};
use self::log::LogLine;
use self::request::{BadRequest, OtpRequest};
use crate::auth::jwks::JwksCache;
use crate::auth::jwt::{self, TokenCache, Verifier};
use crate::auth::rs256::Rs256;
use crate::auth::{secret, AuthError};
use crate::aws::messaging::{clamp_ttl, SendFailure};
use crate::config::{Config, HookAuth, PreviewPolicy};
use crate::edge::{Clock, Http, Kv};
use crate::locale::Locale;
use crate::template::store::{Origin, TemplateCache};
use crate::template::{render::render, Channel, Template};

/// How long a replay is answered from the record: the OTP's remaining life plus this margin,
/// never less than [`REPLAY_MIN_S`].
const REPLAY_MARGIN_S: u64 = 300;
const REPLAY_MIN_S: u64 = 600;
const REPLAY_MAX_S: u64 = 86_400;
const ISOLATE_ANSWERS_MAX: usize = 1024;
const DEFAULT_TTL_S: i64 = 300;

/// State kept by the isolate between requests.
pub struct Isolate<K> {
    pub config: Rc<Config>,
    pub jwks: Option<JwksCache<K>>,
    pub tokens: TokenCache,
    pub templates: TemplateCache,
    answers: RefCell<HashMap<String, Recorded>>,
}

#[derive(Clone)]
enum Recorded {
    InFlight { since_ms: u64 },
    Done { answer: Answer, expires_ms: u64 },
}

impl<K: Clone + 'static> Isolate<K> {
    pub fn new(config: Config) -> Self {
        let jwks = match &config.auth {
            HookAuth::OAuth(o) => Some(JwksCache::new(o.jwks_url.clone(), o.refetch_cooldown_s)),
            HookAuth::Header { .. } => None,
        };
        Isolate {
            config: Rc::new(config),
            jwks,
            tokens: TokenCache::default(),
            templates: TemplateCache::new(),
            answers: RefCell::new(HashMap::new()),
        }
    }
}

/// The edge services one request uses.
pub struct Edge<'a, H, T, S, C, V> {
    pub http: &'a H,
    /// The `TEMPLATES` namespace.
    pub templates_kv: &'a T,
    /// The `HOOK_STATE` namespace (answer records for replays).
    pub state_kv: &'a S,
    pub clock: &'a C,
    pub rs256: &'a V,
}

/// A record the shell writes after answering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Persist {
    pub key: String,
    pub value: String,
    pub ttl_s: u64,
}

/// What the shell does with one request.
#[derive(Debug)]
pub struct Outcome {
    pub answer: Answer,
    /// One JSON line for the request log.
    pub log: String,
    /// Lines operators must see (logged at error level).
    pub alerts: Vec<String>,
    pub persist: Option<Persist>,
}

/// Why the body could not be read.
pub enum BodyError {
    TooLarge,
    Unreadable,
}

/// Handles one `POST /okta/telephony`. `header` looks up a request header; `read_body` is
/// called only after authentication succeeded. `started_ms` is when the request arrived.
pub async fn handle<H, T, S, C, V, B>(
    iso: &Isolate<V::Key>,
    edge: &Edge<'_, H, T, S, C, V>,
    header: impl Fn(&str) -> Option<String>,
    read_body: impl FnOnce() -> B,
    started_ms: u64,
) -> Outcome
where
    H: Http + Clone + 'static,
    T: Kv,
    S: Kv,
    C: Clock,
    V: Rs256 + Clone + 'static,
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
        return finish(
            edge,
            log,
            answer::unauthorized(e.status(), &e.to_string(), e.reason(), auth_header),
            vec![],
            None,
        );
    }

    let parsed = match read_body().await {
        Err(BodyError::TooLarge) => Err((
            413,
            BadRequest {
                reason: "BODY_TOO_LARGE",
                location: "body",
                detail: format!("the body exceeds {} bytes", request::MAX_BODY_BYTES),
            },
        )),
        Err(BodyError::Unreadable) => Err((
            400,
            BadRequest { reason: "MALFORMED_REQUEST", location: "body", detail: "the body could not be read".into() },
        )),
        Ok(body) => request::parse(&body).map_err(|e| (if e.reason == "BODY_TOO_LARGE" { 413 } else { 400 }, e)),
    };
    let req = match parsed {
        Ok(r) => r,
        Err((status, e)) => {
            log.outcome = format!("INVALID:{}", e.reason);
            return finish(edge, log, answer::bad_request(status, &e.detail, e.reason, e.location), vec![], None);
        }
    };
    log.describe(&req);

    let key = replay_key(&req);
    let now = edge.clock.now_ms();
    if let Some(previous) = recall(iso, edge, &key, now, deadline_ms).await {
        log.replay = true;
        log.outcome = "REPLAY".into();
        return finish(edge, log, previous, vec![], None);
    }
    iso.answers.borrow_mut().insert(key.clone(), Recorded::InFlight { since_ms: now });

    let mut alerts = Vec::new();
    let answer = deliver(iso, edge, &req, deadline_ms, &mut log, &mut alerts).await;

    let now = edge.clock.now_ms();
    let lifetime_s = req.otp_expires_ms.map_or(0, |e| e.saturating_sub(now) / 1000);
    let ttl_s = (lifetime_s + REPLAY_MARGIN_S).clamp(REPLAY_MIN_S, REPLAY_MAX_S);
    remember(iso, &key, &answer, now, ttl_s);
    let persist = Persist { key, value: serde_json::to_string(&answer).unwrap_or_default(), ttl_s };
    finish(edge, log, answer, alerts, Some(persist))
}

async fn authenticate<H, T, S, C, V>(
    iso: &Isolate<V::Key>,
    edge: &Edge<'_, H, T, S, C, V>,
    header: &impl Fn(&str) -> Option<String>,
    deadline_ms: u64,
) -> Result<(), AuthError>
where
    H: Http + Clone + 'static,
    C: Clock,
    V: Rs256 + Clone + 'static,
{
    match &iso.config.auth {
        HookAuth::Header { header: name, secret: expected } => secret::check(header(name).as_deref(), expected),
        HookAuth::OAuth(oauth) => {
            let value = header("authorization");
            let token = jwt::bearer(value.as_deref())?;
            let jwks = iso.jwks.as_ref().expect("an OAuth isolate always has a JWKS cache");
            let verifier = Verifier { config: oauth, jwks, tokens: &iso.tokens, http: edge.http, rs256: edge.rs256 };
            let now = edge.clock.now_ms();
            // Keys must arrive in time to still send: at most a third of what is left.
            let jwks_timeout = (deadline_ms.saturating_sub(now) / 3).clamp(100, 1000);
            verifier.verify(token, now, jwks_timeout).await.map(|_| ())
        }
    }
}

/// The replay record's key: the event and what it asks for. The same eventId with different
/// content is a different request (and is sent).
fn replay_key(req: &OtpRequest) -> String {
    let mut h = Sha256::new();
    for part in [req.event_id.as_str(), req.phone.as_str(), req.channel.as_str(), req.otp_code.as_str()] {
        h.update((part.len() as u32).to_le_bytes());
        h.update(part.as_bytes());
    }
    let d = h.finalize();
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("telephony/answer/{hex}")
}

/// A stored answer for this request, if one exists (waiting for an identical request that is
/// still in flight in this isolate, up to the deadline).
async fn recall<H, T, S: Kv, C: Clock, V>(
    iso: &Isolate<impl Clone + 'static>,
    edge: &Edge<'_, H, T, S, C, V>,
    key: &str,
    now: u64,
    deadline_ms: u64,
) -> Option<Answer> {
    loop {
        let current = iso.answers.borrow().get(key).cloned();
        match current {
            Some(Recorded::Done { answer, expires_ms }) if expires_ms > edge.clock.now_ms() => return Some(answer),
            Some(Recorded::InFlight { since_ms }) if since_ms + iso.config.deadline_ms + 1000 > edge.clock.now_ms() => {
                if edge.clock.now_ms() + 50 + delivery::ANSWER_MARGIN_MS >= deadline_ms {
                    // The first copy is still sending: never send twice.
                    return Some(answer::delivery_failed(
                        SendFailure::ProviderUnavailable.user_message(),
                        "DUPLICATE_IN_PROGRESS",
                    ));
                }
                edge.clock.sleep(50).await;
            }
            _ => break,
        }
    }
    let stored = edge.state_kv.get(key, None).await.ok().flatten()?;
    let answer: Answer = serde_json::from_str(&stored).ok()?;
    remember(iso, key, &answer, now, REPLAY_MIN_S);
    Some(answer)
}

fn remember(iso: &Isolate<impl Clone + 'static>, key: &str, answer: &Answer, now: u64, ttl_s: u64) {
    let mut answers = iso.answers.borrow_mut();
    if answers.len() >= ISOLATE_ANSWERS_MAX {
        answers.retain(|_, r| matches!(r, Recorded::Done { expires_ms, .. } if *expires_ms > now));
        if answers.len() >= ISOLATE_ANSWERS_MAX {
            answers.clear();
        }
    }
    answers.insert(key.to_string(), Recorded::Done { answer: answer.clone(), expires_ms: now + ttl_s * 1000 });
}

/// Resolve → render → send → answer, for an authenticated, well-formed request.
async fn deliver<H, T, S, C, V>(
    iso: &Isolate<V::Key>,
    edge: &Edge<'_, H, T, S, C, V>,
    req: &OtpRequest,
    deadline_ms: u64,
    log: &mut LogLine,
    alerts: &mut Vec<String>,
) -> Answer
where
    H: Http + Clone + 'static,
    T: Kv,
    C: Clock,
    V: Rs256,
{
    let cfg = &iso.config;
    if req.preview && cfg.preview == PreviewPolicy::Simulate {
        log.outcome = "SIMULATED".into();
        return answer::successful(&format!("preview-{}", req.event_id), &metadata(req.channel, 0, "preview"));
    }

    let now = edge.clock.now_ms();
    let loaded = iso.templates.current(edge.templates_kv, now, cfg.template_cache_s * 1000).await;
    alerts.extend(loaded.alert.clone());
    let default = Locale::parse(&cfg.default_locale).expect("validated in config");
    let (template, template_locale) = match resolve(&loaded.set, loaded.origin, req, &default) {
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
    let sent = delivery::send(&cfg.messaging, &cfg.aws, &message, edge.http, edge.clock, deadline_ms).await;
    let latency = edge.clock.now_ms().saturating_sub(log.started_ms);
    match sent {
        Ok(d) => {
            log.attempts = d.attempts;
            log.outcome = "SUCCESSFUL".into();
            log.message_id = Some(d.message_id.clone());
            answer::successful(&d.message_id, &metadata(req.channel, latency, req.phone.country().unwrap_or("")))
        }
        Err(nd) => {
            log.attempts = nd.attempts;
            let (summary, reason) = match &nd.failure {
                Failure::Refused(kind, detail) => {
                    log.detail = Some(detail.clone());
                    if matches!(
                        kind,
                        SendFailure::ConfigurationError | SendFailure::SpendLimitReached | SendFailure::AccountBlocked
                    ) {
                        alerts.push(format!("AWS refused eventId {} as {}: {detail}", req.event_id, kind.reason()));
                    }
                    (kind.user_message(), kind.reason())
                }
                Failure::Timeout => (SendFailure::ProviderUnavailable.user_message(), "TIMEOUT"),
                Failure::NoOriginationIdentity => {
                    alerts.push(format!(
                        "no origination identity for {:?} (ORIGINATION_IDENTITIES has no default)",
                        req.phone.country()
                    ));
                    (SendFailure::ConfigurationError.user_message(), "CONFIGURATION_ERROR")
                }
                Failure::Signing(e) => {
                    alerts.push(format!("could not sign the AWS request: {e}"));
                    (SendFailure::ConfigurationError.user_message(), "CONFIGURATION_ERROR")
                }
            };
            log.outcome = format!("FAILED:{reason}");
            answer::delivery_failed(summary, reason)
        }
    }
}

/// The template for the request's channel along the locale chain. For SMS with no published
/// template, Okta's own rendered `msgTemplate` (already localised, already carrying the code)
/// comes before the built-in English text.
fn resolve(
    set: &crate::template::TemplateSet,
    origin: Origin,
    req: &OtpRequest,
    default: &Locale,
) -> Option<(Template, String)> {
    let published = set.resolve(req.channel, req.locale.as_ref(), default).filter(|_| origin == Origin::Kv);
    if let Some((locale, t)) = published {
        return Some((t.clone(), locale.to_string()));
    }
    let okta = req.msg_template.as_ref().filter(|t| t.contains(&req.otp_code) && t.chars().count() <= 1600);
    match (req.channel, okta) {
        // Escape our placeholder syntax: the text is final.
        (Channel::Sms, Some(text)) => Some((
            Template { body: text.replace("{{", "{ {").replace("@otp", "@ otp"), voice_id: None },
            "okta:msgTemplate".into(),
        )),
        _ => set.resolve(req.channel, req.locale.as_ref(), default).map(|(l, t)| (t.clone(), l.to_string())),
    }
}

fn metadata(channel: Channel, latency_ms: u64, country: &str) -> String {
    serde_json::json!({"channel": channel.as_str(), "country": country, "latencyMs": latency_ms}).to_string()
}

fn finish<H, T, S, C: Clock, V>(
    edge: &Edge<'_, H, T, S, C, V>,
    mut log: LogLine,
    answer: Answer,
    alerts: Vec<String>,
    persist: Option<Persist>,
) -> Outcome {
    log.status = answer.status;
    log.latency_ms = edge.clock.now_ms().saturating_sub(log.started_ms);
    Outcome { answer, log: log.to_json(), alerts, persist }
}

#[cfg(test)]
mod tests;
