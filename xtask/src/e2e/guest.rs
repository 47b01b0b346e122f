//! The host's HTTP server and the guests: starting QEMU, reading its serial console, the
//! timeouts.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::Paths;

const OVMF: &str = "/usr/share/ovmf/OVMF.fd";
/// OVMF built with Secure Boot and SMM (Debian's ovmf): run with a copy of a variable store
/// whose keys decide what it starts (../shared/spec/secureboot.md).
pub(super) const OVMF_SB_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.ms.fd";
/// Microsoft's keys enrolled (PK, KEK, db with the UEFI CA that signs shim), Secure Boot on.
pub(super) const OVMF_SB_VARS_MS: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";
/// Debian's iPXE for QEMU's virtio NIC (ipxe-qemu), with its UEFI driver.
const IPXE_ROM: &str = "/usr/lib/ipxe/qemu/efi-virtio.rom";

/// Python's http.server on 127.0.0.1, which slirp shows the guest as 10.0.2.2.
pub(super) struct HttpServer {
    pub(super) port: u16,
    child: std::process::Child,
    log: PathBuf,
}

impl HttpServer {
    pub(super) fn start(dir: &Path, log: &Path) -> Result<HttpServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("python3 -m http.server")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            // It could not bind (someone took the port since we picked it): say so.
            if let Some(status) = child.try_wait()? {
                bail!(
                    "python3 -m http.server on port {port} ended: {status} (see {})",
                    log.display()
                );
            }
            ensure!(
                Instant::now() < deadline,
                "the HTTP server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(HttpServer {
            port,
            child,
            log: log.to_path_buf(),
        })
    }
    /// The server inside network namespace `netns`, on all its addresses at `port`.
    pub(super) fn start_in(netns: &str, dir: &Path, log: &Path, port: u16) -> Result<HttpServer> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns, "python3", "-m", "http.server"])
            .args(["--bind", "0.0.0.0", "--directory"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("ip netns exec python3 -m http.server")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let probe = format!("exec 3<>/dev/tcp/127.0.0.1/{port}");
        while !Command::new("ip")
            .args(["netns", "exec", netns, "bash", "-c", &probe])
            .stderr(Stdio::null())
            .status()?
            .success()
        {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the HTTP server in {netns} ended: {status} (see {})",
                    log.display()
                );
            }
            ensure!(
                Instant::now() < deadline,
                "the HTTP server in {netns} did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(HttpServer {
            port,
            child,
            log: log.to_path_buf(),
        })
    }
    /// The request lines it logged: `"GET /ks/pxe.cfg HTTP/1.1" 200 -`.
    pub(super) fn requests(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The guest's NIC.
pub(super) enum Nic<'a> {
    /// No NIC at all.
    None,
    /// QEMU's user network (slirp): the host is 10.0.2.2.
    User,
    /// A tap device on the e2e's bridge in network namespace `netns`, with this MAC; `netboot`
    /// makes it the firmware's second boot choice after the disk: through Debian's iPXE ROM, or,
    /// under Secure Boot (whose firmware refuses that unsigned ROM), the firmware's own PXE.
    Tap {
        netns: &'a str,
        tap: &'a str,
        mac: &'a str,
        netboot: bool,
    },
    /// One end of a UDP trunk in `netns` (QEMU's `-netdev socket,udp=`): QEMU listens on
    /// `listen` and sends to `peer`.
    Udp {
        netns: &'a str,
        mac: &'a str,
        listen: u16,
        peer: u16,
    },
}

/// How a disc is attached: a CD drive on AHCI, or a USB stick on an xHCI controller.
#[derive(Clone, Copy)]
pub(super) enum Removable {
    Cd,
    Usb,
}

pub(super) struct Guest<'a> {
    pub(super) name: &'a str,
    /// A disc the firmware boots first.
    pub(super) removable: Option<(&'a Path, Removable)>,
    /// A second USB stick (a volume labelled OEMDRV holding ks.cfg), never booted from.
    pub(super) oemdrv: Option<&'a Path>,
    pub(super) nic: Nic<'a>,
    /// Let the guest reboot (the firmware then boots again) instead of ending QEMU.
    pub(super) reboot: bool,
    /// Take the NIC's link down before the guest boots (QEMU's monitor `set_link`).
    pub(super) link_off: bool,
    /// Direct kernel boot (kernel, initrd); None boots the disk through OVMF.
    pub(super) kernel: Option<(&'a Path, &'a Path)>,
    pub(super) cmdline: String,
    pub(super) disk: PathBuf,
    pub(super) snapshot: bool,
    /// Boot by OVMF's Secure Boot firmware (q35, SMM, secure flash) with a fresh copy of this
    /// variable store, instead of the plain OVMF.
    pub(super) secure_boot: Option<&'a Path>,
    /// How many stock `edu` devices to give the guest (they wear the DPU identities).
    pub(super) edu: u8,
    pub(super) timeout: Duration,
    /// Stop the guest when this appears (a firmware boot has no poweroff of ours to wait for).
    pub(super) stop_at: &'a [&'a str],
    /// The end of the time all guests together may take.
    pub(super) deadline: Instant,
}

/// Kills the guest however `Guest::run` is left.
struct Qemu(std::process::Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(super) struct Serial {
    pub(super) text: String,
    pub(super) elapsed: Duration,
    pub(super) timed_out: bool,
}

impl Serial {
    pub(super) fn lines<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.text
            .lines()
            .filter_map(move |l| l.find(prefix).map(|i| &l[i..]))
    }
    /// ksinstall's exit code: the overlay's E2E-EXIT line, else (a guest that rebooted before
    /// the hook ran) the installer's own `finished` event.
    pub(super) fn exit_code(&self) -> Option<i32> {
        self.lines("E2E-EXIT ")
            .next()
            .and_then(|l| l["E2E-EXIT ".len()..].trim().parse().ok())
            .or_else(|| {
                self.events()
                    .iter()
                    .find(|e| e["event"] == "finished")
                    .and_then(|e| e["exit_code"].as_i64())
                    .and_then(|c| i32::try_from(c).ok())
            })
    }
    pub(super) fn failures(&self) -> Vec<&str> {
        self.lines("E2E-FAIL").collect()
    }
    /// The installer's JSON events (`--progress json`) among the console lines.
    pub(super) fn events(&self) -> Vec<serde_json::Value> {
        self.text
            .lines()
            .filter_map(|l| l.find('{').map(|i| &l[i..]))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
    /// The message of the installer's `failed` event, or "".
    pub(super) fn failure_message(&self) -> String {
        self.events()
            .iter()
            .find(|e| e["event"] == "failed")
            .and_then(|e| e["message"].as_str())
            .unwrap_or("")
            .to_string()
    }
    pub(super) fn expect_exit(&self, code: i32, meaning: &str, problems: &mut Vec<String>) {
        if self.exit_code() != Some(code) {
            problems.push(format!(
                "ksinstall ended with {:?}, not {code} ({meaning})",
                self.exit_code()
            ));
        }
    }
}

impl Guest<'_> {
    pub(super) fn run(&self, p: &Paths) -> Result<Serial> {
        if let Some(vars) = self.secure_boot {
            // The firmware writes its variables (boot options): every guest starts from the store.
            std::fs::copy(vars, self.vars(p)).with_context(|| format!("{}", vars.display()))?;
        }
        let mut cmd = self.command(p);
        println!("== [{}] booting ({:?})", self.name, cmd);
        let log_path = p.w(&format!("{}.serial.log", self.name));
        let mut log = std::fs::File::create(&log_path)?;
        let started = Instant::now();
        let mut child = Qemu(cmd.spawn().context("qemu-system-x86_64")?);
        let rx = forward_lines(&mut child)?;
        if self.link_off {
            self.set_link_off(p)?;
        }
        let deadline = (started + self.timeout).min(self.deadline);
        let (text, timed_out) = self.read_console(&rx, deadline, &mut log, &mut child)?;
        let _ = child.0.wait();
        let elapsed = started.elapsed();
        println!(
            "== [{}] {} after {:.1} s; serial log {}",
            self.name,
            if timed_out { "TIMED OUT" } else { "ended" },
            elapsed.as_secs_f64(),
            log_path.display()
        );
        Ok(Serial {
            text,
            elapsed,
            timed_out,
        })
    }

    fn vars(&self, p: &Paths) -> PathBuf {
        p.w(&format!("{}.vars.fd", self.name))
    }

    fn monitor(&self, p: &Paths) -> PathBuf {
        p.w(&format!("{}.monitor", self.name))
    }

    /// `set_link n0 off` on QEMU's monitor, as soon as it listens (the guest's kernel takes
    /// seconds to reach its NIC driver).
    fn set_link_off(&self, p: &Paths) -> Result<()> {
        let path = self.monitor(p);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match std::os::unix::net::UnixStream::connect(&path) {
                Ok(mut s) => {
                    s.write_all(b"set_link n0 off\n")?;
                    std::thread::sleep(Duration::from_millis(200));
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => {
                    bail!("QEMU's monitor {}: {e}", path.display())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// How the guest boots: the kernel given directly, OVMF, or OVMF's Secure Boot firmware.
    fn boot_args(&self, p: &Paths, cmd: &mut Command) {
        match self.kernel {
            Some((kernel, initrd)) => {
                cmd.arg("-kernel").arg(kernel).arg("-initrd").arg(initrd);
                cmd.arg("-append")
                    .arg(format!("console=ttyS0 panic=-1 quiet {}", self.cmdline));
            }
            None if self.secure_boot.is_some() => {
                // Secure Boot needs SMM, so that only the firmware writes its variables.
                cmd.args(["-machine", "q35,smm=on"])
                    .args(["-global", "driver=cfi.pflash01,property=secure,value=on"])
                    .arg("-drive")
                    .arg(format!(
                        "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_SB_CODE}"
                    ))
                    .arg("-drive")
                    .arg(format!(
                        "if=pflash,format=raw,unit=1,file={}",
                        self.vars(p).display()
                    ));
            }
            None => {
                cmd.args(["-bios", OVMF]);
            }
        }
    }

    /// The QEMU command line: the machine, the boot (kernel or firmware), the disk, the NIC and
    /// the `edu` devices.
    fn command(&self, p: &Paths) -> Command {
        let mut cmd = match &self.nic {
            Nic::Tap { netns, .. } | Nic::Udp { netns, .. } => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", netns, "qemu-system-x86_64"]);
                c
            }
            Nic::User | Nic::None => Command::new("qemu-system-x86_64"),
        };
        // No KVM on these machines (qemu-e2e.md §2); -no-reboot and panic=-1 make a panic end
        // the run instead of hanging until the timeout.
        // `-cpu max` has RDRAND, which the kernel trusts for its random pool, as on a real
        // server: qemu64 has no entropy source, and getrandom() (partition GUIDs) then blocks
        // for minutes at boot.
        cmd.args(["-accel", "tcg", "-cpu", "max", "-m", "1024", "-nodefaults"])
            .args(["-display", "none", "-serial", "stdio"]);
        if !self.reboot {
            cmd.arg("-no-reboot");
        }
        if self.link_off {
            let _ = std::fs::remove_file(self.monitor(p));
            cmd.arg("-monitor").arg(format!(
                "unix:{},server=on,wait=off",
                self.monitor(p).display()
            ));
        } else {
            cmd.args(["-monitor", "none"]);
        }
        self.boot_args(p, &mut cmd);
        self.disk_args(&mut cmd);
        self.nic_args(&mut cmd);
        self.edu_args(&mut cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// The disks: the target disk (the firmware's first boot choice), the disc booted first if
    /// any, and the OEMDRV stick.
    fn disk_args(&self, cmd: &mut Command) {
        let snapshot = if self.snapshot { ",snapshot=on" } else { "" };
        // The disk is the firmware's first boot choice: empty, it falls through to the NIC.
        cmd.arg("-drive").arg(format!(
            "file={},format=raw,if=none,id=d0,cache=unsafe{snapshot}",
            self.disk.display()
        ));
        cmd.args(["-device", "virtio-blk-pci,drive=d0,bootindex=1"]);
        match self.removable {
            Some((disc, Removable::Cd)) => {
                cmd.arg("-drive").arg(format!(
                    "file={},format=raw,if=none,id=cd,media=cdrom,readonly=on",
                    disc.display()
                ));
                cmd.args(["-device", "ahci,id=ahci"]);
                cmd.args(["-device", "ide-cd,bus=ahci.0,drive=cd,bootindex=0"]);
            }
            Some((disc, Removable::Usb)) => {
                // A copy-on-write view: the stick's image stays as built.
                cmd.arg("-drive").arg(format!(
                    "file={},format=raw,if=none,id=usb,snapshot=on",
                    disc.display()
                ));
                cmd.args(["-device", "qemu-xhci,id=xhci"]);
                cmd.args([
                    "-device",
                    "usb-storage,bus=xhci.0,drive=usb,removable=on,bootindex=0",
                ]);
            }
            None => {}
        }
        if let Some(stick) = self.oemdrv {
            cmd.arg("-drive").arg(format!(
                "file={},format=raw,if=none,id=oemdrv,readonly=on",
                stick.display()
            ));
            cmd.args(["-device", "qemu-xhci,id=xhci2"]);
            cmd.args([
                "-device",
                "usb-storage,bus=xhci2.0,drive=oemdrv,removable=on",
            ]);
        }
    }

    /// The NIC: none, QEMU's user network, a tap device (with the netboot ROM), or a UDP trunk.
    fn nic_args(&self, cmd: &mut Command) {
        match &self.nic {
            Nic::None => {}
            Nic::User => {
                cmd.args([
                    "-netdev",
                    "user,id=n0",
                    "-device",
                    "virtio-net-pci,netdev=n0",
                ]);
            }
            Nic::Tap {
                tap, mac, netboot, ..
            } => {
                cmd.arg("-netdev")
                    .arg(format!("tap,id=n0,ifname={tap},script=no,downscript=no"));
                let rom = match (*netboot, self.secure_boot.is_some()) {
                    (true, false) => format!(",romfile={IPXE_ROM},bootindex=2"),
                    (true, true) => ",romfile=,bootindex=2".to_string(),
                    (false, _) => String::new(),
                };
                cmd.arg("-device")
                    .arg(format!("virtio-net-pci,netdev=n0,mac={mac}{rom}"));
            }
            Nic::Udp {
                mac, listen, peer, ..
            } => {
                cmd.arg("-netdev").arg(format!(
                    "socket,id=n0,udp=127.0.0.1:{peer},localaddr=127.0.0.1:{listen}"
                ));
                cmd.arg("-device")
                    .arg(format!("virtio-net-pci,netdev=n0,mac={mac}"));
            }
        }
    }

    /// The stock `edu` devices that wear the DPU identities.
    fn edu_args(&self, cmd: &mut Command) {
        for i in 0..self.edu {
            // The second edu is function 2 of the first one's slot: one card, two functions.
            if self.edu > 1 {
                let f = if i == 0 {
                    "6.0,multifunction=on"
                } else {
                    "6.2"
                };
                cmd.args(["-device", &format!("edu,addr={f}")]);
            } else {
                cmd.args(["-device", "edu,addr=6.0"]);
            }
        }
    }

    /// The console lines until the guest ends, prints `stop_at` or passes `deadline` (then it
    /// is killed): the text, and whether it timed out. Every line goes to `log`; the E2E-
    /// markers are echoed here as they come.
    fn read_console(
        &self,
        rx: &mpsc::Receiver<String>,
        deadline: Instant,
        log: &mut std::fs::File,
        child: &mut Qemu,
    ) -> Result<(String, bool)> {
        let mut text = String::new();
        let mut timed_out = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    writeln!(log, "{line}")?;
                    if let Some(i) = line.find("E2E-") {
                        println!("   [{}] {}", self.name, &line[i..]);
                    }
                    let stop = self.stop_at.iter().any(|m| line.contains(m));
                    text.push_str(&line);
                    text.push('\n');
                    if stop {
                        let _ = child.0.kill();
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    timed_out = true;
                    let _ = child.0.kill();
                    break;
                }
            }
        }
        Ok((text, timed_out))
    }
}

/// QEMU's stdout and stderr, line by line, merged into one channel by a thread each; the
/// channel closes when both streams end.
fn forward_lines(child: &mut Qemu) -> Result<mpsc::Receiver<String>> {
    let (tx, rx) = mpsc::channel::<String>();
    let out = child.0.stdout.take().context("qemu stdout")?;
    let err = child.0.stderr.take().context("qemu stderr")?;
    for stream in [
        Box::new(out) as Box<dyn std::io::Read + Send>,
        Box::new(err),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stream);
            let mut buf = Vec::new();
            while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                if tx.send(line).is_err() {
                    break;
                }
                buf.clear();
            }
        });
    }
    drop(tx);
    Ok(rx)
}
