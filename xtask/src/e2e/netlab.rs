//! The e2e's network on this machine, as a datacenter's looks to a server: a network namespace
//! with a bridge, a tap for the guest, dnsmasq as the DHCP and TFTP server, and an HTTP server.
//! The bridge has 10.77.0.1/24. VLAN 42 has 10.78.0.1/24 on the tap `vlan42`, the only address
//! the host has in that subnet, behind tests/e2e/vlan-port.py: a switch port that passes the
//! guest's frames to it only when tagged 42 (this machine's kernel has no 8021q to make a host
//! VLAN interface), so a guest there reaches the server only with tagged frames.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::guest::HttpServer;
use crate::run;

pub(super) const SERVER: &str = "10.77.0.1";
pub(super) const VLAN_ID: u16 = 42;
pub(super) const VLAN_SERVER: &str = "10.78.0.1";
pub(super) const HTTP_PORT: u16 = 8080;
pub(super) const TAP: &str = "tap0";
/// UDP ports of the VLAN trunk between QEMU (`-netdev socket,udp=`) and vlan-port.py.
pub(super) const VLAN_PORT_LISTENS: u16 = 5542;
pub(super) const VLAN_GUEST_LISTENS: u16 = 5543;

pub(super) struct NetLab {
    pub(super) netns: String,
    dnsmasq: std::process::Child,
    pub(super) dnsmasq_log: PathBuf,
    pub(super) http: HttpServer,
    vlan_port: Option<std::process::Child>,
    pub(super) vlan_port_log: PathBuf,
}

fn ip(args: &[&str]) -> Result<()> {
    run(Command::new("ip").args(args))
}

impl NetLab {
    /// The namespace, its bridge, VLAN interface and tap, then dnsmasq serving `tftp` and the
    /// HTTP server serving `www`; their logs go to `work`.
    pub(super) fn start(work: &Path, tftp: &Path, www: &Path) -> Result<NetLab> {
        let netns = format!("kse2e-{}", std::process::id());
        ip(&["netns", "add", &netns])?;
        // From here on the namespace is removed however this ends (Drop of a half-made lab
        // would need the children: delete it by hand on an error).
        let made = (|| -> Result<()> {
            let n = netns.as_str();
            ip(&["-n", n, "link", "set", "lo", "up"])?;
            ip(&["-n", n, "link", "add", "br0", "type", "bridge"])?;
            ip(&[
                "-n",
                n,
                "addr",
                "add",
                &format!("{SERVER}/24"),
                "dev",
                "br0",
            ])?;
            ip(&["-n", n, "link", "set", "br0", "up"])?;
            ip(&["-n", n, "tuntap", "add", "dev", TAP, "mode", "tap"])?;
            ip(&["-n", n, "link", "set", TAP, "master", "br0"])?;
            ip(&["-n", n, "link", "set", TAP, "up"])
        })();
        if let Err(e) = made {
            let _ = ip(&["netns", "del", &netns]);
            return Err(e);
        }
        let dnsmasq_log = work.join("dnsmasq.log");
        let _ = std::fs::remove_file(&dnsmasq_log);
        let spawned = Command::new("ip")
            .args(["netns", "exec", &netns, "dnsmasq", "--keep-in-foreground"])
            .args([
                "--conf-file=/dev/null",
                "--port=0",
                "--interface=br0",
                "--bind-interfaces",
            ])
            .args([
                "--dhcp-range=10.77.0.100,10.77.0.150,1h",
                // The Secure Boot guest boots shim (its firmware refuses iPXE); the rest iPXE.
                &format!("--dhcp-host={},set:sb", super::secureboot::SB_MAC),
                "--dhcp-boot=tag:sb,shimx64.efi",
                "--dhcp-boot=tag:!sb,boot.ipxe",
            ])
            .arg("--enable-tftp")
            .arg(format!("--tftp-root={}", tftp.display()))
            .args(["--log-dhcp", "--log-queries"])
            .arg(format!("--log-facility={}", dnsmasq_log.display()))
            .arg(format!(
                "--dhcp-leasefile={}",
                work.join("dnsmasq.leases").display()
            ))
            .arg(format!("--pid-file={}", work.join("dnsmasq.pid").display()))
            .stdout(Stdio::null())
            .spawn()
            .context("dnsmasq (Debian's dnsmasq-base)");
        let dnsmasq = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = ip(&["netns", "del", &netns]);
                return Err(e);
            }
        };
        let http = match HttpServer::start_in(&netns, www, &work.join("http-lab.log"), HTTP_PORT) {
            Ok(h) => h,
            Err(e) => {
                let mut lab_dnsmasq = dnsmasq;
                let _ = lab_dnsmasq.kill();
                let _ = lab_dnsmasq.wait();
                let _ = ip(&["netns", "del", &netns]);
                return Err(e);
            }
        };
        let lab = NetLab {
            netns,
            dnsmasq,
            dnsmasq_log,
            http,
            vlan_port: None,
            vlan_port_log: work.join("vlan-port.log"),
        };
        lab.wait_for_dnsmasq()?;
        Ok(lab)
    }

    /// dnsmasq says it serves TFTP once it is ready.
    fn wait_for_dnsmasq(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.dnsmasq_says().contains("TFTP root is") {
            anyhow::ensure!(
                Instant::now() < deadline,
                "dnsmasq did not start in 10 s (see {})",
                self.dnsmasq_log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// VLAN 42's switch port and the server's address behind it (tests/e2e/vlan-port.py).
    pub(super) fn start_vlan(&mut self, root: &Path) -> Result<()> {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns, "python3"])
            .arg(root.join("tests/e2e/vlan-port.py"))
            .args(["vlan42", &VLAN_ID.to_string()])
            .args([
                VLAN_PORT_LISTENS.to_string(),
                VLAN_GUEST_LISTENS.to_string(),
            ])
            .stdout(std::fs::File::create(&self.vlan_port_log)?)
            .stderr(Stdio::inherit())
            .spawn()
            .context("tests/e2e/vlan-port.py")?;
        self.vlan_port = Some(child);
        let n = self.netns.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Command::new("ip")
            .args(["-n", &n, "link", "show", "vlan42"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?
            .success()
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "vlan-port.py made no vlan42 in 10 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        ip(&[
            "-n",
            &n,
            "addr",
            "add",
            &format!("{VLAN_SERVER}/24"),
            "dev",
            "vlan42",
        ])?;
        ip(&["-n", &n, "link", "set", "vlan42", "up"])
    }

    pub(super) fn dnsmasq_says(&self) -> String {
        std::fs::read_to_string(&self.dnsmasq_log).unwrap_or_default()
    }

    pub(super) fn url(&self) -> String {
        format!("http://{SERVER}:{HTTP_PORT}")
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        if let Some(c) = self.vlan_port.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.dnsmasq.kill();
        let _ = self.dnsmasq.wait();
        // The HTTP server is killed by its own Drop; the namespace takes the bridge and tap.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}
