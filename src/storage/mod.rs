//! Storage: the ESXi 8 disk layout, planned as data and then written.
//!
//! * [`layout`]: the pure planner, [`LayoutRequest`] -> [`Layout`] or [`LayoutRefusal`].
//! * [`safety`]: pure disk-selection rules (`clearpart`, never the boot media).
//! * [`apply_layout`]: writes exactly what a `Layout` says (wipes, GPT, FAT16, bank signatures)
//!   and reads it back.
//! * [`open_partition_fat`]: a `fatfs` file system on a FAT partition, for later stages that
//!   put files into the boot banks.
//!
//! ESX-OSData (7) and the datastore (8) are typed and wiped but not formatted: VMFS is
//! proprietary, and ESXi formats both at first boot when it finds them empty (see
//! `docs/LAYOUT.md`).

pub mod blockdev;
pub mod fat;
pub mod gpt_write;
pub mod layout;
pub mod safety;

use std::io::{Read, Seek, SeekFrom};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use blockdev::BlockDev;
pub use fat::{FatReport, FatVolume};
pub use gpt_write::{read_gpt, GptSnapshot};
pub use layout::{
    plan_datastore_disk, plan_layout, Action, DatastoreRequest, Filesystem, Layout, LayoutRefusal,
    LayoutRequest, MediaKind, PlannedPartition, Role, SystemMediaSize, VmfsPolicy,
};

/// What `apply_layout` wrote, as read back from the disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenLayout {
    pub gpt: GptSnapshot,
    pub fat: Vec<FatReport>,
}

/// Why `apply_layout` wrote nothing: the disk is not the one the layout was planned for.
/// Returned inside the `anyhow::Error` (use `downcast_ref::<ApplyRefusal>()`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApplyRefusal {
    #[error("{path}: the layout was planned for {planned_bytes} bytes in {planned_sector}-byte sectors, the disk has {bytes} bytes in {sector}-byte sectors")]
    DiskChanged {
        path: String,
        planned_bytes: u64,
        planned_sector: u32,
        bytes: u64,
        sector: u32,
    },
    #[error("{path}: partition {number} to preserve is not on the disk as planned ({why})")]
    PreservedChanged {
        path: String,
        number: u32,
        why: String,
    },
    #[error("{path}: the layout is not writable as it stands: {why}")]
    InvalidLayout { path: String, why: String },
    #[error("{path}: planned write at LBA {first}-{last} overlaps preserved partition {number}")]
    WouldTouchPreserved {
        path: String,
        number: u32,
        first: u64,
        last: u64,
    },
}

/// What was written did not read back as planned.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("verification failed: {0}")]
pub struct VerifyFailed(pub String);

/// The process outcome for an error from this module: refusals (nothing written) are
/// preconditions, a failed read-back is a verify failure, anything else a write failure.
pub fn outcome_of(err: &anyhow::Error) -> crate::exit::Outcome {
    use crate::exit::Outcome;
    if err.downcast_ref::<LayoutRefusal>().is_some()
        || err.downcast_ref::<ApplyRefusal>().is_some()
        || err.downcast_ref::<safety::SafetyRefusal>().is_some()
    {
        Outcome::Precondition
    } else if err.downcast_ref::<VerifyFailed>().is_some() {
        Outcome::Verify
    } else {
        Outcome::Write
    }
}

/// Which of the layout's LBA ranges `apply` writes (wipes, GPT areas, created partitions).
fn written_ranges(layout: &Layout) -> Vec<(u64, u64)> {
    let mut r: Vec<(u64, u64)> = layout
        .wipes
        .iter()
        .map(|w| (w.first_lba, w.last_lba))
        .collect();
    r.push((0, layout.first_usable_lba - 1));
    r.push((layout.last_usable_lba + 1, layout.total_sectors - 1));
    r.extend(
        layout
            .partitions
            .iter()
            .filter(|p| p.action == Action::Create)
            .map(|p| (p.entry.first_lba, p.entry.last_lba)),
    );
    r
}

/// Structural checks of a `Layout` (it may come from a serialised plan): geometry consistent,
/// entries placeable, wipes on the disk, FAT parameters that `fatfs` accepts without panicking.
fn validate_layout(layout: &Layout) -> Result<()> {
    let ss = u64::from(layout.logical_sector_size);
    gpt_write::lb_size(layout.logical_sector_size)?;
    let array = (u64::from(layout::GPT_ENTRY_SLOTS) * layout::GPT_ENTRY_BYTES).div_ceil(ss);
    if layout.total_sectors != layout.disk_bytes / ss
        || layout.first_usable_lba != 2 + array
        || layout.last_usable_lba.checked_add(2 + array) != Some(layout.total_sectors)
    {
        anyhow::bail!("disk geometry fields disagree");
    }
    gpt_write::validate(layout)?;
    for w in &layout.wipes {
        if w.first_lba > w.last_lba || w.last_lba >= layout.total_sectors {
            anyhow::bail!("wipe LBA {}-{} is not on the disk", w.first_lba, w.last_lba);
        }
    }
    for p in &layout.partitions {
        match (&p.filesystem, p.action) {
            (
                Filesystem::Fat16 {
                    label,
                    bytes_per_cluster,
                    reserved_sectors,
                    bank_uuid,
                    ..
                },
                Action::Create,
            ) => {
                fat::label_bytes(label)?;
                fat::check_cluster_size(*bytes_per_cluster, layout.logical_sector_size)?;
                let want = if bank_uuid.is_some() { 2 } else { 1 };
                if *reserved_sectors != want {
                    anyhow::bail!(
                        "partition {}: reserved sectors do not match",
                        p.entry.number
                    );
                }
            }
            (Filesystem::Preserved, Action::Preserve)
            | (
                Filesystem::VmfslAtFirstBoot
                | Filesystem::VmfsAtFirstBoot
                | Filesystem::VmfsByFirstBootScript { .. },
                Action::Create,
            ) => {}
            _ => anyhow::bail!(
                "partition {}: action {:?} with {:?}",
                p.entry.number,
                p.action,
                p.filesystem
            ),
        }
    }
    Ok(())
}

/// Check, without writing, that `dev` is the disk `layout` was planned for.
pub(crate) fn check_target(dev: &mut BlockDev, layout: &Layout) -> Result<()> {
    let path = dev.path().display().to_string();
    if let Err(e) = validate_layout(layout) {
        return Err(ApplyRefusal::InvalidLayout {
            path,
            why: format!("{e:#}"),
        }
        .into());
    }
    if dev.size_bytes() != layout.disk_bytes
        || dev.logical_sector_size() != layout.logical_sector_size
    {
        return Err(ApplyRefusal::DiskChanged {
            path,
            planned_bytes: layout.disk_bytes,
            planned_sector: layout.logical_sector_size,
            bytes: dev.size_bytes(),
            sector: dev.logical_sector_size(),
        }
        .into());
    }
    let preserved: Vec<&PlannedPartition> = layout
        .partitions
        .iter()
        .filter(|p| p.action == Action::Preserve)
        .collect();
    if preserved.is_empty() {
        return Ok(());
    }
    for p in &preserved {
        for (first, last) in written_ranges(layout) {
            if first <= p.entry.last_lba && p.entry.first_lba <= last {
                return Err(ApplyRefusal::WouldTouchPreserved {
                    path,
                    number: p.entry.number,
                    first,
                    last,
                }
                .into());
            }
        }
    }
    let now = match read_gpt(dev) {
        Ok(s) => s,
        Err(e) => {
            return Err(ApplyRefusal::PreservedChanged {
                path,
                number: preserved[0].entry.number,
                why: format!("{e:#}"),
            }
            .into())
        }
    };
    for p in preserved {
        if !now.entries.contains(&p.entry) {
            return Err(ApplyRefusal::PreservedChanged {
                path,
                number: p.entry.number,
                why: "its GPT entry differs or is gone".into(),
            }
            .into());
        }
    }
    Ok(())
}

/// Write `layout` to `dev`: wipes, protective MBR + GPT (our slot numbers), FAT16 on 1, 5, 6 with
/// the VMware FAT signature on 5 and 6. Nothing else is written; preserved partitions are not
/// touched. Reads the result back and fails if it differs from the plan.
pub fn apply_layout(dev: &mut BlockDev, layout: &Layout) -> Result<WrittenLayout> {
    check_target(dev, layout)?;
    let path = dev.path().display().to_string();
    let ss = u64::from(layout.logical_sector_size);
    log::info!("{path}: writing layout {:?}", layout.numbers());

    for w in &layout.wipes {
        log::debug!(
            "{path}: zeroing LBA {}-{} ({})",
            w.first_lba,
            w.last_lba,
            w.why
        );
        zero_range(dev, w.first_lba * ss, (w.last_lba + 1 - w.first_lba) * ss)?;
    }
    gpt_write::write_gpt(dev, layout)?;

    let mut fat_reports = Vec::new();
    for p in &layout.partitions {
        if let Filesystem::Fat16 {
            label,
            volume_id,
            bytes_per_cluster,
            bank_uuid,
            ..
        } = &p.filesystem
        {
            let spec = fat::FatSpec {
                label,
                volume_id: *volume_id,
                bytes_per_cluster: *bytes_per_cluster,
                bank_uuid: *bank_uuid,
            };
            fat_reports.push(fat::format_fat16(dev, &p.entry, &spec)?);
        }
    }
    dev.sync()?;
    dev.reread_partitions();

    let gpt = read_gpt(dev).with_context(|| format!("{path}: reading back the GPT we wrote"))?;
    let planned: Vec<_> = layout.partitions.iter().map(|p| p.entry.clone()).collect();
    if gpt.entries != planned || gpt.disk_guid != layout.disk_guid {
        return Err(VerifyFailed(format!(
            "{path}: the GPT read back differs from the plan: read {:?}, planned {:?}",
            gpt.entries, planned
        ))
        .into());
    }
    log::info!("{path}: layout written and read back");
    Ok(WrittenLayout {
        gpt,
        fat: fat_reports,
    })
}

/// Open the FAT file system of partition `number` of a written `layout`.
pub fn open_partition_fat<'a>(
    dev: &'a mut BlockDev,
    layout: &Layout,
    number: u32,
) -> Result<FatVolume<'a>> {
    let p = layout
        .partition(number)
        .with_context(|| format!("the layout has no partition {number}"))?;
    if !matches!(p.filesystem, Filesystem::Fat16 { .. }) {
        anyhow::bail!("partition {number} is not a FAT partition");
    }
    fat::open_fat(dev, &p.entry)
}

/// Zero `len` bytes at `offset`, writing only the chunks that are not already zero (keeps sparse
/// images sparse and spares flash needless writes; reading a hole costs nothing).
pub(crate) fn zero_range(dev: &mut BlockDev, offset: u64, len: u64) -> Result<()> {
    const CHUNK: u64 = 1024 * 1024;
    let mut buf = vec![0u8; CHUNK as usize];
    let zeros = vec![0u8; CHUNK as usize];
    let mut pos = offset;
    let end = offset + len;
    while pos < end {
        let n = (end - pos).min(CHUNK) as usize;
        dev.seek(SeekFrom::Start(pos))
            .and_then(|_| dev.read_exact(&mut buf[..n]))
            .with_context(|| format!("reading {n} bytes at {pos} of {}", dev.path().display()))?;
        if buf[..n] != zeros[..n] {
            dev.write_at(pos, &zeros[..n])?;
        }
        pos += n as u64;
    }
    Ok(())
}
