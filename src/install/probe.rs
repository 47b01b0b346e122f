//! `ksinstall probe --format json`: what the installer sees of this machine, as one typed
//! document. `cluster check` and `hcl check` read it back through the same type.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::dpu::{self, Observed};
use crate::inventory::{Disk, Dpu, DpuFinding, FirmwareState, Inventory, Nic};

/// Which ksinstall document a JSON file is: the fleet checks read the kind, never guess it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocumentKind {
    /// `ksinstall probe --format json`.
    Probe,
    /// `--report FILE`, and `ksinstall.json` on boot bank 0.
    InstallReport,
}

/// A DPU finding with the words `probe` prints for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeFinding {
    pub finding: DpuFinding,
    pub message: String,
}

/// The machine as the installer sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeReport {
    /// Always `probe`.
    pub document: DocumentKind,
    /// The version of ksinstall that probed.
    pub ksinstall: String,
    pub disks: Vec<Disk>,
    pub dpus: Vec<Dpu>,
    /// What each supported DPU runs, asked through its own interface (read-only).
    pub dpu_software: Vec<Observed>,
    pub firmware: FirmwareState,
    pub nics: Vec<Nic>,
    pub findings: Vec<ProbeFinding>,
}

/// A document that says it is a probe but does not read as one.
#[derive(Debug, thiserror::Error)]
#[error("not a probe ksinstall wrote: {0}")]
pub struct UnreadableProbe(#[from] serde_json::Error);

impl ProbeReport {
    /// Read the machine below `sysroot`; `dpu_pci_slots`: `--dpuPciSlots` values to check too.
    pub fn read(
        sysroot: &Path,
        dpu_pci_slots: &[String],
        access: &dpu::Access,
    ) -> anyhow::Result<ProbeReport> {
        let inv = Inventory::read(sysroot)?;
        let findings = inv
            .dpu_findings(dpu_pci_slots)
            .into_iter()
            .map(|f| ProbeFinding {
                message: f.to_string(),
                finding: f,
            })
            .collect();
        let dpu_software = inv
            .supported_dpus()
            .map(|d| dpu::observe(d, access))
            .collect();
        Ok(ProbeReport {
            document: DocumentKind::Probe,
            ksinstall: env!("CARGO_PKG_VERSION").into(),
            disks: inv.disks,
            dpus: inv.dpus,
            dpu_software,
            firmware: inv.firmware,
            nics: inv.nics,
            findings,
        })
    }

    pub fn parse(bytes: &[u8]) -> Result<ProbeReport, UnreadableProbe> {
        Ok(serde_json::from_slice(bytes)?)
    }
}
