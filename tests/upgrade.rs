//! `upgrade` and `installorupgrade` end to end: a fresh install of build A, then upgrades to B and
//! C from real-format synthetic media, judged by `sgdisk`, `fsck.fat`, `mtools`, byte ranges of
//! the image, and our reading of esx-boot's bank choice (`safeboot_choice`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::setup::{fixture, Setup};
use common::text;
use common::{hash_range, run, sha256_file};
use ksinstall::inventory::content;
use ksinstall::inventory::installed::{safeboot_choice, Upgradability};
use testkit::synth;

const P1: (u64, u64) = (64, 204_863);
const P5: (u64, u64) = (208_896, 8_595_455);
const P6: (u64, u64) = (8_597_504, 16_984_063);
const P7_FIRST: u64 = 16_986_112;

const BUILD_A: &str = "8.0.3-0.35.24280767";
const BUILD_B: &str = "8.0.3-0.35.24280800";
const BUILD_C: &str = "8.0.3-0.35.24280900";

/// The shared set-up with media of builds A, B and C (48M each) in `A/`, `B/` and `C/`.
fn setup() -> Setup {
    let s = Setup::with().build();
    for (name, build) in [("A", BUILD_A), ("B", BUILD_B), ("C", BUILD_C)] {
        s.add_build(name, build, &[]);
    }
    s
}

/// What the upgrade tests do with the shared set-up: media of a given build, kickstarts by
/// name, and runs that name a medium by its directory and the disk image.
trait Upgrades {
    fn add_build(&self, name: &str, build: &str, omit: &[&str]);
    fn add_build_esxio(&self, name: &str, build: &str, omit: &[&str], esxio: Option<&str>);
    fn ks_file(&self, name: &str, text: &str) -> PathBuf;
    fn run(&self, media: &str, ks: &Path, disk: &Path, extra: &[&str]) -> Output;
    fn run_on(&self, sysroot: &str, media: &str, ks: &Path, disk: &Path, extra: &[&str]) -> Output;
    fn installed_a(&self, name: &str) -> PathBuf;
    fn upgrade(&self, media: &str, disk: &Path, extra: &[&str]) -> Output;
}

impl Upgrades for Setup {
    fn add_build(&self, name: &str, build: &str, omit: &[&str]) {
        self.add_build_esxio(name, build, omit, None)
    }
    fn add_build_esxio(&self, name: &str, build: &str, omit: &[&str], esxio: Option<&str>) {
        let v = synth::Variant {
            build: Some(build.into()),
            omit: omit.iter().map(|s| s.to_string()).collect(),
            esxio_build: esxio.map(str::to_string),
        };
        self.add_media(name, 48 << 20, "8.0.3", &v);
    }
    fn ks_file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
    fn run(&self, media: &str, ks: &Path, disk: &Path, extra: &[&str]) -> Output {
        self.run_on("plain", media, ks, disk, extra)
    }
    /// A run on the machine of fixture `sysroot`.
    fn run_on(&self, sysroot: &str, media: &str, ks: &Path, disk: &Path, extra: &[&str]) -> Output {
        self.install_command(&fixture(sysroot), self.path(media).as_os_str(), ks)
            .arg("--disk")
            .arg(disk)
            .args(extra)
            .output()
            .unwrap()
    }
    /// A 40 GB image holding a fresh install of build A.
    fn installed_a(&self, name: &str) -> PathBuf {
        let img = self.path(name);
        let ks = self.ks_file("install.cfg", INSTALL);
        let out = self.run("A", &ks, &img, &["--disk-size", "40G"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        host_ran(self, &img);
        img
    }
    fn upgrade(&self, media: &str, disk: &Path, extra: &[&str]) -> Output {
        let ks = self.ks_file("upgrade.cfg", UPGRADE);
        self.run(media, &ks, disk, extra)
    }
}

const INSTALL: &str = "vmaccepteula\nrootpw 'Plain-Secret-99x'\ninstall --firstdisk --overwritevmfs\nnetwork --bootproto=static --ip=10.1.2.3 --netmask=255.255.255.0 --gateway=10.1.2.1 --hostname=esx1.example\n";
const UPGRADE: &str = "vmaccepteula\nrootpw 'Plain-Secret-99x'\nupgrade --firstdisk\n";

fn range(img: &Path, (first, last): (u64, u64)) -> String {
    hash_range(img, first * 512, (last + 1) * 512)
}

fn boot_cfg(img: &Path, (first, _): (u64, u64)) -> Option<String> {
    let (ok, out, _) = run(
        "mtype",
        &[
            "-i",
            &format!("{}@@{}", img.display(), first * 512),
            "::/boot.cfg",
        ],
    );
    ok.then_some(out)
}

/// The partition safeboot boots on this image, by our reading of esx-boot.
fn boots(img: &Path) -> Option<u32> {
    let c = content::read(img, 512);
    safeboot_choice(&c.esx.expect("ESXi on the disk").banks).boots
}

fn copy_out(img: &Path, (first, _): (u64, u64), what: &str, to: &Path) {
    let (ok, _, err) = run(
        "mcopy",
        &[
            "-n",
            "-i",
            &format!("{}@@{}", img.display(), first * 512),
            &format!("::/{what}"),
            to.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
}

/// `sgdisk -v` and `fsck.fat -n` on the system partition and both banks.
fn judge_with_real_tools(s: &Setup, img: &Path) {
    let (ok, v, _) = run("sgdisk", &["-v", img.to_str().unwrap()]);
    assert!(ok && v.contains("No problems found"), "{v}");
    for (n, (first, last)) in [(1, P1), (5, P5), (6, P6)] {
        let part = s.path(&format!("p{n}.img"));
        common::extract(img, first * 512, (last + 1) * 512, &part);
        let (ok, out, err) = run("fsck.fat", &["-n", part.to_str().unwrap()]);
        assert!(ok, "fsck.fat partition {n}: {out}{err}");
        std::fs::remove_file(part).unwrap();
    }
}

/// What the installed host does to bank 5 once it has run (docs/FIRSTBOOT.md): its first boot
/// takes `onetime.tgz` out of `modules=`, and ESXi's backup saves the configuration as
/// `state.tgz` (listed last) that an upgrade then carries over. A fresh install writes no
/// `state.tgz` of its own.
fn host_ran(s: &Setup, img: &Path) {
    let cfg = boot_cfg(img, P5).unwrap();
    assert!(cfg.contains(" --- onetime.tgz\n"), "{cfg}");
    let modules_done = cfg.replace(" --- onetime.tgz\n", " --- state.tgz\n");
    let state = s.path("state.tgz");
    // A gzip'd tar holding local.tgz, as ESXi's backup.sh writes it (contents beside the point).
    let local = s.path("local.tgz");
    std::fs::write(s.path("marker"), "saved by ESXi\n").unwrap();
    let (ok, _, err) = run(
        "tar",
        &[
            "-czf",
            local.to_str().unwrap(),
            "-C",
            s.path("").to_str().unwrap(),
            "marker",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = run(
        "tar",
        &[
            "-czf",
            state.to_str().unwrap(),
            "-C",
            s.path("").to_str().unwrap(),
            "local.tgz",
        ],
    );
    assert!(ok, "{err}");
    let f = s.path("boot.cfg");
    std::fs::write(&f, modules_done).unwrap();
    for (src, dst) in [(&state, "::/state.tgz"), (&f, "::/boot.cfg")] {
        let (ok, _, err) = run(
            "mcopy",
            &[
                "-o",
                "-i",
                &format!("{}@@{}", img.display(), P5.0 * 512),
                src.to_str().unwrap(),
                dst,
            ],
        );
        assert!(ok, "{err}");
    }
}

/// Rewrite a bank's boot.cfg with one key changed, as ESXi or safeboot would in place.
fn set_bootstate(s: &Setup, img: &Path, bank: (u64, u64), state: u32) {
    let cfg = boot_cfg(img, bank).unwrap();
    let new: String = cfg
        .lines()
        .map(|l| {
            if l.starts_with("bootstate=") {
                format!("bootstate={state}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let f = s.path("boot.cfg");
    std::fs::write(&f, new).unwrap();
    let (ok, _, err) = run(
        "mcopy",
        &[
            "-o",
            "-i",
            &format!("{}@@{}", img.display(), bank.0 * 512),
            f.to_str().unwrap(),
            "::/boot.cfg",
        ],
    );
    assert!(ok, "{err}");
}

#[test]
fn install_a_then_upgrades_to_b_and_c_alternate_banks_and_never_touch_the_running_one() {
    let s = setup();
    let img = s.installed_a("disk.img");
    // What the inventory (and probe) sees on a fresh install.
    let c = content::read(&img, 512);
    let esx = c.esx.as_ref().unwrap();
    assert_eq!(esx.upgrade, Upgradability::Upgradable);
    assert_eq!(esx.boots, Some(5));
    let b5 = esx.banks.iter().find(|b| b.partition == 5).unwrap();
    assert_eq!(b5.build.as_deref(), Some(BUILD_A));
    assert!(b5.state_tgz.is_some() && b5.jumpstrt_gz.is_some());
    let img_a = b5.image.as_ref().unwrap();
    assert_eq!(img_a.profile, format!("ESXi-{BUILD_A}-standard"));
    assert!(img_a.vibs.iter().any(|v| v.name == "esx-base"));
    let b6 = esx.banks.iter().find(|b| b.partition == 6).unwrap();
    assert!(b6.uuid.is_some() && !b6.has_boot_cfg);

    let before = [
        range(&img, P1),
        range(&img, P5),
        hash_range(&img, 0, 34 * 512),
    ];
    let osdata_before = hash_range(&img, P7_FIRST * 512, P7_FIRST * 512 + (8 << 20));

    // An upgrade of a disk whose first boot never ran says what is lost (docs/FIRSTBOOT.md).
    let fresh = s.path("fresh.img");
    let out = s.run(
        "A",
        &s.ks_file("install.cfg", INSTALL),
        &fresh,
        &["--disk-size", "40G"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&s.upgrade("B", &fresh, &["--dry-run"]));
    assert!(t.contains("has not had its first boot"), "{t}");

    // Dry run: the plan says everything, writes nothing.
    let whole = common::hash_image(&img);
    let dry = s.upgrade("B", &img, &["--dry-run"]);
    let t = text(&dry);
    assert_eq!(dry.status.code(), Some(0), "{t}");
    assert!(!t.contains("has not had its first boot"), "{t}");
    for want in [
        &format!("Upgrade ESXi {BUILD_A} -> {BUILD_B}"),
        "bank 5 boots now (updated=1): NOT written",
        "bank 6 is reformatted",
        "bootstate=1 updated=2",
        "carried from bank 5: state.tgz",
        "carried from bank 5: jumpstrt.gz",
        "never written: partitions 1, 5, 7",
        "\"rootpw\" is ignored when upgrading",
        // The media and target lines are an install's: the sector size is said too.
        "512-byte sectors",
    ] {
        assert!(t.contains(want), "{want:?} not in\n{t}");
    }
    assert_eq!(common::hash_image(&img), whole, "a dry run writes nothing");

    // Upgrade to B: bank 6, updated=2, bootstate=1; bank 5, the ESP, the GPT and OSData as before.
    let out = s.upgrade("B", &img, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let cfg6 = boot_cfg(&img, P6).expect("boot.cfg on bank 6");
    for want in [
        "bootstate=1\n",
        "updated=2\n",
        &format!("build={BUILD_B}\n"),
        "kernel=b.b00\n",
    ] {
        assert!(cfg6.contains(want), "{want:?} not in\n{cfg6}");
    }
    assert!(cfg6.contains(" --- imgdb.tgz --- state.tgz\n"), "{cfg6}");
    // Real banks carry VMware's imgdb.tgz alone: nothing of ours stands beside it, and the plan
    // does not promise one either.
    let (ok, dir, err) = run(
        "mdir",
        &[
            "-b",
            "-i",
            &format!("{}@@{}", img.display(), P6.0 * 512),
            "::/",
        ],
    );
    assert!(ok, "{err}");
    let dir = dir.to_ascii_lowercase();
    assert!(dir.contains("::/imgdb.tgz"), "{dir}");
    assert!(!dir.contains("imgdb.json"), "{dir}");
    assert!(!t.contains("imgdb.json"), "{t}");
    assert_eq!(
        [
            range(&img, P1),
            range(&img, P5),
            hash_range(&img, 0, 34 * 512)
        ],
        before,
        "the ESP, bank 5 and the primary GPT are byte-identical"
    );
    assert_eq!(
        hash_range(&img, P7_FIRST * 512, P7_FIRST * 512 + (8 << 20)),
        osdata_before
    );
    judge_with_real_tools(&s, &img);
    // state.tgz and jumpstrt.gz carried over byte for byte; the modules are B's.
    for f in ["state.tgz", "jumpstrt.gz"] {
        let (a, b) = (s.path(&format!("a-{f}")), s.path(&format!("b-{f}")));
        copy_out(&img, P5, f, &a);
        copy_out(&img, P6, f, &b);
        assert_eq!(sha256_file(&a), sha256_file(&b), "{f}");
    }
    let k = s.path("k.b00");
    copy_out(&img, P6, "k.b00", &k);
    assert_eq!(sha256_file(&k), sha256_file(&s.path("B/K.B00")));
    let record = s.path("ksinstall.json");
    copy_out(&img, P6, "ksinstall.json", &record);
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(r["kind"], "upgrade");
    assert_eq!(r["from_build"], BUILD_A);
    assert_eq!(r["to_build"], BUILD_B);
    // The bootloader now boots bank 6; probe's view agrees.
    assert_eq!(boots(&img), Some(6));
    let c = content::read(&img, 512);
    assert_eq!(c.esx.as_ref().unwrap().version.as_deref(), Some(BUILD_B));

    // A "rollback" on a copy: the new bank's first boot never confirmed (2 -> 3 at the next
    // power-on), or the bank marked invalid by hand: bank 5 boots again.
    let rolled = s.path("rolled.img");
    common::cp_a(&img, &rolled);
    set_bootstate(&s, &rolled, P6, 2);
    let c = content::read(&rolled, 512);
    let choice = safeboot_choice(&c.esx.unwrap().banks);
    assert_eq!(choice.boots, Some(5));
    assert!(choice.rollback);
    set_bootstate(&s, &rolled, P6, 3);
    assert_eq!(boots(&rolled), Some(5));

    // Upgrade to C: back to bank 5 with updated=3; bank 6 untouched.
    let bank6 = range(&img, P6);
    let esp = range(&img, P1);
    let out = s.upgrade("C", &img, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let cfg5 = boot_cfg(&img, P5).unwrap();
    for want in [
        "bootstate=1\n",
        "updated=3\n",
        &format!("build={BUILD_C}\n"),
    ] {
        assert!(cfg5.contains(want), "{want:?} not in\n{cfg5}");
    }
    assert_eq!(range(&img, P6), bank6, "bank 6 is byte-identical");
    assert_eq!(range(&img, P1), esp);
    assert_eq!(boots(&img), Some(5));
    judge_with_real_tools(&s, &img);
    // state.tgz went A -> B -> C unchanged.
    let c5 = s.path("c-state.tgz");
    copy_out(&img, P5, "state.tgz", &c5);
    assert_eq!(sha256_file(&c5), sha256_file(&s.path("a-state.tgz")));
}

#[test]
fn installorupgrade_installs_on_empty_upgrades_esxi_and_refuses_a_foreign_disk() {
    let s = setup();
    let ks = s.ks_file(
        "iou.cfg",
        "vmaccepteula\nrootpw 'Plain-Secret-99x'\ninstalloupgrade --firstdisk\n"
            .replace("installoupgrade", "installorupgrade")
            .as_str(),
    );
    // Empty disk: a fresh install, and the plan says why.
    let empty = s.path("empty.img");
    let out = s.run("A", &ks, &empty, &["--disk-size", "40G", "--dry-run"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("installorupgrade:")
            && t.contains("holds no ESXi")
            && t.contains("fresh install"),
        "{t}"
    );

    // A disk with ESXi A: an upgrade, as JSON too.
    let img = s.installed_a("disk.img");
    let out = s.run("B", &ks, &img, &["--dry-run", "--progress", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let plan = common::json_lines(&out)
        .into_iter()
        .find(|l| l["event"] == "plan")
        .expect("the plan line");
    let p = &plan["plan"];
    assert_eq!(p["kind"], "upgrade");
    assert!(
        p["reason"]
            .as_str()
            .unwrap()
            .starts_with("installorupgrade:"),
        "{p}"
    );
    assert_eq!(p["upgrade"]["target_bank"], 6);
    assert_eq!(p["upgrade"]["running_bank"], 5);
    assert_eq!(p["upgrade"]["new_updated"], 2);
    assert_eq!(p["upgrade"]["new_bootstate"], 1);
    assert_eq!(p["boot_cfg"]["updated"], 2);
    assert_eq!(p["esp_files"].as_array().unwrap().len(), 0);
    let out = s.run("B", &ks, &img, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(boots(&img), Some(6));

    // A foreign disk (data, no partition table we know): refused as install refuses it.
    let foreign = s.path("foreign.img");
    let f = std::fs::File::create(&foreign).unwrap();
    f.set_len(40 << 30).unwrap();
    common::poke(&foreign, 0, b"not an ESXi disk, some other OS's data");
    let whole = common::hash_image(&foreign);
    let out = s.run("A", &ks, &foreign, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(t.contains("--overwritevmfs not specified"), "{t}");
    assert_eq!(common::hash_image(&foreign), whole);
    // With --overwritevmfs it is a fresh install.
    let ks2 = s.ks_file(
        "iou2.cfg",
        "vmaccepteula\nrootpw 'Plain-Secret-99x'\ninstallorupgrade --firstdisk --overwritevmfs\n",
    );
    let out = s.run("A", &ks2, &foreign, &["--dry-run"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("holds no ESXi") && t.contains("fresh install"),
        "{t}"
    );
}

#[test]
fn downgrades_the_same_build_missing_vibs_and_old_layouts_are_refused_before_any_write() {
    let s = setup();
    s.add_build("B-noqflge", BUILD_B, &["qflge.v00"]);
    let img = s.installed_a("disk.img");
    let out = s.upgrade("B", &img, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let whole = common::hash_image(&img);
    let refused = |o: Output, says: &str| {
        let t = text(&o);
        assert_eq!(o.status.code(), Some(3), "{t}");
        assert!(t.contains(says), "{says:?} not in {t}");
        assert_eq!(common::hash_image(&img), whole, "nothing written");
    };
    // A (older than B, which boots) is a downgrade.
    refused(s.upgrade("A", &img, &[]), "a downgrade");
    // The same build again.
    refused(s.upgrade("B", &img, &[]), "already boots build");
    // The kickstart's --ignoreprereqerrors allows the downgrade, with a warning.
    let ks = s.ks_file(
        "down.cfg",
        "vmaccepteula\nupgrade --firstdisk --ignoreprereqerrors\n",
    );
    let o = s.run("A", &ks, &img, &["--dry-run"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("DOWNGRADE from") && t.contains("bank 5 is reformatted"),
        "{t}"
    );

    // Media without a VIB the host has: refused, naming it.
    let img2 = s.installed_a("disk2.img");
    let whole2 = common::hash_image(&img2);
    let o = s.upgrade("B-noqflge", &img2, &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(3), "{t}");
    assert!(
        t.contains("qflge") && t.contains("not in the new image"),
        "{t}"
    );
    assert_eq!(common::hash_image(&img2), whole2);

    // An upgrade on a disk without ESXi.
    let blank = s.path("blank.img");
    std::fs::File::create(&blank)
        .unwrap()
        .set_len(40 << 30)
        .unwrap();
    let o = s.upgrade("B", &blank, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("holds no ESXi"), "{}", text(&o));

    // The 6.x layout (a vmkDiagnostic partition): typed refusal, probe says so.
    let (ok, _, err) = run(
        "sgdisk",
        &[
            "-t",
            "7:9D275380-40AD-11DB-BF97-000C2911D1B8",
            img2.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    let c = content::read(&img2, 512);
    assert!(matches!(
        c.esx.as_ref().unwrap().upgrade,
        Upgradability::PreSeven { .. }
    ));
    let o = s.upgrade("B", &img2, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("ESXi 6.x"), "{}", text(&o));
}

#[test]
fn bank_choice_follows_esx_boot_rules() {
    use ksinstall::inventory::Bootbank;
    let bank = |partition: u32, state: Option<i64>, updated: u64| Bootbank {
        partition,
        uuid: Some("u".into()),
        has_boot_cfg: true,
        build: Some(BUILD_A.into()),
        updated: Some(updated),
        bootstate: state,
        quickboot: false,
        image: None,
        state_tgz: None,
        jumpstrt_gz: None,
        first_boot: None,
        problem: None,
    };
    // Highest updated among valid banks.
    assert_eq!(
        safeboot_choice(&[bank(5, Some(0), 1), bank(6, Some(1), 2)]).boots,
        Some(6)
    );
    // Upgrading (1) becomes dirty (2) and boots; dirty (2) becomes invalid: rollback.
    let c = safeboot_choice(&[bank(5, Some(0), 1), bank(6, Some(2), 2)]);
    assert_eq!((c.boots, c.rollback), (Some(5), true));
    assert_eq!(c.banks[1].bootstate_after, Some(3));
    // Invalid (3), missing bootstate, updated=0 and no signature never boot.
    assert_eq!(
        safeboot_choice(&[bank(5, Some(0), 1), bank(6, Some(3), 9)]).boots,
        Some(5)
    );
    assert_eq!(
        safeboot_choice(&[bank(5, Some(0), 1), bank(6, None, 9)]).boots,
        Some(5)
    );
    assert_eq!(safeboot_choice(&[bank(5, Some(0), 0)]).boots, None);
    let mut unsigned = bank(6, Some(0), 9);
    unsigned.uuid = None;
    assert_eq!(
        safeboot_choice(&[bank(5, Some(0), 1), unsigned]).boots,
        Some(5)
    );
    // A tie goes to the first bank scanned.
    assert_eq!(
        safeboot_choice(&[bank(6, Some(0), 4), bank(5, Some(0), 4)]).boots,
        Some(5)
    );
    // QuickBoot banks are one-time only.
    let mut quick = bank(6, Some(0), 9);
    quick.quickboot = true;
    assert_eq!(
        safeboot_choice(&[bank(5, Some(0), 1), quick]).boots,
        Some(5)
    );
}

#[test]
fn kill_9_at_random_points_of_an_upgrade_leaves_the_old_bank_booting_and_a_rerun_succeeds() {
    let s = setup();
    let base = s.installed_a("base.img");
    let bank5 = range(&base, P5);
    let esp = range(&base, P1);
    let gpt = hash_range(&base, 0, 34 * 512);
    let bank6_empty = range(&base, P6);
    let ks = s.ks_file("upgrade.cfg", UPGRADE);
    let command = |disk: &Path| {
        let mut c = s.install_command(s.sysroot(), s.path("B").as_os_str(), &ks);
        c.arg("--skip-media-check")
            .arg("--disk")
            .arg(disk)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    // How long a whole upgrade takes here: the kills fall anywhere in it (and a little after).
    let timing = s.path("timing.img");
    common::cp_a(&base, &timing);
    let started = std::time::Instant::now();
    assert!(command(&timing).status().unwrap().success());
    let whole_us = started.elapsed().as_micros() as u64;
    std::fs::remove_file(&timing).unwrap();

    let seed = std::env::var("KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("kill points: KILL_SEED={seed}, a whole upgrade takes {whole_us} us");
    // splitmix64: the kill points, seeded from the clock (printed, so a failure can be replayed
    // with KILL_SEED=N).
    let mut points = synth::SplitMix64(seed);
    let (mut mid_write, mut finished) = (0, 0);
    for trial in 0..24 {
        let disk = s.path("trial.img");
        let _ = std::fs::remove_file(&disk);
        common::cp_a(&base, &disk);
        let delay = points.next() % (whole_us + whole_us / 10);
        let mut child = command(&disk).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_micros(delay));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        let at = format!("trial {trial}, killed after {delay} us ({status})");
        // The old bank, the ESP and the GPT are exactly as before, whatever happened.
        assert_eq!(range(&disk, P5), bank5, "{at}: bank 5 changed");
        assert_eq!(range(&disk, P1), esp, "{at}: the ESP changed");
        assert_eq!(hash_range(&disk, 0, 34 * 512), gpt, "{at}: the GPT changed");
        let now = boots(&disk);
        if now == Some(6) {
            // Killed after boot.cfg was written and synced: the upgrade is complete.
            let cfg = boot_cfg(&disk, P6).unwrap();
            assert!(
                cfg.contains("updated=2\n") && cfg.contains(&format!("build={BUILD_B}\n")),
                "{at}: {cfg}"
            );
            finished += 1;
            continue;
        }
        assert_eq!(now, Some(5), "{at}: bank 5 no longer boots");
        if range(&disk, P6) != bank6_empty {
            mid_write += 1;
        }
        // A rerun of the same upgrade succeeds and the new bank then boots.
        let out = command(&disk).output().unwrap();
        assert!(out.status.success(), "{at}: the rerun failed");
        assert_eq!(boots(&disk), Some(6), "{at}: after the rerun");
        assert_eq!(range(&disk, P5), bank5, "{at}: the rerun changed bank 5");
        let cfg = boot_cfg(&disk, P6).unwrap();
        assert!(
            cfg.contains("bootstate=1\n") && cfg.contains("updated=2\n"),
            "{at}: {cfg}"
        );
    }
    eprintln!("{mid_write} kills landed while bank 6 was being written, {finished} after the end");
    assert!(
        mid_write >= 8,
        "only {mid_write} of 24 kills landed while bank 6 was being written (KILL_SEED={seed})"
    );
    let _ = std::fs::remove_file(s.path("trial.img"));
}

#[test]
fn a_dpu_host_is_upgraded_only_when_the_new_image_carries_the_esxio_its_dpu_runs() {
    let s = setup();
    // B's host part with A's ESXio: the DPU keeps running what the new image carries.
    s.add_build_esxio("B-same-esxio", BUILD_B, &[], Some(BUILD_A));
    let img = s.installed_a("disk.img");
    let whole = common::hash_image(&img);
    let ks = s.ks_file("upgrade.cfg", UPGRADE);
    let refused_report = s.path("refused.json");
    let o = s.run_on(
        "bluefield2",
        "B",
        &ks,
        &img,
        &["--report", refused_report.to_str().unwrap()],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(3), "{t}");
    for want in [
        format!("the DPU runs ESXio {BUILD_A}"),
        format!("carry ESXio {BUILD_B}"),
        "vSphere Lifecycle Manager (vLCM)".into(),
        "BlueField-2".into(),
    ] {
        assert!(t.contains(&want), "{want:?} not in {t}");
    }
    assert_eq!(common::hash_image(&img), whole, "nothing written");
    let report = s.path("upgraded.json");
    let o = s.run_on(
        "bluefield2",
        "B-same-esxio",
        &ks,
        &img,
        &["--report", report.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(boots(&img), Some(6));

    // The fleet checks read upgrade reports: the host runs B after the upgrade, still A after
    // the refused one, and its DPU keeps A's ESXio.
    let o = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .args(["cluster", "check", "--format", "json"])
        .arg(&report)
        .arg(&refused_report)
        .output()
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    let hosts = v["hosts"].as_array().unwrap();
    assert_eq!(hosts[0]["image"]["build"], BUILD_B, "{v}");
    assert_eq!(hosts[0]["upgraded_from"], BUILD_A);
    assert_eq!(hosts[0]["dpus"][0]["model"], "BlueField-2");
    assert_eq!(hosts[0]["dpus"][0]["esxio_build"], BUILD_A);
    // A refusal before the plan: its report has no image, and the refusal is the finding.
    assert!(hosts[1]["image"].is_null(), "{v}");
    assert!(hosts[1]["install"]["error"]
        .as_str()
        .unwrap()
        .contains("vLCM"));
    assert!(
        v["verdict"]["findings"]
            .to_string()
            .contains("install_succeeded"),
        "{v}"
    );
}

#[test]
fn probe_shows_each_bank_which_one_boots_and_whether_it_can_be_upgraded() {
    let s = setup();
    let root = common::copy_fixture("plain", &s.path("root"));
    let sda = root.join("dev/sda");
    std::fs::File::create(&sda)
        .unwrap()
        .set_len(1_953_525_168 * 512)
        .unwrap();
    let ks = s.ks_file("install.cfg", INSTALL);
    let out = s.run("A", &ks, &sda, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    host_ran(&s, &sda);
    let ks = s.ks_file("upgrade.cfg", UPGRADE);
    let out = s.run("B", &ks, &sda, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // inspect on the upgraded disk: bank 6 boots; bank 5's first boot is done.
    let inspect = |format: &str| {
        Command::new(env!("CARGO_BIN_EXE_ksinstall"))
            .args(["inspect", "--format", format])
            .arg(&sda)
            .output()
            .unwrap()
    };
    let out = inspect("text");
    let t = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{t}");
    for want in [
        format!("Bank 5: build {BUILD_A}, updated 1, bootstate 0"),
        "  first boot done (onetime.tgz is no longer in boot.cfg)".into(),
        format!("Bank 6 (boots): build {BUILD_B}, updated 2, bootstate 1"),
    ] {
        assert!(t.contains(&want), "{want:?} not in\n{t}");
    }
    let j: serde_json::Value = serde_json::from_slice(&inspect("json").stdout).unwrap();
    assert_eq!(j["content"]["esx"]["boots"], 6);
    assert_eq!(
        j["content"]["esx"]["banks"][0]["first_boot"]["pending"],
        false
    );
    assert!(
        j["content"]["esx"]["banks"][1]["first_boot"].is_null(),
        "{j}"
    );
    let probe = |format: &str| {
        Command::new(env!("CARGO_BIN_EXE_ksinstall"))
            .args(["probe", "--format", format, "--sysroot"])
            .arg(&root)
            .output()
            .unwrap()
    };
    let t = String::from_utf8_lossy(&probe("text").stdout).into_owned();
    for want in [
        format!("bank p5: build {BUILD_A} bootstate 0 updated 1; ESXi-{BUILD_A}-standard"),
        format!("bank p6: build {BUILD_B} bootstate 1 updated 2 (boots); ESXi-{BUILD_B}-standard"),
        "state.tgz; jumpstrt.gz".into(),
        "upgrade: upgradable".into(),
    ] {
        assert!(t.contains(&want), "{want:?} not in\n{t}");
    }
    let v: serde_json::Value = serde_json::from_slice(&probe("json").stdout).unwrap();
    let esx = v["disks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kernel_name"] == "sda")
        .map(|d| d["content"]["esx"].clone())
        .unwrap();
    assert_eq!(esx["boots"], 6);
    assert_eq!(esx["version"], BUILD_B);
    assert_eq!(esx["upgrade"]["verdict"], "upgradable");
    let banks = esx["banks"].as_array().unwrap();
    assert_eq!(banks[0]["partition"], 5);
    assert!(banks[0]["image"]["vibs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["name"] == "esx-base" && v["version"] == BUILD_A));
    assert_eq!(banks[1]["state_tgz"], banks[0]["state_tgz"]);
}

#[test]
fn banks_too_small_and_foreign_layouts_are_typed_refusals() {
    use ksinstall::inventory::installed::upgradability;
    use ksinstall::partition::{types, PartitionEntry};
    let entry = |number: u32, type_guid, first_lba: u64, sectors: u64| PartitionEntry {
        number,
        type_guid,
        part_guid: uuid::Uuid::nil(),
        first_lba,
        last_lba: first_lba + sectors - 1,
        attributes: 0,
        name: String::new(),
    };
    // Banks of 250 MiB (the 6.x size) in an otherwise 7.0-shaped table.
    let small = [
        entry(1, types::EFI_SYSTEM, 64, 204_800),
        entry(5, types::BASIC_DATA, 208_896, 512_000),
        entry(6, types::BASIC_DATA, 722_944, 512_000),
        entry(7, types::VMFSL, 1_236_992, 8_000_000),
    ];
    assert_eq!(
        upgradability(&small, &[], 512),
        Upgradability::BanksTooSmall {
            partition: 5,
            bytes: 512_000 * 512,
            min_bytes: 499 << 20
        }
    );
    let no_osdata = [
        entry(1, types::EFI_SYSTEM, 64, 204_800),
        entry(5, types::BASIC_DATA, 208_896, 8_386_560),
        entry(6, types::BASIC_DATA, 8_597_504, 8_386_560),
    ];
    assert!(matches!(
        upgradability(&no_osdata, &[], 512),
        Upgradability::NotEsxLayout { .. }
    ));
    let with_osdata: Vec<PartitionEntry> = no_osdata
        .iter()
        .cloned()
        .chain([entry(7, types::VMFSL, 16_986_112, 8_000_000)])
        .collect();
    assert_eq!(
        upgradability(&with_osdata, &[], 512),
        Upgradability::NoBootableBank
    );
}
