//! An rshim daemon for the BlueField tests: `dev/rshimN/{boot,misc}` served through FUSE the
//! way the daemon serves them through CUSE (rshim-user-space `src/rshim_fuse.c`,
//! `src/rshim.c`), so that our code meets the daemon's real behaviour, not a file's:
//! - `misc`: the whole text is built on the first read of an open file, every later read is
//!   end-of-file; each write is one command (`KEY value`, the rest ignored), answered at once,
//!   with the daemon's errors (EINVAL for an unknown key or `FORCE_CMD 1` outside drop mode,
//!   EACCES for `DROP_MODE 0` while the card's BMC holds the device); `BOOT_RESET_SKIP` and
//!   `CLEAR_ON_READ` are shown only at `DISPLAY_LEVEL 1`, the log only at 2, cleared by the read
//!   when `CLEAR_ON_READ` is 1;
//! - `boot`: open fails EINVAL in drop mode, EBUSY when another process holds it; the stream is
//!   kept and judged when the file is closed; then the card logs what its installer would,
//!   running the `bfb_post_install` hook of the appended `bf.cfg` (`bfrshlog "..."`).
//!
//! Needs root and `/dev/fuse` (the tests mount it below their own temporary sysroot).
#![allow(dead_code)]

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// What the card does with a stream once it has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Card {
    /// Installs, runs the `bf.cfg` hook, logs `Installation finished`, `Rebooting...`.
    Installs,
    /// As `Installs`, with a non-fatal `ERR` line on the way.
    InstallsWithAnError,
    /// The installer fails: `ERR Installation failed`, then reboots all the same.
    InstallerFails,
    /// The stream is not taken as an install: the old OS boots again and logs what it logs at
    /// every boot.
    OldOsBoots,
    /// Takes the stream and never says a word.
    Silent,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub display_level: u32,
    pub clear_on_read: bool,
    pub boot_reset_skip: bool,
    pub drop_mode: bool,
}

#[derive(Clone)]
pub struct DaemonConfig {
    pub dev_name: String,
    pub dev_info: String,
    pub card: Card,
    pub settings: Settings,
    /// The card's BMC holds rshim over USB: `DROP_MODE 0` fails with EACCES.
    pub bmc_owned: bool,
    /// Another process has `boot` open.
    pub boot_held: bool,
    /// Lines already in the log: the last boot of the old OS.
    pub old_log: Vec<String>,
    /// Bytes of the stream that are the vendor's `.bfb` (the rest is `bf.cfg`).
    pub bfb_len: Option<u64>,
    /// Called when a push opens `boot`: the daemon resets the chip, which takes the card's
    /// network ports down.
    pub on_reset: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl DaemonConfig {
    pub fn new(pci: &str, dev_info: &str) -> DaemonConfig {
        DaemonConfig {
            dev_name: format!("pcie-{pci}"),
            dev_info: dev_info.into(),
            card: Card::Installs,
            settings: Settings {
                display_level: 0,
                clear_on_read: false,
                boot_reset_skip: false,
                drop_mode: false,
            },
            bmc_owned: false,
            boot_held: false,
            old_log: vec!["INFO: Linux up".into(), "INFO: DPU is ready".into()],
            bfb_len: None,
            on_reset: None,
        }
    }
}

/// What the daemon saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Every `misc` write, in order, and whether the daemon took it.
    pub commands: Vec<(String, bool)>,
    pub stream: Vec<u8>,
    pub pushes: u32,
    /// `BOOT_RESET_SKIP` when the stream was opened.
    pub skip_at_push: Option<bool>,
    /// Log lines cleared by a read before any stream was pushed: another reader's log drained.
    pub drained_before_push: usize,
    /// Boot opens refused, with their errno.
    pub refused_opens: Vec<i32>,
}

struct State {
    config: DaemonConfig,
    s: Settings,
    log: Vec<String>,
    seen: Seen,
    boot_open: bool,
    /// Per open `misc` handle: whether its one read was served.
    misc_served: std::collections::HashMap<u64, bool>,
    next_fh: u64,
}

pub struct RshimDaemon {
    pub dir: PathBuf,
    state: Arc<Mutex<State>>,
    thread: Option<JoinHandle<()>>,
}

const ROOT: u64 = 1;
const BOOT: u64 = 2;
const MISC: u64 = 3;

fn ok_or_panic(rc: i32, what: &str) {
    assert!(
        rc == 0,
        "{what}: {} (the rshim fake needs root and /dev/fuse)",
        std::io::Error::last_os_error()
    );
}

impl RshimDaemon {
    /// Mount the daemon's files at `dir` (`<sysroot>/dev/rshimN`).
    pub fn start(dir: &Path, config: DaemonConfig) -> RshimDaemon {
        std::fs::create_dir_all(dir).unwrap();
        let fuse = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .expect("/dev/fuse (the rshim fake needs it)");
        let opts = CString::new(format!(
            "fd={},rootmode=40000,user_id=0,group_id=0",
            fuse.as_raw_fd()
        ))
        .unwrap();
        let target = CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
        let rc = unsafe {
            libc::mount(
                c"rshim".as_ptr(),
                target.as_ptr(),
                c"fuse".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                opts.as_ptr().cast(),
            )
        };
        ok_or_panic(rc, "mounting the rshim fake");
        let mut log = config.old_log.clone();
        log.retain(|l| !l.is_empty());
        let state = Arc::new(Mutex::new(State {
            s: config.settings.clone(),
            config,
            log,
            seen: Seen::default(),
            boot_open: false,
            misc_served: Default::default(),
            next_fh: 10,
        }));
        let st = state.clone();
        let thread = std::thread::spawn(move || serve(fuse, st));
        RshimDaemon {
            dir: dir.to_path_buf(),
            state,
            thread: Some(thread),
        }
    }

    pub fn seen(&self) -> Seen {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn settings(&self) -> Settings {
        self.state.lock().unwrap().s.clone()
    }
}

impl Drop for RshimDaemon {
    fn drop(&mut self) {
        let target = CString::new(self.dir.as_os_str().as_encoded_bytes()).unwrap();
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().unwrap())
}

fn reply(f: &mut File, unique: u64, error: i32, body: &[u8]) {
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    out.extend_from_slice(&(-error).to_ne_bytes());
    out.extend_from_slice(&unique.to_ne_bytes());
    out.extend_from_slice(body);
    let _ = f.write_all(&out);
}

/// `struct fuse_attr`.
fn attr(node: u64) -> Vec<u8> {
    let mode: u32 = if node == ROOT {
        libc::S_IFDIR | 0o755
    } else {
        libc::S_IFREG | 0o600
    };
    let mut a = Vec::new();
    for v in [node, 0, 0, 0, 0, 0] {
        a.extend_from_slice(&v.to_ne_bytes());
    }
    for v in [0u32, 0, 0, mode, 1, 0, 0, 0, 4096, 0] {
        a.extend_from_slice(&v.to_ne_bytes());
    }
    a
}

fn entry(node: u64) -> Vec<u8> {
    let mut e = Vec::new();
    for v in [node, 0u64, 0, 0] {
        e.extend_from_slice(&v.to_ne_bytes());
    }
    e.extend_from_slice(&[0u8; 8]);
    e.extend_from_slice(&attr(node));
    e
}

fn serve(mut fuse: File, state: Arc<Mutex<State>>) {
    let mut buf = vec![0u8; (1 << 20) + 4096];
    loop {
        let n = match fuse.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        if n < 40 {
            continue;
        }
        let req = &buf[..n];
        let opcode = u32_at(req, 4);
        let unique = u64_at(req, 8);
        let node = u64_at(req, 16);
        let body = &req[40..];
        match opcode {
            // INIT: protocol 7.31, 1 MiB writes.
            26 => {
                let mut o = Vec::new();
                for v in [7u32, 31, 0, 0] {
                    o.extend_from_slice(&v.to_ne_bytes());
                }
                o.extend_from_slice(&16u16.to_ne_bytes());
                o.extend_from_slice(&12u16.to_ne_bytes());
                o.extend_from_slice(&(1u32 << 20).to_ne_bytes());
                o.extend_from_slice(&1u32.to_ne_bytes());
                o.extend_from_slice(&256u16.to_ne_bytes());
                o.resize(64, 0);
                reply(&mut fuse, unique, 0, &o);
            }
            // LOOKUP
            1 => {
                let name = body.split(|&c| c == 0).next().unwrap_or_default();
                match name {
                    b"boot" => reply(&mut fuse, unique, 0, &entry(BOOT)),
                    b"misc" => reply(&mut fuse, unique, 0, &entry(MISC)),
                    _ => reply(&mut fuse, unique, libc::ENOENT, &[]),
                }
            }
            // GETATTR
            3 => {
                let mut o = vec![0u8; 16];
                o.extend_from_slice(&attr(node));
                reply(&mut fuse, unique, 0, &o);
            }
            // FORGET, BATCH_FORGET, INTERRUPT: no answer.
            2 | 42 | 36 => {}
            // OPEN
            14 => {
                let r = open(&state, node);
                match r {
                    Ok(fh) => {
                        let mut o = fh.to_ne_bytes().to_vec();
                        // FOPEN_DIRECT_IO | FOPEN_NONSEEKABLE: every read and write reaches us.
                        o.extend_from_slice(&(1u32 | 4).to_ne_bytes());
                        o.extend_from_slice(&0u32.to_ne_bytes());
                        reply(&mut fuse, unique, 0, &o);
                    }
                    Err(errno) => reply(&mut fuse, unique, errno, &[]),
                }
            }
            // READ
            15 => {
                let fh = u64_at(body, 0);
                let size = u32_at(body, 16) as usize;
                let text = read_misc(&state, fh);
                let n = text.len().min(size);
                reply(&mut fuse, unique, 0, &text.as_bytes()[..n]);
            }
            // WRITE
            16 => {
                let size = u32_at(body, 16) as usize;
                let data = &body[40..40 + size.min(body.len() - 40)];
                let r = write(&state, node, data);
                match r {
                    Ok(()) => {
                        let mut o = (size as u32).to_ne_bytes().to_vec();
                        o.extend_from_slice(&0u32.to_ne_bytes());
                        reply(&mut fuse, unique, 0, &o);
                    }
                    Err(errno) => reply(&mut fuse, unique, errno, &[]),
                }
            }
            // FLUSH
            25 => reply(&mut fuse, unique, 0, &[]),
            // RELEASE
            18 => {
                let fh = u64_at(body, 0);
                release(&state, node, fh);
                reply(&mut fuse, unique, 0, &[]);
            }
            // OPENDIR, RELEASEDIR
            27 => reply(&mut fuse, unique, 0, &[0u8; 16]),
            29 => reply(&mut fuse, unique, 0, &[]),
            // DESTROY
            38 => return,
            _ => reply(&mut fuse, unique, libc::ENOSYS, &[]),
        }
    }
}

fn open(state: &Arc<Mutex<State>>, node: u64) -> Result<u64, i32> {
    let mut st = state.lock().unwrap();
    st.next_fh += 1;
    let fh = st.next_fh;
    match node {
        MISC => {
            st.misc_served.insert(fh, false);
            Ok(fh)
        }
        BOOT => {
            // rshim_boot_open's order.
            let errno = if st.s.drop_mode {
                Some(libc::EINVAL)
            } else if st.boot_open || st.config.boot_held {
                Some(libc::EBUSY)
            } else {
                None
            };
            if let Some(e) = errno {
                st.seen.refused_opens.push(e);
                return Err(e);
            }
            st.boot_open = true;
            st.seen.skip_at_push = Some(st.s.boot_reset_skip);
            if !st.s.boot_reset_skip {
                if let Some(f) = &st.config.on_reset {
                    f();
                }
            }
            st.seen.stream.clear();
            Ok(fh)
        }
        _ => Err(libc::EISDIR),
    }
}

fn render(st: &mut State) -> String {
    let c = &st.config;
    let s = &st.s;
    let mut t = format!(
        "{:<16}{} (0:basic, 1:advanced, 2:log)\n{:<16}DPU mode\n{:<16}1 (0:rshim, 1:emmc, 2:emmc-boot-swap)\n{:<16}300 (seconds)\n{:<16}40 (seconds)\n{:<16}{} (0:normal, 1:drop)\n{:<16}0 (1: reset)\n{:<16}{}\n{:<16}{}\n{:<16}N/A\n{:<16}1234(s)\n{:<16}0 (0:no, 1:yes)\n{:<16}0 (1: send Force command)\n",
        "DISPLAY_LEVEL", s.display_level, "BF_MODE", "BOOT_MODE", "BOOT_TIMEOUT", "USB_TIMEOUT",
        "DROP_MODE", s.drop_mode as u8, "SW_RESET", "DEV_NAME", c.dev_name, "DEV_INFO", c.dev_info,
        "OPN_STR", "UP_TIME", "SECURE_NIC_MODE", "FORCE_CMD"
    );
    if s.display_level == 1 {
        t += &format!(
            "{:<16}{} (1: skip)\n{:<16}00:00:00:00:00:00 (rw)\n{:<16}0x00000000 (rw)\n{:<16}0 0 (rw)\n{:<16}{} (0:no, 1:yes)\n",
            "BOOT_RESET_SKIP", s.boot_reset_skip as u8, "PEER_MAC", "PXE_ID", "VLAN_ID",
            "CLEAR_ON_READ", s.clear_on_read as u8
        );
    } else if s.display_level == 2 {
        for l in &st.log {
            t += &format!(" {l}\n");
        }
        if s.clear_on_read {
            if st.seen.pushes == 0 {
                st.seen.drained_before_push += st.log.len();
            }
            st.log.clear();
        }
    }
    t
}

fn read_misc(state: &Arc<Mutex<State>>, fh: u64) -> String {
    let mut st = state.lock().unwrap();
    match st.misc_served.get(&fh) {
        Some(false) => {
            st.misc_served.insert(fh, true);
            render(&mut st)
        }
        _ => String::new(),
    }
}

fn command(st: &mut State, text: &str) -> Result<(), i32> {
    let mut words = text.split_whitespace();
    let key = words.next().ok_or(libc::EINVAL)?;
    let value: i64 = words
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or(libc::EINVAL)?;
    match key {
        "DISPLAY_LEVEL" => st.s.display_level = value as u32,
        "CLEAR_ON_READ" => st.s.clear_on_read = value != 0,
        "BOOT_RESET_SKIP" => st.s.boot_reset_skip = value != 0,
        "DROP_MODE" => {
            if value == 0 && st.config.bmc_owned {
                return Err(libc::EACCES);
            }
            st.s.drop_mode = value != 0;
        }
        "FORCE_CMD" if value != 0 && !st.s.drop_mode => return Err(libc::EINVAL),
        "FORCE_CMD" => {}
        _ => return Err(libc::EINVAL),
    }
    Ok(())
}

fn write(state: &Arc<Mutex<State>>, node: u64, data: &[u8]) -> Result<(), i32> {
    let mut st = state.lock().unwrap();
    if node == BOOT {
        st.seen.stream.extend_from_slice(data);
        return Ok(());
    }
    let text = String::from_utf8_lossy(data).into_owned();
    let r = command(&mut st, &text);
    st.seen.commands.push((text.trim().to_string(), r.is_ok()));
    r
}

fn release(state: &Arc<Mutex<State>>, node: u64, fh: u64) {
    let mut st = state.lock().unwrap();
    st.misc_served.remove(&fh);
    if node != BOOT || !st.boot_open {
        return;
    }
    st.boot_open = false;
    st.seen.pushes += 1;
    let lines = card_lines(&st);
    let state = state.clone();
    // The card logs over time, from its own side of rshim.
    std::thread::spawn(move || {
        for l in lines {
            std::thread::sleep(Duration::from_millis(30));
            state.lock().unwrap().log.push(l);
        }
    });
}

fn card_lines(st: &State) -> Vec<String> {
    let cfg_at = st.config.bfb_len.unwrap_or(0) as usize;
    let cfg = String::from_utf8_lossy(st.seen.stream.get(cfg_at..).unwrap_or_default());
    let hook = testkit::sim::hook_line(&cfg);
    let installed = |extra: Option<&str>| {
        let mut v = vec![
            "INFO: bf.cfg found".to_string(),
            "INFO: Installing OS image".into(),
        ];
        if let Some(e) = extra {
            v.push(e.into());
        }
        v.push("INFO: Updating NIC firmware".into());
        if let Some(h) = &hook {
            v.push("INFO: Running bfb_post_install from bf.cfg".into());
            v.push(h.clone());
        }
        v.push("INFO: Installation finished".into());
        v.push("INFO: Rebooting...".into());
        v
    };
    match st.config.card {
        Card::Installs => installed(None),
        Card::InstallsWithAnError => installed(Some(
            "ERR: mlxconfig: -e q INTERNAL_CPU_OFFLOAD_ENGINE: not supported",
        )),
        Card::InstallerFails => vec![
            "INFO: Installing OS image".into(),
            "ERR Installation failed".into(),
            "INFO: Rebooting...".into(),
        ],
        Card::OldOsBoots => vec!["INFO: Linux up".into(), "INFO: DPU is ready".into()],
        Card::Silent => Vec::new(),
    }
}

/// SHA-256 of bytes, hex.
pub fn sha256(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}
