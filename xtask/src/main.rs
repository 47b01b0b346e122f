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
use clap::{Parser, Subcommand};

mod bench;
mod counts;
mod e2e;
mod image;
mod rollout;

use testkit::synth as mkmedia;

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
    ("script", "bsdutils"),
];

/// ksinstall's project tasks; `cargo xtask <command> --help` lists a command's options.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Install the Debian tools the tests cross-check with (when missing, as root), then run
    /// every test: `cargo test --workspace ARGS...`.
    Test(TestArgs),
    /// The installer's main job on embedded defaults: no real hardware, no root.
    Demo,
    /// Install the Debian tools the tests cross-check with (when missing, as root).
    Deps,
    /// A deterministic synthetic ESXi medium in VMware's real format (docs/MEDIA.md).
    Mkmedia(MkmediaArgs),
    /// The lay-down measured against real tools; writes docs/PERFORMANCE.md.
    Bench(bench::Args),
    /// A rack installed in parallel and checked as one cluster (docs/FLEET.md).
    Rollout(rollout::Args),
    /// The installer image under QEMU, judged by real clients (docs/TESTING.md).
    E2e(e2e::Args),
    /// The installer image people boot (docs/IMAGE.md).
    Image(image::Args),
    /// The house's counts (#28): functions over 120 lines, `Result<_, String>` signatures, lines
    /// in src/cli/, import circles, docs/ARCHITECTURE.md arrows against `use` lines.
    Counts(CountsArgs),
}

#[derive(Debug, clap::Args)]
struct CountsArgs {
    /// The checkout to measure (default: this one).
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
    /// One JSON document instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct TestArgs {
    /// Passed to `cargo test --workspace` as they are (e.g. `--test install`, `-- --nocapture`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CARGO_TEST_ARGS"
    )]
    cargo_args: Vec<String>,
}

/// `cargo xtask mkmedia --out DIR ...`.
#[derive(Debug, clap::Args)]
struct MkmediaArgs {
    /// The directory to write the medium's tree into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The medium's size (bytes, or with K, M, G).
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_size)]
    size: u64,
    /// The ESXi version, MAJOR.MINOR.PATCH.
    #[arg(long, default_value = "8.0.3")]
    version: String,
    /// `build=` of BOOT.CFG and every VIB's version (default: VERSION-0.35.<24280767 + seed % 1000>).
    #[arg(long)]
    build: Option<String>,
    /// The version of the ESXio VIBs (the DPU's part), when it differs from --build.
    #[arg(long, value_name = "BUILD")]
    esxio_build: Option<String>,
    /// A module file (e.g. qflge.v00) left off the medium: the file, its VIB and its BOOT.CFG
    /// entry. Repeatable.
    #[arg(long, value_name = "MODULE")]
    omit: Vec<String>,
    /// The seed of the filler bytes.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// Also write an ISO9660 image of the tree (BIOS and EFI El Torito entries).
    #[arg(long, value_name = "FILE")]
    iso: Option<PathBuf>,
    /// Sign every VIB descriptor with this key (PEM; with --sign-cert).
    #[arg(long, value_name = "KEY.pem", requires = "sign_cert")]
    sign_key: Option<PathBuf>,
    /// The certificate of --sign-key (PEM; with --sign-key).
    #[arg(long, value_name = "CERT.pem", requires = "sign_key")]
    sign_cert: Option<PathBuf>,
}

fn parse_size(s: &str) -> Result<u64> {
    ksinstall::size::parse_size(s)
}

fn main() -> Result<()> {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help is no failure; every usage error exits 1, as before clap.
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 1 } else { 0 });
        }
    };
    match cli.cmd {
        Cmd::Test(a) => test(&a.cargo_args),
        Cmd::Demo => demo(),
        Cmd::Deps => ensure_tools(),
        Cmd::Mkmedia(a) => mkmedia_cmd(&a),
        Cmd::Bench(a) => bench::bench(&root(), &mut cargo(), &a),
        Cmd::Rollout(a) => rollout::rollout(&root(), &mut cargo(), &a),
        Cmd::E2e(a) => e2e::e2e(&root(), &mut cargo(), &a),
        Cmd::Image(a) => image::image(&root(), &mut cargo(), &a),
        Cmd::Counts(a) => {
            let mut args: Vec<String> = a.dir.iter().map(|d| d.display().to_string()).collect();
            if a.json {
                args.push("--json".into());
            }
            counts::counts(&root(), &args)
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

fn mkmedia_cmd(a: &MkmediaArgs) -> Result<()> {
    let o = mkmedia::Options {
        out: a.out.clone(),
        size: a.size,
        version: a.version.clone(),
        seed: a.seed,
    };
    let variant = mkmedia::Variant {
        build: a.build.clone(),
        omit: a.omit.clone(),
        esxio_build: a.esxio_build.clone(),
    };
    let (iso, sign_key, sign_cert) = (&a.iso, &a.sign_key, &a.sign_cert);
    let m = mkmedia::mkmedia_with(&o, &variant)?;
    match (sign_key, sign_cert) {
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
    if let Some(iso) = iso {
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
    let mut dpu = testkit::sim::Config::new("0000:ca:00.2", "BlueField-3(Rev 1)");
    dpu.rate = Some(200_000_000);
    let sim = testkit::sim::RshimSim::start(&sysroot.join("dev/rshim0"), dpu)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cargo xtask").chain(args.iter().copied()))
    }

    /// The long options a subcommand accepts, as clap knows them.
    fn longs(cmd: &str) -> Vec<String> {
        let app = Cli::command();
        let sub = app
            .find_subcommand(cmd)
            .unwrap_or_else(|| panic!("no xtask command {cmd}"));
        sub.get_arguments()
            .filter_map(|a| a.get_long().map(String::from))
            .collect()
    }

    #[test]
    fn every_command_has_help_listing_every_option() {
        for cmd in [
            "test", "demo", "deps", "mkmedia", "bench", "rollout", "e2e", "image",
        ] {
            let e = parse(&[cmd, "--help"]).expect_err("--help ends the parse");
            assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp, "{cmd}");
            assert!(!e.use_stderr(), "{cmd} --help is no error");
            let help = e.render().to_string();
            for long in longs(cmd) {
                assert!(
                    help.contains(&format!("--{long}")),
                    "{cmd} --help leaves out --{long}:\n{help}"
                );
            }
        }
        let help = parse(&["mkmedia", "--help"])
            .expect_err("help")
            .render()
            .to_string();
        for opt in [
            "--out",
            "--size",
            "--version",
            "--build",
            "--esxio-build",
            "--omit",
            "--seed",
            "--iso",
            "--sign-key",
            "--sign-cert",
        ] {
            assert!(help.contains(opt), "mkmedia --help: no {opt}:\n{help}");
        }
    }

    /// Invocations from .ci/run, the README and docs/, and the e2e's own calls, parse as the
    /// hand-written parser took them.
    #[test]
    fn documented_invocations_parse() {
        let cli = parse(&[
            "mkmedia",
            "--out",
            "m",
            "--size",
            "2G",
            "--omit",
            "a.v00",
            "--omit",
            "b.v00",
            "--esxio-build",
            "8.0.3-0.35.1",
            "--seed",
            "7",
            "--iso",
            "m.iso",
        ])
        .expect("mkmedia");
        let Cmd::Mkmedia(m) = cli.cmd else {
            panic!("not mkmedia")
        };
        assert_eq!(m.size, 2 << 30);
        assert_eq!(m.omit, ["a.v00", "b.v00"]);
        assert_eq!(m.seed, 7);
        assert_eq!(m.esxio_build.as_deref(), Some("8.0.3-0.35.1"));
        let Cmd::Mkmedia(m) = parse(&["mkmedia", "--out", "m"]).expect("defaults").cmd else {
            panic!("not mkmedia")
        };
        assert_eq!((m.size, m.version.as_str(), m.seed), (1 << 30, "8.0.3", 1));
        assert!(parse(&["mkmedia", "--out", "m", "--sign-key", "k.pem"]).is_err());
        assert!(parse(&["mkmedia"]).is_err(), "--out is required");

        let Cmd::Test(t) = parse(&["test", "--test", "install", "--", "--nocapture"])
            .expect("test")
            .cmd
        else {
            panic!("not test")
        };
        assert_eq!(t.cargo_args, ["--test", "install", "--", "--nocapture"]);

        let Cmd::Rollout(r) = parse(&["rollout", "--engine", "ironic", "--hosts", "3"])
            .expect("rollout ironic")
            .cmd
        else {
            panic!("not rollout")
        };
        assert_eq!((r.engine, r.hosts), (rollout::Engine::Ironic, Some(3)));
        let Cmd::Rollout(r) = parse(&[
            "rollout",
            "--hosts",
            "16",
            "--jobs",
            "4",
            "--media-size",
            "256M",
            "--wrong",
            "no-dpu",
            "--no-doc",
        ])
        .expect("rollout sim")
        .cmd
        else {
            panic!("not rollout")
        };
        assert_eq!(r.engine, rollout::Engine::Sim);
        assert_eq!(r.media_size, Some(256 << 20));
        assert_eq!(r.wrong, Some(rollout::Wrong::NoDpu));

        let Cmd::E2e(e) = parse(&["e2e", "--only", "pxe,upgrade"]).expect("e2e").cmd else {
            panic!("not e2e")
        };
        assert_eq!(e.only, Some(vec!["pxe".to_string(), "upgrade".to_string()]));
        assert!(parse(&["e2e", "--only", "pxe,nosuch"]).is_err());

        let Cmd::Image(i) = parse(&[
            "image",
            "--out",
            "d",
            "--cmdline",
            "ks=http://x/ks.cfg BOOTIF=01-aa",
            "--sign-key",
            "k",
            "--sign-cert",
            "c",
        ])
        .expect("image")
        .cmd
        else {
            panic!("not image")
        };
        assert_eq!(i.cmdline, "ks=http://x/ks.cfg BOOTIF=01-aa");
        assert!(i.sign_key.is_some() && i.sign_cert.is_some());
        for ok in [
            &["demo"][..],
            &["deps"],
            &["test"],
            &["bench"],
            &["bench", "--concurrency"],
            &["e2e"],
            &["rollout"],
        ] {
            parse(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
    }

    /// Every `cargo xtask CMD --option` written in the README, docs/ and .ci/run names a
    /// command and options that exist (usage lines in brackets included).
    #[test]
    fn docs_name_only_real_commands_and_options() {
        let root = root();
        let mut files = vec![root.join("README.md"), root.join(".ci/run")];
        for e in std::fs::read_dir(root.join("docs")).expect("docs/") {
            let p = e.expect("docs/ entry").path();
            if p.extension().is_some_and(|x| x == "md") {
                files.push(p);
            }
        }
        let mut seen = 0;
        for f in &files {
            let text = std::fs::read_to_string(f).expect("readable doc");
            for (n, line) in text.lines().enumerate() {
                for (i, _) in line.match_indices("cargo xtask ") {
                    let rest = &line[i + "cargo xtask ".len()..];
                    let rest = rest
                        .split(['`', '"', ')', '(', ':', ';'])
                        .next()
                        .unwrap_or("");
                    let mut words = rest.split_whitespace();
                    let Some(cmd) = words.next() else { continue };
                    let cmd = cmd.trim_matches(|c: char| !c.is_ascii_alphanumeric());
                    if cmd.is_empty() || cmd.contains('|') || cmd == "command" {
                        continue;
                    }
                    let known = longs(cmd);
                    seen += 1;
                    if cmd == "test" {
                        continue; // its options are cargo test's
                    }
                    for w in words {
                        for part in w.split('|') {
                            let opt = part.trim_matches(|c: char| "[],.".contains(c));
                            let Some(long) = opt.strip_prefix("--") else {
                                continue;
                            };
                            let long = long.split('=').next().unwrap_or(long);
                            assert!(
                                long == "help" || known.iter().any(|k| k == long),
                                "{}:{}: `cargo xtask {cmd}` has no --{long}",
                                f.display(),
                                n + 1
                            );
                        }
                    }
                }
            }
        }
        assert!(seen > 20, "only {seen} xtask invocations found in the docs");
    }
}
