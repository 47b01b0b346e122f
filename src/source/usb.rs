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

/// A USB or removable disk as `ks=usb` searches it. The caller lists them (from the inventory):
/// the source stage reads no inventory itself.
#[derive(Debug, Clone)]
pub struct UsbDisk {
    /// `/dev/sdb`, as the installer names it.
    pub device: String,
    /// For messages: model, transport.
    pub description: String,
    pub size_bytes: u64,
    /// Where a FAT file system may be, with a name each (`partition 1`, `whole disk`).
    pub regions: Vec<(String, u64, u64)>,
}

/// Find `path` (e.g. `/ks.cfg`) on the first USB or removable disk that has it. `list` is asked
/// again on each scan: a stick may appear while the installer waits.
pub fn find(
    sysroot: &Path,
    list: &dyn Fn() -> Result<Vec<UsbDisk>>,
    path: &str,
    scan: UsbScan,
) -> Result<Found> {
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
        let disks = list().context("listing the disks for ks=usb")?;
        if disks.is_empty() {
            why.push("no USB or removable disk".to_string());
        }
        for d in &disks {
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

/// Why one region of a disk holds no kickstart ESXi would read; `what` names the region.
#[derive(Debug, thiserror::Error)]
enum NotHere {
    #[error("{what}: no FAT file system")]
    NoFat { what: String },
    #[error("{what}: FAT12, which ESXi does not read")]
    Fat12 { what: String },
    #[error("{what} ({fat:?}): no {path}")]
    NoFile {
        what: String,
        fat: fatfs::FatType,
        path: String,
    },
    #[error("{what}: a damaged FAT file system")]
    Damaged { what: String },
}

/// `path` from the FAT file system in `slice`: the bytes, or why not (no FAT, FAT12, no file).
fn read_ks(
    slice: StreamSlice<File>,
    path: &str,
    d: &UsbDisk,
    what: &str,
) -> Result<std::result::Result<Vec<u8>, NotHere>> {
    let what = what.to_string();
    let fs = match fatfs::FileSystem::new(BufStream::new(slice), fatfs::FsOptions::new()) {
        Ok(fs) => fs,
        Err(_) => return Ok(Err(NotHere::NoFat { what })),
    };
    let fat = fs.fat_type();
    if fat == fatfs::FatType::Fat12 {
        return Ok(Err(NotHere::Fat12 { what }));
    }
    let inner = path.trim_start_matches('/');
    let mut f = match fs.root_dir().open_file(inner) {
        Ok(f) => f,
        Err(_) => {
            return Ok(Err(NotHere::NoFile {
                what,
                fat,
                path: path.to_string(),
            }))
        }
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

fn find_on_disk(sysroot: &Path, d: &UsbDisk, path: &str) -> Result<Found> {
    let device = sysroot.join(d.device.trim_start_matches('/'));
    let mut tried = Vec::new();
    for (what, start, end) in d.regions.iter().cloned() {
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
                tried.push(NotHere::Damaged { what });
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
    let tried: Vec<String> = tried.iter().map(ToString::to_string).collect();
    anyhow::bail!("{} ({}): {}", d.device, d.description, tried.join(", "))
}
