//! MQTT over WebSocket (`GET /mqtt`, subprotocol `mqtt`), so that browsers can use MQTT.js:
//! the binary frames carry the same byte stream as a TCP connection (MQTT 5.0 section 6), which
//! a pipe hands to the same connection code.

use super::Door;
use crate::door::Admission;
use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use std::{net::SocketAddr, sync::Arc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes the pipe between the socket and the connection holds each way.
const PIPE_BYTES: usize = 64 * 1024;

/// Serves one MQTT connection over `socket`.
pub(crate) async fn serve(socket: WebSocket, door: Arc<Door>, peer: SocketAddr) {
    let admission = Admission::Counted;
    let (connection_side, socket_side) = tokio::io::duplex(PIPE_BYTES);
    let connection = tokio::spawn(super::connection::serve(
        connection_side,
        door,
        peer,
        admission,
    ));
    let (mut sink, mut frames) = socket.split();
    let (mut from_connection, mut to_connection) = tokio::io::split(socket_side);
    let inbound = async move {
        // Ends: the socket's end, an error, or the connection gone.
        while let Some(Ok(message)) = frames.next().await {
            let bytes = match message {
                Message::Binary(bytes) => bytes,
                Message::Close(_) => break,
                _ => continue,
            };
            if to_connection.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to_connection.shutdown().await;
    };
    let outbound = async move {
        let mut buffer = vec![0u8; PIPE_BYTES];
        // Ends: the connection's end of the pipe closes, or the socket fails.
        loop {
            match from_connection.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    let frame = Message::Binary(buffer[..read].to_vec().into());
                    if sink.send(frame).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sink.close().await;
    };
    tokio::select! {
        () = inbound => {}
        () = outbound => {}
    }
    let _ = connection.await;
}
