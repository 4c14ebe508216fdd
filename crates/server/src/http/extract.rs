//! Extractors of the path and the query string whose every failure is a [`Problem`], as the
//! body's ([`super::json_body::JsonBody`]) is: axum's own answer plain text in their own words
//! (`Invalid URL: Invalid UTF-8 in ...`, `Failed to deserialize query string: ...`).

use super::{json_body::json_wording, Problem, ProblemCode};
use axum::{
    extract::{rejection::PathRejection, FromRequestParts},
    http::request::Parts,
};
use serde::de::DeserializeOwned;

/// The path's parameters, parsed into `T` (a name, or a name and an id).
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

/// The query string, parsed into `T`.
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(path_problem(&rejection)),
        }
    }
}

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(query_problem(&rejection.body_text())),
        }
    }
}

/// Where a Server-Sent Events stream that numbers its events (`id:` a position or offset)
/// resumes: right after the `Last-Event-ID` the client sent back, `None` without one (or with
/// an empty one, which browsers never send). An id this server cannot have sent (not a whole
/// number, or the largest one) is refused by name rather than read as "from the start".
#[derive(Debug, Clone, Copy)]
pub struct ResumeAfter(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for ResumeAfter {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = (parts.headers.get("last-event-id")).filter(|value| !value.is_empty())
        else {
            return Ok(ResumeAfter(None));
        };
        let next = (value.to_str().ok())
            .and_then(|text| text.trim().parse::<u64>().ok())
            .and_then(|last| last.checked_add(1));
        match next {
            Some(next) => Ok(ResumeAfter(Some(next))),
            None => Err(Problem::new(ProblemCode::InvalidField)
                .with_field("Last-Event-ID")
                .with_detail(format!(
                    "Last-Event-ID {value:?} is not an id this stream sent (a whole number below {})",
                    u64::MAX
                ))),
        }
    }
}

/// A path parameter that is not UTF-8 once percent-decoded (`%ff`) is a bad name; any other
/// failure means a route and its handler disagree, which is this server's bug.
fn path_problem(rejection: &PathRejection) -> Problem {
    use axum::extract::path::ErrorKind;
    if let PathRejection::FailedToDeserializePathParams(error) = rejection {
        if let ErrorKind::InvalidUtf8InPathParam { key } = error.kind() {
            return Problem::new(ProblemCode::InvalidName)
                .with_detail(format!("the {key} in the path is not UTF-8 once decoded"))
                .with_field(key.as_str());
        }
        // A number in the path (a partition) that is not one, or too large for its type.
        if let ErrorKind::ParseErrorAtKey {
            key,
            value,
            expected_type,
        } = error.kind()
        {
            return Problem::new(ProblemCode::InvalidField)
                .with_detail(format!("invalid {key}: {value:?} is not {expected_type}"))
                .with_field(key.as_str());
        }
        if let ErrorKind::ParseErrorAtIndex { value, .. } | ErrorKind::ParseError { value, .. } =
            error.kind()
        {
            return Problem::new(ProblemCode::InvalidField)
                .with_detail(format!("invalid path: {value:?} is not a number in range"));
        }
    }
    tracing::error!(%rejection, "a route's parameters do not fit its handler");
    Problem::new(ProblemCode::Internal)
        .with_detail("an internal error stopped this request; the server log has it")
}

/// The problem for a query string that does not parse, worded like one for a body: axum's
/// prefix gone, serde's words in JSON's, and the parameter at fault as `field` when serde
/// names it.
fn query_problem(text: &str) -> Problem {
    let reason = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(text);
    let reason = json_wording(reason);
    let is_name = |name: &str| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match reason.split_once(": ").filter(|(name, _)| is_name(name)) {
        Some((field, why)) => Problem::new(ProblemCode::InvalidBody)
            .with_detail(format!("invalid query string at {field}: {why}"))
            .with_field(field),
        None => Problem::new(ProblemCode::InvalidBody)
            .with_detail(format!("invalid query string: {reason}")),
    }
}
