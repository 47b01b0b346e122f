//! A `part <name> --ondisk=<disk>` datastore disk: one VMFS partition on a disk other than the
//! install disk.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::model::{Action, Filesystem, Layout, PlannedPartition, Role, Wipe};
use super::request::{LayoutRefusal, MediaKind};
use super::sizes::{GPT_ENTRY_BYTES, GPT_ENTRY_SLOTS, MIB, MIN_DATASTORE_BYTES, WIPE_HEAD_BYTES};
use crate::partition::{types, PartitionEntry};

/// What `part <name> --ondisk=<disk>` needs: a datastore on a disk other than the install disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatastoreRequest {
    pub disk_id: String,
    pub disk_bytes: u64,
    pub logical_sector_size: u32,
    /// The datastore name given to `part`.
    pub name: String,
    /// The partitions on the disk now.
    pub existing: Vec<PartitionEntry>,
    /// A `clearpart` line names this disk (and `clearpart_disks` accepted it).
    pub cleared: bool,
}

/// Plan a `part` datastore disk: one VMFS partition, slot 1, from 1 MiB to the last usable LBA
/// (the way vSphere lays out a new datastore; UNCONFIRMED for the installer). The disk must be
/// empty or cleared; the name must not contain `/` nor start or end with a space.
pub fn plan_datastore_disk(req: &DatastoreRequest) -> Result<Layout, LayoutRefusal> {
    plan_datastore_disk_with_ids(req, &mut Uuid::new_v4)
}

/// [`plan_datastore_disk`] with identities drawn from `next_id`.
pub fn plan_datastore_disk_with_ids(
    req: &DatastoreRequest,
    next_id: &mut dyn FnMut() -> Uuid,
) -> Result<Layout, LayoutRefusal> {
    let disk = req.disk_id.clone();
    let name_refusal = |why: &str| LayoutRefusal::DatastoreName {
        name: req.name.clone(),
        why: why.to_string(),
    };
    if req.name.is_empty() {
        return Err(name_refusal("is empty"));
    }
    if req.name.contains('/') {
        return Err(name_refusal("contains '/'"));
    }
    if req.name.starts_with(' ') || req.name.ends_with(' ') {
        return Err(name_refusal("starts or ends with a space"));
    }
    if req.name.encode_utf16().count() > 36 {
        return Err(name_refusal("is longer than a GPT name (36 UTF-16 units)"));
    }
    if req.logical_sector_size != 512 && req.logical_sector_size != 4096 {
        return Err(LayoutRefusal::UnsupportedSectorSize {
            disk,
            size: req.logical_sector_size,
        });
    }
    let minimum = MIB + MIN_DATASTORE_BYTES + MIB;
    if req.disk_bytes < minimum {
        return Err(LayoutRefusal::DiskTooSmall {
            disk,
            bytes: req.disk_bytes,
            minimum,
            kind: MediaKind::SystemDisk,
        });
    }
    if !req.existing.is_empty() && !req.cleared {
        return Err(LayoutRefusal::DatastoreDiskNotEmpty {
            disk,
            numbers: req.existing.iter().map(|e| e.number).collect(),
        });
    }
    let ss = u64::from(req.logical_sector_size);
    let total_sectors = req.disk_bytes / ss;
    let array_sectors = (u64::from(GPT_ENTRY_SLOTS) * GPT_ENTRY_BYTES).div_ceil(ss);
    let first_usable = 2 + array_sectors;
    let last_usable = total_sectors - 2 - array_sectors;
    let first = MIB / ss;
    let entry = PartitionEntry {
        number: 1,
        type_guid: types::VMFS,
        part_guid: next_id(),
        first_lba: first,
        last_lba: last_usable,
        attributes: 0,
        name: req.name.clone(),
    };
    let head_last = first + WIPE_HEAD_BYTES / ss - 1;
    let wipes = vec![
        Wipe {
            first_lba: 0,
            last_lba: first - 1,
            why: "disk head: old MBR, GPT and volume signatures".into(),
        },
        Wipe {
            first_lba: first,
            last_lba: head_last,
            why: "partition 1 head: old file system signatures".into(),
        },
        Wipe {
            first_lba: total_sectors - MIB / ss,
            last_lba: total_sectors - 1,
            why: "partition 1 tail and old backup GPT".into(),
        },
    ];
    Ok(Layout {
        disk_id: disk,
        disk_bytes: req.disk_bytes,
        logical_sector_size: req.logical_sector_size,
        total_sectors,
        disk_guid: next_id(),
        first_usable_lba: first_usable,
        last_usable_lba: last_usable,
        partitions: vec![PlannedPartition {
            role: Role::Datastore,
            action: Action::Create,
            size_bytes: entry.sectors() * ss,
            entry,
            filesystem: Filesystem::VmfsByFirstBootScript {
                volume_name: req.name.clone(),
            },
        }],
        wipes,
        osdata_elsewhere: false,
        osdata_disk: None,
        warnings: Vec::new(),
    })
}
