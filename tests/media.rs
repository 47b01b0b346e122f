//! Installation media as the installer opens it: a medium made by `cargo xtask mkmedia`, checked
//! against real `sha256sum`, and refused, naming the file, when it is malformed.

use std::path::{Path, PathBuf};
use std::process::Command;

use ksinstall::media::{synth, Media, Role};

fn mkmedia(dir: &Path, size: &str, seed: &str) {
    let o = synth::Options {
        out: dir.to_path_buf(),
        size: ksinstall::size::parse_size(size).unwrap(),
        version: "8.0.3".into(),
        seed: seed.parse().unwrap(),
    };
    synth::mkmedia(&o).unwrap();
}

fn fresh(size: &str) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("media");
    mkmedia(&dir, size, "7");
    (t, dir)
}

fn open_err(dir: &Path) -> String {
    match Media::open(&dir.display().to_string()) {
        Ok(_) => panic!("{} opened, but should have been refused", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn mkmedia_is_deterministic_and_its_manifest_matches_sha256sum() {
    let (_t, dir) = fresh("8M");
    let media = Media::open(&dir.display().to_string()).unwrap();
    let m = &media.manifest;
    assert_eq!(m.version, "8.0.3");
    assert_eq!(
        m.components.len(),
        115,
        "kernel + 111 modules of 8.0U3 + 3 bootloader files"
    );
    assert_eq!(media.boot_cfg.kernel.as_deref(), Some("/b.b00"));
    assert_eq!(
        m.dpu_components()
            .map(|c| c.path.as_str())
            .collect::<Vec<_>>(),
        ["esxiodpt.tgz"]
    );
    assert_eq!(
        media.bank_components().len(),
        111,
        "the DPU depot does not go to the host bank"
    );
    assert!(media.bank_components().iter().all(|c| c.role != Role::Dpu));
    for c in m.components.iter().step_by(9) {
        let out = Command::new("sha256sum")
            .arg(dir.join(&c.path))
            .output()
            .unwrap();
        let sum = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            sum.split_whitespace().next(),
            Some(c.sha256.as_str()),
            "{}",
            c.path
        );
    }
    let t2 = tempfile::tempdir().unwrap();
    mkmedia(&t2.path().join("m"), "8M", "7");
    assert_eq!(
        std::fs::read(dir.join("MANIFEST.JSON")).unwrap(),
        std::fs::read(t2.path().join("m/MANIFEST.JSON")).unwrap()
    );
}

#[test]
fn a_truncated_module_is_refused_by_name() {
    let (_t, dir) = fresh("8M");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("vsan.v00"))
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - 1).unwrap();
    let e = open_err(&dir);
    assert!(
        e.contains("vsan.v00") && e.contains("the manifest says"),
        "{e}"
    );
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

    let (_t, dir) = fresh("8M");
    let m = std::fs::read_to_string(dir.join("MANIFEST.JSON"))
        .unwrap()
        .replace("\"path\": \"xorg.v00\"", "\"path\": \"/etc/passwd\"");
    std::fs::write(dir.join("MANIFEST.JSON"), m).unwrap();
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
    std::fs::remove_file(dir.join("xorg.v00")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("xorg.v00")).unwrap();
    let e = open_err(&dir);
    assert!(
        e.contains("xorg.v00") && e.contains("outside the media"),
        "{e}"
    );
}

#[test]
fn boot_cfg_and_manifest_must_agree() {
    let (_t, dir) = fresh("8M");
    let cfg = std::fs::read_to_string(dir.join("BOOT.CFG"))
        .unwrap()
        .replace(" --- /gc.v00", " --- /gc.v00 --- /extra.v00");
    std::fs::write(dir.join("BOOT.CFG"), cfg).unwrap();
    let e = open_err(&dir);
    assert!(e.contains("extra.v00 is not in the manifest"), "{e}");
}

#[test]
fn upper_case_names_of_an_iso_tree_are_found() {
    let (_t, dir) = fresh("8M");
    std::fs::rename(dir.join("s.v00"), dir.join("S.V00")).unwrap();
    Media::open(&dir.display().to_string()).unwrap();
}

#[test]
fn an_iso9660_image_made_by_xorriso_reads_like_its_directory() {
    let (t, dir) = fresh("8M");
    let iso = t.path().join("esxi.iso");
    synth::make_iso(&dir, &iso).unwrap();
    let from_iso = Media::open(&iso.display().to_string()).unwrap();
    let from_dir = Media::open(&dir.display().to_string()).unwrap();
    assert_eq!(from_iso.manifest, from_dir.manifest);
    assert_eq!(from_iso.boot_cfg, from_dir.boot_cfg);
    // Every byte read out of the image hashes to the manifest (through the same verifier).
    from_iso.verify_all(&mut |_| {}).unwrap();
    let mut esp = String::new();
    std::io::Read::read_to_string(
        &mut from_iso.source.open("efi/boot/boot.cfg").unwrap(),
        &mut esp,
    )
    .unwrap();
    assert!(
        esp.contains("build=8.0.3-"),
        "names are matched without case: {esp}"
    );
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
