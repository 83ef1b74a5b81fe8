//! The events stream reader: ONE `XREAD BLOCK` loop per process, on its own
//! connection, fanned out to every listener (SSE clients) through a
//! `tokio::sync::broadcast` channel.
//!
//! - The reader runs only while someone listens: the first [`EventHub::subscribe`]
//!   starts it at the stream's current end, and it stops after a read finds no
//!   receiver left. An idle API sends Redis nothing.
//! - A listener that falls more than [`CAPACITY`] events behind is lagged out by
//!   the channel (it reconnects with `Last-Event-ID`); the reader never waits.
//! - Entries carry `event task_id queue status ts` (and `progress`, or `worker
//!   hostname` for worker events); the reader adds the task's `name` with one
//!   pipelined HGET per batch it read, on its own connection.
//! - Missed entries are read with [`EventHub::after`] (XRANGE, exclusive start).

use std::{collections::HashMap, sync::Arc, time::Duration};

use redis::{
    AsyncConnectionConfig,
    aio::MultiplexedConnection,
    streams::{StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply},
};
use tokio::sync::{Mutex, broadcast};

use super::{connect::Connection, keys::Keys};
use crate::error::Result;

/// Events a listener may fall behind before it is dropped.
pub const CAPACITY: usize = 4096;
/// Longest single XREAD block.
const BLOCK: Duration = Duration::from_secs(5);
/// `CLIENT SETNAME` of the reader's connection.
pub const READER_NAME: &str = "celeriac-events";
/// Entries read per XREAD / XRANGE call.
const BATCH: usize = 500;

/// One entry of the events stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamEvent {
    /// Stream entry id (`<ms>-<seq>`).
    pub id: String,
    /// Its fields (`event task_id queue status ts`, …).
    pub fields: HashMap<String, String>,
    /// The task's name, when the record still exists.
    pub name: Option<String>,
}

impl StreamEvent {
    /// A field, or "".
    pub fn field(&self, f: &str) -> &str {
        self.fields.get(f).map_or("", String::as_str)
    }
}

/// Orders stream entry ids (`<ms>-<seq>`); `None` if `id` is not one.
pub fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The process's events hub. Cheap to clone.
#[derive(Clone)]
pub struct EventHub {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    shared: Connection,
    keys: Keys,
    connect_timeout: Duration,
    tx: broadcast::Sender<Arc<StreamEvent>>,
    /// Whether the reader runs; locked while starting or stopping it.
    running: Mutex<bool>,
}

impl EventHub {
    /// A hub reading `keys`' events stream; connects on the first subscriber.
    pub fn new(client: redis::Client, shared: Connection, keys: Keys, connect_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                shared,
                keys,
                connect_timeout,
                tx: broadcast::channel(CAPACITY).0,
                running: Mutex::new(false),
            }),
        }
    }

    /// Every entry appended from now on (starts the reader if needed: when this
    /// returns, the reader's position is at or before the stream's end of now).
    pub async fn subscribe(&self) -> Result<broadcast::Receiver<Arc<StreamEvent>>> {
        let mut running = tokio::time::timeout(self.inner.connect_timeout, self.inner.running.lock())
            .await
            .map_err(|_| timed_out())?;
        let rx = self.inner.tx.subscribe();
        if !*running {
            let start = async {
                let mut conn = self.connect().await?;
                let last: StreamRangeReply = redis::cmd("XREVRANGE")
                    .arg(self.inner.keys.events())
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(&mut conn)
                    .await?;
                Ok::<_, crate::error::QueueError>((conn, last))
            };
            let (conn, last) = tokio::time::timeout(self.inner.connect_timeout, start)
                .await
                .map_err(|_| timed_out())??;
            let from = last.ids.first().map_or_else(|| "0-0".to_owned(), |e| e.id.clone());
            tokio::spawn(read(self.inner.clone(), conn, from));
            *running = true;
        }
        Ok(rx)
    }

    /// Entries after `after` (exclusive), oldest first, at most `max`.
    pub async fn after(&self, after: &str, max: usize) -> Result<Vec<StreamEvent>> {
        let mut conn = self.inner.shared.handle();
        let mut out: Vec<StreamEvent> = Vec::new();
        let mut from = after.to_owned();
        while out.len() < max {
            let page: StreamRangeReply = redis::cmd("XRANGE")
                .arg(self.inner.keys.events())
                .arg(format!("({from}"))
                .arg("+")
                .arg("COUNT")
                .arg(BATCH.min(max - out.len()))
                .query_async(&mut conn)
                .await?;
            let n = page.ids.len();
            let mut events = with_names(&mut conn, &self.inner.keys, page.ids).await?;
            if let Some(e) = events.last() {
                from = e.id.clone();
            }
            out.append(&mut events);
            if n < BATCH {
                break;
            }
        }
        Ok(out)
    }

    async fn connect(&self) -> Result<MultiplexedConnection> {
        // Habit 7: a response timeout longer than the block time.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.inner.connect_timeout))
            .set_response_timeout(Some(BLOCK + Duration::from_secs(3)));
        let mut conn = self
            .inner
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        // Named, so operators see the one reader per process in CLIENT LIST.
        let _: () = redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(READER_NAME)
            .query_async(&mut conn)
            .await?;
        Ok(conn)
    }
}

/// The reader: XREAD BLOCK from `last`, broadcast, until nobody listens.
async fn read(inner: Arc<Inner>, mut conn: MultiplexedConnection, mut last: String) {
    let hub = EventHub { inner: inner.clone() };
    let key = inner.keys.events();
    let options = StreamReadOptions::default()
        .count(BATCH)
        .block(BLOCK.as_millis() as usize);
    let mut failures = 0u32;
    loop {
        if inner.tx.receiver_count() == 0 {
            let mut running = inner.running.lock().await;
            if inner.tx.receiver_count() == 0 {
                *running = false;
                return;
            }
        }
        let reply: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREAD")
            .arg(&options)
            .arg("STREAMS")
            .arg(&key)
            .arg(&last)
            .query_async(&mut conn)
            .await;
        let entries = match reply {
            Ok(reply) => {
                failures = 0;
                reply
                    .and_then(|r| r.keys.into_iter().next())
                    .map(|k| k.ids)
                    .unwrap_or_default()
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error.message = %e, "reading the events stream failed");
                tokio::time::sleep(Duration::from_millis(200u64 << failures.min(5))).await;
                if let Ok(fresh) = hub.connect().await {
                    conn = fresh;
                }
                continue;
            }
        };
        if entries.is_empty() {
            continue;
        }
        let events = match with_names(&mut conn, &inner.keys, entries.clone()).await {
            Ok(events) => events,
            Err(_) => entries.into_iter().map(|e| event(e, None)).collect(),
        };
        for e in events {
            last = e.id.clone();
            let _ = inner.tx.send(Arc::new(e));
        }
    }
}

/// Adds each task's name (one pipelined HGET per task event).
async fn with_names<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    entries: Vec<StreamId>,
) -> Result<Vec<StreamEvent>> {
    let is_task = |e: &StreamId| {
        let kind: String = e.get("event").unwrap_or_default();
        !kind.starts_with("workflow_") && !kind.starts_with("worker-") && e.map.contains_key("task_id")
    };
    let mut pipe = redis::pipe();
    for e in entries.iter().filter(|e| is_task(e)) {
        let id: String = e.get("task_id").unwrap_or_default();
        pipe.hget(keys.task(&id), "name");
    }
    let mut names: std::vec::IntoIter<Option<String>> = if pipe.is_empty() {
        Vec::new().into_iter()
    } else {
        pipe.query_async::<Vec<Option<String>>>(conn).await?.into_iter()
    };
    Ok(entries
        .into_iter()
        .map(|e| {
            let name = if is_task(&e) { names.next().flatten() } else { None };
            event(e, name)
        })
        .collect())
}

fn event(e: StreamId, name: Option<String>) -> StreamEvent {
    let fields = e
        .map
        .iter()
        .filter_map(|(k, v)| redis::from_redis_value_ref::<String>(v).ok().map(|v| (k.clone(), v)))
        .collect();
    StreamEvent { id: e.id, fields, name }
}

fn timed_out() -> crate::error::QueueError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)).into()
}
