//! The reconciliation as a resumable job, in one Durable Object (`ReconcileJob`, named
//! [`OBJECT`]): one run at a time across every isolate, carried across the object's alarms.
//!
//! A run lists the managed Connect users (`SearchUsers` by tag), then every Connect user
//! (`ListUsers`), then Okta (each configured group, then each app, page by page), storing each
//! page as rows; then runs the pure [`plan`] once over the rows and stores the changes; then
//! applies them in order. Connect is listed first so that a change the queue consumer makes
//! meanwhile resolves safely (a user created after the Connect listing is found as its own on
//! 409; one deleted is a 404); a deletion is confirmed against Okta just before it is made (the
//! owner may have regained access since the listing). Every alarm is one invocation: it works until its `WORKER_SUBREQUEST_BUDGET` has
//! no room for the next unit (a page, a change), saves where it is, and sets the next alarm: at
//! once, at Okta's `X-Rate-Limit-Reset` after a 429 or when under a tenth of Okta's window is left
//! (the org's other clients keep the rest), or after a backoff when a listing call failed.
//!
//! Safety is the single-invocation run's: a listing that fails ends the run before any change (a
//! missing group must never read as "no members"); a plan with more than `RECONCILE_MAX_DELETES`
//! deletions holds all of them; every deletion passes [`Deletions`] (sources exist, the hourly
//! budget). Progress is saved after every page and every change, so an invocation that dies
//! redoes at most the unit it was in: rows are keyed, a create that finds its own user (409, then
//! found tagged with the same Okta id) counts as done, an update sets the same values, a delete
//! of a gone user succeeds. An invocation also yields after [`MAX_INVOCATION_MS`] of wall time.
//!
//! Deliberately absent: any I/O in the object's `fetch` (start, status and cancel are SQL only).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{entry, plan, Action, ChangeEntry, ChangeResult, Planned, ReconcileReport, Trigger};
use crate::admin::{refuse, AdminSecret};
use crate::aws::connect::{ConnectUser, UserSummary};
use crate::budget::{Budget, Spent};
use crate::edge::{Clock, Durable, Http};
use crate::http::Handled;
use crate::http::{self, Answer};
use crate::ledger::StoreError;
use crate::okta::assertion::RsaSigner;
use crate::okta::{OktaError, OktaId, OktaUser, RateLimit, MAX_PAGES};
use crate::provisioning::client::{owner, CallError, Change, Connect, Created, MANAGED_TAG, MANAGED_VALUE};
use crate::provisioning::config::ProvisioningConfig;
use crate::provisioning::mapping::{has_access_status, Desired};
use crate::provisioning::safety::{DeleteGate, Deletions, Held};
use crate::provisioning::{Metering, ProvisioningEdge, UNMANAGED_USER_EXISTS};
use crate::settings::ConfigError;

/// The one object every run lives in.
pub const OBJECT: &str = "reconcile";
/// Requests to the object are small JSON.
pub const MAX_REQUEST_BYTES: usize = 1024;
/// A run still unfinished this long after it started is given up when the next one is asked for.
pub const MAX_RUN_MS: u64 = 24 * 3_600_000;
/// Consecutive failed steps (Okta or Connect not answering a listing) before the run fails.
pub const MAX_STEP_FAILURES: u32 = 6;
/// The object's reply is awaited at most this long.
pub const CALL_TIMEOUT_MS: u64 = 5_000;
/// An invocation yields after this long (an alarm handler may run 15 minutes).
pub const MAX_INVOCATION_MS: u64 = 5 * 60_000;
/// Plan rows read per batch while applying.
const APPLY_BATCH: u32 = 100;
/// Connect listing pages per listing, at most.
const MAX_CONNECT_PAGES: u32 = 1000;

const JOB_KEY: &str = "job";
const LAST_KEY: &str = "last";
/// The id of the run under way, apart from its (larger) row: an invocation checks it before each
/// write, because a cancel (or a new run after it) can land while the invocation awaits a call.
const RUN_KEY: &str = "run";

/// Saves the run's progress, unless it is no longer the run under way (`false`).
fn checkpoint(store: &impl JobStore, job: &Job) -> Result<bool, StoreError> {
    if !current(store, &job.id)? {
        return Ok(false);
    }
    store.put(JOB_KEY, &encode(job))?;
    Ok(true)
}

/// Whether `id` is still the run under way.
fn current(store: &impl JobStore, id: &str) -> Result<bool, StoreError> {
    Ok(store.get(RUN_KEY)?.as_deref() == Some(id))
}

/// Where a run is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// Listing source `source` (the configured groups, then the apps) from `url` (`None`: the
    /// first page); `pages` of this source so far.
    Okta {
        source: u32,
        url: Option<String>,
        pages: u32,
    },
    /// Listing the Connect users tagged `managedBy`.
    Managed {
        token: Option<String>,
        pages: u32,
    },
    /// Listing every Connect user (usernames held by users we did not create).
    Holders {
        token: Option<String>,
        pages: u32,
    },
    Plan,
    /// Applying plan row `next` onwards.
    Apply {
        next: u32,
    },
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Okta { .. } => "listing-okta",
            Phase::Managed { .. } => "listing-connect-managed",
            Phase::Holders { .. } => "listing-connect-users",
            Phase::Plan => "planning",
            Phase::Apply { .. } => "applying",
        }
    }
}

/// A run under way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    pub phase: Phase,
    pub report: ReconcileReport,
    pub started_ms: u64,
    pub updated_ms: u64,
    /// When the next step is due.
    pub next_ms: u64,
    /// Why the next step waits, when it does.
    pub waiting: Option<String>,
    /// Consecutive steps that failed.
    pub failures: u32,
    /// Alarms that worked on this run.
    pub invocations: u32,
    /// The most subrequests one of them made.
    pub max_subrequests: u32,
    pub okta_pages: u32,
    pub connect_pages: u32,
    /// Waits for an Okta rate-limit reset.
    pub okta_waits: u32,
    /// Plan rows (changes to apply or list).
    pub changes: u32,
    /// The first hold of this run's deletions: every later deletion is held without asking.
    pub held: Option<String>,
}

/// One change as the plan stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    Create(Desired),
    Update { desired: Desired, id: String, changes: Vec<Change> },
    Delete { id: String, username: String, owner: Option<String> },
    Adopt { desired: Desired, id: String, arn: String },
}

impl From<Planned> for Step {
    fn from(p: Planned) -> Step {
        match p {
            Planned::Create(d) => Step::Create(d),
            Planned::Update(desired, u, changes) => Step::Update { desired, id: u.id, changes },
            Planned::Delete(u) => {
                let owner = owner(&u).map(String::from);
                Step::Delete { id: u.id, username: u.username, owner }
            }
            Planned::Adopt(desired, id, arn) => Step::Adopt { desired, id, arn },
        }
    }
}

/// The object's storage: synchronous, as SQLite in a Durable Object is. Listing rows are keyed
/// (a page stored twice is stored once); plan rows are numbered from 0 in plan order.
pub trait JobStore {
    fn get(&self, key: &str) -> Result<Option<String>, StoreError>;
    fn put(&self, key: &str, value: &str) -> Result<(), StoreError>;
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Okta users with access through `group` (or through an app: `None`).
    fn add_okta(&self, users: &[OktaUser], group: Option<&str>) -> Result<(), StoreError>;
    fn add_managed(&self, users: &[ConnectUser]) -> Result<(), StoreError>;
    fn add_holders(&self, users: &[UserSummary]) -> Result<(), StoreError>;
    /// Every stored Okta user with the groups they were listed in, by id.
    fn okta_users(&self) -> Result<BTreeMap<String, (OktaUser, Vec<String>)>, StoreError>;
    fn managed(&self) -> Result<Vec<ConnectUser>, StoreError>;
    /// The listed Connect users that are not among [`Self::managed`] (the plan takes those from
    /// there).
    fn holders(&self) -> Result<Vec<UserSummary>, StoreError>;
    fn put_plan(&self, steps: &[Step]) -> Result<(), StoreError>;
    /// Plan rows `from..from + n`.
    fn plan_rows(&self, from: u32, n: u32) -> Result<Vec<Step>, StoreError>;
    /// Drops the listings (and, with `plan`, the plan rows).
    fn clear(&self, plan: bool) -> Result<(), StoreError>;
}

fn decode<T: for<'de> Deserialize<'de>>(raw: Option<String>) -> Result<Option<T>, StoreError> {
    raw.map(|r| serde_json::from_str(&r).map_err(|e| StoreError(format!("stored state: {e}")))).transpose()
}

fn encode<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data")
}

/// A request to the object.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "op")]
pub enum Request {
    Start { dry_run: bool, trigger: Trigger },
    Status,
    Cancel,
}

/// The object's answer to a request: an HTTP status, the body, and when the alarm must fire.
#[derive(Debug, PartialEq, Eq)]
pub struct Served {
    pub status: u16,
    pub body: String,
    pub alarm_at: Option<u64>,
    pub log: Option<String>,
}

impl Served {
    /// `<status>\n<body>`: what the object's `fetch` answers (the caller reads it back with
    /// [`Served::parse`]).
    pub fn wire(&self) -> String {
        format!("{}\n{}", self.status, self.body)
    }

    pub fn parse(wire: &str) -> Option<(u16, &str)> {
        let (status, body) = wire.split_once('\n')?;
        Some((status.parse().ok().filter(|s| (200..600).contains(s))?, body))
    }
}

/// The status document: the run under way (if any) and the last finished run's report.
fn status_body(job: Option<&Job>, last: Option<&ReconcileReport>) -> String {
    encode(&status(job, last))
}

fn status(job: Option<&Job>, last: Option<&ReconcileReport>) -> serde_json::Value {
    let run = job.map(|j| {
        serde_json::json!({
            "id": j.id, "dryRun": j.report.dry_run, "trigger": j.report.trigger, "phase": j.phase.name(),
            "startedAt": j.started_ms, "updatedAt": j.updated_ms, "nextStepAt": j.next_ms, "waiting": j.waiting,
            "invocations": j.invocations, "maxSubrequestsPerInvocation": j.max_subrequests,
            "oktaPages": j.okta_pages, "connectPages": j.connect_pages, "oktaRateLimitWaits": j.okta_waits,
            "changes": j.changes, "applied": match j.phase { Phase::Apply { next } => next, _ => 0 },
            "report": j.report,
        })
    });
    serde_json::json!({"state": if job.is_some() { "running" } else { "idle" }, "run": run, "last": last})
}

fn load(store: &impl JobStore) -> Result<(Option<Job>, Option<ReconcileReport>), StoreError> {
    Ok((decode(store.get(JOB_KEY)?)?, decode(store.get(LAST_KEY)?)?))
}

/// Serves one request to the object (no I/O but its storage).
pub fn serve(store: &impl JobStore, request: &str, now_ms: u64) -> Result<Served, StoreError> {
    let Ok(request) = serde_json::from_str::<Request>(request) else {
        return Ok(Served {
            status: 400,
            body: http::plain_error(400, "Malformed request", "MALFORMED_REQUEST").body,
            alarm_at: None,
            log: None,
        });
    };
    let (job, mut last) = load(store)?;
    let mut log = None;
    match request {
        Request::Status => {
            let alarm_at = job.as_ref().map(|j| j.next_ms);
            Ok(Served { status: 200, body: status_body(job.as_ref(), last.as_ref()), alarm_at, log })
        }
        Request::Cancel => {
            let Some(j) = job else {
                return Ok(Served { status: 200, body: status_body(None, last.as_ref()), alarm_at: None, log });
            };
            let (report, _) =
                finish(store, j, Some("cancelled by an admin (POST /admin/provisioning/cancel)".into()), now_ms)?;
            log = Some(report.log_line());
            Ok(Served { status: 200, body: status_body(None, Some(&report)), alarm_at: None, log })
        }
        Request::Start { dry_run, trigger } => {
            if let Some(j) = job {
                if now_ms.saturating_sub(j.started_ms) < MAX_RUN_MS {
                    let body = http::plain_error(409, "A reconciliation is already running", "RECONCILE_IN_PROGRESS");
                    let alarm_at = Some(j.next_ms);
                    return Ok(Served { status: 409, body: with_status(&body.body, &j, last.as_ref()), alarm_at, log });
                }
                let (report, _) = finish(
                    store,
                    j,
                    Some("RECONCILE_STALLED: unfinished 24 hours after it started; given up for a new run".into()),
                    now_ms,
                )?;
                log = Some(report.log_line());
                last = Some(report);
            }
            store.clear(true)?;
            let mut id = format!("r{now_ms}");
            if last.as_ref().is_some_and(|l| l.id == id) {
                id.push('b'); // a cancel and a start in the same millisecond
            }
            let job = Job {
                id: id.clone(),
                phase: Phase::Managed { token: None, pages: 0 },
                report: ReconcileReport { id, dry_run, trigger, ..ReconcileReport::default() },
                started_ms: now_ms,
                updated_ms: now_ms,
                next_ms: now_ms,
                waiting: None,
                failures: 0,
                invocations: 0,
                max_subrequests: 0,
                okta_pages: 0,
                connect_pages: 0,
                okta_waits: 0,
                changes: 0,
                held: None,
            };
            store.put(JOB_KEY, &encode(&job))?;
            store.put(RUN_KEY, &job.id)?;
            Ok(Served { status: 202, body: status_body(Some(&job), last.as_ref()), alarm_at: Some(now_ms), log })
        }
    }
}

/// A 409's error body with the status document beside it.
fn with_status(error: &str, job: &Job, last: Option<&ReconcileReport>) -> String {
    let mut v: serde_json::Value = serde_json::from_str(error).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("status".into(), status(Some(job), last));
    }
    encode(&v)
}

/// Ends the run: its report becomes the last one, its rows go.
fn finish(
    store: &impl JobStore,
    mut job: Job,
    error: Option<String>,
    now_ms: u64,
) -> Result<(ReconcileReport, Vec<String>), StoreError> {
    let r = &mut job.report;
    r.error = error.or_else(|| {
        if r.deletes_held > 0 {
            let why = job.held.as_deref().unwrap_or("the deletion safety held them");
            Some(format!("{} deletions held back: {why}", r.deletes_held))
        } else if r.failed > 0 {
            Some(format!("{} change(s) failed; the next run retries them", r.failed))
        } else {
            None
        }
    });
    r.ok = r.error.is_none();
    r.duration_ms = now_ms.saturating_sub(job.started_ms);
    (r.invocations, r.max_subrequests, r.okta_rate_limit_waits) =
        (job.invocations, job.max_subrequests, job.okta_waits);
    let alerts = r.error.iter().map(|e| format!("provisioning reconciliation: {e}")).collect();
    store.put(LAST_KEY, &encode(&job.report))?;
    store.delete(JOB_KEY)?;
    store.delete(RUN_KEY)?;
    store.clear(true)?;
    Ok((job.report, alerts))
}

/// What one alarm did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stepped {
    /// When the next alarm is due; `None`: nothing left to do.
    pub next_at: Option<u64>,
    pub logs: Vec<String>,
    pub alerts: Vec<String>,
}

/// How a step's loop ended.
enum Flow {
    /// The budget has no room for the next unit: continue in the next invocation, at once.
    Yield,
    /// Continue at this time, for this reason.
    Wait(u64, String),
    /// The run is over (with this error, if it failed).
    Finished(Option<String>),
}

/// A listing call's failure: retried later when it may pass, else the run fails unchanged.
fn listing_failed(job: &mut Job, now_ms: u64, side: &str, e: ListingError) -> Flow {
    match e {
        ListingError::Okta(e) if e.budget_spent() => Flow::Yield,
        ListingError::Connect(e) if e.budget_spent() => Flow::Yield,
        ListingError::Okta(OktaError::RateLimited { reset_ms }) => {
            okta_reset(job, now_ms, reset_ms, "OKTA_RATE_LIMITED")
        }
        e if e.is_transient() && job.failures + 1 < MAX_STEP_FAILURES => {
            backoff(job, now_ms, format!("{}: {e}", e.reason()))
        }
        e => Flow::Finished(Some(format!("listing {side} failed, nothing changed: {e}"))),
    }
}

/// The next step at Okta's `X-Rate-Limit-Reset` (+ 1 s), counted as a wait.
fn okta_reset(job: &mut Job, now_ms: u64, reset_ms: u64, why: &str) -> Flow {
    job.okta_waits += 1;
    Flow::Wait(reset_ms.max(now_ms) + 1_000, why.into())
}

/// A step that failed for a reason that may pass: the next one after a doubling backoff.
fn backoff(job: &mut Job, now_ms: u64, why: String) -> Flow {
    job.failures += 1;
    Flow::Wait(now_ms + (2_000u64 << job.failures.min(8)), format!("{why}; retried"))
}

/// A Connect listing page.
enum Listed {
    Managed(Vec<ConnectUser>),
    Holders(Vec<UserSummary>),
}

enum ListingError {
    Okta(OktaError),
    Connect(CallError),
}

impl ListingError {
    fn is_transient(&self) -> bool {
        match self {
            ListingError::Okta(e) => e.is_transient(),
            ListingError::Connect(e) => e.is_transient(),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ListingError::Okta(e) => e.reason(),
            ListingError::Connect(e) => e.reason(),
        }
    }
}

impl std::fmt::Display for ListingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListingError::Okta(e) => e.fmt(f),
            ListingError::Connect(e) => e.fmt(f),
        }
    }
}

/// Runs one invocation's share of the run under way, if any.
pub async fn step<H: Http, C: Clock, S: RsaSigner, D: Durable>(
    cfg: Result<ProvisioningConfig, ConfigError>,
    edge: &ProvisioningEdge<'_, H, C, S, D>,
    store: &impl JobStore,
) -> Result<Stepped, StoreError> {
    let now = edge.clock.now_ms();
    let started = now;
    let (Some(mut job), _) = load(store)? else { return Ok(Stepped::default()) };
    if job.next_ms > now + 1_000 {
        // An early alarm (or one set before a wait was decided): come back at the time.
        return Ok(Stepped { next_at: Some(job.next_ms), ..Stepped::default() });
    }
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            let (report, alerts) = finish(store, job, Some(format!("provisioning is misconfigured: {e}")), now)?;
            return Ok(Stepped { next_at: None, logs: vec![report.log_line()], alerts });
        }
    };
    let budget = Budget::new(cfg.subrequest_budget);
    let metering = Metering::new(edge, &budget);
    let edge = &edge.metered(&metering);
    // Never sleep for a rate limit inside an invocation: the next alarm waits instead.
    let okta = edge.okta(&cfg.okta, 0);
    let connect = Connect::new(&cfg.connect, edge.http, edge.clock, 1000 / u64::from(cfg.reconcile_rps.max(1)));
    let gate = Deletions { cfg: &cfg, okta: &okta, cache: edge.sources, ledger: edge.ledger, clock: edge.clock };
    job.invocations += 1;
    job.waiting = None;
    let mut progressed = false;
    let flow = loop {
        let now = edge.clock.now_ms();
        if now.saturating_sub(started) >= MAX_INVOCATION_MS {
            break Flow::Yield;
        }
        let unit = match job.phase.clone() {
            Phase::Okta { source, url, pages } => {
                okta_page(&cfg, &okta, &budget, store, &mut job, now, (source, url, pages), &mut progressed).await?
            }
            Phase::Managed { token, pages } | Phase::Holders { token, pages } => {
                connect_page(&connect, &budget, store, &mut job, now, (token, pages), &mut progressed).await?
            }
            Phase::Plan => plan_phase(&cfg, store, &mut job, &mut progressed)?,
            Phase::Apply { next } => {
                apply_batch(&cfg, &okta, &connect, &gate, &budget, store, &mut job, next, &mut progressed).await?
            }
        };
        match unit {
            Unit::Next => {}
            Unit::Stop(flow) => break flow,
            Unit::Gone => return Ok(Stepped::default()),
        }
    };
    job.report.okta.calls += okta.calls.get();
    job.report.connect.calls += connect.calls.get();
    job.max_subrequests = job.max_subrequests.max(budget.used());
    let now = edge.clock.now_ms();
    let worked = now.saturating_sub(started);
    let step_log = |job: &Job| {
        serde_json::json!({
            "msg": "provisioning-reconcile-step", "level": "info", "run": job.id, "phase": job.phase.name(),
            "invocation": job.invocations, "subrequests": budget.used(), "ms": worked, "waiting": job.waiting,
        })
        .to_string()
    };
    if !current(store, &job.id)? {
        // Cancelled (or given up) while this invocation awaited a call: nothing of it is saved.
        return Ok(Stepped::default());
    }
    let next_at = match flow {
        Flow::Finished(error) => {
            let line = step_log(&job);
            let (report, alerts) = finish(store, job, error, now)?;
            return Ok(Stepped { next_at: None, logs: vec![line, report.log_line()], alerts });
        }
        Flow::Yield if !progressed => {
            // Not one unit fit in a whole invocation's budget.
            job.failures += 1;
            if job.failures >= 3 {
                let why = format!(
                    "one {} step needs more than WORKER_SUBREQUEST_BUDGET ({}) subrequests: raise it",
                    job.phase.name(),
                    cfg.subrequest_budget
                );
                let line = step_log(&job);
                let (report, alerts) = finish(store, job, Some(why), now)?;
                return Ok(Stepped { next_at: None, logs: vec![line, report.log_line()], alerts });
            }
            job.waiting = Some("WORKER_SUBREQUEST_BUDGET: not one unit fit; retried".into());
            now + 1_000
        }
        Flow::Yield => now,
        Flow::Wait(at, why) => {
            job.waiting = Some(why);
            at
        }
    };
    job.next_ms = next_at;
    job.updated_ms = now;
    store.put(JOB_KEY, &encode(&job))?;
    Ok(Stepped { next_at: Some(next_at), logs: vec![step_log(&job)], alerts: vec![] })
}

/// Plans the run from its listings, once, and stores the changes.
fn plan_run(cfg: &ProvisioningConfig, store: &impl JobStore, job: &mut Job) -> Result<(), StoreError> {
    let mut okta_users = store.okta_users()?;
    okta_users.retain(|_, (u, _)| has_access_status(&u.status));
    let managed = store.managed()?;
    let holders = store.holders()?;
    job.report.okta.users = okta_users.len() as u32;
    job.report.connect.users = managed.len() as u32;
    let steps: Vec<Step> =
        plan(cfg, &okta_users, managed, holders, &mut job.report).into_iter().map(Step::from).collect();
    if job.report.planned.delete > cfg.reconcile_max_deletes {
        job.held = Some(format!(
            "more deletions than RECONCILE_MAX_DELETES ({}); check the Okta groups and apps, then raise the limit",
            cfg.reconcile_max_deletes
        ));
    }
    store.put_plan(&steps)?;
    job.changes = steps.len() as u32;
    Ok(())
}

/// Whether `arn` is user `id`'s of the configured instance (adoption tags nothing else).
fn agent_arn(arn: &str, instance_id: &str, id: &str) -> bool {
    arn.starts_with("arn:") && arn.ends_with(&format!(":instance/{instance_id}/agent/{id}"))
}

/// What became of one plan row.
enum Applied {
    /// Applied, listed (dry run), held or failed: the report's entry; the next row follows.
    Entry(ChangeEntry),
    /// The row is not done: end the invocation so (yield for the budget, or wait); it is applied
    /// again in a later one.
    Stop(Flow),
    /// The run was cancelled (or given up) meanwhile: nothing more.
    Gone,
}

/// What one unit of a phase's work says about the invocation: go on, stop with this flow, or
/// the run is no longer this one (cancelled or given up: nothing more is saved).
enum Unit {
    Next,
    Stop(Flow),
    Gone,
}

/// One Okta page of the current group or app (`at` = source index, next page's URL, pages read),
/// stored as rows; then the next page, source or the plan. Ends the invocation at a nearly spent
/// rate-limit window.
#[allow(clippy::too_many_arguments)]
async fn okta_page<H: Http, C: Clock, S: RsaSigner>(
    cfg: &ProvisioningConfig,
    okta: &crate::okta::OktaApi<'_, H, C, S>,
    budget: &Budget,
    store: &impl JobStore,
    job: &mut Job,
    now: u64,
    (source, url, pages): (u32, Option<String>, u32),
    progressed: &mut bool,
) -> Result<Unit, StoreError> {
    let groups = cfg.group_ids.len();
    let s = source as usize;
    if s >= groups + cfg.app_ids.len() {
        job.phase = Phase::Plan;
        return Ok(Unit::Next);
    }
    let Some(_admitted) = budget.reserve(1) else { return Ok(Unit::Stop(Flow::Yield)) };
    let group = cfg.group_ids.get(s);
    let page = match (group, url) {
        (Some(_), Some(u)) => okta.members_page(&u).await,
        (Some(g), None) => match OktaId::of(g, "group id") {
            Ok(g) => okta.members_page(&okta.members_url(g)).await,
            Err(e) => Err(e),
        },
        (None, Some(u)) => okta.app_users_page(&u).await,
        (None, None) => match OktaId::of(&cfg.app_ids[s - groups], "app id") {
            Ok(a) => okta.app_users_page(&okta.app_users_url(a)).await,
            Err(e) => Err(e),
        },
    };
    let page = match page {
        Ok(p) => p,
        Err(e) => return Ok(Unit::Stop(listing_failed(job, now, "Okta", ListingError::Okta(e)))),
    };
    if !current(store, &job.id)? {
        return Ok(Unit::Gone);
    }
    store.add_okta(&page.users, group.map(String::as_str))?;
    (*progressed, job.failures, job.okta_pages) = (true, 0, job.okta_pages + 1);
    job.phase = match page.next {
        Some(_) if pages as usize + 1 >= MAX_PAGES => {
            return Ok(Unit::Stop(Flow::Finished(Some(format!(
                "listing Okta failed, nothing changed: more than {MAX_PAGES} pages in one group or app"
            )))))
        }
        Some(next) => Phase::Okta { source, url: Some(next), pages: pages + 1 },
        None => Phase::Okta { source: source + 1, url: None, pages: 0 },
    };
    if !checkpoint(store, job)? {
        return Ok(Unit::Gone);
    }
    if let Some(rate) = okta.rate.get().filter(RateLimit::nearly_spent) {
        return Ok(Unit::Stop(okta_reset(job, now, rate.reset_ms, "OKTA_RATE_LIMIT_NEARLY_SPENT")));
    }
    Ok(Unit::Next)
}

/// One Connect page: managed users (`SearchUsers` by tag), then every holder (`ListUsers`),
/// stored as rows; then the next page, listing or Okta.
async fn connect_page<H: Http, C: Clock>(
    connect: &Connect<'_, H, C>,
    budget: &Budget,
    store: &impl JobStore,
    job: &mut Job,
    now: u64,
    (token, pages): (Option<String>, u32),
    progressed: &mut bool,
) -> Result<Unit, StoreError> {
    let managed = matches!(job.phase, Phase::Managed { .. });
    let Some(_admitted) = budget.reserve(1) else { return Ok(Unit::Stop(Flow::Yield)) };
    let listed = if managed {
        connect.tagged_page(MANAGED_TAG, MANAGED_VALUE, token.as_deref()).await.map(|(u, n)| (Listed::Managed(u), n))
    } else {
        connect.list_page(token.as_deref()).await.map(|(u, n)| (Listed::Holders(u), n))
    };
    if !current(store, &job.id)? {
        return Ok(Unit::Gone);
    }
    let (count, next) = match listed {
        Ok((Listed::Managed(users), next)) => {
            store.add_managed(&users)?;
            (users.len(), next)
        }
        Ok((Listed::Holders(users), next)) => {
            store.add_holders(&users)?;
            (users.len(), next)
        }
        Err(e) => return Ok(Unit::Stop(listing_failed(job, now, "Connect", ListingError::Connect(e)))),
    };
    (*progressed, job.failures, job.connect_pages) = (true, 0, job.connect_pages + 1);
    job.phase = match next {
        // An empty page with a token again is Connect's to end; a bound keeps it from looping.
        Some(_) if pages + 1 >= MAX_CONNECT_PAGES || (count == 0 && pages > MAX_CONNECT_PAGES / 2) => {
            return Ok(Unit::Stop(Flow::Finished(Some(format!(
                "listing Connect failed, nothing changed: more than {MAX_CONNECT_PAGES} pages"
            )))))
        }
        Some(t) if managed => Phase::Managed { token: Some(t), pages: pages + 1 },
        Some(t) => Phase::Holders { token: Some(t), pages: pages + 1 },
        None if managed => Phase::Holders { token: None, pages: 0 },
        None => Phase::Okta { source: 0, url: None, pages: 0 },
    };
    if !checkpoint(store, job)? {
        return Ok(Unit::Gone);
    }
    Ok(Unit::Next)
}

/// The pure plan over the stored listings, once; saved with its rows in the same synchronous
/// stretch, so a replay never plans again from listings it no longer has.
fn plan_phase(
    cfg: &ProvisioningConfig,
    store: &impl JobStore,
    job: &mut Job,
    progressed: &mut bool,
) -> Result<Unit, StoreError> {
    if !current(store, &job.id)? {
        return Ok(Unit::Gone);
    }
    plan_run(cfg, store, job)?;
    *progressed = true;
    job.phase = Phase::Apply { next: 0 };
    if !checkpoint(store, job)? {
        return Ok(Unit::Gone);
    }
    Ok(Unit::Next)
}

/// The next [`APPLY_BATCH`] planned changes from `next`, each saved as it is done.
#[allow(clippy::too_many_arguments)]
async fn apply_batch<H: Http, C: Clock, S: RsaSigner, G: DeleteGate>(
    cfg: &ProvisioningConfig,
    okta: &crate::okta::OktaApi<'_, H, C, S>,
    connect: &Connect<'_, H, C>,
    gate: &G,
    budget: &Budget,
    store: &impl JobStore,
    job: &mut Job,
    next: u32,
    progressed: &mut bool,
) -> Result<Unit, StoreError> {
    if next >= job.changes {
        return Ok(Unit::Stop(Flow::Finished(None)));
    }
    let rows = store.plan_rows(next, APPLY_BATCH)?;
    if rows.is_empty() {
        return Ok(Unit::Stop(Flow::Finished(None)));
    }
    let mut done = 0;
    for row in rows {
        match apply(cfg, okta, connect, gate, budget, store, job, row).await? {
            Applied::Entry(e) => {
                job.report.push(e);
                done += 1;
                (*progressed, job.failures) = (true, 0);
                job.phase = Phase::Apply { next: next + done };
                if !checkpoint(store, job)? {
                    return Ok(Unit::Gone);
                }
            }
            Applied::Gone => return Ok(Unit::Gone),
            Applied::Stop(flow) => return Ok(Unit::Stop(flow)),
        }
    }
    Ok(Unit::Next)
}

/// Applies (or, in a dry run, lists) one change. Before each write, the run must still be the
/// one under way (a cancel can land while a call is awaited).
#[allow(clippy::too_many_arguments)]
async fn apply<H: Http, C: Clock, S: RsaSigner, G: DeleteGate>(
    cfg: &ProvisioningConfig,
    okta: &crate::okta::OktaApi<'_, H, C, S>,
    connect: &Connect<'_, H, C>,
    gate: &G,
    budget: &Budget,
    store: &impl JobStore,
    job: &mut Job,
    step: Step,
) -> Result<Applied, StoreError> {
    let sources = (cfg.group_ids.len() + cfg.app_ids.len()) as u32;
    let (mut e, cost) = match &step {
        Step::Create(d) => (entry(Action::Create, &d.username, Some(&d.okta_user_id), None, vec![]), 3),
        Step::Update { desired: d, id, changes } => {
            let e = entry(Action::Update, &d.username, Some(&d.okta_user_id), Some(id), changes.clone());
            (e, changes.len() as u32)
        }
        // The owner's access again (user, groups, one per app), the gate (the sources when not
        // confirmed lately, a token, the budget object), the delete.
        Step::Delete { id, username, owner } => (
            entry(Action::Delete, username, owner.as_deref(), Some(id), vec![]),
            5 + sources + cfg.app_ids.len() as u32,
        ),
        // Its tags read again, the tag, three updates.
        Step::Adopt { desired: d, id, .. } => {
            (entry(Action::Adopt, &d.username, Some(&d.okta_user_id), Some(id), vec![]), 6)
        }
    };
    if let (Step::Delete { .. }, Some(why)) = (&step, &job.held) {
        (e.result, e.reason) = (ChangeResult::Held, Some(why.clone()));
        job.report.deletes_held += 1;
        return Ok(Applied::Entry(e));
    }
    if job.report.dry_run {
        return Ok(Applied::Entry(e));
    }
    let Some(_admitted) = budget.reserve(cost) else { return Ok(Applied::Stop(Flow::Yield)) };
    let now = okta.clock.now_ms();
    macro_rules! alive {
        () => {
            if !current(store, &job.id)? {
                return Ok(Applied::Gone);
            }
        };
    }
    // A call's failure: the budget ran out mid-way (yield), or the change failed.
    macro_rules! failed {
        ($err:expr) => {{
            let err = $err;
            if err.budget_spent() {
                return Ok(Applied::Stop(Flow::Yield));
            }
            Err(format!("{}: {err}", err.reason()))
        }};
    }
    let outcome: Result<(), String> = match step {
        Step::Create(d) => {
            alive!();
            match connect.create(&d).await {
                Ok(Created::New(id)) => {
                    e.connect_user_id = Some(id);
                    job.report.applied.create += 1;
                    Ok(())
                }
                Ok(Created::Exists) => match connect.find_by_username(&d.username).await {
                    // Ours already: an earlier invocation's create that was not recorded, or the
                    // queue consumer's since the listing.
                    Ok(found) if found.iter().any(|u| owner(u) == Some(&d.okta_user_id)) => {
                        job.report.applied.create += 1;
                        Ok(())
                    }
                    Ok(_) => {
                        job.report.applied.conflict += 1;
                        (e.result, e.reason) = (
                            ChangeResult::Skipped,
                            Some(format!("CONFLICT: {UNMANAGED_USER_EXISTS}: CreateUser answered 409")),
                        );
                        return Ok(Applied::Entry(e));
                    }
                    Err(err) => failed!(err),
                },
                Err(err) => failed!(err),
            }
        }
        Step::Update { desired, id, changes } => {
            alive!();
            match connect.update(&id, &desired, &changes).await {
                Ok(()) => {
                    job.report.applied.update += 1;
                    Ok(())
                }
                Err(err) => failed!(err),
            }
        }
        Step::Delete { id, username, owner: who } => {
            // The owner may have regained access since the listing: then their user stays (a
            // leftover under another username still goes).
            let regained = match &who {
                Some(o) => match crate::provisioning::access(cfg, okta, o).await {
                    Ok(Some((user, groups))) => {
                        crate::provisioning::mapping::desired(&user, &groups, &cfg.mapping, cfg.username)
                            .is_ok_and(|d| d.username == username)
                    }
                    Ok(None) => false,
                    Err(err) if err.budget_spent() => return Ok(Applied::Stop(Flow::Yield)),
                    Err(OktaError::RateLimited { reset_ms }) => {
                        return Ok(Applied::Stop(okta_reset(job, now, reset_ms, "OKTA_RATE_LIMITED")))
                    }
                    Err(err) => return Ok(Applied::Stop(backoff(job, now, format!("{}: {err}", err.reason())))),
                },
                None => false,
            };
            if regained {
                (e.result, e.reason) =
                    (ChangeResult::Skipped, Some("ACCESS_REGAINED: the Okta user has access again; kept".into()));
                return Ok(Applied::Entry(e));
            }
            alive!();
            match gate.allow().await {
                Err(Held::InvocationSpent) => return Ok(Applied::Stop(Flow::Yield)),
                // Okta could not say whether the sources exist: this deletion waits, the others too.
                Err(h @ Held::SourceUnconfirmed(_)) if job.failures + 1 < MAX_STEP_FAILURES => {
                    return Ok(Applied::Stop(backoff(job, now, format!("{}: {h}", h.reason()))));
                }
                Err(h) => {
                    let why = format!("{}: {h}", h.reason());
                    job.held = Some(why.clone());
                    job.report.deletes_held += 1;
                    (e.result, e.reason) = (ChangeResult::Held, Some(why));
                    return Ok(Applied::Entry(e));
                }
                Ok(()) => {
                    alive!();
                    match connect.delete(&id).await {
                        Ok(()) => {
                            job.report.applied.delete += 1;
                            Ok(())
                        }
                        Err(err) => failed!(err),
                    }
                }
            }
        }
        Step::Adopt { desired, id, arn } => {
            alive!();
            // ListUsers gives no tags: read them now, and adopt only a user that has none of ours
            // (or any other tool's `managedBy`) and still holds the username.
            let fresh = match connect.find_by_username(&desired.username).await {
                Ok(found) => found,
                Err(err) if err.budget_spent() => return Ok(Applied::Stop(Flow::Yield)),
                Err(err) => {
                    job.report.failed += 1;
                    (e.result, e.reason) = (ChangeResult::Failed, Some(format!("{}: {err}", err.reason())));
                    return Ok(Applied::Entry(e));
                }
            };
            if !agent_arn(&arn, &cfg.connect.instance_id, &id) {
                Err("MALFORMED_RESPONSE: ListUsers gave an ARN that is not this user's".into())
            } else if !(fresh.len() == 1 && fresh[0].id == id && !fresh[0].tags.contains_key(MANAGED_TAG)) {
                job.report.applied.conflict += 1;
                (e.result, e.reason) = (
                    ChangeResult::Skipped,
                    Some(format!(
                        "CONFLICT: {UNMANAGED_USER_EXISTS}: the holder changed or is tagged managedBy; not adopted"
                    )),
                );
                return Ok(Applied::Entry(e));
            } else {
                let all = [Change::SecurityProfiles, Change::RoutingProfile, Change::IdentityInfo];
                alive!();
                match connect.adopt(&arn, &desired.okta_user_id).await {
                    Ok(()) => {
                        alive!();
                        match connect.update(&id, &desired, &all).await {
                            Ok(()) => {
                                job.report.applied.adopt += 1;
                                Ok(())
                            }
                            Err(err) => failed!(err),
                        }
                    }
                    Err(err) => failed!(err),
                }
            }
        }
    };
    match outcome {
        Ok(()) => e.result = ChangeResult::Done,
        Err(why) => {
            job.report.failed += 1;
            (e.result, e.reason) = (ChangeResult::Failed, Some(why));
        }
    }
    Ok(Applied::Entry(e))
}

// ---- the Worker's side: admin endpoints and the cron --------------------------------------------

/// What the admin endpoints ask of the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminOp {
    /// `POST /admin/provisioning/reconcile[?dryRun=true]`: 202 and the status, 409 when a run
    /// is under way.
    Start { dry_run: bool },
    /// `GET /admin/provisioning/status`.
    Status,
    /// `POST /admin/provisioning/cancel`: ends the run under way (what it applied stays).
    Cancel,
}

fn plain(answer: Answer) -> Handled {
    Handled::plain(answer)
}

/// Asks the object and maps its answer; an object that does not answer is a 503.
async fn ask(job: &impl Durable, request: &Request) -> Result<(u16, String), Answer> {
    match job.call(OBJECT, encode(request), CALL_TIMEOUT_MS).await {
        Ok(wire) => match Served::parse(&wire) {
            Some((status, body)) => Ok((status, body.to_string())),
            None => {
                Err(http::plain_error(502, "The reconciliation job answered unreadably", "RECONCILE_JOB_MALFORMED"))
            }
        },
        Err(e) => Err(http::plain_error(
            503,
            &format!("The reconciliation job is unavailable: {e}"),
            "RECONCILE_JOB_UNAVAILABLE",
        )),
    }
}

/// The admin endpoints of the job.
pub async fn admin(
    op: AdminOp,
    authorization: Option<&str>,
    admin_secret: Result<Option<AdminSecret>, ConfigError>,
    cfg: Option<Result<ProvisioningConfig, ConfigError>>,
    job: &impl Durable,
) -> Handled {
    if let Some(refused) = refuse(authorization, admin_secret) {
        return refused;
    }
    match (op, cfg) {
        (AdminOp::Start { .. }, None) => {
            return plain(http::plain_error(
                503,
                "Provisioning is not configured (CONNECT_INSTANCE_ID is not set)",
                "PROVISIONING_NOT_CONFIGURED",
            ))
        }
        (AdminOp::Start { .. }, Some(Err(e))) => {
            return plain(http::plain_error(
                503,
                &format!("Provisioning is misconfigured: {e}"),
                "PROVISIONING_MISCONFIGURED",
            ))
        }
        _ => {}
    }
    let request = match op {
        AdminOp::Start { dry_run } => Request::Start { dry_run, trigger: Trigger::Admin },
        AdminOp::Status => Request::Status,
        AdminOp::Cancel => Request::Cancel,
    };
    match ask(job, &request).await {
        Ok((status, body)) => plain(Answer { status, body }),
        Err(a) => plain(a),
    }
}

/// The Cron Trigger: starts a run unless one is under way. `cfg` is `None` when provisioning is
/// off (nothing to do).
pub async fn scheduled(cfg: Option<Result<ProvisioningConfig, ConfigError>>, job: &impl Durable) -> Handled {
    let line = |what: &str, level: &str| {
        Some(serde_json::json!({"msg": "provisioning-reconcile", "level": level, "skipped": what}).to_string())
    };
    match cfg {
        None => {
            return Handled {
                answer: Answer { status: 200, body: String::new() },
                log: line("CONNECT_INSTANCE_ID is not set: provisioning is off", "info"),
                alerts: vec![],
            }
        }
        Some(Err(e)) => {
            return Handled {
                answer: Answer { status: 500, body: String::new() },
                log: None,
                alerts: vec![format!("provisioning is misconfigured; no reconciliation: {e}")],
            }
        }
        Some(Ok(_)) => {}
    }
    match ask(job, &Request::Start { dry_run: false, trigger: Trigger::Cron }).await {
        Ok((202, body)) => Handled {
            answer: Answer { status: 202, body },
            log: Some(r#"{"msg":"provisioning-reconcile","level":"info","started":"cron"}"#.into()),
            alerts: vec![],
        },
        Ok((409, _)) => Handled {
            answer: Answer { status: 409, body: String::new() },
            log: line("a reconciliation is already running", "info"),
            alerts: vec![],
        },
        Ok((status, body)) => Handled {
            answer: Answer { status, body },
            log: None,
            alerts: vec![format!("provisioning reconciliation: the job refused to start ({status})")],
        },
        Err(a) => Handled {
            alerts: vec![format!("provisioning reconciliation: the job did not start: {}", a.body)],
            answer: a,
            log: None,
        },
    }
}

#[cfg(test)]
pub mod mem {
    //! An in-memory [`JobStore`] for native tests.
    use std::cell::RefCell;

    use super::*;

    #[derive(Default)]
    pub struct MemJobStore {
        pub kv: RefCell<BTreeMap<String, String>>,
        okta: RefCell<BTreeMap<String, (OktaUser, Vec<String>)>>,
        managed: RefCell<BTreeMap<String, ConnectUser>>,
        holders: RefCell<BTreeMap<String, UserSummary>>,
        pub plan: RefCell<Vec<Step>>,
    }

    impl JobStore for MemJobStore {
        fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
            Ok(self.kv.borrow().get(key).cloned())
        }
        fn put(&self, key: &str, value: &str) -> Result<(), StoreError> {
            self.kv.borrow_mut().insert(key.into(), value.into());
            Ok(())
        }
        fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.kv.borrow_mut().remove(key);
            Ok(())
        }
        fn add_okta(&self, users: &[OktaUser], group: Option<&str>) -> Result<(), StoreError> {
            let mut rows = self.okta.borrow_mut();
            for u in users {
                let row = rows.entry(u.id.clone()).or_insert_with(|| (u.clone(), vec![]));
                row.0 = u.clone();
                if let Some(g) = group.filter(|g| !row.1.iter().any(|x| x == g)) {
                    row.1.push(g.into());
                }
            }
            Ok(())
        }
        fn add_managed(&self, users: &[ConnectUser]) -> Result<(), StoreError> {
            self.managed.borrow_mut().extend(users.iter().map(|u| (u.id.clone(), u.clone())));
            Ok(())
        }
        fn add_holders(&self, users: &[UserSummary]) -> Result<(), StoreError> {
            self.holders.borrow_mut().extend(users.iter().map(|u| (u.id.clone(), u.clone())));
            Ok(())
        }
        fn okta_users(&self) -> Result<BTreeMap<String, (OktaUser, Vec<String>)>, StoreError> {
            Ok(self.okta.borrow().clone())
        }
        fn managed(&self) -> Result<Vec<ConnectUser>, StoreError> {
            Ok(self.managed.borrow().values().cloned().collect())
        }
        fn holders(&self) -> Result<Vec<UserSummary>, StoreError> {
            let managed = self.managed.borrow();
            Ok(self.holders.borrow().values().filter(|u| !managed.contains_key(&u.id)).cloned().collect())
        }
        fn put_plan(&self, steps: &[Step]) -> Result<(), StoreError> {
            *self.plan.borrow_mut() = steps.to_vec();
            Ok(())
        }
        fn plan_rows(&self, from: u32, n: u32) -> Result<Vec<Step>, StoreError> {
            Ok(self.plan.borrow().iter().skip(from as usize).take(n as usize).cloned().collect())
        }
        fn clear(&self, plan: bool) -> Result<(), StoreError> {
            self.okta.borrow_mut().clear();
            self.managed.borrow_mut().clear();
            self.holders.borrow_mut().clear();
            if plan {
                self.plan.borrow_mut().clear();
            }
            Ok(())
        }
    }
}
