//! The report of one install run: `--report FILE` (written for every run that got as far as
//! knowing where to write it, a refusal before the plan included) and, in the same type, the
//! install record `ksinstall.json` on the boot bank. The fleet checks read reports back through
//! this type (docs/INSTALL.md, docs/FLEET.md).

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Deserializer, Serialize};

use crate::apply::{Applied, StepTiming, WrittenFile};
use crate::exit::Outcome;
use crate::plan::{MediaSummary, Plan, Target};
use crate::storage::PlannedPartition;

/// Where and why a run stopped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportError {
    pub step: crate::report::StepId,
    pub message: String,
}

/// What a run left its target disk as (`target_state` in the report; docs/INSTALL.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetState {
    /// Nothing was written to it.
    Untouched,
    /// The image file this run created, never written to, was deleted.
    Removed,
    /// Partitioned and partly written, without `boot.cfg`: it does not boot (an upgrade: the
    /// bank being written; the running bank still boots).
    HalfWritten,
    /// Everything apply writes was written and read back.
    Written,
}

/// One DPU as planned, and what it reported after its install (docs/FLEET.md reads these).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportDpu {
    pub name: String,
    #[serde(flatten)]
    pub identity: crate::inventory::DpuIdentity,
    pub interface: crate::dpu::Interface,
    pub action: crate::plan::DpuAction,
    pub payload: ReportPayload,
    pub before: Option<crate::dpu::Observed>,
    /// What the card said once it had the payload; `None` when it never got it.
    #[serde(default)]
    pub after: Option<crate::dpu::Installed>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ReportPayload {
    pub id: String,
    pub label: String,
    pub esxio_build: String,
    pub firmware_version: String,
    pub parts: Vec<crate::dpu::payload::PayloadPart>,
}

/// The report. Every key is always present; what a run never reached is `null`. Reading is
/// lenient about keys an older version did not write.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct InstallReport {
    /// `install-report` (reports of earlier versions: absent).
    #[serde(default)]
    pub document: Option<super::DocumentKind>,
    pub ksinstall: String,
    pub outcome: crate::exit::Outcome,
    #[serde(deserialize_with = "exit_code")]
    pub exit_code: u8,
    pub elapsed_ms: u64,
    /// The kickstart's name (path or redacted URL), once known.
    pub kickstart: Option<String>,
    /// Absent from reports written before dry runs were reported.
    #[serde(default)]
    pub dry_run: bool,
    /// `install` or `upgrade`, once planned (reports of earlier versions: absent).
    #[serde(default)]
    pub kind: Option<crate::plan::RunKind>,
    /// Why the run is that kind (installorupgrade: what the disk held).
    #[serde(default)]
    pub reason: Option<String>,
    /// An upgrade: the build that booted before, and the one written.
    #[serde(default)]
    pub from_build: Option<String>,
    #[serde(default)]
    pub to_build: Option<String>,
    /// An upgrade: the bank written, and the bank kept for rollback.
    #[serde(default)]
    pub target_bank: Option<u32>,
    #[serde(default)]
    pub rollback_bank: Option<u32>,
    /// An upgrade: the host's DPUs, left running the ESXio the new image carries.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub kept_dpus: Vec<crate::plan::upgrade::KeptDpu>,
    pub media: Option<MediaSummary>,
    pub target: Option<Target>,
    pub partitions: Option<Vec<PlannedPartition>>,
    pub boot_cfg: Option<String>,
    pub host: Option<crate::plan::hostconfig::HostConfig>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub dpus: Vec<ReportDpu>,
    /// Cards left alone because ESXi would not use them as DPUs (absent from older reports).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub dpus_not_used: Vec<crate::plan::NotUsedDpu>,
    pub files: Option<Vec<WrittenFile>>,
    /// Every step the run went through, in order (kickstart, plan, media, apply's steps,
    /// %post). Older reports wrote `null` for a run that stopped before apply.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub timings: Vec<StepTiming>,
    pub bytes_written: Option<u64>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub warnings: Vec<String>,
    pub error: Option<ReportError>,
    /// What the run left the target as; `null` when it never reached apply (absent from
    /// reports of earlier versions).
    #[serde(default)]
    pub target_state: Option<TargetState>,
    /// Every `%pre` and `%post` script run: where, how it ended, what it printed.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub scripts: Vec<crate::apply::scripts::ScriptRecord>,
}

/// The exit code, refused by name when it is not one.
fn exit_code<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let n = u64::deserialize(d)?;
    u8::try_from(n).map_err(|_| {
        serde::de::Error::custom(format!("\"exit_code\" {n} is not a number from 0 to 255"))
    })
}

/// A list that an older report may have written as `null`.
fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// Why a document is not an install report this version can read.
#[derive(Debug, thiserror::Error)]
#[error("not an install report of ksinstall {}: {reason}", env!("CARGO_PKG_VERSION"))]
pub struct UnreadableReport {
    pub reason: String,
}

impl InstallReport {
    /// A report of a run that stopped before there was a plan.
    pub(crate) fn without_plan(kickstart: Option<&str>, outcome: Outcome, dry_run: bool) -> Self {
        InstallReport {
            document: Some(super::DocumentKind::InstallReport),
            ksinstall: env!("CARGO_PKG_VERSION").into(),
            outcome,
            exit_code: outcome as u8,
            elapsed_ms: 0,
            kickstart: kickstart.map(str::to_string),
            dry_run,
            kind: None,
            reason: None,
            from_build: None,
            to_build: None,
            target_bank: None,
            rollback_bank: None,
            kept_dpus: Vec::new(),
            media: None,
            target: None,
            partitions: None,
            boot_cfg: None,
            host: None,
            dpus: Vec::new(),
            dpus_not_used: Vec::new(),
            files: None,
            timings: Vec::new(),
            bytes_written: None,
            warnings: Vec::new(),
            error: None,
            target_state: None,
            scripts: Vec::new(),
        }
    }

    /// Fill in what the plan (and, after apply, the disk) says.
    pub(crate) fn with_plan(mut self, plan: &Plan, applied: Option<&Applied>) -> Self {
        self.kickstart = Some(plan.kickstart.clone());
        self.kind = Some(plan.kind);
        self.reason = Some(plan.reason.clone());
        self.to_build = Some(plan.media.build.clone());
        if let Some(u) = &plan.upgrade {
            self.from_build = Some(u.from_build.clone());
            self.target_bank = Some(u.target_bank);
            self.rollback_bank = Some(u.running_bank);
            self.kept_dpus = u.dpus.clone();
        }
        self.media = Some(plan.media.clone());
        self.target = Some(plan.target.clone());
        self.partitions = Some(plan.layout.partitions.clone());
        self.boot_cfg = Some(plan.boot_cfg.render());
        self.host = Some(plan.host.clone());
        self.dpus = plan
            .dpus
            .iter()
            .map(|d| ReportDpu {
                name: d.name.clone(),
                identity: d.card.identity.clone(),
                interface: d.interface.clone(),
                action: d.action,
                payload: ReportPayload {
                    id: d.payload.id.clone(),
                    label: d.payload.label.clone(),
                    esxio_build: d.payload.esxio_build.clone(),
                    firmware_version: d.payload.firmware_version.clone(),
                    parts: d.payload.parts.clone(),
                },
                before: Some(d.before.clone()),
                after: applied.and_then(|a| {
                    a.dpus
                        .iter()
                        .find(|x| x.address == d.card.identity.address)
                        .cloned()
                }),
            })
            .collect();
        self.dpus_not_used = plan.dpus_not_used.clone();
        self.files = applied.map(|a| a.files.clone());
        self.bytes_written = applied.map(|a| a.bytes_written);
        self.warnings = plan.warnings.clone();
        self
    }

    /// Read a report back (fleet checks). Reports of earlier versions read where their fields
    /// agree; one that does not is refused with the field at fault.
    pub fn parse(bytes: &[u8]) -> Result<InstallReport, UnreadableReport> {
        serde_json::from_slice(bytes).map_err(|e| UnreadableReport {
            reason: e.to_string(),
        })
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(self)?;
        std::fs::write(path, bytes)
            .with_context(|| format!("writing the report {}", path.display()))
    }
}
