//! `ksinstall iso customize`: a copy of the installer ISO (`cargo xtask image`) that carries a
//! kickstart, or a `ks=` URL, and more boot options, without rebuilding the image
//! (docs/IMAGE.md, *Customizing the ISO*). coreos-installer's `iso customize` is the model.
//!
//! The image's ISO holds a reserved file, `/ksinstall/embed.area`: [`AREA_SIZE`] bytes that
//! begin with [`MAGIC`] and are zeros after it. Customizing writes into that file's bytes in a
//! copy of the ISO; nothing else in the ISO changes (its size, its directories, the El Torito
//! and hybrid boot records stay as they are), so the copy boots exactly as the original does,
//! from a CD, a BMC's virtual media or a USB stick. The image's init mounts every ISO 9660
//! volume it finds, reads the area, and hands its options and kickstart to `ksinstall boot`.
//!
//! The area, as written here and read by `xtask/image/init`:
//!
//! ```text
//! KSINSTALL-EMBED-AREA-V1\n      the magic, always
//! kargs: <options>\n             boot options, one line (may be empty)
//! ks-bytes: <N>\n                the length of the kickstart, 0 for none
//! <N bytes: the kickstart>
//! zeros to the end
//! ```
//!
//! Why no ISO 9660 library: the file's data starts on a 2048-byte sector of its own (ISO 9660
//! puts every extent on a sector boundary), so the area is found by its magic at a sector start
//! and written in place; no directory needs reading or changing, which is all a library would add.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::source::cmdline::BootOptions;

/// The first bytes of the area, also of a blank one.
pub const MAGIC: &[u8] = b"KSINSTALL-EMBED-AREA-V1\n";
/// The area's size: a kickstart with long %pre/%post scripts fits.
pub const AREA_SIZE: usize = 256 * 1024;
/// The area's path on the ISO (the image builder puts it there).
pub const AREA_PATH: &str = "ksinstall/embed.area";
/// Where the image's init puts an embedded kickstart (`ks=file://` of it goes first).
pub const EMBEDDED_KS: &str = "/run/ksinstall/embedded-ks.cfg";
const SECTOR: u64 = 2048;

/// The area of an image as the builder writes it: the magic, then zeros.
pub fn blank_area() -> Vec<u8> {
    let mut a = vec![0u8; AREA_SIZE];
    a[..MAGIC.len()].copy_from_slice(MAGIC);
    a
}

/// What a customized ISO carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Embedded {
    /// Boot options the init adds to the kernel command line's (`ks=URL` among them).
    pub kargs: String,
    /// The kickstart itself, when one is embedded.
    pub kickstart: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IsoError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: no ksinstall embed area (/{AREA_PATH}): not an installer ISO of `cargo xtask image`, or one made before the area existed")]
    NoArea(PathBuf),
    #[error("{path}: {count} sectors start like an embed area; refusing to guess which one is the image's")]
    SeveralAreas { path: PathBuf, count: usize },
    #[error("{0}: the output already exists (it is never overwritten)")]
    OutputExists(PathBuf),
    #[error("the kickstart is {size} bytes; the embed area holds {max}")]
    TooLarge { size: usize, max: usize },
    #[error("the kickstart holds a NUL byte: a kickstart is text")]
    NotText,
    #[error("boot options must be one line")]
    MultiLine,
    #[error("boot options: {0}")]
    BadOptions(String),
    #[error("{0}: the embed area is damaged ({1})")]
    Damaged(PathBuf, &'static str),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IsoError + '_ {
    move |source| IsoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The byte offset of the embed area in the ISO at `path`: the one sector that starts with the
/// magic.
pub fn find_area(path: &Path) -> Result<u64, IsoError> {
    let mut f = File::open(path).map_err(io(path))?;
    let mut found = Vec::new();
    // Whole sectors, read 1 MiB at a time.
    let mut buf = vec![0u8; 512 * SECTOR as usize];
    let mut at = 0u64;
    loop {
        let n = read_full(&mut f, &mut buf).map_err(io(path))?;
        for (i, sector) in buf[..n].chunks(SECTOR as usize).enumerate() {
            if sector.starts_with(MAGIC) {
                found.push(at + i as u64 * SECTOR);
            }
        }
        at += n as u64;
        if n < buf.len() {
            break;
        }
    }
    match found.as_slice() {
        [] => Err(IsoError::NoArea(path.to_path_buf())),
        [one] => Ok(*one),
        many => Err(IsoError::SeveralAreas {
            path: path.to_path_buf(),
            count: many.len(),
        }),
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The area's bytes for `e`, checked: one line of options that read as boot options, a
/// kickstart of text that fits.
pub fn encode(e: &Embedded) -> Result<Vec<u8>, IsoError> {
    let kargs = e.kargs.trim();
    if kargs.contains(['\n', '\r', '\0']) {
        return Err(IsoError::MultiLine);
    }
    BootOptions::parse(kargs).map_err(|err| IsoError::BadOptions(err.to_string()))?;
    let ks = e.kickstart.as_deref().unwrap_or("");
    if ks.contains('\0') {
        return Err(IsoError::NotText);
    }
    let mut a = Vec::with_capacity(AREA_SIZE);
    a.extend_from_slice(MAGIC);
    a.extend_from_slice(format!("kargs: {kargs}\nks-bytes: {}\n", ks.len()).as_bytes());
    a.extend_from_slice(ks.as_bytes());
    if a.len() > AREA_SIZE {
        return Err(IsoError::TooLarge {
            size: ks.len(),
            max: AREA_SIZE - (a.len() - ks.len()),
        });
    }
    a.resize(AREA_SIZE, 0);
    Ok(a)
}

/// What the area at `offset` of the ISO at `path` carries.
pub fn read_embedded(path: &Path) -> Result<Embedded, IsoError> {
    let offset = find_area(path)?;
    let mut f = File::open(path).map_err(io(path))?;
    f.seek(SeekFrom::Start(offset)).map_err(io(path))?;
    let mut a = vec![0u8; AREA_SIZE];
    let n = read_full(&mut f, &mut a).map_err(io(path))?;
    let damaged = |why| IsoError::Damaged(path.to_path_buf(), why);
    if n < AREA_SIZE {
        return Err(damaged("it ends before its size"));
    }
    let body = &a[MAGIC.len()..];
    if body.first() == Some(&0) {
        return Ok(Embedded::default());
    }
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| damaged("not UTF-8"));
    let mut lines = body.splitn(3, |b| *b == b'\n');
    let kargs = lines
        .next()
        .and_then(|l| l.strip_prefix(b"kargs: "))
        .ok_or(damaged("no kargs line"))?;
    let len = lines
        .next()
        .and_then(|l| l.strip_prefix(b"ks-bytes: "))
        .and_then(|l| std::str::from_utf8(l).ok()?.parse::<usize>().ok())
        .ok_or(damaged("no ks-bytes line"))?;
    let rest = lines.next().unwrap_or(&[]);
    let ks = rest
        .get(..len)
        .ok_or(damaged("ks-bytes runs past the area"))?;
    Ok(Embedded {
        kargs: text(kargs)?,
        kickstart: (len > 0).then(|| text(ks)).transpose()?,
    })
}

/// Write a copy of the ISO `input` to `output` (which must not exist) carrying `e`. The input
/// is only read. Returns the area's offset in the copy.
pub fn customize(input: &Path, output: &Path, e: &Embedded) -> Result<u64, IsoError> {
    let area = encode(e)?;
    let offset = find_area(input)?;
    let mut src = File::open(input).map_err(io(input))?;
    let mut out = File::options()
        .write(true)
        .create_new(true)
        .open(output)
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::AlreadyExists => IsoError::OutputExists(output.to_path_buf()),
            _ => IsoError::Io {
                path: output.to_path_buf(),
                source: err,
            },
        })?;
    let written = (|| -> std::io::Result<()> {
        std::io::copy(&mut src, &mut out)?;
        out.seek(SeekFrom::Start(offset))?;
        out.write_all(&area)?;
        out.sync_all()
    })();
    if let Err(err) = written {
        // A half-written copy would boot as if customized: it goes.
        let _ = std::fs::remove_file(output);
        return Err(IsoError::Io {
            path: output.to_path_buf(),
            source: err,
        });
    }
    Ok(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_area_reads_back_what_was_encoded() {
        let e = Embedded {
            kargs: "ks=http://10.0.0.1/ks.cfg ip=10.0.0.9 netmask=255.255.255.0".into(),
            kickstart: Some("vmaccepteula\ninstall --firstdisk\n".into()),
        };
        let a = encode(&e).unwrap();
        assert_eq!(a.len(), AREA_SIZE);
        assert!(a.starts_with(MAGIC));
        let dir = tempfile::tempdir().unwrap();
        let iso = dir.path().join("x.iso");
        let mut img = vec![0u8; 8 * SECTOR as usize];
        img.extend_from_slice(&a);
        std::fs::write(&iso, img).unwrap();
        assert_eq!(find_area(&iso).unwrap(), 8 * SECTOR);
        assert_eq!(read_embedded(&iso).unwrap(), e);
    }

    #[test]
    fn options_and_kickstarts_that_cannot_work_are_refused() {
        let two = Embedded {
            kargs: "ks=usb\nip=1.2.3.4".into(),
            kickstart: None,
        };
        assert!(matches!(encode(&two), Err(IsoError::MultiLine)));
        let big = Embedded {
            kargs: String::new(),
            kickstart: Some("#".repeat(AREA_SIZE)),
        };
        assert!(matches!(encode(&big), Err(IsoError::TooLarge { .. })));
        let bad = Embedded {
            kargs: "netmask=255.255.255.0".into(),
            kickstart: None,
        };
        assert!(matches!(encode(&bad), Err(IsoError::BadOptions(_))));
    }
}
