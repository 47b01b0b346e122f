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

mod guest;
mod image;
mod judges;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use guest::{Guest, HttpServer};
use image::{
    build_netdevsim, build_static, ensure_packages, fetch_kernel, fresh_disk, make_initramfs,
    make_kickstarts, make_media, make_uki, pick_kernel, resolve_modules, sized_disk, Pin,
    GUEST_MODULES,
};
use judges::{
    check_bluefield, check_broken, check_datastore, check_dpu_flash, check_dsc_version,
    check_host_tools, check_pxe, check_uefi, shipped_dsc_version, Outcome,
};

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
