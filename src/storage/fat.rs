//! FAT16 on partitions 1, 5 and 6, and the VMware FAT signature of the boot banks.
//!
//! ESXi's bootloader (esx-boot `safeboot`) accepts a boot bank only if the partition's second
//! sector starts with `VMWARE FAT16    ` followed by the bank's 16-byte UUID, so the FAT16 volume
//! needs two reserved sectors (boot sector, then this one). `fatfs` 0.3.6 always formats FAT16
//! with exactly one. Rather than write a FAT formatter by hand, we let `fatfs` format the volume
//! into a slice that starts one sector into the partition and is one sector shorter: it computes
//! the geometry and writes the boot sector, both FATs and the root directory (with the label).
//! We then move its boot sector to sector 0 with `reserved_sectors` and `total_sectors` each
//! one higher. Every region keeps its absolute position (FATs from sector 2, then the root
//! directory, then the data area) and the data area keeps its size, so the cluster count, and
//! with it the FAT type, is exactly what `fatfs` chose. Sector 1 (which held `fatfs`'s boot
//! sector) is then overwritten with the signature. We re-open the result with `fatfs` and check
//! it is FAT16; `fatfs` is also what later stages use to write files into the banks.

use anyhow::{bail, Context, Result};
use fatfs::{FatType, FileSystem, FormatVolumeOptions, FsOptions};
use fscommon::{BufStream, StreamSlice};
use uuid::Uuid;

use super::blockdev::BlockDev;
use crate::partition::PartitionEntry;

/// The 16 bytes esx-boot looks for at the start of a boot bank's second sector.
pub const VMWARE_FAT_MAGIC: &[u8; 16] = b"VMWARE FAT16    ";

/// A FAT file system on one partition of a [`BlockDev`], as `fatfs` sees it.
pub type FatVolume<'a> = FileSystem<BufStream<StreamSlice<&'a mut BlockDev>>>;

/// What a formatted FAT volume reads back as.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FatReport {
    pub number: u32,
    pub fat_type: String,
    pub label: String,
    pub volume_id: u32,
    pub bytes_per_cluster: u32,
    pub total_clusters: u32,
    pub bank_uuid: Option<Uuid>,
}

/// How to format one partition.
#[derive(Debug, Clone)]
pub struct FatSpec<'s> {
    pub label: &'s str,
    pub volume_id: u32,
    pub bytes_per_cluster: u32,
    /// `Some` for a boot bank: two reserved sectors and the VMware FAT signature.
    pub bank_uuid: Option<Uuid>,
}

fn byte_range(entry: &PartitionEntry, sector: u32) -> (u64, u64) {
    let ss = u64::from(sector);
    (entry.first_lba * ss, (entry.last_lba + 1) * ss)
}

pub(crate) fn label_bytes(label: &str) -> Result<[u8; 11]> {
    if label.len() > 11 || !label.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        bail!("FAT label {label:?} must be at most 11 printable ASCII characters");
    }
    let mut out = [b' '; 11];
    for (o, b) in out.iter_mut().zip(label.bytes()) {
        *o = b.to_ascii_uppercase();
    }
    Ok(out)
}

/// A FAT16 cluster size must be a power of two, at least a sector, at most 64 KiB (fatfs asserts,
/// i.e. panics, on more than 255 sectors per cluster: we refuse before calling it).
pub(crate) fn check_cluster_size(bytes_per_cluster: u32, sector: u32) -> Result<()> {
    let spc = bytes_per_cluster / sector;
    if spc == 0
        || spc > 128
        || !spc.is_power_of_two()
        || bytes_per_cluster % sector != 0
        || bytes_per_cluster > 65536
    {
        bail!("cluster size {bytes_per_cluster} does not suit {sector}-byte sectors");
    }
    Ok(())
}

/// Format partition `entry` of `dev` as FAT16 according to `spec`, then check the result.
pub fn format_fat16(
    dev: &mut BlockDev,
    entry: &PartitionEntry,
    spec: &FatSpec,
) -> Result<FatReport> {
    let sector = dev.logical_sector_size();
    let ss = u64::from(sector);
    let (start, end) = byte_range(entry, sector);
    let path = dev.path().display().to_string();
    let n = entry.number;
    let total = u32::try_from(entry.sectors())
        .with_context(|| format!("{path} partition {n}: too many sectors for FAT16"))?;
    check_cluster_size(spec.bytes_per_cluster, sector)?;
    let reserved_extra: u32 = if spec.bank_uuid.is_some() { 1 } else { 0 };
    let opts = FormatVolumeOptions::new()
        .bytes_per_sector(sector as u16)
        .total_sectors(total - reserved_extra)
        .bytes_per_cluster(spec.bytes_per_cluster)
        .fat_type(FatType::Fat16)
        .fats(2)
        .volume_id(spec.volume_id)
        .volume_label(label_bytes(spec.label)?);
    {
        let slice = StreamSlice::new(&mut *dev, start + u64::from(reserved_extra) * ss, end)
            .with_context(|| format!("{path} partition {n}: opening the FAT area"))?;
        fatfs::format_volume(BufStream::new(slice), opts)
            .with_context(|| format!("{path} partition {n}: formatting FAT16"))?;
    }

    let mut boot = vec![0u8; sector as usize];
    dev.read_at(start + u64::from(reserved_extra) * ss, &mut boot)?;
    if reserved_extra == 1 {
        // Move the boot sector one sector down with one more reserved and one more total sector.
        let reserved = u16::from_le_bytes([boot[0x0E], boot[0x0F]]) + 1;
        boot[0x0E..0x10].copy_from_slice(&reserved.to_le_bytes());
        let t16 = u16::from_le_bytes([boot[0x13], boot[0x14]]);
        let t32 = u32::from_le_bytes([boot[0x20], boot[0x21], boot[0x22], boot[0x23]]);
        let new_total = if t16 != 0 { u32::from(t16) } else { t32 } + 1;
        if new_total != total {
            bail!(
                "{path} partition {n}: fatfs used {} sectors, expected {}",
                new_total - 1,
                total - 1
            );
        }
        match u16::try_from(new_total) {
            Ok(v) if t16 != 0 => boot[0x13..0x15].copy_from_slice(&v.to_le_bytes()),
            _ => {
                boot[0x13..0x15].copy_from_slice(&0u16.to_le_bytes());
                boot[0x20..0x24].copy_from_slice(&new_total.to_le_bytes());
            }
        }
    }
    // Hidden sectors: the partition's start, as mkfs.fat records it (0 if beyond 32 bits).
    let hidden = u32::try_from(entry.first_lba).unwrap_or(0);
    boot[0x1C..0x20].copy_from_slice(&hidden.to_le_bytes());
    dev.write_at(start, &boot)?;
    if let Some(uuid) = spec.bank_uuid {
        write_bank_signature(dev, entry, uuid)?;
    }

    let report = inspect_fat(dev, entry)?;
    if report.fat_type != "FAT16" {
        return Err(super::VerifyFailed(format!(
            "{path} partition {n}: formatted as {}, not FAT16",
            report.fat_type
        ))
        .into());
    }
    if report.bank_uuid != spec.bank_uuid {
        return Err(super::VerifyFailed(format!(
            "{path} partition {n}: VMware FAT signature did not read back"
        ))
        .into());
    }
    Ok(report)
}

/// Write `VMWARE FAT16    ` + `uuid` as the partition's second sector (rest zero).
pub fn write_bank_signature(dev: &mut BlockDev, entry: &PartitionEntry, uuid: Uuid) -> Result<()> {
    let sector = dev.logical_sector_size();
    let mut buf = vec![0u8; sector as usize];
    buf[..16].copy_from_slice(VMWARE_FAT_MAGIC);
    buf[16..32].copy_from_slice(uuid.as_bytes());
    dev.write_at((entry.first_lba + 1) * u64::from(sector), &buf)
}

/// The bank UUID in the partition's second sector, if it carries the VMware FAT signature.
pub fn read_bank_signature(dev: &mut BlockDev, entry: &PartitionEntry) -> Result<Option<Uuid>> {
    let mut buf = [0u8; 32];
    dev.read_at(
        (entry.first_lba + 1) * u64::from(dev.logical_sector_size()),
        &mut buf,
    )?;
    if &buf[..16] != VMWARE_FAT_MAGIC {
        return Ok(None);
    }
    let mut u = [0u8; 16];
    u.copy_from_slice(&buf[16..]);
    Ok(Some(Uuid::from_bytes(u)))
}

/// Open the FAT file system of partition `entry` (for writing files into it later).
pub fn open_fat<'a>(dev: &'a mut BlockDev, entry: &PartitionEntry) -> Result<FatVolume<'a>> {
    let (start, end) = byte_range(entry, dev.logical_sector_size());
    let path = dev.path().display().to_string();
    let n = entry.number;
    let slice = StreamSlice::new(dev, start, end)
        .with_context(|| format!("{path} partition {n}: opening the FAT area"))?;
    FileSystem::new(BufStream::new(slice), FsOptions::new())
        .with_context(|| format!("{path} partition {n}: opening the FAT file system"))
}

/// Open partition `entry` read-only and report what kind of FAT it is.
pub fn inspect_fat(dev: &mut BlockDev, entry: &PartitionEntry) -> Result<FatReport> {
    let bank_uuid = read_bank_signature(dev, entry)?;
    let path = dev.path().display().to_string();
    let n = entry.number;
    let fs = open_fat(dev, entry)?;
    let stats = fs
        .stats()
        .with_context(|| format!("{path} partition {n}: reading FAT statistics"))?;
    let report = FatReport {
        number: n,
        fat_type: match fs.fat_type() {
            FatType::Fat12 => "FAT12",
            FatType::Fat16 => "FAT16",
            FatType::Fat32 => "FAT32",
        }
        .to_string(),
        label: fs.volume_label().trim_end().to_string(),
        volume_id: fs.volume_id(),
        bytes_per_cluster: fs.cluster_size(),
        total_clusters: stats.total_clusters(),
        bank_uuid,
    };
    fs.unmount()
        .with_context(|| format!("{path} partition {n}: closing the FAT file system"))?;
    Ok(report)
}
