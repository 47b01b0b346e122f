//! What the guests boot, made on this machine: the packages, the pinned kernel and its modules,
//! netdevsim, the static installer, the initramfs, the UKI, the media and the kickstarts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};
use ksinstall::media::synth;

use super::{Laps, Paths};
use crate::run;

/// The pinned kernel (Debian 12's cloud flavour): netdevsim is built against its headers and
/// source of the same version, so the vermagic matches.
const PINNED_RELEASE: &str = "6.1.0-56-cloud-amd64";
const PINNED_VERSION: &str = "6.1.192-2";

/// The kernel the guests boot: `uname -r` and the Debian package version.
#[derive(Debug, Clone)]
pub(super) struct Pin {
    pub(super) release: String,
    pub(super) version: String,
}

impl Pin {
    /// `6.1` of `6.1.0-56-cloud-amd64`: the linux-source package's series.
    fn series(&self) -> String {
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
/// security update), the one `linux-image-cloud-amd64` depends on now, said out loud.
fn pick_kernel() -> Result<Pin> {
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
        .args(["depends", "--important", "linux-image-cloud-amd64"])
        .output()?;
    let text = String::from_utf8_lossy(&deps.stdout);
    let release = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: linux-image-"))
        .map(|r| r.trim().to_string())
        .context("neither the pinned kernel nor linux-image-cloud-amd64 is in the archive (the e2e needs Debian's packages)")?;
    let policy = Command::new("apt-cache")
        .args(["policy", &format!("linux-image-{release}")])
        .output()?;
    let version = String::from_utf8_lossy(&policy.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate: ").map(str::to_string))
        .context("no candidate version for the current cloud kernel")?;
    println!(
        "== the pinned kernel {PINNED_RELEASE} ({PINNED_VERSION}) is gone from the archive; using {release} ({version})"
    );
    Ok(Pin { release, version })
}

/// Debian packages the e2e needs (the kernel image and source are only downloaded).
fn packages(pin: &Pin) -> Vec<String> {
    let mut p: Vec<String> = [
        "qemu-system-x86",
        "busybox-static",
        "ovmf",
        "cpio",
        "kmod",
        "systemd-boot-efi",
        "binutils",
        "make",
        "gcc",
        "xz-utils",
        "python3",
        "gdisk",
        "dosfstools",
        "mtools",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    p.push(format!("linux-headers-{}={}", pin.release, pin.version));
    p
}

/// Modules the guest loads (with what modules.dep says they need): virtio disk and NIC, the
/// packet socket for DHCP, vfat and its code pages, efivarfs, and psample for netdevsim. Those
/// built into this kernel are skipped.
const GUEST_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "af_packet",
    "vfat",
    "nls_cp437",
    "nls_utf8",
    "nls_ascii",
    "nls_iso8859-1",
    "psample",
];

const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
/// What netdevsim stores as its firmware version (drivers/net/netdevsim/dev.c, 6.1).
pub(super) const NETDEVSIM_FIRMWARE: &str = "10.20.30";

fn ensure_packages(pin: &Pin) -> Result<()> {
    let wanted = packages(pin);
    let names: Vec<&str> = wanted
        .iter()
        .map(|p| p.split('=').next().unwrap_or(p))
        .collect();
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n"])
        .args(&names)
        .output()
        .context("dpkg-query (the e2e runs on Debian)")?;
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
    println!(
        "== installing {}",
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        // A fresh VM's unattended-upgrades may hold the lock for a while.
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(["-o", "DPkg::Lock::Timeout=300"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// `apt-get download` (no install: the machine's /boot and modules stay as they are).
fn download(p: &Paths, package: &str) -> Result<PathBuf> {
    let name = package.split('=').next().unwrap_or(package);
    let version = package.split('=').nth(1).unwrap_or("");
    let find = || -> Option<PathBuf> {
        std::fs::read_dir(p.w("dl"))
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
        .current_dir(p.w("dl")))?;
    find().with_context(|| format!("apt-get download {package} left no .deb"))
}

/// The kernel and its modules, unpacked under target/e2e/kernel with a modules.dep.
fn fetch_kernel(p: &Paths) -> Result<PathBuf> {
    let Pin { release, version } = &p.pin;
    let dir = p.w(&format!("kernel-{release}"));
    let vmlinuz = dir.join(format!("boot/vmlinuz-{release}"));
    let dep = dir.join(format!("lib/modules/{release}/modules.dep"));
    if vmlinuz.exists() && dep.exists() {
        return Ok(dir);
    }
    let deb = download(p, &format!("linux-image-{release}={version}"))?;
    let _ = std::fs::remove_dir_all(&dir);
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir))?;
    // The package ships no modules.dep (its postinst makes it).
    run(Command::new("depmod").arg("-b").arg(&dir).arg(release))?;
    Ok(dir)
}

/// netdevsim.ko built out of tree from Debian's linux-source for the pinned kernel (Debian
/// kernels do not ship it: `# CONFIG_NETDEVSIM is not set`).
fn build_netdevsim(p: &Paths) -> Result<PathBuf> {
    let Pin { release, version } = &p.pin;
    let series = p.pin.series();
    let ko = p.w(&format!("netdevsim/{release}/netdevsim.ko"));
    if ko.exists() {
        return Ok(ko);
    }
    let deb = download(p, &format!("linux-source-{series}={version}"))?;
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

/// ksinstall linked statically against glibc: no extra rustup target needed, runs in a bare
/// initramfs. `--target` keeps RUSTFLAGS away from build scripts and the normal target dir.
fn build_static(p: &Paths, target: &Path, cargo: &mut Command) -> Result<PathBuf> {
    let triple = "x86_64-unknown-linux-gnu";
    ensure!(
        cfg!(all(
            target_arch = "x86_64",
            target_os = "linux",
            target_env = "gnu"
        )),
        "the e2e builds the installer for {triple} and boots it in qemu-system-x86_64"
    );
    println!("== building a static ksinstall (release, {triple}, +crt-static)");
    run(cargo
        .current_dir(&p.root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "ksinstall",
            "--bin",
            "ksinstall",
        ])
        .args(["--target", triple])
        .env("RUSTFLAGS", "-C target-feature=+crt-static"))?;
    Ok(target.join(triple).join("release/ksinstall"))
}

/// The .ko files for `wanted` and everything they need, dependencies first, as paths relative
/// to lib/modules/<release>. Modules built into the kernel are left out.
fn resolve_modules(kernel: &Path, release: &str, wanted: &[&str]) -> Result<Vec<String>> {
    let base = kernel.join(format!("lib/modules/{release}"));
    let dep = std::fs::read_to_string(base.join("modules.dep"))?;
    let builtin = std::fs::read_to_string(base.join("modules.builtin"))?;
    let norm = |path: &str| -> String {
        Path::new(path)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .trim_end_matches(".ko")
            .replace('-', "_")
    };
    let mut deps: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for line in dep.lines() {
        let Some((module, needs)) = line.split_once(':') else {
            continue;
        };
        deps.insert(
            norm(module),
            (
                module.to_string(),
                needs.split_whitespace().map(String::from).collect(),
            ),
        );
    }
    let builtin: BTreeSet<String> = builtin.lines().map(norm).collect();
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
            let stem = Path::new(n)
                .file_name()
                .and_then(|f| f.to_str())
                .unwrap_or("")
                .trim_end_matches(".ko")
                .replace('-', "_");
            visit(&stem, deps, order)?;
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

// ---------------------------------------------------------------------------------------------
// What the guest boots: the initramfs, the UKI, the media and the kickstarts.

fn copy_busybox(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("bin"))?;
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).context("/bin/busybox")?;
    // Without /bin/sh the kernel cannot run the #!/bin/sh /init (error -2) and panics.
    std::os::unix::fs::symlink("busybox", dir.join("bin/sh"))?;
    Ok(())
}

fn copy_modules(kernel: &Path, release: &str, modules: &[String], dir: &Path) -> Result<()> {
    let base = kernel.join(format!("lib/modules/{release}"));
    for m in modules {
        let to = dir.join("lib/modules").join(m);
        std::fs::create_dir_all(to.parent().context("module path")?)?;
        std::fs::copy(base.join(m), &to).with_context(|| m.clone())?;
    }
    Ok(())
}

fn install_exec(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to.parent().context("path")?)?;
    std::fs::copy(from, to).with_context(|| format!("{}", from.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// A newc cpio of `dir`, made by cpio(1).
fn cpio(dir: &Path, out: &Path) -> Result<()> {
    run(Command::new("bash")
        .args(["-o", "pipefail", "-e", "-c"])
        .arg("cd \"$1\" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 > \"$2\"")
        .arg("bash")
        .arg(dir)
        .arg(out))
}

fn make_initramfs(
    p: &Paths,
    kernel: &Path,
    modules: &[String],
    netdevsim: &Path,
    bin: &Path,
) -> Result<PathBuf> {
    let dir = p.w("initramfs");
    let _ = std::fs::remove_dir_all(&dir);
    copy_busybox(&dir)?;
    install_exec(&p.root.join("tests/e2e/init"), &dir.join("init"))?;
    install_exec(
        &p.root.join("tests/e2e/udhcpc.script"),
        &dir.join("etc/e2e/udhcpc.script"),
    )?;
    install_exec(bin, &dir.join("usr/bin/ksinstall"))?;
    copy_modules(kernel, &p.pin.release, modules, &dir)?;
    std::fs::copy(netdevsim, dir.join("lib/modules/netdevsim.ko"))?;
    let mut list = modules.join("\n");
    list.push_str("\nnetdevsim.ko\n");
    std::fs::write(dir.join("etc/e2e/modules"), list)?;
    // The firmware bundles where ksinstall looks by default. netdevsim stores firmware
    // 10.20.30 whatever it is given, so the DSC bundle of this image says it carries that
    // version: the installer's check that the card stores the new version then holds.
    let fw = dir.join("usr/share/ksinstall/firmware");
    std::fs::create_dir_all(dir.join("usr/share/ksinstall"))?;
    for to in [&fw, &dir.join("usr/share/ksinstall/firmware-shipped")] {
        run(Command::new("cp")
            .arg("-a")
            .arg(p.root.join("firmware"))
            .arg(to))?;
    }
    let bundle = fw.join("amd-pensando-dsc/bundle.toml");
    let text = std::fs::read_to_string(&bundle)?;
    let patched: String = text
        .lines()
        .map(|l| {
            if l.starts_with("version = ") {
                format!("version = \"{NETDEVSIM_FIRMWARE}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&bundle, patched + "\n")?;
    std::fs::create_dir_all(dir.join("lib/firmware"))?;
    let out = p.w("initrd.cpio");
    cpio(&dir, &out)?;
    Ok(out)
}

/// A unified kernel image (systemd-stub + kernel + initrd + command line): what the UEFI
/// scenario finds as EFI/BOOT/BOOTX64.EFI on the installed disk. Its /init reports what the
/// stub learnt from the firmware (the partition and the path it was loaded from).
fn make_uki(p: &Paths, kernel: &Path, modules: &[String]) -> Result<PathBuf> {
    let dir = p.w("uki-initramfs");
    let _ = std::fs::remove_dir_all(&dir);
    copy_busybox(&dir)?;
    install_exec(&p.root.join("tests/e2e/uefi-init"), &dir.join("init"))?;
    let efi = modules;
    copy_modules(kernel, &p.pin.release, efi, &dir)?;
    std::fs::create_dir_all(dir.join("etc/e2e"))?;
    std::fs::write(dir.join("etc/e2e/modules"), efi.join("\n") + "\n")?;
    let initrd = p.w("uki-initrd.cpio");
    cpio(&dir, &initrd)?;
    std::fs::write(p.w("uki-cmdline"), "console=ttyS0 panic=-1 quiet")?;
    std::fs::write(
        p.w("uki-os-release"),
        "NAME=\"ksinstall e2e\"\nID=ksinstall-e2e\n",
    )?;
    let uki = p.w("BOOTX64.EFI");
    let vmlinuz = kernel.join(format!("boot/vmlinuz-{}", p.pin.release));
    // Section addresses well above the stub's own (it ends below 0x20000) and apart from each
    // other: the kernel is ~14 MB, the initrd ~1 MB.
    run(Command::new("objcopy")
        .arg("--add-section")
        .arg(format!(".osrel={}", p.w("uki-os-release").display()))
        .args(["--change-section-vma", ".osrel=0x20000"])
        .arg("--add-section")
        .arg(format!(".cmdline={}", p.w("uki-cmdline").display()))
        .args(["--change-section-vma", ".cmdline=0x30000"])
        .arg("--add-section")
        .arg(format!(".linux={}", vmlinuz.display()))
        .args(["--change-section-vma", ".linux=0x2000000"])
        .arg("--add-section")
        .arg(format!(".initrd={}", initrd.display()))
        .args(["--change-section-vma", ".initrd=0x3000000"])
        .arg(STUB)
        .arg(&uki))?;
    Ok(uki)
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

fn make_kickstarts(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("pxe.cfg"),
        format!(
            "# cargo xtask e2e: the first disk, the DSC flashed in the same install.\n{KS_HEAD}install --firstdisk --overwritevmfs\n"
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
    /// The unpacked kernel package (boot/vmlinuz-<release>, lib/modules).
    pub(super) kernel: PathBuf,
    pub(super) initrd: PathBuf,
    /// The UEFI scenario's loader, also the media's ESP loader.
    pub(super) uki: PathBuf,
    /// What the HTTP server serves: media/ and ks/.
    pub(super) www: PathBuf,
    pub(super) media: PathBuf,
}

/// The packages, the kernel and netdevsim, the static installer, then the initramfs, the UKI,
/// the media and the kickstarts, each phase timed.
pub(super) fn build(
    root: &Path,
    target: &Path,
    cargo: &mut Command,
    laps: &mut Laps,
) -> Result<(Paths, Images)> {
    let pin = pick_kernel()?;
    ensure_packages(&pin)?;
    laps.lap("packages");
    let p = Paths {
        root: root.to_path_buf(),
        work: target.join("e2e"),
        pin,
    };
    std::fs::create_dir_all(p.w("dl"))?;
    let kernel = fetch_kernel(&p)?;
    let netdevsim = build_netdevsim(&p)?;
    laps.lap("kernel and netdevsim");
    let bin = build_static(&p, target, cargo)?;
    laps.lap("static ksinstall");

    // The UEFI scenario's loader: a unified kernel image that prints what the firmware told it.
    let release = p.pin.release.clone();
    let modules = resolve_modules(&kernel, &release, GUEST_MODULES)?;
    // efivarfs refuses to load without EFI: only the UKI (booted by OVMF) carries it.
    let uki = make_uki(
        &p,
        &kernel,
        &resolve_modules(&kernel, &release, &["efivarfs"])?,
    )?;
    let www = p.w("www");
    let media = www.join("media");
    make_media(&media, &uki)?;
    make_kickstarts(&www.join("ks"))?;
    let initrd = make_initramfs(&p, &kernel, &modules, &netdevsim, &bin)?;
    laps.lap("initramfs, UKI, media");
    Ok((
        p,
        Images {
            kernel,
            initrd,
            uki,
            www,
            media,
        },
    ))
}
