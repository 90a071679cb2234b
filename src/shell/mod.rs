//! The Worker shell (wasm only): reads bindings, calls the core, turns the result into a
//! `Response`. Everything here is plumbing; decisions live in the core.
//!
//! - `shell::bindings`: `edge` traits over `fetch`, Workers KV and `Date.now()`;
//! - RS256 goes through `crate::webcrypto` (`crypto.subtle`);
//! - the template sync (`crate::sync`) runs on the Cron Trigger (`#[event(scheduled)]`) and
//!   behind `/admin/templates/*`; its settings are read apart from the hook's, on every run;
//! - provisioning (`crate::provisioning`): the queue consumer (the `queue` export below), the
//!   reconciliation on its own cron (`RECONCILE_CRON`) and behind `/admin/provisioning/reconcile`.

mod bindings;
mod dead_letters;
mod ledger;
mod queue;
mod reconcile_job;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use worker::{
    console_error, console_log, event, Context, Date, Env, Request, Response, ScheduleContext, ScheduledEvent,
};

use crate::admin::Gate;
use crate::aws::dynamodb;
use crate::events::{self, config::EventsConfig, Seen};
use crate::http::Handled;
use crate::http::{self, Answer, BodyError};
use crate::okta::Session;
use crate::provisioning::reconcile::{self, job};
use crate::provisioning::{self, config as prov_config, config::ProvisioningConfig, safety::SourcesCache};
use crate::routes::{self, Resolved, Route};
use crate::settings;
use crate::sync::admin::{self, Op, SyncEdge};
use crate::sync::config::{self as sync_config, SyncConfig};
use crate::telephony::config::Config;
use crate::telephony::{self, Isolate, TelephonyEdge};
use crate::webcrypto::WebCrypto;
use bindings::{request_body, BoundedFetch, FetchHttp, JsClock, ReadError, WorkerDurable, WorkerKv, WorkerQueue};

thread_local! {
    static ISOLATE: RefCell<Option<Result<Rc<Isolate<web_sys::CryptoKey>>, settings::ConfigError>>> = const { RefCell::new(None) };
    /// One template sync at a time in this isolate (cron tick or admin request).
    static SYNC_GATE: Rc<Gate> = Rc::new(Gate::default());
    /// Event-hook uuids this isolate has enqueued.
    static EVENTS_SEEN: Rc<Seen> = Rc::new(Seen::default());
    /// The Okta service app's imported key and access token.
    pub(crate) static OKTA_SESSION: Rc<Session<web_sys::CryptoKey>> = Rc::new(Session::default());
    /// When the configured Okta groups and apps were last seen to exist (deletion safety).
    static PROVISIONING_SOURCES: Rc<SourcesCache> = Rc::new(SourcesCache::default());
}

/// What provisioning's edge borrows: isolate state and the ledger binding (deletion budget).
pub(crate) struct ProvisioningParts {
    session: Rc<Session<web_sys::CryptoKey>>,
    sources: Rc<SourcesCache>,
    ledger: WorkerDurable,
}

impl ProvisioningParts {
    pub(crate) fn of(env: &Env) -> Self {
        ProvisioningParts {
            session: OKTA_SESSION.with(Rc::clone),
            sources: PROVISIONING_SOURCES.with(Rc::clone),
            ledger: WorkerDurable(env.durable_object("OTP_LEDGER").map_err(|e| format!("no OTP_LEDGER binding: {e}"))),
        }
    }

    pub(crate) fn edge(&self) -> provisioning::ProvisioningEdge<'_, BoundedFetch, JsClock, WebCrypto, WorkerDurable> {
        provisioning::ProvisioningEdge {
            http: &PROVISIONING_HTTP,
            clock: &JsClock,
            signer: &WebCrypto,
            session: &self.session,
            ledger: &self.ledger,
            sources: &self.sources,
        }
    }
}

/// The named settings that are set, from vars or secrets.
pub(crate) fn read_settings(env: &Env, names: &[&str]) -> BTreeMap<String, String> {
    names
        .iter()
        .filter_map(|name| {
            let v = env.var(name).map(|v| v.to_string()).or_else(|_| env.secret(name).map(|s| s.to_string())).ok()?;
            Some((name.to_string(), v))
        })
        .collect()
}

/// Configuration is read once per isolate; a bad setting is reported on every request (500),
/// naming the setting, and nothing is sent.
fn isolate(env: &Env) -> Result<Rc<Isolate<web_sys::CryptoKey>>, settings::ConfigError> {
    ISOLATE.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            let settings = read_settings(env, telephony::config::SETTINGS);
            *cell = Some(Config::from_source(&settings).map(|c| Rc::new(Isolate::new(c))));
        }
        cell.as_ref().expect("just filled").clone()
    })
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let started_ms = Date::now().as_millis();
    let path = req.path();
    let answer = match route(&mut req, &env, &ctx, &path, started_ms).await {
        Ok(answer) => answer,
        // Never the error's text in the body (it can carry binding names, JS exceptions).
        Err(e) => {
            console_error!(
                "{}",
                serde_json::json!({"msg": "alert", "level": "alert", "alert": format!("request failed: {e}")})
            );
            http::plain_error(500, "Internal error", "INTERNAL_ERROR")
        }
    };
    let challenge = if path.starts_with("/admin/") {
        Some(r#"Bearer realm="admin""#)
    } else if path == "/okta/telephony" && answer_is_unauthorized_oauth(&env) {
        Some(r#"Bearer error="invalid_token""#)
    } else {
        None
    };
    // The 405's `Allow`, from the route table.
    let allow = match routes::resolve(&path, &req.inner().method()) {
        Resolved::MethodNotAllowed(allow) if answer.status == 405 => Some(allow),
        _ => None,
    };
    respond(answer, challenge, allow.as_deref())
}

async fn route(req: &mut Request, env: &Env, ctx: &Context, path: &str, started_ms: u64) -> worker::Result<Answer> {
    let route = match routes::resolve(path, &req.inner().method()) {
        Resolved::Route(r) => r,
        Resolved::MethodNotAllowed(allow) => {
            return Ok(http::plain_error(405, &format!("Only {allow} allowed here"), "METHOD_NOT_ALLOWED"));
        }
        Resolved::NotFound => return Ok(http::plain_error(404, "Not found", "NOT_FOUND")),
    };
    // One boxed future per route: each handler's state machine stays its own function instead of
    // being inlined into one future holding them all (smaller wasm; one allocation a request).
    type Handler<'a> = Pin<Box<dyn Future<Output = worker::Result<Answer>> + 'a>>;
    let handler: Handler<'_> = match route {
        Route::Health => return Ok(Answer { status: 200, body: r#"{"status":"ok"}"#.into() }),
        Route::EventsVerification => {
            return Ok(events::verification(
                req.headers().get("x-okta-verification-challenge").ok().flatten().as_deref(),
            ))
        }
        Route::Telephony => Box::pin(telephony_hook(req, env, ctx, started_ms)),
        Route::Events => Box::pin(event_hook(req, env)),
        Route::TemplatesSync => Box::pin(admin_request(req, env, Op::Sync)),
        Route::TemplatesStatus => Box::pin(admin_request(req, env, Op::Status)),
        Route::Reconcile => {
            // The raw URL, not `Request::url()`: parsing with the `url` crate would pull its IDNA
            // tables (~100 KB) into the bundle for one flag.
            let dry_run = reconcile::dry_run_requested(&req.inner().url());
            Box::pin(reconcile_request(req, env, job::AdminOp::Start { dry_run }))
        }
        Route::ReconcileStatus => Box::pin(reconcile_request(req, env, job::AdminOp::Status)),
        Route::ReconcileCancel => Box::pin(reconcile_request(req, env, job::AdminOp::Cancel)),
        Route::DeadLetters => Box::pin(dead_letters::list_request(req, env)),
        Route::Redrive => Box::pin(dead_letters::redrive_request(req, env)),
        Route::GuardStatus => Box::pin(guard_request(req, env, false)),
        Route::GuardRelease => Box::pin(guard_request(req, env, true)),
    };
    handler.await
}

/// The sync's edge services: DynamoDB pages may be larger than what the hook accepts.
const SYNC_HTTP: BoundedFetch = BoundedFetch(dynamodb::MAX_RESPONSE_BYTES);

async fn admin_request(req: &Request, env: &Env, op: Op) -> worker::Result<Answer> {
    let settings = read_settings(env, sync_config::SETTINGS);
    let kv = WorkerKv(env.kv("TEMPLATES")?);
    let edge = SyncEdge { http: &SYNC_HTTP, kv: &kv, clock: &JsClock };
    let gate = SYNC_GATE.with(Rc::clone);
    let authorization = req.headers().get("authorization").ok().flatten();
    let handled = admin::handle(
        op,
        authorization.as_deref(),
        crate::admin::admin_secret(&settings),
        SyncConfig::from_source(&settings),
        &gate,
        &edge,
    )
    .await;
    emit(&handled);
    Ok(handled.answer)
}

/// The provisioning's edge services: Okta and Connect listings may be larger than what the hook
/// accepts.
pub(crate) const PROVISIONING_HTTP: BoundedFetch = BoundedFetch(provisioning::MAX_RESPONSE_BYTES);

/// Provisioning settings: `None` when provisioning is off.
pub(crate) fn provisioning_config(
    settings: &BTreeMap<String, String>,
) -> Option<Result<ProvisioningConfig, settings::ConfigError>> {
    prov_config::enabled(settings).then(|| ProvisioningConfig::from_source(settings))
}

/// The `RECONCILE_JOB` Durable Object namespace (the reconciliation's one object).
fn reconcile_job(env: &Env) -> WorkerDurable {
    WorkerDurable(env.durable_object("RECONCILE_JOB").map_err(|e| format!("no RECONCILE_JOB binding: {e}")))
}

async fn reconcile_request(req: &Request, env: &Env, op: job::AdminOp) -> worker::Result<Answer> {
    let settings = read_settings(env, &[prov_config::SETTINGS, &["ADMIN_SECRET"]].concat());
    let authorization = req.headers().get("authorization").ok().flatten();
    let handled = job::admin(
        op,
        authorization.as_deref(),
        crate::admin::admin_secret(&settings),
        provisioning_config(&settings),
        &reconcile_job(env),
    )
    .await;
    emit(&handled);
    Ok(handled.answer)
}

/// The Cron Triggers (`[triggers] crons` in wrangler.toml): `RECONCILE_CRON` runs the
/// provisioning reconciliation; any other cron runs the template sync.
#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let prov = read_settings(&env, prov_config::SETTINGS);
    if event.cron() == prov_config::reconcile_cron(&prov) {
        emit(&job::scheduled(provisioning_config(&prov), &reconcile_job(&env)).await);
        return;
    }
    let settings = read_settings(&env, sync_config::SETTINGS);
    // Still the template sync (as always), but a tick that looks meant for the reconciliation says so.
    let sync_on = !matches!(SyncConfig::from_source(&settings), Ok(None));
    let reconcile_cron = prov_config::reconcile_cron(&prov);
    if let Some(alert) =
        provisioning::dead_letter::unmatched_cron(&event.cron(), &reconcile_cron, prov_config::enabled(&prov), sync_on)
    {
        console_error!("{}", serde_json::json!({"msg": "alert", "level": "alert", "alert": alert}));
    }
    let kv = match env.kv("TEMPLATES") {
        Ok(kv) => WorkerKv(kv),
        Err(e) => {
            console_error!(
                "{}",
                serde_json::json!({"msg": "alert", "level": "alert", "alert": format!("template sync: no TEMPLATES binding: {e}")})
            );
            return;
        }
    };
    let edge = SyncEdge { http: &SYNC_HTTP, kv: &kv, clock: &JsClock };
    let gate = SYNC_GATE.with(Rc::clone);
    let handled = admin::scheduled(SyncConfig::from_source(&settings), &gate, &edge).await;
    emit(&handled);
}

/// Writes a run's log line and alerts.
fn emit(handled: &Handled) {
    emit_lines(handled.log.as_slice(), &handled.alerts);
}

/// Log lines as they are, alerts as `{"msg":"alert",…}` lines at error level.
pub(crate) fn emit_lines(lines: &[String], alerts: &[String]) {
    for line in lines {
        console_log!("{line}");
    }
    for alert in alerts {
        console_error!("{}", serde_json::json!({"msg": "alert", "level": "alert", "alert": alert}));
    }
}

/// `GET /admin/guard/status` and `POST /admin/guard/release`: the guard's settings are the hook's.
async fn guard_request(req: &mut Request, env: &Env, release: bool) -> worker::Result<Answer> {
    let iso = match isolate(env) {
        Ok(i) => i,
        Err(e) => {
            console_error!("{}", serde_json::json!({"msg": "configuration", "level": "alert", "error": e.to_string()}));
            return Ok(http::plain_error(503, "The hook is misconfigured", "CONFIGURATION_ERROR"));
        }
    };
    let admin_secret = crate::admin::admin_secret(&read_settings(env, &["ADMIN_SECRET"]));
    let ledger = WorkerDurable(env.durable_object("OTP_LEDGER").map_err(|e| format!("no OTP_LEDGER binding: {e}")));
    let authorization = req.headers().get("authorization").ok().flatten();
    let handled = if release {
        let body = request_body(req, 1024).await.unwrap_or_default();
        crate::guard::admin::release(
            authorization.as_deref(),
            admin_secret,
            &iso.config.guard,
            &ledger,
            &iso.tripped,
            &body,
        )
        .await
    } else {
        crate::guard::admin::status(authorization.as_deref(), admin_secret, &ledger, iso.tallies.pending()).await
    };
    emit(&handled);
    Ok(handled.answer)
}

async fn telephony_hook(req: &mut Request, env: &Env, ctx: &Context, started_ms: u64) -> worker::Result<Answer> {
    let iso = match isolate(env) {
        Ok(i) => i,
        Err(e) => {
            console_error!("{}", serde_json::json!({"msg": "configuration", "level": "alert", "error": e.to_string()}));
            return Ok(http::plain_error(500, "The hook is misconfigured", "CONFIGURATION_ERROR"));
        }
    };
    let templates_kv = WorkerKv(env.kv("TEMPLATES")?);
    let ledger = WorkerDurable(env.durable_object("OTP_LEDGER").map_err(|e| format!("no OTP_LEDGER binding: {e}")));
    let edge = TelephonyEdge {
        http: &FetchHttp,
        templates_kv: &templates_kv,
        ledger: &ledger,
        clock: &JsClock,
        rs256: &WebCrypto,
    };
    let headers = req.headers().clone();
    let header = |name: &str| headers.get(name).ok().flatten();
    let read_body = || async move { body_or_error(request_body(req, telephony::request::MAX_BODY_BYTES).await) };
    // Safety net: the core keeps to the deadline itself; should anything still hang, answer Okta
    // before its own 3 s timeout rather than let it fall back to a second sender.
    let guard_ms = (started_ms + iso.config.deadline_ms + 150).saturating_sub(Date::now().as_millis());
    let handling = Box::pin(telephony::handle(&iso, &edge, header, read_body, started_ms));
    let guard = worker::Delay::from(std::time::Duration::from_millis(guard_ms));
    let outcome = match futures_util::future::select(handling, guard).await {
        futures_util::future::Either::Left((outcome, _)) => outcome,
        futures_util::future::Either::Right(_) => {
            console_error!(
                "{}",
                serde_json::json!({"msg": "alert", "level": "alert", "alert": "telephony request overran its deadline"})
            );
            return Ok(telephony::overrun_answer());
        }
    };
    console_log!("{}", outcome.log);
    for alert in &outcome.alerts {
        console_error!("{}", serde_json::json!({"msg": "alert", "level": "alert", "alert": alert}));
    }
    if let Some(deferred) = outcome.deferred {
        ctx.wait_until(async move {
            let ledger = WorkerDurable(ledger.0);
            if let Err(e) = crate::edge::Durable::call(&ledger, deferred.object, deferred.body, 2_000).await {
                console_error!("{}", serde_json::json!({"msg": "alert", "level": "alert", "alert": format!("guard tallies not recorded: {e}")}));
            }
        });
    }
    Ok(outcome.answer)
}

fn body_or_error(read: Result<Vec<u8>, ReadError>) -> Result<Vec<u8>, BodyError> {
    read.map_err(|e| match e {
        ReadError::TooLarge => BodyError::TooLarge,
        ReadError::Broken(_) => BodyError::Unreadable,
    })
}

/// `POST /okta/events`: settings read on each delivery (apart from the telephony `Config`), the
/// queue producer `PROVISIONING`, seen-records in `HOOK_STATE`.
async fn event_hook(req: &mut Request, env: &Env) -> worker::Result<Answer> {
    let cfg = match EventsConfig::from_source(&read_settings(env, events::config::SETTINGS)) {
        Ok(c) => c,
        Err(e) => {
            console_error!("{}", serde_json::json!({"msg": "configuration", "level": "alert", "error": e.to_string()}));
            return Ok(http::plain_error(503, "The event hook is not configured", "NOT_CONFIGURED"));
        }
    };
    let state_kv = WorkerKv(env.kv("HOOK_STATE")?);
    let queue = WorkerQueue(env.queue("PROVISIONING").map_err(|e| format!("no PROVISIONING binding: {e}")));
    let seen = EVENTS_SEEN.with(Rc::clone);
    let presented = req.headers().get(&cfg.auth_header).ok().flatten();
    let read_body = || async move { body_or_error(request_body(req, events::parse::MAX_BODY_BYTES).await) };
    let handled = events::handle(&cfg, &seen, &state_kv, &queue, presented.as_deref(), read_body).await;
    emit(&handled);
    Ok(handled.answer)
}

fn answer_is_unauthorized_oauth(env: &Env) -> bool {
    telephony::config::is_oauth_mode(env.var("OKTA_AUTH_MODE").ok().map(|v| v.to_string()).as_deref())
}

fn respond(answer: Answer, challenge: Option<&str>, allow: Option<&str>) -> worker::Result<Response> {
    let status = answer.status;
    let empty = answer.body.is_empty();
    let mut resp = Response::ok(answer.body)?.with_status(status);
    let h = resp.headers_mut();
    if !empty {
        h.set("content-type", "application/json")?;
    }
    h.set("cache-control", "no-store")?;
    if let Some(allow) = allow {
        h.set("allow", allow)?;
    }
    if let Some(challenge) = challenge.filter(|_| status == 401) {
        h.set("www-authenticate", challenge)?;
    }
    Ok(resp)
}
