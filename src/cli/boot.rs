//! `ksinstall boot`: the entry point of the installer image (docs/BOOT.md). It reads the boot
//! options from the kernel command line, fetches the kickstart from where `ks=` says (each
//! location in turn), runs the install, and then does what the kickstart's `reboot` says, only
//! if `--allow-reboot` lets it.

use std::time::Duration;

use ksinstall::exit::Outcome;
use ksinstall::install::boot::AfterInstall;
use ksinstall::install::{self as driver, Failure, Session};
use ksinstall::report::Step;
use ksinstall::report::StepId;
use ksinstall::source::cmdline::BootOptions;
use ksinstall::source::{cdrom, usb};

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

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let c = &a.common;
    let sinks = Sinks::new(c);
    // boot is the installer environment: %pre runs here, as on ESXi.
    let session = Session::new(c.options(true), &sinks);
    let (boot, http) = match install::start(c, &sinks, &session, true) {
        Ok(started) => started,
        Err(o) => return Ok(o),
    };
    if boot.ks.is_empty() {
        return console(&a, &sinks, &session, boot, &http);
    }
    // From here the run is scripted: a signal stops it at a safe point (src/interrupt.rs).
    if let Err(e) = ksinstall::interrupt::install() {
        let why = format!("taking SIGINT, SIGTERM and SIGHUP: {e}");
        let f = Failure::new(StepId::Source, Outcome::UsageOrIo, why);
        return Ok(install::refused(&sinks, &session, &f));
    }
    let wanted: Vec<String> = boot.ks.iter().map(ToString::to_string).collect();
    let step = Step::start(
        &sinks,
        StepId::Source,
        format!("reading the kickstart ({})", wanted.join(", ")),
        None,
    );
    let usb = usb::UsbScan {
        attempts: a.usb_scans,
        pause: Duration::from_secs(a.usb_scan_pause),
    };
    let found = match driver::boot::sources(&c.sysroot, &boot, a.media.as_deref(), &http, usb) {
        Ok(f) => f,
        Err(f) => return Ok(install::refused(&sinks, &session, &f)),
    };
    step.finish();
    let (input, media, cd_drives) = (found.kickstart, found.media, found.cd_drives);
    let ended = session.scripted(&media, input, &boot, &http);
    install::show_end(c, &ended, session.started());
    sinks.finish(ended.outcome(), session.started());
    // A dry run (--dry-run, or the kickstart's dryrun) never reboots.
    if ended.outcome() == Outcome::Success && !ended.dry_run {
        let after = AfterInstall::decide(ended.reboot, a.allow_reboot, &cd_drives);
        eprintln!("ksinstall: {after}");
        if let AfterInstall::Reboot { eject } = after {
            driver::boot::reboot(&eject)?;
        }
    }
    Ok(ended.outcome())
}

/// As ESXi does without ks=: the interactive installer on this console, from the media given,
/// inst.repo=, or the CD drive. The console chooses its disk on the screen and always installs:
/// options that only a scripted install can honour are refused rather than silently ignored.
fn console(
    a: &Args,
    sinks: &Sinks,
    session: &Session<'_>,
    boot: BootOptions,
    http: &ksinstall::http::Http,
) -> anyhow::Result<Outcome> {
    let c = &a.common;
    let refuse = |outcome: Outcome, message: String| {
        let f = Failure::new(StepId::Source, outcome, message);
        Ok(install::refused(sinks, session, &f))
    };
    if c.dry_run || c.disk.is_some() {
        let why = "no ks= on the kernel command line: the console install starts, and it takes neither --dry-run nor --disk (give a ks= for a scripted install)";
        return refuse(Outcome::UsageOrIo, why.into());
    }
    let media = match a.media.clone().or(boot.media.clone()) {
        Some(m) => m,
        None => match cdrom::installer_media(&c.sysroot) {
            Ok((location, _)) => location,
            Err(e) => return refuse(Outcome::Media, e.to_string()),
        },
    };
    let o = super::interactive::run_console(session, sinks, boot, &media, None, http);
    Ok(sinks.finish(o, session.started()))
}
