//! `wharf-peerbench mqtt idle`: many idle persistent sessions against any MQTT broker (no
//! client library; see [`crate::mqtt_idle`]). Pub/sub and fan-out with rumqttc are
//! `wharf bench mqtt`, which drives Wharf's door and, given `--port`, Mosquitto.

use crate::mqtt_idle;
use anyhow::Context;
use clap::{Args, Subcommand};

#[derive(Debug, Args, Clone)]
pub struct MqttArgs {
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Debug, Subcommand, Clone)]
enum Workload {
    /// Many idle clients with persistent sessions: set-up rate, broker RSS per session, CPU
    /// while idle, sessions present on reconnect.
    Idle(mqtt_idle::IdleArgs),
}

pub fn mqtt(args: &MqttArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match &args.workload {
        Workload::Idle(args) => mqtt_idle::idle(&runtime, args),
    }
}
