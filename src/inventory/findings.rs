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
    MultipleDpus {
        #[serde(deserialize_with = "cards")]
        dpus: Vec<DpuIdentity>,
    },
    #[error("{} is a DPU that vSphere 8 does not support{}", .dpu.name(), .note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default())]
    UnsupportedDpu {
        #[serde(deserialize_with = "card")]
        dpu: DpuIdentity,
        note: Option<String>,
    },
    /// A function shows a flash-recovery ID: the card's NIC firmware is not running.
    #[error("{} is in flash-recovery mode: its firmware must be recovered before use", .dpu.name())]
    DpuNeedsRecovery {
        #[serde(deserialize_with = "card")]
        dpu: DpuIdentity,
    },
    #[error("--dpuPciSlots names slot {slot:?}, which holds no supported DPU; DPUs found: {}", join(.dpus))]
    SlotWithoutSupportedDpu {
        slot: String,
        /// Every DPU in the host, so the message can say where they are.
        #[serde(deserialize_with = "cards")]
        dpus: Vec<DpuIdentity>,
    },
}

/// A card in a finding as versions before `DpuIdentity` wrote it (`slot`, `address`, and
/// `model` holding vendor and model): probes and recorded host documents of those versions
/// still read.
#[derive(Deserialize)]
struct LocatedCard {
    slot: Option<String>,
    address: String,
    model: String,
}

impl From<LocatedCard> for DpuIdentity {
    // The vendor is inside `model`: name() says "NVIDIA BlueField-2 in slot 2 (...)".
    fn from(c: LocatedCard) -> DpuIdentity {
        DpuIdentity {
            model: c.model,
            address: c.address,
            slot: c.slot,
            ..DpuIdentity::default()
        }
    }
}

/// A card this version wrote has its `catalog_id`; one without is of the earlier shape. Told
/// apart by that key rather than by trying both shapes (serde's untagged enum), so that a
/// malformed card is refused with what is wrong in its own shape ("missing field `address`").
fn found_card(v: serde_json::Value, place: &str) -> Result<DpuIdentity, String> {
    let read = if v.get("catalog_id").is_some() {
        DpuIdentity::deserialize(v)
    } else {
        LocatedCard::deserialize(v).map(DpuIdentity::from)
    };
    read.map_err(|e| format!("{place}: {e}"))
}

fn card<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DpuIdentity, D::Error> {
    found_card(
        serde_json::Value::deserialize(d)?,
        "a DPU card in a finding",
    )
    .map_err(serde::de::Error::custom)
}

fn cards<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<DpuIdentity>, D::Error> {
    Vec::<serde_json::Value>::deserialize(d)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| found_card(v, &format!("DPU card {} of a finding's list", i + 1)))
        .collect::<Result<_, _>>()
        .map_err(serde::de::Error::custom)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_of_an_earlier_version_reads_and_names_its_cards() {
        // What versions before DpuIdentity wrote: `model` with the vendor, no catalog entry.
        let old: DpuFinding = serde_json::from_str(
            r#"{"kind": "multiple-dpus", "dpus": [
                {"slot": "2", "address": "0000:3b:00", "model": "NVIDIA BlueField-2"},
                {"slot": null, "address": "0000:5e:00", "model": "AMD Pensando DSC-25"}]}"#,
        )
        .unwrap();
        assert_eq!(
            old.to_string(),
            "this host has 2 DPUs: NVIDIA BlueField-2 in slot 2 (0000:3b:00); \
             AMD Pensando DSC-25 at PCI 0000:5e:00 (no slot information)"
        );
        // This version's finding reads back as itself.
        let card = DpuIdentity {
            catalog_id: "nvidia-bluefield-1".into(),
            vendor: "NVIDIA".into(),
            model: "BlueField".into(),
            generation: "BlueField-1".into(),
            supported: false,
            address: "0000:3b:00".into(),
            slot: Some("3".into()),
        };
        let new = DpuFinding::UnsupportedDpu {
            dpu: card,
            note: Some("end of life".into()),
        };
        let back: DpuFinding = serde_json::from_str(&serde_json::to_string(&new).unwrap()).unwrap();
        assert_eq!(back, new);
        assert_eq!(
            back.to_string(),
            "NVIDIA BlueField in slot 3 (0000:3b:00) is a DPU that vSphere 8 does not support (end of life)"
        );
    }

    #[test]
    fn a_malformed_card_in_a_finding_is_refused_naming_what_is_wrong() {
        let err = |card: &str| {
            serde_json::from_str::<DpuFinding>(&format!(
                r#"{{"kind": "dpu-needs-recovery", "dpu": {card}}}"#
            ))
            .unwrap_err()
            .to_string()
        };
        // This version's shape without its address; the earlier shape without its model.
        let new = err(
            r#"{"catalog_id": "x", "vendor": "V", "model": "M", "generation": "G",
            "supported": true, "slot": null}"#,
        );
        assert!(
            new.starts_with("a DPU card in a finding: missing field `address`"),
            "{new}"
        );
        let old = err(r#"{"slot": "2", "address": "0000:3b:00"}"#);
        assert!(
            old.starts_with("a DPU card in a finding: missing field `model`"),
            "{old}"
        );
        let wrong = err(
            r#"{"catalog_id": "x", "vendor": "V", "model": "M", "generation": "G",
            "supported": "yes", "address": "a", "slot": null}"#,
        );
        assert!(
            wrong.contains("invalid type: string \"yes\", expected a boolean"),
            "{wrong}"
        );
        // In a list, which card it is.
        let second = serde_json::from_str::<DpuFinding>(
            r#"{"kind": "multiple-dpus", "dpus": [
                {"slot": "2", "address": "0000:3b:00", "model": "NVIDIA BlueField-2"},
                {"slot": null, "model": "AMD Pensando DSC-25"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            second.starts_with("DPU card 2 of a finding's list: missing field `address`"),
            "{second}"
        );
    }
}
