//! The planned layout as data: every partition, every wipe, every file system; and the table
//! `--dry-run` prints.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::sizes::MIB;
use crate::partition::PartitionEntry;

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
