//! The query of the `/v1` lists (`GET /v1/queues`, `GET /v1/topics`): a name prefix, a cursor
//! and a page size, turned into the engine's [`PageRequest`].

use super::{Problem, ProblemCode};
use serde::Deserialize;
use utoipa::IntoParams;
use wharf_engine::broker::PageRequest;

/// Items of a page when the query names no `limit`.
pub const LIST_LIMIT_DEFAULT: usize = 1_000;
/// The largest `limit`.
pub const LIST_LIMIT_MAX: usize = 10_000;

/// `?prefix=&after=&limit=`: every field optional.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only names that start with this.
    pub prefix: Option<String>,
    /// Only names after this one: the `next` of the page before.
    pub after: Option<String>,
    /// At most this many (1 to 10,000; default 1,000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<usize>,
}

impl ListQuery {
    /// The engine's request for this page; a `limit` out of range is a 400 naming it.
    pub fn page(&self) -> Result<PageRequest<'_>, Problem> {
        let limit = self.limit.unwrap_or(LIST_LIMIT_DEFAULT);
        if limit == 0 || limit > LIST_LIMIT_MAX {
            return Err(Problem::new(ProblemCode::InvalidField)
                .with_detail(format!("limit must be 1..={LIST_LIMIT_MAX}"))
                .with_field("limit"));
        }
        Ok(PageRequest {
            prefix: self.prefix.as_deref().unwrap_or(""),
            after: self.after.as_deref(),
            limit,
        })
    }
}
