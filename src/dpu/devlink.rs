//! Devlink over generic netlink: the messages of `devlink dev info` and `devlink dev flash`, and
//! a small client that speaks them over a [`Transport`].
//!
//! Written by hand because no crate carries the devlink family: the netlink and generic-netlink
//! headers, the controller (family lookup) and the attribute framing come from
//! `netlink-packet-core` / `netlink-packet-generic`; the devlink commands and attributes, with
//! their numbers from `include/uapi/linux/devlink.h` (../shared/spec/dpu.md §4), are here and
//! nowhere else.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, ErrorContext, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    Nla, NlaBuffer, NlasIterator, ParseableParametrized, NLM_F_ACK, NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::{GenlCtrlAttrs, McastGrpAttrs};
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};

pub use super::transport::Transport;

pub(crate) const FAMILY_NAME: &str = "devlink";
pub(crate) const FAMILY_VERSION: u8 = 1;
pub(crate) const MCGRP_CONFIG: &str = "config";

/// `enum devlink_command`.
pub mod cmd {
    pub const GET: u8 = 1;
    pub(crate) const INFO_GET: u8 = 51;
    pub const FLASH_UPDATE: u8 = 58;
    pub(crate) const FLASH_UPDATE_STATUS: u8 = 60;
}

/// `enum devlink_attr`.
pub mod attr {
    pub(crate) const BUS_NAME: u16 = 1;
    pub const DEV_NAME: u16 = 2;
    pub const PAD: u16 = 61;
    pub(crate) const INFO_DRIVER_NAME: u16 = 98;
    pub(crate) const INFO_SERIAL_NUMBER: u16 = 99;
    pub(crate) const INFO_VERSION_FIXED: u16 = 100;
    pub(crate) const INFO_VERSION_RUNNING: u16 = 101;
    pub(crate) const INFO_VERSION_STORED: u16 = 102;
    pub(crate) const INFO_VERSION_NAME: u16 = 103;
    pub(crate) const INFO_VERSION_VALUE: u16 = 104;
    pub(crate) const FLASH_UPDATE_FILE_NAME: u16 = 122;
    pub(crate) const FLASH_UPDATE_COMPONENT: u16 = 123;
    pub(crate) const FLASH_UPDATE_STATUS_MSG: u16 = 124;
    pub(crate) const FLASH_UPDATE_STATUS_DONE: u16 = 125;
    pub(crate) const FLASH_UPDATE_STATUS_TOTAL: u16 = 126;
    pub(crate) const INFO_BOARD_SERIAL_NUMBER: u16 = 146;
    pub(crate) const FLASH_UPDATE_STATUS_TIMEOUT: u16 = 151;
}

/// `NLMSGERR_ATTR_MSG`: the kernel's extended-ack error string.
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// One `(name, value)` of `devlink dev info`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Version {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attr {
    BusName(String),
    DevName(String),
    FileName(String),
    Component(String),
    StatusMsg(String),
    StatusDone(u64),
    StatusTotal(u64),
    StatusTimeout(u64),
    DriverName(String),
    SerialNumber(String),
    BoardSerialNumber(String),
    VersionFixed(Version),
    VersionRunning(Version),
    VersionStored(Version),
    Other(DefaultNla),
}

fn string_value(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn nested_version(v: &Version) -> Vec<u8> {
    let inner = [
        DefaultNla::new(attr::INFO_VERSION_NAME, string_value(&v.name)),
        DefaultNla::new(attr::INFO_VERSION_VALUE, string_value(&v.value)),
    ];
    let mut buf = vec![0u8; inner.as_slice().buffer_len()];
    inner.as_slice().emit(&mut buf);
    buf
}

impl Attr {
    fn raw(&self) -> (u16, Vec<u8>) {
        match self {
            Attr::BusName(s) => (attr::BUS_NAME, string_value(s)),
            Attr::DevName(s) => (attr::DEV_NAME, string_value(s)),
            Attr::FileName(s) => (attr::FLASH_UPDATE_FILE_NAME, string_value(s)),
            Attr::Component(s) => (attr::FLASH_UPDATE_COMPONENT, string_value(s)),
            Attr::StatusMsg(s) => (attr::FLASH_UPDATE_STATUS_MSG, string_value(s)),
            Attr::StatusDone(n) => (attr::FLASH_UPDATE_STATUS_DONE, n.to_ne_bytes().to_vec()),
            Attr::StatusTotal(n) => (attr::FLASH_UPDATE_STATUS_TOTAL, n.to_ne_bytes().to_vec()),
            Attr::StatusTimeout(n) => (attr::FLASH_UPDATE_STATUS_TIMEOUT, n.to_ne_bytes().to_vec()),
            Attr::DriverName(s) => (attr::INFO_DRIVER_NAME, string_value(s)),
            Attr::SerialNumber(s) => (attr::INFO_SERIAL_NUMBER, string_value(s)),
            Attr::BoardSerialNumber(s) => (attr::INFO_BOARD_SERIAL_NUMBER, string_value(s)),
            Attr::VersionFixed(v) => (attr::INFO_VERSION_FIXED | 0x8000, nested_version(v)),
            Attr::VersionRunning(v) => (attr::INFO_VERSION_RUNNING | 0x8000, nested_version(v)),
            Attr::VersionStored(v) => (attr::INFO_VERSION_STORED | 0x8000, nested_version(v)),
            Attr::Other(n) => {
                let mut buf = vec![0u8; n.value_len()];
                n.emit_value(&mut buf);
                (n.kind(), buf)
            }
        }
    }
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        self.raw().1.len()
    }
    fn kind(&self) -> u16 {
        self.raw().0
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        buffer.copy_from_slice(&self.raw().1);
    }
}

fn parse_string(v: &[u8]) -> String {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

fn parse_u64(v: &[u8]) -> Result<u64, DecodeError> {
    let b: [u8; 8] = v
        .get(..8)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| DecodeError::from(format!("a u64 attribute of {} bytes", v.len())))?;
    Ok(u64::from_ne_bytes(b))
}

fn parse_version(v: &[u8]) -> Result<Version, DecodeError> {
    let mut out = Version {
        name: String::new(),
        value: String::new(),
    };
    for nla in NlasIterator::new(v) {
        let nla = nla?;
        match nla.kind() & NLA_TYPE_MASK {
            attr::INFO_VERSION_NAME => out.name = parse_string(nla.value()),
            attr::INFO_VERSION_VALUE => out.value = parse_string(nla.value()),
            _ => {}
        }
    }
    Ok(out)
}

fn parse_attr(nla: &NlaBuffer<&[u8]>) -> Result<Option<Attr>, DecodeError> {
    let v = nla.value();
    Ok(Some(match nla.kind() & NLA_TYPE_MASK {
        attr::PAD => return Ok(None),
        attr::BUS_NAME => Attr::BusName(parse_string(v)),
        attr::DEV_NAME => Attr::DevName(parse_string(v)),
        attr::FLASH_UPDATE_FILE_NAME => Attr::FileName(parse_string(v)),
        attr::FLASH_UPDATE_COMPONENT => Attr::Component(parse_string(v)),
        attr::FLASH_UPDATE_STATUS_MSG => Attr::StatusMsg(parse_string(v)),
        attr::FLASH_UPDATE_STATUS_DONE => Attr::StatusDone(parse_u64(v)?),
        attr::FLASH_UPDATE_STATUS_TOTAL => Attr::StatusTotal(parse_u64(v)?),
        attr::FLASH_UPDATE_STATUS_TIMEOUT => Attr::StatusTimeout(parse_u64(v)?),
        attr::INFO_DRIVER_NAME => Attr::DriverName(parse_string(v)),
        attr::INFO_SERIAL_NUMBER => Attr::SerialNumber(parse_string(v)),
        attr::INFO_BOARD_SERIAL_NUMBER => Attr::BoardSerialNumber(parse_string(v)),
        attr::INFO_VERSION_FIXED => Attr::VersionFixed(parse_version(v)?),
        attr::INFO_VERSION_RUNNING => Attr::VersionRunning(parse_version(v)?),
        attr::INFO_VERSION_STORED => Attr::VersionStored(parse_version(v)?),
        kind => Attr::Other(DefaultNla::new(kind, v.to_vec())),
    }))
}

/// One devlink message: a command and its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DevlinkMessage {
    pub cmd: u8,
    pub attrs: Vec<Attr>,
}

impl GenlFamily for DevlinkMessage {
    fn family_name() -> &'static str {
        FAMILY_NAME
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        FAMILY_VERSION
    }
}

impl Emitable for DevlinkMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for DevlinkMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let mut attrs = Vec::new();
        for nla in NlasIterator::new(buf) {
            let nla = nla.context("devlink attributes")?;
            if let Some(a) = parse_attr(&nla)? {
                attrs.push(a);
            }
        }
        Ok(DevlinkMessage {
            cmd: header.cmd,
            attrs,
        })
    }
}

impl DevlinkMessage {
    fn string(&self, pick: impl Fn(&Attr) -> Option<&String>) -> Option<&str> {
        self.attrs.iter().find_map(pick).map(String::as_str)
    }
    pub(crate) fn bus_dev(&self) -> (Option<&str>, Option<&str>) {
        (
            self.string(|a| match a {
                Attr::BusName(s) => Some(s),
                _ => None,
            }),
            self.string(|a| match a {
                Attr::DevName(s) => Some(s),
                _ => None,
            }),
        )
    }
}

/// Serialize one request: netlink header, generic-netlink header, attributes.
pub(crate) fn encode<F>(payload: F, family_id: u16, seq: u32, flags: u16) -> Vec<u8>
where
    F: GenlFamily + Emitable + std::fmt::Debug,
{
    let mut genl = GenlMessage::from_payload(payload);
    genl.set_resolved_family_id(family_id);
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(genl));
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

/// The netlink messages in one datagram (a datagram may carry several).
pub fn split(buf: &[u8]) -> Result<Vec<&[u8]>, DecodeError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        if len < 16 || at + len > buf.len() {
            return Err(DecodeError::from(format!(
                "a netlink message of {len} bytes at offset {at} of {}",
                buf.len()
            )));
        }
        out.push(&buf[at..at + len]);
        at += len.div_ceil(4) * 4;
    }
    Ok(out)
}

/// What came back for a request.
#[derive(Debug)]
pub enum Reply<F> {
    Message(u32, F),
    /// `NLMSG_ERROR`: 0 is an ACK; otherwise a negative errno and the kernel's message.
    Status {
        seq: u32,
        errno: i32,
        message: Option<String>,
    },
    Done(u32),
    Other,
}

pub(crate) fn decode<F>(bytes: &[u8]) -> Result<Reply<F>, DecodeError>
where
    F: GenlFamily + ParseableParametrized<[u8], GenlHeader> + std::fmt::Debug,
{
    let msg = NetlinkMessage::<GenlMessage<F>>::deserialize(bytes)?;
    let seq = msg.header.sequence_number;
    let flags = msg.header.flags;
    Ok(match msg.payload {
        NetlinkPayload::InnerMessage(g) => Reply::Message(seq, g.payload),
        NetlinkPayload::Error(e) => Reply::Status {
            seq,
            errno: e.raw_code(),
            message: extack_message(&e.header, flags),
        },
        NetlinkPayload::Done(_) => Reply::Done(seq),
        _ => Reply::Other,
    })
}

/// The extended-ack string after the echoed request in an `NLMSG_ERROR`.
fn extack_message(echo: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || echo.len() < 16 {
        return None;
    }
    let orig_len = u32::from_ne_bytes([echo[0], echo[1], echo[2], echo[3]]) as usize;
    let skip = if flags & NLM_F_CAPPED != 0 {
        16
    } else {
        orig_len.div_ceil(4) * 4
    };
    let tlvs = echo.get(skip..)?;
    NlasIterator::new(tlvs)
        .filter_map(Result::ok)
        .find(|n| n.kind() & NLA_TYPE_MASK == NLMSGERR_ATTR_MSG)
        .map(|n| parse_string(n.value()))
}

/// How a devlink exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum DevlinkError {
    #[error("{}{}", io::Error::from_raw_os_error(errno.abs()), message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kernel { errno: i32, message: Option<String> },
    #[error("no word from the device for {}s{}", waited.as_secs(), last.as_ref().map(|l| format!(" (last status: {l})")).unwrap_or_default())]
    Timeout {
        waited: Duration,
        last: Option<String>,
    },
    #[error("the flash ended with \"{0}\"")]
    Failed(String),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("a malformed netlink message: {0}")]
    Protocol(String),
    #[error("stopped waiting: the host install failed")]
    Cancelled,
}

impl From<DecodeError> for DevlinkError {
    fn from(e: DecodeError) -> Self {
        DevlinkError::Protocol(e.to_string())
    }
}

/// `devlink dev info` of one device.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    pub driver: Option<String>,
    pub serial: Option<String>,
    pub board_serial: Option<String>,
    pub fixed: Vec<Version>,
    pub running: Vec<Version>,
    pub stored: Vec<Version>,
}

/// One flash status notification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlashStatus {
    pub message: Option<String>,
    pub component: Option<String>,
    pub done: u64,
    pub total: u64,
    pub timeout_secs: u64,
}

/// A devlink client over one transport (a netlink socket, or a simulator's socket in tests).
pub struct Client<T: Transport> {
    transport: T,
    family: u16,
    seq: u32,
}

impl<T: Transport> Client<T> {
    /// Resolve the devlink family and, with `join`, its `config` multicast group (flash
    /// progress).
    pub fn connect(mut transport: T, timeout: Duration, join: bool) -> Result<Self, DevlinkError> {
        let ask = GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(FAMILY_NAME.into())],
        };
        transport.send(&encode(ask, 0x10, 1, NLM_F_REQUEST | NLM_F_ACK))?;
        let mut family = None;
        let mut group = None;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(dgram) = transport.recv(left)? else {
                return Err(DevlinkError::Timeout {
                    waited: timeout,
                    last: Some("no answer to the devlink family lookup".into()),
                });
            };
            let mut finished = false;
            for m in split(&dgram)? {
                match decode::<GenlCtrl>(m)? {
                    Reply::Message(_, ctrl) => {
                        for a in ctrl.nlas {
                            match a {
                                GenlCtrlAttrs::FamilyId(id) => family = Some(id),
                                GenlCtrlAttrs::McastGroups(groups) => {
                                    for g in groups {
                                        let name = g.iter().find_map(|a| match a {
                                            McastGrpAttrs::Name(n) => Some(n.clone()),
                                            _ => None,
                                        });
                                        let id = g.iter().find_map(|a| match a {
                                            McastGrpAttrs::Id(i) => Some(*i),
                                            _ => None,
                                        });
                                        if name.as_deref() == Some(MCGRP_CONFIG) {
                                            group = id;
                                        }
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                    Reply::Status { errno: 0, .. } => finished = true,
                    Reply::Status { errno, message, .. } => {
                        let message = message.or_else(|| {
                            (errno.abs() == libc::ENOENT).then(|| {
                                "this kernel has no devlink family (CONFIG_NET_DEVLINK)".into()
                            })
                        });
                        return Err(DevlinkError::Kernel { errno, message });
                    }
                    _ => {}
                }
            }
            if finished {
                break;
            }
        }
        let family = family.ok_or_else(|| {
            DevlinkError::Protocol("the devlink family lookup gave no family id".into())
        })?;
        if let (true, Some(g)) = (join, group) {
            transport.join_group(g)?;
        }
        Ok(Client {
            transport,
            family,
            seq: 1,
        })
    }

    fn send(&mut self, msg: DevlinkMessage) -> Result<u32, DevlinkError> {
        self.seq += 1;
        let bytes = encode(msg, self.family, self.seq, NLM_F_REQUEST | NLM_F_ACK);
        self.transport.send(&bytes)?;
        Ok(self.seq)
    }

    /// `devlink dev info BUS/DEV`.
    pub fn info(
        &mut self,
        bus: &str,
        dev: &str,
        timeout: Duration,
    ) -> Result<DeviceInfo, DevlinkError> {
        let seq = self.send(DevlinkMessage {
            cmd: cmd::INFO_GET,
            attrs: vec![Attr::BusName(bus.into()), Attr::DevName(dev.into())],
        })?;
        let mut info = DeviceInfo::default();
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(dgram) = self.transport.recv(left)? else {
                return Err(DevlinkError::Timeout {
                    waited: timeout,
                    last: None,
                });
            };
            for m in split(&dgram)? {
                match decode::<DevlinkMessage>(m)? {
                    Reply::Message(s, msg) if s == seq && msg.cmd == cmd::INFO_GET => {
                        for a in msg.attrs {
                            match a {
                                Attr::DriverName(s) => info.driver = Some(s),
                                Attr::SerialNumber(s) => info.serial = Some(s),
                                Attr::BoardSerialNumber(s) => info.board_serial = Some(s),
                                Attr::VersionFixed(v) => info.fixed.push(v),
                                Attr::VersionRunning(v) => info.running.push(v),
                                Attr::VersionStored(v) => info.stored.push(v),
                                _ => {}
                            }
                        }
                    }
                    Reply::Status {
                        seq: s,
                        errno,
                        message,
                    } if s == seq => {
                        return if errno == 0 {
                            Ok(info)
                        } else {
                            Err(DevlinkError::Kernel { errno, message })
                        };
                    }
                    _ => {} // notifications of other devices, or of an earlier request
                }
            }
        }
    }

    /// Send one request and wait for its ACK (or error), however long it takes: the kernel
    /// answers a flash only when the flash is over.
    fn request_ack(&mut self, msg: DevlinkMessage) -> Result<(), DevlinkError> {
        let seq = self.send(msg)?;
        loop {
            let Some(dgram) = self.transport.recv(Duration::from_secs(3600))? else {
                continue;
            };
            for m in split(&dgram)? {
                if let Reply::Status {
                    seq: s,
                    errno,
                    message,
                } = decode::<DevlinkMessage>(m)?
                {
                    if s == seq {
                        return if errno == 0 {
                            Ok(())
                        } else {
                            Err(DevlinkError::Kernel { errno, message })
                        };
                    }
                }
            }
        }
    }
}

/// Parse one status notification of `bus/dev`; `None` for anything else.
fn status_of(msg: &DevlinkMessage, bus: &str, dev: &str) -> Option<FlashStatus> {
    // The group is shared by every devlink instance: only this device's news counts.
    if msg.bus_dev() != (Some(bus), Some(dev)) || msg.cmd != cmd::FLASH_UPDATE_STATUS {
        return None;
    }
    let mut s = FlashStatus::default();
    for a in &msg.attrs {
        match a {
            Attr::StatusMsg(m) => s.message = Some(m.clone()),
            Attr::Component(c) => s.component = Some(c.clone()),
            Attr::StatusDone(n) => s.done = *n,
            Attr::StatusTotal(n) => s.total = *n,
            Attr::StatusTimeout(n) => s.timeout_secs = *n,
            _ => {}
        }
    }
    Some(s)
}

/// `devlink dev flash BUS/DEV file FILE [component C]`, as iproute2 does it: the request goes
/// out on its own socket from its own thread, because the kernel runs the whole flash inside
/// that `sendmsg` and answers only at the end; `notify` (joined to `config`) reads the status
/// notifications meanwhile. `stall` is how long the device may say nothing (longer when a
/// status announces a longer step, as `Installing` does with its 25 minutes). On a timeout
/// or a cancel the request thread is left to the kernel: a flash cannot be interrupted.
#[allow(clippy::too_many_arguments)]
pub fn flash<T: Transport + 'static>(
    notify: &mut Client<T>,
    request: Client<T>,
    bus: &str,
    dev: &str,
    file: &str,
    component: Option<&str>,
    stall: Duration,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&FlashStatus),
) -> Result<(), DevlinkError> {
    let mut attrs = vec![
        Attr::BusName(bus.into()),
        Attr::DevName(dev.into()),
        Attr::FileName(file.into()),
    ];
    if let Some(c) = component {
        attrs.push(Attr::Component(c.into()));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let mut request = request;
    std::thread::spawn(move || {
        let r = request.request_ack(DevlinkMessage {
            cmd: cmd::FLASH_UPDATE,
            attrs,
        });
        let _ = tx.send(r);
    });
    let mut last: Option<FlashStatus> = None;
    let mut last_word = Instant::now();
    let mut read = |notify: &mut Client<T>,
                    wait: Duration,
                    last: &mut Option<FlashStatus>,
                    last_word: &mut Instant|
     -> Result<bool, DevlinkError> {
        let dgram = match notify.transport.recv(wait) {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(false),
            // The socket overflowed: some notifications are lost, the flash goes on.
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                log::warn!("devlink: flash status notifications were lost (ENOBUFS)");
                return Ok(true);
            }
            Err(e) => return Err(e.into()),
        };
        for m in split(&dgram)? {
            if let Reply::Message(_, msg) = decode::<DevlinkMessage>(m)? {
                if let Some(s) = status_of(&msg, bus, dev) {
                    *last_word = Instant::now();
                    progress(&s);
                    *last = Some(s);
                }
            }
        }
        Ok(true)
    };
    loop {
        match rx.try_recv() {
            Ok(result) => {
                // The last notifications may still be queued behind the answer.
                while read(notify, Duration::from_millis(50), &mut last, &mut last_word)? {}
                result?;
                // Drivers end a failed install with this status before returning an error;
                // an ACK after it is still a failure.
                if let Some(m) = last.as_ref().and_then(|l| l.message.as_ref()) {
                    if m.eq_ignore_ascii_case("flash failed") {
                        return Err(DevlinkError::Failed(m.clone()));
                    }
                }
                return Ok(());
            }
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                return Err(DevlinkError::Protocol(
                    "the flash request thread ended".into(),
                ))
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => {}
        }
        let allowed = match &last {
            Some(s) if s.timeout_secs > 0 => {
                stall.max(Duration::from_secs(s.timeout_secs.saturating_add(30)))
            }
            _ => stall,
        };
        if last_word.elapsed() >= allowed {
            return Err(DevlinkError::Timeout {
                waited: allowed,
                last: last.and_then(|s| s.message),
            });
        }
        if cancel.load(Ordering::SeqCst) {
            return Err(DevlinkError::Cancelled);
        }
        read(
            notify,
            Duration::from_millis(100),
            &mut last,
            &mut last_word,
        )?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_with_several_messages_splits_at_aligned_lengths() {
        let a = encode(
            DevlinkMessage {
                cmd: cmd::GET,
                attrs: vec![Attr::BusName("pci".into())],
            },
            0x15,
            1,
            0,
        );
        let b = encode(
            DevlinkMessage {
                cmd: cmd::GET,
                attrs: vec![Attr::DevName("0000:03:00.0".into())],
            },
            0x15,
            2,
            0,
        );
        let mut dgram = a.clone();
        dgram.extend_from_slice(&b);
        let parts = split(&dgram).unwrap();
        assert_eq!(parts, vec![a.as_slice(), b.as_slice()]);
        // A length running past the datagram is an error, not a panic.
        let mut bad = a.clone();
        bad[0] = 200;
        assert!(split(&bad).is_err());
    }

    #[test]
    fn flash_request_bytes_match_the_kernel_layout() {
        let bytes = encode(
            DevlinkMessage {
                cmd: cmd::FLASH_UPDATE,
                attrs: vec![
                    Attr::BusName("pci".into()),
                    Attr::DevName("0000:03:00.0".into()),
                    Attr::FileName("a.tar".into()),
                ],
            },
            0x15,
            7,
            NLM_F_REQUEST | NLM_F_ACK,
        );
        // nlmsghdr: len, type = family id, flags REQUEST|ACK, seq 7, pid 0.
        let len = 16 + 4 + (4 + 4) + (4 + 16) + (4 + 8);
        assert_eq!(bytes.len(), len);
        assert_eq!(&bytes[0..4], &(len as u32).to_ne_bytes());
        assert_eq!(&bytes[4..6], &0x15u16.to_ne_bytes());
        assert_eq!(&bytes[6..8], &5u16.to_ne_bytes());
        assert_eq!(&bytes[8..12], &7u32.to_ne_bytes());
        // genlmsghdr: cmd 58, version 1, reserved.
        assert_eq!(&bytes[16..20], &[58, 1, 0, 0]);
        // BUS_NAME "pci\0": nla_len 8, type 1.
        assert_eq!(&bytes[20..28], &[8, 0, 1, 0, b'p', b'c', b'i', 0]);
        // DEV_NAME "0000:03:00.0\0" (13 bytes, padded to 16): nla_len 17, type 2.
        assert_eq!(&bytes[28..32], &[17, 0, 2, 0]);
        assert_eq!(&bytes[32..45], b"0000:03:00.0\0");
        assert_eq!(&bytes[45..48], &[0, 0, 0]);
        // FILE_NAME "a.tar\0": nla_len 10, type 122, padded to 12.
        assert_eq!(&bytes[48..52], &[10, 0, 122, 0]);
        assert_eq!(&bytes[52..60], b"a.tar\0\0\0");
    }
}
