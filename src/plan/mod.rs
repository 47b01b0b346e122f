//! The plan stage: kickstart + inventory + media + boot options -> one serde `Plan`. Every check
//! runs here, before anything is written; `apply` does exactly what the plan says and nothing
//! else. `--dry-run` prints the plan.

mod bank;
pub mod datastores;
mod dpus;
pub mod host;
pub mod hostconfig;
pub mod ids;
mod lockdown;
mod model;
mod scripts;
mod target;
mod text;
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
use bank::*;
use dpus::*;
pub use host::{Host, Interpreters, MediaFacts, OverrideDisk, OverrideState};
use hostconfig::{FormatStep, GeneratedFile, HostConfig};
pub use model::*;
use scripts::*;
use target::*;

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
