//! Locales as Okta sends them (`EN-US`, `en_us`, `es`, `zh-CN`) normalised to the BCP-47 form the
//! templates are keyed by (`en-US`, `es`, `cmn-CN`), and the fallback chain a template lookup
//! walks: exact locale → a locale of the same language → the configured default.
//!
//! Deliberately absent: any knowledge of which templates exist; `template` owns that.

use std::fmt;

/// A normalised locale: lower-case language (2–3 letters), optional upper-case region
/// (2 letters or 3 digits).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Locale {
    language: String,
    region: Option<String>,
}

impl Locale {
    /// Parses `en-US`, `EN-US`, `en_us`, `es`, `es-419`; maps language aliases Okta and Polly
    /// spell differently (`zh` → `cmn`, `no`/`nn` → `nb`, `ar` → `arb`). Anything else → `None`.
    pub fn parse(raw: &str) -> Option<Locale> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 35 {
            return None;
        }
        let mut parts = raw.split(['-', '_']);
        let language = parts.next()?.to_ascii_lowercase();
        if !(2..=3).contains(&language.len()) || !language.bytes().all(|b| b.is_ascii_lowercase()) {
            return None;
        }
        let language = match language.as_str() {
            "zh" => "cmn".to_string(),
            "no" | "nn" => "nb".to_string(),
            "ar" => "arb".to_string(),
            _ => language,
        };
        let mut region = None;
        for part in parts {
            // Skip script subtags (Hans, Latn) and variants; keep the first region subtag.
            let is_region = (part.len() == 2 && part.bytes().all(|b| b.is_ascii_alphabetic()))
                || (part.len() == 3 && part.bytes().all(|b| b.is_ascii_digit()));
            let is_other = (4..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric());
            if is_region && region.is_none() {
                region = Some(part.to_ascii_uppercase());
            } else if !is_region && !is_other {
                return None;
            }
        }
        Some(Locale { language, region })
    }

    pub fn language(&self) -> &str {
        &self.language
    }

    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.region {
            Some(r) => write!(f, "{}-{}", self.language, r),
            None => f.write_str(&self.language),
        }
    }
}

/// The region a bare language means when several regional templates exist and the configured
/// default is of another language: the most widely used variant.
pub fn preferred_region(language: &str) -> Option<&'static str> {
    Some(match language {
        "en" => "US",
        "es" => "ES",
        "fr" => "FR",
        "pt" => "BR",
        "de" => "DE",
        "it" => "IT",
        "nl" => "NL",
        "sv" => "SE",
        "da" => "DK",
        "nb" => "NO",
        "pl" => "PL",
        "ro" => "RO",
        "tr" => "TR",
        "ja" => "JP",
        "ko" => "KR",
        "cmn" => "CN",
        "ru" => "RU",
        "is" => "IS",
        "cy" => "GB",
        _ => return None,
    })
}

/// The locales to try, in order, for a requested locale: the exact locale, then the same
/// language (the default locale if it shares the language, the bare language, the preferred
/// region), then the default. `candidates` lists the locales that exist, for the
/// "any locale of this language" step; the result contains only locales from it.
pub fn fallback_chain<'a>(requested: Option<&Locale>, default: &Locale, candidates: &'a [Locale]) -> Vec<&'a Locale> {
    let mut chain: Vec<&'a Locale> = Vec::with_capacity(4);
    let mut push = |l: Option<&'a Locale>| {
        if let Some(l) = l {
            if !chain.contains(&l) {
                chain.push(l);
            }
        }
    };
    let find = |want: &Locale| candidates.iter().find(|c| *c == want);
    if let Some(req) = requested {
        push(find(req));
        let lang = req.language();
        if default.language() == lang {
            push(find(default));
        }
        push(find(&Locale { language: lang.to_string(), region: None }));
        if let Some(r) = preferred_region(lang) {
            push(find(&Locale { language: lang.to_string(), region: Some(r.to_string()) }));
        }
        // Any other locale of the language, in a stable order.
        push(candidates.iter().filter(|c| c.language() == lang).min());
    }
    push(find(default));
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &str) -> Locale {
        Locale::parse(s).unwrap()
    }

    #[test]
    fn normalises_case_and_separator() {
        assert_eq!(l("EN-US").to_string(), "en-US");
        assert_eq!(l("en_us").to_string(), "en-US");
        assert_eq!(l(" es ").to_string(), "es");
        assert_eq!(l("es-419").to_string(), "es-419");
        assert_eq!(l("zh-Hans-CN").to_string(), "cmn-CN");
        assert_eq!(l("zh-CN").to_string(), "cmn-CN");
        assert_eq!(l("no").to_string(), "nb");
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "e", "english", "en-US-x-", "12-US", "en--US", "en-U$", &"a".repeat(40)] {
            assert_eq!(Locale::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn falls_back_from_region_to_language_to_default() {
        let have: Vec<Locale> =
            ["en-US", "en-GB", "es-ES", "es-US", "fr-FR", "fr-CA", "pt-BR", "pt-PT"].map(l).to_vec();
        let en = l("en-US");
        let first = |req: &str| fallback_chain(Some(&l(req)), &en, &have)[0].to_string();
        assert_eq!(first("EN-US"), "en-US");
        assert_eq!(first("en-GB"), "en-GB");
        assert_eq!(first("en-AU"), "en-US");
        assert_eq!(first("es"), "es-ES");
        assert_eq!(first("es-MX"), "es-ES");
        assert_eq!(first("fr-BE"), "fr-FR");
        assert_eq!(first("pt"), "pt-BR");
        assert_eq!(first("xx-YY"), "en-US");
        assert_eq!(fallback_chain(None, &en, &have)[0].to_string(), "en-US");
    }

    #[test]
    fn bare_language_template_wins_over_regional_guess() {
        let have: Vec<Locale> = ["en-US", "es", "es-US"].map(l).to_vec();
        let chain = fallback_chain(Some(&l("es-AR")), &l("en-US"), &have);
        let names: Vec<String> = chain.iter().map(|c| c.to_string()).collect();
        assert_eq!(names, ["es", "en-US"]);
    }

    #[test]
    fn chain_is_empty_when_nothing_exists() {
        assert!(fallback_chain(Some(&l("en-US")), &l("en-US"), &[]).is_empty());
    }
}
