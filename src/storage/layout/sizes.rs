//! The ESXi 8 layout's sizes and offsets (observed installs, `shared/spec/layout.md` §3; the
//! choices where it says UNCONFIRMED are in docs/LAYOUT.md), and the disk's sectors as the GPT
//! sees them.

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

/// The disk's sectors as the GPT sees them (128 entry slots, primary and backup).
pub(super) struct Geometry {
    /// Logical sector size in bytes.
    pub ss: u64,
    pub total_sectors: u64,
    pub first_usable: u64,
    pub last_usable: u64,
}

impl Geometry {
    /// Only called once the request passed `policy::check_request` (supported sector size, disk at
    /// least the minimum), so the subtractions cannot underflow.
    pub fn of(disk_bytes: u64, logical_sector_size: u32) -> Geometry {
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

    pub fn lba(&self, bytes: u64) -> u64 {
        bytes / self.ss
    }
}
