//! The typed kickstart: what the installer will do, with the source span of every command.
//! A plain root password never reaches this model: it is hashed while the file is read.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::diag::Span;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kickstart {
    /// `vmaccepteula` / `accepteula`.
    pub accept_eula: Option<Span>,
    pub root_password: Option<RootPassword>,
    /// `install`, `upgrade` or `installorupgrade`.
    pub action: Option<Action>,
    pub clearpart: Vec<ClearPart>,
    pub parts: Vec<Part>,
    pub network: Option<Network>,
    pub keyboard: Option<Keyboard>,
    pub serial_number: Option<SerialNumber>,
    pub reboot: Option<Reboot>,
    pub paranoid: Option<Span>,
    pub dryrun: Option<Span>,
    pub partition_embed: Option<Span>,
    /// `%pre`, `%post` and `%firstboot` sections, in file order.
    pub scripts: Vec<Script>,
    /// Includes that could not be read now: a file a `%pre` script may create, or a URL for the
    /// fetch stage. The commands they hold are unknown.
    pub pending_includes: Vec<PendingInclude>,
}

/// The root password as a crypt(3) hash: given with `--iscrypted`, or the SHA-512 crypt hash we
/// made of a plain password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootPassword {
    pub hash: String,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Install,
    Upgrade,
    InstallOrUpgrade,
}

impl ActionKind {
    pub fn command(self) -> &'static str {
        match self {
            ActionKind::Install => "install",
            ActionKind::Upgrade => "upgrade",
            ActionKind::InstallOrUpgrade => "installorupgrade",
        }
    }
}

/// Which disk a command targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskTarget {
    /// `--disk=NAME` / `--drive=NAME` / `--ondisk=NAME`: any alias of one disk.
    Disk(String),
    /// `--firstdisk=f1,f2,...`: filters tried in order, lower-cased.
    FirstDisk(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub kind: ActionKind,
    pub target: Option<DiskTarget>,
    pub ignore_ssd: bool,
    pub overwrite_vmfs: bool,
    pub preserve_vmfs: bool,
    pub no_vmfs_on_disk: bool,
    pub overwrite_vsan: bool,
    pub ignore_prereq_warnings: bool,
    pub ignore_prereq_errors: bool,
    pub force_unsupported_install: bool,
    pub force_migrate: bool,
    /// `--systemdisk`: the persistent disk for ESX-OSData when installing to USB/SD.
    pub system_disk: Option<String>,
    pub repartition_system_disk: bool,
    /// `--dpuPciSlots`: physical PCIe slot ids of the DPU(s) to install.
    pub dpu_pci_slots: Vec<String>,
    pub delete_cos_vmdk: bool,
    pub disk_booted_from: bool,
    pub save_bootbank: Option<String>,
    pub span: Span,
}

impl Action {
    pub fn new(kind: ActionKind, span: Span) -> Self {
        Action {
            kind,
            target: None,
            ignore_ssd: false,
            overwrite_vmfs: false,
            preserve_vmfs: false,
            no_vmfs_on_disk: false,
            overwrite_vsan: false,
            ignore_prereq_warnings: false,
            ignore_prereq_errors: false,
            force_unsupported_install: false,
            force_migrate: false,
            system_disk: None,
            repartition_system_disk: false,
            dpu_pci_slots: Vec::new(),
            delete_cos_vmdk: false,
            disk_booted_from: false,
            save_bootbank: None,
            span,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClearTarget {
    Drives(Vec<String>),
    AllDrives,
    IgnoreDrives(Vec<String>),
    FirstDisk(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearPart {
    pub target: ClearTarget,
    pub overwrite_vmfs: bool,
    pub span: Span,
}

/// `part`/`partition`: an extra VMFS datastore on another disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub datastore: String,
    pub target: DiskTarget,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootProto {
    Dhcp,
    Static,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetDevice {
    /// `vmnicN`.
    Vmnic(String),
    /// A MAC address, normalised to lower case with colons.
    Mac(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub bootproto: BootProto,
    /// `None`: the NIC the installer booted from (BOOTIF), else the first one with link.
    pub device: Option<NetDevice>,
    pub ip: Option<Ipv4Addr>,
    pub netmask: Option<Ipv4Addr>,
    pub gateway: Option<Ipv4Addr>,
    /// At most two are used.
    pub nameservers: Vec<Ipv4Addr>,
    pub hostname: Option<String>,
    pub vlan_id: Option<u16>,
    pub add_vm_portgroup: bool,
    pub span: Span,
}

impl Network {
    /// The netmask to use: the given one, or the classful one for the address (as ESXi does,
    /// with a warning at parse time).
    pub(crate) fn effective_netmask(&self) -> Option<Ipv4Addr> {
        self.netmask.or_else(|| self.ip.map(classful_netmask))
    }
    /// The gateway to use: the given one, or the first host address of the subnet.
    /// ESXi "calculates" a missing gateway; how exactly is UNCONFIRMED (docs/KICKSTART.md).
    pub(crate) fn effective_gateway(&self) -> Option<Ipv4Addr> {
        self.gateway.or_else(|| {
            let ip = u32::from(self.ip?);
            let mask = u32::from(self.effective_netmask()?);
            Some(Ipv4Addr::from((ip & mask) | 1))
        })
    }
    pub(crate) fn effective_hostname(&self) -> &str {
        self.hostname.as_deref().unwrap_or("localhost")
    }
}

/// Class A/B/C netmask of an IPv4 address.
pub(crate) fn classful_netmask(ip: Ipv4Addr) -> Ipv4Addr {
    match ip.octets()[0] {
        0..=127 => Ipv4Addr::new(255, 0, 0, 0),
        128..=191 => Ipv4Addr::new(255, 255, 0, 0),
        _ => Ipv4Addr::new(255, 255, 255, 0),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyboard {
    /// The layout name as ESXi lists it (`US Default`), or the keymap file name given.
    pub layout: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerialNumber {
    pub esx: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reboot {
    pub no_eject: bool,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScriptKind {
    Pre,
    Post,
    Firstboot,
}

impl ScriptKind {
    pub fn section(self) -> &'static str {
        match self {
            ScriptKind::Pre => "%pre",
            ScriptKind::Post => "%post",
            ScriptKind::Firstboot => "%firstboot",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpreter {
    /// `/bin/sh -l` (busybox ash on ESXi).
    Busybox,
    /// `/usr/bin/python` (Python 3 on ESXi 7/8).
    Python,
}

impl Interpreter {
    pub fn name(self) -> &'static str {
        match self {
            Interpreter::Busybox => "busybox",
            Interpreter::Python => "python",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    pub kind: ScriptKind,
    pub interpreter: Interpreter,
    /// `%post --timeout`, in seconds.
    pub timeout_secs: Option<u64>,
    /// `%post --ignorefailure=true`.
    pub ignore_failure: bool,
    /// The body exactly as written (after CRLF became LF), up to the next section line.
    pub body: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingInclude {
    /// The path as the installer will look for it (already made absolute), or the URL.
    pub target: String,
    pub span: Span,
}
