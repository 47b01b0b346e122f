//! Scenarios 8 and 9: the installer ISO with no ks= of its own, booted by OVMF from a CD with no
//! network involved. 8: `ksinstall iso customize` wrote a kickstart and a boot option into a copy
//! of it (the original stays byte-identical). 9: the kickstart is on a second stick labelled
//! OEMDRV (Anaconda's convention).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::guest::{Guest, Nic, Removable};
use super::image::{fresh_disk, sha256_file, Images};
use super::judges::{check_embedded, Outcome};
use super::{Paths, IMAGE_STAYS};

/// The guest of both: the disc, maybe the OEMDRV stick, and the DSC when the options ask.
fn guest<'a>(
    name: &'a str,
    disc: &'a Path,
    oemdrv: Option<&'a Path>,
    edu: u8,
    disk: std::path::PathBuf,
    deadline: Instant,
) -> Guest<'a> {
    Guest {
        name,
        removable: Some((disc, Removable::Cd)),
        oemdrv,
        nic: Nic::User,
        reboot: false,
        link_off: false,
        kernel: None,
        cmdline: String::new(),
        disk,
        snapshot: false,
        // The embed area and OEMDRV need no Secure Boot; the CD/USB scenarios boot the same
        // disc under it.
        secure_boot: None,
        edu,
        // An OVMF CD boot and an install with a DSC flash: about 2 minutes here.
        timeout: Duration::from_secs(300),
        stop_at: &[IMAGE_STAYS],
        deadline,
    }
}

pub(super) fn run(p: &Paths, images: &Images, deadline: Instant) -> Result<Vec<Outcome>> {
    let mut out = Vec::new();
    // 8: the customized copy. The image's own ksinstall writes it.
    let custom = p.w("embed-custom.iso");
    let _ = std::fs::remove_file(&custom);
    let before = sha256_file(&images.embed)?;
    let ks = images.www.join("ks/pxe.cfg");
    let status = Command::new(&images.installer.bin)
        .args(["iso", "customize", "--ks"])
        .arg(&ks)
        .args(["--append", "e2e.dpu=pensando", "-o"])
        .arg(&custom)
        .arg(&images.embed)
        .status()
        .context("ksinstall iso customize")?;
    let after = sha256_file(&images.embed)?;
    let disk = fresh_disk(&p.w("disk-embed.img"))?;
    let serial = guest("embed", &custom, None, 1, disk.clone(), deadline).run(p)?;
    let mut o = check_embedded(
        "8 iso customize (UEFI CD)",
        &serial,
        p,
        &disk,
        &images.media,
        &images.uki,
        "ks=file:///run/ksinstall/embedded-ks.cfg",
    );
    let mut problems = Vec::new();
    if !status.success() {
        problems.push(format!("ksinstall iso customize ended with {status}"));
    }
    if before != after {
        problems.push(format!(
            "the original ISO changed: SHA-256 {} before, {} after",
            before.1, after.1
        ));
    }
    // The appended option reached the init: the edu device wore the DSC and was flashed.
    if !serial.text.contains("0x1dd8:0x100c") || !serial.text.contains("Flashing done") {
        problems.push("--append e2e.dpu=pensando did not reach the init (no DSC flashed)".into());
    }
    if problems.is_empty() {
        o.detail = format!(
            "original ISO SHA-256 {} unchanged; the appended option flashed the DSC; {}",
            &before.1[..12],
            o.detail
        );
    } else {
        o.passed = false;
        o.detail = format!("{}; {}", problems.join("; "), o.detail);
    }
    out.push(o);
    // 9: the same disc as built, and the OEMDRV stick.
    let disk = fresh_disk(&p.w("disk-oemdrv.img"))?;
    let serial = guest(
        "oemdrv",
        &images.embed,
        Some(&images.oemdrv),
        0,
        disk.clone(),
        deadline,
    )
    .run(p)?;
    out.push(check_embedded(
        "9 OEMDRV kickstart (UEFI CD)",
        &serial,
        p,
        &disk,
        &images.media,
        &images.uki,
        "ks=file:///run/ksinstall/oemdrv-ks.cfg",
    ));
    Ok(out)
}
