//! Command-line interface: one file per subcommand, each turning its arguments into a stage call.

use clap::{Parser, Subcommand};
use ksinstall::exit::Outcome;

mod install;
pub mod interactive;
mod probe;
mod validate;

/// An installer for ESXi hosts that carry a DPU (vSphere 8 Distributed Services Engine).
#[derive(Debug, Parser)]
#[command(name = "ksinstall", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Validate(validate::Args),
    Probe(probe::Args),
    Install(install::Args),
    Interactive(interactive::Args),
}

impl Cli {
    /// Whether the command takes the whole screen, where log lines on stderr would garble it.
    pub fn is_full_screen(&self) -> bool {
        matches!(self.command, Command::Interactive(_))
    }
}

pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Validate(a) => validate::run(a),
        Command::Probe(a) => probe::run(a),
        Command::Install(a) => install::run(a),
        Command::Interactive(a) => interactive::run(a),
    }
}
