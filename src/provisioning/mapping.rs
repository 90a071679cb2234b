//! Who gets a Connect user, under which username, with which profiles: the pure decision from an
//! Okta user, their memberships and the configured mapping (`CONNECT_PROFILE_MAPPING`).
//!
//! ```json
//! {"default": {"securityProfileIds": ["<id>"], "routingProfileId": "<id>"},
//!  "groups": [{"groupId": "00g…", "securityProfileIds": ["<id>"], "routingProfileId": "<id>"}]}
//! ```
//!
//! - security profiles: the union over the user's mapped groups; the default's when that is empty;
//! - routing profile: the first mapped group, in the listed order, that names one; else the
//!   default's. The order of `groups` is therefore the precedence, and the result never depends
//!   on the order Okta lists memberships in.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::aws::connect::{is_resource_id, IdentityInfo, MAX_SECURITY_PROFILES};
use crate::okta::OktaUser;

/// Okta statuses whose users keep access. `STAGED`, `SUSPENDED`, `DEPROVISIONED` (and a deleted
/// user) lose it.
pub const ACCESS_STATUSES: &[&str] = &["ACTIVE", "PROVISIONED", "RECOVERY", "PASSWORD_EXPIRED", "LOCKED_OUT"];
/// Longest Connect username with SAML identity management.
pub const MAX_USERNAME_CHARS: usize = 64;
const MAX_NAME_CHARS: usize = 100;

pub fn has_access_status(status: &str) -> bool {
    ACCESS_STATUSES.contains(&status)
}

/// The Okta attribute that becomes the Connect username (it must equal the SAML
/// `RoleSessionName` the Connect app sends, exactly, case included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsernameAttribute {
    Login,
    Email,
}

/// Profiles one user gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profiles {
    /// Sorted, without duplicates.
    pub security_profile_ids: Vec<String>,
    pub routing_profile_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupProfiles {
    pub group_id: String,
    pub security_profile_ids: Vec<String>,
    pub routing_profile_id: Option<String>,
}

/// The parsed `CONNECT_PROFILE_MAPPING`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub default: Profiles,
    pub groups: Vec<GroupProfiles>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MappingJson {
    default: DefaultJson,
    #[serde(default)]
    groups: Vec<GroupJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DefaultJson {
    security_profile_ids: Vec<String>,
    routing_profile_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GroupJson {
    group_id: String,
    #[serde(default)]
    security_profile_ids: Vec<String>,
    routing_profile_id: Option<String>,
}

fn check_ids<'a>(ids: impl IntoIterator<Item = &'a String>, what: &str) -> Result<(), String> {
    for id in ids {
        if !is_resource_id(id) {
            return Err(format!("{what} `{id}` is not a Connect id"));
        }
    }
    Ok(())
}

impl Mapping {
    pub fn parse(raw: &str) -> Result<Mapping, String> {
        let m: MappingJson = serde_json::from_str(raw).map_err(|e| format!("not the documented JSON: {e}"))?;
        let default_sp: BTreeSet<String> = m.default.security_profile_ids.into_iter().collect();
        if default_sp.is_empty() || default_sp.len() > MAX_SECURITY_PROFILES {
            return Err(format!("default.securityProfileIds must list 1 to {MAX_SECURITY_PROFILES} ids"));
        }
        check_ids(&default_sp, "security profile")?;
        check_ids([&m.default.routing_profile_id], "routing profile")?;
        let mut seen = BTreeSet::new();
        let mut groups = Vec::with_capacity(m.groups.len());
        for g in m.groups {
            if !crate::okta::is_okta_id(&g.group_id) {
                return Err(format!("groupId `{}` is not an Okta group id", g.group_id));
            }
            if !seen.insert(g.group_id.clone()) {
                return Err(format!("group {} is listed twice", g.group_id));
            }
            if g.security_profile_ids.is_empty() && g.routing_profile_id.is_none() {
                return Err(format!("group {} maps to nothing", g.group_id));
            }
            check_ids(&g.security_profile_ids, "security profile")?;
            check_ids(g.routing_profile_id.iter(), "routing profile")?;
            groups.push(GroupProfiles {
                group_id: g.group_id,
                security_profile_ids: g.security_profile_ids,
                routing_profile_id: g.routing_profile_id,
            });
        }
        Ok(Mapping {
            default: Profiles {
                security_profile_ids: default_sp.into_iter().collect(),
                routing_profile_id: m.default.routing_profile_id,
            },
            groups,
        })
    }

    /// The profiles of a member of `groups` (any order).
    pub fn profiles(&self, groups: &[String]) -> Result<Profiles, Unprovisionable> {
        let mapped: Vec<&GroupProfiles> = self.groups.iter().filter(|g| groups.contains(&g.group_id)).collect();
        let union: BTreeSet<&String> = mapped.iter().flat_map(|g| &g.security_profile_ids).collect();
        let security_profile_ids: Vec<String> = if union.is_empty() {
            self.default.security_profile_ids.clone()
        } else {
            union.into_iter().cloned().collect()
        };
        if security_profile_ids.len() > MAX_SECURITY_PROFILES {
            return Err(Unprovisionable::TooManySecurityProfiles(security_profile_ids.len()));
        }
        let routing_profile_id = mapped
            .iter()
            .find_map(|g| g.routing_profile_id.clone())
            .unwrap_or_else(|| self.default.routing_profile_id.clone());
        Ok(Profiles { security_profile_ids, routing_profile_id })
    }
}

/// Why an Okta user who should have access cannot be given a Connect user. Retrying does not help;
/// the fix is in Okta or in the mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unprovisionable {
    /// `CONNECT_USERNAME_ATTRIBUTE=email` and the user has no e-mail.
    NoUsername,
    /// Not 1–64 characters of `A-Z a-z 0-9 _ - . @` (what Connect accepts with SAML).
    InvalidUsername,
    /// The union of the user's groups' security profiles exceeds Connect's 10.
    TooManySecurityProfiles(usize),
}

impl Unprovisionable {
    pub fn reason(&self) -> &'static str {
        match self {
            Unprovisionable::NoUsername => "NO_USERNAME",
            Unprovisionable::InvalidUsername => "INVALID_USERNAME",
            Unprovisionable::TooManySecurityProfiles(_) => "TOO_MANY_SECURITY_PROFILES",
        }
    }
}

impl std::fmt::Display for Unprovisionable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unprovisionable::NoUsername => f.write_str("the user has no e-mail to use as the Connect username"),
            Unprovisionable::InvalidUsername => {
                write!(f, "the username is not 1-{MAX_USERNAME_CHARS} characters of A-Z a-z 0-9 _ - . @")
            }
            Unprovisionable::TooManySecurityProfiles(n) => {
                write!(f, "the user's groups map to {n} security profiles (Connect allows {MAX_SECURITY_PROFILES})")
            }
        }
    }
}

/// The Connect user an Okta user should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub okta_user_id: String,
    pub username: String,
    pub identity: IdentityInfo,
    pub profiles: Profiles,
}

pub fn is_valid_username(u: &str) -> bool {
    (1..=MAX_USERNAME_CHARS).contains(&u.chars().count())
        && u.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.@".contains(&b))
}

fn name(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(|s| s.chars().take(MAX_NAME_CHARS).collect())
}

/// The desired Connect user of `user`, who has access through `groups` (the configured groups
/// they are in) or an app assignment.
pub fn desired(
    user: &OktaUser,
    groups: &[String],
    mapping: &Mapping,
    attribute: UsernameAttribute,
) -> Result<Desired, Unprovisionable> {
    let username = match attribute {
        UsernameAttribute::Login => user.login.clone(),
        UsernameAttribute::Email => user.email.clone().filter(|e| !e.is_empty()).ok_or(Unprovisionable::NoUsername)?,
    };
    if !is_valid_username(&username) {
        return Err(Unprovisionable::InvalidUsername);
    }
    Ok(Desired {
        okta_user_id: user.id.clone(),
        username,
        identity: IdentityInfo { first_name: name(&user.first_name), last_name: name(&user.last_name) },
        profiles: mapping.profiles(groups)?,
    })
}

/// The mapping the unit tests use.
#[cfg(test)]
pub(crate) fn tests_mapping() -> &'static str {
    tests::MAPPING
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const MAPPING: &str = r#"{
        "default": {"securityProfileIds": ["sp-agent"], "routingProfileId": "rp-basic"},
        "groups": [
            {"groupId": "00gSUPERVISORS", "securityProfileIds": ["sp-supervisor", "sp-agent"], "routingProfileId": "rp-escalations"},
            {"groupId": "00gAGENTS", "routingProfileId": "rp-sales"},
            {"groupId": "00gQUALITY", "securityProfileIds": ["sp-quality"]}
        ]}"#;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn union_of_security_profiles_and_first_listed_routing_profile() {
        let m = Mapping::parse(MAPPING).unwrap();
        let p = m.profiles(&s(&["00gQUALITY", "00gAGENTS", "00gSUPERVISORS"])).unwrap();
        assert_eq!(p.security_profile_ids, s(&["sp-agent", "sp-quality", "sp-supervisor"]));
        assert_eq!(p.routing_profile_id, "rp-escalations");
        let reversed = m.profiles(&s(&["00gSUPERVISORS", "00gAGENTS", "00gQUALITY"])).unwrap();
        assert_eq!(reversed, p, "membership order never matters");
        let p = m.profiles(&s(&["00gAGENTS"])).unwrap();
        assert_eq!((p.security_profile_ids, p.routing_profile_id), (s(&["sp-agent"]), "rp-sales".to_string()));
        let p = m.profiles(&s(&["00gQUALITY"])).unwrap();
        assert_eq!((p.security_profile_ids, p.routing_profile_id), (s(&["sp-quality"]), "rp-basic".to_string()));
        let p = m.profiles(&[]).unwrap();
        assert_eq!(p, m.default, "app assignment or an unmapped group: the default");
    }

    #[test]
    fn refuses_bad_mappings() {
        for (raw, needle) in [
            ("{", "JSON"),
            (r#"{"groups": []}"#, "default"),
            (r#"{"default": {"securityProfileIds": [], "routingProfileId": "rp"}}"#, "1 to 10"),
            (r#"{"default": {"securityProfileIds": ["a/b"], "routingProfileId": "rp"}}"#, "a/b"),
            (r#"{"default": {"securityProfileIds": ["sp"], "routingProfileId": "rp"}, "extra": 1}"#, "extra"),
            (
                r#"{"default": {"securityProfileIds": ["sp"], "routingProfileId": "rp"}, "groups": [{"groupId": "00g1"}]}"#,
                "nothing",
            ),
            (
                r#"{"default": {"securityProfileIds": ["sp"], "routingProfileId": "rp"}, "groups": [{"groupId": "00g1", "routingProfileId": "r"}, {"groupId": "00g1", "routingProfileId": "r"}]}"#,
                "twice",
            ),
            (
                r#"{"default": {"securityProfileIds": ["sp"], "routingProfileId": "rp"}, "groups": [{"groupId": "bad id", "routingProfileId": "r"}]}"#,
                "Okta group id",
            ),
        ] {
            let e = Mapping::parse(raw).unwrap_err();
            assert!(e.contains(needle), "{raw}: {e}");
        }
        let eleven: Vec<String> = (0..11).map(|i| format!("\"sp{i}\"")).collect();
        let raw = format!(
            r#"{{"default": {{"securityProfileIds": ["sp"], "routingProfileId": "rp"}}, "groups": [{{"groupId": "00g1", "securityProfileIds": [{}]}}]}}"#,
            eleven.join(",")
        );
        let m = Mapping::parse(&raw).unwrap();
        assert_eq!(m.profiles(&s(&["00g1"])), Err(Unprovisionable::TooManySecurityProfiles(11)));
    }

    fn user() -> OktaUser {
        OktaUser {
            id: "00uANA".into(),
            status: "ACTIVE".into(),
            login: "Ana.Garcia@Example.com".into(),
            email: Some("ana@example.com".into()),
            first_name: Some(" Ana ".into()),
            last_name: None,
        }
    }

    #[test]
    fn username_comes_from_the_configured_attribute_exactly() {
        let m = Mapping::parse(MAPPING).unwrap();
        let d = desired(&user(), &[], &m, UsernameAttribute::Login).unwrap();
        assert_eq!(d.username, "Ana.Garcia@Example.com", "case is kept: Connect usernames are case-sensitive");
        assert_eq!(d.identity, IdentityInfo { first_name: Some("Ana".into()), last_name: None });
        assert_eq!(desired(&user(), &[], &m, UsernameAttribute::Email).unwrap().username, "ana@example.com");
        let mut u = user();
        u.email = None;
        assert_eq!(desired(&u, &[], &m, UsernameAttribute::Email), Err(Unprovisionable::NoUsername));
        u.login = "ana garcia".into();
        assert_eq!(desired(&u, &[], &m, UsernameAttribute::Login), Err(Unprovisionable::InvalidUsername));
        u.login = "a".repeat(65);
        assert_eq!(desired(&u, &[], &m, UsernameAttribute::Login), Err(Unprovisionable::InvalidUsername));
    }

    #[test]
    fn statuses() {
        for s in ["ACTIVE", "PASSWORD_EXPIRED", "LOCKED_OUT", "RECOVERY", "PROVISIONED"] {
            assert!(has_access_status(s));
        }
        for s in ["SUSPENDED", "DEPROVISIONED", "STAGED", "active", ""] {
            assert!(!has_access_status(s));
        }
    }
}
