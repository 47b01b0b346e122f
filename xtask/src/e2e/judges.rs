//! Judging: what each scenario's serial console, the disk image and the HTTP server's log
//! must show, checked by the guest's kernel and by tools on this machine.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use ksinstall::media::manifest::{Manifest, Role};

use super::guest::{HttpServer, Removable, Serial};
use super::image::{sha256_file, NETDEVSIM_FIRMWARE};
use super::Paths;
use crate::run;

pub(super) struct Outcome {
    pub(super) name: String,
    pub(super) passed: bool,
    pub(super) elapsed: Duration,
    pub(super) detail: String,
}

pub(super) fn judge(
    name: &str,
    serial: &Serial,
    problems: Vec<String>,
    ok_detail: String,
) -> Outcome {
    let mut problems = problems;
    if serial.timed_out {
        problems.insert(0, "the guest timed out".into());
    }
    for f in serial.failures() {
        problems.push(f.to_string());
    }
    Outcome {
        name: name.to_string(),
        passed: problems.is_empty(),
        elapsed: serial.elapsed,
        detail: if problems.is_empty() {
            ok_detail
        } else {
            problems.join("; ")
        },
    }
}

/// One partition as sgdisk lists it: number, first and last sector, type code.
#[derive(Debug, Clone)]
pub(super) struct HostPartition {
    pub(super) number: u32,
    first: u64,
    last: u64,
    code: String,
}

pub(super) fn sgdisk_partitions(disk: &Path) -> Result<Vec<HostPartition>> {
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
fn mtools_files(p: &Path, disk: &Path, part: &HostPartition) -> Result<BTreeMap<String, String>> {
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

/// Scenarios 1 and 2: the install over HTTP onto the virtio disk, then what the guest's kernel
/// read back from it, compared with the media and with mtools' reading on this machine.
pub(super) fn check_pxe(
    serial: &Serial,
    disk: &Path,
    media: &Path,
    uki: &Path,
    server: &HttpServer,
    ks: &str,
) -> Outcome {
    let mut problems = Vec::new();
    let mut details = Vec::new();
    let r = (|| -> Result<()> {
        match serial.exit_code() {
            Some(0) => {}
            other => {
                problems.push(format!("ksinstall boot ended with {other:?}, not 0"));
                return Ok(());
            }
        }
        check_served(server, ks, &mut problems);
        let host = sgdisk_partitions(disk)?;
        let numbers = check_kernel_gpt(serial, &host, &mut problems);
        details.push(format!("kernel GPT {numbers:?}"));
        // The kernel's vfat driver: every file of partitions 1, 5, 6 with its hash, against
        // mtools here and the media.
        let manifest = ksinstall::media::Media::open(&media.display().to_string())?.manifest;
        let guest = guest_hashes(serial);
        let hashed = check_vfat(serial, disk, &host, &guest, &mut problems)?;
        let modules = check_bank_and_loader(&manifest, &guest, uki, &mut problems)?;
        details.push(format!(
            "{hashed} files read by the guest's vfat = mtools; {modules} modules = media"
        ));
        Ok(())
    })();
    if let Err(e) = r {
        problems.push(format!("{e:#}"));
    }
    judge("1+2 pxe install", serial, problems, details.join("; "))
}

/// PXE-style: the kickstart and the media came from the host's server.
fn check_served(server: &HttpServer, ks: &str, problems: &mut Vec<String>) {
    let requests = server.requests();
    let ks = format!("GET /ks/{ks}");
    for wanted in [
        ks.as_str(),
        "GET /media/IMGDB.TGZ",
        "GET /media/B.B00",
        "GET /media/S.V00",
    ] {
        // python's log line: "GET /media/B.B00 HTTP/1.1" 200 -
        let served = format!("\"{wanted} HTTP/1.1\" 200 ");
        if !requests.lines().any(|l| l.contains(&served)) {
            problems.push(format!("the HTTP server did not serve {wanted} (200)"));
        }
    }
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

/// "And 8 where due": on a 200 GB disk the guest's kernel sees the datastore partition too,
/// where sgdisk sees it, and the table is sound.
pub(super) fn check_datastore(serial: &Serial, disk: &Path) -> Outcome {
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

/// The installed disk read back with `ksinstall inspect` here: the bank that boots hands ESXi's
/// first boot exactly what the kickstart said, in the form ESXi reads (docs/FIRSTBOOT.md).
pub(super) fn check_first_boot(serial: &Serial, disk: &Path, ksinstall: &Path) -> Outcome {
    let mut problems = Vec::new();
    let r = (|| -> Result<String> {
        let out = Command::new(ksinstall)
            .args(["inspect", "--format", "json"])
            .arg(disk)
            .output()?;
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| String::from_utf8_lossy(&out.stderr).into_owned())?;
        if out.status.code() != Some(0) {
            problems.push(format!(
                "inspect exit {:?}: {}",
                out.status.code(),
                doc["first_boot_problems"]
            ));
        }
        let banks = doc["content"]["esx"]["banks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let bank5 = banks
            .iter()
            .find(|b| b["partition"] == 5)
            .cloned()
            .unwrap_or_default();
        let fb = &bank5["first_boot"];
        if fb["pending"] != true {
            problems.push("bank 5's boot.cfg does not hand onetime.tgz to first boot".into());
        }
        if !bank5["state_tgz"].is_null() {
            problems.push("a fresh install wrote state.tgz".into());
        }
        let applies: Vec<String> = fb["applies"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        for want in [
            "host name esx1",
            "network static 10.1.2.3/255.255.255.0 via 10.1.2.1",
            "VLAN 42",
            "DNS 10.1.2.2, 10.1.2.4",
            "keyboard German",
            "license from serialnum",
            "root password set: SHA-512 crypt ($6$)",
            "runs var/lib/vmware/firstboot/000.firstboot_ksinstall",
            "runs var/lib/vmware/firstboot/001.firstboot_001",
            "runs var/lib/vmware/firstboot/002.firstboot_002",
        ] {
            if !applies.iter().any(|a| a == want) {
                problems.push(format!("first boot does not apply {want:?}: {applies:?}"));
            }
        }
        Ok(format!(
            "{} settings and scripts read back by inspect",
            applies.len()
        ))
    })();
    let detail = match r {
        Ok(d) => d,
        Err(e) => {
            problems.push(format!("{e:#}"));
            String::new()
        }
    };
    judge(
        "2b first-boot contract on the installed bank",
        serial,
        problems,
        detail,
    )
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

/// Scenario 3 (DSC): the flash went through the guest kernel's devlink, and its status
/// notifications reached the installer's progress.
pub(super) fn check_dpu_flash(serial: &Serial) -> Outcome {
    let mut problems = Vec::new();
    let events = serial.events();
    let status: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "status" && e["step"] == "dpu")
        .filter_map(|e| e["message"].as_str())
        .collect();
    let flashing = status.iter().filter(|m| m.contains("Flashing")).count();
    // netdevsim (6.1) announces 500 steps, then "Flash select" with an 81 s timeout.
    if flashing < 500 {
        problems.push(format!(
            "{flashing} \"Flashing\" statuses reached the progress, not 500"
        ));
    }
    for want in [
        "Preparing to flash",
        "Flashing 100%",
        "Flash select (may take up to 81s)",
        "Flashing done",
    ] {
        if !status.iter().any(|m| m.contains(want)) {
            problems.push(format!("no devlink status \"{want}\" in the progress"));
        }
    }
    let dpu_done = events
        .iter()
        .any(|e| e["event"] == "step_finished" && e["step"] == "dpu");
    if !dpu_done {
        problems.push("the dpu step did not finish".into());
    }
    if !serial.text.contains("E2E-PCI") || !serial.text.contains("0x1dd8:0x100c") {
        problems.push("the edu device did not take the DSC identity".into());
    }
    judge(
        "3 DSC flash (netdevsim)",
        serial,
        problems,
        format!(
            "{} devlink status notifications reached the progress ({flashing} \"Flashing\")",
            status.len()
        ),
    )
}

/// The version the repository's DSC bundle says it carries.
pub(super) fn shipped_dsc_version(p: &Paths) -> Result<String> {
    let path = p.root.join("firmware/amd-pensando-dsc/bundle.toml");
    std::fs::read_to_string(&path)?
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .map(|v| v.trim().trim_matches('"').to_string())
        .with_context(|| format!("{}: no version", path.display()))
}

/// The card's answer decides: netdevsim stores 10.20.30 whatever it is given, so a bundle that
/// says another version was not installed, and the host must not be left bootable.
pub(super) fn check_dsc_version(serial: &Serial, disk: &Path, shipped: &str) -> Outcome {
    let mut problems = Vec::new();
    let message = serial.failure_message();
    serial.expect_exit(7, "the DPU install failed", &mut problems);
    if !message.contains(&format!("shows no stored firmware {shipped}"))
        || !message.contains(NETDEVSIM_FIRMWARE)
    {
        problems.push(format!(
            "the error does not say what the card stores: {message:?}"
        ));
    }
    let r = (|| -> Result<()> {
        let parts = sgdisk_partitions(disk)?;
        let bank = parts
            .iter()
            .find(|h| h.number == 5)
            .context("no partition 5 (the host lay-down runs beside the DPU)")?;
        let files = mtools_files(&disk.with_extension("mtools"), disk, bank)?;
        if files.keys().any(|k| k.eq_ignore_ascii_case("/boot.cfg")) {
            problems.push("bank 0 has a boot.cfg although the DPU install failed".into());
        }
        Ok(())
    })();
    if let Err(e) = r {
        problems.push(format!("{e:#}"));
    }
    judge(
        "3 DSC version check",
        serial,
        problems,
        format!("failed as expected: exit 7, {message:?}, no boot.cfg on bank 0"),
    )
}

/// Scenario 4: the disk, read on this machine by tools nobody here wrote.
pub(super) fn check_host_tools(p: &Paths, disk: &Path) -> Outcome {
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

/// Nothing was written to a disk (the image file has no blocks at all).
fn untouched(disk: &Path) -> Result<bool> {
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

/// Scenario 3 (BlueField): detected through the guest's sysfs, its install planned via rshim.
pub(super) fn check_bluefield(serial: &Serial, disk: &Path) -> Outcome {
    let mut problems = Vec::new();
    let plan = serial.events().into_iter().find(|e| e["event"] == "plan");
    let mut detail = String::new();
    match (serial.exit_code(), plan) {
        (Some(0), Some(e)) => {
            let dpus = e["plan"]["dpus"].as_array().cloned().unwrap_or_default();
            let text = serde_json::to_string(&dpus).unwrap_or_default();
            if dpus.len() != 1 || !text.contains("BlueField-3") || !text.contains("/dev/rshim0") {
                problems.push(format!(
                    "the plan's DPUs are not one BlueField-3 through /dev/rshim0: {text}"
                ));
            } else {
                detail = "one BlueField-3 found in the guest's sysfs; its install planned through /dev/rshim0".into();
            }
        }
        (rc, _) => problems.push(format!("the dry run ended with {rc:?} and no plan")),
    }
    match untouched(disk) {
        Ok(true) => {}
        Ok(false) => problems.push("the dry run wrote to the disk".into()),
        Err(e) => problems.push(format!("{e:#}")),
    }
    judge("3 BlueField plan", serial, problems, detail)
}

/// The broken case: a kickstart naming a disk the guest does not have.
pub(super) fn check_broken(serial: &Serial, disk: &Path) -> Outcome {
    let mut problems = Vec::new();
    let message = serial.failure_message();
    serial.expect_exit(3, "precondition", &mut problems);
    if !message.contains("mpx.vmhba9:C0:T9:L0") {
        problems.push(format!("the error does not name the disk: {message:?}"));
    }
    if !serial.text.contains("ksinstall: error:") {
        problems.push("no `ksinstall: error:` on the console".into());
    }
    match untouched(disk) {
        Ok(true) => {}
        Ok(false) => problems.push("the failed install wrote to the disk".into()),
        Err(e) => problems.push(format!("{e:#}")),
    }
    judge(
        "broken kickstart",
        serial,
        problems,
        format!("failed as expected: exit 3, {message:?}, disk untouched"),
    )
}

/// Scenario 5: OVMF boots the installed disk: it finds our ESP and starts EFI/BOOT/BOOTX64.EFI,
/// whose stub tells the kernel which partition it came from.
pub(super) fn check_uefi(serial: &Serial, disk: &Path, _uki: &Path) -> Outcome {
    let mut problems = Vec::new();
    let mut detail = String::new();
    let r = (|| -> Result<()> {
        let info = Command::new("sgdisk")
            .args(["-i", "1"])
            .arg(disk)
            .output()?;
        let text = String::from_utf8_lossy(&info.stdout);
        let guid = text
            .lines()
            .find_map(|l| l.strip_prefix("Partition unique GUID: "))
            .map(|g| g.trim().to_ascii_lowercase())
            .context("sgdisk -i 1 shows no unique GUID")?;
        // OVMF boots any FAT partition holding EFI/BOOT/BOOTX64.EFI; the type is ours to check.
        if !text.contains("C12A7328-F81F-11D2-BA4B-00A0C93EC93B") {
            problems.push(format!("partition 1 is not typed EFI System: {text}"));
        }
        let booted = serial.lines("E2E-UEFI-BOOTED").next().map(str::to_string);
        match booted {
            None => problems.push("the loader on the ESP never ran (no E2E-UEFI-BOOTED)".into()),
            Some(l) => {
                let l = l.to_ascii_lowercase();
                if !l.contains("efi=yes") {
                    problems.push(format!("not booted through UEFI: {l}"));
                }
                if !l.contains(&format!("esp={guid}")) {
                    problems.push(format!(
                        "the loader came from another partition than ours ({guid}): {l}"
                    ));
                }
                if !l.contains("\\efi\\boot\\bootx64.efi") {
                    problems.push(format!(
                        "the firmware did not load EFI\\BOOT\\BOOTX64.EFI: {l}"
                    ));
                }
                detail = format!(
                    "OVMF loaded \\EFI\\BOOT\\BOOTX64.EFI from partition 1 ({guid}) and it ran"
                );
            }
        }
        Ok(())
    })();
    if let Err(e) = r {
        problems.push(format!("{e:#}"));
    }
    judge("5 UEFI boot (OVMF)", serial, problems, detail)
}

/// The real PXE boot: dnsmasq leased the guest its address and sent it the iPXE script over
/// TFTP, the HTTP server sent the kernel and initrd, and the guest's kernel then took its own
/// address and fetched the host's kickstart (picked by MAC) and the media.
pub(super) fn check_pxe_served(
    serial: &Serial,
    dnsmasq: &str,
    http: &HttpServer,
    mac: &str,
    ks: &str,
) -> Outcome {
    let mut problems = Vec::new();
    if !dnsmasq
        .lines()
        .any(|l| l.contains("DHCPACK(br0)") && l.contains(mac))
    {
        problems.push(format!("dnsmasq's log has no DHCPACK for {mac}"));
    }
    if !dnsmasq
        .lines()
        .any(|l| l.contains("dnsmasq-tftp") && l.contains("boot.ipxe to 10.77.0."))
    {
        problems.push("dnsmasq's log does not show boot.ipxe sent over TFTP".into());
    }
    let requests = http.requests();
    for wanted in [
        "GET /image/vmlinuz".to_string(),
        "GET /image/initrd.img".to_string(),
        format!("GET /ks/{ks}"),
        "GET /media/IMGDB.TGZ".to_string(),
    ] {
        if !requests
            .lines()
            .any(|l| l.contains(&format!("\"{wanted} HTTP/1.1\" 200 ")))
        {
            problems.push(format!("the HTTP server did not serve {wanted} (200)"));
        }
    }
    if !serial.text.contains(&format!("for link on eth0 ({mac})")) {
        problems.push(format!(
            "the image's init did not take the NIC {mac} that BOOTIF= names"
        ));
    }
    judge(
        "1 PXE boot (dnsmasq+iPXE)",
        serial,
        problems,
        format!("DHCP+TFTP from dnsmasq, kernel+initrd+kickstart {ks}+media over HTTP, NIC {mac} by BOOTIF="),
    )
}

/// The VLAN scenario: a static address on the tagged interface, and an install through it.
pub(super) fn check_vlan(
    serial: &Serial,
    http: &HttpServer,
    want: &str,
    port_log: &str,
) -> Outcome {
    let mut problems = Vec::new();
    // The switch port passed tagged frames (and only those) to the server's side.
    if !port_log.contains("forwarded 100 tagged frames") {
        problems.push(format!(
            "the VLAN port forwarded fewer than 100 tagged frames: {port_log}"
        ));
    }
    serial.expect_exit(0, "installed", &mut problems);
    if !serial.text.contains(want) {
        problems.push(format!("the init never said \"{want}\""));
    }
    let from_vlan = http
        .requests()
        .lines()
        .filter(|l| l.starts_with("10.78.0.50 ") && l.contains("\"GET /media/"))
        .count();
    if from_vlan == 0 {
        problems.push("the HTTP server served no media to 10.78.0.50 (the VLAN address)".into());
    }
    judge(
        "static IP + VLAN",
        serial,
        problems,
        format!("{want}; {from_vlan} media requests from 10.78.0.50, installed"),
    )
}

/// A failure of the image's init or of the install: the reason on the console, the image's
/// end-of-the-road line, one boot only (no reboot loop), and the install never started when
/// the network was the problem.
pub(super) fn check_failure(
    name: &str,
    serial: &Serial,
    reason: &str,
    stays: &str,
    install_starts: bool,
) -> Outcome {
    let mut problems = Vec::new();
    let line = serial
        .text
        .lines()
        .find(|l| l.contains("ksinstall-image: FAILED:"))
        .map(str::to_string);
    // `reason` is what the FAILED line says, then '|' and what else the console must show.
    let mut said = reason.split('|');
    let reason = said.next().unwrap_or_default();
    for also in said {
        if !serial.text.contains(also) {
            problems.push(format!("the console never said \"{also}\""));
        }
    }
    match &line {
        Some(l) if l.contains(reason) => {}
        Some(l) => problems.push(format!("the failure does not say \"{reason}\": {l}")),
        None => problems.push("no \"ksinstall-image: FAILED:\" line on the console".into()),
    }
    if !serial.text.contains(stays) {
        problems.push("the image did not say it stays up".into());
    }
    let boots = serial.text.matches("ksinstall-image: started at").count();
    if boots != 1 {
        problems.push(format!("the image started {boots} times (a reboot loop?)"));
    }
    if !install_starts && serial.text.contains("running ksinstall boot") {
        problems.push("ksinstall boot ran although the network was not up".into());
    }
    judge(
        name,
        serial,
        problems,
        format!("{} (one boot, stays up)", line.unwrap_or_default().trim()),
    )
}

/// The CD and USB boots: OVMF started the disc's UKI, the installer read its kickstart (and,
/// from the CD, its media) where the scenario puts them, and the disk holds a sound install.
pub(super) fn check_removable(
    name: &str,
    serial: &Serial,
    disk: &Path,
    kind: Removable,
) -> Outcome {
    let mut problems = Vec::new();
    serial.expect_exit(0, "installed", &mut problems);
    let (title, source) = match kind {
        Removable::Cd => ("6 CD boot (Secure Boot)", "ks=cdrom:/KS.CFG"),
        Removable::Usb => (
            "6 USB stick (Secure Boot)",
            "ks=http://10.77.0.1:8080/ks/pxe.cfg",
        ),
    };
    if !serial
        .text
        .contains(&format!("reading the kickstart ({source})"))
    {
        problems.push(format!("the installer did not read {source}"));
    }
    if !serial.text.contains("ksinstall-image: started at") {
        problems.push("the image's init never ran".into());
    }
    super::secureboot::check_locked_down(serial, &mut problems);
    let parts = sgdisk_partitions(disk)
        .map(|v| v.iter().map(|h| h.number).collect::<Vec<_>>())
        .unwrap_or_default();
    if !parts.starts_with(&[1, 5, 6, 7]) {
        problems.push(format!("the disk has partitions {parts:?}, not 1, 5, 6, 7"));
    }
    match Command::new("sgdisk").arg("-v").arg(disk).output() {
        Ok(o) if String::from_utf8_lossy(&o.stdout).contains("No problems found") => {}
        Ok(o) => problems.push(format!(
            "sgdisk -v: {}",
            String::from_utf8_lossy(&o.stdout).trim()
        )),
        Err(e) => problems.push(format!("sgdisk: {e}")),
    }
    let _ = name;
    judge(
        title,
        serial,
        problems,
        format!("OVMF (Microsoft's keys) booted the disc by shim+GRUB; Secure boot enabled, lockdown [integrity]; {source}; partitions {parts:?}; sgdisk -v clean"),
    )
}

/// The embed scenarios: a disc with no ks= of its own booted by OVMF, the kickstart read from
/// where `source` names (the ISO's embed area, an OEMDRV stick), the media from the disc; then
/// the disk as the pxe scenario judges it: the guest kernel's GPT and vfat against sgdisk and
/// mtools here, the bank against the media, sgdisk -v and fsck.fat -n.
pub(super) fn check_embedded(
    title: &str,
    serial: &Serial,
    p: &Paths,
    disk: &Path,
    media: &Path,
    uki: &Path,
    source: &str,
) -> Outcome {
    let mut problems = Vec::new();
    let mut details = Vec::new();
    let r = (|| -> Result<()> {
        serial.expect_exit(0, "installed", &mut problems);
        if !serial
            .text
            .contains(&format!("reading the kickstart ({source})"))
        {
            problems.push(format!("the installer did not read {source}"));
        }
        if serial.text.contains("inst.repo=http") || serial.text.contains("network: DHCP") {
            problems.push("the guest used the network; the disc alone must do".into());
        }
        let host = sgdisk_partitions(disk)?;
        let numbers = check_kernel_gpt(serial, &host, &mut problems);
        details.push(format!("kernel GPT {numbers:?}"));
        let manifest = ksinstall::media::Media::open(&media.display().to_string())?.manifest;
        let guest = guest_hashes(serial);
        let hashed = check_vfat(serial, disk, &host, &guest, &mut problems)?;
        let modules = check_bank_and_loader(&manifest, &guest, uki, &mut problems)?;
        details.push(format!(
            "{source}; {hashed} files read by the guest's vfat = mtools; {modules} modules = media"
        ));
        let tools = check_host_tools(p, disk);
        if tools.passed {
            details.push(tools.detail);
        } else {
            problems.push(tools.detail);
        }
        Ok(())
    })();
    if let Err(e) = r {
        problems.push(format!("{e:#}"));
    }
    judge(title, serial, problems, details.join("; "))
}
