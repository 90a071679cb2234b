//! The `OtpLedger` Durable Object class (SQLite-backed; one object per phone number): maps
//! [`crate::ledger`]'s [`Store`] onto SQL rows and its sweep onto the object's alarm. The
//! protocol and every decision are in `crate::ledger`.

use std::cell::Cell;

use serde::Deserialize;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, SqlStorage, State};

use super::bindings::{request_body, JsClock};
use crate::edge::Clock;
use crate::guard::window::Counter;
use crate::ledger::{self, Record, Store, StoreError, Stored};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS otp_ledger (key TEXT PRIMARY KEY, state TEXT NOT NULL, \
     since_ms INTEGER NOT NULL, status INTEGER, body TEXT, expires_ms INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS otp_counters (name TEXT PRIMARY KEY, start_ms INTEGER NOT NULL, \
     count INTEGER NOT NULL, prev INTEGER NOT NULL, refused INTEGER NOT NULL)",
];

#[durable_object]
pub struct OtpLedger {
    state: State,
    /// The schema exists (checked once per instance).
    ready: Cell<bool>,
    /// When the alarm is known to be set for (epoch ms), so most requests skip `getAlarm`.
    alarm_at: Cell<Option<u64>>,
}

impl DurableObject for OtpLedger {
    fn new(state: State, _env: Env) -> Self {
        OtpLedger { state, ready: Cell::new(false), alarm_at: Cell::new(None) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let store = self.store()?;
        let reply = match request_body(&mut req, ledger::MAX_REQUEST_BYTES).await {
            Ok(body) => ledger::serve(&store, &JsClock, &String::from_utf8_lossy(&body)).await,
            Err(_) => r#"{"result":"error","reason":"MALFORMED_REQUEST"}"#.to_string(),
        };
        // One alarm at a time: records expire at their own time (reads skip expired ones, and
        // records are capped), counters are swept a day later at the latest.
        if self.alarm_at.get().is_some() {
            return Response::ok(reply);
        }
        let next = match store.next_expiry() {
            Ok(Some(t)) => Some(t),
            _ if store.counters().is_ok_and(|c| !c.is_empty()) => Some(JsClock.now_ms() + 86_400_000),
            _ => None,
        };
        if let Some(next) = next {
            self.arm(next).await?;
        }
        Response::ok(reply)
    }

    async fn alarm(&self) -> Result<Response> {
        let store = self.store()?;
        self.alarm_at.set(None);
        let next = ledger::sweep(&store, JsClock.now_ms()).map_err(|e| worker::Error::RustError(e.0))?;
        if let Some(next) = next {
            self.arm(next).await?;
        }
        Response::ok("swept")
    }
}

impl OtpLedger {
    fn store(&self) -> Result<SqlStore> {
        let sql = self.state.storage().sql();
        if !self.ready.get() {
            for statement in SCHEMA {
                sql.exec(statement, None)?;
            }
            self.ready.set(true);
        }
        Ok(SqlStore(sql))
    }

    /// Makes sure the alarm fires no later than `at_ms`.
    async fn arm(&self, at_ms: u64) -> Result<()> {
        if self.alarm_at.get().is_some_and(|t| t <= at_ms) {
            return Ok(());
        }
        let storage = self.state.storage();
        let current = storage.get_alarm().await?.map(|t| t.max(0) as u64);
        match current {
            Some(t) if t <= at_ms => self.alarm_at.set(Some(t)),
            _ => {
                let when = chrono::DateTime::from_timestamp_millis(at_ms as i64).unwrap_or_default();
                storage.set_alarm(when).await?;
                self.alarm_at.set(Some(at_ms));
            }
        }
        Ok(())
    }
}

struct SqlStore(SqlStorage);

#[derive(Deserialize)]
struct Row {
    state: String,
    since_ms: f64,
    status: Option<f64>,
    body: Option<String>,
    expires_ms: f64,
}

#[derive(Deserialize)]
struct Number {
    n: Option<f64>,
}

#[derive(Deserialize)]
struct CounterRow {
    name: String,
    start_ms: f64,
    count: f64,
    prev: f64,
    refused: f64,
}

impl CounterRow {
    fn counter(&self) -> Counter {
        Counter {
            start_ms: self.start_ms as u64,
            count: self.count as u64,
            prev: self.prev as u64,
            refused: self.refused as u64,
        }
    }
}

const COUNTER_COLUMNS: &str = "name, start_ms, count, prev, refused";

fn failed(e: worker::Error) -> StoreError {
    StoreError(e.to_string())
}

impl SqlStore {
    /// One number from a `SELECT … AS n` (never `SqlCursor::one`: it traps on zero rows).
    fn number(&self, query: &str) -> std::result::Result<Option<f64>, StoreError> {
        let rows: Vec<Number> = self.0.exec(query, None).and_then(|c| c.to_array()).map_err(failed)?;
        Ok(rows.first().and_then(|r| r.n))
    }
}

impl Store for SqlStore {
    fn get(&self, key: &str) -> std::result::Result<Option<Record>, StoreError> {
        let rows: Vec<Row> = self
            .0
            .exec("SELECT state, since_ms, status, body, expires_ms FROM otp_ledger WHERE key = ?", vec![key.into()])
            .and_then(|c| c.to_array())
            .map_err(failed)?;
        let Some(row) = rows.into_iter().next() else { return Ok(None) };
        let state = match (row.state.as_str(), row.status, row.body) {
            ("settled", Some(status), Some(body)) => ledger::State::Settled(Stored { status: status as u16, body }),
            _ => ledger::State::Claimed { since_ms: row.since_ms as u64 },
        };
        Ok(Some(Record { state, expires_ms: row.expires_ms as u64 }))
    }

    fn put(&self, key: &str, record: &Record) -> std::result::Result<(), StoreError> {
        let (state, since_ms, status, body) = match &record.state {
            ledger::State::Claimed { since_ms } => ("claimed", *since_ms as i64, None, None),
            ledger::State::Settled(a) => ("settled", 0, Some(a.status as i64), Some(a.body.clone())),
        };
        self.0
            .exec(
                "INSERT INTO otp_ledger (key, state, since_ms, status, body, expires_ms) VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT(key) DO UPDATE SET state = excluded.state, since_ms = excluded.since_ms, \
                 status = excluded.status, body = excluded.body, expires_ms = excluded.expires_ms",
                vec![
                    key.into(),
                    state.into(),
                    since_ms.into(),
                    status.into(),
                    body.into(),
                    (record.expires_ms as i64).into(),
                ],
            )
            .map(|_| ())
            .map_err(failed)
    }

    fn purge(&self, now_ms: u64, keep: usize) -> std::result::Result<(), StoreError> {
        self.0.exec("DELETE FROM otp_ledger WHERE expires_ms <= ?", vec![(now_ms as i64).into()]).map_err(failed)?;
        let count = self.number("SELECT count(*) AS n FROM otp_ledger")?.unwrap_or(0.0) as usize;
        if count > keep {
            self.0
                .exec(
                    "DELETE FROM otp_ledger WHERE key IN (SELECT key FROM otp_ledger ORDER BY expires_ms LIMIT ?)",
                    vec![((count - keep) as i64).into()],
                )
                .map_err(failed)?;
        }
        Ok(())
    }

    fn next_expiry(&self) -> std::result::Result<Option<u64>, StoreError> {
        Ok(self.number("SELECT min(expires_ms) AS n FROM otp_ledger")?.map(|t| t as u64))
    }

    fn counter(&self, name: &str) -> std::result::Result<Option<Counter>, StoreError> {
        let rows: Vec<CounterRow> = self
            .0
            .exec(&format!("SELECT {COUNTER_COLUMNS} FROM otp_counters WHERE name = ?"), vec![name.into()])
            .and_then(|c| c.to_array())
            .map_err(failed)?;
        Ok(rows.first().map(CounterRow::counter))
    }

    fn put_counter(&self, name: &str, c: &Counter) -> std::result::Result<(), StoreError> {
        self.0
            .exec(
                "INSERT INTO otp_counters (name, start_ms, count, prev, refused) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT(name) DO UPDATE SET start_ms = excluded.start_ms, count = excluded.count, \
                 prev = excluded.prev, refused = excluded.refused",
                vec![
                    name.into(),
                    (c.start_ms as i64).into(),
                    (c.count as i64).into(),
                    (c.prev as i64).into(),
                    (c.refused as i64).into(),
                ],
            )
            .map(|_| ())
            .map_err(failed)
    }

    fn counters(&self) -> std::result::Result<Vec<(String, Counter)>, StoreError> {
        let rows: Vec<CounterRow> = self
            .0
            .exec(&format!("SELECT {COUNTER_COLUMNS} FROM otp_counters LIMIT 1024"), None)
            .and_then(|c| c.to_array())
            .map_err(failed)?;
        Ok(rows.iter().map(|r| (r.name.clone(), r.counter())).collect())
    }

    fn drop_counters(&self, before_ms: u64) -> std::result::Result<(), StoreError> {
        let result = if before_ms == u64::MAX {
            self.0.exec("DELETE FROM otp_counters", None)
        } else {
            self.0.exec("DELETE FROM otp_counters WHERE start_ms < ?", vec![(before_ms as i64).into()])
        };
        result.map(|_| ()).map_err(failed)
    }
}
