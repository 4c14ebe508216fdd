//! One keep-alive HTTP/1.1 connection for load generation: hyper's client connection, no pool.
//!
//! A load task owns its connection and sends one request at a time on it, like a client SDK
//! would; N tasks give N connections. A pooled client would hide how many connections the
//! server really serves.

use super::BenchError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{client::conn::http1::SendRequest, header, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;

pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
}

impl Connection {
    pub async fn open(address: SocketAddr) -> Result<Connection, BenchError> {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|error| http_error(address, "connect", error))?;
        // Small requests and replies: do not let Nagle hold them back.
        stream
            .set_nodelay(true)
            .map_err(|error| http_error(address, "set TCP_NODELAY", error))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| http_error(address, "handshake", error))?;
        tokio::spawn(connection);
        Ok(Connection {
            sender,
            authority: address.to_string(),
        })
    }

    /// Sends one request with a JSON body (empty for GET and DELETE) and collects the reply.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), BenchError> {
        let describe = || format!("{method} {path}");
        self.sender
            .ready()
            .await
            .map_err(|error| http_error(describe(), "send", error))?;
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, &self.authority)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|error| http_error(describe(), "build", error))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|error| http_error(describe(), "send", error))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| http_error(describe(), "read the reply to", error))?
            .to_bytes();
        Ok((status, body))
    }

    /// Like [`Connection::request`], failing unless the status is a success.
    pub async fn request_ok(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Bytes, BenchError> {
        let (status, reply) = self.request(method.clone(), path, body).await?;
        if status.is_success() {
            return Ok(reply);
        }
        Err(BenchError::Http {
            request: format!("{method} {path}"),
            detail: format!("HTTP {status}: {}", String::from_utf8_lossy(&reply)),
        })
    }
}

fn http_error(
    request: impl std::fmt::Display,
    action: &str,
    error: impl std::fmt::Display,
) -> BenchError {
    BenchError::Http {
        request: request.to_string(),
        detail: format!("cannot {action}: {error}"),
    }
}
