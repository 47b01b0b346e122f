//! What the planner is asked (the disk and the options that steer partitioning, as plain data)
//! and why it refuses (typed: the plan stage branches on it).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::sizes::GIB;
use crate::partition::PartitionEntry;

/// What kind of medium the ESXi system goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// HDD, SSD, NVMe, SAN LUN: needs 32 GB, holds every system partition.
    SystemDisk,
    /// USB stick or SD card: needs 8 GB, holds only partitions 1, 5 and 6; ESX-OSData must go to
    /// another disk (`install --systemdisk=`), which the plan stage arranges.
    UsbOrSd,
}

impl std::fmt::Display for MediaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MediaKind::SystemDisk => "a system disk",
            MediaKind::UsbOrSd => "USB/SD boot media",
        })
    }
}

/// The `systemMediaSize=` boot option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemMediaSize {
    /// System partitions total 32 GiB.
    Min,
    /// System partitions total 64 GiB.
    Small,
    /// System partitions total 128 GiB (ends exactly at LBA 268435455 with 512-byte sectors).
    #[default]
    Default,
    /// System partitions take the whole disk (no datastore).
    Max,
}

impl SystemMediaSize {
    /// Where the system partitions end (exclusive, bytes from the disk start), if capped.
    pub(crate) fn cap_bytes(self) -> Option<u64> {
        match self {
            SystemMediaSize::Min => Some(32 * GIB),
            SystemMediaSize::Small => Some(64 * GIB),
            SystemMediaSize::Default => Some(128 * GIB),
            SystemMediaSize::Max => None,
        }
    }
}

/// What to do about VMFS already on the target disk (`install --overwritevmfs|--preservevmfs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmfsPolicy {
    /// Neither option: a disk holding VMFS (or VMFS-L) is refused.
    #[default]
    Refuse,
    /// `--overwritevmfs`: the disk is repartitioned, VMFS included.
    Overwrite,
    /// `--preservevmfs`: the VMFS datastore partition is kept, entry and bytes.
    Preserve,
}

/// Everything the planner needs, as plain data (no kickstart model, no device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutRequest {
    /// How the disk is called in messages (canonical name from the inventory).
    pub disk_id: String,
    pub disk_bytes: u64,
    /// 512 or 4096.
    pub logical_sector_size: u32,
    pub kind: MediaKind,
    pub media_size: SystemMediaSize,
    /// `autoPartitionOSDataSize=` in MiB: sets ESX-OSData's size instead of `systemMediaSize`.
    pub osdata_size_mib: Option<u64>,
    /// `install --novmfsondisk`.
    pub no_vmfs_on_disk: bool,
    /// The partitions on the disk now, as the inventory read them.
    pub existing: Vec<PartitionEntry>,
    /// Of `existing`, the VMFS and VMFS-L partitions with no file system (their head reads as
    /// zeros: an install of ours that stopped half way): no datastore, no consent needed.
    #[serde(default)]
    pub unformatted: Vec<u32>,
    pub vmfs_policy: VmfsPolicy,
    /// `install --overwritevsan`.
    pub overwrite_vsan: bool,
}

impl LayoutRequest {
    /// A request for an empty disk with default options.
    pub fn new(disk_id: impl Into<String>, disk_bytes: u64, logical_sector_size: u32) -> Self {
        LayoutRequest {
            disk_id: disk_id.into(),
            disk_bytes,
            logical_sector_size,
            kind: MediaKind::SystemDisk,
            media_size: SystemMediaSize::Default,
            osdata_size_mib: None,
            no_vmfs_on_disk: false,
            existing: Vec::new(),
            unformatted: Vec::new(),
            vmfs_policy: VmfsPolicy::Refuse,
            overwrite_vsan: false,
        }
    }
}

/// Why the planner will not lay out this disk. Nothing has been written when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "refusal")]
pub enum LayoutRefusal {
    #[error("{disk}: logical sector size {size} is not supported (only 512 and 4096)")]
    UnsupportedSectorSize { disk: String, size: u32 },
    #[error("{disk} is too small: {} ({bytes} bytes); the minimum for {kind} is {} ({minimum} bytes)", crate::size::human(*.bytes), crate::size::human(*.minimum))]
    DiskTooSmall {
        disk: String,
        bytes: u64,
        minimum: u64,
        kind: MediaKind,
    },
    #[error("install --overwritevmfs not specified but {disk} contains a VMFS partition ({})", partition_list(.numbers))]
    VmfsPresent { disk: String, numbers: Vec<u32> },
    #[error(
        "{disk} is claimed by vSAN ({}); install --overwritevsan is needed", partition_list(.numbers)
    )]
    VsanClaimed { disk: String, numbers: Vec<u32> },
    #[error("--preservevmfs cannot be combined with --novmfsondisk")]
    PreserveWithNoVmfs,
    #[error("--preservevmfs: {disk} holds more than one VMFS datastore ({}); refusing to guess which to keep", partition_list(.numbers))]
    PreserveAmbiguous { disk: String, numbers: Vec<u32> },
    #[error("--preservevmfs: the datastore on {disk} is partition {number}, a slot the ESXi system partitions need (1, 5, 6, 7)")]
    PreserveSlotTaken { disk: String, number: u32 },
    #[error("--preservevmfs: partition {number} on {disk} (LBA {first_lba}-{last_lba}) lies outside the usable area LBA {first_usable}-{last_usable}")]
    PreserveOutOfBounds {
        disk: String,
        number: u32,
        first_lba: u64,
        last_lba: u64,
        first_usable: u64,
        last_usable: u64,
    },
    #[error("--preservevmfs: the system partitions do not fit in front of the datastore on {disk}: they need the first {}, the datastore (partition {number}) starts at {}", crate::size::human(*.needed_bytes), crate::size::human(*.datastore_start_bytes))]
    PreserveNoRoom {
        disk: String,
        number: u32,
        needed_bytes: u64,
        datastore_start_bytes: u64,
    },
    #[error("autoPartitionOSDataSize={requested_mib} does not fit on {disk}: at most {available_mib} MiB are free for ESX-OSData")]
    OsDataTooLarge {
        disk: String,
        requested_mib: u64,
        available_mib: u64,
    },
    #[error("autoPartitionOSDataSize=0 is not a size")]
    OsDataZero,
    #[error("part: {disk} is not empty ({}) and no clearpart names it", partition_list(.numbers))]
    DatastoreDiskNotEmpty { disk: String, numbers: Vec<u32> },
    #[error("part: datastore name {name:?} {why}")]
    DatastoreName { name: String, why: String },
}

/// `partition 7`, `partitions 7 and 8`, `partitions 2, 3 and 9`: for messages, not `[7, 8]`.
fn partition_list(numbers: &[u32]) -> String {
    let n: Vec<String> = numbers.iter().map(u32::to_string).collect();
    match n.as_slice() {
        [] => "no partition".into(),
        [one] => format!("partition {one}"),
        [rest @ .., last] => format!("partitions {} and {last}", rest.join(", ")),
    }
}

impl LayoutRefusal {
    /// Every refusal is a precondition failure for the process exit code.
    pub fn outcome(&self) -> crate::exit::Outcome {
        crate::exit::Outcome::Precondition
    }
}
