//! The plan as data: what apply carries out (`Plan` and its parts), and what it is made from (`Inputs`).

use super::*;

/// The disk we install to, and why it is that one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// The device node or image file that will be written.
    pub path: PathBuf,
    /// ESXi-style name (`naa.…`, `mpx.…`), or the image file's name.
    pub name: String,
    pub aliases: Vec<String>,
    pub size_bytes: u64,
    pub logical_sector_size: u32,
    pub model: Option<String>,
    pub kind: MediaKind,
    pub chosen_because: String,
    /// What is on it now, in words.
    pub holds_now: String,
}

/// A file copied from the media: its media path, where it goes, its size and SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileCopy {
    pub from: String,
    /// Path inside the target FAT partition.
    pub to: String,
    pub partition: u32,
    pub size: u64,
    pub sha256: String,
}

/// A script to run, with all apply needs to run it: the plan carries the body, so apply never
/// reads the kickstart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScriptPlan {
    pub kind: ScriptKind,
    pub interpreter: String,
    /// The program that runs it on this machine (`/bin/sh`, `python3`).
    pub program: Option<String>,
    /// busybox scripts run as a login shell (`/bin/sh -l`), as on ESXi.
    pub login_shell: bool,
    pub timeout_secs: Option<u64>,
    pub ignore_failure: bool,
    /// Where it is written: `ks.cfg:12:1`.
    pub at: String,
    pub line: u32,
    /// The body exactly as written.
    pub body: String,
}

impl ScriptPlan {
    pub fn of(s: &crate::kickstart::Script, found: &Interpreters) -> ScriptPlan {
        ScriptPlan {
            kind: s.kind,
            interpreter: s.interpreter.name().into(),
            program: found
                .program(s.interpreter)
                .map(|p| p.display().to_string()),
            login_shell: s.interpreter == crate::kickstart::Interpreter::Busybox,
            timeout_secs: s.timeout_secs,
            ignore_failure: s.ignore_failure,
            at: s.span.to_string(),
            line: s.span.line,
            body: s.body.clone(),
        }
    }
}

/// What the install does with a DPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpuAction {
    /// Put the payload on the card.
    Install,
    /// The card already runs exactly this payload.
    AlreadyInstalled,
}

impl std::fmt::Display for DpuAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DpuAction::Install => "install",
            DpuAction::AlreadyInstalled => "already installed: not flashed again",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DpuPlan {
    /// The card as the inventory found it: which card (`card.identity`), its functions, the
    /// function it is managed through.
    pub card: crate::inventory::pci::Dpu,
    pub action: DpuAction,
    pub interface: dpu::Interface,
    /// The firmware bundle directory.
    pub bundle: PathBuf,
    pub payload: dpu::payload::PayloadPlan,
    /// Where the payload is staged: for devlink, the firmware search path the kernel reads.
    pub stage_dir: Option<PathBuf>,
    /// What the card ran when the plan was made.
    pub before: dpu::Observed,
    /// How to name the card to a person.
    pub name: String,
    /// Set when the host reaches the network through this card: the card is flashed only after
    /// the host lay-down has fetched and verified everything, and this says why.
    pub after_host: Option<String>,
}

/// A card in the host that this install does not make a DPU, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotUsedDpu {
    /// How to name the card to a person (`DpuIdentity::name`).
    pub name: String,
    #[serde(flatten)]
    pub identity: crate::inventory::DpuIdentity,
    pub reason: String,
}

impl NotUsedDpu {
    /// A card of the inventory that the install leaves alone, and why.
    pub fn left_alone(d: &crate::inventory::Dpu, reason: String) -> NotUsedDpu {
        NotUsedDpu {
            name: d.identity.name(),
            identity: d.identity.clone(),
            reason,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MediaSummary {
    pub location: String,
    pub version: String,
    pub build: String,
    /// What vouches for the files laid down: VMware's image database or our MANIFEST.JSON.
    pub verified_by: String,
    /// Media files no VIB payload covers: never called verified.
    pub not_covered: Vec<String>,
    /// Whether the descriptors' signatures were checked, and why not.
    pub signatures: String,
}

/// What a run does to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// A fresh install: the disk is laid out anew.
    #[default]
    Install,
    /// The new image goes to the other boot bank; everything else is kept.
    Upgrade,
}

impl std::fmt::Display for RunKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunKind::Install => "install",
            RunKind::Upgrade => "upgrade",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Fresh install or upgrade.
    pub kind: RunKind,
    /// Why this kind: the kickstart's command and what the disk holds.
    pub reason: String,
    pub kickstart: String,
    pub media: MediaSummary,
    pub target: Target,
    /// Other disks `clearpart` clears, before the target is partitioned.
    pub cleared: Vec<ClearDisk>,
    pub layout: Layout,
    /// Bootloader files for the EFI System Partition (partition 1).
    pub esp_files: Vec<FileCopy>,
    /// Kernel and modules for boot bank 0 (partition 5).
    pub bank_files: Vec<FileCopy>,
    /// `state.tgz`, `onetime.tgz`: made by the installer, written to partition 5.
    /// Files we write to the ESP (partition 1): BIOS boot's syslinux.cfg when the media carry
    /// the BIOS loaders.
    pub esp_generated: Vec<GeneratedFile>,
    pub generated: Vec<GeneratedFile>,
    /// The boot bank's `boot.cfg`, written last.
    pub boot_cfg: BootCfg,
    pub host: HostConfig,
    /// `part` datastores: other disks laid out with one VMFS partition each.
    pub datastore_disks: Vec<datastores::DatastoreDisk>,
    pub post_scripts: Vec<ScriptPlan>,
    pub dpus: Vec<DpuPlan>,
    /// Cards ESXi would not use as DPUs, left as they are (docs/DPU.md).
    pub dpus_not_used: Vec<NotUsedDpu>,
    /// Hash every host component of the media before the first write (local media; off with
    /// `--skip-media-check`). The DPU's components are checked as its payload is packed.
    pub check_media: bool,
    pub reboot: Option<bool>,
    pub warnings: Vec<String>,
    /// Set for an upgrade: the banks, what is carried over, what is never written.
    pub upgrade: Option<upgrade::UpgradePlan>,
}

/// A disk other than the target that `clearpart` clears: these byte ranges (offset, length)
/// are zeroed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClearDisk {
    pub name: String,
    pub path: PathBuf,
    pub logical_sector_size: u32,
    pub size_bytes: u64,
    /// What it holds now, as the inventory read it.
    pub holds_now: String,
    pub zero: Vec<(u64, u64)>,
}

/// Everything the plan is made from: the machine as read (`Host`), the kickstart and the
/// options. Nothing else: `make` reads no file, device or environment variable.
pub struct Inputs<'a> {
    pub kickstart_name: &'a str,
    pub kickstart: &'a Kickstart,
    pub host: &'a Host,
    /// Refuse what would otherwise be a warning about the installed host (`--strict`, the
    /// kickstart's `paranoid`).
    pub strict: bool,
    /// The identities of what the plan creates, from the host's seed.
    pub ids: ids::IdSource,
}

impl<'a> Inputs<'a> {
    pub fn new(host: &'a Host, kickstart_name: &'a str, kickstart: &'a Kickstart) -> Inputs<'a> {
        Inputs {
            kickstart_name,
            kickstart,
            host,
            strict: false,
            ids: ids::IdSource::new(&host.seed),
        }
    }
}
