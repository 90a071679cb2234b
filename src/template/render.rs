//! Rendering a template with the OTP: plain digits for SMS; for voice, one digit at a time with
//! a pause after each, so text-to-speech says "four, eight, two" rather than "four hundred…".
//!
//! The code is the only thing interpolated and it is digits by construction (`telephony::request`
//! checks it); voice output is XML-escaped regardless.

use super::{Channel, Template};

/// Pause between spoken digits.
const DIGIT_PAUSE: &str = r#"<break time="400ms"/>"#;

/// Substitutes the code for `{{otp}}` (and the legacy `@otp2`, `@otp` markers).
pub fn render(template: &Template, channel: Channel, otp: &str) -> String {
    let code = match channel {
        Channel::Sms => otp.to_string(),
        Channel::Voice => spoken_digits(otp),
    };
    // `@otp2` first: `@otp` is its prefix.
    template.body.replace("{{otp}}", &code).replace("@otp2", &code).replace("@otp", &code)
}

/// `482913` → `4<break/>8<break/>2<break/>9<break/>1<break/>3`, each digit escaped.
fn spoken_digits(otp: &str) -> String {
    let mut out = String::with_capacity(otp.len() * (DIGIT_PAUSE.len() + 1));
    for (i, c) in otp.chars().enumerate() {
        if i > 0 {
            out.push_str(DIGIT_PAUSE);
        }
        out.push_str(&crate::ssml::escape(c.encode_utf8(&mut [0; 4])));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::tests::{sms, voice};

    #[test]
    fn sms_gets_plain_digits_everywhere() {
        assert_eq!(render(&sms("Code {{otp}}; again {{otp}}"), Channel::Sms, "905127"), "Code 905127; again 905127");
    }

    #[test]
    fn voice_speaks_digit_by_digit() {
        let out = render(&voice("<speak>Code {{otp}}.</speak>", "JOANNA"), Channel::Voice, "482");
        assert_eq!(out, r#"<speak>Code 4<break time="400ms"/>8<break time="400ms"/>2.</speak>"#);
        assert!(crate::ssml::validate(&out).is_ok());
        assert!(!out.contains("482"));
    }

    #[test]
    fn legacy_markers_are_all_replaced_regardless_of_order() {
        let t = sms("first @otp2 then @otp and @otp");
        assert_eq!(render(&t, Channel::Sms, "1234"), "first 1234 then 1234 and 1234");
    }

    #[test]
    fn rendered_voice_stays_within_the_api_limit() {
        let t = voice("<speak>{{otp}} {{otp}}</speak>", "JOANNA");
        let out = render(&t, Channel::Voice, "1234567890");
        assert!(out.len() <= 2 * super::super::VOICE_OTP_EXPANSION + 20);
    }
}
