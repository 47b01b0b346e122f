//! The scenarios on the e2e's own network (netlab.rs): the real PXE boot, the static address
//! on a VLAN; and the failures of the image's network bring-up.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::guest::{Guest, Nic, Removable, OVMF_SB_VARS_MS};
use super::image::{fresh_disk, Images};
use super::judges::{
    check_dpu_flash, check_failure, check_host_tools, check_pxe, check_pxe_served, check_removable,
    check_uefi, check_vlan, Outcome,
};
use super::netlab::{NetLab, TAP, VLAN_GUEST_LISTENS, VLAN_ID, VLAN_PORT_LISTENS, VLAN_SERVER};
use super::{Paths, IMAGE_STAYS};
use crate::run;

/// The MAC of the PXE guest: `ksinstall pxe --host` gives it its own kickstart.
const PXE_MAC: &str = "52:54:00:19:00:01";

/// The boot files `ksinstall pxe` writes for the lab: the installer image's kernel and initrd
/// over HTTP, the default kickstart the broken one, this guest's (by MAC) the one that
/// installs and reboots.
fn write_pxe_files(p: &Paths, images: &Images, lab: &NetLab, tftp: &Path) -> Result<()> {
    let image_dir = images.www.join("image");
    std::fs::create_dir_all(&image_dir)?;
    std::fs::copy(&images.installer.vmlinuz, image_dir.join("vmlinuz"))?;
    std::fs::copy(&images.initrd, image_dir.join("initrd.img"))?;
    let url = lab.url();
    std::fs::create_dir_all(tftp)?;
    run(std::process::Command::new(&images.installer.bin)
        .arg("pxe")
        .arg("--media")
        .arg(&images.media)
        .args(["--ks-url", &format!("{url}/ks/broken.cfg")])
        .args(["--host", &format!("{PXE_MAC}={url}/ks/netboot.cfg")])
        .args(["--http-url", &format!("{url}/media")])
        .args(["--image-url", &format!("{url}/image")])
        .args([
            "--append",
            "console=ttyS0 e2e.scenario=pxe e2e.dpu=pensando",
        ])
        .arg("--out")
        .arg(tftp)
        .stdout(std::process::Stdio::null()))?;
    println!(
        "== boot.ipxe written by ksinstall pxe:\n{}",
        std::fs::read_to_string(tftp.join("boot.ipxe"))?
    );
    let _ = p;
    Ok(())
}

/// Scenarios 1-5 in one guest: OVMF with iPXE on a virtio NIC gets its lease and boot.ipxe from
/// dnsmasq, the kernel and initrd over HTTP; the image installs (the DSC flashed through
/// netdevsim) and the kickstart's `reboot` reboots it; OVMF then boots the installed disk's
/// ESP, whose loader (the report UKI) prints what the firmware said and what its kernel reads
/// of the disk. Then the host's tools judge the disk.
pub(super) fn pxe_boot(
    p: &Paths,
    images: &Images,
    lab: &NetLab,
    deadline: Instant,
) -> Result<Vec<Outcome>> {
    let tftp = p.w("tftp");
    write_pxe_files(p, images, lab, &tftp)?;
    let disk = fresh_disk(&p.w("disk-pxe.img"))?;
    let guest = Guest {
        name: "pxe",
        removable: None,
        oemdrv: None,
        nic: Nic::Tap {
            netns: &lab.netns,
            tap: TAP,
            mac: PXE_MAC,
            netboot: true,
        },
        reboot: true,
        link_off: false,
        kernel: None,
        cmdline: String::new(),
        disk: disk.clone(),
        snapshot: false,
        secure_boot: None,
        edu: 1,
        timeout: Duration::from_secs(360),
        stop_at: &["E2E-DONE", IMAGE_STAYS],
        deadline,
    };
    let serial = guest.run(p)?;
    Ok(vec![
        check_pxe_served(
            &serial,
            &lab.dnsmasq_says(),
            &lab.http,
            PXE_MAC,
            "netboot.cfg",
        ),
        check_pxe(
            &serial,
            &disk,
            &images.media,
            &images.uki,
            &lab.http,
            "netboot.cfg",
        ),
        check_dpu_flash(&serial),
        check_uefi(&serial, &disk, &images.uki),
        check_host_tools(p, &disk),
    ])
}

/// A static address on VLAN 42: the host has 10.78.0.1 only on its VLAN interface, so the
/// kickstart and media come through tagged frames or not at all.
pub(super) fn vlan(
    p: &Paths,
    images: &Images,
    lab: &mut NetLab,
    deadline: Instant,
) -> Result<Outcome> {
    lab.start_vlan(&p.root)?;
    let url = format!("http://{VLAN_SERVER}:{}", super::netlab::HTTP_PORT);
    let mac = "52:54:00:19:00:02";
    let guest = Guest {
        name: "vlan",
        removable: None,
        oemdrv: None,
        nic: Nic::Udp {
            netns: &lab.netns,
            mac,
            listen: VLAN_GUEST_LISTENS,
            peer: VLAN_PORT_LISTENS,
        },
        reboot: false,
        link_off: false,
        kernel: Some((images.installer.vmlinuz.as_path(), images.initrd.as_path())),
        cmdline: format!(
            "ks={url}/ks/pxe.cfg inst.repo={url}/media ip=10.78.0.50 netmask=255.255.255.0 gateway={VLAN_SERVER} nameserver={VLAN_SERVER} vlanid={VLAN_ID} e2e.scenario=vlan e2e.dpu=none"
        ),
        disk: fresh_disk(&p.w("disk-vlan.img"))?,
        snapshot: false,
        secure_boot: None,
        edu: 0,
        timeout: Duration::from_secs(240),
        stop_at: &[IMAGE_STAYS],
        deadline,
    };
    let serial = guest.run(p)?;
    let want = format!(
        "network: eth0.{VLAN_ID} ({mac}) static 10.78.0.50/24 via {VLAN_SERVER} VLAN {VLAN_ID}"
    );
    let port_log = std::fs::read_to_string(&lab.vlan_port_log).unwrap_or_default();
    Ok(check_vlan(&serial, &lab.http, &want, &port_log))
}

/// The image's failures, each on QEMU's user network: an unreachable ks=, a NIC without link,
/// a BOOTIF= naming no NIC. Each must end with its reason and the image staying up.
pub(super) fn failures(
    p: &Paths,
    images: &Images,
    url: &str,
    deadline: Instant,
) -> Result<Vec<Outcome>> {
    let cases: [(&'static str, String, bool, &str, bool); 3] = [
        (
            "fail-ks",
            // Port 9 (discard) listens nowhere here: the connection is refused.
            format!("ks=http://10.0.2.2:9/ks/pxe.cfg inst.repo={url}/media"),
            false,
            "ksinstall boot exit code 1|no kickstart could be read:|http://10.0.2.2:9/ks/pxe.cfg: io: Connection refused",
            true,
        ),
        (
            "fail-link",
            format!("ks={url}/ks/pxe.cfg inst.repo={url}/media ksinstall.linkwait=5"),
            true,
            "no link on eth0 after 5 s",
            false,
        ),
        (
            "fail-bootif",
            format!("ks={url}/ks/pxe.cfg BOOTIF=01-02-00-00-00-00-99 ksinstall.nicwait=3"),
            false,
            "no network interface matches 02:00:00:00:00:99 after 3 s",
            false,
        ),
    ];
    let mut out = Vec::new();
    for (name, cmdline, link_off, reason, install_starts) in cases {
        let guest = Guest {
            name,
            removable: None,
            oemdrv: None,
            nic: Nic::User,
            reboot: false,
            link_off,
            kernel: Some((images.installer.vmlinuz.as_path(), images.initrd.as_path())),
            cmdline: format!("{cmdline} e2e.scenario={name} e2e.dpu=none"),
            disk: fresh_disk(&p.w(&format!("disk-{name}.img")))?,
            snapshot: false,
            secure_boot: None,
            edu: 0,
            timeout: Duration::from_secs(90),
            stop_at: &[IMAGE_STAYS],
            deadline,
        };
        let serial = guest.run(p)?;
        out.push(check_failure(
            &format!("failure: {name}"),
            &serial,
            reason,
            IMAGE_STAYS,
            install_starts,
        ));
    }
    Ok(out)
}

/// The installer disc booted by OVMF's Secure Boot firmware with Microsoft's keys (shim ->
/// Debian's CD GRUB -> the signed kernel) as a CD (kickstart and media on the disc) and written
/// raw as a USB stick (kickstart and media from the lab's HTTP server): both install.
pub(super) fn removable(
    p: &Paths,
    images: &Images,
    lab: &NetLab,
    deadline: Instant,
) -> Result<Vec<Outcome>> {
    let mut out = Vec::new();
    for (name, disc, kind) in [
        ("cd", &images.cd, Removable::Cd),
        ("usb", &images.usb, Removable::Usb),
    ] {
        let disk = fresh_disk(&p.w(&format!("disk-{name}.img")))?;
        let guest = Guest {
            name,
            removable: Some((disc.as_path(), kind)),
            oemdrv: None,
            nic: match kind {
                Removable::Cd => Nic::User,
                Removable::Usb => Nic::Tap {
                    netns: &lab.netns,
                    tap: TAP,
                    mac: "52:54:00:19:00:03",
                    netboot: false,
                },
            },
            reboot: false,
            link_off: false,
            kernel: None,
            cmdline: String::new(),
            disk: disk.clone(),
            snapshot: false,
            secure_boot: Some(Path::new(OVMF_SB_VARS_MS)),
            edu: 0,
            timeout: Duration::from_secs(240),
            stop_at: &[IMAGE_STAYS],
            deadline,
        };
        let serial = guest.run(p)?;
        out.push(check_removable(name, &serial, &disk, kind));
    }
    Ok(out)
}
