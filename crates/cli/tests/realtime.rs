//! Real-time delivery against the built `wharf` binary, with a real WebSocket client
//! (tokio-tungstenite) and a raw event-stream reader: subscribe, publish both ways, resume
//! after a reconnect, rooms and presence, request-reply over the socket, bad frames, browser
//! tokens, and a slow client that does not hold up a fast one.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "serve/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "common/queue_client.rs"]
mod queue_client;
#[allow(dead_code)]
#[path = "common/sse.rs"]
mod sse;

use futures_util::{SinkExt, StreamExt};
use queue_client::Node;
use serde_json::{json, Value};
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    tungstenite::{self, Message},
    MaybeTlsStream, WebSocketStream,
};

/// How long a test waits for a frame that should come at once.
const DEADLINE: Duration = Duration::from_secs(10);

struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    async fn connect(address: SocketAddr, query: &str) -> Ws {
        Ws::try_connect(address, query).await.expect("the upgrade")
    }

    async fn try_connect(address: SocketAddr, query: &str) -> Result<Ws, tungstenite::Error> {
        let url = format!("ws://{address}/v1/ws{query}");
        let (stream, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Ws { stream })
    }

    async fn send(&mut self, frame: Value) {
        let text = frame.to_string();
        self.stream.send(Message::text(text)).await.expect("send");
    }

    /// The next JSON frame; pings are skipped.
    async fn next(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(DEADLINE, self.stream.next())
                .await
                .expect("a frame in time")
                .expect("the socket is open")
                .expect("a good frame");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON text"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// Sends `frame` and returns the next frame.
    async fn ask(&mut self, frame: Value) -> Value {
        self.send(frame).await;
        self.next().await
    }
}

fn topic(node: &Node, name: &str) {
    node.client()
        .expect(201, "PUT", &format!("/v1/topics/{name}"), &json!({}));
}

fn publish(node: &Node, topic: &str, key: &str, body: Value) -> String {
    let batch = json!({"messages": [{"routing_key": key, "body": body}]});
    let published =
        node.client()
            .expect(201, "POST", &format!("/v1/topics/{topic}/publish"), &batch);
    published["messages"][0]["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_clients_subscribe_publish_resume_and_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    topic(&node, "chat");
    let mut alice = Ws::connect(node.address, "").await;
    let subscribed = alice
        .ask(json!({"op": "subscribe", "topic": "chat", "pattern": "room.*", "ref": "s1"}))
        .await;
    assert_eq!(
        subscribed,
        json!({"op": "subscribed", "ref": "s1", "sub": "chat", "topic": "chat"})
    );
    // Over HTTP in, over the socket out, with the contract fields.
    let id = publish(&node, "chat", "room.1", json!({"text": "hi"}));
    publish(&node, "chat", "lobby", json!({"text": "not for room.*"}));
    let message = alice.next().await;
    assert_eq!(message["op"], "message");
    assert_eq!(message["topic"], "chat");
    assert_eq!(message["routing_key"], "room.1");
    assert_eq!(message["id"], id.as_str());
    assert_eq!(message["body"], json!({"text": "hi"}));
    assert!(message["headers"].is_object());
    // Over the socket in: a binary body arrives as base64.
    let mut bob = Ws::connect(node.address, "").await;
    let published = bob
        .ask(
            json!({"op": "publish", "topic": "chat", "routing_key": "room.2",
                    "body_base64": "AAEC", "ref": "p1"}),
        )
        .await;
    assert_eq!(published["op"], "published");
    assert_eq!(published["ref"], "p1");
    let binary = alice.next().await;
    assert_eq!(
        (binary["body_base64"].as_str(), binary["id"].clone()),
        (Some("AAEC"), published["id"].clone())
    );

    // Alice goes away; two messages later she comes back with the last id she saw.
    let last_seen = binary["id"].as_str().unwrap().to_string();
    drop(alice);
    let missed: Vec<String> = (0..2)
        .map(|n| publish(&node, "chat", "room.3", json!({"n": n})))
        .collect();
    let mut alice = Ws::connect(node.address, "").await;
    let resumed = alice
        .ask(json!({"op": "subscribe", "topic": "chat", "pattern": "room.*", "last_id": last_seen}))
        .await;
    assert_eq!(resumed["op"], "subscribed");
    for id in &missed {
        assert_eq!(alice.next().await["id"], id.as_str());
    }
    let gap = alice
        .ask(json!({"op": "subscribe", "topic": "chat", "sub": "old", "last_id": "long-gone"}))
        .await;
    assert_eq!(gap["op"], "subscribed");
    let gap = alice.next().await;
    assert_eq!(
        (gap["op"].as_str(), gap["sub"].as_str()),
        (Some("gap"), Some("old"))
    );

    // Bad input: an error frame naming the problem, and the connection stays usable.
    let errors = [
        (json!("not an object"), "one JSON object"),
        (json!({"op": "dance", "ref": "d"}), "unknown op `dance`"),
        (json!({"op": "subscribe", "topic": "nope"}), "nope"),
        (
            json!({"op": "subscribe", "topic": "chat", "pattern": "a.#.#.b.[", "syntax": "mqtt"}),
            "pattern",
        ),
        (
            json!({"op": "publish", "topic": "chat", "body": 1, "body_base64": "AA=="}),
            "not both",
        ),
        (json!({"op": "unsubscribe", "sub": "never"}), "never"),
        (json!({"op": "leave", "room": "chat"}), "not in room"),
    ];
    for (frame, expected) in errors {
        let answer = bob.ask(frame.clone()).await;
        assert_eq!(answer["op"], "error", "{frame}: {answer}");
        let detail = answer["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(expected), "{frame}: {answer}");
        assert!(answer["status"].as_u64().unwrap() >= 400, "{answer}");
    }
    bob.stream
        .send(Message::binary(vec![1, 2, 3]))
        .await
        .unwrap();
    assert!(bob.next().await["detail"]
        .as_str()
        .unwrap()
        .contains("not binary"));
    assert_eq!(
        bob.ask(json!({"op": "ping", "ref": "x"})).await,
        json!({"op": "pong", "ref": "x"})
    );
    // Not an upgrade: a problem, not a hang.
    let plain = node
        .client()
        .try_call("GET", "/v1/ws", &Value::Null)
        .unwrap();
    assert_eq!(plain.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_announce_presence_and_carry_requests_and_replies() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    topic(&node, "lobby");
    topic(&node, "rpc");
    let mut alice = Ws::connect(node.address, "").await;
    let mut bob = Ws::connect(node.address, "").await;
    let joined = alice
        .ask(json!({"op": "join", "room": "lobby", "member": "alice"}))
        .await;
    assert_eq!(joined["members"], json!(["alice"]));
    assert_eq!(alice.next().await["event"], "join");
    let joined = bob
        .ask(json!({"op": "join", "room": "lobby", "member": "bob"}))
        .await;
    assert_eq!(joined["members"], json!(["alice", "bob"]));
    let presence = alice.next().await;
    assert_eq!(
        presence,
        json!({"op": "presence", "room": "lobby", "event": "join", "member": "bob"})
    );
    assert_eq!(bob.next().await["member"], "bob");
    let members = alice
        .ask(json!({"op": "members", "room": "lobby", "ref": "m"}))
        .await;
    assert_eq!(members["members"], json!(["alice", "bob"]));
    drop(bob);
    let left = alice.next().await;
    assert_eq!(
        (left["event"].as_str(), left["member"].as_str()),
        (Some("leave"), Some("bob"))
    );

    // Request-reply: a responder on one socket, requesters on another and over HTTP.
    let mut responder = Ws::connect(node.address, "").await;
    responder
        .ask(json!({"op": "subscribe", "topic": "rpc"}))
        .await;
    let answering = tokio::spawn(async move {
        for _ in 0..2 {
            let request = responder.next().await;
            let n = request["body"]["n"].as_i64().unwrap();
            responder
                .send(json!({"op": "reply", "reply_to": request["reply_to"],
                             "correlation_id": request["correlation_id"], "body": {"double": n * 2}}))
                .await;
        }
        responder
    });
    alice
        .send(
            json!({"op": "request", "topic": "rpc", "routing_key": "double",
                     "body": {"n": 21}, "timeout_ms": 5000, "ref": "r1"}),
        )
        .await;
    let reply = alice.next().await;
    assert_eq!(
        (reply["op"].as_str(), reply["ref"].as_str()),
        (Some("reply"), Some("r1"))
    );
    assert_eq!(reply["body"], json!({"double": 42}));
    let address = node.address;
    let over_http = tokio::task::spawn_blocking(move || {
        let client = queue_client::Client::new(address);
        let request = json!({"topic": "rpc", "body": {"n": 5}, "timeout_ms": 5000});
        client.expect(200, "POST", "/v1/request", &request)
    })
    .await
    .unwrap();
    assert_eq!(over_http["reply"]["body"], json!({"double": 10}));
    answering.await.unwrap();
    // Nobody answers: a timeout error frame with the request's ref.
    let nobody = alice
        .ask(json!({"op": "request", "queue": "nobody-here", "body": {}, "timeout_ms": 50, "ref": "r2"}))
        .await;
    assert_eq!(
        (nobody["op"].as_str(), nobody["ref"].as_str()),
        (Some("error"), Some("r2"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_follow_several_topics_and_resume_with_last_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    topic(&node, "chat");
    topic(&node, "news");
    let address = node.address;
    let path = "/v1/sse?topics=chat,news";
    let mut stream =
        tokio::task::spawn_blocking(move || sse::EventStream::open(address, path, None))
            .await
            .unwrap();
    let first = publish(&node, "chat", "a", json!({"n": 1}));
    let second = publish(&node, "news", "b", json!({"n": 2}));
    let (stream, events) = tokio::task::spawn_blocking(move || {
        let events = [stream.next_event(), stream.next_event()];
        (stream, events)
    })
    .await
    .unwrap();
    drop(stream);
    assert_eq!(events[0].id, first);
    assert_eq!(
        (events[1].name.as_str(), events[1].id.as_str()),
        ("message", second.as_str())
    );
    assert_eq!(events[1].data["topic"], "news");
    assert_eq!(events[1].data["body"], json!({"n": 2}));
    // Gone after the first event; three more while away, on both topics.
    let missed = [
        publish(&node, "news", "c", json!({"n": 3})),
        publish(&node, "chat", "d", json!({"n": 4})),
        publish(&node, "news", "e", json!({"n": 5})),
    ];
    let resumed = tokio::task::spawn_blocking(move || {
        let mut stream = sse::EventStream::open(address, path, Some(&first));
        (0..4).map(|_| stream.next_event().id).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    // The second message again (it followed the last seen one), then the three missed.
    assert_eq!(
        resumed,
        [
            second.clone(),
            missed[0].clone(),
            missed[1].clone(),
            missed[2].clone()
        ]
    );
    let gap = tokio::task::spawn_blocking(move || {
        let mut stream = sse::EventStream::open(address, "/v1/sse?topics=chat", Some("unknown-id"));
        stream.next_event()
    })
    .await
    .unwrap();
    assert_eq!(
        (gap.name.as_str(), gap.data["topic"].as_str()),
        ("gap", Some("chat"))
    );
    let refused = node
        .client()
        .try_call("GET", "/v1/sse?topics=nope", &Value::Null)
        .unwrap();
    assert_eq!(refused.status, 404);
    let refused = node
        .client()
        .try_call("GET", "/v1/sse?topics=", &Value::Null)
        .unwrap();
    assert_eq!(refused.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_disconnected_while_a_fast_one_gets_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_configured(dir.path(), "[realtime]\nbuffer_messages = 1024\n");
    topic(&node, "ticks");
    let mut fast = Ws::connect(node.address, "").await;
    let mut slow = Ws::connect(node.address, "").await;
    let mut counted = Ws::connect(node.address, "?slow=drop").await;
    for client in [&mut fast, &mut slow, &mut counted] {
        client
            .ask(json!({"op": "subscribe", "topic": "ticks"}))
            .await;
    }
    // 16 MiB in 1 KiB messages: more than the socket buffers of a client that never reads.
    const MESSAGES: usize = 16_384;
    const BATCH: usize = 256;
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let reading = tokio::spawn(async move {
        while counter.load(Ordering::Acquire) < MESSAGES {
            if fast.next().await["op"] == "message" {
                counter.fetch_add(1, Ordering::AcqRel);
            }
        }
    });
    let address = node.address;
    let filler = "x".repeat(1_000);
    tokio::task::spawn_blocking(move || {
        let client = queue_client::Client::new(address);
        for batch in 0..MESSAGES / BATCH {
            // The fast client keeps up by construction (it is never more than a batch, a
            // quarter of its buffer, behind), whatever the machine's speed.
            let deadline = std::time::Instant::now() + DEADLINE;
            while received.load(Ordering::Acquire) < batch * BATCH {
                assert!(std::time::Instant::now() < deadline, "the fast client stalled");
                std::thread::sleep(Duration::from_millis(1));
            }
            let messages: Vec<Value> = (0..BATCH)
                .map(|n| json!({"routing_key": "t", "body": {"n": batch * BATCH + n, "pad": filler}}))
                .collect();
            client.expect(201, "POST", "/v1/topics/ticks/publish", &json!({"messages": messages}));
        }
    })
    .await
    .unwrap();
    tokio::time::timeout(DEADLINE, reading)
        .await
        .expect("the fast client got everything")
        .unwrap();
    // The slow client, reading at last, finds what it was told, then the close.
    let mut told = None;
    let closed = loop {
        match tokio::time::timeout(DEADLINE, slow.stream.next())
            .await
            .expect("frames in time")
        {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if frame["op"] == "error" {
                    told = Some(frame);
                }
            }
            Some(Ok(Message::Close(close))) => break close,
            Some(Ok(_)) => {}
            other => panic!("the server should close with a reason: {other:?}"),
        }
    };
    let told = told.expect("an error frame before the close");
    assert!(
        told["detail"]
            .as_str()
            .unwrap()
            .contains("reads too slowly"),
        "{told}"
    );
    let closed = closed.expect("a close frame");
    assert_eq!(
        (u16::from(closed.code), closed.reason.as_str()),
        (1008, "slow consumer")
    );
    // Under `slow=drop` the connection stays and is told how many it missed.
    let mut dropped = None;
    while dropped.is_none() {
        let frame = counted.next().await;
        if frame["op"] == "dropped" {
            dropped = frame["dropped"].as_u64();
        }
    }
    assert!(dropped.unwrap() > 0);
    let text = process::get(node.address, "/metrics").unwrap().body;
    assert!(
        text.contains("wharf_realtime_slow_disconnects_total 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_after_two_ping_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_configured(
        dir.path(),
        "[realtime]\nbuffer_messages = 64\nping_interval_ms = 300\n",
    );
    topic(&node, "ticks");
    // A small receive buffer fixed by the client (no autotuning), as over a slow network.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(node.address).await.unwrap();
    let url = format!("ws://{}/v1/ws", node.address);
    let (stream, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
        .await
        .unwrap();
    let mut stuck = Ws { stream };
    stuck
        .ask(json!({"op": "subscribe", "topic": "ticks"}))
        .await;
    assert_eq!(connections(&node), 1);
    // 40 MiB in batches smaller than the outbox, so that it fills only once the socket's
    // buffers have (a burst would overflow it first, and that close fits in the buffers). The
    // writes then wait; without a bound on that wait, nothing else of the connection's ran
    // again (not its pings, not the overflow) until the HTTP idle timeout, a minute later.
    let filler = "x".repeat(8_000);
    let messages: Vec<Value> = (0..32)
        .map(|n| json!({"routing_key": "t", "body": {"n": n, "pad": filler}}))
        .collect();
    for _ in 0..160 {
        node.client().expect(
            201,
            "POST",
            "/v1/topics/ticks/publish",
            &json!({"messages": messages}),
        );
    }
    let deadline = std::time::Instant::now() + DEADLINE;
    while connections(&node) != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the stuck connection stayed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(stuck);
}

fn connections(node: &Node) -> u64 {
    let text = process::get(node.address, "/metrics").unwrap().body;
    text.lines()
        .find_map(|line| line.strip_prefix("wharf_realtime_connections "))
        .expect("the connections gauge")
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_tokens_open_only_the_channels_they_name() {
    const ADMIN: &str = "realtime-test-administrator-token";
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[security]\nadmin_token = \"{ADMIN}\"\n\n\
         [realtime]\ntoken_secret = \"0123456789abcdef0123456789abcdef-test\"\n"
    );
    let node = Node::start_configured(dir.path(), &config);
    let admin = node.client().authorized(&format!("Bearer {ADMIN}"));
    for name in ["chat", "billing"] {
        admin.expect(201, "PUT", &format!("/v1/topics/{name}"), &json!({}));
    }
    let minted = admin.expect(
        201,
        "POST",
        "/v1/realtime/tokens",
        &json!({"channels": ["chat"], "member": "page-1", "ttl_s": 600}),
    );
    let token = minted["token"].as_str().unwrap();
    let refused = Ws::try_connect(node.address, "").await;
    assert!(matches!(refused, Err(tungstenite::Error::Http(r)) if r.status() == 401));
    let refused = Ws::try_connect(node.address, "?access_token=forged.token.here").await;
    assert!(matches!(refused, Err(tungstenite::Error::Http(r)) if r.status() == 401));
    let mut page = Ws::connect(node.address, &format!("?access_token={token}")).await;
    let allowed = page.ask(json!({"op": "subscribe", "topic": "chat"})).await;
    assert_eq!(allowed["op"], "subscribed");
    let denied = page
        .ask(json!({"op": "subscribe", "topic": "billing"}))
        .await;
    assert_eq!(
        (denied["op"].as_str(), denied["status"].as_u64()),
        (Some("error"), Some(403))
    );
    let denied = page
        .ask(json!({"op": "publish", "topic": "chat", "body": {}}))
        .await;
    assert_eq!(denied["status"], 403, "a token without publish only reads");
    let spoofed = page
        .ask(json!({"op": "join", "room": "chat", "member": "admin"}))
        .await;
    assert_eq!(
        (spoofed["status"].as_u64(), spoofed["field"].as_str()),
        (Some(403), Some("member")),
        "a page joins under its token's member name only"
    );
    let joined = page.ask(json!({"op": "join", "room": "chat"})).await;
    assert_eq!(joined["member"], "page-1");
    // The token works for event streams too, and nowhere else.
    let path = format!("/v1/sse?topics=chat&access_token={token}");
    let address = node.address;
    let mut stream =
        tokio::task::spawn_blocking(move || sse::EventStream::open(address, &path, None))
            .await
            .unwrap();
    let id = {
        let batch = json!({"messages": [{"routing_key": "k", "body": {"n": 1}}]});
        admin.expect(201, "POST", "/v1/topics/chat/publish", &batch)["messages"][0]["id"].clone()
    };
    let event = tokio::task::spawn_blocking(move || stream.next_event())
        .await
        .unwrap();
    assert_eq!(event.id, id.as_str().unwrap());
    let elsewhere = node
        .client()
        .try_call(
            "GET",
            &format!("/v1/topics?access_token={token}"),
            &Value::Null,
        )
        .unwrap();
    assert_eq!(elsewhere.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_sockets_as_going_away_and_the_server_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path());
    topic(&node, "chat");
    let mut client = Ws::connect(node.address, "").await;
    client
        .ask(json!({"op": "subscribe", "topic": "chat"}))
        .await;
    node.server.signal(libc::SIGTERM);
    let closed = loop {
        let frame = tokio::time::timeout(DEADLINE, client.stream.next())
            .await
            .expect("a close in time");
        match frame {
            Some(Ok(Message::Close(close))) => break close.expect("a close frame"),
            Some(Ok(_)) => continue,
            other => panic!("the server should close the socket first: {other:?}"),
        }
    };
    assert_eq!(u16::from(closed.code), 1001, "going away");
    let status = tokio::task::spawn_blocking(move || node.server.wait_exit(DEADLINE))
        .await
        .unwrap();
    assert!(status.success(), "{status}");
}
