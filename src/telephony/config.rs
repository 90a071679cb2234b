//! The telephony hook's configuration: every setting `/okta/telephony` reads (Okta's
//! authentication of the hook, messaging, locale, preview, deadline, the guard's policy), parsed
//! and validated once into a typed [`Config`], with errors that name the bad setting. The
//! settings source and the shared validators live in [`crate::settings`].
//!
//! Deliberately absent: defaults hidden elsewhere. Each default lives here, next to its setting,
//! and the README's configuration table lists them.

use std::collections::BTreeMap;

use crate::settings::{
    aws_credentials, aws_endpoint, bad, comma_list, getter, header_name, number, region, url_setting,
};
use crate::settings::{ConfigError, Source};

/// How Okta authenticates to the telephony hook.
/// Every setting `/okta/telephony` reads (vars and secrets alike): the shell reads exactly these.
pub const SETTINGS: &[&str] = &[
    "OKTA_AUTH_MODE",
    "OKTA_ISSUER",
    "OKTA_JWKS_URL",
    "OKTA_AUDIENCE",
    "OKTA_ALLOWED_CLIENT_IDS",
    "OKTA_REQUIRED_SCOPE",
    "OKTA_CLOCK_SKEW_SECONDS",
    "OKTA_JWKS_REFETCH_COOLDOWN_SECONDS",
    "OKTA_JWKS_MAX_STALE_SECONDS",
    "OKTA_JWKS_ALLOW_OTHER_ORIGIN",
    "OKTA_ALLOW_INSECURE_ISSUER",
    "OKTA_AUTH_HEADER",
    "OKTA_HOOK_SECRET",
    "AWS_REGION",
    "AWS_SMS_VOICE_ENDPOINT",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "ORIGINATION_IDENTITIES",
    "SMS_CONFIGURATION_SET",
    "SMS_PROTECT_CONFIGURATION_ID",
    "SMS_MAX_PRICE",
    "VOICE_MAX_PRICE_PER_MINUTE",
    "DEFAULT_LOCALE",
    "PREVIEW_POLICY",
    "DEADLINE_MS",
    "TEMPLATE_CACHE_SECONDS",
    "OTP_GUARD_FAILURE",
    "OTP_GUARD_MODE",
    "OTP_ALLOWED_COUNTRIES",
    "OTP_VOICE_ALLOWED_COUNTRIES",
    "OTP_RATE_LIMITS",
    "ENVIRONMENT",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookAuth {
    /// `Authorization: Bearer <access token>` from a custom authorization server.
    OAuth(OAuthConfig),
    /// A static secret in a configured header.
    Header { header: String, secret: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthConfig {
    pub issuer: String,
    pub jwks_url: String,
    pub audience: String,
    pub allowed_client_ids: Vec<String>,
    pub required_scope: String,
    pub leeway_s: u64,
    pub refetch_cooldown_s: u64,
    /// How long keys past their Cache-Control lifetime stay usable while the JWKS cannot be
    /// refreshed (a key revoked during an outage is trusted at most this much longer).
    pub max_stale_s: u64,
}

/// What a request does when the per-number Durable Object (`OTP_LEDGER`) does not answer within
/// its slice of the deadline (`OTP_GUARD_FAILURE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Send anyway (without the duplicate claim), and alert: users keep getting codes.
    Open,
    /// Send nothing; answer Okta's `error` object (`LEDGER_UNAVAILABLE`).
    Closed,
}

/// What to do with an admin-console Preview request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreviewPolicy {
    /// Send the OTP like any other request (Okta's Preview exists to test real delivery).
    Send,
    /// Answer SUCCESSFUL without sending anything.
    Simulate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessagingConfig {
    pub region: String,
    pub endpoint: String,
    /// ISO country (upper case) → origination identity; `default` under the key "default".
    pub origination_identities: BTreeMap<String, String>,
    pub configuration_set: Option<String>,
    pub protect_configuration_id: Option<String>,
    pub max_price: Option<String>,
    pub voice_max_price_per_minute: Option<String>,
}

impl MessagingConfig {
    /// The origination identity for a destination country, falling back to `default`.
    pub fn origination_identity(&self, country: Option<&str>) -> Option<&str> {
        country
            .and_then(|c| self.origination_identities.get(c))
            .or_else(|| self.origination_identities.get("default"))
            .map(String::as_str)
    }
}

/// Everything the telephony hook needs, validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub auth: HookAuth,
    pub messaging: MessagingConfig,
    pub aws: crate::aws::Credentials,
    pub default_locale: String,
    pub preview: PreviewPolicy,
    pub deadline_ms: u64,
    pub template_cache_s: u64,
    pub guard_failure: FailurePolicy,
    pub guard: crate::guard::config::GuardConfig,
}

pub const MAX_LEEWAY_S: u64 = 120;

/// Whether `OKTA_AUTH_MODE` (raw, as set) is OAuth, the default: a 401 of `/okta/telephony` then
/// carries `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750), even when the rest of the
/// configuration is invalid.
pub fn is_oauth_mode(auth_mode: Option<&str>) -> bool {
    auth_mode != Some("header")
}

impl Config {
    pub fn from_source(src: &impl Source) -> Result<Config, ConfigError> {
        let get = getter(src);

        let auth = match get("OKTA_AUTH_MODE").as_deref().unwrap_or("oauth") {
            "oauth" => HookAuth::OAuth(oauth_config(&get)?),
            "header" => {
                let header = get("OKTA_AUTH_HEADER").unwrap_or_else(|| "Authorization".into());
                let header = header_name("OKTA_AUTH_HEADER", &header)?;
                let secret = get("OKTA_HOOK_SECRET")
                    .ok_or_else(|| bad("OKTA_HOOK_SECRET", "required when OKTA_AUTH_MODE=header"))?;
                if secret.len() < 16 {
                    return Err(bad("OKTA_HOOK_SECRET", "must be at least 16 characters"));
                }
                HookAuth::Header { header, secret }
            }
            other => return Err(bad("OKTA_AUTH_MODE", format!("`{other}` is neither `oauth` nor `header`"))),
        };

        let region = region("AWS_REGION", &get("AWS_REGION").unwrap_or_else(|| "us-east-1".into()))?;
        let endpoint = match get("AWS_SMS_VOICE_ENDPOINT") {
            Some(e) => aws_endpoint("AWS_SMS_VOICE_ENDPOINT", &e)?,
            None => format!("https://sms-voice.{region}.amazonaws.com"),
        };
        let origination_identities = match get("ORIGINATION_IDENTITIES") {
            None => BTreeMap::new(),
            Some(raw) => parse_identities(&raw)?,
        };
        let max_price = get("SMS_MAX_PRICE").map(|p| price("SMS_MAX_PRICE", p)).transpose()?;
        let voice_max_price_per_minute =
            get("VOICE_MAX_PRICE_PER_MINUTE").map(|p| price("VOICE_MAX_PRICE_PER_MINUTE", p)).transpose()?;
        let messaging = MessagingConfig {
            region,
            endpoint,
            origination_identities,
            configuration_set: get("SMS_CONFIGURATION_SET"),
            protect_configuration_id: get("SMS_PROTECT_CONFIGURATION_ID"),
            max_price,
            voice_max_price_per_minute,
        };

        let aws = aws_credentials(&get, "")?;

        let default_locale = match get("DEFAULT_LOCALE") {
            None => "en-US".to_string(),
            Some(l) => crate::locale::Locale::parse(&l)
                .map(|l| l.to_string())
                .ok_or_else(|| bad("DEFAULT_LOCALE", "not a locale like en-US"))?,
        };
        let preview = match get("PREVIEW_POLICY").as_deref().unwrap_or("send") {
            "send" => PreviewPolicy::Send,
            "simulate" => PreviewPolicy::Simulate,
            other => return Err(bad("PREVIEW_POLICY", format!("`{other}` is neither `send` nor `simulate`"))),
        };
        let deadline_ms = number(&get, "DEADLINE_MS", 2500, 200, 2900)?;
        let template_cache_s = number(&get, "TEMPLATE_CACHE_SECONDS", 60, 0, 3600)?;
        let guard_failure = match get("OTP_GUARD_FAILURE").as_deref().unwrap_or("open") {
            "open" => FailurePolicy::Open,
            "closed" => FailurePolicy::Closed,
            other => return Err(bad("OTP_GUARD_FAILURE", format!("`{other}` is neither `open` nor `closed`"))),
        };

        let guard = crate::guard::config::GuardConfig::from_getter(&get)?;

        Ok(Config {
            auth,
            messaging,
            aws,
            default_locale,
            preview,
            deadline_ms,
            template_cache_s,
            guard_failure,
            guard,
        })
    }
}

fn oauth_config(get: &impl Fn(&str) -> Option<String>) -> Result<OAuthConfig, ConfigError> {
    let insecure_ok = get("OKTA_ALLOW_INSECURE_ISSUER").as_deref() == Some("true");
    let issuer = get("OKTA_ISSUER").ok_or_else(|| bad("OKTA_ISSUER", "required in oauth mode"))?;
    let issuer = url_setting("OKTA_ISSUER", &issuer, insecure_ok)?;
    // The org authorization server (https://{org}) does not publish its access-token keys; its
    // tokens can only be introspected. Custom servers live under /oauth2/{authServerId}.
    let path = issuer.split_once("://").and_then(|(_, rest)| rest.split_once('/')).map(|(_, p)| p).unwrap_or("");
    let segments: Vec<&str> = path.split('/').collect();
    if segments.len() != 2 || segments[0] != "oauth2" || segments[1].is_empty() || segments[1] == "v1" {
        return Err(bad(
            "OKTA_ISSUER",
            "must be a custom authorization server issuer like https://{org}/oauth2/{authServerId} \
             (the org authorization server does not publish its access-token signing keys)",
        ));
    }
    let jwks_url = match get("OKTA_JWKS_URL") {
        Some(u) => url_setting("OKTA_JWKS_URL", &u, insecure_ok)?,
        None => format!("{issuer}/v1/keys"),
    };
    // Keys only from the issuer's own origin: a changed URL must not silently trust another
    // host's keys. An operator who fronts the keys elsewhere says so explicitly.
    if origin(&jwks_url) != origin(&issuer) && get("OKTA_JWKS_ALLOW_OTHER_ORIGIN").as_deref() != Some("true") {
        return Err(bad(
            "OKTA_JWKS_URL",
            "must be on the issuer's origin (set OKTA_JWKS_ALLOW_OTHER_ORIGIN=true to fetch keys elsewhere)",
        ));
    }
    let audience = get("OKTA_AUDIENCE").ok_or_else(|| bad("OKTA_AUDIENCE", "required in oauth mode"))?;
    let allowed_client_ids = comma_list(
        &get("OKTA_ALLOWED_CLIENT_IDS")
            .ok_or_else(|| bad("OKTA_ALLOWED_CLIENT_IDS", "required in oauth mode (comma-separated client IDs)"))?,
    );
    if allowed_client_ids.is_empty() {
        return Err(bad("OKTA_ALLOWED_CLIENT_IDS", "lists no client ID"));
    }
    let required_scope =
        get("OKTA_REQUIRED_SCOPE").ok_or_else(|| bad("OKTA_REQUIRED_SCOPE", "required in oauth mode"))?;
    if required_scope.contains(char::is_whitespace) {
        return Err(bad("OKTA_REQUIRED_SCOPE", "must be a single scope"));
    }
    let leeway_s = number(get, "OKTA_CLOCK_SKEW_SECONDS", 60, 0, MAX_LEEWAY_S)?;
    let refetch_cooldown_s = number(get, "OKTA_JWKS_REFETCH_COOLDOWN_SECONDS", 60, 1, 3600)?;
    let max_stale_s = number(get, "OKTA_JWKS_MAX_STALE_SECONDS", 1800, 0, 86_400)?;
    Ok(OAuthConfig {
        issuer,
        jwks_url,
        audience,
        allowed_client_ids,
        required_scope,
        leeway_s,
        refetch_cooldown_s,
        max_stale_s,
    })
}

/// The origin (`scheme://host[:port]`) of a URL already checked by [`url_setting`](crate::settings::url_setting).
pub(crate) fn origin(url: &str) -> &str {
    match url.split_once("://") {
        Some((scheme, rest)) => &url[..scheme.len() + 3 + rest.find('/').unwrap_or(rest.len())],
        None => url,
    }
}

fn price(setting: &'static str, raw: String) -> Result<String, ConfigError> {
    // The API's pattern: [0-9]{0,2}\.[0-9]{1,5} (US dollars).
    let ok = raw.split_once('.').is_some_and(|(int, frac)| {
        int.len() <= 2
            && (1..=5).contains(&frac.len())
            && int.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit())
    });
    if ok {
        Ok(raw)
    } else {
        Err(bad(setting, "must be a price in US dollars like 0.05000 (at most 2 digits before and 5 after the point)"))
    }
}

fn parse_identities(raw: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    const S: &str = "ORIGINATION_IDENTITIES";
    let map: BTreeMap<String, String> = serde_json::from_str(raw)
        .map_err(|_| bad(S, r#"must be a JSON object like {"US": "arn:aws:sms-voice:…:pool/…", "default": "…"}"#))?;
    let mut out = BTreeMap::new();
    for (country, identity) in map {
        let key = if country.eq_ignore_ascii_case("default") {
            "default".to_string()
        } else if country.len() == 2 && country.bytes().all(|b| b.is_ascii_alphabetic()) {
            country.to_ascii_uppercase()
        } else {
            return Err(bad(S, format!("`{country}` is not an ISO 3166 alpha-2 country code or `default`")));
        };
        if identity.is_empty() || identity.len() > 256 {
            return Err(bad(S, format!("the identity for `{key}` must be 1 to 256 characters")));
        }
        out.insert(key, identity);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> BTreeMap<String, String> {
        [
            ("OKTA_ISSUER", "https://example.okta.com/oauth2/default"),
            ("OKTA_AUDIENCE", "api://default"),
            ("OKTA_ALLOWED_CLIENT_IDS", "0oa1, 0oa2"),
            ("OKTA_REQUIRED_SCOPE", "okta.telephony.send"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn with(k: &str, v: &str) -> BTreeMap<String, String> {
        let mut m = base();
        m.insert(k.into(), v.into());
        m
    }

    #[test]
    fn defaults_are_applied() {
        let c = Config::from_source(&base()).unwrap();
        let HookAuth::OAuth(o) = &c.auth else { panic!("oauth is the default mode") };
        assert_eq!(o.jwks_url, "https://example.okta.com/oauth2/default/v1/keys");
        assert_eq!(o.allowed_client_ids, vec!["0oa1", "0oa2"]);
        assert_eq!(o.leeway_s, 60);
        assert_eq!(c.messaging.endpoint, "https://sms-voice.us-east-1.amazonaws.com");
        assert_eq!(c.deadline_ms, 2500);
        assert_eq!(c.default_locale, "en-US");
        assert_eq!(c.preview, PreviewPolicy::Send);
    }

    #[test]
    fn aws_endpoints_are_https_except_on_loopback() {
        for ok in [
            "https://sms-voice.eu-west-1.amazonaws.com",
            "http://127.0.0.1:8911",
            "http://localhost:1/",
            "http://[::1]:9",
        ] {
            assert!(aws_endpoint("E", ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://sms-voice.eu-west-1.amazonaws.com",
            "http://127.0.0.1.example.com",
            "http://10.0.0.1:80",
            "http://[::2]:1",
            "ftp://127.0.0.1",
            "https://host/path",
            "https://user@host",
            "sms-voice.us-east-1.amazonaws.com",
        ] {
            assert!(aws_endpoint("E", refused).is_err(), "{refused}");
        }
        let e = Config::from_source(&with("AWS_SMS_VOICE_ENDPOINT", "http://example.invalid:1")).unwrap_err();
        assert_eq!(e.setting, "AWS_SMS_VOICE_ENDPOINT");
    }

    #[test]
    fn jwks_url_stays_on_the_issuers_origin_unless_allowed() {
        let ok = with("OKTA_JWKS_URL", "https://example.okta.com/oauth2/default/v1/keys?x");
        assert_eq!(Config::from_source(&ok).unwrap_err().setting, "OKTA_JWKS_URL"); // a query
        let m = with("OKTA_JWKS_URL", "https://example.okta.com/other/keys");
        assert!(Config::from_source(&m).is_ok());
        let mut m = with("OKTA_JWKS_URL", "https://keys.example.net/keys");
        assert_eq!(Config::from_source(&m).unwrap_err().setting, "OKTA_JWKS_URL");
        m.insert("OKTA_JWKS_ALLOW_OTHER_ORIGIN".into(), "true".into());
        assert!(Config::from_source(&m).is_ok());
        // A look-alike host is another origin.
        let m = with("OKTA_JWKS_URL", "https://example.okta.com.evil.test/oauth2/default/v1/keys");
        assert_eq!(Config::from_source(&m).unwrap_err().setting, "OKTA_JWKS_URL");
    }

    #[test]
    fn guard_failure_policy_and_stale_cap() {
        let c = Config::from_source(&base()).unwrap();
        assert_eq!(c.guard_failure, FailurePolicy::Open);
        let HookAuth::OAuth(o) = &c.auth else { panic!() };
        assert_eq!(o.max_stale_s, 1800);
        assert_eq!(
            Config::from_source(&with("OTP_GUARD_FAILURE", "closed")).unwrap().guard_failure,
            FailurePolicy::Closed
        );
        assert_eq!(Config::from_source(&with("OTP_GUARD_FAILURE", "maybe")).unwrap_err().setting, "OTP_GUARD_FAILURE");
        assert_eq!(
            Config::from_source(&with("OKTA_JWKS_MAX_STALE_SECONDS", "90000")).unwrap_err().setting,
            "OKTA_JWKS_MAX_STALE_SECONDS"
        );
    }

    #[test]
    fn refuses_org_authorization_server() {
        for issuer in
            ["https://example.okta.com", "https://example.okta.com/oauth2/v1", "https://example.okta.com/oauth2"]
        {
            let e = Config::from_source(&with("OKTA_ISSUER", issuer)).unwrap_err();
            assert_eq!(e.setting, "OKTA_ISSUER", "{issuer}");
        }
    }

    #[test]
    fn refuses_plain_http_issuer_unless_allowed() {
        let m = with("OKTA_ISSUER", "http://127.0.0.1:9/oauth2/aus1");
        assert_eq!(Config::from_source(&m).unwrap_err().setting, "OKTA_ISSUER");
        let mut m = m;
        m.insert("OKTA_ALLOW_INSECURE_ISSUER".into(), "true".into());
        assert!(Config::from_source(&m).is_ok());
    }

    #[test]
    fn names_the_missing_secret() {
        let mut m = base();
        m.remove("AWS_SECRET_ACCESS_KEY");
        assert_eq!(Config::from_source(&m).unwrap_err().setting, "AWS_SECRET_ACCESS_KEY");
    }

    #[test]
    fn leeway_is_capped_at_120_seconds() {
        assert_eq!(
            Config::from_source(&with("OKTA_CLOCK_SKEW_SECONDS", "121")).unwrap_err().setting,
            "OKTA_CLOCK_SKEW_SECONDS"
        );
        assert!(Config::from_source(&with("OKTA_CLOCK_SKEW_SECONDS", "120")).is_ok());
    }

    #[test]
    fn header_mode_needs_a_strong_secret() {
        let mut m = with("OKTA_AUTH_MODE", "header");
        assert_eq!(Config::from_source(&m).unwrap_err().setting, "OKTA_HOOK_SECRET");
        m.insert("OKTA_HOOK_SECRET".into(), "short".into());
        assert_eq!(Config::from_source(&m).unwrap_err().setting, "OKTA_HOOK_SECRET");
        m.insert("OKTA_HOOK_SECRET".into(), "a-long-enough-secret".into());
        m.insert("OKTA_AUTH_HEADER".into(), "X-Okta-Secret".into());
        let c = Config::from_source(&m).unwrap();
        assert_eq!(c.auth, HookAuth::Header { header: "X-Okta-Secret".into(), secret: "a-long-enough-secret".into() });
    }

    #[test]
    fn origination_identities_are_normalised_and_fall_back_to_default() {
        let c =
            Config::from_source(&with("ORIGINATION_IDENTITIES", r#"{"us":"pool-us","Default":"pool-any"}"#)).unwrap();
        assert_eq!(c.messaging.origination_identity(Some("US")), Some("pool-us"));
        assert_eq!(c.messaging.origination_identity(Some("FR")), Some("pool-any"));
        assert_eq!(c.messaging.origination_identity(None), Some("pool-any"));
        let e = Config::from_source(&with("ORIGINATION_IDENTITIES", r#"{"USA":"x"}"#)).unwrap_err();
        assert_eq!(e.setting, "ORIGINATION_IDENTITIES");
    }

    #[test]
    fn prices_follow_the_api_pattern() {
        assert!(Config::from_source(&with("SMS_MAX_PRICE", "0.05000")).is_ok());
        for p in ["1", "100.1", "0.123456", "a.b"] {
            assert_eq!(Config::from_source(&with("SMS_MAX_PRICE", p)).unwrap_err().setting, "SMS_MAX_PRICE");
        }
    }
}
