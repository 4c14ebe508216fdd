//! Progress of long commands (`bench`, `queue purge`, `queue redrive`, `send --file`): a bar
//! when the total is known, a spinner otherwise, drawn on stderr.
//!
//! Drawn only when stderr is a terminal: in a pipe, a file or a test nothing is drawn, so what
//! a command prints there is exactly what it printed before progress existed. The bar is
//! cleared when the work ends, leaving the terminal as the command's own output left it.

use indicatif::{ProgressBar, ProgressStyle};
use std::{io::IsTerminal, time::Duration};

/// Redraws a second: often enough to look alive, rare enough to cost nothing next to the work.
const SPINNER_TICK: Duration = Duration::from_millis(100);

/// A bar or spinner on stderr, or nothing when stderr is not a terminal.
pub struct Progress(ProgressBar);

impl Progress {
    /// A bar counting up to `total` `unit`s ("messages"), labelled `label`.
    pub fn bar(label: &str, total: u64, unit: &str) -> Progress {
        let template = format!("{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{eta}})");
        Progress::styled_bar(label, total, &template)
    }

    /// A bar counting up to `total` bytes (of a file being read), labelled `label`.
    pub fn bytes_bar(label: &str, total: u64) -> Progress {
        let template = "{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})";
        Progress::styled_bar(label, total, template)
    }

    fn styled_bar(label: &str, total: u64, template: &str) -> Progress {
        let bar = visible(ProgressBar::new(total));
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_string());
        Progress(bar)
    }

    /// A spinner with `label`, for work of unknown length (one long request).
    pub fn spinner(label: &str) -> Progress {
        let spinner = visible(ProgressBar::new_spinner());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            spinner.set_style(style);
        }
        spinner.set_message(label.to_string());
        spinner.enable_steady_tick(SPINNER_TICK);
        Progress(spinner)
    }

    pub fn set(&self, position: u64) {
        self.0.set_position(position);
    }

    pub fn add(&self, units: u64) {
        self.0.inc(units);
    }

    /// Changes the label (a spinner counting what it has done so far).
    pub fn label(&self, label: String) {
        self.0.set_message(label);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// True when progress is drawn at all: stderr is a terminal.
pub fn shown() -> bool {
    std::io::stderr().is_terminal()
}

fn visible(bar: ProgressBar) -> ProgressBar {
    if shown() {
        bar
    } else {
        ProgressBar::hidden()
    }
}
