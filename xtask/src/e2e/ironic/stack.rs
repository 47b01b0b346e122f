//! The engine's services, each started inside the rollout's network namespace and stopped by
//! its PID: virtlogd, libvirtd, the HTTP servers, dnsmasq, sushy-tools' Redfish emulator, a
//! standalone Ironic and `ksinstall report serve`. Drop stops them all, removes the libvirt
//! domains and the namespace, and says whether anything is left.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::{SERVER, VIRSH_URI};
use crate::run;

/// One service: its `ip netns exec` child, and the PID the service itself wrote.
struct Service {
    name: String,
    child: Child,
    pidfile: PathBuf,
}

pub(super) struct Stack {
    pub(super) netns: String,
    pub(super) work: PathBuf,
    services: Vec<Service>,
    pub(super) domains: Vec<String>,
}

impl Stack {
    /// The namespace with its bridge (the rack's network, 10.77.0.1/24).
    pub(super) fn new(work: &Path) -> Result<Stack> {
        close_inherited_fds();
        let netns = format!("ksironic-{}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &netns]))?;
        let stack = Stack {
            netns: netns.clone(),
            work: work.to_path_buf(),
            services: Vec::new(),
            domains: Vec::new(),
        };
        for args in [
            vec!["link", "set", "lo", "up"],
            vec!["link", "add", "br0", "type", "bridge"],
            vec!["addr", "add", "10.77.0.1/24", "dev", "br0"],
            vec!["link", "set", "br0", "up"],
        ] {
            run(Command::new("ip").args(["-n", &netns]).args(&args))?;
        }
        Ok(stack)
    }

    /// Start `command` (a shell command line) in the namespace; it writes its own PID, since
    /// `ip netns exec` and `unshare` may stand between us and it.
    pub(super) fn start(&mut self, name: &str, command: &str) -> Result<()> {
        let pidfile = self.work.join(format!("run/{name}.pid"));
        let _ = std::fs::remove_file(&pidfile);
        let log = std::fs::File::create(self.work.join(format!("logs/{name}.log")))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns, "sh", "-c"])
            .arg(format!("echo $$ > '{}'; {command}", pidfile.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.services.push(Service {
            name: name.into(),
            child,
            pidfile,
        });
        Ok(())
    }

    /// Wait until something listens on SERVER:`port` in the namespace.
    pub(super) fn wait_port(&mut self, name: &str, port: u16, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        let probe = format!("exec 3<>/dev/tcp/{SERVER}/{port}");
        loop {
            let ok = Command::new("ip")
                .args(["netns", "exec", &self.netns, "bash", "-c", &probe])
                .stderr(Stdio::null())
                .status()?
                .success();
            if ok {
                return Ok(());
            }
            if let Some(s) = self.services.iter_mut().find(|s| s.name == name) {
                if let Some(status) = s.child.try_wait()? {
                    bail!(
                        "{name} ended ({status}); see {}",
                        self.work.join(format!("logs/{name}.log")).display()
                    );
                }
            }
            ensure!(
                Instant::now() < deadline,
                "{name} did not listen on port {port} within {within:?}; see {}",
                self.work.join(format!("logs/{name}.log")).display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stop everything; returns what is still running in the namespace afterwards (nothing,
    /// when all went well).
    pub(super) fn stop(&mut self) -> Vec<String> {
        for d in std::mem::take(&mut self.domains) {
            let _ = Command::new("virsh")
                .args(["-c", VIRSH_URI, "destroy", &d])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = Command::new("virsh")
                .args(["-c", VIRSH_URI, "undefine", "--nvram", &d])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // The transient pool (libvirtd would bring it back when it starts again), then the
        // services in reverse order of start.
        let _ = Command::new("virsh")
            .args(["-c", VIRSH_URI, "pool-destroy", "default"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for s in self.services.iter_mut().rev() {
            if let Some(pid) = std::fs::read_to_string(&s.pidfile)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
            {
                // SAFETY: kill(2) on a PID this run's service wrote.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let _ = s.child.kill();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut left = self.pids_in_netns();
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(250));
            left = self.pids_in_netns();
        }
        for pid in &left {
            // SAFETY: a process inside this run's own namespace, still there after SIGTERM.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        for s in self.services.iter_mut() {
            let _ = s.child.wait();
        }
        std::thread::sleep(Duration::from_millis(300));
        let still: Vec<String> = self
            .pids_in_netns()
            .iter()
            .map(|p| {
                let cmd = std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .unwrap_or_default()
                    .replace('\0', " ");
                format!("{p} {cmd}")
            })
            .collect();
        self.services.clear();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        still
    }

    fn pids_in_netns(&self) -> Vec<i32> {
        Command::new("ip")
            .args(["netns", "pids", &self.netns])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The services must not inherit what this process inherited (the `flock` lock of
/// /tmp/cargo.lock that the build runs under, above all: a daemon holding it would hold every
/// other build up, and it is not ours to keep): every descriptor above stderr is closed on exec.
fn close_inherited_fds() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: fcntl(2) on a descriptor number of this process; a closed one fails harmlessly.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if !self.services.is_empty() || !self.domains.is_empty() {
            let left = self.stop();
            if !left.is_empty() {
                eprintln!("== still running after the rollout: {left:?}");
            }
        }
    }
}
