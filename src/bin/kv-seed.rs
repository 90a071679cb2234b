//! Turns `kv-seed/templates/*.json` into a `wrangler kv bulk put` file, validating every template
//! with the same code that validates what the sync job publishes. Fails (exit 1) on any invalid
//! template, naming it.
//!
//! Usage: kv-seed [--dir kv-seed/templates] --out FILE

use std::process::ExitCode;

use okta_edge_hooks::template::store::{set_key, Pointer, CURRENT_KEY};
use okta_edge_hooks::template::{LocaleTemplates, TemplateSet};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let dir = arg("--dir").unwrap_or_else(|| "kv-seed/templates".into());
    let Some(out) = arg("--out") else {
        eprintln!("usage: kv-seed [--dir DIR] --out FILE");
        return ExitCode::from(2);
    };
    match run(&dir, &out) {
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

fn run(dir: &str, out: &str) -> Result<String, String> {
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
    let pointer = Pointer::for_set(&set, now_ms);
    let bulk = serde_json::json!([
        {"key": set_key(set.version()), "value": set.to_json()},
        {"key": CURRENT_KEY, "value": serde_json::to_string(&pointer).map_err(|e| e.to_string())?},
    ]);
    std::fs::write(out, bulk.to_string()).map_err(|e| format!("{out}: {e}"))?;
    Ok(format!("kv-seed: {count} locales, {} templates, version {} → {out}", set.len(), set.version()))
}
