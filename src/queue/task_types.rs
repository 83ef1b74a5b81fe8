//! Task names known from live worker registrations. A name is known while some
//! worker that lists it in its registration (`tasks` field of its hash) is still
//! listed; once the last one is pruned (`overview.rs`, after the retention time)
//! the name, its schema and its defaults are forgotten, and the enqueue script
//! refuses it again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use redis::AsyncCommands;
use serde_json::Value;

use super::Queue;
use crate::{error::Result, model::TaskType};

impl Queue {
    /// Every task name some listed worker registered, with its published schema,
    /// defaults, queues and workers, sorted by name. Prunes expired workers first.
    pub async fn task_types(&self) -> Result<Vec<TaskType>> {
        let k = &self.keys;
        let workers = self.workers().await?;
        let mut pipe = redis::pipe();
        for w in &workers {
            pipe.hget(k.worker(&w.name), "tasks");
        }
        pipe.hgetall(k.task_schemas()).hgetall(k.task_defaults());
        let mut replies: Vec<redis::Value> = pipe.query_async(&mut self.conn().await?).await?;
        let defaults: HashMap<String, String> = parse(replies.pop().unwrap_or(redis::Value::Nil))?;
        let schemas: HashMap<String, String> = parse(replies.pop().unwrap_or(redis::Value::Nil))?;
        let mut types: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
        for (w, tasks) in workers.iter().zip(replies) {
            let tasks: Option<String> = parse(tasks)?;
            for name in parse_names(tasks.as_deref()) {
                let (queues, names) = types.entry(name).or_default();
                queues.extend(w.queues.iter().cloned());
                names.insert(w.name.clone());
            }
        }
        Ok(types
            .into_iter()
            .map(|(name, (queues, workers))| TaskType {
                args_schema: schemas.get(&name).and_then(|s| serde_json::from_str(s).ok()),
                defaults: defaults
                    .get(&name)
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or_else(|| Value::Object(Default::default())),
                queues: queues.into_iter().collect(),
                workers: workers.into_iter().collect(),
                name,
            })
            .collect())
    }

    /// The published JSON Schema (text) of a task's arguments, if any.
    pub async fn task_schema(&self, name: &str) -> Result<Option<String>> {
        Ok(self.conn().await?.hget(self.keys.task_schemas(), name).await?)
    }

    /// The `command` task's commands as each listed worker published them (JSON
    /// texts, one per worker that offers the task).
    pub async fn published_commands(&self) -> Result<Vec<String>> {
        let mut conn = self.conn().await?;
        let names: Vec<String> = conn.zrange(self.keys.workers(), 0, -1).await?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for name in &names {
            pipe.hget(self.keys.worker(name), "commands");
        }
        let commands: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
        Ok(commands.into_iter().flatten().collect())
    }

    /// Forgets the task names (and their schemas and defaults) that no listed
    /// worker registers any more. Called after workers are pruned.
    ///
    /// Read, then remove: a worker registering a forgotten name in between is
    /// restored by its next heartbeat (which re-adds its names). A worker whose
    /// registration predates the `tasks` field keeps every name.
    pub(super) async fn forget_unregistered_tasks(&self) -> Result<()> {
        let k = &self.keys;
        let mut conn = self.conn().await?;
        let workers: Vec<String> = conn.zrange(k.workers(), 0, -1).await?;
        let mut pipe = redis::pipe();
        for name in &workers {
            pipe.hget(k.worker(name), "tasks");
        }
        pipe.smembers(k.task_names());
        let mut replies: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
        let known: Vec<String> = parse(replies.pop().unwrap_or(redis::Value::Nil))?;
        let mut live = HashSet::new();
        for tasks in replies {
            match parse::<Option<String>>(tasks)? {
                Some(tasks) => live.extend(parse_names(Some(&tasks))),
                // A hash gone since the read is pruned next time; an older
                // registration does not say what it runs: keep everything.
                None => return Ok(()),
            }
        }
        let gone: Vec<&String> = known.iter().filter(|n| !live.contains(*n)).collect();
        if gone.is_empty() {
            return Ok(());
        }
        tracing::info!(tasks = ?gone, "forgetting task names no listed worker registers");
        redis::pipe()
            .srem(k.task_names(), &gone)
            .ignore()
            .hdel(k.task_schemas(), &gone)
            .ignore()
            .hdel(k.task_defaults(), &gone)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }
}

fn parse_names(tasks: Option<&str>) -> Vec<String> {
    tasks.and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default()
}

fn parse<T: redis::FromRedisValue>(v: redis::Value) -> Result<T> {
    Ok(redis::from_redis_value(v).map_err(redis::RedisError::from)?)
}
