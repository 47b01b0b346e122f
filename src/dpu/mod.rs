//! The DPU: its firmware bundles, the payload made for it, and the two vendor interfaces that
//! put the payload on it: BlueField through rshim, Pensando DSC through devlink. Used by the
//! inventory side (`observe`: what a card runs, read-only) and by apply (`install`).
//! See docs/DPU.md.

pub mod bundle;
pub mod devlink;
pub mod payload;
pub mod rshim;
pub mod transport;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::exit::Outcome;
use crate::inventory::catalog::Role;
use crate::inventory::pci::{Dpu, DpuFunction as inventory_function};
use devlink::{Client, DevlinkError};
pub use transport::Endpoint;

/// How this run reaches the DPUs, and how patient it is.
#[derive(Debug, Clone)]
pub struct Access {
    /// The directory standing for `/`: `dev/rshimN`, `lib/firmware`.
    pub sysroot: PathBuf,
    pub devlink: Endpoint,
    /// The longest a DPU may say nothing before the install gives up on it.
    pub silence: Duration,
    /// How often `misc` is read while a BlueField installs.
    pub poll: Duration,
    /// Set when the host install failed: stop waiting for the DPU (a transfer in progress is
    /// finished, so the card is never left with half a stream).
    pub cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Reach a DSC through this devlink handle (bus, device) instead of `pci/<its management
    /// function>`: for tests only, where a kernel's netdevsim stands in for the card
    /// (`--dpu-devlink-handle netdevsim/netdevsim10`, docs/TESTING.md).
    pub devlink_handle: Option<(String, String)>,
}

impl Access {
    pub fn new(sysroot: &Path) -> Access {
        Access {
            sysroot: sysroot.to_path_buf(),
            devlink: Endpoint::Kernel,
            silence: Duration::from_secs(DEFAULT_SILENCE_SECS),
            poll: Duration::from_millis(500),
            cancel: Default::default(),
            devlink_handle: None,
        }
    }
}

/// A BlueField's OS install takes 10-20 minutes, mostly in steps that log; a DSC's firmware
/// install announces its own (longer) timeout. Half an hour of silence means it is gone.
pub const DEFAULT_SILENCE_SECS: u64 = 1800;

/// The host interface a card is reached through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Interface {
    Rshim {
        dir: PathBuf,
        dev_name: String,
    },
    Devlink {
        bus: String,
        device: String,
        driver: Option<String>,
        /// Where the kernel's `request_firmware` will look for the staged file: the machine's
        /// own `/lib/firmware` (a simulator reads below the sysroot instead).
        firmware_dir: PathBuf,
    },
}

impl std::fmt::Display for Interface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Interface::Rshim { dir, .. } => write!(f, "rshim {}", dir.display()),
            Interface::Devlink {
                bus,
                device,
                driver: Some(d),
                ..
            } => write!(f, "devlink {bus}/{device} ({d})"),
            Interface::Devlink { bus, device, .. } => write!(f, "devlink {bus}/{device}"),
        }
    }
}

/// A version a card reports: `running fw 1.68.0-E-21`, `stored fw.mainfwb ...`, `rshim DEV_INFO`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionEntry {
    pub kind: String,
    pub name: String,
    pub value: String,
}

/// What a card runs and how it is reached, read without changing anything.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Observed {
    /// The card's address (`Dpu::address`).
    pub address: String,
    pub interface: Option<Interface>,
    /// The firmware version the card runs, when its interface tells (devlink `fw`).
    pub running_firmware: Option<String>,
    /// What the card runs, in words, when it can tell.
    pub software: Option<String>,
    pub versions: Vec<VersionEntry>,
    /// Why the card cannot be installed through its interface now.
    pub problem: Option<String>,
    /// Set when the card runs in a mode in which ESXi does not use it as a DPU: the host is
    /// installed without Distributed Services Engine (docs/DPU.md).
    #[serde(default)]
    pub not_a_dpu: Option<NotADpu>,
    /// Which function the interface is reached through, and why (a DSC: the bound driver).
    pub reached_through: Option<String>,
}

impl Observed {
    fn new(dpu: &Dpu) -> Observed {
        Observed {
            address: dpu.identity.address.clone(),
            interface: None,
            running_firmware: None,
            software: None,
            versions: Vec::new(),
            problem: None,
            not_a_dpu: None,
            reached_through: None,
        }
    }
}

fn is_bluefield(dpu: &Dpu) -> bool {
    dpu.management_role == Some(Role::Rshim)
}

/// The addresses an rshim device of this card names in `DEV_NAME`.
fn rshim_addresses(dpu: &Dpu) -> Vec<String> {
    dpu.functions
        .iter()
        .filter(|f| matches!(f.role, Role::Rshim | Role::Recovery))
        .map(|f| f.address.clone())
        .collect()
}

/// Read what a supported card runs, through its vendor interface.
pub fn observe(dpu: &Dpu, access: &Access) -> Observed {
    let mut o = Observed::new(dpu);
    if is_bluefield(dpu) {
        observe_rshim(dpu, access, &mut o);
    } else {
        observe_devlink(dpu, access, &mut o);
    }
    o
}

/// Where NVIDIA's rshim daemon is installed (its package, or `cargo xtask image --with-rshim`).
const RSHIM_DAEMON: &[&str] = &["usr/sbin/rshim", "usr/bin/rshim"];

/// Why a BlueField has no rshim device: no daemon on this system at all (it is not in Debian,
/// so the installer image has it only when built with --with-rshim), or one that did not make
/// the device.
fn no_rshim_device(sysroot: &std::path::Path, addresses: &[String]) -> String {
    let dev = sysroot.join("dev");
    if RSHIM_DAEMON.iter().any(|p| sysroot.join(p).is_file()) {
        return format!(
            "no rshim device for {} below {} (the rshim daemon creates dev/rshimN for each BlueField; is it running, and not owned by the card's BMC?)",
            addresses.join(", "),
            dev.display()
        );
    }
    format!(
        "no rshim device for {} below {}, and no rshim daemon on this system ({}): NVIDIA's rshim is not in Debian; build the installer image with `cargo xtask image --with-rshim FILE` (docs/IMAGE.md) or install NVIDIA's rshim package",
        addresses.join(", "),
        dev.display(),
        RSHIM_DAEMON.iter().map(|p| format!("/{p}")).collect::<Vec<_>>().join(", ")
    )
}

fn observe_rshim(dpu: &Dpu, access: &Access, o: &mut Observed) {
    let addresses = rshim_addresses(dpu);
    let dev = match rshim::find(&access.sysroot, &addresses) {
        Ok(Some(d)) => d,
        Ok(None) => {
            o.problem = Some(no_rshim_device(&access.sysroot, &addresses));
            return;
        }
        Err(e) => {
            o.problem = Some(format!("reading the rshim devices: {e}"));
            return;
        }
    };
    o.interface = Some(Interface::Rshim {
        dir: dev.dir.clone(),
        dev_name: dev.dev_name.clone(),
    });
    for (name, v) in [
        ("DEV_INFO", &dev.dev_info),
        ("OPN_STR", &dev.opn),
        ("BF_MODE", &dev.bf_mode),
    ] {
        if let Some(v) = v {
            o.versions.push(VersionEntry {
                kind: "rshim".into(),
                name: name.into(),
                value: v.clone(),
            });
        }
    }
    // rshim tells the chip and the card, not the OS or firmware versions it runs: a BlueField
    // is always installed (docs/DPU.md).
    // bfb-install's own test for NIC mode: `misc` says "NIC mode" (its mlxconfig query of
    // INTERNAL_CPU_OFFLOAD_ENGINE needs NVIDIA's MFT, which the installer image does not carry).
    if dev
        .bf_mode
        .as_deref()
        .is_some_and(|m| m.to_ascii_lowercase().contains("nic mode"))
    {
        o.not_a_dpu = Some(NotADpu::NicMode);
    } else if dev.secure_nic_mode {
        o.not_a_dpu = Some(NotADpu::SecureNicMode);
    } else if dev.drop_mode {
        o.problem = Some(rshim::take_back_hint(&dev.dir));
    }
}

/// A mode in which a supported BlueField is not a DPU to ESXi.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotADpu {
    /// `BF_MODE` says NIC mode: the card behaves as a plain adapter and its Arm cores own
    /// nothing (NVIDIA, "Modes of Operation").
    NicMode,
    /// `SECURE_NIC_MODE 1`: the card is locked; rshim cannot push a boot stream over PCIe.
    SecureNicMode,
}

impl std::fmt::Display for NotADpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotADpu::NicMode => "the BlueField is in NIC mode (rshim's misc: BF_MODE NIC mode), so ESXi uses it as a network adapter, not as a DPU",
            NotADpu::SecureNicMode => "the BlueField is in SECURE_NIC_MODE, which disables rshim's boot device over PCIe, so no DPU software can be put on it from the host",
        })
    }
}

impl NotADpu {
    /// How an operator makes the card a DPU again (NVIDIA's documented ways).
    pub fn fix(self) -> &'static str {
        match self {
            NotADpu::NicMode => "switch it to DPU mode (mlxconfig -d <PF0> s INTERNAL_CPU_OFFLOAD_ENGINE=0, or the card BMC's Redfish Mode.Set DpuMode), power-cycle the host, and install again",
            NotADpu::SecureNicMode => "turn SECURE_NIC_MODE off from the card's side (its BMC or the Arm OS), then install again",
        }
    }
}

fn observe_devlink(dpu: &Dpu, access: &Access, o: &mut Observed) {
    let (bus, device) = match (&access.devlink_handle, devlink_function(dpu)) {
        (Some((bus, device)), _) => (bus.clone(), device.clone()),
        (None, Ok((device, why))) => {
            o.reached_through = Some(why);
            ("pci".to_string(), device)
        }
        (None, Err(why)) => {
            o.problem = Some(why.to_string());
            return;
        }
    };
    let mut client = match access
        .devlink
        .open()
        .map_err(DevlinkError::from)
        .and_then(|t| Client::connect(t, Duration::from_secs(10), false))
    {
        Ok(c) => c,
        Err(e) => {
            o.problem = Some(format!("devlink ({}): {e}", access.devlink.describe()));
            return;
        }
    };
    match client.info(&bus, &device, Duration::from_secs(30)) {
        Ok(info) => {
            let firmware_dir = match &access.devlink {
                Endpoint::Kernel => PathBuf::from("/lib/firmware"),
                Endpoint::Simulator(_) => access.sysroot.join("lib/firmware"),
            };
            if let Err(e) = check_writable(&firmware_dir.join("ksinstall")) {
                o.problem = Some(format!(
                    "the DSC firmware must be staged in {} for the kernel to find it, and it cannot be: {e}",
                    firmware_dir.display()
                ));
            }
            o.interface = Some(Interface::Devlink {
                bus: bus.clone(),
                device: device.clone(),
                driver: info.driver.clone(),
                firmware_dir,
            });
            for (kind, list) in [
                ("fixed", &info.fixed),
                ("running", &info.running),
                ("stored", &info.stored),
            ] {
                for v in list {
                    o.versions.push(VersionEntry {
                        kind: kind.into(),
                        name: v.name.clone(),
                        value: v.value.clone(),
                    });
                }
            }
            if let Some(fw) = info.running.iter().find(|v| v.name == "fw") {
                o.software = Some(format!("firmware {}", fw.value));
                o.running_firmware = Some(fw.value.clone());
            }
        }
        Err(e) => {
            o.problem = Some(format!("devlink dev info {bus}/{device}: {e}"));
        }
    }
}

/// The function a DSC's devlink instance is reached through, chosen by the driver actually
/// bound to it (its `driver` link in sysfs), not by its PCI id alone: a devlink instance exists
/// only where a driver registered one. `pds_core` on the core PF (100c) first, as the catalog
/// prefers it; else `ionic` on an Ethernet PF (1002), lowest address first. Returns the address
/// and a sentence saying which and why.
pub(crate) fn devlink_function(dpu: &Dpu) -> Result<(String, String), NoDevlinkFunction> {
    let bound = |role: Role, driver: &str| {
        let mut f: Vec<&inventory_function> = dpu
            .functions
            .iter()
            .filter(|f| f.role == role && f.driver.as_deref() == Some(driver))
            .collect();
        f.sort_by(|a, b| a.address.cmp(&b.address));
        f.first().map(|f| f.address.clone())
    };
    if let Some(a) = bound(Role::CorePf, "pds_core") {
        return Ok((a.clone(), format!("reached through pds_core on {a}")));
    }
    if let Some(a) = bound(Role::EthPf, "ionic") {
        let core = dpu
            .functions
            .iter()
            .find(|f| f.role == Role::CorePf)
            .map(|f| {
                format!(
                    "the core PF {} is bound to {}",
                    f.address,
                    f.driver.as_deref().unwrap_or("no driver")
                )
            })
            .unwrap_or_else(|| "the card shows no core PF".into());
        return Ok((a.clone(), format!("reached through ionic on {a} ({core})")));
    }
    Err(NoDevlinkFunction)
}

/// A DSC none of whose functions is bound to a driver that registers a devlink instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no function of the card is bound to pds_core (core PF 1dd8:100c) or ionic (Ethernet PF 1dd8:1002): without one the kernel has no devlink instance to flash through")]
pub(crate) struct NoDevlinkFunction;

/// The host's network interfaces that are functions of this card: `sys/class/net/<if>/device`
/// resolves to one of the card's PCI functions (its NIC PFs). Resetting the card (a BlueField
/// push resets the chip; a DSC reboots into the new bank) takes these ports down.
pub(crate) fn interfaces_on(dpu: &Dpu, sysroot: &Path) -> Vec<String> {
    let net = sysroot.join("sys/class/net");
    let Ok(entries) = std::fs::read_dir(&net) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::canonicalize(e.path().join("device"))
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .is_some_and(|a| {
                    dpu.functions
                        .iter()
                        .any(|f| f.address.eq_ignore_ascii_case(&a))
                })
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// Make `dir` if needed and write and remove a file in it.
fn check_writable(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(".ksinstall-probe");
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

/// Whether a card already runs exactly the firmware a payload carries: a DSC whose running
/// `fw` (devlink) is the bundle's version. A BlueField never says (rshim has no version).
pub(crate) fn runs_firmware(o: &Observed, firmware_version: &str) -> bool {
    o.running_firmware.as_deref() == Some(firmware_version)
}

/// A failed DPU install: which card, which step, what the device said, and the exit class.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{dpu}: {step}: {message}")]
pub(crate) struct DpuFault {
    pub dpu: String,
    pub step: String,
    pub message: String,
    pub outcome: Outcome,
}

/// Progress of one card's install.
pub enum Progress {
    Bytes(u64),
    Status(String),
}

/// What reached a card, and its state afterwards.
pub(crate) struct Delivered {
    pub after: Observed,
    pub bytes: u64,
    pub sha256: String,
}

/// One vendor interface: put a staged payload onto the card and wait until the card has it.
pub(crate) trait Backend {
    fn install(
        &mut self,
        staged: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Delivered, DpuFault>;
}

/// BlueField: the boot stream into `boot`, then `misc` until our payload's own line.
pub(crate) struct RshimBackend<'a> {
    pub dpu: &'a Dpu,
    pub name: String,
    pub dir: PathBuf,
    /// The line the `bf.cfg` hook logs when the card's installer has run it (`payload::marker`).
    pub marker: String,
    pub access: &'a Access,
}

/// What one push came to: the bytes sent and their SHA-256, how the card ended, its log.
type Pushed = ((u64, String), rshim::Finish, Vec<String>);

fn rshim_outcome(e: &rshim::RshimError) -> Outcome {
    use rshim::RshimError as E;
    match e {
        E::Transfer(_) | E::Io(_) => Outcome::DpuTransfer,
        E::Timeout(_) => Outcome::DpuTimeout,
        E::Refused(_) | E::Busy(_) | E::Dropped(_) => Outcome::DpuRefused,
        E::Failed(_) | E::Unconfirmed(_) | E::Cancelled => Outcome::Dpu,
        E::Interrupted(_) => Outcome::Interrupted,
    }
}

impl RshimBackend<'_> {
    fn fault(&self, step: &str, e: rshim::RshimError) -> DpuFault {
        DpuFault {
            dpu: self.name.clone(),
            step: step.into(),
            outcome: rshim_outcome(&e),
            message: e.to_string(),
        }
    }

    /// bfb-install's steps, in its order: check the device (drop mode, locked, a stale
    /// `BOOT_RESET_SKIP`), push, then `CLEAR_ON_READ 1` and `DISPLAY_LEVEL 2`, then follow the
    /// log. Every `misc` setting changed is put back when `restore` is dropped, on every path.
    fn run(
        &self,
        staged: &Path,
        restore: &mut rshim::MiscRestore,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Pushed, DpuFault> {
        let misc = self.dir.join("misc");
        let io = |e: std::io::Error| {
            self.fault(
                "rshim",
                rshim::RshimError::Io(format!("{}: {e}", misc.display())),
            )
        };
        let before = rshim::read_before(&self.dir).map_err(|e| self.fault("rshim", e))?;
        if before.boot_reset_skip {
            // Left at 1 (an interrupted runtime update does that), the push would not reset
            // the card and the running OS would get a stream it does not read.
            progress(Progress::Status(format!(
                "{}: BOOT_RESET_SKIP was 1; set to 0 for this push, put back afterwards",
                misc.display()
            )));
            restore
                .set("BOOT_RESET_SKIP 0", "BOOT_RESET_SKIP 1".into())
                .map_err(io)?;
        }
        if before.log.is_none() {
            progress(Progress::Status(format!(
                "{}: CLEAR_ON_READ was already 1 (another reader follows this log); its old lines were not read",
                misc.display()
            )));
        }
        let sent = rshim::push(&self.dir, staged, self.access.silence, &mut |n| {
            progress(Progress::Bytes(n))
        })
        .map_err(|e| self.fault("boot stream", e))?;
        progress(Progress::Status(
            "boot stream sent; the DPU installs".into(),
        ));
        let on = |b: bool| if b { "1" } else { "0" };
        restore
            .set(
                "CLEAR_ON_READ 1",
                format!("CLEAR_ON_READ {}", on(before.clear_on_read)),
            )
            .map_err(io)?;
        restore
            .set(
                "DISPLAY_LEVEL 2",
                format!("DISPLAY_LEVEL {}", before.display_level),
            )
            .map_err(io)?;
        let watch = rshim::Watch {
            dir: &self.dir,
            seen: before.log.unwrap_or_default(),
            marker: &self.marker,
            silence: self.access.silence,
            poll: self.access.poll,
            cancel: &self.access.cancel,
        };
        let mut warnings = Vec::new();
        let (finish, log) = rshim::wait(
            watch,
            &mut |l| progress(Progress::Status(l.to_string())),
            &mut |l| warnings.push(l.to_string()),
        )
        .map_err(|e| self.fault("install", e))?;
        for w in warnings {
            log::warn!("{}: the DPU logged: {w}", self.name);
        }
        Ok((sent, finish, log))
    }
}

impl Backend for RshimBackend<'_> {
    fn install(
        &mut self,
        staged: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Delivered, DpuFault> {
        let mut restore = rshim::MiscRestore::new(&self.dir);
        let result = self.run(staged, &mut restore, progress);
        drop(restore);
        let ((bytes, sha256), rshim::Finish::Confirmed(line), log) = result?;
        let mut after = Observed::new(self.dpu);
        after.interface = Some(Interface::Rshim {
            dir: self.dir.clone(),
            dev_name: rshim::read_device(&self.dir)
                .map(|d| d.dev_name)
                .unwrap_or_default(),
        });
        after.software = Some(format!("installed from this boot stream ({line})"));
        after.versions = log
            .iter()
            .map(|l| VersionEntry {
                kind: "log".into(),
                name: "rshim".into(),
                value: l.clone(),
            })
            .collect();
        Ok(Delivered {
            after,
            bytes,
            sha256,
        })
    }
}

/// Pensando DSC: `devlink dev flash` of the package placed in the firmware search path.
pub(crate) struct DevlinkBackend<'a> {
    pub dpu: &'a Dpu,
    pub name: String,
    /// The devlink handle: `pci` and the management function's address.
    pub bus: String,
    pub device: String,
    /// The file name relative to the firmware search path.
    pub firmware_name: String,
    /// The firmware version the card must store afterwards.
    pub firmware_version: String,
    pub firmware_dir: PathBuf,
    pub access: &'a Access,
}

fn devlink_outcome(e: &DevlinkError) -> Outcome {
    match e {
        DevlinkError::Kernel { errno, .. }
            if [
                libc::EBUSY,
                libc::EOPNOTSUPP,
                libc::EPERM,
                libc::EACCES,
                libc::ENODEV,
            ]
            .contains(&errno.abs()) =>
        {
            Outcome::DpuRefused
        }
        DevlinkError::Timeout { .. } => Outcome::DpuTimeout,
        // The kernel could not find the staged file: it never reached the device.
        DevlinkError::Kernel { errno, .. } if errno.abs() == libc::ENOENT => Outcome::DpuTransfer,
        DevlinkError::Io(_) | DevlinkError::Protocol(_) => Outcome::DpuTransfer,
        _ => Outcome::Dpu,
    }
}

impl Backend for DevlinkBackend<'_> {
    fn install(
        &mut self,
        staged: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Delivered, DpuFault> {
        let fault = |step: &str, e: DevlinkError| DpuFault {
            dpu: self.name.clone(),
            step: step.into(),
            outcome: devlink_outcome(&e),
            message: match &e {
                DevlinkError::Kernel { errno, .. } if errno.abs() == libc::EBUSY => {
                    format!("{e} (another flash or a firmware command is in progress on the card)")
                }
                DevlinkError::Kernel { errno, .. } if errno.abs() == libc::EOPNOTSUPP => {
                    format!("{e} (the driver bound to {} cannot flash)", self.device)
                }
                _ => e.to_string(),
            },
        };
        // The package as the kernel will read it: its size and hash, for the report.
        let (size, sha256) = std::fs::File::open(staged)
            .and_then(|mut f| crate::media::verify::sha256_of(&mut f))
            .map_err(|e| fault("stage", DevlinkError::Io(e)))?;
        // Two sockets, as iproute2 uses: one joined to the progress group, one for the request.
        let connect = |join: bool| {
            let transport = self
                .access
                .devlink
                .open()
                .map_err(|e| fault("connect", e.into()))?;
            Client::connect(transport, Duration::from_secs(10), join)
                .map_err(|e| fault("connect", e))
        };
        let mut client = connect(true)?;
        let request = connect(false)?;
        devlink::flash(
            &mut client,
            request,
            &self.bus,
            &self.device,
            &self.firmware_name,
            None,
            self.access.silence,
            &self.access.cancel,
            &mut |s| {
                let mut text = s.message.clone().unwrap_or_default();
                if let Some(c) = &s.component {
                    text = format!("[{c}] {text}");
                }
                // done and total come from the device: no overflow, no division by 0.
                if let Some(pct) = (u128::from(s.done) * 100).checked_div(u128::from(s.total)) {
                    text = format!("{text} {pct}%");
                    if s.message.as_deref() == Some("Downloading") {
                        progress(Progress::Bytes(
                            (u128::from(s.done) * u128::from(size) / u128::from(s.total)) as u64,
                        ));
                    }
                }
                if s.timeout_secs > 0 {
                    text = format!("{text} (may take up to {}s)", s.timeout_secs);
                }
                progress(Progress::Status(text));
            },
        )
        .map_err(|e| fault("flash", e))?;
        let info = client
            .info(&self.bus, &self.device, Duration::from_secs(30))
            .map_err(|e| fault("confirm", e))?;
        // The new firmware must show in a bank: the DSC installs into the inactive one. The ionic
        // driver (DSC-25/100) reports no stored versions; there the ACK and the driver's
        // "Flash done" are all there is.
        let expected = self.firmware_version.as_str();
        if !info.stored.is_empty() && !info.stored.iter().any(|v| v.value == expected) {
            return Err(DpuFault {
                dpu: self.name.clone(),
                step: "confirm".into(),
                outcome: Outcome::Dpu,
                message: format!(
                    "devlink dev info {}/{} shows no stored firmware {expected} after the flash (stored: {})",
                    self.bus,
                    self.device,
                    info.stored
                        .iter()
                        .map(|v| format!("{} {}", v.name, v.value))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        let mut after = Observed::new(self.dpu);
        after.interface = Some(Interface::Devlink {
            bus: self.bus.clone(),
            device: self.device.clone(),
            driver: info.driver.clone(),
            firmware_dir: self.firmware_dir.clone(),
        });
        for (kind, list) in [("running", &info.running), ("stored", &info.stored)] {
            for v in list {
                after.versions.push(VersionEntry {
                    kind: kind.into(),
                    name: v.name.clone(),
                    value: v.value.clone(),
                });
            }
        }
        Ok(Delivered {
            after,
            bytes: size,
            sha256,
        })
    }
}

/// Time one card's install took, and its state before and after.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Installed {
    pub address: String,
    pub staged_sha256: String,
    pub staged_bytes: u64,
    pub after: Observed,
    pub elapsed_ms: u64,
}

pub fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}
