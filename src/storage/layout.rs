//! The pure layout planner: from a [`LayoutRequest`] (plain facts about the target disk and the
//! options that steer partitioning) to a [`Layout`] (every partition, every wipe, every file
//! system, as data), or a typed [`LayoutRefusal`] the plan stage can branch on.
//!
//! In the spirit of systemd-repart, the partitions are *described* here and *realised* by
//! [`crate::storage::apply_layout`], which writes exactly what the `Layout` says and nothing else.
//! Nothing in this module touches a disk.
//!
//! The numbers come from `shared/spec/layout.md` §3 (observed ESXi 7/8 installs); see
//! `docs/LAYOUT.md` for the table, its sources and the choices made where the spec says
//! UNCONFIRMED.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::partition::{types, PartitionEntry};

/// One mebibyte.
pub const MIB: u64 = 1024 * 1024;
/// One gibibyte. The ESXi 7.0 documentation states "GB = 2^30 bytes" for these sizes.
pub const GIB: u64 = 1024 * MIB;

/// Smallest disk that may hold a full ESXi 8 system (HDD/SSD/NVMe/SAN): 32 GB (read as GiB).
pub use crate::partition::MIN_SYSTEM_DISK_BYTES;
/// Smallest USB/SD medium: 8 GB (read as GiB); it then holds the boot banks only.
pub use crate::partition::MIN_USB_SD_BYTES;
/// A VMFS datastore is created automatically only on media larger than 142 GB (read as GiB).
pub(crate) const DATASTORE_MEDIA_THRESHOLD_BYTES: u64 = 142 * GIB;
/// Below this much free space after ESX-OSData no datastore is created (UNCONFIRMED; VMFS6
/// volumes need about 1.3 GB, so 2 GiB is the conservative floor we chose).
pub(crate) const MIN_DATASTORE_BYTES: u64 = 2 * GIB;

/// Partition 1 starts at 32 KiB (LBA 64 with 512-byte sectors, as observed).
pub(crate) const SYSTEM_BOOT_START_BYTES: u64 = 32 * 1024;
/// Partition 1 is 100 MiB (LBA 64-204863 with 512-byte sectors).
pub(crate) const SYSTEM_BOOT_BYTES: u64 = 100 * MIB;
/// Partition 5 starts at 102 MiB (LBA 208896).
pub(crate) const BOOTBANK0_START_BYTES: u64 = 102 * MIB;
/// The gap between partitions 5, 6, 7 and 8.
pub(crate) const GAP_BYTES: u64 = MIB;

/// GPT entry slots we lay out (the array itself has 128 slots).
pub(crate) const GPT_ENTRY_SLOTS: u32 = 128;
/// Bytes per GPT entry.
pub(crate) const GPT_ENTRY_BYTES: u64 = 128;

/// Bytes zeroed at the start of every new partition: covers the superblocks of FAT, ext*, XFS,
/// btrfs (64 KiB), mdraid 1.1/1.2, LVM, ZFS front labels and VMFS/VMFS-L (1 and 2 MiB).
pub(crate) const WIPE_HEAD_BYTES: u64 = 4 * MIB;
/// Bytes zeroed at the end of every new partition: mdraid 0.90/1.0 and ZFS back labels.
pub(crate) const WIPE_TAIL_BYTES: u64 = MIB;

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

/// What a planned partition is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    SystemBoot,
    BootBank0,
    BootBank1,
    OsData,
    Datastore,
}

/// The file system a partition gets (or keeps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Filesystem {
    /// Formatted FAT16 by `apply`. Boot banks have two reserved sectors and carry the VMware FAT
    /// signature with `bank_uuid` in the second sector.
    Fat16 {
        label: String,
        volume_id: u32,
        bytes_per_cluster: u32,
        reserved_sectors: u16,
        bank_uuid: Option<Uuid>,
    },
    /// Typed VMFS-L, left unformatted (wiped): the host formats it at first boot.
    VmfslAtFirstBoot,
    /// Typed VMFS, left unformatted (wiped): the host formats it at first boot.
    VmfsAtFirstBoot,
    /// Kept as it is (`--preservevmfs`): not one byte of it is written.
    Preserved,
    /// A `part` datastore on another disk: typed VMFS and wiped here; ESXi does not format such
    /// a partition by itself (UNCONFIRMED), so the plan stage must add a first-boot
    /// `vmkfstools -C vmfs6 -S <volume_name> <disk>:1`.
    VmfsByFirstBootScript { volume_name: String },
}

/// Create a new partition or keep an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Preserve,
}

/// One partition of the layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedPartition {
    pub role: Role,
    pub action: Action,
    /// The GPT entry as it will sit in slot `entry.number`.
    pub entry: PartitionEntry,
    pub size_bytes: u64,
    pub filesystem: Filesystem,
}

/// A range of sectors `apply` zeroes before writing anything else (old signatures).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wipe {
    pub first_lba: u64,
    /// Inclusive.
    pub last_lba: u64,
    pub why: String,
}

/// The complete storage plan for one disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub disk_id: String,
    pub disk_bytes: u64,
    pub logical_sector_size: u32,
    pub total_sectors: u64,
    pub disk_guid: Uuid,
    pub first_usable_lba: u64,
    pub last_usable_lba: u64,
    /// In slot order (ascending `entry.number`).
    pub partitions: Vec<PlannedPartition>,
    pub wipes: Vec<Wipe>,
    /// ESX-OSData is not on this disk (USB/SD): the plan stage must place it (`--systemdisk`).
    pub osdata_elsewhere: bool,
    /// The disk `--systemdisk` names for ESX-OSData, as the plan resolved it (a USB/SD install).
    #[serde(default)]
    pub osdata_disk: Option<String>,
    /// Things the user should know (e.g. `--preservevmfs` with no datastore to keep).
    pub warnings: Vec<String>,
}

impl Layout {
    /// The planned partition in GPT slot `number`.
    pub fn partition(&self, number: u32) -> Option<&PlannedPartition> {
        self.partitions.iter().find(|p| p.entry.number == number)
    }

    /// The partition numbers, ascending.
    pub fn numbers(&self) -> Vec<u32> {
        self.partitions.iter().map(|p| p.entry.number).collect()
    }

    /// The human-readable table `--dry-run` prints (the JSON plan is the serde form of `self`).
    pub fn dry_run_text(&self) -> String {
        let mut out = format!(
            "disk {}: {} ({} bytes), {}-byte sectors, GPT disk GUID {}, usable LBA {}-{}\n",
            self.disk_id,
            crate::size::human(self.disk_bytes),
            self.disk_bytes,
            self.logical_sector_size,
            self.disk_guid,
            self.first_usable_lba,
            self.last_usable_lba
        );
        out.push_str("  # action     first LBA     last LBA        size MiB  type GUID                             partition GUID                        name / file system\n");
        for p in &self.partitions {
            let e = &p.entry;
            let fs = match &p.filesystem {
                Filesystem::Fat16 {
                    label,
                    bytes_per_cluster,
                    bank_uuid,
                    ..
                } => match bank_uuid {
                    Some(u) => {
                        format!("FAT16 {label}, {bytes_per_cluster} B clusters, VMware bank {u}")
                    }
                    None => format!("FAT16 {label}, {bytes_per_cluster} B clusters"),
                },
                Filesystem::VmfslAtFirstBoot => "VMFS-L, formatted by ESXi at first boot".into(),
                Filesystem::VmfsAtFirstBoot => "VMFS, formatted by ESXi at first boot".into(),
                Filesystem::Preserved => "kept as is".into(),
                Filesystem::VmfsByFirstBootScript { volume_name } => {
                    format!("VMFS {volume_name:?}, formatted by a first-boot vmkfstools")
                }
            };
            let action = match p.action {
                Action::Create => "create",
                Action::Preserve => "preserve",
            };
            out.push_str(&format!(
                "{:>3} {:<8} {:>12} {:>12} {:>15}  {}  {}  {} / {}\n",
                e.number,
                action,
                e.first_lba,
                e.last_lba,
                p.size_bytes / MIB,
                e.type_guid,
                e.part_guid,
                e.name,
                fs
            ));
        }
        for w in &self.warnings {
            out.push_str(&format!("  warning: {w}\n"));
        }
        match (&self.osdata_disk, self.osdata_elsewhere) {
            (Some(d), true) => out.push_str(&format!(
                "  ESX-OSData is not on this disk: --systemdisk names {d}, which this installer does not partition (docs/LAYOUT.md)\n"
            )),
            (None, true) => {
                out.push_str("  ESX-OSData is not on this disk: it needs install --systemdisk=\n")
            }
            _ => {}
        }
        out
    }
}

/// Boot-bank size by media size (8.0 doc table: 500 MB | 1 GB | 4 GB | 4 GB for 8-10 | 10-32 |
/// 32-128 | >128 GB media). Observed: the 4 GB bank is 4 GiB - 1 MiB, the last MiB of its 4 GiB
/// slot being the gap. We apply the same "slot minus 1 MiB" to the smaller columns (UNCONFIRMED).
pub fn bootbank_slot_bytes(disk_bytes: u64) -> u64 {
    if disk_bytes < 10 * GIB {
        500 * MIB
    } else if disk_bytes < 32 * GIB {
        GIB
    } else {
        4 * GIB
    }
}

/// FAT16 cluster size for a volume of `bytes`: the smallest power of two (at least 2 KiB and one
/// sector) that keeps the cluster count under 65 000, well inside FAT16's 65 524. A 4 GiB - 1 MiB
/// bank gets 64 KiB clusters (fatfs's default would give 32 KiB and silently make it FAT32).
pub(crate) fn fat16_cluster_bytes(bytes: u64, sector: u32) -> u32 {
    let wanted = bytes.div_ceil(65_000).next_power_of_two();
    let floor = 2048u64.max(u64::from(sector));
    // 64 KiB is FAT16's largest cluster; with 512-byte sectors that is 128 sectors per cluster.
    wanted.clamp(floor, 64 * 1024) as u32
}

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

/// The disk's sectors as the GPT sees them (128 entry slots, primary and backup).
struct Geometry {
    /// Logical sector size in bytes.
    ss: u64,
    total_sectors: u64,
    first_usable: u64,
    last_usable: u64,
}

impl Geometry {
    /// Only called once the request passed [`check_request`] (supported sector size, disk at
    /// least the minimum), so the subtractions cannot underflow.
    fn of(disk_bytes: u64, logical_sector_size: u32) -> Geometry {
        let ss = u64::from(logical_sector_size);
        let total_sectors = disk_bytes / ss;
        let array_sectors = (u64::from(GPT_ENTRY_SLOTS) * GPT_ENTRY_BYTES).div_ceil(ss);
        Geometry {
            ss,
            total_sectors,
            first_usable: 2 + array_sectors,
            last_usable: total_sectors - 2 - array_sectors,
        }
    }

    fn lba(&self, bytes: u64) -> u64 {
        bytes / self.ss
    }
}

/// Refusals that depend on the request alone: sector size, disk size, a zero OSData size.
fn check_request(req: &LayoutRequest) -> Result<(), LayoutRefusal> {
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
fn existing_partitions_policy(
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
fn system_limit(
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
