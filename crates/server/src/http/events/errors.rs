//! The problems of event-store errors: part of the door's one mapping (`queues::errors`),
//! kept beside the event-store shapes whose fields they name. Exhaustive on purpose.

use crate::http::{Problem, ProblemCode};
use wharf_engine::eventstore::EventStoreError;

pub(crate) fn event_store_problem(error: &EventStoreError) -> Problem {
    let detail = error.to_string();
    let (code, field) = match error {
        EventStoreError::StreamNotFound { .. } => (ProblemCode::EventStreamNotFound, None),
        EventStoreError::StreamDeleted { .. } => (ProblemCode::StreamDeleted, None),
        EventStoreError::WrongExpectedVersion {
            expected, current, ..
        } => {
            let mut problem = Problem::new(ProblemCode::WrongExpectedVersion)
                .with_detail(detail)
                .with_field("expected_version");
            problem.version_conflict = Some(Box::new(crate::http::problem::VersionConflict {
                current_version: *current,
                expected_version: expected.to_string(),
            }));
            return problem;
        }
        EventStoreError::Invalid { field, .. } => (ProblemCode::InvalidField, Some(field.clone())),
        EventStoreError::NoEvents | EventStoreError::TooManyEvents { .. } => {
            (ProblemCode::InvalidField, Some("events".to_string()))
        }
        EventStoreError::SnapshotNotFound { .. } => (ProblemCode::SnapshotNotFound, None),
        // The request is well formed; the stream or `$all` is not there yet.
        EventStoreError::SnapshotAhead { .. } => {
            (ProblemCode::Conflict, Some("version".to_string()))
        }
        EventStoreError::ProjectionNotFound { .. } => (ProblemCode::ProjectionNotFound, None),
        EventStoreError::CheckpointAhead { .. } => {
            (ProblemCode::Conflict, Some("position".to_string()))
        }
        EventStoreError::SubscriptionNotFound { .. } => (ProblemCode::SubscriptionNotFound, None),
        EventStoreError::SubscriptionConflict { .. } => (ProblemCode::Conflict, None),
        EventStoreError::Damaged { .. } => {
            tracing::error!(%error, "request failed: an event-store record is damaged");
            return Problem::new(ProblemCode::StorageError)
                .with_detail("a stored event could not be read; the server log has the details");
        }
    };
    let problem = Problem::new(code).with_detail(detail);
    match field {
        Some(field) => problem.with_field(field),
        None => problem,
    }
}
