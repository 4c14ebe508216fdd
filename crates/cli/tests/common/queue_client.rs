//! A small blocking client of the queue API for black-box tests, and a server on a data dir
//! that can be killed and restarted.

use crate::process::{free_address, get, ServerProcess, EXIT_DEADLINE};
use serde_json::{json, Value};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

/// One request to a local server answers in milliseconds; a long poll adds its `wait_ms`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A reply with its status and JSON body (`Null` when the body is empty).
#[derive(Debug, Clone)]
pub struct JsonReply {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    /// The `Authorization` header sent with every request, if any.
    authorization: Option<String>,
}

impl Client {
    pub fn new(address: SocketAddr) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .proxy(None)
            .build()
            .into();
        Client {
            agent,
            base: format!("http://{address}"),
            authorization: None,
        }
    }

    /// The same client sending `authorization` (`Bearer ...`, `Basic ...`) with every request.
    pub fn authorized(mut self, authorization: &str) -> Client {
        self.authorization = Some(authorization.to_string());
        self
    }

    /// Sends `body` as raw bytes with `content_type`; only transport failures are errors.
    pub fn try_raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<JsonReply, ureq::Error> {
        let url = format!("{}{path}", self.base);
        let with = self.authorization.as_deref();
        let mut response = match method {
            "GET" => authorize(self.agent.get(&url), with).call()?,
            "DELETE" => authorize(self.agent.delete(&url), with).call()?,
            "PUT" => authorize(self.agent.put(&url), with)
                .content_type(content_type)
                .send(body)?,
            "PATCH" => authorize(self.agent.patch(&url), with)
                .content_type(content_type)
                .send(body)?,
            "POST" => authorize(self.agent.post(&url), with)
                .content_type(content_type)
                .send(body)?,
            other => panic!("unsupported method {other}"),
        };
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("reply is not JSON ({error}): {text}"))
        };
        Ok(JsonReply {
            status: response.status().as_u16(),
            content_type,
            body,
        })
    }

    pub fn try_call(
        &self,
        method: &str,
        path: &str,
        body: &Value,
    ) -> Result<JsonReply, ureq::Error> {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        self.try_raw(method, path, "application/json", &bytes)
    }

    /// Like [`Client::try_call`], failing the test on a transport error.
    pub fn call(&self, method: &str, path: &str, body: &Value) -> JsonReply {
        self.try_call(method, path, body)
            .unwrap_or_else(|error| panic!("{method} {path} failed: {error}"))
    }

    /// Calls and asserts the status; returns the body.
    pub fn expect(&self, status: u16, method: &str, path: &str, body: &Value) -> Value {
        let reply = self.call(method, path, body);
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
        reply.body
    }

    /// POSTs `body` as JSON asking for the reply in `accept`; returns the status, the reply's
    /// content type and its bytes.
    pub fn post_accepting(&self, path: &str, body: &Value, accept: &str) -> (u16, String, Vec<u8>) {
        let url = format!("{}{path}", self.base);
        let mut response = authorize(self.agent.post(&url), self.authorization.as_deref())
            .header("accept", accept)
            .content_type("application/json")
            .send(body.to_string().as_bytes())
            .unwrap_or_else(|error| panic!("POST {path} failed: {error}"));
        let content_type = (response.headers().get("content-type"))
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = (response.body_mut().with_config().limit(64 << 20))
            .read_to_vec()
            .unwrap_or_else(|error| panic!("POST {path}: reading the reply failed: {error}"));
        (response.status().as_u16(), content_type, bytes)
    }

    pub fn receive(&self, queue: &str, max: usize, lease_ms: u64) -> Vec<Value> {
        let body = json!({"max_messages": max, "lease_ms": lease_ms});
        let reply = self.expect(200, "POST", &format!("/v1/queues/{queue}/receive"), &body);
        reply["messages"].as_array().expect("messages").clone()
    }
}

/// A `wharf serve` on a fixed data dir; restartable on the same dir after a kill.
/// `builder` with the `Authorization` header, when there is one.
fn authorize<B>(
    builder: ureq::RequestBuilder<B>,
    authorization: Option<&str>,
) -> ureq::RequestBuilder<B> {
    match authorization {
        Some(value) => builder.header("authorization", value),
        None => builder,
    }
}

pub struct Node {
    pub dir: PathBuf,
    pub address: SocketAddr,
    pub server: ServerProcess,
    /// The configuration and extra arguments it started with, and restarts with.
    config: String,
    args: Vec<String>,
}

impl Node {
    /// Starts a server on `dir/data` and waits until it answers.
    pub fn start(dir: &Path) -> Node {
        Node::start_configured(dir, "")
    }

    /// Like [`Node::start`], with `config` (TOML) as the server's configuration file.
    pub fn start_configured(dir: &Path, config: &str) -> Node {
        Node::start_with(dir, config, &[])
    }

    /// Like [`Node::start_configured`], with more arguments for `wharf serve`.
    pub fn start_with(dir: &Path, config: &str, args: &[&str]) -> Node {
        let address = free_address();
        let config_path = dir.join("wharf.toml");
        std::fs::write(&config_path, config).expect("write the configuration");
        let mut command = crate::common::wharf();
        command
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--http-addr")
            .arg(address.to_string())
            .args(args);
        let mut server = ServerProcess::spawn(command, dir);
        server.wait_healthy(address);
        assert_eq!(get(address, "/readyz").expect("readyz").status, 200);
        Node {
            dir: dir.to_path_buf(),
            address,
            server,
            config: config.to_string(),
            args: args.iter().map(|arg| arg.to_string()).collect(),
        }
    }

    pub fn client(&self) -> Client {
        Client::new(self.address)
    }

    /// SIGKILL, then a fresh server on the same data dir, configuration and arguments.
    pub fn kill_and_restart(mut self) -> Node {
        self.server.signal(libc::SIGKILL);
        self.server.wait_exit(EXIT_DEADLINE);
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        Node::start_with(&self.dir, &self.config, &args)
    }
}
