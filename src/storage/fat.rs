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

pub(crate) use crate::partition::VMWARE_FAT_MAGIC;

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
pub(crate) struct FatSpec<'s> {
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
pub(crate) fn format_fat16(
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
pub(crate) fn write_bank_signature(
    dev: &mut BlockDev,
    entry: &PartitionEntry,
    uuid: Uuid,
) -> Result<()> {
    let sector = dev.logical_sector_size();
    let mut buf = vec![0u8; sector as usize];
    buf[..16].copy_from_slice(VMWARE_FAT_MAGIC);
    buf[16..32].copy_from_slice(uuid.as_bytes());
    dev.write_at((entry.first_lba + 1) * u64::from(sector), &buf)
}

/// The bank UUID in the partition's second sector, if it carries the VMware FAT signature.
pub(crate) fn read_bank_signature(
    dev: &mut BlockDev,
    entry: &PartitionEntry,
) -> Result<Option<Uuid>> {
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
pub(crate) fn inspect_fat(dev: &mut BlockDev, entry: &PartitionEntry) -> Result<FatReport> {
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

/// The 11-byte short name FAT stores for a directory name we create (upper case, at most eight
/// characters, no extension).
fn short_dir_name(name: &str) -> Result<[u8; 11]> {
    if name.is_empty()
        || name.len() > 8
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        bail!("directory name {name:?}: we only create names of up to eight letters and digits");
    }
    let mut sfn = [b' '; 11];
    sfn[..name.len()].copy_from_slice(name.to_ascii_uppercase().as_bytes());
    Ok(sfn)
}

const DIR_ENTRY: usize = 32;
const ATTR_DIRECTORY: u8 = 0x10;
const ATTR_LFN: u8 = 0x0F;

/// Where a FAT16 volume keeps things, from its boot sector (offsets in bytes from the volume start).
struct Fat16Geometry {
    root_dir: u64,
    root_dir_bytes: u64,
    data: u64,
    cluster_bytes: u64,
}

fn fat16_geometry(boot: &[u8]) -> Result<Fat16Geometry> {
    let u16_at = |o: usize| u64::from(u16::from_le_bytes([boot[o], boot[o + 1]]));
    let bytes_per_sector = u16_at(11);
    let sectors_per_cluster = u64::from(boot[13]);
    let reserved = u16_at(14);
    let fats = u64::from(boot[16]);
    let root_entries = u16_at(17);
    let fat_sectors = u16_at(22);
    let cluster_bytes = sectors_per_cluster * bytes_per_sector;
    if ![512, 1024, 2048, 4096].contains(&bytes_per_sector)
        || !sectors_per_cluster.is_power_of_two()
        || !(512..=65536).contains(&cluster_bytes)
        || fat_sectors == 0
        || reserved == 0
        || !(1..=2).contains(&fats)
        || root_entries == 0
    {
        bail!("not a FAT16 boot sector we wrote");
    }
    let root_dir = (reserved + fats * fat_sectors) * bytes_per_sector;
    let root_dir_bytes = root_entries * DIR_ENTRY as u64;
    let data = root_dir + root_dir_bytes.div_ceil(bytes_per_sector) * bytes_per_sector;
    Ok(Fat16Geometry {
        root_dir,
        root_dir_bytes,
        data,
        cluster_bytes,
    })
}

/// The first cluster of the directory entry called `sfn` in `entries`, if there is one.
fn find_dir(entries: &[u8], sfn: &[u8; 11]) -> Option<u64> {
    entries
        .chunks_exact(DIR_ENTRY)
        .take_while(|e| e[0] != 0)
        .find_map(|e| {
            (e[0] != 0xE5 && e[11] & ATTR_DIRECTORY != 0 && e[11] != ATTR_LFN && e[..11] == sfn[..])
                .then(|| u64::from(u16::from_le_bytes([e[26], e[27]])))
        })
}

/// Create directory `path` (`EFI/BOOT`) on the FAT16 of partition `entry`, parents first.
///
/// `fatfs` 0.3.6 writes long-name entries in front of the `.` and `..` entries of every directory
/// it creates (rust-fatfs #117, fixed upstream after 0.3.6, never released); `fsck.fat` rejects
/// such a directory, and firmware FAT drivers need not accept it either. So right after `fatfs`
/// creates each directory (while it holds nothing else) we rewrite its first cluster to the
/// standard form: `.` and `..` as its first two entries. Files are still written with `fatfs`.
pub fn create_dir_all(dev: &mut BlockDev, entry: &PartitionEntry, path: &str) -> Result<()> {
    let dev_path = dev.path().display().to_string();
    let mut done = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        short_dir_name(part)?;
        if !done.is_empty() {
            done.push('/');
        }
        done.push_str(part);
        let created = {
            let fs = open_fat(dev, entry)?;
            let created = {
                let root = fs.root_dir();
                if root.open_dir(&done).is_ok() {
                    false
                } else {
                    root.create_dir(&done).with_context(|| {
                        format!("{dev_path} partition {}: creating /{done}", entry.number)
                    })?;
                    true
                }
            };
            fs.unmount().with_context(|| {
                format!(
                    "{dev_path} partition {}: closing the FAT file system",
                    entry.number
                )
            })?;
            created
        };
        if created {
            fix_dot_entries(dev, entry, &done).with_context(|| {
                format!("{dev_path} partition {}: fixing /{done}", entry.number)
            })?;
        }
    }
    Ok(())
}

fn fix_dot_entries(dev: &mut BlockDev, entry: &PartitionEntry, path: &str) -> Result<()> {
    let base = entry.first_lba * u64::from(dev.logical_sector_size());
    let mut boot = vec![0u8; 512];
    dev.read_at(base, &mut boot)?;
    let g = fat16_geometry(&boot)?;
    let part_bytes = entry.sectors() * u64::from(dev.logical_sector_size());
    let inside = |off: u64, len: u64| off.checked_add(len).is_some_and(|end| end <= part_bytes);
    if !inside(g.root_dir, g.root_dir_bytes) || !inside(g.data, 0) {
        bail!("FAT geometry points outside the partition");
    }
    let mut entries = vec![0u8; usize::try_from(g.root_dir_bytes)?];
    dev.read_at(base + g.root_dir, &mut entries)?;
    let mut cluster_data = vec![0u8; usize::try_from(g.cluster_bytes)?];
    let mut offset = 0;
    for part in path.split('/') {
        let cluster = find_dir(&entries, &short_dir_name(part)?)
            .with_context(|| format!("no directory {part} on the volume"))?;
        if cluster < 2 {
            bail!("directory {part} has first cluster {cluster}");
        }
        let rel = (cluster - 2)
            .checked_mul(g.cluster_bytes)
            .and_then(|r| r.checked_add(g.data))
            .context("cluster number out of range")?;
        if !inside(rel, g.cluster_bytes) {
            bail!("directory {part} lies outside the partition (cluster {cluster})");
        }
        offset = base + rel;
        dev.read_at(offset, &mut cluster_data)?;
        entries.clone_from(&cluster_data);
    }
    let is_dot = |e: &[u8], name: &[u8; 11]| e[..11] == name[..] && e[11] & ATTR_DIRECTORY != 0;
    let dot = *b".          ";
    let dotdot = *b"..         ";
    let e = |i: usize| &cluster_data[i * DIR_ENTRY..(i + 1) * DIR_ENTRY];
    if is_dot(e(0), &dot) && is_dot(e(1), &dotdot) {
        return Ok(()); // already standard (a fixed fatfs)
    }
    // What fatfs 0.3.6 writes: [LFN "."] [.] [LFN ".."] [..], then free entries.
    if !(e(0)[11] == ATTR_LFN
        && is_dot(e(1), &dot)
        && e(2)[11] == ATTR_LFN
        && is_dot(e(3), &dotdot)
        && e(4)[0] == 0)
    {
        bail!("unexpected entries at the start of a new directory");
    }
    let mut fixed = vec![0u8; cluster_data.len()];
    fixed[..DIR_ENTRY].copy_from_slice(e(1));
    fixed[DIR_ENTRY..2 * DIR_ENTRY].copy_from_slice(e(3));
    dev.write_at(offset, &fixed)
}

/// Check a path we will create on a FAT volume: directories as short names (see
/// `create_dir_all`), the file name as a valid long name. Called at plan time, so a bad name is
/// refused before anything is written.
pub(crate) fn check_fat_path(path: &str) -> Result<()> {
    let mut parts: Vec<&str> = path.split('/').collect();
    let file = parts.pop().unwrap_or_default();
    for d in parts {
        short_dir_name(d)?;
    }
    let bad = |c: char| c.is_control() || "\\/:*?\"<>|".contains(c);
    if file.is_empty()
        || file.len() > 255
        || file.chars().any(bad)
        || file.starts_with(' ')
        || file.ends_with(['.', ' '])
    {
        bail!("file name {file:?} is not valid on FAT");
    }
    Ok(())
}
