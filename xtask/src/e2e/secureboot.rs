//! The Secure Boot scenarios (docs/TESTING.md): OVMF's Secure Boot firmware with Microsoft's
//! keys (Debian's `OVMF_CODE_4M.ms.fd` and a copy of `OVMF_VARS_4M.ms.fd`) boots the image
//! through Debian's signed shim and GRUB over the network and installs; the same firmware
//! refuses our unsigned UKI and starts it once it is signed with a test key that a copy of the
//! variable store has in `db`.
//!
//! The test key is made here with openssl. It is enrolled with `virt-fw-vars` (PyPI's
//! virt-firmware, in a venv under target/e2e: Debian 12 does not package it): in `db` for the
//! signed UKI, and as a MOK for the network boot, where shim hands it to the kernel (MokListRT,
//! and MokListTrustedRT, which shim sets by default) so that the locked-down kernel loads the
//! e2e's netdevsim, built here and signed with that key (Debian's kernel does not ship it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::guest::{Guest, HttpServer, Nic, Serial, OVMF_SB_VARS_MS};
use super::image::{sized_disk, Images};
use super::judges::{judge, sgdisk_partitions, Outcome};
use super::netlab::{NetLab, SERVER, TAP};
use super::Paths;
use crate::image::{self as installer};
use crate::run;

/// The MAC of the Secure Boot network guest: dnsmasq gives it shim as its boot file.
pub(super) const SB_MAC: &str = "52:54:00:19:00:05";
/// Owner GUID of the test key's entries in db and MokList (any GUID does).
const OWNER: &str = "605dab50-e046-4300-abb6-3dd810dd8b23";
/// What OVMF's boot manager says when Secure Boot refuses a loader: "BdsDxe: failed to load
/// Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x1,0x0): Access Denied".
const REFUSED: &str = "Access Denied";
/// What it says when nothing is left to boot (it then waits for a key): the end of a run.
const NOTHING_LEFT: &str = "BdsDxe: No bootable option or device was found";
/// What virt-fw-vars is taken from (PyPI); 26.10 is what this was run with, and --add-db and
/// --add-mok are in its manual pages since 24.1.
const VIRT_FIRMWARE: &str = "virt-firmware>=24.1,<27";

/// The Debian packages of these scenarios beside the e2e's others.
pub(super) const PACKAGES: &[&str] = &["openssl", "python3-venv", "sbsigntool"];

/// The test key, the variable stores with it enrolled, and the UKIs to boot.
pub(super) struct Kit {
    pub(super) key: PathBuf,
    pub(super) cert: PathBuf,
    /// Microsoft's keys and the test key as a MOK (shim passes it to the kernel).
    pub(super) vars_mok: PathBuf,
    /// Microsoft's keys and the test key in db (the firmware itself trusts it).
    pub(super) vars_db: PathBuf,
    /// An ESP disk whose loader is the report UKI as built (unsigned).
    pub(super) esp_unsigned: PathBuf,
    /// The same UKI signed with the test key (sbsign).
    pub(super) esp_signed: PathBuf,
}

/// virt-fw-vars in a venv of its own, made once and kept.
fn virt_fw_vars(p: &Paths) -> Result<PathBuf> {
    let venv = p.w("venv-virt-firmware");
    let tool = venv.join("bin/virt-fw-vars");
    if tool.exists() {
        return Ok(tool);
    }
    println!(
        "== installing {VIRT_FIRMWARE} (virt-fw-vars) into {}",
        venv.display()
    );
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    run(Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "-q",
            "--disable-pip-version-check",
            VIRT_FIRMWARE,
        ])
        .stdout(Stdio::null()))?;
    Ok(tool)
}

/// A GPT disk with one EFI System partition holding `efi` as the removable-media loader: the
/// FAT file system is made apart (mkfs.vfat, mtools) and written into the partition.
fn esp_disk(efi: &Path, out: &Path) -> Result<PathBuf> {
    let kib = std::fs::metadata(efi)?.len() / 1024 + 8192;
    let fat = out.with_extension("fat");
    let _ = std::fs::remove_file(&fat);
    run(Command::new("mkfs.vfat")
        .arg("-C")
        .arg(&fat)
        .arg(kib.to_string())
        .stdout(Stdio::null()))?;
    let img = fat.display().to_string();
    run(Command::new("mmd").args(["-i", &img, "::/EFI", "::/EFI/BOOT"]))?;
    run(Command::new("mcopy")
        .args(["-i", &img])
        .arg(efi)
        .arg("::/EFI/BOOT/BOOTX64.EFI"))?;
    sized_disk(out, (kib + 2048) * 1024)?;
    run(Command::new("sgdisk")
        .args(["-n", &format!("1:2048:+{kib}K"), "-t", "1:ef00"])
        .arg(out))?;
    run(Command::new("dd")
        .arg(format!("if={}", fat.display()))
        .arg(format!("of={}", out.display()))
        .args(["bs=512", "seek=2048", "conv=notrunc,sparse", "status=none"]))?;
    let _ = std::fs::remove_file(&fat);
    Ok(out.to_path_buf())
}

/// The test key (openssl), the two variable stores (virt-fw-vars) and the two ESP disks.
pub(super) fn make_kit(p: &Paths, uki: &Path) -> Result<Kit> {
    let dir = p.w("secureboot");
    std::fs::create_dir_all(&dir)?;
    let key = dir.join("test-db.key");
    let cert = dir.join("test-db.crt");
    if !key.exists() || !cert.exists() {
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256"])
            .args(["-days", "3650", "-subj", "/CN=ksinstall e2e test db key/"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null()))?;
    }
    let tool = virt_fw_vars(p)?;
    let vars_mok = dir.join("vars-ms-mok.fd");
    let vars_db = dir.join("vars-ms-db.fd");
    for (out, how) in [(&vars_mok, "--add-mok"), (&vars_db, "--add-db")] {
        let _ = std::fs::remove_file(out);
        run(Command::new(&tool)
            .args(["-i", OVMF_SB_VARS_MS, "-o"])
            .arg(out)
            .args([how, OWNER])
            .arg(&cert)
            .stderr(Stdio::null()))?;
    }
    let signed = dir.join("report-signed.efi");
    installer::sign_efi(&key, &cert, uki, &signed)?;
    Ok(Kit {
        esp_unsigned: esp_disk(uki, &dir.join("esp-unsigned.img"))?,
        esp_signed: esp_disk(&signed, &dir.join("esp-signed.img"))?,
        key,
        cert,
        vars_mok,
        vars_db,
    })
}

/// netdevsim signed with the test key (the kernel's own scripts/sign-file, from the headers
/// the e2e installs): under lockdown the kernel loads it only with a signature it trusts.
pub(super) fn sign_module(p: &Paths, kit: &Kit, ko: &Path) -> Result<PathBuf> {
    let out = p.w("secureboot/netdevsim.ko");
    std::fs::copy(ko, &out)?;
    run(Command::new(format!(
        "/usr/src/linux-headers-{}/scripts/sign-file",
        p.pin.release
    ))
    .arg("sha256")
    .arg(&kit.key)
    .arg(&kit.cert)
    .arg(&out))?;
    Ok(out)
}

/// What the guest's kernel said of Secure Boot and lockdown (the overlay's hooks and the
/// report UKI print both), as problems when it is not "on" and "integrity".
pub(super) fn check_locked_down(serial: &Serial, problems: &mut Vec<String>) {
    let sb = serial.lines("E2E-SECUREBOOT").next().unwrap_or("");
    if !sb.contains("secureboot: Secure boot enabled") {
        problems.push(format!(
            "the kernel did not say 'secureboot: Secure boot enabled' (E2E-SECUREBOOT: {sb:?})"
        ));
    }
    let lockdown = serial.lines("E2E-LOCKDOWN").next().unwrap_or("");
    if !lockdown.contains("[integrity]") {
        problems.push(format!(
            "lockdown is not [integrity] (E2E-LOCKDOWN: {lockdown:?})"
        ));
    }
}

fn is_refusal(line: &str) -> bool {
    line.contains("BdsDxe: failed to load") && line.contains(REFUSED)
}

/// The first line where OVMF refused a loader.
fn refusal(serial: &Serial) -> Option<&str> {
    serial.text.lines().find(|l| is_refusal(l))
}

/// Whether the firmware refused a loader after the installer's `finished` event (the reboot).
fn refused_after_install(serial: &Serial) -> bool {
    let lines: Vec<&str> = serial.text.lines().collect();
    let finished = lines.iter().position(|l| {
        l.find('{')
            .and_then(|i| serde_json::from_str::<serde_json::Value>(&l[i..]).ok())
            .is_some_and(|e| e["event"] == "finished")
    });
    let refused = lines.iter().rposition(|l| is_refusal(l));
    matches!((finished, refused), (Some(f), Some(r)) if r > f)
}

/// The network boot's files: `ksinstall pxe` writes grub/grub.cfg for this guest's MAC, and the
/// image's signed shim, network GRUB, MokManager, kernel and (the e2e's) initrd go to the TFTP
/// root, where that GRUB, which has no HTTP, loads them from.
fn write_netboot_files(p: &Paths, images: &Images, tftp: &Path) -> Result<()> {
    let inst = &images.installer;
    let out = p.w("tftp-sb");
    let _ = std::fs::remove_dir_all(&out);
    let url = format!("http://{SERVER}:{}", super::netlab::HTTP_PORT);
    let pxe = Command::new(&inst.bin)
        .arg("pxe")
        .arg("--media")
        .arg(&images.media)
        .args(["--ks-url", &format!("{url}/ks/broken.cfg")])
        .args(["--host", &format!("{SB_MAC}={url}/ks/netboot.cfg")])
        .args(["--http-url", &format!("{url}/media")])
        .args([
            "--append",
            "console=ttyS0 e2e.scenario=sb-pxe e2e.dpu=pensando",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .output()
        .context("ksinstall pxe")?;
    anyhow::ensure!(
        pxe.status.success(),
        "ksinstall pxe: {}",
        String::from_utf8_lossy(&pxe.stderr)
    );
    println!(
        "== ksinstall pxe says:\n{}",
        String::from_utf8_lossy(&pxe.stderr).trim_end()
    );
    std::fs::create_dir_all(tftp.join("grub"))?;
    std::fs::copy(out.join("grub/grub.cfg"), tftp.join("grub/grub.cfg"))?;
    for (from, name) in [
        (&inst.shim, "shimx64.efi"),
        (&inst.grubnet, "grubx64.efi"),
        (&inst.mm, "mmx64.efi"),
        (&inst.vmlinuz, "vmlinuz"),
        (&images.initrd, "initrd.img"),
    ] {
        std::fs::copy(from, tftp.join(name))?;
    }
    println!(
        "== grub/grub.cfg written by ksinstall pxe:\n{}",
        std::fs::read_to_string(tftp.join("grub/grub.cfg"))?
    );
    Ok(())
}

/// The Secure Boot network boot: OVMF's own PXE gets shim from dnsmasq, shim starts Debian's
/// network GRUB, GRUB reads grub/grub.cfg and loads the signed kernel and the initrd over TFTP;
/// the image installs with the DSC flashed and reboots; the firmware then refuses the installed
/// disk's loader (our unsigned UKI), which ends the run.
pub(super) fn network(
    p: &Paths,
    images: &Images,
    lab: &NetLab,
    kit: &Kit,
    deadline: Instant,
) -> Result<Vec<Outcome>> {
    let tftp = p.w("tftp");
    write_netboot_files(p, images, &tftp)?;
    let disk = super::image::fresh_disk(&p.w("disk-sb-pxe.img"))?;
    let guest = Guest {
        name: "sb-pxe",
        removable: None,
        oemdrv: None,
        nic: Nic::Tap {
            netns: &lab.netns,
            tap: TAP,
            mac: SB_MAC,
            netboot: true,
        },
        reboot: true,
        link_off: false,
        kernel: None,
        cmdline: String::new(),
        disk: disk.clone(),
        snapshot: false,
        secure_boot: Some(&kit.vars_mok),
        edu: 1,
        timeout: Duration::from_secs(420),
        stop_at: &[REFUSED, NOTHING_LEFT, super::IMAGE_STAYS],
        deadline,
    };
    let serial = guest.run(p)?;
    Ok(vec![
        check_sb_served(&serial, &lab.dnsmasq_says(), &lab.http),
        check_sb_install(&serial, &disk),
    ])
}

fn check_sb_served(serial: &Serial, dnsmasq: &str, http: &HttpServer) -> Outcome {
    let mut problems = Vec::new();
    for file in [
        "shimx64.efi",
        "grubx64.efi",
        "grub/grub.cfg",
        "vmlinuz",
        "initrd.img",
    ] {
        let sent = dnsmasq.lines().any(|l| {
            l.contains("dnsmasq-tftp") && l.contains(&format!("/tftp/{file} to 10.77.0."))
        });
        if !sent {
            problems.push(format!("dnsmasq's log does not show {file} sent over TFTP"));
        }
    }
    if !http
        .requests()
        .lines()
        .any(|l| l.contains("\"GET /ks/netboot.cfg HTTP/1.1\" 200 "))
    {
        problems.push("the guest did not fetch its kickstart ks/netboot.cfg".into());
    }
    if !serial
        .text
        .contains(&format!("for link on eth0 ({SB_MAC})"))
    {
        problems.push(format!(
            "the image's init did not take the NIC {SB_MAC} that grub.cfg's BOOTIF= names"
        ));
    }
    check_locked_down(serial, &mut problems);
    judge(
        "SB network boot (shim+GRUB)",
        serial,
        problems,
        "OVMF (Microsoft's keys) PXE: shim, grubx64.efi, grub/grub.cfg, signed kernel, initrd over TFTP; Secure boot enabled, lockdown [integrity]".into(),
    )
}

/// The install under lockdown: exit 0, the signed netdevsim loaded and flashed through devlink,
/// the disk's partitions, the reboot, and the firmware's refusal of the unsigned loader the
/// install put on the disk.
fn check_sb_install(serial: &Serial, disk: &Path) -> Outcome {
    let mut problems = Vec::new();
    serial.expect_exit(0, "installed", &mut problems);
    let events = serial.events();
    let flashed = events.iter().any(|e| {
        e["event"] == "status"
            && e["step"] == "dpu"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("Flashing done"))
    });
    let dpu_done = events
        .iter()
        .any(|e| e["event"] == "step_finished" && e["step"] == "dpu");
    if !flashed || !dpu_done {
        problems.push(
            "the DSC was not flashed through devlink (no 'Flashing done' and finished dpu step)"
                .into(),
        );
    }
    let parts = sgdisk_partitions(disk)
        .map(|v| v.iter().map(|h| h.number).collect::<Vec<_>>())
        .unwrap_or_default();
    if !parts.starts_with(&[1, 5, 6, 7]) {
        problems.push(format!("the disk has partitions {parts:?}, not 1, 5, 6, 7"));
    }
    // After the install's reboot the firmware tries the disk first: our UKI, unsigned.
    let refused = refusal(serial);
    if !refused_after_install(serial) {
        problems.push(format!(
            "after the reboot the firmware did not refuse the installed disk's unsigned loader ({REFUSED})"
        ));
    }
    judge(
        "SB install+DSC flash",
        serial,
        problems,
        format!(
            "installed under lockdown (partitions {parts:?}), signed netdevsim flashed; rebooted: {}",
            refused.unwrap_or("").trim()
        ),
    )
}

/// The negative control: our UKI unsigned is refused by the firmware with Microsoft's keys;
/// the same UKI signed with the test key is refused there too, and boots (Secure Boot on,
/// lockdown integrity) once the test key is in db.
pub(super) fn uki(p: &Paths, kit: &Kit, deadline: Instant) -> Result<Vec<Outcome>> {
    let ms = Path::new(OVMF_SB_VARS_MS);
    let cases: [(&'static str, &Path, &Path, bool); 3] = [
        ("sb-uki-unsigned", &kit.esp_unsigned, ms, false),
        ("sb-uki-signed-ms", &kit.esp_signed, ms, false),
        ("sb-uki-signed-db", &kit.esp_signed, &kit.vars_db, true),
    ];
    let mut out = Vec::new();
    for (name, disk, vars, boots) in cases {
        let guest = Guest {
            name,
            removable: None,
            oemdrv: None,
            nic: Nic::None,
            reboot: false,
            link_off: false,
            kernel: None,
            cmdline: String::new(),
            disk: disk.to_path_buf(),
            // The disk stays as made: the next case boots it too.
            snapshot: true,
            secure_boot: Some(vars),
            edu: 0,
            timeout: Duration::from_secs(120),
            stop_at: &[REFUSED, NOTHING_LEFT, "E2E-DONE"],
            deadline,
        };
        let serial = guest.run(p)?;
        let mut problems = Vec::new();
        let refused = refusal(&serial);
        let detail = if boots {
            if let Some(r) = refused {
                problems.push(format!("refused: {}", r.trim()));
            }
            if !serial.text.contains("E2E-UEFI-BOOTED efi=yes") {
                problems.push("the signed UKI's kernel did not run".into());
            }
            check_locked_down(&serial, &mut problems);
            "signed with the test key, key in db: booted, Secure boot enabled, lockdown [integrity]"
                .to_string()
        } else {
            if refused.is_none() {
                problems.push(format!("the firmware did not refuse it ({REFUSED})"));
            }
            if serial.text.contains("E2E-UEFI-BOOTED") {
                problems.push("its kernel ran".into());
            }
            format!("refused: {}", refused.unwrap_or("").trim())
        };
        out.push(judge(
            &format!("SB UKI: {}", &name["sb-uki-".len()..]),
            &serial,
            problems,
            detail,
        ));
    }
    Ok(out)
}
