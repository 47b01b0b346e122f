//! Where the media's bytes come from: a directory (an extracted ISO, a mounted CD) or an HTTP(S)
//! base URL. Every source hands out plain `Read` streams, so the lay-down is one chain of
//! readers: source -> SHA-256 -> target, as coreos-installer does.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::manifest::check_relative;

/// Where media are, as data: a local file or directory, or a URL (never a display string read
/// back as a path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory, an ISO image file or a CD drive on this machine.
    Local(PathBuf),
    /// An `http(s)://` base URL (a password in it kept: use `describe` for messages).
    Url(String),
}

pub trait MediaSource: Send + Sync {
    /// For messages: the directory or URL (a password in a URL redacted).
    fn describe(&self) -> String;
    /// Where the media are.
    fn location(&self) -> Location;
    /// Open the file at a media path (checked with `check_relative`), reading from its start.
    fn open(&self, path: &str) -> Result<Box<dyn Read + Send>>;
    /// The file's size, when the source can tell without reading it.
    fn size(&self, path: &str) -> Result<Option<u64>>;
}

/// A directory tree. Names are matched exactly, then without case (ISO9660 names are upper case,
/// `boot.cfg` names lower case).
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    pub fn new(root: impl Into<PathBuf>) -> Result<DirSource> {
        let root = root.into();
        // The system's own words for why (no such file or directory, permission denied).
        let meta =
            std::fs::metadata(&root).map_err(|e| anyhow::anyhow!("{}: {e}", root.display()))?;
        anyhow::ensure!(
            meta.is_dir(),
            "{}: neither a directory, an ISO image nor an http(s):// URL",
            root.display()
        );
        Ok(DirSource { root })
    }

    fn resolve(&self, path: &str) -> Result<PathBuf> {
        check_relative(path)?;
        let mut cur = self.root.clone();
        for part in path.split('/') {
            let exact = cur.join(part);
            if exact.exists() {
                cur = exact;
                continue;
            }
            cur = find_ignoring_case(&cur, part)
                .with_context(|| format!("{}: no file {path} on the media", self.root.display()))?;
        }
        // A symlink in the tree must not lead outside it.
        let real = cur
            .canonicalize()
            .with_context(|| format!("{}", cur.display()))?;
        let root = self
            .root
            .canonicalize()
            .with_context(|| format!("{}", self.root.display()))?;
        anyhow::ensure!(
            real.starts_with(&root),
            "{path}: leads outside the media ({})",
            real.display()
        );
        Ok(real)
    }
}

fn find_ignoring_case(dir: &Path, name: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .find(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .map(|e| e.path())
}

impl MediaSource for DirSource {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }
    fn location(&self) -> Location {
        Location::Local(self.root.clone())
    }
    fn open(&self, path: &str) -> Result<Box<dyn Read + Send>> {
        let p = self.resolve(path)?;
        let f = std::fs::File::open(&p).with_context(|| format!("opening {}", p.display()))?;
        Ok(Box::new(f))
    }
    fn size(&self, path: &str) -> Result<Option<u64>> {
        let p = self.resolve(path)?;
        Ok(Some(
            std::fs::metadata(&p)
                .with_context(|| format!("{}", p.display()))?
                .len(),
        ))
    }
}

/// An HTTP(S) base URL: `BASE/PATH` for each file, streamed through the installer's HTTP client
/// (certificates, timeouts, retries, and resuming a dropped transfer: `crate::http`).
pub struct HttpSource {
    base: String,
    http: crate::http::Http,
    /// Which spelling last answered (0 as given, 1 lower case, 2 upper case): a server's tree
    /// has one case throughout, so it is tried first and each file costs one request.
    spelling: std::sync::atomic::AtomicUsize,
}

impl HttpSource {
    pub fn new(base: &str, http: crate::http::Http) -> HttpSource {
        HttpSource {
            base: base.trim_end_matches('/').to_string(),
            http,
            spelling: std::sync::atomic::AtomicUsize::new(0),
        }
    }
    fn url(&self, path: &str) -> Result<String> {
        check_relative(path)?;
        Ok(format!("{}/{}", self.base, path))
    }
}

impl HttpSource {
    /// The path as given, then in lower and in upper case: a web server's names keep the case
    /// of the tree it serves (upper case copied from an ISO, lower case from most PXE trees),
    /// while BOOT.CFG names modules in lower case. The error reported is that of the spelling
    /// tried first.
    fn first_of<T>(&self, path: &str, f: impl Fn(&str) -> Result<T>) -> Result<T> {
        use std::sync::atomic::Ordering;
        let spellings = [
            path.to_string(),
            path.to_ascii_lowercase(),
            path.to_ascii_uppercase(),
        ];
        let last = self.spelling.load(Ordering::Relaxed).min(2);
        let order = std::iter::once(last).chain((0..3).filter(|&i| i != last));
        let mut first = None;
        let mut tried: Vec<&str> = Vec::new();
        for i in order {
            if tried.contains(&spellings[i].as_str()) {
                continue;
            }
            tried.push(&spellings[i]);
            match f(&self.url(&spellings[i])?) {
                Ok(v) => {
                    self.spelling.store(i, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        Err(first.unwrap_or_else(|| anyhow::anyhow!("{path}: no such file on the server")))
    }
}

impl MediaSource for HttpSource {
    fn describe(&self) -> String {
        crate::http::redact(&self.base)
    }
    fn location(&self) -> Location {
        Location::Url(self.base.clone())
    }
    fn open(&self, path: &str) -> Result<Box<dyn Read + Send>> {
        self.first_of(path, |url| self.http.open(url))
    }
    fn size(&self, path: &str) -> Result<Option<u64>> {
        self.first_of(path, |url| self.http.size(url))
    }
}
