//! PCI functions, grouped into cards, matched against the DPU catalog (dpu.md §1.4).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::catalog::{Catalog, PciIds, Role};
use crate::sysroot::Sysroot;

/// One PCI function as sysfs shows it under `sys/bus/pci/devices/<address>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PciFunction {
    /// `domain:bus:device.function`, e.g. `0000:3b:00.2`.
    pub address: String,
    pub vendor: u16,
    pub device: u16,
    pub class: Option<u32>,
    pub subsystem_vendor: Option<u16>,
    pub subsystem_device: Option<u16>,
    pub revision: Option<u8>,
    /// Kernel driver bound to it (`driver` link), if any.
    pub driver: Option<String>,
    /// A virtual function (it has a `physfn` link).
    pub is_vf: bool,
    /// PCI functions above it, nearest first (bridges and ports up to the root complex).
    #[serde(skip)]
    pub upstream: Vec<String>,
}

impl PciFunction {
    pub fn ids(&self) -> PciIds {
        PciIds {
            vendor: self.vendor,
            device: self.device,
            subsystem_vendor: self.subsystem_vendor,
            subsystem_device: self.subsystem_device,
        }
    }
}

/// A function of a DPU and what it does there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DpuFunction {
    pub address: String,
    /// `vvvv:dddd`.
    pub id: String,
    /// `vvvv:dddd` of the subsystem, when known.
    pub subsystem: Option<String>,
    pub class: Option<String>,
    pub driver: Option<String>,
    pub role: Role,
}

/// Which DPU card this is: the catalog entry it matched and where it sits. The one type that
/// names a card wherever it appears (docs/ARCHITECTURE.md): flattened into the inventory's card,
/// the report's cards and the fleet's records, so those documents keep these keys at the card's
/// top level; whole in a finding; the plan's DPU holds the inventory's card.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DpuIdentity {
    /// The `firmware/dpus.toml` entry, e.g. `nvidia-bluefield-3`.
    pub catalog_id: String,
    pub vendor: String,
    pub model: String,
    pub generation: String,
    /// Whether vSphere 8 supports the model (the catalog's word; a supported card in NIC mode
    /// is still not used). Reports before this type called it `supported_model` for cards the
    /// install left alone.
    #[serde(alias = "supported_model")]
    pub supported: bool,
    /// `domain:bus:device` of the card's top-most function: the key that groups its functions.
    pub address: String,
    /// Physical slot name from `sys/bus/pci/slots/*/address`, when firmware created one.
    pub slot: Option<String>,
}

impl DpuIdentity {
    /// Whether a `--dpuPciSlots` value names this card: its slot, or its PCI address
    /// (`0000:3b:00`) for hosts whose firmware names no slots.
    pub fn named_by(&self, slot: &str) -> bool {
        self.slot.as_deref() == Some(slot) || self.address.eq_ignore_ascii_case(slot)
    }

    /// How to name this card's place to a person: slot first, PCI address always.
    pub fn location(&self) -> String {
        match &self.slot {
            Some(s) => format!("slot {s} ({})", self.address),
            None => format!("PCI {} (no slot information)", self.address),
        }
    }

    /// `NVIDIA BlueField-3 in slot 4 (0000:ca:00)`, or `NVIDIA BlueField-3 at PCI 0000:ca:00 (no
    /// slot information)`.
    pub fn name(&self) -> String {
        // A finding of an earlier version has the vendor inside `model` and no `vendor`.
        let what = format!("{} {}", self.vendor, self.model);
        let what = what.trim();
        match &self.slot {
            Some(_) => format!("{what} in {}", self.location()),
            None => format!("{what} at {}", self.location()),
        }
    }
}

/// A DPU card found in the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dpu {
    #[serde(flatten)]
    pub identity: DpuIdentity,
    pub note: Option<String>,
    pub functions: Vec<DpuFunction>,
    /// Address of the function through which the card is managed (rshim, pds_core or ionic PF).
    pub management: Option<String>,
    pub management_role: Option<Role>,
    /// Some function shows a flash-recovery ID: the card's NIC firmware is not running.
    pub needs_recovery: bool,
}

const DEVICES: &str = "sys/bus/pci/devices";
const SLOTS: &str = "sys/bus/pci/slots";

/// Reads every PCI function. A function whose vendor or device cannot be read is skipped.
pub(crate) fn read_functions(sys: &Sysroot) -> anyhow::Result<Vec<PciFunction>> {
    let mut out = Vec::new();
    for address in sys.list(Path::new(DEVICES))? {
        let link = Path::new(DEVICES).join(&address);
        let real = match sys.resolve(&link) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("skipping PCI function {address}: {e:#}");
                continue;
            }
        };
        let narrow16 = |v: Option<u32>| v.and_then(|v| u16::try_from(v).ok());
        let (Some(vendor), Some(device)) = (
            narrow16(sys.hex_attr(&real.join("vendor"))),
            narrow16(sys.hex_attr(&real.join("device"))),
        ) else {
            log::warn!("skipping PCI function {address}: vendor or device ID unreadable");
            continue;
        };
        out.push(PciFunction {
            vendor,
            device,
            class: sys.hex_attr(&real.join("class")),
            subsystem_vendor: narrow16(sys.hex_attr(&real.join("subsystem_vendor"))),
            subsystem_device: narrow16(sys.hex_attr(&real.join("subsystem_device"))),
            revision: sys
                .hex_attr(&real.join("revision"))
                .and_then(|v| u8::try_from(v).ok()),
            driver: sys.link_name(&real.join("driver")),
            is_vf: sys.exists(&real.join("physfn")),
            upstream: upstream_functions(&real),
            address,
        });
    }
    out.sort_by(|a, b| a.address.cmp(&b.address));
    Ok(out)
}

/// PCI addresses among the ancestors of a resolved device directory, nearest first.
fn upstream_functions(real: &Path) -> Vec<String> {
    let mut ups = Vec::new();
    let mut cur: Option<&Path> = real.parent();
    while let Some(dir) = cur {
        if let Some(name) = dir.file_name().and_then(|n| n.to_str()) {
            if is_pci_address(name) {
                ups.push(name.to_string());
            }
        }
        cur = dir.parent();
    }
    ups
}

/// `dddd:bb:dd.f` in hex.
pub(crate) fn is_pci_address(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && s.chars()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10) || c.is_ascii_hexdigit())
}

/// `dddd:bb:dd` of a function address.
fn bus_device(address: &str) -> &str {
    address.split('.').next().unwrap_or(address)
}

/// Physical slots: slot address (`dddd:bb:dd` or `dddd:bb`) to slot name.
pub(crate) fn read_slots(sys: &Sysroot) -> anyhow::Result<BTreeMap<String, String>> {
    let mut slots = BTreeMap::new();
    for name in sys.list(Path::new(SLOTS))? {
        let file: PathBuf = Path::new(SLOTS).join(&name).join("address");
        if let Some(addr) = sys.attr_or_warn(&file) {
            slots.insert(addr.to_ascii_lowercase(), name);
        }
    }
    Ok(slots)
}

fn slot_for(slots: &BTreeMap<String, String>, card: &str) -> Option<String> {
    if let Some(name) = slots.get(card) {
        return Some(name.clone());
    }
    // A placeholder slot has no device part: it stands for the whole bus.
    let bus = card.rsplit_once(':').map(|(b, _)| b)?;
    slots.get(bus).cloned()
}

/// Groups functions into cards and keeps those the catalog recognises.
///
/// The card root is the top-most function above (or at) a function that still has the same PCI
/// vendor: for a BlueField without its own switch that is the function itself, so functions of
/// one bus:device form the card; for a Pensando DSC it is the card's own upstream switch port.
pub(crate) fn find_dpus(
    functions: &[PciFunction],
    slots: &BTreeMap<String, String>,
    catalog: &Catalog,
) -> Vec<Dpu> {
    let by_address: BTreeMap<&str, &PciFunction> =
        functions.iter().map(|f| (f.address.as_str(), f)).collect();
    let card_key = |f: &PciFunction| -> String {
        let mut root = f.address.as_str();
        for up in &f.upstream {
            match by_address.get(up.as_str()) {
                Some(u) if u.vendor == f.vendor => root = up.as_str(),
                _ => break,
            }
        }
        bus_device(root).to_string()
    };

    // Virtual functions come and go with SR-IOV settings and say nothing about the card.
    let mut cards: BTreeMap<String, Vec<&PciFunction>> = BTreeMap::new();
    for f in functions.iter().filter(|f| !f.is_vf) {
        cards.entry(card_key(f)).or_default().push(f);
    }

    let mut dpus = Vec::new();
    for (key, members) in cards {
        let mut best: Option<(&super::catalog::CatalogEntry, u8, usize)> = None;
        for entry in &catalog.entries {
            let scores: Vec<u8> = members
                .iter()
                .map(|f| entry.match_score(&f.ids()))
                .collect();
            let top = scores.iter().copied().max().unwrap_or(0);
            if top == 0 {
                continue;
            }
            let hits = scores.iter().filter(|s| **s > 0).count();
            let better = match best {
                None => true,
                Some((_, s, h)) => top > s || (top == s && hits > h),
            };
            if better {
                best = Some((entry, top, hits));
            }
        }
        let Some((entry, _, _)) = best else { continue };
        let vendor = members.first().map(|f| f.vendor);
        let functions: Vec<DpuFunction> = members
            .iter()
            .filter(|f| Some(f.vendor) == vendor)
            .map(|f| DpuFunction {
                address: f.address.clone(),
                id: format!("{:04x}:{:04x}", f.vendor, f.device),
                subsystem: match (f.subsystem_vendor, f.subsystem_device) {
                    (Some(v), Some(d)) => Some(format!("{v:04x}:{d:04x}")),
                    _ => None,
                },
                class: f.class.map(|c| format!("0x{c:06x}")),
                driver: f.driver.clone(),
                role: entry.role_of(f.vendor, f.device),
            })
            .collect();
        let management = entry.management.iter().find_map(|role| {
            functions
                .iter()
                .find(|f| f.role == *role)
                .map(|f| (f.address.clone(), *role))
        });
        dpus.push(Dpu {
            identity: DpuIdentity {
                catalog_id: entry.id.clone(),
                vendor: entry.vendor.clone(),
                model: entry.model.clone(),
                generation: entry.generation.clone(),
                supported: entry.supported,
                slot: slot_for(slots, &key),
                address: key,
            },
            note: entry.note.clone(),
            needs_recovery: functions.iter().any(|f| f.role == Role::Recovery),
            management_role: management.as_ref().map(|m| m.1),
            management: management.map(|m| m.0),
            functions,
        });
    }
    dpus
}
