//! The firmware's and the image's boot: OVMF starting our ESP's loader, the PXE boot through
//! dnsmasq and iPXE, the static address on a VLAN, and the image's init failing as it says.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use super::{judge, Outcome};
use crate::e2e::guest::{HttpServer, Serial};

/// Scenario 5: OVMF boots the installed disk: it finds our ESP and starts EFI/BOOT/BOOTX64.EFI,
/// whose stub tells the kernel which partition it came from.
pub(in crate::e2e) fn check_uefi(serial: &Serial, disk: &Path, _uki: &Path) -> Outcome {
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
pub(in crate::e2e) fn check_pxe_served(
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
pub(in crate::e2e) fn check_vlan(
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
pub(in crate::e2e) fn check_failure(
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
