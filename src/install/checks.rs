//! What is checked, and made, around the plan: the report path and the target are writable, the
//! image file the plan was made for is created only after every check, the kernel's random pool
//! is ready, and local media is hashed in full before the first write.

use std::path::{Path, PathBuf};

use super::DiskOverride;
use super::{Failure, Options};
use crate::exit::Outcome;
use crate::media::Media;
use crate::plan::Plan;
use crate::report::{Event, EventSink, Step, StepId};

/// The report must be writable before anything is: an install whose report cannot be written
/// would end in an error after the disk was already erased.
pub(super) fn report_path(o: &Options) -> Result<(), Failure> {
    let Some(path) = &o.report else {
        return Ok(());
    };
    // A report is a file: `--report /dev/sdb` would write JSON over a disk, even on a dry run.
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            return Err(Failure::new(
                StepId::Plan,
                Outcome::Precondition,
                format!("--report {}: not a regular file", path.display()),
            ));
        }
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
        .map_err(|e| {
            Failure::new(
                StepId::Plan,
                Outcome::Precondition,
                format!("--report {}: cannot be written: {e}", path.display()),
            )
        })
}

/// The target must open for writing now (a write-protected card, a read-only image, a disk in
/// use), or the install would stop after the plan with the DPU perhaps already flashed. An image
/// still to be created needs a directory that takes it.
/// A dry run makes no file to find out: it looks at the directory only.
pub(super) fn target_writable(
    plan: &Plan,
    disk: Option<DiskOverride<'_>>,
    dry_run: bool,
) -> Result<(), Failure> {
    let refuse = |what: &Path, e: std::io::Error| {
        Failure::new(
            StepId::Plan,
            Outcome::Precondition,
            format!("{}: cannot be written: {e}", what.display()),
        )
    };
    // The disks clearpart clears are written too, and must be the disks the plan read.
    for c in &plan.cleared {
        crate::storage::BlockDev::check_writable(&c.path).map_err(|e| refuse(&c.path, e))?;
        let size = crate::storage::BlockDev::open_read_only(&c.path, c.logical_sector_size)
            .map(|d| d.size_bytes())
            .map_err(|e| refuse(&c.path, std::io::Error::other(format!("{e:#}"))))?;
        if size != c.size_bytes {
            return Err(Failure::new(
                StepId::Plan,
                Outcome::Precondition,
                format!(
                    "clearpart: {} ({}) is {size} bytes, not the {} bytes its sysfs entry says: not cleared",
                    c.name,
                    c.path.display(),
                    c.size_bytes
                ),
            ));
        }
    }
    if let Some(DiskOverride::New { path, .. }) = disk {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if dry_run {
            let meta = std::fs::metadata(dir).map_err(|e| refuse(dir, e))?;
            if !meta.is_dir() || meta.permissions().readonly() {
                let e = std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "not a writable directory",
                );
                return Err(refuse(dir, e));
            }
            return Ok(());
        }
        let probe = tempfile::tempfile_in(dir).map_err(|e| refuse(dir, e))?;
        drop(probe);
        return datastore_disks_writable(plan, refuse);
    }
    crate::storage::BlockDev::check_writable(&plan.target.path)
        .map_err(|e| refuse(&plan.target.path, e))?;
    datastore_disks_writable(plan, refuse)
}

/// The `part` datastore disks, like the target, before anything is written.
fn datastore_disks_writable(
    plan: &Plan,
    refuse: impl Fn(&Path, std::io::Error) -> Failure,
) -> Result<(), Failure> {
    for d in &plan.datastore_disks {
        crate::storage::BlockDev::check_writable(&d.path).map_err(|e| refuse(&d.path, e))?;
        // The disk must still be the one planned: checked here, before the install disk is
        // written, not when its turn comes.
        let dev = crate::storage::BlockDev::open_read_only(&d.path, d.layout.logical_sector_size)
            .map_err(|e| refuse(&d.path, std::io::Error::other(format!("{e:#}"))))?;
        if dev.size_bytes() != d.layout.disk_bytes
            || dev.logical_sector_size() != d.layout.logical_sector_size
        {
            let e = std::io::Error::other(format!(
                "{} holds {} bytes in {}-byte sectors; the plan is for {} bytes in {}-byte sectors",
                d.name,
                dev.size_bytes(),
                dev.logical_sector_size(),
                d.layout.disk_bytes,
                d.layout.logical_sector_size
            ));
            return Err(refuse(&d.path, e));
        }
    }
    Ok(())
}

/// Create the `--disk` image file the plan was made for, now that every check has passed.
pub(super) fn create_image(o: &Options) -> Result<Option<PathBuf>, Failure> {
    let (Some(path), Some(size)) = (&o.disk, o.disk_size) else {
        return Ok(None);
    };
    if path.exists() {
        return Ok(None);
    }
    let io = |e: std::io::Error| {
        Failure::new(
            StepId::Partition,
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
pub(super) fn wait_for_entropy(sink: &dyn EventSink) {
    let mut byte = [0u8; 1];
    // SAFETY: getrandom writes at most `byte.len()` bytes through the pointer.
    let rc = unsafe { libc::getrandom(byte.as_mut_ptr().cast(), byte.len(), libc::GRND_NONBLOCK) };
    if rc >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN) {
        return;
    }
    let message = "the kernel's random number generator is not ready yet (no hardware entropy source: RDRAND or virtio-rng); waiting for it";
    // The plan draws the GUIDs: the wait is the plan's.
    sink.emit(Event::Warning {
        step: StepId::Plan,
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
        StepId::Media,
        "checking every component of the media",
        Some(total),
    );
    media.verify_all(&mut |done| step.progress(done))?;
    step.finish();
    Ok(())
}
