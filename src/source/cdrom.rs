//! `ks=cdrom:/PATH`: the kickstart on an ISO9660 CD (or an ISO image presented as one) below the
//! sysroot. ESXi mounts every CD-ROM until the path exists (spec §2); we read each drive's
//! ISO9660 file system with `media::iso`, without mounting.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::media::iso::IsoSource;
use crate::media::MediaSource;

/// CD/DVD drives: `sys/block/sr*`, and any block device whose SCSI type is 5 (a CD/DVD drive).
pub fn drives(sysroot: &Path) -> Vec<PathBuf> {
    let block = sysroot.join("sys/block");
    let mut names: Vec<String> = std::fs::read_dir(&block)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .filter(|n| {
            n.starts_with("sr")
                || std::fs::read_to_string(block.join(n).join("device/type"))
                    .is_ok_and(|t| t.trim() == "5")
        })
        .map(|n| sysroot.join("dev").join(n))
        .collect()
}

/// The bytes of `path` on the first CD that has it, and the drive it was on.
pub fn find(sysroot: &Path, path: &str) -> Result<(Vec<u8>, PathBuf)> {
    let inner = path.trim_start_matches('/');
    let drives = drives(sysroot);
    anyhow::ensure!(
        !drives.is_empty(),
        "ks=cdrom:{path}: no CD/DVD drive below {}",
        sysroot.display()
    );
    let mut why = Vec::new();
    for drive in drives {
        let iso = match IsoSource::open(&drive) {
            Ok(iso) => iso,
            Err(e) => {
                why.push(format!("{e:#}"));
                continue;
            }
        };
        match iso.open(inner) {
            Ok(r) => {
                let mut bytes = Vec::new();
                r.take(crate::http::SMALL_LIMIT + 1)
                    .read_to_end(&mut bytes)
                    .with_context(|| format!("{}: reading {path}", drive.display()))?;
                anyhow::ensure!(
                    bytes.len() as u64 <= crate::http::SMALL_LIMIT,
                    "{}: {path} is larger than {} bytes",
                    drive.display(),
                    crate::http::SMALL_LIMIT
                );
                return Ok((bytes, drive));
            }
            Err(e) => why.push(format!("{e:#}")),
        }
    }
    anyhow::bail!("ks=cdrom:{path}: {}", why.join("; "))
}
