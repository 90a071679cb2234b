//! Polly voices accepted by `SendVoiceMessage`, and which to use for a language.

/// Every `VoiceId` that `SendVoiceMessage` accepts, sorted (byte order) for
/// binary search.
///
/// Copied from the `VoiceId` enum shape of the `pinpoint-sms-voice-v2`
/// (2022-03-31) service model in botocore 1.44.5
/// (`botocore/data/pinpoint-sms-voice-v2/2022-03-31/service-2.json.gz`):
/// 59 values. Newer Polly voices (mostly neural-only) are not in the enum.
pub const VOICE_IDS: &[&str] = &[
    "AMY",
    "ASTRID",
    "BIANCA",
    "BRIAN",
    "CAMILA",
    "CARLA",
    "CARMEN",
    "CELINE",
    "CHANTAL",
    "CONCHITA",
    "CRISTIANO",
    "DORA",
    "EMMA",
    "ENRIQUE",
    "EWA",
    "FILIZ",
    "GERAINT",
    "GIORGIO",
    "GWYNETH",
    "HANS",
    "INES",
    "IVY",
    "JACEK",
    "JAN",
    "JOANNA",
    "JOEY",
    "JUSTIN",
    "KARL",
    "KENDRA",
    "KIMBERLY",
    "LEA",
    "LIV",
    "LOTTE",
    "LUCIA",
    "LUPE",
    "MADS",
    "MAJA",
    "MARLENE",
    "MATHIEU",
    "MATTHEW",
    "MAXIM",
    "MIA",
    "MIGUEL",
    "MIZUKI",
    "NAJA",
    "NICOLE",
    "PENELOPE",
    "RAVEENA",
    "RICARDO",
    "RUBEN",
    "RUSSELL",
    "SALLI",
    "SEOYEON",
    "TAKUMI",
    "TATYANA",
    "VICKI",
    "VITORIA",
    "ZEINA",
    "ZHIYU",
];

/// Polly language code of each voice, in order of preference: languages in
/// the order of the research table (`aws.md` §1), voices within a language in
/// the order listed there. The first voice of a language is its default.
///
/// Codes are Polly's own: BCP-47 language-region, except `arb` (Modern
/// Standard Arabic, no region) and `en-GB-WLS` (Welsh English).
const LANGUAGES: &[(&str, &[&str])] = &[
    ("en-US", &["JOANNA", "KENDRA", "KIMBERLY", "SALLI", "IVY", "JOEY", "JUSTIN", "MATTHEW"]),
    ("en-GB", &["AMY", "EMMA", "BRIAN"]),
    ("en-AU", &["NICOLE", "RUSSELL"]),
    ("en-IN", &["RAVEENA"]),
    ("en-GB-WLS", &["GERAINT"]),
    ("es-US", &["LUPE", "PENELOPE", "MIGUEL"]),
    ("es-MX", &["MIA"]),
    ("es-ES", &["CONCHITA", "LUCIA", "ENRIQUE"]),
    ("fr-FR", &["CELINE", "LEA", "MATHIEU"]),
    ("fr-CA", &["CHANTAL"]),
    ("de-DE", &["MARLENE", "VICKI", "HANS"]),
    ("pt-BR", &["CAMILA", "VITORIA", "RICARDO"]),
    ("pt-PT", &["INES", "CRISTIANO"]),
    ("it-IT", &["CARLA", "BIANCA", "GIORGIO"]),
    ("ja-JP", &["MIZUKI", "TAKUMI"]),
    ("nl-NL", &["LOTTE", "RUBEN"]),
    ("da-DK", &["NAJA", "MADS"]),
    ("nb-NO", &["LIV"]),
    ("sv-SE", &["ASTRID"]),
    ("pl-PL", &["EWA", "MAJA", "JACEK", "JAN"]),
    ("ro-RO", &["CARMEN"]),
    ("ru-RU", &["TATYANA", "MAXIM"]),
    ("tr-TR", &["FILIZ"]),
    ("is-IS", &["DORA", "KARL"]),
    ("cy-GB", &["GWYNETH"]),
    ("ko-KR", &["SEOYEON"]),
    ("cmn-CN", &["ZHIYU"]),
    ("arb", &["ZEINA"]),
];

/// Language subtags that have a voice under another code: Chinese → Mandarin,
/// Arabic → Modern Standard Arabic, Norwegian (and Nynorsk) → Bokmål.
const LANGUAGE_ALIASES: &[(&str, &str)] = &[("zh", "cmn"), ("ar", "arb"), ("no", "nb"), ("nn", "nb")];

/// Whether `id` is a `VoiceId` that `SendVoiceMessage` accepts. Exact match:
/// upper case, as in the API enum (`"JOANNA"`, not `"Joanna"`).
pub fn is_valid_voice_id(id: &str) -> bool {
    VOICE_IDS.binary_search(&id).is_ok()
}

/// The Polly language code of a voice (`"JOANNA"` → `"en-US"`, `"ZHIYU"` →
/// `"cmn-CN"`, `"ZEINA"` → `"arb"`), or `None` if `id` is not a valid `VoiceId`.
pub fn voice_language(id: &str) -> Option<&'static str> {
    LANGUAGES.iter().find(|(_, voices)| voices.contains(&id)).map(|&(lang, _)| lang)
}

/// A good default voice for a locale such as `"pt-BR"`, `"EN-us"`, `"es_AR"`
/// or `"pt"`, or `None` if no voice speaks the language.
///
/// Case-insensitive; `_` is accepted as a separator. Picks the first voice
/// of, in order: the exact language code (`"en-GB-WLS"`), the same language
/// and region (`"en-Latn-GB"` → en-GB), the same language in any region
/// (`"es-AR"` → es-US). `zh`, `ar` and `no`/`nn` are treated as `cmn`, `arb`
/// and `nb`.
pub fn default_voice_for(locale: &str) -> Option<&'static str> {
    let first = |voices: &[&'static str]| voices.first().copied();
    if let Some((_, voices)) = LANGUAGES.iter().find(|(lang, _)| same_tag(lang, locale)) {
        return first(voices);
    }
    let (language, region) = split_locale(locale)?;
    let language = LANGUAGE_ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(language))
        .map_or(language, |&(_, target)| target);
    let same_language =
        |lang: &&(&str, &[&str])| split_locale(lang.0).is_some_and(|(l, _)| l.eq_ignore_ascii_case(language));
    if let Some(region) = region {
        let found = LANGUAGES.iter().filter(same_language).find(|(lang, _)| {
            split_locale(lang).is_some_and(|(_, r)| r.is_some_and(|r| r.eq_ignore_ascii_case(region)))
        });
        if let Some((_, voices)) = found {
            return first(voices);
        }
    }
    LANGUAGES.iter().find(same_language).and_then(|(_, voices)| first(voices))
}

/// Equal as language tags: ASCII case-insensitive, `_` same as `-`.
fn same_tag(a: &str, b: &str) -> bool {
    let norm = |c: u8| {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| norm(x) == norm(y))
}

/// Language subtag (2–3 letters) and region subtag (2 letters or 3 digits,
/// after an optional 4-letter script) of a locale; `None` if the language
/// subtag is malformed.
fn split_locale(locale: &str) -> Option<(&str, Option<&str>)> {
    let mut parts = locale.split(['-', '_']);
    let language = parts.next()?;
    if !(2..=3).contains(&language.len()) || !language.bytes().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let mut next = parts.next();
    if next.is_some_and(|s| s.len() == 4 && s.bytes().all(|c| c.is_ascii_alphabetic())) {
        next = parts.next();
    }
    let region = next.filter(|s| {
        (s.len() == 2 && s.bytes().all(|c| c.is_ascii_alphabetic()))
            || (s.len() == 3 && s.bytes().all(|c| c.is_ascii_digit()))
    });
    Some((language, region))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_ids_sorted_and_unique() {
        assert_eq!(VOICE_IDS.len(), 59);
        assert!(VOICE_IDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn every_voice_has_exactly_one_language() {
        for id in VOICE_IDS {
            let n = LANGUAGES.iter().filter(|(_, v)| v.contains(id)).count();
            assert_eq!(n, 1, "{id}");
        }
        let listed: usize = LANGUAGES.iter().map(|(_, v)| v.len()).sum();
        assert_eq!(listed, VOICE_IDS.len());
    }

    #[test]
    fn validity_is_exact() {
        assert!(is_valid_voice_id("JOANNA"));
        assert!(is_valid_voice_id("ZHIYU"));
        assert!(!is_valid_voice_id("Joanna"));
        assert!(!is_valid_voice_id("JOANNA "));
        assert!(!is_valid_voice_id(""));
        assert!(!is_valid_voice_id("ARTHUR")); // neural-only, not in the enum
    }

    #[test]
    fn languages_of_voices() {
        assert_eq!(voice_language("JOANNA"), Some("en-US"));
        assert_eq!(voice_language("LUPE"), Some("es-US"));
        assert_eq!(voice_language("MIA"), Some("es-MX"));
        assert_eq!(voice_language("ZHIYU"), Some("cmn-CN"));
        assert_eq!(voice_language("ZEINA"), Some("arb"));
        assert_eq!(voice_language("GERAINT"), Some("en-GB-WLS"));
        assert_eq!(voice_language("GWYNETH"), Some("cy-GB"));
        assert_eq!(voice_language("joanna"), None);
        assert_eq!(voice_language("NOBODY"), None);
    }

    #[test]
    fn default_voice_exact_locale() {
        assert_eq!(default_voice_for("pt-BR"), Some("CAMILA"));
        assert_eq!(default_voice_for("pt-PT"), Some("INES"));
        assert_eq!(default_voice_for("en-GB"), Some("AMY"));
        assert_eq!(default_voice_for("en-GB-WLS"), Some("GERAINT"));
        assert_eq!(default_voice_for("cmn-CN"), Some("ZHIYU"));
        assert_eq!(default_voice_for("arb"), Some("ZEINA"));
        assert_eq!(default_voice_for("EN-us"), Some("JOANNA"));
        assert_eq!(default_voice_for("fr_CA"), Some("CHANTAL"));
    }

    #[test]
    fn default_voice_falls_back_to_language() {
        assert_eq!(default_voice_for("pt"), Some("CAMILA"));
        assert_eq!(default_voice_for("es-AR"), Some("LUPE"));
        assert_eq!(default_voice_for("en-NZ"), Some("JOANNA"));
        assert_eq!(default_voice_for("de-AT"), Some("MARLENE"));
        assert_eq!(default_voice_for("fr-BE"), Some("CELINE"));
        assert_eq!(default_voice_for("en-Latn-GB"), Some("AMY"));
        assert_eq!(default_voice_for("zh-Hans-CN"), Some("ZHIYU"));
        assert_eq!(default_voice_for("zh-TW"), Some("ZHIYU"));
        assert_eq!(default_voice_for("ar-EG"), Some("ZEINA"));
        assert_eq!(default_voice_for("no"), Some("LIV"));
        assert_eq!(default_voice_for("cy"), Some("GWYNETH"));
    }

    #[test]
    fn default_voice_none_for_unknown() {
        for locale in ["", "-", "he-IL", "x", "english", "e1-US", "--US", "zz"] {
            assert_eq!(default_voice_for(locale), None, "{locale:?}");
        }
    }

    #[test]
    fn every_default_voice_speaks_its_language() {
        for (lang, voices) in LANGUAGES {
            assert_eq!(default_voice_for(lang), Some(voices[0]));
            assert_eq!(voice_language(voices[0]), Some(*lang));
        }
    }
}
