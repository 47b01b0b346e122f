//! The middle link of the lay-down chain: source -> `VerifyingReader` -> target. It hashes every
//! byte as it passes, refuses more bytes than expected, and fails the read that reaches the end
//! if the size or SHA-256 differ, so a writer never finishes a file from bad bytes unnoticed.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

/// A component did not match its metadata (a VIB descriptor, or MANIFEST.JSON for custom
/// media). Names the component and, where the caller gave it, what vouches for it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Mismatch {
    #[error("{name}: SHA-256 is {got}, expected {want}")]
    Hash {
        name: String,
        want: String,
        got: String,
    },
    #[error("{name}: ended after {got} bytes, expected {want}")]
    Short { name: String, want: u64, got: u64 },
    #[error("{name}: longer than the {want} bytes expected")]
    Long { name: String, want: u64 },
}

/// The media could not be read at all (a network failure that retries did not cure, an I/O
/// error of the CD): not the target's fault, so it is classed with bad media (exit 4).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{name}: reading the media failed: {message}")]
pub struct Unreadable {
    pub name: String,
    pub message: String,
}

pub(crate) struct VerifyingReader<R> {
    inner: R,
    name: String,
    want_size: u64,
    want_sha256: String,
    hasher: Sha256,
    seen: u64,
    /// Set once the end has been checked and found good.
    pub verified: bool,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, name: &str, want_size: u64, want_sha256: &str) -> Self {
        VerifyingReader {
            inner,
            name: name.to_string(),
            want_size,
            want_sha256: want_sha256.to_ascii_lowercase(),
            hasher: Sha256::new(),
            seen: 0,
            verified: false,
        }
    }

    fn read_inner(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            io::Error::new(
                e.kind(),
                Unreadable {
                    name: self.name.clone(),
                    message: e.to_string(),
                },
            )
        })
    }

    fn fail(m: Mismatch) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, m)
    }

    fn check_end(&mut self) -> io::Result<()> {
        if self.seen < self.want_size {
            return Err(Self::fail(Mismatch::Short {
                name: self.name.clone(),
                want: self.want_size,
                got: self.seen,
            }));
        }
        let got = hex(&std::mem::take(&mut self.hasher).finalize());
        if got != self.want_sha256 {
            return Err(Self::fail(Mismatch::Hash {
                name: self.name.clone(),
                want: self.want_sha256.clone(),
                got,
            }));
        }
        self.verified = true;
        Ok(())
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.verified {
            return Ok(0);
        }
        // Read one byte past the expected end, to notice a longer source.
        let room = self.want_size.saturating_sub(self.seen).saturating_add(1);
        let cap = usize::try_from(room).unwrap_or(usize::MAX).min(buf.len());
        let n = self.read_inner(&mut buf[..cap])?;
        if n == 0 {
            self.check_end()?;
            return Ok(0);
        }
        self.seen += n as u64;
        if self.seen > self.want_size {
            return Err(Self::fail(Mismatch::Long {
                name: self.name.clone(),
                want: self.want_size,
            }));
        }
        self.hasher.update(&buf[..n]);
        if self.seen == self.want_size {
            // Complete: check now rather than on the next call, so a writer that stops at the
            // expected length still gets the verdict.
            let mut probe = [0u8; 1];
            let extra = self.read_inner(&mut probe)?;
            if extra > 0 {
                return Err(Self::fail(Mismatch::Long {
                    name: self.name.clone(),
                    want: self.want_size,
                }));
            }
            self.check_end()?;
        }
        Ok(n)
    }
}

/// The `Mismatch` inside an error chain, if that is what went wrong.
pub(crate) fn mismatch_of(err: &anyhow::Error) -> Option<&Mismatch> {
    err.chain().find_map(|e| {
        e.downcast_ref::<Mismatch>().or_else(|| {
            e.downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|i| i.downcast_ref::<Mismatch>())
        })
    })
}

/// The `Unreadable` inside an error chain, if the media could not be read.
pub(crate) fn unreadable_of(err: &anyhow::Error) -> Option<&Unreadable> {
    err.chain().find_map(|e| {
        e.downcast_ref::<Unreadable>().or_else(|| {
            e.downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|i| i.downcast_ref::<Unreadable>())
        })
    })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The size and SHA-256 of everything a reader gives, read in 1 MiB pieces.
pub fn sha256_of(r: &mut dyn std::io::Read) -> std::io::Result<(u64, String)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex(&h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(data: &[u8], size: u64, sha: &str) -> io::Result<Vec<u8>> {
        let mut r = VerifyingReader::new(data, "x.v00", size, sha);
        let mut out = Vec::new();
        io::copy(&mut r, &mut out)?;
        assert!(r.verified);
        Ok(out)
    }

    #[test]
    fn passes_good_bytes_and_names_the_component_on_any_mismatch() {
        let data = b"hello world";
        let sha = sha256_hex(data);
        assert_eq!(run(data, 11, &sha).unwrap(), data);
        let e = run(b"hello worle", 11, &sha).unwrap_err().to_string();
        assert!(e.contains("x.v00: SHA-256"), "{e}");
        let e = run(b"hello", 11, &sha).unwrap_err().to_string();
        assert!(e.contains("ended after 5 bytes"), "{e}");
        let e = run(b"hello world!", 11, &sha).unwrap_err().to_string();
        assert!(e.contains("longer than"), "{e}");
        assert_eq!(run(b"", 0, &sha256_hex(b"")).unwrap(), b"");
    }
}
