//! BlueField through rshim: the `rshim` daemon's device directory `/dev/rshimN` with `boot` (the
//! boot stream goes in) and `misc` (status, commands, and at `DISPLAY_LEVEL 2` the DPU's own
//! install log). The protocol is `bfb-install`'s (../shared/spec/dpu.md §2.1-2.2).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// What `misc` says, and where the device is.
#[derive(Debug, Clone, Serialize)]
pub struct RshimDevice {
    pub dir: PathBuf,
    /// `pcie-0000:a3:00.2`
    pub dev_name: String,
    /// `BlueField-3(Rev 1)`
    pub dev_info: Option<String>,
    /// `DPU mode`, `NIC mode`.
    pub bf_mode: Option<String>,
    pub opn: Option<String>,
    pub secure_nic_mode: bool,
    /// Log lines already in `misc` (only shown at `DISPLAY_LEVEL 2`).
    pub log: Vec<String>,
}

/// The key/value lines of `misc`, and the log lines (`" INFO ..."`, `" ERR ..."`, `" WARN ..."`).
pub fn parse_misc(text: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut fields = BTreeMap::new();
    let mut log = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if line.starts_with(' ') || is_log_line(t) {
            log.push(t.to_string());
            continue;
        }
        let (k, v) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
        if k.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            // `DISPLAY_LEVEL   0 (0:basic, 1:advanced, 2:log)`: the value without the legend.
            let v = v.trim();
            let v = v.split_once(" (").map(|(a, _)| a).unwrap_or(v).trim();
            fields.insert(k.to_string(), v.to_string());
        } else {
            log.push(t.to_string());
        }
    }
    (fields, log)
}

fn is_log_line(t: &str) -> bool {
    ["INFO", "ERR", "WARN"]
        .iter()
        .any(|p| t.starts_with(p) && t[p.len()..].starts_with([' ', ':']))
}

/// The PCI address in a `DEV_NAME` (`pcie-0000:a3:00.2`, `pcie-lf-0000:a3:00.0`).
pub fn dev_name_address(dev_name: &str) -> Option<&str> {
    dev_name
        .strip_prefix("pcie-lf-")
        .or_else(|| dev_name.strip_prefix("pcie-"))
}

/// Read `misc` as the rshim daemon serves it: the daemon builds the whole text on the first
/// read of an open file and answers every later read with end-of-file, whatever the offset. So
/// one `read()` into a buffer larger than the daemon's (4069 bytes) is the whole text;
/// `read_to_string` would get only its first 32-byte read.
pub fn read_misc(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 64 << 10];
    let n = loop {
        match f.read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

pub fn read_device(dir: &Path) -> io::Result<RshimDevice> {
    let misc = dir.join("misc");
    let text = read_misc(&misc)?;
    let (fields, log) = parse_misc(&text);
    Ok(RshimDevice {
        dir: dir.to_path_buf(),
        dev_name: fields.get("DEV_NAME").cloned().unwrap_or_default(),
        dev_info: fields.get("DEV_INFO").cloned(),
        bf_mode: fields.get("BF_MODE").cloned(),
        opn: fields.get("OPN_STR").cloned(),
        secure_nic_mode: fields.get("SECURE_NIC_MODE").is_some_and(|v| v == "1"),
        log,
    })
}

/// The rshim device whose `DEV_NAME` names one of `addresses` (the card's rshim function, or
/// its NIC function in recovery), among `dev/rshim*` below the sysroot.
pub fn find(sysroot: &Path, addresses: &[String]) -> io::Result<Option<RshimDevice>> {
    let dev = sysroot.join("dev");
    let Ok(entries) = std::fs::read_dir(&dev) else {
        return Ok(None);
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("rshim") && n[5..].chars().all(|c| c.is_ascii_digit())
            })
        })
        .collect();
    dirs.sort();
    for d in dirs {
        if !d.join("misc").exists() {
            continue;
        }
        // A device we cannot read (owned by the card's BMC, a stale daemon) is not this card's
        // answer; the next one may be.
        let r = match read_device(&d) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("{}: {e}", d.join("misc").display());
                continue;
            }
        };
        if dev_name_address(&r.dev_name)
            .is_some_and(|a| addresses.iter().any(|x| x.eq_ignore_ascii_case(a)))
        {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

/// Why talking to rshim failed, each with its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum RshimError {
    #[error("{0}")]
    Transfer(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Io(String),
    #[error("stopped waiting: the host install failed")]
    Cancelled,
}

/// Send a command line to `misc` (`DISPLAY_LEVEL 2`): one write per command, as the daemon
/// reads them.
pub fn misc_command(dir: &Path, command: &str) -> io::Result<()> {
    let mut f = OpenOptions::new().append(true).open(dir.join("misc"))?;
    f.write_all(format!("{command}\n").as_bytes())
}

fn wait_writable(fd: i32, timeout: Duration) -> io::Result<bool> {
    let events = super::transport::poll_fd(fd, libc::POLLOUT, timeout)?;
    Ok(events.is_some_and(|r| r & (libc::POLLOUT | libc::POLLERR) != 0))
}

/// Stream `payload` into `boot`. The device drains its boot FIFO as the DPU reads; a FIFO that
/// does not drain for `stall` is a timeout (rshim's own `BOOT_TIMEOUT` does the same), a
/// device that stops taking bytes is a short write. Returns the bytes sent and their SHA-256.
pub fn push(
    dir: &Path,
    payload: &Path,
    stall: Duration,
    progress: &mut dyn FnMut(u64),
) -> Result<(u64, String), RshimError> {
    let boot = dir.join("boot");
    let mut src = File::open(payload)
        .map_err(|e| RshimError::Io(format!("opening {}: {e}", payload.display())))?;
    let total = src.metadata().map(|m| m.len()).unwrap_or(0);
    // Non-blocking, so a device with nobody behind it fails at once instead of hanging, and a
    // stalled FIFO is seen by poll() rather than blocking a write forever.
    let mut out = open_boot(&boot, stall)?;
    let fd = out.as_raw_fd();
    let mut buf = vec![0u8; 1 << 20];
    let mut sent = 0u64;
    let mut hash = Sha256::new();
    loop {
        let n = src
            .read(&mut buf)
            .map_err(|e| RshimError::Io(format!("reading {}: {e}", payload.display())))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        let mut at = 0;
        while at < n {
            match out.write(&buf[at..n]) {
                Ok(0) => {
                    return Err(RshimError::Transfer(format!(
                        "{}: short write: the device took {sent} of {total} bytes",
                        boot.display()
                    )))
                }
                Ok(k) => {
                    at += k;
                    sent += k as u64;
                    progress(sent);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let ready = wait_writable(fd, stall)
                        .map_err(|e| RshimError::Transfer(format!("{}: {e}", boot.display())))?;
                    if !ready {
                        return Err(RshimError::Timeout(format!(
                            "{}: the DPU took no bytes for {}s ({sent} of {total} sent)",
                            boot.display(),
                            stall.as_secs()
                        )));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // rshim's own BOOT_TIMEOUT: the DPU stopped draining its boot FIFO.
                Err(e) if e.raw_os_error() == Some(libc::ETIMEDOUT) => {
                    return Err(RshimError::Timeout(format!(
                        "{}: the DPU stopped taking the boot stream ({sent} of {total} bytes sent): {e}",
                        boot.display()
                    )))
                }
                Err(e) => {
                    return Err(RshimError::Transfer(format!(
                        "{}: short write: the device took {sent} of {total} bytes ({e})",
                        boot.display()
                    )))
                }
            }
        }
    }
    drop(out);
    Ok((sent, crate::media::verify::hex(&hash.finalize())))
}

/// Open `boot` without waiting for ever: a FIFO with no reader fails at once (ENXIO), a busy
/// device is refused (EBUSY), and a hung daemon (whose CUSE open never returns) is a timeout.
fn open_boot(boot: &Path, limit: Duration) -> Result<File, RshimError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = boot.to_path_buf();
    std::thread::spawn(move || {
        let r = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path);
        let _ = tx.send(r);
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(f)) => Ok(f),
        Ok(Err(e)) => Err(match e.raw_os_error() {
            Some(libc::ENXIO) => RshimError::Transfer(format!(
                "{}: nothing is reading the boot device (is the rshim daemon running?)",
                boot.display()
            )),
            Some(libc::EBUSY) => RshimError::Refused(format!(
                "{}: busy (another push, or the card's BMC owns rshim): {e}",
                boot.display()
            )),
            _ => RshimError::Transfer(format!("opening {}: {e}", boot.display())),
        }),
        Err(_) => Err(RshimError::Timeout(format!(
            "{}: the rshim daemon did not open the boot device in {}s",
            boot.display(),
            limit.as_secs()
        ))),
    }
}

/// How the DPU's install ended, read from its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// `Rebooting...`, `DPU is ready`, `Linux up`.
    Ready(String),
}

/// The log lines of this read that were not in the last one. `misc` either returns the whole
/// log again with new lines at the end (`CLEAR_ON_READ 0`, the default), or only what came since
/// the last read (`CLEAR_ON_READ 1`). Log lines are compared, not the whole text: the status
/// lines above them change from read to read (`UP_TIME`).
fn new_lines(seen: &[String], now: Vec<String>) -> Vec<String> {
    if now.starts_with(seen) {
        now[seen.len()..].to_vec()
    } else {
        now
    }
}

/// Follow `misc` until the DPU says it is done, fails, or says nothing for `silence`.
pub fn wait(
    dir: &Path,
    baseline: &str,
    silence: Duration,
    poll: Duration,
    cancel: &AtomicBool,
    on_line: &mut dyn FnMut(&str),
) -> Result<(Finish, Vec<String>), RshimError> {
    let misc = dir.join("misc");
    let mut seen = parse_misc(baseline).1;
    let mut lines: Vec<String> = Vec::new();
    let mut last_word = Instant::now();
    let failed = |lines: &[String]| {
        RshimError::Failed(format!(
            "the DPU reported: {}",
            lines
                .iter()
                .filter(|x| is_error_line(x))
                .cloned()
                .collect::<Vec<_>>()
                .join(" | ")
        ))
    };
    loop {
        let now = read_misc(&misc)
            .map_err(|e| RshimError::Io(format!("reading {}: {e}", misc.display())))?;
        let (_, log) = parse_misc(&now);
        let fresh = new_lines(&seen, log.clone());
        seen = log;
        for l in fresh {
            last_word = Instant::now();
            on_line(&l);
            let lower = l.to_ascii_lowercase();
            lines.push(l.clone());
            // Firmware panics end the boot at once; CRITICAL ERROR is bfb-install's failure.
            if lower.contains("critical error")
                || l.starts_with("PANIC")
                || l.starts_with("Exception")
                || l.starts_with("ASSERT")
            {
                return Err(failed(&lines));
            }
            if lower.contains("in enhanced nic mode") {
                return Err(RshimError::Failed(
                    "the DPU came up in NIC mode: vSphere Distributed Services Engine needs DPU mode"
                        .into(),
                ));
            }
            if lower.contains("rebooting...")
                || lower.contains("dpu is ready")
                || lower.contains("linux up")
            {
                // The OS installer logs `ERR Installation failed` and still reboots.
                if lines.iter().any(|x| is_error_line(x)) {
                    return Err(failed(&lines));
                }
                return Ok((Finish::Ready(l), lines));
            }
        }
        if cancel.load(Ordering::SeqCst) {
            return Err(RshimError::Cancelled);
        }
        if last_word.elapsed() >= silence {
            return Err(RshimError::Timeout(format!(
                "{}: no word from the DPU for {}s after the boot stream{}",
                misc.display(),
                silence.as_secs(),
                lines
                    .last()
                    .map(|l| format!(" (last: {l})"))
                    .unwrap_or_default()
            )));
        }
        std::thread::sleep(poll);
    }
}

fn is_error_line(l: &str) -> bool {
    l.starts_with("ERR")
        || l.starts_with("PANIC")
        || l.starts_with("Exception")
        || l.starts_with("ASSERT")
        || l.to_ascii_lowercase().contains("critical error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misc_fields_and_log_lines() {
        let text = "DISPLAY_LEVEL   2 (0:basic, 1:advanced, 2:log)\nBF_MODE         DPU mode\nDEV_NAME        pcie-0000:a3:00.2\nDEV_INFO        BlueField-3(Rev 1)\n INFO[BL2]: start\n INFO: Rebooting...\n";
        let (f, log) = parse_misc(text);
        assert_eq!(f["DISPLAY_LEVEL"], "2");
        assert_eq!(f["BF_MODE"], "DPU mode");
        assert_eq!(dev_name_address(&f["DEV_NAME"]), Some("0000:a3:00.2"));
        assert_eq!(log, vec!["INFO[BL2]: start", "INFO: Rebooting..."]);
    }

    #[test]
    fn new_lines_whether_or_not_the_log_is_cleared_on_read() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // Kept: an old install's "Rebooting..." is not news.
        assert_eq!(
            new_lines(
                &v(&["INFO: Rebooting..."]),
                v(&["INFO: Rebooting...", "INFO: start"])
            ),
            v(&["INFO: start"])
        );
        // Cleared on read: everything is news.
        assert_eq!(
            new_lines(&v(&["INFO: a"]), v(&["INFO: b"])),
            v(&["INFO: b"])
        );
    }
}
