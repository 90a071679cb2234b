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
//!
//! **Usernames.** The Connect username must be valid twice: as a Connect username with SAML
//! identity management (at most 64 of `A-Z a-z 0-9 _ - . @`, and `@` only in an e-mail form:
//! exactly one `@`, a non-empty local part, a domain of two or more non-empty dot-separated labels)
//! and as the STS `RoleSessionName` the Connect app sends at sign-in (2 to 64 of `[\w+=,.@-]`), which
//! must equal it. So: 2 to 64 of `A-Z a-z 0-9 _ - . @`, `@` only as `local@domain.tld`. Any other
//! username is [`Unprovisionable::InvalidUsername`] (reason `INVALID_USERNAME`, the detail says
//! which rule) and never reaches Connect. Case is kept: Connect usernames are case-sensitive.
//!
//! **Names.** With SAML, Connect requires `FirstName` and `LastName` in Unicode NFC, so both are
//! always sent. Each Okta name is cleaned: control characters become spaces, it is NFC-normalized,
//! trimmed, and cut to [`MAX_NAME_CHARS`] characters (not bytes); NFC is [`nfc`]'s (JavaScript's
//! `String.prototype.normalize` in the Worker, ICU4X natively). A name that is missing or empty
//! after cleaning is replaced, each independently:
//! - no first name: the username's local part (`ana.garcia` for `ana.garcia@example.com`, the
//!   whole username when it has no `@`): it identifies the person in Connect's user list and
//!   satisfies every rule above, being ASCII;
//! - no last name: [`LAST_NAME_PLACEHOLDER`] (`-`), visibly "none" rather than a duplicated
//!   first name.
//!
//! The replacement is recomputed on every convergence, so a name later set in Okta replaces it.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::aws::connect::{is_resource_id, IdentityInfo, MAX_SECURITY_PROFILES};
use crate::okta::OktaUser;

/// Okta statuses whose users keep access. `STAGED`, `SUSPENDED`, `DEPROVISIONED` (and a deleted
/// user) lose it.
pub const ACCESS_STATUSES: &[&str] = &["ACTIVE", "PROVISIONED", "RECOVERY", "PASSWORD_EXPIRED", "LOCKED_OUT"];
/// Longest Connect username with SAML identity management (and longest STS `RoleSessionName`).
pub const MAX_USERNAME_CHARS: usize = 64;
/// Shortest STS `RoleSessionName`, hence shortest username that can sign in through SAML.
pub const MIN_USERNAME_CHARS: usize = 2;
/// Longest `FirstName`/`LastName` sent. botocore's model allows 255/300 (and Connect-managed
/// instances 255/256); Connect's console and older API references cap SAML names at 100, so 100
/// is within every documented limit.
pub const MAX_NAME_CHARS: usize = 100;
/// `LastName` when Okta has none (Connect with SAML requires one).
pub const LAST_NAME_PLACEHOLDER: &str = "-";

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
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// Not a username Connect (with SAML) and STS (as `RoleSessionName`) both accept.
    InvalidUsername(UsernameProblem),
    /// The union of the user's groups' security profiles exceeds Connect's 10.
    TooManySecurityProfiles(usize),
}

impl Unprovisionable {
    pub fn reason(&self) -> &'static str {
        match self {
            Unprovisionable::NoUsername => "NO_USERNAME",
            Unprovisionable::InvalidUsername(_) => "INVALID_USERNAME",
            Unprovisionable::TooManySecurityProfiles(_) => "TOO_MANY_SECURITY_PROFILES",
        }
    }
}

impl std::fmt::Display for Unprovisionable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unprovisionable::NoUsername => f.write_str("the user has no e-mail to use as the Connect username"),
            Unprovisionable::InvalidUsername(p) => {
                write!(f, "the username is not valid for Connect with SAML and as an STS RoleSessionName: {p}")
            }
            Unprovisionable::TooManySecurityProfiles(n) => {
                write!(f, "the user's groups map to {n} security profiles (Connect allows {MAX_SECURITY_PROFILES})")
            }
        }
    }
}

/// The Connect user an Okta user should have.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Desired {
    pub okta_user_id: String,
    pub username: String,
    pub identity: IdentityInfo,
    pub profiles: Profiles,
}

/// Which username rule failed (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsernameProblem {
    /// A character other than `A-Z a-z 0-9 _ - . @` (the first one).
    Character(char),
    /// Not [`MIN_USERNAME_CHARS`] to [`MAX_USERNAME_CHARS`] characters (this many).
    Length(usize),
    /// `@` other than once in an e-mail form `local@domain.tld` (this many `@`).
    NotEmailForm(usize),
}

impl std::fmt::Display for UsernameProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UsernameProblem::Character(c) => write!(f, "it contains {c:?} (only A-Z a-z 0-9 _ - . @ are allowed)"),
            UsernameProblem::Length(n) => {
                write!(f, "it has {n} characters ({MIN_USERNAME_CHARS} to {MAX_USERNAME_CHARS} are allowed)")
            }
            UsernameProblem::NotEmailForm(n) => {
                write!(f, "it has {n} `@` but is not an e-mail form (`@` is allowed only once, as local@domain.tld)")
            }
        }
    }
}

/// The username rules of the module doc.
pub fn check_username(u: &str) -> Result<(), UsernameProblem> {
    if let Some(c) = u.chars().find(|&c| !(c.is_ascii_alphanumeric() || "_-.@".contains(c))) {
        return Err(UsernameProblem::Character(c));
    }
    // ASCII from here: bytes are characters.
    if !(MIN_USERNAME_CHARS..=MAX_USERNAME_CHARS).contains(&u.len()) {
        return Err(UsernameProblem::Length(u.len()));
    }
    let ats = u.bytes().filter(|&b| b == b'@').count();
    if ats > 0 {
        let (local, domain) = u.split_once('@').unwrap_or_default();
        let labels_ok = domain.contains('.') && domain.split('.').all(|l| !l.is_empty());
        if ats != 1 || local.is_empty() || !labels_ok {
            return Err(UsernameProblem::NotEmailForm(ats));
        }
    }
    Ok(())
}

pub fn is_valid_username(u: &str) -> bool {
    check_username(u).is_ok()
}

/// `s` in Unicode Normalization Form C. In the Worker, JavaScript's `String.prototype.normalize`
/// (V8's ICU, native code in workerd): ICU4X's tables compiled to wasm would add 24 KB gzip to the
/// bundle. Natively, ICU4X's `icu_normalizer`, the same algorithm over the same Unicode data
/// (the pattern of `auth::rs256`: WebCrypto in the Worker, pure Rust in the tests).
#[cfg(target_arch = "wasm32")]
pub fn nfc(s: &str) -> String {
    js_sys::JsString::from(s).normalize("NFC").into()
}

/// See the wasm variant.
#[cfg(not(target_arch = "wasm32"))]
pub fn nfc(s: &str) -> String {
    icu_normalizer::ComposingNormalizerBorrowed::new_nfc().normalize(s).into_owned()
}

/// Whether `s` is in Unicode Normalization Form C.
pub fn is_nfc(s: &str) -> bool {
    nfc(s) == s
}

/// An Okta name as Connect takes it (see the module doc), or None when nothing is left.
fn name(v: Option<&str>) -> Option<String> {
    let spaced: String = v?.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let cut = |s: &str| -> String { s.trim().chars().take(MAX_NAME_CHARS).collect::<String>().trim_end().to_string() };
    let mut out = cut(&nfc(&spaced));
    let again = nfc(&out);
    if again != out {
        // A prefix of an NFC string is NFC in practice; should the cut ever split a sequence that
        // composes, cut the normalized text once more.
        out = cut(&again);
    }
    (!out.is_empty()).then_some(out)
}

/// `FirstName` and `LastName` for `username`'s owner, from Okta's names (see the module doc).
pub fn identity(first_name: Option<&str>, last_name: Option<&str>, username: &str) -> IdentityInfo {
    let local = username.split('@').next().unwrap_or(username);
    IdentityInfo {
        first_name: Some(name(first_name).unwrap_or_else(|| local.chars().take(MAX_NAME_CHARS).collect())),
        last_name: Some(name(last_name).unwrap_or_else(|| LAST_NAME_PLACEHOLDER.to_string())),
    }
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
    check_username(&username).map_err(Unprovisionable::InvalidUsername)?;
    Ok(Desired {
        okta_user_id: user.id.clone(),
        identity: identity(user.first_name.as_deref(), user.last_name.as_deref(), &username),
        username,
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
        assert_eq!(d.identity, IdentityInfo { first_name: Some("Ana".into()), last_name: Some("-".into()) });
        assert_eq!(desired(&user(), &[], &m, UsernameAttribute::Email).unwrap().username, "ana@example.com");
        let mut u = user();
        u.email = None;
        assert_eq!(desired(&u, &[], &m, UsernameAttribute::Email), Err(Unprovisionable::NoUsername));
        u.login = "ana garcia".into();
        let e = desired(&u, &[], &m, UsernameAttribute::Login).unwrap_err();
        assert_eq!(e, Unprovisionable::InvalidUsername(UsernameProblem::Character(' ')));
        assert_eq!(e.reason(), "INVALID_USERNAME");
        assert!(e.to_string().contains("' '"), "{e}");
        u.login = "a".repeat(65);
        assert_eq!(
            desired(&u, &[], &m, UsernameAttribute::Login),
            Err(Unprovisionable::InvalidUsername(UsernameProblem::Length(65)))
        );
    }

    #[test]
    fn usernames_connect_with_saml_and_sts_both_accept() {
        for ok in [
            "ab",
            "ana.garcia",
            "Ana_Garcia-2",
            "ana@example.com",
            "a@b.c",
            "first.last@sub.example.co.uk",
            "-.-",
            &"a".repeat(64),
            &format!("{}@example.com", "a".repeat(52)),
        ] {
            assert_eq!(check_username(ok), Ok(()), "{ok}");
        }
        use UsernameProblem::*;
        for (bad, problem) in [
            ("", Length(0)),
            ("a", Length(1)),
            (&*"a".repeat(65), Length(65)),
            (&*format!("{}@example.com", "a".repeat(53)), Length(65)),
            ("dave+okta@example.com", Character('+')),
            ("ana garcia", Character(' ')),
            ("ana,garcia", Character(',')),
            ("ana=garcia", Character('=')),
            ("zoë", Character('ë')),
            ("tab\tuser", Character('\t')),
            ("ana@@example.com", NotEmailForm(2)),
            ("ana@x@example.com", NotEmailForm(2)),
            ("ana@example", NotEmailForm(1)),
            ("@example.com", NotEmailForm(1)),
            ("ana@", NotEmailForm(1)),
            ("ana@.com", NotEmailForm(1)),
            ("ana@example.", NotEmailForm(1)),
            ("ana@example..com", NotEmailForm(1)),
            ("@@", NotEmailForm(2)),
        ] {
            assert_eq!(check_username(bad), Err(problem), "{bad:?}");
            assert!(!is_valid_username(bad));
        }
        let e = Unprovisionable::InvalidUsername(NotEmailForm(2)).to_string();
        assert!(e.contains("RoleSessionName") && e.contains("local@domain.tld"), "{e}");
    }

    fn names(first: Option<&str>, last: Option<&str>, username: &str) -> (String, String) {
        let i = identity(first, last, username);
        (i.first_name.unwrap(), i.last_name.unwrap())
    }

    #[test]
    fn both_names_are_always_sent_with_documented_fallbacks() {
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(names(Some("Ana"), Some("García"), "ana@example.com"), pair("Ana", "García"));
        assert_eq!(names(None, Some("García"), "ana.garcia@example.com"), pair("ana.garcia", "García"));
        assert_eq!(names(Some("Ana"), None, "ana@example.com"), pair("Ana", "-"));
        assert_eq!(names(None, None, "ana.garcia@example.com"), pair("ana.garcia", "-"));
        assert_eq!(names(None, None, "agent_007"), pair("agent_007", "-"), "no @: the whole username");
        // Empty, blank or control-only names count as missing.
        assert_eq!(names(Some(""), Some(" \t "), "ana@example.com"), pair("ana", "-"));
        assert_eq!(names(Some("\u{7}\n"), Some("\u{0}"), "ana@example.com"), pair("ana", "-"));
    }

    #[test]
    fn names_are_nfc_trimmed_without_controls_and_cut_by_characters() {
        // Decomposed (NFD) input is composed: Zoe + U+0308 → Zoë; the Hangul jamo → one syllable.
        let (first, last) = names(Some("Zoe\u{308}"), Some("\u{1100}\u{1161}\u{11A8}"), "zoe@example.com");
        assert_eq!((first.as_str(), last.as_str()), ("Zo\u{eb}", "\u{ac01}"));
        assert!(is_nfc(&first) && !is_nfc("Zoe\u{308}"));
        // Canonical singletons (Ohm sign → Omega) and reordering of combining marks.
        assert_eq!(names(Some("\u{2126}"), Some("a\u{323}\u{302}"), "x@y.z").0, "\u{3a9}");
        assert_eq!(names(None, Some("a\u{302}\u{323}"), "x@y.z").1, "\u{1ead}");
        // Controls become spaces, then the ends are trimmed; inner spacing is kept.
        assert_eq!(names(Some("  Ana\tMaria\r\n"), Some("de  la Cruz"), "x@y.z"), pair_of("Ana Maria", "de  la Cruz"));
        // Cut to 100 characters, not bytes (each ë is 2 bytes), and never inside a composed letter.
        let long = "e\u{308}".repeat(150);
        let (first, _) = names(Some(&long), None, "x@y.z");
        assert_eq!(first.chars().count(), MAX_NAME_CHARS);
        assert_eq!(first, "\u{eb}".repeat(100));
        assert!(is_nfc(&first));
        // A cut that ends on a space is trimmed again.
        let spaced = format!("{} b", "a".repeat(99));
        assert_eq!(names(Some(&spaced), None, "x@y.z").0, "a".repeat(99));
        // Non-Latin scripts and emoji pass through unchanged (already NFC).
        for n in ["山田", "Ελένη", "Ödön", "José 👩‍💻", "\u{5d3}\u{5b8}\u{5d5}\u{5b4}\u{5d3}"] {
            assert_eq!(names(Some(n), None, "x@y.z").0, *n, "{n}");
        }
    }

    fn pair_of(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn desired_sends_cleaned_names() {
        let m = Mapping::parse(MAPPING).unwrap();
        let mut u = user();
        u.first_name = None;
        u.last_name = Some("Garci\u{301}a".into());
        let d = desired(&u, &[], &m, UsernameAttribute::Login).unwrap();
        assert_eq!(d.identity.first_name.as_deref(), Some("Ana.Garcia"));
        assert_eq!(d.identity.last_name.as_deref(), Some("Garc\u{ed}a"));
        u.login = "ana@@example.com".into();
        assert_eq!(
            desired(&u, &[], &m, UsernameAttribute::Login),
            Err(Unprovisionable::InvalidUsername(UsernameProblem::NotEmailForm(2)))
        );
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
