//! `ksinstall install`: kickstart + hardware + media -> a disk ESXi boots.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::Context;
use ksinstall::exit::Outcome;
use ksinstall::http::{Http, HttpOptions};
use ksinstall::install::{Ended, Failure, KickstartInput, Options, Session};
use ksinstall::report::webhook::{ReportFormat, Webhook};
use ksinstall::report::StepId;
use ksinstall::report::{Bars, Event, EventSink, JsonLines, LogWarnings, Quiet};
use ksinstall::source::cmdline::BootOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Progress {
    /// Bars on a terminal (stderr), nothing otherwise.
    Auto,
    /// Bars even when stderr is not a terminal (plain lines there: each step's start, each
    /// quarter of its bytes, its end, warnings and errors).
    Tty,
    /// One JSON event per line on stdout (docs/INSTALL.md: step_started, progress, warning,
    /// status, step_finished, failed, and finished last); a dry run adds the plan as one line.
    Json,
    /// Nothing but the final line and errors.
    None,
}

/// Install ESXi as a kickstart says: plan everything, check everything, then write.
#[derive(Debug, clap::Args)]
#[command(after_help = super::EXIT_CODES)]
pub struct Args {
    /// The kickstart: a file, or an http(s):// URL.
    #[arg(long, value_name = "FILE|URL")]
    ks: String,
    /// The installation media: a directory (extracted ISO), an ISO image, or an http(s):// URL.
    #[arg(long, value_name = "DIR|ISO|URL")]
    media: String,
    /// Run the kickstart's %pre scripts, as root, on this machine (`boot` always runs them: it
    /// is the installer environment). Without it, a kickstart with %pre is only dry-run.
    #[arg(long)]
    run_pre: bool,
    #[command(flatten)]
    common: Common,
}

/// What `install` and `boot` share: the target, the hardware, how to talk HTTP, how to report.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Install to this block device or image file instead of the disk the kickstart chooses.
    #[arg(long, value_name = "DEV|IMG")]
    pub disk: Option<PathBuf>,
    /// Create the --disk image file (sparse) with this size if it does not exist: 40G (or
    /// 40GiB), 512M, 1T: binary units.
    #[arg(long, value_name = "SIZE", requires = "disk", value_parser = parse_disk_size)]
    pub disk_size: Option<u64>,
    /// Logical sector size of an image file.
    #[arg(long, value_name = "BYTES", default_value_t = 512)]
    pub sector_size: u32,
    /// Where the hardware is read: sys/, dev/, proc/cmdline below this directory.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub sysroot: PathBuf,
    /// Boot options (kernel command line); default: proc/cmdline below the sysroot.
    #[arg(long, value_name = "STRING")]
    pub cmdline: Option<String>,
    /// Print the plan and write nothing to any disk, as the kickstart's `dryrun` does. `install`
    /// runs no %pre then, unless --run-pre.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not hash the whole local media before writing (it is still verified as it is written;
    /// a bad module then stops the install after the disk was partitioned, leaving it unbootable).
    #[arg(long)]
    pub skip_media_check: bool,
    /// Refuse what the plan only warns about the installed host (e.g. %firstboot scripts under
    /// UEFI Secure Boot, which ESXi does not run); the kickstart's `paranoid` does the same.
    #[arg(long)]
    pub strict: bool,
    /// Check the signatures of the media's VIB descriptors (imgdb.tgz) against this certificate
    /// (PEM or DER): the signer must be it or a certificate it signed. Without it, signatures are
    /// reported as present but not checked (docs/MEDIA.md).
    #[arg(long, value_name = "FILE")]
    pub trust_cert: Option<PathBuf>,
    /// How to show progress.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
    /// Write the final JSON report here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write what was read of this machine (disks, DPUs, media, interpreters) as a host document
    /// (JSON): `ksinstall plan --host FILE` makes the same plan from it on any machine.
    #[arg(long, value_name = "FILE")]
    pub save_host: Option<PathBuf>,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub dpu: super::DpuArgs,
}

/// HTTP(S) options for the kickstart, `%include` URLs, the media and the reports (docs/BOOT.md).
#[derive(Debug, clap::Args)]
pub struct NetArgs {
    /// Trust the CA certificates in this PEM file (instead of the built-in web PKI roots).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Do not check servers' TLS certificates at all (as ESXi's own installer does not).
    #[arg(long)]
    pub insecure: bool,
    /// Seconds to wait for a connection, for an answer, and for each read of a transfer.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub http_timeout: u64,
    /// Tries per request, and per resumption of a dropped transfer.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub http_attempts: u32,
    /// Milliseconds before the second try; doubled for each later try.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub http_backoff_ms: u64,
    /// Send the MAC address of each network interface (X-RHN-Provisioning-MAC-N), like
    /// Anaconda's inst.ks.sendmac (also turned on by that boot option).
    #[arg(long)]
    pub send_mac: bool,
    /// Send the system serial number (X-System-Serial-Number), like Anaconda's inst.ks.sendsn.
    #[arg(long)]
    pub send_serial: bool,
    /// POST the install's events to this URL as they happen (a failed post never fails the
    /// install).
    #[arg(long, value_name = "URL")]
    pub report_url: Option<String>,
    /// The shape of the posted events: json (as --progress json), curtin (MAAS), ironic
    /// (agent heartbeats).
    #[arg(long, value_enum, default_value_t = ReportFormat::Json, requires = "report_url")]
    pub report_format: ReportFormat,
    /// Ironic's agent_token, sent in each heartbeat.
    #[arg(long, value_name = "TOKEN", requires = "report_url")]
    pub report_token: Option<String>,
    /// As --report-token, read from this file (the first line), so that it does not show in
    /// the process list.
    #[arg(
        long,
        value_name = "FILE",
        requires = "report_url",
        conflicts_with = "report_token"
    )]
    pub report_token_file: Option<PathBuf>,
}

impl NetArgs {
    pub fn http(&self, sysroot: &Path, boot: &BootOptions) -> anyhow::Result<Http> {
        let timeout = std::time::Duration::from_secs(self.http_timeout.max(1));
        Http::new(HttpOptions {
            ca_file: self.ca_file.clone(),
            insecure: self.insecure,
            connect_timeout: timeout,
            read_timeout: timeout,
            attempts: self.http_attempts.max(1),
            backoff: std::time::Duration::from_millis(self.http_backoff_ms),
            headers: ksinstall::http::identity_headers(
                sysroot,
                self.send_mac || boot.send_mac,
                self.send_serial || boot.send_serial,
            ),
        })
    }
}

/// Where events go: the terminal or stdout as --progress says, the lines every mode prints on
/// stderr, and the webhook if any.
pub struct Sinks {
    shown: Box<dyn EventSink>,
    /// The shown sink does not print warnings (not bars): they go through the log, once.
    log_warnings: Option<LogWarnings>,
    /// Set while the console's screen is up: it draws the run itself, and a line on stderr
    /// would garble it. The webhook still hears everything.
    screen_up: AtomicBool,
    webhook: OnceLock<Webhook>,
    /// --report, and its modification time before this run (a report left by an earlier run
    /// is not sent as this one's).
    report: Option<(PathBuf, Option<std::time::SystemTime>)>,
}

impl Sinks {
    pub fn new(c: &Common) -> Sinks {
        let bars = match c.progress {
            Progress::Tty => true,
            Progress::Auto => std::io::stderr().is_terminal() && !c.dry_run,
            Progress::Json | Progress::None => false,
        };
        let shown: Box<dyn EventSink> = match c.progress {
            Progress::Json => Box::new(JsonLines::new(std::io::stdout())),
            _ if bars => Box::new(Bars::default()),
            _ => Box::new(Quiet),
        };
        let report = c.report.clone().map(|p| {
            let before = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
            (p, before)
        });
        Sinks {
            shown,
            log_warnings: (!bars).then_some(LogWarnings),
            screen_up: AtomicBool::new(false),
            webhook: OnceLock::new(),
            report,
        }
    }

    /// `interactive`: no progress of its own (the console draws it), no webhook, no report.
    pub fn console_only() -> Sinks {
        Sinks {
            shown: Box::new(Quiet),
            log_warnings: Some(LogWarnings),
            screen_up: AtomicBool::new(false),
            webhook: OnceLock::new(),
            report: None,
        }
    }

    /// The console's screen is up (`true`) or given back (`false`).
    pub fn set_screen_up(&self, up: bool) {
        self.screen_up.store(up, Ordering::SeqCst);
    }

    /// Start posting to --report-url (once the HTTP options are known).
    pub fn connect(&self, net: &NetArgs, http: &Http) -> anyhow::Result<()> {
        if let Some(url) = &net.report_url {
            let token = match &net.report_token_file {
                Some(path) => {
                    let text = std::fs::read_to_string(path).with_context(|| {
                        format!("reading --report-token-file {}", path.display())
                    })?;
                    let token = text.lines().next().unwrap_or_default().trim().to_string();
                    anyhow::ensure!(
                        !token.is_empty(),
                        "--report-token-file {}: the first line is empty",
                        path.display()
                    );
                    Some(token)
                }
                None => net.report_token.clone(),
            };
            let webhook = Webhook::start(url, net.report_format, token, http.clone());
            // Connected once per run: a second call keeps the first webhook.
            let _ = self.webhook.set(webhook);
        }
        Ok(())
    }

    /// The last event, then give the webhook a little time to deliver what is queued.
    pub fn finish(&self, outcome: Outcome, started: Instant) -> Outcome {
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.emit(Event::Finished {
            exit_code: outcome as u8,
            elapsed_ms,
        });
        if let Some(w) = self.webhook.get() {
            if let Some(report) = self.fresh_report() {
                w.report(report);
            }
            w.close(std::time::Duration::from_secs(30));
        }
        outcome
    }

    /// The report this run wrote, read back.
    fn fresh_report(&self) -> Option<serde_json::Value> {
        let (path, before) = self.report.as_ref()?;
        let now = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
        if Some(now) == *before {
            log::warn!("{}: not written by this run; not posted", path.display());
            return None;
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| log::warn!("{}: {e}; the report is not posted", path.display()))
            .ok()?;
        serde_json::from_str(&text)
            .map_err(|e| log::warn!("{}: {e}; the report is not posted", path.display()))
            .ok()
    }
}

impl EventSink for Sinks {
    fn emit(&self, event: Event) {
        if !self.screen_up.load(Ordering::SeqCst) {
            self.shown.emit(event.clone());
            if let Some(l) = &self.log_warnings {
                l.emit(event.clone());
            }
            stderr_line(&event);
        }
        if let Some(w) = self.webhook.get() {
            w.emit(event);
        }
    }
}

/// What every mode says on stderr, whatever --progress shows: the error a run stopped on, the
/// kickstart's findings, and the output of its scripts.
fn stderr_line(event: &Event) {
    match event {
        Event::Failed { message, .. } => eprintln!("ksinstall: error: {message}"),
        Event::Diagnostic(d) => eprintln!("{d}"),
        Event::ScriptOutput { section, at, line } => eprintln!("{section} {at}: {line}"),
        Event::ScriptEnded {
            section,
            at,
            status,
            ..
        } => eprintln!("{section} {at}: {status}"),
        _ => {}
    }
}

fn parse_disk_size(s: &str) -> Result<u64, String> {
    ksinstall::size::parse_size(s).map_err(|e| format!("{e:#}"))
}

impl Common {
    /// The driver's options; `run_pre`: whether %pre may run here.
    pub fn options(&self, run_pre: bool) -> Options {
        Options {
            sysroot: self.sysroot.clone(),
            disk: self.disk.clone(),
            disk_size: self.disk_size,
            sector_size: self.sector_size,
            dry_run: self.dry_run,
            run_pre,
            skip_media_check: self.skip_media_check,
            trust_cert: self.trust_cert.clone(),
            report: self.report.clone(),
            access: self.dpu.access(&self.sysroot),
            firmware_root: self.dpu.firmware_root(),
            strict: self.strict,
            save_host: self.save_host.clone(),
        }
    }
}

/// The start every scripted run and `boot` share: the boot options (with `check_nic`, the
/// installer environment's check that `netdevice=` names a NIC here), the HTTP client and the
/// webhook. A refusal on the way is said, reported and ends the event stream: `Err` is the
/// run's exit.
pub fn start(
    c: &Common,
    sinks: &Sinks,
    session: &Session<'_>,
    check_nic: bool,
) -> Result<(BootOptions, Http), Outcome> {
    let checked = session
        .boot_options(c.cmdline.as_deref())
        .and_then(|boot| match check_nic {
            true => session.check_netdevice(&boot).map(|()| boot),
            false => Ok(boot),
        });
    let boot = match checked {
        Ok(b) => b,
        Err(f) => {
            // The provisioning system hears of a bad command line too (without the identity
            // headers, which the command line would have turned on).
            let _ = connect(c, sinks, &BootOptions::default());
            return Err(refused(sinks, session, &f));
        }
    };
    connect(c, sinks, &boot)
        .map(|http| (boot, http))
        .map_err(|f| refused(sinks, session, &f))
}

/// A refusal before the run had a kickstart: said, reported, and the event stream ended.
pub fn refused(sinks: &Sinks, session: &Session<'_>, f: &Failure) -> Outcome {
    let o = session.refuse(f);
    sinks.finish(o, session.started())
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let sinks = Sinks::new(&a.common);
    let session = Session::new(a.common.options(a.run_pre), &sinks);
    if let Err(e) = ksinstall::interrupt::install() {
        let why = format!("taking SIGINT, SIGTERM and SIGHUP: {e}");
        let f = Failure::new(StepId::Source, Outcome::UsageOrIo, why);
        return Ok(refused(&sinks, &session, &f));
    }
    let (boot, http) = match start(&a.common, &sinks, &session, false) {
        Ok(started) => started,
        Err(o) => return Ok(o),
    };
    let ks = match ksinstall::source::kickstart::read_given(&a.ks, &http) {
        Ok(k) => KickstartInput {
            name: k.name,
            key: k.key,
            bytes: k.bytes,
        },
        Err(e) => {
            let f = Failure::new(StepId::Source, Outcome::UsageOrIo, format!("{e:#}"));
            return Ok(refused(&sinks, &session, &f));
        }
    };
    let ended = session.scripted(&a.media, ks, &boot, &http);
    show_end(&a.common, &ended, session.started());
    Ok(sinks.finish(ended.outcome(), session.started()))
}

/// The HTTP client the options make, and the webhook started with it: a bad `--ca-file` or an
/// unreadable `--report-token-file` is a refusal like any other (reported, `finished` sent).
fn connect(c: &Common, sinks: &Sinks, boot: &BootOptions) -> Result<Http, Failure> {
    let refusal =
        |e: anyhow::Error| Failure::new(StepId::Source, Outcome::UsageOrIo, format!("{e:#}"));
    let http = c.net.http(&c.sysroot, boot).map_err(refusal)?;
    sinks.connect(&c.net, &http).map_err(refusal)?;
    Ok(http)
}

/// After a run: the plan of a dry run (text, or one more JSON line), or the one-line summary.
/// A closed stdout (`| head`) must not turn a finished run into a panic: writes are best effort.
pub fn show_end(c: &Common, ended: &Ended, started: Instant) {
    use std::io::Write;
    let Some(plan) = &ended.plan else {
        return;
    };
    if ended.dry_run {
        if ended.outcome() != Outcome::Success {
            return;
        }
        let mut out = std::io::stdout().lock();
        if c.progress == Progress::Json {
            // One more JSON line in the event stream, so the output stays JSON lines.
            let line = serde_json::json!({"event": "plan", "plan": plan});
            let _ = writeln!(out, "{line}");
        } else {
            let _ = write!(out, "{}", plan.text());
            let _ = writeln!(out, "Dry run: nothing was written.");
        }
    } else if ended.outcome() == Outcome::Success && c.progress != Progress::Json {
        eprintln!(
            "ksinstall: {} ESXi {} on {} ({}) in {:.1}s",
            match plan.kind {
                ksinstall::plan::RunKind::Install => "installed",
                ksinstall::plan::RunKind::Upgrade => "upgraded to",
            },
            plan.media.build,
            plan.target.name,
            plan.target.path.display(),
            started.elapsed().as_secs_f64()
        );
    }
}
