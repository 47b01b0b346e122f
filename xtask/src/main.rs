//! Project tasks: `cargo xtask <task>`.
//!
//! - `test`: install the real tools the tests cross-check with (Debian packages, when missing and
//!   running as root), then run the whole test suite. This is the README's test command.
//! - `demo`: the README's first command: the installer's main job on embedded defaults.
//! - `rollout`: a simulated rack installed in parallel and checked as one cluster (rollout.rs).
//! - `image`: the installer image people boot (image.rs, docs/IMAGE.md).
//! - `e2e`: the installer image under QEMU, judged by real clients (e2e/).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

mod bench;
mod counts;
mod e2e;
mod image;
mod rollout;

use ksinstall::media::synth as mkmedia;

/// Programs the tests run, and the Debian package that brings each.
const TEST_TOOLS: &[(&str, &str)] = &[
    ("sgdisk", "gdisk"),
    ("fsck.fat", "dosfstools"),
    ("mkfs.fat", "dosfstools"),
    ("mdir", "mtools"),
    ("mcopy", "mtools"),
    ("blkid", "util-linux"),
    ("openssl", "openssl"),
    ("xorriso", "xorriso"),
    ("mmd", "mtools"),
    ("grub-script-check", "grub-common"),
    ("tmux", "tmux"),
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("demo") => demo(),
        Some("deps") => ensure_tools(),
        Some("mkmedia") => mkmedia_cmd(&args[1..]),
        Some("counts") => counts::counts(&root(), &args[1..]),
        Some("bench") => bench::bench(&root(), &mut cargo(), &args[1..]),
        Some("rollout") => rollout::rollout(&root(), &mut cargo(), &args[1..]),
        Some("e2e") => e2e::e2e(&root(), &mut cargo(), &args[1..]),
        Some("image") => image::image(&root(), &mut cargo(), &args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <test [cargo test args...] | demo | bench [--concurrency] | image --out DIR [--with-rshim FILE] [--cmdline OPTIONS] | e2e [--only SCENARIOS] | rollout [--hosts 16] [--jobs 4] [--media-size 256M] [--wrong other-model|no-dpu|other-image] [--no-doc] | deps | mkmedia --out DIR [--size 1G] [--version 8.0.3] [--build 8.0.3-0.35.N] [--omit MODULE]... [--seed N] [--iso FILE] [--sign-key KEY.pem --sign-cert CERT.pem]>");
            std::process::exit(1);
        }
    }
}

/// CARGO_TARGET_DIR, else target/ of the workspace.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn on_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .any(|d| d.join(program).is_file())
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Install the Debian packages for any missing test tool (apt-get, as root), so that a fresh
/// machine needs nothing but this command.
fn ensure_tools() -> Result<()> {
    let mut missing: Vec<&str> = TEST_TOOLS
        .iter()
        .filter(|(p, _)| !on_path(p))
        .map(|(_, pkg)| *pkg)
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    if !is_root {
        bail!(
            "the tests need these Debian packages: {}; run as root or `sudo apt-get install {}`",
            missing.join(" "),
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    Ok(())
}

fn mkmedia_cmd(args: &[String]) -> Result<()> {
    let mut iso: Option<PathBuf> = None;
    let (mut sign_key, mut sign_cert): (Option<PathBuf>, Option<PathBuf>) = (None, None);
    let mut o = mkmedia::Options {
        out: PathBuf::new(),
        size: 1 << 30,
        version: "8.0.3".into(),
        seed: 1,
    };
    let mut variant = mkmedia::Variant::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--out" => o.out = PathBuf::from(val()?),
            "--size" => o.size = ksinstall::size::parse_size(val()?)?,
            "--version" => o.version = val()?.clone(),
            "--seed" => o.seed = val()?.parse().context("--seed wants a number")?,
            "--iso" => iso = Some(PathBuf::from(val()?)),
            "--build" => variant.build = Some(val()?.clone()),
            "--omit" => variant.omit.push(val()?.clone()),
            "--esxio-build" => variant.esxio_build = Some(val()?.clone()),
            "--sign-key" => sign_key = Some(PathBuf::from(val()?)),
            "--sign-cert" => sign_cert = Some(PathBuf::from(val()?)),
            other => bail!("mkmedia: unknown argument {other}"),
        }
    }
    if o.out.as_os_str().is_empty() {
        bail!("mkmedia: --out DIR is required");
    }
    let m = mkmedia::mkmedia_with(&o, &variant)?;
    match (&sign_key, &sign_cert) {
        (Some(key), Some(cert)) => {
            let n = mkmedia::sign(&o.out, key, cert)?;
            eprintln!(
                "mkmedia: {n} VIB descriptors signed with {}",
                cert.display()
            );
        }
        (None, None) => {}
        _ => bail!("mkmedia: --sign-key and --sign-cert go together"),
    }
    if let Some(iso) = &iso {
        mkmedia::make_iso(&o.out, iso)?;
        println!("{}: ISO9660 image of {}", iso.display(), o.out.display());
    }
    let total: u64 = m.components.iter().map(|c| c.size).sum();
    println!(
        "{}: ESXi {} ({}), {} components, {} bytes",
        o.out.display(),
        m.version,
        m.build,
        m.components.len(),
        total
    );
    Ok(())
}

/// The variables `cargo run` sets for the crate it runs (xtask itself). A cargo started with
/// them builds every package with xtask's identity, which invalidates the user's own build
/// (ring, rustls, ureq, ksinstall recompiled on every `cargo xtask demo`).
fn crate_env(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_MANIFEST_")
        || matches!(
            name,
            "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
        )
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(crate_env) {
            c.env_remove(&name);
        }
    }
    c
}

fn test(extra: &[String]) -> Result<()> {
    ensure_tools()?;
    run(cargo()
        .current_dir(root())
        .args(["test", "--workspace"])
        .args(extra))
}

/// The demo kickstart: a BlueField-3 host (the fixture's DPU sits in slot 4).
const DEMO_KS: &str = "# ksinstall demo: a Distributed Services Engine host with a BlueField-3 in slot 4.
vmaccepteula
rootpw --iscrypted $6$ksinstallExampl$gs0rWRb4e18QdWwUGxkYYf27pufzcgy.uh99Ch9umRYHEgzPhZjOfXvb9/6j3OBpXQpAO238CiGZZ0X5fOIg31
install --firstdisk --overwritevmfs --dpuPciSlots=4
network --bootproto=static --device=vmnic0 --ip=192.168.10.21 --netmask=255.255.255.0 --gateway=192.168.10.1 --nameserver=192.168.10.2 --hostname=esx-demo.example
keyboard 'US Default'
reboot
%firstboot --interpreter=busybox
vim-cmd hostsvc/enable_ssh
";

fn demo() -> Result<()> {
    let root = root();
    run(cargo()
        .current_dir(&root)
        // cargo's own progress: a first build takes minutes, a second one says "Finished".
        .args(["build", "--bin", "ksinstall"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("debug/ksinstall");
    let work = target.join("demo");
    let media = work.join("media");
    let disk = work.join("disk.img");
    let ks = work.join("ks.cfg");
    // A recorded server with a BlueField-3, copied so its rshim device can live in its dev/.
    let sysroot = work.join("sysroot");
    std::fs::create_dir_all(&work).with_context(|| format!("{}", work.display()))?;
    let _ = std::fs::remove_dir_all(&sysroot);
    run(Command::new("cp")
        .arg("-a")
        .arg(root.join("tests/fixtures/bluefield3"))
        .arg(&sysroot))?;
    // The simulated DPU stands where the rshim daemon's /dev/rshim0 would: it drains the boot
    // stream at 200 MB/s, checks it, and logs its install as a real BlueField does.
    let mut dpu = ksinstall::dpu::sim::Config::new("0000:ca:00.2", "BlueField-3(Rev 1)");
    dpu.rate = Some(200_000_000);
    let sim = ksinstall::dpu::sim::RshimSim::start(&sysroot.join("dev/rshim0"), dpu)?;
    if !media.join("IMGDB.TGZ").exists() {
        let _ = std::fs::remove_dir_all(&media);
        println!(
            "== making a 256 MiB synthetic ESXi 8.0.3 medium in {}",
            media.display()
        );
        mkmedia::mkmedia(&mkmedia::Options {
            out: media.clone(),
            size: 256 << 20,
            version: "8.0.3".into(),
            seed: 1,
        })?;
    }
    std::fs::write(&ks, DEMO_KS)?;
    let _ = std::fs::remove_file(&disk);

    println!("== ksinstall validate {}", ks.display());
    run(Command::new(&bin).arg("validate").arg(&ks))?;
    println!("\n== ksinstall probe --sysroot {}", sysroot.display());
    run(Command::new(&bin)
        .arg("probe")
        .arg("--sysroot")
        .arg(&sysroot))?;
    let install = |extra: &[&str]| {
        let mut c = Command::new(&bin);
        c.arg("install")
            .arg("--ks")
            .arg(&ks)
            .arg("--media")
            .arg(&media)
            .arg("--sysroot")
            .arg(&sysroot);
        c.arg("--disk")
            .arg(&disk)
            .args([
                "--disk-size",
                "200G",
                "--cmdline",
                "systemMediaSize=default",
            ])
            .args(extra);
        c
    };
    println!("\n== ksinstall install --dry-run (writes nothing)");
    std::fs::File::create(&disk)?.set_len(200 << 30)?;
    run(&mut install(&["--dry-run"]))?;
    println!(
        "\n== ksinstall install --disk {} (a 200 GiB sparse image)",
        disk.display()
    );
    run(&mut install(&[
        "--progress",
        "tty",
        "--report",
        work.join("report.json").to_str().unwrap_or("report.json"),
    ]))?;

    show_installed(&disk)?;
    let got = sim.finish();
    println!(
        "== the simulated BlueField-3 received {} in {} images (SHA-256 {}), {}",
        human(got.bytes),
        got.images.len(),
        &got.sha256[..16],
        if got.problems.is_empty() {
            "all sound".to_string()
        } else {
            got.problems.join("; ")
        }
    );
    println!("report: {}", work.join("report.json").display());
    Ok(())
}

/// The installed disk read back through the library, as any later boot would see it: the
/// partition table and boot bank 0's boot.cfg.
fn show_installed(disk: &Path) -> Result<()> {
    let mut dev = ksinstall::storage::BlockDev::open_read_only(disk, 512)?;
    let gpt = ksinstall::storage::read_gpt(&mut dev)?;
    println!("\n== partition table of {}", disk.display());
    println!(
        "  #  first LBA    last LBA     size        type                                  name"
    );
    for e in &gpt.entries {
        let size = (e.last_lba - e.first_lba + 1) * 512;
        println!(
            "  {:<2} {:<12} {:<12} {:<11} {} {}",
            e.number,
            e.first_lba,
            e.last_lba,
            human(size),
            e.type_guid,
            e.name
        );
    }
    let bank = gpt
        .entries
        .iter()
        .find(|e| e.number == 5)
        .context("no partition 5")?
        .clone();
    let fs = ksinstall::storage::fat::open_fat(&mut dev, &bank)?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut fs.root_dir().open_file("boot.cfg")?, &mut text)?;
    println!("\n== boot.cfg of boot bank 0 (partition 5)\n{text}");
    Ok(())
}

fn human(bytes: u64) -> String {
    let gib = bytes as f64 / (1u64 << 30) as f64;
    if gib >= 1.0 {
        format!("{gib:.1} GiB")
    } else {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}
