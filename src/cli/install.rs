//! `ksinstall install`: kickstart + hardware + media -> a disk ESXi boots.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use ksinstall::apply::{self, ApplyError};
use ksinstall::exit::Outcome;
use ksinstall::http::{Http, HttpOptions};
use ksinstall::inventory::Inventory;
use ksinstall::kickstart::{self, ScriptKind};
use ksinstall::media::Media;
use ksinstall::plan::{self, Plan};
use ksinstall::report::webhook::{ReportFormat, Tee, Webhook};
use ksinstall::report::{Bars, Event, EventSink, JsonLines, Quiet};
use ksinstall::source::cmdline::BootOptions;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Progress {
    /// Bars on a terminal, nothing otherwise.
    Auto,
    Tty,
    Json,
    None,
}

/// Install ESXi as a kickstart says: plan everything, check everything, then write.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The kickstart: a file, or an http(s):// URL.
    #[arg(long, value_name = "FILE|URL")]
    ks: String,
    /// The installation media: a directory (extracted ISO), an ISO image, or an http(s):// URL.
    #[arg(long, value_name = "DIR|ISO|URL")]
    media: String,
    #[command(flatten)]
    common: Common,
}

/// What `install` and `boot` share: the target, the hardware, how to talk HTTP, how to report.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Install to this block device or image file instead of the disk the kickstart chooses.
    #[arg(long, value_name = "DEV|IMG")]
    pub disk: Option<PathBuf>,
    /// Create the --disk image file (sparse) with this size if it does not exist: 40G, 512M, ...
    #[arg(long, value_name = "SIZE", requires = "disk")]
    pub disk_size: Option<String>,
    /// Logical sector size of an image file.
    #[arg(long, value_name = "BYTES", default_value_t = 512)]
    pub sector_size: u32,
    /// Where the hardware is read: sys/, dev/, proc/cmdline below this directory.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub sysroot: PathBuf,
    /// Boot options (kernel command line); default: proc/cmdline below the sysroot.
    #[arg(long, value_name = "STRING")]
    pub cmdline: Option<String>,
    /// Print the plan and write nothing to any disk (%pre still runs: it is part of reading the
    /// kickstart).
    #[arg(long)]
    pub dry_run: bool,
    /// Do not hash the whole local media before writing (it is still verified as it is written;
    /// a bad module then stops the install after the disk was partitioned, leaving it unbootable).
    #[arg(long)]
    pub skip_media_check: bool,
    /// How to show progress.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
    /// Write the final JSON report here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
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

/// Where events go: the terminal or stdout as --progress says, and the webhook if any.
pub struct Sinks {
    shown: Box<dyn EventSink>,
    webhook: Option<Webhook>,
}

impl Sinks {
    pub fn new(c: &Common) -> Sinks {
        let shown: Box<dyn EventSink> = match c.progress {
            Progress::Json => Box::new(JsonLines::new(std::io::stdout())),
            Progress::Tty => Box::new(Bars::default()),
            Progress::Auto if std::io::stderr().is_terminal() && !c.dry_run => {
                Box::new(Bars::default())
            }
            _ => Box::new(Quiet),
        };
        Sinks {
            shown,
            webhook: None,
        }
    }
    /// Start posting to --report-url (once the HTTP options are known).
    pub fn connect(&mut self, net: &NetArgs, http: &Http) -> anyhow::Result<()> {
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
            self.webhook = Some(Webhook::start(url, net.report_format, token, http.clone()));
        }
        Ok(())
    }
    pub fn tee(&self) -> Tee<'_> {
        let mut all: Vec<&dyn EventSink> = vec![self.shown.as_ref()];
        if let Some(w) = &self.webhook {
            all.push(w);
        }
        Tee(all)
    }
    /// The last event, then give the webhook a little time to deliver what is queued.
    pub fn finish(&self, outcome: Outcome, started: Instant) {
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.tee().emit(Event::Finished {
            exit_code: outcome as u8,
            elapsed_ms,
        });
        if let Some(w) = &self.webhook {
            w.close(std::time::Duration::from_secs(30));
        }
    }
}

pub fn fail(sink: &dyn EventSink, step: &str, outcome: Outcome, message: &str) -> Outcome {
    sink.emit(Event::Failed {
        step: step.into(),
        message: message.into(),
        exit_code: outcome as u8,
    });
    eprintln!("ksinstall: error: {message}");
    outcome
}

/// Boot options from --cmdline, else proc/cmdline below the sysroot (empty if there is none).
pub fn boot_options(c: &Common) -> Result<BootOptions, String> {
    let cmdline = match &c.cmdline {
        Some(c) => c.clone(),
        None => {
            let p = c.sysroot.join("proc/cmdline");
            match std::fs::read_to_string(&p) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(format!("reading {}: {e}", p.display())),
            }
        }
    };
    // Its warnings become plan warnings (shown and reported there).
    BootOptions::parse(&cmdline).map_err(|e| e.to_string())
}

/// A kickstart's bytes and the names it goes by (see `source::kickstart::FetchedKickstart`).
pub struct KickstartInput {
    pub name: String,
    pub key: String,
    pub bytes: Vec<u8>,
}

/// How an install ended, and what the kickstart says to do next.
pub struct Ended {
    pub outcome: Outcome,
    /// `reboot` in the kickstart: `Some(no_eject)`.
    pub reboot: Option<bool>,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let mut sinks = Sinks::new(&a.common);
    let boot = match boot_options(&a.common) {
        Ok(b) => b,
        Err(e) => {
            let o = fail(&sinks.tee(), "plan", Outcome::Precondition, &e);
            sinks.finish(o, started);
            return Ok(o);
        }
    };
    let http = a.common.net.http(&a.common.sysroot, &boot)?;
    sinks.connect(&a.common.net, &http)?;
    let ks = if a.ks.starts_with("http://") || a.ks.starts_with("https://") {
        match http.get_small(&a.ks) {
            Ok(bytes) => KickstartInput {
                name: ksinstall::http::redact(&a.ks),
                key: a.ks.clone(),
                bytes,
            },
            Err(e) => {
                let o = fail(
                    &sinks.tee(),
                    "source",
                    Outcome::UsageOrIo,
                    &format!("{e:#}"),
                );
                sinks.finish(o, started);
                return Ok(o);
            }
        }
    } else {
        let path = Path::new(&a.ks);
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", a.ks))?;
        let key = std::fs::canonicalize(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string();
        KickstartInput {
            name: a.ks.clone(),
            key,
            bytes,
        }
    };
    let ended = execute(&a.common, &a.media, ks, &boot, &http, &sinks.tee(), started);
    let outcome = match ended {
        Ok(e) => e.outcome,
        Err(e) => fail(
            &sinks.tee(),
            "install",
            Outcome::UsageOrIo,
            &format!("{e:#}"),
        ),
    };
    sinks.finish(outcome, started);
    Ok(outcome)
}

/// Partition GUIDs and password salts come from the kernel's random pool. Early in a boot, on a
/// machine without a hardware source (no RDRAND, no virtio-rng), it may not be ready and
/// getrandom() blocks, for minutes: say so rather than hang in silence (seen under QEMU TCG).
fn wait_for_entropy(sink: &dyn EventSink) {
    let mut byte = [0u8; 1];
    // SAFETY: getrandom writes at most `byte.len()` bytes through the pointer.
    let rc = unsafe { libc::getrandom(byte.as_mut_ptr().cast(), byte.len(), libc::GRND_NONBLOCK) };
    if rc >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN) {
        return;
    }
    let message = "the kernel's random number generator is not ready yet (no hardware entropy source: RDRAND or virtio-rng); waiting for it";
    log::warn!("{message}");
    // The plan draws the GUIDs: the wait is the plan's.
    sink.emit(Event::Warning {
        step: "plan".into(),
        message: message.into(),
    });
    // SAFETY: as above; this call blocks until the pool is ready.
    let _ = unsafe { libc::getrandom(byte.as_mut_ptr().cast(), byte.len(), 0) };
}

/// The install proper, from a kickstart's bytes: read it (running %pre), read the hardware and
/// the media, plan, check, write, run %post, report. Shared by `install` and `boot`.
pub fn execute(
    c: &Common,
    media_location: &str,
    ks_input: KickstartInput,
    boot: &BootOptions,
    http: &Http,
    sink: &dyn EventSink,
    started: Instant,
) -> anyhow::Result<Ended> {
    let ended = |outcome| Ended {
        outcome,
        reboot: None,
    };
    let KickstartInput { name, key, bytes } = ks_input;
    wait_for_entropy(sink);
    // Includes are files of the installer's own file system (where %pre runs and writes), not
    // of the hardware sysroot; URLs are fetched now.
    let mut loader = ksinstall::source::fetch::InstallLoader {
        files: kickstart::FsLoader::new("/"),
        http: http.clone(),
    };
    let workdir = tempfile::tempdir().context("making a scratch directory for scripts")?;
    let mut runner = |s: &kickstart::Script| apply::scripts::run(s, workdir.path());
    let parsed = kickstart::parse(
        &name,
        &key,
        &bytes,
        &mut loader,
        // %pre runs on a dry run too: it is part of reading the kickstart (ESXi runs it for
        // `dryrun` as well), and it writes nothing to any disk we install to.
        Some(&mut runner),
    );
    for d in &parsed.diagnostics {
        eprintln!("{d}");
    }
    if parsed.has_errors() {
        let pre_failed = parsed
            .diagnostics
            .iter()
            .any(|d| d.message.starts_with("\"%pre\" script returned"));
        let outcome = if pre_failed {
            Outcome::Script
        } else {
            Outcome::InvalidKickstart
        };
        return Ok(ended(fail(
            sink,
            "kickstart",
            outcome,
            &format!("{name}: the kickstart has errors"),
        )));
    }
    let ks = &parsed.kickstart;

    // Hardware and media.
    let inventory = match Inventory::read(&c.sysroot) {
        Ok(i) => i,
        Err(e) => {
            return Ok(ended(fail(
                sink,
                "inventory",
                Outcome::Precondition,
                &format!("{e:#}"),
            )))
        }
    };
    let media = match Media::open_with(media_location, http) {
        Ok(m) => m,
        Err(e) => {
            return Ok(ended(fail(
                sink,
                "media",
                Outcome::Media,
                &format!("{e:#}"),
            )))
        }
    };
    let mut created: Option<PathBuf> = None;
    if let (Some(disk), Some(size)) = (&c.disk, &c.disk_size) {
        if !disk.exists() && !c.dry_run {
            created = Some(disk.clone());
            let bytes = ksinstall::size::parse_size(size)?;
            let f = std::fs::File::create_new(disk)
                .with_context(|| format!("creating {}", disk.display()))?;
            f.set_len(bytes)
                .with_context(|| format!("sizing {}", disk.display()))?;
        } else if !disk.exists() {
            return Ok(ended(fail(
                sink,
                "plan",
                Outcome::Precondition,
                &format!(
                    "{} does not exist (a dry run creates nothing)",
                    disk.display()
                ),
            )));
        }
    }

    // What each supported DPU runs, through its own interface (read-only).
    let access = c.dpu.access(&c.sysroot);
    let firmware_root = c.dpu.firmware_root();
    let observed: Vec<_> = inventory
        .dpus
        .iter()
        .filter(|d| d.supported)
        .map(|d| ksinstall::dpu::observe(d, &access))
        .collect();

    // The plan: every check.
    let inputs = plan::Inputs {
        kickstart_name: &name,
        kickstart: ks,
        inventory: &inventory,
        sysroot: &c.sysroot,
        media: &media,
        boot,
        disk_override: c.disk.as_deref(),
        image_sector_size: c.sector_size,
        firmware_root: &firmware_root,
        dpu_observed: &observed,
    };
    let plan = match plan::make(&inputs) {
        Ok(p) => p,
        Err(e) => {
            // A refused install leaves nothing behind, not even the image it was to write.
            if let Some(p) = &created {
                let _ = std::fs::remove_file(p);
            }
            return Ok(ended(fail(sink, "plan", e.outcome, &e.message)));
        }
    };
    // Local media is read once in full before the first write, so a bad module never costs the
    // disk its old contents (apply does it, beside packing the DPU payload; a dry run here).
    // Streamed (HTTP) media is verified as it is written.
    let mut plan = plan;
    plan.check_media &= !c.skip_media_check;
    if plan.check_media && c.dry_run {
        if let Err(e) = verify_media(&media, sink) {
            return Ok(ended(fail(
                sink,
                "media",
                Outcome::Media,
                &format!("{e:#}"),
            )));
        }
    }
    if c.dry_run {
        if c.progress == Progress::Json {
            // One more JSON line in the event stream, so the output stays JSON lines.
            println!(
                "{}",
                serde_json::to_string(&json!({"event": "plan", "plan": plan}))?
            );
        } else {
            print!("{}", plan.text());
        }
        return Ok(Ended {
            outcome: Outcome::Success,
            reboot: plan.reboot,
        });
    }
    for w in &plan.warnings {
        sink.emit(Event::Warning {
            step: "plan".into(),
            message: w.clone(),
        });
        log::warn!("{w}");
    }

    // Apply, then %post.
    let result = apply::apply(&plan, &media, sink, &access, &mut |_applied| Ok(()));
    if let (Err(e), Some(p)) = (&result, &created) {
        // Stopped before the first write (bad media, a bad DPU payload): the image it was to
        // write goes too, as after a refused plan.
        if e.step == "media" || e.step == "dpu-stage" {
            let _ = std::fs::remove_file(p);
        }
    }
    let (outcome, applied, error) = match result {
        Ok(applied) => {
            let post = run_post(ks, workdir.path(), sink);
            match post {
                Ok(()) => (Outcome::Success, Some(applied), None),
                Err(e) => (e.outcome, Some(applied), Some(e)),
            }
        }
        Err(e) => (e.outcome, None, Some(e)),
    };
    if let Some(e) = &error {
        fail(sink, &e.step, e.outcome, &e.to_string());
    }
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if let Some(path) = &c.report {
        write_report(
            path,
            &plan,
            applied.as_ref(),
            error.as_ref(),
            outcome,
            elapsed_ms,
        )?;
    }
    if outcome == Outcome::Success && c.progress != Progress::Json {
        eprintln!(
            "ksinstall: installed ESXi {} on {} ({}) in {:.1}s",
            plan.media.build,
            plan.target.name,
            plan.target.path.display(),
            elapsed_ms as f64 / 1000.0
        );
    }
    Ok(Ended {
        outcome,
        reboot: plan.reboot,
    })
}

/// Hash every component of local media against its manifest, with progress: done before the
/// first write, so that a bad module never costs the disk its old contents.
pub(super) fn verify_media(media: &Media, sink: &dyn EventSink) -> anyhow::Result<()> {
    let total: u64 = media.manifest.components.iter().map(|c| c.size).sum();
    let step = ksinstall::report::Step::start(
        sink,
        "media",
        "checking every component of the media",
        Some(total),
    );
    media.verify_all(&mut |done| step.progress(done))?;
    step.finish();
    Ok(())
}

/// Boot options: the given command line, else `proc/cmdline` below the sysroot.
pub(super) fn boot_options_at(
    sysroot: &Path,
    cmdline: Option<&str>,
) -> Result<BootOptions, String> {
    let cmdline = match cmdline {
        Some(c) => c.to_string(),
        None => std::fs::read_to_string(sysroot.join("proc/cmdline")).unwrap_or_default(),
    };
    BootOptions::parse(&cmdline).map_err(|e| e.to_string())
}

fn run_post(
    ks: &kickstart::Kickstart,
    workdir: &Path,
    sink: &dyn EventSink,
) -> Result<(), ApplyError> {
    let posts: Vec<_> = ks
        .scripts
        .iter()
        .filter(|s| s.kind == ScriptKind::Post)
        .collect();
    if posts.is_empty() {
        return Ok(());
    }
    let step = ksinstall::report::Step::start(
        sink,
        "post",
        format!("{} %post script(s)", posts.len()),
        None,
    );
    for s in posts {
        if let Err(why) = apply::scripts::run(s, workdir) {
            if s.ignore_failure {
                step.warn(format!("{}: {why} (--ignorefailure=true)", s.span));
            } else {
                return Err(ApplyError {
                    step: "post".into(),
                    outcome: Outcome::Script,
                    message: format!("{}: User-supplied %post script failed: {why}", s.span),
                });
            }
        }
    }
    step.finish();
    Ok(())
}

fn write_report(
    path: &Path,
    plan: &Plan,
    applied: Option<&apply::Applied>,
    error: Option<&ApplyError>,
    outcome: Outcome,
    elapsed_ms: u64,
) -> anyhow::Result<()> {
    let report = json!({
        "ksinstall": env!("CARGO_PKG_VERSION"),
        "outcome": format!("{outcome:?}"),
        "exit_code": outcome as u8,
        "elapsed_ms": elapsed_ms,
        "kickstart": plan.kickstart,
        "media": plan.media,
        "target": plan.target,
        "partitions": plan.layout.partitions,
        "boot_cfg": plan.boot_cfg.render(),
        "host": plan.host,
        "dpus": plan.dpus.iter().map(|d| json!({
            "name": d.name,
            // The card's identity, so fleet checks (docs/FLEET.md) can read a report alone.
            "catalog_id": d.card.catalog_id,
            "vendor": d.card.vendor,
            "model": d.card.model,
            "generation": d.card.generation,
            "supported": d.card.supported,
            "address": d.address,
            "slot": d.slot,
            "interface": d.interface,
            "action": d.action,
            "payload": {
                "id": d.payload.id,
                "label": d.payload.label,
                "esxio_build": d.payload.esxio_build,
                "firmware_version": d.payload.firmware_version,
                "parts": d.payload.parts,
            },
            "before": d.before,
            "after": applied.and_then(|a| a.dpus.iter().find(|x| x.address == d.address)),
        })).collect::<Vec<_>>(),
        "files": applied.map(|a| &a.files),
        "timings": applied.map(|a| &a.timings),
        "bytes_written": applied.map(|a| a.bytes_written),
        "warnings": plan.warnings,
        "error": error.map(|e| json!({"step": e.step, "message": e.message})),
    });
    std::fs::write(path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing the report {}", path.display()))
}
