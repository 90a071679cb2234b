//! The queue consumer export. `worker`'s `#[event(queue)]` does not expose a message's
//! `attempts`, which the retry policy needs, so this is the same export written by hand over the
//! raw `MessageBatch`: read each message (id, JSON body, attempts), let
//! `provisioning::handle_batch` decide, then ack, retry with a delay, or send to the
//! dead-letter queue (`PROVISIONING_DLQ`) and ack.
//!
//! A batch from a queue whose name ends in `-dlq` is a dead-letter queue consumed locally: each
//! message is logged (level error) and acked.

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::worker_sys::{Message, MessageBatch};
use worker::{console_error, console_log, Env, QueueContentType, RawMessageBuilder};

use super::{read_settings, ProvisioningParts};
use crate::provisioning::{self, config as prov_config, config::ProvisioningConfig, Disposition, Incoming};

fn text(body: &JsValue) -> String {
    js_sys::JSON::stringify(body).map(String::from).unwrap_or_default()
}

fn retry(msg: &Message, delay_s: u32) {
    let opts = Object::new();
    let _ = Reflect::set(&opts, &"delaySeconds".into(), &JsValue::from(delay_s));
    if msg.retry(opts.into()).is_err() {
        console_error!("{}", serde_json::json!({"msg": "alert", "level": "alert", "alert": "queue: retry() failed"}));
    }
}

#[wasm_bindgen]
pub async fn queue(batch: MessageBatch, env: Env, _ctx: worker::worker_sys::Context) -> Result<JsValue, JsValue> {
    let name = batch.queue().map(String::from).unwrap_or_default();
    let messages: Vec<Message> = batch.messages()?.iter().map(JsCast::unchecked_into).collect();
    if name.ends_with("-dlq") {
        for m in &messages {
            let body = m.body().map(|b| text(&b)).unwrap_or_default();
            console_error!(
                "{}",
                serde_json::json!({"msg": "provisioning dead letter", "level": "error", "queue": name, "deadLetter": serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default()})
            );
            let _ = m.ack();
        }
        return Ok(JsValue::UNDEFINED);
    }
    let incoming: Vec<Incoming> = messages
        .iter()
        .map(|m| Incoming {
            id: m.id().map(String::from).unwrap_or_default(),
            body: m.body().map(|b| text(&b)).unwrap_or_default(),
            attempts: Reflect::get(m, &"attempts".into()).ok().and_then(|a| a.as_f64()).unwrap_or(1.0).max(1.0) as u32,
        })
        .collect();
    let settings = read_settings(&env, prov_config::SETTINGS);
    // Messages exist, so provisioning being off (no CONNECT_INSTANCE_ID) is an error here too.
    let cfg = ProvisioningConfig::from_source(&settings);
    let parts = ProvisioningParts::of(&env);
    let edge = parts.edge();
    let outcome = provisioning::handle_batch(cfg.as_ref(), &edge, &incoming).await;
    for line in &outcome.logs {
        console_log!("{line}");
    }
    for alert in &outcome.alerts {
        console_error!("{}", serde_json::json!({"msg": "alert", "level": "alert", "alert": alert}));
    }
    let dlq = env.queue("PROVISIONING_DLQ");
    for (m, inc) in messages.iter().zip(&incoming) {
        let Some(disposition) = outcome.disposition(&inc.id) else {
            retry(m, 60);
            continue;
        };
        match disposition {
            Disposition::Ack => {
                let _ = m.ack();
            }
            Disposition::Retry { delay_s } => retry(m, *delay_s),
            Disposition::DeadLetter { body } => {
                let sent = match (&dlq, js_sys::JSON::parse(body)) {
                    (Ok(q), Ok(v)) => q
                        .send_raw(RawMessageBuilder::new(v).build_with_content_type(QueueContentType::Json))
                        .await
                        .map_err(|e| e.to_string()),
                    (Err(e), _) => Err(format!("no PROVISIONING_DLQ binding: {e}")),
                    (_, Err(_)) => Err("dead letter is not JSON".into()),
                };
                match sent {
                    Ok(()) => {
                        let _ = m.ack();
                    }
                    Err(e) => {
                        // Never lose it: the queue's own retries (and its dead_letter_queue) take over.
                        console_error!(
                            "{}",
                            serde_json::json!({"msg": "alert", "level": "alert", "alert": format!("could not dead-letter a message: {e}")})
                        );
                        retry(m, 60);
                    }
                }
            }
        }
    }
    Ok(JsValue::UNDEFINED)
}
