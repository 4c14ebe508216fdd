//! The serve loop: open the store, listen, serve until told to stop, then shut down cleanly.
//!
//! Shutdown order matters for durability: readiness turns 503 first (load balancers stop
//! sending), the listener stops accepting, in-flight requests finish (bounded by
//! [`SHUTDOWN_DRAIN_TIMEOUT`]; long polls end at once, empty), then the engine stops its timers,
//! and only then is the store closed, which finishes pending appends and fsyncs them. A request
//! acknowledged before exit is therefore on disk.
//!
//! SIGHUP reloads the TLS certificate and key (see [`crate::tls`]) and nothing else; it does
//! not touch shutdown, which only SIGTERM and SIGINT start. The handler is installed whether
//! or not TLS is on, so that a reload sent to a plain server is logged instead of killing it
//! (SIGHUP's default action).

use crate::resource_metrics::ResourceMetrics;
use crate::{
    config::{ConfigError, ServeConfig},
    connection_limit::{track_request, ConnectionRequests, LimitedListener, Timeouts},
    connections::Connections,
    descriptors,
    disk_space::DiskSpace,
    http::security::SecuritySettings,
    http::{self, AppState},
    readiness::Readiness,
    tls::{ReloadableTls, TlsError},
};
use prometheus_client::{metrics::counter::Counter, registry::Registry};
use std::{
    future::{Future, IntoFuture},
    io,
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::Duration,
};
use tokio::{
    net::TcpListener,
    signal::unix::{signal, Signal, SignalKind},
    sync::oneshot,
};
use wharf_engine::{alerts::NodeSample, clock::SystemClock, Engine, EngineConfig, EngineError};
use wharf_storage::{StorageError, Store, StoreConfig};

/// How long in-flight requests may run after shutdown begins. Long enough for any request that
/// is not a long poll to finish; short enough to end within a typical orchestrator's grace
/// period (Kubernetes sends SIGKILL 30 s after SIGTERM), leaving time to close the store.
pub const SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// How long closing the store (finishing appends, the last fsyncs) may take after the drain.
/// 5 s on top of the drain still ends within Kubernetes' 30 s grace period.
pub const STORE_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a stopping server waits for its doors' connections (AMQP) to hear that it stops
/// and close: a moment, as each only writes one frame.
const DOOR_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The server failed to start or to stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another server has the data directory; two would overwrite each other's records.
    #[error("{source}; stop it or choose another --data-dir")]
    DataDirectoryInUse {
        #[source]
        source: StorageError,
    },
    #[error("cannot open the store in {}: {source}", dir.display())]
    StoreOpen {
        dir: PathBuf,
        #[source]
        source: StorageError,
    },
    #[error("cannot open the queues in {}: {source}", dir.display())]
    EngineOpen {
        dir: PathBuf,
        #[source]
        source: EngineError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("HTTP server on {addr} failed: {source}")]
    Http {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("closing the store failed: {source}")]
    StoreClose {
        #[source]
        source: StorageError,
    },
    /// No user and no token, on an address others can reach: anyone could do anything.
    #[error(
        "refusing to serve on {addr} with no users and no tokens: anyone who can reach it could \
         read, delete and flood everything. Give an administrator token (--admin-token or \
         WHARF_ADMIN_TOKEN), listen on a loopback address, or pass --allow-anonymous"
    )]
    Unprotected { addr: SocketAddr },
    #[error("cannot seed the administrator token: {source}")]
    AdminToken {
        #[source]
        source: EngineError,
    },
    #[error("config: {source}")]
    HttpSettings {
        #[source]
        source: http::browser::BrowserSettingError,
    },
    #[error("{source}")]
    Config {
        #[from]
        source: ConfigError,
    },
    #[error("cannot serve TLS: {source}")]
    Tls {
        #[from]
        source: TlsError,
    },
    #[error("cannot install signal handlers: {source}")]
    Signals {
        #[source]
        source: io::Error,
    },
}

/// A bound server: the store is open and the listener accepts connections (queued until
/// [`Server::run`]). Binding port 0 and reading [`Server::local_addr`] lets tests pick a port.
#[derive(Debug)]
pub struct Server {
    listener: LimitedListener,
    local_addr: SocketAddr,
    store: Arc<Store>,
    state: AppState,
    tls: Option<Arc<ReloadableTls>>,
    /// Installed at bind, so that a SIGHUP sent once the server answers is never lost.
    hangups: Signal,
    /// How often alert rules are evaluated (`alerts.interval_ms`).
    alert_interval: Duration,
    /// The AMQP door's listeners, unless both AMQP and AMQPS are off.
    amqp: Option<crate::amqp::Listeners>,
    /// The MQTT door's listeners, unless both MQTT and MQTTS are off.
    mqtt: Option<crate::mqtt::Listeners>,
}

/// Binds and runs a server until `shutdown` completes; see [`Server`].
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Server::bind(&config).await?.run(shutdown).await
}

/// Resolves on the first SIGINT or SIGTERM. Installs the handlers at once, so a signal that
/// arrives before the future is polled is not lost (nor kills the process).
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static, ServeError> {
    let install = |kind| signal(kind).map_err(|source| ServeError::Signals { source });
    let mut terminate = install(SignalKind::terminate())?;
    let mut interrupt = install(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutdown requested");
    })
}

/// Opens the engine over `store` and applies the security rules of the start; on failure the
/// store is closed again, so the caller's error is the whole story.
async fn bind_open_engine(store: &Arc<Store>, config: &ServeConfig) -> Result<Engine, ServeError> {
    let engine_config = EngineConfig {
        requests_pending_max: config.limits.requests_pending_max,
        subscriptions_max: config.limits.subscriptions_max,
        send_rate: config.limits.send_rate(),
        receive_waiters_max: config.limits.receive_waiters_max,
        stream_partitions_max: config.limits.stream_partitions_max,
        event_subscriptions_max: config.limits.event_subscriptions_max,
        definitions_per_caller: config.limits.definitions_per_caller,
        batch_messages_max: config.limits.batch_messages_max,
        batch_bytes_max: config.limits.batch_bytes_max,
        alerts_topic: config.alerts.topic.clone(),
        alert_rules: (config.alerts.rules.iter())
            .map(|(name, rule)| (name.clone(), rule.clone()))
            .collect(),
        webhook_retry_schedule: config.webhooks.retry_schedule(),
        webhook_history: Duration::from_millis(config.webhooks.history_ms),
        ..EngineConfig::default()
    };
    let engine = match Engine::open(store.clone(), Arc::new(SystemClock), engine_config).await {
        Ok(engine) => engine,
        Err(source) => {
            // Release the logs replay opened; the open error is what the caller needs.
            if let Err(error) = store.close().await {
                tracing::warn!(%error, "closing the store after a failed engine open");
            }
            return Err(ServeError::EngineOpen {
                dir: store.dir().to_path_buf(),
                source,
            });
        }
    };
    tracing::info!(queues = engine.queue_count(), "queues open");
    if let Err(error) = bind_secure(&engine, config).await {
        engine.close();
        if let Err(close) = store.close().await {
            tracing::warn!(error = %close, "closing the store after a refused start");
        }
        return Err(error);
    }
    Ok(engine)
}

/// Seeds the administrator token if one is configured, and refuses to serve a store with no
/// users and no tokens on an address other machines can reach, unless allowed (Redis's
/// protected mode).
async fn bind_secure(engine: &Engine, config: &ServeConfig) -> Result<(), ServeError> {
    if let Some(token) = &config.security.admin_token {
        (engine.seed_admin_token(token).await)
            .map_err(|source| ServeError::AdminToken { source })?;
        tracing::info!("administrator token set from the configuration");
    }
    if !engine.security_open() {
        return Ok(());
    }
    // Every door that listens: the AMQP and MQTT ones let the same anonymous callers in.
    let doors = [
        Some(config.http_addr),
        config.amqp_addr.addr(),
        config.amqps_listen()?,
        config.mqtt_addr.addr(),
        config.mqtts_listen()?,
    ];
    for addr in doors.into_iter().flatten() {
        match (addr.ip().is_loopback(), config.security.allow_anonymous) {
            (true, _) => {
                tracing::warn!(%addr, "no users or tokens: anyone on this machine may do anything; see docs/security.md")
            }
            (false, true) => {
                tracing::warn!(%addr, "no users or tokens and --allow-anonymous: anyone who reaches this address may do anything")
            }
            (false, false) => return Err(ServeError::Unprotected { addr }),
        }
    }
    Ok(())
}

/// Binds the AMQP door's listeners: plain AMQP, and AMQPS when TLS is set.
async fn bind_amqp(
    config: &ServeConfig,
    tls: Option<&Arc<ReloadableTls>>,
) -> Result<Option<crate::amqp::Listeners>, ServeError> {
    let amqps = match (config.amqps_listen()?, tls) {
        (Some(addr), Some(tls)) => Some((addr, tls.clone())),
        _ => None,
    };
    let plain = config.amqp_addr.addr();
    let max = config.limits.amqp_connections_max;
    (crate::amqp::Listeners::bind("AMQP", plain, amqps, max).await)
        .map_err(|(addr, source)| ServeError::Bind { addr, source })
}

/// Binds the MQTT door's listeners: plain MQTT, and MQTTS when TLS is set.
/// Its connection cap stays below the descriptor limit, as HTTP's does: at the limit, accepts
/// fail and `/healthz` stops answering.
async fn bind_mqtt(
    config: &ServeConfig,
    tls: Option<&Arc<ReloadableTls>>,
    descriptors_soft: Option<u64>,
) -> Result<Option<crate::mqtt::Listeners>, ServeError> {
    let mqtts = match (config.mqtts_listen()?, tls) {
        (Some(addr), Some(tls)) => Some((addr, tls.clone())),
        _ => None,
    };
    let plain = config.mqtt_addr.addr();
    let configured = config.limits.mqtt_connections_max;
    let max = descriptors_soft.map_or(configured, |soft| {
        descriptors::connections_max_within(configured, soft)
    });
    if max < configured && (plain.is_some() || mqtts.is_some()) {
        tracing::info!(
            configured,
            max,
            descriptors_soft,
            "limits.mqtt_connections_max lowered to keep descriptors for the store"
        );
    }
    (crate::mqtt::Listeners::bind("MQTT", plain, mqtts, max).await)
        .map_err(|(addr, source)| ServeError::Bind { addr, source })
}

/// Every metric family the server exports but the disk's and the HTTP door's own.
fn bind_registry(store: &Store, engine: &Engine, config: &ServeConfig) -> Registry {
    let mut registry = Registry::default();
    store.metrics().register(&mut registry);
    http::refusals::register(&mut registry);
    http::request_metrics::register(&mut registry);
    crate::webhooks::metrics::register(&mut registry);
    crate::realtime::metrics::register(&mut registry);
    registry.register_collector(Box::new(ResourceMetrics::new(
        engine.clone(),
        config.metrics.series_choice(),
    )));
    registry
}

/// Opens the store in `config.data_dir`, on the blocking pool (recovery scans files), and
/// logs that it is open.
async fn bind_open_store(config: &ServeConfig) -> Result<Arc<Store>, ServeError> {
    let store = bind_open_store_quietly(config).await?;
    let storage = &config.storage;
    tracing::info!(
        data_dir = %store.dir().display(),
        fsync = ?storage.fsync,
        fsync_interval_ms = storage.fsync_interval_ms,
        segment_bytes = storage.segment_bytes,
        "store open"
    );
    Ok(store)
}

async fn bind_open_store_quietly(config: &ServeConfig) -> Result<Arc<Store>, ServeError> {
    let dir = config.data_dir.clone();
    let store_config = StoreConfig {
        log: config.storage.log_config(),
        large_log_tail_cache_bytes: config.storage.tail_cache_bytes,
        reserve_bytes: config.storage.disk_reserve_bytes,
        ..StoreConfig::default()
    };
    let opened = tokio::task::spawn_blocking(move || {
        let store = Store::open(&dir, store_config);
        (dir, store)
    })
    .await
    .expect("opening the store panicked");
    match opened {
        (_, Ok(store)) => Ok(Arc::new(store)),
        (_, Err(source @ StorageError::Locked { .. })) => {
            Err(ServeError::DataDirectoryInUse { source })
        }
        (dir, Err(source)) => Err(ServeError::StoreOpen { dir, source }),
    }
}

impl Server {
    /// Opens the store in `config.data_dir` and binds `config.http_addr`.
    pub async fn bind(config: &ServeConfig) -> Result<Server, ServeError> {
        let browser = http::browser::BrowserPolicy::new(&config.http, config.http_addr.ip())
            .map_err(|source| ServeError::HttpSettings { source })?;
        // Before the store: a wrong certificate path should fail at once, not after recovery.
        let tls = match config.tls.files(None)? {
            Some(files) => Some(Arc::new(ReloadableTls::load(files)?)),
            None => None,
        };
        let hangups =
            signal(SignalKind::hangup()).map_err(|source| ServeError::Signals { source })?;
        let descriptors_soft = bind_raise_descriptor_limit();
        let store = bind_open_store(config).await?;
        let engine = bind_open_engine(&store, config).await?;
        let readiness = Arc::new(Readiness::default());
        readiness.set_store_open(true);
        let mut registry = bind_registry(&store, &engine, config);
        let disk = DiskSpace::new(
            store.dir().to_path_buf(),
            config.storage.disk_free_bytes_min,
            store.clone(),
            &mut registry,
        );
        let (listener, local_addr) =
            bind_listener(config, descriptors_soft, &mut registry, tls.clone()).await?;
        let amqp = bind_amqp(config, tls.as_ref()).await?;
        let mqtt = bind_mqtt(config, tls.as_ref(), descriptors_soft).await?;
        let connections = Connections::new();
        let mqtt_door = crate::mqtt::open(
            engine.clone(),
            config.mqtt.door(),
            connections.clone(),
            readiness.clone(),
        );
        Ok(Server {
            listener,
            local_addr,
            amqp,
            mqtt,
            store,
            tls,
            hangups,
            alert_interval: Duration::from_millis(config.alerts.interval_ms),
            state: AppState::from(crate::http::AppParts {
                readiness,
                registry: Arc::new(registry),
                engine: engine.clone(),
                disk: Some(Arc::new(disk)),
                security: Arc::new(
                    SecuritySettings::new(config.security.metrics_public)
                        .with_connections_per_caller(config.limits.http_connections_per_caller),
                ),
                browser: Arc::new(browser),
                request_body_bytes_max: config.limits.request_body_bytes_max,
                connections,
                mqtt: Some(mqtt_door),
                webhooks: Arc::new(crate::webhooks::Webhooks {
                    settings: config.webhooks.dispatcher(),
                    attempts: Default::default(),
                }),
                realtime: crate::realtime::Hub::new(engine.clone(), config.realtime.hub()),
                resource_series_max: config.metrics.resource_series_max,
            }),
        })
    }

    /// The address actually bound (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The AMQP door's address, when it listens.
    pub fn amqp_addr(&self) -> Option<SocketAddr> {
        self.amqp.as_ref()?.addr()
    }

    /// The AMQPS (AMQP over TLS) address, when it listens.
    pub fn amqps_addr(&self) -> Option<SocketAddr> {
        self.amqp.as_ref()?.tls_addr()
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn readiness(&self) -> &Arc<Readiness> {
        &self.state.readiness
    }

    /// The TLS configuration, if the listener serves TLS; what SIGHUP reloads.
    pub fn tls(&self) -> Option<&Arc<ReloadableTls>> {
        self.tls.as_ref()
    }

    /// Serves until `shutdown` completes, then drains requests and closes the store.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Server {
            listener,
            local_addr,
            store,
            state,
            tls,
            hangups,
            alert_interval,
            amqp,
            mqtt,
        } = self;
        let readiness = state.readiness.clone();
        let engine = state.engine.clone();
        let disk = state.disk.clone();
        let mut background = vec![
            tokio::spawn(run_reload_on_hangup(hangups, tls.clone())),
            tokio::spawn(crate::webhooks::run(engine.clone(), state.webhooks.clone())),
            tokio::spawn(run_alerts(engine.clone(), disk, alert_interval)),
        ];
        tracing::info!(address = %local_addr, tls = tls.is_some(), "listening");
        let connections = state.connections.clone();
        background
            .extend(amqp.map(|listeners| spawn_amqp(listeners, &engine, connections.clone())));
        if let (Some(listeners), Some(door)) = (mqtt, state.mqtt.clone()) {
            background.push(spawn_mqtt(listeners, door));
        }

        let (began_sender, began) = oneshot::channel();
        let signal = begin_shutdown_on(shutdown, &state, began_sender);
        let app = http::router(state).layer(axum::middleware::from_fn(track_request));
        let app = app.into_make_service_with_connect_info::<ConnectionRequests>();
        let serving = axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .into_future();
        let drain_expired = async {
            match began.await {
                Ok(()) => tokio::time::sleep(SHUTDOWN_DRAIN_TIMEOUT).await,
                // The server ended without a shutdown request; its own result decides.
                Err(_) => std::future::pending().await,
            }
        };
        let served = tokio::select! {
            result = serving => result.map_err(|source| ServeError::Http { addr: local_addr, source }),
            () = drain_expired => {
                tracing::warn!(
                    timeout_seconds = SHUTDOWN_DRAIN_TIMEOUT.as_secs(),
                    "requests still running after the drain timeout; closing anyway"
                );
                Ok(())
            }
        };
        for task in background {
            task.abort();
        }
        // Told first (if no signal did it), so the real-time sockets close as the doors do.
        readiness.begin_shutdown();
        close_door_connections(&connections, &readiness).await;
        engine.close();
        let closed = close_store(&store).await;
        readiness.set_store_open(false);
        served?;
        closed.map_err(|source| ServeError::StoreClose { source })?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Completes when `shutdown` does, after marking the server as shutting down: real-time
/// connections end with a close frame and the hub's keepers with them.
fn begin_shutdown_on(
    shutdown: impl Future<Output = ()> + Send + 'static,
    state: &AppState,
    began: oneshot::Sender<()>,
) -> impl Future<Output = ()> + Send + 'static {
    let (readiness, hub) = (state.readiness.clone(), state.realtime.clone());
    async move {
        shutdown.await;
        readiness.begin_shutdown();
        hub.close();
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        let _ = began.send(());
    }
}

/// Tells the doors' clients that the server stops (AMQP: `320 CONNECTION_FORCED`), and waits
/// up to [`DOOR_CLOSE_TIMEOUT`] for them, and for the real-time WebSockets (told when shutdown
/// began), to go, so that they hear it before the process ends.
async fn close_door_connections(connections: &Connections, readiness: &Readiness) {
    connections.close_all_for_shutdown();
    let deadline = tokio::time::Instant::now() + DOOR_CLOSE_TIMEOUT;
    let open = || !connections.is_empty() || readiness.open_sockets() > 0;
    while open() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Serves the AMQP door on `listeners` until the returned task is aborted.
fn spawn_amqp(
    listeners: crate::amqp::Listeners,
    engine: &Engine,
    connections: Arc<Connections>,
) -> tokio::task::JoinHandle<()> {
    if let Some(address) = listeners.addr() {
        tracing::info!(%address, "AMQP door listening");
    }
    if let Some(address) = listeners.tls_addr() {
        tracing::info!(%address, "AMQPS (AMQP over TLS) door listening");
    }
    tokio::spawn(crate::amqp::serve(listeners, engine.clone(), connections))
}

/// Serves the MQTT door on `listeners` until the returned task is aborted.
fn spawn_mqtt(
    listeners: crate::mqtt::Listeners,
    door: Arc<crate::mqtt::Door>,
) -> tokio::task::JoinHandle<()> {
    if let Some(address) = listeners.addr() {
        tracing::info!(%address, "MQTT door listening");
    }
    if let Some(address) = listeners.tls_addr() {
        tracing::info!(%address, "MQTTS (MQTT over TLS) door listening");
    }
    tokio::spawn(crate::mqtt::serve(listeners, door))
}

/// Closes the store within [`STORE_CLOSE_TIMEOUT`]. Bounded: acknowledged data is already
/// durable, so a close that hangs (a stuck disk) must not keep the process from exiting.
async fn close_store(store: &Store) -> Result<(), StorageError> {
    match tokio::time::timeout(STORE_CLOSE_TIMEOUT, store.close()).await {
        Ok(closed) => closed,
        Err(_) => {
            tracing::error!(
                timeout_seconds = STORE_CLOSE_TIMEOUT.as_secs(),
                "the store did not close in time; exiting anyway"
            );
            Ok(())
        }
    }
}

/// Reloads the TLS files on every SIGHUP, on the blocking pool (it reads files), until aborted.
async fn run_reload_on_hangup(mut hangups: Signal, tls: Option<Arc<ReloadableTls>>) {
    while hangups.recv().await.is_some() {
        let Some(tls) = tls.clone() else {
            tracing::info!("SIGHUP: no TLS configured, nothing to reload");
            continue;
        };
        tracing::info!("SIGHUP: reloading the TLS certificate");
        if let Err(error) = tokio::task::spawn_blocking(move || tls.reload_logged()).await {
            tracing::error!(%error, "the TLS reload task failed; keeping the certificate in use");
        }
    }
}

/// Evaluates the alert rules every `interval` until aborted, with the node's measures.
async fn run_alerts(engine: Engine, disk: Option<Arc<DiskSpace>>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    // A pass that ran late (a slow disk) is not made up for with a burst.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let node = NodeSample {
            disk_free_bytes: disk.as_ref().and_then(|disk| disk.free_bytes().ok()),
            resident_memory_bytes: crate::resource_metrics::resident_memory_bytes(),
        };
        for event in engine.evaluate_alerts(node).await {
            tracing::warn!(alert = %event.name, transition = ?event.transition, value = ?event.value, "alert");
        }
    }
}

/// Raises the descriptor limit as far as allowed; returns the soft limit then in force, if
/// known.
fn bind_raise_descriptor_limit() -> Option<u64> {
    match descriptors::raise_descriptor_limit() {
        Ok(limit) => {
            tracing::info!(
                soft = limit.soft,
                hard = limit.hard,
                raised_from = limit.raised_from,
                "file descriptor limit"
            );
            Some(limit.soft)
        }
        Err(error) => {
            tracing::warn!(%error, "cannot read or raise the file descriptor limit");
            None
        }
    }
}

/// Binds the HTTP address behind the connection limit, whose refusals `registry` counts. The
/// limit is kept below the descriptor limit `descriptors_soft`, so that clients cannot take
/// the descriptors the store needs.
async fn bind_listener(
    config: &ServeConfig,
    descriptors_soft: Option<u64>,
    registry: &mut Registry,
    tls: Option<Arc<ReloadableTls>>,
) -> Result<(LimitedListener, SocketAddr), ServeError> {
    let connections_refused = Counter::default();
    registry.register(
        "wharf_http_connections_refused",
        "HTTP connections refused because limits.http_connections_max were open",
        connections_refused.clone(),
    );
    let addr = config.http_addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    let configured = config.limits.http_connections_max;
    let max = descriptors_soft.map_or(configured, |soft| {
        descriptors::connections_max_within(configured, soft)
    });
    if max < configured {
        tracing::warn!(
            configured,
            max,
            descriptors_soft,
            "limits.http_connections_max lowered to keep descriptors for the store"
        );
    }
    let timeouts = Timeouts {
        idle: config.limits.http_idle_timeout(),
        request_read: config.limits.http_request_read_timeout(),
    };
    Ok((
        LimitedListener::new(listener, max, timeouts, connections_refused, tls),
        local_addr,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn test_config(dir: &std::path::Path) -> ServeConfig {
        ServeConfig {
            data_dir: dir.join("data"),
            http_addr: "127.0.0.1:0".parse().expect("address"),
            amqp_addr: crate::Listen::Off,
            amqps_addr: Some(crate::Listen::Off),
            mqtt_addr: crate::Listen::Off,
            mqtts_addr: Some(crate::Listen::Off),
            ..ServeConfig::default()
        }
    }

    /// A server bound on `config` and running until [`Running::stop`].
    struct Running {
        addr: SocketAddr,
        stop: oneshot::Sender<()>,
        task: tokio::task::JoinHandle<Result<(), ServeError>>,
    }

    async fn start(config: &ServeConfig) -> Running {
        let server = Server::bind(config).await.expect("binds");
        let addr = server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Running { addr, stop, task }
    }

    impl Running {
        async fn stop(self) {
            self.stop.send(()).expect("server running");
            self.task.await.expect("no panic").expect("clean shutdown");
        }
    }

    async fn get(addr: SocketAddr, path: &str) -> io::Result<String> {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await?;
        Ok(reply)
    }

    #[tokio::test]
    async fn serves_until_shutdown_then_closes_the_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = Server::bind(&test_config(dir.path())).await.expect("binds");
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        let readiness = server.readiness().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));

        let reply = get(addr, "/readyz").await.expect("request");
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(dir.path().join("data").join("logs").is_dir());

        stop.send(()).expect("server running");
        running.await.expect("no panic").expect("clean shutdown");
        assert!(readiness.is_shutting_down());
        assert!(readiness.blocker().is_some());
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn connections_over_the_limit_are_refused_with_a_problem_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path());
        config.limits.http_connections_max = 2;
        let running = start(&config).await;
        let addr = running.addr;
        let first = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let _second = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let refused = get(addr, "/healthz").await.expect("an answer, not a hang");
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
        assert!(refused.contains("http_connections_max = 2"), "{refused}");
        drop(first);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let reply = get(addr, "/healthz").await.expect("request");
            if reply.starts_with("HTTP/1.1 200") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "a closed connection frees its slot"
            );
            tokio::task::yield_now().await;
        }
        running.stop().await;
    }

    async fn send(addr: SocketAddr, method: &str, path: &str, body: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        read_until_closed(&mut stream).await
    }

    /// Reads until the server closes the connection; the reply, if any.
    async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> String {
        let mut reply = Vec::new();
        let deadline = Duration::from_secs(10);
        let read = tokio::time::timeout(deadline, stream.read_to_end(&mut reply)).await;
        // A reset is a close as well.
        assert!(read.is_ok(), "the server closed the connection in time");
        String::from_utf8_lossy(&reply).into_owned()
    }

    #[tokio::test]
    async fn silent_and_half_sent_connections_are_closed_and_health_still_answers() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path());
        config.limits.http_idle_timeout_ms = 300;
        let running = start(&config).await;
        let addr = running.addr;
        let connect = || tokio::net::TcpStream::connect(addr);
        let mut silent = connect().await.expect("connect");
        let mut half = connect().await.expect("connect");
        half.write_all(b"GET /healthz HTTP/1.1\r\nHo")
            .await
            .expect("write");
        let mut half_body = connect().await.expect("connect");
        half_body
            .write_all(
                b"POST /v1/queues/jobs/receive HTTP/1.1\r\nHost: localhost\r\n\
                  content-type: application/json\r\ncontent-length: 100\r\n\r\n{",
            )
            .await
            .expect("write");
        let mut kept_alive = connect().await.expect("connect");
        kept_alive
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .expect("write");
        let healthz = get(addr, "/healthz").await.expect("request");
        assert!(healthz.starts_with("HTTP/1.1 200"), "{healthz}");
        // A request that waits longer than the timeout moves no byte, but is not idle.
        let created = send(addr, "PUT", "/v1/queues/jobs", "{}").await;
        assert!(created.starts_with("HTTP/1.1 201"), "{created}");
        let long_poll = r#"{"wait_ms": 1000}"#;
        let received = send(addr, "POST", "/v1/queues/jobs/receive", long_poll).await;
        assert!(received.starts_with("HTTP/1.1 200"), "{received}");

        assert_eq!(read_until_closed(&mut silent).await, "");
        assert!(!read_until_closed(&mut half).await.contains("200"));
        let answered = read_until_closed(&mut half_body).await;
        assert!(!answered.contains("200"), "{answered}");
        let answered = read_until_closed(&mut kept_alive).await;
        assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
        running.stop().await;
    }

    /// A client that drips its request a byte at a time is never idle, but its request must
    /// arrive whole in time; one that sends whole requests slowly, one after another, is fine.
    #[tokio::test]
    async fn a_request_dripped_slower_than_the_read_timeout_is_cut() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path());
        config.limits.http_request_read_timeout_ms = 400;
        let running = start(&config).await;
        let addr = running.addr;
        let connect = || tokio::net::TcpStream::connect(addr);
        let mut dripping = connect().await.expect("connect");
        let started = std::time::Instant::now();
        let mut cut = false;
        for byte in b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: "
            .iter()
            .cycle()
            .take(200)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if dripping.write_all(&[*byte]).await.is_err() {
                cut = true;
                break;
            }
            let mut probe = [0u8; 64];
            let read = tokio::time::timeout(Duration::from_millis(1), dripping.read(&mut probe));
            if let Ok(Ok(0) | Err(_)) = read.await {
                cut = true;
                break;
            }
        }
        assert!(cut, "the dripping connection was closed");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // Whole requests, each quick, on one connection for longer than the read timeout.
        let mut steady = connect().await.expect("connect");
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            steady
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
                .await
                .expect("write");
            let mut reply = [0u8; 512];
            let read = steady.read(&mut reply).await.expect("answered");
            let reply = String::from_utf8_lossy(&reply[..read]);
            assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        }
        running.stop().await;
    }

    #[tokio::test]
    async fn readyz_warns_when_the_disk_is_nearly_full_and_metrics_show_free_space() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path());
        config.storage.disk_free_bytes_min = u64::MAX;
        let running = start(&config).await;
        let addr = running.addr;
        let ready = get(addr, "/readyz").await.expect("request");
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        assert!(ready.contains("disk nearly full"), "{ready}");
        let metrics = get(addr, "/metrics").await.expect("request");
        assert!(
            metrics.contains("wharf_storage_disk_free_bytes "),
            "{metrics}"
        );
        running.stop().await;
    }

    /// Redis's protected mode: no users on a reachable address is refused unless allowed; an
    /// administrator token makes the start safe, and then credentials are required.
    #[tokio::test]
    async fn an_unprotected_start_on_a_reachable_address_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path());
        config.http_addr = "0.0.0.0:0".parse().expect("address");
        let refused = Server::bind(&config).await.expect_err("refused");
        assert!(
            matches!(refused, ServeError::Unprotected { .. }),
            "{refused}"
        );
        assert!(
            refused.to_string().contains("--allow-anonymous"),
            "{refused}"
        );
        config.security.allow_anonymous = true;
        drop(Server::bind(&config).await.expect("allowed"));
        config.security.allow_anonymous = false;
        config.security.admin_token = Some("a-long-enough-admin-token".into());
        let running = start(&config).await;
        let port = running.addr.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let answer = get(addr, "/v1/queues").await.expect("request");
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(answer.contains("www-authenticate"), "{answer}");
        let health = get(addr, "/healthz").await.expect("request");
        assert!(
            health.starts_with("HTTP/1.1 200"),
            "probes stay open: {health}"
        );
        running.stop().await;
    }

    /// A connection counts against the first user that authenticates on it: a user at its
    /// limit is refused on another (429 naming the limit), and a closed one gives its place back.
    #[tokio::test]
    async fn a_caller_holds_at_most_its_connections() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path());
        config.security.admin_token = Some("an-administrator-token".into());
        config.limits.http_connections_per_caller = 2;
        let running = start(&config).await;
        let user = r#"{"password": "long enough", "grants": []}"#;
        let created = send_as(running.addr, "PUT", "/v1/users/u", user, ADMIN).await;
        assert!(created.starts_with("HTTP/1.1 201"), "{created}");
        // Basic u:long enough
        let basic = "Basic dTpsb25nIGVub3VnaA==";
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut stream = tokio::net::TcpStream::connect(running.addr)
                .await
                .expect("connect");
            let reply = keep_alive_get(&mut stream, "/v1/whoami", basic).await;
            assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
            held.push(stream);
        }
        let mut third = tokio::net::TcpStream::connect(running.addr)
            .await
            .expect("connect");
        let refused = keep_alive_get(&mut third, "/v1/whoami", basic).await;
        assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
        assert!(refused.contains("http_connections_per_caller"), "{refused}");
        let admin = keep_alive_get(&mut third, "/v1/whoami", &format!("Bearer {ADMIN}")).await;
        assert!(
            admin.starts_with("HTTP/1.1 200"),
            "administrators are not counted: {admin}"
        );
        drop(held.pop());
        let mut fourth = tokio::net::TcpStream::connect(running.addr)
            .await
            .expect("connect");
        let mut accepted = String::new();
        for _ in 0..100 {
            accepted = keep_alive_get(&mut fourth, "/v1/whoami", basic).await;
            if accepted.starts_with("HTTP/1.1 200") {
                break;
            }
            // The server notices the closed connection on its next read.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            accepted.starts_with("HTTP/1.1 200"),
            "a place came back: {accepted}"
        );
        running.stop().await;
    }

    const ADMIN: &str = "an-administrator-token";

    async fn send_as(
        addr: SocketAddr,
        method: &str,
        path: &str,
        body: &str,
        token: &str,
    ) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             authorization: Bearer {token}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        read_until_closed(&mut stream).await
    }

    /// One GET on a kept-alive connection; the reply's head and body as far as one read goes.
    async fn keep_alive_get(stream: &mut tokio::net::TcpStream, path: &str, auth: &str) -> String {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nauthorization: {auth}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut reply = vec![0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut reply))
            .await
            .expect("answered in time")
            .expect("read");
        String::from_utf8_lossy(&reply[..read]).into_owned()
    }

    #[tokio::test]
    async fn bind_failure_names_the_address() {
        let dir = tempfile::tempdir().expect("temp dir");
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let config = ServeConfig {
            http_addr: taken.local_addr().expect("address"),
            ..test_config(dir.path())
        };
        let error = Server::bind(&config).await.unwrap_err();
        assert!(matches!(error, ServeError::Bind { .. }), "{error}");
        assert!(error.to_string().contains(&config.http_addr.to_string()));
    }
}
