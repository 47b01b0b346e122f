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
    /// `DROP_MODE 1`: the daemon has let go of the device (another rshim driver, usually the
    /// card's BMC over USB, owns it, or rshim.conf says so). `boot` then refuses to open.
    pub drop_mode: bool,
    /// Log lines already in `misc` (only shown at `DISPLAY_LEVEL 2`).
    pub log: Vec<String>,
}

/// The key/value lines of `misc`, and the log lines (`" INFO ..."`, `" ERR ..."`, `" WARN ..."`).
pub(crate) fn parse_misc(text: &str) -> (BTreeMap<String, String>, Vec<String>) {
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
pub(crate) fn dev_name_address(dev_name: &str) -> Option<&str> {
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

pub(crate) fn read_device(dir: &Path) -> io::Result<RshimDevice> {
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
        drop_mode: fields.get("DROP_MODE").is_some_and(|v| v == "1"),
        log,
    })
}

/// The rshim device whose `DEV_NAME` names one of `addresses` (the card's rshim function, or
/// its NIC function in recovery), among `dev/rshim*` below the sysroot.
pub fn find(sysroot: &Path, addresses: &[String]) -> io::Result<Option<RshimDevice>> {
    let dev = sysroot.join("dev");
    // Listed through the hardware seam, so `probe --record` sees the look (the devices' own
    // files are the daemon's, read below).
    let Ok(sys) = crate::sysroot::Sysroot::new(sysroot) else {
        return Ok(None);
    };
    let names = sys.list(Path::new("dev")).unwrap_or_default();
    let dirs: Vec<PathBuf> = names
        .iter()
        .filter(|n| n.starts_with("rshim") && n[5..].chars().all(|c| c.is_ascii_digit()))
        .map(|n| dev.join(n))
        .collect();
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

/// Why talking to rshim failed, each with its own exit code (`dpu::RshimBackend` maps them).
#[derive(Debug, thiserror::Error)]
pub enum RshimError {
    /// The stream did not get through: a short write, nothing reading `boot`.
    #[error("{0}")]
    Transfer(String),
    #[error("{0}")]
    Timeout(String),
    /// The card's installer said it failed (`CRITICAL ERROR`, `ERR Installation failed`).
    #[error("{0}")]
    Failed(String),
    /// The card finished or booted without our payload's own line: whatever runs there now,
    /// nothing says it is our payload (an old OS saying `DPU is ready` is not success).
    #[error("{0}")]
    Unconfirmed(String),
    /// `boot` refused the open: locked (SECURE_NIC_MODE) or not permitted.
    #[error("{0}")]
    Refused(String),
    /// `EBUSY` on `boot`: another process holds it open and is pushing.
    #[error("{0}")]
    Busy(String),
    /// `DROP_MODE 1`: the daemon does not drive the card; someone else (the card's BMC) does.
    #[error("{0}")]
    Dropped(String),
    #[error("{0}")]
    Io(String),
    #[error("stopped waiting: the host install failed")]
    Cancelled,
    /// A signal asked the run to stop: the stream was sent whole, the DPU installs on without us.
    #[error("stopped waiting for the DPU: {0}; the boot stream was sent whole and the DPU may still be installing it (run the install again to be sure of what it runs)")]
    Interrupted(crate::interrupt::Interrupted),
}

/// What to say when the host's rshim daemon has let go of a card: the commands that take it
/// back (rshim.8: `FORCE_CMD 1` asks the other rshim driver to release the device and is only
/// accepted in drop mode; `DROP_MODE 0` then re-attaches, or fails with EACCES while the other
/// side still holds it).
pub(crate) fn take_back_hint(dir: &Path) -> String {
    let misc = dir.join("misc");
    format!(
        "{} says DROP_MODE 1: the host's rshim daemon has let go of this card, usually because the card's BMC owns rshim over USB. Take it back with `echo 'FORCE_CMD 1' > {m}` then `echo 'DROP_MODE 0' > {m}`, or stop rshim on the card's BMC (its rshim setting), then run the install again",
        misc.display(),
        m = misc.display()
    )
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
        Ok(Err(e)) => Err(open_error(boot, &e)),
        Err(_) => Err(RshimError::Timeout(format!(
            "{}: the rshim daemon did not open the boot device in {}s",
            boot.display(),
            limit.as_secs()
        ))),
    }
}

/// What each refusal of `boot`'s open means, from the daemon's `rshim_boot_open`: EINVAL in
/// drop mode, EPERM in locked mode (SECURE_NIC_MODE), EBUSY when another process has it open;
/// ENXIO is a FIFO with no reader (no daemon behind the path).
pub(crate) fn open_error(boot: &Path, e: &io::Error) -> RshimError {
    let dir = boot.parent().unwrap_or(boot);
    match e.raw_os_error() {
        Some(libc::ENXIO) => RshimError::Transfer(format!(
            "{}: nothing is reading the boot device (is the rshim daemon running?)",
            boot.display()
        )),
        Some(libc::EBUSY) => RshimError::Busy(format!(
            "{}: busy: another process is pushing a boot stream to this card (bfb-install, another ksinstall); nothing was sent",
            boot.display()
        )),
        Some(libc::EINVAL) => RshimError::Dropped(take_back_hint(dir)),
        Some(libc::EPERM) | Some(libc::EACCES) => RshimError::Refused(format!(
            "{}: the daemon refuses boot streams for this card (SECURE_NIC_MODE, or not permitted): {e}",
            boot.display()
        )),
        _ => RshimError::Transfer(format!("opening {}: {e}", boot.display())),
    }
}

/// How the DPU's install ended, read from its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Our payload's own line, logged by the `bf.cfg` hook (`bfrshlog`) after the card's
    /// installer ran it.
    Confirmed(String),
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

/// What one log line of the card means to the install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineKind {
    /// Our payload's own line: exactly the marker, at INFO level.
    Ours,
    /// The card's installer (or its firmware) reports that the install failed.
    InstallerFailed,
    /// The card came up in NIC mode.
    NicMode,
    /// An `ERR`/`WARN` line that is not the installer's failure: shown, not fatal.
    Warning,
    /// The card finished, rebooted or booted an OS: words every boot of any OS logs, which
    /// say nothing about our payload.
    Booted,
    Other,
}

/// Sort one log line. The finishing words bfb-install waits for (`Rebooting...`, `DPU is
/// ready`, `Linux up`, `finished`) are logged by the old OS at every boot too, so they never
/// count as success: only `marker` does.
pub(crate) fn line_kind(line: &str, marker: &str) -> LineKind {
    let t = line.trim();
    let lower = t.to_ascii_lowercase();
    if !marker.is_empty() && t.starts_with("INFO") && t.contains(marker) {
        return LineKind::Ours;
    }
    if lower.contains("critical error")
        || lower.contains("installation failed")
        || t.starts_with("PANIC")
        || t.starts_with("Exception")
        || t.starts_with("ASSERT")
    {
        return LineKind::InstallerFailed;
    }
    if lower.contains("in enhanced nic mode") {
        return LineKind::NicMode;
    }
    if t.starts_with("ERR") || t.starts_with("WARN") {
        return LineKind::Warning;
    }
    if lower.contains("rebooting...")
        || lower.contains("dpu is ready")
        || lower.contains("linux up")
        || lower.contains("installation finished")
    {
        return LineKind::Booted;
    }
    LineKind::Other
}

/// Follow `misc` until the card logs `marker` (success), its installer reports a failure, it
/// boots or finishes without our line, or it says nothing for `silence`. `seen` is the log as
/// it stood before the push (so an old boot's lines are not news). `ERR` lines that are not the
/// installer's failure go to `on_warning`. The caller has set `CLEAR_ON_READ 1` (as bfb-install
/// does), so each read after the first returns only the lines logged since the one before.
pub struct Watch<'a> {
    pub dir: &'a Path,
    pub seen: Vec<String>,
    pub marker: &'a str,
    pub silence: Duration,
    pub poll: Duration,
    pub cancel: &'a AtomicBool,
}

pub fn wait(
    w: Watch<'_>,
    on_line: &mut dyn FnMut(&str),
    on_warning: &mut dyn FnMut(&str),
) -> Result<(Finish, Vec<String>), RshimError> {
    let misc = w.dir.join("misc");
    let mut seen = w.seen;
    let mut first = true;
    let mut lines: Vec<String> = Vec::new();
    let mut last_word = Instant::now();
    loop {
        let now = read_misc(&misc)
            .map_err(|e| RshimError::Io(format!("reading {}: {e}", misc.display())))?;
        let (_, log) = parse_misc(&now);
        // With CLEAR_ON_READ 1 the daemon returns the lines since the last read; only the
        // first read still holds what was there before the push.
        let fresh = if !first {
            log.clone()
        } else {
            new_lines(&seen, log.clone())
        };
        first = false;
        seen = log;
        for l in fresh {
            last_word = Instant::now();
            on_line(&l);
            lines.push(l.clone());
            match line_kind(&l, w.marker) {
                LineKind::Ours => return Ok((Finish::Confirmed(l), lines)),
                LineKind::InstallerFailed => {
                    return Err(RshimError::Failed(format!("the DPU reported: {l}")))
                }
                LineKind::NicMode => {
                    return Err(RshimError::Failed(
                        "the DPU came up in NIC mode: vSphere Distributed Services Engine needs DPU mode"
                            .into(),
                    ))
                }
                LineKind::Warning => on_warning(&l),
                LineKind::Booted => {
                    return Err(RshimError::Unconfirmed(format!(
                        "the DPU said \"{l}\" but never logged our payload's line (\"{}\"): whatever it runs now is not known to be this payload",
                        w.marker
                    )))
                }
                LineKind::Other => {}
            }
        }
        if w.cancel.load(Ordering::SeqCst) {
            return Err(RshimError::Cancelled);
        }
        crate::interrupt::check().map_err(RshimError::Interrupted)?;
        if last_word.elapsed() >= w.silence {
            return Err(RshimError::Timeout(format!(
                "{}: no word from the DPU for {}s after the boot stream{}",
                misc.display(),
                w.silence.as_secs(),
                lines
                    .last()
                    .map(|l| format!(" (last: {l})"))
                    .unwrap_or_default()
            )));
        }
        std::thread::sleep(w.poll);
    }
}

/// `misc` settings changed for one install, put back as they were when dropped: on success,
/// on every error, and on a panic. Each restore is its own write, as the daemon reads them.
pub(crate) struct MiscRestore {
    dir: PathBuf,
    /// Commands that put things back, run last-registered first.
    undo: Vec<String>,
}

impl MiscRestore {
    pub fn new(dir: &Path) -> MiscRestore {
        MiscRestore {
            dir: dir.to_path_buf(),
            undo: Vec::new(),
        }
    }
    /// Send `command`, and remember `undo` to be sent when this is dropped.
    pub fn set(&mut self, command: &str, undo: String) -> io::Result<()> {
        self.undo.push(undo);
        misc_command(&self.dir, command)
    }
}

impl Drop for MiscRestore {
    fn drop(&mut self) {
        while let Some(c) = self.undo.pop() {
            if let Err(e) = misc_command(&self.dir, &c) {
                log::warn!(
                    "{}: putting back `{c}`: {e}",
                    self.dir.join("misc").display()
                );
            }
        }
    }
}

/// The settings that `misc` shows only at `DISPLAY_LEVEL 1`, and the log as it stood.
#[derive(Debug, Clone, Default)]
pub struct Before {
    pub display_level: String,
    pub boot_reset_skip: bool,
    pub clear_on_read: bool,
    /// The log before the push, when it could be read without draining it (`CLEAR_ON_READ 0`).
    pub log: Option<Vec<String>>,
}

/// Read what bfb-install's steps depend on, changing nothing for good: the display level is
/// raised to 1 to see `BOOT_RESET_SKIP` and `CLEAR_ON_READ`, to 2 to see the log only when
/// reading does not clear it (the log may be another reader's), then put back.
pub(crate) fn read_before(dir: &Path) -> Result<Before, RshimError> {
    let misc = dir.join("misc");
    let io = |e: io::Error| RshimError::Io(format!("{}: {e}", misc.display()));
    let (fields, _) = parse_misc(&read_misc(&misc).map_err(io)?);
    if fields.get("DROP_MODE").is_some_and(|v| v == "1") {
        return Err(RshimError::Dropped(take_back_hint(dir)));
    }
    if fields.get("SECURE_NIC_MODE").is_some_and(|v| v == "1") {
        return Err(RshimError::Refused(format!(
            "{}: SECURE_NIC_MODE is on, which disables rshim's boot device over PCIe",
            misc.display()
        )));
    }
    let display_level = fields
        .get("DISPLAY_LEVEL")
        .cloned()
        .unwrap_or_else(|| "0".into());
    let mut levels = MiscRestore::new(dir);
    levels
        .set("DISPLAY_LEVEL 1", format!("DISPLAY_LEVEL {display_level}"))
        .map_err(io)?;
    let (adv, _) = parse_misc(&read_misc(&misc).map_err(io)?);
    let flag = |k: &str| adv.get(k).is_some_and(|v| v == "1");
    let mut before = Before {
        display_level,
        boot_reset_skip: flag("BOOT_RESET_SKIP"),
        clear_on_read: flag("CLEAR_ON_READ"),
        log: None,
    };
    if !before.clear_on_read {
        misc_command(dir, "DISPLAY_LEVEL 2").map_err(io)?;
        before.log = Some(parse_misc(&read_misc(&misc).map_err(io)?).1);
    }
    drop(levels);
    Ok(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_line_is_success() {
        let m = "ksinstall payload abc run 42 installed";
        assert_eq!(line_kind(&format!("INFO: {m}"), m), LineKind::Ours);
        // Every boot of the old OS says these.
        for l in ["INFO: DPU is ready", "INFO: Linux up", "INFO: Rebooting..."] {
            assert_eq!(line_kind(l, m), LineKind::Booted, "{l}");
        }
        assert_eq!(
            line_kind("ERR: CRITICAL ERROR: installation failed", m),
            LineKind::InstallerFailed
        );
        assert_eq!(
            line_kind("ERR Installation failed", m),
            LineKind::InstallerFailed
        );
        assert_eq!(
            line_kind("ERR: mlxconfig: no such key", m),
            LineKind::Warning
        );
        // Our words at ERR level, or another run's id, are not our line.
        assert_ne!(line_kind(&format!("ERR: {m}"), m), LineKind::Ours);
        assert_ne!(
            line_kind("INFO: ksinstall payload abc run 41 installed", m),
            LineKind::Ours
        );
    }

    #[test]
    fn boot_open_errors_say_what_the_daemon_meant() {
        let boot = Path::new("/dev/rshim0/boot");
        let e = |n| open_error(boot, &io::Error::from_raw_os_error(n));
        assert!(
            matches!(e(libc::EBUSY), RshimError::Busy(m) if m.contains("another process is pushing"))
        );
        assert!(matches!(e(libc::EINVAL), RshimError::Dropped(m) if m.contains("FORCE_CMD 1")));
        assert!(matches!(e(libc::EPERM), RshimError::Refused(_)));
        assert!(matches!(e(libc::ENXIO), RshimError::Transfer(_)));
    }

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
