//! The queue consumer export. `worker`'s `#[event(queue)]` does not expose a message's
//! `attempts`, which the retry policy needs, so this is the same export written by hand over the
//! raw `MessageBatch`: read each message (id, JSON body, attempts), let
//! `provisioning::handle_batch` decide, then ack, retry with a delay, or send to the
//! dead-letter queue (`PROVISIONING_DLQ`) and ack.
//!
//! A batch from a queue whose name ends in `-dlq` is a dead-letter queue: each message is logged
//! (level error), kept in `HOOK_STATE` for the admin endpoints (`provisioning::dead_letter`), then
//! acked; one that could not be kept is retried.

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::worker_sys::{Message, MessageBatch};
use worker::{console_error, console_log, Env};

use super::bindings::{WorkerKv, WorkerQueue};
use super::{read_settings, ProvisioningParts};
use crate::edge::{queue_batches, Queue};
use crate::provisioning::{
    self, config as prov_config, config::ProvisioningConfig, dead_letter, Disposition, Incoming,
};

fn text(body: &JsValue) -> String {
    js_sys::JSON::stringify(body).map(String::from).unwrap_or_default()
}

/// Sends every message's bodies, then acks the messages whose bodies all reached the queue; the
/// others are retried (never lost: the queue's own retries and dead-letter queue take over).
async fn send_then_ack(queue: &WorkerQueue, items: &[(&Message, Vec<String>)], what: &str) {
    let owners: Vec<usize> = items.iter().enumerate().flat_map(|(i, (_, b))| std::iter::repeat_n(i, b.len())).collect();
    let bodies: Vec<String> = items.iter().flat_map(|(_, b)| b.iter().cloned()).collect();
    let mut failed = vec![false; items.len()];
    let mut offset = 0;
    for chunk in queue_batches(&bodies) {
        if let Err(e) = queue.send_batch(chunk).await {
            console_error!(
                "{}",
                serde_json::json!({"msg": "alert", "level": "alert", "alert": format!("could not {what} {} message(s): {e}", chunk.len())})
            );
            for &i in &owners[offset..offset + chunk.len()] {
                failed[i] = true;
            }
        }
        offset += chunk.len();
    }
    for ((m, _), failed) in items.iter().zip(failed) {
        if failed {
            retry(m, provisioning::REQUEUE_DELAY_S);
        } else {
            let _ = m.ack();
        }
    }
}

fn retry(msg: &Message, delay_s: u32) {
    let opts = Object::new();
    let _ = Reflect::set(&opts, &"delaySeconds".into(), &JsValue::from(delay_s));
    if msg.retry(opts.into()).is_err() {
        console_error!("{}", serde_json::json!({"msg": "alert", "level": "alert", "alert": "queue: retry() failed"}));
    }
}

/// A dead-letter queue's batch: each message is logged (level error), kept in `HOOK_STATE`
/// (`provisioning::dead_letter`) and acked; one that could not be kept is retried, never lost.
async fn dead_letters(name: &str, messages: &[Message], env: &Env) {
    let arrived: Vec<dead_letter::Arrived> = messages
        .iter()
        .map(|m| dead_letter::Arrived {
            id: m.id().map(String::from).unwrap_or_default(),
            body: m.body().map(|b| text(&b)).unwrap_or_default(),
            timestamp_ms: m.timestamp().map(|d| d.get_time()).unwrap_or_else(|_| js_sys::Date::now()) as u64,
        })
        .collect();
    for a in &arrived {
        console_error!("{}", dead_letter::log_line(name, &a.body));
    }
    let stored = match env.kv("HOOK_STATE") {
        Ok(kv) => dead_letter::store(&WorkerKv(kv), &arrived).await,
        Err(e) => dead_letter::Stored {
            kept: arrived.iter().map(|_| Err(crate::edge::KvError("no HOOK_STATE binding".into()))).collect(),
            alerts: vec![format!("dead letters not stored (retried): no HOOK_STATE binding: {e}")],
        },
    };
    for alert in &stored.alerts {
        console_error!("{}", serde_json::json!({"msg": "alert", "level": "alert", "alert": alert}));
    }
    for (m, kept) in messages.iter().zip(&stored.kept) {
        match kept {
            Ok(_) => {
                let _ = m.ack();
            }
            Err(_) => retry(m, provisioning::REQUEUE_DELAY_S),
        }
    }
}

#[wasm_bindgen]
pub async fn queue(batch: MessageBatch, env: Env, _ctx: worker::worker_sys::Context) -> Result<JsValue, JsValue> {
    let name = batch.queue().map(String::from).unwrap_or_default();
    let messages: Vec<Message> = batch.messages()?.iter().map(JsCast::unchecked_into).collect();
    if dead_letter::is_dead_letter_queue(&name) {
        dead_letters(&name, &messages, &env).await;
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
    // Sends are batched (one `sendBatch` per 100 messages): every send is a subrequest.
    let (mut dead, mut requeue) = (Vec::new(), Vec::new());
    for (m, inc) in messages.iter().zip(&incoming) {
        match outcome.disposition(&inc.id) {
            None => retry(m, provisioning::REQUEUE_DELAY_S),
            Some(Disposition::Ack) => {
                let _ = m.ack();
            }
            Some(Disposition::Retry { delay_s }) => retry(m, *delay_s),
            Some(Disposition::DeadLetter { body }) => dead.push((m, vec![body.clone()])),
            Some(Disposition::Requeue { bodies }) => requeue.push((m, bodies.clone())),
        }
    }
    send_then_ack(&WorkerQueue(env.queue("PROVISIONING_DLQ").map_err(|e| e.to_string())), &dead, "dead-letter").await;
    send_then_ack(&WorkerQueue(env.queue("PROVISIONING").map_err(|e| e.to_string())), &requeue, "requeue").await;
    Ok(JsValue::UNDEFINED)
}
