//! `ksinstall plan`: the plan from a host document (`install --save-host`) and a kickstart, on
//! any machine. Reads the two files and nothing else: no sysroot, no media, no DPU, no `%pre`.

use super::Format;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ksinstall::exit::Outcome;
use ksinstall::plan;

/// Make the plan for a recorded host: what `install --dry-run` would print on that machine.
/// Exits as install does: 2 for a kickstart error, 3/4/8 for a refusal (the plan's own class).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The host document `ksinstall install --save-host FILE` wrote.
    #[arg(long, value_name = "FILE")]
    host: PathBuf,
    /// The kickstart (its `%include` files are read relative to the current directory; `%pre`
    /// does not run).
    #[arg(long, value_name = "FILE")]
    ks: PathBuf,
    /// Refuse what would otherwise be a warning about the installed host.
    #[arg(long)]
    strict: bool,
    /// Output for people (text) or machines (json: one document that reads back as a plan).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let text = std::fs::read_to_string(&a.host)
        .with_context(|| format!("reading {}", a.host.display()))?;
    let host = plan::Host::from_json(&text).with_context(|| a.host.display().to_string())?;
    let parsed = ksinstall::kickstart::parse_file(&a.ks, Path::new("/"))
        .with_context(|| format!("reading {}", a.ks.display()))?;
    for d in &parsed.diagnostics {
        eprintln!("{d}");
    }
    if parsed.diagnostics.iter().any(|d| d.is_error()) {
        return Ok(Outcome::InvalidKickstart);
    }
    let name = a.ks.display().to_string();
    let mut inputs = plan::Inputs::new(&host, &name, &parsed.kickstart);
    inputs.strict = a.strict || parsed.kickstart.paranoid.is_some();
    let made = match plan::make(&inputs) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ksinstall: {}", e.message);
            return Ok(e.outcome);
        }
    };
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&made)?),
        Format::Text => print!("{}", made.text()),
    }
    Ok(Outcome::Success)
}
