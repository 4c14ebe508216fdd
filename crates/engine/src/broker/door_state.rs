//! State a protocol door keeps for its clients across restarts (MQTT's persistent sessions),
//! as JSON documents in the metadata store under `doors/{door}/{key}`. The door owns their
//! shape; the engine only keeps them.

use super::Engine;
use crate::error::EngineError;
use serde_json::Value;
use wharf_storage::MetaOp;

const DOOR_STATE_PREFIX: &str = "doors/";

impl Engine {
    /// Every document door `door` keeps, as (key, document), keys without the prefix.
    pub fn door_state(&self, door: &str) -> Vec<(String, Value)> {
        let prefix = format!("{DOOR_STATE_PREFIX}{door}/");
        (self.inner.store.meta_list(&prefix).into_iter())
            .map(|(key, value)| (key[prefix.len()..].to_string(), value))
            .collect()
    }

    /// Stores `value` under `key` for door `door` (durably, before it returns), or deletes the
    /// document when `value` is `None`.
    pub async fn put_door_state(
        &self,
        door: &str,
        key: &str,
        value: Option<Value>,
    ) -> Result<(), EngineError> {
        self.check_open()?;
        let key = format!("{DOOR_STATE_PREFIX}{door}/{key}");
        let op = match value {
            Some(value) => MetaOp::Put(key, value),
            None => MetaOp::Delete(key),
        };
        super::space::meta_apply_freeing(self.inner.store.as_ref(), vec![op]).await?;
        Ok(())
    }
}
