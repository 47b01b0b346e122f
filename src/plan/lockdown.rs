//! What the kernel's lockdown (on under UEFI Secure Boot) leaves of the DPU paths
//! (docs/IMAGE.md, "Secure Boot and lockdown"). NVIDIA's rshim driver reaches a BlueField on PCIe
//! through VFIO, UIO or by mapping the card's BAR through sysfs `resource0`; under lockdown the
//! last two are refused (`LOCKDOWN_PCI_ACCESS`) and the daemon itself gives up without VFIO
//! ("Need to enable IOMMU/VFIO for kernel lock-down", rshim-user-space `rshim_pcie.c`). VFIO
//! needs an IOMMU. devlink (Pensando), block writes and efivars are not affected.

use super::{refuse, PlanError};
use crate::exit::Outcome;
use crate::inventory::FirmwareState;

/// A BlueField reached through rshim on a locked-down kernel needs an IOMMU: refused before
/// anything is written, with what to do.
pub(super) fn check_rshim(fw: &FirmwareState, name: &str) -> Result<(), PlanError> {
    if fw.locked_down() && !fw.iommu {
        return Err(refuse(
            Outcome::Precondition,
            format!(
                "{name}: the kernel is locked down ({}, Secure Boot) and this machine has no IOMMU: NVIDIA's rshim maps the card only through VFIO under lockdown; enable VT-d/AMD-Vi in the firmware, or install with Secure Boot off",
                fw.lockdown.as_deref().unwrap_or("")
            ),
        ));
    }
    Ok(())
}
