//! Getting the kickstart from where `ks=` says: each location in turn until one answers
//! (Anaconda's `inst.ks` failover), with the reason each one failed in the error.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::cmdline::KsLocation;
use super::{cdrom, usb};
use crate::http::Http;

/// What the source stage needs to reach the places `ks=` may name.
pub(crate) struct Reach<'a> {
    /// Stands for `/`: `ks=file://` paths, USB disks and CD drives are looked up below it.
    pub sysroot: &'a Path,
    pub http: &'a Http,
    pub usb: usb::UsbScan,
    /// The USB and removable disks for `ks=usb` (from the inventory), asked on each scan.
    pub usb_disks: &'a dyn Fn() -> Result<Vec<usb::UsbDisk>>,
}

/// A kickstart as fetched.
#[derive(Debug, Clone)]
pub struct FetchedKickstart {
    /// For diagnostics: the URL, the path, `/dev/sdb partition 1:/ks.cfg`, ...
    pub name: String,
    /// Same for every way of naming the same file (for include-cycle detection). A URL's key is
    /// the URL, so `./relative` includes resolve against it.
    pub key: String,
    pub bytes: Vec<u8>,
    pub location: KsLocation,
    /// The CD drive it came from, for `reboot` without `--noeject`.
    pub cdrom: Option<PathBuf>,
}

/// Why no kickstart could be had: one line per location tried.
#[derive(Debug, thiserror::Error)]
#[error("no kickstart could be read:\n  {}", .tried.join("\n  "))]
pub(crate) struct FetchError {
    pub tried: Vec<String>,
}

/// The kickstart named on the command line (`install --ks`): an `http(s)://` URL, else a file
/// path on this machine.
pub fn read_given(given: &str, http: &Http) -> Result<FetchedKickstart> {
    if given.starts_with("http://") || given.starts_with("https://") {
        let bytes = http.get_small(given)?;
        return Ok(FetchedKickstart {
            name: crate::http::redact(given),
            key: given.to_string(),
            bytes,
            location: KsLocation::Http(given.to_string()),
            cdrom: None,
        });
    }
    let path = Path::new(given);
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("--ks {given}: {e}"))?;
    let key = std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string();
    Ok(FetchedKickstart {
        name: given.to_string(),
        key,
        bytes,
        location: KsLocation::File(given.to_string()),
        cdrom: None,
    })
}

pub(crate) fn fetch(
    locations: &[KsLocation],
    reach: &Reach<'_>,
) -> Result<FetchedKickstart, FetchError> {
    let mut tried = Vec::new();
    for loc in locations {
        match fetch_one(loc, reach) {
            Ok(k) => {
                if !tried.is_empty() {
                    log::warn!("kickstart from {}, after: {}", k.name, tried.join("; "));
                }
                return Ok(k);
            }
            Err(e) => {
                log::warn!("{e:#}");
                tried.push(format!("{e:#}"));
            }
        }
    }
    Err(FetchError { tried })
}

fn fetch_one(loc: &KsLocation, reach: &Reach<'_>) -> Result<FetchedKickstart> {
    let done = |name: String, key: String, bytes: Vec<u8>, cdrom: Option<PathBuf>| {
        Ok(FetchedKickstart {
            name,
            key,
            bytes,
            location: loc.clone(),
            cdrom,
        })
    };
    match loc {
        KsLocation::File(p) => {
            anyhow::ensure!(
                !p.split('/').any(|c| c == ".."),
                "ks=file://{p}: `..` is not allowed"
            );
            let path = reach.sysroot.join(p.trim_start_matches('/'));
            let bytes = std::fs::read(&path)
                .map_err(|e| anyhow::anyhow!("ks={p}: reading {}: {e}", path.display()))?;
            let key = std::fs::canonicalize(&path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string();
            done(path.display().to_string(), key, bytes, None)
        }
        KsLocation::Http(url) => {
            let bytes = reach.http.get_small(url)?;
            done(crate::http::redact(url), url.clone(), bytes, None)
        }
        KsLocation::Unsupported(url) => anyhow::bail!(
            "ks={}: FTP and NFS kickstarts are not supported by ksinstall; serve the file \
             over http:// or https:// (docs/BOOT.md)",
            crate::http::redact(url)
        ),
        KsLocation::Cdrom(p) => {
            let (bytes, drive) = cdrom::find(reach.sysroot, p)?;
            let name = format!("{}:{p}", drive.display());
            done(name.clone(), name, bytes, Some(drive))
        }
        KsLocation::Usb(p) => {
            let found = usb::find(reach.sysroot, reach.usb_disks, p, reach.usb)?;
            done(found.name.clone(), found.name, found.bytes, None)
        }
    }
}
