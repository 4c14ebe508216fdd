//! The answers every operation may get from the layers around its handler, added to the
//! document so that it lists each status a client can meet: the guard's 401, 403 and 429, the
//! JSON body reader's 400, 413 and 415, the browser rules' 421, 503 while the server stops,
//! 507 on a full disk. The handlers' own `responses(...)` keep their descriptions; only the
//! statuses they leave out are added.

use utoipa::openapi::{
    path::{Operation, PathItem},
    security::SecurityRequirement,
    Content, OpenApi, Ref, Response,
};

/// Adds the layers' answers to every operation of the document.
pub(super) struct LayerResponses;

impl utoipa::Modify for LayerResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (writes, operation) in operations(item) {
                add_layer_responses(path, writes, operation);
            }
        }
    }
}

/// Each operation of `item`, with whether its method changes state.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (bool, &mut Operation)> {
    [
        (false, item.get.as_mut()),
        (true, item.put.as_mut()),
        (true, item.post.as_mut()),
        (true, item.delete.as_mut()),
        (true, item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(writes, operation)| operation.map(|operation| (writes, operation)))
}

fn add_layer_responses(path: &str, writes: bool, operation: &mut Operation) {
    let api = path.starts_with("/v1/");
    let secured = match &operation.security {
        // The document's default: bearer or basic.
        None => true,
        Some(requirements) => !requirements.contains(&SecurityRequirement::default()),
    };
    let has_body = operation.request_body.is_some();
    let has_parameters = (operation.parameters.as_ref()).is_some_and(|list| !list.is_empty());
    let statuses = [
        (
            "400",
            api && (has_body || has_parameters),
            "The request is malformed: a bad name, parameter, field or body; `field` names it",
        ),
        (
            "401",
            secured,
            "No valid credentials, on a server that has users or tokens",
        ),
        (
            "403",
            secured,
            "The credentials hold no grant for this action on this resource",
        ),
        (
            "413",
            has_body,
            "The body or its batch is over a size limit; `detail` names the setting",
        ),
        (
            "415",
            api && writes,
            "The body is not JSON: form and text content types are refused",
        ),
        (
            "421",
            true,
            "The Host header names none of the server's names (`http.allowed_hosts`)",
        ),
        (
            "429",
            api,
            "A limit is reached (send rate, long polls, definitions, connections per caller); \
             `detail` names the setting",
        ),
        ("503", api, "The server is shutting down"),
        ("507", api && writes, "The disk is full: nothing was stored"),
    ];
    let responses = &mut operation.responses.responses;
    for (status, applies, description) in statuses {
        if applies && !responses.contains_key(status) {
            responses.insert(status.to_string(), problem_response(description).into());
        }
    }
}

/// A response whose body is a [`super::Problem`].
fn problem_response(description: &str) -> Response {
    let schema = Ref::from_schema_name("Problem");
    let mut response = Response::new(description);
    response.content.insert(
        "application/problem+json".to_string(),
        Content::new(Some(schema)),
    );
    response
}
