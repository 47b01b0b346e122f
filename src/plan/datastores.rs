//! `part <name> --ondisk=<disk>`: a VMFS datastore on a disk other than the install disk. The
//! disk gets a GPT with one VMFS partition at install time (wiped, not formatted: only ESXi can
//! create VMFS6), and our first-boot step formats it with `vmkfstools -C vmfs6 -S <name>`
//! (docs/FIRSTBOOT.md, docs/LAYOUT.md).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{refuse, Inputs, PlanError, Target};
use crate::exit::Outcome;
use crate::kickstart::DiskTarget;
use crate::storage::{self, DatastoreRequest, Layout};

/// A disk that carries a `part` datastore.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatastoreDisk {
    /// The device node or image file written.
    pub path: PathBuf,
    pub name: String,
    pub datastore: String,
    pub layout: Layout,
}

/// Each `part` line's disk, laid out; refusals keep their classes: the install disk or the boot
/// media named, a disk holding partitions no `clearpart` clears, a bad name: all exit 3.
pub(super) fn plan(
    i: &Inputs<'_>,
    target: &Target,
    facts: &[storage::safety::DiskFacts],
    cleared: &[String],
) -> Result<Vec<DatastoreDisk>, PlanError> {
    let mut out: Vec<DatastoreDisk> = Vec::new();
    for p in &i.kickstart.parts {
        let disk = match &p.target {
            DiskTarget::Disk(name) => i.host.inventory.resolve_disk(name),
            DiskTarget::FirstDisk(filters) => i
                .host
                .inventory
                .first_disk_choice(filters, false, false)
                .map(|c| c.disk),
        }
        .map_err(|e| refuse(Outcome::Precondition, format!("{}: part: {e}", p.span)))?;
        if let Some(f) = facts.iter().find(|f| f.id == disk.name) {
            storage::safety::check_part_target(f, &target.name)
                .map_err(|e| refuse(e.outcome(), format!("{}: {e}", p.span)))?;
        }
        if out.iter().any(|d| d.name == disk.name) {
            return Err(refuse(
                Outcome::Precondition,
                format!(
                    "{}: part: {} already carries a datastore of this kickstart",
                    p.span, disk.name
                ),
            ));
        }
        let existing = match &disk.content.table {
            crate::inventory::PartitionTable::Gpt => disk.content.partitions.clone(),
            _ => Vec::new(),
        };
        let holds_something = !existing.is_empty() || super::may_hide_vmfs(&disk.content).is_some();
        let req = DatastoreRequest {
            disk_id: disk.name.clone(),
            disk_bytes: disk.size_bytes,
            logical_sector_size: disk.logical_block_size,
            name: p.datastore.clone(),
            existing,
            cleared: cleared.contains(&disk.name),
        };
        if holds_something && !req.cleared {
            return Err(refuse(
                Outcome::Precondition,
                format!(
                    "{}: part {}: {} holds {}; name it in a clearpart line to overwrite it",
                    p.span,
                    p.datastore,
                    disk.name,
                    disk.content.summary()
                ),
            ));
        }
        let layout = storage::layout::plan_datastore_disk_with_ids(&req, &mut || i.ids.next())
            .map_err(|e| refuse(e.outcome(), format!("{}: {e}", p.span)))?;
        out.push(DatastoreDisk {
            path: i.host.sysroot.join(disk.device.trim_start_matches('/')),
            name: disk.name.clone(),
            datastore: p.datastore.clone(),
            layout,
        });
    }
    Ok(out)
}
