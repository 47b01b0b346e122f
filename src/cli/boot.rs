//! `ksinstall boot`: the entry point of the installer image (docs/BOOT.md). It reads the boot
//! options from the kernel command line, fetches the kickstart from where `ks=` says (each
//! location in turn), runs the install, and then does what the kickstart's `reboot` says, only
//! if `--allow-reboot` lets it.

use std::time::{Duration, Instant};

use ksinstall::exit::Outcome;
use ksinstall::report::Step;
use ksinstall::report::StepId;
use ksinstall::source::{cdrom, usb};

use ksinstall::install as driver;

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
    let started = Instant::now();
    let c = &a.common;
    let mut sinks = Sinks::new(c);
    // boot is the installer environment: %pre runs here, as on ESXi.
    let options = c.options(true);
    // Every refusal below is said, reported (--report, --report-url) and ends the event stream.
    let refuse = |sinks: &Sinks, outcome: Outcome, message: &str| {
        let o = driver::refuse_early(
            &options,
            &sinks.tee(),
            StepId::Source,
            outcome,
            message,
            started,
        );
        sinks.finish(o, started);
        o
    };
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
            let _ = install::connect(c, &mut sinks, &Default::default());
            return Ok(refuse(&sinks, Outcome::Precondition, &e));
        }
    };
    let http = match install::connect(c, &mut sinks, &boot) {
        Ok(h) => h,
        Err(e) => return Ok(refuse(&sinks, Outcome::UsageOrIo, &e)),
    };
    if boot.ks.is_empty() {
        // As ESXi does without ks=: the interactive installer on this console, from the media
        // given, inst.repo=, or the CD drive. The console chooses its disk on the screen and always installs: options that only a
        // scripted install can honour are refused rather than silently ignored.
        if c.dry_run || c.disk.is_some() {
            let why = "no ks= on the kernel command line: the console install starts, and it takes neither --dry-run nor --disk (give a ks= for a scripted install)";
            return Ok(refuse(&sinks, Outcome::UsageOrIo, why));
        }
        let media = match a.media.clone().or(boot.media.clone()) {
            Some(m) => m,
            None => match cdrom::installer_media(&c.sysroot) {
                Ok((location, _)) => location,
                Err(e) => return Ok(refuse(&sinks, Outcome::Media, &e)),
            },
        };
        let o = super::interactive::run_console(
            &c.sysroot,
            &media,
            None,
            c.cmdline.as_deref(),
            &c.dpu,
            &http,
        )?;
        sinks.finish(o, started);
        return Ok(o);
    }
    // From here the run is scripted: a signal stops it at a safe point (src/interrupt.rs).
    anyhow::Context::context(
        ksinstall::interrupt::install(),
        "taking SIGINT, SIGTERM and SIGHUP",
    )?;
    let sink = sinks.tee();

    let wanted: Vec<String> = boot.ks.iter().map(ToString::to_string).collect();
    let step = Step::start(
        &sink,
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
        Err(f) => {
            let o = driver::refuse_early(&options, &sink, f.step, f.outcome, &f.message, started);
            sinks.finish(o, started);
            return Ok(o);
        }
    };
    step.finish();
    let (input, media, cd_drives) = (found.kickstart, found.media, found.cd_drives);
    let ended = driver::execute(&options, &media, input, &boot, &http, &sink, started);
    install::show_end(c, &ended, started);
    sinks.finish(ended.outcome, started);
    // A dry run (--dry-run, or the kickstart's dryrun) never reboots.
    if ended.outcome == Outcome::Success && !ended.dry_run {
        driver::boot::finish(ended.reboot, a.allow_reboot, &cd_drives)?;
    }
    Ok(ended.outcome)
}
