//! Completion callbacks: a delivery attempt records its outcome in the task's record.

use uuid::Uuid;

use super::Queue;
use crate::{error::Result, model::CallbackState, redis::scripts};

impl Queue {
    /// Records where task `id`'s callback stands (one field of its record, one
    /// atomic write). `Err(NotFound)` when the record is gone (expired or forgotten).
    pub async fn set_callback_state(&self, id: &Uuid, state: &CallbackState) -> Result<()> {
        let json = serde_json::to_string(state).unwrap_or_else(|_| "null".to_owned());
        scripts::callback_status(&mut self.conn().await?, &self.ctx(), &id.to_string(), &json).await
    }
}
