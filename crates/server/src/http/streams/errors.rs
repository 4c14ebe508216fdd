//! The problems of stream errors: part of the door's one mapping (`queues::errors`), kept here
//! beside the stream shapes whose fields they name. Exhaustive on purpose.

use crate::http::{Problem, ProblemCode};
use wharf_engine::stream::{group::GroupError, StreamError};

/// The problem for `error`, its `field` a path in the stream endpoints' bodies.
pub(crate) fn stream_problem(error: &StreamError) -> Problem {
    let detail = error.to_string();
    let (code, field) = match error {
        StreamError::NotFound { .. } => (ProblemCode::StreamNotFound, None),
        StreamError::PartitionNotFound { .. } => (ProblemCode::PartitionNotFound, None),
        StreamError::PartitionsShrink { .. } => {
            (ProblemCode::Conflict, Some("partitions".to_string()))
        }
        StreamError::OptionOutOfRange { field, .. } => {
            (ProblemCode::InvalidField, Some(field.to_string()))
        }
        StreamError::OffsetOutOfRange { .. } => {
            (ProblemCode::OffsetOutOfRange, Some("offset".to_string()))
        }
        StreamError::NoRecords => (ProblemCode::InvalidField, Some("records".to_string())),
        StreamError::NotCompacted { .. } | StreamError::WebhookHistory { .. } => {
            (ProblemCode::Conflict, None)
        }
        StreamError::PartitionsLimit { .. } => {
            crate::http::refusals::count("limits.stream_partitions_max");
            (ProblemCode::LimitReached, Some("partitions".to_string()))
        }
        StreamError::RecordPartition { index, .. } => (
            ProblemCode::PartitionNotFound,
            Some(format!("records[{index}].partition")),
        ),
        StreamError::KeyRequired { index, .. } => (
            ProblemCode::InvalidField,
            Some(format!("records[{index}].key")),
        ),
        StreamError::ProducerIdNegative { .. } => {
            (ProblemCode::InvalidField, Some("producer_id".to_string()))
        }
        StreamError::SequenceNegative { .. } => {
            (ProblemCode::InvalidField, Some("sequence".to_string()))
        }
        StreamError::SequenceGap { .. }
        | StreamError::SequenceTooOld { .. }
        | StreamError::SequenceReused { .. }
        | StreamError::SequenceMoved { .. } => (
            ProblemCode::OutOfOrderSequence,
            Some("sequence".to_string()),
        ),
        StreamError::Group { source, .. } => group_code(source),
        StreamError::MemberRequired { .. } => {
            (ProblemCode::UnknownMember, Some("member_id".to_string()))
        }
        StreamError::Encode { .. } => (ProblemCode::InvalidField, Some("records".to_string())),
        StreamError::Damaged { .. } => {
            tracing::error!(%error, "request failed: a stored batch is damaged");
            return Problem::new(ProblemCode::StorageError).with_detail(
                "a stored record batch could not be read; the server log has the details",
            );
        }
    };
    let problem = Problem::new(code).with_detail(detail);
    match field {
        Some(field) => problem.with_field(field),
        None => problem,
    }
}

fn group_code(error: &GroupError) -> (ProblemCode, Option<String>) {
    match error {
        GroupError::UnknownMember { .. } => {
            (ProblemCode::UnknownMember, Some("member_id".to_string()))
        }
        GroupError::StaleGeneration { .. } => {
            (ProblemCode::StaleGeneration, Some("generation".to_string()))
        }
        GroupError::NotAssigned { .. } => {
            (ProblemCode::StaleGeneration, Some("offsets".to_string()))
        }
        GroupError::TooManyMembers { .. } => (ProblemCode::LimitReached, None),
        GroupError::SessionTimeoutOutOfRange { .. } => (
            ProblemCode::InvalidField,
            Some("session_timeout_ms".to_string()),
        ),
        GroupError::NotFound => (ProblemCode::GroupNotFound, None),
        GroupError::HasMembers { .. } => (ProblemCode::Conflict, None),
    }
}
