//! Kept dead letters (`crate::provisioning::dead_letter`): KV listing and metadata for
//! `HOOK_STATE`, and the two admin endpoints `GET /admin/provisioning/dead-letters` and
//! `POST /admin/provisioning/redrive`.

use worker::{Env, Request};

use super::bindings::{request_body, WorkerKv, WorkerQueue};
use super::{emit, read_settings};
use crate::edge::{KvError, KvKey, KvList, KvPage};
use crate::http::{self, Answer};
use crate::provisioning::dead_letter;

impl KvList for WorkerKv {
    async fn put_with_metadata(
        &self,
        key: &str,
        value: &str,
        ttl_s: Option<u64>,
        metadata: &str,
    ) -> Result<(), KvError> {
        let metadata: serde_json::Value = serde_json::from_str(metadata).map_err(|e| KvError(e.to_string()))?;
        let mut put = self.0.put(key, value).map_err(|e| KvError(e.to_string()))?;
        put = put.metadata(metadata).map_err(|e| KvError(e.to_string()))?;
        if let Some(ttl) = ttl_s {
            put = put.expiration_ttl(ttl.max(60));
        }
        put.execute().await.map_err(|e| KvError(e.to_string()))
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<KvPage, KvError> {
        let mut list = self.0.list().prefix(prefix.to_string());
        if let Some(c) = cursor {
            list = list.cursor(c.to_string());
        }
        let page = list.execute().await.map_err(|e| KvError(e.to_string()))?;
        Ok(KvPage {
            keys: page
                .keys
                .into_iter()
                .map(|k| KvKey { name: k.name, metadata: k.metadata.map(|m| m.to_string()) })
                .collect(),
            cursor: page.cursor.filter(|c| !page.list_complete && !c.is_empty()),
        })
    }
}

/// `GET /admin/provisioning/dead-letters[?limit=N | ?id=<id>]`.
pub(super) async fn list_request(req: &Request, env: &Env) -> worker::Result<Answer> {
    let admin = crate::admin::admin_secret(&read_settings(env, &["ADMIN_SECRET"]));
    let kv = WorkerKv(env.kv("HOOK_STATE")?);
    let authorization = req.headers().get("authorization").ok().flatten();
    // The raw URL, as for `?dryRun` (no `url` crate).
    let handled = dead_letter::list(authorization.as_deref(), admin, &kv, &req.inner().url()).await;
    emit(&handled);
    Ok(handled.answer)
}

/// `POST /admin/provisioning/redrive` with an optional `{"ids": [...]}`.
pub(super) async fn redrive_request(req: &mut Request, env: &Env) -> worker::Result<Answer> {
    let admin = crate::admin::admin_secret(&read_settings(env, &["ADMIN_SECRET"]));
    let kv = WorkerKv(env.kv("HOOK_STATE")?);
    let queue = WorkerQueue(env.queue("PROVISIONING").map_err(|e| format!("no PROVISIONING binding: {e}")));
    let authorization = req.headers().get("authorization").ok().flatten();
    let Ok(body) = request_body(req, dead_letter::MAX_REDRIVE_BODY_BYTES).await else {
        return Ok(http::plain_error(413, "The body is larger than 64 KB or unreadable", "BODY_TOO_LARGE"));
    };
    let handled = dead_letter::redrive(authorization.as_deref(), admin, &kv, &queue, &body).await;
    emit(&handled);
    Ok(handled.answer)
}
