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
    match crate::sysroot::Sysroot::new(sysroot) {
        Ok(sys) => drives_in(&sys),
        Err(e) => {
            log::warn!("{e:#}");
            Vec::new()
        }
    }
}

/// As [`drives`], through an open seam (so `probe --record` sees the reads).
pub(crate) fn drives_in(sys: &crate::sysroot::Sysroot) -> Vec<PathBuf> {
    let block = Path::new("sys/block");
    let names = sys.list(block).unwrap_or_else(|e| {
        log::warn!("{e:#}");
        Vec::new()
    });
    names
        .into_iter()
        .filter(|n| {
            // SCSI type 5: a CD/DVD drive that is not named sr* (some USB bridges).
            n.starts_with("sr")
                || sys
                    .attr_or_warn(&block.join(n).join("device/type"))
                    .is_some_and(|t| t == "5")
        })
        .map(|n| sys.root().join("dev").join(n))
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

/// The installer media on a CD/DVD drive below the sysroot (when no `--media` or `inst.repo=`
/// names them): the drive's location and its device node.
pub fn installer_media(sysroot: &Path) -> std::result::Result<(String, PathBuf), NoInstallerMedia> {
    let mut rejected = Vec::new();
    for drive in drives(sysroot) {
        let location = drive.display().to_string();
        match crate::media::Media::open(&location) {
            Ok(_) => return Ok((location, drive)),
            Err(e) => rejected.push(format!("{e:#}")),
        }
    }
    Err(if rejected.is_empty() {
        NoInstallerMedia::NoDrive {
            sysroot: sysroot.to_path_buf(),
        }
    } else {
        NoInstallerMedia::NoneUsable { rejected }
    })
}

/// No `--media`, no `inst.repo=`, and no CD/DVD drive holding the installer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoInstallerMedia {
    #[error("no installation media: give --media, or boot from the installer CD (no CD/DVD drive below {})", sysroot.display())]
    NoDrive { sysroot: PathBuf },
    /// Each drive's reason, as the media reader gave it (it names the drive).
    #[error("no installation media: give --media, or boot from the installer CD ({})", rejected.join("; "))]
    NoneUsable { rejected: Vec<String> },
}
