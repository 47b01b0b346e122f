//! Which disks may be cleared or installed to: pure rules over plain facts from the inventory.
//!
//! `clearpart` (kickstart.md §1.2): exactly one of `--drives`, `--alldrives`, `--ignoredrives`,
//! `--firstdisk`; `--overwritevmfs` is needed for any disk holding VMFS; `--alldrives` skips USB
//! disks whose table type is `loop` (the installer stick); repeated `clearpart` lines accumulate.
//! On top of that, and whatever the kickstart says: never the disk the installer booted from.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What the inventory knows about one disk, reduced to what these rules need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskFacts {
    /// Canonical name (`naa.…`, `t10.…`, `mpx.…`).
    pub id: String,
    /// Every other name the kickstart may use for it (UIDs, `/vmfs/devices/disks/…`, …).
    pub aliases: Vec<String>,
    /// The installer booted from this disk (or it holds the install media).
    pub is_boot_media: bool,
    /// It holds a VMFS or VMFS-L partition.
    pub has_vmfs: bool,
    /// A USB disk whose partition table type is `loop` (an installer stick).
    pub is_usb_loop: bool,
}

impl DiskFacts {
    fn answers_to(&self, name: &str) -> bool {
        self.id == name || self.aliases.iter().any(|a| a == name)
    }
}

/// Which disks one `clearpart` line names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClearpartTarget {
    /// `--drives=a,b`
    Drives(Vec<String>),
    /// `--alldrives`
    AllDrives,
    /// `--ignoredrives=a,b`
    IgnoreDrives(Vec<String>),
    /// `--firstdisk[=…]`, already resolved by the `--firstdisk` filter (the one `install` uses)
    /// to the chosen disk's id, or `None` if no eligible disk matched.
    FirstDisk(Option<String>),
}

/// One `clearpart` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clearpart {
    pub target: ClearpartTarget,
    pub overwrite_vmfs: bool,
}

/// Why a disk may not be cleared or installed to.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "refusal")]
pub enum SafetyRefusal {
    #[error("clearpart: no disk is called \"{name}\"; available: {}", .available.join(", "))]
    UnknownDrive {
        name: String,
        available: Vec<String>,
    },
    #[error("{disk} is the disk the installer booted from; it is never cleared or installed to")]
    BootMedia { disk: String },
    #[error("clearpart --overwritevmfs not specified but {disk} contains a VMFS partition")]
    VmfsWithoutOverwrite { disk: String },
    #[error("clearpart --firstdisk: no eligible disk matched")]
    NoFirstDisk,
    #[error("part: {disk} is the install disk; a part datastore must go to another disk")]
    PartOnInstallDisk { disk: String },
}

impl SafetyRefusal {
    /// Every refusal is a precondition failure for the process exit code.
    pub fn outcome(&self) -> crate::exit::Outcome {
        crate::exit::Outcome::Precondition
    }
}

fn resolve<'d>(disks: &'d [DiskFacts], name: &str) -> Result<&'d DiskFacts, SafetyRefusal> {
    disks
        .iter()
        .find(|d| d.answers_to(name))
        .ok_or_else(|| SafetyRefusal::UnknownDrive {
            name: name.to_string(),
            available: disks.iter().map(|d| d.id.clone()).collect(),
        })
}

/// The disks the `clearpart` lines clear, in inventory order, or the first reason not to.
///
/// Choices where the spec is silent (documented in docs/LAYOUT.md): a name in `--ignoredrives`
/// that matches no disk is refused (a typo there would clear the disk meant to be kept);
/// `--ignoredrives` also skips installer sticks, as `--alldrives` does; the boot media is
/// skipped silently by `--alldrives`/`--ignoredrives` and refused when named or chosen.
pub fn clearpart_disks(
    disks: &[DiskFacts],
    lines: &[Clearpart],
) -> Result<Vec<String>, SafetyRefusal> {
    let mut chosen: Vec<(String, bool)> = Vec::new(); // (id, overwrite_vmfs)
    let mut add =
        |d: &DiskFacts, overwrite: bool| match chosen.iter_mut().find(|(id, _)| *id == d.id) {
            Some((_, o)) => *o |= overwrite,
            None => chosen.push((d.id.clone(), overwrite)),
        };
    for line in lines {
        let ow = line.overwrite_vmfs;
        match &line.target {
            ClearpartTarget::Drives(names) => {
                for name in names {
                    let d = resolve(disks, name)?;
                    if d.is_boot_media {
                        return Err(SafetyRefusal::BootMedia { disk: d.id.clone() });
                    }
                    add(d, ow);
                }
            }
            ClearpartTarget::AllDrives => {
                for d in disks {
                    if d.is_boot_media || d.is_usb_loop {
                        log::info!("clearpart --alldrives: skipping {} (install media)", d.id);
                    } else {
                        add(d, ow);
                    }
                }
            }
            ClearpartTarget::IgnoreDrives(names) => {
                let mut keep = Vec::new();
                for name in names {
                    keep.push(resolve(disks, name)?.id.clone());
                }
                for d in disks {
                    if keep.contains(&d.id) {
                        continue;
                    }
                    if d.is_boot_media || d.is_usb_loop {
                        log::info!(
                            "clearpart --ignoredrives: skipping {} (install media)",
                            d.id
                        );
                    } else {
                        add(d, ow);
                    }
                }
            }
            ClearpartTarget::FirstDisk(None) => return Err(SafetyRefusal::NoFirstDisk),
            ClearpartTarget::FirstDisk(Some(id)) => {
                let d = resolve(disks, id)?;
                if d.is_boot_media {
                    return Err(SafetyRefusal::BootMedia { disk: d.id.clone() });
                }
                add(d, ow);
            }
        }
    }
    for (id, overwrite) in &chosen {
        let has_vmfs = disks.iter().any(|d| d.id == *id && d.has_vmfs);
        if has_vmfs && !overwrite {
            return Err(SafetyRefusal::VmfsWithoutOverwrite { disk: id.clone() });
        }
    }
    Ok(chosen.into_iter().map(|(id, _)| id).collect())
}

/// `install` may not target the disk the installer booted from.
pub fn check_install_target(disk: &DiskFacts) -> Result<(), SafetyRefusal> {
    if disk.is_boot_media {
        return Err(SafetyRefusal::BootMedia {
            disk: disk.id.clone(),
        });
    }
    Ok(())
}

/// `part --ondisk=`: never the boot media, never the `install` disk.
pub fn check_part_target(disk: &DiskFacts, install_disk_id: &str) -> Result<(), SafetyRefusal> {
    check_install_target(disk)?;
    if disk.id == install_disk_id {
        return Err(SafetyRefusal::PartOnInstallDisk {
            disk: disk.id.clone(),
        });
    }
    Ok(())
}
