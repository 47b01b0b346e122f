//! The inventory stage over kernel-shaped sysroot fixtures (tests/fixtures, made by make.sh).
//! Disk images that would be too large to commit are built here, as sparse files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use gpt::disk::LogicalBlockSize;
use gpt::partition_types::{OperatingSystem, Type};
use ksinstall::inventory::{
    Catalog, DiskLookupError, DpuFinding, Inventory, PartitionTable, Role, Transport,
};
use ksinstall::partition::types;
use sha2::{Digest, Sha256};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn read(name: &str) -> Inventory {
    match Inventory::read(&fixture(name)) {
        Ok(inv) => inv,
        Err(e) => panic!("reading fixture {name}: {e:#}"),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Copies a fixture, keeping its symlinks as they are, so a test can change it.
fn copy_fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dst = tmp.path().join(name);
    copy_tree(&fixture(name), &dst);
    (tmp, dst)
}

fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).expect("create dir");
    for entry in fs::read_dir(src).expect("read dir") {
        let entry = entry.expect("dir entry");
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let kind = entry.file_type().expect("file type");
        if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from).expect("link"), &to).expect("symlink");
        } else if kind.is_dir() {
            copy_tree(&from, &to);
        } else {
            fs::copy(&from, &to).expect("copy");
        }
    }
}

fn disk<'a>(inv: &'a Inventory, kernel_name: &str) -> &'a ksinstall::inventory::Disk {
    inv.disks
        .iter()
        .find(|d| d.kernel_name == kernel_name)
        .unwrap_or_else(|| panic!("no disk {kernel_name}"))
}

fn first(inv: &Inventory, filters: &[&str], ignore_ssd: bool, esx_only: bool) -> Option<String> {
    inv.first_disk(&strings(filters), ignore_ssd, esx_only)
        .map(|d| d.kernel_name.clone())
}

// ---------------------------------------------------------------------------------------
// DPUs

#[test]
fn bluefield2_is_one_card_in_slot_2_managed_through_rshim() {
    let inv = read("bluefield2");
    assert_eq!(inv.dpus.len(), 1);
    let d = &inv.dpus[0];
    assert_eq!(
        (d.identity.vendor.as_str(), d.identity.model.as_str()),
        ("NVIDIA", "BlueField-2")
    );
    assert!(d.identity.supported);
    assert_eq!(d.identity.slot.as_deref(), Some("2"));
    assert_eq!(d.identity.address, "0000:3b:00");
    let roles: Vec<(&str, Role)> = d
        .functions
        .iter()
        .map(|f| (f.address.as_str(), f.role))
        .collect();
    // The SR-IOV VF 0000:3b:00.3 is not part of the card's identity.
    assert_eq!(
        roles,
        vec![
            ("0000:3b:00.0", Role::NicPf),
            ("0000:3b:00.1", Role::NicPf),
            ("0000:3b:00.2", Role::Rshim)
        ]
    );
    assert_eq!(d.management.as_deref(), Some("0000:3b:00.2"));
    assert!(inv.findings.is_empty());
    assert!(inv.dpu_findings(&strings(&["2"])).is_empty());
}

#[test]
fn bluefield3_is_found_in_slot_4() {
    let inv = read("bluefield3");
    assert_eq!(inv.dpus.len(), 1);
    let d = &inv.dpus[0];
    assert_eq!(d.identity.model, "BlueField-3");
    assert!(d.identity.supported);
    assert_eq!(d.identity.slot.as_deref(), Some("4"));
    assert_eq!(d.management.as_deref(), Some("0000:ca:00.2"));
    assert_eq!(d.management_role, Some(Role::Rshim));
    assert!(inv.dpu_findings(&strings(&["4"])).is_empty());
}

#[test]
fn pensando_dsc2_200_is_grouped_by_its_own_switch() {
    let inv = read("pensando-dsc2-200");
    assert_eq!(inv.dpus.len(), 1);
    let d = &inv.dpus[0];
    assert_eq!(
        (d.identity.vendor.as_str(), d.identity.model.as_str()),
        ("AMD Pensando", "DSC2-200")
    );
    assert!(d.identity.supported);
    // The card root is the Elba upstream port, not the AMD root port above it.
    assert_eq!(d.identity.address, "0000:41:00");
    assert_eq!(d.identity.slot.as_deref(), Some("3"));
    let addresses: Vec<&str> = d.functions.iter().map(|f| f.address.as_str()).collect();
    assert_eq!(
        addresses,
        vec![
            "0000:41:00.0",
            "0000:42:00.0",
            "0000:42:01.0",
            "0000:42:02.0",
            "0000:43:00.0",
            "0000:44:00.0",
            "0000:45:00.0"
        ]
    );
    let count = |r: Role| d.functions.iter().filter(|f| f.role == r).count();
    assert_eq!(count(Role::UpstreamPort), 1);
    assert_eq!(count(Role::DownstreamPort), 3);
    assert_eq!(count(Role::EthPf), 2);
    // pds_core is preferred over ionic for devlink flashing.
    assert_eq!(d.management.as_deref(), Some("0000:45:00.0"));
    assert_eq!(d.management_role, Some(Role::CorePf));
    assert!(inv.findings.is_empty());
}

#[test]
fn two_dpus_are_a_finding_naming_both_slots_and_addresses() {
    let inv = read("two-dpus");
    let models: Vec<&str> = inv.dpus.iter().map(|d| d.identity.model.as_str()).collect();
    assert_eq!(models, vec!["BlueField-2", "DSC-25"]);
    // A DSC-25 has no pds_core function: its management path is the first ionic PF.
    assert_eq!(inv.dpus[1].management.as_deref(), Some("0000:60:00.0"));
    assert_eq!(inv.dpus[1].management_role, Some(Role::EthPf));
    let [DpuFinding::MultipleDpus { dpus }] = inv.findings.as_slice() else {
        panic!("expected one MultipleDpus finding, got {:?}", inv.findings);
    };
    let at: Vec<(Option<&str>, &str)> = dpus
        .iter()
        .map(|l| (l.slot.as_deref(), l.address.as_str()))
        .collect();
    assert_eq!(
        at,
        vec![(Some("2"), "0000:3b:00"), (Some("5"), "0000:5e:00")]
    );
    let message = inv.findings[0].to_string();
    assert!(
        message.contains("NVIDIA BlueField-2 in slot 2 (0000:3b:00)"),
        "{message}"
    );
    assert!(
        message.contains("AMD Pensando DSC-25 in slot 5 (0000:5e:00)"),
        "{message}"
    );
}

#[test]
fn pollara_ai_nic_is_not_a_dpu_and_its_slot_holds_none() {
    let inv = read("pollara");
    assert!(inv.dpus.is_empty(), "{:?}", inv.dpus);
    assert!(inv.findings.is_empty());
    let findings = inv.dpu_findings(&strings(&["1"]));
    assert!(
        matches!(findings.as_slice(), [DpuFinding::SlotWithoutSupportedDpu { slot, dpus }] if slot == "1" && dpus.is_empty()),
        "{findings:?}"
    );
}

#[test]
fn bluefield1_is_a_dpu_vsphere_8_does_not_support() {
    let inv = read("bluefield1");
    assert_eq!(inv.dpus.len(), 1);
    assert!(!inv.dpus[0].identity.supported);
    assert_eq!(inv.dpus[0].identity.model, "BlueField");
    assert!(
        matches!(inv.findings.as_slice(), [DpuFinding::UnsupportedDpu { dpu, .. }] if dpu.slot.as_deref() == Some("1")),
        "{:?}",
        inv.findings
    );
    // Naming its slot in --dpuPciSlots does not make it supported.
    let findings = inv.dpu_findings(&strings(&["1"]));
    assert!(findings
        .iter()
        .any(|f| matches!(f, DpuFinding::SlotWithoutSupportedDpu { slot, .. } if slot == "1")));
}

#[test]
fn a_slot_without_a_dpu_is_reported_with_where_the_dpus_are() {
    let inv = read("bluefield2");
    let findings = inv.dpu_findings(&strings(&["1"]));
    assert_eq!(findings.len(), 1, "{findings:?}");
    let message = findings[0].to_string();
    assert!(message.contains("slot \"1\""), "{message}");
    assert!(message.contains("BlueField-2 in slot 2"), "{message}");
}

#[test]
fn plain_server_has_no_dpu() {
    let inv = read("plain");
    assert!(inv.dpus.is_empty());
    assert!(inv.findings.is_empty());
    assert!(inv.dpu_findings(&[]).is_empty());
}

/// Rewrites one sysfs attribute in a copied fixture.
fn set_attr(root: &Path, rel: &str, value: &str) {
    fs::write(root.join(rel), format!("{value}\n")).expect("write attribute");
}

#[test]
fn a_dsc_of_unknown_model_counts_as_an_unsupported_dpu() {
    let (_tmp, root) = copy_fixture("pensando-dsc2-200");
    let base = "sys/devices/pci0000:40/0000:40:01.1/0000:41:00.0";
    for f in [
        "",
        "/0000:42:00.0",
        "/0000:42:00.0/0000:43:00.0",
        "/0000:42:01.0",
        "/0000:42:01.0/0000:44:00.0",
        "/0000:42:02.0",
        "/0000:42:02.0/0000:45:00.0",
    ] {
        set_attr(&root, &format!("{base}{f}/subsystem_device"), "0x5999");
    }
    let inv = Inventory::read(&root).expect("read");
    assert_eq!(inv.dpus.len(), 1);
    assert_eq!(inv.dpus[0].identity.catalog_id, "amd-pensando-dsc-unknown");
    assert!(!inv.dpus[0].identity.supported);
    // Roles still come out, so the plan stage can name the management path.
    assert_eq!(inv.dpus[0].management.as_deref(), Some("0000:45:00.0"));
    assert!(matches!(
        inv.findings.as_slice(),
        [DpuFinding::UnsupportedDpu { .. }]
    ));
}

#[test]
fn a_bluefield_in_flash_recovery_mode_is_flagged() {
    let (_tmp, root) = copy_fixture("bluefield2");
    set_attr(
        &root,
        "sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/device",
        "0x0214",
    );
    let inv = Inventory::read(&root).expect("read");
    assert_eq!(inv.dpus.len(), 1);
    assert!(inv.dpus[0].needs_recovery);
    assert!(matches!(
        inv.findings.as_slice(),
        [DpuFinding::DpuNeedsRecovery { .. }]
    ));
}

#[test]
fn catalog_refuses_a_management_role_no_function_has() {
    let text = r#"
[[dpu]]
id = "x"
vendor = "V"
model = "M"
generation = "G"
supported = true
management = ["rshim"]
functions = [ { vendor = 0x15b3, device = 0xa2d6, role = "nic-pf" } ]
"#;
    let err = Catalog::parse(text).expect_err("must refuse");
    assert!(
        format!("{err:#}").contains("management role rshim"),
        "{err:#}"
    );
    assert!(Catalog::builtin().is_ok());
}

// ---------------------------------------------------------------------------------------
// Disks: identity, flags, names

#[test]
fn disks_are_named_the_way_esxi_names_them() {
    let inv = read("bluefield2");
    let names: Vec<&str> = inv.disks.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "t10.ATA_____DELLBOSS_VD_____________________________7a2b3f0c9d8e4a10",
            "eui.36344730527001230025384500000001"
        ]
    );
    let usb = read("usb-boot");
    let stick = disk(&usb, "sdb");
    // No device ID: the path name, on a USB adapter numbered like ESXi's (vmhba32 and up).
    assert_eq!(stick.name, "mpx.vmhba32:C0:T0:L0");
    let sata = disk(&usb, "sda");
    assert_eq!(sata.name, "naa.5000c500c0ffee01");
    for alias in [
        "naa.5000c500c0ffee01",
        "/vmfs/devices/disks/naa.5000c500c0ffee01",
        "/dev/disks/naa.5000c500c0ffee01",
        "sda",
        "/dev/sda",
    ] {
        assert!(
            sata.aliases.iter().any(|a| a == alias),
            "missing alias {alias}"
        );
    }
    assert!(sata.aliases.iter().any(|a| a.starts_with("vml.0200000000")));
}

#[test]
fn disk_kinds_and_flags_come_from_the_topology() {
    let usb = read("usb-boot");
    let stick = disk(&usb, "sdb");
    assert_eq!(stick.transport, Transport::Usb);
    assert!(stick.usb && stick.removable && !stick.local && !stick.remote);
    assert_eq!(stick.driver.as_deref(), Some("usb-storage"));
    let hdd = disk(&usb, "sda");
    assert_eq!(hdd.transport, Transport::Sata);
    assert!(hdd.local && !hdd.ssd);
    assert_eq!(hdd.size_bytes, 3_907_029_168 * 512);

    let bf3 = read("bluefield3");
    let lun = disk(&bf3, "sdb");
    assert_eq!(lun.transport, Transport::FibreChannel);
    assert!(lun.remote && !lun.local);
    let raid = disk(&bf3, "sda");
    assert_eq!(raid.driver.as_deref(), Some("megaraid_sas"));
    assert_eq!(raid.esxi_driver.as_deref(), Some("lsi_mr3"));
    assert_eq!(raid.controller.as_deref(), Some("0000:18:00.0"));

    let dsc = read("pensando-dsc2-200");
    assert_eq!(disk(&dsc, "sda").transport, Transport::Sas);
    let nvme = disk(&dsc, "nvme0n1");
    assert_eq!(nvme.transport, Transport::Nvme);
    assert_eq!(nvme.model.as_deref(), Some("INTEL SSDPF2KX960HZ"));
    assert!(nvme.ssd);
}

#[test]
fn dvd_drives_and_loop_devices_are_not_disks() {
    let inv = read("plain");
    let names: Vec<&str> = inv.disks.iter().map(|d| d.kernel_name.as_str()).collect();
    assert_eq!(names, vec!["sda", "sdb", "sdc", "sdd", "nvme0n1"]);
}

#[test]
fn resolve_disk_accepts_each_alias_and_lists_the_disks_for_an_unknown_name() {
    let inv = read("bluefield3");
    for name in [
        "naa.600a098038303053453f463045727a4a",
        "/vmfs/devices/disks/naa.600a098038303053453f463045727a4a",
        "/dev/disks/naa.600a098038303053453f463045727a4a",
        "vml.0200010000600a098038303053453f463045727a4a4c554e20432d",
    ] {
        assert_eq!(
            inv.resolve_disk(name).map(|d| d.kernel_name.as_str()),
            Ok("sdb"),
            "{name}"
        );
    }
    let err = inv
        .resolve_disk("naa.6000000000000000")
        .expect_err("unknown");
    assert!(matches!(err, DiskLookupError::NotFound { .. }));
    let message = err.to_string();
    assert!(
        message.contains("naa.600062b212345678290a3b4c5d6e7f80 (sda"),
        "{message}"
    );
    assert!(
        message.contains("naa.600a098038303053453f463045727a4a (sdb"),
        "{message}"
    );
}

#[test]
fn resolve_disk_refuses_a_name_two_disks_share() {
    let inv = read("usb-twins");
    let shared = "t10.Generic_Flash_Disk____FFFFFFFFFFFF8A3B";
    let err = inv.resolve_disk(shared).expect_err("ambiguous");
    let DiskLookupError::Ambiguous { matches, .. } = &err else {
        panic!("expected Ambiguous, got {err:?}");
    };
    assert_eq!(matches.len(), 2);
    assert!(err.to_string().contains("(sdb,") && err.to_string().contains("(sdc,"));
    // The Linux name still tells them apart.
    assert_eq!(
        inv.resolve_disk("sdc").map(|d| d.kernel_name.as_str()),
        Ok("sdc")
    );
}

// ---------------------------------------------------------------------------------------
// --firstdisk

#[test]
fn firstdisk_default_prefers_the_local_disk_over_the_usb_stick() {
    let inv = read("usb-boot");
    // The stick sorts first by topology (xHCI at 00:14.0), yet `local` comes first in the list.
    assert_eq!(inv.disks[0].kernel_name, "sdb");
    assert_eq!(first(&inv, &[], false, false).as_deref(), Some("sda"));
    assert_eq!(
        first(&inv, &["local", "remote", "usb"], false, false).as_deref(),
        Some("sda")
    );
    assert_eq!(first(&inv, &["usb"], false, false).as_deref(), Some("sdb"));
    for usb_driver in ["usb-storage", "vmkusb", "umass"] {
        assert_eq!(
            first(&inv, &[usb_driver], false, false).as_deref(),
            Some("sdb"),
            "{usb_driver}"
        );
    }
    assert_eq!(
        first(&inv, &["SanDisk"], false, false).as_deref(),
        Some("sdb")
    );
    let choice = inv
        .first_disk_choice(&strings(&["remote", "usb"]), false, false)
        .expect("usb matches");
    assert_eq!(choice.filter, "usb");
}

#[test]
fn firstdisk_refuses_loudly_when_nothing_matches() {
    let inv = read("usb-boot");
    let err = inv
        .first_disk_choice(&strings(&["remote"]), false, false)
        .expect_err("no remote disk");
    let message = err.to_string();
    assert!(message.contains("--firstdisk=remote"), "{message}");
    assert!(message.contains("mpx.vmhba32:C0:T0:L0 (sdb"), "{message}");
    assert!(message.contains("naa.5000c500c0ffee01 (sda"), "{message}");
}

#[test]
fn firstdisk_matches_vendor_model_and_driver_exactly() {
    let inv = read("plain");
    assert_eq!(
        first(&inv, &["local"], false, false).as_deref(),
        Some("sda")
    );
    // Exact (case-insensitive) model: a prefix is not enough.
    assert_eq!(
        first(&inv, &["samsung ssd 870 evo 1tb"], false, false).as_deref(),
        Some("sda")
    );
    assert_eq!(first(&inv, &["Samsung SSD"], false, false), None);
    assert_eq!(
        first(&inv, &["Samsung SSD", "WDC WD40EFRX-68N32N0"], false, false).as_deref(),
        Some("sdd")
    );
    assert_eq!(first(&inv, &["ATA"], false, false).as_deref(), Some("sda"));
    // Driver names, Linux or the ESXi equivalent.
    assert_eq!(
        first(&inv, &["nvme"], false, false).as_deref(),
        Some("nvme0n1")
    );
    assert_eq!(
        first(&inv, &["nvme_pcie"], false, false).as_deref(),
        Some("nvme0n1")
    );
    assert_eq!(
        first(&inv, &["vmw_ahci"], false, false).as_deref(),
        Some("sda")
    );
    assert_eq!(
        first(&inv, &["Micron_7450_MTFDKBG3T8TFR", "local"], false, false).as_deref(),
        Some("nvme0n1")
    );

    let bf2 = read("bluefield2");
    assert_eq!(
        first(&bf2, &["DELLBOSS VD"], true, false),
        None,
        "the BOSS is an SSD"
    );
    assert_eq!(
        first(&bf2, &["DELLBOSS VD"], false, false).as_deref(),
        Some("sda")
    );
    let bf3 = read("bluefield3");
    assert_eq!(
        first(&bf3, &["lsi_mr3"], false, false).as_deref(),
        Some("sda")
    );
    assert_eq!(
        first(&bf3, &["remote"], false, false).as_deref(),
        Some("sdb")
    );
}

#[test]
fn firstdisk_ignoressd_and_minimum_size() {
    let inv = read("plain");
    // Three SSDs come first; --ignoressd leaves the HDD.
    assert_eq!(first(&inv, &["local"], true, false).as_deref(), Some("sdd"));
    // The 16 GB SATA DOM is below the 32 GB minimum for a non-USB boot disk.
    assert_eq!(first(&inv, &["SuperMicro SSD"], false, false), None);
    let err = inv
        .first_disk_choice(&strings(&["SuperMicro SSD"]), false, false)
        .expect_err("too small");
    assert!(
        err.to_string()
            .contains("not eligible: smaller than the 32 GiB minimum"),
        "{err}"
    );
    // A 16 GB USB stick is enough (8 GB minimum for USB/SD).
    let usb = read("usb-boot");
    assert_eq!(first(&usb, &["usb"], false, false).as_deref(), Some("sdb"));
}

// ---------------------------------------------------------------------------------------
// What is on the disks: an old ESXi with a VMFS datastore, built here as a sparse image

/// A read/write window onto part of a file, for formatting a partition with fatfs.
struct Window {
    file: File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for Window {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min((self.len - self.pos) as usize);
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.file.read(&mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Window {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min((self.len - self.pos) as usize);
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.file.write(&buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for Window {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = match pos {
            SeekFrom::Start(p) => p,
            SeekFrom::End(d) => (self.len as i64 + d) as u64,
            SeekFrom::Current(d) => (self.pos as i64 + d) as u64,
        };
        Ok(self.pos)
    }
}

const LB: u64 = 512;

/// The ESXi 7/8 layout of layout.md §3 on a disk of `sectors`: partitions 1, 5, 6, 7, 8 in
/// those GPT slots, a protective MBR, bank 5 newer than bank 6.
fn write_old_esxi(path: &Path, sectors: u64) {
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .expect("image");
    file.set_len(sectors * LB).expect("sparse size");
    drop(file);

    let vmware = |guid| Type {
        guid,
        os: OperatingSystem::Custom("VMware".into()),
    };
    let layout: [(u32, &str, Type, u64, u64); 5] = [
        (1, "", vmware(types::EFI_SYSTEM), 64, 204_863),
        (5, "", vmware(types::BASIC_DATA), 208_896, 8_595_455),
        (6, "", vmware(types::BASIC_DATA), 8_597_504, 16_984_063),
        (7, "", vmware(types::VMFSL), 16_986_112, 268_435_455),
        (8, "", vmware(types::VMFS), 268_437_504, sectors - 34),
    ];
    let mut disk = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(LogicalBlockSize::Lb512)
        .create(path)
        .expect("gpt create");
    for (id, name, ty, first, last) in layout.iter().cloned() {
        disk.add_partition_at(name, id, first, last - first + 1, ty, 0)
            .expect("add partition");
    }
    let mut file = disk.write().expect("gpt write");

    // gpt 4.1 packs entries into the first slots (crates.md); put each back in its own slot.
    let reopened = gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(LogicalBlockSize::Lb512)
        .open(path)
        .expect("gpt reopen");
    let mut primary = reopened.primary_header().expect("primary").clone();
    let mut backup = reopened.backup_header().expect("backup").clone();
    let parts: Vec<gpt::partition::Partition> = reopened.partitions().values().cloned().collect();
    for header in [&primary, &backup] {
        gpt::partition::Partition::write_zero_entries_to_device(
            &mut file,
            0,
            u64::from(header.num_parts),
            header.part_start,
            LogicalBlockSize::Lb512,
            128,
        )
        .expect("zero entries");
        for ((id, ..), p) in layout.iter().zip(parts.iter()) {
            p.write_to_device(
                &mut file,
                u64::from(*id - 1),
                header.part_start,
                LogicalBlockSize::Lb512,
                128,
            )
            .expect("entry");
        }
    }
    primary
        .write_primary(&mut file, LogicalBlockSize::Lb512)
        .expect("primary header");
    backup
        .write_backup(&mut file, LogicalBlockSize::Lb512)
        .expect("backup header");
    gpt::mbr::ProtectiveMBR::with_lb_size(u32::try_from(sectors - 1).unwrap_or(u32::MAX))
        .overwrite_lba0(&mut file)
        .expect("protective MBR");

    let bank = |first: u64, last: u64, cfg: &str| {
        let window = || Window {
            file: OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .expect("open"),
            start: first * LB,
            len: (last - first + 1) * LB,
            pos: 0,
        };
        fatfs::format_volume(window(), fatfs::FormatVolumeOptions::new()).expect("format bank");
        let fs = fatfs::FileSystem::new(window(), fatfs::FsOptions::new()).expect("mount bank");
        let mut f = fs.root_dir().create_file("boot.cfg").expect("boot.cfg");
        f.write_all(cfg.as_bytes()).expect("write boot.cfg");
        drop(f);
        fs.unmount().expect("unmount");
    };
    bank(
        208_896,
        8_595_455,
        "bootstate=0\ntitle=Loading VMware ESXi\ntimeout=5\nprefix=\nkernel=b.b00\nkernelopt=\nmodules=jumpstrt.gz --- useropts.gz\nbuild=7.0.3-0.50.20036589\nupdated=2\n",
    );
    bank(
        8_597_504,
        16_984_063,
        "bootstate=0\ntitle=Loading VMware ESXi\nbuild=7.0.3-0.35.19482537\nupdated=1\n",
    );
}

fn old_esxi() -> (tempfile::TempDir, PathBuf) {
    let (tmp, root) = copy_fixture("old-esxi");
    write_old_esxi(&root.join("dev/sdb"), 1_172_123_568);
    (tmp, root)
}

fn digest(path: &Path) -> Vec<u8> {
    let mut f = File::open(path).expect("open image");
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    // The table, both banks' file systems, and the backup table at the end.
    let len = f.metadata().expect("metadata").len();
    for at in [0, 208_896 * LB, 8_597_504 * LB, len - (1 << 20)] {
        f.seek(SeekFrom::Start(at)).expect("seek");
        f.read_exact(&mut buf).expect("read");
        hasher.update(&buf);
    }
    hasher.finalize().to_vec()
}

#[test]
fn an_old_esxi_disk_shows_its_build_its_partitions_and_vmfs() {
    let (_tmp, root) = old_esxi();
    let image = root.join("dev/sdb");
    let before = digest(&image);
    let inv = Inventory::read(&root).expect("read");
    assert_eq!(
        digest(&image),
        before,
        "the inventory must not write the disk"
    );

    let blank = disk(&inv, "sda");
    assert_eq!(blank.content.table, PartitionTable::Blank);
    assert!(!blank.has_esx());

    let old = disk(&inv, "sdb");
    let c = &old.content;
    assert_eq!(c.table, PartitionTable::Gpt);
    assert!(c.protective_mbr);
    let numbers: Vec<u32> = c.partitions.iter().map(|p| p.number).collect();
    assert_eq!(numbers, vec![1, 5, 6, 7, 8]);
    assert_eq!(c.vmfs, vec![8]);
    assert_eq!(c.vmfsl, vec![7]);
    let esx = c.esx.as_ref().expect("ESXi found");
    // Bank 5 has the higher `updated`: its build is the one that boots.
    assert_eq!(esx.version.as_deref(), Some("7.0.3-0.50.20036589"));
    let banks: Vec<(u32, Option<&str>)> = esx
        .banks
        .iter()
        .map(|b| (b.partition, b.build.as_deref()))
        .collect();
    assert_eq!(
        banks,
        vec![
            (5, Some("7.0.3-0.50.20036589")),
            (6, Some("7.0.3-0.35.19482537"))
        ]
    );
    assert!(
        c.summary().contains("ESXi 7.0.3-0.50.20036589"),
        "{}",
        c.summary()
    );
}

#[test]
fn firstdisk_esx_keywords_choose_the_disk_holding_esxi() {
    let (_tmp, root) = old_esxi();
    let inv = Inventory::read(&root).expect("read");
    assert_eq!(
        first(&inv, &["local"], false, false).as_deref(),
        Some("sda")
    );
    assert_eq!(first(&inv, &["esx"], false, false).as_deref(), Some("sdb"));
    assert_eq!(
        first(&inv, &["localesx"], false, false).as_deref(),
        Some("sdb")
    );
    assert_eq!(first(&inv, &["remoteesx"], false, false), None);
    // Upgrade: only disks that hold ESXi are candidates.
    assert_eq!(first(&inv, &["local"], false, true).as_deref(), Some("sdb"));
    // Without the image the same host has no ESXi anywhere.
    assert_eq!(first(&read("old-esxi"), &["esx"], false, false), None);
}

#[test]
fn a_legacy_mbr_is_recognised() {
    let (_tmp, root) = copy_fixture("usb-boot");
    let mut lba0 = [0u8; 512];
    // One FAT32 (LBA) partition from sector 2048, 1 GiB long.
    lba0[446 + 4] = 0x0c;
    lba0[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
    lba0[446 + 12..446 + 16].copy_from_slice(&2_097_152u32.to_le_bytes());
    lba0[510] = 0x55;
    lba0[511] = 0xaa;
    fs::write(root.join("dev/sdb"), lba0).expect("write MBR");
    let inv = Inventory::read(&root).expect("read");
    let c = &disk(&inv, "sdb").content;
    assert_eq!(c.table, PartitionTable::Mbr);
    assert_eq!(c.mbr_partitions.len(), 1);
    assert_eq!(c.mbr_partitions[0].os_type, 0x0c);
    assert!(c.partitions.is_empty() && c.esx.is_none());
}

#[test]
fn a_gpt_header_with_odd_entry_size_is_refused_not_trusted() {
    let (_tmp, root) = copy_fixture("usb-boot");
    let mut image = vec![0u8; 64 * 1024];
    image[512..520].copy_from_slice(b"EFI PART");
    image[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
    image[512 + 84..512 + 88].copy_from_slice(&64u32.to_le_bytes());
    fs::write(root.join("dev/sda"), image).expect("write header");
    let inv = Inventory::read(&root).expect("read");
    let c = &disk(&inv, "sda").content;
    assert_eq!(c.table, PartitionTable::Unknown);
    assert!(
        c.problem.as_deref().is_some_and(|p| p.contains("64 bytes")),
        "{:?}",
        c.problem
    );
}

#[test]
fn a_missing_device_node_or_odd_attribute_degrades_instead_of_failing() {
    let (_tmp, root) = copy_fixture("bluefield2");
    fs::remove_file(root.join("dev/sda")).expect("remove dev/sda");
    let sd = "sys/devices/pci0000:00/0000:00:1c.0/0000:02:00.0/ata1/host0/target0:0:0/0:0:0:0";
    fs::remove_file(root.join(sd).join("model")).expect("remove model");
    set_attr(
        &root,
        &format!("{sd}/block/sda/queue/logical_block_size"),
        "banana",
    );
    let inv = Inventory::read(&root).expect("read");
    let sda = disk(&inv, "sda");
    assert_eq!(sda.content.table, PartitionTable::Unreadable);
    assert_eq!(sda.model, None);
    assert_eq!(sda.logical_block_size, 512);
    assert_eq!(sda.size_bytes, 468_731_008 * 512);
    assert_eq!(inv.dpus.len(), 1, "the DPU is still found");
}

// ---------------------------------------------------------------------------------------
// probe --record, and the command line

fn same_view(a: &Inventory, b: &Inventory) {
    let view = |i: &Inventory| -> Vec<(String, String, u64, Transport, bool, Option<String>)> {
        i.disks
            .iter()
            .map(|d| {
                (
                    d.name.clone(),
                    d.kernel_name.clone(),
                    d.size_bytes,
                    d.transport,
                    d.ssd,
                    d.driver.clone(),
                )
            })
            .collect()
    };
    assert_eq!(view(a), view(b));
    assert_eq!(a.dpus, b.dpus);
    assert_eq!(a.findings, b.findings);
}

#[test]
fn a_recorded_fixture_reads_back_the_same() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut recorded = 0;
    for entry in fs::read_dir(fixture("")).expect("fixtures") {
        let path = entry.expect("entry").path();
        // Sysroot fixtures hold a sys/ tree; others (VMware's metadata excerpt) are not hosts.
        if !path.join("sys").is_dir() {
            continue;
        }
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let dest = tmp.path().join(&name);
        let summary = ksinstall::inventory::record::record(&path, &dest).expect("record");
        assert!(summary.skipped.is_empty(), "{name}: {:?}", summary.skipped);
        assert!(
            !dest.join("dev").exists(),
            "no device contents are recorded"
        );
        same_view(
            &read(&name),
            &Inventory::read(&dest).expect("read recording"),
        );
        recorded += 1;
    }
    assert!(recorded >= 10, "only {recorded} fixtures found");
}

#[test]
fn recording_the_live_sys_reads_back_the_same() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dest = tmp.path().join("live");
    ksinstall::inventory::record::record(Path::new("/"), &dest).expect("record /");
    let live = Inventory::read(Path::new("/")).expect("read /");
    let recorded = Inventory::read(&dest).expect("read recording");
    same_view(&live, &recorded);
    assert!(dest.join("sys/block").is_dir());
}

#[test]
fn record_refuses_a_directory_that_is_not_empty() {
    let tmp = tempfile::tempdir().expect("temp dir");
    fs::write(tmp.path().join("keep"), "x").expect("write");
    let err =
        ksinstall::inventory::record::record(&fixture("plain"), tmp.path()).expect_err("refuse");
    assert!(err.to_string().contains("not empty"), "{err}");
}

fn ksinstall(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .args(args)
        .output()
        .expect("run ksinstall");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn probe_prints_json_for_machines_and_a_table_for_people() {
    let root = fixture("two-dpus");
    let root = root.to_str().expect("utf-8 path");
    let (code, json) = ksinstall(&["probe", "--sysroot", root, "--format", "json"]);
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(doc["dpus"].as_array().map(Vec::len), Some(2));
    assert_eq!(doc["dpus"][0]["slot"], "2");
    assert_eq!(doc["dpus"][0]["management"], "0000:3b:00.2");
    assert_eq!(doc["disks"][0]["name"], "naa.5002538f01234567");
    assert_eq!(doc["findings"][0]["finding"]["kind"], "multiple-dpus");

    let (code, text) = ksinstall(&["probe", "--sysroot", root]);
    assert_eq!(code, 0);
    assert!(text.contains("NVIDIA BlueField-2"), "{text}");
    assert!(text.contains("slot 5 (0000:5e:00)"), "{text}");
    assert!(text.contains("management: 0000:60:00.0 (eth-pf)"), "{text}");

    let (_, checked) = ksinstall(&["probe", "--sysroot", root, "--dpu-pci-slots", "7"]);
    assert!(
        checked.contains("--dpuPciSlots names slot \"7\""),
        "{checked}"
    );
}

#[test]
fn a_directory_without_sys_block_is_not_a_sysroot() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let err = Inventory::read(tmp.path()).expect_err("not a sysroot");
    assert!(format!("{err:#}").contains("no sys/block"), "{err:#}");
}

#[test]
fn bluefield_3_lx_and_bluefield_4_are_recognised_but_unsupported() {
    for (nic, rshim, model) in [
        ("0xa2d9", "0xc2d4", "BlueField-3 Lx"),
        ("0xa2df", "0xc2d6", "BlueField-4"),
    ] {
        let (_tmp, root) = copy_fixture("bluefield3");
        let card = "sys/devices/pci0000:c9/0000:c9:02.0/0000:ca:00";
        set_attr(&root, &format!("{card}.0/device"), nic);
        set_attr(&root, &format!("{card}.1/device"), nic);
        set_attr(&root, &format!("{card}.2/device"), rshim);
        let inv = Inventory::read(&root).expect("read");
        assert_eq!(inv.dpus.len(), 1, "{model}");
        assert_eq!(inv.dpus[0].identity.model, model);
        assert!(!inv.dpus[0].identity.supported, "{model}");
        assert_eq!(inv.dpus[0].management.as_deref(), Some("0000:ca:00.2"));
        assert!(
            matches!(inv.findings.as_slice(), [DpuFinding::UnsupportedDpu { .. }]),
            "{model}: {:?}",
            inv.findings
        );
        assert!(!inv.dpu_findings(&strings(&["4"])).is_empty(), "{model}");
    }
}

#[test]
fn a_vsan_claimed_disk_is_recognised() {
    let (_tmp, root) = copy_fixture("old-esxi");
    let path = root.join("dev/sda");
    let sectors = 1_172_123_568u64;
    File::create(&path)
        .and_then(|f| f.set_len(sectors * LB))
        .expect("sparse image");
    let mut table = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(LogicalBlockSize::Lb512)
        .create(&path)
        .expect("gpt create");
    let vsan = Type {
        guid: types::VSAN,
        os: OperatingSystem::Custom("VMware".into()),
    };
    table
        .add_partition_at("", 1, 2048, 6_000_000, vsan.clone(), 0)
        .expect("partition 1");
    table
        .add_partition_at("", 2, 6_002_048, sectors - 6_002_048 - 34, vsan, 0)
        .expect("partition 2");
    table.write().expect("gpt write");
    let inv = Inventory::read(&root).expect("read");
    let c = &disk(&inv, "sda").content;
    assert_eq!(c.vsan, vec![1, 2]);
    assert!(c.vmfs.is_empty() && c.esx.is_none());
    assert!(c.summary().contains("vSAN (p1,p2)"), "{}", c.summary());
}

#[test]
fn sd_and_emmc_media_are_disks_but_emmc_boot_partitions_are_not() {
    let inv = read("sd-boot");
    let names: Vec<(&str, &str)> = inv
        .disks
        .iter()
        .map(|d| (d.kernel_name.as_str(), d.name.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("mmcblk0", "mpx.vmhba0:C0:T0:L0"),
            ("mmcblk1", "mpx.vmhba1:C0:T0:L0")
        ]
    );
    let sd = disk(&inv, "mmcblk0");
    assert_eq!(sd.transport, Transport::Mmc);
    assert_eq!(sd.model.as_deref(), Some("SD32G"));
    assert_eq!(sd.driver.as_deref(), Some("sdhci-pci"));
    assert_eq!(sd.esxi_driver.as_deref(), Some("vmksdhci"));
    // SD media need only 8 GB.
    assert_eq!(
        first(&inv, &["local"], false, false).as_deref(),
        Some("mmcblk0")
    );
}

#[test]
fn a_bluefield3_whose_rshim_shows_the_lx_id_is_still_a_bluefield3() {
    let (_tmp, root) = copy_fixture("bluefield3");
    set_attr(
        &root,
        "sys/devices/pci0000:c9/0000:c9:02.0/0000:ca:00.2/device",
        "0xc2d4",
    );
    let inv = Inventory::read(&root).expect("read");
    assert_eq!(inv.dpus.len(), 1);
    assert_eq!(inv.dpus[0].identity.model, "BlueField-3");
    assert!(inv.dpus[0].identity.supported);
    assert_eq!(inv.dpus[0].management.as_deref(), Some("0000:ca:00.2"));
    assert_eq!(inv.dpus[0].management_role, Some(Role::Rshim));
}

#[test]
fn probe_shows_what_an_old_esxi_disk_holds() {
    let (_tmp, root) = old_esxi();
    let (code, text) = ksinstall(&["probe", "--sysroot", root.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0);
    let line = text
        .lines()
        .find(|l| l.contains("naa.5000cca01234abce"))
        .unwrap_or_else(|| panic!("no line for sdb in:\n{text}"));
    assert!(
        line.contains("GPT, 5 partitions, ESXi 7.0.3-0.50.20036589, VMFS (p8), VMFS-L (p7)"),
        "{line}"
    );
}

/// A GPT disk whose Basic Data partition holds a FAT32 whose root directory's cluster chain
/// loops on itself (FAT[root] = root) and whose entries are all deleted: fatfs 0.3.6 would walk
/// it forever. The inventory must give up, not hang.
#[test]
fn a_looping_fat_cluster_chain_does_not_hang_the_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("p.img");
    let disk = dir.path().join("disk.img");
    std::fs::File::create(&part)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let ok = std::process::Command::new("mkfs.fat")
        .args(["-F", "32", "-s", "1", "-S", "512"])
        .arg(&part)
        .output()
        .expect("mkfs.fat (cargo xtask test installs dosfstools)");
    assert!(ok.status.success());
    let mut p = std::fs::read(&part).unwrap();
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u32_at =
        |b: &[u8], o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as usize;
    let (bps, spc, rsv, nfats) = (
        u16_at(&p, 11),
        p[13] as usize,
        u16_at(&p, 14),
        p[16] as usize,
    );
    let (fatsz, root) = (u32_at(&p, 36), u32_at(&p, 44));
    for i in 0..nfats {
        let off = (rsv + i * fatsz) * bps + 4 * root;
        p[off..off + 4].copy_from_slice(&(root as u32).to_le_bytes());
    }
    let roff = (rsv + nfats * fatsz + (root - 2) * spc) * bps;
    for e in 0..spc * bps / 32 {
        let ent = &mut p[roff + e * 32..roff + e * 32 + 32];
        ent.fill(0);
        ent[0] = 0xE5;
        ent[1..11].fill(b'A');
        ent[11] = 0x20;
    }
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(128 << 20)
        .unwrap();
    let ok = std::process::Command::new("sgdisk")
        .args(["-n", "5:2048:133119", "-t", "5:0700"])
        .arg(&disk)
        .output()
        .expect("sgdisk");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
        f.seek(SeekFrom::Start(2048 * 512)).unwrap();
        f.write_all(&p).unwrap();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let d = disk.clone();
    std::thread::spawn(move || {
        let _ = tx.send(ksinstall::inventory::content::read(&d, 512));
    });
    let content = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the inventory hung on a looping FAT");
    assert_eq!(content.partitions.len(), 1);
    assert!(content.esx.is_none(), "no boot bank can be read from it");
}

#[test]
fn probe_record_captures_everything_the_installer_reads_below_the_sysroot() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let host = tmp.path().join("host");
    let ok = Command::new("cp")
        .arg("-a")
        .arg(fixture("plain"))
        .arg(&host)
        .status();
    assert!(ok.expect("cp").success());
    // What the source stage reads besides the inventory: the kernel command line, the network
    // interfaces' addresses (netdevice=, identity headers), the serial number, the CD drives.
    let write = |rel: &str, text: &str| {
        let p = host.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, text).expect("write");
    };
    write(
        "proc/cmdline",
        "ks=cdrom:/KS.CFG BOOTIF=01-52-54-00-12-34-56\n",
    );
    write("sys/class/net/eth0/address", "52:54:00:12:34:56\n");
    write("sys/class/dmi/id/product_serial", "CZ1234ABCD\n");
    let dest = tmp.path().join("recorded");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .args(["probe", "--sysroot"])
        .arg(&host)
        .arg("--record")
        .arg(&dest)
        .output()
        .expect("run probe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for rel in [
        "proc/cmdline",
        "sys/class/net/eth0/address",
        "sys/class/dmi/id/product_serial",
        "sys/block/sda/device/type",
    ] {
        let recorded = fs::read_to_string(dest.join(rel))
            .unwrap_or_else(|e| panic!("{rel} was not recorded: {e}"));
        let original = fs::read_to_string(host.join(rel)).expect("original");
        assert_eq!(recorded, original, "{rel}");
    }
}
