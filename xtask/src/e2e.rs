//! `cargo xtask e2e`: the installer where it really runs. A Debian cloud kernel boots under QEMU
//! (software emulation) with an initramfs holding a static `ksinstall`; the guest gets its
//! kickstart and media over HTTP from a server on this machine, installs onto a 40 GB virtio
//! disk, flashes a DSC through the kernel's devlink (netdevsim), and the disk is then judged by
//! the guest's own kernel (GPT parser, vfat), by real tools on this machine (`sgdisk -v`,
//! `fsck.fat -n`, mtools) and by UEFI firmware (OVMF). docs/TESTING.md says what each scenario
//! proves; ../shared/spec/qemu-e2e.md has the measurements behind the choices.
//!
//! Everything it makes lives under `target/e2e/`; downloads and the netdevsim build are kept
//! there between runs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ksinstall::media::manifest::Role;
use ksinstall::media::synth;

use super::run;

/// The pinned kernel (Debian 12's cloud flavour): netdevsim is built against its headers and
/// source of the same version, so the vermagic matches.
const PINNED_RELEASE: &str = "6.1.0-56-cloud-amd64";
const PINNED_VERSION: &str = "6.1.192-2";

/// The kernel the guests boot: `uname -r` and the Debian package version.
#[derive(Debug, Clone)]
struct Pin {
    release: String,
    version: String,
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

const OVMF: &str = "/usr/share/ovmf/OVMF.fd";
const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
/// What netdevsim stores as its firmware version (drivers/net/netdevsim/dev.c, 6.1).
const NETDEVSIM_FIRMWARE: &str = "10.20.30";

struct Paths {
    root: PathBuf,
    work: PathBuf,
    pin: Pin,
}

impl Paths {
    fn w(&self, rel: &str) -> PathBuf {
        self.work.join(rel)
    }
}

pub fn e2e(root: &Path, cargo: &mut Command, args: &[String]) -> Result<()> {
    let mut only: Option<BTreeSet<String>> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--only" => {
                let v = it
                    .next()
                    .context("--only needs a list: pxe,datastore,dsc-version,bluefield,broken,uefi")?;
                only = Some(v.split(',').map(String::from).collect());
            }
            other => bail!(
                "e2e: unknown argument {other} (--only pxe,datastore,dsc-version,bluefield,broken,uefi)"
            ),
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let t0 = Instant::now();
    let mut timings: Vec<(String, Duration)> = Vec::new();
    let mut lap = |name: &str, since: &mut Instant| {
        timings.push((name.to_string(), since.elapsed()));
        *since = Instant::now();
    };
    let mut since = Instant::now();

    let pin = pick_kernel()?;
    ensure_packages(&pin)?;
    lap("packages", &mut since);
    let p = Paths {
        root: root.to_path_buf(),
        work: target.join("e2e"),
        pin,
    };
    std::fs::create_dir_all(p.w("dl"))?;
    let kernel = fetch_kernel(&p)?;
    let netdevsim = build_netdevsim(&p)?;
    lap("kernel and netdevsim", &mut since);
    let bin = build_static(&p, &target, cargo)?;
    lap("static ksinstall", &mut since);

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
    lap("initramfs, UKI, media", &mut since);

    let server = HttpServer::start(&www, &p.w("http.log"))?;
    let url = format!("http://10.0.2.2:{}", server.port);
    let vmlinuz = kernel.join(format!("boot/vmlinuz-{release}"));
    let want = |s: &str| only.as_ref().is_none_or(|o| o.contains(s));
    // All guests together get 7 minutes (they take about 1.5): a hung guest must not take the
    // e2e past its 10-minute budget, and the ones after it are reported as timed out.
    let deadline = Instant::now() + Duration::from_secs(420);
    let mut results: Vec<Outcome> = Vec::new();

    // A guest of the installer image: `scenario` and `dpu` go to its /init, `ks` names the
    // kickstart on the server, `extra` adds kernel command line words.
    let image_guest = |scenario: &'static str, ks: &str, dpu: &str, extra: &str, disk: PathBuf| {
        Guest {
            name: scenario,
            kernel: Some((vmlinuz.as_path(), initrd.as_path())),
            cmdline: format!(
                "ks={url}/ks/{ks} inst.repo={url}/media e2e.scenario={scenario} e2e.dpu={dpu} {extra}"
            ),
            disk,
            snapshot: false,
            edu: match dpu {
                "pensando" => 1,
                "bluefield" => 2,
                _ => 0,
            },
            // An install takes about 35 s here; a dry run or a refusal about 8.
            timeout: Duration::from_secs(if matches!(scenario, "pxe" | "datastore" | "dsc-version") {
                240
            } else {
                120
            }),
            stop_at: None,
            deadline,
        }
    };

    let pxe_disk = p.w("disk-pxe.img");
    let mut installed = false;
    if want("pxe") || want("uefi") {
        let serial =
            image_guest("pxe", "pxe.cfg", "pensando", "", fresh_disk(&pxe_disk)?).run(&p)?;
        let pxe = check_pxe(&serial, &pxe_disk, &media, &uki, &server);
        installed = serial.exit_code() == Some(0);
        results.push(pxe);
        results.push(check_dpu_flash(&serial));
        results.push(check_host_tools(&p, &pxe_disk));
    }
    if want("dsc-version") {
        let disk = fresh_disk(&p.w("disk-dsc-version.img"))?;
        let guest = image_guest(
            "dsc-version",
            "pxe.cfg",
            "pensando",
            "e2e.firmware=shipped",
            disk.clone(),
        );
        let serial = guest.run(&p)?;
        results.push(check_dsc_version(&serial, &disk, &shipped_dsc_version(&p)?));
    }
    if want("bluefield") {
        let disk = fresh_disk(&p.w("disk-bluefield.img"))?;
        let serial = image_guest("bluefield", "pxe.cfg", "bluefield", "", disk.clone()).run(&p)?;
        results.push(check_bluefield(&serial, &disk));
    }
    if want("datastore") {
        // Above 142 GiB of disk the layout gets its datastore, partition 8.
        let disk = sized_disk(&p.w("disk-datastore.img"), 200_000_000_000)?;
        let serial = image_guest("datastore", "pxe.cfg", "none", "", disk.clone()).run(&p)?;
        results.push(check_datastore(&serial, &disk));
    }
    if want("broken") {
        let disk = fresh_disk(&p.w("disk-broken.img"))?;
        let serial = image_guest("broken", "broken.cfg", "none", "", disk.clone()).run(&p)?;
        results.push(check_broken(&serial, &disk));
    }
    if want("uefi") && !installed {
        results.push(Outcome {
            name: "5 UEFI boot (OVMF)".into(),
            passed: false,
            elapsed: Duration::ZERO,
            detail: "not run: it boots the disk the pxe scenario installs, and that install failed"
                .into(),
        });
    } else if want("uefi") {
        let boot = Guest {
            name: "uefi",
            kernel: None,
            cmdline: String::new(),
            disk: pxe_disk.clone(),
            // The firmware may write to the disk (it does not, but the disk is the evidence).
            snapshot: true,
            edu: 0,
            timeout: Duration::from_secs(120),
            stop_at: Some("E2E-DONE"),
            deadline,
        };
        let serial = boot.run(&p)?;
        results.push(check_uefi(&serial, &pxe_disk, &uki));
    }
    drop(server);
    lap("scenarios", &mut since);

    println!(
        "\n== e2e results ({:.0} s in all)",
        t0.elapsed().as_secs_f64()
    );
    for (name, d) in &timings {
        println!("   {:<24} {:>7.1} s", name, d.as_secs_f64());
    }
    let mut failed = 0;
    for r in &results {
        let mark = if r.passed { "PASS" } else { "FAIL" };
        println!(
            "{mark} {:<22} {:>6.1} s  {}",
            r.name,
            r.elapsed.as_secs_f64(),
            r.detail
        );
        if !r.passed {
            failed += 1;
        }
    }
    println!("   serial logs: {}", p.w("*.serial.log").display());
    if failed > 0 {
        bail!("{failed} e2e scenario(s) failed");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Inputs: packages, kernel, netdevsim, the static installer, modules.

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
fn fresh_disk(path: &Path) -> Result<PathBuf> {
    sized_disk(path, 40_000_000_000)
}

fn sized_disk(path: &Path, bytes: u64) -> Result<PathBuf> {
    let _ = std::fs::remove_file(path);
    let f = std::fs::File::create(path).with_context(|| format!("{}", path.display()))?;
    f.set_len(bytes)?;
    Ok(path.to_path_buf())
}

fn sha256_file(path: &Path) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    ksinstall::media::verify::sha256_of(&mut f).with_context(|| format!("{}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// The host's HTTP server and the guests.

/// Python's http.server on 127.0.0.1, which slirp shows the guest as 10.0.2.2.
struct HttpServer {
    port: u16,
    child: std::process::Child,
    log: PathBuf,
}

impl HttpServer {
    fn start(dir: &Path, log: &Path) -> Result<HttpServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("python3 -m http.server")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            // It could not bind (someone took the port since we picked it): say so.
            if let Some(status) = child.try_wait()? {
                bail!(
                    "python3 -m http.server on port {port} ended: {status} (see {})",
                    log.display()
                );
            }
            ensure!(
                Instant::now() < deadline,
                "the HTTP server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(HttpServer {
            port,
            child,
            log: log.to_path_buf(),
        })
    }
    /// The request lines it logged: `"GET /ks/pxe.cfg HTTP/1.1" 200 -`.
    fn requests(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Guest<'a> {
    name: &'a str,
    /// Direct kernel boot (kernel, initrd); None boots the disk through OVMF.
    kernel: Option<(&'a Path, &'a Path)>,
    cmdline: String,
    disk: PathBuf,
    snapshot: bool,
    /// How many stock `edu` devices to give the guest (they wear the DPU identities).
    edu: u8,
    timeout: Duration,
    /// Stop the guest when this appears (a firmware boot has no poweroff of ours to wait for).
    stop_at: Option<&'a str>,
    /// The end of the time all guests together may take.
    deadline: Instant,
}

/// Kills the guest however `Guest::run` is left.
struct Qemu(std::process::Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Serial {
    text: String,
    elapsed: Duration,
    timed_out: bool,
}

impl Serial {
    fn lines<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.text
            .lines()
            .filter_map(move |l| l.find(prefix).map(|i| &l[i..]))
    }
    fn exit_code(&self) -> Option<i32> {
        self.lines("E2E-EXIT ")
            .next()
            .and_then(|l| l["E2E-EXIT ".len()..].trim().parse().ok())
    }
    fn failures(&self) -> Vec<&str> {
        self.lines("E2E-FAIL").collect()
    }
    /// The installer's JSON events (`--progress json`) among the console lines.
    fn events(&self) -> Vec<serde_json::Value> {
        self.text
            .lines()
            .filter_map(|l| l.find('{').map(|i| &l[i..]))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
    /// The message of the installer's `failed` event, or "".
    fn failure_message(&self) -> String {
        self.events()
            .iter()
            .find(|e| e["event"] == "failed")
            .and_then(|e| e["message"].as_str())
            .unwrap_or("")
            .to_string()
    }
    fn expect_exit(&self, code: i32, meaning: &str, problems: &mut Vec<String>) {
        if self.exit_code() != Some(code) {
            problems.push(format!(
                "ksinstall ended with {:?}, not {code} ({meaning})",
                self.exit_code()
            ));
        }
    }
}

impl Guest<'_> {
    fn run(&self, p: &Paths) -> Result<Serial> {
        let mut cmd = Command::new("qemu-system-x86_64");
        // No KVM on these machines (qemu-e2e.md §2); -no-reboot and panic=-1 make a panic end
        // the run instead of hanging until the timeout.
        // `-cpu max` has RDRAND, which the kernel trusts for its random pool, as on a real
        // server: qemu64 has no entropy source, and getrandom() (partition GUIDs) then blocks
        // for minutes at boot.
        cmd.args([
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-m",
            "1024",
            "-nodefaults",
            "-no-reboot",
        ])
        .args(["-display", "none", "-serial", "stdio", "-monitor", "none"]);
        match self.kernel {
            Some((kernel, initrd)) => {
                cmd.arg("-kernel").arg(kernel).arg("-initrd").arg(initrd);
                cmd.arg("-append")
                    .arg(format!("console=ttyS0 panic=-1 quiet {}", self.cmdline));
            }
            None => {
                cmd.args(["-bios", OVMF]);
            }
        }
        let snapshot = if self.snapshot { ",snapshot=on" } else { "" };
        cmd.arg("-drive").arg(format!(
            "file={},format=raw,if=virtio,cache=unsafe{snapshot}",
            self.disk.display()
        ));
        cmd.args([
            "-netdev",
            "user,id=n0",
            "-device",
            "virtio-net-pci,netdev=n0",
        ]);
        for i in 0..self.edu {
            // The second edu is function 2 of the first one's slot: one card, two functions.
            if self.edu > 1 {
                let f = if i == 0 {
                    "6.0,multifunction=on"
                } else {
                    "6.2"
                };
                cmd.args(["-device", &format!("edu,addr={f}")]);
            } else {
                cmd.args(["-device", "edu,addr=6.0"]);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        println!("== [{}] booting ({:?})", self.name, cmd);
        let log_path = p.w(&format!("{}.serial.log", self.name));
        let mut log = std::fs::File::create(&log_path)?;
        let started = Instant::now();
        let mut child = Qemu(cmd.spawn().context("qemu-system-x86_64")?);
        let (tx, rx) = mpsc::channel::<String>();
        let out = child.0.stdout.take().context("qemu stdout")?;
        let err = child.0.stderr.take().context("qemu stderr")?;
        for stream in [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(stream);
                let mut buf = Vec::new();
                while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    if tx.send(line).is_err() {
                        break;
                    }
                    buf.clear();
                }
            });
        }
        drop(tx);
        let deadline = (started + self.timeout).min(self.deadline);
        let mut text = String::new();
        let mut timed_out = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    writeln!(log, "{line}")?;
                    if let Some(i) = line.find("E2E-") {
                        println!("   [{}] {}", self.name, &line[i..]);
                    }
                    let stop = self.stop_at.is_some_and(|m| line.contains(m));
                    text.push_str(&line);
                    text.push('\n');
                    if stop {
                        let _ = child.0.kill();
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    timed_out = true;
                    let _ = child.0.kill();
                    break;
                }
            }
        }
        let _ = child.0.wait();
        let elapsed = started.elapsed();
        println!(
            "== [{}] {} after {:.1} s; serial log {}",
            self.name,
            if timed_out { "TIMED OUT" } else { "ended" },
            elapsed.as_secs_f64(),
            log_path.display()
        );
        Ok(Serial {
            text,
            elapsed,
            timed_out,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Judging.

struct Outcome {
    name: String,
    passed: bool,
    elapsed: Duration,
    detail: String,
}

fn judge(name: &str, serial: &Serial, problems: Vec<String>, ok_detail: String) -> Outcome {
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
struct HostPartition {
    number: u32,
    first: u64,
    last: u64,
    code: String,
}

fn sgdisk_partitions(disk: &Path) -> Result<Vec<HostPartition>> {
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
fn check_pxe(
    serial: &Serial,
    disk: &Path,
    media: &Path,
    uki: &Path,
    server: &HttpServer,
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
        // PXE-style: the kickstart and the media came from the host's server.
        let requests = server.requests();
        for wanted in [
            "GET /ks/pxe.cfg",
            "GET /media/IMGDB.TGZ",
            "GET /media/B.B00",
            "GET /media/S.V00",
        ] {
            // python's log line: "GET /media/b.b00 HTTP/1.1" 200 -
            let served = format!("\"{wanted} HTTP/1.1\" 200 ");
            if !requests.lines().any(|l| l.contains(&served)) {
                problems.push(format!("the HTTP server did not serve {wanted} (200)"));
            }
        }
        // The kernel's GPT parser: partition numbers and extents as sgdisk reads them here.
        let host = sgdisk_partitions(disk)?;
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
        for h in &host {
            if let Some((start, sectors)) = seen.get(&h.number) {
                if *start != h.first || *sectors != h.last - h.first + 1 {
                    problems.push(format!(
                        "partition {}: kernel {start}+{sectors}, sgdisk {}..{}",
                        h.number, h.first, h.last
                    ));
                }
            }
        }
        details.push(format!("kernel GPT {numbers:?}"));
        // The kernel's vfat driver: every file of partitions 1, 5, 6 with its hash, against
        // mtools here and the media.
        let manifest = ksinstall::media::Media::open(&media.display().to_string())?.manifest;
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
        // The bank holds every host module of the media, byte for byte, and boot.cfg.
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
                Some(_) => {
                    problems.push(format!("bank 0 {}: SHA-256 differs from the media", c.path))
                }
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

/// "And 8 where due": on a 200 GB disk the guest's kernel sees the datastore partition too,
/// where sgdisk sees it, and the table is sound.
fn check_datastore(serial: &Serial, disk: &Path) -> Outcome {
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
fn check_dpu_flash(serial: &Serial) -> Outcome {
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
fn shipped_dsc_version(p: &Paths) -> Result<String> {
    let path = p.root.join("firmware/amd-pensando-dsc/bundle.toml");
    std::fs::read_to_string(&path)?
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .map(|v| v.trim().trim_matches('"').to_string())
        .with_context(|| format!("{}: no version", path.display()))
}

/// The card's answer decides: netdevsim stores 10.20.30 whatever it is given, so a bundle that
/// says another version was not installed, and the host must not be left bootable.
fn check_dsc_version(serial: &Serial, disk: &Path, shipped: &str) -> Outcome {
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
fn check_host_tools(p: &Paths, disk: &Path) -> Outcome {
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
fn check_bluefield(serial: &Serial, disk: &Path) -> Outcome {
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
fn check_broken(serial: &Serial, disk: &Path) -> Outcome {
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
fn check_uefi(serial: &Serial, disk: &Path, _uki: &Path) -> Outcome {
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
