//! `/v1/connections`: the client connections of the doors that keep them (AMQP), from the
//! server's [`Connections`](crate::connections::Connections) list, and closing one.
//!
//! Anyone with credentials lists connections, as anyone reads the node's alerts: an
//! administrator sees every connection, any other caller only those of its own user (or
//! token). Closing one is for administrators.

use super::{
    extract::{Path, Query},
    listing::{LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX},
    AppState, Problem, ProblemCode,
};
use crate::connections::{
    visible, ChannelInfo, ClientProperties, ConnectionId, ConnectionInfo, ConsumerInfo, Door,
};
use axum::{extract::State, http::StatusCode, routing::get, Extension, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wharf_engine::security::{Identity, Principal};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/connections", get(list_connections))
        .route(
            "/v1/connections/{id}",
            get(get_connection).delete(close_connection),
        )
}

/// The door (protocol) of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DoorBody {
    Amqp,
    Mqtt,
}

/// `?door=&after=&limit=`: every field optional.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConnectionListQuery {
    /// Only connections of this door.
    pub door: Option<DoorBody>,
    /// Only connections with a greater id: the `next` of the page before.
    pub after: Option<u64>,
    /// At most this many (1 to 10,000; default 1,000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<usize>,
}

/// What the client said of itself (AMQP: `client_properties`); absent members it did not say.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClientBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "pika Python Client Library")]
    pub product: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The name the application gave the connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_name: Option<String>,
}

/// A connection, in a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionBody {
    /// Unique within the server process; never reused until it restarts.
    #[schema(example = 7)]
    pub id: u64,
    pub door: DoorBody,
    /// The client's address and port.
    #[schema(example = "127.0.0.1:52814")]
    pub peer: String,
    /// The user it acts for (a token's owner); null for the anonymous caller of an open server
    /// and for tokens of no user.
    #[schema(example = "alice")]
    pub user: Option<String>,
    /// The id of the token it authenticated with, if it did with a token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// AMQP's virtual host, as the client named it (Wharf has one).
    #[schema(example = "/")]
    pub virtual_host: Option<String>,
    pub client: ClientBody,
    /// When the handshake finished (ms since the Unix epoch).
    pub connected_at_ms: u64,
    /// Open channels.
    pub channel_count: usize,
    /// Consumers over all its channels.
    pub consumer_count: usize,
}

/// A consumer of a channel.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsumerBody {
    #[schema(example = "amq.ctag-1-1")]
    pub tag: String,
    #[schema(example = "orders")]
    pub queue: String,
    /// Deliveries it may hold unsettled (`basic.qos`); 0: the server's maximum.
    pub prefetch: u16,
    /// Deliveries are settled as they are sent.
    pub no_ack: bool,
}

/// A channel of a connection.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChannelBody {
    pub number: u16,
    /// Publishes are confirmed (`confirm.select`).
    pub confirm: bool,
    pub consumers: Vec<ConsumerBody>,
}

/// A connection with its channels and their consumers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionDetailBody {
    #[serde(flatten)]
    pub connection: ConnectionBody,
    pub channels: Vec<ChannelBody>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionListBody {
    pub connections: Vec<ConnectionBody>,
    /// More may match: ask again with `after` set to this. Absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// The caller's connections (every one, for administrators), by id, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/connections",
    tag = "connections",
    params(ConnectionListQuery),
    responses((status = 200, description = "Open client connections by id", body = ConnectionListBody))
)]
pub async fn list_connections(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ConnectionListQuery>,
) -> Result<Json<ConnectionListBody>, Problem> {
    let limit = query.limit.unwrap_or(LIST_LIMIT_DEFAULT);
    if limit == 0 || limit > LIST_LIMIT_MAX {
        return Err(Problem::new(ProblemCode::InvalidField)
            .with_detail(format!("limit must be 1..={LIST_LIMIT_MAX}"))
            .with_field("limit"));
    }
    let door = query.door.map(Door::from);
    let keep = |listed: Door, identity: &Identity| {
        door.is_none_or(|door| listed == door) && visible(identity, &principal)
    };
    let page = (state.connections).list(query.after.map(ConnectionId), limit, keep);
    Ok(Json(ConnectionListBody {
        connections: page.items.iter().map(ConnectionBody::from).collect(),
        next: page.next.map(|id| id.0),
    }))
}

/// One connection, with its channels and consumers.
#[utoipa::path(
    get,
    path = "/v1/connections/{id}",
    tag = "connections",
    params(("id" = u64, Path, description = "Connection id")),
    responses(
        (status = 200, description = "The connection", body = ConnectionDetailBody),
        (status = 404, description = "No such connection open", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_connection(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<ConnectionDetailBody>, Problem> {
    let info = found(&state, &id).filter(|info| info.visible_to(&principal));
    // One not visible is as if it did not exist: its id tells nothing the caller may know.
    let info = info.ok_or_else(|| not_found(&id))?;
    Ok(Json(ConnectionDetailBody {
        connection: ConnectionBody::from(&info),
        channels: info.channels.iter().map(ChannelBody::from).collect(),
    }))
}

/// Closes a connection (administrators): an AMQP client is sent `connection.close` with 320
/// CONNECTION_FORCED, and its unsettled deliveries go back to their queues. The connection
/// leaves the list once its door has closed it, at once unless the door is busy.
#[utoipa::path(
    delete,
    path = "/v1/connections/{id}",
    tag = "connections",
    params(("id" = u64, Path, description = "Connection id")),
    responses(
        (status = 204, description = "Closing"),
        (status = 404, description = "No such connection open", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn close_connection(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    match id.parse() {
        Ok(parsed) if state.connections.close(parsed) => Ok(StatusCode::NO_CONTENT),
        _ => Err(not_found(&id)),
    }
}

/// The connection `id` names; none for an id that is not a number, which names none.
fn found(state: &AppState, id: &str) -> Option<ConnectionInfo> {
    let id: ConnectionId = id.parse().ok()?;
    state.connections.get(id)
}

fn not_found(id: &str) -> Problem {
    Problem::new(ProblemCode::ConnectionNotFound)
        .with_detail(format!("no open connection with id {id:?}"))
        .with_field("id")
}

impl From<DoorBody> for Door {
    fn from(door: DoorBody) -> Door {
        match door {
            DoorBody::Amqp => Door::Amqp,
            DoorBody::Mqtt => Door::Mqtt,
        }
    }
}

impl From<Door> for DoorBody {
    fn from(door: Door) -> DoorBody {
        match door {
            Door::Amqp => DoorBody::Amqp,
            Door::Mqtt => DoorBody::Mqtt,
        }
    }
}

impl From<&ClientProperties> for ClientBody {
    fn from(client: &ClientProperties) -> ClientBody {
        ClientBody {
            product: client.product.clone(),
            version: client.version.clone(),
            platform: client.platform.clone(),
            connection_name: client.connection_name.clone(),
        }
    }
}

impl From<&ConnectionInfo> for ConnectionBody {
    fn from(info: &ConnectionInfo) -> ConnectionBody {
        let token = match &info.identity {
            Identity::Token { id, .. } => Some(id.clone()),
            Identity::User { .. } | Identity::Anonymous | Identity::Browser { .. } => None,
        };
        ConnectionBody {
            id: info.id.0,
            door: info.door.into(),
            peer: info.peer.to_string(),
            user: info.user().map(str::to_string),
            token,
            virtual_host: info.virtual_host.clone(),
            client: ClientBody::from(&info.client),
            connected_at_ms: info.connected_at_ms,
            channel_count: info.channels.len(),
            consumer_count: info.channels.iter().map(|c| c.consumers.len()).sum(),
        }
    }
}

impl From<&ChannelInfo> for ChannelBody {
    fn from(channel: &ChannelInfo) -> ChannelBody {
        ChannelBody {
            number: channel.number,
            confirm: channel.confirm,
            consumers: channel.consumers.iter().map(ConsumerBody::from).collect(),
        }
    }
}

impl From<&ConsumerInfo> for ConsumerBody {
    fn from(consumer: &ConsumerInfo) -> ConsumerBody {
        ConsumerBody {
            tag: consumer.tag.clone(),
            queue: consumer.queue.clone(),
            prefetch: consumer.prefetch,
            no_ack: consumer.no_ack,
        }
    }
}
