//! The template sync: DynamoDB is the source of truth, Workers KV the edge copy the hook reads.
//!
//! One [`run`] reads the whole table with paginated, SigV4-signed `Scan` calls, reads every item
//! in either format ([`items`]), validates every template, builds a [`TemplateSet`] (whose version
//! is a digest of its content) and publishes it through the layout of `template::store`:
//!
//! 1. read `templates/current`; when it already names this version, stop: **no KV write**
//!    (one more read checks that the set document is still there, and rewrites it if not);
//! 2. otherwise read the set in service (to report what was added, changed and removed), put
//!    `templates/set/<version>`, then flip `templates/current` — a reader sees the old set or
//!    the new one, never a mix;
//! 3. delete the set *two* versions back (the pointer remembers the previous key as
//!    `previous`). The set just replaced stays, so an edge location whose cached pointer still
//!    names it (KV takes up to a minute to propagate) can still load it.
//!
//! At most 2 KV reads and 3 KV writes, whatever the table size; [`record`] adds one read and at
//! most one write of `templates/sync-status` (the last [`STATUS_RUNS`] reports). A cron run that
//! found nothing changed and nothing new to report is recorded at most once per
//! [`QUIET_RECORD_INTERVAL_MS`] (its log line is written every time): a quiet table then costs
//! 24 status writes a day instead of 288, and no other write at all.
//!
//! Nothing is published when DynamoDB fails (after bounded retries of throttling, 5xx and
//! network errors), answers something that is not a Scan output, needs more than
//! `SYNC_MAX_PAGES` pages, the run exceeds [`RUN_BUDGET_MS`], or the table yields no valid
//! template: the set in service stays and the report says why. Invalid items (and every item of
//! a locale + channel that two items claim) are left out and reported, never published.

pub mod admin;
pub mod config;
pub mod items;

use std::cell::Cell;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::config::SyncConfig;
use self::items::{Entry, Format};
use crate::aws::dynamodb::{self, Item, ScanInput, ScanOutput};
use crate::aws::sign;
use crate::budget::{Budget, Metered};
use crate::edge::{Clock, FetchError, Http, Kv, KvError};
use crate::locale::Locale;
use crate::retry::{self, Effect, Failed, Stop, Verdict};
use crate::template::store::{set_key, Pointer, CURRENT_KEY};
use crate::template::{Channel, LocaleTemplates, Template, TemplateSet};

/// Where the last runs' reports are kept (one JSON document in the `TEMPLATES` namespace).
pub const STATUS_KEY: &str = "templates/sync-status";
/// Reports kept in [`STATUS_KEY`].
pub const STATUS_RUNS: usize = 20;
/// A quiet cron run (see [`record`]) is recorded when the last recorded one is older than this.
pub const QUIET_RECORD_INTERVAL_MS: u64 = 3_600_000;
/// A run gives up (publishing nothing) after this long.
pub const RUN_BUDGET_MS: u64 = 120_000;
/// Timeout of one Scan request.
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Attempts per page: throttling, 5xx, network errors and timeouts are retried (a Scan changes
/// nothing).
pub const MAX_ATTEMPTS: u32 = 4;
/// An attempt is not started with less time than this left.
const MIN_ATTEMPT_MS: u64 = 500;
const RETRY: retry::Policy = retry::Policy {
    attempts: MAX_ATTEMPTS,
    backoff_ms: &[100, 400, 1600],
    throttled_ms: &[100, 400, 1600],
    jitter_ms: 0,
    min_attempt_ms: MIN_ATTEMPT_MS,
    max_wait_ms: 0,
};
/// Invalid items and removed templates listed in a report (the counts are complete).
pub const MAX_LISTED: usize = 20;

pub use crate::admin::Trigger;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunOutcome {
    /// A new set is in service.
    Published,
    /// The table's content is the set in service: nothing written.
    Unchanged,
    /// Nothing published; the set in service (if any) stays.
    Failed,
}

/// An item left out, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidItem {
    pub item: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    pub reason: String,
}

/// The result of one run: logged as one JSON line, kept in [`STATUS_KEY`], returned by
/// `POST /admin/templates/sync`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    pub trigger: Trigger,
    pub table: String,
    pub started_at_ms: u64,
    pub duration_ms: u64,
    pub ok: bool,
    pub outcome: RunOutcome,
    /// The version in service after the run (`None`: KV holds no set).
    pub version: Option<String>,
    /// The version in service before the run.
    pub previous_version: Option<String>,
    /// The version the table's valid templates make (also when it was not published).
    pub built_version: Option<String>,
    /// Items read from the table.
    pub scanned: usize,
    pub valid: usize,
    pub invalid: usize,
    /// The first [`MAX_LISTED`] invalid items.
    pub invalid_items: Vec<InvalidItem>,
    pub own_format: usize,
    pub legacy_format: usize,
    /// Templates in the built set.
    pub templates: usize,
    /// Template by template, built set against the set in service before the run.
    pub added: usize,
    pub changed: usize,
    pub unchanged: usize,
    pub removed: usize,
    /// The first [`MAX_LISTED`] removed templates, as `locale/channel`.
    pub removed_templates: Vec<String>,
    pub dynamodb_requests: u32,
    pub dynamodb_pages: u32,
    pub dynamodb_retries: u32,
    /// KV operations of the publication (persisting the report adds one read and one write).
    pub kv_reads: u32,
    pub kv_writes: u32,
    pub error: Option<String>,
    pub warnings: Vec<String>,
}

impl SyncReport {
    fn new(trigger: Trigger, table: &str, started_at_ms: u64) -> Self {
        SyncReport {
            trigger,
            table: table.into(),
            started_at_ms,
            duration_ms: 0,
            ok: false,
            outcome: RunOutcome::Failed,
            version: None,
            previous_version: None,
            built_version: None,
            scanned: 0,
            valid: 0,
            invalid: 0,
            invalid_items: Vec::new(),
            own_format: 0,
            legacy_format: 0,
            templates: 0,
            added: 0,
            changed: 0,
            unchanged: 0,
            removed: 0,
            removed_templates: Vec::new(),
            dynamodb_requests: 0,
            dynamodb_pages: 0,
            dynamodb_retries: 0,
            kv_reads: 0,
            kv_writes: 0,
            error: None,
            warnings: Vec::new(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("strings, numbers and lists always serialise")
    }

    /// The structured log line: `{"msg":"template-sync","level":"info"|"alert",…report}`.
    pub fn log_line(&self) -> String {
        let mut v = serde_json::to_value(self).expect("strings, numbers and lists always serialise");
        if let Value::Object(m) = &mut v {
            m.insert("msg".into(), "template-sync".into());
            m.insert("level".into(), if self.ok { "info" } else { "alert" }.into());
        }
        v.to_string()
    }

    fn invalid(&mut self, entry: &Entry, reason: String) {
        self.invalid += 1;
        if self.invalid_items.len() < MAX_LISTED {
            self.invalid_items.push(InvalidItem {
                item: entry.label.clone(),
                format: entry.format.map(|f| f.to_string()),
                reason,
            });
        }
    }
}

/// Syncs the table into KV once. Never panics on bad input; every failure is in the report.
pub async fn run<H: Http, K: Kv, C: Clock>(
    cfg: &SyncConfig,
    http: &H,
    kv: &K,
    clock: &C,
    trigger: Trigger,
) -> SyncReport {
    let started = clock.now_ms();
    let mut report = SyncReport::new(trigger, &cfg.table, started);
    let kv = Counted { kv, reads: Cell::new(0), writes: Cell::new(0) };
    // Every Scan request counts against the invocation's subrequest budget (KV does not).
    let budget = Budget::new(cfg.subrequest_budget);
    let http = Metered { inner: http, budget: &budget };
    let result = sync(cfg, &http, &kv, clock, started, &mut report).await;
    report.kv_reads = kv.reads.get();
    report.kv_writes = kv.writes.get();
    report.duration_ms = clock.now_ms().saturating_sub(started);
    match result {
        Ok(outcome) => {
            report.ok = true;
            report.outcome = outcome;
        }
        Err(e) => {
            report.ok = false;
            report.outcome = RunOutcome::Failed;
            report.version = report.previous_version.clone();
            report.error = Some(e);
        }
    }
    report
}

async fn sync<H: Http, K: Kv, C: Clock>(
    cfg: &SyncConfig,
    http: &H,
    kv: &Counted<'_, K>,
    clock: &C,
    started: u64,
    report: &mut SyncReport,
) -> Result<RunOutcome, String> {
    let entries = scan_table(cfg, http, clock, started + RUN_BUDGET_MS, report).await;
    let entries = match entries {
        Ok(e) => e,
        Err(e) => {
            // Say which version stays, when KV can tell.
            report.previous_version = current_pointer(kv).await.ok().flatten().map(|p| p.pointer.version);
            return Err(e);
        }
    };
    let set = build(entries, report);
    report.built_version = Some(set.version().to_string());
    report.templates = set.len();
    if set.is_empty() {
        report.previous_version = current_pointer(kv).await.ok().flatten().map(|p| p.pointer.version);
        return Err(format!(
            "the table holds no valid template ({} items, {} invalid): nothing published",
            report.scanned, report.invalid
        ));
    }
    publish(kv, &set, clock.now_ms(), report).await
}

/// Every item of the table, read, page after page.
async fn scan_table<H: Http, C: Clock>(
    cfg: &SyncConfig,
    http: &H,
    clock: &C,
    deadline_ms: u64,
    report: &mut SyncReport,
) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    let mut start_key: Option<Item> = None;
    loop {
        if report.dynamodb_pages >= cfg.max_pages {
            return Err(format!(
                "the table needs more than {} Scan pages of {} items (SYNC_MAX_PAGES): nothing published",
                cfg.max_pages, cfg.page_size
            ));
        }
        let input = ScanInput {
            table_name: cfg.table.clone(),
            limit: cfg.page_size,
            exclusive_start_key: start_key.take(),
            consistent_read: true,
        };
        let page = scan_page(cfg, http, clock, &input, deadline_ms, report).await?;
        report.dynamodb_pages += 1;
        for item in &page.items {
            entries.push(items::parse_item(item, report.scanned));
            report.scanned += 1;
        }
        match page.last_evaluated_key {
            None => return Ok(entries),
            Some(next) if Some(&next) == input.exclusive_start_key.as_ref() => {
                return Err("DynamoDB returned the same LastEvaluatedKey twice: nothing published".into())
            }
            Some(next) => start_key = Some(next),
        }
    }
}

/// One page, retrying what a retry can fix while the budget lasts.
async fn scan_page<H: Http, C: Clock>(
    cfg: &SyncConfig,
    http: &H,
    clock: &C,
    input: &ScanInput,
    deadline_ms: u64,
    report: &mut SyncReport,
) -> Result<ScanOutput, String> {
    let page = report.dynamodb_pages + 1;
    let tried = retry::run(&RETRY, clock, Some(deadline_ms), async |n| {
        report.dynamodb_retries += u32::from(n > 1);
        let now = clock.now_ms();
        let left = deadline_ms.saturating_sub(now);
        if left < MIN_ATTEMPT_MS {
            return Err(Failed::last(format!("the run took longer than {} s (at page {page})", RUN_BUDGET_MS / 1000)));
        }
        let mut req = dynamodb::scan(&cfg.endpoint, input);
        sign::sign(&mut req, &cfg.aws, &cfg.region, dynamodb::SIGNING_NAME, now)
            .map_err(|e| Failed::last(format!("DynamoDB Scan: {e}")))?;
        report.dynamodb_requests += 1;
        match http.send(req, left.min(REQUEST_TIMEOUT_MS)).await {
            Ok(resp) => dynamodb::parse_scan(&resp).map_err(|e| match e.verdict() {
                Verdict::NoRetry => Failed::last(format!("DynamoDB Scan page {page}: {}", describe(&e))),
                verdict => Failed::new(describe(&e), verdict),
            }),
            Err(FetchError::BodyTooLarge) => {
                Err(Failed::last(format!("DynamoDB Scan page {page}: the answer exceeds the size limit")))
            }
            Err(FetchError::BudgetSpent) => Err(Failed::last(format!(
                "DynamoDB Scan page {page}: the run needs more than WORKER_SUBREQUEST_BUDGET ({}) requests; raise SYNC_PAGE_SIZE (now {}, up to 1000) or the budget: nothing published",
                cfg.subrequest_budget, cfg.page_size
            ))),
            Err(e) => Err(Failed::new(e.to_string(), retry::after_fetch(&e, Effect::Idempotent))),
        }
    })
    .await;
    tried.result.map_err(|(failure, stop)| match stop {
        Stop::Exhausted => format!("DynamoDB Scan page {page}: {failure} (after {} attempts)", tried.attempts),
        Stop::NoTime | Stop::TooFar(_) => format!("DynamoDB Scan page {page}: {failure} (no time left to retry)"),
        Stop::Final => failure,
    })
}

/// `Code (HTTP 400): message`, the message cut short (DynamoDB's carry no personal data).
fn describe(e: &crate::aws::error::AwsError) -> String {
    match &e.message {
        Some(m) => format!("{e}: {}", m.chars().take(200).collect::<String>()),
        None => e.to_string(),
    }
}

/// Drops invalid and ambiguous items (reporting them) and builds the set from the rest.
fn build(entries: Vec<Entry>, report: &mut SyncReport) -> TemplateSet {
    let mut claims: BTreeMap<(Locale, Channel), usize> = BTreeMap::new();
    for e in &entries {
        if let Some(key) = &e.key {
            *claims.entry(key.clone()).or_default() += 1;
        }
    }
    let mut locales: BTreeMap<String, LocaleTemplates> = BTreeMap::new();
    for entry in &entries {
        match entry.format {
            Some(Format::Own) => report.own_format += 1,
            Some(Format::Legacy) => report.legacy_format += 1,
            None => {}
        }
        let claimed = entry.key.as_ref().map_or(0, |k| claims[k]);
        if claimed > 1 {
            let (locale, channel) = entry.key.as_ref().expect("claimed");
            report.invalid(
                entry,
                format!("ambiguous: {claimed} items are {locale} {} templates; none is published", channel.as_str()),
            );
            continue;
        }
        match (&entry.key, &entry.template) {
            (Some((locale, channel)), Ok(template)) => {
                report.valid += 1;
                let slot = locales.entry(locale.to_string()).or_default();
                match channel {
                    Channel::Sms => slot.sms = Some(template.clone()),
                    Channel::Voice => slot.voice = Some(template.clone()),
                }
            }
            (_, Err(reason)) => report.invalid(entry, reason.clone()),
            (None, Ok(_)) => report.invalid(entry, "has no locale and channel".into()),
        }
    }
    let (set, rejected) = TemplateSet::build(locales);
    // Every template was validated above with the same rules; this is a second line of defence.
    for r in rejected {
        report.valid = report.valid.saturating_sub(1);
        report.invalid += 1;
        if report.invalid_items.len() < MAX_LISTED {
            report.invalid_items.push(InvalidItem { item: r.locale.clone(), format: None, reason: r.to_string() });
        }
    }
    set
}

/// The pointer as the sync writes it: the hook's [`Pointer`] plus the key of the set it replaced
/// (the hook ignores the extra field).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPointer {
    #[serde(flatten)]
    pub pointer: Pointer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

/// The pointer in KV: `Ok(None)` when there is none or it is unreadable.
async fn current_pointer<K: Kv>(kv: &K) -> Result<Option<SyncPointer>, KvError> {
    Ok(kv.get(CURRENT_KEY, None).await?.and_then(|raw| serde_json::from_str(&raw).ok()))
}

#[derive(Deserialize)]
struct VersionOnly {
    version: String,
}

async fn publish<K: Kv>(
    kv: &Counted<'_, K>,
    set: &TemplateSet,
    now_ms: u64,
    report: &mut SyncReport,
) -> Result<RunOutcome, String> {
    let raw = kv.get(CURRENT_KEY, None).await.map_err(|e| format!("reading {CURRENT_KEY}: {e}"))?;
    let current: Option<SyncPointer> = match raw {
        None => None,
        Some(raw) => match serde_json::from_str::<SyncPointer>(&raw) {
            Ok(p) if p.pointer.key.starts_with(&set_key("")) => Some(p),
            _ => {
                report.warnings.push(format!("{CURRENT_KEY} was unreadable; replaced"));
                None
            }
        },
    };
    report.previous_version = current.as_ref().map(|p| p.pointer.version.clone());
    let new_key = set_key(set.version());

    if let Some(cur) = current.as_ref().filter(|c| c.pointer.version == set.version()) {
        report.version = Some(set.version().to_string());
        report.unchanged = set.len();
        let doc = kv.get(&cur.pointer.key, None).await.map_err(|e| format!("reading {}: {e}", cur.pointer.key))?;
        let intact =
            doc.and_then(|d| serde_json::from_str::<VersionOnly>(&d).ok()).is_some_and(|v| v.version == set.version());
        if !intact {
            kv.put(&new_key, &set.to_json(), None).await.map_err(|e| format!("repairing {new_key}: {e}"))?;
            report.warnings.push(format!("{new_key} was missing or damaged; rewritten"));
        }
        return Ok(RunOutcome::Unchanged);
    }

    let old = match &current {
        None => None,
        Some(cur) => match kv.get(&cur.pointer.key, None).await {
            Ok(Some(doc)) => TemplateSet::from_json(&doc).ok().map(|(s, _)| s),
            _ => None,
        },
    };
    if current.is_some() && old.is_none() {
        report.warnings.push("the set in service could not be read: every template counts as added".into());
    }
    diff(old.as_ref(), set, report);

    kv.put(&new_key, &set.to_json(), None).await.map_err(|e| format!("writing {new_key}: {e}"))?;
    let pointer = SyncPointer {
        pointer: Pointer::for_set(set, now_ms),
        previous: current.as_ref().map(|c| c.pointer.key.clone()).filter(|k| *k != new_key),
    };
    let pointer_json = serde_json::to_string(&pointer).expect("strings and numbers always serialise");
    kv.put(CURRENT_KEY, &pointer_json, None)
        .await
        .map_err(|e| format!("{new_key} is stored but {CURRENT_KEY} could not be switched to it: {e}"))?;
    report.version = Some(set.version().to_string());

    let stale = current
        .as_ref()
        .and_then(|c| c.previous.clone().filter(|p| *p != c.pointer.key))
        .filter(|k| *k != new_key && k.starts_with(&set_key("")));
    if let Some(stale) = stale {
        if let Err(e) = kv.delete(&stale).await {
            report.warnings.push(format!("could not delete the old set {stale}: {e}"));
        }
    }
    Ok(RunOutcome::Published)
}

/// Template-by-template comparison of the built set with the set in service.
fn diff(old: Option<&TemplateSet>, new: &TemplateSet, report: &mut SyncReport) {
    fn flatten(set: &TemplateSet) -> BTreeMap<String, &Template> {
        let mut out = BTreeMap::new();
        for (locale, t) in set.locales() {
            for channel in [Channel::Sms, Channel::Voice] {
                if let Some(tpl) = t.get(channel) {
                    out.insert(format!("{locale}/{}", channel.as_str()), tpl);
                }
            }
        }
        out
    }
    let new = flatten(new);
    let old = old.map(flatten).unwrap_or_default();
    for (key, tpl) in &new {
        match old.get(key) {
            None => report.added += 1,
            Some(o) if o == tpl => report.unchanged += 1,
            Some(_) => report.changed += 1,
        }
    }
    for key in old.keys().filter(|k| !new.contains_key(*k)) {
        report.removed += 1;
        if report.removed_templates.len() < MAX_LISTED {
            report.removed_templates.push(key.clone());
        }
    }
}

/// Keeps `report` at the head of [`STATUS_KEY`] (the last [`STATUS_RUNS`] runs) and says whether
/// it wrote. Not written: a quiet cron run — unchanged, no error or warning — whose predecessor
/// at the head was one too, with the same version and invalid items, less than
/// [`QUIET_RECORD_INTERVAL_MS`] earlier.
pub async fn record<K: Kv>(kv: &K, report: &SyncReport) -> Result<bool, KvError> {
    let mut doc = read_status(kv).await?;
    let value = serde_json::to_value(report).expect("strings, numbers and lists always serialise");
    if is_quiet(report) && doc.runs.first().is_some_and(|head| repeats(head, &value)) {
        return Ok(false);
    }
    doc.runs.insert(0, value);
    doc.runs.truncate(STATUS_RUNS);
    kv.put(STATUS_KEY, &serde_json::to_string(&doc).expect("JSON values always serialise"), None).await?;
    Ok(true)
}

fn is_quiet(r: &SyncReport) -> bool {
    r.trigger == Trigger::Cron && r.ok && r.outcome == RunOutcome::Unchanged && r.warnings.is_empty()
}

/// `head` is a recent quiet run with what `new` says.
fn repeats(head: &Value, new: &Value) -> bool {
    let same = |k: &str| head.get(k) == new.get(k);
    let started = |v: &Value| v.get("startedAtMs").and_then(Value::as_u64).unwrap_or(0);
    head.get("trigger") == Some(&Value::from("cron"))
        && head.get("outcome") == Some(&Value::from("unchanged"))
        && head.get("warnings").and_then(Value::as_array).is_some_and(|w| w.is_empty())
        && ["ok", "version", "invalid", "invalidItems", "templates", "table"].into_iter().all(same)
        && started(new).saturating_sub(started(head)) < QUIET_RECORD_INTERVAL_MS
}

#[derive(Default, Serialize, Deserialize)]
struct StatusDoc {
    #[serde(default)]
    runs: Vec<Value>,
}

async fn read_status<K: Kv>(kv: &K) -> Result<StatusDoc, KvError> {
    Ok(kv.get(STATUS_KEY, None).await?.and_then(|raw| serde_json::from_str(&raw).ok()).unwrap_or_default())
}

/// `GET /admin/templates/status`: the version in service and the last runs, newest first.
pub async fn status<K: Kv>(kv: &K) -> Result<Value, KvError> {
    let pointer = current_pointer(kv).await?;
    let runs = read_status(kv).await?.runs;
    let in_service = pointer.map(|p| {
        serde_json::json!({
            "version": p.pointer.version,
            "key": p.pointer.key,
            "publishedAtMs": p.pointer.published_at_ms,
            "templates": p.pointer.templates,
            "previousKey": p.previous,
        })
    });
    Ok(serde_json::json!({ "inService": in_service, "runs": runs }))
}

/// A KV that counts the operations made through it.
struct Counted<'a, K> {
    kv: &'a K,
    reads: Cell<u32>,
    writes: Cell<u32>,
}

impl<K: Kv> Kv for Counted<'_, K> {
    async fn get(&self, key: &str, cache_ttl_s: Option<u64>) -> Result<Option<String>, KvError> {
        self.reads.set(self.reads.get() + 1);
        self.kv.get(key, cache_ttl_s).await
    }

    async fn put(&self, key: &str, value: &str, ttl_s: Option<u64>) -> Result<(), KvError> {
        self.writes.set(self.writes.get() + 1);
        self.kv.put(key, value, ttl_s).await
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.writes.set(self.writes.get() + 1);
        self.kv.delete(key).await
    }
}

#[cfg(test)]
mod tests;
