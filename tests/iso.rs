//! `ksinstall iso customize` / `iso show` on ISOs made with xorriso as `cargo xtask image` makes
//! its own (the embed area at /ksinstall/embed.area), read back with xorriso. The boot of a
//! customized ISO under OVMF is the e2e's scenario 8 (`cargo xtask e2e --only embed`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{run, sha256_file};

fn ksinstall(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .args(args)
        .output()
        .unwrap()
}

/// An ISO (Rock Ridge + Joliet) holding a few files and, when `area`, the blank embed area.
fn make_iso(dir: &Path, area: bool) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("ksinstall")).unwrap();
    std::fs::write(tree.join("vmlinuz"), vec![0x5a; 300_000]).unwrap();
    std::fs::write(tree.join("KS.CFG"), "vmaccepteula\n").unwrap();
    if area {
        std::fs::write(
            tree.join("ksinstall/embed.area"),
            ksinstall::iso::blank_area(),
        )
        .unwrap();
    }
    let iso = dir.join(if area { "in.iso" } else { "plain.iso" });
    let (ok, _, err) = run(
        "xorriso",
        &[
            "-as",
            "mkisofs",
            "-quiet",
            "-V",
            "KSINSTALL",
            "-J",
            "-R",
            "-o",
            iso.to_str().unwrap(),
            tree.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    let _ = std::fs::remove_dir_all(&tree);
    iso
}

/// A file of the ISO as xorriso extracts it.
fn extract(iso: &Path, path: &str, to: &Path) -> Vec<u8> {
    let (ok, _, err) = run(
        "xorriso",
        &[
            "-osirrox",
            "on",
            "-indev",
            iso.to_str().unwrap(),
            "-extract",
            path,
            to.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    std::fs::read(to).unwrap()
}

#[test]
fn customize_writes_a_copy_that_carries_the_kickstart_and_leaves_the_original_alone() {
    let dir = tempfile::tempdir().unwrap();
    let iso = make_iso(dir.path(), true);
    let before = sha256_file(&iso);
    let ks = dir.path().join("esx-07.cfg");
    let ks_text = "vmaccepteula\nrootpw --iscrypted $6$x$y\ninstall --firstdisk --overwritevmfs\n";
    std::fs::write(&ks, ks_text).unwrap();
    let out = dir.path().join("esx-07.iso");
    let o = ksinstall(&[
        "iso",
        "customize",
        "--ks",
        ks.to_str().unwrap(),
        "--append",
        "ip=10.0.0.7 netmask=255.255.255.0 ksinstall.report_url=http://10.0.0.1:8079/esx-07",
        "-o",
        out.to_str().unwrap(),
        iso.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sha256_file(&iso), before, "the original ISO changed");
    assert_eq!(
        std::fs::metadata(&out).unwrap().len(),
        std::fs::metadata(&iso).unwrap().len()
    );
    // xorriso reads the area as the init does, through the file system.
    let area = extract(&out, "/ksinstall/embed.area", &dir.path().join("area"));
    assert_eq!(area.len(), ksinstall::iso::AREA_SIZE);
    let head = format!(
        "KSINSTALL-EMBED-AREA-V1\nkargs: ip=10.0.0.7 netmask=255.255.255.0 ksinstall.report_url=http://10.0.0.1:8079/esx-07\nks-bytes: {}\n{ks_text}",
        ks_text.len()
    );
    assert_eq!(String::from_utf8_lossy(&area[..head.len()]), head);
    assert!(area[head.len()..].iter().all(|b| *b == 0));
    // Every other file is as it was.
    for f in ["/vmlinuz", "/KS.CFG"] {
        assert_eq!(
            extract(&out, f, &dir.path().join("a")),
            extract(&iso, f, &dir.path().join("b")),
            "{f}"
        );
    }
    let shown = ksinstall(&["iso", "show", out.to_str().unwrap()]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("kargs: ip=10.0.0.7"), "{shown}");
    assert!(shown.contains(ks_text), "{shown}");
    // The original shows nothing embedded.
    let plain = ksinstall(&["iso", "show", iso.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&plain.stdout).contains("kickstart: none"));

    // A ks= URL instead, into a copy of the copy: the area is written anew.
    let again = dir.path().join("url.iso");
    let o = ksinstall(&[
        "iso",
        "customize",
        "--ks-url",
        "http://10.0.0.1/ks/esx-08.cfg",
        "-o",
        again.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let area = extract(&again, "/ksinstall/embed.area", &dir.path().join("area2"));
    assert!(area.starts_with(
        b"KSINSTALL-EMBED-AREA-V1\nkargs: ks=http://10.0.0.1/ks/esx-08.cfg\nks-bytes: 0\n\0"
    ));
}

#[test]
fn customize_refuses_what_it_cannot_do_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let iso = make_iso(dir.path(), true);
    let ks = dir.path().join("ks.cfg");
    std::fs::write(&ks, "vmaccepteula\n").unwrap();
    let customize = |args: &[&str], input: &Path, out: &Path| {
        let mut all = vec!["iso", "customize"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", out.to_str().unwrap(), input.to_str().unwrap()]);
        let o = ksinstall(&all);
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    // An ISO without the area (not ours, or older).
    let plain = make_iso(&dir.path().join("p"), false);
    let out = dir.path().join("out.iso");
    let err = customize(&["--ks", ks.to_str().unwrap()], &plain, &out);
    assert!(err.contains("no ksinstall embed area"), "{err}");
    assert!(!out.exists());
    // The output exists: never overwritten.
    std::fs::write(&out, "mine").unwrap();
    let err = customize(&["--ks", ks.to_str().unwrap()], &iso, &out);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"mine");
    std::fs::remove_file(&out).unwrap();
    // Boot options that ksinstall boot would refuse.
    let err = customize(&["--append", "netmask=255.255.255.0"], &iso, &out);
    assert!(err.contains("boot option"), "{err}");
    assert!(!out.exists());
    // A kickstart larger than the area.
    std::fs::write(&ks, "#".repeat(ksinstall::iso::AREA_SIZE)).unwrap();
    let err = customize(&["--ks", ks.to_str().unwrap()], &iso, &out);
    assert!(err.contains("the embed area holds"), "{err}");
    assert!(!out.exists());
}
