//! The simulator's `misc`: a plain file that behaves towards its reader as the rshim daemon's
//! `misc` does, so the product needs to know nothing about who serves it. With `CLEAR_ON_READ 1`
//! a read returns the log lines logged since the read before (the daemon clears its log buffer
//! on the read); commands are lines appended to the file, as they are written to the daemon.
//!
//! How a plain file clears on read: every change is a new file renamed over `misc` (readers get
//! one whole version, never a half-written one), each version watched with inotify for
//! `IN_CLOSE_NOWRITE`. A reader closing version N has read N's log lines: they are dropped and a
//! version without them is published. A command appended to an older version after it was
//! replaced is carried into the current one. Hand-written on libc's inotify: the notify crates
//! watch paths, and here each version's own inode must be told apart.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Duration;

struct Version {
    file: File,
    wd: i32,
    /// Bytes of this version already in the current one.
    carried: u64,
    /// The log lines it shows.
    lines: Vec<u64>,
}

pub(crate) struct Misc {
    path: PathBuf,
    inotify: OwnedFd,
    versions: Vec<Version>,
    /// The log not yet cleared by a read, oldest first.
    log: Vec<(u64, String)>,
    next: u64,
    serial: u64,
}

/// A line of `misc` that is a log line (the daemon indents them), not a field or a command.
fn is_log(line: &str) -> bool {
    line.starts_with(' ')
}

impl Misc {
    /// Publish the first version: `head` (the fields) and the log lines already there.
    pub(crate) fn create(dir: &Path, head: &str, old_log: &[String]) -> io::Result<Misc> {
        // SAFETY: no pointers; the descriptor is owned below.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let inotify = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut m = Misc {
            path: dir.join("misc"),
            inotify,
            versions: Vec::new(),
            log: Vec::new(),
            next: 0,
            serial: 0,
        };
        for l in old_log {
            m.push_line(l.clone());
        }
        m.publish(head.to_string(), 0)?;
        Ok(m)
    }

    fn push_line(&mut self, line: String) {
        self.log.push((self.next, line));
        self.next += 1;
    }

    /// Everything in the current version that is not a log line: the fields and the commands
    /// written so far, in order; and how many bytes of the version that was.
    fn text_without_log(&mut self) -> io::Result<(String, u64)> {
        let Some(cur) = self.versions.last_mut() else {
            return Ok((String::new(), 0));
        };
        let mut raw = Vec::new();
        cur.file.seek(SeekFrom::Start(0))?;
        cur.file.read_to_end(&mut raw)?;
        let text = String::from_utf8_lossy(&raw)
            .lines()
            .filter(|l| !is_log(l))
            .map(|l| format!("{l}\n"))
            .collect();
        Ok((text, raw.len() as u64))
    }

    /// A new version: `text` (`read` bytes of the current version) and the uncleared log,
    /// renamed over `misc`.
    fn publish(&mut self, text: String, read: u64) -> io::Result<()> {
        self.serial += 1;
        let tmp = self.path.with_file_name(format!(".misc.{}", self.serial));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let mut body = text;
        for (_, l) in &self.log {
            body += &format!(" {l}\n");
        }
        file.write_all(body.as_bytes())?;
        let c = CString::new(tmp.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the path"))?;
        // SAFETY: a valid descriptor and a NUL-terminated path.
        let wd = unsafe {
            libc::inotify_add_watch(self.inotify.as_raw_fd(), c.as_ptr(), libc::IN_CLOSE_NOWRITE)
        };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(prev) = self.versions.last_mut() {
            prev.carried = read;
        }
        self.versions.push(Version {
            file,
            wd,
            carried: body.len() as u64,
            lines: self.log.iter().map(|(n, _)| *n).collect(),
        });
        Ok(())
    }

    /// Commands written to a version after it was replaced: appended to the current one.
    fn carry(&mut self) -> io::Result<()> {
        let n = self.versions.len();
        let mut late = Vec::new();
        for v in self.versions.iter_mut().take(n.saturating_sub(1)) {
            let len = v.file.metadata()?.len();
            if len > v.carried {
                let mut buf = Vec::new();
                v.file.seek(SeekFrom::Start(v.carried))?;
                v.file.read_to_end(&mut buf)?;
                v.carried = len;
                late.extend(buf);
            }
        }
        if let (false, Some(cur)) = (late.is_empty(), self.versions.last_mut()) {
            cur.file.seek(SeekFrom::End(0))?;
            cur.file.write_all(&late)?;
        }
        Ok(())
    }

    /// Whether the last `CLEAR_ON_READ` written is 1 (the daemon starts with 0).
    fn clears_on_read(&mut self) -> io::Result<bool> {
        Ok(self
            .text_without_log()?
            .0
            .lines()
            .rfind(|l| l.starts_with("CLEAR_ON_READ ") && !l.contains('('))
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("1")))
    }

    /// The versions a reader has closed since the last look.
    fn closed(&mut self) -> io::Result<HashSet<i32>> {
        let mut wds = HashSet::new();
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: a valid descriptor and a buffer of the length given.
            let n =
                unsafe { libc::read(self.inotify.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                let e = io::Error::last_os_error();
                if n == 0 || e.kind() == io::ErrorKind::WouldBlock {
                    return Ok(wds);
                }
                return Err(e);
            }
            let mut at = 0usize;
            let n = n as usize;
            // struct inotify_event: wd (i32), mask (u32), cookie (u32), len (u32), name[len].
            while at + 16 <= n {
                let word = |i: usize| {
                    let b = &buf[at + i * 4..at + i * 4 + 4];
                    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
                };
                if word(1) & libc::IN_CLOSE_NOWRITE != 0 {
                    wds.insert(word(0) as i32);
                }
                at += 16 + word(3) as usize;
            }
        }
    }

    /// One turn: new lines from the card, reads that cleared lines, late commands.
    pub(crate) fn turn(&mut self, new: Vec<String>) -> io::Result<()> {
        self.carry()?;
        let closed = self.closed()?;
        let mut changed = !new.is_empty();
        if !closed.is_empty() && self.clears_on_read()? {
            let read: HashSet<u64> = self
                .versions
                .iter()
                .filter(|v| closed.contains(&v.wd))
                .flat_map(|v| v.lines.iter().copied())
                .collect();
            let before = self.log.len();
            self.log.retain(|(n, _)| !read.contains(n));
            changed |= self.log.len() != before;
        }
        for l in new {
            self.push_line(l);
        }
        if changed {
            let (text, read) = self.text_without_log()?;
            self.publish(text, read)?;
        }
        Ok(())
    }

    /// Serve until `stop` is set and the card has nothing more to log.
    pub(crate) fn serve(mut self, lines: Receiver<String>, stop: &AtomicBool) {
        loop {
            let mut new = Vec::new();
            let mut done = false;
            loop {
                match lines.try_recv() {
                    Ok(l) => new.push(l),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        done = true;
                        break;
                    }
                }
            }
            if let Err(e) = self.turn(new) {
                eprintln!("simulated rshim: {}: {e}", self.path.display());
            }
            if done && stop.load(Ordering::SeqCst) {
                let _ = self.carry();
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Misc {
    fn drop(&mut self) {
        for v in &self.versions {
            // SAFETY: a valid descriptor; a watch already gone is an error we do not need.
            unsafe { libc::inotify_rm_watch(self.inotify.as_raw_fd(), v.wd) };
        }
    }
}
