//! The DPUs we recognise, kept as data in `firmware/dpus.toml` and compiled into the binary.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// What one PCI function does on its card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Integrated ConnectX NIC physical function (mlx5_core).
    NicPf,
    NicVf,
    /// BlueField SoC management interface, driven by rshim.
    Rshim,
    /// NIC in flash-recovery ("livefish") mode: the firmware is not running.
    Recovery,
    Bridge,
    UpstreamPort,
    DownstreamPort,
    /// Pensando Ethernet PF (ionic).
    EthPf,
    EthVf,
    /// Pensando host-to-card management NIC.
    MgmtNic,
    /// Pensando core PF (pds_core, devlink flash).
    CorePf,
    /// On the card, but not named in the catalog.
    Other,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::NicPf => "nic-pf",
            Role::NicVf => "nic-vf",
            Role::Rshim => "rshim",
            Role::Recovery => "recovery",
            Role::Bridge => "bridge",
            Role::UpstreamPort => "upstream-port",
            Role::DownstreamPort => "downstream-port",
            Role::EthPf => "eth-pf",
            Role::EthVf => "eth-vf",
            Role::MgmtNic => "mgmt-nic",
            Role::CorePf => "core-pf",
            Role::Other => "other",
        }
    }
}

/// A (vendor, device) pair and the role of a function carrying it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionKey {
    pub vendor: u16,
    pub device: u16,
    pub role: Role,
    /// Whether this ID alone marks a card as this model (false: it only names the role).
    #[serde(default = "yes")]
    pub identifies: bool,
}

fn yes() -> bool {
    true
}

/// One DPU model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub id: String,
    pub vendor: String,
    pub model: String,
    pub generation: String,
    /// Whether vSphere 8 supports it as a DPU.
    pub supported: bool,
    pub note: Option<String>,
    pub subsystem_vendor: Option<u16>,
    /// When not empty, a function matches only if its subsystem is one of these.
    pub subsystem_devices: Vec<u16>,
    /// Roles through which the card is managed, most preferred first.
    pub management: Vec<Role>,
    pub functions: Vec<FunctionKey>,
}

impl CatalogEntry {
    /// How well a function with these IDs matches: 0 none, 1 by device, 2 by device and subsystem.
    pub(crate) fn match_score(&self, ids: &PciIds) -> u8 {
        if !self
            .functions
            .iter()
            .any(|f| f.identifies && f.vendor == ids.vendor && f.device == ids.device)
        {
            return 0;
        }
        if self.subsystem_devices.is_empty() {
            return 1;
        }
        let vendor_ok = self
            .subsystem_vendor
            .is_none_or(|v| Some(v) == ids.subsystem_vendor);
        let device_ok = ids
            .subsystem_device
            .is_some_and(|d| self.subsystem_devices.contains(&d));
        if vendor_ok && device_ok {
            2
        } else {
            0
        }
    }

    pub(crate) fn role_of(&self, vendor: u16, device: u16) -> Role {
        self.functions
            .iter()
            .find(|f| f.vendor == vendor && f.device == device)
            .map_or(Role::Other, |f| f.role)
    }
}

/// The identifying IDs of one PCI function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PciIds {
    pub vendor: u16,
    pub device: u16,
    pub subsystem_vendor: Option<u16>,
    pub subsystem_device: Option<u16>,
}

/// The supported-and-recognised DPU catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub entries: Vec<CatalogEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    dpu: Vec<EntryFile>,
    #[serde(default)]
    function_sets: BTreeMap<String, Vec<FunctionKey>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    id: String,
    vendor: String,
    model: String,
    generation: String,
    supported: bool,
    note: Option<String>,
    subsystem_vendor: Option<u16>,
    #[serde(default)]
    subsystem_devices: Vec<u16>,
    management: Vec<Role>,
    #[serde(default)]
    functions: Vec<FunctionKey>,
    function_set: Option<String>,
    /// A function set whose IDs only name roles on this card, without identifying it.
    role_set: Option<String>,
}

const BUILTIN: &str = include_str!("../../firmware/dpus.toml");

impl Catalog {
    /// The catalog shipped in `firmware/dpus.toml`.
    pub fn builtin() -> anyhow::Result<Catalog> {
        Catalog::parse(BUILTIN).context("firmware/dpus.toml")
    }

    pub fn parse(text: &str) -> anyhow::Result<Catalog> {
        let file: CatalogFile = toml::from_str(text).context("DPU catalog is not valid")?;
        let mut entries = Vec::with_capacity(file.dpu.len());
        for e in file.dpu {
            let mut functions = e.functions;
            if let Some(set) = &e.function_set {
                let Some(shared) = file.function_sets.get(set) else {
                    bail!("DPU catalog entry {}: no function set named {set:?}", e.id);
                };
                functions.extend(shared.iter().cloned());
            }
            if let Some(set) = &e.role_set {
                let Some(shared) = file.function_sets.get(set) else {
                    bail!("DPU catalog entry {}: no function set named {set:?}", e.id);
                };
                functions.extend(shared.iter().cloned().map(|mut f| {
                    f.identifies = false;
                    f
                }));
            }
            if functions.is_empty() {
                bail!("DPU catalog entry {} lists no PCI functions", e.id);
            }
            if let Some(missing) = e
                .management
                .iter()
                .find(|r| !functions.iter().any(|f| f.role == **r))
            {
                bail!(
                    "DPU catalog entry {}: management role {} is on none of its functions",
                    e.id,
                    missing.as_str()
                );
            }
            if entries.iter().any(|x: &CatalogEntry| x.id == e.id) {
                bail!("DPU catalog lists {} twice", e.id);
            }
            entries.push(CatalogEntry {
                id: e.id,
                vendor: e.vendor,
                model: e.model,
                generation: e.generation,
                supported: e.supported,
                note: e.note,
                subsystem_vendor: e.subsystem_vendor,
                subsystem_devices: e.subsystem_devices,
                management: e.management,
                functions,
            });
        }
        Ok(Catalog { entries })
    }
}
