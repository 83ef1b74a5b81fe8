//! Names of queues, tasks and schedules: they become parts of Redis keys, URLs
//! and log lines, so they keep to a safe charset.

/// Whether `name` is a safe queue or task name: 1 to `max` characters from
/// `A-Z a-z 0-9 _ . : -`, the first a letter or digit. Names become parts of
/// Redis keys, URLs and log lines, so nothing else (no `/`, `..`, braces,
/// spaces, control or non-ASCII characters) gets that far.
pub fn is_safe_name(name: &str, max: usize) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'-'))
}

/// Longest queue name.
pub const MAX_QUEUE_NAME: usize = 128;
/// Longest task name.
pub const MAX_TASK_NAME: usize = 256;
