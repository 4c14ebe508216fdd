//! `wharf completions bash|zsh|fish`: print a shell completion script on stdout.
//!
//! The script is generated from the same clap definition the parser uses, so every subcommand
//! and flag of this build is in it and none that it lacks. Install it where the shell looks:
//! see docs/operations.md.

use clap::{Args, ValueEnum};
use std::io::{self, Write};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write the script for.
    shell: Shell,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Writes the script for `wharf`'s full command line, `command`, to stdout.
pub fn run(args: &CompletionsArgs, command: &mut clap::Command) -> io::Result<()> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let name = command.get_name().to_string();
    // Into memory first: clap_complete panics when its writer fails (`wharf completions bash |
    // head` closes the pipe early), and a write error here must be an error line instead.
    let mut script = Vec::new();
    clap_complete::generate(shell, command, name, &mut script);
    let mut stdout = io::stdout().lock();
    stdout.write_all(&script).and_then(|()| stdout.flush())
}
