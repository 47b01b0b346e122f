//! The one hardware seam: a directory standing for `/`, read where the kernel puts things.
//! Every stage that reads the machine (the inventory, the boot options, the CD drives, the
//! identity headers) reads through it, so `probe --record` captures all of it.
//!
//! Every path here is relative to the sysroot ("sys/block/sda"). The sysroot remembers what it
//! read so that `probe --record` can copy exactly that subset.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io::{ErrorKind, Read};
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, Context};

/// Sysfs attributes we read are short text; anything longer is not what we expect.
const MAX_ATTR_BYTES: u64 = 64 * 1024;

#[derive(Debug)]
pub struct Sysroot {
    root: PathBuf,
    touched: RefCell<BTreeSet<PathBuf>>,
}

impl Sysroot {
    pub fn new(root: &Path) -> anyhow::Result<Sysroot> {
        let root = root
            .canonicalize()
            .with_context(|| format!("sysroot {}", root.display()))?;
        Ok(Sysroot {
            root,
            touched: RefCell::new(BTreeSet::new()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The host path of a sysroot-relative path.
    pub(crate) fn host_path(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }

    /// Every sysroot-relative path read so far (files, links, listed directories).
    pub fn touched(&self) -> Vec<PathBuf> {
        self.touched.borrow().iter().cloned().collect()
    }

    fn touch(&self, rel: &Path) {
        self.touched.borrow_mut().insert(rel.to_path_buf());
    }

    /// A text attribute, trimmed. `Ok(None)` when the file does not exist.
    pub fn attr(&self, rel: &Path) -> anyhow::Result<Option<String>> {
        Ok(self
            .bytes(rel, MAX_ATTR_BYTES)?
            .map(|b| String::from_utf8_lossy(&b).trim().to_string()))
    }

    /// A small binary file (an EFI variable), at most `max` bytes. `Ok(None)` when it does not
    /// exist.
    pub fn bytes(&self, rel: &Path, max: u64) -> anyhow::Result<Option<Vec<u8>>> {
        let path = self.host_path(rel);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        self.touch(rel);
        let mut bytes = Vec::new();
        file.take(max)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(Some(bytes))
    }

    /// Like [`Sysroot::attr`], but a file that is there and cannot be read only logs a warning:
    /// one odd attribute must not hide the whole machine.
    pub(crate) fn attr_or_warn(&self, rel: &Path) -> Option<String> {
        match self.attr(rel) {
            Ok(v) => v.filter(|s| !s.is_empty()),
            Err(e) => {
                log::warn!("{e:#}");
                None
            }
        }
    }

    /// A hexadecimal attribute such as `0x15b3`.
    pub(crate) fn hex_attr(&self, rel: &Path) -> Option<u32> {
        let text = self.attr_or_warn(rel)?;
        let digits = text.strip_prefix("0x").unwrap_or(&text);
        match u32::from_str_radix(digits, 16) {
            Ok(v) => Some(v),
            Err(_) => {
                log::warn!("{}: {text:?} is not a hexadecimal number", rel.display());
                None
            }
        }
    }

    pub(crate) fn u64_attr(&self, rel: &Path) -> Option<u64> {
        let text = self.attr_or_warn(rel)?;
        match text.parse() {
            Ok(v) => Some(v),
            Err(_) => {
                log::warn!("{}: {text:?} is not a number", rel.display());
                None
            }
        }
    }

    /// The names in a directory, sorted. A missing directory is empty.
    pub fn list(&self, rel: &Path) -> anyhow::Result<Vec<String>> {
        let path = self.host_path(rel);
        let entries = match std::fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("listing {}", path.display())),
        };
        self.touch(rel);
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", path.display()))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// Where a path really is (symlinks resolved), relative to the sysroot.
    pub fn resolve(&self, rel: &Path) -> anyhow::Result<PathBuf> {
        let path = self.host_path(rel);
        let real = path
            .canonicalize()
            .with_context(|| format!("resolving {}", path.display()))?;
        self.touch(rel);
        let inside = real
            .strip_prefix(&self.root)
            .map_err(|_| anyhow!("{} leads outside the sysroot", path.display()))?;
        Ok(inside.to_path_buf())
    }

    /// The last component of a symlink's target, e.g. the driver name behind `driver`.
    pub(crate) fn link_name(&self, rel: &Path) -> Option<String> {
        let path = self.host_path(rel);
        match std::fs::read_link(&path) {
            Ok(target) => {
                self.touch(rel);
                target.file_name().map(|n| n.to_string_lossy().into_owned())
            }
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidInput) => None,
            Err(e) => {
                log::warn!("reading link {}: {e}", path.display());
                None
            }
        }
    }

    /// Whether a path exists (used for marker links such as `physfn`).
    pub fn exists(&self, rel: &Path) -> bool {
        let there = std::fs::symlink_metadata(self.host_path(rel)).is_ok();
        if there {
            self.touch(rel);
        }
        there
    }
}

/// Every network interface's name and hardware address (`sys/class/net/*/address`, lower
/// case), loopback and all-zero addresses left out, by name.
pub(crate) fn mac_addresses(sys: &Sysroot) -> Vec<(String, String)> {
    let net = Path::new("sys/class/net");
    let names = sys.list(net).unwrap_or_else(|e| {
        log::warn!("{e:#}");
        Vec::new()
    });
    names
        .into_iter()
        .filter(|n| n != "lo")
        .filter_map(|name| {
            let addr = sys.attr_or_warn(&net.join(&name).join("address"))?;
            let addr = addr.to_ascii_lowercase();
            let blank = addr.is_empty() || addr.bytes().all(|b| b == b'0' || b == b':');
            (!blank).then_some((name, addr))
        })
        .collect()
}

/// Joins a relative link target onto a directory without touching the file system.
pub(crate) fn join_lexically(dir: &Path, target: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in dir.join(target).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    out
}
