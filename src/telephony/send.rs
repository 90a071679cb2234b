//! Sending the rendered message through End User Messaging: choosing the origination identity,
//! building the `SendTextMessage`/`SendVoiceMessage` input, signing, and retrying only where it
//! cannot cause a double send — throttling, 5xx and network errors before any response, and only
//! while the deadline leaves room. Never after AWS accepted a message; never after a timeout
//! (AWS may have accepted it).

use std::collections::BTreeMap;

use crate::aws::messaging::{self, SendFailure, SendTextMessage, SendVoiceMessage};
use crate::aws::{sign, Credentials};
use crate::edge::{Clock, FetchError, Http, HttpRequest};
use crate::retry::{self, Effect, Failed};
use crate::telephony::config::MessagingConfig;

pub const MAX_ATTEMPTS: u32 = 3;
/// Time kept back from the deadline to build and send the answer.
pub const ANSWER_MARGIN_MS: u64 = 100;
/// An attempt is not started with less time than this left.
const MIN_ATTEMPT_MS: u64 = 150;
/// Retries within Okta's 3 s: after 40 and 120 ms, only while a whole attempt still fits.
const RETRY: retry::Policy = retry::Policy {
    attempts: MAX_ATTEMPTS,
    backoff_ms: &[40, 120],
    throttled_ms: &[40, 120],
    jitter_ms: 0,
    min_attempt_ms: MIN_ATTEMPT_MS,
    max_wait_ms: 0,
};

/// What to send.
pub struct Message<'a> {
    pub destination: &'a str,
    pub country: Option<&'a str>,
    pub body: String,
    /// `Some` for voice.
    pub voice_id: Option<&'a str>,
    pub ttl_s: u32,
    pub event_id: &'a str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// AWS refused (or kept failing); what it means for the user.
    Refused(SendFailure, String),
    /// No answer before the deadline: the message may or may not have been accepted.
    Timeout,
    /// AWS answered, but not so that we can tell whether it accepted the message (a 2xx without
    /// a `MessageId`, a response too large to read). Never resent.
    Unconfirmed(String),
    /// No origination identity for a voice call to this country.
    NoOriginationIdentity,
    /// The request could not be signed (bad credentials settings).
    Signing(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub message_id: String,
    pub attempts: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotDelivered {
    pub failure: Fault,
    pub attempts: u32,
}

pub fn build_request(cfg: &MessagingConfig, msg: &Message<'_>) -> Result<HttpRequest, Fault> {
    let identity = cfg.origination_identity(msg.country).map(str::to_string);
    let context: BTreeMap<String, String> = [("oktaEventId".to_string(), msg.event_id.to_string())].into();
    Ok(match msg.voice_id {
        None => {
            let mut input = SendTextMessage::new(msg.destination, msg.body.clone());
            input.origination_identity = identity;
            input.configuration_set_name = cfg.configuration_set.clone();
            input.protect_configuration_id = cfg.protect_configuration_id.clone();
            input.max_price = cfg.max_price.clone();
            input.time_to_live = Some(msg.ttl_s);
            input.context = Some(context);
            messaging::send_text_message(&cfg.endpoint, &input)
        }
        Some(voice) => {
            let identity = identity.ok_or(Fault::NoOriginationIdentity)?;
            let mut input = SendVoiceMessage::new(msg.destination, identity, msg.body.clone(), voice);
            input.configuration_set_name = cfg.configuration_set.clone();
            input.protect_configuration_id = cfg.protect_configuration_id.clone();
            input.max_price_per_minute = cfg.voice_max_price_per_minute.clone();
            input.time_to_live = Some(msg.ttl_s);
            input.context = Some(context);
            messaging::send_voice_message(&cfg.endpoint, &input)
        }
    })
}

/// Sends with bounded, safe retries; `deadline_ms` is absolute (epoch milliseconds).
pub async fn send<H: Http, C: Clock>(
    cfg: &MessagingConfig,
    creds: &Credentials,
    msg: &Message<'_>,
    http: &H,
    clock: &C,
    deadline_ms: u64,
) -> Result<Delivered, NotDelivered> {
    let unsigned = build_request(cfg, msg).map_err(|failure| NotDelivered { failure, attempts: 0 })?;
    // The answer's margin is kept out of every attempt and pause.
    let deadline = deadline_ms.saturating_sub(ANSWER_MARGIN_MS);
    let tried = retry::run(&RETRY, clock, Some(deadline), async |_| {
        let now = clock.now_ms();
        let budget = deadline.saturating_sub(now);
        if budget < MIN_ATTEMPT_MS {
            return Err(Failed::last((Fault::Timeout, false)));
        }
        let mut req = unsigned.clone();
        sign::sign(&mut req, creds, &cfg.region, messaging::SIGNING_NAME, now)
            .map_err(|e| Failed::last((Fault::Signing(e.to_string()), false)))?;
        match http.send(req, budget).await {
            Ok(resp) => match messaging::parse_message_id(&resp) {
                Ok(message_id) => Ok(message_id),
                // A 2xx without a MessageId was accepted as far as we know: never resend.
                Err(err) if (200..300).contains(&resp.status) => {
                    Err(Failed::last((Fault::Unconfirmed(err.to_string()), true)))
                }
                Err(err) => {
                    let verdict = err.verdict();
                    Err(Failed::new((Fault::Refused(messaging::classify(&err), err.to_string()), true), verdict))
                }
            },
            Err(FetchError::Timeout) => Err(Failed::last((Fault::Timeout, true))),
            Err(FetchError::BodyTooLarge) => Err(Failed::last((Fault::Unconfirmed("oversized response".into()), true))),
            Err(e @ (FetchError::Network(_) | FetchError::BudgetSpent)) => {
                let verdict = retry::after_fetch(&e, Effect::Send);
                let why = match &e {
                    FetchError::Network(n) => format!("network: {n}"),
                    other => other.to_string(),
                };
                Err(Failed::new((Fault::Refused(SendFailure::ProviderUnavailable, why), true), verdict))
            }
        }
    })
    .await;
    // An attempt counts once it was signed and handed to `fetch`.
    let sent = |sent: bool| tried.attempts - u32::from(!sent);
    match tried.result {
        Ok(message_id) => Ok(Delivered { message_id, attempts: tried.attempts }),
        Err(((failure, was_sent), _)) => Err(NotDelivered { failure, attempts: sent(was_sent) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::HttpResponse;
    use crate::testing::{block_on, json_response, FakeClock, ScriptedHttp};

    fn cfg() -> MessagingConfig {
        MessagingConfig {
            region: "us-east-1".into(),
            endpoint: "https://sms-voice.us-east-1.amazonaws.com".into(),
            origination_identities: [("US".to_string(), "pool-us".to_string())].into(),
            configuration_set: Some("otp".into()),
            protect_configuration_id: None,
            max_price: None,
            voice_max_price_per_minute: None,
        }
    }

    fn creds() -> Credentials {
        Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None)
    }

    fn sms<'a>() -> Message<'a> {
        Message {
            destination: "+14155550123",
            country: Some("US"),
            body: "Code 1234".into(),
            voice_id: None,
            ttl_s: 300,
            event_id: "evt1",
        }
    }

    fn err(status: u16, ty: &str) -> Result<HttpResponse, FetchError> {
        let mut r = json_response(status, &format!(r#"{{"__type":"{ty}","Message":"m"}}"#));
        r.headers.push(("x-amzn-ErrorType".into(), ty.into()));
        Ok(r)
    }

    fn ok() -> Result<HttpResponse, FetchError> {
        Ok(json_response(200, r#"{"MessageId":"mid-1"}"#))
    }

    fn run(http: &ScriptedHttp, clock: &FakeClock, deadline: u64) -> Result<Delivered, NotDelivered> {
        block_on(send(&cfg(), &creds(), &sms(), http, clock, deadline))
    }

    #[test]
    fn builds_a_signed_transactional_sms() {
        let http = ScriptedHttp::default();
        http.push(ok());
        let clock = FakeClock::at(1_700_000_000_000);
        assert_eq!(
            run(&http, &clock, 1_700_000_002_500).unwrap(),
            Delivered { message_id: "mid-1".into(), attempts: 1 }
        );
        let (req, timeout) = http.requests.borrow()[0].clone();
        assert!(timeout <= 2_400);
        assert_eq!(req.header("x-amz-target"), Some("PinpointSMSVoiceV2.SendTextMessage"));
        assert!(req.header("authorization").unwrap().contains("/us-east-1/sms-voice/aws4_request"));
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["MessageType"], "TRANSACTIONAL");
        assert_eq!(body["OriginationIdentity"], "pool-us");
        assert_eq!(body["Context"]["oktaEventId"], "evt1");
        assert_eq!(body["TimeToLive"], 300);
    }

    #[test]
    fn retries_throttling_then_succeeds() {
        let http = ScriptedHttp::default();
        http.push(err(400, "ThrottlingException"));
        http.push(ok());
        let clock = FakeClock::at(0);
        assert_eq!(run(&http, &clock, 2_500).unwrap().attempts, 2);
    }

    #[test]
    fn retries_5xx_and_network_errors_at_most_three_times() {
        let http = ScriptedHttp::default();
        http.push(err(500, "InternalServerException"));
        http.push(Err(FetchError::Network("reset".into())));
        http.push(err(503, "ServiceUnavailable"));
        http.push(ok());
        let clock = FakeClock::at(0);
        let e = run(&http, &clock, 2_500).unwrap_err();
        assert_eq!(e.attempts, 3);
        assert!(matches!(e.failure, Fault::Refused(SendFailure::ProviderUnavailable, _)));
        assert_eq!(http.count(), 3);
    }

    #[test]
    fn never_retries_permanent_errors_or_timeouts() {
        for first in [err(400, "ValidationException"), Err(FetchError::Timeout), Ok(json_response(200, "{}"))] {
            let http = ScriptedHttp::default();
            http.push(first);
            http.push(ok());
            let clock = FakeClock::at(0);
            assert!(run(&http, &clock, 2_500).is_err());
            assert_eq!(http.count(), 1);
        }
    }

    #[test]
    fn does_not_start_an_attempt_the_deadline_cannot_hold() {
        let http = ScriptedHttp::default();
        http.push(err(500, "InternalServerException"));
        http.push(ok());
        let clock = FakeClock::at(0);
        // 250 ms budget: one attempt, then no room for back-off plus another attempt.
        let e = run(&http, &clock, 250).unwrap_err();
        assert_eq!((e.attempts, http.count()), (1, 1));
        let http = ScriptedHttp::default();
        assert_eq!(run(&http, &FakeClock::at(0), 200).unwrap_err().failure, Fault::Timeout);
        assert_eq!(http.count(), 0);
    }

    #[test]
    fn voice_needs_an_origination_identity() {
        let mut c = cfg();
        c.origination_identities.clear();
        let msg = Message { voice_id: Some("JOANNA"), ..sms() };
        assert_eq!(build_request(&c, &msg).unwrap_err(), Fault::NoOriginationIdentity);
        let req = build_request(&cfg(), &msg).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!((body["MessageBodyTextType"].as_str(), body["VoiceId"].as_str()), (Some("SSML"), Some("JOANNA")));
        assert!(body.get("MessageType").is_none());
    }
}
