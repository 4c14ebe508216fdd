//! Every example in `docs/` that shows a command and its output is run against a real server,
//! so the docs cannot drift from what Wharf does.
//!
//! The convention (also in README.md, "Examples in the docs"):
//! - Every ```console block of a page in `docs/` is an example, and a block that shows a
//!   shell session (`$ ` lines) must be one. A `$ ` line is a command; the lines right below
//!   it that are indented by four spaces continue it; the lines after it, up to the next `$ `,
//!   are what it prints (stdout and stderr together, as on a terminal).
//! - The blocks of a page run in page order in one `bash`, against one fresh `wharf serve` for
//!   the page, so state carries from block to block as it does for a reader following the
//!   page: an example must create the queues and topics it uses, earlier on the page.
//! - The shell has `B` (the server's base URL), `J` (`content-type: application/json`),
//!   `WHARF_SERVER` (= `B`), and the built `wharf` first on `PATH`; `http://127.0.0.1:7700` in
//!   a command or output means the test server, and `127.0.0.1:7701` to `127.0.0.1:7703` are
//!   free addresses for servers a page starts itself (in the background; the test ends every
//!   process of the page's shell when the page is done). [`PAGES`] gives some pages a server
//!   configuration and variables of their own (an administrator token, CORS origins).
//! - A command with output shown must print that output (compared by the rules of
//!   `docs_examples/pattern.rs`: JSON as JSON with `...` for elided parts, times and generated
//!   ids matching any of their shape); its exit status is not checked, so an error can be
//!   shown. A command with no output shown must print nothing and exit 0.
//! - A block that cannot run here (a second machine, a server in the foreground, a damaged
//!   data directory) has `<!-- norun: REASON -->` on the line above its fence. The test counts
//!   and prints these, so skipping stays visible.
//!
//! The examples call `curl`, `jq` and `openssl`; the test installs those missing (apt-get).
//!
//! Run with `cargo test -p wharf-cli --test docs_examples -- --nocapture` to see the counts.

// Helper modules shared with other test binaries; each binary uses a different part of them.
#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "serve/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "common/queue_client.rs"]
mod queue_client;

#[path = "docs_examples/markdown.rs"]
mod markdown;
#[path = "docs_examples/pattern.rs"]
mod pattern;
#[path = "docs_examples/shell.rs"]
mod shell;

use pattern::Bindings;
use queue_client::Node;
use std::{path::PathBuf, time::Duration};

/// One command against a local server on a debug build of a busy two-core machine: seconds
/// at most; this stops a hung example (a subscriber left in the foreground).
const COMMAND_DEADLINE: Duration = Duration::from_secs(30);

/// Addresses a page may use for servers of its own, each replaced by a free one.
const SPARE_ADDRESSES: [&str; 3] = ["127.0.0.1:7701", "127.0.0.1:7702", "127.0.0.1:7703"];

/// The administrator token of the security page's server (`WHARF_ADMIN_TOKEN` in its shell).
const ADMIN_TOKEN: &str = "docs-example-admin-token-0123456789";

/// A page with examples and what its server and shell need beyond the defaults.
struct Page {
    name: &'static str,
    /// The server's configuration file (TOML).
    config: &'static str,
    /// Set in the shell from the start.
    variables: &'static [(&'static str, &'static str)],
    /// Exported when the test passes the page's first norun block: that block starts the
    /// page's server by hand (`export WHARF_ADMIN_TOKEN=...; wharf serve`), and these say
    /// what the test's server was started with in its place.
    exported_at_server_start: &'static [(&'static str, &'static str)],
}

const PAGES: &[Page] = &[
    Page {
        name: "queues.md",
        config: "",
        variables: &[],
        exported_at_server_start: &[],
    },
    Page {
        name: "topics.md",
        config: "",
        variables: &[],
        exported_at_server_start: &[],
    },
    Page {
        name: "streams.md",
        config: "",
        variables: &[],
        exported_at_server_start: &[],
    },
    Page {
        name: "eventstore.md",
        config: "",
        variables: &[],
        exported_at_server_start: &[],
    },
    Page {
        name: "filters.md",
        config: "",
        variables: &[],
        exported_at_server_start: &[],
    },
    Page {
        name: "security.md",
        config: "[security]\nadmin_token = \"docs-example-admin-token-0123456789\"\n",
        variables: &[],
        exported_at_server_start: &[("WHARF_ADMIN_TOKEN", ADMIN_TOKEN)],
    },
    Page {
        name: "security-cli.md",
        config: "[security]\nadmin_token = \"docs-example-admin-token-0123456789\"\n",
        variables: &[
            ("ADMIN_TOKEN", ADMIN_TOKEN),
            ("ALICE_PASSWORD", "correct horse battery"),
        ],
        exported_at_server_start: &[],
    },
    Page {
        name: "security-tls.md",
        config: "",
        variables: &[],
        exported_at_server_start: &[],
    },
    Page {
        name: "browser-security.md",
        config: "[http]\ncors_origins = [\"https://app.example\"]\n",
        variables: &[],
        exported_at_server_start: &[],
    },
    Page {
        name: "webhooks.md",
        config: "[webhooks]\nallow_private = true\nretry_schedule_ms = [0]\n",
        variables: &[],
        exported_at_server_start: &[],
    },
    Page {
        name: "realtime.md",
        config: "[realtime]\ntoken_secret = \"docs-example-realtime-token-secret-0123\"\n",
        variables: &[],
        exported_at_server_start: &[],
    },
    Page {
        name: "operations.md",
        config: "",
        variables: &[],
        exported_at_server_start: &[],
    },
];

#[test]
fn queues_md() {
    run_page("queues.md");
}

#[test]
fn topics_md() {
    run_page("topics.md");
}

#[test]
fn streams_md() {
    run_page("streams.md");
}

#[test]
fn eventstore_md() {
    run_page("eventstore.md");
}

#[test]
fn filters_md() {
    run_page("filters.md");
}

#[test]
fn security_md() {
    run_page("security.md");
}

#[test]
fn security_cli_md() {
    run_page("security-cli.md");
}

#[test]
fn security_tls_md() {
    run_page("security-tls.md");
}

#[test]
fn browser_security_md() {
    run_page("browser-security.md");
}

#[test]
fn webhooks_md() {
    run_page("webhooks.md");
}

#[test]
fn realtime_md() {
    run_page("realtime.md");
}

#[test]
fn operations_md() {
    run_page("operations.md");
}

/// A page whose examples no test runs would drift unseen.
#[test]
fn every_page_with_examples_is_run() {
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(docs_dir()).expect("read docs/") {
        let path = entry.expect("docs/ entry").path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !markdown::blocks(&text).is_empty() && !PAGES.iter().any(|page| page.name == name) {
            missing.push(name.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "pages with ```console examples not in PAGES: {missing:?}"
    );
}

/// A shell session (`$ ` lines) in a ```sh or ```text block would escape the test.
#[test]
fn every_shell_session_is_a_console_block() {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(docs_dir()).expect("read docs/") {
        let path = entry.expect("docs/ entry").path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        for line in markdown::sessions_outside_console(&text) {
            found.push(format!("docs/{name}:{line}"));
        }
    }
    assert!(
        found.is_empty(),
        "blocks with `$ ` lines that are not ```console (make them ```console, run or norun): {found:?}"
    );
}

/// The tools the examples call besides `wharf`, as Debian packages of the same name.
const TOOLS: [&str; 3] = ["curl", "jq", "openssl"];

/// Installs any of [`TOOLS`] the machine lacks (CI runs as root on Debian), once per run.
fn install_missing_tools() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let missing: Vec<&str> = TOOLS
            .into_iter()
            .filter(|tool| {
                let found = std::process::Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .output();
                !found.is_ok_and(|output| output.status.success())
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        let script = format!(
            "apt-get update -qq && apt-get install -y -qq --no-install-recommends {}",
            missing.join(" ")
        );
        let status = std::process::Command::new("sh")
            .args(["-c", &script])
            .status();
        assert!(
            status.is_ok_and(|status| status.success()),
            "the docs examples need {missing:?}, and installing them failed; install them"
        );
    });
}

fn docs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

/// What running one page found.
#[derive(Default)]
struct Report {
    blocks_run: usize,
    commands_run: usize,
    norun: Vec<String>,
    failures: Vec<String>,
}

fn run_page(name: &str) {
    install_missing_tools();
    let page = PAGES
        .iter()
        .find(|page| page.name == name)
        .expect("the page is in PAGES");
    let text = std::fs::read_to_string(docs_dir().join(name)).expect("read the page");
    let server_dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start_configured(server_dir.path(), page.config);
    let work_dir = tempfile::tempdir().expect("temp dir");
    let base = format!("http://{}", node.address);
    let mut variables = vec![
        ("B", base.clone()),
        ("J", "content-type: application/json".to_string()),
        ("WHARF_SERVER", base.clone()),
    ];
    variables.extend(page.variables.iter().map(|(k, v)| (*k, v.to_string())));
    let mut shell = shell::Shell::start(work_dir.path(), &variables);
    let report = run_blocks(page, &text, &base, &mut shell);
    println!(
        "docs/{name}: {} blocks run ({} commands), {} marked norun{}",
        report.blocks_run,
        report.commands_run,
        report.norun.len(),
        report
            .norun
            .iter()
            .map(|reason| format!("\n  norun {reason}"))
            .collect::<String>()
    );
    assert!(
        report.failures.is_empty(),
        "{} of the examples in docs/{name} do not print what the page shows:\n\n{}",
        report.failures.len(),
        report.failures.join("\n\n")
    );
}

fn run_blocks(page: &Page, text: &str, base: &str, shell: &mut shell::Shell) -> Report {
    let name = page.name;
    let mut report = Report::default();
    let mut bindings = Bindings::default();
    let spare = process::free_addresses(SPARE_ADDRESSES.len());
    let local = |text: &str, bindings: &Bindings| {
        let mut text = bindings.apply(text).replace("http://127.0.0.1:7700", base);
        for (shown, address) in SPARE_ADDRESSES.iter().zip(&spare) {
            text = text.replace(shown, &address.to_string());
        }
        text
    };
    for block in markdown::blocks(text) {
        if let Some(reason) = &block.norun {
            report
                .norun
                .push(format!("docs/{name}:{}: {reason}", block.line));
            if report.norun.len() == 1 {
                for (variable, value) in page.exported_at_server_start {
                    let export = format!("export {variable}='{value}'");
                    if let Err(problem) = shell.run(&export, COMMAND_DEADLINE) {
                        report.failures.push(problem);
                        return report;
                    }
                }
            }
            continue;
        }
        report.blocks_run += 1;
        for step in &block.steps {
            let command = local(&step.command, &bindings);
            report.commands_run += 1;
            let ran = match shell.run(&command, COMMAND_DEADLINE) {
                Ok(ran) => ran,
                Err(problem) => {
                    report.failures.push(format!(
                        "docs/{name}:{}: $ {command}\n{problem}\n(the rest of the page was not run)",
                        step.line
                    ));
                    return report;
                }
            };
            let verdict = match &step.output {
                None if ran.status == 0 && ran.output.trim().is_empty() => Ok(()),
                None => Err(format!(
                    "exit status {} and output with no output shown (show what it prints)",
                    ran.status
                )),
                Some(shown) => {
                    pattern::compare(&local(shown, &bindings), &ran.output, &mut bindings)
                }
            };
            if let Err(problem) = verdict {
                report.failures.push(format!(
                    "docs/{name}:{}: $ {command}\n--- the page shows:\n{}\n--- it printed:\n{}\n--- {problem}",
                    step.line,
                    step.output.as_deref().unwrap_or("").trim_end(),
                    ran.output.trim_end()
                ));
            }
        }
    }
    report
}
