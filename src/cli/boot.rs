//! `ksinstall boot`: the entry point of the installer image (docs/BOOT.md). It reads the boot
//! options from the kernel command line, fetches the kickstart from where `ks=` says (each
//! location in turn), runs the install, and then does what the kickstart's `reboot` says, only
//! if `--allow-reboot` lets it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ksinstall::exit::Outcome;
use ksinstall::media::Media;
use ksinstall::report::Step;
use ksinstall::report::StepId;
use ksinstall::source::cmdline::KsLocation;
use ksinstall::source::kickstart::{self as ks_source, Reach};
use ksinstall::source::{cdrom, usb};

use ksinstall::install::{self as driver, KickstartInput};

use super::install::{self, Common, Sinks};

/// Install as the kernel command line says (ks=, ip=, ...): the installer image's entry point.
#[derive(Debug, clap::Args)]
#[command(after_help = super::EXIT_CODES)]
pub struct Args {
    /// The installation media: a directory, an ISO image, or an http(s):// URL. Default: the
    /// boot option inst.repo=, else the first CD/DVD drive below the sysroot that holds
    /// installer media.
    #[arg(long, value_name = "DIR|ISO|URL")]
    media: Option<String>,
    /// Scans of the USB disks for ks=usb before giving up (ESXi: 5).
    #[arg(long, value_name = "N", default_value_t = 5)]
    usb_scans: u32,
    /// Seconds between two scans for ks=usb (ESXi: 10).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    usb_scan_pause: u64,
    /// Really reboot (and eject the CD unless `reboot --noeject`) when the kickstart says
    /// `reboot` and the install succeeded. Without it, ksinstall only says what it would do.
    #[arg(long)]
    allow_reboot: bool,
    #[command(flatten)]
    common: Common,
}

/// What runs when the command line has no `ks=`: as ESXi does, the interactive installer, on
/// this console, from the media given or found on the CD drive.
/// Media over HTTP are fetched with the client the options made (--ca-file, timeouts, ...).
pub fn start_interactive_console(
    a: &Args,
    inst_repo: Option<String>,
    http: &ksinstall::http::Http,
) -> anyhow::Result<Outcome> {
    let c = &a.common;
    let media = match a.media.clone().or(inst_repo) {
        Some(m) => m,
        None => match media_on_cdrom(&c.sysroot) {
            Ok((location, _)) => location,
            Err(e) => {
                eprintln!("ksinstall: error: {e}");
                return Ok(Outcome::Media);
            }
        },
    };
    super::interactive::run_console(&c.sysroot, &media, None, c.cmdline.as_deref(), &c.dpu, http)
}

fn describe(loc: &KsLocation) -> String {
    match loc {
        KsLocation::File(p) => format!("ks=file://{p}"),
        KsLocation::Http(u) | KsLocation::Unsupported(u) => {
            format!("ks={}", ksinstall::http::redact(u))
        }
        KsLocation::Cdrom(p) => format!("ks=cdrom:{p}"),
        KsLocation::Usb(p) => format!("ks=usb:{p}"),
    }
}

/// The installer media on a CD/DVD drive, when --media is not given.
fn media_on_cdrom(sysroot: &std::path::Path) -> Result<(String, PathBuf), String> {
    let mut why = Vec::new();
    for drive in cdrom::drives(sysroot) {
        let location = drive.display().to_string();
        match Media::open(&location) {
            Ok(_) => return Ok((location, drive)),
            Err(e) => why.push(format!("{e:#}")),
        }
    }
    if why.is_empty() {
        why.push(format!("no CD/DVD drive below {}", sysroot.display()));
    }
    Err(format!(
        "no installation media: give --media, or boot from the installer CD ({})",
        why.join("; ")
    ))
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let c = &a.common;
    let mut sinks = Sinks::new(c);
    // boot is the installer environment: %pre runs here, as on ESXi.
    let options = c.options(true);
    let checked = install::boot_options(c).and_then(|boot| {
        ksinstall::source::cmdline::check_netdevice(&c.sysroot, &boot)
            .map(|()| boot)
            .map_err(|e| e.to_string())
    });
    let boot = match checked {
        Ok(b) => b,
        Err(e) => {
            // The provisioning system hears of a bad command line too (without the identity
            // headers, which the command line would have turned on).
            let http = c.net.http(&c.sysroot, &Default::default())?;
            sinks.connect(&c.net, &http)?;
            let o = driver::refuse_early(
                &options,
                &sinks.tee(),
                StepId::Source,
                Outcome::Precondition,
                &e,
                started,
            );
            sinks.finish(o, started);
            return Ok(o);
        }
    };
    if boot.ks.is_empty() {
        // The console chooses its disk on the screen and always installs: options that only a
        // scripted install can honour are refused rather than silently ignored.
        if c.dry_run || c.disk.is_some() {
            eprintln!(
                "ksinstall: error: no ks= on the kernel command line: the console install starts, and it takes neither --dry-run nor --disk (give a ks= for a scripted install)"
            );
            return Ok(Outcome::UsageOrIo);
        }
        let http = c.net.http(&c.sysroot, &boot)?;
        sinks.connect(&c.net, &http)?;
        let o = start_interactive_console(&a, boot.media.clone(), &http)?;
        sinks.finish(o, started);
        return Ok(o);
    }
    let http = c.net.http(&c.sysroot, &boot)?;
    sinks.connect(&c.net, &http)?;
    let sink = sinks.tee();

    let wanted: Vec<String> = boot.ks.iter().map(describe).collect();
    let step = Step::start(
        &sink,
        StepId::Source,
        format!("reading the kickstart ({})", wanted.join(", ")),
        None,
    );
    let usb_disks = || driver::usb_disks(&c.sysroot);
    let reach = Reach {
        sysroot: &c.sysroot,
        http: &http,
        usb_disks: &usb_disks,
        usb: usb::UsbScan {
            attempts: a.usb_scans,
            pause: Duration::from_secs(a.usb_scan_pause),
        },
    };
    let fetched = match ks_source::fetch(&boot.ks, &reach) {
        Ok(k) => k,
        Err(e) => {
            let o = driver::refuse_early(
                &options,
                &sink,
                StepId::Source,
                Outcome::UsageOrIo,
                &e.to_string(),
                started,
            );
            sinks.finish(o, started);
            return Ok(o);
        }
    };
    log::info!("kickstart: {}", fetched.name);
    let mut cd_drives: Vec<PathBuf> = fetched.cdrom.iter().cloned().collect();
    // --media, else inst.repo= on the command line (a PXE boot), else the CD drive.
    let media = match a.media.clone().or_else(|| boot.media.clone()) {
        Some(m) => m,
        None => match media_on_cdrom(&c.sysroot) {
            Ok((location, drive)) => {
                if !cd_drives.contains(&drive) {
                    cd_drives.push(drive);
                }
                location
            }
            Err(e) => {
                let o = driver::refuse_early(
                    &options,
                    &sink,
                    StepId::Source,
                    Outcome::Media,
                    &e,
                    started,
                );
                sinks.finish(o, started);
                return Ok(o);
            }
        },
    };
    step.finish();

    let input = KickstartInput {
        name: fetched.name,
        key: fetched.key,
        bytes: fetched.bytes,
    };
    let ended = driver::execute(&options, &media, input, &boot, &http, &sink, started);
    install::show_end(c, &ended, started)?;
    sinks.finish(ended.outcome, started);
    // A dry run (--dry-run, or the kickstart's dryrun) never reboots.
    if ended.outcome == Outcome::Success && !ended.dry_run {
        finish_boot(ended.reboot, a.allow_reboot, &cd_drives)?;
    }
    Ok(ended.outcome)
}

/// After a successful install: `reboot` in the kickstart reboots the machine (ejecting the CDs
/// we read unless `--noeject`), but only under --allow-reboot; otherwise say what would happen.
fn finish_boot(reboot: Option<bool>, allowed: bool, cd_drives: &[PathBuf]) -> anyhow::Result<()> {
    let Some(no_eject) = reboot else {
        eprintln!("ksinstall: done; the kickstart has no `reboot`, so the machine stays up");
        return Ok(());
    };
    let eject: Vec<&PathBuf> = if no_eject {
        Vec::new()
    } else {
        cd_drives.iter().collect()
    };
    if !allowed {
        eprintln!(
            "ksinstall: the kickstart says reboot{}; not rebooting without --allow-reboot{}",
            if no_eject { " --noeject" } else { "" },
            if eject.is_empty() {
                String::new()
            } else {
                format!(
                    " (would eject {})",
                    eject
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        return Ok(());
    }
    for drive in eject {
        if let Err(e) = eject_cd(drive) {
            log::warn!("{}: not ejected: {e}", drive.display());
        }
    }
    reboot_now()
}

fn eject_cd(drive: &std::path::Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    /// `CDROMEJECT` from linux/cdrom.h.
    const CDROMEJECT: libc::c_ulong = 0x5309;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(drive)?;
    // SAFETY: a plain ioctl without argument on a file descriptor we own.
    if unsafe { libc::ioctl(f.as_raw_fd(), CDROMEJECT as _) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A clean reboot through systemd when it runs the machine, else sync and reboot(2) (an
/// installer image whose init is ksinstall's own wrapper).
fn reboot_now() -> anyhow::Result<()> {
    eprintln!("ksinstall: rebooting");
    if std::path::Path::new("/run/systemd/system").is_dir() {
        let status = std::process::Command::new("systemctl")
            .arg("reboot")
            .status()
            .map_err(|e| anyhow::anyhow!("running systemctl reboot: {e}"))?;
        anyhow::ensure!(status.success(), "systemctl reboot: {status}");
        return Ok(());
    }
    // SAFETY: sync(2) and reboot(2) take no pointers.
    unsafe { libc::sync() };
    if unsafe { libc::reboot(libc::RB_AUTOBOOT) } != 0 {
        anyhow::bail!("reboot(2): {}", std::io::Error::last_os_error());
    }
    Ok(())
}
