//! `ksinstall media check`: the install's whole media verification without a target. Every file
//! the install would lay down is matched to its VIB payload and read through the verifier (size
//! and plain SHA-256), a thread per core; every file is reported, not just the first bad one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use super::imgdb::{self, Covered};
use super::manifest::module_path;
use super::real::{self, Signatures};
use super::source::MediaSource;
use super::verify::{self, VerifyingReader};
use super::{BootCfg, MediaError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    /// Size and plain SHA-256 match the VIB descriptor.
    Verified,
    /// No VIB covers it (named, never called verified).
    NotCovered,
    Missing {
        message: String,
    },
    Mismatch {
        message: String,
    },
    Unreadable {
        message: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct FileVerdict {
    pub file: String,
    pub vib: Option<String>,
    pub payload: Option<String>,
    pub size: Option<u64>,
    #[serde(flatten)]
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub location: String,
    pub profile: String,
    pub version: Option<String>,
    pub build: Option<String>,
    pub files: Vec<FileVerdict>,
    pub verified: usize,
    pub not_covered: usize,
    pub failed: usize,
    pub signatures: Signatures,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.failed == 0 && !self.signatures.failed()
    }

    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut s = format!(
            "{}: ESXi {} ({}), image profile {}\n",
            self.location,
            self.version.as_deref().unwrap_or("?"),
            self.build.as_deref().unwrap_or("?"),
            self.profile
        );
        for f in &self.files {
            let verdict = match &f.verdict {
                Verdict::Verified => "verified".to_string(),
                Verdict::NotCovered => "not covered by any VIB".to_string(),
                Verdict::Missing { message } => format!("MISSING: {message}"),
                Verdict::Mismatch { message } => format!("BAD: {message}"),
                Verdict::Unreadable { message } => format!("UNREADABLE: {message}"),
            };
            let _ = writeln!(
                s,
                "{:<14} {:<58} {:<14} {:>12}  {verdict}",
                f.file,
                f.vib.as_deref().unwrap_or("-"),
                f.payload.as_deref().unwrap_or("-"),
                f.size.map_or("-".to_string(), |n| n.to_string()),
            );
        }
        let _ = writeln!(
            s,
            "{} files verified, {} not covered by any VIB, {} failed; signatures: {}",
            self.verified, self.not_covered, self.failed, self.signatures
        );
        s
    }
}

/// A file to check: its media path and the payload that covers it.
struct Job {
    path: String,
    covered: Covered,
}

/// Check the media at `source` against their `imgdb.tgz`. An error only when the metadata
/// itself (BOOT.CFG, imgdb.tgz) cannot be read; a bad file is a verdict.
pub fn check(
    source: &dyn MediaSource,
    anchor: Option<&super::signature::Anchor>,
) -> Result<CheckReport, MediaError> {
    let name = source.describe();
    let bad = |file: &str, message: String| MediaError::Invalid {
        source_name: name.clone(),
        file: file.to_string(),
        message,
    };
    let cfg_bytes = super::read_small(source, "BOOT.CFG", super::READ_LIMIT)
        .map_err(|e| bad("BOOT.CFG", format!("{e:#}")))?;
    let cfg = BootCfg::parse(&String::from_utf8_lossy(&cfg_bytes))
        .map_err(|e| bad("BOOT.CFG", e.to_string()))?;
    let tgz = super::read_small(source, real::IMGDB, super::IMGDB_LIMIT)
        .map_err(|e| bad(real::IMGDB, format!("{e:#}")))?;
    let db = imgdb::parse(&tgz).map_err(|e| bad(real::IMGDB, e.to_string()))?;
    let covered = db.covered().map_err(|e| bad(real::IMGDB, e.to_string()))?;
    let loaded: Vec<String> = cfg
        .files()
        .iter()
        .filter_map(|r| module_path(r).ok())
        .collect();
    let mut jobs: Vec<Job> = covered
        .iter()
        .filter(|c| imgdb::is_bank_module(&c.payload.kind))
        .map(|c| Job {
            path: loaded
                .iter()
                .find(|l| l.eq_ignore_ascii_case(&c.file))
                .cloned()
                .unwrap_or_else(|| c.file.clone()),
            covered: c.clone(),
        })
        .collect();
    let mut uncovered: Vec<String> = Vec::new();
    for (path, payload) in real::loader_files() {
        match real::loader_payload(&db, payload) {
            Some(c) if !jobs.iter().any(|j| j.path == path) => jobs.push(Job {
                path: path.to_string(),
                covered: c,
            }),
            Some(_) => {}
            None if source.size(path).is_ok() => uncovered.push(path.to_string()),
            None => {}
        }
    }
    for f in real::NOT_COVERED {
        if loaded.iter().any(|l| l.eq_ignore_ascii_case(f)) || source.size(f).is_ok() {
            uncovered.push(f.to_string());
        }
    }
    uncovered.push("BOOT.CFG".into());
    let mut files = run_jobs(source, &jobs);
    files.extend(uncovered.into_iter().map(|file| FileVerdict {
        file,
        vib: None,
        payload: None,
        size: None,
        verdict: Verdict::NotCovered,
    }));
    let count = |f: &dyn Fn(&Verdict) -> bool| files.iter().filter(|v| f(&v.verdict)).count();
    let verified = count(&|v| *v == Verdict::Verified);
    let not_covered = count(&|v| *v == Verdict::NotCovered);
    Ok(CheckReport {
        location: name.clone(),
        profile: db.profile.name.clone(),
        version: db.version(),
        build: cfg.build.clone(),
        failed: files.len() - verified - not_covered,
        verified,
        not_covered,
        signatures: real::signatures_with(&db, anchor),
        files,
    })
}

/// Read every job through the verifier, a thread per core (largest files first), and return
/// the verdicts in the jobs' order.
fn run_jobs(source: &dyn MediaSource, jobs: &[Job]) -> Vec<FileVerdict> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(jobs[i].covered.payload.size));
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<FileVerdict>>> = Mutex::new(vec![None; jobs.len()]);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..threads.min(jobs.len()).max(1) {
            scope.spawn(|| loop {
                let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return;
                };
                let v = check_one(source, &jobs[i]);
                if let Ok(mut o) = out.lock() {
                    o[i] = Some(v);
                }
            });
        }
    });
    out.into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

fn check_one(source: &dyn MediaSource, job: &Job) -> FileVerdict {
    let p = &job.covered.payload;
    let verdict = match (p.sha256.as_deref(), source.size(&job.path)) {
        (_, Err(e)) => Verdict::Missing {
            message: format!("{e:#}"),
        },
        (None, _) => Verdict::Mismatch {
            message: "the descriptor gives no sha-256 of the file".into(),
        },
        (Some(sha), Ok(_)) => match source.open(&job.path) {
            Err(e) => Verdict::Unreadable {
                message: format!("{e:#}"),
            },
            Ok(r) => {
                let mut r = VerifyingReader::new(r, &job.path, p.size, sha);
                match std::io::copy(&mut r, &mut std::io::sink()) {
                    Ok(_) => Verdict::Verified,
                    Err(e) => {
                        let e = anyhow::Error::from(e);
                        match verify::mismatch_of(&e) {
                            Some(m) => Verdict::Mismatch {
                                message: m.to_string(),
                            },
                            None => Verdict::Unreadable {
                                message: format!("{e:#}"),
                            },
                        }
                    }
                }
            }
        },
    };
    FileVerdict {
        file: job.path.clone(),
        vib: Some(job.covered.vib.clone()),
        payload: Some(p.name.clone()),
        size: Some(p.size),
        verdict,
    }
}
