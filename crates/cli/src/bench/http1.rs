//! One keep-alive HTTP/1.1 connection for load generation: hyper's client connection, no pool.
//!
//! A load task owns its connection and sends one request at a time on it, like a client SDK
//! would; N tasks give N connections. A pooled client would hide how many connections the
//! server really serves. Against a server the user named, every request carries the
//! credentials of the command line (`Endpoint`).

use super::BenchError;
use crate::client::credentials::Authorization;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    client::conn::http1::SendRequest, header, header::HeaderValue, Method, Request, StatusCode,
};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;

/// Where load goes: the server's address and the `Authorization` every request carries.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub address: SocketAddr,
    authorization: Option<HeaderValue>,
}

impl Endpoint {
    pub fn new(
        address: SocketAddr,
        authorization: Option<&Authorization>,
    ) -> Result<Endpoint, BenchError> {
        let authorization = authorization
            .map(|authorization| {
                let mut value =
                    HeaderValue::from_str(authorization.header_value()).map_err(|_| {
                        BenchError::Usage("the credentials cannot be sent in a header".into())
                    })?;
                // Kept out of hyper's debug output.
                value.set_sensitive(true);
                Ok::<_, BenchError>(value)
            })
            .transpose()?;
        Ok(Endpoint {
            address,
            authorization,
        })
    }
}

pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
    authorization: Option<HeaderValue>,
}

impl Connection {
    pub async fn open(endpoint: &Endpoint) -> Result<Connection, BenchError> {
        let address = endpoint.address;
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
            authorization: endpoint.authorization.clone(),
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
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, &self.authority)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|error| http_error(describe(), "build", error))?;
        if let Some(authorization) = &self.authorization {
            (request.headers_mut()).insert(header::AUTHORIZATION, authorization.clone());
        }
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
