//! Everything the plan knows about the machine, as data: read once by `install::prepare` (or
//! loaded from a host document that `probe --host` wrote, on any machine). `plan::make` reads
//! nothing else: no file, no device, no environment variable, so the same `Host`, kickstart and
//! options always give the same plan.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dpu;
use crate::inventory::{DiskContent, Inventory};
use crate::kickstart::Interpreter;
use crate::media::{BootCfg, Manifest, Metadata};
use crate::source::cmdline::BootOptions;
use crate::storage::GptSnapshot;

/// The host document's format version: a document of another version is refused, not guessed.
pub const HOST_FORMAT: u32 = 1;

/// The machine, read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    /// [`HOST_FORMAT`].
    pub format: u32,
    /// The directory device nodes are named below: `/` on a real run, a fixture or a recorded
    /// directory otherwise. Only joined to names, never read by the plan.
    pub sysroot: PathBuf,
    pub boot: BootOptions,
    pub inventory: Inventory,
    pub media: MediaFacts,
    /// The DPU firmware bundles: the directory, or why none was found.
    pub firmware_root: Result<PathBuf, String>,
    /// For each supported card's catalog id: the bundle that pairs with the media's ESXi
    /// (`dpu::bundle::find`), none, or why the directory could not be read.
    pub bundles: BTreeMap<String, Result<Option<dpu::bundle::Bundle>, String>>,
    /// What each supported DPU runs, read through its interface (`dpu::observe`).
    pub dpu_observed: Vec<dpu::Observed>,
    /// For each card address: the host's network interfaces that are functions of the card.
    pub dpu_ports: BTreeMap<String, Vec<String>>,
    /// The kernel name of the disk holding the installer's local media, when there is one.
    pub media_disk: Option<String>,
    /// The programs `%pre`/`%post` scripts run under here (`/bin/sh`, `python3`).
    pub interpreters: Interpreters,
    /// `--disk`: what the named device or image file is, read once.
    pub disk_override: Option<OverrideDisk>,
    /// The GPT of every disk that holds ESXi (an upgrade keeps it), by disk name.
    pub gpts: BTreeMap<String, Result<GptSnapshot, String>>,
    /// Where the identities of what the plan creates come from (`plan::ids`): drawn fresh for
    /// each run, kept in a recorded host so that its plan can be made again byte for byte.
    pub seed: String,
}

/// Why a host document cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HostDocError {
    #[error("not a host document: {0}")]
    Json(#[from] serde_json::Error),
    #[error("host document format {found}, this ksinstall reads format {HOST_FORMAT}")]
    Format { found: u32 },
}

impl Host {
    /// A host document (`install --save-host`) read back; its format version must be ours.
    pub fn from_json(text: &str) -> Result<Host, HostDocError> {
        let host: Host = serde_json::from_str(text)?;
        if host.format != HOST_FORMAT {
            return Err(HostDocError::Format { found: host.format });
        }
        Ok(host)
    }
}

/// The media as the plan needs them: what they carry and how that was vouched for. The bytes
/// stay with `media::Media`, which apply reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MediaFacts {
    /// The media in words (`/mnt/cdrom`, `https://…`).
    pub location: String,
    /// Whether the bytes are local (read twice cheaply, hashed before the first write).
    pub local: bool,
    pub manifest: Manifest,
    pub boot_cfg: BootCfg,
    pub metadata: Metadata,
    /// The media's image database (`imgdb.tgz`) parsed, which an upgrade compares with what is
    /// installed; or why it could not be read.
    pub image: Result<crate::inventory::installed::BankImage, String>,
}

impl MediaFacts {
    pub fn describe(&self) -> &str {
        &self.location
    }

    pub fn is_local(&self) -> bool {
        self.local
    }

    pub fn bank_components(&self) -> Vec<&crate::media::Component> {
        crate::media::bank_components(&self.manifest, &self.boot_cfg, &self.metadata)
    }
}

/// The interpreter programs found on this machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interpreters {
    pub shell: Option<PathBuf>,
    pub python: Option<PathBuf>,
}

impl Interpreters {
    pub fn program(&self, i: Interpreter) -> Option<&Path> {
        match i {
            Interpreter::Busybox => self.shell.as_deref(),
            Interpreter::Python => self.python.as_deref(),
        }
    }
}

/// The target named with `--disk`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OverrideDisk {
    pub path: PathBuf,
    /// A sector size for an image file (512 or 4096).
    pub image_sector_size: u32,
    pub state: OverrideState,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "is")]
pub enum OverrideState {
    /// An image file the install creates (`--disk-size`): planned at that size, so that a dry
    /// run shows what the real run will do.
    New { size_bytes: u64 },
    /// A block device or image file that is there.
    Existing {
        /// The inventory's name for it when it is one of the machine's disks.
        known: Option<String>,
        size_bytes: u64,
        logical_sector_size: u32,
        content: Box<DiskContent>,
        /// A block device that is a partition: the kernel name of its disk.
        #[serde(default)]
        partition_of: Option<String>,
        /// The whole disks (kernel names) the node lies on: itself, the disk of a partition,
        /// the disks under a device-mapper node.
        #[serde(default)]
        on_disks: Vec<String>,
    },
    /// It cannot be installed to: the reason, with its name.
    Unusable { why: String },
}
