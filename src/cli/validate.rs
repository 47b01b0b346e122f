//! `ksinstall validate`: ksvalidator for ESXi kickstarts.

use super::Format;
use std::io::Write;
use std::path::PathBuf;

use ksinstall::exit::Outcome;
use ksinstall::kickstart::{self, Severity};

/// Check kickstart files the way ESXi 8's installer reads them, and explain every problem.
///
/// Exit status: 0 no error (warnings allowed), 2 at least one error (or warning with --strict),
/// 1 usage or I/O failure. Notes (what `install` will also check on the host) never fail.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Treat warnings as errors.
    #[arg(long)]
    strict: bool,
    /// Output: one diagnostic per line, or JSON with the diagnostics and the parsed kickstart.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Where absolute `%include` paths are looked up (the installer's `/`).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// Kickstart files to check.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::Success;
    let mut reports = Vec::new();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for file in &a.files {
        let mut parsed = match kickstart::parse_file(file, &a.root) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("ksinstall: cannot read {}: {e}", file.display());
                outcome = Outcome::UsageOrIo;
                continue;
            }
        };
        parsed.add_host_notes();
        let count = |s: Severity| {
            parsed
                .diagnostics
                .iter()
                .filter(|d| d.severity == s)
                .count()
        };
        let (errors, warnings, notes) = (
            count(Severity::Error),
            count(Severity::Warning),
            count(Severity::Note),
        );
        let failed = errors > 0 || (a.strict && warnings > 0);
        if failed && outcome == Outcome::Success {
            outcome = Outcome::InvalidKickstart;
        }
        match a.format {
            Format::Text => {
                for d in &parsed.diagnostics {
                    writeln!(out, "{d}")?;
                }
                let notes = match notes {
                    0 => String::new(),
                    1 => ", 1 note".into(),
                    n => format!(", {n} notes"),
                };
                eprintln!(
                    "{}: {} ({errors} error{}, {warnings} warning{}{notes})",
                    file.display(),
                    if failed { "invalid" } else { "valid" },
                    if errors == 1 { "" } else { "s" },
                    if warnings == 1 { "" } else { "s" }
                );
            }
            Format::Json => reports.push(serde_json::json!({
                "file": file.display().to_string(),
                "valid": !failed,
                "errors": errors,
                "warnings": warnings,
                "notes": notes,
                "files_read": parsed.files,
                "diagnostics": parsed.diagnostics,
                "kickstart": if errors == 0 { serde_json::to_value(&parsed.kickstart)? } else { serde_json::Value::Null },
            })),
        }
    }
    if a.format == Format::Json {
        serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "files": reports }))?;
        writeln!(out)?;
    }
    Ok(outcome)
}
