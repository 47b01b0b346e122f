//! Writing the GPT of a [`Layout`] with the `gpt` crate, keeping our partition numbers.
//!
//! `gpt` 4.1 builds headers, serialises entries and computes both CRCs, and we use it for all of
//! that. Its `write_inplace` however packs the used entries into the first slots of the array
//! (ids 1, 5, 6, 7, 8 come back as 1, 2, 3, 4, 5), while ESXi's bootloader reads partition N
//! from entry slot N. No crate option changes this, so after the crate has written the disk we
//! rewrite the entry array ourselves, each entry at slot `number - 1` (serialised by the crate's
//! own `Partition::write_to_device`), and let the crate's `Header::write_primary/write_backup`
//! recompute the array and header CRCs from what is now on disk. `gpt` 4.1 also writes no
//! protective MBR; we write one with `ProtectiveMBR::overwrite_lba0`.

use std::collections::BTreeMap;
use std::io::Cursor;

use anyhow::{anyhow, bail, Context, Result};
use gpt::disk::LogicalBlockSize;
use gpt::mbr::ProtectiveMBR;
use gpt::partition::Partition;
use gpt::GptConfig;
use uuid::Uuid;

use super::blockdev::BlockDev;
use super::layout::{Layout, GPT_ENTRY_BYTES, GPT_ENTRY_SLOTS};
use crate::partition::PartitionEntry;

/// What a GPT read back from a disk says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GptSnapshot {
    pub disk_guid: Uuid,
    pub first_usable_lba: u64,
    pub last_usable_lba: u64,
    /// Used entries by slot, ascending.
    pub entries: Vec<PartitionEntry>,
}

pub(crate) fn lb_size(sector: u32) -> Result<LogicalBlockSize> {
    match sector {
        512 => Ok(LogicalBlockSize::Lb512),
        4096 => Ok(LogicalBlockSize::Lb4096),
        other => bail!("logical sector size {other} is not supported (only 512 and 4096)"),
    }
}

fn to_gpt(e: &PartitionEntry) -> Partition {
    Partition {
        part_type_guid: e.type_guid.into(),
        part_guid: e.part_guid,
        first_lba: e.first_lba,
        last_lba: e.last_lba,
        flags: e.attributes,
        name: e.name.clone(),
    }
}

/// Check that the entries are placeable: slots 1..=128, inside the usable area, no overlap.
/// (`gpt`'s `update_partitions` does not validate, and `add_partition_at` panics on bad input.)
pub(crate) fn validate(layout: &Layout) -> Result<()> {
    let mut prev: Option<&PartitionEntry> = None;
    for p in &layout.partitions {
        let e = &p.entry;
        if e.number == 0 || e.number > GPT_ENTRY_SLOTS {
            bail!(
                "partition number {} is not a GPT slot (1-{GPT_ENTRY_SLOTS})",
                e.number
            );
        }
        if e.first_lba > e.last_lba
            || e.first_lba < layout.first_usable_lba
            || e.last_lba > layout.last_usable_lba
        {
            bail!(
                "partition {} (LBA {}-{}) is outside the usable area LBA {}-{}",
                e.number,
                e.first_lba,
                e.last_lba,
                layout.first_usable_lba,
                layout.last_usable_lba
            );
        }
        if let Some(q) = prev {
            if q.number >= e.number {
                bail!(
                    "partitions are not in ascending slot order ({} then {})",
                    q.number,
                    e.number
                );
            }
        }
        prev = Some(e);
    }
    let mut by_lba: Vec<&PartitionEntry> = layout.partitions.iter().map(|p| &p.entry).collect();
    by_lba.sort_by_key(|e| e.first_lba);
    for w in by_lba.windows(2) {
        if w[0].last_lba >= w[1].first_lba {
            bail!("partitions {} and {} overlap", w[0].number, w[1].number);
        }
    }
    Ok(())
}

/// Write protective MBR, primary and backup GPT headers and entry arrays for `layout`.
pub(crate) fn write_gpt(dev: &mut BlockDev, layout: &Layout) -> Result<()> {
    validate(layout)?;
    let lbs = lb_size(layout.logical_sector_size)?;
    let path = dev.path().display().to_string();
    let mut disk = GptConfig::new()
        .writable(true)
        .logical_block_size(lbs)
        .create_from_device(&mut *dev, Some(layout.disk_guid))
        .with_context(|| format!("preparing a GPT for {path}"))?;
    let map: BTreeMap<u32, Partition> = layout
        .partitions
        .iter()
        .map(|p| (p.entry.number, to_gpt(&p.entry)))
        .collect();
    disk.update_partitions(map.clone())
        .with_context(|| format!("setting the GPT entries of {path}"))?;
    {
        let h = disk.header();
        if h.first_usable != layout.first_usable_lba || h.last_usable != layout.last_usable_lba {
            bail!(
                "{path}: gpt computes usable LBA {}-{}, the layout planned {}-{} (disk changed?)",
                h.first_usable,
                h.last_usable,
                layout.first_usable_lba,
                layout.last_usable_lba
            );
        }
    }
    disk.write_inplace()
        .with_context(|| format!("writing the GPT of {path}"))?;

    // The fix-up: put every entry back into its own slot, in both arrays, then rewrite both
    // headers so their CRCs cover the arrays as they are now.
    let mut primary = disk
        .primary_header()
        .map_err(|e| anyhow!("{path}: no primary GPT header after writing: {e}"))?
        .clone();
    let mut backup = disk
        .backup_header()
        .map_err(|e| anyhow!("{path}: no backup GPT header after writing: {e}"))?
        .clone();
    drop(disk);
    if primary.num_parts != GPT_ENTRY_SLOTS || u64::from(primary.part_size) != GPT_ENTRY_BYTES {
        bail!(
            "{path}: unexpected GPT array geometry {} x {} bytes",
            primary.num_parts,
            primary.part_size
        );
    }
    let array_bytes = usize::try_from(u64::from(primary.num_parts) * u64::from(primary.part_size))
        .context("GPT array size")?;
    let mut array = Cursor::new(vec![0u8; array_bytes]);
    for (number, part) in &map {
        part.write_to_device(&mut array, u64::from(number - 1), 0, lbs, primary.part_size)
            .with_context(|| format!("serialising GPT entry {number}"))?;
    }
    let array = array.into_inner();
    let ss = u64::from(layout.logical_sector_size);
    dev.write_at(primary.part_start * ss, &array)
        .context("writing the primary GPT entry array")?;
    dev.write_at(backup.part_start * ss, &array)
        .context("writing the backup GPT entry array")?;
    backup
        .write_backup(&mut *dev, lbs)
        .with_context(|| format!("writing the backup GPT header of {path}"))?;
    primary
        .write_primary(&mut *dev, lbs)
        .with_context(|| format!("writing the primary GPT header of {path}"))?;

    let protective_len = u32::try_from(layout.total_sectors - 1).unwrap_or(u32::MAX);
    ProtectiveMBR::with_lb_size(protective_len)
        .overwrite_lba0(&mut *dev)
        .with_context(|| format!("writing the protective MBR of {path}"))?;
    Ok(())
}

/// Read the GPT of `dev` (both headers must be valid) with the `gpt` crate.
pub fn read_gpt(dev: &mut BlockDev) -> Result<GptSnapshot> {
    let lbs = lb_size(dev.logical_sector_size())?;
    let path = dev.path().display().to_string();
    // `gpt` asserts (panics) on an entry size other than 128 and allocates num_parts * 128 bytes:
    // check the primary header first, the disk is outside input.
    let h = gpt::header::read_header_from_arbitrary_device(&mut *dev, lbs)
        .with_context(|| format!("reading the primary GPT header of {path}"))?;
    if u64::from(h.part_size) != GPT_ENTRY_BYTES || h.num_parts == 0 || h.num_parts > 4096 {
        bail!(
            "{path}: GPT entry array of {} x {} bytes is not supported",
            h.num_parts,
            h.part_size
        );
    }
    let disk = GptConfig::new()
        .writable(false)
        .only_valid_headers(true)
        .logical_block_size(lbs)
        .open_from_device(&mut *dev)
        .with_context(|| format!("reading the GPT of {path}"))?;
    let h = disk.header();
    Ok(GptSnapshot {
        disk_guid: *disk.guid(),
        first_usable_lba: h.first_usable,
        last_usable_lba: h.last_usable,
        entries: disk
            .partitions()
            .iter()
            .filter(|(_, p)| p.is_used())
            .map(|(n, p)| PartitionEntry::from_gpt(*n, p))
            .collect(),
    })
}
