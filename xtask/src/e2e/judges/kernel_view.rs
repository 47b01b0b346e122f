//! The disk as the guest's kernel read it (its GPT parser, its vfat driver, the files it hashed),
//! against sgdisk and mtools here and against the media.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::Result;
use ksinstall::media::manifest::{Manifest, Role};

use super::disk::{mtools_files, sgdisk_partitions, HostPartition};
use super::{judge, Outcome};
use crate::e2e::guest::Serial;
use crate::e2e::image::sha256_file;

/// What the guest's kernel read of the installed disk, each part checked.
pub(super) struct GuestReading {
    /// The partition numbers its GPT parser saw.
    pub(super) numbers: Vec<u32>,
    /// How many files it hashed on the vfat partitions.
    pub(super) hashed: usize,
    /// How many of the media's host modules the bank holds byte for byte.
    pub(super) modules: usize,
}

/// The installed disk as the guest's kernel read it: its GPT against sgdisk here, its vfat
/// driver's files of partitions 1, 5 and 6 with their hashes against mtools here, and the bank
/// and the ESP's loader against the media.
pub(super) fn check_guest_reading(
    serial: &Serial,
    disk: &Path,
    media: &Path,
    uki: &Path,
    problems: &mut Vec<String>,
) -> Result<GuestReading> {
    let host = sgdisk_partitions(disk)?;
    let numbers = check_kernel_gpt(serial, &host, problems);
    let manifest = ksinstall::media::Media::open(&media.display().to_string())?.manifest;
    let guest = guest_hashes(serial);
    let hashed = check_vfat(serial, disk, &host, &guest, problems)?;
    let modules = check_bank_and_loader(&manifest, &guest, uki, problems)?;
    Ok(GuestReading {
        numbers,
        hashed,
        modules,
    })
}

/// The kernel's GPT parser: partition numbers and extents as sgdisk reads them here. Returns
/// the numbers the kernel saw.
fn check_kernel_gpt(
    serial: &Serial,
    host: &[HostPartition],
    problems: &mut Vec<String>,
) -> Vec<u32> {
    let seen: BTreeMap<u32, (u64, u64)> = kernel_partitions(serial)
        .into_iter()
        .map(|(n, start, sectors)| (n, (start, sectors)))
        .collect();
    let numbers: Vec<u32> = seen.keys().copied().collect();
    let expected: Vec<u32> = host.iter().map(|h| h.number).collect();
    if numbers != expected || !(numbers.starts_with(&[1, 5, 6, 7])) {
        problems.push(format!(
            "the guest kernel sees partitions {numbers:?}, sgdisk here {expected:?} (want 1, 5, 6, 7[, 8])"
        ));
    }
    for h in host {
        if let Some((start, sectors)) = seen.get(&h.number) {
            if *start != h.first || *sectors != h.last - h.first + 1 {
                problems.push(format!(
                    "partition {}: kernel {start}+{sectors}, sgdisk {}..{}",
                    h.number, h.first, h.last
                ));
            }
        }
    }
    numbers
}

/// The files the guest hashed, by partition number: path -> SHA-256.
fn guest_hashes(serial: &Serial) -> BTreeMap<u32, BTreeMap<String, String>> {
    let mut guest: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
    for l in serial.lines("E2E-SHA256 ") {
        let w: Vec<&str> = l.split_whitespace().collect();
        if let [_, part, path, sha] = w[..] {
            let n: u32 = part.trim_start_matches("vda").parse().unwrap_or(0);
            guest
                .entry(n)
                .or_default()
                .insert(path.to_string(), sha.to_string());
        }
    }
    guest
}

/// Partitions 1, 5 and 6 mounted as vfat in the guest, and the guest's files the ones mtools
/// reads here (names compared without case). Returns how many files the guest hashed.
fn check_vfat(
    serial: &Serial,
    disk: &Path,
    host: &[HostPartition],
    guest: &BTreeMap<u32, BTreeMap<String, String>>,
    problems: &mut Vec<String>,
) -> Result<usize> {
    for n in [1, 5, 6] {
        if !serial.text.contains(&format!("E2E-MOUNT vda{n} vfat")) {
            problems.push(format!(
                "the guest kernel could not mount partition {n} as vfat"
            ));
        }
    }
    let mut hashed = 0;
    for h in host.iter().filter(|h| [1, 5, 6].contains(&h.number)) {
        let here = mtools_files(&disk.with_extension("mtools"), disk, h)?;
        let there = guest.get(&h.number).cloned().unwrap_or_default();
        let norm = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
            m.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect()
        };
        if norm(&here) != norm(&there) {
            problems.push(format!(
                "partition {}: the guest's vfat and mtools here disagree (guest {} files, mtools {} files)",
                h.number,
                there.len(),
                here.len()
            ));
        }
        hashed += there.len();
    }
    Ok(hashed)
}

/// The bank holds every host module of the media, byte for byte, and boot.cfg; the ESP's
/// loader is the media's. Returns how many modules matched.
fn check_bank_and_loader(
    manifest: &Manifest,
    guest: &BTreeMap<u32, BTreeMap<String, String>>,
    uki: &Path,
    problems: &mut Vec<String>,
) -> Result<usize> {
    let bank = guest.get(&5).cloned().unwrap_or_default();
    let bank: BTreeMap<String, String> = bank
        .into_iter()
        .map(|(k, v)| (k.trim_start_matches('/').to_ascii_lowercase(), v))
        .collect();
    let mut modules = 0;
    let host_parts = manifest
        .components
        .iter()
        .filter(|c| matches!(c.role, Role::Kernel | Role::Module));
    for c in host_parts {
        match bank.get(&c.path.to_ascii_lowercase()) {
            Some(sha) if *sha == c.sha256 => modules += 1,
            Some(_) => problems.push(format!("bank 0 {}: SHA-256 differs from the media", c.path)),
            None => problems.push(format!("bank 0 has no {}", c.path)),
        }
    }
    if modules == 0 {
        problems.push("the media has no host modules to compare".into());
    }
    if !bank.contains_key("boot.cfg") {
        problems.push("partition 5 has no boot.cfg".into());
    }
    let esp = guest.get(&1).cloned().unwrap_or_default();
    let loader = esp
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("/EFI/BOOT/BOOTX64.EFI"))
        .map(|(_, v)| v.clone());
    if loader != Some(sha256_file(uki)?.1) {
        problems.push("partition 1's EFI/BOOT/BOOTX64.EFI is not the media's loader".into());
    }
    Ok(modules)
}

/// The partitions the guest's kernel listed: (number, start, sectors).
fn kernel_partitions(serial: &Serial) -> Vec<(u32, u64, u64)> {
    let mut parts: Vec<(u32, u64, u64)> = serial
        .lines("E2E-PART ")
        .map(|l| {
            let f: BTreeMap<&str, &str> = l
                .split_whitespace()
                .filter_map(|w| w.split_once('='))
                .collect();
            let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            (num("number") as u32, num("start"), num("sectors"))
        })
        .collect();
    parts.sort_unstable();
    parts
}

/// "And 8 where due": on a 200 GB disk the guest's kernel sees the datastore partition too,
/// where sgdisk sees it, and the table is sound.
pub(in crate::e2e) fn check_datastore(serial: &Serial, disk: &Path) -> Outcome {
    let mut problems = Vec::new();
    serial.expect_exit(0, "installed", &mut problems);
    let r = (|| -> Result<Vec<u32>> {
        let host = sgdisk_partitions(disk)?;
        let kernel = kernel_partitions(serial);
        let here: Vec<(u32, u64, u64)> = host
            .iter()
            .map(|h| (h.number, h.first, h.last - h.first + 1))
            .collect();
        let numbers: Vec<u32> = kernel.iter().map(|k| k.0).collect();
        if numbers != [1, 5, 6, 7, 8] || kernel != here {
            problems.push(format!(
                "the guest kernel sees {kernel:?}, sgdisk here {here:?} (want 1, 5, 6, 7, 8)"
            ));
        }
        let v = Command::new("sgdisk").arg("-v").arg(disk).output()?;
        if !String::from_utf8_lossy(&v.stdout).contains("No problems found") {
            problems.push("sgdisk -v found problems".into());
        }
        Ok(numbers)
    })();
    let numbers = match r {
        Ok(n) => n,
        Err(e) => {
            problems.push(format!("{e:#}"));
            Vec::new()
        }
    };
    judge(
        "2 datastore (200 GB)",
        serial,
        problems,
        format!("kernel GPT {numbers:?} = sgdisk; sgdisk -v: no problems"),
    )
}
