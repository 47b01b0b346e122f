//! Helpers for the storage tests: sparse images, real tools, sparse-aware hashing.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

pub mod ks;
pub mod setup;

pub const MIB: u64 = 1024 * 1024;
pub const GIB: u64 = 1024 * MIB;

/// A sparse image file of `bytes` in `dir`.
pub fn image(dir: &Path, name: &str, bytes: u64) -> PathBuf {
    let p = dir.join(name);
    let f = File::create(&p).expect("create image");
    f.set_len(bytes).expect("size image");
    p
}

/// Path of an external tool, or a failing test that says how to get it.
pub fn tool(name: &str) -> PathBuf {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{name}` is not installed. The tests check our output with real tools: run \
         `cargo xtask test` (it installs them), or `apt-get install -y gdisk dosfstools mtools tmux`."
    );
}

/// What a run printed: its stdout, then its stderr.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Run a tool; returns (success, stdout, stderr).
pub fn run(name: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(tool(name))
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("running {name}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Offsets of the data extents of `f` (SEEK_DATA/SEEK_HOLE), within [start, end).
fn data_extents(f: &File, start: u64, end: u64) -> Vec<(u64, u64)> {
    let fd = f.as_raw_fd();
    let mut out = Vec::new();
    let mut pos = start as i64;
    while (pos as u64) < end {
        // SAFETY: plain lseek on an open fd.
        let d = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if d < 0 || d as u64 >= end {
            break;
        }
        // SAFETY: as above.
        let h = unsafe { libc::lseek(fd, d, libc::SEEK_HOLE) };
        let h = if h < 0 {
            end as i64
        } else {
            (h as u64).min(end) as i64
        };
        out.push((d as u64, h as u64));
        pos = h;
    }
    out
}

/// SHA-256 over the bytes [start, end) of `path`, hashing (offset, chunk) of every non-zero
/// 64 KiB chunk plus the range: equal for equal contents, fast on sparse images.
pub fn hash_range(path: &Path, start: u64, end: u64) -> String {
    const CHUNK: u64 = 64 * 1024;
    let mut f = File::open(path).expect("open for hashing");
    let mut h = Sha256::new();
    h.update(start.to_le_bytes());
    h.update(end.to_le_bytes());
    let mut buf = vec![0u8; CHUNK as usize];
    let mut done = start;
    for (d, e) in data_extents(&f, start, end) {
        // Chunks are aligned to `start`, each hashed once even if two extents share it.
        let mut pos = (d - (d - start) % CHUNK).max(done);
        while pos < e {
            let n = (end - pos).min(CHUNK) as usize;
            f.seek(SeekFrom::Start(pos)).expect("seek");
            f.read_exact(&mut buf[..n]).expect("read");
            if buf[..n].iter().any(|&b| b != 0) {
                h.update(pos.to_le_bytes());
                h.update(&buf[..n]);
            }
            pos += n as u64;
        }
        done = done.max(pos);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Hash of a whole image (its length included).
pub fn hash_image(path: &Path) -> String {
    let len = std::fs::metadata(path).expect("stat").len();
    hash_range(path, 0, len)
}

/// Copy [start, end) of `src` into a new sparse file `dst` (data extents only).
pub fn extract(src: &Path, start: u64, end: u64, dst: &Path) {
    let mut f = File::open(src).expect("open src");
    let mut o = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(dst)
        .expect("create dst");
    o.set_len(end - start).expect("size dst");
    let mut buf = vec![0u8; 1 << 20];
    for (d, e) in data_extents(&f, start, end) {
        let mut pos = d;
        while pos < e {
            let n = ((e - pos) as usize).min(buf.len());
            f.seek(SeekFrom::Start(pos)).expect("seek src");
            f.read_exact(&mut buf[..n]).expect("read src");
            if buf[..n].iter().any(|&b| b != 0) {
                o.seek(SeekFrom::Start(pos - start)).expect("seek dst");
                o.write_all(&buf[..n]).expect("write dst");
            }
            pos += n as u64;
        }
    }
}

/// Write `data` at `offset` of `path`.
pub fn poke(path: &Path, offset: u64, data: &[u8]) {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for poke");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    f.write_all(data).expect("poke");
}

/// Read `len` bytes at `offset` of `path`.
pub fn peek(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut f = File::open(path).expect("open for peek");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    let mut b = vec![0u8; len];
    f.read_exact(&mut b).expect("peek");
    b
}

/// Whether `needle` occurs anywhere in the data extents of `path` (fast on sparse images).
pub fn image_contains(path: &Path, needle: &[u8]) -> bool {
    let len = std::fs::metadata(path).expect("stat").len();
    let mut f = File::open(path).expect("open for search");
    let mut buf = Vec::new();
    for (d, e) in data_extents(&f, 0, len) {
        // Overlap the extent by the needle's length so a match across extents is found.
        let start = d.saturating_sub(needle.len() as u64);
        buf.resize((e - start) as usize, 0);
        f.seek(SeekFrom::Start(start)).expect("seek");
        f.read_exact(&mut buf).expect("read");
        if buf.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
    }
    false
}
pub mod http;

/// `cp -a FROM TO`: a copy with its symlinks kept.
pub fn cp_a(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap_or_else(|e| panic!("running cp: {e}"));
    assert!(ok.success(), "cp -a {} {}", from.display(), to.display());
}

/// A writable copy of the fixture sysroot `tests/fixtures/NAME` at `to`, for tests that add
/// device files (an rshim directory, disk images).
pub fn copy_fixture(name: &str, to: &Path) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    cp_a(&from, to);
    to.to_path_buf()
}

/// The SHA-256 of a whole file, in hex.
pub fn sha256_file(p: &Path) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(std::fs::read(p).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Copy `what` (`::/` for everything) out of the FAT file system at byte `offset` of `img`
/// into the directory `to`, with mtools.
pub fn mcopy_out(img: &Path, offset: u64, what: &str, to: &Path) {
    let (ok, _, err) = run(
        "mcopy",
        &[
            "-s",
            "-n",
            "-i",
            &format!("{}@@{offset}", img.display()),
            what,
            to.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
}

/// Rename every file and directory under `dir` to lower case, as Linux's iso9660 driver shows an
/// ISO without Rock Ridge (and as most PXE trees are copied).
pub fn lower_case_tree(dir: &Path) {
    let (ok, _, err) = run(
        "sh",
        &[
            "-c",
            &format!(
                "cd '{}' && for f in $(find . -depth -name '*[A-Z]*'); do mv \"$f\" \"$(dirname $f)/$(basename $f | tr A-Z a-z)\"; done",
                dir.display()
            ),
        ],
    );
    assert!(ok, "{err}");
}

/// The JSON lines a run printed on stdout (`--progress json`).
pub fn json_lines(o: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}
