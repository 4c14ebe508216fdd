//! Checkpointed projections: a named reader of `$all` (optionally filtered by event-type and
//! stream-id prefix) whose position the server keeps, so that a read-model builder resumes
//! where it left off after its own restart or the server's. The definition and checkpoint
//! are one metadata entry, `event-projection/NAME`, written durably on every checkpoint.

use super::{AllEvents, Engine, EventFilter};
use crate::{
    broker::{listing, Page, PageRequest},
    error::EngineError,
    eventstore::{check_name, EventStoreError},
};
use serde::{Deserialize, Serialize};
use wharf_storage::{MetaOp, Offset};

const PROJECTION_META_PREFIX: &str = "event-projection/";
/// Longest projection name.
const PROJECTION_NAME_MAX: usize = 128;

/// Which events a projection reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectionFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_prefix: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    filter: ProjectionFilter,
    /// The position of the last event the read model applied.
    checkpoint: Option<u64>,
}

/// A projection and how far behind `$all` it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    pub name: String,
    pub filter: ProjectionFilter,
    pub checkpoint: Option<u64>,
    /// The last position of `$all`, if it holds anything.
    pub head: Option<u64>,
    /// Records of `$all` after the checkpoint.
    pub lag_events: u64,
    /// How long ago the oldest event after the checkpoint was appended; 0 when caught up.
    /// Measured when asked for one projection, and at each metrics scrape for the list.
    pub lag_ms: u64,
}

pub(super) fn check_projection_name(name: &str) -> Result<(), EventStoreError> {
    check_name("name", name)?;
    if name.len() > PROJECTION_NAME_MAX {
        let problem = format!(
            "is {} bytes long; at most {PROJECTION_NAME_MAX}",
            name.len()
        );
        return Err(EventStoreError::invalid("name", problem));
    }
    Ok(())
}

impl Engine {
    /// Creates the projection, or changes its filter (keeping its checkpoint). True when
    /// created.
    pub async fn put_projection(
        &self,
        name: &str,
        filter: ProjectionFilter,
    ) -> Result<bool, EngineError> {
        self.check_open()?;
        check_projection_name(name)?;
        for (field, prefix) in [
            ("type_prefix", &filter.type_prefix),
            ("stream_prefix", &filter.stream_prefix),
        ] {
            if let Some(prefix) = prefix {
                crate::eventstore::check_prefix(field, prefix)?;
            }
        }
        let _admin = self.inner.admin.lock().await;
        let existing = self.stored_projection(name).ok();
        let created = existing.is_none();
        let checkpoint = existing.and_then(|stored| stored.checkpoint);
        self.write_projection(name, Stored { filter, checkpoint })
            .await?;
        Ok(created)
    }

    pub fn projection(&self, name: &str) -> Result<Projection, EngineError> {
        check_projection_name(name)?;
        let stored = self.stored_projection(name)?;
        Ok(self.describe_projection(name, stored))
    }

    /// The projection with its time lag measured now.
    pub async fn measured_projection(&self, name: &str) -> Result<Projection, EngineError> {
        let mut projection = self.projection(name)?;
        projection.lag_ms = self.projection_lag_ms(&projection).await?;
        Ok(projection)
    }

    /// One page of the projections by name, with time lags measured now (a log read each).
    pub async fn projections_page(&self, request: PageRequest<'_>) -> Page<Projection> {
        let page = listing::meta_page(&*self.inner.store, PROJECTION_META_PREFIX, request);
        let mut projections = Vec::with_capacity(page.items.len());
        for (name, value) in page.items {
            let Ok(stored) = serde_json::from_value(value) else {
                continue;
            };
            let mut projection = self.describe_projection(&name, stored);
            if let Ok(lag_ms) = self.projection_lag_ms(&projection).await {
                projection.lag_ms = lag_ms;
            }
            projections.push(projection);
        }
        Page {
            items: projections,
            next: page.next,
        }
    }

    /// The first `max` projections by name.
    pub fn projections(&self, max: usize) -> Vec<Projection> {
        let entries = self
            .inner
            .store
            .meta_range(PROJECTION_META_PREFIX, None, max);
        (entries.into_iter())
            .filter_map(|(key, value)| {
                let stored = serde_json::from_value(value).ok()?;
                let name = &key[PROJECTION_META_PREFIX.len()..];
                Some(self.describe_projection(name, stored))
            })
            .collect()
    }

    pub async fn delete_projection(&self, name: &str) -> Result<(), EngineError> {
        self.check_open()?;
        check_projection_name(name)?;
        let _admin = self.inner.admin.lock().await;
        self.stored_projection(name)?;
        let key = format!("{PROJECTION_META_PREFIX}{name}");
        self.inner
            .store
            .meta_apply(vec![MetaOp::Delete(key)])
            .await?;
        Ok(())
    }

    /// Stores `position` (the last event the read model applied) as the checkpoint.
    pub async fn checkpoint_projection(
        &self,
        name: &str,
        position: u64,
    ) -> Result<Projection, EngineError> {
        self.check_open()?;
        check_projection_name(name)?;
        let end = self.events_end();
        if position >= end {
            return Err(EventStoreError::CheckpointAhead { position, end }.into());
        }
        let _admin = self.inner.admin.lock().await;
        let mut stored = self.stored_projection(name)?;
        stored.checkpoint = Some(position);
        self.write_projection(name, stored.clone()).await?;
        Ok(self.describe_projection(name, stored))
    }

    /// Up to `limit` events after the projection's checkpoint that pass its filter.
    pub async fn projection_events(
        &self,
        name: &str,
        limit: usize,
    ) -> Result<AllEvents, EngineError> {
        check_projection_name(name)?;
        let stored = self.stored_projection(name)?;
        let filter = EventFilter {
            type_prefix: stored.filter.type_prefix,
            stream_prefix: stored.filter.stream_prefix,
            stream: None,
        };
        let from = stored.checkpoint.map_or(0, |checkpoint| checkpoint + 1);
        self.read_all_events(from, limit, &filter).await
    }

    /// How far behind `$all` the projection is: the time of the first record after its
    /// checkpoint (a read of the log; events only, so usually one read).
    pub async fn projection_lag_ms(&self, projection: &Projection) -> Result<u64, EngineError> {
        let from = projection.checkpoint.map_or(0, |checkpoint| checkpoint + 1);
        let log = &self.events().log;
        let batch = log
            .read_batch(Offset(from.max(log.start_offset().0)), 16, 1 << 20)
            .await?;
        for record in batch {
            if let Some(event) = super::RecordedEvent::decode(record.offset.0, &record.payload)? {
                return Ok(self.now().saturating_sub(event.time_ms));
            }
        }
        Ok(0)
    }

    /// Measures the time lag of the first `max` projections by name again, for
    /// [`Engine::projections`] to report (`/metrics` calls it before each scrape, with the
    /// number of projections it shows: a lag costs a log read).
    pub async fn refresh_projection_lags(&self, max: usize) {
        let mut lags = std::collections::HashMap::new();
        for projection in self.projections(max) {
            if let Ok(lag_ms) = self.projection_lag_ms(&projection).await {
                lags.insert(projection.name, lag_ms);
            }
        }
        *self.inner.events.lags.lock().expect("lags lock") = lags;
    }

    fn stored_projection(&self, name: &str) -> Result<Stored, EngineError> {
        let key = format!("{PROJECTION_META_PREFIX}{name}");
        let not_found = || EventStoreError::ProjectionNotFound {
            name: name.to_string(),
        };
        let value = self.inner.store.meta_get(&key).ok_or_else(not_found)?;
        serde_json::from_value(value).map_err(|error| {
            let error = crate::error::DefinitionError::Decode(error);
            EngineError::corrupt_definition(&key, error)
        })
    }

    async fn write_projection(&self, name: &str, stored: Stored) -> Result<(), EngineError> {
        let key = format!("{PROJECTION_META_PREFIX}{name}");
        let value = serde_json::to_value(stored).expect("projection serializes");
        self.inner
            .store
            .meta_apply(vec![MetaOp::Put(key, value)])
            .await?;
        Ok(())
    }

    fn describe_projection(&self, name: &str, stored: Stored) -> Projection {
        let end = self.events_end();
        let done = stored.checkpoint.map_or(0, |checkpoint| checkpoint + 1);
        Projection {
            name: name.to_string(),
            filter: stored.filter,
            checkpoint: stored.checkpoint,
            head: end.checked_sub(1),
            lag_events: end.saturating_sub(done),
            lag_ms: (self.inner.events.lags.lock().expect("lags lock"))
                .get(name)
                .copied()
                .unwrap_or(0),
        }
    }
}
