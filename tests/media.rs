//! Installation media as the installer opens it: VMware's metadata (the public 7.0 image database
//! and the real-format media `cargo xtask mkmedia` makes), judged with `tar`, `gunzip`,
//! `sha256sum` and `xorriso`, and refused, naming the file, when anything disagrees.

use std::path::{Path, PathBuf};
use std::process::Command;

use ksinstall::media::{imgdb, Coverage, Media, Role};
use testkit::synth;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/esximg");

fn mkmedia(dir: &Path, size: &str, seed: &str, version: &str) {
    let o = synth::Options {
        out: dir.to_path_buf(),
        size: ksinstall::size::parse_size(size).unwrap(),
        version: version.into(),
        seed: seed.parse().unwrap(),
    };
    synth::mkmedia(&o).unwrap();
}

fn fresh(size: &str) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("media");
    mkmedia(&dir, size, "7", "8.0.3");
    (t, dir)
}

fn open_err(dir: &Path) -> String {
    match Media::open(&dir.display().to_string()) {
        Ok(_) => panic!("{} opened, but should have been refused", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

fn sh(cmd: &str, dir: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ksinstall(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .args(args)
        .output()
        .unwrap()
}

/// Unpack the media's IMGDB.TGZ with `tar`, let `edit` change the tree, pack it again.
fn edit_imgdb(media: &Path, edit: impl FnOnce(&Path)) {
    let t = tempfile::tempdir().unwrap();
    sh(
        &format!("tar xzf {}", media.join("IMGDB.TGZ").display()),
        t.path(),
    );
    edit(t.path());
    sh(
        &format!(
            "tar czf {} profiles vibs",
            media.join("IMGDB.TGZ").display()
        ),
        t.path(),
    );
}

fn vib_file(db: &Path, prefix: &str) -> PathBuf {
    std::fs::read_dir(db.join("vibs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with(prefix) && name.ends_with(".xml")
        })
        .unwrap()
}

#[test]
fn the_parser_reads_vmwares_own_7_0_metadata() {
    let read = |p: &str| std::fs::read(Path::new(FIXTURES).join(p)).unwrap();
    let base = imgdb::parse_vib(
        "esx-base",
        &read("7.0/vibs/esx-base-699708918229420497.xml"),
    )
    .unwrap();
    assert_eq!(base.id, "VMware_bootbank_esx-base_7.0.0-1.0.15843807");
    assert_eq!(base.payloads.len(), 30);
    let p = |n: &str| base.payloads.iter().find(|p| p.name == n).unwrap();
    let s = p("s");
    assert_eq!(
        (s.kind.as_str(), s.boot_order, s.size),
        ("vgz", Some(100), 12_374_755)
    );
    assert_eq!(
        s.sha256.as_deref(),
        Some("0dd8599f53252b1478ace8b2f8898fab341f6529422616da0eb472360ef5edfb")
    );
    assert_eq!(
        s.sha256_gunzip.as_deref(),
        Some("388d18d55871fd8685c95d7f7b5324f009dac654fb1b6cea201e53ab18dd5500")
    );
    // The kernel also has a txt-mle digest; the plain one is of the stored file.
    assert_eq!(
        p("b").sha256.as_deref(),
        Some("2a74fa52921a2909c8308b90e9f3f38fcc8b69aa040c37041e9e1c2049f971fb")
    );
    assert_eq!(p("jumpstrt").vfat_name.as_deref(), Some("jumpstrt.gz"));
    assert_eq!(p("safeboot.efi").kind, "boot_loader_efi");
    assert_eq!(p("safeboot.efi").sha256_gunzip, None);
    let nic =
        imgdb::parse_vib("bnxtnet", &read("7.0/vibs/bnxtnet-7819226961550799843.xml")).unwrap();
    assert_eq!(
        nic.id,
        "VMW_bootbank_bnxtnet_216.0.50.0-4vmw.700.1.0.15843807"
    );
    assert_eq!(nic.payloads[0].boot_order, None);
    assert_eq!(nic.payloads[0].size, 197_255);

    let profile = imgdb::parse_profile(
        "p",
        &read("6.7/profiles/ESXi-6.7.0-8169922-standard452839153"),
    )
    .unwrap();
    assert_eq!(profile.name, "ESXi-6.7.0-8169922-standard");
    assert_eq!(profile.vibs.len(), 5);
    let files = |id: &str| &profile.vibs.iter().find(|v| v.0 == id).unwrap().1;
    assert_eq!(
        files("VMware_bootbank_lsu-lsi-lsi-msgpt3-plugin_1.0.0-8vmw.670.0.0.8169922"),
        &[("lsu-lsi-".to_string(), "lsu_lsi_.v01".to_string())]
    );
    let base67 = files("VMware_bootbank_esx-base_6.7.0-0.0.8169922");
    assert!(base67.contains(&("b".into(), "b.b00".into())));
    assert!(base67.contains(&("BOOTx64.EFI".into(), "bootx64..b00".into())));
}

/// The public 7.0 descriptors with a profile in VMware's schema naming them (no 7.0 profile is
/// public: this one is written here), packed by `tar` as an imgdb.tgz beside a 7.0 BOOT.CFG.
fn public_7_0_media(t: &Path) -> PathBuf {
    let db = t.join("db");
    std::fs::create_dir_all(db.join("profiles")).unwrap();
    sh(&format!("cp -r {FIXTURES}/7.0/vibs ."), &db);
    let base = [
        "b", "jumpstrt", "useropts", "features", "k", "procfs", "s", "sb", "tpm", "vim", "vmx",
    ];
    let mut payloads: String = base
        .iter()
        .map(|n| {
            let file = match *n {
                "b" | "k" | "procfs" => format!("{n}.b00"),
                "jumpstrt" | "useropts" | "features" => format!("{n}.gz"),
                _ => format!("{n}.v00"),
            };
            format!("<payload payload-name=\"{n}\">{file}</payload>")
        })
        .collect();
    payloads += "<payload payload-name=\"safeboot.efi\">safeboot.b00</payload>";
    let profile = format!("<imageprofile><name>ESXi-7.0.0-15843807-standard</name><viblist><vib><vib-id>VMware_bootbank_esx-base_7.0.0-1.0.15843807</vib-id><payloads>{payloads}</payloads></vib><vib><vib-id>VMW_bootbank_bnxtnet_216.0.50.0-4vmw.700.1.0.15843807</vib-id><payloads><payload payload-name=\"bnxtnet\">bnxtnet.v00</payload></payloads></vib></viblist></imageprofile>");
    std::fs::write(db.join("profiles/ESXi-7.0.0-15843807-standard1"), profile).unwrap();
    let media = t.join("media");
    std::fs::create_dir_all(&media).unwrap();
    sh(
        &format!("tar czf {}/IMGDB.TGZ profiles vibs", media.display()),
        &db,
    );
    std::fs::write(
        media.join("BOOT.CFG"),
        "bootstate=0\ntitle=Loading ESXi installer\ntimeout=5\nprefix=\nkernel=/b.b00\nkernelopt=runweasel cdromBoot\nmodules=/jumpstrt.gz --- /useropts.gz --- /features.gz --- /k.b00 --- /procfs.b00 --- /vmx.v00 --- /vim.v00 --- /sb.v00 --- /s.v00 --- /bnxtnet.v00 --- /imgdb.tgz\nbuild=7.0.0-1.0.15843807\nupdated=0\n",
    )
    .unwrap();
    media
}

#[test]
fn media_check_on_the_public_7_0_metadata() {
    let t = tempfile::tempdir().unwrap();
    let media = public_7_0_media(t.path());
    let db = imgdb::parse(&std::fs::read(media.join("IMGDB.TGZ")).unwrap()).unwrap();
    assert_eq!(db.version().as_deref(), Some("7.0.0"));
    let covered = db.covered().unwrap();
    let s = covered.iter().find(|c| c.file == "s.v00").unwrap();
    assert_eq!(
        (s.vib.as_str(), s.payload.size),
        ("VMware_bootbank_esx-base_7.0.0-1.0.15843807", 12_374_755)
    );
    // Only the metadata is here, not VMware's payloads: every file is named with its VIB,
    // payload and size, and reported missing; the check fails with 4.
    let out = ksinstall(&["media", "check", media.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{text}");
    let line = text.lines().find(|l| l.starts_with("s.v00 ")).unwrap();
    assert!(
        line.contains("VMware_bootbank_esx-base_7.0.0-1.0.15843807")
            && line.contains("12374755")
            && line.contains("MISSING"),
        "{line}"
    );
    assert!(text.contains("ESXi 7.0.0 (7.0.0-1.0.15843807)"), "{text}");
    let json = ksinstall(&[
        "media",
        "check",
        media.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        v["failed"], 17,
        "12 modules, and the 5 loaders esx-base 7.0 carries (BOOTx64.EFI, safeboot.efi, safeboot.c32, mboot.c32, ldlinux.sys): {v}"
    );
    let nic = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == "bnxtnet.v00")
        .unwrap();
    assert_eq!(
        nic["vib"],
        "VMW_bootbank_bnxtnet_216.0.50.0-4vmw.700.1.0.15843807"
    );
    assert_eq!(nic["size"], 197_255);
    assert_eq!(nic["verdict"], "missing");
}

#[test]
fn mkmedia_writes_vmwares_format_and_its_descriptors_match_sha256sum() {
    let (_t, dir) = fresh("8M");
    assert!(!dir.join("MANIFEST.JSON").exists());
    for f in [
        "B.B00",
        "S.V00",
        "IMGDB.TGZ",
        "EFI/BOOT/BOOTX64.EFI",
        "EFI/BOOT/SAFEBOOT.EFI",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let cfg = std::fs::read_to_string(dir.join("BOOT.CFG")).unwrap();
    assert!(
        cfg.contains("kernel=/b.b00\nkernelopt=runweasel cdromBoot\n"),
        "{cfg}"
    );
    assert!(cfg.contains("updated=0\n"), "{cfg}");
    assert_eq!(
        cfg,
        std::fs::read_to_string(dir.join("EFI/BOOT/BOOT.CFG")).unwrap()
    );
    // Every payload's three checksums, read from the descriptors `tar` unpacks, against
    // `sha256sum`, `gunzip | sha256sum` and `gunzip | sha1sum` of the file.
    let db = tempfile::tempdir().unwrap();
    sh(
        &format!("tar xzf {}", dir.join("IMGDB.TGZ").display()),
        db.path(),
    );
    let xml = std::fs::read_to_string(vib_file(db.path(), "esx-base")).unwrap();
    let payload = xml.split("<payload name=\"s\"").nth(1).unwrap();
    let sum = |cmd: &str| sh(cmd, &dir).split_whitespace().next().unwrap().to_string();
    assert!(payload.contains(&format!(
        "<checksum checksum-type=\"sha-256\">{}<",
        sum("sha256sum S.V00")
    )));
    assert!(payload.contains(&format!(
        "verify-process=\"gunzip\">{}<",
        sum("gunzip -c < S.V00 | sha256sum")
    )));
    assert!(payload.contains(&format!(
        "verify-process=\"gunzip\">{}<",
        sum("gunzip -c < S.V00 | sha1sum")
    )));
    let size = std::fs::metadata(dir.join("S.V00")).unwrap().len();
    assert!(payload.contains(&format!("size=\"{size}\"")), "{payload}");

    let media = Media::open(&dir.display().to_string()).unwrap();
    let m = &media.manifest;
    assert_eq!(m.version, "8.0.3");
    let bank = media.bank_components();
    assert_eq!(bank.len(), 108, "kernel, 106 VIB modules, imgdb.tgz");
    assert_eq!(bank[0].path, "b.b00");
    assert_eq!(bank.last().unwrap().path, "imgdb.tgz");
    assert_eq!(bank.last().unwrap().coverage, Coverage::NotCovered);
    for c in bank.iter().filter(|c| c.path != "imgdb.tgz").step_by(7) {
        let Coverage::Vib { vib, .. } = &c.coverage else {
            panic!("{} is not covered by a VIB", c.path)
        };
        assert!(vib.ends_with(&m.build), "{vib}");
        assert_eq!(
            sum(&format!("sha256sum {}", c.path.to_ascii_uppercase())),
            c.sha256
        );
    }
    assert_eq!(
        m.dpu_components()
            .map(|c| c.path.as_str())
            .collect::<Vec<_>>(),
        ["esxiodpt.tgz"]
    );
    assert!(bank.iter().all(|c| c.role != Role::Dpu));
    for f in [
        "imgdb.tgz",
        "imgpayld.tgz",
        "basemisc.tgz",
        "resvibs.tgz",
        "esxiodpt.tgz",
        "BOOT.CFG",
    ] {
        assert!(media.metadata.not_covered.iter().any(|n| n == f), "{f}");
    }
    let t2 = tempfile::tempdir().unwrap();
    mkmedia(&t2.path().join("m"), "8M", "7", "8.0.3");
    assert_eq!(
        std::fs::read(dir.join("IMGDB.TGZ")).unwrap(),
        std::fs::read(t2.path().join("m/IMGDB.TGZ")).unwrap(),
        "mkmedia is deterministic"
    );
}

#[test]
fn each_disagreement_with_the_metadata_is_refused_naming_the_file() {
    // A truncated payload: its size is checked against the descriptor before any write.
    let (_t, dir) = fresh("8M");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("VSAN.V00"))
        .unwrap();
    f.set_len(f.metadata().unwrap().len() - 1).unwrap();
    let e = open_err(&dir);
    assert!(
        e.contains("vsan.v00: is ") && e.contains("VIB VMW_bootbank_vsan-v00_"),
        "{e}"
    );

    // A descriptor whose size disagrees with the file.
    let (_t, dir) = fresh("8M");
    let size = std::fs::metadata(dir.join("XORG.V00")).unwrap().len();
    edit_imgdb(&dir, |db| {
        let p = vib_file(db, "xorg");
        let x = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            &p,
            x.replace(
                &format!("size=\"{size}\""),
                &format!("size=\"{}\"", size + 1),
            ),
        )
        .unwrap();
    });
    let e = open_err(&dir);
    assert!(
        e.contains(&format!(
            "xorg.v00: is {size} bytes; VIB VMW_bootbank_xorg-v00"
        )),
        "{e}"
    );

    // A payload BOOT.CFG loads that the profile does not name.
    let (_t, dir) = fresh("8M");
    edit_imgdb(&dir, |db| {
        let p = std::fs::read_dir(db.join("profiles"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let x = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            &p,
            x.replace("<payload payload-name=\"gc\">gc.v00</payload>", ""),
        )
        .unwrap();
    });
    let e = open_err(&dir);
    assert!(
        e.contains("gc.v00: BOOT.CFG loads it, but no VIB payload"),
        "{e}"
    );

    // A corrupt imgdb.tgz.
    let (_t, dir) = fresh("8M");
    let mut b = std::fs::read(dir.join("IMGDB.TGZ")).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0xff;
    std::fs::write(dir.join("IMGDB.TGZ"), b).unwrap();
    let e = open_err(&dir);
    assert!(e.contains("imgdb.tgz"), "{e}");

    // A flipped byte keeps the size: found by the hash, naming the file and its VIB.
    let (_t, dir) = fresh("8M");
    let mut b = std::fs::read(dir.join("K.B00")).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 1;
    std::fs::write(dir.join("K.B00"), b).unwrap();
    let media = Media::open(&dir.display().to_string()).unwrap();
    let e = format!("{:#}", media.verify_all(&mut |_| {}).unwrap_err());
    assert!(
        e.contains("k.b00 (VIB VMware_bootbank_esx-base_") && e.contains("SHA-256"),
        "{e}"
    );
    let out = ksinstall(&["media", "check", dir.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("k.b00 ") && l.contains("BAD: k.b00: SHA-256")),
        "{text}"
    );
}

#[test]
fn media_older_than_7_0_are_refused_and_7_0_opens() {
    let t = tempfile::tempdir().unwrap();
    mkmedia(&t.path().join("70"), "4M", "1", "7.0.3");
    let m = Media::open(&t.path().join("70").display().to_string()).unwrap();
    assert_eq!(m.manifest.version, "7.0.3");
    let r = std::panic::catch_unwind(|| mkmedia(&t.path().join("67"), "4M", "1", "6.7.0"));
    assert!(r.is_err(), "mkmedia checks what it wrote by opening it");
    let e = open_err(&t.path().join("67"));
    assert!(e.contains("ESXi 6.7.0: only ESXi 7.0 and later"), "{e}");
}

#[test]
fn module_names_that_leave_the_media_are_refused() {
    let (_t, dir) = fresh("8M");
    let cfg = std::fs::read_to_string(dir.join("BOOT.CFG"))
        .unwrap()
        .replace("/k.b00", "/../k.b00");
    std::fs::write(dir.join("BOOT.CFG"), cfg).unwrap();
    let e = open_err(&dir);
    assert!(e.contains("BOOT.CFG") && e.contains("../k.b00"), "{e}");

    // MANIFEST.JSON, where custom media add files, is held to the same rule.
    let (_t, dir) = fresh("8M");
    std::fs::write(
        dir.join("MANIFEST.JSON"),
        r#"{"format":1,"version":"8.0.3","build":"x","components":[{"path":"/etc/passwd","size":1,"sha256":"0000000000000000000000000000000000000000000000000000000000000000","platform":"x86_64","role":"module"}]}"#,
    )
    .unwrap();
    let e = open_err(&dir);
    assert!(
        e.contains("MANIFEST.JSON") && e.contains("/etc/passwd"),
        "{e}"
    );
}

#[test]
fn a_symlink_out_of_the_media_is_refused() {
    let (t, dir) = fresh("8M");
    let outside = t.path().join("outside");
    std::fs::write(&outside, b"x").unwrap();
    std::fs::remove_file(dir.join("XORG.V00")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("XORG.V00")).unwrap();
    let e = open_err(&dir);
    assert!(
        e.contains("xorg.v00") && e.contains("outside the media"),
        "{e}"
    );
}

#[test]
fn an_extracted_tree_with_lower_case_names_opens_like_the_iso_tree() {
    let (_t, dir) = fresh("8M");
    let upper = Media::open(&dir.display().to_string()).unwrap();
    sh("for f in $(find . -depth -name '*[A-Z]*'); do mv \"$f\" \"$(dirname $f)/$(basename $f | tr A-Z a-z)\"; done", &dir);
    assert!(dir.join("s.v00").is_file() && dir.join("efi/boot/safeboot.efi").is_file());
    let lower = Media::open(&dir.display().to_string()).unwrap();
    assert_eq!(lower.manifest, upper.manifest);
    lower.verify_all(&mut |_| {}).unwrap();
}

#[test]
fn the_iso_has_iso9660_names_only_and_two_el_torito_entries() {
    let (t, dir) = fresh("8M");
    let iso = t.path().join("esxi.iso");
    synth::make_iso(&dir, &iso).unwrap();
    let b = std::fs::read(&iso).unwrap();
    // Volume descriptors from sector 16: a primary (1), El Torito's boot record (0), the end
    // (255); no supplementary one (2), which is where Joliet would be.
    let kinds: Vec<u8> = (16..32)
        .map(|n| b[n * 2048])
        .take_while(|&k| k != 255)
        .collect();
    assert_eq!(kinds, [1, 0], "{kinds:?}");
    let report = sh(
        &format!(
            "xorriso -indev {} -report_el_torito plain 2>&1",
            iso.display()
        ),
        t.path(),
    );
    assert!(
        report.contains("BIOS") && report.contains("UEFI"),
        "{report}"
    );
    assert!(
        report.contains("/ISOLINUX.BIN") && report.contains("/EFIBOOT.IMG"),
        "{report}"
    );
    // No Rock Ridge: xorriso finds no RR names, and the names are ISO9660's upper case.
    let rr = sh(
        &format!(
            "xorriso -indev {} -rr_reloc_dir '' -find / -type f 2>&1",
            iso.display()
        ),
        t.path(),
    );
    assert!(rr.contains("'/S.V00'") && !rr.contains("s.v00"), "{rr}");
    // The EFI image is a FAT holding the loader, as `mdir` sees it.
    let efi = t.path().join("efiboot.img");
    std::fs::copy(dir.join("EFIBOOT.IMG"), &efi).unwrap();
    let dirlist = sh(&format!("mdir -i {} ::/EFI/BOOT", efi.display()), t.path());
    assert!(dirlist.contains("BOOTX64  EFI"), "{dirlist}");

    let from_iso = Media::open(&iso.display().to_string()).unwrap();
    let from_dir = Media::open(&dir.display().to_string()).unwrap();
    assert_eq!(from_iso.manifest, from_dir.manifest);
    assert_eq!(from_iso.boot_cfg, from_dir.boot_cfg);
    from_iso.verify_all(&mut |_| {}).unwrap();
    let out = ksinstall(&["media", "check", iso.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("113 files verified, 6 not covered by any VIB, 0 failed"),
        "{text}"
    );
    assert!(text.contains("signatures: not checked"), "{text}");
}

#[test]
fn a_damaged_iso_is_refused_not_a_panic() {
    let (t, dir) = fresh("8M");
    let iso = t.path().join("esxi.iso");
    synth::make_iso(&dir, &iso).unwrap();
    // Cut the image in the middle: directory records and extents now point past its end.
    let f = std::fs::OpenOptions::new().write(true).open(&iso).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len / 2).unwrap();
    assert!(Media::open(&iso.display().to_string()).is_err());
    // Garbage where the volume descriptors are.
    let mut b = std::fs::read(&iso).unwrap();
    for x in &mut b[16 * 2048..18 * 2048] {
        *x = 0xA5;
    }
    std::fs::write(&iso, b).unwrap();
    let e = match Media::open(&iso.display().to_string()) {
        Ok(_) => panic!("garbage opened"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("not an ISO9660 image"), "{e}");
}

#[test]
fn mutated_iso_metadata_never_panics() {
    let (t, dir) = fresh("8M");
    let iso = t.path().join("esxi.iso");
    synth::make_iso(&dir, &iso).unwrap();
    let good = std::fs::read(&iso).unwrap();
    // Directory records and volume descriptors live in the first sectors; mutate them many ways.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..300 {
        let mut b = good.clone();
        for _ in 0..1 + round % 8 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = 16 * 2048 + (seed as usize) % (48 * 2048);
            b[at] = (seed >> 32) as u8;
        }
        let path = t.path().join("m.iso");
        std::fs::write(&path, &b).unwrap();
        if let Ok(m) = Media::open(&path.display().to_string()) {
            let _ = m.verify_all(&mut |_| {});
        }
    }
}

#[test]
fn mutated_imgdb_never_panics() {
    let (_t, dir) = fresh("4M");
    let good = std::fs::read(dir.join("IMGDB.TGZ")).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..200 {
        let mut b = good.clone();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let at = (seed as usize) % b.len();
        b[at] = (seed >> 40) as u8;
        let _ = imgdb::parse(&b).and_then(|db| db.covered());
    }
}

/// A test CA and a signing certificate it issued, made with openssl (VMware's key is not ours).
fn test_pki(dir: &Path) {
    sh(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/O=Test CA/CN=ksinstall test root' 2>/dev/null
         openssl req -newkey rsa:2048 -nodes -keyout signer.key -out signer.csr -subj '/O=Test Vendor/CN=ksinstall test signer' 2>/dev/null
         openssl x509 -req -in signer.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out signer.pem -days 2 -sha256 2>/dev/null
         openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 -subj '/O=Someone Else/CN=other root' 2>/dev/null",
        dir,
    );
}

#[test]
fn descriptor_signatures_are_checked_against_the_trust_certificate() {
    let (t, dir) = fresh("8M");
    test_pki(t.path());
    let pem = |n: &str| t.path().join(n).display().to_string();
    let n = synth::sign(
        &dir,
        &t.path().join("signer.key"),
        &t.path().join("signer.pem"),
    )
    .unwrap();
    assert_eq!(
        n, 97,
        "every VIB descriptor signed (esx-base and 96 driver VIBs)"
    );
    // The signatures are what openssl itself verifies: PEM PKCS#7, detached, over .xml.orig.
    let db = tempfile::tempdir().unwrap();
    sh(
        &format!("tar xzf {}", dir.join("IMGDB.TGZ").display()),
        db.path(),
    );
    let sig = vib_file(db.path(), "xorg");
    let sig = sig.display().to_string();
    sh(
        &format!("openssl smime -verify -binary -inform PEM -in {sig}.sig -content {sig}.orig -CAfile {} -out /dev/null", pem("ca.pem")),
        db.path(),
    );

    let src = dir.to_str().unwrap();
    // Present, nothing to check them against: said so, and not a failure.
    let out = ksinstall(&["media", "check", src]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("signatures: not checked: 97 descriptor signatures present; no certificate to check them against"),
        "{text}"
    );
    // Against the CA that issued the signer: checked.
    let out = ksinstall(&["media", "check", src, "--trust-cert", &pem("ca.pem")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "signatures: checked: 97 descriptor signatures verified against the trust certificate"
        ) && text.contains("CN=ksinstall test signer"),
        "{text}"
    );
    // Against a certificate that did not sign: exit 4, naming the descriptor.
    let out = ksinstall(&[
        "media",
        "check",
        src,
        "--trust-cert",
        &pem("other.pem"),
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(4), "{v}");
    assert_eq!(v["signatures"]["state"], "failed", "{v}");
    assert!(
        v["signatures"]["reason"]
            .as_str()
            .unwrap()
            .contains("not the trust certificate"),
        "{v}"
    );

    // The plan says they were checked.
    let ks = t.path().join("ks.cfg");
    std::fs::write(&ks, "vmaccepteula\nrootpw --iscrypted $6$ksinstallExampl$gs0rWRb4e18QdWwUGxkYYf27pufzcgy.uh99Ch9umRYHEgzPhZjOfXvb9/6j3OBpXQpAO238CiGZZ0X5fOIg31\ninstall --firstdisk --overwritevmfs\nnetwork --bootproto=dhcp\n").unwrap();
    let img = t.path().join("disk.img");
    let sysroot = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/plain");
    let install = |trust: &str| {
        ksinstall(&[
            "install",
            "--ks",
            ks.to_str().unwrap(),
            "--media",
            src,
            "--sysroot",
            sysroot,
            "--cmdline",
            "",
            "--disk",
            img.to_str().unwrap(),
            "--disk-size",
            "40G",
            "--progress",
            "none",
            "--dry-run",
            "--trust-cert",
            trust,
        ])
    };
    let out = install(&pem("ca.pem"));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{plan}");
    assert!(
        plan.contains("signatures: checked: 97 descriptor signatures verified"),
        "{plan}"
    );
    // The BIOS boot code is not written (docs/MEDIA.md): the plan says the disk boots by UEFI.
    let said = format!("{plan}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("will boot by UEFI only"), "{said}");

    // A tampered signed descriptor (.xml.orig: a payload's size) is refused, naming it.
    edit_imgdb(&dir, |db| {
        let p = PathBuf::from(format!("{}.orig", vib_file(db, "xorg").display()));
        let x = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, x.replacen("size=\"", "size=\"1", 1)).unwrap();
    });
    let out = ksinstall(&["media", "check", src, "--trust-cert", &pem("ca.pem")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(
        text.contains("signatures: FAILED: vibs/xorg")
            && text.contains("the signed message digest is not the SHA-256 of .xml.orig"),
        "{text}"
    );
    let out = install(&pem("ca.pem"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("imgdb.tgz: vibs/xorg") && err.contains("signature"),
        "{err}"
    );
    assert!(!img.exists(), "nothing written");
}
