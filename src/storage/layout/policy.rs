//! What is on the disk now and may the planner touch it: the request's own refusals, the VMFS
//! and vSAN consent rules, and where a preserved datastore leaves the system partitions room.

use super::request::{LayoutRefusal, LayoutRequest, MediaKind, VmfsPolicy};
use super::sizes::{
    Geometry, BOOTBANK0_START_BYTES, GAP_BYTES, GPT_ENTRY_SLOTS, MIB, MIN_SYSTEM_DISK_BYTES,
    MIN_USB_SD_BYTES,
};
use crate::partition::{types, PartitionEntry};

/// Refusals that depend on the request alone: sector size, disk size, a zero OSData size.
pub(super) fn check_request(req: &LayoutRequest) -> Result<(), LayoutRefusal> {
    let disk = req.disk_id.clone();
    if req.logical_sector_size != 512 && req.logical_sector_size != 4096 {
        return Err(LayoutRefusal::UnsupportedSectorSize {
            disk,
            size: req.logical_sector_size,
        });
    }
    let minimum = match req.kind {
        MediaKind::SystemDisk => MIN_SYSTEM_DISK_BYTES,
        MediaKind::UsbOrSd => MIN_USB_SD_BYTES,
    };
    if req.disk_bytes < minimum {
        return Err(LayoutRefusal::DiskTooSmall {
            disk,
            bytes: req.disk_bytes,
            minimum,
            kind: req.kind,
        });
    }
    if req.osdata_size_mib == Some(0) {
        return Err(LayoutRefusal::OsDataZero);
    }
    Ok(())
}

/// What is on the disk now, and may we touch it? Returns the datastore to preserve, if any.
pub(super) fn existing_partitions_policy(
    req: &LayoutRequest,
    warnings: &mut Vec<String>,
) -> Result<Option<PartitionEntry>, LayoutRefusal> {
    let disk = req.disk_id.clone();
    let numbers_of = |pred: &dyn Fn(&PartitionEntry) -> bool| -> Vec<u32> {
        req.existing
            .iter()
            .filter(|e| pred(e))
            .map(|e| e.number)
            .collect()
    };
    let vsan = numbers_of(&|e| e.type_guid == types::VSAN);
    if !vsan.is_empty() && !req.overwrite_vsan {
        return Err(LayoutRefusal::VsanClaimed {
            disk,
            numbers: vsan,
        });
    }
    // VMFS-L (an older install's OSData) is VMFS too: overwriting it destroys a host's state, so
    // it needs the same consent (UNCONFIRMED whether ESXi asks for it; refusing is the safe side).
    // A VMFS-typed partition with no file system holds nothing to protect or keep.
    let formatted = |e: &PartitionEntry| !req.unformatted.contains(&e.number);
    let any_vmfs = numbers_of(&|e| {
        (e.type_guid == types::VMFS || e.type_guid == types::VMFSL) && formatted(e)
    });
    let datastores = numbers_of(&|e| e.type_guid == types::VMFS && formatted(e));
    match req.vmfs_policy {
        VmfsPolicy::Refuse if !any_vmfs.is_empty() => Err(LayoutRefusal::VmfsPresent {
            disk,
            numbers: any_vmfs,
        }),
        VmfsPolicy::Refuse | VmfsPolicy::Overwrite => Ok(None),
        VmfsPolicy::Preserve => {
            if req.no_vmfs_on_disk {
                return Err(LayoutRefusal::PreserveWithNoVmfs);
            }
            let mut found = req
                .existing
                .iter()
                .filter(|e| e.type_guid == types::VMFS && formatted(e));
            match (found.next(), found.next()) {
                (None, _) => {
                    warnings.push(format!(
                        "--preservevmfs: {disk} holds no VMFS datastore; laying out a fresh disk"
                    ));
                    Ok(None)
                }
                (Some(e), None) => Ok(Some(e.clone())),
                (Some(_), Some(_)) => Err(LayoutRefusal::PreserveAmbiguous {
                    disk,
                    numbers: datastores,
                }),
            }
        }
    }
}

/// The last LBA the system partitions may use: the disk's last usable LBA, or the one before the
/// gap in front of a preserved datastore (which must sit in bounds, clear of our slots and far
/// enough out to leave the system partitions their room).
pub(super) fn system_limit(
    req: &LayoutRequest,
    g: &Geometry,
    slot: u64,
    preserved: Option<&PartitionEntry>,
) -> Result<u64, LayoutRefusal> {
    let Some(p) = preserved else {
        return Ok(g.last_usable);
    };
    let disk = req.disk_id.clone();
    if p.number == 0 || p.number > GPT_ENTRY_SLOTS {
        return Err(out_of_bounds(&disk, p, g.first_usable, g.last_usable));
    }
    let ours: &[u32] = match req.kind {
        MediaKind::SystemDisk => &[1, 5, 6, 7],
        MediaKind::UsbOrSd => &[1, 5, 6],
    };
    if ours.contains(&p.number) {
        return Err(LayoutRefusal::PreserveSlotTaken {
            disk,
            number: p.number,
        });
    }
    if p.first_lba < g.first_usable || p.last_lba > g.last_usable || p.first_lba > p.last_lba {
        return Err(out_of_bounds(&disk, p, g.first_usable, g.last_usable));
    }
    // Room needed in front of the datastore: what the smallest supported disk gives the
    // system partitions (or the explicit OSData size), plus the 1 MiB gap.
    let needed_bytes = match (req.kind, req.osdata_size_mib) {
        (MediaKind::UsbOrSd, _) => BOOTBANK0_START_BYTES + 2 * slot,
        (MediaKind::SystemDisk, Some(mib)) => {
            (BOOTBANK0_START_BYTES + 2 * slot + GAP_BYTES).saturating_add(mib.saturating_mul(MIB))
        }
        (MediaKind::SystemDisk, None) => MIN_SYSTEM_DISK_BYTES,
    };
    let datastore_start_bytes = p.first_lba * g.ss;
    if datastore_start_bytes < needed_bytes {
        return Err(LayoutRefusal::PreserveNoRoom {
            disk,
            number: p.number,
            needed_bytes,
            datastore_start_bytes,
        });
    }
    Ok(p.first_lba - g.lba(GAP_BYTES) - 1)
}

fn out_of_bounds(
    disk: &str,
    p: &PartitionEntry,
    first_usable: u64,
    last_usable: u64,
) -> LayoutRefusal {
    LayoutRefusal::PreserveOutOfBounds {
        disk: disk.to_string(),
        number: p.number,
        first_lba: p.first_lba,
        last_lba: p.last_lba,
        first_usable,
        last_usable,
    }
}
