//! The server's configuration: what `wharf serve` reads from its TOML file.
//!
//! Every field has a default, so no file at all is a working setup. This module owns parsing and
//! validation of the file; the CLI owns precedence (flags > `WHARF_*` environment > file >
//! defaults) by overriding fields of the loaded value.
//!
//! ```toml
//! data_dir = "./wharf-data"
//! http_addr = "127.0.0.1:7700"
//! amqp_addr = "127.0.0.1:5672"   # the AMQP 0-9-1 door; "off": none
//! amqps_addr = "127.0.0.1:5671"  # AMQP over TLS, when [tls] is set; "off": none
//! mqtt_addr = "127.0.0.1:1883"   # the MQTT 3.1.1 and 5.0 door; "off": none
//! mqtts_addr = "127.0.0.1:8883"  # MQTT over TLS, when [tls] is set; "off": none
//!
//! [log]
//! level = "info"        # RUST_LOG overrides it
//! format = "text"       # or "json"
//! otlp_endpoint = "http://127.0.0.1:4318"  # export spans over OTLP/HTTP (absent: none)
//!
//! [storage]
//! fsync = "always"      # or "interval", "never"
//! fsync_interval_ms = 100
//! segment_bytes = 67108864  # the queues' shared WAL
//! tail_cache_bytes = 8388608  # newest WAL records kept in memory for delivery
//! commit_gather_us = 0  # under load, small commits may wait this long for more (0: never)
//! disk_free_bytes_min = 1073741824  # /readyz warns below it (0: never)
//! disk_reserve_bytes = 33554432     # kept for acks, purges and deletes on a full disk
//!
//! [limits]
//! http_connections_max = 10000   # capped below the descriptor limit
//! amqp_connections_max = 10000   # AMQP connections, plain and TLS together
//! mqtt_connections_max = 100000  # MQTT connections, plain and TLS together
//! http_idle_timeout_ms = 60000    # closes connections on which nothing moves
//! http_request_read_timeout_ms = 60000  # a request must arrive whole this soon
//! requests_pending_max = 10000
//! subscriptions_max = 1000
//! request_body_bytes_max = 12582912  # 413 past it, unread
//! batch_messages_max = 1000           # messages in one send or publish
//! batch_bytes_max = 8388608           # message bodies in one send or publish
//! stream_partitions_max = 10000      # over every stream; each holds an open file
//! event_subscriptions_max = 1000     # persistent subscriptions; each reads every new event
//!
//! [http]
//! allowed_hosts = []    # Host names besides localhost and the listen IP; ["*"]: any
//! cors_origins = []     # browser origins allowed cross-origin; empty: CORS off
//!
//! [metrics]
//! resource_series_max = 100  # queues (and topics) with series of their own; 0: none
//! queues = ["orders"]        # always among them
//! topics = []
//!
//! [alerts]
//! topic = "wharf.alerts"     # where alert events are published
//! interval_ms = 10000        # how often rules are evaluated
//! [alerts.rules.orders-backlog]  # fixed rules; more over /v1/alerts
//! queue = "orders"
//! metric = "ready"
//! op = ">"
//! threshold = 10000
//! for_ms = 300000
//! readiness = true           # /readyz fails while it fires
//!
//! [webhooks]
//! allow_private = false       # deliver to private, loopback, link-local addresses too
//! retry_schedule_ms = [0, 5000, 300000, 1800000, 7200000, 18000000, 36000000, 36000000]
//! connect_timeout_ms = 10000  # resolving and connecting, each
//! response_timeout_ms = 30000 # the whole answer
//! concurrency = 8             # attempts in flight per endpoint
//! breaker_failures = 5        # failures in a row that open the circuit
//! breaker_open_ms = 30000     # first wait while open; doubles up to breaker_open_max_ms
//! breaker_open_max_ms = 120000
//! disable_after_ms = 432000000  # failing this long without a success disables (5 days)
//! history_ms = 604800000      # what each endpoint was sent, kept this long for replay
//!
//! [realtime]
//! history_messages = 100      # newest messages kept per topic for clients that resume
//! history_age_ms = 300000     # and for how long
//! history_bytes = 1048576     # and at most this many body bytes per topic
//! buffer_messages = 1024      # frames queued per connection before it is a slow client
//! slow_client = "disconnect"  # or "drop": skip and count what does not fit
//! subscriptions_max = 100     # subscriptions and rooms per connection
//! requests_max = 100          # requests waiting for replies per connection
//! ping_interval_ms = 15000    # WebSocket pings and event-stream keep-alive comments
//! token_secret = "..."        # signs browser tokens (HS256, at least 32 bytes); absent: off
//!
//! [mqtt]
//! topic = "mqtt"              # the Wharf topic MQTT topics live on
//!
//! [tls]                 # absent: plain HTTP
//! cert = "/etc/wharf/cert.pem"     # PEM chain, leaf first
//! key = "/etc/wharf/key.pem"       # PEM private key; reloaded with cert on SIGHUP
//! client_ca = "/etc/wharf/ca.pem"  # optional: require client certificates signed by it
//! ```

use serde::Deserialize;
use std::{
    fs, io,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};
use wharf_storage::{FsyncPolicy, LogConfig};

/// The whole configuration of `wharf serve`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Where the store keeps its metadata and logs; created if missing.
    pub data_dir: PathBuf,
    /// Address the HTTP door listens on.
    pub http_addr: SocketAddr,
    /// Address the AMQP 0-9-1 door listens on, or `off` (see docs/doors/amqp.md).
    pub amqp_addr: Listen,
    /// Address of AMQP over TLS with the `[tls]` certificates, or `off`; absent: 127.0.0.1:5671
    /// when TLS is set, off otherwise.
    pub amqps_addr: Option<Listen>,
    /// Address the MQTT door listens on, or `off` (see docs/doors/mqtt.md).
    pub mqtt_addr: Listen,
    /// Address of MQTT over TLS with the `[tls]` certificates, or `off`; absent: 127.0.0.1:8883
    /// when TLS is set, off otherwise.
    pub mqtts_addr: Option<Listen>,
    pub mqtt: MqttSettings,
    pub log: LogSettings,
    pub storage: StorageSettings,
    pub limits: LimitSettings,
    pub security: SecuritySettings,
    pub http: HttpSettings,
    pub tls: TlsSettings,
    pub metrics: MetricsSettings,
    pub alerts: AlertSettings,
    pub webhooks: WebhookSettings,
    pub realtime: RealtimeSettings,
}

/// The MQTT door (`[mqtt]`); see `crate::mqtt` and docs/doors/mqtt.md.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSettings {
    /// The Wharf topic MQTT topics live on (made when the door starts).
    pub topic: String,
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            topic: "mqtt".to_string(),
        }
    }
}

impl MqttSettings {
    pub fn door(&self) -> crate::mqtt::Settings {
        crate::mqtt::Settings {
            topic: self.topic.clone(),
        }
    }
}

/// The real-time hub (`/v1/ws`, `/v1/sse`); see `crate::realtime` and docs/realtime.md.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeSettings {
    pub history_messages: usize,
    pub history_age_ms: u64,
    pub history_bytes: usize,
    pub buffer_messages: usize,
    pub slow_client: crate::realtime::SlowPolicy,
    pub subscriptions_max: usize,
    pub requests_max: usize,
    pub ping_interval_ms: u64,
    /// The key of browser tokens (`WHARF_REALTIME_TOKEN_SECRET`); absent: tokens refused.
    pub token_secret: Option<String>,
}

/// Shortest `realtime.token_secret`: HS256 keys shorter than the hash are weak (RFC 7518,
/// section 3.2).
pub const TOKEN_SECRET_BYTES_MIN: usize = 32;

impl Default for RealtimeSettings {
    fn default() -> Self {
        let hub = crate::realtime::Settings::default();
        RealtimeSettings {
            history_messages: hub.history.messages,
            history_age_ms: hub.history.age_ms,
            history_bytes: hub.history.bytes,
            buffer_messages: hub.buffer_messages,
            slow_client: hub.slow,
            subscriptions_max: hub.subscriptions_max,
            requests_max: hub.requests_max,
            ping_interval_ms: hub.ping_interval.as_millis() as u64,
            token_secret: None,
        }
    }
}

impl RealtimeSettings {
    /// The hub's settings.
    pub fn hub(&self) -> crate::realtime::Settings {
        crate::realtime::Settings {
            history: crate::realtime::history::Limits {
                messages: self.history_messages,
                age_ms: self.history_age_ms,
                bytes: self.history_bytes,
            },
            buffer_messages: self.buffer_messages,
            slow: self.slow_client,
            subscriptions_max: self.subscriptions_max,
            requests_max: self.requests_max,
            token_secret: self.token_secret.as_ref().map(|s| s.as_bytes().to_vec()),
            ping_interval: Duration::from_millis(self.ping_interval_ms),
        }
    }

    fn validate(
        &self,
        invalid: &impl Fn(&'static str, String, &str) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let positive = [
            ("realtime.history_age_ms", self.history_age_ms),
            ("realtime.buffer_messages", self.buffer_messages as u64),
            ("realtime.subscriptions_max", self.subscriptions_max as u64),
            ("realtime.requests_max", self.requests_max as u64),
            ("realtime.ping_interval_ms", self.ping_interval_ms),
        ];
        if let Some((key, value)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(invalid(key, value.to_string(), "must be at least 1"));
        }
        if self.history_messages > 100_000 {
            let value = self.history_messages.to_string();
            return Err(invalid(
                "realtime.history_messages",
                value,
                "must be at most 100000",
            ));
        }
        if let Some(secret) = &self.token_secret {
            if secret.len() < TOKEN_SECRET_BYTES_MIN {
                let reason = format!("must be at least {TOKEN_SECRET_BYTES_MIN} bytes");
                let shown = format!("({} bytes)", secret.len());
                return Err(invalid("realtime.token_secret", shown, &reason));
            }
        }
        Ok(())
    }
}

/// How webhook deliveries are made; see `crate::webhooks` and docs/webhooks.md.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Deliver to private, loopback, link-local and metadata addresses too
    /// (`--webhooks-allow-private`, `WHARF_WEBHOOKS_ALLOW_PRIVATE`).
    pub allow_private: bool,
    /// The wait before each attempt, the first one's included; its length is the most
    /// attempts, after which a message is dead-lettered for its endpoint.
    pub retry_schedule_ms: Vec<u64>,
    pub connect_timeout_ms: u64,
    pub response_timeout_ms: u64,
    pub response_bytes_max: usize,
    pub concurrency: usize,
    pub breaker_failures: u32,
    pub breaker_open_ms: u64,
    pub breaker_open_max_ms: u64,
    pub disable_after_ms: u64,
    /// How long each endpoint's history (for replay) is kept.
    pub history_ms: u64,
}

/// Most entries of `webhooks.retry_schedule_ms`.
pub const WEBHOOK_ATTEMPTS_MAX: usize = 32;

impl Default for WebhookSettings {
    fn default() -> Self {
        let settings = crate::webhooks::Settings::default();
        let millis = |duration: Duration| duration.as_millis() as u64;
        WebhookSettings {
            allow_private: false,
            retry_schedule_ms: (wharf_engine::webhooks::RETRY_SCHEDULE_DEFAULT.iter())
                .map(|delay| millis(*delay))
                .collect(),
            connect_timeout_ms: millis(settings.connect_timeout),
            response_timeout_ms: millis(settings.response_timeout),
            response_bytes_max: settings.response_bytes_max,
            concurrency: settings.concurrency,
            breaker_failures: settings.breaker_failures,
            breaker_open_ms: millis(settings.breaker_open),
            breaker_open_max_ms: millis(settings.breaker_open_max),
            disable_after_ms: millis(settings.disable_after),
            history_ms: millis(wharf_engine::webhooks::HISTORY_DEFAULT),
        }
    }
}

impl WebhookSettings {
    /// The dispatcher's settings.
    pub fn dispatcher(&self) -> crate::webhooks::Settings {
        crate::webhooks::Settings {
            allow_private: self.allow_private,
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            response_timeout: Duration::from_millis(self.response_timeout_ms),
            response_bytes_max: self.response_bytes_max,
            concurrency: self.concurrency,
            breaker_failures: self.breaker_failures,
            breaker_open: Duration::from_millis(self.breaker_open_ms),
            breaker_open_max: Duration::from_millis(self.breaker_open_max_ms),
            disable_after: Duration::from_millis(self.disable_after_ms),
        }
    }

    /// The engine's retry schedule.
    pub fn retry_schedule(&self) -> Vec<Duration> {
        (self.retry_schedule_ms.iter())
            .map(|millis| Duration::from_millis(*millis))
            .collect()
    }

    fn validate(
        &self,
        invalid: &impl Fn(&'static str, String, &str) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let schedule = &self.retry_schedule_ms;
        let day = wharf_engine::queue::RETRY_BACKOFF_MS_MAX;
        if schedule.is_empty() || schedule.len() > WEBHOOK_ATTEMPTS_MAX {
            let reason = format!("must hold 1 to {WEBHOOK_ATTEMPTS_MAX} waits");
            return Err(invalid(
                "webhooks.retry_schedule_ms",
                format!("{schedule:?}"),
                &reason,
            ));
        }
        if let Some(long) = schedule.iter().find(|millis| **millis > day) {
            let reason = format!("each wait is at most {day} ms (a day)");
            return Err(invalid(
                "webhooks.retry_schedule_ms",
                long.to_string(),
                &reason,
            ));
        }
        let credit = wharf_engine::broker::CONSUMER_CREDIT_MAX;
        if self.concurrency == 0 || self.concurrency > credit {
            let reason = format!("must be 1 to {credit}");
            return Err(invalid(
                "webhooks.concurrency",
                self.concurrency.to_string(),
                &reason,
            ));
        }
        let positive = [
            ("webhooks.connect_timeout_ms", self.connect_timeout_ms),
            ("webhooks.response_timeout_ms", self.response_timeout_ms),
            (
                "webhooks.response_bytes_max",
                self.response_bytes_max as u64,
            ),
            (
                "webhooks.breaker_failures",
                u64::from(self.breaker_failures),
            ),
            ("webhooks.breaker_open_ms", self.breaker_open_ms),
            ("webhooks.disable_after_ms", self.disable_after_ms),
            ("webhooks.history_ms", self.history_ms),
        ];
        if let Some((key, value)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(invalid(key, value.to_string(), "must be at least 1"));
        }
        if self.breaker_open_max_ms < self.breaker_open_ms {
            let reason = "must be at least webhooks.breaker_open_ms";
            let value = self.breaker_open_max_ms.to_string();
            return Err(invalid("webhooks.breaker_open_max_ms", value, reason));
        }
        Ok(())
    }
}

/// Alert rules and where their events go; see the engine's `alerts` and docs/operations.md.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertSettings {
    /// The topic alert events are published to; created when first needed.
    pub topic: String,
    /// How often every rule is evaluated.
    pub interval_ms: u64,
    /// Rules by name (`[alerts.rules.NAME]`); the API cannot change them.
    pub rules: std::collections::BTreeMap<String, wharf_engine::alerts::AlertRule>,
}

/// Default of `alerts.interval_ms`: often enough that `for_ms` of a minute is met within a
/// sixth of it; each pass reads one queue's or topic's statistics per rule.
pub const ALERT_INTERVAL_MS_DEFAULT: u64 = 10_000;
/// Least `alerts.interval_ms`.
pub const ALERT_INTERVAL_MS_MIN: u64 = 100;

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            topic: wharf_engine::alerts::ALERTS_TOPIC_DEFAULT.to_string(),
            interval_ms: ALERT_INTERVAL_MS_DEFAULT,
            rules: Default::default(),
        }
    }
}

/// What `/metrics` shows per resource; see [`crate::resource_metrics`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Most queues, and most topics, with series of their own; 0 turns them off.
    pub resource_series_max: usize,
    /// Queues whose series are always shown (within the maximum).
    pub queues: Vec<String>,
    /// Topics whose series are always shown (within the maximum).
    pub topics: Vec<String>,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            resource_series_max: crate::resource_metrics::RESOURCE_SERIES_MAX_DEFAULT,
            queues: Vec::new(),
            topics: Vec::new(),
        }
    }
}

impl MetricsSettings {
    pub fn series_choice(&self) -> crate::resource_metrics::SeriesChoice {
        crate::resource_metrics::SeriesChoice {
            max: self.resource_series_max,
            queues: self.queues.clone(),
            topics: self.topics.clone(),
        }
    }
}

/// HTTPS on the HTTP listener; see [`crate::tls`]. Each path may come from the file or a flag,
/// so each is optional here and [`TlsSettings::files`] checks that they go together.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain, the server's certificate first.
    pub cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    pub key: Option<PathBuf>,
    /// PEM CA certificates; when set, clients must present a certificate signed by one.
    pub client_ca: Option<PathBuf>,
}

/// The files TLS is served with, once known to be a complete set.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl TlsSettings {
    /// The files to serve TLS with, or `None` for plain HTTP. A certificate without its key (or
    /// the reverse), or a client CA without either, is an error naming the missing setting.
    /// `path` names the configuration file in errors. Does not read the files.
    pub fn files(&self, path: Option<&Path>) -> Result<Option<TlsFiles>, ConfigError> {
        let missing = |key, reason: &str| ConfigError::Invalid {
            path: path.map(Path::to_path_buf),
            key,
            value: "(not set)".to_string(),
            reason: reason.to_string(),
        };
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.client_ca.clone(),
            })),
            (Some(_), None) => Err(missing(
                "tls.key",
                "tls.cert (--tls-cert) is set; its private key is needed too (tls.key, --tls-key)",
            )),
            (None, Some(_)) => Err(missing(
                "tls.cert",
                "tls.key (--tls-key) is set; its certificate is needed too (tls.cert, --tls-cert)",
            )),
            (None, None) if self.client_ca.is_some() => Err(missing(
                "tls.cert",
                "tls.client_ca (--tls-client-ca) needs TLS: set tls.cert and tls.key too",
            )),
            (None, None) => Ok(None),
        }
    }
}

/// What the HTTP door accepts from browsers; see [`crate::http::browser`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Host names (no port) requests may be addressed to, besides `localhost`, `127.0.0.1`,
    /// `[::1]` and the listen address's IP; `["*"]` accepts any (behind a proxy that checks it).
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://app.example`) whose pages may call the API; empty turns CORS off,
    /// `["*"]` allows every origin.
    pub cors_origins: Vec<String>,
}

/// Who may call: see docs/security.md.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecuritySettings {
    /// A token (any string of 16 bytes or more) that becomes the administrator token at start:
    /// how a server with no users gets its first administrator. Also `--admin-token` or
    /// `WHARF_ADMIN_TOKEN`.
    pub admin_token: Option<String>,
    /// Serve a store with no users and no tokens on a non-loopback address: anyone who can
    /// reach the port may do anything. Without it such a start is refused.
    pub allow_anonymous: bool,
    /// `/metrics` without credentials (any valid credentials otherwise).
    pub metrics_public: bool,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        SecuritySettings {
            admin_token: None,
            allow_anonymous: false,
            metrics_public: true,
        }
    }
}

/// Shortest administrator token accepted: it guards everything.
pub const ADMIN_TOKEN_BYTES_MIN: usize = 16;

/// Caps on what clients share; reaching one gets a clear refusal that names it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Open HTTP connections. One over it is answered 503 and closed. 10,000 leaves most of a
    /// 65,536-descriptor budget to the store's files.
    pub http_connections_max: usize,
    /// Open AMQP connections (plain and TLS together). One over it is refused with
    /// `530 NOT_ALLOWED` at its handshake.
    pub amqp_connections_max: usize,
    /// Open MQTT connections (plain, TLS and WebSocket together). One over it is refused with
    /// CONNACK 0x88 (server unavailable; 3.1.1: 0x03).
    pub mqtt_connections_max: usize,
    /// A connection on which no byte moves either way for this long, with no request being
    /// handled, is closed: idle keep-alive connections, silent ones, half-sent requests,
    /// clients that stopped reading. At least [`HTTP_IDLE_TIMEOUT_MS_MIN`].
    pub http_idle_timeout_ms: u64,
    /// A request must arrive whole (head and body) within this long of its first byte, or its
    /// connection is closed: a client dripping a byte now and then passes the idle timeout
    /// but not this. At least [`HTTP_REQUEST_READ_TIMEOUT_MS_MIN`].
    pub http_request_read_timeout_ms: u64,
    /// Requests (request-reply, scatter-gather) waiting for replies at once; 429 past it.
    pub requests_pending_max: usize,
    /// Live topic subscriptions (SSE) at once; 429 past it.
    pub subscriptions_max: usize,
    /// Messages a second each caller (user or token; all anonymous callers together) may
    /// send, publish or request; 0: no limit. Over it a batch is refused whole with 429.
    pub send_rate_per_caller: u64,
    /// Messages a caller may send at once above its rate (the bucket's size); 0: one
    /// second's worth of `send_rate_per_caller`.
    pub send_burst_per_caller: u64,
    /// Receives long-polling at once; 429 past it.
    pub receive_waiters_max: usize,
    /// Queues, topics and bindings each caller that is not an administrator may create
    /// (a token counts against its user); 0: no limit.
    pub definitions_per_caller: usize,
    /// Open HTTP connections each caller (user, or token without one) may hold; a connection
    /// belongs to the first caller that authenticates on it. 0: no limit.
    pub http_connections_per_caller: usize,
    /// Largest request body; a longer one is refused with 413 before it is read.
    pub request_body_bytes_max: usize,
    /// Most messages in one send, publish or reply batch; 413 past it, nothing stored.
    pub batch_messages_max: usize,
    /// Most message-body bytes in one send, publish or reply batch; 413 past it.
    pub batch_bytes_max: usize,
    /// Most stream partitions on this node, over every stream; creating or growing a stream
    /// past it is refused with 429. Each partition holds an open file (see docs/streams.md).
    pub stream_partitions_max: usize,
    /// Most persistent subscriptions of the event store; creating one past it is refused with
    /// 429. Each reads every new event through its filter (see docs/eventstore.md).
    pub event_subscriptions_max: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            http_connections_max: HTTP_CONNECTIONS_MAX_DEFAULT,
            amqp_connections_max: AMQP_CONNECTIONS_MAX_DEFAULT,
            mqtt_connections_max: MQTT_CONNECTIONS_MAX_DEFAULT,
            http_idle_timeout_ms: HTTP_IDLE_TIMEOUT_MS_DEFAULT,
            http_request_read_timeout_ms: HTTP_REQUEST_READ_TIMEOUT_MS_DEFAULT,
            requests_pending_max: wharf_engine::broker::REQUESTS_PENDING_MAX_DEFAULT,
            subscriptions_max: wharf_engine::broker::SUBSCRIPTIONS_MAX_DEFAULT,
            send_rate_per_caller: 0,
            send_burst_per_caller: 0,
            receive_waiters_max: wharf_engine::broker::RECEIVE_WAITERS_MAX_DEFAULT,
            definitions_per_caller: wharf_engine::broker::DEFINITIONS_PER_CALLER_DEFAULT,
            http_connections_per_caller: HTTP_CONNECTIONS_PER_CALLER_DEFAULT,
            request_body_bytes_max: crate::http::REQUEST_BODY_BYTES_MAX_DEFAULT,
            batch_messages_max: wharf_engine::broker::api::SEND_BATCH_MESSAGES_MAX,
            batch_bytes_max: wharf_engine::broker::api::SEND_BATCH_BYTES_MAX,
            stream_partitions_max: wharf_engine::broker::STREAM_PARTITIONS_MAX_DEFAULT,
            event_subscriptions_max: wharf_engine::broker::EVENT_SUBSCRIPTIONS_MAX_DEFAULT,
        }
    }
}

/// AMQP's port (IANA), where the AMQP door listens by default.
pub const AMQP_PORT: u16 = 5672;
/// AMQPS's port (IANA).
pub const AMQPS_PORT: u16 = 5671;
/// MQTT's IANA port, and MQTT over TLS's.
pub const MQTT_PORT: u16 = 1883;
pub const MQTTS_PORT: u16 = 8883;

/// Where a door listens: an address, or nowhere (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Off,
    At(SocketAddr),
}

impl Listen {
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Listen::Off => None,
            Listen::At(addr) => Some(addr),
        }
    }
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Listen, String> {
        if text == "off" {
            return Ok(Listen::Off);
        }
        text.parse().map(Listen::At).map_err(|_| {
            format!("{text:?} is not a listen address: give IP:PORT (e.g. 127.0.0.1:5672) or off")
        })
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Listen, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Default of [`LimitSettings::http_connections_per_caller`]: a tenth of the connection cap,
/// so no single caller can take every slot.
pub const HTTP_CONNECTIONS_PER_CALLER_DEFAULT: usize = 1_000;

/// Default of [`LimitSettings::amqp_connections_max`]: RabbitMQ sets none by default; this
/// keeps AMQP from taking the descriptors the HTTP door and the store need.
pub const AMQP_CONNECTIONS_MAX_DEFAULT: usize = 10_000;

/// Default of [`LimitSettings::mqtt_connections_max`]: devices are many and mostly idle.
pub const MQTT_CONNECTIONS_MAX_DEFAULT: usize = 100_000;

/// Default of [`LimitSettings::http_connections_max`].
pub const HTTP_CONNECTIONS_MAX_DEFAULT: usize = 10_000;

/// Default of [`LimitSettings::http_idle_timeout_ms`]: 60 s is four SSE keep-alive intervals,
/// and frees the slot of a silent client within a minute, as common proxies do.
pub const HTTP_IDLE_TIMEOUT_MS_DEFAULT: u64 = 60_000;

/// The shortest idle timeout accepted. A subscription's event stream is handled past its
/// response head and moves only a keep-alive comment every 15 s when no event comes; 25 s
/// leaves room for a slow network. Shorter would cut quiet subscriptions.
pub const HTTP_IDLE_TIMEOUT_MS_MIN: u64 = 25_000;

/// Default of [`LimitSettings::http_request_read_timeout_ms`]: 60 s reads the largest body
/// the doors accept (8 MiB) at 140 KB/s, and a request head at any speed a client means.
pub const HTTP_REQUEST_READ_TIMEOUT_MS_DEFAULT: u64 = 60_000;

/// The shortest request read timeout accepted: a large body on a slow link needs seconds.
pub const HTTP_REQUEST_READ_TIMEOUT_MS_MIN: u64 = 5_000;

impl LimitSettings {
    /// The engine's send rate per caller, if limited.
    pub fn send_rate(&self) -> Option<wharf_engine::security::limits::SendRate> {
        (self.send_rate_per_caller > 0).then_some(wharf_engine::security::limits::SendRate {
            rate: self.send_rate_per_caller,
            burst: match self.send_burst_per_caller {
                0 => self.send_rate_per_caller,
                burst => burst,
            },
        })
    }

    pub fn http_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.http_idle_timeout_ms)
    }

    pub fn http_request_read_timeout(&self) -> Duration {
        Duration::from_millis(self.http_request_read_timeout_ms)
    }
}

/// How the server writes its own logs (tracing output on stderr).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A tracing filter: a level (`info`) or directives (`info,wharf_storage=debug`).
    pub level: String,
    pub format: LogFormat,
    /// An OpenTelemetry collector's OTLP/HTTP base URL (`http://127.0.0.1:4318`): the
    /// server's spans are exported there. Also `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// How logs are laid out and committed; applies to every log the server opens.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    pub fsync: FsyncMode,
    /// With `fsync = "interval"`: the longest time written data waits for its fdatasync.
    pub fsync_interval_ms: u64,
    /// Size at which a segment of the queues' shared WAL is sealed and the next one started.
    /// Default 64 MiB: tens of thousands of messages per segment, and space comes back a segment
    /// at a time once nothing in it is needed.
    pub segment_bytes: u64,
    /// Bytes of the newest records of each large log (the queues' WALs) kept in memory, so
    /// that consumers keeping up never read a file. Default 8 MiB: about 7,000 1 KiB messages
    /// of lag; 0 reads every delivery from the files (the page cache).
    pub tail_cache_bytes: usize,
    /// With `fsync = "always"`, under load: how long after one commit starts the next may wait
    /// for more appends while they are small (under 256 KiB), so that many small appends share
    /// one fdatasync: less CPU for more latency. The first commit after an idle moment never
    /// waits. Default 0: never waits. See [`wharf_storage::LogConfig::commit_gather`].
    pub commit_gather_us: u64,
    /// Free space on the data directory's filesystem below which `/readyz` warns; 0 never
    /// warns. See [`crate::disk_space`].
    pub disk_free_bytes_min: u64,
    /// Space set aside in `DATA_DIR/reserve` so that acks, purges and deletes still work on a
    /// full disk (at most 1/16 of the filesystem; 0: none). Default 32 MiB.
    pub disk_reserve_bytes: u64,
}

/// When an append counts as done; see [`FsyncPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncMode {
    /// After fdatasync: an acknowledged message survives power loss.
    #[default]
    Always,
    /// After the write; synced at least every `fsync_interval_ms`.
    Interval,
    /// After the write; synced on segment rotation and shutdown only.
    Never,
}

/// The default of `storage.commit_gather_us`.
pub const COMMIT_GATHER_US_DEFAULT: u64 = 0;

/// The largest `storage.commit_gather_us` accepted: 100 ms.
pub const COMMIT_GATHER_US_MAX: u64 = 100_000;

/// The smallest segment accepted. 4 KiB is one page: the tiny-limits test setup uses it to make
/// rotation happen often, and anything smaller would rotate on nearly every append.
pub const SEGMENT_BYTES_MIN: u64 = 4 << 10;

/// The largest segment accepted: storage frames positions inside a segment as `u32` and keeps
/// half that range as headroom (it asserts the same bound).
pub const SEGMENT_BYTES_MAX: u64 = u32::MAX as u64 / 2;

/// A configuration that cannot be used. Names the file and the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("config file {}: {}{message}", path.display(), key_prefix(key))]
    Parse {
        path: PathBuf,
        /// Dotted path of the key, e.g. `storage.fsync`; `None` for a TOML syntax error.
        key: Option<String>,
        /// What is wrong, with line and column from the TOML parser.
        message: String,
    },
    /// A value that parses but is out of range.
    #[error("config {}: key `{key}` = {value}: {reason}", source_name(path))]
    Invalid {
        /// The file the value came from, or `None` for defaults and overrides.
        path: Option<PathBuf>,
        key: &'static str,
        value: String,
        reason: String,
    },
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            data_dir: PathBuf::from("./wharf-data"),
            http_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 7700)),
            amqp_addr: Listen::At(SocketAddr::from((Ipv4Addr::LOCALHOST, AMQP_PORT))),
            amqps_addr: None,
            mqtt_addr: Listen::At(SocketAddr::from((Ipv4Addr::LOCALHOST, MQTT_PORT))),
            mqtts_addr: None,
            mqtt: MqttSettings::default(),
            log: LogSettings::default(),
            storage: StorageSettings::default(),
            limits: LimitSettings::default(),
            security: SecuritySettings::default(),
            http: HttpSettings::default(),
            tls: TlsSettings::default(),
            metrics: MetricsSettings::default(),
            alerts: AlertSettings::default(),
            webhooks: WebhookSettings::default(),
            realtime: RealtimeSettings::default(),
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".to_string(),
            format: LogFormat::Text,
            otlp_endpoint: None,
        }
    }
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            fsync: FsyncMode::Always,
            fsync_interval_ms: 100,
            segment_bytes: 64 << 20,
            tail_cache_bytes: 8 << 20,
            commit_gather_us: COMMIT_GATHER_US_DEFAULT,
            disk_free_bytes_min: crate::disk_space::DISK_FREE_BYTES_MIN_DEFAULT,
            disk_reserve_bytes: wharf_storage::RESERVE_BYTES_DEFAULT,
        }
    }
}

impl ServeConfig {
    /// Where AMQPS listens: `amqps_addr`, or 127.0.0.1:5671 when TLS is set and it is absent.
    /// An address given without TLS is an error: the door has no certificate to serve.
    pub fn amqps_listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let tls = self.tls.cert.is_some();
        match self.amqps_addr {
            None if tls => Ok(Some(SocketAddr::from((Ipv4Addr::LOCALHOST, AMQPS_PORT)))),
            None | Some(Listen::Off) => Ok(None),
            Some(Listen::At(addr)) if tls => Ok(Some(addr)),
            Some(Listen::At(addr)) => Err(ConfigError::Invalid {
                path: None,
                key: "amqps_addr",
                value: addr.to_string(),
                reason: "AMQPS needs TLS: set tls.cert and tls.key (--tls-cert, --tls-key), \
                         or leave amqps_addr out"
                    .to_string(),
            }),
        }
    }

    /// Where MQTTS listens: `mqtts_addr`, or 127.0.0.1:8883 when TLS is set and it is absent.
    pub fn mqtts_listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let tls = self.tls.cert.is_some();
        match self.mqtts_addr {
            None if tls => Ok(Some(SocketAddr::from((Ipv4Addr::LOCALHOST, MQTTS_PORT)))),
            None | Some(Listen::Off) => Ok(None),
            Some(Listen::At(addr)) if tls => Ok(Some(addr)),
            Some(Listen::At(addr)) => Err(ConfigError::Invalid {
                path: None,
                key: "mqtts_addr",
                value: addr.to_string(),
                reason: "MQTTS needs TLS: set tls.cert and tls.key (--tls-cert, --tls-key), \
                         or leave mqtts_addr out"
                    .to_string(),
            }),
        }
    }

    /// Reads and validates `file`, or returns the defaults when there is none.
    pub fn load(file: Option<&Path>) -> Result<ServeConfig, ConfigError> {
        let Some(path) = file else {
            return Ok(ServeConfig::default());
        };
        let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config = ServeConfig::parse(&text, path)?;
        config.validate(Some(path))?;
        Ok(config)
    }

    /// Parses TOML `text`; `path` only names the source in errors. Does not validate ranges.
    pub fn parse(text: &str, path: &Path) -> Result<ServeConfig, ConfigError> {
        let deserializer = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let key = error.path().to_string();
            ConfigError::Parse {
                path: path.to_path_buf(),
                key: (key != ".").then_some(key),
                message: error.into_inner().to_string().trim_end().to_string(),
            }
        })
    }

    /// Checks values that parse but cannot work. `path` names the file in errors.
    pub fn validate(&self, path: Option<&Path>) -> Result<(), ConfigError> {
        let invalid = |key, value: String, reason: &str| ConfigError::Invalid {
            path: path.map(Path::to_path_buf),
            key,
            value,
            reason: reason.to_string(),
        };
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(invalid(
                "log.level",
                format!("{:?}", self.log.level),
                &error.to_string(),
            ));
        }
        let storage = &self.storage;
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&storage.segment_bytes) {
            return Err(invalid(
                "storage.segment_bytes",
                storage.segment_bytes.to_string(),
                &format!("must be between {SEGMENT_BYTES_MIN} and {SEGMENT_BYTES_MAX}"),
            ));
        }
        self.validate_limits(&invalid)?;
        if let Some(endpoint) = &self.log.otlp_endpoint {
            if !endpoint.starts_with("http://") || endpoint.len() == "http://".len() {
                return Err(invalid(
                    "log.otlp_endpoint",
                    format!("{endpoint:?}"),
                    "must be an http:// URL of an OTLP/HTTP collector (https is not supported: \
                     run a collector beside the server)",
                ));
            }
        }
        if (self.security.admin_token.as_ref()).is_some_and(|t| t.len() < ADMIN_TOKEN_BYTES_MIN) {
            return Err(invalid(
                "security.admin_token",
                "(hidden)".to_string(),
                &format!("must be at least {ADMIN_TOKEN_BYTES_MIN} bytes"),
            ));
        }
        if let Err(error) = crate::http::browser::BrowserPolicy::validate(&self.http) {
            return Err(invalid(
                error.key(),
                format!("{:?}", error.entry()),
                error.reason(),
            ));
        }
        if storage.commit_gather_us > COMMIT_GATHER_US_MAX {
            return Err(invalid(
                "storage.commit_gather_us",
                storage.commit_gather_us.to_string(),
                &format!("must be at most {COMMIT_GATHER_US_MAX} (a commit waiting longer only adds latency)"),
            ));
        }
        if storage.fsync == FsyncMode::Interval && storage.fsync_interval_ms == 0 {
            return Err(invalid(
                "storage.fsync_interval_ms",
                "0".to_string(),
                "must be at least 1 with fsync = \"interval\"",
            ));
        }
        self.tls.files(path)?;
        self.webhooks.validate(&invalid)?;
        self.realtime.validate(&invalid)?;
        self.validate_alerts(&invalid)
    }

    /// The `[alerts]` part of [`ServeConfig::validate`].
    fn validate_alerts(
        &self,
        invalid: &impl Fn(&'static str, String, &str) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let alerts = &self.alerts;
        if alerts.interval_ms < ALERT_INTERVAL_MS_MIN {
            return Err(invalid(
                "alerts.interval_ms",
                alerts.interval_ms.to_string(),
                &format!("must be at least {ALERT_INTERVAL_MS_MIN}"),
            ));
        }
        if let Err(error) = wharf_model::QueueName::from_str(&alerts.topic) {
            return Err(invalid(
                "alerts.topic",
                format!("{:?}", alerts.topic),
                &error.to_string(),
            ));
        }
        for (name, rule) in &alerts.rules {
            let refused = wharf_model::QueueName::from_str(name)
                .map(drop)
                .map_err(|error| error.to_string())
                .and_then(|()| rule.validate().map_err(|error| error.to_string()));
            if let Err(reason) = refused {
                return Err(invalid("alerts.rules", format!("{name:?}"), &reason));
            }
        }
        Ok(())
    }

    /// The `[limits]` part of [`ServeConfig::validate`].
    fn validate_limits(
        &self,
        invalid: &impl Fn(&'static str, String, &str) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let limits = [
            (
                "limits.http_connections_max",
                self.limits.http_connections_max,
            ),
            (
                "limits.amqp_connections_max",
                self.limits.amqp_connections_max,
            ),
            (
                "limits.mqtt_connections_max",
                self.limits.mqtt_connections_max,
            ),
            (
                "limits.requests_pending_max",
                self.limits.requests_pending_max,
            ),
            ("limits.subscriptions_max", self.limits.subscriptions_max),
            (
                "limits.receive_waiters_max",
                self.limits.receive_waiters_max,
            ),
            (
                "limits.request_body_bytes_max",
                self.limits.request_body_bytes_max,
            ),
            ("limits.batch_messages_max", self.limits.batch_messages_max),
            ("limits.batch_bytes_max", self.limits.batch_bytes_max),
            (
                "limits.stream_partitions_max",
                self.limits.stream_partitions_max,
            ),
            (
                "limits.event_subscriptions_max",
                self.limits.event_subscriptions_max,
            ),
        ];
        for (key, value) in limits {
            if value == 0 {
                return Err(invalid(key, "0".to_string(), "must be at least 1"));
            }
        }
        if self.limits.http_idle_timeout_ms < HTTP_IDLE_TIMEOUT_MS_MIN {
            return Err(invalid(
                "limits.http_idle_timeout_ms",
                self.limits.http_idle_timeout_ms.to_string(),
                &format!("must be at least {HTTP_IDLE_TIMEOUT_MS_MIN}: a quiet subscription moves a byte only every 15 s"),
            ));
        }
        if self.limits.http_request_read_timeout_ms < HTTP_REQUEST_READ_TIMEOUT_MS_MIN {
            return Err(invalid(
                "limits.http_request_read_timeout_ms",
                self.limits.http_request_read_timeout_ms.to_string(),
                &format!("must be at least {HTTP_REQUEST_READ_TIMEOUT_MS_MIN}: a large body on a slow link takes seconds"),
            ));
        }
        Ok(())
    }
}

impl StorageSettings {
    /// The log layout and commit policy these settings describe, for every log the server opens.
    pub fn log_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.segment_bytes,
            fsync: self.fsync_policy(),
            commit_gather: Duration::from_micros(self.commit_gather_us),
            ..LogConfig::default()
        }
    }

    /// The commit policy of `fsync` and `fsync_interval_ms`.
    pub fn fsync_policy(&self) -> FsyncPolicy {
        match self.fsync {
            FsyncMode::Always => FsyncPolicy::Always,
            FsyncMode::Interval => {
                FsyncPolicy::Interval(Duration::from_millis(self.fsync_interval_ms))
            }
            FsyncMode::Never => FsyncPolicy::Never,
        }
    }
}

fn key_prefix(key: &Option<String>) -> String {
    key.as_ref()
        .map(|key| format!("key `{key}`: "))
        .unwrap_or_default()
}

fn source_name(path: &Option<PathBuf>) -> String {
    match path {
        Some(path) => format!("file {}", path.display()),
        None => "value".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServeConfig, ConfigError> {
        let path = Path::new("test.toml");
        let config = ServeConfig::parse(text, path)?;
        config.validate(Some(path))?;
        Ok(config)
    }

    #[test]
    fn no_file_gives_the_defaults() {
        let config = ServeConfig::load(None).expect("defaults");
        assert_eq!(config.data_dir, PathBuf::from("./wharf-data"));
        assert_eq!(config.http_addr, "127.0.0.1:7700".parse().unwrap());
        assert_eq!(config.log.level, "info");
        assert_eq!(config.log.format, LogFormat::Text);
        assert_eq!(config.storage.fsync, FsyncMode::Always);
        assert_eq!(config.storage.fsync_interval_ms, 100);
        assert_eq!(config.storage.segment_bytes, 64 << 20);
    }

    #[test]
    fn amqp_listens_on_5672_by_default_and_amqps_only_with_tls() {
        let config = ServeConfig::default();
        assert_eq!(
            config.amqp_addr.addr(),
            Some("127.0.0.1:5672".parse().unwrap())
        );
        assert_eq!(config.amqps_listen().expect("no tls, no amqps"), None);
        let config = parse("amqp_addr = \"off\"\n[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n")
            .expect("parses");
        assert_eq!(config.amqp_addr, Listen::Off);
        assert_eq!(
            config.amqps_listen().expect("tls"),
            Some("127.0.0.1:5671".parse().unwrap())
        );
        let config = parse("amqps_addr = \"0.0.0.0:5999\"\n").expect("parses");
        let error = config.amqps_listen().unwrap_err().to_string();
        assert!(
            error.contains("amqps_addr") && error.contains("tls.cert"),
            "{error}"
        );
        let error = parse("amqp_addr = \"5672\"\n").unwrap_err().to_string();
        assert!(
            error.contains("amqp_addr") && error.contains("or off"),
            "{error}"
        );
        assert_eq!("off".parse::<Listen>(), Ok(Listen::Off));
    }

    #[test]
    fn mqtt_listens_on_1883_by_default_and_mqtts_only_with_tls() {
        let config = parse("").expect("empty file");
        assert_eq!(
            config.mqtt_addr.addr(),
            Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 1883)))
        );
        assert_eq!(config.mqtts_listen().expect("no tls, no mqtts"), None);
        assert_eq!(config.mqtt.topic, "mqtt");
        let config = parse("mqtt_addr = \"off\"\n[mqtt]\ntopic = \"devices\"\n[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n")
            .expect("parses");
        assert_eq!(config.mqtt_addr, Listen::Off);
        assert_eq!(config.mqtt.topic, "devices");
        assert_eq!(
            config.mqtts_listen().expect("tls"),
            Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 8883)))
        );
        let error = parse("mqtts_addr = \"0.0.0.0:8999\"\n").expect("parses");
        let error = error.mqtts_listen().unwrap_err().to_string();
        assert!(
            error.contains("mqtts_addr") && error.contains("tls.cert"),
            "{error}"
        );
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        assert_eq!(parse("").expect("parses"), ServeConfig::default());
    }

    #[test]
    fn every_key_parses() {
        let config = parse(
            r#"
            data_dir = "/var/lib/wharf"
            http_addr = "0.0.0.0:8080"
            [log]
            level = "debug,wharf_storage=trace"
            format = "json"
            [storage]
            fsync = "interval"
            fsync_interval_ms = 5
            segment_bytes = 4096
            disk_free_bytes_min = 0
            "#,
        )
        .expect("parses");
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/wharf"));
        assert_eq!(config.http_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.log.level, "debug,wharf_storage=trace");
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.storage.fsync, FsyncMode::Interval);
        let log = config.storage.log_config();
        assert_eq!(log.fsync, FsyncPolicy::Interval(Duration::from_millis(5)));
        assert_eq!(log.segment_bytes, 4096);
        assert_eq!(config.storage.disk_free_bytes_min, 0);
    }

    #[test]
    fn partial_table_keeps_other_defaults() {
        let config = parse("[storage]\nfsync = \"never\"\n").expect("parses");
        assert_eq!(config.storage.fsync, FsyncMode::Never);
        assert_eq!(config.storage.segment_bytes, 64 << 20);
        assert_eq!(config.log, LogSettings::default());
    }

    #[test]
    fn unknown_top_level_key_is_named() {
        let error = parse("data_dir = \"x\"\nbogus_key = 1\n").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("test.toml"), "{message}");
        assert!(message.contains("bogus_key"), "{message}");
    }

    #[test]
    fn unknown_nested_key_is_named() {
        let error = parse("[storage]\nfsink = \"always\"\n").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("fsink"), "{message}");
        assert!(message.contains("storage"), "{message}");
    }

    #[test]
    fn bad_enum_value_names_key_and_value() {
        let error = parse("[storage]\nfsync = \"sometimes\"\n").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("storage.fsync"), "{message}");
        assert!(message.contains("sometimes"), "{message}");
    }

    #[test]
    fn bad_address_names_key() {
        let error = parse("http_addr = \"nowhere\"\n").unwrap_err();
        assert!(error.to_string().contains("http_addr"), "{error}");
    }

    #[test]
    fn wrong_type_names_key() {
        let error = parse("[storage]\nsegment_bytes = \"big\"\n").unwrap_err();
        assert!(
            error.to_string().contains("storage.segment_bytes"),
            "{error}"
        );
    }

    #[test]
    fn commit_gather_is_read_and_bounded() {
        let config = parse("[storage]\ncommit_gather_us = 0\n").expect("0 turns gathering off");
        assert_eq!(config.storage.log_config().commit_gather, Duration::ZERO);
        let error = parse("[storage]\ncommit_gather_us = 100001\n").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("storage.commit_gather_us"), "{message}");
        assert!(message.contains("100001"), "{message}");
    }

    #[test]
    fn out_of_range_segment_is_rejected() {
        let error = parse("[storage]\nsegment_bytes = 100\n").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("storage.segment_bytes"), "{message}");
        assert!(message.contains("100"), "{message}");
    }

    #[test]
    fn zero_interval_is_rejected_only_for_interval_policy() {
        parse("[storage]\nfsync_interval_ms = 0\n").expect("unused interval may be 0");
        let error = parse("[storage]\nfsync = \"interval\"\nfsync_interval_ms = 0\n").unwrap_err();
        assert!(error.to_string().contains("fsync_interval_ms"), "{error}");
    }

    #[test]
    fn limits_parse_and_zero_is_refused() {
        let config = parse("[limits]\nhttp_connections_max = 5\n").expect("parses");
        assert_eq!(config.limits.http_connections_max, 5);
        assert_eq!(
            config.limits.subscriptions_max,
            LimitSettings::default().subscriptions_max
        );
        let error = parse("[limits]\nhttp_idle_timeout_ms = 1000\n").unwrap_err();
        assert!(
            error.to_string().contains("limits.http_idle_timeout_ms"),
            "{error}"
        );
        let config = parse("[limits]\nhttp_idle_timeout_ms = 30000\n").expect("parses");
        assert_eq!(config.limits.http_idle_timeout(), Duration::from_secs(30));
        let error = parse("[limits]\nsubscriptions_max = 0\n").unwrap_err();
        assert!(
            error.to_string().contains("limits.subscriptions_max"),
            "{error}"
        );
    }

    #[test]
    fn http_settings_parse_and_bad_entries_name_the_setting() {
        let config = parse(
            "[http]\nallowed_hosts = [\"wharf.example\", \"[fd00::1]\"]\n\
             cors_origins = [\"https://app.example\"]\n",
        )
        .expect("parses");
        assert_eq!(config.http.allowed_hosts, ["wharf.example", "[fd00::1]"]);
        assert_eq!(config.http.cors_origins, ["https://app.example"]);
        assert_eq!(parse("").expect("parses").http, HttpSettings::default());
        let refused = [
            (
                "allowed_hosts = [\"wharf.example:7700\"]",
                "http.allowed_hosts",
            ),
            (
                "allowed_hosts = [\"*\", \"localhost\"]",
                "http.allowed_hosts",
            ),
            (
                "allowed_hosts = [\"http://wharf.example\"]",
                "http.allowed_hosts",
            ),
            ("cors_origins = [\"app.example\"]", "http.cors_origins"),
            (
                "cors_origins = [\"https://app.example/\"]",
                "http.cors_origins",
            ),
            ("cors_origins = [\"null\"]", "http.cors_origins"),
            (
                "cors_origins = [\"*\", \"https://app.example\"]",
                "http.cors_origins",
            ),
        ];
        for (line, key) in refused {
            let error = parse(&format!("[http]\n{line}\n")).unwrap_err();
            assert!(error.to_string().contains(key), "{line}: {error}");
        }
        let error = parse("[http]\nallowed_host = []\n").unwrap_err();
        assert!(error.to_string().contains("allowed_host"), "{error}");
    }

    #[test]
    fn bad_log_level_is_rejected() {
        let error = parse("[log]\nlevel = \"loud=[\"\n").unwrap_err();
        assert!(error.to_string().contains("log.level"), "{error}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let error = ServeConfig::load(Some(Path::new("/nonexistent/wharf.toml"))).unwrap_err();
        assert!(matches!(error, ConfigError::Read { .. }));
        assert!(error.to_string().contains("/nonexistent/wharf.toml"));
    }

    #[test]
    fn tls_paths_parse_and_a_cert_without_its_key_is_refused() {
        let config = parse("[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\nclient_ca = \"/ca.pem\"\n")
            .expect("parses");
        let files = config.tls.files(None).expect("complete").expect("tls on");
        assert_eq!(files.cert, PathBuf::from("/c.pem"));
        assert_eq!(files.client_ca, Some(PathBuf::from("/ca.pem")));
        assert_eq!(ServeConfig::default().tls.files(None).expect("ok"), None);
        let error = parse("[tls]\ncert = \"/c.pem\"\n").unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("tls.key") && message.contains("test.toml"),
            "{message}"
        );
        let error = parse("[tls]\nkey = \"/k.pem\"\n").unwrap_err();
        assert!(error.to_string().contains("tls.cert"), "{error}");
        let error = parse("[tls]\nclient_ca = \"/ca.pem\"\n").unwrap_err();
        assert!(error.to_string().contains("tls.client_ca"), "{error}");
        let error = parse("[tls]\ncertificate = \"/c.pem\"\n").unwrap_err();
        assert!(error.to_string().contains("certificate"), "{error}");
    }

    #[test]
    fn syntax_error_is_reported_with_file() {
        let error = parse("data_dir = \n").unwrap_err();
        assert!(error.to_string().contains("test.toml"), "{error}");
    }
}
