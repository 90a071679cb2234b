//! The `ReconcileJob` Durable Object class (SQLite-backed; one object, named
//! [`job::OBJECT`]): maps [`job`]'s [`JobStore`] onto SQL rows and its steps onto the object's
//! alarm. The run's logic is in `crate::provisioning::reconcile::job`.

use std::cell::Cell;
use std::collections::BTreeMap;

use serde::Deserialize;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, SqlStorage, State};

use super::bindings::{request_body, JsClock};
use super::{emit_lines, provisioning_config, read_settings, ProvisioningParts};
use crate::aws::connect::{ConnectUser, UserSummary};
use crate::edge::Clock;
use crate::ledger::StoreError;
use crate::okta::OktaUser;
use crate::provisioning::config as prov_config;
use crate::provisioning::reconcile::job::{self, JobStore, Step};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS job_kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS job_okta (id TEXT PRIMARY KEY, user TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS job_okta_groups (id TEXT NOT NULL, grp TEXT NOT NULL, PRIMARY KEY (id, grp))",
    "CREATE TABLE IF NOT EXISTS job_managed (id TEXT PRIMARY KEY, user TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS job_holders (id TEXT PRIMARY KEY, user TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS job_plan (seq INTEGER PRIMARY KEY, step TEXT NOT NULL)",
];

#[durable_object]
pub struct ReconcileJob {
    state: State,
    env: Env,
    /// The schema exists (checked once per instance).
    ready: Cell<bool>,
}

impl DurableObject for ReconcileJob {
    fn new(state: State, env: Env) -> Self {
        ReconcileJob { state, env, ready: Cell::new(false) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let store = self.store()?;
        let body = match request_body(&mut req, job::MAX_REQUEST_BYTES).await {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(_) => String::new(),
        };
        let served = job::serve(&store, &body, JsClock.now_ms()).map_err(|e| worker::Error::RustError(e.0))?;
        emit_lines(served.log.as_slice(), &[]);
        if let Some(at) = served.alarm_at {
            self.arm(at).await?;
        }
        Response::ok(served.wire())
    }

    async fn alarm(&self) -> Result<Response> {
        let store = self.store()?;
        let settings = read_settings(&self.env, prov_config::SETTINGS);
        let cfg = provisioning_config(&settings).unwrap_or_else(|| {
            Err(crate::settings::bad("CONNECT_INSTANCE_ID", "not set: provisioning was switched off mid-run"))
        });
        let parts = ProvisioningParts::of(&self.env);
        let stepped = match job::step(cfg, &parts.edge(), &store).await {
            Ok(s) => s,
            Err(e) => {
                // The runtime retries a failed alarm (with backoff); the run stays where it was.
                emit_lines(&[], &[format!("provisioning reconciliation: its storage failed: {}", e.0)]);
                return Err(worker::Error::RustError(e.0));
            }
        };
        emit_lines(&stepped.logs, &stepped.alerts);
        if let Some(at) = stepped.next_at {
            // Inside the handler `getAlarm` is null until set again, so this sets it.
            self.arm(at).await?;
        }
        Response::ok("stepped")
    }
}

impl ReconcileJob {
    fn store(&self) -> Result<SqlJobStore> {
        let sql = self.state.storage().sql();
        if !self.ready.get() {
            for statement in SCHEMA {
                sql.exec(statement, None)?;
            }
            self.ready.set(true);
        }
        Ok(SqlJobStore(sql))
    }

    /// Makes sure the alarm fires no later than `at_ms` (a lost alarm is set again).
    async fn arm(&self, at_ms: u64) -> Result<()> {
        let storage = self.state.storage();
        match storage.get_alarm().await? {
            Some(t) if (t.max(0) as u64) <= at_ms => Ok(()),
            _ => {
                let when = chrono::DateTime::from_timestamp_millis(at_ms as i64).unwrap_or_default();
                storage.set_alarm(when).await
            }
        }
    }
}

struct SqlJobStore(SqlStorage);

fn failed(e: worker::Error) -> StoreError {
    StoreError(e.to_string())
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data")
}

fn parse<T: for<'de> Deserialize<'de>>(raw: &str) -> std::result::Result<T, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError(format!("stored row: {e}")))
}

#[derive(Deserialize)]
struct KvRow {
    v: String,
}

#[derive(Deserialize)]
struct UserRow {
    user: String,
}

#[derive(Deserialize)]
struct OktaRow {
    id: String,
    user: String,
    groups: Option<String>,
}

#[derive(Deserialize)]
struct StepRow {
    step: String,
}

impl SqlJobStore {
    fn exec(&self, query: &str, bindings: Vec<worker::SqlStorageValue>) -> std::result::Result<(), StoreError> {
        self.0.exec(query, bindings).map(|_| ()).map_err(failed)
    }

    fn rows<T: for<'de> Deserialize<'de>>(
        &self,
        query: &str,
        bindings: Vec<worker::SqlStorageValue>,
    ) -> std::result::Result<Vec<T>, StoreError> {
        let cursor = self.0.exec(query, bindings).map_err(failed)?;
        cursor.next::<T>().map(|r| r.map_err(failed)).collect()
    }

    /// Each row's JSON column parsed as it is read (a whole listing is never held twice).
    fn parsed<T: for<'de> Deserialize<'de>>(&self, query: &str) -> std::result::Result<Vec<T>, StoreError> {
        let cursor = self.0.exec(query, None).map_err(failed)?;
        cursor.next::<UserRow>().map(|r| parse(&r.map_err(failed)?.user)).collect()
    }
}

impl JobStore for SqlJobStore {
    fn get(&self, key: &str) -> std::result::Result<Option<String>, StoreError> {
        Ok(self.rows::<KvRow>("SELECT v FROM job_kv WHERE k = ?", vec![key.into()])?.pop().map(|r| r.v))
    }

    fn put(&self, key: &str, value: &str) -> std::result::Result<(), StoreError> {
        self.exec(
            "INSERT INTO job_kv (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
            vec![key.into(), value.into()],
        )
    }

    fn delete(&self, key: &str) -> std::result::Result<(), StoreError> {
        self.exec("DELETE FROM job_kv WHERE k = ?", vec![key.into()])
    }

    fn add_okta(&self, users: &[OktaUser], group: Option<&str>) -> std::result::Result<(), StoreError> {
        for u in users {
            self.exec(
                "INSERT OR REPLACE INTO job_okta (id, user) VALUES (?, ?)",
                vec![u.id.as_str().into(), json(u).into()],
            )?;
            if let Some(g) = group {
                self.exec(
                    "INSERT OR IGNORE INTO job_okta_groups (id, grp) VALUES (?, ?)",
                    vec![u.id.as_str().into(), g.into()],
                )?;
            }
        }
        Ok(())
    }

    fn add_managed(&self, users: &[ConnectUser]) -> std::result::Result<(), StoreError> {
        for u in users {
            self.exec(
                "INSERT OR REPLACE INTO job_managed (id, user) VALUES (?, ?)",
                vec![u.id.as_str().into(), json(u).into()],
            )?;
        }
        Ok(())
    }

    fn add_holders(&self, users: &[UserSummary]) -> std::result::Result<(), StoreError> {
        for u in users {
            self.exec(
                "INSERT OR REPLACE INTO job_holders (id, user) VALUES (?, ?)",
                vec![u.id.as_str().into(), json(u).into()],
            )?;
        }
        Ok(())
    }

    fn okta_users(&self) -> std::result::Result<BTreeMap<String, (OktaUser, Vec<String>)>, StoreError> {
        let cursor = self
            .0
            .exec(
                "SELECT o.id AS id, o.user AS user, (SELECT group_concat(g.grp, ' ') FROM job_okta_groups g \
                 WHERE g.id = o.id) AS groups FROM job_okta o",
                None,
            )
            .map_err(failed)?;
        cursor
            .next::<OktaRow>()
            .map(|r| {
                let r = r.map_err(failed)?;
                let groups = r.groups.map(|g| g.split(' ').map(String::from).collect()).unwrap_or_default();
                Ok((r.id, (parse(&r.user)?, groups)))
            })
            .collect()
    }

    fn managed(&self) -> std::result::Result<Vec<ConnectUser>, StoreError> {
        self.parsed("SELECT user FROM job_managed")
    }

    /// Only the holders the managed listing does not have (the plan reads managed users from
    /// there): at 100,000 managed users, 100,000 fewer rows in memory.
    fn holders(&self) -> std::result::Result<Vec<UserSummary>, StoreError> {
        self.parsed("SELECT user FROM job_holders WHERE id NOT IN (SELECT id FROM job_managed)")
    }

    fn put_plan(&self, steps: &[Step]) -> std::result::Result<(), StoreError> {
        self.exec("DELETE FROM job_plan", vec![])?;
        for (seq, s) in steps.iter().enumerate() {
            self.exec("INSERT INTO job_plan (seq, step) VALUES (?, ?)", vec![(seq as i64).into(), json(s).into()])?;
        }
        Ok(())
    }

    fn plan_rows(&self, from: u32, n: u32) -> std::result::Result<Vec<Step>, StoreError> {
        self.rows::<StepRow>(
            "SELECT step FROM job_plan WHERE seq >= ? ORDER BY seq LIMIT ?",
            vec![i64::from(from).into(), i64::from(n).into()],
        )?
        .iter()
        .map(|r| parse(&r.step))
        .collect()
    }

    fn clear(&self, plan: bool) -> std::result::Result<(), StoreError> {
        for table in ["job_okta", "job_okta_groups", "job_managed", "job_holders"] {
            self.exec(&format!("DELETE FROM {table}"), vec![])?;
        }
        if plan {
            self.exec("DELETE FROM job_plan", vec![])?;
        }
        Ok(())
    }
}
