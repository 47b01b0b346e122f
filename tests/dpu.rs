//! The DPU in the same fresh install, end to end through the real binary: a simulated
//! BlueField behind rshim's device files (`dev/rshimN/boot` a FIFO, `misc` a file), and a
//! devlink peer for the Pensando DSC on the socket seam, each checking what it received. The
//! host disk is judged with sgdisk and mtools; a failed DPU must leave no `boot.cfg`.

mod common;
#[path = "common/devlink_peer.rs"]
mod devlink_peer;
#[path = "common/rshim_daemon.rs"]
mod rshim_daemon;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use common::setup::Setup;
use common::text;
use common::{mcopy_out, run, sha256_file};
use devlink_peer::{DevlinkPeer, FlashBehaviour};
use ksinstall::media::Manifest;
use rshim_daemon::{Card, DaemonConfig, RshimDaemon};
use serde_json::Value;
use testkit::sim::{Behaviour, Config, Received, RshimSim};

const P5: u64 = 208_896 * 512;
const KS: &str = "vmaccepteula\nrootpw 'Plain-Secret-99x'\ninstall --firstdisk --overwritevmfs\nnetwork --bootproto=dhcp\n";

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A writable copy of a fixture sysroot, and a small synthetic ESXi 8.0.3 medium.
fn host(fixture: &str) -> Setup {
    Setup::with()
        .host(fixture)
        .media("64M")
        .seed(5)
        .ks(KS)
        .build()
}

/// What the DPU tests do on the shared set-up: start a card, run the binary on the host, and
/// judge the host's disk.
trait DpuHost {
    fn pinned_manifest(&self) -> Manifest;
    fn rshim(&self, config: Config) -> RshimSim;
    fn ksinstall(&self, args: &[&str]) -> Output;
    fn dpu_install(&self, extra: &[&str]) -> Output;
    fn check_host_disk(&self);
    fn boot_cfg(&self) -> Option<String>;
}

impl DpuHost for Setup {
    /// The medium's manifest with the DPU's part pinned, as a DPU install reads it.
    fn pinned_manifest(&self) -> Manifest {
        let mut m = ksinstall::media::Media::open(&self.media()).unwrap();
        m.pin_dpu().unwrap();
        m.manifest
    }
    fn rshim(&self, config: Config) -> RshimSim {
        RshimSim::start(&self.sysroot().join("dev/rshim0"), config).unwrap()
    }
    fn ksinstall(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ksinstall"))
            .args(args)
            .arg("--sysroot")
            .arg(self.sysroot())
            .env("RUST_LOG", "info")
            .output()
            .unwrap()
    }
    /// `install` onto `disk.img` (40G) with JSON progress and `report.json`.
    fn dpu_install(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "install".to_string(),
            "--ks".into(),
            self.path("ks.cfg").display().to_string(),
            "--media".into(),
            self.path("media").display().to_string(),
            "--cmdline".into(),
            String::new(),
            "--disk".into(),
            self.path("disk.img").display().to_string(),
            "--disk-size".into(),
            "40G".into(),
            "--progress".into(),
            "json".into(),
            "--report".into(),
            self.path("report.json").display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ksinstall(&refs)
    }
    /// The host disk checks out with sgdisk and mtools, its modules hash to the media, and it
    /// is bootable.
    fn check_host_disk(&self) {
        let img = self.path("disk.img");
        let (ok, v, _) = run("sgdisk", &["-v", img.to_str().unwrap()]);
        assert!(ok && v.contains("No problems found"), "{v}");
        let back = self.path("bank0");
        std::fs::create_dir(&back).unwrap();
        mcopy_out(&img, P5, "::/", &back);
        let m = self.pinned_manifest();
        for c in m.components.iter().filter(|c| {
            matches!(
                c.role,
                ksinstall::media::Role::Kernel | ksinstall::media::Role::Module
            )
        }) {
            assert_eq!(sha256_file(&back.join(&c.path)), c.sha256, "{}", c.path);
        }
        assert!(
            !back.join("esxiodpt.tgz").exists(),
            "the DPU's depot is not the host's"
        );
        assert!(self.boot_cfg().unwrap().contains("bootstate=0"));
    }
    fn boot_cfg(&self) -> Option<String> {
        let img = self.path("disk.img");
        let (ok, out, _) = run(
            "mtype",
            &["-i", &format!("{}@@{P5}", img.display()), "::/boot.cfg"],
        );
        ok.then_some(out)
    }
}

fn events(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The hashes of a bundle's files, read from the files themselves.
fn bundle_hash(bundle: &str, file: &str) -> String {
    sha256_file(&repo(&format!("firmware/{bundle}/{file}")))
}

/// The synthetic model testkit wrote the bundle of.
fn bundle_model(bundle: &str) -> testkit::bundles::Model {
    *testkit::bundles::MODELS
        .iter()
        .find(|m| m.catalog_id == bundle)
        .unwrap()
}

/// What a BlueField must have been given: the bundle's BF-Bundle byte for byte with every
/// image sound, the ESXio depot of the media, and `bf.cfg` naming the payload.
fn check_bluefield_stream(h: &Setup, got: &Received, bundle: &str) {
    assert!(got.problems.is_empty(), "{:?}", got.problems);
    let ids: Vec<u8> = got.images.iter().map(|i| i.id).collect();
    assert_eq!(
        ids,
        [1, 3, 5, 41, 50, 63],
        "BL2, BL31, UEFI, NIC firmware, info, installer ramdisk: mlx-mkbfb's order"
    );
    assert!(got.images.iter().all(|i| i.crc_ok));
    let model = bundle_model(bundle);
    for id in [1u8, 3, 5, 41] {
        let img = got.images.iter().find(|i| i.id == id).unwrap();
        assert_eq!(
            Some(img.sha256.clone()),
            model.image_sha256(id),
            "image {id}"
        );
    }
    let esxio = h
        .pinned_manifest()
        .find("esxiodpt.tgz")
        .unwrap()
        .sha256
        .clone();
    assert_eq!(got.esxio, vec![("esxio/esxiodpt.tgz".to_string(), esxio)]);
    assert!(
        got.bf_cfg.contains("UPDATE_DPU_OS=\"yes\""),
        "{}",
        got.bf_cfg
    );
    assert!(
        got.commands.iter().any(|c| c == "DISPLAY_LEVEL 2"),
        "{:?}",
        got.commands
    );
}

fn bluefield_end_to_end(fixture: &str, address: &str, dev_info: &str, bundle: &str) {
    let h = host(fixture);
    let mut config = Config::new(address, dev_info);
    // A DPU drains its boot FIFO at a finite rate: the host lay-down goes on meanwhile.
    config.rate = Some(40 << 20);
    let sim = h.rshim(config);
    let out = h.dpu_install(&["--dpu-timeout", "20"]);
    let got = sim.finish();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    check_bluefield_stream(&h, &got, bundle);

    // The report: what was sent hashes to what the DPU received; before and after.
    let r = h.report();
    let d = &r["dpus"][0];
    assert_eq!(d["after"]["staged_sha256"], got.sha256.as_str());
    assert_eq!(d["after"]["staged_bytes"], got.bytes);
    let id = d["payload"]["id"].as_str().unwrap();
    assert!(got.bf_cfg.contains(id));
    // Success is the payload's own line, logged by bf.cfg's hook, naming this payload.
    assert!(
        d["after"]["after"]["software"]
            .as_str()
            .unwrap()
            .contains(&format!("ksinstall payload {id} run ")),
        "{d:#}"
    );
    assert_eq!(
        d["before"]["software"],
        Value::Null,
        "rshim tells no OS version"
    );
    // The DPU's display level is put back, and its log was read as bfb-install reads it.
    assert!(
        got.commands.iter().any(|c| c == "CLEAR_ON_READ 1"),
        "{:?}",
        got.commands
    );
    let misc = std::fs::read_to_string(h.sysroot().join("dev/rshim0/misc")).unwrap();
    let last_level = misc
        .lines()
        .rfind(|l| l.starts_with("DISPLAY_LEVEL ") && !l.contains('('));
    assert_eq!(last_level, Some("DISPLAY_LEVEL 0"), "{misc}");

    // Progress from both at once: the DPU step starts before the host's bank is done, reports
    // bytes and the DPU's own log, and ends before boot.cfg is written.
    let ev = events(&out);
    let pos = |f: &dyn Fn(&Value) -> bool| ev.iter().position(f).unwrap_or(usize::MAX);
    let dpu_start = pos(&|e| e["event"] == "step_started" && e["step"] == "dpu");
    let bank_end = pos(&|e| e["event"] == "step_finished" && e["step"] == "bootbank");
    let dpu_end = pos(&|e| e["event"] == "step_finished" && e["step"] == "dpu");
    let cfg_start = pos(&|e| e["event"] == "step_started" && e["step"] == "bootcfg");
    assert!(dpu_start < bank_end && dpu_end < cfg_start, "{ev:#?}");
    assert!(ev
        .iter()
        .any(|e| e["event"] == "progress" && e["step"] == "dpu"));
    assert!(ev.iter().any(|e| e["event"] == "status"
        && e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("INFO: ksinstall payload "))));

    h.check_host_disk();
}

#[test]
fn bluefield3_gets_esxio_and_firmware_in_the_same_install() {
    bluefield_end_to_end(
        "bluefield3",
        "0000:ca:00.2",
        "BlueField-3(Rev 1)",
        "nvidia-bluefield-3",
    );
}

#[test]
fn bluefield2_gets_esxio_and_firmware_in_the_same_install() {
    bluefield_end_to_end(
        "bluefield2",
        "0000:3b:00.2",
        "BlueField-2(Rev 1)",
        "nvidia-bluefield-2",
    );
}

const DSC_PF: &str = "0000:45:00.0";

#[test]
fn pensando_dsc_is_flashed_through_devlink() {
    let h = host("pensando-dsc2-200");
    let peer = DevlinkPeer::start(
        h.dir.path(),
        h.sysroot(),
        DSC_PF,
        FlashBehaviour::Succeed,
        "1.51.0-E-12",
    );
    let sock = peer.socket.display().to_string();

    // probe shows what the card runs, through devlink.
    let p = h.ksinstall(&["probe", "--devlink-socket", &sock]);
    let shown = text(&p);
    assert!(shown.contains("devlink pci/0000:45:00.0"), "{shown}");
    assert!(shown.contains("running fw: 1.51.0-E-12"), "{shown}");
    assert!(shown.contains("stored fw.goldfw: 1.51.0-G-3"), "{shown}");

    let out = h.dpu_install(&["--devlink-socket", &sock, "--dpu-timeout", "20"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = peer.log();
    assert!(log.problems.is_empty(), "{:?}", log.problems);
    assert!(
        log.commands.contains(&58),
        "a FLASH_UPDATE: {:?}",
        log.commands
    );
    let file = log.flashed_file.clone().unwrap();
    assert!(file.starts_with("ksinstall/"), "{file}");
    // The kernel read the vendor's package byte for byte.
    assert_eq!(
        log.flashed_sha256.as_deref(),
        Some(bundle_hash("amd-pensando-dsc", "dsc_fw.tar").as_str())
    );
    assert!(text(&out).contains("the media's ESXio components are not sent over devlink"));
    // The staged file (and our directory) is gone from the firmware search path afterwards.
    assert!(!h.sysroot().join("lib/firmware/ksinstall").exists());

    // Progress came from the device's status notifications (and not from another device's).
    let ev = events(&out);
    let statuses: Vec<&str> = ev
        .iter()
        .filter(|e| e["event"] == "status" && e["step"] == "dpu")
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(statuses.contains(&"Downloading 100%"), "{statuses:?}");
    assert!(statuses
        .iter()
        .any(|s| s.starts_with("Installing (may take up to 1500s)")));
    assert!(statuses.contains(&"Flash done"), "{statuses:?}");

    // Before and after: the new package in the inactive bank, the running one unchanged.
    let r = h.report();
    let d = &r["dpus"][0];
    let after = d["after"]["after"]["versions"].as_array().unwrap();
    let stored_b = after
        .iter()
        .find(|v| v["kind"] == "stored" && v["name"] == "fw.mainfwb")
        .unwrap();
    assert_eq!(stored_b["value"], "1.68.0-E-21");
    let running = after.iter().find(|v| v["kind"] == "running").unwrap();
    assert_eq!(
        running["value"], "1.51.0-E-12",
        "the new firmware runs from the next boot"
    );
    assert_eq!(d["before"]["software"], "firmware 1.51.0-E-12");
    h.check_host_disk();
}

/// A failed DPU: its exit code, a message naming the card, and no boot.cfg on the host.
fn dpu_failed(h: &Setup, out: &Output, code: i32, says: &str) {
    let t = text(out);
    assert_eq!(out.status.code(), Some(code), "{t}");
    assert!(t.contains(says), "{says:?} not in {t}");
    assert!(
        h.boot_cfg().is_none(),
        "a host whose DPU failed must not boot"
    );
    let r = h.report();
    assert_eq!(r["exit_code"], code);
}

#[test]
fn a_bluefield_that_reports_a_failure_fails_the_install_without_boot_cfg() {
    for (behaviour, says) in [
        (Behaviour::CriticalError, "CRITICAL ERROR"),
        // The OS installer's failure, followed by its reboot all the same.
        (Behaviour::ErrorThenReboot, "ERR Installation failed"),
    ] {
        let h = host("bluefield3");
        let mut c = Config::new("0000:ca:00.2", "BlueField-3(Rev 1)");
        c.behaviour = behaviour;
        let sim = h.rshim(c);
        let out = h.dpu_install(&["--dpu-timeout", "20"]);
        sim.finish();
        dpu_failed(&h, &out, 7, "BlueField-3 in slot 4 (0000:ca:00)");
        assert!(text(&out).contains(says), "{}", text(&out));
    }
}

#[test]
fn a_silent_bluefield_times_out() {
    let h = host("bluefield3");
    let mut c = Config::new("0000:ca:00.2", "BlueField-3(Rev 1)");
    c.behaviour = Behaviour::Silent;
    let sim = h.rshim(c);
    let out = h.dpu_install(&["--dpu-timeout", "2"]);
    let got = sim.finish();
    assert!(
        got.problems.is_empty(),
        "the stream itself was fine: {:?}",
        got.problems
    );
    dpu_failed(&h, &out, 9, "no word from the DPU for 2s");
}

#[test]
fn a_bluefield_that_stops_reading_is_a_short_write() {
    let h = host("bluefield3");
    let mut c = Config::new("0000:ca:00.2", "BlueField-3(Rev 1)");
    c.behaviour = Behaviour::CloseAfter(300_000);
    let sim = h.rshim(c);
    let out = h.dpu_install(&["--dpu-timeout", "20"]);
    sim.finish();
    dpu_failed(&h, &out, 10, "short write");
    assert!(text(&out).contains("0000:ca:00"));
}

#[test]
fn devlink_errors_end_the_install_each_with_its_code() {
    for (behaviour, code, says) in [
        (
            FlashBehaviour::Busy,
            11,
            "Firmware update already in progress",
        ),
        (FlashBehaviour::NotSupported, 11, "cannot flash"),
        (FlashBehaviour::Fail, 7, "bad package signature"),
        (
            FlashBehaviour::Stall,
            9,
            "no word from the device for 2s (last status: Downloading)",
        ),
    ] {
        let h = host("pensando-dsc2-200");
        let peer = DevlinkPeer::start(h.dir.path(), h.sysroot(), DSC_PF, behaviour, "1.51.0-E-12");
        let sock = peer.socket.display().to_string();
        let out = h.dpu_install(&["--devlink-socket", &sock, "--dpu-timeout", "2"]);
        dpu_failed(&h, &out, code, says);
        assert!(
            text(&out).contains("DSC2-200 in slot 3 (0000:41:00)"),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn a_dsc_that_already_runs_the_bundles_firmware_is_not_flashed_again() {
    let h = host("pensando-dsc2-200");
    // devlink says the card runs 1.68.0-E-21: the version of the bundle in firmware/.
    let peer = DevlinkPeer::start(
        h.dir.path(),
        h.sysroot(),
        DSC_PF,
        FlashBehaviour::Succeed,
        "1.68.0-E-21",
    );
    let sock = peer.socket.display().to_string();
    let out = h.dpu_install(&["--devlink-socket", &sock, "--dpu-timeout", "5"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        !peer.log().commands.contains(&58),
        "no FLASH_UPDATE: {:?}",
        peer.log().commands
    );
    assert!(text(&out).contains("already runs"), "{}", text(&out));
    assert_eq!(h.report()["dpus"][0]["action"], "already_installed");
    h.check_host_disk();
}

#[test]
fn dpu_rules_are_checked_before_anything_is_written() {
    // No rshim daemon: refused at plan time, no image made.
    let h = host("bluefield3");
    let out = h.dpu_install(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("no rshim device for 0000:ca:00.2"));
    // Nor any daemon on the system: the refusal says how an installer image gets one.
    assert!(
        text(&out).contains("cargo xtask image --with-rshim FILE"),
        "{}",
        text(&out)
    );
    assert!(!h.path("disk.img").exists());
    // A daemon installed that made no device: the question is whether it runs.
    std::fs::create_dir_all(h.sysroot().join("usr/sbin")).unwrap();
    std::fs::write(h.sysroot().join("usr/sbin/rshim"), "").unwrap();
    let out = h.dpu_install(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("is it running"), "{}", text(&out));
    assert!(!text(&out).contains("--with-rshim"), "{}", text(&out));
    std::fs::remove_file(h.sysroot().join("usr/sbin/rshim")).unwrap();

    // No firmware bundle for the model.
    let _sim = h.rshim(Config::new("0000:ca:00.2", "BlueField-3(Rev 1)"));
    let empty = h.path("no-firmware");
    std::fs::create_dir(&empty).unwrap();
    let out = h.dpu_install(&["--firmware", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("no firmware bundle for nvidia-bluefield-3"),
        "{}",
        text(&out)
    );

    // A bundle whose file does not match its manifest.
    let bad = h.path("bad-firmware");
    Command::new("cp")
        .arg("-a")
        .arg(repo("firmware"))
        .arg(&bad)
        .status()
        .unwrap();
    let bfb = testkit::bundles::BLUEFIELD3.file_name();
    let size = std::fs::metadata(bad.join("nvidia-bluefield-3").join(&bfb))
        .unwrap()
        .len();
    std::fs::write(
        bad.join("nvidia-bluefield-3").join(&bfb),
        vec![0u8; size as usize],
    )
    .unwrap();
    let out = h.dpu_install(&["--firmware", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("{bfb} has SHA-256")),
        "{}",
        text(&out)
    );

    // installorupgrade on a DPU host whose disk holds no ESXi: a fresh install, DPU included
    // (an upgrade of a DPU host: tests/upgrade.rs).
    std::fs::write(
        h.path("ks.cfg"),
        KS.replace(
            "install --firstdisk --overwritevmfs",
            "installorupgrade --firstdisk --overwritevmfs",
        ),
    )
    .unwrap();
    let out = h.dpu_install(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("so this is a fresh install")
            && text(&out).contains("\"dpus\":[{\"action\":\"install\""),
        "{}",
        text(&out)
    );
}

/// The card as rshim shows it in a mode in which ESXi does not use it as a DPU.
fn card_not_a_dpu(h: &Setup, mode: &str) -> RshimSim {
    let mut c = Config::new("0000:ca:00.2", "BlueField-3(Rev 1)");
    if mode == "NIC mode" {
        c.bf_mode = "NIC mode".into();
    }
    let sim = h.rshim(c);
    if mode == "SECURE_NIC_MODE" {
        let misc = h.sysroot().join("dev/rshim0/misc");
        let text = std::fs::read_to_string(&misc).unwrap();
        std::fs::write(
            &misc,
            text.replace("SECURE_NIC_MODE 0", "SECURE_NIC_MODE 1"),
        )
        .unwrap();
    }
    sim
}

#[test]
fn a_card_esxi_would_not_use_as_a_dpu_is_left_alone_and_the_host_installed_without_dse() {
    for mode in ["NIC mode", "SECURE_NIC_MODE"] {
        // Named by --dpuPciSlots: the user asked for DSE on it, so nothing is written.
        let h = host("bluefield3");
        let sim = card_not_a_dpu(&h, mode);
        std::fs::write(
            h.path("ks.cfg"),
            KS.replace(
                "--overwritevmfs",
                "--overwritevmfs --dpuPciSlots=0000:ca:00",
            ),
        )
        .unwrap();
        let out = h.dpu_install(&[]);
        assert_eq!(out.status.code(), Some(3), "{mode}: {}", text(&out));
        assert!(text(&out).contains("--dpuPciSlots names"), "{}", text(&out));
        assert!(text(&out).contains(mode), "{mode}: {}", text(&out));
        assert!(!h.path("disk.img").exists());

        // Not named: ESXi goes on the host alone, the card gets nothing, and the plan, the
        // report and the fleet check all say so.
        std::fs::write(h.path("ks.cfg"), KS).unwrap();
        let out = h.dpu_install(&[]);
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", text(&out));
        h.check_host_disk();
        let got = sim.finish();
        assert_eq!(got.bytes, 0, "{mode}: the card was sent a boot stream");
        assert!(
            got.commands.is_empty(),
            "{mode}: misc was written: {:?}",
            got.commands
        );
        let report = h.report();
        assert_eq!(report["dpus"].as_array().map(Vec::len), Some(0));
        let left = &report["dpus_not_used"][0];
        assert_eq!(left["address"], "0000:ca:00", "{report:#}");
        assert!(left["reason"].as_str().unwrap().contains(mode), "{left:#}");
        let warned = report["warnings"].as_array().unwrap().iter().any(|w| {
            w.as_str()
                .unwrap()
                .contains("without Distributed Services Engine")
        });
        assert!(warned, "{report:#}");
        let check = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
            .args(["cluster", "check", "--format", "json"])
            .arg(h.path("report.json"))
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&check.stdout).unwrap();
        assert!(
            v.to_string().contains("dpu_enabled"),
            "{mode}: cluster check: {v:#}"
        );
    }
}

#[test]
fn host_rules_of_distributed_services_engine() {
    // Two DPUs, an unsupported one, a slot without one: refused before anything is written.
    for (fixture, extra, says) in [
        ("two-dpus", "", "this host has 2 DPUs"),
        (
            "bluefield1",
            " --dpuPciSlots=1",
            "--dpuPciSlots names slot \"1\", which holds no supported DPU",
        ),
        (
            "bluefield3",
            " --dpuPciSlots=9",
            "--dpuPciSlots names slot \"9\"",
        ),
    ] {
        let h = host(fixture);
        let _sim = h.rshim(Config::new("0000:ca:00.2", "BlueField-3(Rev 1)"));
        std::fs::write(
            h.path("ks.cfg"),
            KS.replace("--overwritevmfs", &format!("--overwritevmfs{extra}")),
        )
        .unwrap();
        let out = h.dpu_install(&[]);
        assert_eq!(out.status.code(), Some(3), "{fixture}: {}", text(&out));
        assert!(
            text(&out).contains(says),
            "{fixture}: {says:?} not in {}",
            text(&out)
        );
        assert!(!h.path("disk.img").exists());
    }

    // A model vSphere 8 does not support is not a DPU to ESXi: the host installs without it.
    let h = host("bluefield1");
    let out = h.dpu_install(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let left = &h.report()["dpus_not_used"][0];
    assert_eq!(left["supported"], false, "{left:#}");
    assert_eq!(left["catalog_id"], "nvidia-bluefield-1", "{left:#}");
    assert!(
        left["reason"]
            .as_str()
            .unwrap()
            .contains("a model vSphere 8 does not support"),
        "{left:#}"
    );

    // ESXi 7 media on a DPU host.
    let h = host("bluefield3");
    let _sim = h.rshim(Config::new("0000:ca:00.2", "BlueField-3(Rev 1)"));
    h.add_media("media7", 64 << 20, "7.0.3", &Default::default());
    let out = h.ksinstall(&[
        "install",
        "--ks",
        h.path("ks.cfg").to_str().unwrap(),
        "--media",
        h.path("media7").to_str().unwrap(),
        "--cmdline",
        "",
        "--disk",
        h.path("disk.img").to_str().unwrap(),
        "--disk-size",
        "40G",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("a DPU needs ESXi 8.0 or later"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_kernels_generic_netlink_answers_our_devlink_family_lookup() {
    // No simulator: probe asks this machine's kernel. A kernel without devlink answers the
    // family lookup with ENOENT; one with it has no devlink instance for the fixture's address.
    // Either answer means the kernel parsed our request.
    let out = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .args(["probe", "--sysroot"])
        .arg(repo("tests/fixtures/pensando-dsc2-200"))
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("this kernel has no devlink family")
            || t.contains("devlink dev info pci/0000:45:00.0: No such device"),
        "{t}"
    );
}

const BF3_RSHIM: &str = "0000:ca:00.2";

/// A vendor-style BF-Bundle: a complete stream of images (firmware, kernel, initramfs) as
/// NVIDIA ships it, put in a `bfb-passthrough` bundle of a copy of `firmware/`. Returns the
/// firmware directory and the `.bfb` bytes.
fn vendor_bundle(h: &Setup) -> (PathBuf, Vec<u8>) {
    use testkit::bfb::{self, Image};
    let fw = h.path("vendor-firmware");
    Command::new("cp")
        .arg("-a")
        .arg(repo("firmware"))
        .arg(&fw)
        .status()
        .unwrap();
    let images: Vec<Image> = [1u8, 3, 5, 41, 62, 63]
        .iter()
        .map(|&id| Image {
            id,
            bytes: (0..(20_000 + id as usize * 997))
                .map(|i| (i * 31 + id as usize) as u8)
                .collect(),
        })
        .collect();
    let mut bytes = Vec::new();
    bfb::write(&images, &mut bytes).unwrap();
    let dir = fw.join("nvidia-bluefield-3");
    std::fs::write(
        dir.join("bf-bundle-2.9.1-40_24.11_ubuntu-22.04_prod.bfb"),
        &bytes,
    )
    .unwrap();
    std::fs::write(
        dir.join("bundle.toml"),
        format!(
            "vendor = \"NVIDIA\"\nmodel = \"BlueField-3\"\ncatalog_ids = [\"nvidia-bluefield-3\"]\ngenerations = [\"BlueField-3 (MT43244)\"]\nversion = \"2.9.1-40\"\nmin_esxi = \"8.0.0\"\nformat = \"bfb-passthrough\"\n\n[[file]]\npath = \"bf-bundle-2.9.1-40_24.11_ubuntu-22.04_prod.bfb\"\nkind = \"vendor-bfb\"\nsize = {}\nsha256 = \"{}\"\n",
            bytes.len(),
            rshim_daemon::sha256(&bytes)
        ),
    )
    .unwrap();
    (fw, bytes)
}

/// A BlueField-3 behind the rshim daemon fake, with a vendor bundle; the install's output and
/// what the daemon saw.
fn daemon_install(
    card: Card,
    tweak: &dyn Fn(&mut DaemonConfig),
    timeout: &str,
) -> (Setup, Output, rshim_daemon::Seen, RshimDaemon, Vec<u8>) {
    let h = host("bluefield3");
    let (fw, bfb) = vendor_bundle(&h);
    let mut c = DaemonConfig::new(BF3_RSHIM, "BlueField-3(Rev 1)");
    c.card = card;
    c.bfb_len = Some(bfb.len() as u64);
    tweak(&mut c);
    let d = RshimDaemon::start(&h.sysroot().join("dev/rshim0"), c);
    let out = h.dpu_install(&["--firmware", fw.to_str().unwrap(), "--dpu-timeout", timeout]);
    let seen = d.seen();
    (h, out, seen, d, bfb)
}

/// Every `misc` setting as it was, every command one the daemon took.
fn misc_put_back(d: &RshimDaemon, seen: &rshim_daemon::Seen, skip: bool) {
    let s = d.settings();
    assert_eq!(
        (
            s.display_level,
            s.clear_on_read,
            s.boot_reset_skip,
            s.drop_mode
        ),
        (0, false, skip, false),
        "{:?}",
        seen.commands
    );
    assert!(
        seen.commands.iter().all(|(_, ok)| *ok),
        "a command the daemon refused: {:?}",
        seen.commands
    );
    assert_eq!(
        seen.drained_before_push, 0,
        "another reader's log was drained"
    );
}

#[test]
fn a_vendor_bfb_goes_through_byte_for_byte_and_success_is_our_payloads_own_line() {
    // BOOT_RESET_SKIP left at 1 by someone: cleared for the push as bfb-install's cleanup
    // leaves it, put back afterwards.
    let (h, out, seen, d, bfb) =
        daemon_install(Card::Installs, &|c| c.settings.boot_reset_skip = true, "20");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The far side: the vendor's bytes unchanged, then bf.cfg with the hook, then ESXio.
    assert_eq!(seen.pushes, 1);
    assert_eq!(
        rshim_daemon::sha256(&seen.stream[..bfb.len()]),
        rshim_daemon::sha256(&bfb)
    );
    let trailer = String::from_utf8_lossy(&seen.stream[bfb.len()..]).into_owned();
    assert!(
        trailer.starts_with("# bf.cfg made by ksinstall"),
        "{trailer:.300}"
    );
    assert!(trailer.contains("bfb_post_install()"), "{trailer:.600}");
    assert!(
        trailer.contains("esxiodpt.tgz"),
        "the ESXio components follow bf.cfg"
    );
    assert_eq!(seen.skip_at_push, Some(false), "{:?}", seen.commands);
    // bfb-install's order: the log is switched on after the push, not before.
    let cmds: Vec<&str> = seen.commands.iter().map(|(c, _)| c.as_str()).collect();
    let cor = cmds.iter().position(|c| *c == "CLEAR_ON_READ 1").unwrap();
    assert_eq!(cmds[cor + 1], "DISPLAY_LEVEL 2", "{cmds:?}");
    misc_put_back(&d, &seen, true);
    let r = h.report();
    let id = r["dpus"][0]["payload"]["id"].as_str().unwrap().to_string();
    let sw = r["dpus"][0]["after"]["after"]["software"].as_str().unwrap();
    assert!(sw.contains(&format!("ksinstall payload {id} run ")), "{sw}");
    assert_eq!(r["dpus"][0]["payload"]["parts"][0]["kind"], "vendor-bfb");
    h.check_host_disk();
}

#[test]
fn an_old_os_saying_dpu_is_ready_is_a_failure_not_success() {
    let (h, out, seen, d, _) = daemon_install(Card::OldOsBoots, &|_| {}, "20");
    dpu_failed(&h, &out, 7, "never logged our payload's line");
    assert!(text(&out).contains("DPU is ready") || text(&out).contains("Linux up"));
    misc_put_back(&d, &seen, false);
}

#[test]
fn the_card_installers_failure_is_exit_7_other_err_lines_are_warnings_silence_is_9() {
    let (h, out, seen, d, _) = daemon_install(Card::InstallerFails, &|_| {}, "20");
    dpu_failed(&h, &out, 7, "ERR Installation failed");
    misc_put_back(&d, &seen, false);

    let (h, out, seen, d, _) = daemon_install(Card::InstallsWithAnError, &|_| {}, "20");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("the DPU logged: ERR: mlxconfig"),
        "{}",
        text(&out)
    );
    misc_put_back(&d, &seen, false);
    drop(h);

    let (h, out, seen, d, _) = daemon_install(Card::Silent, &|_| {}, "2");
    dpu_failed(&h, &out, 9, "no word from the DPU for 2s");
    misc_put_back(&d, &seen, false);
}

#[test]
fn drop_mode_and_a_bmc_owned_rshim_are_named_with_the_command_that_takes_it_back() {
    let (h, out, seen, d, _) = daemon_install(
        Card::Installs,
        &|c| {
            c.settings.drop_mode = true;
            c.bmc_owned = true;
        },
        "20",
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    for says in [
        "DROP_MODE 1",
        "card's BMC",
        "echo 'FORCE_CMD 1' >",
        "echo 'DROP_MODE 0' >",
    ] {
        assert!(text(&out).contains(says), "{says:?} not in {}", text(&out));
    }
    assert!(!h.path("disk.img").exists());
    // Nothing was taken from the BMC, nothing pushed.
    assert!(seen.commands.is_empty(), "{:?}", seen.commands);
    assert_eq!(seen.pushes, 0);
    assert!(d.settings().drop_mode);
}

#[test]
fn a_boot_device_held_by_another_process_is_reported_as_such_and_misc_put_back() {
    let (h, out, seen, d, _) = daemon_install(Card::Installs, &|c| c.boot_held = true, "20");
    dpu_failed(&h, &out, 11, "another process is pushing");
    assert_eq!(seen.refused_opens, vec![libc::EBUSY]);
    misc_put_back(&d, &seen, false);
}

/// ksinstall no longer builds a boot stream of its own: a bundle of the retired self-built
/// format (`bfb`, firmware images packed by ksinstall) is not a bundle to it, so a card behind
/// a real rshim daemon is only ever sent a BF-Bundle as its bundle holds it.
#[test]
fn a_bundle_of_the_retired_self_built_format_is_never_used() {
    let h = host("bluefield3");
    let _d = RshimDaemon::start(
        &h.sysroot().join("dev/rshim0"),
        DaemonConfig::new(BF3_RSHIM, "BlueField-3(Rev 1)"),
    );
    let fw = h.path("old-format");
    let dir = fw.join("nvidia-bluefield-3");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("nicfw.bin"), b"hi").unwrap();
    std::fs::write(
        dir.join("bundle.toml"),
        format!(
            "vendor = \"NVIDIA\"\nmodel = \"BlueField-3\"\ncatalog_ids = [\"nvidia-bluefield-3\"]\ngenerations = []\nversion = \"32.44.1036\"\nmin_esxi = \"8.0.0\"\nformat = \"bfb\"\n\n[[file]]\npath = \"nicfw.bin\"\nkind = \"nic-firmware\"\nsize = 2\nsha256 = \"{}\"\n",
            ksinstall::media::verify::sha256_hex(b"hi")
        ),
    )
    .unwrap();
    let out = h.dpu_install(&["--firmware", fw.to_str().unwrap(), "--dpu-timeout", "5"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("no firmware bundle for nvidia-bluefield-3"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("nvidia-bluefield-3/bundle.toml: not a bundle manifest"),
        "{}",
        text(&out)
    );
    assert!(!h.path("disk.img").exists());
}

#[test]
fn a_dsc_with_only_ionic_bound_is_flashed_through_ionic() {
    let h = host("pensando-dsc2-200");
    // pds_core not bound to the core PF (an older kernel, or unbound): only ionic is there.
    std::fs::remove_file(h.sysroot().join("sys/bus/pci/devices/0000:45:00.0/driver")).unwrap();
    let ionic = "0000:43:00.0";
    let peer = DevlinkPeer::start(
        h.dir.path(),
        h.sysroot(),
        ionic,
        FlashBehaviour::Succeed,
        "1.51.0-E-12",
    );
    let sock = peer.socket.display().to_string();
    let dry = h.dpu_install(&["--devlink-socket", &sock, "--dry-run"]);
    assert!(
        text(&dry).contains("reached through ionic on 0000:43:00.0 (the core PF 0000:45:00.0 is bound to no driver)"),
        "{}",
        text(&dry)
    );
    let out = h.dpu_install(&["--devlink-socket", &sock, "--dpu-timeout", "20"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = peer.log();
    assert!(log.problems.is_empty(), "{:?}", log.problems);
    assert!(log.commands.contains(&58), "{:?}", log.commands);
    assert_eq!(
        log.flashed_sha256.as_deref(),
        Some(bundle_hash("amd-pensando-dsc", "dsc_fw.tar").as_str())
    );
}

#[test]
fn media_over_the_dpus_own_port_are_all_fetched_and_verified_before_the_reset() {
    let h = host("bluefield3");
    // The host's NIC is a function of the BlueField: eth0 is its PF 0000:ca:00.0.
    let net = h.sysroot().join("sys/class/net/eth0");
    std::fs::create_dir_all(&net).unwrap();
    std::os::unix::fs::symlink(
        h.sysroot()
            .join("sys/devices/pci0000:c9/0000:c9:02.0/0000:ca:00.0"),
        net.join("device"),
    )
    .unwrap();
    std::fs::write(net.join("operstate"), "up\n").unwrap();
    let (fw, bfb) = vendor_bundle(&h);
    let server = common::http::serve(h.dir.path());
    let media: Vec<String> = std::fs::read_dir(h.path("media"))
        .unwrap()
        .map(|e| format!("/media/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    // The reset takes the port down: every GET after it is cut at its first byte.
    let rules = server.rules.clone();
    let served = server.requests.clone();
    let at_reset = Arc::new(Mutex::new(None));
    let mark = at_reset.clone();
    let mut c = DaemonConfig::new(BF3_RSHIM, "BlueField-3(Rev 1)");
    c.bfb_len = Some(bfb.len() as u64);
    c.on_reset = Some(Arc::new(move || {
        *mark.lock().unwrap() = Some(served.lock().unwrap().len());
        let mut r = rules.lock().unwrap();
        for p in &media {
            r.drop_after.insert(p.clone(), (0, u32::MAX));
        }
    }));
    let _d = RshimDaemon::start(&h.sysroot().join("dev/rshim0"), c);
    let url = format!("{}/media", server.url);
    let args = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut a = vec![
            "install",
            "--ks",
            h.path("ks.cfg").to_str().unwrap().to_string().leak(),
            "--media",
            url.clone().leak(),
            "--cmdline",
            "",
            "--disk",
            h.path("disk.img").to_str().unwrap().to_string().leak(),
            "--disk-size",
            "40G",
            "--firmware",
            fw.to_str().unwrap().to_string().leak(),
            "--dpu-timeout",
            "20",
        ];
        a.extend_from_slice(extra);
        a
    };
    let dry = h.ksinstall(&args(&["--dry-run"]));
    assert!(
        text(&dry).contains("eth0 is a port of this card: it is flashed after the host lay-down"),
        "{}",
        text(&dry)
    );
    let out = h.ksinstall(&args(&[]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let before = at_reset.lock().unwrap().expect("the card was reset");
    assert_eq!(
        server.requests().len(),
        before,
        "transfers after the reset: {:?}",
        server.requests()[before..]
            .iter()
            .map(|r| &r.path)
            .collect::<Vec<_>>()
    );
    h.check_host_disk();
}

#[test]
fn a_locked_down_kernel_without_an_iommu_refuses_the_bluefield_before_anything_is_written() {
    let h = host("bluefield3");
    let _sim = h.rshim(Config::new("0000:ca:00.2", "BlueField-3(Rev 1)"));
    let lockdown = h.sysroot().join("sys/kernel/security/lockdown");
    std::fs::create_dir_all(lockdown.parent().unwrap()).unwrap();
    std::fs::write(&lockdown, "none [integrity] confidentiality\n").unwrap();
    let out = h.dpu_install(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("locked down (integrity, Secure Boot) and this machine has no IOMMU"),
        "{}",
        text(&out)
    );
    assert!(!h.path("disk.img").exists());
    // With an IOMMU (VFIO can map the card), the plan goes ahead.
    std::fs::create_dir_all(h.sysroot().join("sys/class/iommu/dmar0")).unwrap();
    let out = h.dpu_install(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
