//! `upgrade` (and `installorupgrade` where ESXi is found) as data: the new image goes to the boot
//! bank opposite the one that boots, that bank is reformatted and filled, its `boot.cfg` written
//! last with `bootstate=1` and `updated = max + 1`. Nothing else on the disk is written: not the
//! GPT, not the system partition, not the bank that boots now, not ESX-OSData nor a datastore.
//! Rules: weasel 6.7 `cache.py` and esx-boot 8.0.3 (../shared/spec/media.md §6, layout.md §4).

use serde::{Deserialize, Serialize};

use super::MediaFacts;
use super::{refuse, FileCopy, Inputs, PlanError, Target};
use crate::exit::Outcome;
use crate::inventory::installed::{self, BankImage};
use crate::inventory::{Bootbank, DiskContent, EsxInstall};
use crate::media::BootCfg;
use crate::partition::PartitionEntry;
use crate::storage::{self, Action, Filesystem, Layout, PlannedPartition, Role};

/// A file the new bank takes from the bank that boots now, byte for byte.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CarriedFile {
    pub name: String,
    pub from_partition: u32,
    pub size: u64,
    pub sha256: String,
    /// Why it is carried over.
    pub why: String,
}

/// A DPU an upgrade leaves as it is: it runs the ESXio the new image carries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KeptDpu {
    /// Required keys even under the container's `default` (serde's flatten does not take it);
    /// every version that wrote `kept_dpus` wrote them all.
    #[serde(flatten)]
    pub identity: crate::inventory::DpuIdentity,
    /// The ESXio build it runs (that of the installed image's ESXio VIBs, the same in the new
    /// image).
    pub esxio_build: String,
}

/// What an upgrade does, beyond the files every plan lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpgradePlan {
    pub from_build: String,
    pub to_build: String,
    /// The bank that boots now: never written (the rollback bank afterwards).
    pub running_bank: u32,
    pub running_updated: u64,
    /// The bank the new image goes to: reformatted, then filled, `boot.cfg` last.
    pub target_bank: u32,
    /// Its GPT entry as the plan saw it: apply checks the disk still has it.
    pub target_entry: PartitionEntry,
    /// `updated=` of the new `boot.cfg`: the highest of the valid banks + 1.
    pub new_updated: u64,
    /// `bootstate=` of the new `boot.cfg`: 1 (upgrading), as weasel sets it when ESXi is present.
    pub new_bootstate: u32,
    pub carried: Vec<CarriedFile>,
    /// Partitions not one byte of which is written.
    pub untouched: Vec<u32>,
    /// The new media are older than what runs (allowed by --ignoreprereqerrors, with a warning).
    pub downgrade: bool,
    /// The host's DPUs, left running the ESXio the new image carries.
    pub dpus: Vec<KeptDpu>,
}

/// `8.0.3-0.35.24280767` -> ([8, 0, 3], 24280767): the release, then the build number.
pub(crate) fn build_key(build: &str) -> Option<(Vec<u64>, u64)> {
    let (version, release) = build.split_once('-')?;
    let v: Vec<u64> = version
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let n = release.rsplit('.').next()?.parse().ok()?;
    Some((v, n))
}

/// The bank weasel treats as the running one: the highest `updated` among banks 5 and 6 in state
/// 0 or 1 (media.md §6).
fn weasel_running(esx: &EsxInstall) -> Option<&Bootbank> {
    esx.banks
        .iter()
        .filter(|b| matches!(b.partition, 5 | 6) && matches!(b.bootstate, Some(0 | 1)))
        .max_by_key(|b| (b.updated.unwrap_or(0), std::cmp::Reverse(b.partition)))
}

/// The new media's image database (`imgdb.tgz`): what the installed VIBs are compared with
/// (read by `install::prepare` when a disk holds ESXi).
fn media_image(media: &MediaFacts) -> Result<&BankImage, PlanError> {
    media
        .image
        .as_ref()
        .map_err(|why| refuse(Outcome::Media, why.clone()))
}

/// The ESXio VIBs of an image and their versions: what the DPU runs with it (the unified image:
/// docs/DPU.md).
pub(crate) fn esxio_vibs(img: &BankImage) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = img
        .vibs
        .iter()
        .filter(|v| v.name.starts_with("esxio") || v.name.ends_with("-esxio"))
        .map(|v| (v.name.clone(), v.version.clone()))
        .collect();
    v.sort();
    v
}

/// On a host with a DPU: the host's banks are upgraded only when the new image's ESXio is the
/// one the DPU runs; ESXi's installer does not update a DPU (D9), vLCM does, host and DPU
/// together.
fn check_dpu(
    i: &Inputs<'_>,
    running: &BankImage,
    media_img: &BankImage,
    to: &str,
) -> Result<Vec<KeptDpu>, PlanError> {
    let now = esxio_vibs(running);
    let new = esxio_vibs(media_img);
    let said = |v: &[(String, String)]| {
        let mut versions: Vec<&str> = v.iter().map(|(_, ver)| ver.as_str()).collect();
        versions.dedup();
        if versions.is_empty() {
            "no ESXio".to_string()
        } else {
            format!("ESXio {}", versions.join(", "))
        }
    };
    let mut kept = Vec::new();
    // A model vSphere does not support is not a DPU to ESXi (docs/DPU.md): it runs no ESXio.
    for d in i.host.inventory.supported_dpus() {
        if now.is_empty() || now != new {
            return Err(refuse(
                Outcome::Precondition,
                format!(
                    "upgrade on a host with a DPU ({}): the DPU runs {} (from the installed image), the new media {to} carry {}; ESXi's installer does not update a DPU, and host and DPU must run one image: upgrade this host with vSphere Lifecycle Manager (vLCM), which updates host and DPU together",
                    d.identity.name(),
                    said(&now),
                    said(&new)
                ),
            ));
        }
        kept.push(KeptDpu {
            identity: d.identity.clone(),
            esxio_build: now.first().map(|(_, v)| v.clone()).unwrap_or_default(),
        });
    }
    Ok(kept)
}

/// The bank that boots now, as weasel and safeboot both see it: the one the upgrade keeps.
fn running_bank<'d>(existing: &'d DiskContent, target: &Target) -> Result<&'d Bootbank, PlanError> {
    let esx = existing.esx.as_ref().ok_or_else(|| {
        refuse(
            Outcome::Precondition,
            format!("upgrade: {} holds no ESXi", target.name),
        )
    })?;
    if esx.upgrade != installed::Upgradability::Upgradable {
        return Err(refuse(
            Outcome::Precondition,
            format!("upgrade: {}: {}", target.name, esx.upgrade),
        ));
    }
    let running = weasel_running(esx).ok_or_else(|| {
        refuse(
            Outcome::Precondition,
            format!("upgrade: {}: no boot bank in state 0 or 1", target.name),
        )
    })?;
    if esx.boots != Some(running.partition) {
        return Err(refuse(
            Outcome::Precondition,
            format!(
                "upgrade: {}: ESXi's installer would write bank {}, but that is the bank the bootloader boots ({}): its first boot after an upgrade was never confirmed (bootstate {}); boot the host once, then upgrade",
                target.name,
                if running.partition == 5 { 6 } else { 5 },
                esx.boots.map_or("none".into(), |b| format!("partition {b}")),
                esx.banks
                    .iter()
                    .find(|b| Some(b.partition) == esx.boots)
                    .and_then(|b| b.bootstate)
                    .unwrap_or(-1)
            ),
        ));
    }
    Ok(running)
}

/// The media's build against the one that boots: newer is an upgrade; the same is nothing to
/// do; older is a downgrade, allowed only by --ignoreprereqerrors (with a warning).
fn check_builds(
    i: &Inputs<'_>,
    from: &str,
    to: &str,
    target: &Target,
    running_partition: u32,
    warnings: &mut Vec<String>,
) -> Result<bool, PlanError> {
    let action = i.kickstart.action.as_ref();
    let allow_errors = action.is_some_and(|a| a.ignore_prereq_errors);
    let downgrade = match (build_key(from), build_key(to)) {
        (Some(f), Some(t)) if t == f => {
            return Err(refuse(
                Outcome::Precondition,
                format!(
                    "upgrade: {} already boots build {from} (bank {}): nothing to upgrade",
                    target.name, running_partition
                ),
            ))
        }
        (Some(f), Some(t)) => t < f,
        _ => {
            return Err(refuse(
                Outcome::Precondition,
                format!(
                "upgrade: cannot compare the installed build \"{from}\" with the media's \"{to}\""
            ),
            ))
        }
    };
    if downgrade {
        if !allow_errors {
            return Err(refuse(
                Outcome::Precondition,
                format!("upgrade: the media's build {to} is older than the installed {from}: a downgrade; ESXi refuses it as a precheck error, which --ignoreprereqerrors overrides"),
            ));
        }
        warnings.push(format!(
            "upgrade: DOWNGRADE from {from} to {to}, allowed by --ignoreprereqerrors"
        ));
    }
    Ok(downgrade)
}

/// `state.tgz` and `jumpstrt.gz` of the running bank, as weasel carries them over.
fn carried_files(running: &Bootbank, warnings: &mut Vec<String>) -> Vec<CarriedFile> {
    let mut carried = Vec::new();
    match &running.state_tgz {
        Some(f) => carried.push(CarriedFile {
            name: "state.tgz".into(),
            from_partition: running.partition,
            size: f.size,
            sha256: f.sha256.clone(),
            why: "the host's configuration, as weasel carries it over".into(),
        }),
        None => warnings.push(format!(
            "upgrade: bank {} has no state.tgz: the new bank starts with ESXi's default configuration",
            running.partition
        )),
    }
    // A bank ESXi never booted still lists onetime.tgz: its first-boot settings are not carried
    // (weasel carries state.tgz only), so they would never be applied.
    if running.first_boot.as_ref().is_some_and(|f| f.pending) {
        warnings.push(format!(
            "upgrade: bank {} has not had its first boot (onetime.tgz is still in its boot.cfg): the settings it holds (root password, network, %firstboot, formatting) are not carried to the new bank and will not be applied",
            running.partition
        ));
    }
    if let Some(f) = &running.jumpstrt_gz {
        carried.push(CarriedFile {
            name: "jumpstrt.gz".into(),
            from_partition: running.partition,
            size: f.size,
            sha256: f.sha256.clone(),
            why: "weasel keeps the installed jumpstrt.gz on upgrade (media.md, section 6)".into(),
        });
    }
    carried
}

/// The new bank's `boot.cfg` in weasel's form: `bootstate=1` (upgrading), `updated=max+1`, the
/// modules in the media's boot order with the carried `state.tgz` last.
fn upgrade_boot_cfg(
    media: &MediaFacts,
    all_modules: &[FileCopy],
    carried_names: &[&str],
    to: &str,
    new_updated: u64,
) -> BootCfg {
    let mut modules: Vec<String> = all_modules.iter().skip(1).map(|f| f.to.clone()).collect();
    if carried_names.contains(&"state.tgz") {
        modules.push("state.tgz".into());
    }
    super::bank_boot_cfg(super::BankBoot {
        kernel: all_modules.first(),
        modules,
        kernelopt: super::installed_kernelopt(media),
        build: to,
        bootstate: 1,
        updated: new_updated,
    })
}

/// The planned upgrade: checks, then the new bank's files, `boot.cfg` and the layout with every
/// partition preserved but the target bank.
pub(super) fn plan_upgrade(
    i: &Inputs<'_>,
    target: &Target,
    existing: &DiskContent,
    warnings: &mut Vec<String>,
) -> Result<(super::Plan, String), PlanError> {
    let media = &i.host.media;
    let running = running_bank(existing, target)?;
    let target_bank = if running.partition == 5 { 6 } else { 5 };
    let from = running.build.clone().unwrap_or_default();
    let to = media.manifest.build.clone();
    let running_img = running.image.as_ref().ok_or_else(|| {
        refuse(
            Outcome::Precondition,
            format!(
                "upgrade: bank {} has no readable imgdb.tgz",
                running.partition
            ),
        )
    })?;
    let media_img = media_image(media)?;
    let dpus = check_dpu(i, running_img, media_img, &to)?;
    let downgrade = check_builds(i, &from, &to, target, running.partition, warnings)?;
    check_vibs_kept(running_img, media_img)?;
    let layout = upgrade_layout(&i.host.gpts, &i.ids, target, existing, target_bank)?;
    let bank = layout.partition(target_bank).cloned().ok_or_else(|| {
        refuse(
            Outcome::Precondition,
            format!("upgrade: {} has no partition {target_bank}", target.name),
        )
    })?;
    let carried = carried_files(running, warnings);
    let carried_names: Vec<&str> = carried.iter().map(|c| c.name.as_str()).collect();
    let all_modules = super::bank_plan(media, &layout, target)?;
    let bank_files: Vec<FileCopy> = all_modules
        .iter()
        .filter(|f| !carried_names.contains(&f.to.as_str()))
        .cloned()
        .map(|mut f| {
            f.partition = target_bank;
            f
        })
        .collect();
    let bytes: u64 = bank_files.iter().map(|f| f.size).sum::<u64>()
        + carried.iter().map(|c| c.size).sum::<u64>();
    if bytes > bank.size_bytes.saturating_sub(bank.size_bytes / 16) {
        return Err(refuse(
            Outcome::Precondition,
            format!("upgrade: the new image ({bytes} bytes) does not fit boot bank {target_bank} ({} bytes)", bank.size_bytes),
        ));
    }
    let new_updated = running.updated.unwrap_or(0) + 1;
    let boot_cfg = upgrade_boot_cfg(media, &all_modules, &carried_names, &to, new_updated);
    // Real banks carry VMware's imgdb.tgz alone (docs/MEDIA.md): the new bank gets the media's
    // modules (imgdb.tgz among them) and the carried files, nothing generated of ours.
    let generated = Vec::new();
    let untouched = existing
        .partitions
        .iter()
        .map(|p| p.number)
        .filter(|n| *n != target_bank)
        .collect();
    warnings.push(
        "upgrade: the system partition (1) is not rewritten: its bootloader stays as installed (a kill while rewriting it would leave neither bank bootable); the new bank carries the new loaders in btldr.v00"
            .to_string(),
    );
    let reason = format!(
        "{} boots ESXi {from} from bank {} (updated={}): the new image goes to bank {target_bank}, which boots next (bootstate=1, updated={new_updated}); bank {} stays for rollback",
        target.name,
        running.partition,
        running.updated.unwrap_or(0),
        running.partition
    );
    let upgrade = UpgradePlan {
        from_build: from,
        to_build: to,
        running_bank: running.partition,
        running_updated: running.updated.unwrap_or(0),
        target_bank,
        target_entry: bank.entry.clone(),
        new_updated,
        new_bootstate: 1,
        carried,
        untouched,
        downgrade,
        dpus,
    };
    let plan = super::Plan {
        kind: super::RunKind::Upgrade,
        reason: String::new(),
        kickstart: i.kickstart_name.to_string(),
        media: super::media_summary(media),
        target: target.clone(),
        cleared: Vec::new(),
        layout,
        esp_files: Vec::new(),
        bank_files,
        esp_generated: Vec::new(),
        generated,
        boot_cfg,
        host: super::hostconfig::host_config(i.kickstart),
        datastore_disks: Vec::new(),
        post_scripts: super::post_plans(i.kickstart, &i.host.interpreters)?,
        dpus: Vec::new(),
        dpus_not_used: Vec::new(),
        check_media: media.is_local(),
        reboot: i.kickstart.reboot.as_ref().map(|r| r.no_eject),
        warnings: Vec::new(),
        upgrade: Some(upgrade),
    };
    Ok((plan, reason))
}

/// Every VIB installed must be in the new image: ksinstall does not merge VIBs into VMware's
/// image database, and dropping one may drop a driver the host needs.
fn check_vibs_kept(running: &BankImage, media: &BankImage) -> Result<(), PlanError> {
    let media_names: Vec<&str> = media.vibs.iter().map(|v| v.name.as_str()).collect();
    let missing: Vec<String> = running
        .vibs
        .iter()
        .filter(|v| !media_names.contains(&v.name.as_str()))
        .map(|v| v.id.clone())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(refuse(
        Outcome::Precondition,
        format!(
            "upgrade: {} installed VIB(s) are not in the new image: {}; keeping them would mean merging their payloads and descriptors into VMware's image database, which ksinstall does not do (how ESXi 7/8's installer treats them is UNCONFIRMED), and dropping them may drop a driver the host needs: add them to the image (a custom ISO) or remove them from the host first",
            missing.len(),
            missing.join(", ")
        ),
    ))
}

/// The disk's layout as it is, every partition preserved but the target bank, which is
/// reformatted (FAT16, the VMware signature with the bank's own UUID kept).
fn upgrade_layout(
    gpts: &std::collections::BTreeMap<String, Result<storage::GptSnapshot, String>>,
    ids: &super::ids::IdSource,
    target: &Target,
    existing: &DiskContent,
    target_bank: u32,
) -> Result<Layout, PlanError> {
    let gpt = match gpts.get(&target.name) {
        Some(Ok(g)) => g,
        Some(Err(why)) => return Err(refuse(Outcome::Precondition, why.clone())),
        None => {
            return Err(refuse(
                Outcome::Precondition,
                format!("{}: its GPT was not read", target.name),
            ))
        }
    };
    let ss = u64::from(target.logical_sector_size);
    let bank_uuid = existing
        .esx
        .as_ref()
        .and_then(|e| e.banks.iter().find(|b| b.partition == target_bank))
        .and_then(|b| b.uuid.as_deref())
        .and_then(|u| uuid::Uuid::parse_str(u).ok())
        .unwrap_or_else(|| ids.next());
    let partitions = gpt
        .entries
        .iter()
        .map(|e| {
            let size_bytes = e.sectors() * ss;
            let role = match e.number {
                1 => Role::SystemBoot,
                5 => Role::BootBank0,
                6 => Role::BootBank1,
                7 => Role::OsData,
                _ => Role::Datastore,
            };
            if e.number == target_bank {
                PlannedPartition {
                    role,
                    action: Action::Create,
                    entry: e.clone(),
                    size_bytes,
                    filesystem: storage::layout::bank_filesystem(
                        if target_bank == 5 {
                            "BOOTBANK1"
                        } else {
                            "BOOTBANK2"
                        },
                        size_bytes,
                        target.logical_sector_size,
                        bank_uuid,
                        ids.next(),
                    ),
                }
            } else {
                PlannedPartition {
                    role,
                    action: Action::Preserve,
                    entry: e.clone(),
                    size_bytes,
                    filesystem: Filesystem::Preserved,
                }
            }
        })
        .collect();
    Ok(Layout {
        disk_id: target.name.clone(),
        disk_bytes: target.size_bytes,
        logical_sector_size: target.logical_sector_size,
        total_sectors: target.size_bytes / ss,
        disk_guid: gpt.disk_guid,
        first_usable_lba: gpt.first_usable_lba,
        last_usable_lba: gpt.last_usable_lba,
        partitions,
        wipes: Vec::new(),
        osdata_elsewhere: false,
        osdata_disk: None,
        warnings: Vec::new(),
    })
}
