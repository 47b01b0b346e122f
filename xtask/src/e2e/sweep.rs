//! The scenarios' disks, deleted once judged. Each disk image is sparse, but an install writes
//! 60-100 MB into its own and a run makes 16 of them (about 1 GB with their mtools copies, at the
//! end of a run where the build already holds several); CI once ran out of space there. A
//! scenario whose outcomes all passed has its disks deleted as soon as it is judged; a failed
//! one's stay for inspection, and every disk stays with `--keep-disks`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::judges::Outcome;

pub(super) struct DiskSweeper {
    work: PathBuf,
    keep: bool,
    /// Disks older than the run (an earlier run's) are never this run's to delete.
    since: SystemTime,
    /// Disks already judged, kept or deleted: never looked at again.
    settled: BTreeSet<PathBuf>,
    /// How many outcomes were judged at the last settle.
    judged: usize,
}

impl DiskSweeper {
    pub(super) fn new(work: &Path, keep: bool) -> Self {
        DiskSweeper {
            work: work.to_path_buf(),
            keep,
            // A file's mtime comes from the kernel's coarse clock, which may lag this one.
            since: SystemTime::now() - Duration::from_secs(1),
            settled: BTreeSet::new(),
            judged: 0,
        }
    }

    /// Settles the disks made since the last call, judged by the outcomes added since: deleted
    /// when all passed (but for `spare`, a disk a later scenario still needs), kept otherwise.
    pub(super) fn settle(&mut self, results: &[Outcome], spare: &[PathBuf]) {
        let passed = results
            .get(self.judged..)
            .is_none_or(|new| new.iter().all(|o| o.passed));
        self.judged = results.len();
        for disk in self.made_this_run() {
            if !self.settled.insert(disk.clone()) || spare.contains(&disk) {
                continue;
            }
            if passed && !self.keep {
                remove(&disk);
            } else {
                println!("   kept for inspection: {}", disk.display());
            }
        }
    }

    /// Deletes one spared disk once the scenario that needed it passed.
    pub(super) fn release(&self, disk: &Path, passed: bool) {
        if passed && !self.keep {
            remove(disk);
            remove(&disk.with_extension("mtools"));
        }
    }

    /// `disk-*.img` and the judges' `disk-*.mtools` copies, written since the run began.
    fn made_this_run(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.work) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("disk-") && (name.ends_with(".img") || name.ends_with(".mtools"))
            })
            .filter(|e| {
                e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t >= self.since)
            })
            .map(|e| e.path())
            .collect()
    }
}

/// A disk image or a directory of mtools copies; one that cannot be deleted only costs space.
fn remove(path: &Path) {
    let gone = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    if let Err(e) = gone {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("   could not delete {}: {e}", path.display());
        }
    }
}
