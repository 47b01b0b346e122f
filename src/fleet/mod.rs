//! Fleet checks: rules across many hosts (`cluster`) and against a compatibility table (`hcl`).
//!
//! Both read the same small [`HostRecord`], parsed from either JSON a host can give us: the
//! report of `ksinstall install --report` or the output of `ksinstall probe --format json`. The
//! rules here are pure functions of those records, so the commands, the rollout and the tests
//! share them; reading files and URLs is the CLI's job.

pub mod cluster;
pub mod hcl;
pub mod receiver;
pub mod record;

pub use record::{DpuRecord, HostRecord, Image, RecordError, RecordKind};

use serde::Serialize;

/// How much a finding matters to a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A rule is broken: the check fails.
    Broken,
    /// Worth knowing, but not a failure (e.g. a probe cannot tell the image).
    Note,
}

impl Severity {
    pub fn tag(self) -> &'static str {
        match self {
            Severity::Broken => "broken",
            Severity::Note => "note",
        }
    }
}

/// The first line of a check's text: `OK: 3 host(s), every rule holds` or
/// `BROKEN: 3 host(s), 2 broken rule(s)`.
pub(crate) fn headline(
    ok: bool,
    hosts: usize,
    severities: impl Iterator<Item = Severity>,
    all_good: &str,
    broken_what: &str,
) -> String {
    let broken = severities.filter(|s| *s == Severity::Broken).count();
    if ok {
        format!("OK: {hosts} host(s), {all_good}")
    } else {
        format!("BROKEN: {hosts} host(s), {broken} {broken_what}")
    }
}

#[cfg(test)]
mod tests {
    use super::Severity::{Broken, Note};

    #[test]
    fn the_headline_says_the_verdict_first() {
        assert_eq!(
            super::headline(
                true,
                3,
                std::iter::empty(),
                "every rule holds",
                "broken rule(s)"
            ),
            "OK: 3 host(s), every rule holds"
        );
        assert_eq!(
            super::headline(
                false,
                3,
                [Broken, Note, Broken].into_iter(),
                "every rule holds",
                "broken rule(s)"
            ),
            "BROKEN: 3 host(s), 2 broken rule(s)"
        );
    }
}
