//! The stream client commands (`wharf stream ...`, `produce`, `consume`), run as a user would:
//! the built binary against a real `wharf serve`.

// Helper modules shared with other test binaries; each binary uses a different part of them.
#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "serve/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "common/queue_client.rs"]
mod queue_client;

use common::{run_to_end, wharf};
use queue_client::Node;
use serde_json::{json, Value};
use std::{
    collections::BTreeSet,
    process::{ExitStatus, Stdio},
    time::Duration,
};

/// One client command against a local server: milliseconds normally; this stops a hung one.
const COMMAND_DEADLINE: Duration = Duration::from_secs(30);

fn run(node: &Node, args: &[&str], stdin: Option<&str>) -> (ExitStatus, String, String) {
    let mut command = wharf();
    command
        .arg("--server")
        .arg(format!("http://{}", node.address))
        .args(args);
    if let Some(input) = stdin {
        let path = node.dir.join("stdin.txt");
        std::fs::write(&path, input).expect("write stdin");
        command.stdin(Stdio::from(std::fs::File::open(&path).expect("open stdin")));
    }
    run_to_end(command, COMMAND_DEADLINE)
}

fn ok(node: &Node, args: &[&str], stdin: Option<&str>) -> String {
    let (status, stdout, stderr) = run(node, args, stdin);
    assert!(
        status.success(),
        "wharf {args:?} failed with {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[test]
fn streams_are_created_produced_to_and_consumed_from_the_command_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let created: Value = serde_json::from_str(&ok(
        &node,
        &["stream", "create", "events", "--partitions", "3"],
        None,
    ))
    .unwrap();
    assert_eq!(created["partitions"], 3);
    let one = lines(&ok(
        &node,
        &["produce", "events", "--key", "foobar", r#"{"n":0}"#],
        None,
    ));
    assert_eq!(
        one,
        vec![json!({"partition": 0, "offset": 0})],
        "murmur2(\"foobar\") % 3 is 0"
    );
    let input: String = (1..=600).map(|n| format!("{{\"n\":{n}}}\n")).collect();
    let produced = lines(&ok(&node, &["produce", "events", "-"], Some(&input)));
    assert_eq!(produced.len(), 600, "one line per record, over two batches");
    let listed = ok(&node, &["stream", "list"], None);
    assert!(
        listed.contains("events") && listed.contains("601"),
        "{listed}"
    );

    // A group reads everything once, then nothing: it committed what it printed.
    let consumed = lines(&ok(
        &node,
        &[
            "consume",
            "events",
            "--group",
            "g",
            "--from",
            "earliest",
            "--exit-at-end",
        ],
        None,
    ));
    let values: BTreeSet<u64> = consumed
        .iter()
        .map(|r| r["value"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(values, (0..=600).collect::<BTreeSet<u64>>());
    assert!(consumed
        .iter()
        .all(|r| r["partition"].as_u64().unwrap() < 3));
    let again = ok(
        &node,
        &[
            "consume",
            "events",
            "--group",
            "g",
            "--from",
            "earliest",
            "--exit-at-end",
        ],
        None,
    );
    assert_eq!(again, "", "the group's commits hold");
    ok(
        &node,
        &["produce", "events", "--key", "k", "plain text"],
        None,
    );
    let next = lines(&ok(
        &node,
        &["consume", "events", "--group", "g", "--exit-at-end"],
        None,
    ));
    assert_eq!(next.len(), 1);
    assert_eq!(
        next[0]["value_base64"], "cGxhaW4gdGV4dA==",
        "text that is not JSON keeps its bytes"
    );
    let group: Value =
        serde_json::from_str(&ok(&node, &["stream", "group", "events", "g"], None)).unwrap();
    assert_eq!(group["lag"], 0);
    assert_eq!(group["members"], json!([]), "the consumer left the group");

    // Without a group: one partition from an offset, bounded.
    let alone = lines(&ok(
        &node,
        &[
            "consume",
            "events",
            "--partition",
            "0",
            "--from",
            "0",
            "--max-records",
            "2",
        ],
        None,
    ));
    assert_eq!(alone.len(), 2);
    assert_eq!(
        (alone[0]["offset"].as_u64(), alone[0]["partition"].as_u64()),
        (Some(0), Some(0))
    );

    let described: Value =
        serde_json::from_str(&ok(&node, &["stream", "describe", "events"], None)).unwrap();
    assert_eq!(described["stats"]["records"], 602);
    let (status, _, stderr) = run(
        &node,
        &["stream", "create", "events", "--partitions", "2"],
        None,
    );
    assert!(!status.success());
    assert!(stderr.contains("never shrink"), "{stderr}");
    ok(&node, &["stream", "delete", "events"], None);
    let (status, _, stderr) = run(&node, &["stream", "describe", "events"], None);
    assert!(!status.success());
    assert!(stderr.contains("does not exist"), "{stderr}");
}
