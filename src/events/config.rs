//! The event hook's settings, read apart from the telephony `Config` so that either endpoint keeps
//! working when the other is not configured.

use crate::settings::{bad, comma_list, getter, header_name, ConfigError, Source};

/// Every setting the event hook reads.
pub const SETTINGS: &[&str] =
    &["OKTA_EVENT_HOOK_SECRET", "OKTA_EVENT_HOOK_AUTH_HEADER", "OKTA_CONNECT_APP_IDS", "OKTA_CONNECT_GROUP_IDS"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventsConfig {
    /// The header Okta sends the secret in (`OKTA_EVENT_HOOK_AUTH_HEADER`, default `Authorization`).
    pub auth_header: String,
    /// `OKTA_EVENT_HOOK_SECRET`, at least 16 characters.
    pub secret: String,
    /// `OKTA_CONNECT_APP_IDS`: Okta app instance ids (`0oa…`) whose memberships count.
    pub app_ids: Vec<String>,
    /// `OKTA_CONNECT_GROUP_IDS`: Okta group ids (`00g…`) whose memberships count.
    pub group_ids: Vec<String>,
}

impl EventsConfig {
    pub fn from_source(src: &impl Source) -> Result<EventsConfig, ConfigError> {
        let get = getter(src);
        let secret =
            get("OKTA_EVENT_HOOK_SECRET").ok_or_else(|| bad("OKTA_EVENT_HOOK_SECRET", "required for /okta/events"))?;
        if secret.len() < 16 {
            return Err(bad("OKTA_EVENT_HOOK_SECRET", "must be at least 16 characters"));
        }
        let auth_header = get("OKTA_EVENT_HOOK_AUTH_HEADER").unwrap_or_else(|| "Authorization".into());
        let auth_header = header_name("OKTA_EVENT_HOOK_AUTH_HEADER", &auth_header)?;
        Ok(EventsConfig {
            auth_header,
            secret,
            app_ids: comma_list(&get("OKTA_CONNECT_APP_IDS").unwrap_or_default()),
            group_ids: comma_list(&get("OKTA_CONNECT_GROUP_IDS").unwrap_or_default()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn src(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_and_lists() {
        let c = EventsConfig::from_source(&src(&[
            ("OKTA_EVENT_HOOK_SECRET", "0123456789abcdef"),
            ("OKTA_CONNECT_APP_IDS", " 0oa1, ,0oa2 "),
        ]))
        .unwrap();
        assert_eq!(c.auth_header, "Authorization");
        assert_eq!(c.app_ids, vec!["0oa1", "0oa2"]);
        assert!(c.group_ids.is_empty());
    }

    #[test]
    fn errors_name_the_setting() {
        assert_eq!(EventsConfig::from_source(&src(&[])).unwrap_err().setting, "OKTA_EVENT_HOOK_SECRET");
        assert_eq!(
            EventsConfig::from_source(&src(&[("OKTA_EVENT_HOOK_SECRET", "short")])).unwrap_err().setting,
            "OKTA_EVENT_HOOK_SECRET"
        );
        let e = EventsConfig::from_source(&src(&[
            ("OKTA_EVENT_HOOK_SECRET", "0123456789abcdef"),
            ("OKTA_EVENT_HOOK_AUTH_HEADER", "X Bad"),
        ]))
        .unwrap_err();
        assert_eq!(e.setting, "OKTA_EVENT_HOOK_AUTH_HEADER");
    }
}
