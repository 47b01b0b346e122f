//! The install scenarios: over HTTP (PXE-style), from a CD or USB stick, from a disc with the
//! kickstart embedded, and the broken kickstart that must leave the disk untouched.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use super::disk::{check_host_tools, sgdisk_partitions, untouched};
use super::kernel_view::check_guest_reading;
use super::{judge, Outcome};
use crate::e2e::guest::{HttpServer, Removable, Serial};
use crate::e2e::Paths;

/// Scenarios 1 and 2: the install over HTTP onto the virtio disk, then what the guest's kernel
/// read back from it, compared with the media and with mtools' reading on this machine.
pub(in crate::e2e) fn check_pxe(
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
        let read = check_guest_reading(serial, disk, media, uki, &mut problems)?;
        details.push(format!("kernel GPT {:?}", read.numbers));
        details.push(format!(
            "{} files read by the guest's vfat = mtools; {} modules = media",
            read.hashed, read.modules
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

/// The CD and USB boots: OVMF started the disc's UKI, the installer read its kickstart (and,
/// from the CD, its media) where the scenario puts them, and the disk holds a sound install.
pub(in crate::e2e) fn check_removable(
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
    crate::e2e::secureboot::check_locked_down(serial, &mut problems);
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
pub(in crate::e2e) fn check_embedded(
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
        let read = check_guest_reading(serial, disk, media, uki, &mut problems)?;
        details.push(format!("kernel GPT {:?}", read.numbers));
        details.push(format!(
            "{source}; {} files read by the guest's vfat = mtools; {} modules = media",
            read.hashed, read.modules
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

/// The broken case: a kickstart naming a disk the guest does not have.
pub(in crate::e2e) fn check_broken(serial: &Serial, disk: &Path) -> Outcome {
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
