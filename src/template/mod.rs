//! Message templates: the model (one SMS and one voice template per locale), validation (the
//! same rules for `kv-seed/`, the DynamoDB sync and anything read back from KV), resolution
//! along the locale fallback chain, and rendering with the OTP.
//!
//! Placeholder syntax: `{{otp}}`. The AWS guidance's legacy markers `@otp` and `@otp2` are
//! accepted too. Any other `{{…}}` is an error, so a typo cannot ship a message without a code.
//!
//! Deliberately absent: where templates are stored (`template::store`) and how messages are sent.

pub mod render;
pub mod store;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::locale::Locale;

/// How the code reaches the person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Channel {
    Sms,
    Voice,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Voice => "voice",
        }
    }
}

/// Sizes the APIs accept: `SendTextMessage` MessageBody ≤ 1600, `SendVoiceMessage` SSML ≤ 6000
/// (templates are checked against these with room left for the rendered code).
pub const SMS_MAX_CHARS: usize = 1600;
pub const VOICE_MAX_BYTES: usize = 6000;
/// Rendering a voice code expands each `{{otp}}` to at most this many bytes.
pub const VOICE_OTP_EXPANSION: usize = 10 * 24;

/// A template as people write it: the per-channel entries of `kv-seed/templates/<locale>.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub body: String,
    #[serde(rename = "voiceId", default, skip_serializing_if = "Option::is_none")]
    pub voice_id: Option<String>,
}

/// The two templates of one locale, as in one seed file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocaleTemplates {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<Template>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<Template>,
}

impl LocaleTemplates {
    pub fn get(&self, channel: Channel) -> Option<&Template> {
        match channel {
            Channel::Sms => self.sms.as_ref(),
            Channel::Voice => self.voice.as_ref(),
        }
    }
}

/// Why a template cannot be published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateError {
    BadLocale(String),
    NoPlaceholder,
    UnknownPlaceholder(String),
    TooLong { max: usize, actual: usize },
    MissingVoiceId,
    VoiceIdOnSms,
    UnknownVoiceId(String),
    BadSsml(String),
    Empty,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::BadLocale(l) => write!(f, "`{l}` is not a locale like en-US"),
            TemplateError::NoPlaceholder => f.write_str("the body has no {{otp}} placeholder"),
            TemplateError::UnknownPlaceholder(p) => write!(f, "unknown placeholder `{p}` (only {{{{otp}}}} exists)"),
            TemplateError::TooLong { max, actual } => write!(f, "the body is {actual} long; the limit is {max}"),
            TemplateError::MissingVoiceId => f.write_str("a voice template needs a voiceId"),
            TemplateError::VoiceIdOnSms => f.write_str("an SMS template has no voiceId"),
            TemplateError::UnknownVoiceId(v) => write!(f, "`{v}` is not a VoiceId SendVoiceMessage accepts"),
            TemplateError::BadSsml(e) => write!(f, "the body is not valid SSML: {e}"),
            TemplateError::Empty => f.write_str("the body is empty"),
        }
    }
}

impl std::error::Error for TemplateError {}

impl Template {
    /// Checks everything a send would otherwise discover too late.
    pub fn validate(&self, channel: Channel) -> Result<(), TemplateError> {
        if self.body.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        check_placeholders(&self.body)?;
        match channel {
            Channel::Sms => {
                if self.voice_id.is_some() {
                    return Err(TemplateError::VoiceIdOnSms);
                }
                let chars = self.body.chars().count();
                if chars + 10 > SMS_MAX_CHARS {
                    return Err(TemplateError::TooLong { max: SMS_MAX_CHARS - 10, actual: chars });
                }
            }
            Channel::Voice => {
                let voice = self.voice_id.as_deref().ok_or(TemplateError::MissingVoiceId)?;
                if !crate::voice::is_valid_voice_id(voice) {
                    return Err(TemplateError::UnknownVoiceId(voice.to_string()));
                }
                let budget = VOICE_MAX_BYTES - VOICE_OTP_EXPANSION * 2;
                if self.body.len() > budget {
                    return Err(TemplateError::TooLong { max: budget, actual: self.body.len() });
                }
                crate::ssml::validate(&self.body).map_err(|e| TemplateError::BadSsml(e.to_string()))?;
            }
        }
        Ok(())
    }
}

fn check_placeholders(body: &str) -> Result<(), TemplateError> {
    let mut found = body.contains("@otp");
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(TemplateError::UnknownPlaceholder(after.chars().take(20).collect()));
        };
        let name = after[..end].trim();
        if name != "otp" {
            return Err(TemplateError::UnknownPlaceholder(format!(
                "{{{{{}}}}}",
                name.chars().take(40).collect::<String>()
            )));
        }
        found = true;
        rest = &after[end + 2..];
    }
    if found {
        Ok(())
    } else {
        Err(TemplateError::NoPlaceholder)
    }
}

/// A complete, validated set of templates: what one KV publication holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateSet {
    version: String,
    locales: BTreeMap<Locale, LocaleTemplates>,
}

/// One template that failed validation, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub locale: String,
    pub channel: Option<Channel>,
    pub error: TemplateError,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.channel {
            Some(c) => write!(f, "{} {}: {}", self.locale, c.as_str(), self.error),
            None => write!(f, "{}: {}", self.locale, self.error),
        }
    }
}

/// The wire form of a set (KV value and `kv-seed` bundle): `{"version", "templates": {locale: {sms, voice}}}`.
#[derive(Serialize, Deserialize)]
struct Wire {
    version: String,
    templates: BTreeMap<String, LocaleTemplates>,
}

impl TemplateSet {
    /// Builds a set from raw entries, keeping the valid templates and reporting the others.
    /// The version is a digest of the content, so identical content always has one version.
    pub fn build(entries: impl IntoIterator<Item = (String, LocaleTemplates)>) -> (TemplateSet, Vec<Rejected>) {
        let mut locales: BTreeMap<Locale, LocaleTemplates> = BTreeMap::new();
        let mut rejected = Vec::new();
        for (raw_locale, entry) in entries {
            let Some(locale) = Locale::parse(&raw_locale) else {
                rejected.push(Rejected {
                    locale: raw_locale.clone(),
                    channel: None,
                    error: TemplateError::BadLocale(raw_locale),
                });
                continue;
            };
            let slot = locales.entry(locale.clone()).or_default();
            for (channel, template) in [(Channel::Sms, entry.sms), (Channel::Voice, entry.voice)] {
                let Some(template) = template else { continue };
                match template.validate(channel) {
                    Ok(()) => match channel {
                        Channel::Sms => slot.sms = Some(template),
                        Channel::Voice => slot.voice = Some(template),
                    },
                    Err(error) => rejected.push(Rejected { locale: locale.to_string(), channel: Some(channel), error }),
                }
            }
        }
        locales.retain(|_, t| t.sms.is_some() || t.voice.is_some());
        let version = Self::digest(&locales);
        (TemplateSet { version, locales }, rejected)
    }

    fn digest(locales: &BTreeMap<Locale, LocaleTemplates>) -> String {
        let mut h = Sha256::new();
        for (locale, t) in locales {
            for (c, tpl) in [(Channel::Sms, &t.sms), (Channel::Voice, &t.voice)] {
                if let Some(tpl) = tpl {
                    for part in
                        [locale.to_string().as_str(), c.as_str(), tpl.voice_id.as_deref().unwrap_or(""), &tpl.body]
                    {
                        h.update((part.len() as u64).to_le_bytes());
                        h.update(part.as_bytes());
                    }
                }
            }
        }
        let d = h.finalize();
        d[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn len(&self) -> usize {
        self.locales.values().map(|t| t.sms.is_some() as usize + t.voice.is_some() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.locales.is_empty()
    }

    pub fn locales(&self) -> impl Iterator<Item = (&Locale, &LocaleTemplates)> {
        self.locales.iter()
    }

    /// Finds the template for a channel along the fallback chain of `requested`.
    pub fn resolve(
        &self,
        channel: Channel,
        requested: Option<&Locale>,
        default: &Locale,
    ) -> Option<(&Locale, &Template)> {
        let have: Vec<Locale> =
            self.locales.iter().filter(|(_, t)| t.get(channel).is_some()).map(|(l, _)| l.clone()).collect();
        let chain = crate::locale::fallback_chain(requested, default, &have);
        let first = chain.first()?;
        let (locale, t) = self.locales.get_key_value(*first)?;
        Some((locale, t.get(channel)?))
    }

    pub fn to_json(&self) -> String {
        let wire = Wire {
            version: self.version.clone(),
            templates: self.locales.iter().map(|(l, t)| (l.to_string(), t.clone())).collect(),
        };
        serde_json::to_string(&wire).expect("serialising strings and maps cannot fail")
    }

    /// Reads a published set back, re-validating every template (a bad entry is dropped, not
    /// served). Fails only when the document itself is not a template set.
    pub fn from_json(json: &str) -> Result<(TemplateSet, Vec<Rejected>), serde_json::Error> {
        let wire: Wire = serde_json::from_str(json)?;
        Ok(Self::build(wire.templates))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sms(body: &str) -> Template {
        Template { body: body.into(), voice_id: None }
    }

    pub fn voice(body: &str, id: &str) -> Template {
        Template { body: body.into(), voice_id: Some(id.into()) }
    }

    pub fn sample_set() -> TemplateSet {
        let entries = vec![
            (
                "en-US".to_string(),
                LocaleTemplates {
                    sms: Some(sms("Your code is {{otp}}.")),
                    voice: Some(voice("<speak>Your code is {{otp}}. Again: {{otp}}.</speak>", "JOANNA")),
                },
            ),
            (
                "es-ES".to_string(),
                LocaleTemplates {
                    sms: Some(sms("Tu código es {{otp}}.")),
                    voice: Some(voice("<speak>Tu código es {{otp}}.</speak>", "LUCIA")),
                },
            ),
            ("fr-FR".to_string(), LocaleTemplates { sms: Some(sms("Votre code : {{otp}}")), voice: None }),
        ];
        let (set, rejected) = TemplateSet::build(entries);
        assert!(rejected.is_empty(), "{rejected:?}");
        set
    }

    #[test]
    fn rejects_template_without_code() {
        assert_eq!(sms("Hello").validate(Channel::Sms), Err(TemplateError::NoPlaceholder));
        assert_eq!(sms("  ").validate(Channel::Sms), Err(TemplateError::Empty));
    }

    #[test]
    fn rejects_unknown_placeholder() {
        assert!(matches!(
            sms("Code {{otp}} for {{name}}").validate(Channel::Sms),
            Err(TemplateError::UnknownPlaceholder(_))
        ));
        assert!(matches!(sms("Code {{otp").validate(Channel::Sms), Err(TemplateError::UnknownPlaceholder(_))));
    }

    #[test]
    fn accepts_legacy_markers() {
        assert_eq!(sms("Your code is @otp").validate(Channel::Sms), Ok(()));
        assert_eq!(voice("<speak>@otp, again @otp2</speak>", "MATTHEW").validate(Channel::Voice), Ok(()));
    }

    #[test]
    fn voice_needs_a_known_voice_and_valid_ssml() {
        assert_eq!(
            Template { body: "<speak>{{otp}}</speak>".into(), voice_id: None }.validate(Channel::Voice),
            Err(TemplateError::MissingVoiceId)
        );
        assert!(matches!(
            voice("<speak>{{otp}}</speak>", "HAL9000").validate(Channel::Voice),
            Err(TemplateError::UnknownVoiceId(_))
        ));
        assert!(matches!(voice("<speak>{{otp}}", "JOANNA").validate(Channel::Voice), Err(TemplateError::BadSsml(_))));
        assert_eq!(sms("{{otp}}").validate(Channel::Sms), Ok(()));
        assert_eq!(voice("<speak>{{otp}}</speak>", "JOANNA").validate(Channel::Sms), Err(TemplateError::VoiceIdOnSms));
    }

    #[test]
    fn rejects_oversized_bodies() {
        let long = format!("{{{{otp}}}}{}", "a".repeat(SMS_MAX_CHARS));
        assert!(matches!(sms(&long).validate(Channel::Sms), Err(TemplateError::TooLong { .. })));
        let long = format!("<speak>{{{{otp}}}}{}</speak>", "a".repeat(VOICE_MAX_BYTES));
        assert!(matches!(voice(&long, "JOANNA").validate(Channel::Voice), Err(TemplateError::TooLong { .. })));
    }

    #[test]
    fn build_keeps_valid_and_reports_invalid() {
        let entries = vec![
            (
                "EN-us".to_string(),
                LocaleTemplates { sms: Some(sms("{{otp}}")), voice: Some(voice("<speak>x</speak>", "JOANNA")) },
            ),
            ("not a locale".to_string(), LocaleTemplates { sms: Some(sms("{{otp}}")), voice: None }),
        ];
        let (set, rejected) = TemplateSet::build(entries);
        assert_eq!(set.len(), 1);
        assert_eq!(rejected.len(), 2);
        assert_eq!(rejected[0].to_string(), "en-US voice: the body has no {{otp}} placeholder");
        assert!(matches!(rejected[1].error, TemplateError::BadLocale(_)));
    }

    #[test]
    fn version_depends_only_on_content() {
        let a = sample_set();
        let b = TemplateSet::from_json(&a.to_json()).unwrap().0;
        assert_eq!(a.version(), b.version());
        assert_eq!(a, b);
        let mut entries: Vec<(String, LocaleTemplates)> =
            a.locales().map(|(l, t)| (l.to_string(), t.clone())).collect();
        entries[0].1.sms = Some(sms("Changed {{otp}}"));
        assert_ne!(TemplateSet::build(entries).0.version(), a.version());
    }

    #[test]
    fn resolves_along_the_chain_per_channel() {
        let set = sample_set();
        let en = Locale::parse("en-US").unwrap();
        let fr = Locale::parse("fr-CA").unwrap();
        let (l, _) = set.resolve(Channel::Sms, Some(&fr), &en).unwrap();
        assert_eq!(l.to_string(), "fr-FR");
        // No French voice template: the default's voice template is used.
        let (l, t) = set.resolve(Channel::Voice, Some(&fr), &en).unwrap();
        assert_eq!((l.to_string().as_str(), t.voice_id.as_deref()), ("en-US", Some("JOANNA")));
        let es = Locale::parse("es").unwrap();
        assert_eq!(set.resolve(Channel::Voice, Some(&es), &en).unwrap().0.to_string(), "es-ES");
    }

    #[test]
    fn from_json_rejects_non_sets() {
        assert!(TemplateSet::from_json("[]").is_err());
        assert!(TemplateSet::from_json(
            r#"{"version":"x","templates":{"en-US":{"sms":{"body":"{{otp}}","extra":1}}}}"#
        )
        .is_err());
    }
}
