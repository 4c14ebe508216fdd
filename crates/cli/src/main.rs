//! The `wharf` command: `wharf serve` runs the broker, client subcommands (`queue`, `send`,
//! `receive`, `ack`, `nack`, `lease`, `topic`, `bind`, `publish`, `subscribe`, `request`,
//! `scatter`, `reply`, `user`, `token`, `whoami`, `audit`, `connection`) talk to a running one, `wharf bench`
//! measures this machine, `wharf check` verifies a stopped server's data and
//! `wharf completions` prints a shell's completion script.

mod bench;
mod check;
mod client;
mod completions;
mod progress;

use anyhow::Context;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::{net::SocketAddr, path::PathBuf, process::ExitCode};
use wharf_server::{serve, shutdown_signal, telemetry, Listen, ServeConfig};

#[derive(Debug, Parser)]
#[command(name = "wharf", version, about = "Wharf message broker")]
struct Cli {
    /// Base URL of the server that client commands talk to.
    #[arg(
        long,
        global = true,
        env = "WHARF_SERVER",
        default_value = "http://127.0.0.1:7700"
    )]
    server: String,

    #[command(flatten)]
    credentials: client::credentials::CredentialArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker until SIGINT or SIGTERM.
    Serve(ServeArgs),
    #[command(flatten)]
    Client(client::ClientCommand),
    /// Measure this machine and Wharf on it.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Verify every record of a stopped server's data directory; exits 1 when any is damaged.
    Check(check::CheckArgs),
    /// Print a shell completion script (bash, zsh or fish) on standard output.
    Completions(completions::CompletionsArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// TOML configuration file; without one every setting has its default.
    #[arg(long, env = "WHARF_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (overrides `data_dir` in the file).
    #[arg(long, env = "WHARF_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// HTTP listen address, e.g. 127.0.0.1:7700 (overrides `http_addr` in the file).
    #[arg(long, env = "WHARF_HTTP_ADDR", value_name = "ADDR")]
    http_addr: Option<SocketAddr>,
    /// AMQP 0-9-1 listen address, or `off` (overrides `amqp_addr` in the file; default
    /// 127.0.0.1:5672).
    #[arg(long, env = "WHARF_AMQP_ADDR", value_name = "ADDR|off")]
    amqp_addr: Option<Listen>,
    /// AMQP over TLS listen address, or `off` (overrides `amqps_addr`; default 127.0.0.1:5671
    /// when TLS is set).
    #[arg(long, env = "WHARF_AMQPS_ADDR", value_name = "ADDR|off")]
    amqps_addr: Option<Listen>,
    /// MQTT 3.1.1 and 5.0 listen address, or `off` (overrides `mqtt_addr` in the file; default
    /// 127.0.0.1:1883).
    #[arg(long, env = "WHARF_MQTT_ADDR", value_name = "ADDR|off")]
    mqtt_addr: Option<Listen>,
    /// MQTT over TLS listen address, or `off` (overrides `mqtts_addr`; default 127.0.0.1:8883
    /// when TLS is set).
    #[arg(long, env = "WHARF_MQTTS_ADDR", value_name = "ADDR|off")]
    mqtts_addr: Option<Listen>,
    /// Make this string the administrator token (overrides `security.admin_token`); at least
    /// 16 bytes. Prefer the environment variable: flags show in process lists.
    #[arg(
        long,
        env = "WHARF_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
    /// Serve with no users on a non-loopback address: anyone who reaches the port may do
    /// anything.
    #[arg(long)]
    allow_anonymous: bool,
    /// Let webhook endpoints receive at private, loopback, link-local and cloud metadata
    /// addresses (overrides `webhooks.allow_private`); refused by default.
    #[arg(long, env = "WHARF_WEBHOOKS_ALLOW_PRIVATE")]
    webhooks_allow_private: bool,
    /// PEM certificate chain to serve HTTPS with (overrides `tls.cert`); needs --tls-key.
    /// Reloaded with the key on SIGHUP.
    #[arg(long, env = "WHARF_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (overrides `tls.key`).
    #[arg(long, env = "WHARF_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// PEM CA certificates: clients must present a certificate signed by one (overrides
    /// `tls.client_ca`).
    #[arg(long, env = "WHARF_TLS_CLIENT_CA", value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
}

/// mimalloc instead of glibc's malloc: per-thread free lists without arena lock waits. The
/// engine allocates per message and per destination (records, deliveries, JSON), and glibc's
/// malloc measured a third of the server's CPU in a fan-out to 100 queues (1,300 publishes/s
/// against 2,100). Built without transparent huge pages (`no_thp`): with them the server's
/// peak RSS doubled on the queue benchmark (113 MiB against 57).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let result = match cli.command {
        Command::Serve(args) => run_serve(args),
        Command::Client(command) => resolve_target(&cli.credentials, &cli.server, &matches)
            .and_then(|target| {
                let client = client::Client::new(&target.server, target.authorization);
                client::run(command, &client).map_err(Into::into)
            }),
        Command::Bench(command) => {
            resolve_target(&cli.credentials, &cli.server, &matches).and_then(|target| {
                // `wharf bench` starts its own server unless --server or WHARF_SERVER named
                // one; the credentials go only to a server the user named.
                let server = target.server_named.then_some(bench::Remote {
                    url: &target.server,
                    authorization: target.authorization.as_ref(),
                });
                bench::run(command, server).map_err(anyhow::Error::from)
            })
        }
        Command::Check(args) => match check::run(&args) {
            Ok(checked) if !checked.is_clean() => return ExitCode::from(1),
            Ok(_) => Ok(()),
            Err(error) => Err(error),
        },
        Command::Completions(args) => completions::run(&args, &mut Cli::command())
            .context("cannot write the completion script"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = ServeConfig::load(args.config.as_deref())?;
    if let Some(data_dir) = args.data_dir {
        config.data_dir = data_dir;
    }
    if let Some(http_addr) = args.http_addr {
        config.http_addr = http_addr;
    }
    if let Some(amqp_addr) = args.amqp_addr {
        config.amqp_addr = amqp_addr;
    }
    if let Some(amqps_addr) = args.amqps_addr {
        config.amqps_addr = Some(amqps_addr);
    }
    if let Some(mqtt_addr) = args.mqtt_addr {
        config.mqtt_addr = mqtt_addr;
    }
    if let Some(mqtts_addr) = args.mqtts_addr {
        config.mqtts_addr = Some(mqtts_addr);
    }
    if let Some(token) = args.admin_token {
        config.security.admin_token = Some(token);
    }
    config.security.allow_anonymous |= args.allow_anonymous;
    config.webhooks.allow_private |= args.webhooks_allow_private;
    config.validate(args.config.as_deref())?;
    if let Some(cert) = args.tls_cert {
        config.tls.cert = Some(cert);
    }
    if let Some(key) = args.tls_key {
        config.tls.key = Some(key);
    }
    if let Some(client_ca) = args.tls_client_ca {
        config.tls.client_ca = Some(client_ca);
    }
    let telemetry = telemetry::init(&config.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        serve(config, shutdown).await
    });
    telemetry.shutdown();
    served?;
    Ok(())
}

/// The server and credentials of a client or bench command; a bad client file is an error
/// only for these, never for `serve` or `check`.
fn resolve_target(
    credentials: &client::credentials::CredentialArgs,
    server: &str,
    matches: &clap::ArgMatches,
) -> anyhow::Result<client::credentials::Target> {
    Ok(client::credentials::resolve(credentials, server, matches)?)
}

/// The error and its causes on one line. Our error types already print their source, so a
/// cause whose text is part of the message so far is not repeated.
fn describe(error: &anyhow::Error) -> String {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        // Clap checks duplicate ids and conflicting settings only when a command is built;
        // this builds every subcommand, not only the ones a test happens to run.
        Cli::command().debug_assert();
    }
}
