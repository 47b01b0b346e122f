//! Block devices under `sys/block`, named the way ESXi names them.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::content::{self, DiskContent};
use crate::sysroot::Sysroot;

/// How the disk is attached, from the sysfs device path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    Nvme,
    Sata,
    Sas,
    /// SCSI behind a RAID or other host adapter that shows no finer transport.
    Scsi,
    Usb,
    Virtio,
    /// SD/eMMC on an MMC host.
    Mmc,
    FibreChannel,
    Iscsi,
    Unknown,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Nvme => "nvme",
            Transport::Sata => "sata",
            Transport::Sas => "sas",
            Transport::Scsi => "scsi",
            Transport::Usb => "usb",
            Transport::Virtio => "virtio",
            Transport::Mmc => "mmc",
            Transport::FibreChannel => "fc",
            Transport::Iscsi => "iscsi",
            Transport::Unknown => "unknown",
        }
    }

    /// Storage reached over a network (ESXi's "remote").
    pub(crate) fn is_remote(self) -> bool {
        matches!(self, Transport::FibreChannel | Transport::Iscsi)
    }
}

/// One disk as the installer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// Canonical ESXi-style name: `naa.…`, `eui.…`, `t10.…`, else `mpx.vmhbaN:C0:T0:L0`.
    pub name: String,
    /// Every name `--disk`/`--ondisk` accepts for this disk (see [`Disk::aliases`]).
    pub aliases: Vec<String>,
    /// Kernel name, e.g. `sda`, `nvme0n1`.
    pub kernel_name: String,
    /// The device node below the sysroot, e.g. `/dev/sda`.
    pub device: String,
    pub size_bytes: u64,
    pub logical_block_size: u32,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    /// Linux driver of the controller (`ahci`, `nvme`, `megaraid_sas`, `usb-storage`, ...).
    pub driver: Option<String>,
    /// The ESXi driver that plays the same part (`vmw_ahci`, `nvme_pcie`, ...), UNCONFIRMED map.
    pub esxi_driver: Option<String>,
    /// PCI address of the storage controller, when there is one.
    pub controller: Option<String>,
    pub transport: Transport,
    /// Local (not remote, not USB): ESXi's `local` filter.
    pub local: bool,
    pub remote: bool,
    pub usb: bool,
    /// Non-rotational (`queue/rotational` = 0).
    pub ssd: bool,
    pub removable: bool,
    pub content: DiskContent,
    /// Sysfs directory of the block device, relative to the sysroot (for ordering and messages).
    #[serde(skip)]
    pub sysfs_path: PathBuf,
}

impl Disk {
    /// USB and SD media need 8 GB, other boot disks 32 GB (layout.md §3, "Minimum boot disk"),
    /// in GiB like the storage planner (see `partition::MIN_SYSTEM_DISK_BYTES`).
    pub fn minimum_size(&self) -> u64 {
        if self.is_usb_or_sd() {
            crate::partition::MIN_USB_SD_BYTES
        } else {
            crate::partition::MIN_SYSTEM_DISK_BYTES
        }
    }

    /// USB sticks and SD/eMMC cards: boot media that hold only the boot banks.
    pub(crate) fn is_usb_or_sd(&self) -> bool {
        self.usb || self.transport == Transport::Mmc
    }

    pub fn is_large_enough(&self) -> bool {
        self.size_bytes >= self.minimum_size()
    }

    pub fn has_esx(&self) -> bool {
        self.content.esx.is_some()
    }

    /// `vendor model` for messages.
    pub fn description(&self) -> String {
        let parts: Vec<&str> = [self.vendor.as_deref(), self.model.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        if parts.is_empty() {
            "unknown model".to_string()
        } else {
            parts.join(" ")
        }
    }

    /// One line naming the disk for a person: used in errors that list the disks.
    pub fn summary(&self) -> String {
        format!(
            "{} ({}, {}, {}, {})",
            self.name,
            self.kernel_name,
            crate::size::human(self.size_bytes),
            self.transport.as_str(),
            self.description()
        )
    }
}

impl Disk {
    /// The byte ranges that may hold a FAT file system: each partition, then the whole disk
    /// (sticks formatted without a partition table). The table is the stick's, so not trusted:
    /// a region whose bounds overflow is skipped.
    pub(crate) fn fat_regions(&self) -> Vec<(String, u64, u64)> {
        let ss = u64::from(self.logical_block_size.max(512));
        let mut out = Vec::new();
        for p in &self.content.partitions {
            let bounds = p
                .first_lba
                .checked_mul(ss)
                .zip(p.last_lba.checked_add(1).and_then(|l| l.checked_mul(ss)));
            if let Some((start, end)) = bounds {
                out.push((format!("partition {}", p.number), start, end));
            }
        }
        for p in &self.content.mbr_partitions {
            let start = u64::from(p.first_lba) * ss;
            let end = start + u64::from(p.sectors) * ss;
            if p.sectors > 0 {
                out.push((format!("partition {}", p.number), start, end));
            }
        }
        out.push(("whole disk".to_string(), 0, self.size_bytes));
        out
    }
}

/// Linux controller driver -> ESXi driver doing the same job. UNCONFIRMED beyond the names seen in
/// the ESXi 8 boot module list (layout.md §4); lets `--firstdisk=vmw_ahci` work on Linux.
const ESXI_DRIVERS: &[(&str, &str)] = &[
    ("ahci", "vmw_ahci"),
    ("nvme", "nvme_pcie"),
    ("megaraid_sas", "lsi_mr3"),
    ("mpt3sas", "lsi_msgp"),
    ("smartpqi", "smartpqi"),
    ("hpsa", "nhpsa"),
    ("usb-storage", "vmkusb"),
    ("uas", "vmkusb"),
    ("vmw_pvscsi", "pvscsi"),
    ("ata_piix", "vmkata"),
    ("sdhci-pci", "vmksdhci"),
    ("qla2xxx", "qlnativefc"),
    ("lpfc", "lpfc"),
];

pub(crate) fn esxi_driver_for(linux: &str) -> Option<&'static str> {
    ESXI_DRIVERS
        .iter()
        .find(|(l, _)| *l == linux)
        .map(|(_, e)| *e)
}

/// What sysfs says about one block device, before naming.
struct Probed {
    kernel_name: String,
    real: PathBuf,
    size_bytes: u64,
    logical_block_size: u32,
    vendor: Option<String>,
    model: Option<String>,
    serial: Option<String>,
    driver: Option<String>,
    controller: Option<String>,
    transport: Transport,
    ssd: bool,
    removable: bool,
    /// UIDs from the device (naa/eui/t10 in ESXi spelling), best first.
    uids: Vec<String>,
    /// Channel, target, LUN for the path name.
    address: (u32, u32, u32),
    /// What identifies the host adapter, for vmhba numbering.
    adapter: String,
}

/// Reads every disk under `sys/block`, in a stable order (by device topology).
pub(crate) fn read_disks(sys: &Sysroot) -> anyhow::Result<Vec<Disk>> {
    read_disks_impl(sys, true)
}

/// The same without opening any device (what `probe --record` needs).
pub(crate) fn read_disks_without_content(sys: &Sysroot) -> anyhow::Result<Vec<Disk>> {
    read_disks_impl(sys, false)
}

fn read_disks_impl(sys: &Sysroot, read_content: bool) -> anyhow::Result<Vec<Disk>> {
    let mut probed = Vec::new();
    for name in sys.list(Path::new("sys/block"))? {
        match probe_one(sys, &name) {
            Ok(Some(p)) => probed.push(p),
            Ok(None) => {}
            Err(e) => log::warn!("skipping block device {name}: {e:#}"),
        }
    }
    probed.sort_by(|a, b| topology_cmp(&a.real, &b.real));

    // vmhba numbers: adapters in topology order; USB adapters from 32 as on ESXi (UNCONFIRMED).
    let mut adapters: BTreeMap<String, u32> = BTreeMap::new();
    let (mut next_local, mut next_usb) = (0u32, 32u32);
    for p in &probed {
        if !adapters.contains_key(&p.adapter) {
            let n = if p.transport == Transport::Usb {
                next_usb += 1;
                next_usb - 1
            } else {
                next_local += 1;
                next_local - 1
            };
            adapters.insert(p.adapter.clone(), n);
        }
    }

    let mut disks = Vec::new();
    for p in probed {
        let (c, t, l) = p.address;
        let vmhba = adapters.get(&p.adapter).copied().unwrap_or(0);
        let path_name = format!("mpx.vmhba{vmhba}:C{c}:T{t}:L{l}");
        let name = p.uids.first().cloned().unwrap_or_else(|| path_name.clone());
        let mut ids: Vec<String> = p.uids.clone();
        if ids.is_empty() {
            ids.push(path_name);
        }
        let mut aliases = Vec::new();
        for id in &ids {
            aliases.push(id.clone());
            aliases.push(format!("/vmfs/devices/disks/{id}"));
            aliases.push(format!("/dev/disks/{id}"));
            aliases.push(format!("disks/{id}"));
        }
        // Our own extension: the Linux names, for people at a Linux console.
        aliases.push(p.kernel_name.clone());
        aliases.push(format!("/dev/{}", p.kernel_name));
        let device_rel = Path::new("dev").join(&p.kernel_name);
        let content = if read_content {
            content::read(&sys.host_path(&device_rel), p.logical_block_size)
        } else {
            content::not_read()
        };
        let usb = p.transport == Transport::Usb;
        let remote = p.transport.is_remote();
        disks.push(Disk {
            name,
            aliases,
            device: format!("/dev/{}", p.kernel_name),
            esxi_driver: p
                .driver
                .as_deref()
                .and_then(esxi_driver_for)
                .map(String::from),
            local: !remote && !usb,
            remote,
            usb,
            kernel_name: p.kernel_name,
            size_bytes: p.size_bytes,
            logical_block_size: p.logical_block_size,
            vendor: p.vendor,
            model: p.model,
            serial: p.serial,
            driver: p.driver,
            controller: p.controller,
            transport: p.transport,
            ssd: p.ssd,
            removable: p.removable,
            content,
            sysfs_path: p.real,
        });
    }
    Ok(disks)
}

fn probe_one(sys: &Sysroot, name: &str) -> anyhow::Result<Option<Probed>> {
    let real = sys.resolve(&Path::new("sys/block").join(name))?;
    let components: Vec<String> = real
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    // loop, zram, dm, md, nbd: software devices the installer must never offer.
    if components.iter().any(|c| c == "virtual") {
        log::debug!("{name}: virtual block device, not a disk");
        return Ok(None);
    }
    if sys.attr_or_warn(&real.join("hidden")).as_deref() == Some("1") {
        return Ok(None);
    }
    let dev_link = real.join("device");
    let device = sys.resolve(&dev_link).ok();
    // eMMC boot partitions are block devices of their own, but parts of the eMMC disk.
    if name.starts_with("mmcblk") && name.contains("boot") {
        return Ok(None);
    }
    let is_scsi = |dev: &Path| {
        dev.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.split(':').filter(|p| p.parse::<u32>().is_ok()).count() == 4)
    };
    if let Some(dev) = device.as_deref().filter(|d| is_scsi(d)) {
        // SCSI peripheral type: 0 disk, 14 simplified disk (card readers); 5 is a CD/DVD drive.
        if let Some(t) = sys.attr_or_warn(&dev.join("type")) {
            if t != "0" && t != "14" {
                log::debug!("{name}: SCSI type {t}, not a disk");
                return Ok(None);
            }
        }
    }
    let Some(sectors) = sys.u64_attr(&real.join("size")) else {
        anyhow::bail!("size unreadable");
    };
    let logical_block_size = sys
        .u64_attr(&real.join("queue/logical_block_size"))
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or_else(|| {
            log::warn!("{name}: logical block size unknown, assuming 512");
            512
        });
    let transport = transport_of(&components, name);
    let ssd = sys.attr_or_warn(&real.join("queue/rotational")).as_deref() == Some("0");
    let removable = sys.attr_or_warn(&real.join("removable")).as_deref() == Some("1");

    let dev_attr = |file: &str| device_attr(sys, device.as_deref(), file);
    let (vendor, model, serial) = identity(sys, &real, transport, device.as_deref());
    let (driver, controller) = controller_of(sys, device.as_deref());

    let wwid = sys
        .attr_or_warn(&real.join("wwid"))
        .or_else(|| dev_attr("wwid"));
    let mut uids = unique_ids(sys, &real, transport, wwid.as_deref(), &model, &serial);
    let (address, adapter) = scsi_address(&components, &real, transport, sys);
    if let Some(vml) = vml_name(&uids, transport, model.as_deref(), address) {
        uids.push(vml);
    }
    Ok(Some(Probed {
        kernel_name: name.to_string(),
        size_bytes: sectors.saturating_mul(512),
        logical_block_size,
        vendor,
        model,
        serial,
        driver,
        controller,
        transport,
        ssd,
        removable,
        uids,
        address,
        adapter,
        real,
    }))
}

/// An attribute of the disk's device directory, when it has one.
fn device_attr(sys: &Sysroot, device: Option<&Path>, file: &str) -> Option<String> {
    device.and_then(|d| sys.attr_or_warn(&d.join(file)))
}

/// Vendor, model and serial number, from where each transport keeps them.
fn identity(
    sys: &Sysroot,
    real: &Path,
    transport: Transport,
    device: Option<&Path>,
) -> (Option<String>, Option<String>, Option<String>) {
    let dev_attr = |file: &str| device_attr(sys, device, file);
    match transport {
        // ESXi shows "NVMe" as the vendor of every NVMe disk (UNCONFIRMED).
        Transport::Nvme => (
            Some("NVMe".to_string()),
            dev_attr("model"),
            dev_attr("serial"),
        ),
        Transport::Mmc => (None, dev_attr("name"), dev_attr("serial")),
        Transport::Virtio => (None, None, sys.attr_or_warn(&real.join("serial"))),
        _ => (dev_attr("vendor"), dev_attr("model"), dev_attr("serial")),
    }
}

/// The ESXi UIDs from the WWID; for NVMe without one, from the NGUID/EUI, or else the t10
/// name made of model and serial.
fn unique_ids(
    sys: &Sysroot,
    real: &Path,
    transport: Transport,
    wwid: Option<&str>,
    model: &Option<String>,
    serial: &Option<String>,
) -> Vec<String> {
    let mut uids = Vec::new();
    if let Some(w) = wwid {
        uids.extend(esxi_uid_from_wwid(w));
    }
    if transport == Transport::Nvme && uids.is_empty() {
        for file in ["nguid", "eui"] {
            if let Some(hex) = sys
                .attr_or_warn(&real.join(file))
                .and_then(|v| nonzero_hex(&v))
            {
                uids.push(format!("eui.{hex}"));
                break;
            }
        }
        if uids.is_empty() {
            if let (Some(m), Some(s)) = (model, serial) {
                uids.push(format!(
                    "t10.NVMe____{}____{}",
                    underscores(m),
                    underscores(s)
                ));
            }
        }
    }
    uids
}

/// vml names only for NAA disks behind SCSI, from ESXi's observed pattern (UNCONFIRMED).
fn vml_name(
    uids: &[String],
    transport: Transport,
    model: Option<&str>,
    address: (u32, u32, u32),
) -> Option<String> {
    let naa = uids.first().and_then(|u| u.strip_prefix("naa."))?;
    if transport == Transport::Nvme {
        return None;
    }
    let model_hex: String = format!("{:<6}", model.unwrap_or(""))
        .bytes()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(format!(
        "vml.0200{:02x}0000{naa}{model_hex}",
        address.2 & 0xff
    ))
}

fn transport_of(components: &[String], name: &str) -> Transport {
    let has = |p: &dyn Fn(&str) -> bool| components.iter().any(|c| p(c));
    let numbered = |c: &str, prefix: &str| {
        c.strip_prefix(prefix)
            .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
    };
    if has(&|c| numbered(c, "usb")) {
        Transport::Usb
    } else if has(&|c| c == "nvme") || name.starts_with("nvme") {
        Transport::Nvme
    } else if has(&|c| c.starts_with("virtio")) {
        Transport::Virtio
    } else if has(&|c| c.starts_with("rport-")) {
        Transport::FibreChannel
    } else if has(&|c| numbered(c, "session")) {
        Transport::Iscsi
    } else if has(&|c| numbered(c, "ata")) {
        Transport::Sata
    } else if has(&|c| c.starts_with("end_device-") || c.starts_with("expander-")) {
        Transport::Sas
    } else if has(&|c| c == "mmc_host") || name.starts_with("mmcblk") {
        Transport::Mmc
    } else if has(&|c| numbered(c, "host")) {
        Transport::Scsi
    } else {
        Transport::Unknown
    }
}

/// The controller driver: the first `driver` link above the disk that is not the disk driver
/// itself (`sd` on bus `scsi`, `mmcblk` on bus `mmc`). For USB that is `usb-storage`/`uas` on
/// the interface.
fn controller_of(sys: &Sysroot, device: Option<&Path>) -> (Option<String>, Option<String>) {
    let Some(mut dir) = device else {
        return (None, None);
    };
    let mut driver = None;
    let mut controller = None;
    loop {
        if let Some(name) = dir.file_name().and_then(|n| n.to_str()) {
            if controller.is_none() && super::pci::is_pci_address(name) {
                controller = Some(name.to_string());
            }
        }
        if driver.is_none() {
            let link = dir.join("driver");
            if let Some(d) = sys.link_name(&link) {
                let bus = std::fs::read_link(sys.host_path(&link)).ok().and_then(|t| {
                    let parts: Vec<String> = t
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    parts
                        .iter()
                        .position(|p| p == "bus")
                        .and_then(|i| parts.get(i + 1).cloned())
                });
                // `sd` and `mmcblk` drive the disk itself, not the controller.
                if !matches!(bus.as_deref(), Some("scsi") | Some("mmc")) {
                    driver = Some(d);
                }
            }
        }
        if driver.is_some() && controller.is_some() {
            break;
        }
        match dir.parent() {
            Some(p) if p.components().count() > 2 => dir = p,
            _ => break,
        }
    }
    (driver, controller)
}

/// Channel/target/LUN and an adapter key, for the `mpx.vmhbaN:Cc:Tt:Ll` path name.
fn scsi_address(
    components: &[String],
    real: &Path,
    transport: Transport,
    sys: &Sysroot,
) -> ((u32, u32, u32), String) {
    // The SCSI device directory is named host:channel:target:lun.
    for (i, c) in components.iter().enumerate() {
        let parts: Vec<&str> = c.split(':').collect();
        if parts.len() == 4 && parts.iter().all(|p| p.parse::<u32>().is_ok()) {
            let n: Vec<u32> = parts.iter().filter_map(|p| p.parse().ok()).collect();
            // The adapter is the SCSI host (`hostN`), whatever targets hang below it.
            let host_end = components[..i]
                .iter()
                .rposition(|c| {
                    c.strip_prefix("host")
                        .is_some_and(|r| r.parse::<u32>().is_ok())
                })
                .map_or(i, |h| h + 1);
            let adapter = components[..host_end].join("/");
            if let [_, ch, t, l] = n[..] {
                return ((ch, t, l), adapter);
            }
        }
    }
    let adapter = match transport {
        // Namespaces of one controller share an adapter: key on the controller directory.
        Transport::Nvme => {
            let upto = components
                .iter()
                .position(|c| c == "nvme")
                .unwrap_or(components.len());
            components[..upto].join("/")
        }
        _ => real
            .parent()
            .and_then(Path::parent)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let lun = if transport == Transport::Nvme {
        sys.u64_attr(&real.join("nsid"))
            .and_then(|n| u32::try_from(n.saturating_sub(1)).ok())
            .unwrap_or(0)
    } else {
        0
    };
    ((0, 0, lun), adapter)
}

/// The ESXi UID for a Linux `wwid`: `naa.`/`eui.` as they are (lower case), `t10.` with spaces
/// as underscores (UNCONFIRMED). NVMe's `nvme.` fallback form has no ESXi counterpart.
pub(crate) fn esxi_uid_from_wwid(wwid: &str) -> Option<String> {
    let wwid = wwid.trim_end_matches('\0').trim();
    let (prefix, rest) = wwid.split_once('.')?;
    match prefix {
        "naa" | "eui" => {
            let hex: String = rest.chars().filter(|c| *c != '-').collect();
            (!hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| format!("{prefix}.{}", hex.to_ascii_lowercase()))
        }
        "t10" if !rest.trim().is_empty() => Some(format!("t10.{}", underscores(rest))),
        _ => None,
    }
}

fn underscores(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect()
}

/// Hex digits of an `eui`/`nguid` attribute (`00-25-38-…` or UUID form), unless all zero.
fn nonzero_hex(v: &str) -> Option<String> {
    let hex: String = v
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect::<String>()
        .to_ascii_lowercase();
    (!hex.is_empty() && hex.chars().any(|c| c != '0')).then_some(hex)
}

/// Orders sysfs paths by topology: PCI addresses as text (fixed-width hex), everything else with
/// numbers compared as numbers (`host2` before `host10`, `sdb` before `sdaa`).
pub(crate) fn topology_cmp(a: &Path, b: &Path) -> Ordering {
    let ca: Vec<String> = a.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    let cb: Vec<String> = b.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    for (x, y) in ca.iter().zip(cb.iter()) {
        let o = if super::pci::is_pci_address(x) && super::pci::is_pci_address(y) {
            x.cmp(y)
        } else {
            natural_cmp(x, y)
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ca.len().cmp(&cb.len())
}

fn natural_cmp(a: &str, b: &str) -> Ordering {
    let chunks = |s: &str| -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, text)) if *d == digit => text.push(c),
                _ => out.push((digit, c.to_string())),
            }
        }
        out
    };
    let (xa, xb) = (chunks(a), chunks(b));
    for ((da, ta), (db, tb)) in xa.iter().zip(xb.iter()) {
        let o = if *da && *db {
            let (na, nb) = (ta.trim_start_matches('0'), tb.trim_start_matches('0'));
            na.len().cmp(&nb.len()).then_with(|| na.cmp(nb))
        } else {
            ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    xa.len().cmp(&xb.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_order_counts_numbers_and_keeps_pci_addresses_as_text() {
        let mut paths: Vec<PathBuf> = [
            "sys/devices/pci0000:00/0000:00:1f.2/ata1/host10/target10:0:0/10:0:0:0/block/sdaa",
            "sys/devices/pci0000:00/0000:00:02.0/ata1/host2/target2:0:0/2:0:0:0/block/sdz",
            "sys/devices/pci0000:00/0000:00:1f.2/ata1/host2/target2:0:0/2:0:0:0/block/sdb",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        paths.sort_by(|a, b| topology_cmp(a, b));
        let names: Vec<_> = paths.iter().filter_map(|p| p.file_name()).collect();
        assert_eq!(names, ["sdz", "sdb", "sdaa"]);
        assert_eq!(natural_cmp("sdz", "sdaa"), Ordering::Less);
        assert_eq!(natural_cmp("host2", "host10"), Ordering::Less);
    }

    #[test]
    fn wwids_become_esxi_uids() {
        assert_eq!(
            esxi_uid_from_wwid("naa.5000C500A1B2C3D4").as_deref(),
            Some("naa.5000c500a1b2c3d4")
        );
        assert_eq!(
            esxi_uid_from_wwid("t10.ATA     ST3120814A        5LS3DQ1L").as_deref(),
            Some("t10.ATA_____ST3120814A________5LS3DQ1L")
        );
        // The kernel's NVMe fallback form has no ESXi counterpart.
        assert_eq!(esxi_uid_from_wwid("nvme.8086-5048-494e-00000001"), None);
        assert_eq!(esxi_uid_from_wwid("naa.not-hex"), None);
    }
}
