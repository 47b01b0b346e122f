//! The system disk's layout: partition 1 (System Boot), the boot banks 5 and 6, ESX-OSData (7),
//! a fresh datastore (8) when the disk is large enough, and the wipes before anything is written.

use uuid::Uuid;

use super::model::{Action, Filesystem, Layout, PlannedPartition, Role, Wipe};
use super::policy::{check_request, existing_partitions_policy, system_limit};
use super::request::{LayoutRefusal, LayoutRequest, MediaKind};
use super::sizes::{
    bootbank_slot_bytes, fat16_cluster_bytes, Geometry, BOOTBANK0_START_BYTES,
    DATASTORE_MEDIA_THRESHOLD_BYTES, GAP_BYTES, MIB, MIN_DATASTORE_BYTES, SYSTEM_BOOT_BYTES,
    SYSTEM_BOOT_START_BYTES, WIPE_HEAD_BYTES, WIPE_TAIL_BYTES,
};
use crate::partition::{types, PartitionEntry};

/// Plan the layout, drawing fresh GUIDs, volume ids and bank UUIDs from `Uuid::new_v4`.
pub fn plan_layout(req: &LayoutRequest) -> Result<Layout, LayoutRefusal> {
    plan_layout_with_ids(req, &mut Uuid::new_v4)
}

fn volume_id_from(u: Uuid) -> u32 {
    let b = u.as_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Plan the layout with identities drawn from `next_id` (tests pass a deterministic source).
pub fn plan_layout_with_ids(
    req: &LayoutRequest,
    next_id: &mut dyn FnMut() -> Uuid,
) -> Result<Layout, LayoutRefusal> {
    check_request(req)?;
    let g = Geometry::of(req.disk_bytes, req.logical_sector_size);
    let mut warnings = Vec::new();
    let preserved = existing_partitions_policy(req, &mut warnings)?;
    let slot = bootbank_slot_bytes(req.disk_bytes);
    let limit = system_limit(req, &g, slot, preserved.as_ref())?;

    // The identities are drawn in a fixed order (partitions 1, 5, 6, 7, 8, then the disk GUID):
    // tests pass a deterministic source and compare the result.
    let mut partitions = boot_partitions(req, &g, slot, next_id);
    let osdata_elsewhere = match req.kind {
        MediaKind::UsbOrSd => {
            if req.osdata_size_mib.is_some() {
                warnings.push(
                    "autoPartitionOSDataSize= ignored: a USB/SD medium holds no ESX-OSData".into(),
                );
            }
            true
        }
        MediaKind::SystemDisk => {
            let p7 = osdata_partition(req, &g, slot, limit, next_id)?;
            let p7_last = p7.entry.last_lba;
            partitions.push(p7);
            if preserved.is_none() && !req.no_vmfs_on_disk {
                partitions.extend(fresh_datastore(req, &g, p7_last, &mut warnings, next_id));
            }
            false
        }
    };
    if let Some(p) = preserved {
        partitions.push(PlannedPartition {
            role: Role::Datastore,
            action: Action::Preserve,
            size_bytes: p.sectors() * g.ss,
            entry: p,
            filesystem: Filesystem::Preserved,
        });
    }
    partitions.sort_by_key(|p| p.entry.number);
    let wipes = plan_wipes(&g, &partitions);

    Ok(Layout {
        disk_id: req.disk_id.clone(),
        disk_bytes: req.disk_bytes,
        logical_sector_size: req.logical_sector_size,
        total_sectors: g.total_sectors,
        disk_guid: next_id(),
        first_usable_lba: g.first_usable,
        last_usable_lba: g.last_usable,
        partitions,
        wipes,
        osdata_elsewhere,
        osdata_disk: None,
        warnings,
    })
}

/// A FAT16 file system for partition 1 or a boot bank; draws the volume id, then (banks only)
/// the bank UUID.
fn fat_filesystem(
    label: &str,
    bytes: u64,
    bank: bool,
    sector: u32,
    next_id: &mut dyn FnMut() -> Uuid,
) -> Filesystem {
    Filesystem::Fat16 {
        label: label.to_string(),
        volume_id: volume_id_from(next_id()),
        bytes_per_cluster: fat16_cluster_bytes(bytes, sector),
        reserved_sectors: if bank { 2 } else { 1 },
        bank_uuid: if bank { Some(next_id()) } else { None },
    }
}

/// A boot bank's FAT16 for an upgrade's reformat: the bank keeps its UUID (ESXi names the
/// volume by it), gets a fresh volume id and the cluster size a fresh install gives it.
pub fn bank_filesystem(
    label: &str,
    bytes: u64,
    sector: u32,
    bank_uuid: Uuid,
    fresh: Uuid,
) -> Filesystem {
    Filesystem::Fat16 {
        label: label.to_string(),
        volume_id: volume_id_from(fresh),
        bytes_per_cluster: fat16_cluster_bytes(bytes, sector),
        reserved_sectors: 2,
        bank_uuid: Some(bank_uuid),
    }
}

/// A new GPT entry with a partition GUID drawn from `next_id`.
fn new_entry(
    number: u32,
    type_guid: Uuid,
    (first_lba, last_lba): (u64, u64),
    attributes: u64,
    name: &str,
    next_id: &mut dyn FnMut() -> Uuid,
) -> PartitionEntry {
    PartitionEntry {
        number,
        type_guid,
        part_guid: next_id(),
        first_lba,
        last_lba,
        attributes,
        name: name.to_string(),
    }
}

/// Partition 1 (System Boot) and partitions 5 and 6 (the boot banks), at fixed offsets.
fn boot_partitions(
    req: &LayoutRequest,
    g: &Geometry,
    slot: u64,
    next_id: &mut dyn FnMut() -> Uuid,
) -> Vec<PlannedPartition> {
    let sector = req.logical_sector_size;
    let bank_bytes = slot - GAP_BYTES;
    let mut partitions = Vec::new();
    // Partition 1: System Boot. Attribute bit 2 (legacy BIOS bootable) is how we read
    // partedUtil's "128" for systemPartition (UNCONFIRMED; inert for UEFI boot).
    let p1_first = g.lba(SYSTEM_BOOT_START_BYTES);
    let p1_last = p1_first + g.lba(SYSTEM_BOOT_BYTES) - 1;
    let fs = fat_filesystem("ESXIBOOT", SYSTEM_BOOT_BYTES, false, sector, next_id);
    partitions.push(PlannedPartition {
        role: Role::SystemBoot,
        action: Action::Create,
        entry: new_entry(
            1,
            types::EFI_SYSTEM,
            (p1_first, p1_last),
            1 << 2,
            "System Boot",
            next_id,
        ),
        size_bytes: SYSTEM_BOOT_BYTES,
        filesystem: fs,
    });
    // Partitions 5 and 6: the boot banks.
    for (i, (number, role, label)) in [
        (5, Role::BootBank0, "BOOTBANK1"),
        (6, Role::BootBank1, "BOOTBANK2"),
    ]
    .into_iter()
    .enumerate()
    {
        let first = g.lba(BOOTBANK0_START_BYTES + i as u64 * slot);
        let last = first + g.lba(bank_bytes) - 1;
        let fs = fat_filesystem(label, bank_bytes, true, sector, next_id);
        partitions.push(PlannedPartition {
            role,
            action: Action::Create,
            entry: new_entry(number, types::BASIC_DATA, (first, last), 0, label, next_id),
            size_bytes: bank_bytes,
            filesystem: fs,
        });
    }
    partitions
}

/// Partition 7: ESX-OSData, after the boot banks, up to `limit` (or the requested size, or the
/// media-size cap).
fn osdata_partition(
    req: &LayoutRequest,
    g: &Geometry,
    slot: u64,
    limit: u64,
    next_id: &mut dyn FnMut() -> Uuid,
) -> Result<PlannedPartition, LayoutRefusal> {
    let p7_first = g.lba(BOOTBANK0_START_BYTES + 2 * slot);
    let p7_last = match req.osdata_size_mib {
        Some(mib) => {
            let available_mib = (limit + 1).saturating_sub(p7_first) * g.ss / MIB;
            if mib > available_mib {
                return Err(LayoutRefusal::OsDataTooLarge {
                    disk: req.disk_id.clone(),
                    requested_mib: mib,
                    available_mib,
                });
            }
            p7_first + g.lba(mib * MIB) - 1
        }
        None => match req.media_size.cap_bytes() {
            Some(cap) => (g.lba(cap) - 1).min(limit),
            None => limit,
        },
    };
    Ok(PlannedPartition {
        role: Role::OsData,
        action: Action::Create,
        entry: new_entry(
            7,
            types::VMFSL,
            (p7_first, p7_last),
            0,
            "ESX-OSData",
            next_id,
        ),
        size_bytes: (p7_last + 1 - p7_first) * g.ss,
        filesystem: Filesystem::VmfslAtFirstBoot,
    })
}

/// Partition 8: a fresh datastore after ESX-OSData, when the media is large enough and room is
/// left (otherwise none, with a log line or a warning).
fn fresh_datastore(
    req: &LayoutRequest,
    g: &Geometry,
    p7_last: u64,
    warnings: &mut Vec<String>,
    next_id: &mut dyn FnMut() -> Uuid,
) -> Option<PlannedPartition> {
    let disk = &req.disk_id;
    let gap = g.lba(GAP_BYTES);
    let p8_first = (p7_last + 1).next_multiple_of(gap) + gap;
    let room = (g.last_usable + 1).saturating_sub(p8_first) * g.ss;
    if req.disk_bytes <= DATASTORE_MEDIA_THRESHOLD_BYTES {
        log::info!("{disk}: no datastore, media not larger than 142 GiB");
        None
    } else if room < MIN_DATASTORE_BYTES {
        warnings.push(format!(
            "{disk}: no datastore: only {} MiB left after ESX-OSData",
            room / MIB
        ));
        None
    } else {
        Some(PlannedPartition {
            role: Role::Datastore,
            action: Action::Create,
            entry: new_entry(
                8,
                types::VMFS,
                (p8_first, g.last_usable),
                0,
                "VMFS Datastore",
                next_id,
            ),
            size_bytes: room,
            filesystem: Filesystem::VmfsAtFirstBoot,
        })
    }
}

/// Wipes: old signatures at the head and tail of every new partition, and the disk's own head
/// (old MBR/GPT/ISO9660 before partition 1) and tail (old backup GPT).
fn plan_wipes(g: &Geometry, partitions: &[PlannedPartition]) -> Vec<Wipe> {
    let p1_first = g.lba(SYSTEM_BOOT_START_BYTES);
    let p1_last = p1_first + g.lba(SYSTEM_BOOT_BYTES) - 1;
    let mut wipes = vec![Wipe {
        first_lba: 0,
        last_lba: p1_first - 1,
        why: "disk head: old MBR, GPT and volume signatures".into(),
    }];
    for p in partitions.iter().filter(|p| p.action == Action::Create) {
        let e = &p.entry;
        let head_last = (e.first_lba + g.lba(WIPE_HEAD_BYTES) - 1).min(e.last_lba);
        wipes.push(Wipe {
            first_lba: e.first_lba,
            last_lba: head_last,
            why: format!("partition {} head: old file system signatures", e.number),
        });
        let tail_first = (e.last_lba + 1)
            .saturating_sub(g.lba(WIPE_TAIL_BYTES))
            .max(head_last + 1);
        if tail_first <= e.last_lba {
            wipes.push(Wipe {
                first_lba: tail_first,
                last_lba: e.last_lba,
                why: format!("partition {} tail: old RAID/ZFS labels", e.number),
            });
        }
    }
    let used_end = partitions
        .iter()
        .map(|p| p.entry.last_lba)
        .max()
        .unwrap_or(p1_last);
    let tail_first = (g.total_sectors - g.lba(MIB)).max(used_end + 1);
    wipes.push(Wipe {
        first_lba: tail_first,
        last_lba: g.total_sectors - 1,
        why: "disk tail: old backup GPT".into(),
    });
    wipes
}
