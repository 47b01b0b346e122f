//! The guests' disks, deleted once judged. Each disk image is sparse, but an install writes
//! 60-100 MB into its own and a run makes 14 of them (about 0.9 GB at the end of a run, beside
//! the build); CI once ran out of space there. A block of scenarios whose outcomes all passed has
//! its disks deleted as soon as it is judged; a failed block's stay for inspection, and every
//! disk stays with `--keep-disks`.

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
        let passed = results[self.judged..].iter().all(|o| o.passed);
        self.judged = results.len();
        for disk in self.made_this_run() {
            if !self.settled.insert(disk.clone()) || spare.contains(&disk) {
                continue;
            }
            self.judge(&disk, passed);
        }
    }

    /// A spared disk, judged once the scenarios that made and needed it are: `passed` when all
    /// of them passed.
    pub(super) fn release(&self, disk: &Path, passed: bool) {
        self.judge(disk, passed);
        // Its mtools copies (remade by the later judge) go with it; kept, they were said with
        // their own block already.
        let copies = disk.with_extension("mtools");
        if passed || !self.settled.contains(&copies) {
            self.judge(&copies, passed);
        }
    }

    fn judge(&self, disk: &Path, passed: bool) {
        if self.keep || !disk.exists() {
            return;
        }
        if passed {
            remove(disk);
        } else {
            println!("   kept for inspection: {}", disk.display());
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn outcome(passed: bool) -> Outcome {
        Outcome {
            name: "x".into(),
            passed,
            elapsed: Duration::ZERO,
            detail: String::new(),
        }
    }

    #[test]
    fn a_passed_blocks_disks_go_a_failed_ones_stay_and_a_spared_one_waits() {
        let dir = tempfile::tempdir().unwrap();
        let disk = |n: &str| dir.path().join(format!("disk-{n}.img"));
        let make = |n: &str| std::fs::write(disk(n), b"x").unwrap();
        // An earlier run's disk, older than this run: never this run's to delete.
        make("old");
        let old = std::fs::File::options()
            .write(true)
            .open(disk("old"))
            .unwrap();
        old.set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        let mut sweep = DiskSweeper::new(dir.path(), false);
        let mut results = Vec::new();

        make("pxe");
        std::fs::create_dir(dir.path().join("disk-pxe.mtools")).unwrap();
        results.push(outcome(true));
        sweep.settle(&results, &[disk("pxe")]);
        assert!(disk("pxe").exists(), "spared for the upgrade");
        assert!(!dir.path().join("disk-pxe.mtools").exists());

        make("broken");
        results.push(outcome(false));
        sweep.settle(&results, &[]);
        assert!(disk("broken").exists(), "its block failed");

        // The failure above is not counted against the next block.
        make("vlan");
        results.extend([outcome(true), outcome(true)]);
        sweep.settle(&results, &[]);
        assert!(!disk("vlan").exists());
        assert!(disk("broken").exists(), "settled once, kept");

        // The upgrade's judge remade the pxe disk's mtools copies.
        std::fs::create_dir(dir.path().join("disk-pxe.mtools")).unwrap();
        sweep.release(&disk("pxe"), true);
        assert!(!disk("pxe").exists());
        assert!(!dir.path().join("disk-pxe.mtools").exists());
        assert!(disk("old").exists());
    }

    #[test]
    fn keep_disks_keeps_every_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut sweep = DiskSweeper::new(dir.path(), true);
        std::fs::write(dir.path().join("disk-a.img"), b"x").unwrap();
        sweep.settle(&[outcome(true)], &[]);
        sweep.release(&dir.path().join("disk-a.img"), true);
        assert!(dir.path().join("disk-a.img").exists());
    }
}
