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

mod embed;
mod guest;
mod image;
pub(crate) mod ironic;
mod judges;
mod netlab;
mod network;
mod secureboot;
mod sweep;
mod upgrade;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::image::Pin;
use guest::{Guest, HttpServer, Nic};
use image::{fresh_disk, sized_disk, Images};
use judges::{
    check_bluefield, check_broken, check_datastore, check_dsc_version, check_first_boot,
    shipped_dsc_version, Outcome,
};
use netlab::NetLab;
use sweep::DiskSweeper;

/// What the installer image's init says when it stays up instead of rebooting (xtask/image/init).
const IMAGE_STAYS: &str = "ksinstall-image: the machine stays up";

struct Paths {
    root: PathBuf,
    work: PathBuf,
    /// The image builder's downloads and unpacked kernel (target/image).
    cache: PathBuf,
    pin: Pin,
}

impl Paths {
    fn w(&self, rel: &str) -> PathBuf {
        self.work.join(rel)
    }
}

/// `cargo xtask e2e [--only SCENARIOS] [--keep-disks]`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run only these scenarios (comma-separated); all of them when absent.
    #[arg(long, value_name = "SCENARIOS", value_delimiter = ',', value_parser = SCENARIO_NAMES)]
    pub only: Option<Vec<String>>,
    /// Keep every scenario's disk image; by default a disk is deleted once its scenario passed.
    #[arg(long)]
    pub keep_disks: bool,
}

pub fn e2e(root: &Path, cargo: &mut Command, args: &Args) -> Result<()> {
    let only: Option<BTreeSet<String>> = args.only.as_ref().map(|v| v.iter().cloned().collect());
    let target = crate::target_dir(root);
    let t0 = Instant::now();
    let mut laps = Laps {
        timings: Vec::new(),
        since: Instant::now(),
    };
    let (p, images) = image::build(root, &target, cargo, &mut laps)?;
    print_free_space(&p.work);
    let mut sweep = DiskSweeper::new(&p.work, args.keep_disks);
    let results = run_scenarios(&p, &images, only.as_ref(), &mut sweep)?;
    laps.lap("scenarios");
    report(&p, t0, &laps.timings, &results)
}

/// How long each phase took, for the summary.
struct Laps {
    timings: Vec<(String, Duration)>,
    since: Instant,
}

impl Laps {
    fn lap(&mut self, name: &str) {
        self.timings.push((name.to_string(), self.since.elapsed()));
        self.since = Instant::now();
    }
}

/// What every installer guest shares: the kernel and initramfs it boots, the server's address
/// and the end of the time all guests together may take.
struct ImageGuests<'a> {
    vmlinuz: PathBuf,
    initrd: &'a Path,
    url: String,
    deadline: Instant,
}

impl ImageGuests<'_> {
    /// A guest of the installer image: `scenario` and `dpu` go to its /init, `ks` names the
    /// kickstart on the server, `extra` adds kernel command line words.
    fn guest(
        &self,
        scenario: &'static str,
        ks: &str,
        dpu: &str,
        extra: &str,
        disk: PathBuf,
    ) -> Guest<'_> {
        let url = &self.url;
        Guest {
            name: scenario,
            removable: None,
            oemdrv: None,
            nic: Nic::User,
            reboot: false,
            link_off: false,
            kernel: Some((self.vmlinuz.as_path(), self.initrd)),
            cmdline: format!(
                "ks={url}/ks/{ks} inst.repo={url}/media e2e.scenario={scenario} e2e.dpu={dpu} {extra}"
            ),
            disk,
            snapshot: false,
            secure_boot: None,
            edu: match dpu {
                "pensando" => 1,
                "bluefield" => 2,
                _ => 0,
            },
            // An install takes about 40 s here; a dry run or a refusal about 15.
            timeout: Duration::from_secs(if matches!(scenario, "datastore" | "dsc-version") {
                240
            } else {
                120
            }),
            // The image's init stays up after a failure (no reboot loop): its last word ends the run.
            stop_at: &[IMAGE_STAYS],
            deadline: self.deadline,
        }
    }
}

/// Every scenario's name, for --only.
const SCENARIO_NAMES: [&str; 11] = [
    "pxe",
    "dsc-version",
    "bluefield",
    "datastore",
    "broken",
    "vlan",
    "removable",
    "failures",
    "upgrade",
    "secureboot",
    "embed",
];

/// The scenarios, in order, each judged as soon as its guest ends; each is one call here.
fn run_scenarios(
    p: &Paths,
    images: &Images,
    only: Option<&BTreeSet<String>>,
    sweep: &mut DiskSweeper,
) -> Result<Vec<Outcome>> {
    let server = HttpServer::start(&images.www, &p.w("http.log"))?;
    let want = |s: &str| only.is_none_or(|o| o.contains(s));
    // All guests together get 21 minutes (they take about 12): a hung guest must not take the
    // e2e past its budget, and the ones after it are reported as timed out.
    let deadline = Instant::now() + Duration::from_secs(1260);
    let guests = ImageGuests {
        vmlinuz: images.installer.vmlinuz.clone(),
        initrd: &images.initrd,
        url: format!("http://10.0.2.2:{}", server.port),
        deadline,
    };
    let mut results: Vec<Outcome> = Vec::new();
    let mut lab = if want("pxe")
        || want("upgrade")
        || want("vlan")
        || want("removable")
        || want("secureboot")
    {
        std::fs::create_dir_all(p.w("tftp"))?;
        Some(NetLab::start(&p.work, &p.w("tftp"), &images.www)?)
    } else {
        None
    };
    let (mut installed, mut pxe_passed) = (false, false);
    if let (true, Some(lab)) = (want("pxe") || want("upgrade"), &lab) {
        let pxe = network::pxe_boot(p, images, lab, deadline)?;
        // The upgrade scenario needs the disk this install made.
        installed = pxe.iter().take(2).all(|o| o.passed);
        pxe_passed = pxe.iter().all(|o| o.passed);
        results.extend(pxe);
        let spare = if want("upgrade") && installed {
            vec![p.w("disk-pxe.img")]
        } else {
            Vec::new()
        };
        sweep.settle(&results, &spare);
    }
    if want("dsc-version") {
        results.push(dsc_version(p, &guests)?);
        sweep.settle(&results, &[]);
    }
    if want("bluefield") {
        let disk = fresh_disk(&p.w("disk-bluefield.img"))?;
        let serial = guests
            .guest("bluefield", "pxe.cfg", "bluefield", "", disk.clone())
            .run(p)?;
        results.push(check_bluefield(&serial, &disk));
        sweep.settle(&results, &[]);
    }
    if want("datastore") {
        // Above 142 GiB of disk the layout gets its datastore, partition 8.
        let disk = sized_disk(&p.w("disk-datastore.img"), 200_000_000_000)?;
        let serial = guests
            .guest("datastore", "firstboot.cfg", "none", "", disk.clone())
            .run(p)?;
        results.push(check_datastore(&serial, &disk));
        results.push(check_first_boot(&serial, &disk, &images.installer.bin));
        sweep.settle(&results, &[]);
    }
    if want("broken") {
        let disk = fresh_disk(&p.w("disk-broken.img"))?;
        let serial = guests
            .guest("broken", "broken.cfg", "none", "", disk.clone())
            .run(p)?;
        results.push(check_broken(&serial, &disk));
        sweep.settle(&results, &[]);
    }
    if let (true, Some(lab)) = (want("vlan"), lab.as_mut()) {
        results.push(network::vlan(p, images, lab, deadline)?);
        sweep.settle(&results, &[]);
    }
    // After the pxe guest's UEFI boot (which leaves the disk as it was): the next build into
    // the other bank.
    if want("upgrade") && installed {
        let upgrade = upgrade::run(p, images, &guests, &p.w("disk-pxe.img"))?;
        sweep.release(&p.w("disk-pxe.img"), pxe_passed && upgrade.passed);
        results.push(upgrade);
        sweep.settle(&results, &[]);
    } else if want("upgrade") {
        results.push(Outcome {
            name: "7 upgrade (real kernel)".into(),
            passed: false,
            elapsed: Duration::ZERO,
            detail: "not run: it upgrades the disk the pxe scenario installs, and that install failed or did not run".into(),
        });
        sweep.settle(&results, &[]);
    }
    if let (true, Some(lab)) = (want("removable"), &lab) {
        results.extend(network::removable(p, images, lab, deadline)?);
        sweep.settle(&results, &[]);
    }
    if let (true, Some(lab)) = (want("secureboot"), &lab) {
        results.extend(secureboot::network(p, images, lab, &images.sb, deadline)?);
        results.extend(secureboot::uki(p, &images.sb, deadline)?);
        sweep.settle(&results, &[]);
    }
    if want("embed") {
        results.extend(embed::run(p, images, deadline)?);
        sweep.settle(&results, &[]);
    }
    if want("failures") {
        results.extend(network::failures(p, images, &guests.url, deadline)?);
        sweep.settle(&results, &[]);
    }
    drop(lab);
    drop(server);
    Ok(results)
}

/// What the disk under `target/e2e` has free at the start, so that a run cut short by a full disk
/// says how little it had (a run needs about 1.5 GB there with its disks swept).
fn print_free_space(work: &Path) {
    let free = Command::new("df")
        .args(["--output=avail", "-B1M"])
        .arg(work)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().nth(1).map(|l| l.trim().to_string()));
    match free {
        Some(mb) => println!("== {mb} MB free under {}", work.display()),
        None => println!("== free space under {} unknown (df failed)", work.display()),
    }
}

/// The DSC flashed with the repository's bundle as shipped: netdevsim does not store its
/// version, and the install must say so.
fn dsc_version(p: &Paths, guests: &ImageGuests) -> Result<Outcome> {
    let disk = fresh_disk(&p.w("disk-dsc-version.img"))?;
    let guest = guests.guest(
        "dsc-version",
        "pxe.cfg",
        "pensando",
        "e2e.firmware=shipped",
        disk.clone(),
    );
    let serial = guest.run(p)?;
    Ok(check_dsc_version(&serial, &disk, &shipped_dsc_version(p)?))
}

/// The summary: phase timings, one line per scenario, and an error when any failed.
fn report(
    p: &Paths,
    t0: Instant,
    timings: &[(String, Duration)],
    results: &[Outcome],
) -> Result<()> {
    println!(
        "\n== e2e results ({:.0} s in all)",
        t0.elapsed().as_secs_f64()
    );
    for (name, d) in timings {
        println!("   {:<24} {:>7.1} s", name, d.as_secs_f64());
    }
    let mut failed = 0;
    for r in results {
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
