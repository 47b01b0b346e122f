//! A GPT partition entry as it sits in its slot: shared by the inventory (what a disk holds now)
//! and the storage layout (what we keep or write).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Well-known partition type GUIDs of the ESXi 7/8 layout (../shared/spec/layout.md §3).
pub mod types {
    use uuid::{uuid, Uuid};
    /// EFI System partition (ESXi partition 1, "systemPartition").
    pub const EFI_SYSTEM: Uuid = uuid!("C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    /// Microsoft basic data (ESXi boot banks 5 and 6, "linuxNative" in partedUtil).
    pub const BASIC_DATA: Uuid = uuid!("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7");
    /// VMFS-L (ESXi partition 7, ESX-OSData).
    pub const VMFSL: Uuid = uuid!("4EB2EA39-7855-4790-A79E-FAE495E21F8D");
    /// VMFS datastore (ESXi partition 8).
    pub const VMFS: Uuid = uuid!("AA31E02A-400F-11DB-9590-000C2911D1B8");
    /// vSAN (UNCONFIRMED in the spec; used only to recognise, never to write).
    pub const VSAN: Uuid = uuid!("381CFCCC-7288-11E0-92EE-000C2911D0B2");
    /// vmkDiagnostic (core dump): partitions 7 and 9 of the ESXi 6.x layout, gone in 7.0.
    pub const VMK_DIAGNOSTIC: Uuid = uuid!("9D275380-40AD-11DB-BF97-000C2911D1B8");
}

/// The 16 bytes esx-boot looks for at the start of a boot bank's second sector, followed by the
/// bank's 16-byte UUID (layout.md, esx-boot `safeboot/vmfat.c`).
pub const VMWARE_FAT_MAGIC: &[u8; 16] = b"VMWARE FAT16    ";

/// The smallest disk ESXi 7/8 installs to: 32 GB for a system disk, 8 GB for USB/SD boot media
/// (layout.md §3). The 7.0 documentation defines GB as 2^30 bytes; reading the minimums in GiB is
/// also the safe side. The inventory (`--firstdisk` eligibility) and the storage planner (refusal)
/// both use these, so a disk the one picks is never refused by the other for its size.
pub const MIN_SYSTEM_DISK_BYTES: u64 = 32 << 30;
/// See [`MIN_SYSTEM_DISK_BYTES`].
pub const MIN_USB_SD_BYTES: u64 = 8 << 30;

/// One used GPT entry. `number` is the 1-based entry slot, which is what ESXi's bootloader and
/// `partedUtil` call the partition number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionEntry {
    pub number: u32,
    pub type_guid: Uuid,
    pub part_guid: Uuid,
    pub first_lba: u64,
    /// Inclusive, as in the GPT entry.
    pub last_lba: u64,
    pub attributes: u64,
    pub name: String,
}

impl PartitionEntry {
    /// The entry in slot `number` as the `gpt` crate read it.
    pub(crate) fn from_gpt(number: u32, p: &gpt::partition::Partition) -> PartitionEntry {
        PartitionEntry {
            number,
            type_guid: p.part_type_guid.guid,
            part_guid: p.part_guid,
            first_lba: p.first_lba,
            last_lba: p.last_lba,
            attributes: p.flags,
            name: p.name.clone(),
        }
    }

    pub fn sectors(&self) -> u64 {
        self.last_lba
            .saturating_sub(self.first_lba)
            .saturating_add(1)
    }
}
