//! The install driver: one run of source -> kickstart -> inventory -> plan -> apply -> report,
//! shared by `install`, `boot` and the tools in `xtask`. It owns the order that keeps a disk
//! safe: everything the run will need (the kickstart, the hardware, the media, the target, the
//! report path, the DPU payload) is checked before the first write, and a dry run, whether asked
//! for on the command line or by the kickstart's `dryrun`, writes nothing at all.

pub mod boot;
mod checks;
mod host;
mod read;
pub mod report;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use crate::apply::{self, ApplyError, StepTiming};
use crate::dpu;
use crate::exit::Outcome;
use crate::http::Http;
use crate::inventory::Inventory;
use crate::kickstart::Kickstart;
use crate::plan::{self, Plan};
use crate::report::{Event, EventSink, Step, StepId};
use crate::source::cmdline::BootOptions;
pub use checks::verify_media;
pub use host::{interpreters, media_facts, prepare, Prepared};
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
    /// `--trust-cert`: the certificate VMware's descriptor signatures are checked against.
    pub trust_cert: Option<PathBuf>,
    /// Write the final JSON report here.
    pub report: Option<PathBuf>,
    /// How the DPUs are reached.
    pub access: dpu::Access,
    /// The DPU firmware bundles; `None` when no firmware directory was found (a DPU host is
    /// then refused at plan time with the places looked in).
    pub firmware_root: Result<PathBuf, String>,
    /// `--strict`: what the plan only warns about is refused (the kickstart's `paranoid` too).
    pub strict: bool,
    /// `--save-host`: write what was read of the machine (the plan's `Host`) here, as JSON:
    /// `ksinstall plan --host` makes the same plan from it on any machine.
    pub save_host: Option<PathBuf>,
}

impl Options {
    /// A run that writes the disk the plan chooses, runs no `%pre`, writes no report: the
    /// console's options, and the start of every other caller's.
    pub fn new(
        sysroot: &Path,
        access: dpu::Access,
        firmware_root: Result<PathBuf, String>,
    ) -> Options {
        Options {
            sysroot: sysroot.to_path_buf(),
            disk: None,
            disk_size: None,
            sector_size: 512,
            dry_run: false,
            run_pre: false,
            skip_media_check: false,
            trust_cert: None,
            report: None,
            access,
            firmware_root,
            strict: false,
            save_host: None,
        }
    }
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
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub step: StepId,
    pub outcome: Outcome,
    pub message: String,
}

fn stop(step: StepId, outcome: Outcome, message: impl Into<String>) -> Failure {
    Failure {
        step,
        outcome,
        message: message.into(),
    }
}

fn from_apply(e: ApplyError) -> Failure {
    Failure {
        // "bootbank: reading vim.v00: ...": the step said in the message, as users have seen it.
        message: e.to_string(),
        step: e.step,
        outcome: e.outcome,
    }
}

/// The target named on the command line (`--disk`).
#[derive(Debug, Clone, Copy)]
pub enum DiskOverride<'a> {
    /// A block device or image file that exists.
    Existing(&'a Path),
    /// An image file the install will create (`--disk-size`).
    New { path: &'a Path, size_bytes: u64 },
}

/// The USB and removable disks below the sysroot, as `ks=usb` searches them (the source stage
/// reads no inventory: the driver hands it this list).
pub(crate) fn usb_disks(sysroot: &Path) -> anyhow::Result<Vec<crate::source::usb::UsbDisk>> {
    let inventory = Inventory::read(sysroot)?;
    Ok(inventory
        .disks
        .iter()
        .filter(|d| d.usb || d.removable)
        .map(|d| crate::source::usb::UsbDisk {
            device: d.device.clone(),
            description: d.description(),
            size_bytes: d.size_bytes,
            regions: d.fat_regions(),
        })
        .collect())
}

/// `probe --record`: copy into `dest` every file below the sysroot the installer reads: the
/// inventory's sysfs, the kernel command line, the CD drives, the network interfaces' addresses
/// and the serial number (docs/HARDWARE.md).
pub fn record(
    sysroot: &Path,
    dest: &Path,
) -> anyhow::Result<crate::inventory::record::RecordSummary> {
    crate::inventory::record::record_with(sysroot, dest, &|sys| {
        if let Err(e) = BootOptions::read_in(sys, None) {
            log::warn!("{e}");
        }
        crate::source::cdrom::drives_in(sys);
        crate::http::identity_headers_in(sys, true, true);
    })
}

/// What `run` did: the disk's account when apply finished, how the run ended, and the state
/// it left the target in.
pub struct Ran {
    pub applied: Option<apply::Applied>,
    pub result: Result<(), Failure>,
    pub target: report::TargetState,
    /// The `%post` scripts run, with their output and how each ended.
    pub scripts: Vec<apply::scripts::ScriptRecord>,
}

/// The state a stop in apply's `step` leaves the target in; says so in the failure's message
/// when the disk was written to.
fn left_behind(
    plan: &Plan,
    step: StepId,
    removed: bool,
    failure: &mut Failure,
) -> report::TargetState {
    use report::TargetState;
    match step {
        StepId::Media | StepId::DpuStage | StepId::Open if removed => TargetState::Removed,
        StepId::Media | StepId::DpuStage | StepId::Open => TargetState::Untouched,
        _ => {
            failure.message.push_str(&match &plan.upgrade {
                Some(u) => format!(
                    "; boot bank partition {} of {} is left half-written (no boot.cfg): partition {} still boots, and the next upgrade rewrites it",
                    u.target_bank, plan.target.name, u.running_bank
                ),
                None => format!(
                    "; {} is left half-written (no boot.cfg): it does not boot, and the next install takes it as its own unfinished one (no --overwritevmfs needed)",
                    plan.target.name
                ),
            });
            TargetState::HalfWritten
        }
    }
}

/// Carry out a plan that every check has passed: create the `--disk` image if it is new, apply
/// (with the install record on the bank), then `%post`. Shared by the scripted install and the
/// console.
pub fn run(
    o: &Options,
    host: &Prepared,
    plan: &Plan,
    kickstart_name: &str,
    sink: &dyn EventSink,
) -> Ran {
    for w in &plan.warnings {
        sink.emit(Event::Warning {
            step: StepId::Plan,
            message: w.clone(),
        });
    }
    // Checked here too, not only by the scripted path's plan: the console's plans come straight
    // from `plan::make`, and a DPU may start flashing beside the lay-down.
    let untouched = |f| Ran {
        applied: None,
        result: Err(f),
        target: report::TargetState::Untouched,
        scripts: Vec::new(),
    };
    if let Err(f) = checks::target_writable(plan, disk_override(o), false) {
        return untouched(f);
    }
    let created = match checks::create_image(o) {
        Ok(c) => c,
        Err(f) => return untouched(f),
    };
    let record = |applied: &apply::Applied| {
        let mut r = InstallReport::without_plan(Some(kickstart_name), Outcome::Success, false)
            .with_plan(plan, Some(applied));
        r.timings = applied.timings.clone();
        // Plain structs of strings and numbers: serialising them cannot fail.
        serde_json::to_vec_pretty(&r).unwrap_or_default()
    };
    let applied = match apply::apply(plan, &host.media, sink, &o.access, &record) {
        Ok(a) => a,
        Err(e) => {
            // Stopped before the first write (bad media, a bad DPU payload, a signal): the
            // image made for the install goes too, as after a refused plan.
            let removed = match (
                e.step == StepId::Media || e.step == StepId::DpuStage,
                &created,
            ) {
                (true, Some(p)) => std::fs::remove_file(p).is_ok(),
                _ => false,
            };
            let mut failure = from_apply(e);
            let target = left_behind(plan, failure.step, removed, &mut failure);
            return Ran {
                applied: None,
                result: Err(failure),
                target,
                scripts: Vec::new(),
            };
        }
    };
    let result = tempfile::tempdir().map_err(|e| {
        stop(
            StepId::Post,
            Outcome::UsageOrIo,
            format!("making a scratch directory for scripts: {e}"),
        )
    });
    let mut scripts = Vec::new();
    let result = result.and_then(|dir| {
        run_post(&plan.post_scripts, dir.path(), sink, &mut scripts).map_err(from_apply)
    });
    Ran {
        applied: Some(applied),
        result,
        target: report::TargetState::Written,
        scripts,
    }
}

/// A safe point between two stages: a signal that arrived stops the run here.
fn safe_point(step: StepId) -> Result<(), Failure> {
    crate::interrupt::check().map_err(|i| stop(step, Outcome::Interrupted, format!("{step}: {i}")))
}

/// An error of a stage that may carry an interrupt: `Interrupted` then, else `outcome`.
fn outcome_of(e: &anyhow::Error, outcome: Outcome) -> Outcome {
    if e.chain()
        .any(|c| c.downcast_ref::<crate::interrupt::Interrupted>().is_some())
    {
        Outcome::Interrupted
    } else {
        outcome
    }
}

/// Passes events on and keeps the time of every finished step, for the report.
struct Recorder<'a> {
    inner: &'a dyn EventSink,
    timings: Mutex<Vec<StepTiming>>,
    /// Every warning said on the way (a failed `%post --ignorefailure=true` among them), for
    /// the report.
    warnings: Mutex<Vec<String>>,
}

impl Recorder<'_> {
    /// The time of a stage that has no progress events of its own (kickstart, plan): it goes
    /// into the report, not into the event stream, whose steps are documented as stable.
    fn record(&self, step: StepId, started: Instant) {
        let mut t = self.timings.lock().unwrap_or_else(|p| p.into_inner());
        t.push(StepTiming {
            step,
            elapsed_ms: elapsed_ms(started),
        });
    }
}

impl EventSink for Recorder<'_> {
    fn emit(&self, event: Event) {
        if let Event::Warning { message, .. } = &event {
            let mut w = self.warnings.lock().unwrap_or_else(|p| p.into_inner());
            if !w.contains(message) {
                w.push(message.clone());
            }
        }
        if let Event::StepFinished { step, elapsed_ms } = &event {
            let mut t = self.timings.lock().unwrap_or_else(|p| p.into_inner());
            t.push(StepTiming {
                step: *step,
                elapsed_ms: *elapsed_ms,
            });
        }
        self.inner.emit(event);
    }
}

/// Say that a run failed: the `failed` event and the `ksinstall: error:` line.
pub fn fail(sink: &dyn EventSink, step: StepId, outcome: Outcome, message: &str) -> Outcome {
    sink.emit(Event::Failed {
        step,
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
    step: StepId,
    outcome: Outcome,
    message: &str,
    started: Instant,
) -> Outcome {
    fail(sink, step, outcome, message);
    // The same check as every run's: a refusal never writes its report over a device.
    if let Err(f) = checks::report_path(o) {
        eprintln!("ksinstall: error: {}", f.message);
        return outcome;
    }
    if let Some(path) = &o.report {
        let mut r = InstallReport::without_plan(None, outcome, o.dry_run);
        r.elapsed_ms = elapsed_ms(started);
        r.error = Some(report::ReportError {
            step,
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
/// write, run `%post`, report. Never returns without saying why it stopped (a `failed` event,
/// the error line, and the report when one is asked for).
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
        warnings: Mutex::new(Vec::new()),
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
        target: None,
        scripts: Vec::new(),
    };
    let result = run.drive(media_location, ks, boot, http);
    let mut outcome = match &result {
        Ok(()) => Outcome::Success,
        Err(f) => fail(&recorder, f.step, f.outcome, &f.message),
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
        r.target_state = run.target;
        r.scripts = std::mem::take(&mut run.scripts);
        for w in std::mem::take(&mut *recorder.warnings.lock().unwrap_or_else(|p| p.into_inner())) {
            if !r.warnings.contains(&w) {
                r.warnings.push(w);
            }
        }
        r.error = result.as_ref().err().map(|f| report::ReportError {
            step: f.step,
            message: f.message.clone(),
        });
        if let Err(e) = r.write(path) {
            // The path was checked before the first write; a failure now is an I/O failure.
            outcome = fail(sink, StepId::Report, Outcome::UsageOrIo, &format!("{e:#}"));
        }
    }
    Ended {
        outcome,
        reboot: run.reboot.filter(|_| outcome == Outcome::Success),
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
    /// What apply left the target as, once it ran.
    target: Option<report::TargetState>,
    /// The `%pre` and `%post` scripts run.
    scripts: Vec<apply::scripts::ScriptRecord>,
}

impl Run<'_> {
    fn drive(
        &mut self,
        media_location: &str,
        ks: KickstartInput,
        boot: &BootOptions,
        http: &Http,
    ) -> Result<(), Failure> {
        checks::report_path(self.o)?;
        self.report_checked = true;
        checks::wait_for_entropy(self.sink);
        let workdir = tempfile::tempdir().map_err(|e| {
            stop(
                StepId::Kickstart,
                Outcome::UsageOrIo,
                format!("making a scratch directory for scripts: {e}"),
            )
        })?;
        safe_point(StepId::Kickstart)?;
        let ks = self.read_kickstart(ks, http, workdir.path())?;
        safe_point(StepId::Kickstart)?;
        let host = prepare(self.o, boot.clone(), media_location, http)?;
        if let Some(path) = &self.o.save_host {
            save_host(&host.host, path)?;
        }
        safe_point(StepId::Media)?;
        let plan = self.make_plan(&ks, &host)?;
        self.reboot = plan.reboot;
        let plan = self.plan.insert(plan);
        safe_point(StepId::Plan)?;
        if self.dry_run {
            // Local media is read once in full here too, so a dry run finds a bad module.
            if plan.check_media {
                verify_media(&host.media, self.sink).map_err(|e| {
                    stop(
                        StepId::Media,
                        outcome_of(&e, Outcome::Media),
                        format!("{e:#}"),
                    )
                })?;
            }
            return Ok(());
        }
        let ran = run(self.o, &host, plan, &self.name, self.sink);
        self.applied = ran.applied;
        self.target = Some(ran.target);
        self.scripts.extend(ran.scripts);
        ran.result?;
        log::info!(
            "{} ESXi {} on {} ({})",
            match plan.kind {
                plan::RunKind::Install => "installed",
                plan::RunKind::Upgrade => "upgraded to",
            },
            plan.media.build,
            plan.target.name,
            plan.target.path.display()
        );
        Ok(())
    }

    fn make_plan(&self, ks: &Kickstart, host: &Prepared) -> Result<Plan, Failure> {
        let started = Instant::now();
        let disk = disk_override(self.o);
        let mut inputs = plan::Inputs::new(&host.host, &self.name, ks);
        inputs.strict = self.o.strict || ks.paranoid.is_some();
        let mut plan = plan::make(&inputs).map_err(|e| stop(StepId::Plan, e.outcome, e.message))?;
        plan.check_media &= !self.o.skip_media_check;
        checks::target_writable(&plan, disk, self.dry_run)?;
        self.sink.record(StepId::Plan, started);
        Ok(plan)
    }
}

/// `--save-host`: the host document, written before anything else is.
fn save_host(host: &plan::Host, path: &Path) -> Result<(), Failure> {
    // A host document is a file: `--save-host /dev/sdb` must not write JSON over a disk.
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return Err(stop(
            StepId::Plan,
            Outcome::Precondition,
            format!("--save-host {}: not a regular file", path.display()),
        ));
    }
    let text = serde_json::to_string_pretty(host).map_err(|e| {
        stop(
            StepId::Plan,
            Outcome::UsageOrIo,
            format!("--save-host: {e}"),
        )
    })?;
    std::fs::write(path, text + "\n").map_err(|e| {
        stop(
            StepId::Plan,
            Outcome::UsageOrIo,
            format!("--save-host {}: {e}", path.display()),
        )
    })
}

/// The target named with `--disk`: an image still to be created (`--disk-size`), or one that is
/// there.
fn disk_override(o: &Options) -> Option<DiskOverride<'_>> {
    match (&o.disk, o.disk_size) {
        (Some(path), Some(size)) if !path.exists() => Some(DiskOverride::New {
            path,
            size_bytes: size,
        }),
        (Some(path), _) => Some(DiskOverride::Existing(path)),
        (None, _) => None,
    }
}

fn run_post(
    posts: &[plan::ScriptPlan],
    workdir: &Path,
    sink: &dyn EventSink,
    records: &mut Vec<apply::scripts::ScriptRecord>,
) -> Result<(), ApplyError> {
    if posts.is_empty() {
        return Ok(());
    }
    let step = Step::start(
        sink,
        StepId::Post,
        format!("{} %post script(s)", posts.len()),
        None,
    );
    for s in posts {
        if let Err(i) = crate::interrupt::check() {
            return Err(ApplyError {
                step: StepId::Post,
                outcome: Outcome::Interrupted,
                message: format!("{i} before {}; the disk is installed", s.at),
            });
        }
        if let Err(why) = apply::scripts::run(s, workdir, records) {
            if s.ignore_failure {
                step.warn(format!("{}: {why} (--ignorefailure=true)", s.at));
            } else {
                return Err(ApplyError {
                    step: StepId::Post,
                    outcome: Outcome::Script,
                    message: format!("{}: User-supplied %post script failed: {why}", s.at),
                });
            }
        }
    }
    step.finish();
    Ok(())
}
