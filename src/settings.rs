//! The settings source and the validators every feature's settings share. This module owns
//! [`Source`] (where vars and secrets come from, so the core never sees the Worker's `Env`),
//! [`getter`] (trimmed, empty = unset), [`ConfigError`] and [`bad`] (errors that name the
//! setting), and one check per shared kind of value: whole numbers, comma lists, URLs, AWS
//! endpoints, AWS regions, HTTP header names and the Worker's AWS keys.
//!
//! Each feature parses its own settings with these (`crate::telephony::config` the telephony hook's,
//! `crate::sync::config`, `crate::events::config`, `crate::provisioning::config`,
//! `crate::guard::config`, `crate::admin`); none of them re-implements a check found here, so
//! a value is accepted, and refused with the same words, wherever it is read.

use std::collections::BTreeMap;
use std::fmt;

/// Where settings come from: Worker vars and secrets in production, a map in tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

impl Source for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).cloned()
    }
}

/// A setting that is missing or malformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub setting: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "setting {}: {}", self.setting, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// A setting's value, trimmed; unset and empty are the same (an empty `--var` shadows a default).
pub(crate) fn getter(src: &impl Source) -> impl Fn(&str) -> Option<String> + '_ {
    |name| src.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// The Worker's AWS keys (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`);
/// `purpose` completes the error, e.g. `" for the template sync"`.
pub(crate) fn aws_credentials(
    get: &impl Fn(&str) -> Option<String>,
    purpose: &str,
) -> Result<crate::aws::Credentials, ConfigError> {
    let required =
        |name: &'static str| get(name).ok_or_else(|| bad(name, format!("required{purpose} (a Worker secret)")));
    Ok(crate::aws::Credentials {
        access_key_id: required("AWS_ACCESS_KEY_ID")?,
        secret_access_key: required("AWS_SECRET_ACCESS_KEY")?,
        session_token: get("AWS_SESSION_TOKEN"),
    })
}

/// The entries of a comma-separated setting, trimmed, empty ones dropped.
pub(crate) fn comma_list(raw: &str) -> Vec<String> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

pub(crate) fn bad(setting: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { setting, problem: problem.into() }
}

/// A whole-number setting within `min..=max`, or `default` when unset.
pub(crate) fn number(
    get: &impl Fn(&str) -> Option<String>,
    setting: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    match get(setting) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(bad(setting, format!("must be a whole number from {min} to {max}"))),
        },
    }
}

/// A URL setting: `https://` (or `http://` when `allow_http`), no trailing `/`, no spaces, query
/// or fragment.
pub(crate) fn url_setting(setting: &'static str, raw: &str, allow_http: bool) -> Result<String, ConfigError> {
    let url = raw.trim_end_matches('/');
    let ok_scheme = url.starts_with("https://") || (allow_http && url.starts_with("http://"));
    if !ok_scheme {
        return Err(bad(setting, if allow_http { "must be an http(s) URL" } else { "must be an https:// URL" }));
    }
    if url.contains(char::is_whitespace) || url.contains(['?', '#']) || url.len() > 1024 {
        return Err(bad(setting, "must be a plain URL without spaces, query or fragment"));
    }
    Ok(url.to_string())
}

/// An AWS endpoint override: scheme and host (and port) only. `https://` is required, except for
/// a loopback host (`127.0.0.0/8`, `localhost`, `[::1]`): local stand-ins and emulators, which no
/// deployed Worker can reach anyway. So a typo can never send signed requests, or credentials'
/// signatures, in clear text across a network.
pub(crate) fn aws_endpoint(setting: &'static str, raw: &str) -> Result<String, ConfigError> {
    let url = raw.trim_end_matches('/');
    let Some((scheme, authority)) = url.split_once("://") else {
        return Err(bad(setting, "must be an https:// URL"));
    };
    if authority.is_empty()
        || authority.contains(['/', '?', '#', '@'])
        || url.contains(char::is_whitespace)
        || url.len() > 1024
    {
        return Err(bad(setting, "must be scheme and host only, like https://sms-voice.eu-west-1.amazonaws.com"));
    }
    match scheme {
        "https" => Ok(url.to_string()),
        "http" if is_loopback_authority(authority) => Ok(url.to_string()),
        "http" => Err(bad(setting, "must be https:// (http only for a loopback host such as 127.0.0.1)")),
        _ => Err(bad(setting, "must be an https:// URL")),
    }
}

/// `host[:port]` names this machine: `localhost`, `127.x.y.z` or `[::1]`.
fn is_loopback_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, _)) => return h == "::1",
            None => return false,
        }
    } else {
        authority.split_once(':').map_or(authority, |(h, _)| h)
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let octets: Vec<&str> = host.split('.').collect();
    octets.len() == 4
        && octets[0] == "127"
        && octets.iter().all(|o| !o.is_empty() && o.len() <= 3 && o.parse::<u8>().is_ok())
}

/// Whether `name` looks like an AWS region (`us-east-1`): lower-case ASCII letters, digits and
/// `-`, not empty. It goes into hostnames and SigV4 scopes as it is.
pub(crate) fn is_region_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// An AWS region setting (`AWS_REGION`, `CONNECT_REGION`), checked with [`is_region_name`].
pub(crate) fn region(setting: &'static str, raw: &str) -> Result<String, ConfigError> {
    if is_region_name(raw) {
        Ok(raw.to_string())
    } else {
        Err(bad(setting, "not a region name like us-east-1"))
    }
}

/// Whether `name` is an HTTP header name (an RFC 9110 token).
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A setting naming an HTTP header (`OKTA_AUTH_HEADER`, `OKTA_EVENT_HOOK_AUTH_HEADER`).
pub(crate) fn header_name(setting: &'static str, raw: &str) -> Result<String, ConfigError> {
    if is_header_name(raw) {
        Ok(raw.to_string())
    } else {
        Err(bad(setting, "not a valid HTTP header name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_lower_case_letters_digits_and_dashes() {
        for ok in ["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1"] {
            assert_eq!(region("AWS_REGION", ok), Ok(ok.to_string()));
        }
        for refused in ["", "US-EAST-1", "us east 1", "us-east-1.", "us_east_1", "eu-west-1/", "é"] {
            let e = region("CONNECT_REGION", refused).unwrap_err();
            assert_eq!(e.setting, "CONNECT_REGION", "{refused}");
            assert_eq!(e.problem, "not a region name like us-east-1");
        }
    }

    #[test]
    fn header_names_are_tokens() {
        for ok in ["Authorization", "X-Okta-Secret", "x_api.key", "!#$%&'*+-.^_`|~"] {
            assert_eq!(header_name("OKTA_AUTH_HEADER", ok), Ok(ok.to_string()));
        }
        for refused in ["", "X Bad", "X:Y", "X-Ünïcode", "a\tb", "(x)", "x\n"] {
            let e = header_name("OKTA_EVENT_HOOK_AUTH_HEADER", refused).unwrap_err();
            assert_eq!(e.setting, "OKTA_EVENT_HOOK_AUTH_HEADER", "{refused:?}");
            assert_eq!(e.problem, "not a valid HTTP header name");
        }
    }

    #[test]
    fn numbers_default_and_stay_in_range() {
        let m: BTreeMap<String, String> = [("N", "7"), ("BIG", "11"), ("NEG", "-1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = getter(&m);
        assert_eq!(number(&get, "UNSET", 3, 1, 10), Ok(3));
        assert_eq!(number(&get, "N", 3, 1, 10), Ok(7));
        assert_eq!(number(&get, "BIG", 3, 1, 10).unwrap_err().problem, "must be a whole number from 1 to 10");
        assert_eq!(number(&get, "NEG", 3, 0, 10).unwrap_err().setting, "NEG");
    }

    #[test]
    fn getter_trims_and_treats_empty_as_unset() {
        let m: BTreeMap<String, String> =
            [("A", "  x "), ("B", "   ")].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let get = getter(&m);
        assert_eq!(get("A").as_deref(), Some("x"));
        assert_eq!(get("B"), None);
        assert_eq!(comma_list(" a, ,b ,"), vec!["a", "b"]);
    }
}
