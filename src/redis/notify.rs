//! Wake-ups for clients waiting on a task or workflow (`?wait=`), without polling.
//!
//! Final transitions PUBLISH on `{ns}:done:<id>`. Each API process keeps one
//! pub/sub connection. A waiter subscribes to its channel and has Redis confirm
//! it *before* reading the record, so a completion between the read and the
//! wait still wakes it. SUBSCRIBE and UNSUBSCRIBE are sent while holding the
//! connection's lock and after re-checking who still waits, so they reach Redis
//! in the order the waiters came and went. When the connection drops, every
//! waiter is woken to read again (and subscribes again on a new connection).

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
    client: super::connect::PubSubClient,
    /// Limit of each step: connecting, locking, (un)subscribing.
    timeout: Duration,
    /// The connection; locked while (un)subscribing.
    sink: AsyncMutex<Option<Conn>>,
    connections: std::sync::atomic::AtomicU64,
    /// Channel → its waiters.
    waiters: Mutex<HashMap<String, Waiters>>,
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
                if let (true, Some(conn)) = (gone, sink.as_ref()) {
                    let timeout = inner.timeout;
                    let _ = tokio::time::timeout(timeout, conn.sink.clone().unsubscribe(&channel)).await;
                }
            });
        }
    }
}

impl Notifier {
    /// A hub that connects on first use; each step may take `timeout` at most.
    pub fn new(client: super::connect::PubSubClient, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                timeout,
                sink: AsyncMutex::new(None),
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
        if sink.is_none() {
            *sink = Some(self.connect().await?);
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
        let conn = sink.as_mut().expect("connected above");
        let confirmed = tokio::time::timeout(timeout, conn.sink.subscribe(&subscription.channel)).await;
        match confirmed {
            Ok(Ok(())) => Ok(subscription),
            failed => {
                *sink = None; // drops the connection and stops its reader
                Err(failed
                    .map_err(|_| timed_out())
                    .and_then(|r| r.map_err(Into::into))
                    .unwrap_err())
            }
        }
    }

    /// Connects the pub/sub connection and starts the task that dispatches its messages.
    async fn connect(&self) -> Result<Conn> {
        let connect = self.inner.client.get_async_pubsub();
        let pubsub = tokio::time::timeout(self.inner.timeout, connect)
            .await
            .map_err(|_| timed_out())??;
        let (sink, mut stream) = pubsub.split();
        let id = self
            .inner
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let inner = self.inner.clone();
        let reader = tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                let waiters = inner.waiters.lock().expect("waiters lock");
                if let Some(w) = waiters.get(msg.get_channel_name()) {
                    let _ = w.tx.send(());
                }
            }
            // Connection lost: forget it, and let every waiter read again (each
            // subscribes again, on a new connection).
            for w in inner.waiters.lock().expect("waiters lock").values() {
                let _ = w.tx.send(());
            }
            let mut current = inner.sink.lock().await;
            let dead = current.take_if(|c| c.id == id);
            drop(current);
            // Last statement: dropping the Conn aborts this very task, which has
            // nothing left to do (an abort only takes effect at an await).
            drop(dead);
        });
        Ok(Conn {
            id,
            sink,
            reader: reader.abort_handle(),
        })
    }
}

fn timed_out() -> crate::error::QueueError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)).into()
}
