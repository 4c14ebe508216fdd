//! One keep-alive HTTP/1.1 connection for load generation: hyper's client connection, no pool.
//!
//! A load task owns its connection and sends one request at a time on it, like a client SDK
//! would; N tasks give N connections. A pooled client would hide how many connections the
//! server really serves. Against a server the user named, every request carries the
//! credentials of the command line (`Endpoint`).
//!
//! An endpoint may also carry TLS (`wharf bench queue --secure`): the connection is then one
//! TLS session per task, as a client SDK keeps, set up before the HTTP/1.1 handshake.

use super::BenchError;
use crate::client::credentials::Authorization;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    client::conn::http1::SendRequest, header, header::HeaderValue, Method, Request, StatusCode,
};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Where load goes: the server's address, TLS if it speaks HTTPS, and the `Authorization`
/// every request carries.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub address: SocketAddr,
    tls: Option<Tls>,
    authorization: Option<HeaderValue>,
}

/// The client side of HTTPS: the connector trusting the server's certificate, and the name
/// that certificate is checked against.
#[derive(Clone)]
pub struct Tls {
    pub connector: TlsConnector,
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (formatter.debug_struct("Tls"))
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
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
            tls: None,
            authorization,
        })
    }

    /// HTTPS with `tls`, and `authorization` (a whole header value) on every request.
    pub fn secure(address: SocketAddr, tls: Tls, mut authorization: HeaderValue) -> Endpoint {
        authorization.set_sensitive(true);
        Endpoint {
            address,
            tls: Some(tls),
            authorization: Some(authorization),
        }
    }
}

pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
    authorization: Option<HeaderValue>,
}

impl Connection {
    /// Connects to `endpoint`, with a TLS handshake first when it has TLS.
    pub async fn open(endpoint: &Endpoint) -> Result<Connection, BenchError> {
        let address = endpoint.address;
        let stream = TcpStream::connect(address)
            .await
            .map_err(|error| http_error(address, "connect", error))?;
        // Small requests and replies: do not let Nagle hold them back.
        stream
            .set_nodelay(true)
            .map_err(|error| http_error(address, "set TCP_NODELAY", error))?;
        let sender = match &endpoint.tls {
            None => handshake(address, stream).await?,
            Some(tls) => {
                let stream = (tls.connector.connect(tls.server_name.clone(), stream).await)
                    .map_err(|error| http_error(address, "complete the TLS handshake", error))?;
                handshake(address, stream).await?
            }
        };
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
        self.request_as(method, path, body, Media::JSON).await
    }

    /// Like [`Connection::request`] with the body and the reply in the media types `media` names.
    pub async fn request_as(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
        media: Media,
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
            .header(header::CONTENT_TYPE, media.content_type)
            .header(header::ACCEPT, media.accept)
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
        self.request_ok_as(method, path, body, Media::JSON).await
    }

    /// Like [`Connection::request_as`], failing unless the status is a success.
    pub async fn request_ok_as(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
        media: Media,
    ) -> Result<Bytes, BenchError> {
        let (status, reply) = self.request_as(method.clone(), path, body, media).await?;
        if status.is_success() {
            return Ok(reply);
        }
        Err(BenchError::Http {
            request: format!("{method} {path}"),
            detail: format!("HTTP {status}: {}", String::from_utf8_lossy(&reply)),
        })
    }
}

/// The media types of a request's body and of the reply it asks for.
#[derive(Debug, Clone, Copy)]
pub struct Media {
    pub content_type: &'static str,
    pub accept: &'static str,
}

impl Media {
    pub const JSON: Media = Media {
        content_type: "application/json",
        accept: "application/json",
    };
}

/// The HTTP/1.1 handshake on an open stream; the connection's driver runs as its own task.
async fn handshake<S>(
    address: SocketAddr,
    stream: S,
) -> Result<SendRequest<Full<Bytes>>, BenchError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| http_error(address, "handshake", error))?;
    tokio::spawn(connection);
    Ok(sender)
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
