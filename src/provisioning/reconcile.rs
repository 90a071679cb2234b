//! Full reconciliation: every Okta user who should have a Connect user (members of the configured
//! groups, users assigned to the configured apps) against every Connect user carrying our
//! `managedBy` tag. Creates the missing, updates the drifted, deletes the orphans; a dry run only
//! plans. Runs daily on the Cron Trigger (`RECONCILE_CRON`) and on `POST
//! /admin/provisioning/reconcile[?dryRun=true]`.
//!
//! Both sides are paginated (Okta `Link` headers, Connect `NextToken`); Connect writes are paced
//! to `RECONCILE_CONNECT_RPS`; Okta rate limits are waited out (up to a minute each). Safety: a
//! listing that fails aborts the run before any change (a missing group must never read as "no
//! members"), and a run planning more than `RECONCILE_MAX_DELETES` deletions holds all of them
//! back and alerts.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use serde::Serialize;

use super::config::ProvisioningConfig;
use super::connect::{diff, owner, Change, Connect, Created, MANAGED_TAG, MANAGED_VALUE};
use super::mapping::{desired, has_access_status, Desired};
use super::safety::{DeleteGate, Deletions};
use super::{Edge, Metering, OWNED_BY_ANOTHER_OKTA_USER, UNMANAGED_USER_EXISTS};
use crate::admin::{refuse, AdminSecret, Gate, Handled};
use crate::aws::connect::{ConnectUser, UserSummary};
use crate::budget::{self, Budget};
use crate::config::ConfigError;
use crate::edge::{Clock, Durable, Http};
use crate::okta::assertion::RsaSigner;
use crate::okta::{OktaApi, OktaUser};
use crate::telephony::answer::{self, Answer};

/// Changes listed in a report, at most (the counts are always complete).
pub const MAX_LISTED_CHANGES: usize = 1000;
/// Longest wait for an Okta rate-limit reset during a reconciliation.
pub const MAX_OKTA_WAIT_MS: u64 = 60_000;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub create: u32,
    pub update: u32,
    pub delete: u32,
    pub unchanged: u32,
    /// A user we did not create holds the username, or two Okta users map to one username.
    pub conflict: u32,
    /// Okta users who should have access but cannot be provisioned (see the change's reason).
    pub unprovisionable: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Side {
    /// Okta: users who should have access; Connect: managed users found.
    pub users: u32,
    pub calls: u32,
}

/// One planned or applied change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEntry {
    pub action: &'static str,
    pub username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub okta_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_user_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<&'static str>,
    /// `planned`, `done`, `held` (deletions over a limit), `failed`, `skipped` or `deferred`.
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileReport {
    pub ok: bool,
    pub dry_run: bool,
    pub trigger: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub okta: Side,
    pub connect: Side,
    /// What the plan holds.
    pub planned: Counts,
    /// Changes applied (all zero in a dry run).
    pub applied: Counts,
    pub failed: u32,
    /// Deletions held back: more than `RECONCILE_MAX_DELETES`, or the deletion safety's holds.
    pub deletes_held: u32,
    /// Changes not attempted: the invocation's subrequest budget had no room left.
    pub deferred: u32,
    pub duration_ms: u64,
    pub changes: Vec<ChangeEntry>,
    pub changes_truncated: bool,
}

impl ReconcileReport {
    fn push(&mut self, e: ChangeEntry) {
        if self.changes.len() < MAX_LISTED_CHANGES {
            self.changes.push(e);
        } else {
            self.changes_truncated = true;
        }
    }

    /// The log line: counts only, no usernames.
    pub fn log_line(&self) -> String {
        serde_json::json!({
            "msg": "provisioning-reconcile", "level": if self.ok { "info" } else { "error" },
            "ok": self.ok, "dryRun": self.dry_run, "trigger": self.trigger, "error": self.error,
            "okta": self.okta, "connect": self.connect, "planned": self.planned, "applied": self.applied,
            "failed": self.failed, "deletesHeld": self.deletes_held, "deferred": self.deferred,
            "durationMs": self.duration_ms,
        })
        .to_string()
    }
}

/// One change of the plan.
pub enum Planned {
    Create(Desired),
    Update(Desired, ConnectUser, Vec<Change>),
    Delete(ConnectUser),
}

/// Who holds a username in Connect.
struct Holder {
    id: String,
    managed: bool,
    /// A managed user's `oktaUserId` tag.
    owner: Option<String>,
}

fn skipped(username: &str, okta_user_id: Option<&str>, connect_user_id: Option<&str>, reason: String) -> ChangeEntry {
    ChangeEntry {
        result: "skipped",
        reason: Some(reason),
        ..entry("skip", username, okta_user_id, connect_user_id, vec![])
    }
}

/// The plan, from both sides' complete listings: pure. `all` is every Connect user (`ListUsers`),
/// `managed` those carrying our `managedBy` tag. Ownership decides everything: a managed user is
/// only ever updated or deleted for the Okta user its `oktaUserId` tag names. A username held by
/// a user we did not create, or by another Okta user's managed user, is a conflict: reported and
/// counted, and nothing is written for it; that Okta user's own users are left as they are. An
/// Okta user with access who cannot be provisioned keeps their Connect users too.
pub fn plan(
    cfg: &ProvisioningConfig,
    okta_users: &BTreeMap<String, (OktaUser, Vec<String>)>,
    managed: Vec<ConnectUser>,
    all: Vec<UserSummary>,
    report: &mut ReconcileReport,
) -> Vec<Planned> {
    let mut holders: BTreeMap<String, Holder> =
        all.into_iter().map(|u| (u.username, Holder { id: u.id, managed: false, owner: None })).collect();
    let mut by_owner: BTreeMap<String, Vec<ConnectUser>> = BTreeMap::new();
    for u in managed {
        let own = owner(&u).map(String::from);
        holders.insert(u.username.clone(), Holder { id: u.id.clone(), managed: true, owner: own.clone() });
        match own {
            Some(o) => by_owner.entry(o).or_default().push(u),
            None => {
                report.planned.conflict += 1;
                report.push(skipped(
                    &u.username,
                    None,
                    Some(&u.id),
                    "CONFLICT: tagged managedBy without an oktaUserId tag: left alone".into(),
                ));
            }
        }
    }
    // Desired users first, so that when two Okta users map to one username the one who owns its
    // Connect user keeps it (else the first by id); the others are conflicts.
    let mut wanted: Vec<(&String, Vec<ConnectUser>, Desired)> = Vec::new();
    let mut claims: BTreeMap<String, &String> = BTreeMap::new();
    for (id, (user, groups)) in okta_users {
        let own = by_owner.remove(id).unwrap_or_default();
        match desired(user, groups, &cfg.mapping, cfg.username) {
            Ok(d) => {
                let owns = holders.get(&d.username).is_some_and(|h| h.owner.as_deref() == Some(id.as_str()));
                match claims.entry(d.username.clone()) {
                    Entry::Vacant(v) => {
                        v.insert(id);
                    }
                    Entry::Occupied(mut o) if owns => {
                        o.insert(id);
                    }
                    Entry::Occupied(_) => {}
                }
                wanted.push((id, own, d));
            }
            Err(e) => {
                report.planned.unprovisionable += 1;
                report.push(skipped(&user.login, Some(id), None, format!("{}: {e}", e.reason())));
            }
        }
    }
    let mut plan = Vec::new();
    for (id, own, d) in wanted {
        if claims.get(&d.username) != Some(&id) {
            report.planned.conflict += 1;
            report.push(skipped(
                &d.username,
                Some(id),
                None,
                "CONFLICT: another Okta user maps to the same username".into(),
            ));
            continue;
        }
        match holders.get(&d.username) {
            Some(h) if h.owner.as_deref() != Some(id.as_str()) => {
                let why = match (&h.owner, h.managed) {
                    (Some(other), true) => format!(
                        "{OWNED_BY_ANOTHER_OKTA_USER}: the username's Connect user belongs to Okta user {other}"
                    ),
                    _ => {
                        format!("{UNMANAGED_USER_EXISTS}: a Connect user this Worker did not create has this username")
                    }
                };
                report.planned.conflict += 1;
                report.push(skipped(&d.username, Some(id), Some(&h.id), format!("CONFLICT: {why}")));
            }
            Some(h) => {
                for u in own {
                    if u.id != h.id {
                        plan.push(Planned::Delete(u)); // a leftover under an old username
                        continue;
                    }
                    let changes = diff(&d, &u);
                    if changes.is_empty() {
                        report.planned.unchanged += 1;
                    } else {
                        plan.push(Planned::Update(d.clone(), u, changes));
                    }
                }
            }
            None => {
                // New, or renamed in Okta: the user under the old name goes.
                plan.extend(own.into_iter().map(Planned::Delete));
                plan.push(Planned::Create(d));
            }
        }
    }
    // Managed users whose Okta user no longer has access.
    plan.extend(by_owner.into_values().flatten().map(Planned::Delete));
    for p in &plan {
        match p {
            Planned::Create(_) => report.planned.create += 1,
            Planned::Update(..) => report.planned.update += 1,
            Planned::Delete(_) => report.planned.delete += 1,
        }
    }
    plan
}

/// Every Okta user with access, with the configured groups they are in (sorted by id).
async fn okta_side<H: Http, C: Clock, S: RsaSigner>(
    cfg: &ProvisioningConfig,
    okta: &OktaApi<'_, H, C, S>,
) -> Result<BTreeMap<String, (OktaUser, Vec<String>)>, crate::okta::OktaError> {
    let mut users: BTreeMap<String, (OktaUser, Vec<String>)> = BTreeMap::new();
    for gid in &cfg.group_ids {
        for u in okta.group_members(gid).await? {
            users.entry(u.id.clone()).or_insert_with(|| (u, Vec::new())).1.push(gid.clone());
        }
    }
    for app in &cfg.app_ids {
        for u in okta.app_users(app).await? {
            users.entry(u.id.clone()).or_insert_with(|| (u, Vec::new()));
        }
    }
    users.retain(|_, (u, _)| has_access_status(&u.status));
    Ok(users)
}

/// What became of one change.
enum Outcome {
    Planned,
    Done,
    Held(String),
    Conflict(String),
    Failed(String),
}

/// Runs a reconciliation. `trigger` is `cron` or `admin`.
pub async fn run<H: Http, C: Clock, S: RsaSigner, D: Durable>(
    cfg: &ProvisioningConfig,
    edge: &Edge<'_, H, C, S, D>,
    dry_run: bool,
    trigger: &'static str,
) -> ReconcileReport {
    let started = edge.clock.now_ms();
    let mut report = ReconcileReport { dry_run, trigger, ..ReconcileReport::default() };
    // Every call counts against the invocation's subrequest budget: a listing that would pass it
    // fails before any change, and changes past it are deferred to the next run.
    let budget = Budget::new(cfg.subrequest_budget);
    let metering = Metering::new(edge, &budget);
    let edge = &edge.metered(&metering);
    let okta = edge.okta(&cfg.okta, MAX_OKTA_WAIT_MS);
    let connect = Connect::new(&cfg.connect, edge.http, edge.clock, 1000 / u64::from(cfg.reconcile_rps.max(1)));

    // Both sides, completely, before any change: a failed listing must never read as "no users".
    let listed = match okta_side(cfg, &okta).await {
        Ok(okta_users) => match connect.find_by_tag(MANAGED_TAG, MANAGED_VALUE).await {
            Ok(managed) => match connect.list_all().await {
                Ok(all) => Ok((okta_users, managed, all)),
                Err(e) => Err(format!("listing Connect failed, nothing changed: {e}")),
            },
            Err(e) => Err(format!("listing Connect failed, nothing changed: {e}")),
        },
        Err(e) => Err(format!("listing Okta failed, nothing changed: {e}")),
    };
    report.okta.calls = okta.calls.get();
    report.connect.calls = connect.calls.get();
    let (okta_users, managed, all) = match listed {
        Ok(both) => both,
        Err(e) => {
            report.error = Some(if e.contains(budget::SPENT) {
                format!(
                    "listing both sides needs more than WORKER_SUBREQUEST_BUDGET ({}) subrequests, nothing changed: raise it (the Workers Paid plan allows 10,000)",
                    cfg.subrequest_budget
                )
            } else {
                e
            });
            report.duration_ms = edge.clock.now_ms() - started;
            return report;
        }
    };
    // Every configured group and app was just listed (a missing one fails the listing).
    edge.sources.confirm(edge.clock.now_ms());
    report.okta.users = okta_users.len() as u32;
    report.connect.users = managed.len() as u32;

    let plan = plan(cfg, &okta_users, managed, all, &mut report);
    let hold_deletes = report.planned.delete > cfg.reconcile_max_deletes;
    let gate = Deletions { cfg, okta: &okta, cache: edge.sources, ledger: edge.ledger, clock: edge.clock };
    // The first hold of the budget or the sources: every later deletion is held without asking.
    let mut held: Option<String> = hold_deletes.then(|| {
        format!(
            "more deletions than RECONCILE_MAX_DELETES ({}); check the Okta groups and apps, then raise the limit",
            cfg.reconcile_max_deletes
        )
    });

    // Apply (or list) each change, while the budget has room for it.
    for p in plan {
        let cost = match &p {
            Planned::Create(_) => 2,
            Planned::Update(_, _, changes) => changes.len() as u32,
            Planned::Delete(_) => 2,
        };
        let _admitted = match (dry_run, budget.reserve(cost)) {
            (false, None) => {
                let (action, username, okta_id) = match &p {
                    Planned::Create(d) => ("create", d.username.as_str(), Some(d.okta_user_id.as_str())),
                    Planned::Update(d, _, _) => ("update", d.username.as_str(), Some(d.okta_user_id.as_str())),
                    Planned::Delete(u) => ("delete", u.username.as_str(), owner(u)),
                };
                report.deferred += 1;
                report.push(ChangeEntry { result: "deferred", ..entry(action, username, okta_id, None, vec![]) });
                continue;
            }
            (_, r) => r,
        };
        let (mut entry, outcome) = match p {
            Planned::Create(d) => {
                let entry = entry("create", &d.username, Some(&d.okta_user_id), None, vec![]);
                if dry_run {
                    (entry, Outcome::Planned)
                } else {
                    match connect.create(&d).await {
                        Ok(Created::New(id)) => {
                            report.applied.create += 1;
                            (ChangeEntry { connect_user_id: Some(id), ..entry }, Outcome::Done)
                        }
                        Ok(Created::Exists) => {
                            report.applied.conflict += 1;
                            (
                                entry,
                                Outcome::Conflict(format!(
                                    "CONFLICT: {UNMANAGED_USER_EXISTS}: CreateUser answered 409"
                                )),
                            )
                        }
                        Err(e) => (entry, Outcome::Failed(format!("{}: {e}", e.reason()))),
                    }
                }
            }
            Planned::Update(d, u, changes) => {
                let fields = changes.iter().map(Change::as_str).collect();
                let entry = entry("update", &d.username, Some(&d.okta_user_id), Some(&u.id), fields);
                if dry_run {
                    (entry, Outcome::Planned)
                } else {
                    match connect.update(&u.id, &d, &changes).await {
                        Ok(()) => {
                            report.applied.update += 1;
                            (entry, Outcome::Done)
                        }
                        Err(e) => (entry, Outcome::Failed(format!("{}: {e}", e.reason()))),
                    }
                }
            }
            Planned::Delete(u) => {
                let entry = entry("delete", &u.username, owner(&u), Some(&u.id), vec![]);
                if let Some(why) = &held {
                    (entry, Outcome::Held(why.clone()))
                } else if dry_run {
                    (entry, Outcome::Planned)
                } else if let Err(h) = gate.allow().await {
                    let why = format!("{}: {h}", h.reason());
                    held = Some(why.clone());
                    (entry, Outcome::Held(why))
                } else {
                    match connect.delete(&u.id).await {
                        Ok(()) => {
                            report.applied.delete += 1;
                            (entry, Outcome::Done)
                        }
                        Err(e) => (entry, Outcome::Failed(format!("{}: {e}", e.reason()))),
                    }
                }
            }
        };
        (entry.result, entry.reason) = match outcome {
            Outcome::Planned => ("planned", None),
            Outcome::Done => ("done", None),
            Outcome::Held(why) => {
                report.deletes_held += 1;
                ("held", Some(why))
            }
            Outcome::Conflict(why) => ("skipped", Some(why)),
            Outcome::Failed(why) => {
                report.failed += 1;
                ("failed", Some(why))
            }
        };
        report.push(entry);
    }
    report.connect.calls = connect.calls.get();
    report.okta.calls = okta.calls.get();
    report.ok = report.failed == 0 && report.deletes_held == 0 && report.deferred == 0;
    if let (true, Some(why)) = (report.deletes_held > 0, &held) {
        report.error = Some(format!("{} deletions held back: {why}", report.deletes_held));
    } else if report.failed > 0 {
        report.error = Some(format!("{} change(s) failed; the next run retries them", report.failed));
    } else if report.deferred > 0 {
        report.error = Some(format!(
            "{} change(s) deferred: this run's WORKER_SUBREQUEST_BUDGET ({}) is spent; the next run continues",
            report.deferred, cfg.subrequest_budget
        ));
    }
    report.duration_ms = edge.clock.now_ms() - started;
    report
}

fn entry(
    action: &'static str,
    username: &str,
    okta_user_id: Option<&str>,
    connect_user_id: Option<&str>,
    fields: Vec<&'static str>,
) -> ChangeEntry {
    ChangeEntry {
        action,
        username: username.to_string(),
        okta_user_id: okta_user_id.map(String::from),
        connect_user_id: connect_user_id.map(String::from),
        fields,
        result: "planned",
        reason: None,
    }
}

/// Whether a request URL asks for a dry run: `dryRun` (or `dry_run`) as `true`, `1` or bare.
pub fn dry_run_requested(url: &str) -> bool {
    let query = url.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or("")).unwrap_or("");
    query.split('&').any(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        matches!(k, "dryRun" | "dry_run") && matches!(v, "true" | "1" | "")
    })
}

/// `POST /admin/provisioning/reconcile[?dryRun=true]`: 200 with the report when the run
/// succeeded, 502 when a listing failed, a change failed or deletions were held.
pub async fn admin<H: Http, C: Clock, S: RsaSigner, D: Durable>(
    authorization: Option<&str>,
    admin_secret: Result<Option<AdminSecret>, ConfigError>,
    cfg: Option<Result<ProvisioningConfig, ConfigError>>,
    gate: &Gate,
    edge: &Edge<'_, H, C, S, D>,
    dry_run: bool,
) -> Handled {
    if let Some(refused) = refuse(authorization, admin_secret) {
        return refused;
    }
    let plain = |answer: Answer| Handled { answer, log: None, alerts: vec![] };
    let cfg = match cfg {
        Some(Ok(c)) => c,
        None => {
            return plain(answer::plain_error(
                503,
                "Provisioning is not configured (CONNECT_INSTANCE_ID is not set)",
                "PROVISIONING_NOT_CONFIGURED",
            ))
        }
        Some(Err(e)) => {
            return plain(answer::plain_error(
                503,
                &format!("Provisioning is misconfigured: {e}"),
                "PROVISIONING_MISCONFIGURED",
            ))
        }
    };
    let Some(_entered) = gate.try_enter() else {
        return plain(answer::plain_error(409, "A reconciliation is already running", "RECONCILE_IN_PROGRESS"));
    };
    let report = run(&cfg, edge, dry_run, "admin").await;
    finish(report)
}

/// The Cron Trigger's run. `cfg` is `None` when provisioning is off (nothing to do).
pub async fn scheduled<H: Http, C: Clock, S: RsaSigner, D: Durable>(
    cfg: Option<Result<ProvisioningConfig, ConfigError>>,
    gate: &Gate,
    edge: &Edge<'_, H, C, S, D>,
) -> Handled {
    let skipped = |why: &str| Handled {
        answer: Answer { status: 200, body: String::new() },
        log: Some(serde_json::json!({"msg": "provisioning-reconcile", "level": "info", "skipped": why}).to_string()),
        alerts: vec![],
    };
    let cfg = match cfg {
        None => return skipped("CONNECT_INSTANCE_ID is not set: provisioning is off"),
        Some(Err(e)) => {
            return Handled {
                answer: Answer { status: 500, body: String::new() },
                log: None,
                alerts: vec![format!("provisioning is misconfigured; no reconciliation: {e}")],
            }
        }
        Some(Ok(c)) => c,
    };
    let Some(_entered) = gate.try_enter() else { return skipped("a reconciliation is already running") };
    finish(run(&cfg, edge, false, "cron").await)
}

fn finish(report: ReconcileReport) -> Handled {
    let alerts = report.error.iter().map(|e| format!("provisioning reconciliation: {e}")).collect();
    let status = if report.ok { 200 } else { 502 };
    let body = serde_json::to_string(&report).expect("plain fields");
    Handled { answer: Answer { status, body }, log: Some(report.log_line()), alerts }
}
