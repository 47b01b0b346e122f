//! What the guests boot, made on this machine: the installer image (`cargo xtask image`, the
//! same builder), and on top of it the test's own pieces: netdevsim, a test overlay appended to
//! the image's initramfs (the hooks of tests/e2e/hooks), the UEFI scenario's UKI, the media and
//! the kickstarts.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use testkit::synth;

use super::{Laps, Paths};
use crate::image::{self as installer, Installer, Pin};
use crate::run;

/// The Debian packages the e2e needs beside the image's: QEMU and its firmware, dnsmasq, the
/// netdevsim build, the HTTP server and the host-side judges.
fn packages(pin: &Pin) -> Vec<String> {
    let mut p: Vec<String> = [
        "qemu-system-x86",
        "ovmf",
        "ipxe-qemu",
        "dnsmasq-base",
        "iproute2",
        "make",
        "gcc",
        "xz-utils",
        "python3",
        "gdisk",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    p.extend(super::secureboot::PACKAGES.iter().map(|s| s.to_string()));
    p.push(format!("linux-headers-{}={}", pin.release, pin.version));
    p
}

/// What netdevsim stores as its firmware version (drivers/net/netdevsim/dev.c, 6.1).
pub(super) const NETDEVSIM_FIRMWARE: &str = "10.20.30";

/// netdevsim.ko built out of tree from Debian's linux-source for the pinned kernel (Debian
/// kernels do not ship it: `# CONFIG_NETDEVSIM is not set`).
fn build_netdevsim(p: &Paths) -> Result<PathBuf> {
    let Pin { release, version } = &p.pin;
    let series = p.pin.series();
    let ko = p.w(&format!("netdevsim/{release}/netdevsim.ko"));
    if ko.exists() {
        return Ok(ko);
    }
    let deb = installer::download(
        &p.cache.join("dl"),
        &format!("linux-source-{series}={version}"),
    )?;
    let src = p.w("netdevsim-src");
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(&src)?;
    println!("== building netdevsim.ko for {release}");
    // Only the driver's directory is unpacked from the 139 MB source tarball.
    run(Command::new("bash")
        .args(["-o", "pipefail", "-e", "-c"])
        .arg(
            "dpkg-deb --fsys-tarfile \"$1\" | tar -xO \"./usr/src/linux-source-$3.tar.xz\" \
             | xz -dc | tar -x -C \"$2\" \"linux-source-$3/drivers/net/netdevsim\"",
        )
        .arg("bash")
        .arg(&deb)
        .arg(&src)
        .arg(&series))?;
    let module_dir = src.join(format!("linux-source-{series}/drivers/net/netdevsim"));
    run(Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(format!("/usr/src/linux-headers-{release}"))
        .arg(format!("M={}", module_dir.display()))
        .arg("CONFIG_NETDEVSIM=m")
        .arg("modules"))?;
    std::fs::create_dir_all(ko.parent().context("netdevsim path")?)?;
    std::fs::copy(module_dir.join("netdevsim.ko"), &ko)?;
    let _ = std::fs::remove_dir_all(&src);
    Ok(ko)
}

/// A small synthetic ESXi 8.0.3 medium (it crosses slirp at a few MB/s), whose ESP loader is
/// the UKI, with the manifest's size and SHA-256 for it.
fn make_media(media: &Path, uki: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(media);
    synth::mkmedia(&synth::Options {
        out: media.to_path_buf(),
        size: 48 << 20,
        version: "8.0.3".into(),
        seed: 9,
    })?;
    // The UKI stands where safeboot is (the ESP's EFI/BOOT/BOOTX64.EFI), and the media's
    // imgdb.tgz vouches for it, so the install verifies it as it would VMware's loader.
    synth::replace_payload(media, "EFI/BOOT/SAFEBOOT.EFI", &std::fs::read(uki)?)?;
    Ok(())
}

/// ESXi's default password policy is met by the hashed password of the examples.
const KS_HEAD: &str = "vmaccepteula
rootpw --iscrypted $6$ksinstallExampl$gs0rWRb4e18QdWwUGxkYYf27pufzcgy.uh99Ch9umRYHEgzPhZjOfXvb9/6j3OBpXQpAO238CiGZZ0X5fOIg31
network --bootproto=dhcp
";

/// The settings first boot applies in the datastore scenario, and what `inspect` must read back.
pub(super) const FIRSTBOOT_TAIL: &str = "network --bootproto=static --ip=10.1.2.3 --netmask=255.255.255.0 --gateway=10.1.2.1 --hostname=esx1.lab.example --nameserver=10.1.2.2,10.1.2.4 --vlanid=42
keyboard German
serialnum --esx=AB1C2-DE3F4-GH5I6-JK7L8-MN9P0
%firstboot --interpreter=busybox
echo busybox first boot
%firstboot --interpreter=python
print('python first boot')
";

fn make_kickstarts(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("pxe.cfg"),
        format!(
            "# cargo xtask e2e: the first disk, the DSC flashed in the same install.\n{KS_HEAD}install --firstdisk --overwritevmfs\n"
        ),
    )?;
    // The real PXE boot's: the same install, then the reboot into the installed disk.
    std::fs::write(
        dir.join("netboot.cfg"),
        format!(
            "# cargo xtask e2e: PXE-booted, installs, reboots into the installed disk.\n{KS_HEAD}install --firstdisk --overwritevmfs\nreboot\n"
        ),
    )?;
    // The first-boot contract under the real kernel: static address, VLAN, two name servers,
    // keyboard, serial number and two %firstboot scripts (docs/FIRSTBOOT.md); `inspect` then
    // reads the disk back.
    std::fs::write(
        dir.join("firstboot.cfg"),
        format!(
            "# cargo xtask e2e: what first boot applies, on a 200 GB disk (OSDATA and datastore1).\n{}install --firstdisk --overwritevmfs\n{FIRSTBOOT_TAIL}",
            KS_HEAD.replace("network --bootproto=dhcp\n", "")
        ),
    )?;
    std::fs::write(
        dir.join("broken.cfg"),
        format!(
            "# cargo xtask e2e: a disk this guest does not have.\n{KS_HEAD}install --disk=mpx.vmhba9:C0:T9:L0 --overwritevmfs\n"
        ),
    )?;
    Ok(())
}

/// A sparse 40 GB disk image, made anew.
pub(super) fn fresh_disk(path: &Path) -> Result<PathBuf> {
    sized_disk(path, 40_000_000_000)
}

pub(super) fn sized_disk(path: &Path, bytes: u64) -> Result<PathBuf> {
    let _ = std::fs::remove_file(path);
    let f = std::fs::File::create(path).with_context(|| format!("{}", path.display()))?;
    f.set_len(bytes)?;
    Ok(path.to_path_buf())
}

pub(super) fn sha256_file(path: &Path) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    ksinstall::media::verify::sha256_of(&mut f).with_context(|| format!("{}", path.display()))
}

/// What the guests boot, made once per run.
pub(super) struct Images {
    pub(super) installer: Installer,
    /// The image's initrd.img with the test overlay appended (the kernel unpacks both).
    pub(super) initrd: PathBuf,
    /// The UEFI scenario's loader, also the media's ESP loader.
    pub(super) uki: PathBuf,
    /// What the HTTP server serves: media/, ks/, and the boot files.
    pub(super) www: PathBuf,
    pub(super) media: PathBuf,
    /// The installer disc with the media and KS.CFG on it (ks=cdrom:/KS.CFG).
    pub(super) cd: PathBuf,
    /// The installer disc written raw as a USB stick, kickstart and media over HTTP.
    pub(super) usb: PathBuf,
    /// The Secure Boot scenarios' test key, variable stores and ESP disks.
    pub(super) sb: super::secureboot::Kit,
    /// The installer disc with the media and no ks= (the embed and OEMDRV scenarios).
    pub(super) embed: PathBuf,
    /// A stick labelled OEMDRV holding pxe.cfg as ks.cfg.
    pub(super) oemdrv: PathBuf,
}

/// The test overlay: the e2e hooks, netdevsim, and the firmware bundles as the scenarios need
/// them. Appended to the image's initramfs, whose files it adds to or replaces.
fn make_overlay(p: &Paths, netdevsim: &Path) -> Result<PathBuf> {
    let dir = p.w("overlay");
    let _ = std::fs::remove_dir_all(&dir);
    let hooks = dir.join("lib/ksinstall/hooks");
    std::fs::create_dir_all(&hooks)?;
    for h in ["pre-network-e2e", "pre-install-e2e", "post-install-e2e"] {
        std::fs::copy(p.root.join("tests/e2e/hooks").join(h), hooks.join(h))?;
    }
    std::fs::create_dir_all(dir.join("lib/e2e"))?;
    std::fs::copy(netdevsim, dir.join("lib/e2e/netdevsim.ko"))?;
    // netdevsim stores firmware 10.20.30 whatever it is given, so the DSC bundle of this image
    // says it carries that version: the installer's check that the card stores the new version
    // then holds. The repository's bundles as they are stay beside it (e2e.firmware=shipped).
    let share = dir.join("usr/share/ksinstall");
    std::fs::create_dir_all(share.join("firmware/amd-pensando-dsc"))?;
    run(Command::new("cp")
        .arg("-a")
        .arg(p.root.join("firmware"))
        .arg(share.join("firmware-shipped")))?;
    let bundle = "amd-pensando-dsc/bundle.toml";
    let text = std::fs::read_to_string(p.root.join("firmware").join(bundle))?;
    let patched: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("version = ") {
                format!("version = \"{NETDEVSIM_FIRMWARE}\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(
        share.join("firmware").join(bundle),
        patched.join("\n") + "\n",
    )?;
    let out = p.w("overlay.cpio");
    installer::cpio(&dir, &out, "cat")?;
    Ok(out)
}

/// A unified kernel image that prints what the firmware told it (tests/e2e/uefi-init): what
/// the UEFI scenario finds as EFI/BOOT/BOOTX64.EFI on the installed disk.
fn make_report_uki(p: &Paths, inst: &Installer) -> Result<PathBuf> {
    let dir = p.w("uki-initramfs");
    let _ = std::fs::remove_dir_all(&dir);
    installer::copy_busybox(&dir)?;
    installer::install_exec(&p.root.join("tests/e2e/uefi-init"), &dir.join("init"))?;
    let release = &inst.pin.release;
    // efivarfs for what the firmware said; virtio and vfat to read the disk it booted from.
    let modules = installer::resolve_modules(
        &inst.kernel,
        release,
        &[
            "efivarfs",
            "virtio_pci",
            "virtio_blk",
            "vfat",
            "nls_cp437",
            "nls_iso8859-1",
            "nls_ascii",
            "nls_utf8",
        ],
    )?;
    installer::copy_modules(&inst.kernel, release, &modules, &dir)?;
    let initrd = p.w("uki-initrd.cpio");
    installer::cpio(&dir, &initrd, "cat")?;
    let uki = p.w("BOOTX64.EFI");
    installer::make_uki(
        &inst.vmlinuz,
        &initrd,
        "console=ttyS0 panic=-1 quiet",
        "ksinstall e2e",
        &uki,
    )?;
    Ok(uki)
}

/// The two discs of the CD and USB scenarios, made as `cargo xtask image` makes its ISO (shim ->
/// Debian's CD GRUB -> the signed kernel), with the e2e's initrd and each its own command line
/// in the GRUB and isolinux entries.
fn make_discs(
    p: &Paths,
    inst: &Installer,
    initrd: &Path,
    media: &Path,
    lab_url: &str,
) -> Result<(PathBuf, PathBuf, PathBuf)> {
    // The CD: the media at the root (as on VMware's disc) and the kickstart beside them.
    let root = p.w("cd-root");
    let _ = std::fs::remove_dir_all(&root);
    run(Command::new("cp").arg("-al").arg(media).arg(&root))?;
    std::fs::copy(p.w("www/ks/pxe.cfg"), root.join("KS.CFG"))?;
    let mut discs = Vec::new();
    for (name, cmdline, extra) in [
        // The embed scenarios': no ks= at all; `ksinstall iso customize` or an OEMDRV stick
        // give it (tests/e2e/hooks read e2e.scenario=embed for both).
        ("embed", "console=ttyS0 e2e.scenario=embed".to_string(), Some(root.as_path())),
        ("cd", "console=ttyS0 ks=cdrom:/KS.CFG e2e.scenario=cd e2e.dpu=none".to_string(), Some(root.as_path())),
        ("usb", format!("console=ttyS0 ks={lab_url}/ks/pxe.cfg inst.repo={lab_url}/media e2e.scenario=usb e2e.dpu=none"), None),
    ] {
        let out = p.w(&format!("{name}.iso"));
        installer::make_iso(
            &installer::Disc {
                vmlinuz: &inst.vmlinuz,
                initrd,
                chain: &inst.chain,
                cmdline: &cmdline,
                extra,
                out: &out,
            },
            &p.work,
        )?;
        discs.push(out);
    }
    let _ = std::fs::remove_dir_all(&root);
    let usb = discs.pop().context("usb disc")?;
    let cd = discs.pop().context("cd disc")?;
    let embed = discs.pop().context("embed disc")?;
    Ok((cd, usb, embed))
}

/// A 4 MiB FAT stick labelled OEMDRV with `ks` as its ks.cfg (Anaconda's convention).
fn make_oemdrv(out: &Path, ks: &Path) -> Result<()> {
    let _ = std::fs::remove_file(out);
    run(Command::new("mkfs.vfat")
        .args(["-C", "-n", "OEMDRV"])
        .arg(out)
        .arg("4096")
        .stdout(std::process::Stdio::null()))?;
    run(Command::new("mcopy")
        .arg("-i")
        .arg(out)
        .arg(ks)
        .arg("::/ks.cfg"))
}

/// The installer image, the packages, netdevsim, then the overlay, the UKI, the media and the
/// kickstarts, each phase timed.
pub(super) fn build(
    root: &Path,
    target: &Path,
    cargo: &mut Command,
    laps: &mut Laps,
) -> Result<(Paths, Images)> {
    let work = target.join("e2e");
    let opts = installer::Options {
        out: work.join("image"),
        cache: target.join("image"),
        rshim: None,
        cmdline: String::new(),
        sign: None,
    };
    let inst = installer::build(root, target, cargo, &opts)?;
    laps.lap("installer image");
    installer::ensure_packages(&packages(&inst.pin))?;
    let p = Paths {
        root: root.to_path_buf(),
        work,
        cache: opts.cache.clone(),
        pin: inst.pin.clone(),
    };
    let netdevsim = build_netdevsim(&p)?;
    laps.lap("packages, netdevsim");
    let uki = make_report_uki(&p, &inst)?;
    let sb = super::secureboot::make_kit(&p, &uki)?;
    // Signed with the test key: the Secure Boot guest's locked-down kernel loads it (a MOK).
    let netdevsim = super::secureboot::sign_module(&p, &sb, &netdevsim)?;
    let overlay = make_overlay(&p, &netdevsim)?;
    let initrd = p.w("initrd-e2e.img");
    run(Command::new("bash")
        // The kernel takes an uncompressed cpio after a compressed one only at a 4-byte
        // boundary (init/initramfs.c): the image's initrd is padded with zeros to one.
        .args([
            "-e",
            "-c",
            "cat \"$1\" > \"$3\" && truncate -s %4 \"$3\" && cat \"$2\" >> \"$3\"",
        ])
        .arg("bash")
        .arg(&inst.initrd)
        .arg(&overlay)
        .arg(&initrd))?;
    let www = p.w("www");
    let media = www.join("media");
    make_media(&media, &uki)?;
    make_kickstarts(&www.join("ks"))?;
    let lab_url = format!(
        "http://{}:{}",
        super::netlab::SERVER,
        super::netlab::HTTP_PORT
    );
    let (cd, usb, embed) = make_discs(&p, &inst, &initrd, &media, &lab_url)?;
    let oemdrv = p.w("oemdrv.img");
    make_oemdrv(&oemdrv, &www.join("ks/pxe.cfg"))?;
    laps.lap("overlay, UKI, media, discs");
    Ok((
        p,
        Images {
            installer: inst,
            initrd,
            uki,
            www,
            media,
            cd,
            usb,
            sb,
            embed,
            oemdrv,
        },
    ))
}
