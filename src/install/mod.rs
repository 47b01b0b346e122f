//! The install driver: one run of source -> kickstart -> inventory -> plan -> apply -> report,
//! shared by `install`, `boot` and the tools in `xtask`. It owns the order that keeps a disk
//! safe: everything the run will need (the kickstart, the hardware, the media, the target, the
//! report path, the DPU payload) is checked before the first write, and a dry run, whether asked
//! for on the command line or by the kickstart's `dryrun`, writes nothing at all.

pub mod boot;
mod checks;
mod host;
pub mod probe;
mod read;
pub mod report;
mod session;

use std::path::{Path, PathBuf};

use crate::apply::{self, ApplyError};
use crate::dpu;
use crate::exit::Outcome;
use crate::inventory::Inventory;
use crate::plan::{self, Plan};
use crate::report::{EventSink, Step, StepId};
use crate::source::cmdline::BootOptions;
pub use checks::verify_media;
pub use host::{interpreters, media_facts, prepare, Prepared};
pub use probe::{DocumentKind, ProbeReport};
pub use report::InstallReport;
pub use session::Session;

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
    /// `reboot` in the kickstart, when the run succeeded: `Some(no_eject)`.
    pub reboot: Option<bool>,
    /// The plan, when the run got that far.
    pub plan: Option<Plan>,
    /// Nothing was written: `--dry-run`, or the kickstart's `dryrun`.
    pub dry_run: bool,
    /// Why it stopped, when it did.
    pub failure: Option<Failure>,
}

impl Ended {
    /// The run's exit class: its failure's, or success.
    pub fn outcome(&self) -> Outcome {
        self.failure
            .as_ref()
            .map_or(Outcome::Success, |f| f.outcome)
    }
}

/// A run that stopped: the step, the exit class and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub step: StepId,
    pub outcome: Outcome,
    pub message: String,
}

impl Failure {
    pub fn new(step: StepId, outcome: Outcome, message: impl Into<String>) -> Failure {
        Failure {
            step,
            outcome,
            message: message.into(),
        }
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

/// A safe point between two stages: a signal that arrived stops the run here.
fn safe_point(step: StepId) -> Result<(), Failure> {
    crate::interrupt::check()
        .map_err(|i| Failure::new(step, Outcome::Interrupted, format!("{step}: {i}")))
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

/// `--save-host`: the host document, written before anything else is.
fn save_host(host: &plan::Host, path: &Path) -> Result<(), Failure> {
    // A host document is a file: `--save-host /dev/sdb` must not write JSON over a disk.
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return Err(Failure::new(
            StepId::Plan,
            Outcome::Precondition,
            format!("--save-host {}: not a regular file", path.display()),
        ));
    }
    let text = serde_json::to_string_pretty(host).map_err(|e| {
        Failure::new(
            StepId::Plan,
            Outcome::UsageOrIo,
            format!("--save-host: {e}"),
        )
    })?;
    std::fs::write(path, text + "\n").map_err(|e| {
        Failure::new(
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
        if let Err(why) = apply::scripts::run(s, workdir, sink, records) {
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
