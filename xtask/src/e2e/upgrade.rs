//! The upgrade scenario: under the real kernel, `upgrade --firstdisk` from media of the next
//! build (served as `media-b/`) on the disk the pxe scenario installed, without a DPU in the
//! guest. Judged on this machine: safeboot's choice by our reading of esx-boot is the new bank,
//! bank 5 is byte for byte what the pxe install left, `state.tgz` came over, and the guest's vfat
//! read the new bank's `boot.cfg` as mtools reads it here.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{Context, Result};
use ksinstall::inventory::{content, installed};
use sha2::{Digest, Sha256};

use super::image::Images;
use super::judges::Outcome;
use super::{ImageGuests, Paths};

const BANK5: (u64, u64) = (208_896, 8_595_455);
const BANK6_FIRST: u64 = 8_597_504;

fn bank5_hash(disk: &Path) -> Result<String> {
    let mut f = std::fs::File::open(disk)?;
    f.seek(SeekFrom::Start(BANK5.0 * 512))?;
    let mut left = (BANK5.1 + 1 - BANK5.0) * 512;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = (left as usize).min(buf.len());
        f.read_exact(&mut buf[..n])?;
        h.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// What the installed host does to bank 5 once it has run (docs/FIRSTBOOT.md): first boot takes
/// `onetime.tgz` out of `modules=`, ESXi's backup saves `state.tgz` (listed last), which the
/// upgrade must carry. A fresh install writes no `state.tgz` of its own.
fn host_ran(p: &Paths, disk: &Path) -> Result<()> {
    let at = format!("{}@@{}", disk.display(), BANK5.0 * 512);
    let cfg = std::process::Command::new("mtype")
        .args(["-i", &at, "::/boot.cfg"])
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()?;
    let cfg =
        String::from_utf8_lossy(&cfg.stdout).replace(" --- onetime.tgz\n", " --- state.tgz\n");
    let dir = p.w("host-ran");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("boot.cfg"), cfg)?;
    std::fs::write(dir.join("marker"), "saved by ESXi\n")?;
    // The archive path first and absolute: tar opens it before it changes to -C's directory.
    for (archive, member) in [("local.tgz", "marker"), ("state.tgz", "local.tgz")] {
        crate::run(
            std::process::Command::new("tar")
                .arg("-czf")
                .arg(dir.join(archive))
                .arg("-C")
                .arg(&dir)
                .arg(member),
        )?;
    }
    for f in ["state.tgz", "boot.cfg"] {
        crate::run(
            std::process::Command::new("mcopy")
                .args(["-o", "-i", &at])
                .arg(dir.join(f))
                .arg(format!("::/{f}"))
                .env("MTOOLS_SKIP_CHECK", "1"),
        )?;
    }
    Ok(())
}

/// The build after `build` (`8.0.3-0.35.24280776` -> `...24280777`).
fn next_build(build: &str) -> Result<String> {
    let (head, n) = build.rsplit_once('.').context("a build ends in .NUMBER")?;
    Ok(format!("{head}.{}", n.parse::<u64>()? + 1))
}

pub(super) fn run(
    p: &Paths,
    images: &Images,
    guests: &ImageGuests<'_>,
    disk: &Path,
) -> Result<Outcome> {
    let from = ksinstall::media::Media::open(&images.media.display().to_string())?
        .manifest
        .build;
    let to = next_build(&from)?;
    let media_b = images.www.join("media-b");
    let _ = std::fs::remove_dir_all(&media_b);
    testkit::synth::mkmedia_with(
        &testkit::synth::Options {
            out: media_b,
            size: 48 << 20,
            version: "8.0.3".into(),
            seed: 9,
        },
        &testkit::synth::Variant {
            build: Some(to.clone()),
            ..Default::default()
        },
    )?;
    std::fs::write(
        images.www.join("ks/upgrade.cfg"),
        "# cargo xtask e2e: the next build into the other bank of the pxe scenario's disk.\nvmaccepteula\nupgrade --firstdisk\n",
    )?;
    host_ran(p, disk)?;
    let before = bank5_hash(disk)?;
    let repo = format!("inst.repo={}/media-b", guests.url);
    let serial = guests
        .guest("upgrade", "upgrade.cfg", "none", &repo, disk.to_path_buf())
        .run(p)?;
    let mut problems = Vec::new();
    serial.expect_exit(0, "success", &mut problems);
    let c = content::read(disk, 512);
    let esx = c.esx.context("no ESXi on the disk after the upgrade")?;
    let choice = installed::safeboot_choice(&esx.banks);
    if choice.boots != Some(6) {
        problems.push(format!(
            "safeboot would boot {:?}, not bank 6",
            choice.boots
        ));
    }
    let bank = |n: u32| esx.banks.iter().find(|b| b.partition == n);
    match bank(6) {
        Some(b)
            if b.build.as_deref() == Some(to.as_str())
                && b.updated == Some(2)
                && b.bootstate == Some(1) => {}
        other => problems.push(format!(
            "bank 6 is not {to} with updated=2, bootstate=1: {other:?}"
        )),
    }
    if bank(5).and_then(|b| b.build.as_deref()) != Some(from.as_str()) {
        problems.push(format!("bank 5 no longer holds {from}"));
    }
    match (bank(5).map(|b| &b.state_tgz), bank(6).map(|b| &b.state_tgz)) {
        (Some(Some(a)), Some(Some(b))) if a == b => {}
        other => problems.push(format!(
            "state.tgz was not carried over byte for byte: {other:?}"
        )),
    }
    if bank5_hash(disk)? != before {
        problems.push("bank 5 changed".into());
    }
    // The guest's kernel (vfat) read the new bank's boot.cfg as mtools reads it here.
    let here = std::process::Command::new("mtype")
        .arg("-i")
        .arg(format!("{}@@{}", disk.display(), BANK6_FIRST * 512))
        .arg("::/boot.cfg")
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()?;
    let sha = ksinstall::media::verify::sha256_hex(&here.stdout);
    let prefix = "E2E-SHA256 vda6 /boot.cfg ";
    if !serial
        .lines(prefix)
        .any(|l| l[prefix.len()..].trim() == sha)
    {
        problems.push(format!(
            "the guest's vfat did not read bank 6's boot.cfg as {sha}"
        ));
    }
    Ok(super::judges::judge(
        "7 upgrade (real kernel)",
        &serial,
        problems,
        format!("{from} -> {to}: bank 6 boots (updated=2, bootstate=1), bank 5 byte-identical, state.tgz carried, vfat = mtools"),
    ))
}
