//! `probe --record`: copy the part of a live `/sys` the inventory reads into a fixture directory.
//!
//! The inventory is run once with device contents switched off, remembering every file, link
//! and directory it touched; exactly those are copied, symlinks recreated as relative links, so
//! the copy reads back the same way. Nothing under `dev/` is read.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;

use super::{disk, pci};
use crate::sysroot::{join_lexically, Sysroot};

/// Bytes copied per attribute file at most; sysfs text attributes are far smaller.
const MAX_FILE_BYTES: u64 = 64 * 1024;

#[derive(Debug, Default, Clone, Serialize)]
pub struct RecordSummary {
    pub files: usize,
    pub links: usize,
    pub dirs: usize,
    /// Paths that could not be read, with the reason.
    pub skipped: Vec<String>,
}

/// Records what the inventory reads below `sysroot` into `dest`, which must be new or empty.
pub fn record(sysroot: &Path, dest: &Path) -> anyhow::Result<RecordSummary> {
    record_with(sysroot, dest, &|_| ())
}

/// As [`record`], with `also` reading through the same seam whatever else the installer reads
/// (the boot options, the CD drives, the identity headers: stages above the inventory, which
/// the caller knows and this module does not).
pub(crate) fn record_with(
    sysroot: &Path,
    dest: &Path,
    also: &dyn Fn(&Sysroot),
) -> anyhow::Result<RecordSummary> {
    if dest.exists() {
        let mut entries =
            std::fs::read_dir(dest).with_context(|| format!("listing {}", dest.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty; record into a new directory",
                dest.display()
            );
        }
    }
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let sys = Sysroot::new(sysroot)?;
    disk::read_disks_without_content(&sys).context("reading disks")?;
    pci::read_functions(&sys).context("reading PCI functions")?;
    pci::read_slots(&sys).context("reading PCI slots")?;
    also(&sys);

    let mut copier = Copier {
        src: sys.root().to_path_buf(),
        dst: dest.to_path_buf(),
        summary: RecordSummary::default(),
    };
    for rel in sys.touched() {
        copier.copy_path(&rel, 0)?;
    }
    Ok(copier.summary)
}

struct Copier {
    src: PathBuf,
    dst: PathBuf,
    summary: RecordSummary,
}

impl Copier {
    fn copy_path(&mut self, rel: &Path, depth: u32) -> anyhow::Result<()> {
        if depth > 40 {
            self.summary
                .skipped
                .push(format!("{}: too many levels of links", rel.display()));
            return Ok(());
        }
        let parts: Vec<&std::ffi::OsStr> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        // `cur` is the real (link-free) path reached so far.
        let mut cur = PathBuf::new();
        for (i, part) in parts.iter().enumerate() {
            let next = cur.join(part);
            let src = self.src.join(&next);
            let meta = match std::fs::symlink_metadata(&src) {
                Ok(m) => m,
                Err(e) => {
                    self.summary
                        .skipped
                        .push(format!("{}: {e}", next.display()));
                    return Ok(());
                }
            };
            let last = i + 1 == parts.len();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&src)
                    .with_context(|| format!("reading link {}", src.display()))?;
                let resolved = join_lexically(&cur, &target);
                let link = self.dst.join(&next);
                if std::fs::symlink_metadata(&link).is_err() {
                    let dir = self.dst.join(&cur);
                    std::fs::create_dir_all(&dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                    std::os::unix::fs::symlink(relative(&cur, &resolved), &link)
                        .with_context(|| format!("creating link {}", link.display()))?;
                    self.summary.links += 1;
                }
                self.copy_path(&resolved, depth + 1)?;
                cur = resolved;
            } else {
                cur = next;
                if last {
                    self.copy_node(&cur, &meta)?;
                }
            }
        }
        Ok(())
    }

    fn copy_node(&mut self, rel: &Path, meta: &std::fs::Metadata) -> anyhow::Result<()> {
        let dst = self.dst.join(rel);
        if meta.is_dir() {
            if !dst.exists() {
                std::fs::create_dir_all(&dst)
                    .with_context(|| format!("creating {}", dst.display()))?;
                self.summary.dirs += 1;
            }
            return Ok(());
        }
        if !meta.is_file() || dst.exists() {
            return Ok(());
        }
        let src = self.src.join(rel);
        let mut bytes = Vec::new();
        let read =
            std::fs::File::open(&src).and_then(|f| f.take(MAX_FILE_BYTES).read_to_end(&mut bytes));
        if let Err(e) = read {
            self.summary.skipped.push(format!("{}: {e}", rel.display()));
            return Ok(());
        }
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&dst, &bytes).with_context(|| format!("writing {}", dst.display()))?;
        self.summary.files += 1;
        Ok(())
    }
}

/// The relative link that leads from directory `from` to `to` (both sysroot-relative, link-free).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let f: Vec<Component> = from.components().collect();
    let t: Vec<Component> = to.components().collect();
    let common = f.iter().zip(t.iter()).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c.as_os_str());
    }
    out
}
