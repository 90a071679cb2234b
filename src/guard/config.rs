//! The guard's settings: `OTP_GUARD_MODE`, `OTP_ALLOWED_COUNTRIES`, `OTP_VOICE_ALLOWED_COUNTRIES`,
//! `OTP_RATE_LIMITS` (and `ENVIRONMENT`, which makes the allow-list required in production).
//!
//! Default velocity limits, and why (README has the same table):
//!
//! | key | default | reasoning |
//! |---|---|---|
//! | number | 3 / 10 min, 10 / day | Okta allows one challenge per number per 30 s; a person retrying thrice in ten minutes is already stuck; Telnyx's Verify default is 3 per 10 min |
//! | prefix | 20 / hour | pumping walks consecutive numbers of one range; a block of 10,000 numbers rarely holds 20 of one org's staff enrolling in the same hour |
//! | country | 1,000 / hour | a budget: what a large org's whole workforce in one country needs at peak; set it from your own traffic |
//! | user | 5 / hour, 20 / day | one person, all their numbers |
//! | enrollment, in addition | number 2 / hour, prefix 5 / hour, country 100 / hour, user 3 / day | self-service enrolment is the usual pumping vector: nobody enrols a phone more than a few times |

use std::collections::BTreeSet;

use serde::Deserialize;

use super::window::Window;
use crate::settings::{bad, ConfigError};

/// What the guard does with its decisions (`OTP_GUARD_MODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Refuse what it decides to refuse (the default).
    Enforce,
    /// Decide and log, but send anyway: to tune the limits on real traffic first.
    Monitor,
    /// No checks, no counters.
    Off,
}

/// A country allow-list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Countries {
    All,
    Only(BTreeSet<String>),
}

impl Countries {
    pub fn allows(&self, country: Option<&str>) -> bool {
        match (self, country) {
            (Countries::All, _) => true,
            (Countries::Only(set), Some(c)) => set.contains(c),
            (Countries::Only(_), None) => false,
        }
    }
}

/// "At most `max` per `per_s` seconds".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub max: u64,
    pub per_s: u64,
}

/// Rates per key kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindRates {
    pub number: Vec<Rate>,
    pub prefix: Vec<Rate>,
    pub country: Vec<Rate>,
    pub user: Vec<Rate>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub all: KindRates,
    /// Applied in addition to `all` for `com.okta.user.telephony.pre-enrollment`.
    pub enrollment: KindRates,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardConfig {
    pub mode: Mode,
    pub sms_countries: Countries,
    pub voice_countries: Countries,
    pub limits: Limits,
}

const fn r(max: u64, per_s: u64) -> Rate {
    Rate { max, per_s }
}

pub fn default_limits() -> Limits {
    Limits {
        all: KindRates {
            number: vec![r(3, 600), r(10, 86_400)],
            prefix: vec![r(20, 3_600)],
            country: vec![r(1_000, 3_600)],
            user: vec![r(5, 3_600), r(20, 86_400)],
        },
        enrollment: KindRates {
            number: vec![r(2, 3_600)],
            prefix: vec![r(5, 3_600)],
            country: vec![r(100, 3_600)],
            user: vec![r(3, 86_400)],
        },
    }
}

/// `OTP_RATE_LIMITS` as written: each key given replaces that key's default windows (`[]` turns
/// it off); keys left out keep their defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RatesJson {
    number: Option<Vec<Rate>>,
    prefix: Option<Vec<Rate>>,
    country: Option<Vec<Rate>>,
    user: Option<Vec<Rate>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsJson {
    number: Option<Vec<Rate>>,
    prefix: Option<Vec<Rate>>,
    country: Option<Vec<Rate>>,
    user: Option<Vec<Rate>>,
    enrollment: Option<RatesJson>,
}

const S_LIMITS: &str = "OTP_RATE_LIMITS";
const MAX_WINDOWS: usize = 4;

fn merge(into: &mut KindRates, given: RatesJson) -> Result<(), ConfigError> {
    for (slot, value) in [
        (&mut into.number, given.number),
        (&mut into.prefix, given.prefix),
        (&mut into.country, given.country),
        (&mut into.user, given.user),
    ] {
        if let Some(rates) = value {
            if rates.len() > MAX_WINDOWS {
                return Err(bad(S_LIMITS, format!("at most {MAX_WINDOWS} windows per key")));
            }
            if rates.iter().any(|w| !(1..=1_000_000_000).contains(&w.max) || !(1..=604_800).contains(&w.per_s)) {
                return Err(bad(S_LIMITS, "each window needs max 1–1000000000 and per_s 1–604800 (a week)"));
            }
            *slot = rates;
        }
    }
    Ok(())
}

fn parse_limits(raw: Option<&str>) -> Result<Limits, ConfigError> {
    let mut limits = default_limits();
    let Some(raw) = raw else { return Ok(limits) };
    let json: LimitsJson = serde_json::from_str(raw).map_err(|_| {
        bad(
            S_LIMITS,
            r#"must be JSON like {"number":[{"max":3,"per_s":600}],"prefix":[…],"country":[…],"user":[…],"enrollment":{…}}"#,
        )
    })?;
    let all = RatesJson { number: json.number, prefix: json.prefix, country: json.country, user: json.user };
    merge(&mut limits.all, all)?;
    if let Some(e) = json.enrollment {
        merge(&mut limits.enrollment, e)?;
    }
    Ok(limits)
}

fn parse_countries(setting: &'static str, raw: &str) -> Result<Countries, ConfigError> {
    if raw.trim() == "*" {
        return Ok(Countries::All);
    }
    let mut set = BTreeSet::new();
    for code in crate::settings::comma_list(raw) {
        if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(bad(setting, format!("`{code}` is not an ISO 3166 alpha-2 country code (or use `*`)")));
        }
        set.insert(code.to_ascii_uppercase());
    }
    if set.is_empty() {
        return Err(bad(setting, "lists no country (use `*` for all)"));
    }
    Ok(Countries::Only(set))
}

impl GuardConfig {
    pub fn from_getter(get: &impl Fn(&str) -> Option<String>) -> Result<GuardConfig, ConfigError> {
        let mode = match get("OTP_GUARD_MODE").as_deref().unwrap_or("enforce") {
            "enforce" => Mode::Enforce,
            "monitor" => Mode::Monitor,
            "off" => Mode::Off,
            other => return Err(bad("OTP_GUARD_MODE", format!("`{other}` is none of `enforce`, `monitor`, `off`"))),
        };
        let production = get("ENVIRONMENT").as_deref() == Some("production");
        let sms_countries = match get("OTP_ALLOWED_COUNTRIES") {
            Some(raw) => parse_countries("OTP_ALLOWED_COUNTRIES", &raw)?,
            None if production => {
                return Err(bad(
                    "OTP_ALLOWED_COUNTRIES",
                    "required in production: the countries your users' phones are in (e.g. US,CA,GB), or `*`",
                ))
            }
            None => Countries::All,
        };
        let voice_countries = match get("OTP_VOICE_ALLOWED_COUNTRIES") {
            Some(raw) => parse_countries("OTP_VOICE_ALLOWED_COUNTRIES", &raw)?,
            None => sms_countries.clone(),
        };
        let limits = parse_limits(get("OTP_RATE_LIMITS").as_deref())?;
        Ok(GuardConfig { mode, sms_countries, voice_countries, limits })
    }
}

/// The windows of one key kind for a request: `w:` windows count every request, `e:` windows only
/// enrolments.
pub fn windows(all: &[Rate], enrollment: Option<&[Rate]>) -> Vec<Window> {
    let named = |scope: &str, rates: &[Rate]| -> Vec<Window> {
        rates.iter().map(|r| Window { name: format!("{scope}:{}", r.per_s), max: r.max, per_s: r.per_s }).collect()
    };
    let mut out = named("w", all);
    if let Some(e) = enrollment {
        out.extend(named("e", e));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn defaults_everywhere_but_production() {
        let c = GuardConfig::from_getter(&get(&[])).unwrap();
        assert_eq!((c.mode, &c.sms_countries), (Mode::Enforce, &Countries::All));
        assert_eq!(c.limits, default_limits());
        let e = GuardConfig::from_getter(&get(&[("ENVIRONMENT", "production")])).unwrap_err();
        assert_eq!(e.setting, "OTP_ALLOWED_COUNTRIES");
        let c = GuardConfig::from_getter(&get(&[("ENVIRONMENT", "production"), ("OTP_ALLOWED_COUNTRIES", "us, gb")]))
            .unwrap();
        assert!(c.sms_countries.allows(Some("US")) && c.sms_countries.allows(Some("GB")));
        assert!(!c.sms_countries.allows(Some("LV")) && !c.sms_countries.allows(None));
        assert_eq!(c.voice_countries, c.sms_countries, "voice defaults to the SMS list");
    }

    #[test]
    fn voice_list_and_modes() {
        let c = GuardConfig::from_getter(&get(&[
            ("OTP_ALLOWED_COUNTRIES", "US,CA"),
            ("OTP_VOICE_ALLOWED_COUNTRIES", "US"),
            ("OTP_GUARD_MODE", "monitor"),
        ]))
        .unwrap();
        assert!(!c.voice_countries.allows(Some("CA")) && c.sms_countries.allows(Some("CA")));
        assert_eq!(c.mode, Mode::Monitor);
        for (k, v) in [("OTP_GUARD_MODE", "block"), ("OTP_ALLOWED_COUNTRIES", "USA"), ("OTP_ALLOWED_COUNTRIES", ",")] {
            assert_eq!(GuardConfig::from_getter(&get(&[(k, v)])).unwrap_err().setting, k, "{k}={v}");
        }
    }

    #[test]
    fn rate_limits_replace_per_key_and_are_bounded() {
        let c = GuardConfig::from_getter(&get(&[(
            "OTP_RATE_LIMITS",
            r#"{"number":[{"max":1,"per_s":60}],"user":[],"enrollment":{"prefix":[{"max":2,"per_s":3600}]}}"#,
        )]))
        .unwrap();
        assert_eq!(c.limits.all.number, vec![r(1, 60)]);
        assert!(c.limits.all.user.is_empty());
        assert_eq!(c.limits.all.prefix, default_limits().all.prefix);
        assert_eq!(c.limits.enrollment.prefix, vec![r(2, 3600)]);
        for bad_json in [
            r#"{"numbers":[]}"#,
            r#"{"number":[{"max":0,"per_s":60}]}"#,
            r#"{"number":[{"max":1,"per_s":9999999}]}"#,
            r#"{"number":[{"max":1,"per_s":1,"x":1}]}"#,
            "[]",
        ] {
            let e = GuardConfig::from_getter(&get(&[("OTP_RATE_LIMITS", bad_json)])).unwrap_err();
            assert_eq!(e.setting, "OTP_RATE_LIMITS", "{bad_json}");
        }
    }

    #[test]
    fn enrollment_windows_are_counted_apart() {
        let w = windows(&[r(3, 600)], Some(&[r(2, 3600)]));
        let names: Vec<&str> = w.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["w:600", "e:3600"]);
    }
}
