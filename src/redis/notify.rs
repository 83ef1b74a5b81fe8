//! Wake-ups for clients waiting on a task or workflow (`?wait=`), without polling.
//!
//! Final transitions PUBLISH on `{ns}:done:<id>`. Each API process keeps one
//! pub/sub connection. A waiter subscribes to its channel and has Redis confirm
//! it *before* reading the record, so a completion between the read and the
//! wait still wakes it. SUBSCRIBE and UNSUBSCRIBE are sent while holding the
//! connection's lock and after re-checking who still waits, so they reach Redis
//! in the order the waiters came and went.
//!
//! Waiters outlive connections. Whenever the connection is lost (the reader
//! ends, or a SUBSCRIBE fails or times out during a stall) and someone still
//! waits, a repair task reconnects with backoff. Every new connection first
//! subscribes to every channel that has waiters, then wakes them all to read
//! again, so a completion published while nobody was subscribed is not missed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt;
use redis::aio::PubSubSink;
use tokio::sync::{Mutex as AsyncMutex, broadcast};

use crate::error::Result;

/// Shared pub/sub hub of one process.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    /// Limit of each step: connecting, locking, (un)subscribing.
    timeout: Duration,
    /// The connection; locked while (un)subscribing.
    sink: AsyncMutex<Slot>,
    connections: std::sync::atomic::AtomicU64,
    /// Channel → its waiters.
    waiters: Mutex<HashMap<String, Waiters>>,
}

/// The connection, if any, and whether a repair task is at work. Both change
/// only under the lock, so exactly one repair runs while one is needed.
#[derive(Default)]
struct Slot {
    conn: Option<Conn>,
    repairing: bool,
}

impl Slot {
    /// Drops the connection (stopping its reader) and starts a repair if waiters remain.
    fn lose(&mut self, inner: &Arc<Inner>) {
        self.conn = None;
        if !self.repairing && inner.has_waiters() {
            self.repairing = true;
            tokio::spawn(repair(inner.clone()));
        }
    }
}

/// A pub/sub connection and the task reading it.
struct Conn {
    /// Tells connections apart (an old reader must not clear a newer connection).
    id: u64,
    sink: PubSubSink,
    reader: tokio::task::AbortHandle,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

struct Waiters {
    tx: broadcast::Sender<()>,
    count: usize,
}

/// One waiter's subscription; dropping the last one of a channel unsubscribes.
pub struct Subscription {
    rx: broadcast::Receiver<()>,
    channel: String,
    inner: Arc<Inner>,
}

impl Subscription {
    /// Resolves when the channel fires (or the connection was lost: read again then).
    pub async fn notified(&mut self) {
        let _ = self.rx.recv().await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let last = {
            let mut waiters = self.inner.waiters.lock().expect("waiters lock");
            match waiters.get_mut(&self.channel) {
                Some(w) => {
                    w.count = w.count.saturating_sub(1);
                    w.count == 0
                }
                None => false,
            }
        };
        if last {
            let inner = self.inner.clone();
            let channel = std::mem::take(&mut self.channel);
            tokio::spawn(async move {
                let sink = inner.sink.lock().await;
                let gone = {
                    let mut waiters = inner.waiters.lock().expect("waiters lock");
                    let idle = waiters.get(&channel).is_some_and(|w| w.count == 0);
                    if idle {
                        waiters.remove(&channel);
                    }
                    idle
                };
                if let (true, Some(conn)) = (gone, sink.conn.as_ref()) {
                    let timeout = inner.timeout;
                    let _ = tokio::time::timeout(timeout, conn.sink.clone().unsubscribe(&channel)).await;
                }
            });
        }
    }
}

impl Notifier {
    /// A hub that connects on first use; each step may take `timeout` at most.
    pub fn new(client: redis::Client, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                timeout,
                sink: AsyncMutex::new(Slot::default()),
                waiters: Mutex::new(HashMap::new()),
                connections: Default::default(),
            }),
        }
    }

    /// Subscribes to `channel`; returns once Redis confirmed the subscription.
    /// Fails (rather than waits) when a step takes longer than the timeout: a
    /// hung Redis must not hold every waiter, and the caller owes a 503 within 2 s.
    pub async fn subscribe(&self, channel: String) -> Result<Subscription> {
        let timeout = self.inner.timeout;
        let mut sink = tokio::time::timeout(timeout, self.inner.sink.lock())
            .await
            .map_err(|_| timed_out())?;
        if sink.conn.is_none() {
            match connect(&self.inner).await {
                Ok(conn) => sink.conn = Some(conn),
                Err(e) => {
                    sink.lose(&self.inner);
                    return Err(e);
                }
            }
        }
        let rx = {
            let mut waiters = self.inner.waiters.lock().expect("waiters lock");
            let w = waiters.entry(channel.clone()).or_insert_with(|| Waiters {
                tx: broadcast::channel(1).0,
                count: 0,
            });
            w.count += 1;
            w.tx.subscribe()
        };
        // Created before the round trip, so a failure below still counts the waiter out.
        let subscription = Subscription {
            rx,
            channel,
            inner: self.inner.clone(),
        };
        // Every waiter has its own SUBSCRIBE confirmed (Redis ignores repeats), so
        // none reads its record before its channel is live.
        let conn = sink.conn.as_mut().expect("connected above");
        let confirmed = tokio::time::timeout(timeout, conn.sink.subscribe(&subscription.channel)).await;
        match confirmed {
            Ok(Ok(())) => Ok(subscription),
            failed => {
                // The other waiters keep waiting: the repair re-subscribes their
                // channels on a new connection and wakes them to read again.
                sink.lose(&self.inner);
                Err(failed
                    .map_err(|_| timed_out())
                    .and_then(|r| r.map_err(Into::into))
                    .unwrap_err())
            }
        }
    }
}

impl Inner {
    fn has_waiters(&self) -> bool {
        self.waiters.lock().expect("waiters lock").values().any(|w| w.count > 0)
    }

    fn wake_all(&self) {
        for w in self.waiters.lock().expect("waiters lock").values() {
            let _ = w.tx.send(());
        }
    }
}

/// Reconnects, with backoff, until a connection is up or nobody waits.
async fn repair(inner: Arc<Inner>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
        let mut slot = inner.sink.lock().await;
        if slot.conn.is_some() || !inner.has_waiters() {
            slot.repairing = false;
            return;
        }
        match connect(&inner).await {
            Ok(conn) => {
                slot.conn = Some(conn);
                slot.repairing = false;
                tracing::info!("pub/sub connection restored");
                return;
            }
            Err(e) => tracing::debug!(error.cause_chain = ?e, "pub/sub reconnect failed, retrying"),
        }
    }
}

/// Connects a pub/sub connection, subscribes it to every channel that has
/// waiters, starts the task that dispatches its messages, then wakes every
/// waiter to read again (a completion may have come while nobody listened).
/// Called with the slot locked.
async fn connect(inner: &Arc<Inner>) -> Result<Conn> {
    let timeout = inner.timeout;
    let pubsub = tokio::time::timeout(timeout, inner.client.get_async_pubsub())
        .await
        .map_err(|_| timed_out())??;
    let (mut sink, mut stream) = pubsub.split();
    let channels: Vec<String> = {
        let waiters = inner.waiters.lock().expect("waiters lock");
        waiters
            .iter()
            .filter(|(_, w)| w.count > 0)
            .map(|(c, _)| c.clone())
            .collect()
    };
    if !channels.is_empty() {
        tokio::time::timeout(timeout, sink.subscribe(&channels))
            .await
            .map_err(|_| timed_out())??;
    }
    let id = inner.connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let reader_inner = inner.clone();
    let reader = tokio::spawn(async move {
        let inner = reader_inner;
        while let Some(msg) = stream.next().await {
            let waiters = inner.waiters.lock().expect("waiters lock");
            if let Some(w) = waiters.get(msg.get_channel_name()) {
                let _ = w.tx.send(());
            }
        }
        // Connection lost: forget it (the repair connects again and wakes the waiters).
        let mut slot = inner.sink.lock().await;
        let dead = if slot.conn.as_ref().is_some_and(|c| c.id == id) {
            let dead = slot.conn.take();
            slot.lose(&inner);
            dead
        } else {
            None
        };
        drop(slot);
        // Last statement: dropping the Conn aborts this very task, which has
        // nothing left to do (an abort only takes effect at an await).
        drop(dead);
    });
    inner.wake_all();
    Ok(Conn {
        id,
        sink,
        reader: reader.abort_handle(),
    })
}

fn timed_out() -> crate::error::QueueError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)).into()
}
