//! The one mapping from [`EngineError`] to an HTTP reply. Exhaustive on purpose (no `_` arm):
//! a new engine error does not compile until this door decides its status.

use crate::http::{Problem, ProblemCode};
use wharf_engine::{log_throttle::LogThrottle, EngineError};

impl From<EngineError> for Problem {
    fn from(error: EngineError) -> Self {
        let detail = error.to_string();
        let code = match &error {
            EngineError::InvalidName { .. } => {
                return Problem::new(ProblemCode::InvalidName)
                    .with_detail(detail)
                    .with_field("name")
            }
            EngineError::InvalidField { field, .. } => {
                return Problem::new(ProblemCode::InvalidField)
                    .with_field(field.clone())
                    .with_detail(detail)
            }
            EngineError::QueueNotFound { .. } => ProblemCode::QueueNotFound,
            EngineError::TopicNotFound { .. } => ProblemCode::TopicNotFound,
            EngineError::BindingNotFound { .. } => ProblemCode::BindingNotFound,
            EngineError::ReplyNotFound { .. } => ProblemCode::ReplyNotFound,
            EngineError::Timeout { .. } => ProblemCode::Timeout,
            EngineError::TooLarge { .. } => ProblemCode::TooLarge,
            EngineError::QueueFull { .. } => ProblemCode::QueueFull,
            EngineError::LimitReached { .. } => ProblemCode::LimitReached,
            EngineError::ShuttingDown => ProblemCode::Unavailable,
            EngineError::QueueBroken { .. } => ProblemCode::QueueBroken,
            EngineError::Internal { .. } => ProblemCode::Internal,
            // Storage errors name files and OS errors: the log gets them, the client a summary.
            EngineError::Storage(storage) if storage.is_disk_full() => {
                static THROTTLE: LogThrottle = LogThrottle::new();
                if let Some(suppressed) = THROTTLE.allow() {
                    tracing::warn!(error = %storage, suppressed, "request failed: disk full");
                }
                return Problem::new(ProblemCode::DiskFull)
                    .with_detail("the disk is full; nothing of this request was stored");
            }
            EngineError::Storage(storage) => {
                static THROTTLE: LogThrottle = LogThrottle::new();
                if let Some(suppressed) = THROTTLE.allow() {
                    tracing::error!(error = %storage, suppressed, "request failed: storage error");
                }
                return Problem::new(ProblemCode::StorageError)
                    .with_detail("storage failed; the server log has the details");
            }
            EngineError::Record(record) => {
                static THROTTLE: LogThrottle = LogThrottle::new();
                if let Some(suppressed) = THROTTLE.allow() {
                    tracing::error!(error = %record, suppressed, "request failed: bad record");
                }
                return Problem::new(ProblemCode::StorageError).with_detail(
                    "a stored record could not be read; the server log has the details",
                );
            }
        };
        Problem::new(code).with_detail(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{io, sync::Arc};
    use wharf_storage::StorageError;

    fn problem(error: EngineError) -> Problem {
        Problem::from(error)
    }

    #[test]
    fn client_errors_name_their_field() {
        let invalid_name = problem(EngineError::InvalidName {
            kind: "queue",
            name: "a b".to_string(),
            reason: "space".to_string(),
        });
        assert_eq!(invalid_name.status, 400);
        assert_eq!(invalid_name.field.as_deref(), Some("name"));
        let invalid_field = problem(EngineError::InvalidField {
            field: "messages[0].priority".to_string(),
            reason: "too high".to_string(),
        });
        assert_eq!(invalid_field.status, 400);
        assert_eq!(invalid_field.field.as_deref(), Some("messages[0].priority"));
        assert!(invalid_field.detail.unwrap().contains("too high"));
    }

    #[test]
    fn state_errors_get_their_statuses() {
        let cases = [
            (
                EngineError::QueueNotFound {
                    name: "jobs".to_string(),
                },
                404,
                ProblemCode::QueueNotFound,
            ),
            (
                EngineError::TooLarge {
                    what: "a batch",
                    size: 2_000,
                    max: 1_000,
                },
                413,
                ProblemCode::TooLarge,
            ),
            (
                EngineError::QueueFull {
                    name: "jobs".to_string(),
                    max_length: 4,
                },
                409,
                ProblemCode::QueueFull,
            ),
            (
                EngineError::LimitReached {
                    limit: "subscriptions_max",
                    max: 3,
                },
                429,
                ProblemCode::LimitReached,
            ),
            (EngineError::ShuttingDown, 503, ProblemCode::Unavailable),
        ];
        for (error, status, code) in cases {
            let text = error.to_string();
            let problem = problem(error);
            assert_eq!(problem.status, status, "{text}");
            assert_eq!(problem.code, code, "{text}");
            assert_eq!(problem.detail.as_deref(), Some(text.as_str()));
            assert_eq!(problem.field, None);
        }
    }

    #[test]
    fn a_full_disk_is_507_and_other_io_500() {
        let io_error = |code| StorageError::Io {
            path: "logs/queue.jobs/0.seg".into(),
            source: Arc::new(io::Error::from_raw_os_error(code)),
        };
        let full = problem(io_error(libc::ENOSPC).into());
        assert_eq!((full.status, full.code), (507, ProblemCode::DiskFull));
        let failed = problem(io_error(libc::EIO).into());
        assert_eq!(
            (failed.status, failed.code),
            (500, ProblemCode::StorageError)
        );
        for detail in [full.detail, failed.detail] {
            let detail = detail.expect("a detail");
            assert!(
                !detail.contains("logs/"),
                "no file path reaches a client: {detail}"
            );
        }
    }
}
