//! `GET /mqtt`: MQTT over WebSocket (subprotocol `mqtt`), for browsers (MQTT.js) and other
//! clients that reach the broker through HTTP. The MQTT CONNECT authenticates, as on the MQTT
//! port, so the route itself is open.

use super::{AppState, Problem, ProblemCode};
use crate::connection_limit::ConnectionRequests;
use axum::{
    extract::{ws::WebSocketUpgrade, ConnectInfo, State},
    response::{IntoResponse, Response},
    routing::get,
    Extension, Router,
};
use std::net::{Ipv4Addr, SocketAddr};

pub fn routes() -> Router<AppState> {
    Router::new().route("/mqtt", get(mqtt))
}

/// Opens a WebSocket that carries MQTT 3.1.1 or 5.0 in binary frames (docs/doors/mqtt.md).
#[utoipa::path(
    get,
    path = "/mqtt",
    tag = "mqtt",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol, subprotocol `mqtt`: MQTT packets in binary frames"),
        (status = 400, description = "Not a WebSocket upgrade request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The server runs without the MQTT door", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn mqtt(
    State(state): State<AppState>,
    connect: Option<Extension<ConnectInfo<ConnectionRequests>>>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, Problem> {
    let door = state.mqtt.clone().ok_or_else(|| {
        Problem::new(ProblemCode::NotFound).with_detail("this server runs without the MQTT door")
    })?;
    let upgrade = upgrade.map_err(super::realtime::upgrade_refused)?;
    let peer = (connect.and_then(|Extension(ConnectInfo(requests))| requests.peer()))
        .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
    let response = upgrade
        .protocols(["mqtt"])
        .on_upgrade(move |socket| crate::mqtt::websocket::serve(socket, door, peer));
    Ok(response.into_response())
}
