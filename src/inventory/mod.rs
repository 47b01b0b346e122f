//! The inventory stage: the machine as the installer must see it, read-only.
//!
//! All hardware is reached through one seam, a sysroot directory standing for `/`: disks from
//! `sys/block` and `dev/<name>`, PCI functions from `sys/bus/pci/devices`, physical slots from
//! `sys/bus/pci/slots`. See docs/HARDWARE.md.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

pub mod catalog;
pub mod content;
pub mod disk;
pub mod findings;
pub mod firmware;
pub mod installed;
pub mod nic;
pub mod pci;
pub mod record;
pub mod select;
// The one hardware seam lives beside the stages (crate::sysroot): the source stage reads the
// kernel command line and the CD drives through it too.
use crate::sysroot;

pub use catalog::{Catalog, Role};
pub use content::{Bootbank, DiskContent, EsxInstall, PartitionTable};
pub use disk::{Disk, Transport};
pub use findings::DpuFinding;
pub use firmware::{BootFirmware, FirmwareState};
pub use nic::Nic;
pub use pci::{Dpu, DpuFunction, DpuIdentity};
pub use select::{DiskLookupError, FirstDiskChoice, DEFAULT_FIRSTDISK};

/// What the installer found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inventory {
    /// Disks in a stable order (by device topology); `--firstdisk` picks the first match.
    pub disks: Vec<Disk>,
    pub dpus: Vec<Dpu>,
    /// Findings that hold whatever the kickstart says (see [`Inventory::dpu_findings`]).
    pub findings: Vec<DpuFinding>,
    /// Network interfaces, in the order ESXi is expected to number them.
    pub nics: Vec<Nic>,
    /// UEFI or BIOS, Secure Boot, lockdown.
    pub firmware: FirmwareState,
}

impl Inventory {
    /// Reads the machine below `sysroot` with the built-in DPU catalog.
    pub fn read(sysroot: &Path) -> anyhow::Result<Inventory> {
        Inventory::read_with_catalog(sysroot, &Catalog::builtin()?)
    }

    pub(crate) fn read_with_catalog(
        sysroot: &Path,
        catalog: &Catalog,
    ) -> anyhow::Result<Inventory> {
        let sys = sysroot::Sysroot::new(sysroot)?;
        // Every Linux system has sys/block; without it this is not a sysroot, and an empty
        // inventory would read as "a machine without disks".
        if !sys.host_path(Path::new("sys/block")).is_dir() {
            anyhow::bail!(
                "{} has no sys/block directory: not a sysroot",
                sysroot.display()
            );
        }
        Inventory::read_from(&sys, catalog)
    }

    fn read_from(sys: &sysroot::Sysroot, catalog: &Catalog) -> anyhow::Result<Inventory> {
        let disks = disk::read_disks(sys).context("reading disks")?;
        let functions = pci::read_functions(sys).context("reading PCI functions")?;
        let slots = pci::read_slots(sys).context("reading PCI slots")?;
        let dpus = pci::find_dpus(&functions, &slots, catalog);
        for d in &dpus {
            log::info!("DPU {}, management {:?}", d.identity.name(), d.management);
        }
        let findings = findings::host_findings(&dpus);
        Ok(Inventory {
            disks,
            dpus,
            findings,
            nics: nic::read_nics(sys),
            firmware: firmware::read(sys),
        })
    }

    /// The cards of a model vSphere 8 supports: the only ones that are DPUs to ESXi (another
    /// card is left as it is, docs/DPU.md).
    pub fn supported_dpus(&self) -> impl Iterator<Item = &Dpu> {
        self.dpus.iter().filter(|d| d.identity.supported)
    }

    /// The disk a `--disk`/`--ondisk` name stands for: any ESXi alias (`naa.…`, `t10.…`,
    /// `eui.…`, `mpx.…`, `vml.…`, with or without `/vmfs/devices/disks/` or `/dev/disks/`), or
    /// the Linux name. Errors list the disks, and refuse a name that fits two disks.
    pub fn resolve_disk(&self, name: &str) -> Result<&Disk, DiskLookupError> {
        select::resolve(&self.disks, name)
    }

    /// The `--firstdisk` choice with the filter that made it. An empty filter list stands for
    /// `local,remote,usb`. `esx_only` keeps only disks holding ESXi (the upgrade case).
    pub fn first_disk_choice(
        &self,
        filters: &[String],
        ignore_ssd: bool,
        esx_only: bool,
    ) -> Result<FirstDiskChoice<'_>, DiskLookupError> {
        select::first_disk(&self.disks, filters, ignore_ssd, esx_only)
    }

    pub fn first_disk(
        &self,
        filters: &[String],
        ignore_ssd: bool,
        esx_only: bool,
    ) -> Option<&Disk> {
        self.first_disk_choice(filters, ignore_ssd, esx_only)
            .ok()
            .map(|c| c.disk)
    }

    /// All DSE findings, including those about the slots `--dpuPciSlots` names.
    pub fn dpu_findings(&self, dpu_pci_slots: &[String]) -> Vec<DpuFinding> {
        findings::findings(&self.dpus, dpu_pci_slots)
    }
}
