//! Scripts of the listing indexes: a page of a listing, and their trimming.

use std::sync::LazyLock;

use redis::{Script, aio::ConnectionLike};

use super::Ctx;
use crate::{
    error::Result,
    redis::{invocation::Invocation, keys::Keys},
};

static LIST_PAGE: LazyLock<Script> = script!("list_page.lua");
static TRIM_INDEXES: LazyLock<Script> = script!("trim_indexes.lua");

/// Runs `list_page.lua`: per index in `indexes`, up to `per_index` entries
/// `(id, score)` newest first, strictly after `cursor` (score, id), with scores
/// between `low` and `high` (Redis score bounds: `(ms`, `ms`, `-inf`, `+inf`).
/// The leases ZSET given as an index stands for the STARTED tasks.
pub async fn list_page(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    indexes: &[String],
    cursor: Option<(i64, &str)>,
    high: &str,
    low: &str,
    per_index: usize,
) -> Result<Vec<Vec<(String, f64)>>> {
    let mut inv = Invocation::new(&LIST_PAGE);
    for key in indexes {
        inv.key(key);
    }
    let (score, id) = cursor.unwrap_or((0, ""));
    inv.arg(score)
        .arg(id)
        .arg(high)
        .arg(low)
        .arg(per_index)
        .arg(keys.task_prefix())
        .arg(keys.leases());
    Ok(inv.invoke_async(conn).await?)
}

/// Runs `trim_indexes.lua`: removes up to `batch` entries per listing index
/// whose record expired; returns how many it removed.
pub async fn trim_indexes(conn: &mut impl ConnectionLike, ctx: &Ctx<'_>, batch: usize) -> Result<u64> {
    let k = ctx.keys;
    let mut inv = Invocation::new(&TRIM_INDEXES);
    inv.key(k.queues())
        .key(k.task_names())
        .key(k.workers())
        .key(k.schedules())
        .arg(ctx.now_ms)
        .arg(ctx.result_ttl_ms)
        .arg(batch)
        .arg(k.task_prefix())
        .arg(k.index_prefix());
    Ok(inv.invoke_async(conn).await?)
}
