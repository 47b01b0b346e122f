//! The platform firmware as the kernel shows it: UEFI or BIOS, UEFI Secure Boot and setup mode
//! (EFI variables under `sys/firmware/efi/efivars`), and the kernel's lockdown
//! (`sys/kernel/security/lockdown`). Read through the sysroot like everything else, so a
//! recorded host carries it. docs/FIRSTBOOT.md says why it matters to an ESXi install: ESXi runs
//! no `%firstboot` script when Secure Boot is on, and the same firmware setting applies to the
//! ESXi that boots after us.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::sysroot::Sysroot;

/// The EFI global variable GUID (UEFI specification, `EFI_GLOBAL_VARIABLE`).
const EFI_GLOBAL: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// How the machine booted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootFirmware {
    Uefi,
    Bios,
    /// The sysroot has no `sys/firmware` at all (an older recording): not known.
    Unknown,
}

/// What the firmware and the kernel say about Secure Boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareState {
    pub boot: BootFirmware,
    /// `SecureBoot` variable: `Some(true)` on, `Some(false)` off, `None` not readable (BIOS, no
    /// efivarfs, or a recording without it).
    pub secure_boot: Option<bool>,
    /// `SetupMode`: `Some(true)` when no platform key is enrolled.
    pub setup_mode: Option<bool>,
    /// The kernel's lockdown mode (`none`, `integrity`, `confidentiality`), when the LSM is there.
    pub lockdown: Option<String>,
    /// An IOMMU is on (`sys/class/iommu` lists one): what VFIO, and so NVIDIA's rshim under
    /// lockdown, needs.
    #[serde(default)]
    pub iommu: bool,
}

impl FirmwareState {
    /// The kernel refuses mapping PCI BARs from user space (`integrity` or `confidentiality`).
    pub fn locked_down(&self) -> bool {
        matches!(
            self.lockdown.as_deref(),
            Some("integrity" | "confidentiality")
        )
    }
}

impl FirmwareState {
    /// One line for people: "UEFI, Secure Boot on, lockdown integrity".
    pub fn describe(&self) -> String {
        let boot = match self.boot {
            BootFirmware::Uefi => "UEFI",
            BootFirmware::Bios => "BIOS",
            BootFirmware::Unknown => "firmware not recorded",
        };
        let mut s = boot.to_string();
        match self.secure_boot {
            Some(true) => s.push_str(", Secure Boot on"),
            Some(false) => s.push_str(", Secure Boot off"),
            None if self.boot == BootFirmware::Uefi => s.push_str(", Secure Boot not readable"),
            None => {}
        }
        if self.setup_mode == Some(true) {
            s.push_str(" (setup mode)");
        }
        if let Some(l) = &self.lockdown {
            s.push_str(&format!(", lockdown {l}"));
        }
        s
    }
}

/// A boolean EFI variable: 4 attribute bytes, then one data byte.
fn efi_bool(sys: &Sysroot, name: &str) -> Option<bool> {
    let rel = Path::new("sys/firmware/efi/efivars").join(format!("{name}-{EFI_GLOBAL}"));
    match sys.bytes(&rel, 64) {
        Ok(Some(b)) if b.len() >= 5 => Some(b[4] == 1),
        Ok(Some(b)) => {
            log::warn!("{}: {} bytes, not an EFI variable", rel.display(), b.len());
            None
        }
        Ok(None) => None,
        Err(e) => {
            log::warn!("{e:#}");
            None
        }
    }
}

/// The bracketed word of `none [integrity] confidentiality`.
fn lockdown(sys: &Sysroot) -> Option<String> {
    let text = sys.attr_or_warn(Path::new("sys/kernel/security/lockdown"))?;
    let start = text.find('[')?;
    let end = text[start..].find(']')? + start;
    Some(text[start + 1..end].to_string())
}

pub fn read(sys: &Sysroot) -> FirmwareState {
    let boot = if sys.exists(Path::new("sys/firmware/efi")) {
        BootFirmware::Uefi
    } else if sys.exists(Path::new("sys/firmware")) {
        BootFirmware::Bios
    } else {
        BootFirmware::Unknown
    };
    FirmwareState {
        boot,
        secure_boot: efi_bool(sys, "SecureBoot"),
        setup_mode: efi_bool(sys, "SetupMode"),
        lockdown: lockdown(sys),
        iommu: sys
            .list(Path::new("sys/class/iommu"))
            .is_ok_and(|l| !l.is_empty()),
    }
}
