//! The target disk: which one, why, what the kickstart's disk rules allow, and its layout.

use super::*;

/// The target named with `--disk`, as `install::prepare` read it.
pub(super) fn override_target(
    d: &OverrideDisk,
    i: &Inputs<'_>,
) -> Result<(Target, DiskContent), PlanError> {
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
pub(super) fn choose_target(
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
pub(super) fn unfinished_install(c: &DiskContent) -> &[u32] {
    if c.esx.is_some() {
        &[]
    } else {
        &c.unformatted
    }
}

/// Why a disk's contents may hide a VMFS datastore we cannot see, if they may.
pub(super) fn may_hide_vmfs(c: &crate::inventory::DiskContent) -> Option<String> {
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
pub(super) fn check_disks(i: &Inputs<'_>, target: &Target) -> Result<DiskRules, PlanError> {
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
pub(super) fn check_override_node(
    d: &OverrideDisk,
    boot_disk: Option<&str>,
) -> Result<(), PlanError> {
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
pub(super) struct DiskRules {
    pub(super) facts: Vec<storage::safety::DiskFacts>,
    /// Every disk a `clearpart` line names (a `part` disk among them may be laid out).
    pub(super) cleared: Vec<String>,
    /// What clearing the disks that are neither the install disk nor a `part` disk zeroes.
    pub(super) clear: Vec<ClearDisk>,
}

/// What `clearpart` does to a disk that is not the install disk: its partition tables (MBR and
/// primary GPT in the first MiB, the backup GPT in the last) and the first 4 MiB of each of its
/// partitions (where file system signatures live) are zeroed, so that nothing reads a partition
/// or a file system there any more.
pub(super) fn clear_disk(sysroot: &Path, d: &crate::inventory::Disk) -> ClearDisk {
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

/// What is on the target now, for a fresh install: a disk whose table we cannot read (or an MBR with VMFS types) may hold a datastore: it is treated as
/// holding VMFS. Unknown is never "nothing to protect".
pub(super) fn check_existing(
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
pub(super) fn layout_for(
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
