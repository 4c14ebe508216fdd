//! One handler per topic endpoint: parse the request, call the engine, shape the reply. No
//! routing logic lives here.

use super::wire::{
    BindingBody, BindingInfoBody, BindingListBody, PublishBody, PublishedListBody, TopicBody,
    TopicInfoBody, TopicListBody,
};
use crate::http::{
    extract::{Path, Query},
    json_body::JsonBody,
    listing::ListQuery,
    trace, AppState, Problem,
};
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    Extension, Json,
};
use wharf_engine::{
    security::{quotas::DefinitionKind, Action, Principal, Resource, ResourceKind},
    topic::Destination,
};

/// Creates a topic or updates its definition.
#[utoipa::path(
    put,
    path = "/v1/topics/{name}",
    tag = "topics",
    params(("name" = String, Path, description = "Topic name: 1-255 of A-Z a-z 0-9 . - _")),
    request_body = Option<TopicBody>,
    responses(
        (status = 201, description = "Created", body = TopicInfoBody),
        (status = 200, description = "Updated", body = TopicInfoBody),
        (status = 400, description = "Bad name, rule or destination; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A rule or the alternate names a missing queue or topic; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`kind` differs from the topic's while it has bindings, or a rule or the alternate names a resource another writes alone (a persistent subscription's queue, a webhook endpoint's history)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_topic(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<TopicBody>,
) -> Result<(StatusCode, Json<TopicInfoBody>), Problem> {
    let options = request.into_options()?;
    let destinations =
        (options.rules.iter().map(|rule| &rule.destination)).chain(options.alternate.as_ref());
    for destination in destinations {
        authorize_destination(&state, &principal, destination, Action::Write)?;
    }
    if state.engine.topic_info(&name).is_err() {
        state.engine.check_definition_quota(&principal)?;
    }
    let created = state.engine.put_topic(&name, options).await?;
    if created {
        let kind = DefinitionKind::Topic;
        state
            .engine
            .record_definition(&principal, kind, &name)
            .await?;
    }
    let info = state.engine.topic_info(&name)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info.into())))
}

/// Every topic, by name.
#[utoipa::path(
    get,
    path = "/v1/topics",
    tag = "topics",
    params(ListQuery),
    responses((status = 200, description = "The topics the caller holds a grant on, by name, a page at a time", body = TopicListBody))
)]
pub async fn list_topics(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ListQuery>,
) -> Result<Json<TopicListBody>, Problem> {
    let visible = |name: &str| {
        principal.sees(Resource {
            kind: ResourceKind::Topic,
            name,
        })
    };
    let page = state.engine.list_topics_page(query.page()?, visible);
    Ok(Json(TopicListBody {
        topics: page.items.into_iter().map(Into::into).collect(),
        next: page.next,
    }))
}

/// One topic's definition and statistics.
#[utoipa::path(
    get,
    path = "/v1/topics/{name}",
    tag = "topics",
    params(("name" = String, Path, description = "Topic name")),
    responses(
        (status = 200, description = "The topic", body = TopicInfoBody),
        (status = 404, description = "No such topic", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_topic(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<TopicInfoBody>, Problem> {
    Ok(Json(state.engine.topic_info(&name)?.into()))
}

/// Deletes a topic with its bindings and retained messages; its destinations stay.
#[utoipa::path(
    delete,
    path = "/v1/topics/{name}",
    tag = "topics",
    params(("name" = String, Path, description = "Topic name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such topic", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A door routes through it (AMQP's `amq.*`, MQTT's topic) or a webhook endpoint subscribes to it", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_topic(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    state.engine.delete_topic(&name).await?;
    (state.engine)
        .release_definition(DefinitionKind::Topic, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Binds a destination to the topic; retained messages it matches are delivered at once.
#[utoipa::path(
    post,
    path = "/v1/topics/{name}/bindings",
    tag = "topics",
    params(("name" = String, Path, description = "Topic name")),
    request_body = BindingBody,
    responses(
        (status = 201, description = "Bound", body = BindingInfoBody),
        (status = 400, description = "Bad pattern, filter or destination; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such topic or destination", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The destination is written by its owner alone: a persistent subscription's queue (`events-sub.*`) or a webhook endpoint's history stream", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn add_binding(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<BindingBody>,
) -> Result<(StatusCode, Json<BindingInfoBody>), Problem> {
    let create_queue = request.create_queue;
    // Shown back as stored: the filter in canonical form.
    let spec = wharf_engine::topic::canonical_spec(request.into_spec()?)?;
    // Messages published to the topic will be written to the destination: the caller must be
    // allowed to write there (and to create a queue it asks for).
    let (kind, destination) = match &spec.destination {
        Destination::Queue(queue) => (ResourceKind::Queue, queue),
        Destination::Stream(stream) => (ResourceKind::Stream, stream),
        Destination::Topic(topic) => (ResourceKind::Topic, topic),
    };
    let resource = Resource {
        kind,
        name: destination,
    };
    state
        .engine
        .authorize(&principal, Action::Write, resource)?;
    if create_queue {
        state
            .engine
            .authorize(&principal, Action::Manage, resource)?;
    }
    state.engine.check_definition_quota(&principal)?;
    let id = if create_queue {
        state.engine.bind_with_queue(&name, spec.clone()).await?
    } else {
        state.engine.bind(&name, spec.clone()).await?
    };
    let binding = format!("{name}/{id}");
    (state.engine)
        .record_definition(&principal, DefinitionKind::Binding, &binding)
        .await?;
    let info = wharf_engine::broker::BindingInfo {
        id,
        spec,
        matched: 0,
    };
    Ok((StatusCode::CREATED, Json(info.into())))
}

/// The topic's bindings with their match counts.
#[utoipa::path(
    get,
    path = "/v1/topics/{name}/bindings",
    tag = "topics",
    params(("name" = String, Path, description = "Topic name")),
    responses(
        (status = 200, description = "Bindings", body = BindingListBody),
        (status = 404, description = "No such topic", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_bindings(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<BindingListBody>, Problem> {
    let bindings = state
        .engine
        .list_bindings(&name)?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(BindingListBody { bindings }))
}

/// Removes one binding.
#[utoipa::path(
    delete,
    path = "/v1/topics/{name}/bindings/{id}",
    tag = "topics",
    params(
        ("name" = String, Path, description = "Topic name"),
        ("id" = String, Path, description = "Binding id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such topic or binding", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A webhook endpoint's binding: it changes with the endpoint", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_binding(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    state.engine.unbind(&name, &id).await?;
    let binding = format!("{name}/{id}");
    (state.engine)
        .release_definition(DefinitionKind::Binding, &binding)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Publishes a batch; answers once every durable destination stored its messages.
#[utoipa::path(
    post,
    path = "/v1/topics/{name}/publish",
    tag = "topics",
    params(("name" = String, Path, description = "Topic name")),
    request_body = PublishBody,
    responses(
        (status = 201, description = "Routed and stored, in request order", body = PublishedListBody),
        (status = 400, description = "A field is invalid; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such topic", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A destination queue is full", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Batch or request body too large", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn publish_messages(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<PublishBody>,
) -> Result<(StatusCode, Json<PublishedListBody>), Problem> {
    state
        .engine
        .admit_send(&principal, request.messages.len())?;
    let mut batch = request
        .messages
        .into_iter()
        .enumerate()
        .map(|(index, message)| message.into_publish(index))
        .collect::<Result<Vec<_>, _>>()?;
    let traceparent = trace::traceparent(&headers);
    for published in &mut batch {
        trace::carry(traceparent.as_deref(), &mut published.message.headers);
    }
    let published = state.engine.publish(&name, batch).await?;
    let messages = published.into_iter().map(Into::into).collect();
    Ok((StatusCode::CREATED, Json(PublishedListBody { messages })))
}

/// Messages published to a topic are written to its destinations (bindings, rules, the
/// alternate): the caller must be allowed `action` there.
fn authorize_destination(
    state: &AppState,
    principal: &Principal,
    destination: &Destination,
    action: Action,
) -> Result<(), wharf_engine::EngineError> {
    let (kind, name) = match destination {
        Destination::Queue(queue) => (ResourceKind::Queue, queue),
        Destination::Stream(stream) => (ResourceKind::Stream, stream),
        Destination::Topic(topic) => (ResourceKind::Topic, topic),
    };
    state
        .engine
        .authorize(principal, action, Resource { kind, name })
}
