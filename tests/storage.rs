//! Storage (issue 4): layouts written to sparse images and loop devices, checked with tools we
//! did not write (sgdisk, fsck.fat, blkid, mtools). Missing tools make these tests fail with a
//! message saying how to install them; nothing is skipped.

mod common;

use std::path::Path;

use common::*;
use ksinstall::partition::{types, PartitionEntry};
use ksinstall::storage::layout::{self, bootbank_slot_bytes, plan_layout_with_ids};
use ksinstall::storage::safety::{
    self, check_install_target, clearpart_disks, Clearpart, ClearpartTarget, DiskFacts,
    SafetyRefusal,
};
use ksinstall::storage::*;
use uuid::Uuid;

const ALL_MEDIA: [SystemMediaSize; 4] = [
    SystemMediaSize::Min,
    SystemMediaSize::Small,
    SystemMediaSize::Default,
    SystemMediaSize::Max,
];

// ---------------------------------------------------------------- helpers

/// A loop device over an image with a given logical sector size, detached on drop.
struct Loop(String);

impl Loop {
    fn attach(img: &Path, sector: u32) -> Loop {
        let (ok, out, err) = run(
            "losetup",
            &[
                "--sector-size",
                &sector.to_string(),
                "-f",
                "--show",
                &img.display().to_string(),
            ],
        );
        assert!(
            ok,
            "losetup could not attach {} with {sector}-byte sectors (these tests need root and \
             loop devices, as CI has): {err}",
            img.display()
        );
        Loop(out.trim().to_string())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = run("losetup", &["-d", &self.0]);
    }
}

/// Plan from what is on the disk now (read with our GPT reader), apply if the plan allows.
fn attempt(
    dev_path: &Path,
    image_sector: u32,
    tweak: impl FnOnce(&mut LayoutRequest),
) -> anyhow::Result<(Layout, WrittenLayout)> {
    let mut dev = BlockDev::open(dev_path, image_sector)?;
    let existing = read_gpt(&mut dev).map(|g| g.entries).unwrap_or_default();
    let mut req = LayoutRequest::new("test-disk", dev.size_bytes(), dev.logical_sector_size());
    req.existing = existing;
    tweak(&mut req);
    let layout = plan_layout(&req)?;
    let written = apply_layout(&mut dev, &layout)?;
    Ok((layout, written))
}

fn refusal(e: &anyhow::Error) -> &LayoutRefusal {
    e.downcast_ref::<LayoutRefusal>()
        .unwrap_or_else(|| panic!("expected a LayoutRefusal, got: {e:#}"))
}

fn sgdisk(args: &[&str]) -> String {
    let (ok, out, err) = run("sgdisk", args);
    assert!(ok, "sgdisk {args:?} failed: {out}{err}");
    out
}

/// Rows of `sgdisk -p`: (number, first, last, code, name).
/// (number, first LBA, last LBA, type code, name)
type Row = (u32, u64, u64, String, String);

fn sgdisk_rows(target: &str) -> (String, Vec<Row>) {
    let out = sgdisk(&["-p", target]);
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in out.lines() {
        if line.starts_with("Number") {
            in_table = true;
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if in_table && f.len() >= 6 {
            rows.push((
                f[0].parse().expect("number"),
                f[1].parse().expect("start"),
                f[2].parse().expect("end"),
                f[5].to_string(),
                f[6..].join(" "),
            ));
        }
    }
    (out, rows)
}

/// What the spec (layout.md §3) says the table must be, computed in spec terms.
fn expected_table(
    disk: u64,
    ss: u64,
    kind: MediaKind,
    media: SystemMediaSize,
) -> Vec<(u32, u64, u64, Uuid)> {
    let total = disk / ss;
    let last_usable = total - 1 - (128 * 128) / ss - 1;
    let bank = if disk < 10 * GIB {
        500 * MIB
    } else if disk < 32 * GIB {
        GIB
    } else {
        4 * GIB
    } - MIB;
    let slot = bank + MIB;
    let mut t = vec![
        (
            1,
            32 * 1024 / ss,
            (32 * 1024 + 100 * MIB) / ss - 1,
            types::EFI_SYSTEM,
        ),
        (
            5,
            102 * MIB / ss,
            (102 * MIB + bank) / ss - 1,
            types::BASIC_DATA,
        ),
        (
            6,
            (102 * MIB + slot) / ss,
            (102 * MIB + slot + bank) / ss - 1,
            types::BASIC_DATA,
        ),
    ];
    if kind == MediaKind::UsbOrSd {
        return t;
    }
    let p7_first = (102 * MIB + 2 * slot) / ss;
    let cap = match media {
        SystemMediaSize::Min => Some(32 * GIB),
        SystemMediaSize::Small => Some(64 * GIB),
        SystemMediaSize::Default => Some(128 * GIB),
        SystemMediaSize::Max => None,
    };
    let p7_last = match cap {
        Some(c) if c / ss - 1 <= last_usable => c / ss - 1,
        _ => last_usable,
    };
    t.push((7, p7_first, p7_last, types::VMFSL));
    if disk > 142 * GIB && p7_last < last_usable {
        t.push((8, (p7_last + 1) + MIB / ss, last_usable, types::VMFS));
    }
    t
}

fn code_for(t: Uuid) -> &'static str {
    match t {
        types::EFI_SYSTEM => "EF00",
        types::BASIC_DATA => "0700",
        types::VMFS => "FB00",
        // sgdisk has no code for VMFS-L and shows its "unknown" code.
        types::VMFSL => "FFFF",
        _ => "????",
    }
}

/// Check a written disk with sgdisk, fsck.fat, blkid, mdir and by reading raw sectors.
/// `target` is what the tools open (image or loop device); `img` the backing file.
fn check_with_tools(target: &str, img: &Path, layout: &Layout, tmp: &Path) {
    let ss = u64::from(layout.logical_sector_size);
    let what = format!(
        "{} ({} bytes, {ss}-byte sectors)",
        target, layout.disk_bytes
    );

    let v = sgdisk(&["-v", target]);
    assert!(
        v.contains("No problems found") && !v.contains("Creating new GPT"),
        "sgdisk -v on {what}:\n{v}"
    );

    let (p, rows) = sgdisk_rows(target);
    assert!(
        p.contains(&format!("Sector size (logical): {ss} bytes"))
            || p.contains(&format!("Sector size (logical/physical): {ss}/")),
        "{what}:\n{p}"
    );
    assert!(
        p.contains(&format!("{}", layout.disk_guid).to_uppercase()),
        "{what}:\n{p}"
    );
    let numbers: Vec<u32> = rows.iter().map(|r| r.0).collect();
    assert_eq!(
        numbers,
        layout.numbers(),
        "sgdisk -p numbers on {what}:\n{p}"
    );
    for (row, planned) in rows.iter().zip(&layout.partitions) {
        let e = &planned.entry;
        assert_eq!(
            (row.1, row.2),
            (e.first_lba, e.last_lba),
            "LBAs of {} on {what}",
            e.number
        );
        assert_eq!(
            row.3,
            code_for(e.type_guid),
            "type code of {} on {what}:\n{p}",
            e.number
        );
        assert_eq!(row.4, e.name, "name of {} on {what}", e.number);
        let i = sgdisk(&["-i", &e.number.to_string(), target]);
        assert!(
            i.contains(&format!(
                "Partition GUID code: {}",
                e.type_guid.to_string().to_uppercase()
            )),
            "{what} partition {}:\n{i}",
            e.number
        );
        assert!(
            i.contains(&format!(
                "Partition unique GUID: {}",
                e.part_guid.to_string().to_uppercase()
            )),
            "{what} partition {}:\n{i}",
            e.number
        );
        assert!(
            i.contains(&format!("Attribute flags: {:016X}", e.attributes)),
            "{what} partition {}:\n{i}",
            e.number
        );
    }

    // Protective MBR: one 0xEE partition, boot signature.
    let mbr = peek(img, 0, 512);
    assert_eq!(
        (mbr[510], mbr[511], mbr[450]),
        (0x55, 0xAA, 0xEE),
        "protective MBR on {what}"
    );

    let mut bank_uuids = Vec::new();
    for part in &layout.partitions {
        let Filesystem::Fat16 {
            label,
            volume_id,
            reserved_sectors,
            bank_uuid,
            ..
        } = &part.filesystem
        else {
            continue;
        };
        let e = &part.entry;
        let off = e.first_lba * ss;
        let end = (e.last_lba + 1) * ss;

        let copy = tmp.join(format!("part{}", e.number));
        extract(img, off, end, &copy);
        let (ok, out, err) = run("fsck.fat", &["-n", "-v", &copy.display().to_string()]);
        assert!(
            ok,
            "fsck.fat -n on partition {} of {what}:\n{out}{err}",
            e.number
        );
        assert!(
            out.contains(&format!("{reserved_sectors} reserved sector"))
                && out.contains(&format!("{ss} bytes per logical sector"))
                && out.contains("16 bit entries"),
            "fsck.fat -v on partition {} of {what}:\n{out}",
            e.number
        );
        std::fs::remove_file(&copy).expect("remove partition copy");

        let (ok, out, err) = run(
            "blkid",
            &["-p", "-O", &off.to_string(), "-o", "export", target],
        );
        assert!(ok, "blkid on partition {} of {what}: {err}", e.number);
        assert!(
            out.contains("TYPE=vfat\n")
                && out.contains("VERSION=FAT16\n")
                && out.contains(&format!("LABEL={label}\n"))
                && out.contains(&format!(
                    "UUID={:04X}-{:04X}\n",
                    volume_id >> 16,
                    volume_id & 0xFFFF
                )),
            "blkid on partition {} of {what}:\n{out}",
            e.number
        );

        let (ok, out, err) = run("mdir", &["-i", &format!("{target}@@{off}"), "::"]);
        assert!(ok, "mdir on partition {} of {what}: {out}{err}", e.number);
        assert!(
            out.contains(&format!("Volume in drive : is {label}")),
            "mdir on partition {} of {what}:\n{out}",
            e.number
        );

        let sig = peek(img, off + ss, 32);
        match bank_uuid {
            Some(u) => {
                assert_eq!(
                    &sig[..16],
                    b"VMWARE FAT16    ",
                    "bank {} on {what}",
                    e.number
                );
                assert_eq!(&sig[16..], u.as_bytes(), "bank {} UUID on {what}", e.number);
                bank_uuids.push(*u);
            }
            None => assert_ne!(
                &sig[..16],
                b"VMWARE FAT16    ",
                "partition {} is no bank",
                e.number
            ),
        }
    }
    assert_eq!(bank_uuids.len(), 2, "two boot banks on {what}");
    assert_ne!(
        bank_uuids[0], bank_uuids[1],
        "distinct bank UUIDs on {what}"
    );
}

/// Write every `systemMediaSize` to a disk of `disk` bytes and check each with the tools.
fn matrix(disk: u64, kind: MediaKind, sector: u32) {
    let tmp = tempfile::tempdir().expect("tempdir");
    for media in ALL_MEDIA {
        let img = image(tmp.path(), "disk.img", disk);
        let lo = (sector == 4096).then(|| Loop::attach(&img, 4096));
        let target = lo
            .as_ref()
            .map(|l| l.0.clone())
            .unwrap_or_else(|| img.display().to_string());
        let (layout, written) = attempt(Path::new(&target), 512, |r| {
            r.kind = kind;
            r.media_size = media;
        })
        .unwrap_or_else(|e| panic!("{disk} bytes {kind:?} {media:?} {sector}: {e:#}"));
        assert_eq!(
            layout.logical_sector_size, sector,
            "sector size seen through {target}"
        );

        let expected = expected_table(disk, u64::from(sector), kind, media);
        let got: Vec<(u32, u64, u64, Uuid)> = layout
            .partitions
            .iter()
            .map(|p| {
                (
                    p.entry.number,
                    p.entry.first_lba,
                    p.entry.last_lba,
                    p.entry.type_guid,
                )
            })
            .collect();
        assert_eq!(got, expected, "{disk} bytes {kind:?} {media:?} {sector}");
        assert_eq!(layout.osdata_elsewhere, kind == MediaKind::UsbOrSd);
        assert!(
            written.fat.iter().all(|f| f.fat_type == "FAT16"),
            "{:?}",
            written.fat
        );

        check_with_tools(&target, &img, &layout, tmp.path());
        drop(lo);
        // Only metadata and FAT areas were written: the image stays sparse.
        let used = std::process::Command::new("du")
            .args(["-k", &img.display().to_string()])
            .output()
            .expect("du");
        let kib: u64 = String::from_utf8_lossy(&used.stdout)
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .expect("du output");
        assert!(
            kib < 64 * 1024,
            "{kib} KiB allocated for a {disk}-byte image"
        );
        std::fs::remove_file(&img).expect("remove image");
    }
}

// ---------------------------------------------------------------- layouts, checked with tools

#[test]
fn usb_8g_512() {
    matrix(8 * GIB, MediaKind::UsbOrSd, 512);
}
#[test]
fn disk_32g_512() {
    matrix(32 * GIB, MediaKind::SystemDisk, 512);
}
#[test]
fn disk_64g_512() {
    matrix(64 * GIB, MediaKind::SystemDisk, 512);
}
#[test]
fn disk_128g_512() {
    matrix(128 * GIB, MediaKind::SystemDisk, 512);
}
#[test]
fn disk_200g_512() {
    matrix(200 * GIB, MediaKind::SystemDisk, 512);
}
#[test]
fn disk_2t_512() {
    matrix(2048 * GIB, MediaKind::SystemDisk, 512);
}
#[test]
fn usb_8g_4096_loop() {
    matrix(8 * GIB, MediaKind::UsbOrSd, 4096);
}
#[test]
fn disk_32g_4096_loop() {
    matrix(32 * GIB, MediaKind::SystemDisk, 4096);
}
#[test]
fn disk_64g_4096_loop() {
    matrix(64 * GIB, MediaKind::SystemDisk, 4096);
}
#[test]
fn disk_128g_4096_loop() {
    matrix(128 * GIB, MediaKind::SystemDisk, 4096);
}
#[test]
fn disk_200g_4096_loop() {
    matrix(200 * GIB, MediaKind::SystemDisk, 4096);
}
#[test]
fn disk_2t_4096_loop() {
    matrix(2048 * GIB, MediaKind::SystemDisk, 4096);
}

#[test]
fn default_layout_is_the_one_seen_on_real_installs() {
    // layout.md §3: partedUtil getptbl of ESXi 7/8 on >= 128 GB media, 512-byte sectors.
    for disk in [200 * GIB, 2048 * GIB] {
        let l = plan_layout(&LayoutRequest::new("d", disk, 512)).expect("plan");
        let lbas: Vec<(u32, u64, u64)> = l
            .partitions
            .iter()
            .map(|p| (p.entry.number, p.entry.first_lba, p.entry.last_lba))
            .collect();
        let last_usable = disk / 512 - 34;
        assert_eq!(
            lbas,
            vec![
                (1, 64, 204863),
                (5, 208896, 8595455),
                (6, 8597504, 16984063),
                (7, 16986112, 268435455),
                (8, 268437504, last_usable),
            ]
        );
    }
}

#[test]
fn files_written_with_fatfs_read_back_with_mtools() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let img = image(tmp.path(), "disk.img", 64 * GIB);
    let (layout, _) = attempt(&img, 512, |_| {}).expect("install");
    let content = b"bootstate=0\ntitle=Loading VMware ESXi\nbuild=8.0.3-0.35.24280767\nupdated=1\n";
    {
        let mut dev = BlockDev::open(&img, 512).expect("open");
        let fs = open_partition_fat(&mut dev, &layout, 5).expect("open bank 5");
        {
            let root = fs.root_dir();
            let mut f = root.create_file("boot.cfg").expect("create");
            std::io::Write::write_all(&mut f, content).expect("write");
            // (No directories: fatfs 0.3.6's create_dir writes LFN entries for "." and "..",
            // which fsck.fat rejects; rust-fatfs #117, fixed after 0.3.6.)
            let mut g = root.create_file("imgdb.tgz").expect("create");
            std::io::Write::write_all(&mut g, &vec![0x5a; 200_000]).expect("write");
        }
        fs.unmount().expect("unmount");
        assert!(
            open_partition_fat(&mut dev, &layout, 7).is_err(),
            "7 is not FAT"
        );
    }
    let off = layout.partition(5).expect("5").entry.first_lba * 512;
    let target = format!("{}@@{off}", img.display());
    let (ok, out, err) = run("mdir", &["-i", &target, "::"]);
    assert!(
        ok && out.contains("boot") && out.contains("imgdb"),
        "{out}{err}"
    );
    let (ok, out, err) = run("mcopy", &["-i", &target, "::boot.cfg", "-"]);
    assert!(ok, "{err}");
    assert_eq!(out.as_bytes(), content);
    // Still clean, still FAT16 with the signature in place.
    check_with_tools(&img.display().to_string(), &img, &layout, tmp.path());
}

#[test]
fn old_signatures_are_wiped_at_every_new_partition() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let img = image(tmp.path(), "disk.img", 200 * GIB);
    let plan = plan_layout(&LayoutRequest::new("d", 200 * GIB, 512)).expect("plan");
    // Old FAT32 file systems (made by mkfs.fat) where 5, 7 and 8 will start; an old "VMFS" LVM
    // magic at 1 MiB into 8.
    for n in [5u32, 7, 8] {
        let first = plan.partition(n).expect("planned").entry.first_lba;
        let (ok, out, err) = run(
            "mkfs.fat",
            &[
                "-F",
                "32",
                &format!("--offset={first}"),
                &img.display().to_string(),
                "1048576",
            ],
        );
        assert!(ok, "mkfs.fat: {out}{err}");
        let (ok, out, _) = run(
            "blkid",
            &[
                "-p",
                "-O",
                &(first * 512).to_string(),
                "-o",
                "export",
                &img.display().to_string(),
            ],
        );
        assert!(
            ok && out.contains("VERSION=FAT32"),
            "old FS in place at {n}: {out}"
        );
    }
    let p8 = plan.partition(8).expect("8").entry.first_lba * 512;
    poke(&img, p8 + MIB, &0xc001d00du32.to_le_bytes());
    let before = hash_image(&img);

    let (layout, _) = attempt(&img, 512, |_| {}).expect("install on a disk with no GPT");
    assert_ne!(hash_image(&img), before, "apply changed the image");
    for n in [7u32, 8] {
        let first = layout.partition(n).expect("n").entry.first_lba * 512;
        let (ok, out, _) = run(
            "blkid",
            &[
                "-p",
                "-O",
                &first.to_string(),
                "-o",
                "export",
                &img.display().to_string(),
            ],
        );
        assert!(
            !ok && out.is_empty(),
            "partition {n} still shows a signature: {out}"
        );
        assert_eq!(peek(&img, first + MIB, 4), vec![0; 4]);
    }
    check_with_tools(&img.display().to_string(), &img, &layout, tmp.path());
}

#[test]
fn reinstall_with_overwritevmfs_gets_fresh_identities() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let img = image(tmp.path(), "disk.img", 200 * GIB);
    let (first, _) = attempt(&img, 512, |_| {}).expect("first install");
    let err = attempt(&img, 512, |_| {}).expect_err("VMFS now present");
    assert!(
        matches!(refusal(&err), LayoutRefusal::VmfsPresent { .. }),
        "{err:#}"
    );
    let (second, w) =
        attempt(&img, 512, |r| r.vmfs_policy = VmfsPolicy::Overwrite).expect("reinstall");
    assert_ne!(first.disk_guid, second.disk_guid);
    for (a, b) in first.partitions.iter().zip(&second.partitions) {
        assert_eq!(a.entry.number, b.entry.number);
        assert_ne!(
            a.entry.part_guid, b.entry.part_guid,
            "partition {}",
            a.entry.number
        );
    }
    let ids: Vec<u32> = w.fat.iter().map(|f| f.volume_id).collect();
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2],
        "random volume ids {ids:?}"
    );
    check_with_tools(&img.display().to_string(), &img, &second, tmp.path());
}

#[test]
fn block_device_reports_its_own_size_and_sector_size() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let img = image(tmp.path(), "disk.img", 40 * GIB);
    let lo = Loop::attach(&img, 4096);
    let dev = BlockDev::open(Path::new(&lo.0), 512).expect("open loop");
    assert!(dev.is_block_device());
    assert_eq!(
        (dev.size_bytes(), dev.logical_sector_size()),
        (40 * GIB, 4096)
    );
    // While we hold it for writing, nobody else gets it exclusively (as a mount would), and
    // while someone else holds it, we do not get it.
    {
        use std::os::unix::fs::OpenOptionsExt;
        let other = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_EXCL)
            .open(&lo.0);
        assert!(other.is_err(), "a second exclusive open succeeded");
    }
    drop(dev);
    {
        use std::os::unix::fs::OpenOptionsExt;
        let _held = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_EXCL)
            .open(&lo.0)
            .expect("hold the device");
        let err = BlockDev::open(Path::new(&lo.0), 512).expect_err("busy device");
        assert!(format!("{err:#}").contains("busy"), "{err:#}");
    }
    let file = BlockDev::open(&img, 4096).expect("open image");
    assert!(!file.is_block_device());
    assert_eq!(
        (file.size_bytes(), file.logical_sector_size()),
        (40 * GIB, 4096)
    );
    assert!(
        BlockDev::open(&img, 1024).is_err(),
        "1024-byte sectors are refused"
    );
    assert!(BlockDev::open(&tmp.path().join("missing"), 512).is_err());
}

// ---------------------------------------------------------------- --preservevmfs

/// An ESXi 7/8 disk made by sgdisk (not by us), with bytes in its datastore.
fn old_install(img: &Path, datastore_slot: u32, datastore_first: u64) {
    let s = img.display().to_string();
    let n = |n: u32, a: u64, b: &str, t: &str| vec![format!("-n{n}:{a}:{b}"), format!("-t{n}:{t}")];
    let mut args = vec!["-a1".to_string()];
    args.extend(n(1, 64, "204863", "EF00"));
    args.extend(n(5, 208896, "8595455", "0700"));
    args.extend(n(6, 8597504, "16984063", "0700"));
    args.extend(n(
        7,
        16986112,
        &(datastore_first - 2049).to_string(),
        "4EB2EA39-7855-4790-A79E-FAE495E21F8D",
    ));
    args.extend(n(datastore_slot, datastore_first, "0", "FB00"));
    args.push(format!("-c{datastore_slot}:datastore1"));
    args.push(s);
    let a: Vec<&str> = args.iter().map(|x| x.as_str()).collect();
    sgdisk(&a);
    // Data all over the datastore: head, VMFS metadata areas, middle, last sector.
    let base = datastore_first * 512;
    for (i, off) in [0, MIB, 2 * MIB, 3 * MIB, 10 * GIB].into_iter().enumerate() {
        poke(img, base + off, &[i as u8 + 1; 4096]);
    }
    let len = std::fs::metadata(img).expect("stat").len();
    // The last usable sector (the backup GPT takes the last 33).
    poke(img, len - 34 * 512, b"last sector of the datastore");
}

#[test]
fn preservevmfs_keeps_the_datastore_entry_and_bytes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let img = image(tmp.path(), "disk.img", 200 * GIB);
    old_install(&img, 8, 268437504);
    let old = {
        let mut dev = BlockDev::open(&img, 512).expect("open");
        read_gpt(&mut dev).expect("old gpt")
    };
    let old8 = old
        .entries
        .iter()
        .find(|e| e.number == 8)
        .expect("old 8")
        .clone();
    let len = std::fs::metadata(&img).expect("stat").len();
    let ds = (old8.first_lba * 512, (old8.last_lba + 1) * 512);
    let before = hash_range(&img, ds.0, ds.1);
    assert_eq!(ds.1, len - 33 * 512);

    let (layout, w) =
        attempt(&img, 512, |r| r.vmfs_policy = VmfsPolicy::Preserve).expect("preserve");
    assert_eq!(
        hash_range(&img, ds.0, ds.1),
        before,
        "datastore bytes changed"
    );
    assert_eq!(
        peek(&img, ds.1 - 512, 28),
        b"last sector of the datastore".to_vec()
    );
    let new8 = w
        .gpt
        .entries
        .iter()
        .find(|e| e.number == 8)
        .expect("8 kept");
    assert_eq!(new8, &old8, "datastore entry changed");
    assert_eq!(layout.partition(8).expect("8").action, Action::Preserve);
    for n in [1u32, 5, 6, 7] {
        let o = old.entries.iter().find(|e| e.number == n).expect("old");
        let p = layout.partition(n).expect("new");
        assert_ne!(o.part_guid, p.entry.part_guid, "partition {n} is new");
    }
    // The system partitions are the usual ones, in front of the datastore.
    assert_eq!(layout.partition(7).expect("7").entry.last_lba, 268435455);
    check_with_tools(&img.display().to_string(), &img, &layout, tmp.path());
    let i = sgdisk(&["-i", "8", &img.display().to_string()]);
    assert!(i.contains("Partition name: 'datastore1'"), "{i}");
}

#[test]
fn preservevmfs_without_a_datastore_warns_and_lays_out_fresh() {
    let img_dir = tempfile::tempdir().expect("tempdir");
    let img = image(img_dir.path(), "disk.img", 200 * GIB);
    let (layout, _) = attempt(&img, 512, |r| r.vmfs_policy = VmfsPolicy::Preserve).expect("plan");
    assert_eq!(layout.numbers(), vec![1, 5, 6, 7, 8]);
    assert_eq!(layout.partition(8).expect("8").action, Action::Create);
    assert!(
        layout
            .warnings
            .iter()
            .any(|w| w.contains("no VMFS datastore")),
        "{:?}",
        layout.warnings
    );
}

// ---------------------------------------------------------------- refusals leave the disk alone

/// Run `attempt`, expect an error, and show the image is byte-for-byte unchanged.
fn refused(img: &Path, tweak: impl FnOnce(&mut LayoutRequest)) -> anyhow::Error {
    let before = hash_image(img);
    let err = match attempt(img, 512, tweak) {
        Ok((l, _)) => panic!("expected a refusal, got layout {:?}", l.numbers()),
        Err(e) => e,
    };
    assert_eq!(
        hash_image(img),
        before,
        "a refusal changed the disk: {err:#}"
    );
    err
}

#[test]
fn refuses_disks_below_the_minimum() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // 31 GiB, and a "32 GB" disk in decimal units: below 32 GiB.
    for bytes in [31 * GIB, 32_000_000_000] {
        let img = image(tmp.path(), "small.img", bytes);
        poke(&img, 4096, b"old data");
        let err = refused(&img, |_| {});
        match refusal(&err) {
            LayoutRefusal::DiskTooSmall {
                bytes: b, minimum, ..
            } => {
                assert_eq!((*b, *minimum), (bytes, 32 * GIB))
            }
            other => panic!("{other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains(&bytes.to_string()) && msg.contains(&(32 * GIB).to_string()),
            "{msg}"
        );
    }
    let img = image(tmp.path(), "usb.img", 7 * GIB + 512 * MIB);
    let err = refused(&img, |r| r.kind = MediaKind::UsbOrSd);
    assert!(
        matches!(refusal(&err), LayoutRefusal::DiskTooSmall { minimum, .. } if *minimum == 8 * GIB),
        "{err:#}"
    );
}

#[test]
fn refuses_vmfs_without_overwritevmfs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let img = image(tmp.path(), "disk.img", 200 * GIB);
    old_install(&img, 8, 268437504);
    let err = refused(&img, |_| {});
    assert!(
        matches!(refusal(&err), LayoutRefusal::VmfsPresent { numbers, .. } if numbers == &vec![7, 8])
    );
    assert!(err
        .to_string()
        .contains("install --overwritevmfs not specified but test-disk contains a VMFS partition"));
    // --novmfsondisk still needs --overwritevmfs.
    let err = refused(&img, |r| r.no_vmfs_on_disk = true);
    assert!(matches!(refusal(&err), LayoutRefusal::VmfsPresent { .. }));

    // A VMFS-L (old OSData) alone also needs consent.
    let img2 = image(tmp.path(), "vmfsl.img", 64 * GIB);
    sgdisk(&[
        "-n7:2048:+10G",
        "-t7:4EB2EA39-7855-4790-A79E-FAE495E21F8D",
        &img2.display().to_string(),
    ]);
    let err = refused(&img2, |_| {});
    assert!(
        matches!(refusal(&err), LayoutRefusal::VmfsPresent { numbers, .. } if numbers == &vec![7])
    );
}

#[test]
fn refuses_vsan_disks_without_overwritevsan() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let img = image(tmp.path(), "disk.img", 64 * GIB);
    sgdisk(&[
        "-n2:2048:+10G",
        "-t2:381CFCCC-7288-11E0-92EE-000C2911D0B2",
        &img.display().to_string(),
    ]);
    let err = refused(&img, |r| r.vmfs_policy = VmfsPolicy::Overwrite);
    assert!(
        matches!(refusal(&err), LayoutRefusal::VsanClaimed { .. }),
        "{err:#}"
    );
}

#[test]
fn refuses_preservevmfs_that_cannot_be_honoured() {
    let tmp = tempfile::tempdir().expect("tempdir");

    // Datastore too early: the system partitions need the first 32 GiB.
    let img = image(tmp.path(), "early.img", 200 * GIB);
    old_install(&img, 8, 20 * GIB / 512);
    let err = refused(&img, |r| r.vmfs_policy = VmfsPolicy::Preserve);
    match refusal(&err) {
        LayoutRefusal::PreserveNoRoom {
            needed_bytes,
            datastore_start_bytes,
            number,
            ..
        } => {
            assert_eq!(
                (*number, *needed_bytes, *datastore_start_bytes),
                (8, 32 * GIB, 20 * GIB)
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .contains("do not fit in front of the datastore"),
        "{err}"
    );

    // ... or with an explicit OSData size that does not fit in front of it.
    let img = image(tmp.path(), "osdata.img", 200 * GIB);
    old_install(&img, 8, 40 * GIB / 512);
    let err = refused(&img, |r| {
        r.vmfs_policy = VmfsPolicy::Preserve;
        r.osdata_size_mib = Some(64 * 1024);
    });
    assert!(
        matches!(refusal(&err), LayoutRefusal::PreserveNoRoom { .. }),
        "{err:#}"
    );

    // With --novmfsondisk.
    let err = refused(&img, |r| {
        r.vmfs_policy = VmfsPolicy::Preserve;
        r.no_vmfs_on_disk = true;
    });
    assert!(
        matches!(refusal(&err), LayoutRefusal::PreserveWithNoVmfs),
        "{err:#}"
    );

    // The datastore sits in a slot the system needs.
    let img = image(tmp.path(), "slot.img", 200 * GIB);
    sgdisk(&["-n5:100G:0", "-t5:FB00", &img.display().to_string()]);
    let err = refused(&img, |r| r.vmfs_policy = VmfsPolicy::Preserve);
    assert!(
        matches!(
            refusal(&err),
            LayoutRefusal::PreserveSlotTaken { number: 5, .. }
        ),
        "{err:#}"
    );

    // Two datastores: which one?
    let img = image(tmp.path(), "two.img", 300 * GIB);
    sgdisk(&[
        "-n2:100G:+50G",
        "-t2:FB00",
        "-n3:200G:0",
        "-t3:FB00",
        &img.display().to_string(),
    ]);
    let err = refused(&img, |r| r.vmfs_policy = VmfsPolicy::Preserve);
    assert!(
        matches!(refusal(&err), LayoutRefusal::PreserveAmbiguous { .. }),
        "{err:#}"
    );

    // An entry the inventory reports outside the usable area (e.g. a damaged table).
    let img = image(tmp.path(), "bounds.img", 200 * GIB);
    let err = refused(&img, |r| {
        r.vmfs_policy = VmfsPolicy::Preserve;
        r.existing = vec![PartitionEntry {
            number: 8,
            type_guid: types::VMFS,
            part_guid: Uuid::new_v4(),
            first_lba: 100 * GIB / 512,
            last_lba: 200 * GIB / 512,
            attributes: 0,
            name: "datastore1".into(),
        }];
    });
    assert!(
        matches!(refusal(&err), LayoutRefusal::PreserveOutOfBounds { .. }),
        "{err:#}"
    );
}

#[test]
fn refuses_osdata_sizes_that_do_not_fit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let img = image(tmp.path(), "disk.img", 64 * GIB);
    let err = refused(&img, |r| r.osdata_size_mib = Some(60 * 1024));
    match refusal(&err) {
        LayoutRefusal::OsDataTooLarge {
            requested_mib,
            available_mib,
            ..
        } => {
            assert_eq!(*requested_mib, 60 * 1024);
            assert_eq!(*available_mib, (64 * GIB - 8294 * MIB) / MIB - 1);
        }
        other => panic!("{other:?}"),
    }
    let err = refused(&img, |r| r.osdata_size_mib = Some(0));
    assert!(matches!(refusal(&err), LayoutRefusal::OsDataZero));
    let err = refused(&img, |r| r.logical_sector_size = 1024);
    assert!(matches!(
        refusal(&err),
        LayoutRefusal::UnsupportedSectorSize { size: 1024, .. }
    ));
}

#[test]
fn apply_refuses_a_disk_that_changed_since_planning() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Planned for 200 GiB, the disk is now 201 GiB.
    let img = image(tmp.path(), "disk.img", 201 * GIB);
    poke(&img, 0, b"old boot sector");
    let layout = plan_layout(&LayoutRequest::new("d", 200 * GIB, 512)).expect("plan");
    let before = hash_image(&img);
    let mut dev = BlockDev::open(&img, 512).expect("open");
    let err = apply_layout(&mut dev, &layout).expect_err("size changed");
    assert!(
        matches!(
            err.downcast_ref::<ApplyRefusal>(),
            Some(ApplyRefusal::DiskChanged { .. })
        ),
        "{err:#}"
    );
    assert_eq!(hash_image(&img), before);

    // Planned to keep datastore 8, which someone renamed since.
    let img = image(tmp.path(), "pres.img", 200 * GIB);
    old_install(&img, 8, 268437504);
    let mut dev = BlockDev::open(&img, 512).expect("open");
    let mut req = LayoutRequest::new("d", 200 * GIB, 512);
    req.existing = read_gpt(&mut dev).expect("gpt").entries;
    req.vmfs_policy = VmfsPolicy::Preserve;
    let layout = plan_layout(&req).expect("plan");
    drop(dev);
    sgdisk(&["-c8:renamed", &img.display().to_string()]);
    let before = hash_image(&img);
    let mut dev = BlockDev::open(&img, 512).expect("open");
    let err = apply_layout(&mut dev, &layout).expect_err("entry changed");
    assert!(
        matches!(
            err.downcast_ref::<ApplyRefusal>(),
            Some(ApplyRefusal::PreservedChanged { number: 8, .. })
        ),
        "{err:#}"
    );
    assert_eq!(hash_image(&img), before);
}

// ---------------------------------------------------------------- the planner alone

#[test]
fn options_shape_the_table() {
    let mut req = LayoutRequest::new("d", 2048 * GIB, 512);
    req.no_vmfs_on_disk = true;
    let l = plan_layout(&req).expect("plan");
    assert_eq!(
        l.numbers(),
        vec![1, 5, 6, 7],
        "--novmfsondisk: no datastore"
    );
    assert_eq!(
        l.partition(7).expect("7").entry.last_lba,
        128 * GIB / 512 - 1
    );

    let mut req = LayoutRequest::new("d", 2048 * GIB, 4096);
    req.osdata_size_mib = Some(8192);
    let l = plan_layout(&req).expect("plan");
    let p7 = &l.partition(7).expect("7");
    assert_eq!(p7.size_bytes, 8 * GIB, "autoPartitionOSDataSize=8192");
    assert_eq!(
        l.partition(8).expect("8").entry.first_lba,
        p7.entry.last_lba + 1 + 256
    );

    // A USB stick bigger than 32 GiB: 4 GB banks, no OSData, no datastore.
    let mut req = LayoutRequest::new("usb", 64 * GIB, 512);
    req.kind = MediaKind::UsbOrSd;
    req.osdata_size_mib = Some(8192);
    let l = plan_layout(&req).expect("plan");
    assert_eq!(l.numbers(), vec![1, 5, 6]);
    assert!(l.osdata_elsewhere && !l.warnings.is_empty());
    assert_eq!(l.partition(5).expect("5").size_bytes, 4095 * MIB);

    // 142 GiB is not "larger than 142 GB": no datastore; just above, one.
    let l = plan_layout(&LayoutRequest::new("d", 142 * GIB, 512)).expect("plan");
    assert_eq!(l.numbers(), vec![1, 5, 6, 7]);
    let l = plan_layout(&LayoutRequest::new("d", 143 * GIB, 512)).expect("plan");
    assert_eq!(l.numbers(), vec![1, 5, 6, 7, 8]);
}

#[test]
fn dry_run_shows_numbers_lbas_sizes_guids_names_filesystems() {
    let l = plan_layout(&LayoutRequest::new("naa.600", 200 * GIB, 512)).expect("plan");
    let json: serde_json::Value = serde_json::to_value(&l).expect("json");
    let p5 = &json["partitions"][1];
    assert_eq!(p5["entry"]["number"], 5);
    assert_eq!(p5["entry"]["first_lba"], 208896);
    assert_eq!(p5["entry"]["last_lba"], 8595455);
    assert_eq!(p5["size_bytes"], 4095 * MIB);
    assert_eq!(
        p5["entry"]["type_guid"],
        "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"
    );
    assert_eq!(p5["entry"]["name"], "BOOTBANK1");
    assert_eq!(p5["filesystem"]["type"], "fat16");
    assert_eq!(p5["filesystem"]["bytes_per_cluster"], 65536);
    let back: Layout = serde_json::from_value(json).expect("round trip");
    assert_eq!(back, l);
    let text = l.dry_run_text();
    for needle in [
        "naa.600",
        "268437504",
        "VMFS-L, formatted by ESXi at first boot",
        "BOOTBANK2",
        &l.partition(8).expect("8").entry.part_guid.to_string(),
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn planning_is_deterministic_given_the_ids() {
    let req = LayoutRequest::new("d", 500 * GIB, 512);
    let mk = || {
        let mut n = 0u128;
        plan_layout_with_ids(&req, &mut move || {
            n += 1;
            Uuid::from_u128(n)
        })
        .expect("plan")
    };
    assert_eq!(mk(), mk());
    // Every GUID, volume id and bank UUID is distinct.
    let l = plan_layout(&req).expect("plan");
    let mut guids: Vec<Uuid> = l.partitions.iter().map(|p| p.entry.part_guid).collect();
    guids.push(l.disk_guid);
    guids.sort();
    guids.dedup();
    assert_eq!(guids.len(), 6);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn media() -> impl Strategy<Value = SystemMediaSize> {
        prop_oneof![
            Just(SystemMediaSize::Min),
            Just(SystemMediaSize::Small),
            Just(SystemMediaSize::Default),
            Just(SystemMediaSize::Max)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn every_plan_is_well_formed(
            mib in (8u64 * 1024)..(64 * 1024 * 1024),
            extra in 0u64..2048,
            sector in prop_oneof![Just(512u32), Just(4096u32)],
            usb in any::<bool>(),
            media in media(),
            osdata in proptest::option::of(1u64..200_000),
            novmfs in any::<bool>(),
        ) {
            let bytes = mib * MIB + extra * 512;
            let mut req = LayoutRequest::new("p", bytes, sector);
            req.kind = if usb { MediaKind::UsbOrSd } else { MediaKind::SystemDisk };
            req.media_size = media;
            req.osdata_size_mib = osdata;
            req.no_vmfs_on_disk = novmfs;
            let l = match plan_layout(&req) {
                Ok(l) => l,
                Err(LayoutRefusal::DiskTooSmall { .. }) => {
                    let min = if usb { 8 * GIB } else { 32 * GIB };
                    prop_assert!(bytes < min);
                    return Ok(());
                }
                Err(LayoutRefusal::OsDataTooLarge { .. }) => {
                    prop_assert!(osdata.is_some());
                    return Ok(());
                }
                Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
            };
            let ss = u64::from(sector);
            let nums = l.numbers();
            prop_assert!(nums == vec![1, 5, 6] || nums == vec![1, 5, 6, 7] || nums == vec![1, 5, 6, 7, 8]);
            prop_assert_eq!(nums.len() == 3, usb);
            let room_after_7 = l.partition(7).map(|p| p.entry.last_lba < l.last_usable_lba - (2 * GIB) / ss);
            let want8 = !usb && !novmfs && bytes > 142 * GIB && room_after_7 == Some(true);
            prop_assert_eq!(nums.contains(&8), want8);
            let mut prev_end = l.first_usable_lba - 1;
            for p in &l.partitions {
                let e = &p.entry;
                prop_assert!(e.first_lba > prev_end && e.last_lba <= l.last_usable_lba);
                prop_assert_eq!(p.size_bytes, e.sectors() * ss);
                if e.number != 1 {
                    prop_assert_eq!(e.first_lba * ss % MIB, 0, "partition {} aligned", e.number);
                    prop_assert!(e.first_lba - prev_end > MIB / ss, "1 MiB gap before {}", e.number);
                }
                if let Filesystem::Fat16 { bytes_per_cluster, .. } = &p.filesystem {
                    // FAT16 cluster count stays below 65525 (two reserved sectors, 2 FATs
                    // of at least 2 bytes per cluster, 512 root entries = 16 KiB).
                    let clusters = p.size_bytes / u64::from(*bytes_per_cluster);
                    prop_assert!((4085..65525).contains(&clusters), "{} clusters", clusters);
                    prop_assert!(*bytes_per_cluster as u64 / ss <= 128);
                }
                prev_end = e.last_lba;
            }
            prop_assert_eq!(l.partition(5).map(|p| p.size_bytes), Some(bootbank_slot_bytes(bytes) - MIB));
            if let (Some(p7), None, Some(cap)) = (l.partition(7), osdata, match media {
                SystemMediaSize::Min => Some(32 * GIB), SystemMediaSize::Small => Some(64 * GIB),
                SystemMediaSize::Default => Some(128 * GIB), SystemMediaSize::Max => None }) {
                prop_assert!((p7.entry.last_lba + 1) * ss <= cap);
            }
            if let (Some(p7), Some(o)) = (l.partition(7), osdata) {
                prop_assert_eq!(p7.size_bytes, o * MIB);
            }
        }
    }
}

mod hostile_input {
    use super::*;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = PartitionEntry> {
        (
            0u32..300,
            prop_oneof![
                Just(types::VMFS),
                Just(types::VMFSL),
                Just(types::BASIC_DATA),
                Just(types::VSAN)
            ],
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(|(number, type_guid, a, b)| PartitionEntry {
                number,
                type_guid,
                part_guid: Uuid::from_u128(u128::from(a) << 64 | u128::from(b)),
                first_lba: a.min(b) % (1 << 34),
                last_lba: if a % 7 == 0 { b } else { a.max(b) % (1 << 34) },
                attributes: 0,
                name: "x".into(),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// Whatever the inventory reports, planning does not panic, and a preserved datastore is
        /// never overlapped by anything we create or wipe.
        #[test]
        fn planning_never_panics_and_never_touches_what_it_keeps(
            gib in 0u64..20_000,
            existing in proptest::collection::vec(entry(), 0..4),
            policy in prop_oneof![Just(VmfsPolicy::Refuse), Just(VmfsPolicy::Overwrite), Just(VmfsPolicy::Preserve)],
            osdata in proptest::option::of(any::<u64>()),
            usb in any::<bool>(),
            vsan in any::<bool>(),
        ) {
            let mut req = LayoutRequest::new("h", gib * GIB, 512);
            req.existing = existing;
            req.vmfs_policy = policy;
            req.osdata_size_mib = osdata;
            req.overwrite_vsan = vsan;
            if usb { req.kind = MediaKind::UsbOrSd; }
            if let Ok(l) = plan_layout(&req) {
                for kept in l.partitions.iter().filter(|p| p.action == Action::Preserve) {
                    prop_assert!(req.existing.contains(&kept.entry));
                    let (a, b) = (kept.entry.first_lba, kept.entry.last_lba);
                    for p in l.partitions.iter().filter(|p| p.action == Action::Create) {
                        prop_assert!(p.entry.last_lba < a || p.entry.first_lba > b);
                    }
                    for w in &l.wipes {
                        prop_assert!(w.last_lba < a || w.first_lba > b);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- clearpart and the boot media

fn disk(id: &str, boot: bool, vmfs: bool, usb_loop: bool) -> DiskFacts {
    DiskFacts {
        id: id.into(),
        aliases: vec![format!("/vmfs/devices/disks/{id}"), format!("vml.{id}")],
        is_boot_media: boot,
        has_vmfs: vmfs,
        is_usb_loop: usb_loop,
    }
}

fn line(target: ClearpartTarget, overwrite_vmfs: bool) -> Clearpart {
    Clearpart {
        target,
        overwrite_vmfs,
    }
}

#[test]
fn clearpart_selects_disks_and_never_the_boot_media() {
    let disks = vec![
        disk("mpx.boot", true, false, false),
        disk("naa.a", false, false, false),
        disk("naa.b", false, true, false),
        disk("t10.stick", false, false, true),
    ];
    let d = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    assert_eq!(
        clearpart_disks(&disks, &[line(ClearpartTarget::AllDrives, true)]),
        Ok(d(&["naa.a", "naa.b"])),
        "--alldrives skips the boot media and the installer stick"
    );
    assert_eq!(
        clearpart_disks(&disks, &[line(ClearpartTarget::AllDrives, false)]),
        Err(SafetyRefusal::VmfsWithoutOverwrite {
            disk: "naa.b".into()
        })
    );
    assert_eq!(
        clearpart_disks(
            &disks,
            &[line(
                ClearpartTarget::Drives(d(&["/vmfs/devices/disks/naa.a"])),
                false
            )]
        ),
        Ok(d(&["naa.a"])),
        "aliases resolve"
    );
    assert!(matches!(
        clearpart_disks(
            &disks,
            &[line(ClearpartTarget::Drives(d(&["mpx.boot"])), true)]
        ),
        Err(SafetyRefusal::BootMedia { .. })
    ));
    assert!(matches!(
        clearpart_disks(&disks, &[line(ClearpartTarget::Drives(d(&["naa.typo"])), true)]),
        Err(SafetyRefusal::UnknownDrive { available, .. }) if available.len() == 4
    ));
    assert_eq!(
        clearpart_disks(
            &disks,
            &[line(
                ClearpartTarget::IgnoreDrives(d(&["vml.naa.b"])),
                false
            )]
        ),
        Ok(d(&["naa.a"])),
        "--ignoredrives keeps the named disk, the boot media and the stick"
    );
    assert!(matches!(
        clearpart_disks(
            &disks,
            &[line(ClearpartTarget::IgnoreDrives(d(&["naa.typo"])), true)]
        ),
        Err(SafetyRefusal::UnknownDrive { .. })
    ));
    assert_eq!(
        clearpart_disks(
            &disks,
            &[line(ClearpartTarget::FirstDisk(Some("naa.b".into())), true)]
        ),
        Ok(d(&["naa.b"]))
    );
    assert_eq!(
        clearpart_disks(&disks, &[line(ClearpartTarget::FirstDisk(None), true)]),
        Err(SafetyRefusal::NoFirstDisk)
    );
    assert!(matches!(
        clearpart_disks(
            &disks,
            &[line(
                ClearpartTarget::FirstDisk(Some("mpx.boot".into())),
                true
            )]
        ),
        Err(SafetyRefusal::BootMedia { .. })
    ));
    // Repeated clearpart lines accumulate; consent on any line covers the disk.
    assert_eq!(
        clearpart_disks(
            &disks,
            &[
                line(ClearpartTarget::Drives(d(&["naa.b"])), false),
                line(ClearpartTarget::Drives(d(&["naa.a", "naa.b"])), true),
            ]
        ),
        Ok(d(&["naa.b", "naa.a"]))
    );
    assert!(check_install_target(&disks[0]).is_err());
    assert!(check_install_target(&disks[1]).is_ok());
    assert_eq!(
        SafetyRefusal::NoFirstDisk.outcome(),
        ksinstall::exit::Outcome::Precondition
    );
}

#[test]
fn preservevmfs_keeps_a_datastore_in_its_own_slot() {
    // A 6.x-style disk whose datastore is partition 3, far enough out for the 8.0 system.
    let tmp = tempfile::tempdir().expect("tempdir");
    let img = image(tmp.path(), "disk.img", 300 * GIB);
    let s = img.display().to_string();
    sgdisk(&[
        "-n1:2048:+4M",
        "-t1:EF00",
        "-n3:150G:0",
        "-t3:FB00",
        "-c3:datastore1",
        &s,
    ]);
    let first3 = 150 * GIB / 512;
    poke(&img, first3 * 512 + MIB, b"VMFS volume header");
    let end3 = (300 * GIB / 512 - 33) * 512;
    let before = hash_range(&img, first3 * 512, end3);
    let (layout, _) =
        attempt(&img, 512, |r| r.vmfs_policy = VmfsPolicy::Preserve).expect("preserve slot 3");
    assert_eq!(layout.numbers(), vec![1, 3, 5, 6, 7]);
    assert_eq!(
        layout.partition(7).expect("7").entry.last_lba,
        128 * GIB / 512 - 1
    );
    assert_eq!(hash_range(&img, first3 * 512, end3), before);
    let v = sgdisk(&["-v", &s]);
    assert!(v.contains("No problems found"), "{v}");
    let (_, rows) = sgdisk_rows(&s);
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1, 3, 5, 6, 7]
    );
}

#[test]
fn apply_refuses_a_tampered_plan_before_writing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let img = image(tmp.path(), "disk.img", 200 * GIB);
    old_install(&img, 8, 268437504);
    let mut dev = BlockDev::open(&img, 512).expect("open");
    let mut req = LayoutRequest::new("d", 200 * GIB, 512);
    req.existing = read_gpt(&mut dev).expect("gpt").entries;
    req.vmfs_policy = VmfsPolicy::Preserve;
    let good = plan_layout(&req).expect("plan");
    let before = hash_image(&img);

    let mut tampered: Vec<(Layout, &str)> = Vec::new();
    let mut l = good.clone();
    l.wipes.push(layout::Wipe {
        first_lba: 268437504 + 2048,
        last_lba: 268437504 + 4095,
        why: "bad".into(),
    });
    tampered.push((l, "wipe into the preserved datastore"));
    let mut l = good.clone();
    l.partitions[2].entry.first_lba -= 4096; // 6 overlaps 5
    tampered.push((l, "overlapping partitions"));
    let mut l = good.clone();
    if let Filesystem::Fat16 {
        bytes_per_cluster, ..
    } = &mut l.partitions[1].filesystem
    {
        *bytes_per_cluster = 128 * 1024;
    }
    tampered.push((l, "cluster size fatfs would panic on"));
    let mut l = good.clone();
    if let Filesystem::Fat16 { label, .. } = &mut l.partitions[0].filesystem {
        *label = "A LABEL TOO LONG".into();
    }
    tampered.push((l, "label"));
    let mut l = good.clone();
    l.partitions[4].entry.number = 200;
    tampered.push((l, "slot beyond the array"));
    let mut l = good.clone();
    l.last_usable_lba += 10;
    tampered.push((l, "geometry"));

    for (l, what) in tampered {
        let err = apply_layout(&mut dev, &l).expect_err(what);
        let expected = if what.starts_with("wipe") {
            "WouldTouchPreserved"
        } else {
            "InvalidLayout"
        };
        let got = format!("{:?}", err.downcast_ref::<ApplyRefusal>());
        assert!(
            got.starts_with(&format!("Some({expected}")),
            "{what}: {err:#}"
        );
        assert_eq!(outcome_of(&err), ksinstall::exit::Outcome::Precondition);
        assert_eq!(hash_image(&img), before, "{what} changed the disk");
    }
}

#[test]
fn errors_map_to_exit_codes() {
    use ksinstall::exit::Outcome;
    let refusal: anyhow::Error = LayoutRefusal::OsDataZero.into();
    assert_eq!(outcome_of(&refusal), Outcome::Precondition);
    let verify: anyhow::Error = VerifyFailed("x".into()).into();
    assert_eq!(outcome_of(&verify.context("apply")), Outcome::Verify);
    let io: anyhow::Error = std::io::Error::other("disk gone").into();
    assert_eq!(outcome_of(&io), Outcome::Write);
}

#[test]
fn part_datastore_disk_is_one_vmfs_partition() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for sector in [512u32, 4096] {
        let img = image(tmp.path(), "ds.img", 100 * GIB);
        let lo = (sector == 4096).then(|| Loop::attach(&img, 4096));
        let target = lo
            .as_ref()
            .map(|l| l.0.clone())
            .unwrap_or_else(|| img.display().to_string());
        let mut dev = BlockDev::open(Path::new(&target), 512).expect("open");
        let req = DatastoreRequest {
            disk_id: "naa.data".into(),
            disk_bytes: dev.size_bytes(),
            logical_sector_size: dev.logical_sector_size(),
            name: "datastore2".into(),
            existing: read_gpt(&mut dev).map(|g| g.entries).unwrap_or_default(),
            cleared: false,
        };
        let layout = plan_datastore_disk(&req).expect("plan");
        apply_layout(&mut dev, &layout).expect("apply");
        drop(dev);
        let ss = u64::from(sector);
        let v = sgdisk(&["-v", &target]);
        assert!(v.contains("No problems found"), "{v}");
        let (_, rows) = sgdisk_rows(&target);
        let last_usable = 100 * GIB / ss - 2 - 16384 / ss;
        assert_eq!(
            rows,
            vec![(
                1,
                MIB / ss,
                last_usable,
                "FB00".to_string(),
                "datastore2".to_string()
            )]
        );
        let (found, out, _) = run(
            "blkid",
            &["-p", "-O", &MIB.to_string(), "-o", "export", &target],
        );
        assert!(
            !found,
            "an unformatted datastore shows no file system: {out}"
        );
        drop(lo);
        std::fs::remove_file(&img).expect("rm");
    }
}

#[test]
fn part_refuses_a_used_disk_unless_cleared_and_bad_names() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let img = image(tmp.path(), "ds.img", 100 * GIB);
    sgdisk(&["-n1:2048:+10G", "-t1:8300", &img.display().to_string()]);
    let mut req = DatastoreRequest {
        disk_id: "naa.data".into(),
        disk_bytes: 100 * GIB,
        logical_sector_size: 512,
        name: "datastore2".into(),
        existing: {
            let mut dev = BlockDev::open(&img, 512).expect("open");
            read_gpt(&mut dev).expect("gpt").entries
        },
        cleared: false,
    };
    let before = hash_image(&img);
    let err = plan_datastore_disk(&req).expect_err("not empty");
    assert!(
        matches!(err, LayoutRefusal::DatastoreDiskNotEmpty { ref numbers, .. } if numbers == &vec![1]),
        "{err}"
    );
    assert_eq!(hash_image(&img), before);
    for bad in ["", "a/b", " lead", "trail ", "x".repeat(37).as_str()] {
        let mut r = req.clone();
        r.name = bad.to_string();
        assert!(
            matches!(
                plan_datastore_disk(&r),
                Err(LayoutRefusal::DatastoreName { .. })
            ),
            "{bad:?}"
        );
    }
    let mut small = req.clone();
    small.disk_bytes = 2 * GIB;
    assert!(matches!(
        plan_datastore_disk(&small),
        Err(LayoutRefusal::DiskTooSmall { .. })
    ));
    req.cleared = true;
    let layout = plan_datastore_disk(&req).expect("cleared by clearpart");
    let mut dev = BlockDev::open(&img, 512).expect("open");
    apply_layout(&mut dev, &layout).expect("apply");
    let v = sgdisk(&["-v", &img.display().to_string()]);
    assert!(v.contains("No problems found"), "{v}");

    let install = disk("naa.sys", false, false, false);
    let data = disk("naa.data", false, false, false);
    assert_eq!(
        safety::check_part_target(&install, "naa.sys"),
        Err(SafetyRefusal::PartOnInstallDisk {
            disk: "naa.sys".into()
        })
    );
    assert!(safety::check_part_target(&data, "naa.sys").is_ok());
    assert!(safety::check_part_target(&disk("mpx.boot", true, false, false), "naa.sys").is_err());
}
