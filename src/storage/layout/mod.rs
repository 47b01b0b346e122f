//! The pure layout planner: from a [`LayoutRequest`] (plain facts about the target disk and the
//! options that steer partitioning) to a [`Layout`] (every partition, every wipe, every file
//! system, as data), or a typed [`LayoutRefusal`] the plan stage can branch on.
//!
//! In the spirit of systemd-repart, the partitions are *described* here and *realised* by
//! [`crate::storage::apply_layout`], which writes exactly what the `Layout` says and nothing else.
//! Nothing in this module touches a disk.
//!
//! The numbers come from `shared/spec/layout.md` §3 (observed ESXi 7/8 installs); see
//! `docs/LAYOUT.md` for the table, its sources and the choices made where the spec says
//! UNCONFIRMED.
//!
//! The files: `request.rs` (what is asked: the disk, the options, and the typed refusals),
//! `model.rs` (the `Layout` as data and its dry-run table), `sizes.rs` (the ESXi 8 sizes and
//! offsets, and the disk's GPT geometry), `policy.rs` (what is on the disk now and whether it may
//! be touched), `system.rs` (the system disk's partitions 1, 5, 6, 7, 8 and the wipes) and
//! `datastore.rs` (a `part` datastore disk).

mod datastore;
mod model;
mod policy;
mod request;
mod sizes;
mod system;

pub use datastore::{plan_datastore_disk, plan_datastore_disk_with_ids, DatastoreRequest};
pub use model::{Action, Filesystem, Layout, PlannedPartition, Role, Wipe};
pub use request::{LayoutRefusal, LayoutRequest, MediaKind, SystemMediaSize, VmfsPolicy};
pub use sizes::{bootbank_slot_bytes, GIB, MIB, MIN_SYSTEM_DISK_BYTES, MIN_USB_SD_BYTES};
pub(crate) use sizes::{GPT_ENTRY_BYTES, GPT_ENTRY_SLOTS};
pub use system::{bank_filesystem, plan_layout, plan_layout_with_ids};
