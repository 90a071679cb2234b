//! Number ranges refused whatever the allow-lists say: nobody's workforce OTP goes there, and
//! toll-fraud traffic does. Each entry cites its source.
//!
//! Matching is by digit prefix of the E.164 number (without '+'), plus the NANP exchange rule
//! (`+1 NPA 976 XXXX`), which no prefix can express.

use crate::template::Channel;

/// Why a range is refused (for logs and the admin status; the answer's reason is always
/// `NUMBER_RANGE_BLOCKED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub range: &'static str,
    pub what: &'static str,
}

/// Non-geographic and international-network calling codes (ITU-T E.164 assignments as listed in
/// Google libphonenumber `resources/PhoneNumberMetadata.xml` v9.0.33, territory "001"; ITU-T
/// E.169 for +808/+979; ITU-T E.156 for the +991 trial code).
const NON_GEOGRAPHIC: &[(&str, &str)] = &[
    ("800", "UIFN international freephone (ITU-T E.169.1)"),
    ("808", "universal international shared-cost number (ITU-T E.169.3)"),
    ("870", "Inmarsat SNAC satellite"),
    ("878", "universal personal telecommunications (UPT)"),
    ("881", "GMSS satellite (Iridium, Globalstar)"),
    ("882", "international networks"),
    ("883", "international networks (mostly M2M)"),
    ("888", "UN OCHA disaster relief (ITU-T newslog)"),
    ("979", "international premium rate service (ITU-T E.169.2)"),
    ("991", "ITPCS trial code (ITU-T E.156)"),
];

/// NANP (+1) area codes refused on every channel: premium pay-per-call 900 (FTC "900-Number
/// Rule", 16 CFR 308; libphonenumber US `premiumRate` `900[2-9]\d{6}`).
const NANP_PREMIUM: &[(&str, &str)] = &[("1900", "NANP premium rate 900 (FTC 900-Number Rule)")];

/// NANP toll-free area codes (libphonenumber US `tollFree` `8(00|33|44|55|66|77|88)[2-9]\d{6}`):
/// refused for SMS (a toll-free number takes texts only when a provider text-enables it, and Okta
/// itself refuses toll-free numbers for phone enrolment: help.okta.com "Telephony" how-to tasks).
const NANP_TOLL_FREE: &[(&str, &str)] = &[
    ("1800", "NANP toll-free 800"),
    ("1833", "NANP toll-free 833"),
    ("1844", "NANP toll-free 844"),
    ("1855", "NANP toll-free 855"),
    ("1866", "NANP toll-free 866"),
    ("1877", "NANP toll-free 877"),
    ("1888", "NANP toll-free 888"),
];

/// Premium-rate and shared-cost ranges of other countries: the leading digits of the
/// `premiumRate` and `sharedCost` national number patterns of Google libphonenumber 9.0.43
/// (`resources/PhoneNumberMetadata.xml`, as shipped in the PyPI package `phonenumbers` 9.0.43;
/// `tests/e2e/test_guard_ranges.py` checks every prefix against it). Countries: those Okta's
/// toll-fraud guidance names most (support.okta.com, "How to mitigate toll fraud when using Okta
/// for voice authentication", citing Twilio: Latvia, Lithuania, Estonia, Cuba, Tunisia,
/// …) and large European markets. Sorted by prefix.
const NATIONAL_PREMIUM: &[(&str, &str)] = &[
    ("21688", "TN premium rate 88"),
    ("31900", "NL premium rate 900/906/909"),
    ("31906", "NL premium rate 900/906/909"),
    ("31909", "NL premium rate 900/906/909"),
    ("3290", "BE premium rate 90"),
    ("33836", "FR premium rate 89/836"),
    ("3389", "FR premium rate 89/836"),
    ("34803", "ES premium rate 803/806/807, shared cost 901/902"),
    ("34806", "ES premium rate 803/806/807, shared cost 901/902"),
    ("34807", "ES premium rate 803/806/807, shared cost 901/902"),
    ("34901", "ES premium rate 803/806/807, shared cost 901/902"),
    ("34902", "ES premium rate 803/806/807, shared cost 901/902"),
    ("359700", "BG premium rate 90, shared cost 700"),
    ("35990", "BG premium rate 90, shared cost 700"),
    ("370808", "LT shared cost 808"),
    ("370900", "LT premium rate 900/902/903/909/910"),
    ("370902", "LT premium rate 900/902/903/909/910"),
    ("370903", "LT premium rate 900/902/903/909/910"),
    ("370909", "LT premium rate 900/902/903/909/910"),
    ("370910", "LT premium rate 900/902/903/909/910"),
    ("37181", "LV shared cost 81"),
    ("37190", "LV premium rate 90"),
    ("37240", "EE premium rate 40xx/900"),
    ("372900", "EE premium rate 40xx/900"),
    ("41840", "CH premium rate 900/901/906, shared cost 840/842/844/848"),
    ("41842", "CH premium rate 900/901/906, shared cost 840/842/844/848"),
    ("41844", "CH premium rate 900/901/906, shared cost 840/842/844/848"),
    ("41848", "CH premium rate 900/901/906, shared cost 840/842/844/848"),
    ("41900", "CH premium rate 900/901/906, shared cost 840/842/844/848"),
    ("41901", "CH premium rate 900/901/906, shared cost 840/842/844/848"),
    ("41906", "CH premium rate 900/901/906, shared cost 840/842/844/848"),
    ("42081", "CZ premium rate 900/905/906/908/909/976, shared cost 81/83/84"),
    ("42083", "CZ premium rate 900/905/906/908/909/976, shared cost 81/83/84"),
    ("42084", "CZ premium rate 900/905/906/908/909/976, shared cost 81/83/84"),
    ("420900", "CZ premium rate 900/905/906/908/909/976, shared cost 81/83/84"),
    ("420905", "CZ premium rate 900/905/906/908/909/976, shared cost 81/83/84"),
    ("420906", "CZ premium rate 900/905/906/908/909/976, shared cost 81/83/84"),
    ("420908", "CZ premium rate 900/905/906/908/909/976, shared cost 81/83/84"),
    ("420909", "CZ premium rate 900/905/906/908/909/976, shared cost 81/83/84"),
    ("420976", "CZ premium rate 900/905/906/908/909/976, shared cost 81/83/84"),
    ("43810", "AT premium rate 900/901/930/931/939, shared cost 810/820/821/828"),
    ("43820", "AT premium rate 900/901/930/931/939, shared cost 810/820/821/828"),
    ("43821", "AT premium rate 900/901/930/931/939, shared cost 810/820/821/828"),
    ("43828", "AT premium rate 900/901/930/931/939, shared cost 810/820/821/828"),
    ("43900", "AT premium rate 900/901/930/931/939, shared cost 810/820/821/828"),
    ("43901", "AT premium rate 900/901/930/931/939, shared cost 810/820/821/828"),
    ("43930", "AT premium rate 900/901/930/931/939, shared cost 810/820/821/828"),
    ("43931", "AT premium rate 900/901/930/931/939, shared cost 810/820/821/828"),
    ("43939", "AT premium rate 900/901/930/931/939, shared cost 810/820/821/828"),
    ("44842", "GB premium rate 84[2-5]/87[0-3]/90/91/98[2-4]/989"),
    ("44843", "GB premium rate 84[2-5]/87[0-3]/90/91/98[2-4]/989"),
    ("44844", "GB premium rate 84[2-5]/87[0-3]/90/91/98[2-4]/989"),
    ("44845", "GB premium rate 84[2-5]/87[0-3]/90/91/98[2-4]/989"),
    ("44870", "GB premium rate 84[2-5]/87[0-3]/90/91/98[2-4]/989"),
    ("44871", "GB premium rate 84[2-5]/87[0-3]/90/91/98[2-4]/989"),
    ("44872", "GB premium rate 84[2-5]/87[0-3]/90/91/98[2-4]/989"),
    ("44873", "GB premium rate 84[2-5]/87[0-3]/90/91/98[2-4]/989"),
    ("4490", "GB premium rate 84[2-5]/87[0-3]/90/91/98[2-4]/989"),
    ("4491", "GB premium rate 84[2-5]/87[0-3]/90/91/98[2-4]/989"),
    ("44982", "GB premium rate 84[2-5]/87[0-3]/90/91/98[2-4]/989"),
    ("44983", "GB premium rate 84[2-5]/87[0-3]/90/91/98[2-4]/989"),
    ("44984", "GB premium rate 84[2-5]/87[0-3]/90/91/98[2-4]/989"),
    ("44989", "GB premium rate 84[2-5]/87[0-3]/90/91/98[2-4]/989"),
    ("48700", "PL premium rate 70[0134678], shared cost 801"),
    ("48701", "PL premium rate 70[0134678], shared cost 801"),
    ("48703", "PL premium rate 70[0134678], shared cost 801"),
    ("48704", "PL premium rate 70[0134678], shared cost 801"),
    ("48706", "PL premium rate 70[0134678], shared cost 801"),
    ("48707", "PL premium rate 70[0134678], shared cost 801"),
    ("48708", "PL premium rate 70[0134678], shared cost 801"),
    ("48801", "PL premium rate 70[0134678], shared cost 801"),
    ("49137", "DE premium 137[7-9]/900[135]/9009, shared cost 137[1-6]/138/180"),
    ("49138", "DE premium 137[7-9]/900[135]/9009, shared cost 137[1-6]/138/180"),
    ("49180", "DE premium 137[7-9]/900[135]/9009, shared cost 137[1-6]/138/180"),
    ("499001", "DE premium 137[7-9]/900[135]/9009, shared cost 137[1-6]/138/180"),
    ("499003", "DE premium 137[7-9]/900[135]/9009, shared cost 137[1-6]/138/180"),
    ("499005", "DE premium 137[7-9]/900[135]/9009, shared cost 137[1-6]/138/180"),
    ("499009", "DE premium 137[7-9]/900[135]/9009, shared cost 137[1-6]/138/180"),
    ("53807", "CU shared cost 807"),
];

/// Why `e164` (with '+') may not receive an OTP on `channel`, if it may not.
pub fn blocked(e164: &str, channel: Channel) -> Option<Blocked> {
    let digits = e164.strip_prefix('+').unwrap_or(e164);
    let by_prefix = |table: &'static [(&'static str, &'static str)]| {
        table.iter().find(|(p, _)| digits.starts_with(p)).map(|&(range, what)| Blocked { range, what })
    };
    by_prefix(NON_GEOGRAPHIC)
        .or_else(|| by_prefix(NANP_PREMIUM))
        .or_else(|| if channel == Channel::Sms { by_prefix(NANP_TOLL_FREE) } else { None })
        .or_else(|| by_prefix(NATIONAL_PREMIUM))
        .or_else(|| nanp_976(digits))
}

/// The 976 pay-per-call exchange in any NANP area code: `1 NPA 976 XXXX` (CPUC glossary,
/// "976 numbers"; BBB New York on pay-per-call exchanges).
fn nanp_976(digits: &str) -> Option<Blocked> {
    (digits.len() == 11 && digits.starts_with('1') && &digits[4..7] == "976")
        .then_some(Blocked { range: "1NPA976", what: "NANP 976 pay-per-call exchange" })
}
