//! `cargo xtask image --out DIR`: the installer image people boot (docs/IMAGE.md), built from
//! Debian's packages: a Debian kernel, the drivers a server needs (loaded by what the hardware
//! announces), busybox, a static `ksinstall`, the repository's `firmware/` and the init in
//! `xtask/image/`. It comes in the forms people boot: `vmlinuz` + `initrd.img` (PXE, iPXE,
//! GRUB), `ksinstall.efi` (a unified kernel image: UEFI HTTP boot), `ksinstall.iso` (a CD for
//! BIOS and UEFI, and a USB stick when written raw) and Debian's signed shim and network GRUB
//! for network boot where Secure Boot is on. The ISO's UEFI loader is the same signed chain
//! (shim -> Debian's CD GRUB -> Debian's signed kernel). `cargo xtask e2e` boots this same image.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

use crate::run;

/// The pinned kernel: Debian 12's generic flavour, which has the server drivers (SAS/RAID HBAs,
/// Intel/Broadcom NICs, USB storage) that the cloud flavour leaves out. netdevsim (e2e) is built
/// against its headers and source of the same version, so the vermagic matches.
const PINNED_RELEASE: &str = "6.1.0-56-amd64";
const PINNED_VERSION: &str = "6.1.192-2";
/// What `linux-image-<release>` is a version of when the pin is gone from the archive.
const KERNEL_META: &str = "linux-image-amd64";

/// The drivers of the image (with what modules.dep says they need). The init loads those the
/// hardware announces through `modalias`, and the file systems and 8021q when it needs them.
/// Add a driver here (docs/IMAGE.md).
pub(crate) const IMAGE_MODULES: &[&str] = &[
    // Disks: NVMe, SATA (AHCI), SAS/RAID HBAs, virtio, SCSI disks and CD drives.
    "nvme",
    "ahci",
    // SATA in legacy IDE mode (BIOS "compatibility"; also QEMU's default CD drive).
    "ata_piix",
    "megaraid_sas",
    "mpt3sas",
    "smartpqi",
    "aacraid",
    "hpsa",
    "virtio_blk",
    "virtio_scsi",
    "sd_mod",
    "sr_mod",
    // USB sticks and keyboards (the console install).
    "xhci_pci",
    "ehci_pci",
    "usb_storage",
    "uas",
    "usbhid",
    "hid_generic",
    // NICs: Mellanox/NVIDIA, Broadcom, Intel, virtio; the VLAN tagger.
    "mlx5_core",
    "bnxt_en",
    "tg3",
    "i40e",
    "ice",
    "ixgbe",
    "igb",
    "igc",
    "e1000e",
    "e1000",
    "virtio_pci",
    "virtio_net",
    "8021q",
    // File systems the installer reads (ESP, CD, USB) and EFI variables.
    "vfat",
    "nls_cp437",
    "nls_utf8",
    "nls_ascii",
    "nls_iso8859-1",
    "isofs",
    "efivarfs",
    // The rshim daemon's character devices (CUSE), for --with-rshim.
    "cuse",
    // NVIDIA's rshim daemon maps the BlueField's rshim BAR through VFIO when the machine has an
    // IOMMU; under lockdown (Secure Boot) it refuses the other ways (sysfs resource0, UIO).
    "vfio_pci",
    "vfio_iommu_type1",
    // DSC flashing reports through devlink; psample is what mlx5 needs too.
    "psample",
];

/// The kernel: `uname -r` and the Debian package version.
#[derive(Debug, Clone)]
pub(crate) struct Pin {
    pub(crate) release: String,
    pub(crate) version: String,
}

impl Pin {
    /// `6.1` of `6.1.0-56-amd64`: the linux-source package's series.
    pub(crate) fn series(&self) -> String {
        self.release
            .split(|c: char| !c.is_ascii_digit())
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
    }
}

fn apt_has(package: &str, version: &str) -> bool {
    Command::new("apt-cache")
        .args(["show", &format!("{package}={version}")])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
}

/// The pinned kernel, or, once the archive has dropped it (Debian keeps only the current
/// security update), the one `linux-image-amd64` depends on now, said out loud.
pub(crate) fn pick_kernel() -> Result<Pin> {
    let pinned = Pin {
        release: PINNED_RELEASE.into(),
        version: PINNED_VERSION.into(),
    };
    let image = format!("linux-image-{}", pinned.release);
    if apt_has(&image, &pinned.version) {
        return Ok(pinned);
    }
    // A fresh machine may have no package lists yet.
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    if apt_has(&image, &pinned.version) {
        return Ok(pinned);
    }
    let deps = Command::new("apt-cache")
        .args(["depends", "--important", KERNEL_META])
        .output()?;
    let text = String::from_utf8_lossy(&deps.stdout);
    let release = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: linux-image-"))
        .map(|r| r.trim().to_string())
        .with_context(|| format!("neither the pinned kernel nor {KERNEL_META} is in the archive (the image is built from Debian's packages)"))?;
    let policy = Command::new("apt-cache")
        .args(["policy", &format!("linux-image-{release}")])
        .output()?;
    let version = String::from_utf8_lossy(&policy.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate: ").map(str::to_string))
        .context("no candidate version for the current kernel")?;
    println!(
        "== the pinned kernel {PINNED_RELEASE} ({PINNED_VERSION}) is gone from the archive; using {release} ({version})"
    );
    Ok(Pin { release, version })
}

/// The Debian packages the image is made with (the kernel is only downloaded).
pub(crate) const IMAGE_PACKAGES: &[&str] = &[
    "busybox-static",
    "cpio",
    "kmod",
    "gzip",
    "systemd-boot-efi",
    "binutils",
    "xorriso",
    "isolinux",
    "syslinux-common",
    "dosfstools",
    "mtools",
    // sbsign/sbverify: the kernel's signature is checked, and --sign-key signs the UKI.
    "sbsigntool",
];

/// Debian's signed boot chain, downloaded (not installed: the build machine's own boot loader
/// stays as it is): shim signed by Microsoft's UEFI CA, MokManager, and Debian's signed GRUB
/// images (CD and network), which shim verifies and which ask shim to verify the kernel.
const SIGNED_PACKAGES: &[&str] = &[
    "shim-signed",
    "shim-helpers-amd64-signed",
    "grub-efi-amd64-signed",
];

/// The signed EFI binaries of the Secure Boot chain, as Debian ships them.
pub(crate) struct SignedChain {
    /// shimx64.efi.signed: the first loader (removable-media path, DHCP boot file).
    pub(crate) shim: PathBuf,
    /// mmx64.efi.signed: MokManager, which shim starts to enrol a MOK.
    pub(crate) mm: PathBuf,
    /// gcdx64.efi.signed: GRUB for CDs (finds the disc by /.disk/info, reads /boot/grub/grub.cfg).
    pub(crate) gcd: PathBuf,
    /// grubnetx64.efi.signed: GRUB for network boot (reads $prefix/grub.cfg, prefix /grub).
    pub(crate) grubnet: PathBuf,
}

/// The signed packages unpacked under `cache/signed/`, kept between runs.
fn fetch_signed_chain(cache: &Path) -> Result<SignedChain> {
    let dir = cache.join("signed");
    std::fs::create_dir_all(&dir)?;
    for package in SIGNED_PACKAGES {
        let to = dir.join(package);
        if to.is_dir() {
            continue;
        }
        let deb = download(&cache.join("dl"), package)?;
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&to))?;
    }
    let chain = SignedChain {
        shim: dir.join("shim-signed/usr/lib/shim/shimx64.efi.signed"),
        mm: dir.join("shim-helpers-amd64-signed/usr/lib/shim/mmx64.efi.signed"),
        gcd: dir.join("grub-efi-amd64-signed/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed"),
        grubnet: dir
            .join("grub-efi-amd64-signed/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"),
    };
    for f in [&chain.shim, &chain.mm, &chain.gcd, &chain.grubnet] {
        ensure!(
            f.is_file(),
            "{}: not in Debian's signed package",
            f.display()
        );
        check_signed_efi(f)?;
    }
    Ok(chain)
}

/// An EFI binary that carries an Authenticode signature (sbverify --list names its signer).
pub(crate) fn check_signed_efi(file: &Path) -> Result<()> {
    let out = Command::new("sbverify")
        .arg("--list")
        .arg(file)
        .output()
        .context("sbverify (sbsigntool)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && text.contains("signature 1"),
        "{} carries no signature (sbverify --list: {})",
        file.display(),
        text.trim()
    );
    Ok(())
}

/// What the kernel appends to a signed module (scripts/sign-file): under Secure Boot the
/// locked-down kernel loads no module without a signature it trusts.
const MODULE_SIG_MAGIC: &[u8] = b"~Module signature appended~\n";

/// Every module of the image carries a signature (lockdown refuses others), and all by the one
/// key of the kernel package's build (`modinfo -F sig_key`: Debian signs a kernel's modules
/// with a key made for that build and built into that kernel, so a module of another build or
/// of no build fails here).
fn check_modules_signed(dir: &Path, release: &str, modules: &[String]) -> Result<()> {
    let base = dir.join(format!("lib/modules/{release}"));
    for m in modules {
        let data = std::fs::read(base.join(m)).with_context(|| m.clone())?;
        ensure!(
            data.ends_with(MODULE_SIG_MAGIC),
            "{m} is not signed: a kernel booted with Secure Boot (lockdown) would refuse it"
        );
    }
    let out = Command::new("modinfo")
        .args(["-F", "sig_key"])
        .args(modules.iter().map(|m| base.join(m)))
        .output()
        .context("modinfo (kmod)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let keys: BTreeSet<&str> = text.lines().map(str::trim).collect();
    ensure!(
        out.status.success() && keys.len() == 1 && !keys.contains(""),
        "the image's modules are not all signed by one key of the kernel's build: {keys:?}"
    );
    Ok(())
}

/// `sbsign` with a user's `db` key: `input` signed into `output`.
pub(crate) fn sign_efi(key: &Path, cert: &Path, input: &Path, output: &Path) -> Result<()> {
    run(Command::new("sbsign")
        .arg("--key")
        .arg(key)
        .arg("--cert")
        .arg(cert)
        .arg("--output")
        .arg(output)
        .arg(input)
        .stderr(std::process::Stdio::null()))
}

/// Install what `wanted` names and this machine lacks (`name` or `name=version`).
pub(crate) fn ensure_packages(wanted: &[String]) -> Result<()> {
    let names: Vec<&str> = wanted
        .iter()
        .map(|p| p.split('=').next().unwrap_or(p))
        .collect();
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n"])
        .args(&names)
        .output()
        .context("dpkg-query (the image is built on Debian)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let installed: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (name, version, status) = (w.next()?, w.next()?, w.next()?);
            (status == "ii").then_some((name, version))
        })
        .collect();
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|p| match p.split_once('=') {
            Some((n, v)) => installed.get(n) != Some(&v),
            None => !installed.contains_key(p.as_str()),
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
    println!("== installing {}", list.join(" "));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        // A fresh VM's unattended-upgrades may hold the lock for a while.
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(["-o", "DPkg::Lock::Timeout=300"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// `apt-get download` into `dl` (no install: the machine's /boot and modules stay as they are),
/// kept between runs.
pub(crate) fn download(dl: &Path, package: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dl)?;
    let name = package.split('=').next().unwrap_or(package);
    let version = package.split('=').nth(1).unwrap_or("");
    let find = || -> Option<PathBuf> {
        std::fs::read_dir(dl)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|f| {
                f.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with(&format!("{name}_{}", version.replace(':', "%3a")))
                        && n.ends_with(".deb")
                })
            })
    };
    if let Some(f) = find() {
        return Ok(f);
    }
    println!("== downloading {package}");
    run(Command::new("apt-get")
        // As root, apt would warn that its _apt user cannot write here.
        .args(["download", "-qq", "-o", "APT::Sandbox::User=root", package])
        .current_dir(dl))?;
    find().with_context(|| format!("apt-get download {package} left no .deb"))
}

/// The kernel package unpacked under `cache/kernel-<release>` with a modules.dep.
fn fetch_kernel(cache: &Path, pin: &Pin) -> Result<PathBuf> {
    let Pin { release, version } = pin;
    let dir = cache.join(format!("kernel-{release}"));
    let vmlinuz = dir.join(format!("boot/vmlinuz-{release}"));
    let dep = dir.join(format!("lib/modules/{release}/modules.dep"));
    if vmlinuz.exists() && dep.exists() {
        return Ok(dir);
    }
    let deb = download(
        &cache.join("dl"),
        &format!("linux-image-{release}={version}"),
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir))?;
    // The package ships no modules.dep (its postinst makes it).
    run(Command::new("depmod").arg("-b").arg(&dir).arg(release))?;
    Ok(dir)
}

/// ksinstall linked statically against glibc: no extra rustup target needed, runs in a bare
/// initramfs. `--target` keeps RUSTFLAGS away from build scripts and the normal target dir.
fn build_static(root: &Path, target: &Path, cargo: &mut Command) -> Result<PathBuf> {
    let triple = "x86_64-unknown-linux-gnu";
    ensure!(
        cfg!(all(
            target_arch = "x86_64",
            target_os = "linux",
            target_env = "gnu"
        )),
        "the image carries ksinstall for {triple}"
    );
    println!("== building a static ksinstall (release, {triple}, +crt-static)");
    run(cargo
        .current_dir(root)
        .args(["build", "--release", "--quiet", "-p", "ksinstall"])
        .args(["--bin", "ksinstall", "--target", triple])
        .env("RUSTFLAGS", "-C target-feature=+crt-static"))?;
    Ok(target.join(triple).join("release/ksinstall"))
}

/// A module's name as modules.dep and modules.builtin spell it, normalised: `usb-storage`.
fn module_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .trim_end_matches(".ko")
        .replace('-', "_")
}

/// The .ko files for `wanted` and everything they need, dependencies first, as paths relative
/// to lib/modules/<release>. Modules built into the kernel are left out.
pub(crate) fn resolve_modules(
    kernel: &Path,
    release: &str,
    wanted: &[&str],
) -> Result<Vec<String>> {
    let base = kernel.join(format!("lib/modules/{release}"));
    let dep = std::fs::read_to_string(base.join("modules.dep"))?;
    let builtin = std::fs::read_to_string(base.join("modules.builtin"))?;
    let mut deps: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for line in dep.lines() {
        let Some((module, needs)) = line.split_once(':') else {
            continue;
        };
        let needs = needs.split_whitespace().map(module_name).collect();
        deps.insert(module_name(module), (module.to_string(), needs));
    }
    let builtin: BTreeSet<String> = builtin.lines().map(module_name).collect();
    let mut order: Vec<String> = Vec::new();
    fn visit(
        name: &str,
        deps: &BTreeMap<String, (String, Vec<String>)>,
        order: &mut Vec<String>,
    ) -> Result<()> {
        let (path, needs) = deps
            .get(name)
            .with_context(|| format!("module {name} is not in modules.dep"))?;
        if order.contains(path) {
            return Ok(());
        }
        for n in needs {
            visit(n, deps, order)?;
        }
        order.push(path.clone());
        Ok(())
    }
    for w in wanted {
        let n = w.replace('-', "_");
        if builtin.contains(&n) {
            continue;
        }
        visit(&n, &deps, &mut order)?;
    }
    Ok(order)
}

pub(crate) fn copy_busybox(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("bin"))?;
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).context("/bin/busybox")?;
    // Without /bin/sh the kernel cannot run the #!/bin/sh /init (error -2) and panics.
    std::os::unix::fs::symlink("busybox", dir.join("bin/sh"))?;
    Ok(())
}

/// The modules, under lib/modules/<release> as in the kernel package, with the kernel's
/// modules.builtin and modules.order, then `depmod` there: modules.dep and modules.alias of
/// exactly what the image carries, for busybox modprobe.
pub(crate) fn copy_modules(
    kernel: &Path,
    release: &str,
    modules: &[String],
    dir: &Path,
) -> Result<()> {
    let base = kernel.join(format!("lib/modules/{release}"));
    let to_base = dir.join(format!("lib/modules/{release}"));
    for m in modules {
        let to = to_base.join(m);
        std::fs::create_dir_all(to.parent().context("module path")?)?;
        std::fs::copy(base.join(m), &to).with_context(|| m.clone())?;
    }
    for f in [
        "modules.builtin",
        "modules.builtin.modinfo",
        "modules.order",
    ] {
        if base.join(f).exists() {
            std::fs::copy(base.join(f), to_base.join(f))?;
        }
    }
    run(Command::new("depmod").arg("-b").arg(dir).arg(release))
}

pub(crate) fn install_exec(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to.parent().context("path")?)?;
    std::fs::copy(from, to).with_context(|| format!("{}", from.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// A newc cpio of `dir`, made by cpio(1), compressed with `compress` (a shell pipe stage, or
/// `cat`).
pub(crate) fn cpio(dir: &Path, out: &Path, compress: &str) -> Result<()> {
    run(Command::new("bash")
        .args(["-o", "pipefail", "-e", "-c"])
        .arg(format!(
            "cd \"$1\" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | {compress} > \"$2\""
        ))
        .arg("bash")
        .arg(dir)
        .arg(out))
}

const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";

/// A unified kernel image: systemd-stub + kernel + initrd + command line, joined by objcopy.
pub(crate) fn make_uki(
    vmlinuz: &Path,
    initrd: &Path,
    cmdline: &str,
    name: &str,
    out: &Path,
) -> Result<()> {
    let work = out.with_extension("parts");
    std::fs::create_dir_all(&work)?;
    std::fs::write(work.join("cmdline"), cmdline)?;
    std::fs::write(
        work.join("os-release"),
        format!("NAME=\"{name}\"\nID=ksinstall\n"),
    )?;
    // Section addresses well above the stub's own (it ends below 0x20000) and apart from each
    // other: the kernel is under 16 MB.
    run(Command::new("objcopy")
        .arg("--add-section")
        .arg(format!(".osrel={}", work.join("os-release").display()))
        .args(["--change-section-vma", ".osrel=0x20000"])
        .arg("--add-section")
        .arg(format!(".cmdline={}", work.join("cmdline").display()))
        .args(["--change-section-vma", ".cmdline=0x30000"])
        .arg("--add-section")
        .arg(format!(".linux={}", vmlinuz.display()))
        .args(["--change-section-vma", ".linux=0x2000000"])
        .arg("--add-section")
        .arg(format!(".initrd={}", initrd.display()))
        .args(["--change-section-vma", ".initrd=0x3000000"])
        .arg(STUB)
        .arg(out))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// What `cargo xtask image` makes, and what the e2e boots.
pub(crate) struct Installer {
    pub(crate) pin: Pin,
    /// The unpacked kernel package (boot/vmlinuz-<release>, lib/modules).
    pub(crate) kernel: PathBuf,
    pub(crate) vmlinuz: PathBuf,
    pub(crate) initrd: PathBuf,
    pub(crate) efi: PathBuf,
    pub(crate) iso: PathBuf,
    /// Network boot with Secure Boot on: Debian's signed shim (the DHCP boot file), its network
    /// GRUB under the name shim loads, and MokManager, beside vmlinuz and initrd.img.
    pub(crate) shim: PathBuf,
    pub(crate) grubnet: PathBuf,
    pub(crate) mm: PathBuf,
    /// The signed chain as Debian ships it (the e2e's discs are made with it too).
    pub(crate) chain: SignedChain,
    /// The static ksinstall inside it (the e2e also runs it here, for `ksinstall pxe`).
    pub(crate) bin: PathBuf,
}

/// What the image is built with.
pub(crate) struct Options {
    pub(crate) out: PathBuf,
    /// Downloads and the unpacked kernel, kept between runs.
    pub(crate) cache: PathBuf,
    pub(crate) rshim: Option<PathBuf>,
    /// Boot options baked into ksinstall.efi and the ISO's boot entries.
    pub(crate) cmdline: String,
    /// A fleet's own `db` key and certificate: ksinstall.efi is signed with them (sbsign).
    pub(crate) sign: Option<(PathBuf, PathBuf)>,
}

/// The console options every form boots with: VGA and the first serial port, the last one
/// being /dev/console.
pub(crate) const CONSOLES: &str = "console=tty0 console=ttyS0,115200";

/// The initramfs tree: busybox, the init, the drivers, ksinstall, firmware/ and the rshim
/// daemon when given.
fn make_tree(root: &Path, kernel: &Path, pin: &Pin, bin: &Path, o: &Options) -> Result<PathBuf> {
    let dir = o.cache.join("initramfs");
    let _ = std::fs::remove_dir_all(&dir);
    copy_busybox(&dir)?;
    install_exec(&root.join("xtask/image/init"), &dir.join("init"))?;
    install_exec(
        &root.join("xtask/image/udhcpc.script"),
        &dir.join("usr/share/ksinstall/udhcpc.script"),
    )?;
    install_exec(bin, &dir.join("usr/bin/ksinstall"))?;
    // The release build keeps its symbols; the image does not need them (11 MB -> 8.5).
    run(Command::new("strip").arg(dir.join("usr/bin/ksinstall")))?;
    let modules = resolve_modules(kernel, &pin.release, IMAGE_MODULES)?;
    copy_modules(kernel, &pin.release, &modules, &dir)?;
    check_modules_signed(&dir, &pin.release, &modules)?;
    run(Command::new("cp")
        .arg("-a")
        .arg(root.join("firmware"))
        .arg(dir.join("usr/share/ksinstall/firmware")))?;
    std::fs::create_dir_all(dir.join("lib/firmware"))?;
    std::fs::create_dir_all(dir.join("lib/ksinstall/hooks"))?;
    add_python(&dir, &o.cache)?;
    if let Some(rshim) = &o.rshim {
        ensure!(
            rshim.is_file(),
            "--with-rshim {}: no such file",
            rshim.display()
        );
        install_exec(rshim, &dir.join("usr/sbin/rshim"))?;
    }
    Ok(dir)
}

/// Debian's Python 3 for `%pre`/`%post --interpreter=python`: the interpreter, its standard
/// library and the shared libraries they load (the rest of the image is static and has no
/// glibc). Unpacked from the packages (`apt-get download`), docs and translations left out, and
/// run once in the tree with chroot to prove it starts there (docs/IMAGE.md).
const PYTHON_PACKAGES: &[&str] = &[
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "libc6",
    "zlib1g",
    "libexpat1",
    "libssl3",
    "libffi8",
    "libbz2-1.0",
    "liblzma5",
];

fn add_python(dir: &Path, cache: &Path) -> Result<()> {
    for package in PYTHON_PACKAGES {
        let deb = download(&cache.join("dl"), package)?;
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(dir))?;
    }
    for junk in [
        "usr/share/doc",
        "usr/share/man",
        "usr/share/locale",
        "usr/share/lintian",
        "usr/lib/x86_64-linux-gnu/gconv",
    ] {
        let _ = std::fs::remove_dir_all(dir.join(junk));
    }
    let python3 = dir.join("usr/bin/python3");
    let _ = std::fs::remove_file(&python3);
    std::os::unix::fs::symlink("python3.11", &python3)?;
    run(Command::new("chroot").arg(dir).args([
        "/usr/bin/python3",
        "-c",
        "import json, subprocess, hashlib, urllib.request",
    ]))
    .context("Python 3 does not start in the image's tree")
}

/// The ISO: isolinux for BIOS; for UEFI an El Torito EFI image whose removable-media loader
/// is Debian's signed shim, which starts Debian's signed CD GRUB (`grubx64.efi` beside it);
/// that GRUB finds the disc by `/.disk/info` and reads `/boot/grub/grub.cfg` (its built-in
/// configuration, read with `strings gcdx64.efi.signed`), which loads the signed kernel and our
/// initrd. The same chain boots with Secure Boot on or off. isohybrid MBR + GPT make the same
/// file boot when written raw to a USB stick. `extra`, when given, is copied over the disc's
/// root (the e2e's disc carries the media).
pub(crate) struct Disc<'a> {
    pub(crate) vmlinuz: &'a Path,
    pub(crate) initrd: &'a Path,
    pub(crate) chain: &'a SignedChain,
    pub(crate) cmdline: &'a str,
    pub(crate) extra: Option<&'a Path>,
    pub(crate) out: &'a Path,
}

/// The disc's grub.cfg: one entry, the signed kernel (GRUB has shim verify it) and our initrd.
fn disc_grub_cfg(cmdline: &str) -> String {
    format!(
        "# Written by cargo xtask image. Read by Debian's signed CD GRUB (gcdx64.efi.signed).\n\
         set timeout=0\n\
         menuentry \"Install ESXi (ksinstall)\" {{\n  linux /vmlinuz {cmdline}\n  initrd /initrd.img\n}}\n"
    )
}

/// The El Torito EFI image: a FAT file system with shim as EFI/BOOT/BOOTX64.EFI, the CD GRUB
/// as the grubx64.efi shim loads from its own directory, and MokManager.
fn efi_boot_image(chain: &SignedChain, img: &Path) -> Result<()> {
    let files = [
        (&chain.shim, "BOOTX64.EFI"),
        (&chain.gcd, "grubx64.efi"),
        (&chain.mm, "mmx64.efi"),
    ];
    let mut bytes = 0;
    for (f, _) in &files {
        bytes += std::fs::metadata(f)?.len();
    }
    let _ = std::fs::remove_file(img);
    run(Command::new("mkfs.vfat")
        .args(["-C", "-n", "KSINSTALL"])
        .arg(img)
        .arg((bytes / 1024 + 1024).to_string())
        .stdout(std::process::Stdio::null()))?;
    let i = img.display().to_string();
    run(Command::new("mmd").args(["-i", &i, "::/EFI", "::/EFI/BOOT"]))?;
    for (f, name) in files {
        run(Command::new("mcopy")
            .args(["-i", &i])
            .arg(f)
            .arg(format!("::/EFI/BOOT/{name}")))?;
    }
    Ok(())
}

pub(crate) fn make_iso(d: &Disc, work: &Path) -> Result<()> {
    let tree = work.join("iso");
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(tree.join("isolinux"))?;
    std::fs::create_dir_all(tree.join("boot/grub"))?;
    std::fs::create_dir_all(tree.join(".disk"))?;
    for (from, to) in [
        ("/usr/lib/ISOLINUX/isolinux.bin", "isolinux/isolinux.bin"),
        (
            "/usr/lib/syslinux/modules/bios/ldlinux.c32",
            "isolinux/ldlinux.c32",
        ),
    ] {
        std::fs::copy(from, tree.join(to)).with_context(|| from.to_string())?;
    }
    std::fs::copy(d.vmlinuz, tree.join("vmlinuz"))?;
    std::fs::copy(d.initrd, tree.join("initrd.img"))?;
    if let Some(extra) = d.extra {
        run(Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", extra.display()))
            .arg(&tree))?;
    }
    // The embed area `ksinstall iso customize` writes a kickstart and boot options into, in a
    // copy of this ISO; the init reads it (docs/IMAGE.md).
    let area = tree.join(ksinstall::iso::AREA_PATH);
    std::fs::create_dir_all(area.parent().context("area path")?)?;
    std::fs::write(&area, ksinstall::iso::blank_area())?;
    let cmdline = d.cmdline;
    std::fs::write(
        tree.join("isolinux/isolinux.cfg"),
        format!("# Written by cargo xtask image.\nDEFAULT ksinstall\nPROMPT 0\nLABEL ksinstall\n  KERNEL /vmlinuz\n  APPEND initrd=/initrd.img {cmdline}\n"),
    )?;
    // What Debian's CD GRUB searches for to find the disc it booted from.
    std::fs::write(tree.join(".disk/info"), "ksinstall installer\n")?;
    std::fs::write(tree.join("boot/grub/grub.cfg"), disc_grub_cfg(cmdline))?;
    efi_boot_image(d.chain, &tree.join("efiboot.img"))?;
    let _ = std::fs::remove_file(d.out);
    run(Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-o"])
        .arg(d.out)
        .args(["-V", "KSINSTALL", "-J", "-R"])
        .args(["-isohybrid-mbr", "/usr/lib/ISOLINUX/isohdpfx.bin"])
        .args(["-c", "isolinux/boot.cat", "-b", "isolinux/isolinux.bin"])
        .args(["-no-emul-boot", "-boot-load-size", "4", "-boot-info-table"])
        .args(["-eltorito-alt-boot", "-e", "efiboot.img", "-no-emul-boot"])
        .arg("-isohybrid-gpt-basdat")
        .arg(&tree))?;
    let _ = std::fs::remove_dir_all(&tree);
    Ok(())
}

/// The whole image: packages, kernel, static ksinstall, initramfs, UKI, ISO, and the signed
/// network-boot chain.
pub(crate) fn build(
    root: &Path,
    target: &Path,
    cargo: &mut Command,
    o: &Options,
) -> Result<Installer> {
    let pin = pick_kernel()?;
    let wanted: Vec<String> = IMAGE_PACKAGES.iter().map(|s| s.to_string()).collect();
    ensure_packages(&wanted)?;
    let kernel = fetch_kernel(&o.cache, &pin)?;
    let chain = fetch_signed_chain(&o.cache)?;
    let bin = build_static(root, target, cargo)?;
    std::fs::create_dir_all(&o.out)?;
    let tree = make_tree(root, &kernel, &pin, &bin, o)?;
    let inst = Installer {
        vmlinuz: o.out.join("vmlinuz"),
        initrd: o.out.join("initrd.img"),
        efi: o.out.join("ksinstall.efi"),
        iso: o.out.join("ksinstall.iso"),
        shim: o.out.join("shimx64.efi"),
        grubnet: o.out.join("grubx64.efi"),
        mm: o.out.join("mmx64.efi"),
        kernel: kernel.clone(),
        pin: pin.clone(),
        bin: bin.clone(),
        chain,
    };
    std::fs::copy(
        kernel.join(format!("boot/vmlinuz-{}", pin.release)),
        &inst.vmlinuz,
    )?;
    // Debian's kernel is signed by Debian (shim trusts Debian's CA): GRUB has shim verify it.
    check_signed_efi(&inst.vmlinuz)?;
    for (from, to) in [
        (&inst.chain.shim, &inst.shim),
        (&inst.chain.grubnet, &inst.grubnet),
        (&inst.chain.mm, &inst.mm),
    ] {
        std::fs::copy(from, to)?;
    }
    // gzip: every Debian kernel unpacks it, and it is the fastest of those under emulation.
    cpio(&tree, &inst.initrd, "gzip -6")?;
    let cmdline = format!("{CONSOLES} {}", o.cmdline).trim().to_string();
    make_uki(
        &inst.vmlinuz,
        &inst.initrd,
        &cmdline,
        "ksinstall installer",
        &inst.efi,
    )?;
    if let Some((key, cert)) = &o.sign {
        let unsigned = o.cache.join("ksinstall.unsigned.efi");
        std::fs::rename(&inst.efi, &unsigned)?;
        sign_efi(key, cert, &unsigned, &inst.efi)?;
        println!("== ksinstall.efi signed with {}", cert.display());
    }
    let disc = Disc {
        vmlinuz: &inst.vmlinuz,
        initrd: &inst.initrd,
        chain: &inst.chain,
        cmdline: &cmdline,
        extra: None,
        out: &inst.iso,
    };
    make_iso(&disc, &o.cache)?;
    Ok(inst)
}

/// `cargo xtask image --out DIR [--with-rshim FILE] [--cmdline "ks=..."] [--sign-key KEY --sign-cert CERT]`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write vmlinuz, initrd.img, ksinstall.efi, ksinstall.iso and the signed shim chain.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// NVIDIA's rshim daemon (a static binary) to carry in the image (docs/IMAGE.md).
    #[arg(long, value_name = "FILE")]
    pub with_rshim: Option<PathBuf>,
    /// Boot options built into ksinstall.efi and the ISO (e.g. "ks=URL inst.repo=URL").
    #[arg(long, value_name = "OPTIONS", default_value = "")]
    pub cmdline: String,
    /// Sign ksinstall.efi with this db key (PEM; with --sign-cert).
    #[arg(long, value_name = "KEY", requires = "sign_cert")]
    pub sign_key: Option<PathBuf>,
    /// The certificate of --sign-key (PEM; with --sign-key).
    #[arg(long, value_name = "CERT", requires = "sign_key")]
    pub sign_cert: Option<PathBuf>,
}

pub fn image(root: &Path, cargo: &mut Command, args: &Args) -> Result<()> {
    let target = crate::target_dir(root);
    let o = Options {
        out: args.out.clone(),
        cache: target.join("image"),
        rshim: args.with_rshim.clone(),
        cmdline: args.cmdline.clone(),
        sign: args.sign_key.clone().zip(args.sign_cert.clone()),
    };
    let inst = build(root, &target, cargo, &o)?;
    println!("== the installer image ({}):", inst.pin.release);
    for f in [
        &inst.vmlinuz,
        &inst.initrd,
        &inst.efi,
        &inst.iso,
        &inst.shim,
        &inst.grubnet,
        &inst.mm,
    ] {
        let size = std::fs::metadata(f)?.len();
        println!(
            "   {:<40} {:>6.1} MiB",
            f.display(),
            size as f64 / 1048576.0
        );
    }
    Ok(())
}
