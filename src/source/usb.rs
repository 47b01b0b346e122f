//! `ks=usb` and `ks=usb:/PATH`: the kickstart on a FAT16/FAT32 file system of a USB or removable
//! disk below the sysroot, as ESXi finds it (spec §2): every such disk is tried, and the scan is
//! repeated a few times with a pause, because a stick may still be settling when the installer
//! starts.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use fscommon::{BufStream, StreamSlice};

use crate::inventory::{Disk, Inventory};

/// How hard to look. ESXi rescans 5 times, 10 seconds apart.
#[derive(Debug, Clone, Copy)]
pub struct UsbScan {
    pub attempts: u32,
    pub pause: Duration,
}

impl Default for UsbScan {
    fn default() -> Self {
        UsbScan {
            attempts: 5,
            pause: Duration::from_secs(10),
        }
    }
}

/// A file found on a disk: its bytes and where it was.
#[derive(Debug, Clone)]
pub struct Found {
    pub bytes: Vec<u8>,
    /// `/dev/sdb partition 1:/ks.cfg`, for messages and the diagnostics' file name.
    pub name: String,
    /// The device node below the sysroot.
    pub device: std::path::PathBuf,
}

/// Find `path` (e.g. `/ks.cfg`) on the first USB or removable disk that has it.
pub fn find(sysroot: &Path, path: &str, scan: UsbScan) -> Result<Found> {
    let mut why = Vec::new();
    for attempt in 0..scan.attempts.max(1) {
        if attempt > 0 {
            log::info!(
                "ks=usb: {path} not found yet; scanning again in {:?} (attempt {} of {})",
                scan.pause,
                attempt + 1,
                scan.attempts
            );
            std::thread::sleep(scan.pause);
        }
        why.clear();
        let inventory = Inventory::read(sysroot).context("listing the disks for ks=usb")?;
        let disks: Vec<&Disk> = inventory
            .disks
            .iter()
            .filter(|d| d.usb || d.removable)
            .collect();
        if disks.is_empty() {
            why.push("no USB or removable disk".to_string());
        }
        for d in disks {
            match find_on_disk(sysroot, d, path) {
                Ok(found) => return Ok(found),
                Err(e) => why.push(format!("{e:#}")),
            }
        }
    }
    anyhow::bail!(
        "ks=usb: no {path} on a FAT16/FAT32 file system of a USB disk after {} scan(s): {}",
        scan.attempts.max(1),
        why.join("; ")
    )
}

/// The byte ranges that may hold a FAT file system: each partition, then the whole disk (sticks
/// formatted without a partition table).
fn regions(d: &Disk) -> Vec<(String, u64, u64)> {
    let ss = u64::from(d.logical_block_size.max(512));
    let mut out = Vec::new();
    // The table is the stick's, so not trusted: a region whose bounds overflow is skipped.
    for p in &d.content.partitions {
        let bounds = p
            .first_lba
            .checked_mul(ss)
            .zip(p.last_lba.checked_add(1).and_then(|l| l.checked_mul(ss)));
        if let Some((start, end)) = bounds {
            out.push((format!("partition {}", p.number), start, end));
        }
    }
    for p in &d.content.mbr_partitions {
        let start = u64::from(p.first_lba) * ss;
        let end = start + u64::from(p.sectors) * ss;
        if p.sectors > 0 {
            out.push((format!("partition {}", p.number), start, end));
        }
    }
    out.push(("whole disk".to_string(), 0, d.size_bytes));
    out
}

/// `path` from the FAT file system in `slice`: the bytes, or why not (no FAT, FAT12, no file).
fn read_ks(
    slice: StreamSlice<File>,
    path: &str,
    d: &Disk,
    what: &str,
) -> Result<std::result::Result<Vec<u8>, String>> {
    let fs = match fatfs::FileSystem::new(BufStream::new(slice), fatfs::FsOptions::new()) {
        Ok(fs) => fs,
        Err(_) => return Ok(Err(format!("{what}: no FAT file system"))),
    };
    let fat = fs.fat_type();
    if fat == fatfs::FatType::Fat12 {
        return Ok(Err(format!("{what}: FAT12, which ESXi does not read")));
    }
    let inner = path.trim_start_matches('/');
    let mut f = match fs.root_dir().open_file(inner) {
        Ok(f) => f,
        Err(_) => return Ok(Err(format!("{what} ({fat:?}): no {path}"))),
    };
    let mut bytes = Vec::new();
    (&mut f)
        .take(crate::http::SMALL_LIMIT + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("{} {what}: reading {path}", d.device))?;
    anyhow::ensure!(
        bytes.len() as u64 <= crate::http::SMALL_LIMIT,
        "{} {what}: {path} is larger than {} bytes",
        d.device,
        crate::http::SMALL_LIMIT
    );
    Ok(Ok(bytes))
}

fn find_on_disk(sysroot: &Path, d: &Disk, path: &str) -> Result<Found> {
    let device = sysroot.join(d.device.trim_start_matches('/'));
    let mut tried = Vec::new();
    for (what, start, end) in regions(d) {
        // Read-only: looking for a kickstart must never change the stick.
        let file = File::open(&device).with_context(|| format!("opening {}", device.display()))?;
        let len = file
            .metadata()
            .map(|m| m.len())
            .unwrap_or(0)
            .max(d.size_bytes);
        let end = end.min(len);
        if start >= end {
            continue;
        }
        let Ok(slice) = StreamSlice::new(file, start, end) else {
            continue;
        };
        // fatfs can panic on a damaged file system (upstream issues); a stick someone left in
        // the server must not take the installer down: a panic is "not readable here".
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            read_ks(slice, path, d, &what)
        }));
        let bytes = match read {
            Ok(Ok(Ok(bytes))) => bytes,
            Ok(Ok(Err(why))) => {
                tried.push(why);
                continue;
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                tried.push(format!("{what}: a damaged FAT file system"));
                continue;
            }
        };
        let name = format!("{} {what}:{path}", d.device);
        log::info!("ks=usb: found {name}");
        return Ok(Found {
            bytes,
            name,
            device,
        });
    }
    anyhow::bail!("{} ({}): {}", d.device, d.description(), tried.join(", "))
}
