//! The provisioning's settings (queue consumer and reconciliation), parsed apart from the
//! telephony hook's and the event hook's: each keeps working when another is not configured.
//! `CONNECT_INSTANCE_ID` switches provisioning on; every other setting has a default or is
//! required only then.

use crate::aws::connect::{self, is_resource_id};
use crate::aws::Credentials;
use crate::okta::assertion::ClientKey;
use crate::okta::{is_okta_id, OktaApiConfig, DEFAULT_SCOPES};
use crate::settings::{
    aws_credentials, aws_endpoint, bad, comma_list, getter, number, region, url_setting, ConfigError, Source,
};

use super::mapping::{Mapping, UsernameAttribute};

/// Every setting this module reads.
pub const SETTINGS: &[&str] = &[
    "CONNECT_INSTANCE_ID",
    "CONNECT_REGION",
    "AWS_CONNECT_ENDPOINT",
    "CONNECT_USERNAME_ATTRIBUTE",
    "CONNECT_PROFILE_MAPPING",
    "OKTA_ORG_URL",
    "OKTA_API_CLIENT_ID",
    "OKTA_API_PRIVATE_KEY",
    "OKTA_API_KEY_ID",
    "OKTA_API_SCOPES",
    "OKTA_ALLOW_INSECURE_ISSUER",
    "OKTA_CONNECT_APP_IDS",
    "OKTA_CONNECT_GROUP_IDS",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "PROVISIONING_MAX_ATTEMPTS",
    "PROVISIONING_RETRY_SECONDS",
    "RECONCILE_CRON",
    "RECONCILE_CONNECT_RPS",
    "RECONCILE_MAX_DELETES",
    "PROVISIONING_MAX_DELETES_PER_HOUR",
    "WORKER_SUBREQUEST_BUDGET",
    "CONNECT_ADOPT_EXISTING",
];

pub const DEFAULT_RECONCILE_CRON: &str = "17 3 * * *";

/// Where and how Connect is called.
#[derive(Clone, Debug)]
pub struct ConnectConfig {
    pub instance_id: String,
    pub region: String,
    pub endpoint: String,
    pub aws: Credentials,
}

/// Default of `PROVISIONING_MAX_DELETES_PER_HOUR`: well above a normal hour's offboarding, far
/// below what one misconfiguration (a deleted app or group) would delete.
pub const DEFAULT_MAX_DELETES_PER_HOUR: u64 = 100;

#[derive(Clone, Debug)]
pub struct ProvisioningConfig {
    pub okta: OktaApiConfig,
    pub connect: ConnectConfig,
    pub username: UsernameAttribute,
    pub mapping: Mapping,
    /// `OKTA_CONNECT_APP_IDS`: assignment to any of these apps grants access.
    pub app_ids: Vec<String>,
    /// `OKTA_CONNECT_GROUP_IDS`: membership of any of these groups grants access.
    pub group_ids: Vec<String>,
    /// Deliveries of one queue message before it is dead-lettered.
    pub max_attempts: u32,
    /// The first retry's delay; doubled per attempt, at most an hour.
    pub retry_base_s: u32,
    /// Connect calls per second during a reconciliation.
    pub reconcile_rps: u32,
    /// A reconciliation planning more deletions than this holds them all back (and alerts).
    pub reconcile_max_deletes: u32,
    /// `PROVISIONING_MAX_DELETES_PER_HOUR`: Connect users deleted in any rolling hour, by the
    /// consumer and the reconciliation together (counted in one Durable Object); more are held.
    pub max_deletes_per_hour: u64,
    /// `WORKER_SUBREQUEST_BUDGET` (see [`crate::budget`]).
    pub subrequest_budget: u32,
    /// `CONNECT_ADOPT_EXISTING=true`: the reconciliation tags an untagged Connect user whose
    /// username is a member's as that member's, and manages it from then on. Off by default.
    pub adopt_existing: bool,
}

fn id_list(get: &impl Fn(&str) -> Option<String>, setting: &'static str) -> Result<Vec<String>, ConfigError> {
    let ids = comma_list(&get(setting).unwrap_or_default());
    if let Some(bad_id) = ids.iter().find(|id| !is_okta_id(id)) {
        return Err(bad(setting, format!("`{bad_id}` is not an Okta id")));
    }
    Ok(ids)
}

/// Whether provisioning is switched on (`CONNECT_INSTANCE_ID` is set).
pub fn enabled(src: &impl Source) -> bool {
    getter(src)("CONNECT_INSTANCE_ID").is_some()
}

/// The cron expression that runs the reconciliation (any other cron runs the template sync).
pub fn reconcile_cron(src: &impl Source) -> String {
    getter(src)("RECONCILE_CRON").unwrap_or_else(|| DEFAULT_RECONCILE_CRON.into())
}

impl ProvisioningConfig {
    pub fn from_source(src: &impl Source) -> Result<ProvisioningConfig, ConfigError> {
        let get = getter(src);
        let instance_id = get("CONNECT_INSTANCE_ID")
            .ok_or_else(|| bad("CONNECT_INSTANCE_ID", "required for provisioning (the instance id, a UUID)"))?;
        if !is_resource_id(&instance_id) {
            return Err(bad("CONNECT_INSTANCE_ID", "must be the instance id (a UUID), not an ARN or alias"));
        }
        let region = region(
            "CONNECT_REGION",
            &get("CONNECT_REGION").or_else(|| get("AWS_REGION")).unwrap_or_else(|| "us-east-1".into()),
        )?;
        let endpoint = match get("AWS_CONNECT_ENDPOINT") {
            Some(e) => aws_endpoint("AWS_CONNECT_ENDPOINT", &e)?,
            None => connect::default_endpoint(&region),
        };
        let aws = aws_credentials(&get, " for provisioning")?;
        let username = match get("CONNECT_USERNAME_ATTRIBUTE").as_deref().unwrap_or("login") {
            "login" => UsernameAttribute::Login,
            "email" => UsernameAttribute::Email,
            other => {
                return Err(bad("CONNECT_USERNAME_ATTRIBUTE", format!("`{other}` is neither `login` nor `email`")))
            }
        };
        let mapping = get("CONNECT_PROFILE_MAPPING")
            .ok_or_else(|| bad("CONNECT_PROFILE_MAPPING", "required for provisioning (see docs/aws-setup.md)"))
            .and_then(|raw| Mapping::parse(&raw).map_err(|e| bad("CONNECT_PROFILE_MAPPING", e)))?;
        let app_ids = id_list(&get, "OKTA_CONNECT_APP_IDS")?;
        let group_ids = id_list(&get, "OKTA_CONNECT_GROUP_IDS")?;
        if app_ids.is_empty() && group_ids.is_empty() {
            return Err(bad(
                "OKTA_CONNECT_GROUP_IDS",
                "provisioning needs at least one group (or app in OKTA_CONNECT_APP_IDS)",
            ));
        }
        if let Some(g) = mapping.groups.iter().find(|g| !group_ids.contains(&g.group_id)) {
            return Err(bad(
                "CONNECT_PROFILE_MAPPING",
                format!("group {} is mapped but not listed in OKTA_CONNECT_GROUP_IDS", g.group_id),
            ));
        }

        let insecure_ok = get("OKTA_ALLOW_INSECURE_ISSUER").as_deref() == Some("true");
        let org_url = get("OKTA_ORG_URL")
            .ok_or_else(|| bad("OKTA_ORG_URL", "required for provisioning (https://{org}.okta.com)"))?;
        let org_url = url_setting("OKTA_ORG_URL", &org_url, insecure_ok)?;
        if org_url.split_once("://").is_some_and(|(_, rest)| rest.contains('/')) {
            return Err(bad("OKTA_ORG_URL", "must be the org's origin, without a path (https://{org}.okta.com)"));
        }
        let client_id =
            get("OKTA_API_CLIENT_ID").ok_or_else(|| bad("OKTA_API_CLIENT_ID", "required for provisioning"))?;
        if !is_okta_id(&client_id) {
            return Err(bad("OKTA_API_CLIENT_ID", "not an Okta client id"));
        }
        let key = get("OKTA_API_PRIVATE_KEY")
            .ok_or_else(|| {
                bad("OKTA_API_PRIVATE_KEY", "required for provisioning (a Worker secret: JWK or PKCS#8 PEM)")
            })
            .and_then(|raw| {
                ClientKey::parse(&raw, get("OKTA_API_KEY_ID")).map_err(|e| bad("OKTA_API_PRIVATE_KEY", e))
            })?;
        let scopes = get("OKTA_API_SCOPES").unwrap_or_else(|| DEFAULT_SCOPES.into());
        if !scopes
            .split(' ')
            .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:".contains(&b)))
        {
            return Err(bad("OKTA_API_SCOPES", "space-separated scope names like okta.users.read"));
        }

        Ok(ProvisioningConfig {
            okta: OktaApiConfig { org_url, client_id, key, scopes },
            connect: ConnectConfig { instance_id, region, endpoint, aws },
            username,
            mapping,
            app_ids,
            group_ids,
            max_attempts: number(&get, "PROVISIONING_MAX_ATTEMPTS", 5, 1, 100)? as u32,
            retry_base_s: number(&get, "PROVISIONING_RETRY_SECONDS", 30, 0, 3600)? as u32,
            reconcile_rps: number(&get, "RECONCILE_CONNECT_RPS", 5, 1, 100)? as u32,
            reconcile_max_deletes: number(&get, "RECONCILE_MAX_DELETES", 50, 0, 100_000)? as u32,
            max_deletes_per_hour: number(
                &get,
                "PROVISIONING_MAX_DELETES_PER_HOUR",
                DEFAULT_MAX_DELETES_PER_HOUR,
                0,
                100_000,
            )?,
            subrequest_budget: crate::budget::setting(&get)?,
            adopt_existing: match get("CONNECT_ADOPT_EXISTING").as_deref() {
                None | Some("false") => false,
                Some("true") => true,
                Some(_) => return Err(bad("CONNECT_ADOPT_EXISTING", "true or false")),
            },
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::testing::issuer;

    pub(crate) fn settings() -> BTreeMap<String, String> {
        [
            ("CONNECT_INSTANCE_ID", "11111111-2222-3333-4444-555555555555"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDTEST"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("OKTA_ORG_URL", "https://example.okta.com"),
            ("OKTA_API_CLIENT_ID", "0oaSERVICE"),
            ("OKTA_CONNECT_GROUP_IDS", "00gAGENTS,00gSUPERVISORS,00gQUALITY"),
            ("OKTA_CONNECT_APP_IDS", "0oaCONNECT"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([
            ("OKTA_API_PRIVATE_KEY".to_string(), issuer::key_json("a").to_string()),
            ("CONNECT_PROFILE_MAPPING".to_string(), crate::provisioning::mapping::tests_mapping().to_string()),
        ])
        .collect()
    }

    #[test]
    fn defaults() {
        let c = ProvisioningConfig::from_source(&settings()).unwrap();
        assert_eq!(c.connect.endpoint, "https://connect.us-east-1.amazonaws.com");
        assert_eq!(c.okta.token_url(), "https://example.okta.com/oauth2/v1/token");
        assert_eq!(c.okta.scopes, DEFAULT_SCOPES);
        assert_eq!(c.username, UsernameAttribute::Login);
        assert_eq!((c.max_attempts, c.retry_base_s, c.reconcile_rps, c.reconcile_max_deletes), (5, 30, 5, 50));
        assert!(enabled(&settings()));
        assert!(!enabled(&BTreeMap::new()));
        assert_eq!(reconcile_cron(&settings()), DEFAULT_RECONCILE_CRON);
    }

    #[test]
    fn errors_name_the_setting() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("CONNECT_INSTANCE_ID", None, "CONNECT_INSTANCE_ID"),
            ("CONNECT_INSTANCE_ID", Some("arn:aws:connect:us-east-1:1:instance/x"), "CONNECT_INSTANCE_ID"),
            ("OKTA_ORG_URL", Some("http://example.okta.com"), "OKTA_ORG_URL"),
            ("OKTA_ORG_URL", Some("https://example.okta.com/oauth2/default"), "OKTA_ORG_URL"),
            ("OKTA_API_PRIVATE_KEY", Some("nope"), "OKTA_API_PRIVATE_KEY"),
            ("OKTA_API_PRIVATE_KEY", None, "OKTA_API_PRIVATE_KEY"),
            ("CONNECT_PROFILE_MAPPING", Some("{}"), "CONNECT_PROFILE_MAPPING"),
            ("OKTA_CONNECT_GROUP_IDS", Some("00gAGENTS"), "CONNECT_PROFILE_MAPPING"),
            ("OKTA_CONNECT_GROUP_IDS", Some("00g bad"), "OKTA_CONNECT_GROUP_IDS"),
            ("CONNECT_USERNAME_ATTRIBUTE", Some("upn"), "CONNECT_USERNAME_ATTRIBUTE"),
            ("PROVISIONING_MAX_ATTEMPTS", Some("0"), "PROVISIONING_MAX_ATTEMPTS"),
            ("OKTA_API_SCOPES", Some("okta.users.read  x"), "OKTA_API_SCOPES"),
        ];
        for (name, value, setting) in cases {
            let mut s = settings();
            match value {
                Some(v) => s.insert(name.to_string(), v.to_string()),
                None => s.remove(*name),
            };
            let e = ProvisioningConfig::from_source(&s).unwrap_err();
            assert_eq!(e.setting, *setting, "{name}={value:?}: {e}");
        }
        let mut s = settings();
        s.remove("OKTA_CONNECT_APP_IDS");
        s.insert("OKTA_CONNECT_GROUP_IDS".into(), String::new());
        s.insert(
            "CONNECT_PROFILE_MAPPING".into(),
            r#"{"default":{"securityProfileIds":["sp"],"routingProfileId":"rp"}}"#.into(),
        );
        assert_eq!(ProvisioningConfig::from_source(&s).unwrap_err().setting, "OKTA_CONNECT_GROUP_IDS");
    }

    #[test]
    fn overrides() {
        let mut s = settings();
        s.insert("CONNECT_REGION".into(), "eu-west-2".into());
        s.insert("CONNECT_USERNAME_ATTRIBUTE".into(), "email".into());
        s.insert("OKTA_ALLOW_INSECURE_ISSUER".into(), "true".into());
        s.insert("OKTA_ORG_URL".into(), "http://127.0.0.1:9000/".into());
        let c = ProvisioningConfig::from_source(&s).unwrap();
        assert_eq!(c.connect.endpoint, "https://connect.eu-west-2.amazonaws.com");
        assert_eq!(c.okta.org_url, "http://127.0.0.1:9000");
        assert_eq!(c.username, UsernameAttribute::Email);
    }
}
