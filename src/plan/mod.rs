//! The plan stage: kickstart + inventory + media + boot options -> one serde `Plan`. Every check
//! runs here, before anything is written; `apply` does exactly what the plan says and nothing
//! else. `--dry-run` prints the plan.

pub mod datastores;
pub mod host;
pub mod hostconfig;
pub mod ids;
mod lockdown;
pub mod upgrade;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dpu;
use crate::exit::Outcome;
use crate::firstboot;
use crate::inventory::DiskContent;
use crate::kickstart::{ActionKind, DiskTarget, Kickstart, ScriptKind};
use crate::media::{BootCfg, Role};
use crate::source::cmdline;
use crate::storage::{self, Layout, LayoutRequest, MediaKind, SystemMediaSize, VmfsPolicy};
pub use host::{Host, Interpreters, MediaFacts, OverrideDisk, OverrideState};
use hostconfig::{FormatStep, GeneratedFile, HostConfig};

/// A refusal at plan time: nothing has been written. Carries its exit code class.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PlanError {
    pub outcome: Outcome,
    pub message: String,
    /// The Distributed Services Engine rules the plan refused on (more than one DPU, a DPU
    /// that needs recovery, `--dpuPciSlots` naming no DPU); empty for every other refusal.
    pub dpu_findings: Vec<crate::inventory::DpuFinding>,
}

fn refuse(outcome: Outcome, message: impl Into<String>) -> PlanError {
    PlanError {
        outcome,
        message: message.into(),
        dpu_findings: Vec::new(),
    }
}

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
    pub vendor: String,
    pub model: String,
    pub slot: Option<String>,
    pub address: String,
    pub management: Option<String>,
    /// The card as the inventory found it (functions, catalog entry).
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
    pub name: String,
    pub address: String,
    pub slot: Option<String>,
    /// The `firmware/dpus.toml` entry.
    pub catalog_id: String,
    pub vendor: String,
    pub model: String,
    pub generation: String,
    /// Whether vSphere 8 supports the model (a supported card in NIC mode is still not used).
    pub supported_model: bool,
    pub reason: String,
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

/// The target named with `--disk`, as `install::prepare` read it.
fn override_target(d: &OverrideDisk, i: &Inputs<'_>) -> Result<(Target, DiskContent), PlanError> {
    let path = &d.path;
    match &d.state {
        OverrideState::Unusable { why } => Err(refuse(Outcome::Precondition, why.clone())),
        OverrideState::New { size_bytes } => {
            let target = Target {
                path: path.to_path_buf(),
                name: path.display().to_string(),
                aliases: Vec::new(),
                size_bytes: *size_bytes,
                logical_sector_size: d.image_sector_size,
                model: None,
                kind: MediaKind::SystemDisk,
                chosen_because: "named with --disk on the command line".into(),
                holds_now: format!(
                    "nothing yet: a new sparse image file of {} is created",
                    crate::size::human(*size_bytes)
                ),
            };
            Ok((target, DiskContent::blank()))
        }
        OverrideState::Existing {
            known,
            size_bytes,
            logical_sector_size,
            content,
            ..
        } => {
            // Like coreos-installer's positional disk: the command line names the target.
            let known = known
                .as_ref()
                .and_then(|n| i.host.inventory.disks.iter().find(|d| &d.name == n));
            let target = Target {
                path: path.to_path_buf(),
                name: known
                    .map(|d| d.name.clone())
                    .unwrap_or_else(|| path.display().to_string()),
                aliases: known.map(|d| d.aliases.clone()).unwrap_or_default(),
                size_bytes: *size_bytes,
                logical_sector_size: *logical_sector_size,
                model: known.and_then(|d| d.model.clone()),
                kind: if known.is_some_and(|d| d.is_usb_or_sd()) {
                    MediaKind::UsbOrSd
                } else {
                    MediaKind::SystemDisk
                },
                chosen_because: "named with --disk on the command line".into(),
                holds_now: content.summary(),
            };
            Ok((target, (**content).clone()))
        }
    }
}

/// The target, and what it holds now (read once: with the inventory, or here for a `--disk`).
fn choose_target(
    i: &Inputs<'_>,
    warnings: &mut Vec<String>,
) -> Result<(Target, DiskContent), PlanError> {
    let ks = i.kickstart;
    let action = ks.action.as_ref().ok_or_else(|| {
        refuse(
            Outcome::InvalidKickstart,
            "the kickstart has no install command",
        )
    })?;
    if let Some(d) = &i.host.disk_override {
        if action.target.is_some() {
            warnings.push(format!("the target {} is given on the command line; the kickstart's disk choice is not used", d.path.display()));
        }
        return override_target(d, i);
    }
    let (disk, why) = match &action.target {
        Some(DiskTarget::Disk(name)) => {
            let d = i.host.inventory.resolve_disk(name).map_err(|e| {
                refuse(
                    Outcome::Precondition,
                    format!("{} --disk: {e}", action.kind.command()),
                )
            })?;
            (d, format!("--disk={name}"))
        }
        Some(DiskTarget::FirstDisk(filters)) => {
            // upgrade: only disks holding ESXi; installorupgrade: those first, as weasel tries
            // the upgrade first and falls back to an install with the same filters.
            let esx_first = match action.kind {
                ActionKind::Install => None,
                ActionKind::Upgrade | ActionKind::InstallOrUpgrade => i
                    .host
                    .inventory
                    .first_disk_choice(filters, action.ignore_ssd, true)
                    .ok(),
            };
            let esx_only = action.kind == ActionKind::Upgrade;
            let choice = esx_first
                .map(Ok)
                .unwrap_or_else(|| {
                    i.host
                        .inventory
                        .first_disk_choice(filters, action.ignore_ssd, esx_only)
                })
                .map_err(|e| {
                    refuse(
                        Outcome::Precondition,
                        format!(
                            "{} --firstdisk={}: {e}",
                            action.kind.command(),
                            filters.join(",")
                        ),
                    )
                })?;
            (
                choice.disk,
                format!(
                    "--firstdisk={}: filter \"{}\" matched it first",
                    filters.join(","),
                    choice.filter
                ),
            )
        }
        None => return Err(refuse(Outcome::InvalidKickstart, "install names no disk")),
    };
    let target = Target {
        path: i.host.sysroot.join(disk.device.trim_start_matches('/')),
        name: disk.name.clone(),
        aliases: disk.aliases.clone(),
        size_bytes: disk.size_bytes,
        logical_sector_size: disk.logical_block_size,
        model: disk.model.clone(),
        kind: if disk.is_usb_or_sd() {
            MediaKind::UsbOrSd
        } else {
            MediaKind::SystemDisk
        },
        chosen_because: why,
        holds_now: disk.content.summary(),
    };
    Ok((target, disk.content.clone()))
}

/// The VMFS and VMFS-L partitions of an install that never finished (an install of ours that
/// stopped half way): unformatted (their head reads as zeros, as our wipe leaves them) on a disk
/// where no boot bank has a `boot.cfg`. They hold nothing: no `--overwritevmfs` is needed. An
/// installed ESXi (a bank with `boot.cfg`) keeps needing it, formatted or not.
fn unfinished_install(c: &DiskContent) -> &[u32] {
    if c.esx.is_some() {
        &[]
    } else {
        &c.unformatted
    }
}

/// Why a disk's contents may hide a VMFS datastore we cannot see, if they may.
fn may_hide_vmfs(c: &crate::inventory::DiskContent) -> Option<String> {
    use crate::inventory::PartitionTable;
    match c.table {
        PartitionTable::Unknown | PartitionTable::Unreadable => Some(format!(
            "holds data we cannot read as a partition table ({})",
            c.problem.as_deref().unwrap_or("unrecognised")
        )),
        _ if c
            .mbr_partitions
            .iter()
            .any(|p| matches!(p.os_type, 0xFB | 0xFC)) =>
        {
            Some("has an MBR partition typed VMFS".into())
        }
        _ => None,
    }
}

/// Rules on disks that hold whatever the kickstart says: never the disk the installer booted
/// from (or reads its media from); `clearpart` only where we can honour it.
fn check_disks(i: &Inputs<'_>, target: &Target) -> Result<DiskRules, PlanError> {
    let boot_disk = i.host.media_disk.as_deref();
    let facts: Vec<storage::safety::DiskFacts> = i
        .host
        .inventory
        .disks
        .iter()
        .map(|d| storage::safety::DiskFacts {
            id: d.name.clone(),
            aliases: d.aliases.clone(),
            is_boot_media: boot_disk == Some(d.kernel_name.as_str()),
            has_vmfs: d
                .content
                .vmfs
                .iter()
                .chain(&d.content.vmfsl)
                .any(|n| !unfinished_install(&d.content).contains(n))
                || may_hide_vmfs(&d.content).is_some(),
            is_usb_loop: false,
        })
        .collect();
    if let Some(f) = facts.iter().find(|f| f.id == target.name) {
        storage::safety::check_install_target(f).map_err(|e| refuse(e.outcome(), e.to_string()))?;
    }
    if let Some(d) = &i.host.disk_override {
        check_override_node(d, boot_disk)?;
    }
    let ks = i.kickstart;
    let mut lines = Vec::new();
    for c in &ks.clearpart {
        use crate::kickstart::ClearTarget as K;
        use storage::safety::ClearpartTarget as T;
        let target = match &c.target {
            K::Drives(d) => T::Drives(d.clone()),
            K::AllDrives => T::AllDrives,
            K::IgnoreDrives(d) => T::IgnoreDrives(d.clone()),
            K::FirstDisk(filters) => {
                let choice = i
                    .host
                    .inventory
                    .first_disk_choice(filters, false, false)
                    .map_err(|e| {
                        refuse(
                            Outcome::Precondition,
                            format!("{}: clearpart --firstdisk: {e}", c.span),
                        )
                    })?;
                T::Drives(vec![choice.disk.name.clone()])
            }
        };
        lines.push(storage::safety::Clearpart {
            target,
            overwrite_vmfs: c.overwrite_vmfs,
        });
    }
    let cleared = storage::safety::clearpart_disks(&facts, &lines)
        .map_err(|e| refuse(e.outcome(), e.to_string()))?;
    // The install disk is repartitioned anyway, a `part` disk laid out (datastores.rs); the
    // others are cleared as the kickstart says.
    let part_disks: Vec<String> = ks
        .parts
        .iter()
        .filter_map(|p| match &p.target {
            DiskTarget::Disk(n) => i
                .host
                .inventory
                .resolve_disk(n)
                .ok()
                .map(|d| d.name.clone()),
            DiskTarget::FirstDisk(_) => None,
        })
        .collect();
    let clear = i
        .host
        .inventory
        .disks
        .iter()
        .filter(|d| {
            d.name != target.name && cleared.contains(&d.name) && !part_disks.contains(&d.name)
        })
        .map(|d| clear_disk(&i.host.sysroot, d))
        .collect();
    Ok(DiskRules {
        facts,
        cleared,
        clear,
    })
}

/// A `--disk` that is a partition, or a node (device-mapper, say) built on the disk the
/// installer booted from: refused like that disk itself. ESXi's layout takes a whole disk.
fn check_override_node(d: &OverrideDisk, boot_disk: Option<&str>) -> Result<(), PlanError> {
    let OverrideState::Existing {
        partition_of,
        on_disks,
        ..
    } = &d.state
    else {
        return Ok(());
    };
    if let Some(boot) = boot_disk.filter(|b| on_disks.iter().any(|d| d == b)) {
        let e = storage::safety::SafetyRefusal::BootMedia {
            disk: format!("{} (on {boot})", d.path.display()),
        };
        return Err(refuse(e.outcome(), e.to_string()));
    }
    if let Some(disk) = partition_of {
        return Err(refuse(
            Outcome::Precondition,
            format!(
                "{} is a partition of {disk}: ESXi is installed on a whole disk; name the disk (/dev/{disk})",
                d.path.display()
            ),
        ));
    }
    Ok(())
}

/// What the disk rules leave for the rest of the plan.
struct DiskRules {
    facts: Vec<storage::safety::DiskFacts>,
    /// Every disk a `clearpart` line names (a `part` disk among them may be laid out).
    cleared: Vec<String>,
    /// What clearing the disks that are neither the install disk nor a `part` disk zeroes.
    clear: Vec<ClearDisk>,
}

/// What `clearpart` does to a disk that is not the install disk: its partition tables (MBR and
/// primary GPT in the first MiB, the backup GPT in the last) and the first 4 MiB of each of its
/// partitions (where file system signatures live) are zeroed, so that nothing reads a partition
/// or a file system there any more.
fn clear_disk(sysroot: &Path, d: &crate::inventory::Disk) -> ClearDisk {
    const MIB: u64 = 1 << 20;
    let lbs = u64::from(d.logical_block_size);
    let mut zero = vec![(0, MIB.min(d.size_bytes))];
    if d.size_bytes > MIB {
        zero.push((d.size_bytes - MIB, MIB));
    }
    let heads = d
        .content
        .partitions
        .iter()
        .map(|p| (p.first_lba, p.last_lba + 1))
        .chain(d.content.mbr_partitions.iter().map(|p| {
            (
                u64::from(p.first_lba),
                u64::from(p.first_lba) + u64::from(p.sectors),
            )
        }));
    for (first, end) in heads {
        let (start, end) = (first * lbs, (end * lbs).min(d.size_bytes));
        if start < end {
            zero.push((start, (end - start).min(4 * MIB)));
        }
    }
    ClearDisk {
        name: d.name.clone(),
        path: sysroot.join(d.device.trim_start_matches('/')),
        logical_sector_size: d.logical_block_size,
        size_bytes: d.size_bytes,
        holds_now: d.content.summary(),
        zero,
    }
}

/// Why the card must wait for the host lay-down, when the install's media come over the network
/// and the host has an interface that is a function of the card: resetting the card takes that
/// port down, and a transfer under way would break. Every interface of the card counts, not only
/// the one routing to the media: the route can move to it, and waiting costs only overlap.
/// Cards in the host that this install leaves alone because ESXi would not use them as DPUs:
/// models vSphere 8 does not support. ESXi installs such a host without Distributed Services
/// Engine (docs/DPU.md, "Cards ESXi would not use").
fn unsupported_cards(i: &Inputs<'_>) -> Vec<NotUsedDpu> {
    i.host
        .inventory
        .dpus
        .iter()
        .filter(|d| !d.supported)
        .map(|d| NotUsedDpu {
            name: format!("{} {} in {}", d.vendor, d.model, d.location()),
            address: d.address.clone(),
            slot: d.slot.clone(),
            catalog_id: d.catalog_id.clone(),
            vendor: d.vendor.clone(),
            model: d.model.clone(),
            generation: d.generation.clone(),
            supported_model: false,
            reason: format!(
                "a model vSphere 8 does not support{}: ESXi does not use it as a DPU",
                d.note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ),
        })
        .collect()
}

/// A supported card that its interface says is not a DPU now (NIC mode, SECURE_NIC_MODE):
/// left alone and listed, or a refusal when `--dpuPciSlots` asks for it by name.
fn not_a_dpu(
    i: &Inputs<'_>,
    d: &crate::inventory::pci::Dpu,
    slots: &[String],
    not_used: &mut Vec<NotUsedDpu>,
) -> Result<bool, PlanError> {
    let Some(mode) = i
        .host
        .dpu_observed
        .iter()
        .find(|o| o.address == d.address)
        .and_then(|o| o.not_a_dpu)
    else {
        return Ok(false);
    };
    let name = format!("{} {} in {}", d.vendor, d.model, d.location());
    let named = slots.iter().map(|s| s.trim()).any(|s| d.named_by(s));
    if named {
        return Err(refuse(
            Outcome::Precondition,
            format!("--dpuPciSlots names {name}, but {mode}; {}", mode.fix()),
        ));
    }
    not_used.push(NotUsedDpu {
        name,
        address: d.address.clone(),
        slot: d.slot.clone(),
        catalog_id: d.catalog_id.clone(),
        vendor: d.vendor.clone(),
        model: d.model.clone(),
        generation: d.generation.clone(),
        supported_model: true,
        reason: mode.to_string(),
    });
    Ok(true)
}

fn network_through(d: &crate::inventory::pci::Dpu, i: &Inputs<'_>) -> Option<String> {
    if i.host.media.is_local() {
        return None;
    }
    let ifs = i
        .host
        .dpu_ports
        .get(&d.address)
        .cloned()
        .unwrap_or_default();
    (!ifs.is_empty()).then(|| {
        format!(
            "the media come over the network ({}) and {} {} a port of this card: it is flashed after the host lay-down has fetched and verified every file, since its reset takes the port down",
            i.host.media.describe(),
            ifs.join(", "),
            if ifs.len() == 1 { "is" } else { "are" }
        )
    })
}

fn dpu_plans(
    i: &Inputs<'_>,
    warnings: &mut Vec<String>,
    not_used: &mut Vec<NotUsedDpu>,
) -> Result<Vec<DpuPlan>, PlanError> {
    let slots = i
        .kickstart
        .action
        .as_ref()
        .map(|a| a.dpu_pci_slots.clone())
        .unwrap_or_default();
    // Every blocking finding is a Distributed Services Engine rule the install must not break:
    // more than one DPU, an unrecovered DPU, --dpuPciSlots naming a slot without one.
    let blocking: Vec<_> = i
        .host
        .inventory
        .dpu_findings(&slots)
        .into_iter()
        .filter(|f| f.blocks_install())
        .collect();
    if !blocking.is_empty() {
        let words: Vec<String> = blocking.iter().map(ToString::to_string).collect();
        return Err(PlanError {
            dpu_findings: blocking,
            ..refuse(Outcome::Precondition, words.join("; "))
        });
    }
    let mut out = Vec::new();
    for d in i.host.inventory.dpus.iter().filter(|d| d.supported) {
        if not_a_dpu(i, d, &slots, not_used)? {
            continue;
        }
        check_media_for_dpu(i, d)?;
        out.push(dpu_plan(i, d, warnings)?);
    }
    Ok(out)
}

/// The media must carry what a DPU runs: ESXi 8.0 or later, with its ESXio components.
fn check_media_for_dpu(i: &Inputs<'_>, d: &crate::inventory::pci::Dpu) -> Result<(), PlanError> {
    let version_ok = i
        .host
        .media
        .manifest
        .version_triple()
        .is_some_and(|(major, _, _)| major >= 8);
    if !version_ok {
        return Err(refuse(
            Outcome::Media,
            format!(
                "{} has a DPU ({}), but the media is ESXi {}: a DPU needs ESXi 8.0 or later",
                i.host.media.describe(),
                d.location(),
                i.host.media.manifest.version
            ),
        ));
    }
    if i.host.media.manifest.dpu_components().count() == 0 {
        return Err(refuse(
            Outcome::Media,
            format!(
                "{} has a DPU ({}), but the media carries no ESXio components for it",
                i.host.media.describe(),
                d.location()
            ),
        ));
    }
    Ok(())
}

/// The firmware bundle that pairs with the media's ESXi for this card, as `install::prepare`
/// found it.
fn bundle_for<'a>(
    i: &'a Inputs<'_>,
    d: &crate::inventory::pci::Dpu,
    name: &str,
    warnings: &mut Vec<String>,
) -> Result<&'a dpu::bundle::Bundle, PlanError> {
    let root = i
        .host
        .firmware_root
        .as_deref()
        .map_err(|why| refuse(Outcome::Precondition, format!("{name}: {why}")))?;
    let bundle = match i.host.bundles.get(&d.catalog_id) {
        Some(Ok(Some(b))) => b,
        Some(Err(e)) => {
            return Err(refuse(
                Outcome::Precondition,
                format!("{name}: firmware bundle: {e}"),
            ))
        }
        Some(Ok(None)) | None => {
            return Err(refuse(
                Outcome::Precondition,
                format!(
                    "{name}: no firmware bundle for {} in {} that pairs with ESXi {} (see firmware/README.md)",
                    d.catalog_id,
                    root.display(),
                    i.host.media.manifest.version
                ),
            ))
        }
    };
    if bundle.manifest.synthetic {
        warnings.push(format!(
            "{name}: the firmware bundle {} is synthetic (for tests and demos); drop the vendor's bundle into {} for a real DPU",
            bundle.dir.display(),
            root.display()
        ));
    }
    Ok(bundle)
}

/// What this fresh install does with one supported card. Only a fresh install gets here
/// (`install`, or `installorupgrade` on a disk without ESXi): an upgrade keeps the DPU as it is
/// (plan::upgrade::check_dpu).
fn dpu_plan(
    i: &Inputs<'_>,
    d: &crate::inventory::pci::Dpu,
    warnings: &mut Vec<String>,
) -> Result<DpuPlan, PlanError> {
    let name = format!("{} {} in {}", d.vendor, d.model, d.location());
    let bundle = bundle_for(i, d, &name, warnings)?;
    let observed = i
        .host
        .dpu_observed
        .iter()
        .find(|o| o.address == d.address)
        .cloned()
        .ok_or_else(|| {
            refuse(
                Outcome::Precondition,
                format!("{name}: its interface was not read"),
            )
        })?;
    if let Some(p) = &observed.problem {
        return Err(refuse(Outcome::Precondition, format!("{name}: {p}")));
    }
    let interface = observed.interface.clone().ok_or_else(|| {
        refuse(
            Outcome::Precondition,
            format!("{name}: no host interface to reach it"),
        )
    })?;
    let mut payload = dpu::payload::describe(bundle, &i.host.media.manifest);
    let action = if dpu::runs_firmware(&observed, &payload.firmware_version) {
        DpuAction::AlreadyInstalled
    } else {
        DpuAction::Install
    };
    let stage_dir = match &interface {
        dpu::Interface::Devlink { firmware_dir, .. } => {
            // devlink names the file relative to the firmware search path.
            payload.file_name = format!("ksinstall/{}", payload.file_name);
            warnings.push(format!(
                "{name}: the DSC is flashed with its firmware package only; the media's ESXio components are not sent over devlink (how ESXio reaches a DSC is UNCONFIRMED: docs/DPU.md)"
            ));
            Some(firmware_dir.clone())
        }
        // A BlueField bundle is always the vendor's BF-Bundle (`bfb-passthrough`, the only
        // BlueField format a bundle can have): what a real card boots, whatever is behind
        // rshim's files.
        dpu::Interface::Rshim { .. } => {
            lockdown::check_rshim(&i.host.inventory.firmware, &name)?;
            None
        }
    };
    Ok(DpuPlan {
        vendor: d.vendor.clone(),
        model: d.model.clone(),
        slot: d.slot.clone(),
        address: d.address.clone(),
        management: d.management.clone(),
        card: d.clone(),
        action,
        interface,
        bundle: bundle.dir.clone(),
        payload,
        stage_dir,
        before: observed,
        after_host: network_through(d, i),
        name,
    })
}

fn media_size(o: Option<cmdline::SystemMediaSize>) -> SystemMediaSize {
    match o {
        Some(cmdline::SystemMediaSize::Min) => SystemMediaSize::Min,
        Some(cmdline::SystemMediaSize::Small) => SystemMediaSize::Small,
        Some(cmdline::SystemMediaSize::Max) => SystemMediaSize::Max,
        Some(cmdline::SystemMediaSize::Default) | None => SystemMediaSize::Default,
    }
}

/// What the kickstart asks for that this install does not do: said, never silently dropped.
fn without_effect(ks: &Kickstart, kind: RunKind) -> Vec<String> {
    let mut out = Vec::new();
    let mut say = |span: &crate::kickstart::Span, what: &str, why: &str| {
        out.push(format!("{span}: {what} has no effect here: {why}"));
    };
    if let Some(a) = &ks.action {
        let prechecks = "ksinstall runs none of ESXi's hardware prechecks (CPU support, memory), so there is nothing to ignore or force";
        let upgrade = kind == RunKind::Upgrade;
        let upgrade_only = if upgrade {
            "ksinstall upgrades ESXi 7.0 and later only: no migration from ESX 4, no VUM flow"
        } else {
            "it applies to upgrades, and this is a fresh install"
        };
        let flags: [(bool, &str, &str); 8] = [
            (
                a.ignore_prereq_warnings,
                "--ignoreprereqwarnings",
                prechecks,
            ),
            (
                // On an upgrade it allows a downgrade (docs/UPGRADE.md).
                a.ignore_prereq_errors && !upgrade,
                "--ignoreprereqerrors",
                prechecks,
            ),
            (
                a.force_unsupported_install,
                "--forceunsupportedinstall",
                prechecks,
            ),
            (a.force_migrate, "--forcemigrate", upgrade_only),
            (a.delete_cos_vmdk, "--deletecosvmdk", upgrade_only),
            (a.disk_booted_from, "--diskBootedFrom", upgrade_only),
            (a.save_bootbank.is_some(), "--savebootbank", upgrade_only),
            (
                a.repartition_system_disk && a.system_disk.is_none(),
                "--repartitionsystemdisk",
                "no --systemdisk is named",
            ),
        ];
        for (set, what, why) in flags {
            if set {
                say(&a.span, what, why);
            }
        }
    }
    if kind == RunKind::Upgrade {
        // weasel: after `upgrade`, these commands are "invalidated"; the host keeps its own
        // configuration (state.tgz).
        let kept = "an upgrade keeps the host's configuration (state.tgz is carried over)";
        if let Some(p) = &ks.root_password {
            say(&p.span, "rootpw", kept);
        }
        if let Some(n) = &ks.network {
            say(&n.span, "network", kept);
        }
        if let Some(k) = &ks.keyboard {
            say(&k.span, "keyboard", kept);
        }
    }
    if let Some(span) = &ks.partition_embed {
        say(
            span,
            "partitionembed",
            "ksinstall always writes the ESXi 8 layout (docs/LAYOUT.md)",
        );
    }
    out
}

/// The media as the plan names them.
fn media_summary(media: &MediaFacts) -> MediaSummary {
    MediaSummary {
        location: media.describe().to_string(),
        version: media.manifest.version.clone(),
        build: media.manifest.build.clone(),
        verified_by: media.metadata.verified_by(),
        not_covered: media.metadata.not_covered.clone(),
        signatures: media.metadata.signatures.to_string(),
    }
}

/// Install or upgrade, and why: `upgrade` needs an upgradable ESXi on the target;
/// `installorupgrade` upgrades one and installs fresh where there is no ESXi; an ESXi that
/// cannot be upgraded is refused either way (never silently replaced).
fn decide_kind(
    action: &crate::kickstart::Action,
    target: &Target,
    existing: &DiskContent,
) -> Result<(RunKind, String), PlanError> {
    let cmd = action.kind.command();
    match (action.kind, &existing.esx) {
        (ActionKind::Install, _) => Ok((RunKind::Install, format!("{cmd}: a fresh install on {}", target.name))),
        (ActionKind::Upgrade, None) => Err(refuse(
            Outcome::Precondition,
            format!("upgrade: {} holds no ESXi ({}): nothing to upgrade; use install for a fresh install", target.name, existing.summary()),
        )),
        (_, Some(esx)) if esx.upgrade != crate::inventory::installed::Upgradability::Upgradable => Err(refuse(
            Outcome::Precondition,
            format!(
                "{cmd}: {} holds ESXi {} that cannot be upgraded: {}",
                target.name,
                esx.version.as_deref().unwrap_or("(unknown build)"),
                esx.upgrade
            ),
        )),
        (_, Some(esx)) => Ok((
            RunKind::Upgrade,
            format!(
                "{cmd}: {} holds ESXi {}, which can be upgraded",
                target.name,
                esx.version.as_deref().unwrap_or("(unknown build)")
            ),
        )),
        (ActionKind::InstallOrUpgrade, None) => Ok((
            RunKind::Install,
            format!("installorupgrade: {} holds no ESXi ({}), so this is a fresh install", target.name, existing.summary()),
        )),
    }
}

pub fn make(i: &Inputs<'_>) -> Result<Plan, PlanError> {
    let ks = i.kickstart;
    let mut warnings: Vec<String> = i.host.boot.warnings.clone();
    let action = check_request(ks)?;
    let (target, existing) = choose_target(i, &mut warnings)?;
    let (kind, reason) = decide_kind(action, &target, &existing)?;
    warnings.extend(without_effect(ks, kind));
    if kind == RunKind::Upgrade {
        let cleared = check_disks(i, &target)?.clear;
        if !cleared.is_empty() {
            let names: Vec<&str> = cleared.iter().map(|c| c.name.as_str()).collect();
            return Err(refuse(
                Outcome::Precondition,
                format!(
                    "clearpart would clear {}: an upgrade writes one boot bank and clears no disk (use install)",
                    names.join(", ")
                ),
            ));
        }
        // The media's own warnings are about laying down the system partition, which an
        // upgrade does not write.
        let (mut plan, how) = upgrade::plan_upgrade(i, &target, &existing, &mut warnings)?;
        plan.reason = format!("{reason}: {how}");
        plan.warnings = warnings;
        return Ok(plan);
    }
    check_root_password(ks)?;
    check_existing(action, &target, &existing)?;
    let mut dpus_not_used = unsupported_cards(i);
    let dpus = dpu_plans(i, &mut warnings, &mut dpus_not_used)?;
    for n in &dpus_not_used {
        warnings.push(format!(
            "{}: not used as a DPU ({}); ESXi is installed on the host without Distributed Services Engine, and the card is left as it is",
            n.name, n.reason
        ));
    }
    let rules = check_disks(i, &target)?;
    let datastore_disks = datastores::plan(i, &target, &rules.facts, &rules.cleared)?;
    let cleared = rules.clear;
    let layout = layout_for(i, action, &target, &existing, &mut warnings)?;
    let media = &i.host.media;
    warnings.extend(media.metadata.warnings.iter().cloned());
    let (esp_files, esp_generated) = esp_plan(media, &layout)?;
    let bank_files = bank_plan(media, &layout, &target)?;
    let nic = hostconfig::choose_nic(
        ks,
        i.host.boot.netdevice.as_deref(),
        &i.host.inventory.nics,
        &mut warnings,
    );
    let mut formats = format_steps(&layout, true);
    for d in &datastore_disks {
        formats.extend(format_steps(&d.layout, false));
    }
    let first = hostconfig::FirstBootInputs {
        ks,
        nic,
        formats: &formats,
        install_log: install_log(media),
    };
    let (generated, boot_cfg, host) = bank_config(media, &bank_files, &first)?;
    warnings.extend(secure_boot_warnings(i, &host)?);
    let post_scripts = post_plans(ks, &i.host.interpreters)?;
    warnings.extend(esxi_only_lines(ks));
    Ok(Plan {
        kind,
        reason,
        kickstart: i.kickstart_name.to_string(),
        media: media_summary(media),
        target,
        cleared,
        layout,
        esp_files,
        bank_files,
        esp_generated,
        generated,
        boot_cfg,
        host,
        datastore_disks,
        post_scripts,
        dpus,
        dpus_not_used,
        check_media: i.host.media.is_local(),
        reboot: ks.reboot.as_ref().map(|r| r.no_eject),
        warnings,
        upgrade: None,
    })
}

/// What the kickstart must say for any run: an install command and every include read.
fn check_request(ks: &Kickstart) -> Result<&crate::kickstart::Action, PlanError> {
    let action = ks.action.as_ref().ok_or_else(|| {
        refuse(
            Outcome::InvalidKickstart,
            "the kickstart has no install command",
        )
    })?;
    if let Some(p) = ks.pending_includes.first() {
        return Err(refuse(
            Outcome::InvalidKickstart,
            format!(
                "{}: included \"{}\" could not be read, so the kickstart is incomplete",
                p.span, p.target
            ),
        ));
    }
    Ok(action)
}

/// A fresh install sets the root password (an upgrade keeps the host's, in `state.tgz`).
fn check_root_password(ks: &Kickstart) -> Result<(), PlanError> {
    if ks.root_password.is_none() {
        return Err(refuse(
            Outcome::InvalidKickstart,
            "the kickstart sets no root password",
        ));
    }
    Ok(())
}

/// What is on the target now, for a fresh install: a disk whose table we cannot read (or an MBR with VMFS types) may hold a datastore: it is treated as
/// holding VMFS. Unknown is never "nothing to protect".
fn check_existing(
    action: &crate::kickstart::Action,
    target: &Target,
    existing: &DiskContent,
) -> Result<(), PlanError> {
    if let Some(why) = may_hide_vmfs(existing) {
        if action.preserve_vmfs {
            return Err(refuse(
                Outcome::Precondition,
                format!(
                    "--preservevmfs: {} {why}, so there is no datastore we can keep safely",
                    target.name
                ),
            ));
        }
        if !action.overwrite_vmfs {
            return Err(refuse(
                Outcome::Precondition,
                format!(
                    "install --overwritevmfs not specified but {} {why} and may hold VMFS",
                    target.name
                ),
            ));
        }
    }
    Ok(())
}

/// The partition layout for the target, as the kickstart's flags and the boot options ask.
fn layout_for(
    i: &Inputs<'_>,
    action: &crate::kickstart::Action,
    target: &Target,
    existing: &DiskContent,
    warnings: &mut Vec<String>,
) -> Result<Layout, PlanError> {
    let mut req = LayoutRequest::new(
        target.name.clone(),
        target.size_bytes,
        target.logical_sector_size,
    );
    req.kind = target.kind;
    req.media_size = media_size(i.host.boot.system_media_size);
    req.osdata_size_mib = i.host.boot.osdata_size_mib;
    req.no_vmfs_on_disk = action.no_vmfs_on_disk;
    req.existing = existing.partitions.clone();
    req.unformatted = unfinished_install(existing).to_vec();
    req.vmfs_policy = if action.preserve_vmfs {
        VmfsPolicy::Preserve
    } else if action.overwrite_vmfs {
        VmfsPolicy::Overwrite
    } else {
        VmfsPolicy::Refuse
    };
    req.overwrite_vsan = action.overwrite_vsan;
    let mut layout = storage::layout::plan_layout_with_ids(&req, &mut || i.ids.next())
        .map_err(|e| refuse(e.outcome(), e.to_string()))?;
    warnings.extend(layout.warnings.iter().cloned());
    match &action.system_disk {
        None if layout.osdata_elsewhere => warnings.push(format!("{} is USB/SD media: it holds only the boot banks, and no --systemdisk names a disk for ESX-OSData", target.name)),
        None => {}
        Some(name) => {
            // Named is never ignored in silence: a disk that is not here is refused, one that
            // is here is said with what becomes of it.
            let disk = i.host.inventory.resolve_disk(name).map_err(|e| {
                refuse(
                    Outcome::Precondition,
                    format!("{}: install --systemdisk={name}: {e}", action.span),
                )
            })?;
            if disk.name == target.name {
                warnings.push(format!("{}: --systemdisk={name} is the install disk itself: ESX-OSData goes there as on any disk that is not USB/SD media", action.span));
            } else if layout.osdata_elsewhere {
                layout.osdata_disk = Some(format!("{} ({})", disk.name, disk.device));
                warnings.push(format!("{}: --systemdisk={name} ({}): this installer does not partition a second disk, so ESX-OSData is not written there; ESXi on USB/SD media without it keeps its logs and state in RAM until a persistent disk is configured (UNCONFIRMED, docs/LAYOUT.md)", action.span, disk.name));
            } else {
                warnings.push(format!("{}: --systemdisk={name} is not used: {} is not USB/SD media and holds ESX-OSData itself", action.span, target.name));
            }
        }
    }

    Ok(layout)
}

fn file_copy(c: &crate::media::Component, to: String, partition: u32) -> FileCopy {
    FileCopy {
        from: c.path.clone(),
        to,
        partition,
        size: c.size,
        sha256: c.sha256.clone(),
    }
}

/// The EFI System Partition's files: the media's loaders where a host has them, names valid on
/// FAT and distinct, `EFI/BOOT/BOOTX64.EFI` among them, all fitting; and `syslinux.cfg` where the
/// media carry BIOS boot.
fn esp_plan(
    media: &MediaFacts,
    layout: &Layout,
) -> Result<(Vec<FileCopy>, Vec<GeneratedFile>), PlanError> {
    let esp_files: Vec<FileCopy> = media
        .manifest
        .components
        .iter()
        .filter(|c| c.role == Role::Bootloader)
        .map(|c| file_copy(c, c.esp_path.clone().unwrap_or_default(), 1))
        .collect();
    let mut esp_names = std::collections::HashSet::new();
    for f in &esp_files {
        storage::fat::check_fat_path(&f.to).map_err(|e| {
            refuse(
                Outcome::Media,
                format!(
                    "{}: bootloader {} -> {}: {e:#}",
                    media.describe(),
                    f.from,
                    f.to
                ),
            )
        })?;
        if !esp_names.insert(f.to.to_ascii_lowercase()) {
            return Err(refuse(
                Outcome::Media,
                format!("{}: two bootloader files go to {}", media.describe(), f.to),
            ));
        }
    }
    // BIOS boot as a 7.x host has it (media.md §3): syslinux loads safeboot.c32 from the ESP.
    let esp_generated = if esp_files.iter().any(|f| f.to == "safeboot.c32") {
        vec![GeneratedFile::new(
            "syslinux.cfg",
            b"DEFAULT safeboot.c32 -S 1\n".to_vec(),
        )]
    } else {
        Vec::new()
    };
    let esp_bytes: u64 = esp_files.iter().map(|f| f.size).sum();
    if let Some(esp) = layout.partition(1) {
        if esp_bytes > esp.size_bytes.saturating_sub(esp.size_bytes / 8) {
            return Err(refuse(Outcome::Media, format!("the bootloader files ({esp_bytes} bytes) do not fit the system partition ({} bytes)", esp.size_bytes)));
        }
    }
    if !esp_files
        .iter()
        .any(|f| f.to.eq_ignore_ascii_case("EFI/BOOT/BOOTX64.EFI"))
    {
        return Err(refuse(
            Outcome::Media,
            format!(
                "{}: no bootloader component for EFI/BOOT/BOOTX64.EFI",
                media.describe()
            ),
        ));
    }
    Ok((esp_files, esp_generated))
}

/// Boot bank 0's modules: by their lower-case 8.3 names, distinct, fitting the bank.
fn bank_plan(
    media: &MediaFacts,
    layout: &Layout,
    target: &Target,
) -> Result<Vec<FileCopy>, PlanError> {
    let bank_components = media.bank_components();
    let mut bank_files = Vec::new();
    let mut names = std::collections::HashSet::new();
    for c in &bank_components {
        let base = c
            .path
            .rsplit('/')
            .next()
            .unwrap_or(&c.path)
            .to_ascii_lowercase();
        if !names.insert(base.clone()) {
            return Err(refuse(
                Outcome::Media,
                format!("{}: two modules are named {base}", media.describe()),
            ));
        }
        bank_files.push(file_copy(c, base, 5));
    }
    let bank_bytes: u64 = bank_files.iter().map(|f| f.size).sum();
    if let Some(bank) = layout.partition(5) {
        // Leave room for FAT overhead and the generated files.
        if bank_bytes > bank.size_bytes.saturating_sub(bank.size_bytes / 16) {
            return Err(refuse(Outcome::Precondition, format!("the image's modules ({bank_bytes} bytes) do not fit boot bank 0 ({} bytes) on {}", bank.size_bytes, target.name)));
        }
    }

    Ok(bank_files)
}

/// The media's `kernelopt` as an installed bank keeps it: the installer's own words
/// (`runweasel`, `cdromBoot`, `ks=`) removed, as weasel does (media.md §4).
pub(super) fn installed_kernelopt(media: &MediaFacts) -> String {
    media
        .boot_cfg
        .kernelopt
        .clone()
        .unwrap_or_default()
        .split_whitespace()
        .filter(|w| !matches!(*w, "runweasel" | "cdromBoot") && !w.starts_with("ks="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The partitions of `layout` that ESXi's tools must format at first boot (docs/FIRSTBOOT.md).
fn format_steps(layout: &Layout, boot_disk: bool) -> Vec<FormatStep> {
    use storage::Filesystem as F;
    layout
        .partitions
        .iter()
        .filter(|p| p.action == storage::Action::Create)
        .filter_map(|p| {
            let (fs, label) = match &p.filesystem {
                F::VmfslAtFirstBoot => ("vmfsl", None),
                F::VmfsAtFirstBoot => ("vmfs6", Some("datastore1".to_string())),
                F::VmfsByFirstBootScript { volume_name } => ("vmfs6", Some(volume_name.clone())),
                _ => return None,
            };
            Some(FormatStep {
                disk: layout.disk_id.clone(),
                boot_disk,
                disk_guid: layout.disk_guid.to_string(),
                partition: p.entry.number,
                filesystem: fs.into(),
                label,
            })
        })
        .collect()
}

/// The install log first boot copies to `/var/log/esxi_install.log`, as weasel copies its own:
/// what was installed, the same bytes for the same install on every host of a fleet (the full
/// record, with this host's disk and kickstart, is `ksinstall.json` on the bank).
fn install_log(media: &MediaFacts) -> String {
    format!(
        "ksinstall {}: fresh install of ESXi {} (build {}); the install record is ksinstall.json in this boot bank\n",
        env!("CARGO_PKG_VERSION"),
        media.manifest.version,
        media.manifest.build,
    )
}

/// `onetime.tgz` (first boot's whole input: a fresh install writes no `state.tgz`) and the
/// bank's `boot.cfg`, which must be bootable and hand `onetime.tgz` to first boot last.
fn bank_config(
    media: &MediaFacts,
    bank_files: &[FileCopy],
    first: &hostconfig::FirstBootInputs<'_>,
) -> Result<(Vec<GeneratedFile>, BootCfg, HostConfig), PlanError> {
    let (onetime, host) = hostconfig::first_boot(first)
        .map_err(|e| refuse(Outcome::UsageOrIo, format!("onetime.tgz: {e}")))?;
    let mut modules: Vec<String> = bank_files.iter().skip(1).map(|f| f.to.clone()).collect();
    modules.push(onetime.name.clone());
    let mut kernelopt = installed_kernelopt(media);
    if !kernelopt
        .split_whitespace()
        .any(|w| w == firstboot::NO_AUTO_PARTITION)
    {
        kernelopt = format!("{kernelopt} {}", firstboot::NO_AUTO_PARTITION)
            .trim()
            .to_string();
    }
    let boot_cfg = BootCfg {
        bootstate: Some(0),
        title: Some("Loading VMware ESXi".into()),
        timeout: Some(5),
        prefix: Some(String::new()),
        kernel: bank_files.first().map(|f| f.to.clone()),
        kernelopt: Some(kernelopt),
        modules,
        build: Some(media.manifest.build.clone()),
        updated: Some(1),
        other: Vec::new(),
    };
    if let Some(why) = boot_cfg.unbootable_reason() {
        return Err(refuse(
            Outcome::Media,
            format!("the boot.cfg we would write is not bootable: {why}"),
        ));
    }

    Ok((vec![onetime], boot_cfg, host))
}

/// ESXi runs no first-boot script when UEFI Secure Boot is on (VMware's 7.0 and 8.0
/// documentation; 6.7's `kickstart.py`), and the installed host boots with the firmware setting
/// this machine has now: each thing that then does not happen is named. `--strict` refuses.
fn secure_boot_warnings(i: &Inputs<'_>, host: &HostConfig) -> Result<Vec<String>, PlanError> {
    if i.host.inventory.firmware.secure_boot != Some(true) || host.needs_scripts.is_empty() {
        return Ok(Vec::new());
    }
    let what = format!(
        "UEFI Secure Boot is on, and ESXi runs no first-boot script under Secure Boot: at the installed host's first boot these will not happen: {}",
        host.needs_scripts.join("; ")
    );
    if i.strict {
        return Err(refuse(
            Outcome::Precondition,
            format!("{what} (refused under --strict/paranoid)"),
        ));
    }
    Ok(vec![format!(
        "{what}; switch Secure Boot off until the first boot is done, or do these by hand (docs/FIRSTBOOT.md)"
    )])
}

/// `%post` scripts, each with an interpreter this machine has.
/// One warning per `%pre`/`%post` line that uses what only ESXi's installer has (`esxcli`,
/// `/vmfs/`, ...), as `validate` says them; `%firstboot` runs on ESXi and is not checked.
fn esxi_only_lines(ks: &Kickstart) -> Vec<String> {
    let mut out = Vec::new();
    for s in ks
        .scripts
        .iter()
        .filter(|s| matches!(s.kind, ScriptKind::Pre | ScriptKind::Post))
    {
        for (i, line) in s.body.lines().enumerate() {
            if let Some(what) = crate::kickstart::esxi_only_use(line) {
                out.push(format!(
                    "{}:{}: {}",
                    s.span.file,
                    s.span.line as usize + i + 1,
                    crate::kickstart::esxi_only_message(s.kind, what)
                ));
            }
        }
    }
    out
}

fn post_plans(ks: &Kickstart, found: &Interpreters) -> Result<Vec<ScriptPlan>, PlanError> {
    let mut post_scripts = Vec::new();
    for s in ks.scripts.iter().filter(|s| s.kind == ScriptKind::Post) {
        let program = found.program(s.interpreter);
        if program.is_none() {
            return Err(refuse(
                Outcome::Script,
                format!(
                    "{}: %post --interpreter={} needs {} on this machine, and there is none",
                    s.span,
                    s.interpreter.name(),
                    if s.interpreter == crate::kickstart::Interpreter::Python {
                        "python3"
                    } else {
                        "/bin/sh"
                    }
                ),
            ));
        }
        post_scripts.push(ScriptPlan::of(s, found));
    }

    Ok(post_scripts)
}

impl Plan {
    /// An upgrade's plan for people: which bank boots now, which one is written, what is carried
    /// over and what is never touched.
    fn upgrade_text(&self, u: &upgrade::UpgradePlan) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let t = &self.target;
        let _ = writeln!(
            s,
            "Upgrade ESXi {} -> {} from {}",
            u.from_build, u.to_build, self.media.location
        );
        let _ = writeln!(s, "  why: {}", self.reason);
        let _ = writeln!(s, "  verified by: {}", self.media.verified_by);
        let _ = writeln!(s, "  signatures: {}", self.media.signatures);
        let _ = writeln!(
            s,
            "Target: {} ({}), {}; {}",
            t.name,
            t.path.display(),
            crate::size::human(t.size_bytes),
            t.chosen_because
        );
        let _ = writeln!(
            s,
            "  bank {} boots now (updated={}): NOT written; it stays for rollback",
            u.running_bank, u.running_updated
        );
        let bank: u64 = self.bank_files.iter().map(|f| f.size).sum();
        let _ = writeln!(
            s,
            "  bank {} is reformatted and gets {} modules ({}), {}, then boot.cfg last: bootstate={} updated={} build={}",
            u.target_bank,
            self.bank_files.len(),
            crate::size::human(bank),
            self.generated
                .iter()
                .map(|g| g.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            u.new_bootstate,
            u.new_updated,
            u.to_build
        );
        for c in &u.carried {
            let _ = writeln!(
                s,
                "  carried from bank {}: {} ({} bytes, sha256 {}): {}",
                c.from_partition,
                c.name,
                c.size,
                &c.sha256[..16.min(c.sha256.len())],
                c.why
            );
        }
        let _ = writeln!(
            s,
            "  never written: partitions {}",
            u.untouched
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        if u.downgrade {
            let _ = writeln!(s, "  DOWNGRADE");
        }
        if !self.post_scripts.is_empty() {
            let _ = writeln!(s, "%post scripts: {}", self.post_scripts.len());
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        s
    }

    /// The plan for people: what will be erased and written.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        if let Some(u) = &self.upgrade {
            return self.upgrade_text(u);
        }
        let mut s = String::new();
        let t = &self.target;
        let _ = writeln!(s, "{}", self.reason);
        let _ = writeln!(
            s,
            "Install ESXi {} ({}) from {}",
            self.media.version, self.media.build, self.media.location
        );
        let _ = writeln!(s, "  verified by: {}", self.media.verified_by);
        if !self.media.not_covered.is_empty() {
            let _ = writeln!(
                s,
                "  not covered by any VIB: {}",
                self.media.not_covered.join(", ")
            );
        }
        let _ = writeln!(s, "  signatures: {}", self.media.signatures);
        let _ = writeln!(
            s,
            "Target: {} ({}), {}, {}-byte sectors; {}",
            t.name,
            t.path.display(),
            crate::size::human(t.size_bytes),
            t.logical_sector_size,
            t.chosen_because
        );
        let _ = writeln!(
            s,
            "  holds now: {} -- everything on it except preserved partitions is ERASED",
            t.holds_now
        );
        for c in &self.cleared {
            let _ = writeln!(
                s,
                "clearpart: {} ({}), {}, holds now: {} -- its partition tables and the first 4 MiB of each partition are ZEROED",
                c.name,
                c.path.display(),
                crate::size::human(c.size_bytes),
                c.holds_now
            );
        }
        let _ = writeln!(s, "{}", self.layout.dry_run_text());
        let esp: u64 = self.esp_files.iter().map(|f| f.size).sum();
        let bank: u64 = self.bank_files.iter().map(|f| f.size).sum();
        let _ = writeln!(
            s,
            "Partition 1: {} bootloader files ({})",
            self.esp_files.len(),
            crate::size::human(esp)
        );
        let _ = writeln!(
            s,
            "Partition 5: {} modules ({}), {}, boot.cfg last",
            self.bank_files.len(),
            crate::size::human(bank),
            self.generated
                .iter()
                .map(|g| g.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        for d in &self.datastore_disks {
            let _ = writeln!(
                s,
                "Datastore disk {} ({}): ERASED; partition 1 for VMFS datastore \"{}\", formatted at first boot",
                d.name,
                d.path.display(),
                d.datastore
            );
        }
        let _ = writeln!(s, "First boot applies (onetime.tgz):");
        for line in self.host.lines() {
            let _ = writeln!(s, "  {line}");
        }
        for d in &self.dpus {
            let _ = writeln!(
                s,
                "DPU: {} through {}: {} {} ({} parts, payload {})",
                d.name,
                d.interface,
                d.action,
                d.payload.label,
                d.payload.parts.len(),
                &d.payload.id[..16]
            );
            let _ = writeln!(
                s,
                "     now runs: {}",
                d.before.software.as_deref().unwrap_or("unknown")
            );
            if let Some(r) = &d.before.reached_through {
                let _ = writeln!(s, "     {r}");
            }
            if let Some(r) = &d.after_host {
                let _ = writeln!(s, "     {r}");
            }
        }
        if !self.post_scripts.is_empty() {
            let _ = writeln!(s, "%post scripts: {}", self.post_scripts.len());
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        s
    }
}
