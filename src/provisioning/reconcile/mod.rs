//! Full reconciliation: every Okta user who should have a Connect user (members of the configured
//! groups, users assigned to the configured apps) against every Connect user carrying our
//! `managedBy` tag. Creates the missing, updates the drifted, deletes the orphans; a dry run only
//! plans. This module owns the report and the pure [`plan`]; [`job`] runs it as a resumable job
//! in the `ReconcileJob` Durable Object (cron `RECONCILE_CRON`, `POST
//! /admin/provisioning/reconcile[?dryRun=true]`, `GET /admin/provisioning/status`).

pub mod job;

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::client::{diff, owner, Change};
use super::config::ProvisioningConfig;
use super::mapping::{desired, Desired};
use super::{OWNED_BY_ANOTHER_OKTA_USER, UNMANAGED_USER_EXISTS};
use crate::aws::connect::{ConnectUser, UserSummary};
use crate::okta::OktaUser;

/// Changes listed in a report, at most (the counts are always complete).
pub const MAX_LISTED_CHANGES: usize = 1000;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub create: u32,
    pub update: u32,
    pub delete: u32,
    /// Untagged users taken over (`CONNECT_ADOPT_EXISTING=true` only).
    pub adopt: u32,
    pub unchanged: u32,
    /// A user we did not create holds the username, or two Okta users map to one username.
    pub conflict: u32,
    /// Okta users who should have access but cannot be provisioned (see the change's reason).
    pub unprovisionable: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Side {
    /// Okta: users who should have access; Connect: managed users found.
    pub users: u32,
    pub calls: u32,
}

/// What a change does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
    /// An existing untagged user tagged as this Okta user's (`CONNECT_ADOPT_EXISTING=true`).
    Adopt,
    /// Nothing is written: a conflict or an Okta user who cannot be provisioned.
    Skip,
}

/// What became of a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeResult {
    /// A dry run's, or not applied yet.
    Planned,
    Done,
    /// A deletion held back (more than `RECONCILE_MAX_DELETES`, or the deletion safety's hold).
    Held,
    Failed,
    Skipped,
}

pub use crate::admin::Trigger;

macro_rules! text_eq {
    ($t:ty: $($v:ident => $s:literal),*) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}
text_eq!(Action: Create => "create", Update => "update", Delete => "delete", Adopt => "adopt", Skip => "skip");
text_eq!(ChangeResult: Planned => "planned", Done => "done", Held => "held", Failed => "failed", Skipped => "skipped");

/// One planned or applied change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEntry {
    pub action: Action,
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub okta_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Change>,
    pub result: ChangeResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileReport {
    /// The run's id (`r<start ms>`), as the status endpoint shows it.
    #[serde(default)]
    pub id: String,
    pub ok: bool,
    pub dry_run: bool,
    pub trigger: Trigger,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    pub duration_ms: u64,
    /// Durable Object alarms that worked on the run, and the most subrequests one of them made
    /// (at most `WORKER_SUBREQUEST_BUDGET`).
    #[serde(default)]
    pub invocations: u32,
    #[serde(default)]
    pub max_subrequests: u32,
    /// Pauses for Okta's rate-limit reset (a 429, or under a tenth of the window left).
    #[serde(default)]
    pub okta_rate_limit_waits: u32,
    pub changes: Vec<ChangeEntry>,
    pub changes_truncated: bool,
}

impl ReconcileReport {
    pub fn push(&mut self, e: ChangeEntry) {
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
            "run": self.id, "ok": self.ok, "dryRun": self.dry_run, "trigger": self.trigger, "error": self.error,
            "okta": self.okta, "connect": self.connect, "planned": self.planned, "applied": self.applied,
            "failed": self.failed, "deletesHeld": self.deletes_held, "durationMs": self.duration_ms,
            "invocations": self.invocations, "maxSubrequests": self.max_subrequests,
            "oktaRateLimitWaits": self.okta_rate_limit_waits,
        })
        .to_string()
    }
}

/// One change of the plan.
pub enum Planned {
    Create(Desired),
    Update(Desired, ConnectUser, Vec<Change>),
    Delete(ConnectUser),
    /// Tag the untagged holder `id` (ARN `arn`) as `Desired`'s, then set every field.
    Adopt(Desired, String, String),
}

/// Who holds a username in Connect.
struct Holder {
    id: String,
    arn: Option<String>,
    managed: bool,
    /// A managed user's `oktaUserId` tag.
    owner: Option<String>,
}

fn skipped(username: &str, okta_user_id: Option<&str>, connect_user_id: Option<&str>, reason: String) -> ChangeEntry {
    ChangeEntry {
        result: ChangeResult::Skipped,
        reason: Some(reason),
        ..entry(Action::Skip, username, okta_user_id, connect_user_id, vec![])
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
        all.into_iter().map(|u| (u.username, Holder { id: u.id, arn: u.arn, managed: false, owner: None })).collect();
    let mut by_owner: BTreeMap<String, Vec<ConnectUser>> = BTreeMap::new();
    for u in managed {
        let own = owner(&u).map(String::from);
        holders.insert(
            u.username.clone(),
            Holder { id: u.id.clone(), arn: u.arn.clone(), managed: true, owner: own.clone() },
        );
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
            Some(Holder { id: hid, arn: Some(arn), managed: false, .. }) if cfg.adopt_existing && own.is_empty() => {
                plan.push(Planned::Adopt(d, hid.clone(), arn.clone()));
            }
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
            Planned::Adopt(..) => report.planned.adopt += 1,
        }
    }
    plan
}

pub fn entry(
    action: Action,
    username: &str,
    okta_user_id: Option<&str>,
    connect_user_id: Option<&str>,
    fields: Vec<Change>,
) -> ChangeEntry {
    ChangeEntry {
        action,
        username: username.to_string(),
        okta_user_id: okta_user_id.map(String::from),
        connect_user_id: connect_user_id.map(String::from),
        fields,
        result: ChangeResult::Planned,
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
