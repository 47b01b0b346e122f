//! Fleet checks: rules across many hosts (`cluster`) and against a compatibility table (`hcl`).
//!
//! Both read the same small [`HostRecord`], parsed from either JSON a host can give us: the
//! report of `ksinstall install --report` or the output of `ksinstall probe --format json`. The
//! rules here are pure functions of those records, so the commands, the rollout and the tests
//! share them; reading files and URLs is the CLI's job.

pub mod cluster;
pub mod hcl;
pub mod record;

pub use record::{DpuRecord, HostRecord, Image, RecordKind};

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
