//! The sync's two entry points, as the shell calls them: the Cron Trigger ([`scheduled`]) and the
//! admin endpoints ([`handle`]):
//!
//! - `POST /admin/templates/sync` runs a sync now and answers its report (200 when it succeeded,
//!   502 when it failed and nothing was published);
//! - `GET /admin/templates/status` answers the version in service and the last runs.
//!
//! Both need `Authorization: Bearer <ADMIN_SECRET>` ([`crate::admin`]); with the sync not
//! configured, 503 after authentication. Answers use the Worker's JSON error shape.
//!
//! One run at a time per isolate ([`Gate`]): a second request meanwhile gets 409, a cron tick
//! meanwhile is skipped.

use super::config::SyncConfig;
use super::{record, run, status, SyncReport, Trigger};
use crate::admin::Gate;
use crate::admin::{refuse, AdminSecret};
use crate::edge::{Clock, Http, Kv};
use crate::http::Handled;
use crate::http::{self, Answer};
use crate::settings::ConfigError;

/// The admin operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Sync,
    Status,
}

/// The edge services a sync uses.
pub struct SyncEdge<'a, H, K, C> {
    pub http: &'a H,
    /// The `TEMPLATES` namespace.
    pub kv: &'a K,
    pub clock: &'a C,
}

/// Runs a sync and keeps its report in KV.
async fn run_recorded<H: Http, K: Kv, C: Clock>(
    cfg: &SyncConfig,
    edge: &SyncEdge<'_, H, K, C>,
    trigger: Trigger,
    alerts: &mut Vec<String>,
) -> SyncReport {
    let report = run(cfg, edge.http, edge.kv, edge.clock, trigger).await;
    if let Err(e) = record(edge.kv, &report).await {
        alerts.push(format!("could not store the sync report in {}: {e}", super::STATUS_KEY));
    }
    if let Some(error) = &report.error {
        alerts.push(format!("template sync failed; the templates in service stay: {error}"));
    }
    report
}

/// A cron tick. `sync` is the parsed sync configuration.
pub async fn scheduled<H: Http, K: Kv, C: Clock>(
    sync: Result<Option<SyncConfig>, ConfigError>,
    gate: &Gate,
    edge: &SyncEdge<'_, H, K, C>,
) -> Handled {
    let skipped = |why: &str| Handled {
        answer: Answer { status: 200, body: String::new() },
        log: Some(serde_json::json!({"msg": "template-sync", "level": "info", "skipped": why}).to_string()),
        alerts: vec![],
    };
    let cfg = match sync {
        Ok(Some(c)) => c,
        Ok(None) => return skipped("TEMPLATE_TABLE is not set: the template sync is off"),
        Err(e) => {
            return Handled {
                answer: Answer { status: 500, body: String::new() },
                log: None,
                alerts: vec![format!("the template sync is misconfigured: {e}")],
            }
        }
    };
    let Some(_entered) = gate.try_enter() else {
        return skipped("a sync is already running in this isolate");
    };
    let mut alerts = Vec::new();
    let report = run_recorded(&cfg, edge, Trigger::Cron, &mut alerts).await;
    Handled { answer: Answer { status: 200, body: report.to_json() }, log: Some(report.log_line()), alerts }
}

/// One admin request. `authorization` is the request's `Authorization` header.
pub async fn handle<H: Http, K: Kv, C: Clock>(
    op: Op,
    authorization: Option<&str>,
    admin: Result<Option<AdminSecret>, ConfigError>,
    sync: Result<Option<SyncConfig>, ConfigError>,
    gate: &Gate,
    edge: &SyncEdge<'_, H, K, C>,
) -> Handled {
    let plain = |answer: Answer| Handled::plain(answer);
    if let Some(refused) = refuse(authorization, admin) {
        return refused;
    }
    let cfg = match sync {
        Ok(Some(c)) => c,
        Ok(None) => {
            return plain(http::plain_error(
                503,
                "The template sync is not configured (TEMPLATE_TABLE is not set)",
                "SYNC_NOT_CONFIGURED",
            ))
        }
        Err(e) => {
            // The caller is authenticated: naming the setting helps and reveals no secret.
            return plain(http::plain_error(
                503,
                &format!("The template sync is misconfigured: {e}"),
                "SYNC_MISCONFIGURED",
            ));
        }
    };
    match op {
        Op::Status => match status(edge.kv).await {
            Ok(v) => plain(Answer { status: 200, body: v.to_string() }),
            Err(e) => Handled {
                answer: http::plain_error(503, "The status could not be read from KV", "KV_UNAVAILABLE"),
                log: None,
                alerts: vec![format!("admin status: {e}")],
            },
        },
        Op::Sync => {
            let Some(_entered) = gate.try_enter() else {
                return plain(http::plain_error(
                    409,
                    "A sync is already running; try again shortly",
                    "SYNC_IN_PROGRESS",
                ));
            };
            let mut alerts = Vec::new();
            let report = run_recorded(&cfg, edge, Trigger::Admin, &mut alerts).await;
            let status = if report.ok { 200 } else { 502 };
            Handled { answer: Answer { status, body: report.to_json() }, log: Some(report.log_line()), alerts }
        }
    }
}
