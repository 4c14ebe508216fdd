//! How many queues, topics and bindings a caller may create: `limits.definitions_per_caller`.
//!
//! Each definition a non-administrator creates is recorded with its owner in the metadata store
//! (`owner/KIND/NAME`, the owner being the user, or for a token without a user the token),
//! and counted against the owner's quota; deleting it, by anyone, gives the place back.
//! Administrators are not counted: they are who raises a quota. Counts live in memory, rebuilt
//! from the records at open.

use super::Principal;
use crate::{Engine, EngineError};
use std::{collections::HashMap, sync::Mutex};
use wharf_storage::{MetaOp, Storage};

const OWNER_PREFIX: &str = "owner/";

/// Definitions per owner, and the owner of each.
#[derive(Debug, Default)]
pub(crate) struct Quotas {
    owners: Mutex<HashMap<String, String>>,
}

impl Quotas {
    pub(crate) fn load(store: &dyn Storage) -> Quotas {
        let owners = (store.meta_list(OWNER_PREFIX).into_iter())
            .filter_map(|(key, value)| Some((key, value.as_str()?.to_string())))
            .collect();
        Quotas {
            owners: Mutex::new(owners),
        }
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.owners.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a definition is, for its owner record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefinitionKind {
    Queue,
    Topic,
    Binding,
    Stream,
}

impl DefinitionKind {
    fn as_str(self) -> &'static str {
        match self {
            DefinitionKind::Queue => "queue",
            DefinitionKind::Topic => "topic",
            DefinitionKind::Binding => "binding",
            DefinitionKind::Stream => "stream",
        }
    }
}

fn owner_key(kind: DefinitionKind, name: &str) -> String {
    format!("{OWNER_PREFIX}{}/{name}", kind.as_str())
}

/// Whose quota `principal`'s creations count against; `None` for administrators.
fn quota_owner(principal: &Principal) -> Option<String> {
    principal.account()
}

impl Engine {
    /// Refuses a creation that would take `principal` past its quota (nothing counted yet).
    pub fn check_definition_quota(&self, principal: &Principal) -> Result<(), EngineError> {
        let (Some(owner), Some(max)) = (quota_owner(principal), self.definitions_max()) else {
            return Ok(());
        };
        let owned = (self.inner.quotas.owners().values())
            .filter(|o| **o == owner)
            .count();
        match owned < max {
            true => Ok(()),
            false => Err(EngineError::LimitReached {
                limit: "definitions_per_caller",
                max,
            }),
        }
    }

    /// Records that `principal` created the definition `kind`/`name` (after it was created).
    pub async fn record_definition(
        &self,
        principal: &Principal,
        kind: DefinitionKind,
        name: &str,
    ) -> Result<(), EngineError> {
        let (Some(owner), Some(_)) = (quota_owner(principal), self.definitions_max()) else {
            return Ok(());
        };
        let key = owner_key(kind, name);
        let put = MetaOp::Put(key.clone(), owner.clone().into());
        self.inner.store.meta_apply(vec![put]).await?;
        self.inner.quotas.owners().insert(key, owner);
        Ok(())
    }

    /// Gives back the place of the deleted definition `kind`/`name`, whoever deleted it.
    pub async fn release_definition(
        &self,
        kind: DefinitionKind,
        name: &str,
    ) -> Result<(), EngineError> {
        let key = owner_key(kind, name);
        if !self.inner.quotas.owners().contains_key(&key) {
            return Ok(());
        }
        self.inner
            .store
            .meta_apply(vec![MetaOp::Delete(key.clone())])
            .await?;
        self.inner.quotas.owners().remove(&key);
        Ok(())
    }

    fn definitions_max(&self) -> Option<usize> {
        match self.inner.config.definitions_per_caller {
            0 => None,
            max => Some(max),
        }
    }
}
