//! A devlink peer for the DSC tests: it stands where the kernel stands, on the other end of the
//! devlink socket seam, reads our requests as raw netlink bytes and answers with the encodings
//! of `include/uapi/linux/devlink.h`, built here by hand (not with our encoder), including the
//! kernel's errors with extended-ack strings and a flash that stalls.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub const FAMILY: u16 = 0x1b;
pub const CONFIG_GROUP: u32 = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashBehaviour {
    Succeed,
    Busy,
    NotSupported,
    /// Two statuses, then nothing.
    Stall,
    /// "Flash failed", then -EIO.
    Fail,
}

#[derive(Debug, Default, Clone)]
pub struct PeerLog {
    /// Commands received (genl cmd numbers), in order.
    pub commands: Vec<u8>,
    /// The file name of the flash request, the SHA-256 of what the kernel would have read, and
    /// the version the package announces (its first line, as our synthetic packages carry it).
    pub flashed_file: Option<String>,
    pub flashed_sha256: Option<String>,
    pub flashed_version: Option<String>,
    pub problems: Vec<String>,
}

pub struct DevlinkPeer {
    pub socket: PathBuf,
    pub log: Arc<Mutex<PeerLog>>,
}

struct State {
    device: String,
    sysroot: PathBuf,
    behaviour: FlashBehaviour,
    running: String,
    stored_b: String,
    /// Every open connection: the `config` group's notifications go to all of them.
    listeners: Vec<UnixStream>,
}

fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((4 + value.len()) as u16).to_le_bytes());
    v.extend_from_slice(&kind.to_le_bytes());
    v.extend_from_slice(value);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

fn nla_str(kind: u16, s: &str) -> Vec<u8> {
    let mut b = s.as_bytes().to_vec();
    b.push(0);
    nla(kind, &b)
}

/// A u64 as the kernel puts it (`nla_put_u64_64bit`): a PAD attribute first when the value
/// would not be 8-byte aligned. `at` is the attribute's offset in the message.
fn nla_u64(kind: u16, n: u64, at: usize) -> Vec<u8> {
    let mut v = Vec::new();
    if (at + 4) % 8 != 0 {
        v.extend(nla(61, &[]));
    }
    v.extend(nla(kind, &n.to_le_bytes()));
    v
}

/// The kernel nests these with `nla_nest_start_noflag`: no NLA_F_NESTED bit.
fn version(kind: u16, name: &str, value: &str) -> Vec<u8> {
    let mut inner = nla_str(103, name);
    inner.extend(nla_str(104, value));
    nla(kind, &inner)
}

fn message(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((16 + payload.len()) as u32).to_le_bytes());
    v.extend_from_slice(&ty.to_le_bytes());
    v.extend_from_slice(&flags.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(payload);
    v
}

fn genl(cmd: u8, version: u8, attrs: &[u8]) -> Vec<u8> {
    let mut v = vec![cmd, version, 0, 0];
    v.extend_from_slice(attrs);
    v
}

/// NLMSG_ERROR: 0 is the ACK (the request header echoed, capped); an error echoes the whole
/// request, as the kernel does, then the extended-ack string.
fn error(request: &[u8], errno: i32, text: Option<&str>) -> Vec<u8> {
    let seq = u32::from_le_bytes(request[8..12].try_into().unwrap());
    let mut p = errno.to_le_bytes().to_vec();
    let mut flags = 0;
    if errno == 0 {
        p.extend_from_slice(&request[..16]);
        flags |= 0x100; // NLM_F_CAPPED
    } else {
        p.extend_from_slice(request);
        while p.len() % 4 != 0 {
            p.push(0);
        }
    }
    if let Some(t) = text {
        p.extend(nla_str(1, t));
        flags |= 0x200; // NLM_F_ACK_TLVS
    }
    message(2, flags, seq, &p)
}

fn attrs(payload: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= payload.len() {
        let len = u16::from_le_bytes([payload[at], payload[at + 1]]) as usize;
        let kind = u16::from_le_bytes([payload[at + 2], payload[at + 3]]) & 0x3fff;
        if len < 4 || at + len > payload.len() {
            break;
        }
        out.push((kind, payload[at + 4..at + len].to_vec()));
        at += len.div_ceil(4) * 4;
    }
    out
}

fn string_of(v: &[u8]) -> String {
    String::from_utf8_lossy(v.split(|&b| b == 0).next().unwrap_or(&[])).into_owned()
}

fn read_frame(s: &mut UnixStream) -> Option<Vec<u8>> {
    let mut head = [0u8; 16];
    s.read_exact(&mut head).ok()?;
    let len = u32::from_le_bytes(head[..4].try_into().unwrap()) as usize;
    let mut m = head.to_vec();
    m.resize(len.div_ceil(4) * 4, 0);
    s.read_exact(&mut m[16..]).ok()?;
    m.truncate(len);
    Some(m)
}

fn send(s: &mut UnixStream, m: &[u8]) {
    let mut m = m.to_vec();
    while m.len() % 4 != 0 {
        m.push(0);
    }
    let _ = s.write_all(&m);
}

fn status(device: &str, msg: &str, done: u64, total: u64, timeout: u64) -> Vec<u8> {
    let mut a = nla_str(1, "pci");
    a.extend(nla_str(2, device));
    a.extend(nla_str(124, msg));
    let at = 16 + 4 + a.len();
    a.extend(nla_u64(125, done, at));
    let at = 16 + 4 + a.len();
    a.extend(nla_u64(126, total, at));
    if timeout > 0 {
        let at = 16 + 4 + a.len();
        a.extend(nla_u64(151, timeout, at));
    }
    message(FAMILY, 0, 0, &genl(60, 1, &a))
}

impl DevlinkPeer {
    /// Listen at `dir/devlink.sock` as the devlink of one DSC at `device`.
    pub fn start(
        dir: &Path,
        sysroot: &Path,
        device: &str,
        behaviour: FlashBehaviour,
        running: &str,
    ) -> DevlinkPeer {
        let socket = dir.join("devlink.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let log = Arc::new(Mutex::new(PeerLog::default()));
        let log2 = log.clone();
        let state = Arc::new(Mutex::new(State {
            device: device.into(),
            sysroot: sysroot.into(),
            behaviour,
            running: running.into(),
            stored_b: running.into(),
            listeners: Vec::new(),
        }));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                if let Ok(c) = conn.try_clone() {
                    state.lock().unwrap().listeners.push(c);
                }
                let (state, log) = (state.clone(), log2.clone());
                std::thread::spawn(move || serve(&mut conn, &state, &log));
            }
        });
        DevlinkPeer { socket, log }
    }
    pub fn log(&self) -> PeerLog {
        self.log.lock().unwrap().clone()
    }
}

/// A notification on the `config` group: to every connection.
fn notify(st: &Mutex<State>, m: &[u8]) {
    let mut st = st.lock().unwrap();
    st.listeners.retain_mut(|c| {
        let mut m = m.to_vec();
        while m.len() % 4 != 0 {
            m.push(0);
        }
        c.write_all(&m).is_ok()
    });
}

fn serve(conn: &mut UnixStream, state: &Mutex<State>, log: &Mutex<PeerLog>) {
    while let Some(req) = read_frame(conn) {
        let ty = u16::from_le_bytes([req[4], req[5]]);
        let seq = u32::from_le_bytes(req[8..12].try_into().unwrap());
        let cmd = req[16];
        let a = attrs(&req[20..]);
        let get = |k: u16| a.iter().find(|(t, _)| *t == k).map(|(_, v)| string_of(v));
        if ty == 0x10 {
            // nlctrl CTRL_CMD_GETFAMILY "devlink".
            if cmd != 3 || get(2).as_deref() != Some("devlink") {
                send(conn, &error(&req, -2, None));
                continue;
            }
            let mut grp = nla_str(1, "config");
            grp.extend(nla(2, &CONFIG_GROUP.to_le_bytes()));
            let groups = nla(0x8000 | 7, &nla(0x8000 | 1, &grp));
            let mut at = nla(1, &FAMILY.to_le_bytes());
            at.extend(nla_str(2, "devlink"));
            at.extend(groups);
            send(conn, &message(0x10, 0, seq, &genl(1, 2, &at)));
            send(conn, &error(&req, 0, None));
            continue;
        }
        if ty != FAMILY {
            send(conn, &error(&req, -22, Some("unknown family")));
            continue;
        }
        log.lock().unwrap().commands.push(cmd);
        let device = state.lock().unwrap().device.clone();
        if get(1).as_deref() != Some("pci") || get(2).as_deref() != Some(device.as_str()) {
            send(conn, &error(&req, -19, Some("devlink instance not found")));
            continue;
        }
        match cmd {
            51 => {
                let st = state.lock().unwrap();
                let mut at = nla_str(1, "pci");
                at.extend(nla_str(2, &st.device));
                at.extend(nla_str(98, "pds_core"));
                at.extend(nla_str(99, "FLM21270045"));
                at.extend(version(100, "asic.id", "0x0"));
                at.extend(version(101, "fw", &st.running));
                at.extend(version(102, "fw.goldfw", "1.51.0-G-3"));
                at.extend(version(102, "fw.mainfwa", &st.running));
                at.extend(version(102, "fw.mainfwb", &st.stored_b));
                send(conn, &message(FAMILY, 0, seq, &genl(51, 1, &at)));
                send(conn, &error(&req, 0, None));
            }
            58 => flash(conn, state, log, &req, get(122)),
            _ => send(conn, &error(&req, -95, None)),
        }
    }
}

fn flash(
    conn: &mut UnixStream,
    state: &Mutex<State>,
    log: &Mutex<PeerLog>,
    req: &[u8],
    file: Option<String>,
) {
    let (dev, behaviour, sysroot) = {
        let st = state.lock().unwrap();
        (st.device.clone(), st.behaviour, st.sysroot.clone())
    };
    match behaviour {
        FlashBehaviour::Busy => {
            send(
                conn,
                &error(req, -16, Some("Firmware update already in progress")),
            );
            return;
        }
        FlashBehaviour::NotSupported => {
            send(conn, &error(req, -95, None));
            return;
        }
        _ => {}
    }
    let Some(file) = file else {
        send(conn, &error(req, -22, None));
        return;
    };
    // request_firmware(): the file must be in the firmware search path.
    let path = sysroot.join("lib/firmware").join(&file);
    let Ok(bytes) = std::fs::read(&path) else {
        send(
            conn,
            &error(
                req,
                -2,
                Some("failed to locate the requested firmware file"),
            ),
        );
        return;
    };
    let version = String::from_utf8_lossy(bytes.split(|&b| b == b'\n').next().unwrap_or(&[]))
        .split_whitespace()
        .last()
        .map(str::to_string);
    {
        let mut l = log.lock().unwrap();
        l.flashed_file = Some(file.clone());
        l.flashed_sha256 = Some(
            Sha256::digest(&bytes)
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect(),
        );
        l.flashed_version = version.clone();
    }
    // Begin notification (cmd 58, bus/dev only), as the devlink core sends it.
    let mut bd = nla_str(1, "pci");
    bd.extend(nla_str(2, &dev));
    notify(state, &message(FAMILY, 0, 0, &genl(58, 1, &bd)));
    // Another device's news on the shared group, which the client must ignore.
    notify(state, &status("0000:99:00.0", "Flash failed", 0, 0, 0));
    notify(state, &status(&dev, "Preparing to flash", 0, 0, 0));
    let total = bytes.len() as u64;
    if behaviour == FlashBehaviour::Stall {
        notify(state, &status(&dev, "Downloading", total / 4, total, 0));
        // ... and then nothing, ever: hold the request until the client goes away.
        let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
        let mut b = [0u8; 1];
        let _ = conn.read(&mut b);
        return;
    }
    for i in 1..=4u64 {
        notify(state, &status(&dev, "Downloading", total * i / 4, total, 0));
    }
    notify(state, &status(&dev, "Installing", 0, 0, 25 * 60));
    if behaviour == FlashBehaviour::Fail {
        notify(state, &status(&dev, "Flash failed", 0, 0, 0));
        notify(state, &message(FAMILY, 0, 0, &genl(59, 1, &bd)));
        send(
            conn,
            &error(
                req,
                -5,
                Some("firmware install failed: bad package signature"),
            ),
        );
        return;
    }
    notify(state, &status(&dev, "Selecting", 0, 0, 30));
    notify(state, &status(&dev, "Flash done", 0, 0, 0));
    notify(state, &message(FAMILY, 0, 0, &genl(59, 1, &bd)));
    // The package goes to the inactive bank; the running firmware changes at the next boot.
    if let Some(v) = version {
        state.lock().unwrap().stored_b = v;
    }
    send(conn, &error(req, 0, None));
}
