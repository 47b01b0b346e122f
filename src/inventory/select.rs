//! `--disk` name resolution and the `--firstdisk` filter list (kickstart.md §1.3, §1.4).

use serde::{Deserialize, Serialize};

use super::disk::Disk;

/// The list a bare `--firstdisk` stands for on `install`/`upgrade`/`installorupgrade`.
pub const DEFAULT_FIRSTDISK: [&str; 3] = ["local", "remote", "usb"];

/// Driver names that ESXi's USB filter matches against USB disks, whatever their real driver.
const USB_DRIVER_NAMES: [&str; 3] = ["vmkusb", "umass", "usb-storage"];

/// Why a disk could not be chosen. The message lists the disks that exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DiskLookupError {
    #[error("no disk is named {name:?}; the disks are:{}", list(.disks))]
    NotFound { name: String, disks: Vec<String> },
    #[error("{name:?} names more than one disk, refusing to guess:{}", list(.matches))]
    Ambiguous { name: String, matches: Vec<String> },
    #[error("{}", no_first_disk(.filters, .ignore_ssd, .disks))]
    NoFirstDisk {
        filters: Vec<String>,
        ignore_ssd: bool,
        disks: Vec<String>,
    },
}

fn no_first_disk(filters: &[String], ignore_ssd: &bool, disks: &[String]) -> String {
    let ssd = if *ignore_ssd { " with --ignoressd" } else { "" };
    format!(
        "no disk matches --firstdisk={}{ssd}; the disks are:{}",
        filters.join(","),
        list(disks)
    )
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        return " (none)".to_string();
    }
    items.iter().map(|d| format!("\n  {d}")).collect()
}

/// Which disk `--firstdisk` chose, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirstDiskChoice<'a> {
    pub disk: &'a Disk,
    /// The filter (lower-cased) that matched first.
    pub filter: String,
    /// All disks that filter matched, in inventory order; `disk` is the first.
    pub candidates: Vec<&'a Disk>,
}

pub fn resolve<'a>(disks: &'a [Disk], name: &str) -> Result<&'a Disk, DiskLookupError> {
    let name = name.trim();
    let matches: Vec<&Disk> = disks
        .iter()
        .filter(|d| d.aliases.iter().any(|a| a == name))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(DiskLookupError::NotFound {
            name: name.to_string(),
            disks: disks.iter().map(Disk::summary).collect(),
        }),
        many => Err(DiskLookupError::Ambiguous {
            name: name.to_string(),
            matches: many.iter().map(|d| d.summary()).collect(),
        }),
    }
}

/// Why a disk is left out of the `--firstdisk` search, if it is.
pub(crate) fn ineligible_reason(d: &Disk, ignore_ssd: bool, esx_only: bool) -> Option<String> {
    if !d.is_large_enough() {
        Some(format!(
            "smaller than the {} GiB minimum",
            d.minimum_size() >> 30
        ))
    } else if ignore_ssd && d.ssd {
        Some("SSD (--ignoressd)".to_string())
    } else if esx_only && !d.has_esx() {
        Some("holds no ESXi (upgrade)".to_string())
    } else {
        None
    }
}

pub fn first_disk<'a>(
    disks: &'a [Disk],
    filters: &[String],
    ignore_ssd: bool,
    esx_only: bool,
) -> Result<FirstDiskChoice<'a>, DiskLookupError> {
    let eligible: Vec<&Disk> = disks
        .iter()
        .filter(|d| ineligible_reason(d, ignore_ssd, esx_only).is_none())
        .collect();
    let mut names: Vec<String> = filters
        .iter()
        .map(|f| f.trim().to_lowercase())
        .filter(|f| !f.is_empty())
        .collect();
    if names.is_empty() {
        names = DEFAULT_FIRSTDISK.iter().map(|s| s.to_string()).collect();
    }
    for name in &names {
        let pick = |pred: &dyn Fn(&Disk) -> bool| -> Vec<&'a Disk> {
            eligible.iter().copied().filter(|d| pred(d)).collect()
        };
        let mut candidates = match name.as_str() {
            "local" => pick(&|d| d.local),
            "remote" => pick(&|d| d.remote),
            "usb" => pick(&|d| d.usb),
            "esx" => {
                let local = pick(&|d| d.local && d.has_esx());
                if local.is_empty() {
                    pick(&|d| d.remote && d.has_esx())
                } else {
                    local
                }
            }
            "localesx" => pick(&|d| d.local && d.has_esx()),
            "remoteesx" => pick(&|d| d.remote && d.has_esx()),
            other => pick(&|d| matches_name(d, other)),
        };
        if candidates.is_empty() && USB_DRIVER_NAMES.contains(&name.as_str()) {
            candidates = pick(&|d| d.usb);
        }
        if let Some(first) = candidates.first() {
            return Ok(FirstDiskChoice {
                disk: first,
                filter: name.clone(),
                candidates: candidates.clone(),
            });
        }
    }
    Err(DiskLookupError::NoFirstDisk {
        filters: names,
        ignore_ssd,
        disks: disks
            .iter()
            .map(|d| match ineligible_reason(d, ignore_ssd, esx_only) {
                Some(why) => format!("{} [not eligible: {why}]", d.summary()),
                None => d.summary(),
            })
            .collect(),
    })
}

/// The generic filter: exact (trimmed, case-insensitive) vendor, model or driver name. The
/// driver matches by its Linux name and by the ESXi driver playing the same part.
fn matches_name(d: &Disk, name: &str) -> bool {
    [&d.vendor, &d.model, &d.driver, &d.esxi_driver]
        .into_iter()
        .flatten()
        .any(|v| v.trim().to_lowercase() == name)
}
