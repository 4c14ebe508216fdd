//! One WebSocket connection of `/v1/ws`: reads client frames and answers them, and writes what
//! the hub queues for it, in one task (docs/realtime.md, "WebSocket protocol").
//!
//! The connection ends when the client closes it, when it stops answering pings, when its
//! outbox overflows (a slow client, under `slow_client = "disconnect"`), or when the server
//! shuts down; each with a close frame saying why. A client that takes no bytes at all for two
//! ping intervals is dropped without one: every write waits at most that long.

use super::{
    frame::{self, ClientFrame, Op, PublishOp, RequestOp, SubscribeOp},
    session::{Session, SubscribeRequest},
    CatchUp, Outgoing,
};
use crate::{
    http::{
        queues::errors::{engine_problem, MessagesAt},
        Problem, ProblemCode,
    },
    readiness::Readiness,
};
use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::{
    sync::{mpsc, Semaphore},
    task::JoinSet,
};
use wharf_engine::{broker::PublishMessage, security::Action, EngineError};

/// Why a connection ends, as its close frame says.
struct Close {
    code: u16,
    reason: &'static str,
}

/// What the loop does after an event.
enum Step {
    Go,
    /// Close with a reason.
    Close(Close),
    /// The socket is gone: nothing more can be sent.
    Gone,
}

/// A connection's state besides its two receivers.
struct Connection {
    socket: WebSocket,
    /// How long a write may wait for the client to take bytes.
    patience: Duration,
    session: Session,
    permits: Arc<Semaphore>,
    /// Waiting requests; dropped with the connection, which ends them and frees their reply
    /// addresses (a reply that comes later finds none).
    waiting: JoinSet<()>,
    /// Each waiting request holds a permit until its answer is queued here, so this never
    /// fills: answers of requests never wait on a slow client's socket reads.
    answers: mpsc::Sender<Utf8Bytes>,
    heard: Instant,
    dropped_told: u64,
}

/// The connection's task: runs until one of the ends in the module doc.
pub async fn serve(
    socket: WebSocket,
    session: Session,
    mut outgoing: mpsc::Receiver<Outgoing>,
    readiness: Arc<Readiness>,
) {
    let settings = &session.hub().settings;
    let (ping_interval, requests_max) = (settings.ping_interval, settings.requests_max);
    let (answers, mut answered) = mpsc::channel::<Utf8Bytes>(requests_max.max(1));
    let outbox = session.outbox().clone();
    let mut connection = Connection {
        socket,
        patience: ping_interval * 2,
        session,
        permits: Arc::new(Semaphore::new(requests_max)),
        waiting: JoinSet::new(),
        answers,
        heard: Instant::now(),
        dropped_told: 0,
    };
    let mut ping = tokio::time::interval(ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Ends: every arm handles one event; the socket, the hub and shutdown each end the loop
    // in the end (see the module doc).
    let close = loop {
        let step = tokio::select! {
            biased;
            () = readiness.shutdown_begun() => {
                Step::Close(Close { code: close_code::AWAY, reason: "the server is shutting down" })
            }
            () = outbox.overflow() => connection.overflowed().await,
            incoming = connection.socket.recv() => connection.incoming(incoming).await,
            Some(answer) = answered.recv() => connection.send(answer).await,
            item = outgoing.recv() => connection.outgoing(item).await,
            _ = ping.tick() => connection.ping(ping_interval).await,
        };
        match step {
            Step::Go => {}
            Step::Close(close) => break close,
            Step::Gone => return,
        }
    };
    connection.close(close).await;
}

impl Connection {
    async fn send(&mut self, text: Utf8Bytes) -> Step {
        self.write(Message::Text(text)).await
    }

    async fn write(&mut self, message: Message) -> Step {
        match tokio::time::timeout(self.patience, self.socket.send(message)).await {
            Ok(Ok(())) => Step::Go,
            Ok(Err(_)) | Err(_) => Step::Gone,
        }
    }

    /// The closing handshake: the close frame, then what the client still sends until its own
    /// close. Dropping the socket at once would answer those late frames (a pong, a request)
    /// with a reset, and a reset makes the client's system discard what it has not read yet:
    /// the error frame and the close that say why.
    async fn close(mut self, close: Close) {
        let frame = CloseFrame {
            code: close.code,
            reason: close.reason.into(),
        };
        if let Step::Go = self.write(Message::Close(Some(frame))).await {
            // Ends: the client's close or an error ends the stream, the patience the wait.
            let _ = tokio::time::timeout(self.patience, async {
                while let Some(Ok(_)) = self.socket.recv().await {}
            })
            .await;
        }
    }

    async fn overflowed(&mut self) -> Step {
        let problem = Problem::new(ProblemCode::LimitReached).with_detail(
            "this connection's buffer filled: the client reads too slowly; reconnect and \
             resume with last_id",
        );
        if let Step::Gone = self.send(frame::error(None, &problem).into()).await {
            return Step::Gone;
        }
        Step::Close(Close {
            code: close_code::POLICY,
            reason: "slow consumer",
        })
    }

    async fn incoming(&mut self, incoming: Option<Result<Message, axum::Error>>) -> Step {
        self.heard = Instant::now();
        let text = match incoming {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => {
                let problem = Problem::new(ProblemCode::InvalidBody)
                    .with_detail("frames are JSON text, not binary");
                return self.send(frame::error(None, &problem).into()).await;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => return Step::Go,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Step::Gone,
        };
        while self.waiting.try_join_next().is_some() {}
        let requests = Requests {
            permits: &self.permits,
            waiting: &mut self.waiting,
            answers: &self.answers,
        };
        let replies = handle(&mut self.session, &text, requests).await;
        for reply in replies {
            if let Step::Gone = self.send(reply).await {
                return Step::Gone;
            }
        }
        Step::Go
    }

    async fn outgoing(&mut self, item: Option<Outgoing>) -> Step {
        let Some(item) = item else {
            return Step::Gone;
        };
        let text = match item {
            Outgoing::Message(entry) => entry.frame().clone(),
            Outgoing::Frame(text) => {
                forget_ended(&mut self.session, &text);
                text
            }
        };
        if let Step::Gone = self.send(text).await {
            return Step::Gone;
        }
        let dropped = self.session.outbox().dropped();
        if dropped == self.dropped_told {
            return Step::Go;
        }
        self.dropped_told = dropped;
        let told = frame::reply_with("dropped", None, serde_json::json!({"dropped": dropped}));
        self.send(told.into()).await
    }

    async fn ping(&mut self, interval: std::time::Duration) -> Step {
        if self.heard.elapsed() > interval * 2 {
            return Step::Close(Close {
                code: close_code::AWAY,
                reason: "no answer to pings",
            });
        }
        self.write(Message::Ping(Default::default())).await
    }
}

/// A channel that ended (its topic deleted) sent `unsubscribed`: the session forgets the
/// subscription, so the name can be used again.
fn forget_ended(session: &mut Session, text: &str) {
    if !text.contains(r#""op":"unsubscribed""#) {
        return;
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        if let Some(sub) = value["sub"].as_str() {
            session.forget(sub);
        }
    }
}

/// Acts on one client frame; the frames to send back, in order.
/// What a request needs of its connection.
struct Requests<'a> {
    permits: &'a Arc<Semaphore>,
    waiting: &'a mut JoinSet<()>,
    answers: &'a mpsc::Sender<Utf8Bytes>,
}

async fn handle(session: &mut Session, text: &str, requests: Requests<'_>) -> Vec<Utf8Bytes> {
    let ClientFrame { reference, op } = match frame::parse(text) {
        Ok(frame) => frame,
        Err(refused) => {
            let error = frame::error(refused.reference.as_deref(), &refused.problem);
            return vec![error.into()];
        }
    };
    let reference = reference.as_deref();
    match act(session, reference, op, requests).await {
        Ok(frames) => frames,
        Err(problem) => vec![frame::error(reference, &problem).into()],
    }
}

async fn act(
    session: &mut Session,
    reference: Option<&str>,
    op: Op,
    requests: Requests<'_>,
) -> Result<Vec<Utf8Bytes>, Problem> {
    let answer = |op: &str, rest: serde_json::Value| -> Utf8Bytes {
        frame::reply_with(op, reference, rest).into()
    };
    Ok(match op {
        Op::Subscribe(subscribe) => subscribe_op(session, reference, subscribe)?,
        Op::Unsubscribe { sub } => {
            let topic = session.unsubscribe(&sub)?;
            vec![answer(
                "unsubscribed",
                serde_json::json!({"sub": sub, "topic": topic}),
            )]
        }
        Op::Publish(publish) => {
            let id = publish_op(session, publish).await?;
            vec![answer("published", serde_json::json!({"id": id}))]
        }
        Op::Join(join) => {
            let joined = session.join(&join.room, join.member)?;
            let rest = serde_json::json!({
                "room": join.room, "member": joined.member, "members": joined.members,
            });
            vec![answer("joined", rest)]
        }
        Op::Leave { room } => {
            session.leave(&room)?;
            vec![answer("left", serde_json::json!({"room": room}))]
        }
        Op::Members { room } => {
            let members = session.members(&room)?;
            vec![answer(
                "members",
                serde_json::json!({"room": room, "members": members}),
            )]
        }
        Op::Ping => vec![answer("pong", serde_json::json!({}))],
        Op::Request(request) => {
            request_in_background(session, reference, request, requests)?;
            Vec::new()
        }
        Op::Reply(reply) => {
            let message = reply.message.into_send_prefixed("")?;
            let engine = session.hub().engine();
            (engine
                .reply(&reply.reply_to, &reply.correlation_id, message)
                .await)
                .map_err(|error| engine_problem(error, MessagesAt::Top))?;
            // Answered only when asked (`ref`): a responder answering thousands of requests
            // needs no acknowledgement of each.
            match reference {
                Some(_) => vec![answer("replied", serde_json::json!({}))],
                None => Vec::new(),
            }
        }
    })
}

/// `subscribed`, then what the resume found: the missed messages, or a `gap`.
fn subscribe_op(
    session: &mut Session,
    reference: Option<&str>,
    subscribe: SubscribeOp,
) -> Result<Vec<Utf8Bytes>, Problem> {
    let sub = subscribe
        .sub
        .clone()
        .unwrap_or_else(|| subscribe.topic.clone());
    let catch_up = session.subscribe(SubscribeRequest {
        topic: &subscribe.topic,
        sub: &sub,
        pattern: &subscribe.pattern,
        syntax: subscribe.syntax,
        filter: subscribe.filter.as_deref(),
        last_id: subscribe.last_id.as_deref(),
        since_ms: None,
    })?;
    let topic = &subscribe.topic;
    let subscribed = serde_json::json!({"sub": sub, "topic": topic});
    let mut frames = vec![frame::reply_with("subscribed", reference, subscribed).into()];
    match catch_up {
        CatchUp::None => {}
        CatchUp::After(entries) => {
            frames.extend(entries.iter().map(|entry| entry.frame().clone()));
        }
        CatchUp::Gap => {
            let last_id = subscribe.last_id;
            let gap = serde_json::json!({"sub": sub, "topic": topic, "last_id": last_id});
            frames.push(frame::reply_with("gap", None, gap).into());
        }
    }
    Ok(frames)
}

/// Publishes one message; its id.
async fn publish_op(session: &Session, publish: PublishOp) -> Result<Option<String>, Problem> {
    session.authorize(Action::Write, &publish.topic)?;
    let message = publish.message.into_send_prefixed("")?;
    let batch = vec![PublishMessage {
        routing_key: publish.routing_key,
        message,
        retain: false,
    }];
    let engine = session.hub().engine();
    let published = (engine.publish(&publish.topic, batch).await)
        .map_err(|error| engine_problem(error, MessagesAt::Top))?;
    Ok(published.first().map(|p| p.id.clone()))
}

/// Starts a request whose reply (or error) is queued to `answers` when it comes.
fn request_in_background(
    session: &Session,
    reference: Option<&str>,
    request: RequestOp,
    requests: Requests<'_>,
) -> Result<(), Problem> {
    let timeout = crate::http::requests::timeout(request.timeout_ms)?;
    let target =
        crate::http::requests::request_target(request.queue, request.topic, request.routing_key)?;
    let engine = session.hub().engine().clone();
    let resource = crate::http::requests::target_resource(&target);
    engine.authorize(&session.principal, Action::Write, resource)?;
    let message = request.message.into_send_prefixed("")?;
    let Ok(permit) = requests.permits.clone().try_acquire_owned() else {
        let max = session.hub().settings.requests_max;
        return Err(Problem::new(ProblemCode::LimitReached).with_detail(format!(
            "at most {max} requests wait for replies on one connection (realtime.requests_max)"
        )));
    };
    let reference = reference.map(str::to_string);
    let answers = requests.answers.clone();
    requests.waiting.spawn(async move {
        let answer = match engine.request(target, message, timeout).await {
            Ok(reply) => frame::reply(reference.as_deref(), &reply),
            Err(EngineError::Timeout { waited_ms }) => {
                let problem = Problem::new(ProblemCode::Timeout)
                    .with_detail(format!("no reply within {waited_ms} ms"));
                frame::error(reference.as_deref(), &problem)
            }
            Err(error) => {
                let problem = engine_problem(error, MessagesAt::Top);
                frame::error(reference.as_deref(), &problem)
            }
        };
        // The connection may have ended meanwhile; then nobody waits for the answer.
        let _ = answers.send(answer.into()).await;
        drop(permit);
    });
    Ok(())
}
