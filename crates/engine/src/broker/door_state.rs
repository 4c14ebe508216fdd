//! State a protocol door keeps for its clients across restarts (MQTT's persistent sessions),
//! as JSON documents in the metadata store under `doors/{door}/{key}`. The door owns their
//! shape; the engine only keeps them.

use super::Engine;
use crate::error::EngineError;
use serde_json::Value;
use wharf_storage::MetaOp;

const DOOR_STATE_PREFIX: &str = "doors/";

impl Engine {
    /// The document door `door` keeps under `key`, if any: one lookup, however many it keeps.
    pub fn door_state_get(&self, door: &str, key: &str) -> Option<Value> {
        self.inner
            .store
            .meta_get(&format!("{DOOR_STATE_PREFIX}{door}/{key}"))
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
