//! Turns `kv-seed/templates/*.json` into what the two template stores load, validating every
//! template with the same code that validates what the sync job publishes. Fails (exit 1) on any
//! invalid template, naming it.
//!
//! - `--out FILE`: a `wrangler kv bulk put` file (the set and the pointer; `scripts/seed-kv`);
//! - `--dynamodb-out FILE`: a JSON array of DynamoDB items in the project's own format
//!   (`locale`, `channel`, `body`, `voiceId`, `updatedAt`; see `sync::items`), one per template,
//!   for `scripts/seed-dynamodb`.
//!
//! Usage: kv-seed [--dir kv-seed/templates] [--out FILE] [--dynamodb-out FILE]

use std::process::ExitCode;

use okta_edge_hooks::sync::items::own_item;
use okta_edge_hooks::template::store::{set_key, Pointer, CURRENT_KEY};
use okta_edge_hooks::template::{Channel, LocaleTemplates, TemplateSet};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let dir = arg("--dir").unwrap_or_else(|| "kv-seed/templates".into());
    let (out, dynamodb_out) = (arg("--out"), arg("--dynamodb-out"));
    if out.is_none() && dynamodb_out.is_none() {
        eprintln!("usage: kv-seed [--dir DIR] [--out FILE] [--dynamodb-out FILE]");
        return ExitCode::from(2);
    }
    match run(&dir, out.as_deref(), dynamodb_out.as_deref()) {
        Ok(summary) => {
            eprintln!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kv-seed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &str, out: Option<&str>, dynamodb_out: Option<&str>) -> Result<String, String> {
    let mut entries = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{dir}: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    for path in names {
        let locale = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let entry: LocaleTemplates = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        entries.push((locale, entry));
    }
    let count = entries.len();
    let (set, rejected) = TemplateSet::build(entries);
    if !rejected.is_empty() {
        let list: Vec<String> = rejected.iter().map(|r| r.to_string()).collect();
        return Err(format!("invalid templates:\n  {}", list.join("\n  ")));
    }
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let mut written = Vec::new();
    if let Some(out) = out {
        let pointer = Pointer::for_set(&set, now_ms);
        let bulk = serde_json::json!([
            {"key": set_key(set.version()), "value": set.to_json()},
            {"key": CURRENT_KEY, "value": serde_json::to_string(&pointer).map_err(|e| e.to_string())?},
        ]);
        std::fs::write(out, bulk.to_string()).map_err(|e| format!("{out}: {e}"))?;
        written.push(out.to_string());
    }
    if let Some(path) = dynamodb_out {
        let updated_at = rfc3339(now_ms / 1000);
        let mut items = Vec::new();
        for (locale, t) in set.locales() {
            for channel in [Channel::Sms, Channel::Voice] {
                if let Some(template) = t.get(channel) {
                    items.push(own_item(locale, channel, template, Some(&updated_at)));
                }
            }
        }
        let json = serde_json::to_string_pretty(&items).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("{path}: {e}"))?;
        written.push(format!("{path} ({} DynamoDB items)", items.len()));
    }
    Ok(format!("kv-seed: {count} locales, {} templates, version {} → {}", set.len(), set.version(), written.join(", ")))
}

/// `2026-01-31T12:00:00Z` from Unix seconds.
fn rfc3339(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}
