//! The seam between the devlink client and the kernel: a generic-netlink socket, or, for tests
//! and the demo, a Unix stream socket to a simulator that reads and writes the same netlink
//! bytes (framed by the netlink header's own length field).

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Datagram-shaped exchange of netlink messages.
pub trait Transport: Send {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// The next datagram, or `None` when none came within `timeout`.
    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Vec<u8>>>;
    /// Join a multicast group (devlink's `config` group carries flash progress).
    fn join_group(&mut self, group: u32) -> io::Result<()>;
}

/// Where devlink is reached.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "path")]
pub enum Endpoint {
    /// The kernel's generic netlink (needs CAP_NET_ADMIN to flash).
    Kernel,
    /// A devlink simulator listening on a Unix socket (`--devlink-socket`).
    Simulator(PathBuf),
}

impl Endpoint {
    pub fn open(&self) -> io::Result<Box<dyn Transport>> {
        match self {
            Endpoint::Kernel => Ok(Box::new(KernelSocket::open()?)),
            Endpoint::Simulator(p) => Ok(Box::new(StreamTransport::connect(p)?)),
        }
    }
    pub fn describe(&self) -> String {
        match self {
            Endpoint::Kernel => "generic netlink".into(),
            Endpoint::Simulator(p) => format!("the devlink simulator at {}", p.display()),
        }
    }
}

impl Transport for Box<dyn Transport> {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        (**self).send(bytes)
    }
    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        (**self).recv(timeout)
    }
    fn join_group(&mut self, group: u32) -> io::Result<()> {
        (**self).join_group(group)
    }
}

/// `poll(2)` one descriptor for `events`; the events that came, or `None` after `timeout`.
pub(crate) fn poll_fd(fd: i32, events: i16, timeout: Duration) -> io::Result<Option<i16>> {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    loop {
        // SAFETY: one valid pollfd, for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n >= 0 {
            return Ok((n > 0).then_some(pfd.revents));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn wait_readable(fd: i32, timeout: Duration) -> io::Result<bool> {
    Ok(poll_fd(fd, libc::POLLIN, timeout)?.is_some())
}

/// `socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC)` with extended acks.
pub(crate) struct KernelSocket(netlink_sys::Socket);

impl KernelSocket {
    pub fn open() -> io::Result<Self> {
        let mut s = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_GENERIC)?;
        s.bind_auto()?;
        s.set_ext_ack(true)?;
        Ok(KernelSocket(s))
    }
}

impl Transport for KernelSocket {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let kernel = netlink_sys::SocketAddr::new(0, 0);
        self.0.send_to(bytes, &kernel, 0).map(|_| ())
    }
    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        if !wait_readable(self.0.as_raw_fd(), timeout)? {
            return Ok(None);
        }
        self.0.recv_from_full().map(|(b, _)| Some(b))
    }
    fn join_group(&mut self, group: u32) -> io::Result<()> {
        // A long flash sends hundreds of notifications; a full socket must not fail the read.
        self.0.set_no_enobufs(true)?;
        let _ = self.0.set_rx_buf_sz(1usize << 20);
        self.0.add_membership(group)
    }
}

/// Netlink messages over a Unix stream: each message is its own frame (`nlmsg_len`). The
/// simulator sends the `config` group's notifications to every client, so joining is local.
pub(crate) struct StreamTransport(UnixStream);

impl StreamTransport {
    pub fn connect(path: &Path) -> io::Result<Self> {
        UnixStream::connect(path)
            .map(StreamTransport)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    }
}

/// Read one netlink message (header-framed) from a stream; `None` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut head = [0u8; 16];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_ne_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if !(16..=1 << 20).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a netlink frame of {len} bytes"),
        ));
    }
    let mut msg = head.to_vec();
    msg.resize(len, 0);
    r.read_exact(&mut msg[16..])?;
    // Frames keep netlink's 4-byte alignment.
    let pad = len.div_ceil(4) * 4 - len;
    let mut skip = [0u8; 4];
    r.read_exact(&mut skip[..pad])?;
    Ok(Some(msg))
}

/// Write one message as a frame (padded to 4 bytes as in a netlink datagram).
pub(crate) fn write_frame(w: &mut impl Write, msg: &[u8]) -> io::Result<()> {
    w.write_all(msg)?;
    let pad = msg.len().div_ceil(4) * 4 - msg.len();
    w.write_all(&[0u8; 4][..pad])
}

impl Transport for StreamTransport {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        // A request may hold several messages; frame them one by one.
        let mut at = 0;
        while at + 4 <= bytes.len() {
            let len = u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
                as usize;
            let end = (at + len).min(bytes.len());
            write_frame(&mut self.0, &bytes[at..end])?;
            at += len.div_ceil(4).max(1) * 4;
        }
        Ok(())
    }
    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        if !wait_readable(self.0.as_raw_fd(), timeout)? {
            return Ok(None);
        }
        match read_frame(&mut self.0)? {
            Some(m) => Ok(Some(m)),
            None => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the devlink peer closed the connection",
            )),
        }
    }
    fn join_group(&mut self, _group: u32) -> io::Result<()> {
        Ok(())
    }
}
