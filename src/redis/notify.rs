//! Wake-ups for clients waiting on a task (`GET /tasks/{id}?wait=`), without polling.
//!
//! Final transitions PUBLISH on `{ns}:done:<id>`. Each API process keeps one
//! pub/sub connection; a waiter subscribes to its task's channel *before* reading
//! the record, so a completion between the read and the wait still wakes it.
//! When the connection drops, every waiter is woken to re-read, and the next
//! waiter connects again.

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
    connect_timeout: Duration,
    sink: AsyncMutex<Option<PubSubSink>>,
    waiters: Mutex<HashMap<String, Waiters>>,
    generations: std::sync::atomic::AtomicU64,
}

struct Waiters {
    tx: broadcast::Sender<()>,
    count: usize,
    /// Tells this entry from a later one for the same channel (after a reconnect).
    generation: u64,
}

/// One waiter's subscription; dropping it unsubscribes when it was the last one.
pub struct Subscription {
    rx: broadcast::Receiver<()>,
    channel: String,
    generation: u64,
    inner: Arc<Inner>,
}

impl Subscription {
    /// Resolves when the channel fires (or the connection was lost: re-read then).
    pub async fn notified(&mut self) {
        let _ = self.rx.recv().await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let last = {
            let mut waiters = self.inner.waiters.lock().expect("waiters lock");
            match waiters.get_mut(&self.channel) {
                Some(w) if w.generation != self.generation => false,
                Some(w) if w.count > 1 => {
                    w.count -= 1;
                    false
                }
                Some(_) => waiters.remove(&self.channel).is_some(),
                None => false,
            }
        };
        if last {
            let inner = self.inner.clone();
            let channel = std::mem::take(&mut self.channel);
            tokio::spawn(async move {
                let sink = inner.sink.lock().await.clone();
                if let Some(mut sink) = sink {
                    let _ = sink.unsubscribe(&channel).await;
                }
            });
        }
    }
}

impl Notifier {
    /// A hub that connects on first use.
    pub fn new(client: redis::Client, connect_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                connect_timeout,
                sink: AsyncMutex::new(None),
                waiters: Mutex::new(HashMap::new()),
                generations: Default::default(),
            }),
        }
    }

    /// Subscribes to `channel`; returns once Redis confirmed the subscription.
    pub async fn subscribe(&self, channel: String) -> Result<Subscription> {
        let (rx, first, generation) = {
            let mut waiters = self.inner.waiters.lock().expect("waiters lock");
            let w = waiters.entry(channel.clone()).or_insert_with(|| Waiters {
                tx: broadcast::channel(1).0,
                count: 0,
                generation: self
                    .inner
                    .generations
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            });
            w.count += 1;
            (w.tx.subscribe(), w.count == 1, w.generation)
        };
        let subscription = Subscription {
            rx,
            channel,
            generation,
            inner: self.inner.clone(),
        };
        if first {
            let mut sink = self.connected_sink().await?;
            sink.subscribe(&subscription.channel).await?;
        }
        Ok(subscription)
    }

    async fn connected_sink(&self) -> Result<PubSubSink> {
        let mut guard = self.inner.sink.lock().await;
        if let Some(sink) = guard.as_ref() {
            return Ok(sink.clone());
        }
        let connect = self.inner.client.get_async_pubsub();
        let pubsub = tokio::time::timeout(self.inner.connect_timeout, connect)
            .await
            .map_err(|_| redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
        let (sink, mut stream) = pubsub.split();
        *guard = Some(sink.clone());
        let inner = self.inner.clone();
        tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                let waiters = inner.waiters.lock().expect("waiters lock");
                if let Some(w) = waiters.get(msg.get_channel_name()) {
                    let _ = w.tx.send(());
                }
            }
            // Connection lost: forget it and its subscriptions, and let every
            // waiter re-read its task (and subscribe again on a new connection).
            *inner.sink.lock().await = None;
            for (_, w) in inner.waiters.lock().expect("waiters lock").drain() {
                let _ = w.tx.send(());
            }
        });
        Ok(sink)
    }
}
