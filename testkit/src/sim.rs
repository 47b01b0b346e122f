//! A simulated BlueField behind rshim, for tests, the demo and the benchmark: it stands where
//! the rshim daemon stands (`dev/rshimN/boot` a FIFO, `dev/rshimN/misc` a file that clears its
//! log on read as the daemon's does: [`crate::misc`]), reads the boot stream at a fixed rate,
//! checks it as a DPU's boot ROM and installer would (magic, header length, CRC of every image
//! of the BF-Bundle, then `bf.cfg` and the archive of ESXio components that `bfb-install -c -f`
//! appends) and answers in `misc` with the status lines a real DPU logs: `Rebooting...`, a
//! `CRITICAL ERROR`, or nothing at all.
//!
//! It parses the stream with its own code, not with [`crate::bfb`], so a mistake in the writer
//! of the synthetic bundles cannot be mirrored by the reader that judges them.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How the simulated DPU behaves once it has the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Installs and logs `Rebooting...`.
    Succeed,
    /// Logs an error and `CRITICAL ERROR`.
    CriticalError,
    /// Logs `ERR Installation failed`, then reboots anyway (as the OS installer does).
    ErrorThenReboot,
    /// Takes the stream and never says a word.
    Silent,
    /// Stops reading (closes the boot device) after this many bytes.
    CloseAfter(u64),
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `pcie-0000:a3:00.2`
    pub dev_name: String,
    /// `BlueField-3(Rev 1)`
    pub dev_info: String,
    pub bf_mode: String,
    pub behaviour: Behaviour,
    /// Bytes per second the DPU drains from the boot FIFO; `None` as fast as it comes.
    pub rate: Option<u64>,
    /// Log lines already in `misc` (an earlier install's, say).
    pub old_log: Vec<String>,
}

impl Config {
    pub fn new(pci_address: &str, dev_info: &str) -> Config {
        Config {
            dev_name: format!("pcie-{pci_address}"),
            dev_info: dev_info.into(),
            bf_mode: "DPU mode".into(),
            behaviour: Behaviour::Succeed,
            rate: None,
            old_log: Vec::new(),
        }
    }
}

/// One image of the stream as the DPU saw it.
#[derive(Debug, Clone)]
pub struct SeenImage {
    pub id: u8,
    pub len: u32,
    pub crc_ok: bool,
    pub sha256: String,
}

/// What the simulated DPU received and made of it.
#[derive(Debug, Clone, Default)]
pub struct Received {
    pub bytes: u64,
    pub sha256: String,
    pub images: Vec<SeenImage>,
    /// Files of the ESXio archive (the tar after `bf.cfg`): name and SHA-256.
    pub esxio: Vec<(String, String)>,
    /// The text after the last image, up to the ESXio archive (`bf.cfg`).
    pub bf_cfg: String,
    /// Command lines written to `misc`.
    pub commands: Vec<String>,
    /// What was wrong with the stream; empty when it was sound.
    pub problems: Vec<String>,
    /// When the first and the last byte arrived.
    pub transfer: Option<Duration>,
}

pub struct RshimSim {
    pub dir: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Received>>,
    misc: Option<JoinHandle<()>>,
}

const MISC_HEAD: &str = "DISPLAY_LEVEL   0 (0:basic, 1:advanced, 2:log)\n";

impl RshimSim {
    /// Create `dir` (`<sysroot>/dev/rshimN`) with its `boot` FIFO and `misc` file and start
    /// listening.
    pub fn start(dir: &Path, config: Config) -> io::Result<RshimSim> {
        std::fs::create_dir_all(dir)?;
        let boot = dir.join("boot");
        let _ = std::fs::remove_file(&boot);
        let c = std::ffi::CString::new(boot.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the path"))?;
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut head = String::from(MISC_HEAD);
        head += &format!(
            "BF_MODE         {}\nBOOT_MODE       1 (0:rshim, 1:emmc, 2:emmc-boot-swap)\nBOOT_TIMEOUT    300 (seconds)\nDROP_MODE       0 (0:normal, 1:drop)\nSW_RESET        0 (1: reset)\nDEV_NAME        {}\nDEV_INFO        {}\nOPN_STR         N/A\nUP_TIME         1234(s)\nSECURE_NIC_MODE 0 (0:no, 1:yes)\nFORCE_CMD       0 (1: send Force command)\n",
            config.bf_mode, config.dev_name, config.dev_info
        );
        let misc = crate::misc::Misc::create(dir, &head, &config.old_log)?;
        // Open our end now, non-blocking, so the writer never waits on an open and we can stop.
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&boot)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (log, lines) = std::sync::mpsc::channel();
        let stop_misc = stop.clone();
        let misc = std::thread::spawn(move || misc.serve(lines, &stop_misc));
        let stop2 = stop.clone();
        let dir2 = dir.to_path_buf();
        let thread = std::thread::spawn(move || run(reader, &dir2, &config, &stop2, &log));
        Ok(RshimSim {
            dir: dir.to_path_buf(),
            stop,
            thread: Some(thread),
            misc: Some(misc),
        })
    }

    /// Stop waiting (if no stream ever came) and return what was received, with every command
    /// written to `misc` up to now.
    pub fn finish(mut self) -> Received {
        let mut r = self.stop_all().unwrap_or_default();
        r.commands = commands(&self.dir);
        r
    }

    fn stop_all(&mut self) -> Option<Received> {
        self.stop.store(true, Ordering::SeqCst);
        let r = self.thread.take().and_then(|t| t.join().ok());
        if let Some(m) = self.misc.take() {
            let _ = m.join();
        }
        r
    }
}

impl Drop for RshimSim {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn poll_in(fd: i32, ms: i32) -> (bool, bool) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the duration of the call.
    match unsafe { libc::poll(&mut pfd, 1, ms) } {
        n if n > 0 => (
            pfd.revents & libc::POLLIN != 0,
            pfd.revents & libc::POLLHUP != 0,
        ),
        _ => (false, false),
    }
}

/// The commands written to `misc` so far. Read through a descriptor opened for writing too, so
/// that closing it is not taken for a reader's read (which clears the log).
fn commands(dir: &Path) -> Vec<String> {
    let mut text = String::new();
    if let Ok(mut f) = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("misc"))
    {
        let _ = f.read_to_string(&mut text);
    }
    text.lines()
        .filter(|l| {
            [
                "DISPLAY_LEVEL ",
                "CLEAR_ON_READ ",
                "SW_RESET ",
                "FORCE_CMD ",
                "BOOT_RESET_SKIP ",
            ]
            .iter()
            .any(|c| l.starts_with(c) && !l.contains('('))
        })
        .map(str::to_string)
        .collect()
}

fn run(
    mut reader: std::fs::File,
    dir: &Path,
    config: &Config,
    stop: &AtomicBool,
    log: &Sender<String>,
) -> Received {
    let fd = reader.as_raw_fd();
    // Kept in the pieces it came in: a growing Vec would copy the stream again at each doubling,
    // CPU that a real DPU spends on its own cores, not the host's.
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    let mut received = 0usize;
    let mut got_any = false;
    let mut first: Option<Instant> = None;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if let Behaviour::CloseAfter(n) = config.behaviour {
            if received as u64 >= n {
                break;
            }
        }
        let (readable, hup) = poll_in(fd, 50);
        if readable {
            let want = match config.behaviour {
                Behaviour::CloseAfter(n) => buf.len().min((n - received as u64) as usize),
                _ => buf.len(),
            };
            match reader.read(&mut buf[..want]) {
                Ok(0) => {
                    if got_any {
                        break;
                    }
                }
                Ok(k) => {
                    got_any = true;
                    let start = *first.get_or_insert_with(Instant::now);
                    pieces.push(buf[..k].to_vec());
                    received += k;
                    if let Some(rate) = config.rate {
                        // Drain no faster than `rate`: sleep until the bytes so far are due.
                        let due = Duration::from_secs_f64(received as f64 / rate as f64);
                        if let Some(wait) = due.checked_sub(start.elapsed()) {
                            std::thread::sleep(wait);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        } else if hup && got_any {
            break;
        } else if stop.load(Ordering::SeqCst) && !got_any {
            return Received {
                commands: commands(dir),
                ..Received::default()
            };
        }
    }
    let transfer = first.map(|f| f.elapsed());
    drop(reader);
    let stream = pieces.concat();
    let mut r = judge(&stream);
    r.transfer = transfer;
    r.commands = commands(dir);
    let level2 = r.commands.iter().any(|c| c.trim() == "DISPLAY_LEVEL 2");
    // The log shows in misc only at DISPLAY_LEVEL 2, as on a real rshim.
    let lines: Vec<String> = match &config.behaviour {
        Behaviour::Silent | Behaviour::CloseAfter(_) => Vec::new(),
        Behaviour::ErrorThenReboot => vec![
            "INFO: Installing ESXio".into(),
            "ERR Installation failed".into(),
            "INFO: Rebooting...".into(),
        ],
        Behaviour::CriticalError => vec![
            "INFO: Installing ESXio".into(),
            "ERR: mmcblk0: I/O error writing the OS partition".into(),
            "ERR: CRITICAL ERROR: installation failed".into(),
        ],
        Behaviour::Succeed if !r.problems.is_empty() => vec![
            format!("ERR: bad boot stream: {}", r.problems.join("; ")),
            "ERR: CRITICAL ERROR: installation failed".into(),
        ],
        Behaviour::Succeed => {
            let label = cfg_value(&r.bf_cfg, "KSINSTALL_PAYLOAD_LABEL").unwrap_or_default();
            let mut v = vec![
                "INFO: bf.cfg found".into(),
                format!("INFO: Installing {label}"),
                "INFO: Updating ATF/UEFI".into(),
                "INFO: Updating NIC firmware".into(),
            ];
            // The installer calls bf.cfg's bfb_post_install; bfrshlog puts its words in the log.
            if let Some(h) = hook_line(&r.bf_cfg) {
                v.push("INFO: Running bfb_post_install from bf.cfg".into());
                v.push(h);
            }
            v.push("INFO: Installation finished".into());
            v.push("INFO: Rebooting...".into());
            v
        }
    };
    if level2 {
        for l in lines {
            // A real DPU logs over minutes; a short gap keeps the lines in separate reads.
            std::thread::sleep(Duration::from_millis(20));
            let _ = log.send(l);
        }
    }
    r
}

/// The argument of `bfrshlog` in the `bfb_post_install` function of `bf.cfg`: what a card that
/// runs the hook logs (the simulator here, the rshim daemon fake in the tests).
pub fn hook_line(cfg: &str) -> Option<String> {
    let body = cfg.split("bfb_post_install()").nth(1)?;
    let call = body
        .lines()
        .find(|l| l.trim_start().starts_with("bfrshlog "))?;
    let arg = call.trim_start().strip_prefix("bfrshlog ")?.trim();
    Some(arg.trim_matches('"').to_string())
}

fn cfg_value(cfg: &str, key: &str) -> Option<String> {
    cfg.lines().find_map(|l| {
        let v = l.trim().strip_prefix(key)?.strip_prefix('=')?;
        Some(v.trim_matches('"').to_string())
    })
}

use crate::hex;

/// Read a boot stream as the DPU does: image after image while the magic is there.
fn judge(stream: &[u8]) -> Received {
    let mut r = Received {
        bytes: stream.len() as u64,
        sha256: hex(&Sha256::digest(stream)),
        ..Received::default()
    };
    let mut at = 0usize;
    while at + 24 <= stream.len() {
        let w0 = u64::from_le_bytes(stream[at..at + 8].try_into().unwrap_or_default());
        if w0 as u32 != 0x1302_6642 {
            break;
        }
        let w1 = u64::from_le_bytes(stream[at + 8..at + 16].try_into().unwrap_or_default());
        let id = (w0 >> 56) as u8;
        let hdr_words = (w0 >> 52) & 0xf;
        let len = w1 as u32;
        let crc = (w1 >> 32) as u32;
        if hdr_words != 3 {
            r.problems
                .push(format!("image {id}: header length {hdr_words} words"));
        }
        if (w0 >> 32) & 0xf != 1 {
            r.problems
                .push(format!("image {id}: major version {}", (w0 >> 32) & 0xf));
        }
        let padded = (len as usize).div_ceil(8) * 8;
        let body = at + 24;
        if body + padded > stream.len() {
            r.problems.push(format!(
                "image {id}: {len} bytes announced, {} left",
                stream.len() - body
            ));
            at = stream.len();
            break;
        }
        let image = &stream[body..body + len as usize];
        let crc_ok = crc32fast::hash(&stream[body..body + padded]) == crc;
        if !crc_ok {
            r.problems.push(format!("image {id}: CRC mismatch"));
        }
        r.images.push(SeenImage {
            id,
            len,
            crc_ok,
            sha256: hex(&Sha256::digest(image)),
        });
        at = body + padded;
    }
    if r.images.is_empty() {
        r.problems.push("no boot stream magic at the start".into());
    }
    // What bfb-install appends: `bf.cfg` (text), then the `-f` archive (a tar).
    let trailer = &stream[at.min(stream.len())..];
    let tar_at = (0..trailer.len()).find(|&p| is_tar_header(&trailer[p..]));
    let cfg_end = tar_at.unwrap_or(trailer.len());
    r.bf_cfg = String::from_utf8_lossy(&trailer[..cfg_end]).into_owned();
    if let Some(p) = tar_at {
        match list_tar(&trailer[p..]) {
            Ok(files) => r.esxio = files,
            Err(e) => r
                .problems
                .push(format!("the archive after bf.cfg is not one: {e}")),
        }
    }
    r
}

/// A ustar header block: the magic at 257 and a checksum (the header's bytes summed, the
/// checksum field counted as spaces) that matches the octal number in its field.
fn is_tar_header(b: &[u8]) -> bool {
    if b.len() < 512 || &b[257..262] != b"ustar" {
        return false;
    }
    let sum: u64 = b[..512]
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(c)
            }
        })
        .sum();
    let field = String::from_utf8_lossy(&b[148..156]);
    u64::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8) == Ok(sum)
}

fn list_tar(bytes: &[u8]) -> io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut a = tar::Archive::new(bytes);
    for e in a.entries()? {
        let mut e = e?;
        let name = e.path()?.display().to_string();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes)?;
        out.push((name, hex(&Sha256::digest(&bytes))));
    }
    Ok(out)
}
