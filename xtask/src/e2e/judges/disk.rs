//! The disk image read on this machine by tools nobody here wrote: sgdisk's partition table,
//! the FAT partitions' files through mtools, fsck.fat, and whether anything was written at all.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{ensure, Result};

use super::Outcome;
use crate::e2e::image::sha256_file;
use crate::e2e::Paths;
use crate::run;

/// One partition as sgdisk lists it: number, first and last sector, type code.
#[derive(Debug, Clone)]
pub(in crate::e2e) struct HostPartition {
    pub(in crate::e2e) number: u32,
    pub(super) first: u64,
    pub(super) last: u64,
    pub(super) code: String,
}

pub(in crate::e2e) fn sgdisk_partitions(disk: &Path) -> Result<Vec<HostPartition>> {
    let out = Command::new("sgdisk").arg("-p").arg(disk).output()?;
    ensure!(out.status.success(), "sgdisk -p {} failed", disk.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = Vec::new();
    let mut table = false;
    for l in text.lines() {
        if l.trim_start().starts_with("Number") {
            table = true;
            continue;
        }
        if !table {
            continue;
        }
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.len() >= 6 {
            parts.push(HostPartition {
                number: w[0].parse()?,
                first: w[1].parse()?,
                last: w[2].parse()?,
                code: w[5].to_string(),
            });
        }
    }
    Ok(parts)
}

/// Files of a FAT partition inside the image, read by mtools: path -> SHA-256.
pub(super) fn mtools_files(
    p: &Path,
    disk: &Path,
    part: &HostPartition,
) -> Result<BTreeMap<String, String>> {
    let out_dir = p.join(format!("mtools-{}", part.number));
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir)?;
    let image = format!("{}@@{}", disk.display(), part.first * 512);
    let listing = Command::new("mdir")
        .args(["-i", &image, "-/", "-b", "::/"])
        .output()?;
    let mut files = BTreeMap::new();
    // mdir says "File not found" and fails on a file system without a single file.
    if !listing.status.success() {
        let err = String::from_utf8_lossy(&listing.stderr);
        ensure!(
            err.contains("not found"),
            "mdir of partition {}: {err}",
            part.number
        );
        return Ok(files);
    }
    for name in String::from_utf8_lossy(&listing.stdout).lines() {
        let name = name.trim();
        // -b lists directories with a trailing '/': only files are copied and hashed.
        if name.is_empty() || name.ends_with('/') {
            continue;
        }
        let rel = name.trim_start_matches("::").to_string();
        let local = out_dir.join(rel.trim_start_matches('/').replace('/', "__"));
        run(Command::new("mcopy")
            .args(["-n", "-i", &image])
            .arg(format!("::{rel}"))
            .arg(&local))?;
        files.insert(rel, sha256_file(&local)?.1);
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    Ok(files)
}

/// Nothing was written to a disk (the image file has no blocks at all).
pub(super) fn untouched(disk: &Path) -> Result<bool> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(disk)?;
    // SAFETY: lseek on a descriptor we own; SEEK_DATA from 0 finds the first written byte, and
    // fails with ENXIO when the file has none (a fresh sparse image).
    let rc = unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_DATA) };
    if rc >= 0 {
        return Ok(false);
    }
    let e = std::io::Error::last_os_error();
    ensure!(
        e.raw_os_error() == Some(libc::ENXIO),
        "lseek SEEK_DATA {}: {e}",
        disk.display()
    );
    Ok(true)
}

/// Scenario 4: the disk, read on this machine by tools nobody here wrote.
pub(in crate::e2e) fn check_host_tools(p: &Paths, disk: &Path) -> Outcome {
    let started = Instant::now();
    let mut problems = Vec::new();
    let mut details = Vec::new();
    let r = (|| -> Result<()> {
        let v = Command::new("sgdisk").arg("-v").arg(disk).output()?;
        let text = String::from_utf8_lossy(&v.stdout);
        if !v.status.success() || !text.contains("No problems found") {
            problems.push(format!("sgdisk -v: {}", text.trim()));
        } else {
            details.push("sgdisk -v: no problems".to_string());
        }
        let parts = sgdisk_partitions(disk)?;
        let numbers: Vec<u32> = parts.iter().map(|h| h.number).collect();
        if !numbers.starts_with(&[1, 5, 6, 7]) {
            problems.push(format!(
                "sgdisk lists partitions {numbers:?}, not 1, 5, 6, 7[, 8]"
            ));
        }
        let fat = parts
            .iter()
            .filter(|h| h.code == "EF00" || h.code == "0700")
            .count();
        if fat < 3 {
            problems.push(format!("{fat} FAT partitions, not 3 (1, 5, 6)"));
        }
        for h in parts
            .iter()
            .filter(|h| h.code == "EF00" || h.code == "0700")
        {
            // fsck.fat reads a device or file: the partition is cut out sparsely.
            let cut = p.w(&format!("part{}.img", h.number));
            run(Command::new("dd")
                .arg(format!("if={}", disk.display()))
                .arg(format!("of={}", cut.display()))
                .arg("bs=1M")
                .arg(format!("skip={}", h.first * 512))
                .arg(format!("count={}", (h.last - h.first + 1) * 512))
                .args(["iflag=skip_bytes,count_bytes", "conv=sparse", "status=none"]))?;
            let f = Command::new("fsck.fat").arg("-n").arg(&cut).output()?;
            let _ = std::fs::remove_file(&cut);
            if !f.status.success() {
                problems.push(format!(
                    "fsck.fat -n partition {}: {}",
                    h.number,
                    String::from_utf8_lossy(&f.stdout).trim()
                ));
            }
        }
        details.push(format!(
            "fsck.fat -n clean on {} FAT partitions; mtools read them (scenario 2)",
            parts
                .iter()
                .filter(|h| h.code == "EF00" || h.code == "0700")
                .count()
        ));
        Ok(())
    })();
    if let Err(e) = r {
        problems.push(format!("{e:#}"));
    }
    Outcome {
        name: "4 host tools".into(),
        passed: problems.is_empty(),
        elapsed: started.elapsed(),
        detail: if problems.is_empty() {
            details.join("; ")
        } else {
            problems.join("; ")
        },
    }
}
