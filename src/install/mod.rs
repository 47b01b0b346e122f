//! The install driver: one run of source -> kickstart -> inventory -> plan -> apply -> report,
//! shared by `install`, `boot` and the tools in `xtask`. It owns the order that keeps a disk
//! safe: everything the run will need (the kickstart, the hardware, the media, the target, the
//! report path, the DPU payload) is checked before the first write, and a dry run, whether asked
//! for on the command line or by the kickstart's `dryrun`, writes nothing at all.

pub mod report;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use crate::apply::{self, ApplyError, StepTiming};
use crate::dpu;
use crate::exit::Outcome;
use crate::http::Http;
use crate::inventory::Inventory;
use crate::kickstart::{self, Kickstart, ScriptKind};
use crate::media::Media;
use crate::plan::{self, DiskOverride, Plan};
use crate::report::{Event, EventSink, Step};
use crate::source::cmdline::BootOptions;
pub use report::InstallReport;

/// What the caller decided: the target, the hardware seam, what may run, where the report goes.
pub struct Options {
    /// Where the hardware is read: `sys/`, `dev/`, `proc/cmdline` below it.
    pub sysroot: PathBuf,
    /// `--disk`: the block device or image file to install to, overriding the kickstart.
    pub disk: Option<PathBuf>,
    /// `--disk-size`: create the `--disk` image file with this many bytes if it does not exist.
    pub disk_size: Option<u64>,
    /// Logical sector size of an image file.
    pub sector_size: u32,
    /// `--dry-run`: plan and check only (the kickstart's `dryrun` does the same).
    pub dry_run: bool,
    /// Run `%pre` scripts (as root, on this machine): `boot` always does (it is the installer
    /// environment); `install` only with `--run-pre`.
    pub run_pre: bool,
    /// Do not hash the whole local media before the first write.
    pub skip_media_check: bool,
    /// Write the final JSON report here.
    pub report: Option<PathBuf>,
    /// How the DPUs are reached.
    pub access: dpu::Access,
    /// The DPU firmware bundles; `None` when no firmware directory was found (a DPU host is
    /// then refused at plan time with the places looked in).
    pub firmware_root: Result<PathBuf, String>,
}

/// A kickstart's bytes and the names it goes by (see `source::kickstart::FetchedKickstart`).
pub struct KickstartInput {
    pub name: String,
    pub key: String,
    pub bytes: Vec<u8>,
}

/// How a run ended.
pub struct Ended {
    pub outcome: Outcome,
    /// `reboot` in the kickstart: `Some(no_eject)`.
    pub reboot: Option<bool>,
    /// The plan, when the run got that far.
    pub plan: Option<Plan>,
    /// Nothing was written: `--dry-run`, or the kickstart's `dryrun`.
    pub dry_run: bool,
}

/// A run that stopped: the step, the exit class and why.
struct Stop {
    step: String,
    outcome: Outcome,
    message: String,
}

fn stop(step: &str, outcome: Outcome, message: impl Into<String>) -> Stop {
    Stop {
        step: step.into(),
        outcome,
        message: message.into(),
    }
}

/// Passes events on and keeps the time of every finished step, for the report.
struct Recorder<'a> {
    inner: &'a dyn EventSink,
    timings: Mutex<Vec<StepTiming>>,
}

impl Recorder<'_> {
    /// The time of a stage that has no progress events of its own (kickstart, plan): it goes
    /// into the report, not into the event stream, whose steps are documented as stable.
    fn record(&self, step: &str, started: Instant) {
        let mut t = self.timings.lock().unwrap_or_else(|p| p.into_inner());
        t.push(StepTiming {
            step: step.into(),
            elapsed_ms: elapsed_ms(started),
        });
    }
}

impl EventSink for Recorder<'_> {
    fn emit(&self, event: Event) {
        if let Event::StepFinished { step, elapsed_ms } = &event {
            let mut t = self.timings.lock().unwrap_or_else(|p| p.into_inner());
            t.push(StepTiming {
                step: step.clone(),
                elapsed_ms: *elapsed_ms,
            });
        }
        self.inner.emit(event);
    }
}

/// Say that a run failed: the `failed` event and the `ksinstall: error:` line.
pub fn fail(sink: &dyn EventSink, step: &str, outcome: Outcome, message: &str) -> Outcome {
    sink.emit(Event::Failed {
        step: step.into(),
        message: message.into(),
        exit_code: outcome as u8,
    });
    eprintln!("ksinstall: error: {message}");
    outcome
}

/// A run that stopped before it had a kickstart (bad boot options, an unreadable `--ks`, no
/// `ks=` location answering): said, and written as a report when one is asked for.
pub fn refuse_early(
    o: &Options,
    sink: &dyn EventSink,
    step: &str,
    outcome: Outcome,
    message: &str,
    started: Instant,
) -> Outcome {
    fail(sink, step, outcome, message);
    if let Some(path) = &o.report {
        let mut r = InstallReport::without_plan(None, outcome, o.dry_run);
        r.elapsed_ms = elapsed_ms(started);
        r.error = Some(report::ReportError {
            step: step.into(),
            message: message.into(),
        });
        if let Err(e) = r.write(path) {
            eprintln!("ksinstall: error: {e:#}");
        }
    }
    outcome
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One install from a kickstart's bytes: read it, read the hardware and the media, plan, check,
/// write, run `%post`, report. Never returns early without saying why (a `failed` event, the
/// error line, and the report when one is asked for).
pub fn execute(
    o: &Options,
    media_location: &str,
    ks: KickstartInput,
    boot: &BootOptions,
    http: &Http,
    sink: &dyn EventSink,
    started: Instant,
) -> Ended {
    let recorder = Recorder {
        inner: sink,
        timings: Mutex::new(Vec::new()),
    };
    let mut run = Run {
        o,
        sink: &recorder,
        name: ks.name.clone(),
        dry_run: o.dry_run,
        plan: None,
        applied: None,
        reboot: None,
        report_checked: false,
    };
    let result = run.drive(media_location, ks, boot, http);
    let outcome = match &result {
        Ok(()) => Outcome::Success,
        Err(s) => fail(&recorder, &s.step, s.outcome, &s.message),
    };
    let timings = std::mem::take(&mut *recorder.timings.lock().unwrap_or_else(|p| p.into_inner()));
    // A report path that failed its check is not tried again.
    if let Some(path) = o.report.as_ref().filter(|_| run.report_checked) {
        let mut r = InstallReport::without_plan(Some(&run.name), outcome, run.dry_run);
        if let Some(p) = &run.plan {
            r = r.with_plan(p, run.applied.as_ref());
        }
        r.elapsed_ms = elapsed_ms(started);
        r.timings = timings;
        r.error = result.as_ref().err().map(|s| report::ReportError {
            step: s.step.clone(),
            message: s.message.clone(),
        });
        if let Err(e) = r.write(path) {
            // The path was checked before the first write; a failure now is an I/O failure.
            return Ended {
                outcome: fail(sink, "report", Outcome::UsageOrIo, &format!("{e:#}")),
                reboot: None,
                plan: run.plan,
                dry_run: run.dry_run,
            };
        }
    }
    Ended {
        outcome,
        reboot: if outcome == Outcome::Success {
            run.reboot
        } else {
            None
        },
        plan: run.plan,
        dry_run: run.dry_run,
    }
}

/// The state of one run, so that the report can say how far it got.
struct Run<'a> {
    o: &'a Options,
    sink: &'a Recorder<'a>,
    name: String,
    dry_run: bool,
    plan: Option<Plan>,
    applied: Option<apply::Applied>,
    reboot: Option<bool>,
    /// The `--report` path took a test write: the report can be written.
    report_checked: bool,
}

impl Run<'_> {
    fn drive(
        &mut self,
        media_location: &str,
        ks: KickstartInput,
        boot: &BootOptions,
        http: &Http,
    ) -> Result<(), Stop> {
        check_report_path(self.o)?;
        self.report_checked = true;
        wait_for_entropy(self.sink);
        let workdir = tempfile::tempdir().map_err(|e| {
            stop(
                "kickstart",
                Outcome::UsageOrIo,
                format!("making a scratch directory for scripts: {e}"),
            )
        })?;
        let ks = self.read_kickstart(ks, http, workdir.path())?;
        let (inventory, media) = self.read_host(media_location, http)?;
        let plan = self.make_plan(&ks, &inventory, &media, boot)?;
        self.reboot = plan.reboot;
        let plan = self.plan.insert(plan);
        if self.dry_run {
            // Local media is read once in full here too, so a dry run finds a bad module.
            if plan.check_media {
                verify_media(&media, self.sink)
                    .map_err(|e| stop("media", Outcome::Media, format!("{e:#}")))?;
            }
            return Ok(());
        }
        for w in &plan.warnings {
            self.sink.emit(Event::Warning {
                step: "plan".into(),
                message: w.clone(),
            });
            log::warn!("{w}");
        }
        let created = create_image(self.o)?;
        let result = apply::apply(plan, &media, self.sink, &self.o.access, &mut |_| Ok(()));
        if let (Err(e), Some(p)) = (&result, &created) {
            // Stopped before the first write (bad media, a bad DPU payload): the image made
            // for the install goes too, as after a refused plan.
            if e.step == "media" || e.step == "dpu-stage" {
                let _ = std::fs::remove_file(p);
            }
        }
        let applied = result.map_err(from_apply)?;
        self.applied = Some(applied);
        run_post(&ks, workdir.path(), self.sink).map_err(from_apply)?;
        if let Some(p) = &self.plan {
            log::info!(
                "installed ESXi {} on {} ({})",
                p.media.build,
                p.target.name,
                p.target.path.display()
            );
        }
        Ok(())
    }

    /// Read the kickstart (running `%pre` only where allowed) and settle whether this is a dry
    /// run: `--dry-run`, or `dryrun` in the kickstart.
    fn read_kickstart(
        &mut self,
        input: KickstartInput,
        http: &Http,
        workdir: &Path,
    ) -> Result<Kickstart, Stop> {
        let started = Instant::now();
        // Includes are files of the installer's own file system (where %pre runs and writes),
        // not of the hardware sysroot; URLs are fetched now.
        let mut loader = crate::source::fetch::InstallLoader {
            files: kickstart::FsLoader::new("/"),
            http: http.clone(),
        };
        let mut pre_failed = false;
        let mut runner = |s: &kickstart::Script| {
            let r = apply::scripts::run(s, workdir);
            pre_failed |= r.is_err();
            r
        };
        let pre: Option<kickstart::PreRunner<'_>> = if self.o.run_pre {
            Some(&mut runner)
        } else {
            None
        };
        let parsed = kickstart::parse(&input.name, &input.key, &input.bytes, &mut loader, pre);
        for d in &parsed.diagnostics {
            eprintln!("{d}");
        }
        if parsed.has_errors() {
            let outcome = if pre_failed {
                Outcome::Script
            } else {
                Outcome::InvalidKickstart
            };
            return Err(stop(
                "kickstart",
                outcome,
                format!("{}: the kickstart has errors", input.name),
            ));
        }
        let mut ks = parsed.kickstart;
        if let Some(span) = &ks.dryrun {
            if !self.dry_run {
                self.warn(
                    "kickstart",
                    format!("{span}: dryrun: the plan only, nothing is written"),
                );
            }
            self.dry_run = true;
        }
        self.without_pre(&mut ks)?;
        self.sink.record("kickstart", started);
        Ok(ks)
    }

    /// `%pre` that was not run: a real install refuses (it would install a kickstart other than
    /// the one meant); a dry run goes on without what `%pre` would have made, and says so.
    fn warn(&self, step: &str, message: String) {
        log::warn!("{message}");
        self.sink.emit(Event::Warning {
            step: step.into(),
            message,
        });
    }

    fn without_pre(&self, ks: &mut Kickstart) -> Result<(), Stop> {
        let Some(pre) = ks.scripts.iter().find(|s| s.kind == ScriptKind::Pre) else {
            return Ok(());
        };
        if self.o.run_pre {
            return Ok(());
        }
        if !self.dry_run {
            return Err(stop(
                "kickstart",
                Outcome::Precondition,
                format!(
                    "{}: the kickstart has a %pre script, which `install` runs only with --run-pre (as root, on this machine); `ksinstall boot` runs it in the installer environment",
                    pre.span
                ),
            ));
        }
        self.warn(
            "kickstart",
            format!(
                "{}: %pre was not run (a dry run runs it only with --run-pre)",
                pre.span
            ),
        );
        for p in std::mem::take(&mut ks.pending_includes) {
            self.warn("kickstart", format!(
                "{}: %include {} not read: %pre did not run, and it may be what makes it; the plan below is without it",
                p.span, p.target
            ));
        }
        Ok(())
    }

    fn read_host(&self, media_location: &str, http: &Http) -> Result<(Inventory, Media), Stop> {
        let inventory = Inventory::read(&self.o.sysroot)
            .map_err(|e| stop("inventory", Outcome::Precondition, format!("{e:#}")))?;
        let media = Media::open_with(media_location, http)
            .map_err(|e| stop("media", Outcome::Media, format!("{e:#}")))?;
        Ok((inventory, media))
    }

    fn make_plan(
        &self,
        ks: &Kickstart,
        inventory: &Inventory,
        media: &Media,
        boot: &BootOptions,
    ) -> Result<Plan, Stop> {
        let started = Instant::now();
        // What each supported DPU runs, through its own interface (read-only).
        let observed: Vec<_> = inventory
            .dpus
            .iter()
            .filter(|d| d.supported)
            .map(|d| dpu::observe(d, &self.o.access))
            .collect();
        let disk = match (&self.o.disk, self.o.disk_size) {
            (Some(path), Some(size)) if !path.exists() => Some(DiskOverride::New {
                path,
                size_bytes: size,
            }),
            (Some(path), _) => Some(DiskOverride::Existing(path)),
            (None, _) => None,
        };
        let inputs = plan::Inputs {
            kickstart_name: &self.name,
            kickstart: ks,
            inventory,
            sysroot: &self.o.sysroot,
            media,
            boot,
            disk_override: disk,
            image_sector_size: self.o.sector_size,
            firmware_root: self.o.firmware_root.as_deref().map_err(|e| e.as_str()),
            dpu_observed: &observed,
        };
        let mut plan = plan::make(&inputs).map_err(|e| stop("plan", e.outcome, e.message))?;
        plan.check_media &= !self.o.skip_media_check;
        check_target_writable(&plan, disk)?;
        self.sink.record("plan", started);
        Ok(plan)
    }
}

fn from_apply(e: ApplyError) -> Stop {
    Stop {
        // "bootbank: reading vim.v00: ...": the step said in the message, as users have seen it.
        message: e.to_string(),
        step: e.step,
        outcome: e.outcome,
    }
}

/// The report must be writable before anything is: an install whose report cannot be written
/// would end in an error after the disk was already erased.
fn check_report_path(o: &Options) -> Result<(), Stop> {
    let Some(path) = &o.report else {
        return Ok(());
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
        .map_err(|e| {
            stop(
                "plan",
                Outcome::Precondition,
                format!("--report {}: cannot be written: {e}", path.display()),
            )
        })
}

/// The target must open for writing now (a write-protected card, a read-only image, a disk in
/// use), or the install would stop after the plan with the DPU perhaps already flashed. An image
/// still to be created needs a directory that takes it.
fn check_target_writable(plan: &Plan, disk: Option<DiskOverride<'_>>) -> Result<(), Stop> {
    let refuse = |what: &Path, e: std::io::Error| {
        stop(
            "plan",
            Outcome::Precondition,
            format!("{}: cannot be written: {e}", what.display()),
        )
    };
    if let Some(DiskOverride::New { path, .. }) = disk {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let probe = tempfile::tempfile_in(dir).map_err(|e| refuse(dir, e))?;
        drop(probe);
        return Ok(());
    }
    crate::storage::BlockDev::check_writable(&plan.target.path)
        .map_err(|e| refuse(&plan.target.path, e))
}

/// Create the `--disk` image file the plan was made for, now that every check has passed.
fn create_image(o: &Options) -> Result<Option<PathBuf>, Stop> {
    let (Some(path), Some(size)) = (&o.disk, o.disk_size) else {
        return Ok(None);
    };
    if path.exists() {
        return Ok(None);
    }
    let io = |e: std::io::Error| {
        stop(
            "partition",
            Outcome::Write,
            format!("creating {}: {e}", path.display()),
        )
    };
    let f = std::fs::File::create_new(path).map_err(io)?;
    f.set_len(size).map_err(io)?;
    Ok(Some(path.clone()))
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

/// Hash every component of local media against its manifest, with progress: done before the
/// first write, so that a bad module never costs the disk its old contents.
pub fn verify_media(media: &Media, sink: &dyn EventSink) -> anyhow::Result<()> {
    let total: u64 = media.manifest.components.iter().map(|c| c.size).sum();
    let step = Step::start(
        sink,
        "media",
        "checking every component of the media",
        Some(total),
    );
    media.verify_all(&mut |done| step.progress(done))?;
    step.finish();
    Ok(())
}

fn run_post(ks: &Kickstart, workdir: &Path, sink: &dyn EventSink) -> Result<(), ApplyError> {
    let posts: Vec<_> = ks
        .scripts
        .iter()
        .filter(|s| s.kind == ScriptKind::Post)
        .collect();
    if posts.is_empty() {
        return Ok(());
    }
    let step = Step::start(
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
