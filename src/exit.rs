//! Process exit codes, one per failure class, documented in README.md.
//!
//! Fleet tooling branches on these, so they are part of the interface: never renumber.

use std::process::ExitCode;

/// The classes of outcome a run of `ksinstall` can end with.
/// Serialized by these names (`"Success"`, `"UsageOrIo"`, ...) in reports and JSON output.
/// The default (a report read back without an outcome) is not a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    /// Everything asked for was done (warnings allowed).
    Success = 0,
    /// Bad command-line usage, or an I/O failure outside the other classes.
    #[default]
    UsageOrIo = 1,
    /// The kickstart has at least one error (or a warning under `--strict`/`paranoid`).
    InvalidKickstart = 2,
    /// The hardware or the request does not allow the install (no disk, VMFS without consent, ...).
    Precondition = 3,
    /// The installation media is unreadable, malformed, or fails VMware's metadata (imgdb.tgz).
    Media = 4,
    /// What was written did not read back as planned.
    Verify = 5,
    /// Writing to the target failed.
    Write = 6,
    /// The DPU reported that its install failed (`CRITICAL ERROR`, a failed flash).
    Dpu = 7,
    /// A `%pre` or `%post` script failed.
    Script = 8,
    /// The DPU said nothing for too long (no log line, no flash status).
    DpuTimeout = 9,
    /// The payload did not reach the DPU (short write, no rshim daemon, a broken socket).
    DpuTransfer = 10,
    /// The DPU's driver refused the request (busy, not supported, not permitted).
    DpuRefused = 11,
    /// `cluster check` / `hcl check`: every input was read and at least one rule is broken.
    RuleBroken = 12,
    /// `cluster check` / `hcl check`: an input (report, probe, table) could not be read or is
    /// not one ksinstall wrote; nothing was judged.
    InputUnreadable = 13,
    /// SIGINT, SIGTERM or SIGHUP: the run stopped at its next safe point (the report says the
    /// step and what state the disk was left in).
    Interrupted = 14,
}

impl Outcome {
    /// The name reports and JSON output use (as serialized).
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "Success",
            Outcome::UsageOrIo => "UsageOrIo",
            Outcome::InvalidKickstart => "InvalidKickstart",
            Outcome::Precondition => "Precondition",
            Outcome::Media => "Media",
            Outcome::Verify => "Verify",
            Outcome::Write => "Write",
            Outcome::Dpu => "Dpu",
            Outcome::Script => "Script",
            Outcome::DpuTimeout => "DpuTimeout",
            Outcome::DpuTransfer => "DpuTransfer",
            Outcome::DpuRefused => "DpuRefused",
            Outcome::RuleBroken => "RuleBroken",
            Outcome::InputUnreadable => "InputUnreadable",
            Outcome::Interrupted => "Interrupted",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> Self {
        ExitCode::from(o as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome;

    #[test]
    fn an_outcome_is_written_and_read_back_by_its_name() {
        // Every variant: `name()` is written by hand beside serde's derived names.
        let all = [
            Outcome::Success,
            Outcome::UsageOrIo,
            Outcome::InvalidKickstart,
            Outcome::Precondition,
            Outcome::Media,
            Outcome::Verify,
            Outcome::Write,
            Outcome::Dpu,
            Outcome::Script,
            Outcome::DpuTimeout,
            Outcome::DpuTransfer,
            Outcome::DpuRefused,
            Outcome::RuleBroken,
            Outcome::InputUnreadable,
            Outcome::Interrupted,
        ];
        // The codes are 0..=14 without a gap, so the list above misses none.
        let codes: Vec<u8> = all.iter().map(|o| *o as u8).collect();
        assert_eq!(codes, (0..=14).collect::<Vec<u8>>());
        for o in all {
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, format!("\"{}\"", o.name()));
            assert_eq!(serde_json::from_str::<Outcome>(&json).unwrap(), o);
        }
    }
}
