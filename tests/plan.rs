//! The plan as a pure function of the host: every fixture under tests/fixtures is read once
//! (`install::prepare`, as a run reads the machine), its host document written and the fixture
//! and media deleted; then each kickstart is planned from the document alone and the result
//! compared with the reviewed expectations in tests/plans/expected.txt. A plan reads back from
//! its JSON as itself, and the same host gives the same plan bytes.
//!
//! After a deliberate change: `KSINSTALL_BLESS=1 cargo test --test plan`, then review the diff of
//! tests/plans/expected.txt like code.

mod common;
#[path = "common/devlink_peer.rs"]
mod devlink_peer;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use common::setup::Setup;
use ksinstall::plan::{self, Host, Plan};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo().join("tests/fixtures"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("sys").is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The kickstarts: every example shipped, and the upgrade commands.
fn kickstarts() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(repo().join("kickstart-examples"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    let pw = "rootpw --iscrypted $6$ksinstallExampl$gs0rWRb4e18QdWwUGxkYYf27pufzcgy.uh99Ch9umRYHEgzPhZjOfXvb9/6j3OBpXQpAO238CiGZZ0X5fOIg31";
    for (name, cmd) in [
        ("upgrade", "upgrade --firstdisk"),
        (
            "installorupgrade",
            "installorupgrade --firstdisk --overwritevmfs",
        ),
    ] {
        v.push((name.into(), format!("vmaccepteula\n{pw}\n{cmd}\n")));
    }
    v
}

/// The DSC's devlink peer, answering on its socket while the host is read (a BlueField answers
/// behind rshim's files through the set-up). Other fixtures' cards get no answer (the same one
/// on every machine: no rshim device, no peer on the socket).
fn devlink_peer(fixture: &str, setup: &Setup) -> Option<devlink_peer::DevlinkPeer> {
    (fixture == "pensando-dsc2-200").then(|| {
        devlink_peer::DevlinkPeer::start(
            setup.dir.path(),
            setup.sysroot(),
            "0000:45:00.0",
            devlink_peer::FlashBehaviour::Succeed,
            "1.51.0-E-12",
        )
    })
}

/// Read a fixture as a run does (a copy of it, with the synthetic media), and return its host
/// document; the copy and the media are deleted before the caller plans.
fn recorded(fixture: &str) -> String {
    // The card answers while the host is read: the set-up's BlueField, or the DSC's peer.
    let setup = Setup::with()
        .media("16M")
        .host(fixture)
        .live_bluefield()
        .build();
    let sysroot = setup.sysroot().to_path_buf();
    let peer = devlink_peer(fixture, &setup);
    // The same devlink answer on every machine: the card's peer, or no peer on this socket (the
    // kernel's devlink family is there on one machine and not on the next).
    let access = ksinstall::dpu::Access {
        devlink: ksinstall::dpu::Endpoint::Simulator(match &peer {
            Some(peer) => peer.socket.clone(),
            None => setup.path("no-devlink.sock"),
        }),
        ..ksinstall::dpu::Access::new(&sysroot)
    };
    let mut options =
        ksinstall::install::Options::new(&sysroot, access, Ok(repo().join("firmware")));
    options.dry_run = true;
    options.skip_media_check = true;
    let http = ksinstall::http::Http::new(Default::default()).unwrap();
    let media = setup.path("media").display().to_string();
    let boot = ksinstall::source::cmdline::BootOptions::parse("").unwrap();
    let mut prepared = ksinstall::install::prepare(&options, boot, &media, &http)
        .unwrap_or_else(|f| panic!("{fixture}: {}", f.message));
    // The interpreters as the installer image has them, whatever this machine has.
    prepared.host.interpreters = ksinstall::plan::Interpreters {
        shell: Some("/bin/sh".into()),
        python: Some("/usr/bin/python3".into()),
    };
    let text = serde_json::to_string(&prepared.host).unwrap();
    // Paths in the document name the deleted copy; one name for every run of the test.
    let tmp = setup.dir.path().display().to_string();
    drop(prepared);
    drop(peer);
    drop(setup);
    text.replace(&tmp, "/recorded")
}

/// A kickstart parsed once: a plain `rootpw` is hashed with a fresh salt at each parse.
fn parsed(name: &str, ks_text: &str) -> ksinstall::kickstart::Kickstart {
    let mut loader = ksinstall::kickstart::FsLoader::new("/nonexistent");
    ksinstall::kickstart::parse(name, name, ks_text.as_bytes(), &mut loader, None).kickstart
}

fn plan_of(
    host: &Host,
    name: &str,
    ks: &ksinstall::kickstart::Kickstart,
) -> Result<Plan, plan::PlanError> {
    plan::make(&plan::Inputs::new(host, name, ks))
}

/// Where two JSON texts first differ, briefly (a plan is too long to print whole).
fn first_difference(a: &str, b: &str) -> String {
    let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let from = at.saturating_sub(80);
    format!(
        "at byte {at}: ...{} vs ...{}",
        &a[from..(at + 80).min(a.len())],
        &b[from..(at + 80).min(b.len())]
    )
}

/// One pair in words: what a user sees first in a plan.
fn summary(fixture: &str, ks: &str, r: &Result<Plan, plan::PlanError>) -> String {
    let mut s = format!("{fixture} x {ks}: ");
    match r {
        Err(e) => writeln!(s, "refused ({:?}): {}", e.outcome, e.message).unwrap(),
        Ok(p) => {
            let parts: Vec<String> = p
                .layout
                .partitions
                .iter()
                .map(|x| format!("{}:{:?}:{}M", x.entry.number, x.action, x.size_bytes >> 20))
                .collect();
            writeln!(
                s,
                "{} on {} ({}) [{}]",
                p.kind,
                p.target.name,
                p.target.chosen_because,
                parts.join(" ")
            )
            .unwrap();
            for d in &p.dpus {
                writeln!(s, "  dpu: {} {}", d.name, d.action).unwrap();
            }
            for n in &p.dpus_not_used {
                writeln!(s, "  not used: {} ({})", n.name, n.reason).unwrap();
            }
            for c in &p.cleared {
                writeln!(s, "  clears: {}", c.name).unwrap();
            }
            for w in &p.warnings {
                writeln!(s, "  warning: {w}").unwrap();
            }
        }
    }
    // The checkout's path differs from one clone to the next.
    s.replace(&repo().display().to_string(), "<repo>")
}

#[test]
fn every_fixture_and_kickstart_plans_from_the_host_document_as_reviewed() {
    let mut got = String::new();
    let kss = kickstarts();
    for fixture in fixtures() {
        let doc = recorded(&fixture);
        let host = Host::from_json(&doc).unwrap();
        for (name, text) in &kss {
            let ks = parsed(name, text);
            let first = plan_of(&host, name, &ks);
            got.push_str(&summary(&fixture, name, &first));
            if let Ok(p) = &first {
                // The same host, kickstart and options: the same plan, byte for byte.
                let bytes = serde_json::to_string(p).unwrap();
                let again = serde_json::to_string(&plan_of(&host, name, &ks).unwrap()).unwrap();
                assert!(
                    bytes == again,
                    "{fixture} x {name}: {}",
                    first_difference(&bytes, &again)
                );
                // The plan reads back from its JSON as itself.
                let back: Plan = serde_json::from_str(&bytes).unwrap();
                let back = serde_json::to_string(&back).unwrap();
                assert!(
                    back == bytes,
                    "{fixture} x {name}: {}",
                    first_difference(&bytes, &back)
                );
            }
        }
    }
    let expected_path = repo().join("tests/plans/expected.txt");
    if std::env::var_os("KSINSTALL_BLESS").is_some() {
        std::fs::create_dir_all(expected_path.parent().unwrap()).unwrap();
        std::fs::write(&expected_path, &got).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap();
    if got != expected {
        let first = got
            .lines()
            .zip(expected.lines())
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("got:      {a}\nexpected: {b}"))
            .unwrap_or_else(|| "the number of lines differs".into());
        panic!("the plans differ from tests/plans/expected.txt (KSINSTALL_BLESS=1 to rewrite, then review):\n{first}");
    }
    assert!(got.lines().count() > fixtures().len() * kss.len());
}

#[test]
fn another_seed_gives_other_identities_and_nothing_else() {
    let mut host = Host::from_json(&recorded("plain")).unwrap();
    let (name, text) = &kickstarts()[0];
    let ks = parsed(name, text);
    let a = plan_of(&host, name, &ks).unwrap();
    host.seed = "another".into();
    let b = plan_of(&host, name, &ks).unwrap();
    assert_ne!(a.layout.disk_guid, b.layout.disk_guid);
    assert_ne!(
        a.layout.partitions[0].entry.part_guid,
        b.layout.partitions[0].entry.part_guid
    );
    let (a, b) = (Ok(a), Ok(b));
    assert_eq!(summary("plain", name, &a), summary("plain", name, &b));
}

#[test]
fn a_host_document_of_another_format_is_refused() {
    let doc = recorded("plain").replacen("\"format\":1", "\"format\":99", 1);
    let e = Host::from_json(&doc).unwrap_err();
    assert!(e.to_string().contains("format 99"), "{e}");
}

/// `install --dry-run --save-host` on one machine, `plan --host` anywhere: the same plan.
#[test]
fn a_saved_host_plans_the_same_as_the_dry_run_and_the_same_twice() {
    let s = Setup::new("16M");
    // A hashed rootpw: a plain one gets a fresh salt each time the kickstart is read.
    let ks = s.ks(&kickstarts()
        .iter()
        .find(|k| k.0 == "upgrade")
        .unwrap()
        .1
        .replace("upgrade", "install --overwritevmfs"));
    let host = s.path("host.json");
    let dry = s.install(&ks, &["--dry-run", "--save-host", host.to_str().unwrap()]);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    // The fixture and the media are not needed any more.
    std::fs::remove_dir_all(s.path("media")).unwrap();
    let plan = |format: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
            .args(["plan", "--host"])
            .arg(&host)
            .arg("--ks")
            .arg(&ks)
            .args(["--format", format])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let (one, two) = (plan("json"), plan("json"));
    assert_eq!(
        one, two,
        "a second run on the recorded host gives the same plan bytes"
    );
    let p: Plan = serde_json::from_slice(&one).unwrap();
    assert_eq!(serde_json::to_vec_pretty(&p).unwrap(), one.trim_ascii_end());
    let dry_text = String::from_utf8_lossy(&dry.stdout);
    let text = String::from_utf8(plan("text")).unwrap();
    assert!(
        dry_text.starts_with(&text),
        "plan --host:\n{text}\ninstall --dry-run:\n{dry_text}"
    );
}

/// `--disk` naming a node of the disk the installer booted from (a partition, a device-mapper
/// node on it) is refused like that disk; a partition of any disk is refused (ESXi takes a whole
/// disk); a device-mapper node on other disks (multipath, say) is a disk like any other.
#[test]
fn a_disk_node_on_the_boot_disk_is_refused_like_the_disk() {
    use ksinstall::plan::{OverrideDisk, OverrideState};
    let mut host = Host::from_json(&recorded("plain")).unwrap();
    host.media_disk = Some("sda".into());
    let ks = parsed("ks.cfg", "vmaccepteula\nrootpw --iscrypted $6$ksinstallExampl$gs0rWRb4e18QdWwUGxkYYf27pufzcgy.uh99Ch9umRYHEgzPhZjOfXvb9/6j3OBpXQpAO238CiGZZ0X5fOIg31\ninstall --firstdisk --overwritevmfs\n");
    let mut with_node = |path: &str, partition_of: Option<&str>, on: &[&str]| {
        host.disk_override = Some(OverrideDisk {
            path: path.into(),
            image_sector_size: 512,
            state: OverrideState::Existing {
                known: None,
                size_bytes: 64 << 30,
                logical_sector_size: 512,
                content: Box::new(ksinstall::inventory::DiskContent::blank()),
                partition_of: partition_of.map(str::to_string),
                on_disks: on.iter().map(|s| s.to_string()).collect(),
            },
        });
        plan_of(&host, "ks.cfg", &ks).map_err(|e| (e.outcome, e.message))
    };
    let booted = "the disk the installer booted from";
    let e = with_node("/dev/sda1", Some("sda"), &["sda"]).unwrap_err();
    assert!(
        e.1.contains("/dev/sda1 (on sda)") && e.1.contains(booted),
        "{e:?}"
    );
    assert_eq!(e.0, ksinstall::exit::Outcome::Precondition);
    let e = with_node("/dev/dm-0", None, &["sda", "sdb"]).unwrap_err();
    assert!(
        e.1.contains("/dev/dm-0 (on sda)") && e.1.contains(booted),
        "{e:?}"
    );
    let e = with_node("/dev/sdb2", Some("sdb"), &["sdb"]).unwrap_err();
    assert!(e.1.contains("is a partition of sdb"), "{e:?}");
    let p = with_node("/dev/dm-1", None, &["sdb", "sdd"]).unwrap();
    assert_eq!(p.target.name, "/dev/dm-1");
}

/// `--save-host` names a file: a device (or any other node) is refused, and nothing is written.
#[test]
fn a_host_document_is_never_written_over_a_device() {
    let s = Setup::new("16M");
    let ks = s.ks(&kickstarts()[1].1);
    let out = s.install(&ks, &["--dry-run", "--save-host", "/dev/null"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--save-host /dev/null: not a regular file"),
        "{err}"
    );
}
