//! The Distributed Services Engine rules that need only the inventory, as typed findings.
//! Whether a finding stops the install is the plan stage's decision.

use serde::{Deserialize, Serialize};

use super::pci::{Dpu, DpuIdentity};

fn join(cards: &[DpuIdentity]) -> String {
    if cards.is_empty() {
        return "none".to_string();
    }
    cards
        .iter()
        .map(DpuIdentity::name)
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DpuFinding {
    /// vSphere 8.0 GA hosts one DPU; dual-DPU support came later (UNCONFIRMED which update).
    #[error("this host has {} DPUs: {}", .dpus.len(), join(.dpus))]
    MultipleDpus { dpus: Vec<DpuIdentity> },
    #[error("{} is a DPU that vSphere 8 does not support{}", .dpu.name(), .note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default())]
    UnsupportedDpu {
        dpu: DpuIdentity,
        note: Option<String>,
    },
    /// A function shows a flash-recovery ID: the card's NIC firmware is not running.
    #[error("{} is in flash-recovery mode: its firmware must be recovered before use", .dpu.name())]
    DpuNeedsRecovery { dpu: DpuIdentity },
    #[error("--dpuPciSlots names slot {slot:?}, which holds no supported DPU; DPUs found: {}", join(.dpus))]
    SlotWithoutSupportedDpu {
        slot: String,
        /// Every DPU in the host, so the message can say where they are.
        dpus: Vec<DpuIdentity>,
    },
}

impl DpuFinding {
    /// Whether the host's install must stop. A model vSphere 8 does not support is not a DPU to
    /// ESXi: the host is installed without Distributed Services Engine and the card is left as
    /// it is (docs/DPU.md, "Cards ESXi would not use"), unless `--dpuPciSlots` names it, which
    /// `SlotWithoutSupportedDpu` covers.
    pub fn blocks_install(&self) -> bool {
        !matches!(self, DpuFinding::UnsupportedDpu { .. })
    }
}

/// Findings that hold whatever the kickstart says.
pub(crate) fn host_findings(dpus: &[Dpu]) -> Vec<DpuFinding> {
    let mut out = Vec::new();
    // Only the models vSphere supports count as DPUs: another card is not one to ESXi.
    let supported: Vec<&Dpu> = dpus.iter().filter(|d| d.identity.supported).collect();
    if supported.len() > 1 {
        out.push(DpuFinding::MultipleDpus {
            dpus: supported.iter().map(|d| d.identity.clone()).collect(),
        });
    }
    for d in dpus {
        if !d.identity.supported {
            out.push(DpuFinding::UnsupportedDpu {
                dpu: d.identity.clone(),
                note: d.note.clone(),
            });
        }
        if d.needs_recovery {
            out.push(DpuFinding::DpuNeedsRecovery {
                dpu: d.identity.clone(),
            });
        }
    }
    out
}

/// Host findings plus those about the slots `--dpuPciSlots` names. A slot value may also be
/// the card's PCI address (`0000:3b:00`), for hosts whose firmware names no slots.
pub fn findings(dpus: &[Dpu], dpu_pci_slots: &[String]) -> Vec<DpuFinding> {
    let mut out = host_findings(dpus);
    for slot in dpu_pci_slots
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        let holds_supported = dpus
            .iter()
            .any(|d| d.identity.supported && d.identity.named_by(slot));
        if !holds_supported {
            out.push(DpuFinding::SlotWithoutSupportedDpu {
                slot: slot.to_string(),
                dpus: dpus.iter().map(|d| d.identity.clone()).collect(),
            });
        }
    }
    out
}
