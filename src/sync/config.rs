//! The template sync's settings, parsed apart from the telephony hook's `Config`: the hook keeps
//! working when the sync is not configured (or misconfigured), and the other way round.
//!
//! | setting | default | meaning |
//! |---|---|---|
//! | `TEMPLATE_TABLE` | unset: sync off | DynamoDB table (name or ARN) holding the templates |
//! | `AWS_DYNAMODB_ENDPOINT` | `https://dynamodb.{AWS_REGION}.amazonaws.com` | DynamoDB endpoint (http allowed, for emulators) |
//! | `SYNC_PAGE_SIZE` | 100 | `Limit` of each Scan page, 1–1000 |
//! | `SYNC_MAX_PAGES` | 200 | a table needing more pages fails the run (nothing published), 1–1000 |
//! | `WORKER_SUBREQUEST_BUDGET` | 50 | Scan requests of one run, retries included (see `crate::budget`) |
//! | `ADMIN_SECRET` | unset: admin endpoints off | bearer token of `/admin/templates/*`, at least 24 characters |
//!
//! `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` are shared
//! with messaging.

use crate::aws::dynamodb;
use crate::aws::Credentials;
use crate::settings::{aws_credentials, aws_endpoint, bad, getter, number, region, ConfigError, Source};

/// Every setting this module reads.
pub const SETTINGS: &[&str] = &[
    "TEMPLATE_TABLE",
    "AWS_DYNAMODB_ENDPOINT",
    "SYNC_PAGE_SIZE",
    "SYNC_MAX_PAGES",
    "WORKER_SUBREQUEST_BUDGET",
    "ADMIN_SECRET",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const DEFAULT_MAX_PAGES: u32 = 200;

/// Everything a sync run needs, validated.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    pub table: String,
    pub region: String,
    pub endpoint: String,
    pub aws: Credentials,
    pub page_size: u32,
    pub max_pages: u32,
    /// `WORKER_SUBREQUEST_BUDGET`: the Scan requests of one run, retries included.
    pub subrequest_budget: u32,
}

impl SyncConfig {
    /// `Ok(None)` when `TEMPLATE_TABLE` is unset: the sync is off.
    pub fn from_source(src: &impl Source) -> Result<Option<SyncConfig>, ConfigError> {
        let get = getter(src);
        let Some(table) = get("TEMPLATE_TABLE") else { return Ok(None) };
        if !is_table_name(&table) && !is_table_arn(&table) {
            return Err(bad(
                "TEMPLATE_TABLE",
                "must be a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ . -) or a table ARN",
            ));
        }
        let region = region("AWS_REGION", &get("AWS_REGION").unwrap_or_else(|| "us-east-1".into()))?;
        let endpoint = match get("AWS_DYNAMODB_ENDPOINT") {
            Some(e) => aws_endpoint("AWS_DYNAMODB_ENDPOINT", &e)?,
            None => dynamodb::default_endpoint(&region),
        };
        let aws = aws_credentials(&get, " for the template sync")?;
        let page_size = number(&get, "SYNC_PAGE_SIZE", DEFAULT_PAGE_SIZE.into(), 1, dynamodb::MAX_LIMIT.into())? as u32;
        let max_pages = number(&get, "SYNC_MAX_PAGES", DEFAULT_MAX_PAGES.into(), 1, 1000)? as u32;
        let subrequest_budget = crate::budget::setting(&get)?;
        Ok(Some(SyncConfig { table, region, endpoint, aws, page_size, max_pages, subrequest_budget }))
    }
}

fn is_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn is_table_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "dynamodb"
        && parts[5].strip_prefix("table/").is_some_and(is_table_name)
        && arn.len() <= 1024
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = [
            ("TEMPLATE_TABLE", "okta-edge-hooks-templates"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            m.insert(k.to_string(), v.to_string());
        }
        m
    }

    fn err(pairs: &[(&str, &str)]) -> &'static str {
        SyncConfig::from_source(&settings(pairs)).unwrap_err().setting
    }

    #[test]
    fn off_without_a_table_and_defaults_otherwise() {
        let mut m = settings(&[]);
        m.insert("TEMPLATE_TABLE".into(), "  ".into());
        assert!(SyncConfig::from_source(&m).unwrap().is_none());
        let c = SyncConfig::from_source(&settings(&[("AWS_REGION", "eu-west-1")])).unwrap().unwrap();
        assert_eq!(c.endpoint, "https://dynamodb.eu-west-1.amazonaws.com");
        assert_eq!((c.page_size, c.max_pages), (100, 200));
        assert_eq!(c.table, "okta-edge-hooks-templates");
    }

    #[test]
    fn names_the_bad_setting() {
        assert_eq!(err(&[("TEMPLATE_TABLE", "a b")]), "TEMPLATE_TABLE");
        assert_eq!(err(&[("TEMPLATE_TABLE", "ab")]), "TEMPLATE_TABLE");
        assert_eq!(err(&[("SYNC_PAGE_SIZE", "0")]), "SYNC_PAGE_SIZE");
        assert_eq!(err(&[("SYNC_PAGE_SIZE", "1001")]), "SYNC_PAGE_SIZE");
        assert_eq!(err(&[("SYNC_MAX_PAGES", "x")]), "SYNC_MAX_PAGES");
        assert_eq!(err(&[("AWS_DYNAMODB_ENDPOINT", "ftp://x")]), "AWS_DYNAMODB_ENDPOINT");
        assert_eq!(err(&[("AWS_DYNAMODB_ENDPOINT", "http://127.0.0.1:8000/path")]), "AWS_DYNAMODB_ENDPOINT");
        let mut m = settings(&[]);
        m.remove("AWS_SECRET_ACCESS_KEY");
        assert_eq!(SyncConfig::from_source(&m).unwrap_err().setting, "AWS_SECRET_ACCESS_KEY");
    }

    #[test]
    fn accepts_arns_and_local_endpoints() {
        let c = SyncConfig::from_source(&settings(&[
            ("TEMPLATE_TABLE", "arn:aws:dynamodb:us-east-1:111122223333:table/otp-templates"),
            ("AWS_DYNAMODB_ENDPOINT", "http://127.0.0.1:8000/"),
            ("SYNC_PAGE_SIZE", "2"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:8000");
        assert_eq!(c.page_size, 2);
        assert_eq!(err(&[("TEMPLATE_TABLE", "arn:aws:s3:::bucket")]), "TEMPLATE_TABLE");
    }
}
