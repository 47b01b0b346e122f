//! Project tasks: `cargo xtask <task>`.
//!
//! - `test`: install the real tools the tests cross-check with (Debian packages, when missing and
//!   running as root), then run the whole test suite. This is the README's test command.
//! - `demo`: the README's first command: the installer's main job on embedded defaults.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

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
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("demo") => demo(),
        Some("deps") => ensure_tools(),
        Some("mkmedia") => mkmedia_cmd(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <test [cargo test args...] | demo | deps | mkmedia --out DIR [--size 1G] [--version 8.0.3] [--seed N]>");
            std::process::exit(1);
        }
    }
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
    let mut o = mkmedia::Options {
        out: PathBuf::new(),
        size: 1 << 30,
        version: "8.0.3".into(),
        seed: 1,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--out" => o.out = PathBuf::from(val()?),
            "--size" => o.size = mkmedia::parse_size(val()?)?,
            "--version" => o.version = val()?.clone(),
            "--seed" => o.seed = val()?.parse().context("--seed wants a number")?,
            other => bail!("mkmedia: unknown argument {other}"),
        }
    }
    if o.out.as_os_str().is_empty() {
        bail!("mkmedia: --out DIR is required");
    }
    let m = mkmedia::mkmedia(&o)?;
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

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn test(extra: &[String]) -> Result<()> {
    ensure_tools()?;
    run(cargo()
        .current_dir(root())
        .args(["test", "--workspace"])
        .args(extra))
}

fn demo() -> Result<()> {
    let root = root();
    run(cargo()
        .current_dir(&root)
        .args(["build", "--quiet", "--bin", "ksinstall"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("debug/ksinstall");
    let examples = root.join("kickstart-examples");
    println!("== ksinstall validate kickstart-examples/*.cfg");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&examples)
        .with_context(|| format!("reading {}", examples.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cfg"))
        .collect();
    files.sort();
    run(Command::new(&bin)
        .arg("validate")
        .args(&files)
        .current_dir(&root))?;
    Ok(())
}
