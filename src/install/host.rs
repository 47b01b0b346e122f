//! `prepare`: everything a plan needs from the machine, read in this one place: the inventory
//! below the sysroot, the media, the `--disk` target, what each DPU runs, its bundles and ports,
//! the interpreters scripts run under, the GPT of each disk holding ESXi, and a fresh seed for
//! the identities the plan draws. `plan::make` then reads nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Failure, Options};
use crate::dpu;
use crate::exit::Outcome;
use crate::http::Http;
use crate::inventory::Inventory;
use crate::media::Media;
use crate::plan::{self, Interpreters, MediaFacts, OverrideDisk, OverrideState};
use crate::report::StepId;
use crate::source::cmdline::BootOptions;

/// The machine as read: the plan's facts, and the media whose bytes apply reads.
pub struct Prepared {
    pub host: plan::Host,
    pub media: Media,
}

/// Read the machine: the inventory below the sysroot, the media (structure and sizes checked),
/// and what each supported DPU runs, through its own interface (read-only). Shared by the
/// scripted install and the console.
pub fn prepare(
    o: &Options,
    boot: BootOptions,
    media_location: &str,
    http: &Http,
) -> Result<Prepared, Failure> {
    let inventory = Inventory::read(&o.sysroot)
        .map_err(|e| Failure::new(StepId::Inventory, Outcome::Precondition, format!("{e:#}")))?;
    let media = open_media(o, media_location, http, &inventory)?;
    let dpu_observed = inventory
        .supported_dpus()
        .map(|d| dpu::observe(d, &o.access))
        .collect();
    let disk_override = o
        .disk
        .as_ref()
        .map(|path| read_override(o, path, &inventory));
    let host = plan::Host {
        format: plan::host::HOST_FORMAT,
        sysroot: o.sysroot.clone(),
        boot,
        media: media_facts(&media, has_esx(&inventory, disk_override.as_ref())),
        bundles: bundles(o, &inventory, &media.manifest.version),
        dpu_ports: inventory
            .dpus
            .iter()
            .map(|d| {
                (
                    d.identity.address.clone(),
                    dpu::interfaces_on(d, &o.sysroot),
                )
            })
            .collect(),
        media_disk: match media.source.location() {
            crate::media::source::Location::Local(p) => disk_holding(&o.sysroot, &p),
            crate::media::source::Location::Url(_) => None,
        },
        interpreters: interpreters(),
        gpts: gpts(&o.sysroot, &inventory, disk_override.as_ref()),
        disk_override,
        firmware_root: o.firmware_root.clone(),
        dpu_observed,
        inventory,
        seed: fresh_seed(),
    };
    Ok(Prepared { host, media })
}

fn open_media(
    o: &Options,
    location: &str,
    http: &Http,
    inventory: &Inventory,
) -> Result<Media, Failure> {
    let mut media = Media::open_with(location, http)
        .map_err(|e| Failure::new(StepId::Media, Outcome::Media, format!("{e:#}")))?;
    if let Some(path) = &o.trust_cert {
        let anchor = crate::media::signature::Anchor::load(path)
            .map_err(|e| Failure::new(StepId::Media, Outcome::UsageOrIo, format!("{e:#}")))?;
        media
            .check_signatures(&anchor)
            .map_err(|e| Failure::new(StepId::Media, Outcome::Media, format!("{e:#}")))?;
    }
    // The DPU's part of the image is read only when there is a DPU to get it.
    if inventory.supported_dpus().next().is_some() {
        media
            .pin_dpu()
            .map_err(|e| Failure::new(StepId::Media, Outcome::Media, format!("{e:#}")))?;
    }
    Ok(media)
}

/// Whether any disk the plan may upgrade holds ESXi (then the media's image database is read).
fn has_esx(inventory: &Inventory, disk: Option<&OverrideDisk>) -> bool {
    match disk.map(|d| &d.state) {
        Some(OverrideState::Existing { content, .. }) => content.esx.is_some(),
        Some(_) => false,
        None => inventory.disks.iter().any(|d| d.content.esx.is_some()),
    }
}

/// The media as the plan sees them; their image database is read only when an upgrade is
/// possible (a disk holds ESXi).
pub fn media_facts(media: &Media, read_image: bool) -> MediaFacts {
    MediaFacts {
        location: media.source.describe(),
        local: media.is_local(),
        manifest: media.manifest.clone(),
        boot_cfg: media.boot_cfg.clone(),
        metadata: media.metadata.clone(),
        image: if read_image {
            media_image(media).map_err(|e| e.to_string())
        } else {
            Err("the media's image database was not read: no disk holds ESXi".into())
        },
    }
}

/// Why a fact of the machine could not be read. The host document keeps its words: the plan
/// refuses with them when it needs the fact (an upgrade's image database, the `--disk` target,
/// the GPT an upgrade keeps).
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{media}: no imgdb.tgz: an upgrade needs VMware's image database to compare with what is installed")]
    NoImgdb { media: String },
    #[error("{path}: {reason:#}")]
    Media { path: String, reason: anyhow::Error },
    #[error("{path}: {reason}")]
    Imgdb { path: String, reason: String },
    #[error("{}: {reason}", path.display())]
    Stat {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("{}: neither a block device nor a regular file", path.display())]
    NotDeviceOrFile { path: PathBuf },
    #[error("{0:#}")]
    Open(anyhow::Error),
    #[error("{name}: reading the GPT: {reason:#}")]
    Gpt { name: String, reason: anyhow::Error },
}

fn media_image(media: &Media) -> Result<crate::inventory::installed::BankImage, ReadError> {
    let path = media
        .manifest
        .components
        .iter()
        .find(|c| c.path.to_ascii_lowercase().ends_with("imgdb.tgz"))
        .map(|c| c.path.clone())
        .ok_or_else(|| ReadError::NoImgdb {
            media: media.source.describe(),
        })?;
    let bytes = crate::media::read_small(media.source.as_ref(), &path, crate::media::IMGDB_LIMIT)
        .map_err(|reason| ReadError::Media {
        path: path.clone(),
        reason,
    })?;
    crate::inventory::installed::BankImage::from_imgdb(&bytes).map_err(|e| ReadError::Imgdb {
        path,
        reason: e.to_string(),
    })
}

/// For each supported card: the firmware bundle that pairs with the media's ESXi.
fn bundles(
    o: &Options,
    inventory: &Inventory,
    esxi_version: &str,
) -> BTreeMap<String, Result<Option<dpu::bundle::Bundle>, String>> {
    let Ok(root) = &o.firmware_root else {
        return BTreeMap::new();
    };
    inventory
        .supported_dpus()
        .map(|d| {
            let found = dpu::bundle::find(root, &d.identity.catalog_id, esxi_version)
                .map_err(|e| format!("{e:#}"));
            (d.identity.catalog_id.clone(), found)
        })
        .collect()
}

/// The interpreter programs as the installer environment has them: busybox -> `/bin/sh`,
/// python -> `python3` (ESXi runs `/bin/sh -l` and `/usr/bin/python`, Python 3 on 7/8).
pub fn interpreters() -> Interpreters {
    Interpreters {
        shell: find_program(&["/bin/sh", "/usr/bin/sh"], "sh"),
        python: find_program(
            &[
                "/usr/bin/python3",
                "/usr/local/bin/python3",
                "/usr/bin/python",
            ],
            "python3",
        ),
    }
}

fn find_program(candidates: &[&str], name: &str) -> Option<PathBuf> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
}

/// The target named with `--disk`: an image still to be created (`--disk-size`), or a block
/// device or image file that is there.
fn read_override(o: &Options, path: &Path, inventory: &Inventory) -> OverrideDisk {
    let state = match o.disk_size {
        Some(size_bytes) if !path.exists() => OverrideState::New { size_bytes },
        _ => existing_override(o, path, inventory).unwrap_or_else(|why| OverrideState::Unusable {
            why: why.to_string(),
        }),
    };
    OverrideDisk {
        path: path.to_path_buf(),
        image_sector_size: o.sector_size,
        state,
    }
}

fn existing_override(
    o: &Options,
    path: &Path,
    inventory: &Inventory,
) -> Result<OverrideState, ReadError> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(path).map_err(|reason| ReadError::Stat {
        path: path.to_path_buf(),
        reason,
    })?;
    if !(meta.is_file() || meta.file_type().is_block_device()) {
        return Err(ReadError::NotDeviceOrFile {
            path: path.to_path_buf(),
        });
    }
    let known = inventory.disks.iter().find(|d| {
        let node = o.sysroot.join(d.device.trim_start_matches('/'));
        std::fs::canonicalize(&node).ok() == std::fs::canonicalize(path).ok()
    });
    let dev =
        crate::storage::BlockDev::open_read_only(path, o.sector_size).map_err(ReadError::Open)?;
    // What the disk holds was read with the inventory when it is one of the machine's disks:
    // read once, not again here.
    let content = match known {
        Some(d) => d.content.clone(),
        None => crate::inventory::content::read(path, dev.logical_sector_size()),
    };
    let node = if meta.file_type().is_block_device() {
        use std::os::unix::fs::MetadataExt;
        let rdev = meta.rdev();
        block_node(&o.sysroot, libc::major(rdev), libc::minor(rdev))
    } else {
        BlockNode::default()
    };
    Ok(OverrideState::Existing {
        known: known.map(|d| d.name.clone()),
        size_bytes: dev.size_bytes(),
        logical_sector_size: dev.logical_sector_size(),
        content: Box::new(content),
        partition_of: node.partition_of,
        on_disks: node.on_disks,
    })
}

/// What a block device node is, from the kernel's sysfs below the sysroot.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct BlockNode {
    /// A partition: its disk's kernel name.
    pub partition_of: Option<String>,
    /// The whole disks it lies on.
    pub on_disks: Vec<String>,
}

/// `sys/dev/block/MAJOR:MINOR` resolved: a partition's directory sits in its disk's and has a
/// `partition` file; a device-mapper node lists what it is built on in `slaves/`.
pub(crate) fn block_node(sysroot: &Path, major: u32, minor: u32) -> BlockNode {
    let link = sysroot.join(format!("sys/dev/block/{major}:{minor}"));
    let Ok(dir) = std::fs::canonicalize(&link) else {
        return BlockNode::default();
    };
    let mut node = BlockNode::default();
    disks_under(&dir, &mut node.on_disks, 0);
    if dir.join("partition").is_file() {
        node.partition_of = parent_name(&dir);
    }
    node.on_disks.sort();
    node.on_disks.dedup();
    node
}

fn parent_name(dir: &Path) -> Option<String> {
    dir.parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
}

/// The whole disks below a sysfs block directory (device-mapper stacks are a few levels deep;
/// the depth bound keeps a looping link from recursing for ever).
fn disks_under(dir: &Path, out: &mut Vec<String>, depth: u32) {
    if depth > 8 {
        return;
    }
    if dir.join("partition").is_file() {
        out.extend(parent_name(dir));
        return;
    }
    let slaves: Vec<PathBuf> = std::fs::read_dir(dir.join("slaves"))
        .map(|r| r.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    if slaves.is_empty() {
        out.extend(dir.file_name().map(|n| n.to_string_lossy().into_owned()));
        return;
    }
    for s in slaves {
        if let Ok(d) = std::fs::canonicalize(&s) {
            disks_under(&d, out, depth + 1);
        }
    }
}

/// The kernel name of the disk holding `path` (the installer's media), from the device number of
/// its file system and `sys/dev/block/MAJOR:MINOR` below the sysroot.
fn disk_holding(sysroot: &Path, path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let link = std::fs::read_link(sysroot.join(format!("sys/dev/block/{major}:{minor}"))).ok()?;
    let parts: Vec<String> = link
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let i = parts.iter().position(|c| c == "block")?;
    parts.get(i + 1).cloned()
}

/// The GPT of every disk that holds ESXi, the `--disk` target among them: what an upgrade keeps.
fn gpts(
    sysroot: &Path,
    inventory: &Inventory,
    disk: Option<&OverrideDisk>,
) -> BTreeMap<String, Result<crate::storage::GptSnapshot, String>> {
    let mut out = BTreeMap::new();
    for d in inventory.disks.iter().filter(|d| d.content.esx.is_some()) {
        let path = sysroot.join(d.device.trim_start_matches('/'));
        out.insert(
            d.name.clone(),
            read_gpt(&path, &d.name, d.logical_block_size).map_err(|e| e.to_string()),
        );
    }
    if let Some(OverrideDisk {
        path,
        state:
            OverrideState::Existing {
                known,
                logical_sector_size,
                content,
                partition_of: None,
                ..
            },
        ..
    }) = disk
    {
        let name = known.clone().unwrap_or_else(|| path.display().to_string());
        if content.esx.is_some() && !out.contains_key(&name) {
            let gpt = read_gpt(path, &name, *logical_sector_size).map_err(|e| e.to_string());
            out.insert(name, gpt);
        }
    }
    out
}

fn read_gpt(
    path: &Path,
    name: &str,
    sector_size: u32,
) -> Result<crate::storage::GptSnapshot, ReadError> {
    let mut dev =
        crate::storage::BlockDev::open_read_only(path, sector_size).map_err(ReadError::Open)?;
    crate::storage::read_gpt(&mut dev).map_err(|reason| ReadError::Gpt {
        name: name.to_string(),
        reason,
    })
}

/// 128 bits from the kernel's random source, hex: the seed of this run's identities.
fn fresh_seed() -> String {
    let mut raw = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut raw) {
        // getrandom only fails without any entropy source; identities then differ by time.
        log::warn!("no random seed ({e}); identities are drawn from the clock");
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        raw = t.to_le_bytes();
    }
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A sysfs shaped as the kernel's: sda with partition sda2, dm-0 built on sda2 and sdb.
    fn sysfs() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let sys = t.path().join("sys");
        let pci = sys.join("devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block");
        let sda = pci.join("sda");
        std::fs::create_dir_all(sda.join("sda2")).unwrap();
        std::fs::write(sda.join("sda2/partition"), "2\n").unwrap();
        let sdb =
            sys.join("devices/pci0000:00/0000:00:17.0/ata2/host1/target1:0:0/1:0:0:0/block/sdb");
        std::fs::create_dir_all(&sdb).unwrap();
        let dm = sys.join("devices/virtual/block/dm-0");
        std::fs::create_dir_all(dm.join("slaves")).unwrap();
        symlink(
            "../../../../pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda2",
            dm.join("slaves/sda2"),
        )
        .unwrap();
        symlink(
            "../../../../pci0000:00/0000:00:17.0/ata2/host1/target1:0:0/1:0:0:0/block/sdb",
            dm.join("slaves/sdb"),
        )
        .unwrap();
        std::fs::create_dir_all(sys.join("dev/block")).unwrap();
        let up = "../../devices/";
        symlink(
            format!("{up}pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda"),
            sys.join("dev/block/8:0"),
        )
        .unwrap();
        symlink(
            format!("{up}pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda2"),
            sys.join("dev/block/8:2"),
        )
        .unwrap();
        symlink(
            format!("{up}virtual/block/dm-0"),
            sys.join("dev/block/253:0"),
        )
        .unwrap();
        t
    }

    #[test]
    fn a_partition_and_a_device_mapper_node_name_the_disks_they_lie_on() {
        let t = sysfs();
        let on = |d: &[&str]| d.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            block_node(t.path(), 8, 0),
            BlockNode {
                partition_of: None,
                on_disks: on(&["sda"])
            }
        );
        assert_eq!(
            block_node(t.path(), 8, 2),
            BlockNode {
                partition_of: Some("sda".into()),
                on_disks: on(&["sda"])
            }
        );
        assert_eq!(
            block_node(t.path(), 253, 0),
            BlockNode {
                partition_of: None,
                on_disks: on(&["sda", "sdb"])
            }
        );
        assert_eq!(block_node(t.path(), 7, 0), BlockNode::default());
    }
}
