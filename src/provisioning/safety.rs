//! Deletion safety, on every path that deletes a Connect user (the queue consumer and the
//! reconciliation):
//!
//! 1. **The sources exist.** Every configured Okta group and app is looked up before a deletion.
//!    Okta answers 404 for a missing app exactly as for a missing assignment, and a deleted group
//!    simply stops appearing in a user's groups, so after an app or group is deleted or recreated
//!    every user would otherwise read as "no access". A source that is missing, or cannot be
//!    confirmed, stops every deletion and raises an alert. Confirmations are kept for
//!    [`SOURCES_TTL_MS`] in the isolate; a failure is never cached.
//! 2. **A budget.** At most `PROVISIONING_MAX_DELETES_PER_HOUR` deletions in any rolling hour,
//!    counted in one ledger object ([`BUDGET_OBJECT`]) that every isolate shares: strongly
//!    consistent, so concurrent batches cannot overspend it. If the object cannot be reached,
//!    nothing is deleted.
//!
//! A deletion that fails either check is held, not dropped: the consumer retries the message
//! later (dead-lettering it with the hold's reason once its attempts are spent, and the next
//! reconciliation plans it again), the reconciliation reports it `held`.
#![allow(async_fn_in_trait)]

use std::cell::Cell;
use std::fmt;

use super::config::ProvisioningConfig;
use crate::edge::{Clock, Durable, Http};
use crate::guard::window::Window;
use crate::ledger::{self, Reply, Request};
use crate::okta::assertion::RsaSigner;
use crate::okta::{OktaApi, OktaError};

/// How long a confirmation that the configured groups and apps exist is trusted.
pub const SOURCES_TTL_MS: u64 = 60_000;
/// The ledger object that counts deletions.
pub const BUDGET_OBJECT: &str = "provisioning:deletes";
/// The budget's window, as the ledger names it.
const BUDGET_WINDOW: &str = "deletes:3600";
/// The budget object's reply is awaited at most this long.
pub const BUDGET_TIMEOUT_MS: u64 = 2_000;
/// A hold for a missing or unconfirmed source is looked at again after this long.
const SOURCE_RETRY_MS: u64 = 10 * 60_000;

/// Why a deletion is held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    /// A configured group or app does not exist in Okta.
    SourceMissing(String),
    /// Okta did not answer the existence check.
    SourceUnconfirmed(String),
    /// The rolling hour's deletions are spent; one more fits in `retry_after_ms`.
    BudgetSpent { max: u64, retry_after_ms: u64 },
    /// The budget's object did not answer.
    BudgetUnavailable(String),
    /// A check could not be made in this invocation: its subrequest budget is spent. Nothing was
    /// decided; the deletion goes on in the next invocation.
    InvocationSpent,
}

impl crate::budget::Spent for Held {
    fn budget_spent(&self) -> bool {
        *self == Held::InvocationSpent
    }
}

impl Held {
    pub fn reason(&self) -> &'static str {
        match self {
            Held::SourceMissing(_) => "DELETION_HELD_SOURCE_MISSING",
            Held::SourceUnconfirmed(_) => "DELETION_HELD_SOURCE_UNCONFIRMED",
            Held::BudgetSpent { .. } => "DELETION_HELD_BUDGET_SPENT",
            Held::BudgetUnavailable(_) => "DELETION_HELD_BUDGET_UNAVAILABLE",
            Held::InvocationSpent => "DELETION_HELD_INVOCATION_SPENT",
        }
    }

    /// How long from now a retry could pass the check.
    pub fn retry_after_ms(&self) -> u64 {
        match self {
            Held::BudgetSpent { retry_after_ms, .. } => (*retry_after_ms).max(1000),
            Held::BudgetUnavailable(_) | Held::InvocationSpent => 60_000,
            Held::SourceMissing(_) | Held::SourceUnconfirmed(_) => SOURCE_RETRY_MS,
        }
    }
}

impl fmt::Display for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Held::SourceMissing(what) => {
                write!(
                    f,
                    "{what} does not exist in Okta: no Connect user is deleted until it does (or the setting is fixed)"
                )
            }
            Held::SourceUnconfirmed(e) => write!(f, "could not confirm the configured groups and apps exist: {e}"),
            Held::BudgetSpent { max, retry_after_ms } => write!(
                f,
                "PROVISIONING_MAX_DELETES_PER_HOUR ({max}) deletions were made in the last hour; the next fits in {} s",
                retry_after_ms.div_ceil(1000)
            ),
            Held::BudgetUnavailable(e) => write!(f, "the deletion budget could not be checked: {e}"),
            Held::InvocationSpent => f.write_str(crate::budget::SPENT),
        }
    }
}

/// What must pass before each deletion.
pub trait DeleteGate {
    async fn allow(&self) -> Result<(), Held>;
}

/// Isolate memory: when the configured groups and apps were last confirmed to exist.
#[derive(Default)]
pub struct SourcesCache {
    confirmed_at_ms: Cell<Option<u64>>,
}

impl SourcesCache {
    fn fresh(&self, now_ms: u64) -> bool {
        self.confirmed_at_ms.get().is_some_and(|t| now_ms < t + SOURCES_TTL_MS)
    }

    /// Records that the sources were seen to exist at `now_ms` (a listing of all of them succeeded).
    pub fn confirm(&self, now_ms: u64) {
        self.confirmed_at_ms.set(Some(now_ms));
    }
}

/// Confirms every configured group and app exists (or uses a recent confirmation).
pub async fn confirm_sources<H: Http, C: Clock, S: RsaSigner>(
    cfg: &ProvisioningConfig,
    okta: &OktaApi<'_, H, C, S>,
    cache: &SourcesCache,
    clock: &C,
) -> Result<(), Held> {
    if cache.fresh(clock.now_ms()) {
        return Ok(());
    }
    for g in &cfg.group_ids {
        match okta.group_exists(g).await {
            Ok(true) => {}
            Ok(false) => return Err(Held::SourceMissing(format!("OKTA_CONNECT_GROUP_IDS group {g}"))),
            Err(OktaError::BudgetSpent) => return Err(Held::InvocationSpent),
            Err(e) => return Err(Held::SourceUnconfirmed(e.to_string())),
        }
    }
    for a in &cfg.app_ids {
        match okta.app_exists(a).await {
            Ok(true) => {}
            Ok(false) => return Err(Held::SourceMissing(format!("OKTA_CONNECT_APP_IDS app {a}"))),
            Err(OktaError::BudgetSpent) => return Err(Held::InvocationSpent),
            Err(e) => return Err(Held::SourceUnconfirmed(e.to_string())),
        }
    }
    cache.confirm(clock.now_ms());
    Ok(())
}

/// Takes one deletion from the rolling hour's budget of `max`.
pub async fn take_budget<D: Durable>(ledger: &D, max: u64) -> Result<(), Held> {
    if max == 0 {
        return Err(Held::BudgetSpent { max, retry_after_ms: 3_600_000 });
    }
    let request = Request::Hit { windows: vec![Window { name: BUDGET_WINDOW.into(), max, per_s: 3600 }] };
    match ledger::call(ledger, BUDGET_OBJECT, &request, BUDGET_TIMEOUT_MS).await {
        Ok(Reply::Counted) => Ok(()),
        Ok(Reply::Limited { limit }) => Err(Held::BudgetSpent { max, retry_after_ms: limit.retry_after_ms }),
        Ok(_) => Err(Held::BudgetUnavailable("an unexpected reply".into())),
        Err(ledger::LedgerError::BudgetSpent) => Err(Held::InvocationSpent),
        Err(e) => Err(Held::BudgetUnavailable(e.to_string())),
    }
}

/// The gate of the consumer and the reconciliation: sources first (no budget is spent while a
/// source is missing), then one unit of the budget.
pub struct Deletions<'a, H, C, S: RsaSigner, D> {
    pub cfg: &'a ProvisioningConfig,
    pub okta: &'a OktaApi<'a, H, C, S>,
    pub cache: &'a SourcesCache,
    pub ledger: &'a D,
    pub clock: &'a C,
}

impl<H: Http, C: Clock, S: RsaSigner, D: Durable> DeleteGate for Deletions<'_, H, C, S, D> {
    async fn allow(&self) -> Result<(), Held> {
        confirm_sources(self.cfg, self.okta, self.cache, self.clock).await?;
        take_budget(self.ledger, self.cfg.max_deletes_per_hour).await
    }
}
