//! Media read straight from an ISO9660 image file (the ESXi installer ISO, or one made with
//! `xorriso -as mkisofs -J -R`).
//!
//! Written by hand, and small on purpose: the ISO9660 crates on crates.io today either carry a
//! FUSE stack, a CLI and assertions on input into the library (`cdfs`) or are incomplete, and
//! reading files by path needs only the volume descriptors and directory records (ECMA-119 §8,
//! §9). Joliet names (UCS-2, case kept) are used when the image has them, else the ISO9660 names
//! without their `;1` version; lookups ignore case either way. Every offset and length read from
//! the image is checked against the image's size before use.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::manifest::check_relative;
use super::source::MediaSource;

const SECTOR: u64 = 2048;
/// Directories larger than this are not ones an installer ISO has; refuse rather than read them.
const MAX_DIR_BYTES: u64 = 16 << 20;

pub struct IsoSource {
    path: PathBuf,
    size: u64,
    block: u64,
    /// Extent and length of the root directory in the tree we read (Joliet or primary).
    root: (u64, u64),
    joliet: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    extent: u64,
    len: u64,
    dir: bool,
}

fn u32_le(b: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]))
}

impl IsoSource {
    pub fn open(path: &Path) -> Result<IsoSource> {
        let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        // Seeking to the end gives the size of a CD drive's block device too (its metadata says 0).
        let size = f
            .seek(SeekFrom::End(0))
            .with_context(|| format!("reading the size of {}", path.display()))?;
        let mut primary = None;
        let mut joliet = None;
        // Volume descriptors start at sector 16 and end with a terminator (type 255).
        for n in 16..64u64 {
            let mut d = [0u8; 2048];
            if (n + 1) * SECTOR > size {
                break;
            }
            f.seek(SeekFrom::Start(n * SECTOR))?;
            f.read_exact(&mut d)?;
            if &d[1..6] != b"CD001" {
                bail!(
                    "{}: not an ISO9660 image (no volume descriptor at sector {n})",
                    path.display()
                );
            }
            match d[0] {
                1 => primary = Some(d),
                2 if d[88] == b'%' && d[89] == b'/' && matches!(d[90], b'@' | b'C' | b'E') => {
                    joliet = Some(d)
                }
                255 => break,
                _ => {}
            }
        }
        let (desc, is_joliet) = match (joliet, primary) {
            (Some(j), _) => (j, true),
            (None, Some(p)) => (p, false),
            (None, None) => bail!("{}: no ISO9660 primary volume descriptor", path.display()),
        };
        let block = u64::from(u16::from_le_bytes([desc[128], desc[129]]));
        if block != SECTOR {
            bail!(
                "{}: logical block size {block} is not supported",
                path.display()
            );
        }
        let root = &desc[156..190];
        let src = IsoSource {
            path: path.to_path_buf(),
            size,
            block,
            root: (u32_le(root, 2), u32_le(root, 10)),
            joliet: is_joliet,
        };
        src.check_extent(src.root.0, src.root.1)?;
        Ok(src)
    }

    fn check_extent(&self, extent: u64, len: u64) -> Result<()> {
        let end = extent
            .checked_mul(self.block)
            .and_then(|s| s.checked_add(len));
        if end.is_none_or(|e| e > self.size) {
            bail!(
                "{}: extent {extent} (+{len} bytes) lies outside the image",
                self.path.display()
            );
        }
        Ok(())
    }

    fn read_dir(&self, extent: u64, len: u64) -> Result<Vec<Entry>> {
        if len > MAX_DIR_BYTES {
            bail!("{}: a directory of {len} bytes", self.path.display());
        }
        self.check_extent(extent, len)?;
        let mut f = File::open(&self.path)?;
        f.seek(SeekFrom::Start(extent * self.block))?;
        let mut buf = vec![0u8; usize::try_from(len)?];
        f.read_exact(&mut buf)?;
        let mut out = Vec::new();
        let mut pos = 0usize;
        while pos < buf.len() {
            let rec_len = usize::from(buf[pos]);
            if rec_len == 0 {
                // Records never cross a sector: a zero length means "go to the next sector".
                pos = (pos / SECTOR as usize + 1) * SECTOR as usize;
                continue;
            }
            if rec_len < 34 || pos + rec_len > buf.len() {
                bail!("{}: a malformed directory record", self.path.display());
            }
            let r = &buf[pos..pos + rec_len];
            let name_len = usize::from(r[32]);
            if 33 + name_len > rec_len {
                bail!("{}: a malformed directory record", self.path.display());
            }
            let raw = &r[33..33 + name_len];
            pos += rec_len;
            if raw == [0] || raw == [1] {
                continue; // "." and ".."
            }
            let name = if self.joliet {
                let units: Vec<u16> = raw
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
                String::from_utf16_lossy(&units)
            } else {
                String::from_utf8_lossy(raw).into_owned()
            };
            let name = name
                .split(';')
                .next()
                .unwrap_or("")
                .trim_end_matches('.')
                .to_string();
            out.push(Entry {
                name,
                extent: u32_le(r, 2),
                len: u32_le(r, 10),
                dir: r[25] & 0x02 != 0,
            });
        }
        Ok(out)
    }

    fn find(&self, path: &str) -> Result<Entry> {
        check_relative(path)?;
        let mut cur = Entry {
            name: String::new(),
            extent: self.root.0,
            len: self.root.1,
            dir: true,
        };
        for part in path.split('/') {
            if !cur.dir {
                bail!(
                    "{}: {path}: {} is not a directory",
                    self.path.display(),
                    cur.name
                );
            }
            cur = self
                .read_dir(cur.extent, cur.len)?
                .into_iter()
                .find(|e| e.name.eq_ignore_ascii_case(part))
                .with_context(|| format!("{}: no file {path} in the image", self.path.display()))?;
        }
        if cur.dir {
            bail!("{}: {path} is a directory", self.path.display());
        }
        self.check_extent(cur.extent, cur.len)?;
        Ok(cur)
    }
}

impl MediaSource for IsoSource {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
    fn location(&self) -> super::source::Location {
        super::source::Location::Local(self.path.clone())
    }
    fn open(&self, path: &str) -> Result<Box<dyn Read + Send>> {
        let e = self.find(path)?;
        let mut f =
            File::open(&self.path).with_context(|| format!("opening {}", self.path.display()))?;
        f.seek(SeekFrom::Start(e.extent * self.block))?;
        Ok(Box::new(f.take(e.len)))
    }
    fn size(&self, path: &str) -> Result<Option<u64>> {
        Ok(Some(self.find(path)?.len))
    }
}
