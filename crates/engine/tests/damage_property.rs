//! Damage in every kind of file of a data directory, by property test (issue 8): byte flips,
//! zero-filled ranges and truncations at random places of WAL segments (older and last), the
//! topic's small log, `meta/meta.journal` and `meta/meta.json`, then a restart over the real
//! file store.
//!
//! One data directory is built once through the engine (4 KiB segments, so the WAL spans
//! several) and kept in memory with a map of every unit its files hold: each log record (with
//! the queue and message it belongs to), each snapshot line, each journal frame (with the keys
//! it changes). Each case writes that directory afresh, damages it, restarts, and checks the
//! promise against the map, not against what the broker reports of itself:
//! - the store and the engine open;
//! - a queue none of whose units were touched is whole: exactly its unacked messages come
//!   back, and no damaged settlement is counted;
//! - a queue whose definition was not touched opens, every unacked message whose own record was
//!   not touched comes back, nothing it never held does, and an acked message comes back only
//!   when one of the queue's other records (an ack) was touched;
//! - a topic whose definition and log are untouched keeps its bindings;
//! - a loss that is not a torn tail is reported: the store's damaged-record metric for logs,
//!   [`MetaStore::damage`](wharf_storage::MetaStore::damage) for metadata. A torn tail is
//!   damage that reaches the end of a log's last segment or of the journal with nothing valid
//!   after it: it may be cut silently, with the rest of the atomic append it starts in (a send
//!   of 5 messages is one append), but nothing before that;
//! - the broker goes on: a message sent to every queue after the restart is there after the
//!   next one.
//!
//! A queue or topic whose definition was touched is only required not to stop the others; the
//! tests at the end check what the engine makes of the store's metadata damage report (a lost
//! definition listed as damaged, no resource id handed out twice).
//!
//! `PROPTEST_CASES=3000` runs a longer search (about 45 s in a debug build).

use bytes::Bytes;
use proptest::prelude::*;
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    ops::Range,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
    time::Duration,
};
use wharf_engine::{
    broker::{PublishMessage, ReceiveRequest, SendMessage},
    clock::ManualClock,
    queue::QueueOptions,
    topic::{BindingSpec, Destination, TopicOptions},
    Engine, EngineConfig,
};
use wharf_model::pattern::Syntax;
use wharf_storage::{
    FsyncPolicy, Log, LogConfig, Offset, StorageMetrics, Store, StoreConfig, RECORD_HEADER_BYTES,
};

const START: u64 = 1_800_000_000_000;
/// Small enough that the WAL spans several segments with a few hundred short messages.
const SEGMENT_BYTES: u64 = 4096;
const TOPIC: &str = "t";
const BODY_BYTES: usize = 90;

fn store_config() -> StoreConfig {
    StoreConfig {
        log: log_config(),
        small_log_segment_bytes: SEGMENT_BYTES,
        ..StoreConfig::default()
    }
}

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: SEGMENT_BYTES,
        // No zeroed space after the records (past the block the last one ends in): almost
        // every byte of a segment belongs to a record, so damage lands on data.
        preallocate: false,
        // Files are damaged after a clean close; real fsyncs would only slow the build.
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    }
}

async fn open(dir: &Path) -> (Engine, Arc<Store>) {
    let store = loop {
        match Store::open(dir, store_config()) {
            Ok(store) => break Arc::new(store),
            // The previous engine's last tasks may hold the directory for a moment.
            Err(wharf_storage::StorageError::Locked { .. }) => tokio::task::yield_now().await,
            Err(error) => panic!("the store opens after any damage: {error}"),
        }
    };
    let engine = Engine::open(
        store.clone(),
        ManualClock::new(START),
        EngineConfig::default(),
    )
    .await
    .expect("damage never stops the engine from opening");
    (engine, store)
}

async fn close(engine: Engine, store: Arc<Store>) {
    engine.close();
    store.close().await.unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A unique marker, padded: the marker is how a record is told to hold this message's body.
fn body(marker: &str) -> Bytes {
    let mut body = format!("<{marker}>").into_bytes();
    body.resize(BODY_BYTES, b'.');
    Bytes::from(body)
}

fn marker_of(body: &[u8]) -> String {
    let end = body.iter().position(|b| *b == b'>').unwrap();
    String::from_utf8(body[1..end].to_vec()).unwrap()
}

// ---- The data directory and its map ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    WalOlder,
    WalLast,
    TopicLog,
    Journal,
    Snapshot,
}

/// What one unit of a file (a record, a line, a frame) holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    /// The record that enqueued a message: (queue, marker).
    Message(String, String),
    /// Any other record of a queue (settlements, delivery counts).
    QueueRecord(String),
    /// A record of the topic's log (its bindings).
    TopicRecord,
    /// Metadata: the keys a snapshot line or journal frame holds or changes.
    Meta(Vec<String>),
    /// The snapshot's header line.
    Header,
}

#[derive(Debug, Clone)]
struct Unit {
    bytes: Range<usize>,
    owner: Owner,
    /// A log record whose atomic append goes on in the next record (the frame's continues
    /// flag); false for metadata.
    continues: bool,
}

#[derive(Debug, Clone)]
struct File {
    path: PathBuf,
    kind: Kind,
    bytes: Vec<u8>,
    units: Vec<Unit>,
}

#[derive(Debug)]
struct Pristine {
    files: Vec<File>,
    /// Every message each queue ever held, by marker, and those acked before the restart.
    sent: BTreeMap<String, BTreeSet<String>>,
    acked: BTreeMap<String, BTreeSet<String>>,
    bindings: usize,
}

fn pristine() -> &'static Pristine {
    static PRISTINE: OnceLock<Pristine> = OnceLock::new();
    PRISTINE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (sent, acked, resources) = runtime().block_on(build(dir.path()));
        let files = map_files(dir.path(), &resources);
        let pristine = Pristine {
            files,
            sent,
            acked,
            bindings: 2,
        };
        check_map(&pristine);
        pristine
    })
}

type Sent = BTreeMap<String, BTreeSet<String>>;

/// Queues a, b, c with messages, a topic bound to a, some acks; then a snapshot is forced;
/// then queue d, an option change (a journal frame), a second binding, more messages and acks.
/// Returns what was sent, what was acked, and each queue's resource id.
async fn build(dir: &Path) -> (Sent, Sent, BTreeMap<u64, String>) {
    let mut sent = Sent::new();
    let mut acked = Sent::new();
    let (engine, store) = open(dir).await;
    for queue in ["a", "b", "c"] {
        engine
            .put_queue(queue, QueueOptions::default())
            .await
            .unwrap();
    }
    engine
        .put_topic(TOPIC, TopicOptions::default())
        .await
        .unwrap();
    engine.bind(TOPIC, binding("k.#", "a")).await.unwrap();
    for queue in ["a", "b", "c"] {
        send(&engine, queue, 30, &mut sent).await;
    }
    publish(&engine, "p", 5, &["a"], &mut sent).await;
    for queue in ["a", "b", "c"] {
        ack(&engine, queue, 8, &mut acked).await;
    }
    close(engine, store).await;
    force_snapshot(dir);

    let (engine, store) = open(dir).await;
    engine
        .put_queue("d", QueueOptions::default())
        .await
        .unwrap();
    let options = QueueOptions {
        lease_ms: 60_000,
        ..QueueOptions::default()
    };
    engine.put_queue("c", options).await.unwrap();
    engine.bind(TOPIC, binding("k.*", "b")).await.unwrap();
    send(&engine, "d", 20, &mut sent).await;
    publish(&engine, "r", 5, &["a", "b"], &mut sent).await;
    ack(&engine, "d", 5, &mut acked).await;
    let resources = ["a", "b", "c", "d"]
        .into_iter()
        .map(|queue| {
            let key = format!("queue-resource/{queue}");
            let id = store.meta().get(&key).and_then(|v| v.as_u64()).unwrap();
            (id, queue.to_string())
        })
        .collect();
    close(engine, store).await;
    (sent, acked, resources)
}

fn binding(pattern: &str, queue: &str) -> BindingSpec {
    BindingSpec {
        pattern: pattern.into(),
        syntax: Syntax::Amqp,
        filter: None,
        headers: None,
        destination: Destination::Queue(queue.into()),
    }
}

async fn send(engine: &Engine, queue: &str, count: usize, sent: &mut Sent) {
    for batch in (0..count).collect::<Vec<_>>().chunks(5) {
        let messages = batch
            .iter()
            .map(|i| {
                let marker = format!("{queue}-{i:03}");
                sent.entry(queue.into()).or_default().insert(marker.clone());
                SendMessage {
                    body: body(&marker),
                    ..SendMessage::default()
                }
            })
            .collect();
        engine.send(queue, messages).await.unwrap();
    }
}

async fn publish(engine: &Engine, prefix: &str, count: usize, to: &[&str], sent: &mut Sent) {
    let messages = (0..count)
        .map(|i| {
            let marker = format!("{prefix}-{i:03}");
            for queue in to {
                let markers = sent.entry(queue.to_string()).or_default();
                markers.insert(marker.clone());
            }
            PublishMessage {
                routing_key: "k.x".into(),
                message: SendMessage {
                    body: body(&marker),
                    ..SendMessage::default()
                },
                retain: false,
            }
        })
        .collect();
    engine.publish(TOPIC, messages).await.unwrap();
}

async fn ack(engine: &Engine, queue: &str, count: usize, acked: &mut Sent) {
    let request = ReceiveRequest {
        max_messages: count,
        wait: Duration::ZERO,
        lease: None,
    };
    let got = engine.receive(queue, request).await.unwrap();
    assert_eq!(got.len(), count);
    let receipts: Vec<String> = got.iter().map(|d| d.receipt.clone()).collect();
    engine.ack(queue, &receipts).await.unwrap();
    for delivery in got {
        let marker = marker_of(&delivery.message.body);
        acked.entry(queue.into()).or_default().insert(marker);
    }
}

/// Makes the next open write a snapshot of every definition: a store folds its journal only
/// past 1 MiB, and a data directory from before snapshots were written at creation (a journal
/// with no marker, no `meta.json`) gets its snapshot when opened.
fn force_snapshot(dir: &Path) {
    let journal = dir.join("meta/meta.journal");
    let bytes = fs::read(&journal).unwrap();
    assert_eq!(
        &bytes[..4],
        2u32.to_le_bytes(),
        "the journal starts with its marker"
    );
    assert_eq!(&bytes[8..10], b"[]");
    fs::write(&journal, &bytes[10..]).unwrap();
    fs::remove_file(dir.join("meta/meta.json")).unwrap();
}

fn map_files(dir: &Path, resources: &BTreeMap<u64, String>) -> Vec<File> {
    let mut files = Vec::new();
    for log_name in ["wal", "wal-transient", "topic-t"] {
        files.extend(map_log(dir, log_name, resources));
    }
    let snapshot = PathBuf::from("meta/meta.json");
    let bytes = fs::read(dir.join(&snapshot)).unwrap();
    let units = map_snapshot(&bytes);
    files.push(File {
        path: snapshot,
        kind: Kind::Snapshot,
        bytes,
        units,
    });
    let journal = PathBuf::from("meta/meta.journal");
    let bytes = fs::read(dir.join(&journal)).unwrap();
    let units = map_journal(&bytes);
    files.push(File {
        path: journal,
        kind: Kind::Journal,
        bytes,
        units,
    });
    let mapped: BTreeSet<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
    for path in files_under(dir, Path::new("")) {
        // The lock holds a pid and the disk reserve only zeroes: no data to damage.
        let unmapped = [
            Path::new("lock"),
            Path::new(wharf_storage::RESERVE_FILE_NAME),
        ];
        // The audit log is a log like any other, its damage judged by wharf-storage's own
        // property test; its entries are not the broker's data judged here.
        let audit = path.starts_with("logs/audit");
        // So is the streams' log of committed offsets, empty here: no stream is made, and
        // streams' damage is judged by their own tests.
        let offsets = path.starts_with("logs/stream-offsets");
        // And the event store's logs, which every open creates: empty here (no event is
        // appended or snapshot saved), so none of the broker's data judged here is in them.
        let events = path.starts_with("logs/events") || path.starts_with("logs/event-snapshots");
        let known = mapped.contains(&path)
            || unmapped.contains(&path.as_path())
            || audit
            || offsets
            || events;
        assert!(known, "{path:?} is mapped, so that damage to it is judged");
    }
    files
}

fn files_under(root: &Path, relative: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(root.join(relative)).unwrap() {
        let path = relative.join(entry.unwrap().file_name());
        match root.join(&path).is_dir() {
            true => found.extend(files_under(root, &path)),
            false => found.push(path),
        }
    }
    found
}

/// Every record of the log `name` as a unit of its segment file: frames follow one another
/// from the start of each segment.
fn map_log(dir: &Path, name: &str, resources: &BTreeMap<u64, String>) -> Vec<File> {
    let log_dir = dir.join("logs").join(name);
    let metrics = Arc::new(StorageMetrics::default());
    let log = Log::open(&log_dir, log_config(), metrics).unwrap();
    assert!(log.damage().is_empty());
    let bases = log.segment_bases();
    let mut files = Vec::new();
    for (i, base) in bases.iter().enumerate() {
        let end = bases.get(i + 1).copied().unwrap_or(log.end_offset());
        let path = PathBuf::from("logs")
            .join(name)
            .join(format!("{:020}.log", base.0));
        let bytes = fs::read(dir.join(&path)).unwrap();
        let mut units = Vec::new();
        let mut at = 0;
        for offset in base.0..end.0 {
            let record = log.read(Offset(offset)).unwrap().unwrap();
            let len = RECORD_HEADER_BYTES + record.payload.len();
            let owner = record_owner(name, &record.payload, resources);
            // Bit 63 of the frame's offset field (see `wharf_storage`'s record.rs).
            let continues = bytes[at + 15] & 0x80 != 0;
            units.push(Unit {
                bytes: at..at + len,
                owner,
                continues,
            });
            at += len;
        }
        // Every commit writes whole blocks: zeroes follow the last record to a block boundary
        // (they read as the end, and belong to no record).
        let padding = &bytes[at.min(bytes.len())..];
        assert!(
            padding.len() < 4096 && padding.iter().all(|b| *b == 0),
            "{path:?}: records fill the segment, then zeroes to the next block"
        );
        let kind = match (name, i + 1 == bases.len()) {
            ("topic-t", _) => Kind::TopicLog,
            (_, true) => Kind::WalLast,
            (_, false) => Kind::WalOlder,
        };
        files.push(File {
            path,
            kind,
            bytes,
            units,
        });
    }
    runtime().block_on(log.close()).unwrap();
    files
}

/// A WAL record starts with `0x20, version, resource u64 LE` (see `broker/wal.rs`); an
/// enqueue record holds its message's body.
fn record_owner(log: &str, payload: &[u8], resources: &BTreeMap<u64, String>) -> Owner {
    if log == "topic-t" {
        return Owner::TopicRecord;
    }
    assert_eq!(payload[0], 0x20, "a WAL record");
    let resource = u64::from_le_bytes(payload[2..10].try_into().unwrap());
    let queue = resources[&resource].clone();
    match find_body(payload) {
        Some(marker) => Owner::Message(queue, marker),
        None => Owner::QueueRecord(queue),
    }
}

/// The marker of the message body held in `payload`, if any.
fn find_body(payload: &[u8]) -> Option<String> {
    (0..payload.len()).find_map(|at| {
        let window = payload.get(at..at + BODY_BYTES)?;
        let end = window.iter().position(|b| *b == b'>')?;
        let marker = std::str::from_utf8(window.get(1..end)?).ok()?;
        (window[..] == body(marker)[..]).then(|| marker.to_string())
    })
}

/// Snapshot lines (with their newline): the header, then one entry each, whose key is the
/// JSON string after the two checksums.
fn map_snapshot(bytes: &[u8]) -> Vec<Unit> {
    let mut units = Vec::new();
    let mut at = 0;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let owner = if at == 0 {
            Owner::Header
        } else {
            let mut keys = serde_json::Deserializer::from_slice(&line[18..]).into_iter::<String>();
            Owner::Meta(vec![keys.next().unwrap().unwrap()])
        };
        units.push(Unit {
            bytes: at..at + line.len(),
            owner,
            continues: false,
        });
        at += line.len();
    }
    units
}

/// Journal frames: `length u32 LE, crc u32 LE, JSON array of {"put": [key, value]} or
/// {"delete": key}`.
fn map_journal(bytes: &[u8]) -> Vec<Unit> {
    let mut units = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let ops: Vec<serde_json::Value> =
            serde_json::from_slice(&bytes[at + 8..at + 8 + len]).unwrap();
        let keys = ops
            .iter()
            .map(|op| match (&op["put"], &op["delete"]) {
                (serde_json::Value::Array(put), _) => put[0].as_str().unwrap().to_string(),
                (_, delete) => delete.as_str().unwrap().to_string(),
            })
            .collect();
        units.push(Unit {
            bytes: at..at + 8 + len,
            owner: Owner::Meta(keys),
            continues: false,
        });
        at += 8 + len;
    }
    units
}

/// The map is right before any damage is judged by it: every message sent has exactly one
/// enqueue record, and every kind of file is there to damage.
fn check_map(pristine: &Pristine) {
    let mut enqueued: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for unit in pristine.files.iter().flat_map(|f| &f.units) {
        if let Owner::Message(queue, marker) = &unit.owner {
            enqueued
                .entry(queue.clone())
                .or_default()
                .push(marker.clone());
        }
    }
    for (queue, markers) in &pristine.sent {
        let mut found = enqueued.remove(queue).unwrap_or_default();
        found.sort();
        let expected: Vec<String> = markers.iter().cloned().collect();
        assert_eq!(found, expected, "enqueue records of {queue}");
    }
    for file in &pristine.files {
        let last = file.units.last();
        assert!(
            !last.is_some_and(|u| u.continues),
            "appends stay in one segment"
        );
    }
    let multi_record_appends = (pristine.files.iter().flat_map(|f| &f.units)).any(|u| u.continues);
    assert!(
        multi_record_appends,
        "sends of 5 messages are single appends"
    );
    let kinds: BTreeSet<Kind> = pristine.files.iter().map(|f| f.kind).collect();
    assert_eq!(kinds.len(), 5, "every kind of file: {kinds:?}");
    let older = pristine.files.iter().filter(|f| f.kind == Kind::WalOlder);
    assert!(older.count() >= 3, "the WAL spans several segments");
}

// ---- Damage ----

/// A place in a file, as a fraction of its length, so that a failing case reads as one.
#[derive(Clone, Copy)]
struct Place(u32);

impl Place {
    const SCALE: u32 = 10_000;

    /// The byte at this place of a file of `len` bytes (`len` > 0).
    fn index(self, len: usize) -> usize {
        len * self.0 as usize / Self::SCALE as usize
    }
}

impl std::fmt::Debug for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:02}%", self.0 / 100, self.0 % 100)
    }
}

#[derive(Debug, Clone)]
enum Harm {
    Flip { at: Place, count: usize },
    Truncate { at: Place },
    Zero { at: Place, len: usize },
}

/// `harm` in the `file`-th file (modulo their number) of `kind`, in file name order.
#[derive(Debug, Clone)]
struct Damage {
    kind: Kind,
    file: usize,
    harm: Harm,
}

fn damage_strategy() -> impl Strategy<Value = Damage> {
    let kind = prop_oneof![
        Just(Kind::WalOlder),
        Just(Kind::WalLast),
        Just(Kind::TopicLog),
        Just(Kind::Journal),
        Just(Kind::Snapshot),
    ];
    let place = (0..Place::SCALE).prop_map(Place);
    let harm = prop_oneof![
        (place.clone(), 1..9usize).prop_map(|(at, count)| Harm::Flip { at, count }),
        place.clone().prop_map(|at| Harm::Truncate { at }),
        (place, 1..300usize).prop_map(|(at, len)| Harm::Zero { at, len }),
    ];
    (kind, 0..8usize, harm).prop_map(|(kind, file, harm)| Damage { kind, file, harm })
}

/// Applies `harm` and returns the positions of the bytes it changed (truncation: every byte
/// from the cut on).
fn apply(harm: &Harm, bytes: &mut Vec<u8>) -> Vec<usize> {
    let before = bytes.clone();
    match harm {
        Harm::Flip { at, count } => {
            let at = at.index(bytes.len());
            let end = (at + count).min(bytes.len());
            bytes[at..end].iter_mut().for_each(|b| *b ^= 0xa5);
        }
        Harm::Truncate { at } => {
            let at = at.index(bytes.len());
            bytes.truncate(at);
            return (at..before.len()).collect();
        }
        Harm::Zero { at, len } => {
            let at = at.index(bytes.len());
            let end = (at + len).min(bytes.len());
            bytes[at..end].fill(0);
        }
    }
    (0..bytes.len())
        .filter(|i| bytes[*i] != before[*i])
        .collect()
}

/// What the damage of one case touched, so may cost: the units whose bytes it changed, and
/// the rest of the append a torn tail starts in.
#[derive(Debug, Default)]
struct Touched {
    /// Enqueue records touched: (queue, marker).
    messages: BTreeSet<(String, String)>,
    /// Queues with another record touched.
    queue_records: BTreeSet<String>,
    /// Queues and topics whose definition was touched.
    definitions: BTreeSet<String>,
    topic_log: bool,
    /// The WAL, or the topic's log, lost records in a way that is not a torn tail.
    wal_loss: bool,
    topic_log_loss: bool,
    /// Metadata lost in a way that is not a torn journal tail.
    meta_loss: bool,
}

impl Touched {
    fn queue(&self, queue: &str) -> bool {
        self.definitions.contains(queue)
            || self.queue_records.contains(queue)
            || self.messages.iter().any(|(q, _)| q == queue)
    }
}

/// Writes the pristine directory into `dir` with `damage` applied; returns what it touched.
fn write_damaged(dir: &Path, pristine: &Pristine, damage: &[Damage]) -> Touched {
    let mut files = pristine.files.clone();
    let mut changed: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for one in damage {
        let candidates: Vec<usize> = (0..files.len())
            .filter(|i| files[*i].kind == one.kind && !files[*i].bytes.is_empty())
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let i = candidates[one.file % candidates.len()];
        changed
            .entry(i)
            .or_default()
            .extend(apply(&one.harm, &mut files[i].bytes));
    }
    for file in &files {
        let path = dir.join(&file.path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, &file.bytes).unwrap();
    }
    fs::create_dir_all(dir.join("logs/wal-transient")).unwrap();
    let mut touched = Touched::default();
    for (i, mut positions) in changed {
        let len = pristine.files[i].bytes.len();
        if files[i].kind == Kind::Snapshot && files[i].bytes.len() < len {
            // The snapshot's last newline, cut off, costs nothing: the line before it is whole.
            positions.remove(&(len - 1));
        }
        touch_file(&files[i], &positions, &mut touched);
    }
    touched
}

fn touch_file(file: &File, positions: &BTreeSet<usize>, touched: &mut Touched) {
    let hit: Vec<bool> = (file.units.iter())
        .map(|u| positions.range(u.bytes.clone()).next().is_some())
        .collect();
    // The trailing run of touched units: nothing valid follows them in the file.
    let trailing = hit.iter().rposition(|h| !h).map_or(0, |i| i + 1);
    // From there, recovery may drop the whole append the run starts in: at the end of a log's
    // last segment (or of the journal) that is a torn tail, cut without a report.
    let torn_tail_possible = matches!(file.kind, Kind::WalLast | Kind::Journal)
        || (file.kind == Kind::TopicLog && is_last_topic_segment(file));
    let mut cut_from = trailing;
    while torn_tail_possible
        && cut_from > 0
        && cut_from < hit.len()
        && file.units[cut_from - 1].continues
    {
        cut_from -= 1;
    }
    let loss_outside_a_torn_tail = hit[..trailing].iter().any(|h| *h);
    let reported = loss_outside_a_torn_tail || (trailing < hit.len() && !torn_tail_possible);
    match file.kind {
        Kind::Journal | Kind::Snapshot => touched.meta_loss |= reported,
        Kind::TopicLog => touched.topic_log_loss |= reported,
        Kind::WalOlder | Kind::WalLast => touched.wal_loss |= reported,
    }
    let may_be_lost = (0..hit.len()).filter(|i| hit[*i] || *i >= cut_from);
    for unit in may_be_lost.map(|i| &file.units[i]) {
        match &unit.owner {
            Owner::Message(queue, marker) => {
                touched.messages.insert((queue.clone(), marker.clone()));
            }
            Owner::QueueRecord(queue) => {
                touched.queue_records.insert(queue.clone());
            }
            Owner::TopicRecord => touched.topic_log = true,
            Owner::Meta(keys) => touched.definitions.extend(keys.iter().filter_map(|key| {
                let (kind, name) = key.split_once('/')?;
                ["queue", "queue-resource", "topic"]
                    .contains(&kind)
                    .then(|| name.to_string())
            })),
            Owner::Header => {}
        }
    }
}

fn is_last_topic_segment(file: &File) -> bool {
    let last = (pristine().files.iter())
        .filter(|f| f.kind == Kind::TopicLog)
        .map(|f| &f.path)
        .max();
    last == Some(&file.path)
}

// ---- After the restart ----

/// Receives everything ready in `queue`; each marker once.
async fn drain(engine: &Engine, queue: &str) -> Result<BTreeSet<String>, TestCaseError> {
    let request = ReceiveRequest {
        max_messages: 100,
        wait: Duration::ZERO,
        lease: None,
    };
    let mut markers = BTreeSet::new();
    for _ in 0..100 {
        let got = engine.receive(queue, request.clone()).await.unwrap();
        if got.is_empty() {
            return Ok(markers);
        }
        for delivery in got {
            let marker = marker_of(&delivery.message.body);
            prop_assert!(markers.insert(marker.clone()), "{} delivered twice", marker);
        }
    }
    Err(TestCaseError::fail(format!("{queue} never drained")))
}

async fn check_queue(
    engine: &Engine,
    pristine: &Pristine,
    touched: &Touched,
    queue: &str,
) -> Result<(), TestCaseError> {
    if touched.definitions.contains(queue) {
        return Ok(());
    }
    let info = engine.queue_info(queue);
    prop_assert!(
        info.is_ok(),
        "{} has its definition but did not open",
        queue
    );
    let received = drain(engine, queue).await?;
    let sent = &pristine.sent[queue];
    let acked = pristine.acked.get(queue).cloned().unwrap_or_default();
    let unacked: BTreeSet<String> = sent.difference(&acked).cloned().collect();
    if !touched.queue(queue) {
        prop_assert_eq!(&received, &unacked, "untouched queue {} is whole", queue);
        let damaged = engine.queue_info(queue).unwrap().stats.counters.damaged;
        prop_assert_eq!(damaged, 0);
        return Ok(());
    }
    for marker in &received {
        prop_assert!(
            sent.contains(marker),
            "{} got {} it never held",
            queue,
            marker
        );
        if acked.contains(marker) {
            prop_assert!(
                touched.queue_records.contains(queue),
                "acked {} of {} came back with none of its other records touched",
                marker,
                queue
            );
        }
    }
    for marker in &unacked {
        let own_record_touched = touched.messages.contains(&(queue.into(), marker.clone()));
        prop_assert!(
            own_record_touched || received.contains(marker),
            "{} of {} lost, its record untouched",
            marker,
            queue
        );
    }
    Ok(())
}

async fn check_restart(
    dir: &Path,
    pristine: &Pristine,
    touched: &Touched,
) -> Result<(), TestCaseError> {
    let (engine, store) = open(dir).await;
    for queue in ["a", "b", "c", "d"] {
        check_queue(&engine, pristine, touched, queue).await?;
    }
    if !touched.definitions.contains(TOPIC) && !touched.topic_log {
        let bindings = engine.list_bindings(TOPIC).map(|b| b.len());
        prop_assert_eq!(
            bindings.ok(),
            Some(pristine.bindings),
            "the topic's bindings"
        );
    }
    let corrupt_records = store.metrics().corrupt_records.get();
    // A topic whose definition is lost is not opened, so neither is its log.
    let topic_log_opened = !touched.definitions.contains(TOPIC);
    if touched.wal_loss || (touched.topic_log_loss && topic_log_opened) {
        prop_assert!(corrupt_records > 0, "lost records are reported");
    }
    if touched.meta_loss {
        prop_assert!(
            !store.meta().damage().is_empty(),
            "lost metadata is reported"
        );
    }
    check_goes_on(dir, engine, store).await
}

/// The broker goes on after damage: a message sent to each queue that opened is there after
/// one more restart, with the damage still in the files before it.
async fn check_goes_on(dir: &Path, engine: Engine, store: Arc<Store>) -> Result<(), TestCaseError> {
    let opened: Vec<String> = engine.list_queues().into_iter().map(|q| q.name).collect();
    for queue in &opened {
        let message = SendMessage {
            body: body(&format!("after-{queue}")),
            ..SendMessage::default()
        };
        engine.send(queue, vec![message]).await.unwrap();
    }
    close(engine, store).await;
    let (engine, store) = open(dir).await;
    for queue in &opened {
        let received = drain(&engine, queue).await?;
        let after = format!("after-{queue}");
        prop_assert!(
            received.contains(&after),
            "{} kept {}: {:?}",
            queue,
            after,
            received
        );
    }
    close(engine, store).await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(32),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any damage at any place of any kind of file costs only what it touched, and a loss that
    /// is not a torn tail is reported (see the module header for the promise checked).
    #[test]
    fn damage_in_any_file_costs_only_what_it_touched(
        damage in proptest::collection::vec(damage_strategy(), 1..=3),
    ) {
        let pristine = pristine();
        let dir = tempfile::tempdir().unwrap();
        let touched = write_damaged(dir.path(), pristine, &damage);
        runtime().block_on(check_restart(dir.path(), pristine, &touched))?;
    }
}

// ---- Known gaps, pinned (run with `--ignored`) ----
//
// The store reports a damaged snapshot entry by key (`MetaStore::damage`), but the engine
// does not read that report yet: these tests state what it should do, and fail today.

/// Queues a and b with 5 messages each, their definitions in the snapshot (not the journal).
async fn two_queues_in_a_snapshot(dir: &Path) {
    let mut sent = Sent::new();
    let (engine, store) = open(dir).await;
    for queue in ["a", "b"] {
        engine
            .put_queue(queue, QueueOptions::default())
            .await
            .unwrap();
        send(&engine, queue, 5, &mut sent).await;
    }
    close(engine, store).await;
    force_snapshot(dir);
    let (engine, store) = open(dir).await;
    close(engine, store).await;
}

/// Flips the last byte of the value in the snapshot line of `key`.
fn damage_snapshot_entry(dir: &Path, key: &str) {
    let path = dir.join("meta/meta.json");
    let mut bytes = fs::read(&path).unwrap();
    let quoted = format!("\"{key}\" ");
    let at = (bytes.windows(quoted.len()))
        .position(|w| w == quoted.as_bytes())
        .expect("the key's line");
    let end = at + bytes[at..].iter().position(|b| *b == b'\n').unwrap();
    bytes[end - 1] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

fn ready(engine: &Engine, queue: &str) -> Option<u64> {
    engine.queue_info(queue).ok().map(|info| info.stats.ready)
}

/// Without its resource id, queue b must not be taken for a queue from before the shared WAL
/// and "migrated" empty under a new id: it is listed as damaged and stays closed, and its 5
/// messages stay in the WAL, which reclaim keeps whole while metadata is damaged.
#[tokio::test]
async fn a_queue_whose_resource_entry_is_damaged_is_listed_as_damaged_not_opened_empty() {
    let dir = tempfile::tempdir().unwrap();
    two_queues_in_a_snapshot(dir.path()).await;
    damage_snapshot_entry(dir.path(), "queue-resource/b");
    let (engine, store) = open(dir.path()).await;
    let lost: Vec<String> = store
        .meta()
        .damage()
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert!(lost[0].contains("queue-resource/b"), "{lost:?}");
    assert_eq!(ready(&engine, "a"), Some(5));
    let named =
        (engine.damaged_definitions().iter()).any(|e| e.to_string().contains("queue-resource/b"));
    assert!(named, "{:?}", engine.damaged_definitions());
    assert_eq!(
        ready(&engine, "b"),
        None,
        "b stays closed, not opened empty"
    );
}

/// A lost definition entry whose key is still readable names its queue in the engine's
/// damaged definitions (and so in `GET /v1/queues`), not only in the store's report.
#[tokio::test]
async fn a_queue_whose_definition_entry_is_damaged_is_listed_as_damaged() {
    let dir = tempfile::tempdir().unwrap();
    two_queues_in_a_snapshot(dir.path()).await;
    damage_snapshot_entry(dir.path(), "queue/b");
    let (engine, store) = open(dir.path()).await;
    assert_eq!(store.meta().damage().len(), 1);
    assert_eq!(ready(&engine, "a"), Some(5));
    let damaged = engine.damaged_definitions();
    assert!(
        damaged.iter().any(|e| e.to_string().contains('b')),
        "queue b is listed as damaged: {damaged:?}"
    );
}

/// With the counter of resource ids lost, the next queue created must not share an id in use
/// (the counter would restart at 1): ids start above every id named in metadata or the WAL.
#[tokio::test]
async fn a_damaged_resource_counter_never_hands_out_an_id_in_use() {
    let dir = tempfile::tempdir().unwrap();
    two_queues_in_a_snapshot(dir.path()).await;
    damage_snapshot_entry(dir.path(), "resource/next");
    let (engine, store) = open(dir.path()).await;
    assert_eq!(store.meta().damage().len(), 1);
    engine
        .put_queue("e", QueueOptions::default())
        .await
        .unwrap();
    send(&engine, "e", 1, &mut Sent::new()).await;
    close(engine, store).await;
    let (engine, _store) = open(dir.path()).await;
    let found: Vec<Option<u64>> = ["a", "b", "e"].map(|q| ready(&engine, q)).to_vec();
    assert_eq!(found, [Some(5), Some(5), Some(1)]);
}
