//! Phone numbers: normalisation to E.164, masking for logs, and destination country detection
//! from the ITU calling code (with NANP area codes for +1). Deliberately does not validate number
//! ranges per country (AWS does that).
//!
//! Normalisation ([`E164::parse`]), in order:
//! 1. trim surrounding whitespace; more than [`MAX_INPUT_CHARS`] characters left is rejected
//!    before anything else is looked at;
//! 2. drop the separators ' ', '-', '.', '(', ')', U+00A0, U+2009 and U+202F; what remains must be
//!    digits, optionally preceded by a single '+' (so "(+34) 612…" is fine, "+3+4…" is not);
//! 3. without '+', a leading "00" international prefix becomes '+' ("0034…" → "+34…");
//! 4. without '+', one is prepended: Okta's admin Preview sends "9876543210" and the AWS
//!    reference implementation treats that as "+9876543210" (no national-format guessing);
//! 5. the result must be '+' and [`MIN_DIGITS`]..=[`MAX_DIGITS`] digits, the first not '0';
//! 6. the digits must begin with an assigned ITU-T country calling code.
//!
//! Country detection maps the calling code to an ISO 3166-1 alpha-2 code, refined by well-known
//! sub-ranges where one code serves several territories: NANP area codes for +1 (Canada and the
//! Caribbean/Pacific members; everything else, including the non-geographic toll-free 8xx and
//! premium 900 codes, is "US"), +7 6/7 → KZ, and a few others (see `SUB_RULES`). The Crown
//! Dependency ranges under +44 are best-effort. Choices where no ISO code exists: Ascension (+247)
//! → "SH" (its ISO parent), Kosovo (+383) → "XK" (the user-assigned code in common use).
//! Non-geographic codes (international freephone +800, shared cost +808, Inmarsat +870, GMSS and
//! international networks +881/+882/+883, UPT +878, +888, premium rate +979, trial +991) are assigned, so
//! they parse, but have no country: [`E164::country`] returns `None` for them.

use std::fmt;
use std::str::FromStr;

/// Longest accepted input, in characters, after trimming surrounding whitespace.
pub const MAX_INPUT_CHARS: usize = 32;
/// Fewest digits accepted after the '+'.
pub const MIN_DIGITS: usize = 8;
/// Most digits accepted after the '+' (the ITU-T E.164 maximum).
pub const MAX_DIGITS: usize = 15;

/// Why a raw phone number was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhoneError {
    /// Nothing but whitespace or separators.
    Empty,
    /// More than [`MAX_INPUT_CHARS`] characters of input.
    TooLong,
    /// A character other than digits, separators and one leading '+'.
    InvalidCharacter,
    /// Fewer than [`MIN_DIGITS`] digits.
    TooShort,
    /// More than [`MAX_DIGITS`] digits.
    TooLongDigits,
    /// The first digit after '+' (or after a "00" prefix) is 0.
    LeadingZero,
    /// The digits do not begin with an assigned country calling code.
    UnknownCallingCode,
}

impl fmt::Display for PhoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("phone number is empty"),
            Self::TooLong => {
                write!(f, "phone number input is longer than {MAX_INPUT_CHARS} characters")
            }
            Self::InvalidCharacter => {
                f.write_str("phone number may contain only digits, one leading '+', spaces, '-', '.', '(' and ')'")
            }
            Self::TooShort => write!(f, "phone number has fewer than {MIN_DIGITS} digits"),
            Self::TooLongDigits => write!(f, "phone number has more than {MAX_DIGITS} digits"),
            Self::LeadingZero => f.write_str("phone number country calling code cannot start with 0"),
            Self::UnknownCallingCode => {
                f.write_str("phone number does not start with an assigned country calling code")
            }
        }
    }
}

impl std::error::Error for PhoneError {}

/// A destination number in E.164 form: '+' then 8 to 15 digits, first digit 1-9, starting with an
/// assigned country calling code. Note that `Debug` shows the whole number: log [`E164::masked`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct E164(String);

impl E164 {
    /// Normalises then validates `raw` (see the module documentation for the exact rules).
    pub fn parse(raw: &str) -> Result<E164, PhoneError> {
        let s = raw.trim();
        if s.chars().nth(MAX_INPUT_CHARS).is_some() {
            return Err(PhoneError::TooLong);
        }
        let mut plus = false;
        let mut digits = String::with_capacity(MAX_INPUT_CHARS);
        for c in s.chars() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if !plus && digits.is_empty() => plus = true,
                ' ' | '-' | '.' | '(' | ')' | '\u{a0}' | '\u{2009}' | '\u{202f}' => {}
                _ => return Err(PhoneError::InvalidCharacter),
            }
        }
        if !plus && digits.is_empty() {
            return Err(PhoneError::Empty);
        }
        let digits = match digits.strip_prefix("00") {
            Some(rest) if !plus => rest,
            _ => digits.as_str(),
        };
        match digits.as_bytes().first() {
            None => return Err(PhoneError::TooShort),
            Some(b'0') => return Err(PhoneError::LeadingZero),
            Some(_) => {}
        }
        if digits.len() < MIN_DIGITS {
            return Err(PhoneError::TooShort);
        }
        if digits.len() > MAX_DIGITS {
            return Err(PhoneError::TooLongDigits);
        }
        if calling_code_len(digits).is_none() {
            return Err(PhoneError::UnknownCallingCode);
        }
        Ok(E164(format!("+{digits}")))
    }

    /// The number as "+" followed by digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For logs: '+', the first 2 digits, '*' for each further digit but the last 3, then the
    /// last 3 digits; same length as the number. "+34612345678" → "+34******678". Never shows
    /// more than 5 digits.
    pub fn masked(&self) -> String {
        let digits = self.digits();
        let n = digits.len();
        let mut out = String::with_capacity(n + 1);
        out.push('+');
        for (i, c) in digits.chars().enumerate() {
            out.push(if i < 2 || i + 3 >= n { c } else { '*' });
        }
        out
    }

    /// ISO 3166-1 alpha-2 country of the destination, e.g. "US", "CA", "JM", "ES", "GB"; `None`
    /// for the non-geographic calling codes (international freephone, satellite networks, …).
    pub fn country(&self) -> Option<&'static str> {
        country_for_digits(self.digits())
    }

    /// The country calling code, without '+': e.g. "1", "34", "353".
    pub fn calling_code(&self) -> &str {
        let digits = self.digits();
        // `parse` guarantees a known calling code; the fallback is never taken.
        digits.get(..calling_code_len(digits).unwrap_or(0)).unwrap_or("")
    }

    fn digits(&self) -> &str {
        self.0.strip_prefix('+').unwrap_or(&self.0)
    }
}

impl FromStr for E164 {
    type Err = PhoneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        E164::parse(s)
    }
}

/// Country of a phone number in any form [`E164::parse`] accepts; `None` if it does not parse or
/// has a non-geographic calling code.
pub fn country_of(e164: &str) -> Option<&'static str> {
    E164::parse(e164).ok()?.country()
}

/// Length of the assigned calling code `digits` starts with (codes are prefix-free).
fn calling_code_len(digits: &str) -> Option<usize> {
    (1..=3).find(|&n| {
        digits.get(..n).is_some_and(|p| lookup(CODES, p).is_some() || NON_GEOGRAPHIC.binary_search(&p).is_ok())
    })
}

fn country_for_digits(digits: &str) -> Option<&'static str> {
    let (code, rest) = digits.split_at_checked(calling_code_len(digits)?)?;
    if code == "1" {
        return Some(rest.get(..3).and_then(|area| lookup(NANP, area)).unwrap_or("US"));
    }
    (code.len() + 1..=digits.len())
        .find_map(|n| digits.get(..n).and_then(|p| lookup(SUB_RULES, p)))
        .or_else(|| lookup(CODES, code))
}

fn lookup(table: &'static [(&'static str, &'static str)], key: &str) -> Option<&'static str> {
    let i = table.binary_search_by(|(k, _)| (*k).cmp(key)).ok()?;
    table.get(i).map(|&(_, v)| v)
}

/// Assigned geographic ITU-T E.164 calling codes → the main ISO 3166-1 alpha-2 country, sorted.
#[rustfmt::skip]
static CODES: &[(&str, &str)] = &[
    ("1", "US"),
    ("20", "EG"), ("211", "SS"), ("212", "MA"), ("213", "DZ"), ("216", "TN"), ("218", "LY"),
    ("220", "GM"), ("221", "SN"), ("222", "MR"), ("223", "ML"), ("224", "GN"), ("225", "CI"),
    ("226", "BF"), ("227", "NE"), ("228", "TG"), ("229", "BJ"), ("230", "MU"), ("231", "LR"),
    ("232", "SL"), ("233", "GH"), ("234", "NG"), ("235", "TD"), ("236", "CF"), ("237", "CM"),
    ("238", "CV"), ("239", "ST"), ("240", "GQ"), ("241", "GA"), ("242", "CG"), ("243", "CD"),
    ("244", "AO"), ("245", "GW"), ("246", "IO"), ("247", "SH"), ("248", "SC"), ("249", "SD"),
    ("250", "RW"), ("251", "ET"), ("252", "SO"), ("253", "DJ"), ("254", "KE"), ("255", "TZ"),
    ("256", "UG"), ("257", "BI"), ("258", "MZ"), ("260", "ZM"), ("261", "MG"), ("262", "RE"),
    ("263", "ZW"), ("264", "NA"), ("265", "MW"), ("266", "LS"), ("267", "BW"), ("268", "SZ"),
    ("269", "KM"), ("27", "ZA"), ("290", "SH"), ("291", "ER"), ("297", "AW"), ("298", "FO"),
    ("299", "GL"),
    ("30", "GR"), ("31", "NL"), ("32", "BE"), ("33", "FR"), ("34", "ES"), ("350", "GI"),
    ("351", "PT"), ("352", "LU"), ("353", "IE"), ("354", "IS"), ("355", "AL"), ("356", "MT"),
    ("357", "CY"), ("358", "FI"), ("359", "BG"), ("36", "HU"), ("370", "LT"), ("371", "LV"),
    ("372", "EE"), ("373", "MD"), ("374", "AM"), ("375", "BY"), ("376", "AD"), ("377", "MC"),
    ("378", "SM"), ("379", "VA"), ("380", "UA"), ("381", "RS"), ("382", "ME"), ("383", "XK"),
    ("385", "HR"), ("386", "SI"), ("387", "BA"), ("389", "MK"), ("39", "IT"),
    ("40", "RO"), ("41", "CH"), ("420", "CZ"), ("421", "SK"), ("423", "LI"), ("43", "AT"),
    ("44", "GB"), ("45", "DK"), ("46", "SE"), ("47", "NO"), ("48", "PL"), ("49", "DE"),
    ("500", "FK"), ("501", "BZ"), ("502", "GT"), ("503", "SV"), ("504", "HN"), ("505", "NI"),
    ("506", "CR"), ("507", "PA"), ("508", "PM"), ("509", "HT"), ("51", "PE"), ("52", "MX"),
    ("53", "CU"), ("54", "AR"), ("55", "BR"), ("56", "CL"), ("57", "CO"), ("58", "VE"),
    ("590", "GP"), ("591", "BO"), ("592", "GY"), ("593", "EC"), ("594", "GF"), ("595", "PY"),
    ("596", "MQ"), ("597", "SR"), ("598", "UY"), ("599", "CW"),
    ("60", "MY"), ("61", "AU"), ("62", "ID"), ("63", "PH"), ("64", "NZ"), ("65", "SG"),
    ("66", "TH"), ("670", "TL"), ("672", "NF"), ("673", "BN"), ("674", "NR"), ("675", "PG"),
    ("676", "TO"), ("677", "SB"), ("678", "VU"), ("679", "FJ"), ("680", "PW"), ("681", "WF"),
    ("682", "CK"), ("683", "NU"), ("685", "WS"), ("686", "KI"), ("687", "NC"), ("688", "TV"),
    ("689", "PF"), ("690", "TK"), ("691", "FM"), ("692", "MH"),
    ("7", "RU"),
    ("81", "JP"), ("82", "KR"), ("84", "VN"), ("850", "KP"), ("852", "HK"), ("853", "MO"),
    ("855", "KH"), ("856", "LA"), ("86", "CN"), ("880", "BD"), ("886", "TW"),
    ("90", "TR"), ("91", "IN"), ("92", "PK"), ("93", "AF"), ("94", "LK"), ("95", "MM"),
    ("960", "MV"), ("961", "LB"), ("962", "JO"), ("963", "SY"), ("964", "IQ"), ("965", "KW"),
    ("966", "SA"), ("967", "YE"), ("968", "OM"), ("970", "PS"), ("971", "AE"), ("972", "IL"),
    ("973", "BH"), ("974", "QA"), ("975", "BT"), ("976", "MN"), ("977", "NP"), ("98", "IR"),
    ("992", "TJ"), ("993", "TM"), ("994", "AZ"), ("995", "GE"), ("996", "KG"), ("998", "UZ"),
];

/// Assigned calling codes that belong to no country (freephone, shared cost, satellite and
/// international networks, premium rate, trial), sorted.
static NON_GEOGRAPHIC: &[&str] = &["800", "808", "870", "878", "881", "882", "883", "888", "979", "991"];

/// NANP (+1) area codes outside the US, sorted: all Canadian ones (including non-geographic 600
/// and 622) and the Caribbean/Pacific members. Any other area code is "US".
#[rustfmt::skip]
static NANP: &[(&str, &str)] = &[
    ("204", "CA"), ("226", "CA"), ("236", "CA"), ("242", "BS"), ("246", "BB"), ("249", "CA"),
    ("250", "CA"), ("257", "CA"), ("263", "CA"), ("264", "AI"), ("268", "AG"), ("284", "VG"),
    ("289", "CA"), ("306", "CA"), ("340", "VI"), ("343", "CA"), ("345", "KY"), ("354", "CA"),
    ("365", "CA"), ("367", "CA"), ("368", "CA"), ("382", "CA"), ("387", "CA"), ("403", "CA"),
    ("416", "CA"), ("418", "CA"), ("428", "CA"), ("431", "CA"), ("437", "CA"), ("438", "CA"),
    ("441", "BM"), ("450", "CA"), ("460", "CA"), ("468", "CA"), ("473", "GD"), ("474", "CA"),
    ("506", "CA"), ("514", "CA"), ("519", "CA"), ("548", "CA"), ("579", "CA"), ("581", "CA"),
    ("584", "CA"), ("587", "CA"), ("600", "CA"), ("604", "CA"), ("613", "CA"), ("622", "CA"),
    ("639", "CA"), ("647", "CA"), ("649", "TC"), ("658", "JM"), ("664", "MS"), ("670", "MP"),
    ("671", "GU"), ("672", "CA"), ("683", "CA"), ("684", "AS"), ("705", "CA"), ("709", "CA"),
    ("721", "SX"), ("742", "CA"), ("753", "CA"), ("758", "LC"), ("767", "DM"), ("778", "CA"),
    ("780", "CA"), ("782", "CA"), ("784", "VC"), ("787", "PR"), ("807", "CA"), ("809", "DO"),
    ("819", "CA"), ("825", "CA"), ("829", "DO"), ("849", "DO"), ("867", "CA"), ("868", "TT"),
    ("869", "KN"), ("873", "CA"), ("876", "JM"), ("879", "CA"), ("902", "CA"), ("905", "CA"),
    ("939", "PR"), ("942", "CA"),
];

/// Digit prefixes (calling code included) of territories sharing a calling code other than +1,
/// sorted and prefix-free. The +44 Crown Dependency mobile ranges are best-effort.
#[rustfmt::skip]
static SUB_RULES: &[(&str, &str)] = &[
    ("2125288", "EH"), ("2125289", "EH"), // Western Sahara
    ("262269", "YT"), ("262639", "YT"), // Mayotte
    ("35818", "AX"), // Åland
    ("3906698", "VA"), // Vatican City
    ("441481", "GG"), ("441534", "JE"), ("441624", "IM"), ("447509", "JE"), ("447524", "IM"),
    ("447624", "IM"), ("4477003", "JE"), ("4477007", "JE"), ("4477008", "JE"), ("447781", "GG"),
    ("447797", "JE"), ("447829", "JE"), ("447839", "GG"), ("4479111", "GG"), ("4479117", "GG"),
    ("447924", "IM"), ("447937", "JE"),
    ("4779", "SJ"), // Svalbard
    ("5993", "BQ"), ("5994", "BQ"), ("5997", "BQ"), // Sint Eustatius, Saba, Bonaire
    ("6189162", "CC"), ("6189164", "CX"), // Cocos (Keeling) and Christmas Islands
    ("6721", "AQ"), // Australian Antarctic Territory
    ("76", "KZ"), ("77", "KZ"), // Kazakhstan
];

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> E164 {
        E164::parse(raw).unwrap_or_else(|e| panic!("{raw:?} should parse: {e}"))
    }

    fn country(raw: &str) -> Option<&'static str> {
        parse(raw).country()
    }

    fn assert_rejects(err: PhoneError, raws: &[&str]) {
        for raw in raws {
            assert_eq!(E164::parse(raw), Err(err), "{raw:?}");
        }
    }

    #[test]
    fn adds_missing_plus() {
        let n = parse("9876543210");
        assert_eq!(n.as_str(), "+9876543210");
        assert_eq!(n.country(), Some("IR"));
        assert_eq!(n.calling_code(), "98");
    }

    #[test]
    fn strips_formatting() {
        let n = parse("  +1 (415) 555-0123 ");
        assert_eq!(n.as_str(), "+14155550123");
        assert_eq!(n.country(), Some("US"));
        assert_eq!(parse("(+34) 612.345.678").as_str(), "+34612345678");
        assert_eq!(parse("+44\u{a0}20\u{2009}7946\u{202f}0958").as_str(), "+442079460958");
    }

    #[test]
    fn converts_00_prefix() {
        assert_eq!(parse("0034612345678").as_str(), "+34612345678");
        assert_eq!(parse("00 44 20 7946 0958").as_str(), "+442079460958");
        assert_eq!(E164::parse("+0034612345678"), Err(PhoneError::LeadingZero));
        assert_eq!(E164::parse("00"), Err(PhoneError::TooShort));
    }

    #[test]
    fn rejects_letters() {
        assert_rejects(
            PhoneError::InvalidCharacter,
            &["+1415555O123", "+1 415 CALL NOW", "+34612345678#", "+34*612345678", "1\t2"],
        );
    }

    #[test]
    fn rejects_inner_plus() {
        assert_rejects(
            PhoneError::InvalidCharacter,
            &["34+612345678", "++34612345678", "+34 +612345678", "+34612345678+"],
        );
    }

    #[test]
    fn rejects_empty() {
        assert_rejects(PhoneError::Empty, &["", "   ", "( )", "-.-", "\u{a0}"]);
    }

    #[test]
    fn rejects_too_short() {
        assert_rejects(PhoneError::TooShort, &["+", "+1234567", "1234567", "+34 612"]);
        assert_eq!(parse("+12345678").as_str(), "+12345678");
    }

    #[test]
    fn rejects_too_long() {
        assert_eq!(E164::parse("+1234567890123456"), Err(PhoneError::TooLongDigits));
        assert_eq!(parse("+123456789012345").as_str(), "+123456789012345");
    }

    #[test]
    fn rejects_leading_zero_after_plus() {
        assert_eq!(E164::parse("+0612345678"), Err(PhoneError::LeadingZero));
        assert_eq!(E164::parse("0612345678"), Err(PhoneError::LeadingZero));
    }

    #[test]
    fn rejects_oversized_input_fast() {
        let huge = "1".repeat(10_000_000);
        let start = std::time::Instant::now();
        assert_eq!(E164::parse(&huge), Err(PhoneError::TooLong));
        assert!(start.elapsed() < std::time::Duration::from_millis(50));
        // The bound counts characters of trimmed input, not digits or bytes.
        assert_eq!(E164::parse(&format!("{:40}", "+34612345678")), Ok(parse("+34612345678")));
        assert_eq!(E164::parse(&"-".repeat(33)), Err(PhoneError::TooLong));
        assert_eq!(parse(&format!("+34{}612345678", "\u{2009}".repeat(20))).as_str(), "+34612345678");
    }

    #[test]
    fn masks_keep_two_leading_three_trailing() {
        assert_eq!(parse("+34612345678").masked(), "+34******678");
        // Same shape as the Spanish one: 11 digits, 6 masked (length preserved).
        assert_eq!(parse("+14155550123").masked(), "+14******123");
        assert_eq!(parse("+12345678").masked(), "+12***678");
    }

    #[test]
    fn masks_never_reveal_more_than_five_digits() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..2000 {
            let len = MIN_DIGITS + i % (MAX_DIGITS - MIN_DIGITS + 1);
            let (code, _) = CODES[i % CODES.len()];
            let mut raw = format!("+{code}");
            while raw.len() <= len {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                raw.push(char::from(b'0' + (seed >> 60) as u8 % 10));
            }
            let n = parse(&raw);
            let m = n.masked();
            assert_eq!(m.len(), raw.len(), "{m}");
            assert!(m.chars().filter(char::is_ascii_digit).count() <= 5, "{m}");
            assert_eq!(m[..3], raw[..3]);
            assert_eq!(m[m.len() - 3..], raw[raw.len() - 3..]);
            assert!(m[3..m.len() - 3].chars().all(|c| c == '*'), "{m}");
        }
    }

    #[test]
    fn nanp_splits_us_ca_caribbean() {
        #[rustfmt::skip]
        let cases = [
            ("+14165550123", "CA"), ("+16045550123", "CA"), ("+18765550123", "JM"),
            ("+16585550123", "JM"), ("+17875550123", "PR"), ("+19395550123", "PR"),
            ("+12125550123", "US"), ("+18095550123", "DO"), ("+18495550123", "DO"),
            ("+12425550123", "BS"), ("+16715550123", "GU"), ("+18005550123", "US"),
            ("+19005550123", "US"),
        ];
        for (raw, cc) in cases {
            assert_eq!(country(raw), Some(cc), "{raw}");
            assert_eq!(parse(raw).calling_code(), "1");
        }
    }

    #[test]
    fn kz_vs_ru() {
        assert_eq!(country("+77012345678"), Some("KZ"));
        assert_eq!(country("+76012345678"), Some("KZ"));
        assert_eq!(country("+79161234567"), Some("RU"));
        assert_eq!(country("+74951234567"), Some("RU"));
        assert_eq!(parse("+77012345678").calling_code(), "7");
    }

    #[test]
    fn shared_codes_use_sub_rules() {
        #[rustfmt::skip]
        let cases = [
            ("+390669812345", "VA"), ("+390612345678", "IT"), ("+4779021234", "SJ"),
            ("+4722123456", "NO"), ("+35818123456", "AX"), ("+358401234567", "FI"),
            ("+262269612345", "YT"), ("+262639123456", "YT"), ("+262692123456", "RE"),
            ("+59937123456", "BQ"), ("+59997123456", "CW"), ("+441481123456", "GG"),
            ("+447700900123", "GB"), ("+447797123456", "JE"), ("+447624123456", "IM"),
            ("+212528812345", "EH"), ("+212612345678", "MA"), ("+61891621234", "CC"),
            ("+61412345678", "AU"), ("+672323456", "NF"), ("+3791234567", "VA"),
        ];
        for (raw, cc) in cases {
            assert_eq!(country(raw), Some(cc), "{raw}");
        }
    }

    #[test]
    fn spain_uk_germany_japan_brazil_india() {
        #[rustfmt::skip]
        let cases = [
            ("+34612345678", "ES", "34"), ("+447400123456", "GB", "44"),
            ("+4930123456", "DE", "49"), ("+819012345678", "JP", "81"),
            ("+5511912345678", "BR", "55"), ("+919876543210", "IN", "91"),
            ("+353851234567", "IE", "353"),
        ];
        for (raw, cc, code) in cases {
            let n = parse(raw);
            assert_eq!((n.country(), n.calling_code()), (Some(cc), code), "{raw}");
        }
        assert_eq!(country_of("0044 20 7946 0958"), Some("GB"));
        assert_eq!(country_of("not a number"), None);
        assert_eq!("+34612345678".parse::<E164>(), Ok(parse("0034612345678")));
    }

    #[test]
    fn unknown_code_rejected() {
        assert_rejects(
            PhoneError::UnknownCallingCode,
            &["+2101234567", "+2801234567", "+9991234567", "+6931234567", "+4221234567"],
        );
    }

    #[test]
    fn non_geographic_codes_parse_without_country() {
        for raw in ["+80012345678", "+881612345678", "+882161234567", "+870773123456"] {
            let n = parse(raw);
            assert_eq!((n.country(), n.calling_code()), (None, &raw[1..4]), "{raw}");
        }
    }

    fn assert_sorted_prefix_free(keys: &[&str]) {
        for w in keys.windows(2) {
            assert!(w[0] < w[1], "not sorted: {} then {}", w[0], w[1]);
        }
        for a in keys {
            assert!(!a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()), "{a}");
            for b in keys {
                assert!(a == b || !b.starts_with(a), "{a} is a prefix of {b}");
            }
        }
    }

    fn is_iso(cc: &str) -> bool {
        cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_uppercase())
    }

    #[test]
    fn every_country_code_resolves() {
        let mut all: Vec<&str> = CODES.iter().map(|&(c, _)| c).collect();
        all.extend_from_slice(NON_GEOGRAPHIC);
        all.sort_unstable();
        assert_sorted_prefix_free(&all);
        assert_sorted_prefix_free(&CODES.iter().map(|&(c, _)| c).collect::<Vec<_>>());
        assert_sorted_prefix_free(NON_GEOGRAPHIC);
        for &(code, cc) in CODES {
            assert!((1..=3).contains(&code.len()) && !code.starts_with('0'), "{code}");
            assert!(is_iso(cc), "{code} → {cc}");
            let n = parse(&format!("+{code:0<10}"));
            assert_eq!((n.calling_code(), n.country()), (code, Some(cc)));
        }
        assert!(CODES.len() > 200);
    }

    #[test]
    fn sub_rule_tables_are_consistent() {
        assert_sorted_prefix_free(&NANP.iter().map(|&(a, _)| a).collect::<Vec<_>>());
        for &(area, cc) in NANP {
            assert!(area.len() == 3 && matches!(area.as_bytes()[0], b'2'..=b'9'), "{area}");
            assert!(is_iso(cc) && cc != "US", "{area} → {cc}");
        }
        assert_sorted_prefix_free(&SUB_RULES.iter().map(|&(p, _)| p).collect::<Vec<_>>());
        for &(prefix, cc) in SUB_RULES {
            let len = calling_code_len(prefix).unwrap_or(usize::MAX);
            assert!(len < prefix.len() && !prefix.starts_with('1'), "{prefix}");
            assert!(is_iso(cc), "{prefix} → {cc}");
            assert_eq!(country(&format!("+{prefix:0<12}")), Some(cc));
        }
    }

    #[test]
    fn error_messages_are_precise() {
        assert_eq!(PhoneError::TooShort.to_string(), "phone number has fewer than 8 digits");
        assert_eq!(PhoneError::TooLongDigits.to_string(), "phone number has more than 15 digits");
        assert_eq!(PhoneError::TooLong.to_string(), "phone number input is longer than 32 characters");
        let err: Box<dyn std::error::Error> = Box::new(PhoneError::UnknownCallingCode);
        assert!(err.to_string().contains("calling code"));
    }

    #[test]
    fn never_panics_on_short_inputs() {
        let alphabet: Vec<char> = "+0123456789 a(".chars().collect();
        let mut inputs = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> =
                inputs.iter().flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}"))).collect();
            inputs.extend(longer);
        }
        for raw in &inputs {
            if let Ok(n) = E164::parse(raw) {
                let _ = (n.masked(), n.country(), n.calling_code());
            }
            let _ = country_of(raw);
        }
        // A few longer ones, over every calling code, around the digit-count bounds.
        for &(code, _) in CODES {
            for len in 0..=MAX_DIGITS + 1 {
                let raw = format!("{code:9<len$}");
                if let Ok(n) = E164::parse(&raw) {
                    let _ = (n.masked(), n.country(), n.calling_code());
                }
            }
        }
    }
}
