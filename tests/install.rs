//! `ksinstall install` end to end, judged by tools nobody here wrote: a synthetic medium
//! installed into a sparse 40 GB image, then `sgdisk`, `fsck.fat`, `mtools`, `tar` and
//! `sha256sum`-equivalent hashing of what `mcopy` gets back; failures leave no bootable bank.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::setup::{ks_text, Setup, PASSWORD};
use common::text;
use common::{hash_image, mcopy_out, run, sha256_file, GIB};
use testkit::synth;

const P1: u64 = 64 * 512;
const P5: u64 = 208_896 * 512;

/// A 40 GB image holding a completed install, for tests about what a second run may do to it.
fn installed_disk(s: &Setup) -> PathBuf {
    let img = s.path("disk.img");
    let ok = s.install(
        &s.ks(&ks_german("")),
        &["--disk", img.to_str().unwrap(), "--disk-size", "40G"],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    img
}

/// The install tests' kickstart: the shared one with a keyboard layout (first boot must apply
/// it), then `extra`.
fn ks_german(extra: &str) -> String {
    ks_text(&format!("keyboard German\n{extra}"))
}

/// The install must be refused with `code`, saying `says`.
fn refused(out: &Output, code: i32, says: &str) {
    assert_eq!(out.status.code(), Some(code), "{}", text(out));
    assert!(text(out).contains(says), "{says:?} not in: {}", text(out));
}

fn bank_boot_cfg(img: &Path) -> Option<String> {
    bank_boot_cfg_in(img, 5)
}

/// Copy `what` out of the FAT at byte `offset` of `img` with the real mcopy.

#[test]
fn a_full_install_checks_out_with_real_tools() {
    let s = Setup::new("256M");
    let ks = s.ks(&ks_german("%firstboot --interpreter=busybox\necho first boot\n%firstboot --interpreter=python\nprint('hi')\n"));
    let img = s.path("disk.img");
    let report = s.path("report.json");
    let out = s.install(
        &ks,
        &[
            "--disk",
            img.to_str().unwrap(),
            "--disk-size",
            "40G",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 40 * GIB);

    let (ok, v, _) = run("sgdisk", &["-v", img.to_str().unwrap()]);
    assert!(ok && v.contains("No problems found"), "{v}");
    let (_, p, _) = run("sgdisk", &["-p", img.to_str().unwrap()]);
    let numbers: Vec<&str> = p
        .lines()
        .skip_while(|l| !l.starts_with("Number"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        numbers,
        ["1", "5", "6", "7"],
        "40 GB gets no datastore:\n{p}"
    );

    for (n, first, last) in [
        (1u32, 64u64, 204_863u64),
        (5, 208_896, 8_595_455),
        (6, 8_597_504, 16_984_063),
    ] {
        let part = s.path(&format!("p{n}.img"));
        common::extract(&img, first * 512, (last + 1) * 512, &part);
        let (ok, out, err) = run("fsck.fat", &["-n", part.to_str().unwrap()]);
        assert!(ok, "fsck.fat partition {n}: {out}{err}");
    }

    // Every module and bootloader file, copied back out with mcopy, hashes to the manifest.
    let back = s.path("back");
    std::fs::create_dir(&back).unwrap();
    mcopy_out(&img, P5, "::/", &back);
    let m = s.manifest();
    let mut checked = 0;
    for c in m.components.iter().filter(|c| {
        c.role == ksinstall::media::Role::Kernel || c.role == ksinstall::media::Role::Module
    }) {
        assert_eq!(sha256_file(&back.join(&c.path)), c.sha256, "{}", c.path);
        checked += 1;
    }
    assert_eq!(checked, 108, "kernel, 106 VIB modules, imgdb.tgz");
    // Each VIB-covered module is the descriptor's bytes: its sha-256 as imgdb.tgz gives it.
    let media = ksinstall::media::Media::open(&s.path("media").display().to_string()).unwrap();
    for c in media.bank_components() {
        if let ksinstall::media::Coverage::Vib { .. } = c.coverage {
            assert_eq!(sha256_file(&back.join(&c.path)), c.sha256, "{}", c.path);
        } else {
            assert_eq!(c.path, "imgdb.tgz");
            assert_eq!(
                sha256_file(&back.join("imgdb.tgz")),
                sha256_file(&s.path("media/IMGDB.TGZ"))
            );
        }
    }
    assert!(
        !back.join("esxiodpt.tgz").exists(),
        "the DPU depot is not the host's"
    );
    let esp = s.path("esp");
    std::fs::create_dir(&esp).unwrap();
    mcopy_out(&img, P1, "::/", &esp);
    for c in m
        .components
        .iter()
        .filter(|c| c.role == ksinstall::media::Role::Bootloader)
    {
        let on_esp = esp.join(c.esp_path.as_deref().unwrap());
        assert_eq!(sha256_file(&on_esp), c.sha256, "{}", on_esp.display());
    }
    // Where ESXi's installer puts the real ISO's loaders (media.md §3).
    for (on_esp, on_media) in [
        ("EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/SAFEBOOT.EFI"),
        ("EFI/VMware/safeboot64.efi", "EFI/BOOT/SAFEBOOT.EFI"),
        ("EFI/VMware/mboot64.efi", "EFI/BOOT/BOOTX64.EFI"),
        ("EFI/VMware/crypto64.efi", "EFI/BOOT/CRYPTO64.EFI"),
        ("safeboot.c32", "SAFEBOOT.C32"),
        ("mboot.c32", "MBOOT.C32"),
        ("ldlinux.sys", "LDLINUX.SYS"),
    ] {
        assert_eq!(
            sha256_file(&esp.join(on_esp)),
            sha256_file(&s.path("media").join(on_media)),
            "{on_esp}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(esp.join("syslinux.cfg")).unwrap(),
        "DEFAULT safeboot.c32 -S 1\n"
    );

    // boot.cfg: what ESXi's bootloader checks.
    let cfg = bank_boot_cfg(&img).expect("boot.cfg on bank 0");
    for want in [
        "bootstate=0\n",
        "kernel=b.b00\n",
        &format!("build={}\n", m.build),
        "updated=1\n",
        "title=Loading VMware ESXi\n",
        "prefix=\n",
    ] {
        assert!(cfg.contains(want), "{want:?} not in\n{cfg}");
    }
    let modules = cfg
        .lines()
        .find_map(|l| l.strip_prefix("modules="))
        .unwrap();
    assert!(
        modules.starts_with("jumpstrt.gz --- useropts.gz --- ")
            && modules.ends_with(" --- gc.v00 --- imgdb.tgz --- onetime.tgz")
            && !modules.contains("state.tgz")
            && !modules.contains('/')
            && !modules.contains("esxiodpt")
            && !modules.contains("basemisc"),
        "{modules}"
    );
    assert!(
        cfg.contains("kernelopt=autoPartition=FALSE\n"),
        "8.x's installed kernelopt switches auto-partitioning off:\n{cfg}"
    );
    assert!(
        bank_boot_cfg_in(&img, 6).is_none(),
        "bank 1 stays without boot.cfg until an upgrade"
    );

    // No state.tgz on a fresh install (ESXi's accounts stay); onetime.tgz holds what the
    // kickstart said, in the form ESXi's first boot reads (tests/firstboot.rs runs it).
    assert!(!back.join("state.tgz").exists());
    let onetime = back.join("onetime.tgz");
    let json: serde_json::Value = serde_json::from_str(&tar_file(
        &onetime,
        "var/lib/vmware/firstboot/firstboot.json",
    ))
    .unwrap();
    let hash = json["password"].as_str().unwrap();
    assert!(
        hash.starts_with("$6$") && !hash.contains(PASSWORD),
        "{json}"
    );
    assert_eq!(json["keyboard"], "German");
    assert_eq!(json["bootCfgPath"], "/bootbank/boot.cfg");
    assert_eq!(
        json["copyFiles"]["/var/lib/vmware/firstboot/esx.conf"],
        "/etc/vmware/esx.conf"
    );
    let conf = tar_file(&onetime, "var/lib/vmware/firstboot/esx.conf");
    for want in [
        "/adv/Misc/HostName = \"esx1\"",
        "/net/vmkernelnic/child[0000]/ipv4address = \"10.1.2.3\"",
        "/net/routes/kernel/gateway = \"10.1.2.1\"",
        "/net/vswitch/child[0000]/portgroup/child[0000]/name = \"Management Network\"",
    ] {
        assert!(conf.contains(want), "{want} not in\n{conf}");
    }
    assert_eq!(
        tar_file(&onetime, "var/lib/vmware/firstboot/resolv.conf"),
        "search example\nnameserver 10.1.2.2\n"
    );
    let fb = tar_file(&onetime, "var/lib/vmware/firstboot/001.firstboot_001");
    assert_eq!(fb, "#!/bin/sh -l\necho first boot\n");
    let fb2 = tar_file(&onetime, "var/lib/vmware/firstboot/002.firstboot_002");
    assert_eq!(fb2, "#!/usr/bin/python\nprint('hi')\n");

    // The plain password is nowhere: not in the image, the log or the report.
    let r = std::fs::read_to_string(&report).unwrap();
    assert!(!r.contains(PASSWORD) && !log.contains(PASSWORD));
    assert!(
        !common::image_contains(&img, PASSWORD.as_bytes()),
        "the plain password is in the image"
    );
    assert!(
        common::image_contains(&img, b"bootstate=0"),
        "the search itself works"
    );
    let v: serde_json::Value = serde_json::from_str(&r).unwrap();
    assert_eq!(v["exit_code"], 0);
    assert_eq!(
        v["files"].as_array().unwrap().len(),
        7 + 1 + 108 + 2,
        "7 loader files + syslinux.cfg on the ESP; kernel, 106 modules, imgdb.tgz; onetime.tgz + boot.cfg"
    );
    // VMware's imgdb.tgz is the image's record on a bank; no file of ours stands beside it.
    assert!(!v["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"] == "imgdb.json"));
    assert!(v["timings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["step"] == "bootbank"));
    // The same record is kept on the boot bank.
    let (ok, record, err) = run(
        "mtype",
        &[
            "-i",
            &format!("{}@@{P5}", img.display()),
            "::/ksinstall.json",
        ],
    );
    assert!(ok, "{err}");
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["media"]["build"], m.build.as_str());
    assert_eq!(record["files"].as_array().unwrap().len(), 7 + 1 + 108 + 1);
    let uncovered = record["media"]["not_covered"].to_string();
    assert!(
        uncovered.contains("\"imgdb.tgz\"") && uncovered.contains("\"esxiodpt.tgz\""),
        "{uncovered}"
    );
    assert!(!record.to_string().contains(PASSWORD));
}

fn bank_boot_cfg_in(img: &Path, n: u32) -> Option<String> {
    let off = if n == 6 { 8_597_504 * 512 } else { P5 };
    let (ok, out, _) = run(
        "mtype",
        &["-i", &format!("{}@@{off}", img.display()), "::/boot.cfg"],
    );
    ok.then_some(out)
}

/// The bytes of one member of a .tgz, through the real tar.
fn tar_listing(tgz: &Path, member: &str) -> Vec<u8> {
    let out = Command::new("tar")
        .arg("-xzOf")
        .arg(tgz)
        .arg(member)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tar {}: {}",
        tgz.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn tar_file(tgz: &Path, member: &str) -> String {
    String::from_utf8(tar_listing(tgz, member)).unwrap()
}

fn flip_byte(f: &Path) {
    let mut b = std::fs::read(f).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0x01;
    std::fs::write(f, b).unwrap();
}

#[test]
fn a_flipped_byte_in_the_media_is_found_before_anything_is_written() {
    let s = Setup::new("64M");
    let img = installed_disk(&s);
    let before = hash_image(&img);
    flip_byte(&s.path("media/VIM.V00"));
    let out = s.install(&s.ks(&ks_german("")), &["--disk", img.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("vim.v00: SHA-256"), "{}", text(&out));
    assert_eq!(
        hash_image(&img),
        before,
        "the old install must survive bad media"
    );
}

#[test]
fn without_the_media_check_a_bad_module_stops_the_lay_down_and_leaves_no_bootable_bank() {
    let s = Setup::new("64M");
    let img = installed_disk(&s);
    assert!(bank_boot_cfg(&img).is_some_and(|c| c.contains("bootstate=0")));
    flip_byte(&s.path("media/VIM.V00"));
    let out = s.install(
        &s.ks(&ks_german("")),
        &["--disk", img.to_str().unwrap(), "--skip-media-check"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    // Streaming, the mismatch names the file, the VIB that covers it and its payload.
    assert!(
        text(&out).contains("bootbank")
            && text(&out).contains("vim.v00 (VIB VMware_bootbank_esx-base_8.0.3-")
            && text(&out).contains(", payload vim): SHA-256 is "),
        "{}",
        text(&out)
    );
    assert!(
        bank_boot_cfg(&img).is_none(),
        "the bank that held boot.cfg must not be bootable now"
    );
}

#[test]
fn plan_time_failures_and_dry_run_leave_the_disk_byte_identical() {
    let s = Setup::new("32M");
    // A disk that already holds an install: a second install is what must not touch it.
    let img = installed_disk(&s);
    let before = hash_image(&img);
    let disk = ["--disk", img.to_str().unwrap()];

    // The dry run says what first boot applies: the VLAN, the name servers, each %firstboot.
    let vlan = s.install(
        &s.ks(&ks_german("%firstboot --interpreter=busybox\necho hi\n")
            .replace("--nameserver", "--vlanid=42 --nameserver")),
        &[&disk[..], &["--dry-run"]].concat(),
    );
    let said = String::from_utf8_lossy(&vlan.stdout).into_owned();
    let first_boot: Vec<&str> = said
        .lines()
        .skip_while(|l| !l.starts_with("First boot applies (onetime.tgz):"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    for want in [
        "  VLAN 42",
        "  DNS 10.1.2.2",
        "  %firstboot 001.firstboot_001 (busybox, ",
    ] {
        assert!(
            first_boot.iter().any(|l| l.starts_with(want)),
            "{want:?} not in {first_boot:?}"
        );
    }
    let dry = s.install(&s.ks(&ks_german("")), &[&disk[..], &["--dry-run"]].concat());
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(
        plan.contains("First boot applies") && !plan.contains("  %firstboot "),
        "{plan}"
    );
    assert!(
        plan.contains("BOOTBANK1") && plan.contains("ERASED"),
        "{plan}"
    );
    let json = s.install(
        &s.ks(&ks_german("")),
        &[&disk[..], &["--dry-run", "--progress", "json"]].concat(),
    );
    let v: serde_json::Value = String::from_utf8_lossy(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "plan")
        .expect("a plan event")["plan"]
        .clone();
    assert_eq!(v["layout"]["partitions"].as_array().unwrap().len(), 4);
    assert_eq!(v["boot_cfg"]["bootstate"], 0);
    assert!(!String::from_utf8_lossy(&json.stdout).contains(PASSWORD));

    // Invalid kickstart: 2.
    let bad = s.install(
        &s.ks("vmaccepteula\nrootpw vagrant\ninstall --firstdisk\n"),
        &disk,
    );
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    // Media problems: 4 (a truncated module, a module name leaving the media).
    let trunc = s.path("media/XORG.V00");
    let len = std::fs::metadata(&trunc).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&trunc)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let out = s.install(&s.ks(&ks_german("")), &disk);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("xorg.v00"), "{}", text(&out));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&trunc)
        .unwrap()
        .set_len(len)
        .unwrap();
    let cfg = std::fs::read_to_string(s.path("media/BOOT.CFG")).unwrap();
    std::fs::write(s.path("media/BOOT.CFG"), cfg.replace("/k.b00", "/../k.b00")).unwrap();
    let out = s.install(&s.ks(&ks_german("")), &disk);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("../k.b00"), "{}", text(&out));
    std::fs::write(s.path("media/BOOT.CFG"), cfg).unwrap();
    // Preconditions: 3 (upgrade not built; a VMFS-L disk without --overwritevmfs).
    let up = s.install(&s.ks("vmaccepteula\nupgrade --firstdisk\n"), &disk);
    assert_eq!(up.status.code(), Some(3), "{}", text(&up));
    let no_ow = s.install(&s.ks(&ks_german("").replace(" --overwritevmfs", "")), &disk);
    assert_eq!(no_ow.status.code(), Some(3), "{}", text(&no_ow));
    assert!(text(&no_ow).contains("--overwritevmfs"), "{}", text(&no_ow));
    let iou = s.install(
        &s.ks(&ks_german("").replace(
            "install --firstdisk --overwritevmfs",
            "installorupgrade --firstdisk",
        )),
        &disk,
    );
    assert_eq!(
        iou.status.code(),
        Some(3),
        "an existing ESXi is never silently reinstalled: {}",
        text(&iou)
    );

    // A part datastore on a disk that is not the one planned (the fixture's sdb is an empty
    // file): refused before anything is written (tests/firstboot.rs lays one out).
    let part = s.install(
        &s.ks(&ks_german("part ds2 --ondisk=naa.5002538e40a1b2c4\n")),
        &disk,
    );
    refused(&part, 3, "the plan is for 1000204886016 bytes");
    // clearpart of other disks is not built yet: refused, not ignored.
    let clear = s.install(
        &s.ks(&ks_german("clearpart --alldrives --overwritevmfs\n")),
        &disk,
    );
    // The fixture's dev/ files are empty where sysfs says 1 TB: clearpart refuses to clear a
    // disk that is not the one the plan read, before anything is written (tests/install.rs
    // `clearpart_clears_the_other_disks` clears real ones).
    refused(
        &clear,
        3,
        "is 0 bytes, not the 1000204886016 bytes its sysfs entry says",
    );
    // A bootloader path that FAT cannot hold is refused at plan time (an extra loader of custom
    // media, given by MANIFEST.JSON beside VMware's metadata).
    let extra = b"an extra loader";
    std::fs::write(s.path("media/EFI/BOOT/EXTRA.EFI"), extra).unwrap();
    let m = serde_json::json!({
        "format": 1, "version": "8.0.3", "build": s.manifest().build,
        "components": [{
            "path": "EFI/BOOT/EXTRA.EFI", "size": extra.len(),
            "sha256": ksinstall::media::verify::sha256_hex(extra),
            "platform": "x86_64", "role": "bootloader",
            "esp_path": "EFI/VMware-x/extra.efi"
        }]
    });
    std::fs::write(s.path("media/MANIFEST.JSON"), m.to_string()).unwrap();
    let esp = s.install(&s.ks(&ks_german("")), &disk);
    assert_eq!(esp.status.code(), Some(4), "{}", text(&esp));
    assert!(text(&esp).contains("VMware-x"), "{}", text(&esp));
    std::fs::remove_file(s.path("media/MANIFEST.JSON")).unwrap();

    assert_eq!(
        hash_image(&img),
        before,
        "a refused install changed the disk"
    );
    // A refused install into a new image leaves no image behind.
    let fresh = s.path("fresh.img");
    let out = s.install(
        &s.ks("vmaccepteula\nupgrade --firstdisk\n"),
        &["--disk", fresh.to_str().unwrap(), "--disk-size", "40G"],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(!fresh.exists());
}

#[test]
fn post_scripts_run_after_the_install_and_their_failure_is_exit_8() {
    let s = Setup::new("32M");
    let img = s.path("disk.img");
    let marker = s.path("post-ran");
    let ks = s.ks(&ks_german(&format!(
        "%post --interpreter=busybox\necho done > {}\n",
        marker.display()
    )));
    let out = s.install(
        &ks,
        &["--disk", img.to_str().unwrap(), "--disk-size", "40G"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "done\n");
    let ks = s.ks(&ks_german("%post --interpreter=busybox\nexit 3\n"));
    let out = s.install(&ks, &["--disk", img.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(8), "{}", text(&out));
    assert!(text(&out).contains("%post script failed"), "{}", text(&out));
    let ks = s.ks(&ks_german(
        "%post --interpreter=busybox --ignorefailure=true\nexit 3\n",
    ));
    let out = s.install(&ks, &["--disk", img.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ks = s.ks(&ks_german(
        "%post --interpreter=busybox --timeout=1\nsleep 30\n",
    ));
    let out = s.install(&ks, &["--disk", img.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(8), "{}", text(&out));
    assert!(text(&out).contains("--timeout of 1s"), "{}", text(&out));
}

#[test]
fn json_progress_has_stable_steps_in_order() {
    let s = Setup::new("64M");
    let img = s.path("disk.img");
    let out = s.install(
        &s.ks(&ks_german("")),
        &[
            "--disk",
            img.to_str().unwrap(),
            "--disk-size",
            "40G",
            "--progress",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let started: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "step_started")
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        started,
        [
            "media",
            "partition",
            "bootloader",
            "bootbank",
            "verify",
            "bootcfg"
        ]
    );
    let last_bank = events
        .iter()
        .rfind(|e| e["event"] == "progress" && e["step"] == "bootbank")
        .unwrap();
    assert_eq!(last_bank["percent"], 100.0);
    assert_eq!(last_bank["done_bytes"], last_bank["total_bytes"]);
    assert_eq!(events.last().unwrap()["event"], "finished");
    assert_eq!(events.last().unwrap()["exit_code"], 0);
}

/// A small HTTP/1.1 file server on 127.0.0.1 for the tests: GET and HEAD of files below `root`,
/// one connection at a time, closed after each answer. Stops when the test ends.
fn serve(root: PathBuf) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" {
                    break;
                }
            }
            let mut parts = request.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
            let file = root.join(path.trim_start_matches('/'));
            match std::fs::read(&file) {
                Ok(body) => {
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    if method == "GET" {
                        let _ = conn.write_all(&body);
                    }
                }
                Err(_) => {
                    let _ = write!(
                        conn,
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                }
            }
        }
    });
    format!("http://{addr}")
}

#[test]
fn url_includes_and_http_media_are_fetched_from_a_real_server() {
    let s = Setup::new("16M");
    std::fs::write(s.path("media/net.cfg"), "network --bootproto=static --ip=10.9.8.7 --netmask=255.255.255.0 --gateway=10.9.8.1 --hostname=from-url\n").unwrap();
    let base = serve(s.path("media"));
    let ks = s.ks(&format!("vmaccepteula\nrootpw '{PASSWORD}'\ninstall --firstdisk --overwritevmfs\n%include {base}/net.cfg\n"));
    let img = s.path("disk.img");
    let report = s.path("report.json");
    let out = s.install_from(
        base.as_ref(),
        &ks,
        &[
            "--disk",
            img.to_str().unwrap(),
            "--disk-size",
            "40G",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(
        v["host"]["hostname"], "from-url",
        "the included network command was used"
    );
    assert_eq!(v["media"]["location"], base.as_str());
    let m = s.manifest();
    let k = m.find("k.b00").unwrap();
    let w = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "k.b00")
        .unwrap();
    assert_eq!(
        w["sha256"],
        k.sha256.as_str(),
        "streamed over HTTP, read back from the disk"
    );
}

/// Rewrite the media's IMGDB.TGZ with `tar`, after `edit` changed the unpacked tree.
fn edit_imgdb(media: &Path, edit: impl FnOnce(&Path)) {
    let t = tempfile::tempdir().unwrap();
    let tgz = media.join("IMGDB.TGZ");
    let (ok, _, err) = run(
        "tar",
        &[
            "xzf",
            tgz.to_str().unwrap(),
            "-C",
            t.path().to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    edit(t.path());
    let (ok, _, err) = run(
        "tar",
        &[
            "czf",
            tgz.to_str().unwrap(),
            "-C",
            t.path().to_str().unwrap(),
            "profiles",
            "vibs",
        ],
    );
    assert!(ok, "{err}");
}

fn replace_in_dir(dir: &Path, from: &str, to: &str) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let x = std::fs::read_to_string(&p).unwrap();
        if x.contains(from) {
            std::fs::write(&p, x.replace(from, to)).unwrap();
        }
    }
}

#[test]
fn media_disagreeing_with_vmwares_metadata_stop_before_the_first_write() {
    let s = Setup::new("16M");
    let img = installed_disk(&s);
    let before = hash_image(&img);
    let disk = ["--disk", img.to_str().unwrap()];
    let good = std::fs::read(s.path("media/IMGDB.TGZ")).unwrap();
    let size = std::fs::metadata(s.path("media/VIM.V00")).unwrap().len();
    type Edit = Box<dyn Fn(&Path)>;
    let cases: [(&str, Edit); 3] = [
        // A descriptor whose size disagrees with the file.
        (
            "vim.v00: is ",
            Box::new(move |db: &Path| {
                replace_in_dir(
                    &db.join("vibs"),
                    &format!("size=\"{size}\""),
                    &format!("size=\"{}\"", size + 2),
                )
            }),
        ),
        // A payload BOOT.CFG loads that the image profile does not name.
        (
            "tools.t00: BOOT.CFG loads it, but no VIB payload",
            Box::new(|db: &Path| {
                replace_in_dir(
                    &db.join("profiles"),
                    "<payload payload-name=\"tools\">tools.t00</payload>",
                    "",
                )
            }),
        ),
        // A profile entry whose VIB has no descriptor.
        (
            "imgdb.tgz: the image profile names VIB",
            Box::new(|db: &Path| {
                for e in std::fs::read_dir(db.join("vibs")).unwrap() {
                    let p = e.unwrap().path();
                    if p.file_name().unwrap().to_str().unwrap().starts_with("xorg") {
                        std::fs::remove_file(p).unwrap();
                    }
                }
            }),
        ),
    ];
    for (want, edit) in cases {
        edit_imgdb(&s.path("media"), edit);
        let out = s.install(&s.ks(&ks_german("")), &disk);
        assert_eq!(out.status.code(), Some(4), "{}", text(&out));
        assert!(text(&out).contains(want), "{want}: {}", text(&out));
        std::fs::write(s.path("media/IMGDB.TGZ"), &good).unwrap();
    }
    // A corrupt imgdb.tgz.
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    std::fs::write(s.path("media/IMGDB.TGZ"), &bad).unwrap();
    let out = s.install(&s.ks(&ks_german("")), &disk);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("imgdb.tgz"), "{}", text(&out));
    std::fs::write(s.path("media/IMGDB.TGZ"), &good).unwrap();
    assert_eq!(hash_image(&img), before, "refused media changed the disk");
}

#[test]
fn an_install_from_an_extracted_tree_with_lower_case_names() {
    let s = Setup::new("16M");
    let media = s.path("media");
    let (ok, _, err) = run(
        "sh",
        &["-c", &format!("cd {} && for f in $(find . -depth -name '*[A-Z]*'); do mv \"$f\" \"$(dirname $f)/$(basename $f | tr A-Z a-z)\"; done", media.display())],
    );
    assert!(ok, "{err}");
    assert!(media.join("boot.cfg").is_file() && !media.join("BOOT.CFG").exists());
    let img = s.path("disk.img");
    let out = s.install(
        &s.ks(&ks_german("")),
        &["--disk", img.to_str().unwrap(), "--disk-size", "40G"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let back = s.path("back");
    std::fs::create_dir(&back).unwrap();
    mcopy_out(&img, P5, "::/", &back);
    let m = s.manifest();
    for c in m
        .components
        .iter()
        .filter(|c| c.role == ksinstall::media::Role::Module)
    {
        assert_eq!(sha256_file(&back.join(&c.path)), c.sha256, "{}", c.path);
    }
}

#[test]
fn an_install_straight_from_an_iso_image() {
    let s = Setup::new("16M");
    let iso = s.path("esxi.iso");
    synth::make_iso(&s.path("media"), &iso).unwrap();
    let img = s.path("disk.img");
    let out = s.install_from(
        iso.as_os_str(),
        &s.ks(&ks_german("")),
        &["--disk", img.to_str().unwrap(), "--disk-size", "40G"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!s.path("media/MANIFEST.JSON").exists());
    let cfg = bank_boot_cfg(&img).expect("boot.cfg");
    assert!(
        cfg.contains(&format!("build={}", s.manifest().build)),
        "{cfg}"
    );
    // The plan says what vouched for the files, what nothing covers, and the signatures.
    let dry = s.install_from(
        iso.as_os_str(),
        &s.ks(&ks_german("")),
        &["--disk", img.to_str().unwrap(), "--dry-run"],
    );
    let log = text(&dry);
    assert!(
        log.contains("verified by: VMware's image database"),
        "{log}"
    );
    assert!(
        log.contains("not covered by any VIB: ") && log.contains("esxiodpt.tgz"),
        "{log}"
    );
    assert!(log.contains("signatures: not checked"), "{log}");
    let back = s.path("back");
    std::fs::create_dir(&back).unwrap();
    mcopy_out(&img, P5, "::/", &back);
    for c in s
        .manifest()
        .components
        .iter()
        .filter(|c| c.role == ksinstall::media::Role::Module)
    {
        assert_eq!(sha256_file(&back.join(&c.path)), c.sha256, "{}", c.path);
    }
}

#[test]
fn a_disk_we_cannot_read_may_hide_vmfs_and_needs_overwritevmfs() {
    let s = Setup::new("16M");
    let img = s.path("disk.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(40 * GIB)
        .unwrap();
    // Data at LBA 0 that is neither a GPT nor an MBR.
    common::poke(&img, 0, b"not a partition table, but not empty either");
    let before = hash_image(&img);
    let no_ow = ks_german("").replace(" --overwritevmfs", "");
    let out = s.install(&s.ks(&no_ow), &["--disk", img.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("cannot read as a partition table")
            && text(&out).contains("--overwritevmfs"),
        "{}",
        text(&out)
    );
    // An MBR partition typed VMFS (0xFB).
    let mut mbr = vec![0u8; 512];
    mbr[446 + 4] = 0xFB;
    mbr[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
    mbr[446 + 12..446 + 16].copy_from_slice(&1_000_000u32.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    common::poke(&img, 0, &mbr);
    let before_mbr = hash_image(&img);
    let out = s.install(&s.ks(&no_ow), &["--disk", img.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("MBR partition typed VMFS"),
        "{}",
        text(&out)
    );
    assert_eq!(hash_image(&img), before_mbr);
    assert_ne!(before, before_mbr);
    // With consent it installs.
    let out = s.install(&s.ks(&ks_german("")), &["--disk", img.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

// ---- What a new user hit (issue 16): every promise of "nothing is written" kept. ----

/// A 40 GB image whose first MiBs and a spot in the middle hold a pattern: a disk with
/// something on it, so that any write shows.
fn disk_with_data(s: &Setup, name: &str) -> PathBuf {
    let img = common::image(s.dir.path(), name, 40 * GIB);
    let pattern: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    common::poke(&img, 0, &pattern);
    common::poke(&img, 20 * GIB, &pattern);
    img
}

#[test]
fn a_kickstart_saying_dryrun_writes_nothing_and_prints_the_plan() {
    let s = Setup::new("32M");
    let img = disk_with_data(&s, "data.img");
    let before = hash_image(&img);
    let report = s.path("report.json");
    let out = s.install(
        &s.ks(&ks_german("reboot\ndryrun\n")),
        &[
            "--disk",
            img.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        hash_image(&img),
        before,
        "dryrun in the kickstart changed the disk"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ERASED") && stdout.contains("Dry run: nothing was written"),
        "{stdout}"
    );
    assert!(text(&out).contains("ks.cfg:7:1: dryrun"), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["dry_run"], true);
    assert_eq!(r["files"], serde_json::Value::Null);

    // The same through `boot` (the installer image's entry point): no write, no reboot.
    // boot reads ks=file:// below the sysroot.
    let sysroot = s.path("root");
    common::copy_fixture("plain", &sysroot);
    std::fs::create_dir_all(sysroot.join("ks")).unwrap();
    std::fs::write(sysroot.join("ks/ks.cfg"), ks_german("reboot\ndryrun\n")).unwrap();
    let boot = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .arg("boot")
        .arg("--media")
        .arg(s.path("media"))
        .arg("--sysroot")
        .arg(&sysroot)
        .args(["--cmdline", "ks=file:///ks/ks.cfg", "--disk"])
        .arg(&img)
        .output()
        .unwrap();
    assert_eq!(boot.status.code(), Some(0), "{}", text(&boot));
    assert_eq!(
        hash_image(&img),
        before,
        "dryrun through boot changed the disk"
    );
    assert!(
        !text(&boot).contains("reboot"),
        "a dry run says nothing of rebooting: {}",
        text(&boot)
    );
}

#[test]
fn pre_scripts_run_only_where_asked() {
    let s = Setup::new("32M");
    let img = disk_with_data(&s, "data.img");
    let before = hash_image(&img);
    let marker = s.path("pre-ran");
    let made = s.path("made-by-pre.cfg");
    let ks = s.ks(&format!(
        "{}%include {}\n%pre --interpreter=busybox\ntouch {}\necho 'keyboard German' > {}\n",
        ks_german(""),
        made.display(),
        marker.display(),
        made.display()
    ));
    let disk = ["--disk", img.to_str().unwrap()];

    // A dry run previews; it does not execute the kickstart's script on this machine.
    let dry = s.install(&ks, &[&disk[..], &["--dry-run"]].concat());
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert!(!marker.exists(), "install --dry-run ran %pre");
    assert!(text(&dry).contains("%pre was not run"), "{}", text(&dry));
    assert!(
        text(&dry).contains(&format!(
            "%include {} not read: %pre did not run",
            made.display()
        )),
        "{}",
        text(&dry)
    );

    // A real install of a kickstart with %pre needs --run-pre; refused, disk untouched.
    let real = s.install(&ks, &disk);
    refused(&real, 3, "runs only with --run-pre");
    assert!(!marker.exists(), "install ran %pre without --run-pre");
    assert_eq!(hash_image(&img), before);

    // Asked for: it runs, and what it made is read.
    let run = s.install(&ks, &[&disk[..], &["--dry-run", "--run-pre"]].concat());
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(marker.exists(), "--run-pre did not run %pre");
    assert!(!text(&run).contains("not read"), "{}", text(&run));
    assert_eq!(hash_image(&img), before);
}

#[test]
fn what_the_run_needs_is_checked_before_the_first_write() {
    let s = Setup::new("32M");
    let img = disk_with_data(&s, "data.img");
    let before = hash_image(&img);
    let ks = s.ks(&ks_german(""));

    // A report that cannot be written: refused before the disk is touched.
    let out = s.install(
        &ks,
        &[
            "--disk",
            img.to_str().unwrap(),
            "--report",
            "/nonexistent-dir/report.json",
        ],
    );
    refused(
        &out,
        3,
        "--report /nonexistent-dir/report.json: cannot be written",
    );
    assert_eq!(hash_image(&img), before);
    // A report is a file: never JSON written over a device, not even on a dry run.
    let out = s.install(
        &ks,
        &[
            "--disk",
            img.to_str().unwrap(),
            "--dry-run",
            "--report",
            "/dev/null",
        ],
    );
    refused(&out, 3, "--report /dev/null: not a regular file");

    // A read-only image: refused at plan time, named.
    let mut perms = std::fs::metadata(&img).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o444);
    std::fs::set_permissions(&img, perms.clone()).unwrap();
    let out = s.install(&ks, &["--disk", img.to_str().unwrap()]);
    refused(
        &out,
        3,
        &format!("{}: cannot be written: read-only file", img.display()),
    );
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(&img, perms).unwrap();
    assert_eq!(hash_image(&img), before);

    // A dry run into an image still to be created plans at the size it would have, and
    // creates nothing.
    let new = s.path("new.img");
    let out = s.install(
        &ks,
        &[
            "--disk",
            new.to_str().unwrap(),
            "--disk-size",
            "40G",
            "--dry-run",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("40 GiB") && stdout.contains("a new sparse image file"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ESX-OSData") || stdout.contains("OSDATA"),
        "{stdout}"
    );
    assert!(!new.exists(), "a dry run created the image");

    // Decimal units are ambiguous: refused with the way out.
    let out = s.install(
        &ks,
        &["--disk", new.to_str().unwrap(), "--disk-size", "40GB"],
    );
    refused(&out, 1, "use 40G or 40GiB");
    // Media that is not there says so in the system's words.
    let out = s.install_from(
        std::ffi::OsStr::new("/nonexistent"),
        &ks,
        &["--disk", img.to_str().unwrap()],
    );
    refused(&out, 4, "/nonexistent: No such file or directory");
}

#[test]
fn refusals_write_the_report_and_end_the_event_stream() {
    let s = Setup::new("32M");
    let img = disk_with_data(&s, "data.img");
    let report = s.path("report.json");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "--disk",
            img.to_str().unwrap(),
            "--progress",
            "json",
            "--report",
            report.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let read_report = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&report).expect("the report is written")).unwrap()
    };
    let cases: [(&str, i32, &str); 3] = [
        (
            "vmaccepteula\nrootpw vagrant\ninstall --firstdisk\n",
            2,
            "kickstart",
        ),
        (
            "vmaccepteula\nrootpw 'Plain-Secret-99x'\ninstall --disk=mpx.vmhba9:C0:T9:L0\n",
            3,
            "plan",
        ),
        (
            "vmaccepteula\nrootpw 'Plain-Secret-99x'\nupgrade --firstdisk\n",
            3,
            "plan",
        ),
    ];
    for (ks, code, step) in cases {
        let _ = std::fs::remove_file(&report);
        let a = args(&[]);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = s.install(&s.ks(ks), &refs);
        assert_eq!(out.status.code(), Some(code), "{ks}: {}", text(&out));
        let ev = common::json_lines(&out);
        let last = ev.last().expect("events");
        assert_eq!(last["event"], "finished", "{ks}");
        assert_eq!(last["exit_code"], code, "{ks}");
        let r = read_report();
        assert_eq!(r["exit_code"], code, "{ks}");
        assert_eq!(r["error"]["step"], step, "{ks}: {r}");
        assert!(!r.to_string().contains("Plain-Secret-99x"));
    }
    // A kickstart file that cannot be read at all.
    let _ = std::fs::remove_file(&report);
    let a = args(&[]);
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = s.install(&s.path("no-such-ks.cfg"), &refs);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no-such-ks.cfg: No such file or directory"),
        "{}",
        text(&out)
    );
    assert_eq!(
        common::json_lines(&out).last().unwrap()["event"],
        "finished"
    );
    assert_eq!(read_report()["error"]["step"], "source");

    // A CA file that is not there: refused like any other input, with the report and `finished`.
    let _ = std::fs::remove_file(&report);
    let mut a = args(&[]);
    a.extend(["--ca-file".to_string(), "/nonexistent/ca.pem".to_string()]);
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = s.install(&s.ks(&ks_german("")), &refs);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("/nonexistent/ca.pem"), "{}", text(&out));
    assert_eq!(
        common::json_lines(&out).last().unwrap()["event"],
        "finished"
    );
    assert_eq!(read_report()["error"]["step"], "source");

    // A refusal before the kickstart never writes its report over a device either.
    let out = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .args(["boot", "--cmdline", "ks=uuid:1234", "--report", "/dev/null"])
        .arg("--sysroot")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plain"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("--report /dev/null: not a regular file"),
        "{}",
        text(&out)
    );

    // `boot` without ks= refuses --dry-run the same way (the console cannot honour it).
    let _ = std::fs::remove_file(&report);
    let out = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .args([
            "boot",
            "--cmdline",
            "",
            "--dry-run",
            "--progress",
            "json",
            "--report",
        ])
        .arg(&report)
        .arg("--sysroot")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plain"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        common::json_lines(&out).last().unwrap()["event"],
        "finished"
    );
    assert_eq!(read_report()["error"]["step"], "source");
}

#[test]
fn the_report_times_every_step_of_the_run() {
    let s = Setup::new("32M");
    let img = s.path("disk.img");
    let report = s.path("report.json");
    let out = s.install(
        &s.ks(&ks_german("%post --interpreter=busybox\ntrue\n")),
        &[
            "--disk",
            img.to_str().unwrap(),
            "--disk-size",
            "40G",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let steps: Vec<&str> = r["timings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "kickstart",
            "plan",
            "media",
            "partition",
            "bootloader",
            "bootbank",
            "verify",
            "bootcfg",
            "post"
        ]
    );
    assert!(!text(&out).contains("cannot open"), "{}", text(&out));
}

#[test]
fn help_lists_every_progress_value_and_the_exit_codes() {
    for cmd in ["install", "boot"] {
        let out = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
            .args([cmd, "--help"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let help = String::from_utf8_lossy(&out.stdout);
        for value in ["auto:", "tty:", "json:", "none:"] {
            assert!(help.contains(value), "{cmd} --help lacks {value}: {help}");
        }
        for code in [
            "Exit codes:",
            " 2  invalid kickstart",
            " 9  the DPU said nothing",
        ] {
            assert!(help.contains(code), "{cmd} --help lacks {code:?}: {help}");
        }
    }
}

#[test]
fn a_disk_we_cannot_open_is_not_a_warning_when_disk_names_the_target() {
    let s = Setup::new("32M");
    let sysroot = s.path("root");
    common::copy_fixture("plain", &sysroot);
    // A disk the inventory lists but cannot open (as a non-root user meets /dev/sda).
    std::fs::remove_file(sysroot.join("dev/sdb")).unwrap();
    let img = s.path("disk.img");
    let out = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .arg("install")
        .arg("--ks")
        .arg(s.ks(&ks_german("")))
        .arg("--media")
        .arg(s.path("media"))
        .arg("--sysroot")
        .arg(&sysroot)
        .args(["--cmdline", "", "--dry-run", "--disk"])
        .arg(&img)
        .args(["--disk-size", "40G"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("cannot open"), "{}", text(&out));
}

#[test]
fn the_firmware_directory_is_found_beside_the_installed_binary_never_in_the_build_tree() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("usr/bin/ksinstall");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_ksinstall"), &bin).unwrap();
    let probe = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .args(["probe", "--format", "json", "--sysroot"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bluefield3"))
        .output()
        .unwrap();
    let probe_json = dir.path().join("probe.json");
    std::fs::write(&probe_json, &probe.stdout).unwrap();
    let hcl = || {
        Command::new(&bin)
            .args(["hcl", "check"])
            .arg(&probe_json)
            .env_remove("CARGO_MANIFEST_DIR")
            .output()
            .unwrap()
    };
    // Installed alone: no firmware anywhere it looks, and it says where it looked.
    let out = hcl();
    assert_eq!(out.status.code(), Some(13), "{}", text(&out));
    assert!(
        text(&out).contains("no firmware directory: give --firmware DIR")
            && text(&out).contains(
                &dir.path()
                    .join("usr/share/ksinstall/firmware")
                    .display()
                    .to_string()
            ),
        "{}",
        text(&out)
    );
    // Installed with its data in PREFIX/share/ksinstall/firmware: found there.
    let share = dir.path().join("usr/share/ksinstall");
    std::fs::create_dir_all(&share).unwrap();
    common::cp_a(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware"),
        &share.join("firmware"),
    );
    let out = hcl();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("OK: 1 host(s)"), "{}", text(&out));
}

/// `clearpart --alldrives --overwritevmfs` with `install --firstdisk`: the other disks are
/// cleared as the kickstart says, the dry run shows it first, `validate` agrees, and a disk
/// holding VMFS still needs the kickstart's consent.
#[test]
fn clearpart_clears_the_other_disks() {
    let s = Setup::new("32M");
    let sysroot = s.path("root");
    common::copy_fixture("plain", &sysroot);
    // Each fixture disk gets a sparse file of the size its sysfs entry says.
    for (name, sectors) in [
        ("sda", 1_953_525_168u64),
        ("sdb", 1_953_525_168),
        ("sdc", 31_277_232),
        ("sdd", 7_814_037_168),
        ("nvme0n1", 7_501_476_528),
    ] {
        let f = std::fs::File::create(sysroot.join("dev").join(name)).unwrap();
        f.set_len(sectors * 512).unwrap();
    }
    let sdb = sysroot.join("dev/sdb");
    let (ok, _, err) = run(
        "sgdisk",
        &[
            "-n",
            "1:2048:+1G",
            "-t",
            "1:FB00",
            "-n",
            "2:0:+1G",
            "-t",
            "2:0700",
            sdb.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    // A VMFS volume header's place (1 MiB into the partition) holds something: a datastore.
    common::poke(&sdb, 2048 * 512 + (1 << 20), b"\x0d\xd0\x01\xc0 not zeros");
    let img = s.path("disk.img");
    let with = |clear: &str| {
        s.ks(&format!(
            "vmaccepteula\nrootpw '{PASSWORD}'\ninstall --firstdisk --overwritevmfs\n{clear}\n"
        ))
    };
    let install = |ks: &Path, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ksinstall"))
            .arg("install")
            .arg("--ks")
            .arg(ks)
            .arg("--media")
            .arg(s.path("media"))
            .arg("--sysroot")
            .arg(&sysroot)
            .args(["--cmdline", "", "--disk"])
            .arg(&img)
            .args(["--disk-size", "40G"])
            .args(extra)
            .output()
            .unwrap()
    };
    // Without --overwritevmfs on clearpart, the datastore on sdb is refused.
    let no = install(&with("clearpart --alldrives"), &[]);
    refused(&no, 3, "clearpart --overwritevmfs not specified");
    // validate calls the kickstart valid, and install does it: first the plan.
    let ks = with("clearpart --alldrives --overwritevmfs");
    let v = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .arg("validate")
        .arg(&ks)
        .output()
        .unwrap();
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    assert!(
        text(&v).contains("will also clear every disk but the installer's own media"),
        "{}",
        text(&v)
    );
    let dry = install(&ks, &["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    let plan = String::from_utf8_lossy(&dry.stdout);
    for d in ["sda", "sdb", "sdc", "sdd", "nvme0n1"] {
        assert!(
            plan.lines().any(|l| l.starts_with("clearpart: ")
                && l.contains(&format!("/dev/{d})"))
                && l.contains("ZEROED")),
            "{d}: {plan}"
        );
    }
    assert!(plan.contains("VMFS (p1)"), "{plan}");
    let (_, p, _) = run("sgdisk", &["-p", sdb.to_str().unwrap()]);
    assert!(p.contains("FB00"), "a dry run clears nothing: {p}");
    let out = install(&ks, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // sgdisk finds no partition table on sdb any more, blkid no signature at its old datastore.
    let (_, p, _) = run("sgdisk", &["-p", sdb.to_str().unwrap()]);
    assert!(
        p.contains("Creating new GPT entries") && !p.contains("FB00"),
        "{p}"
    );
    assert!(common::peek(&sdb, 2048 * 512, 4 << 20)
        .iter()
        .all(|b| *b == 0));
    assert!(bank_boot_cfg(&img).unwrap().contains("bootstate=0"));
}

/// `--systemdisk` is never dropped in silence: kickstart-examples/06 names the usb-boot
/// fixture's SATA disk and the plan says what becomes of it; a disk that is not there is
/// refused with the disks that are.
#[test]
fn systemdisk_is_resolved_and_said() {
    let s = Setup::new("32M");
    let sysroot = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/usb-boot");
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("kickstart-examples/06-usb-systemdisk.cfg");
    let dry = |ks: &Path| {
        Command::new(env!("CARGO_BIN_EXE_ksinstall"))
            .arg("install")
            .arg("--ks")
            .arg(ks)
            .arg("--media")
            .arg(s.path("media"))
            .arg("--sysroot")
            .arg(&sysroot)
            .args(["--cmdline", "", "--dry-run"])
            .output()
            .unwrap()
    };
    let out = dry(&example);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("--systemdisk names naa.5000c500c0ffee01 (/dev/sda)"),
        "{t}"
    );
    assert!(!t.contains("it needs install --systemdisk="), "{t}");
    assert!(t.contains("ESX-OSData is not written there"), "{t}");
    let missing = s.ks(&std::fs::read_to_string(&example)
        .unwrap()
        .replace("naa.5000c500c0ffee01", "naa.doesnotexist"));
    let out = dry(&missing);
    refused(&out, 3, "install --systemdisk=naa.doesnotexist");
    assert!(
        text(&out).contains("naa.5000c500c0ffee01"),
        "{}",
        text(&out)
    );
}

/// A `%post` that fails under `--ignorefailure=true`: the install succeeds, the report's
/// warnings say so, and its output and exit status reach the console and the report without
/// RUST_LOG.
#[test]
fn script_output_and_status_reach_the_console_and_the_report() {
    let s = Setup::new("32M");
    let img = s.path("disk.img");
    let report = s.path("report.json");
    let ks = s.ks(&ks_german(
        "%post --interpreter=busybox --ignorefailure=true\necho hello from post\necho to stderr >&2\nexit 3\n%post --interpreter=busybox\necho second ran\n",
    ));
    let out = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .arg("install")
        .arg("--ks")
        .arg(&ks)
        .arg("--media")
        .arg(s.path("media"))
        .arg("--sysroot")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plain"))
        .args(["--cmdline", "", "--disk"])
        .arg(&img)
        .args(["--disk-size", "40G", "--report"])
        .arg(&report)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "%post ",
        ": hello from post",
        ": to stderr",
        ": %post returned exit status: 3",
        ": second ran",
        ": exit status: 0",
    ] {
        assert!(err.contains(want), "{want:?} not in {err}");
    }
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let warnings = r["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| {
            let w = w.as_str().unwrap();
            w.contains("exit status: 3") && w.contains("--ignorefailure=true")
        }),
        "{warnings:?}"
    );
    let scripts = r["scripts"].as_array().unwrap();
    assert_eq!(scripts.len(), 2, "{scripts:?}");
    assert_eq!(scripts[0]["section"], "%post");
    assert_eq!(scripts[0]["ok"], false);
    assert_eq!(scripts[0]["status"], "%post returned exit status: 3");
    assert!(scripts[0]["output"]
        .as_str()
        .unwrap()
        .contains("hello from post\nto stderr\n"));
    assert_eq!(scripts[1]["ok"], true);
    assert_eq!(scripts[1]["status"], "exit status: 0");
}
