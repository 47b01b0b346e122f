//! The DPU in the same fresh install, end to end through the real binary: a simulated
//! BlueField behind rshim's device files (`dev/rshimN/boot` a FIFO, `misc` a file), and a
//! devlink peer for the Pensando DSC on the socket seam, each checking what it received. The
//! host disk is judged with sgdisk and mtools; a failed DPU must leave no `boot.cfg`.

mod common;
#[path = "common/devlink_peer.rs"]
mod devlink_peer;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{mcopy_out, run, sha256_file};
use devlink_peer::{DevlinkPeer, FlashBehaviour};
use ksinstall::dpu::sim::{Behaviour, Config, Received, RshimSim};
use ksinstall::media::{synth, Manifest};
use serde_json::Value;

const P5: u64 = 208_896 * 512;
const KS: &str = "vmaccepteula\nrootpw 'Plain-Secret-99x'\ninstall --firstdisk --overwritevmfs\nnetwork --bootproto=dhcp\n";

struct Host {
    dir: tempfile::TempDir,
    sysroot: PathBuf,
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

impl Host {
    /// A writable copy of a fixture sysroot, and a small synthetic ESXi 8.0.3 medium.
    fn new(fixture: &str) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let sysroot = common::copy_fixture(fixture, &dir.path().join("root"));
        synth::mkmedia(&synth::Options {
            out: dir.path().join("media"),
            size: 64 << 20,
            version: "8.0.3".into(),
            seed: 5,
        })
        .unwrap();
        std::fs::write(dir.path().join("ks.cfg"), KS).unwrap();
        Host { dir, sysroot }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn manifest(&self) -> Manifest {
        ksinstall::media::Media::open(&self.path("media").display().to_string())
            .unwrap()
            .manifest
    }
    fn rshim(&self, config: Config) -> RshimSim {
        RshimSim::start(&self.sysroot.join("dev/rshim0"), config).unwrap()
    }
    fn ksinstall(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ksinstall"))
            .args(args)
            .arg("--sysroot")
            .arg(&self.sysroot)
            .env("RUST_LOG", "info")
            .output()
            .unwrap()
    }
    fn install(&self, extra: &[&str]) -> Output {
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
    fn report(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.path("report.json")).unwrap()).unwrap()
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
        let m = self.manifest();
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

/// What a BlueField must have been given: every image sound, the firmware of its bundle, the
/// ESXio depot of the media, and `bf.cfg` naming the payload.
fn check_bluefield_stream(h: &Host, got: &Received, bundle: &str) {
    assert!(got.problems.is_empty(), "{:?}", got.problems);
    let ids: Vec<u8> = got.images.iter().map(|i| i.id).collect();
    assert_eq!(
        ids,
        [1, 3, 5, 41, 50, 63],
        "BL2, BL31, UEFI, NIC firmware, info, ESXio: mlx-mkbfb's order"
    );
    assert!(got.images.iter().all(|i| i.crc_ok));
    for (id, file) in [
        (1u8, "bl2.bin"),
        (3, "bl31.bin"),
        (5, "uefi.bin"),
        (41, "nicfw.bin"),
    ] {
        let img = got.images.iter().find(|i| i.id == id).unwrap();
        assert_eq!(img.sha256, bundle_hash(bundle, file), "image {id}");
    }
    let esxio = h.manifest().find("esxiodpt.tgz").unwrap().sha256.clone();
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
    let h = Host::new(fixture);
    let mut config = Config::new(address, dev_info);
    // A DPU drains its boot FIFO at a finite rate: the host lay-down goes on meanwhile.
    config.rate = Some(40 << 20);
    let sim = h.rshim(config);
    let out = h.install(&["--dpu-timeout", "20"]);
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
    assert!(
        d["after"]["after"]["software"]
            .as_str()
            .unwrap()
            .contains("Rebooting..."),
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
    let misc = std::fs::read_to_string(h.sysroot.join("dev/rshim0/misc")).unwrap();
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
    assert!(ev
        .iter()
        .any(|e| e["event"] == "status" && e["message"] == "INFO: Rebooting..."));

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
    let h = Host::new("pensando-dsc2-200");
    let peer = DevlinkPeer::start(
        h.dir.path(),
        &h.sysroot,
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

    let out = h.install(&["--devlink-socket", &sock, "--dpu-timeout", "20"]);
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
    assert!(!h.sysroot.join("lib/firmware/ksinstall").exists());

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
fn dpu_failed(h: &Host, out: &Output, code: i32, says: &str) {
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
        let h = Host::new("bluefield3");
        let mut c = Config::new("0000:ca:00.2", "BlueField-3(Rev 1)");
        c.behaviour = behaviour;
        let sim = h.rshim(c);
        let out = h.install(&["--dpu-timeout", "20"]);
        sim.finish();
        dpu_failed(&h, &out, 7, "BlueField-3 in slot 4 (0000:ca:00)");
        assert!(text(&out).contains(says), "{}", text(&out));
    }
}

#[test]
fn a_silent_bluefield_times_out() {
    let h = Host::new("bluefield3");
    let mut c = Config::new("0000:ca:00.2", "BlueField-3(Rev 1)");
    c.behaviour = Behaviour::Silent;
    let sim = h.rshim(c);
    let out = h.install(&["--dpu-timeout", "2"]);
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
    let h = Host::new("bluefield3");
    let mut c = Config::new("0000:ca:00.2", "BlueField-3(Rev 1)");
    c.behaviour = Behaviour::CloseAfter(300_000);
    let sim = h.rshim(c);
    let out = h.install(&["--dpu-timeout", "20"]);
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
        let h = Host::new("pensando-dsc2-200");
        let peer = DevlinkPeer::start(h.dir.path(), &h.sysroot, DSC_PF, behaviour, "1.51.0-E-12");
        let sock = peer.socket.display().to_string();
        let out = h.install(&["--devlink-socket", &sock, "--dpu-timeout", "2"]);
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
    let h = Host::new("pensando-dsc2-200");
    // devlink says the card runs 1.68.0-E-21: the version of the bundle in firmware/.
    let peer = DevlinkPeer::start(
        h.dir.path(),
        &h.sysroot,
        DSC_PF,
        FlashBehaviour::Succeed,
        "1.68.0-E-21",
    );
    let sock = peer.socket.display().to_string();
    let out = h.install(&["--devlink-socket", &sock, "--dpu-timeout", "5"]);
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
    let h = Host::new("bluefield3");
    let out = h.install(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("no rshim device for 0000:ca:00.2"));
    assert!(!h.path("disk.img").exists());

    // No firmware bundle for the model.
    let _sim = h.rshim(Config::new("0000:ca:00.2", "BlueField-3(Rev 1)"));
    let empty = h.path("no-firmware");
    std::fs::create_dir(&empty).unwrap();
    let out = h.install(&["--firmware", empty.to_str().unwrap()]);
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
    std::fs::write(bad.join("nvidia-bluefield-3/nicfw.bin"), vec![0u8; 196_608]).unwrap();
    let out = h.install(&["--firmware", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("nicfw.bin has SHA-256"),
        "{}",
        text(&out)
    );

    // upgrade on a DPU host.
    std::fs::write(
        h.path("ks.cfg"),
        KS.replace(
            "install --firstdisk --overwritevmfs",
            "installorupgrade --firstdisk --overwritevmfs",
        ),
    )
    .unwrap();
    let out = h.install(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("a DPU is enabled only by a fresh install"),
        "{}",
        text(&out)
    );

    // A BlueField in NIC mode.
    std::fs::write(h.path("ks.cfg"), KS).unwrap();
    drop(_sim);
    let mut c = Config::new("0000:ca:00.2", "BlueField-3(Rev 1)");
    c.bf_mode = "NIC mode".into();
    let _sim = h.rshim(c);
    let out = h.install(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("NIC mode"), "{}", text(&out));
    assert!(!h.path("disk.img").exists());
}

#[test]
fn host_rules_of_distributed_services_engine() {
    // Two DPUs, an unsupported one, a slot without one: refused before anything is written.
    for (fixture, extra, says) in [
        ("two-dpus", "", "this host has 2 DPUs"),
        ("bluefield1", "", "a DPU that vSphere 8 does not support"),
        (
            "bluefield3",
            " --dpuPciSlots=9",
            "--dpuPciSlots names slot \"9\"",
        ),
    ] {
        let h = Host::new(fixture);
        let _sim = h.rshim(Config::new("0000:ca:00.2", "BlueField-3(Rev 1)"));
        std::fs::write(
            h.path("ks.cfg"),
            KS.replace("--overwritevmfs", &format!("--overwritevmfs{extra}")),
        )
        .unwrap();
        let out = h.install(&[]);
        assert_eq!(out.status.code(), Some(3), "{fixture}: {}", text(&out));
        assert!(
            text(&out).contains(says),
            "{fixture}: {says:?} not in {}",
            text(&out)
        );
        assert!(!h.path("disk.img").exists());
    }

    // ESXi 7 media on a DPU host.
    let h = Host::new("bluefield3");
    let _sim = h.rshim(Config::new("0000:ca:00.2", "BlueField-3(Rev 1)"));
    synth::mkmedia(&synth::Options {
        out: h.path("media7"),
        size: 64 << 20,
        version: "7.0.3".into(),
        seed: 5,
    })
    .unwrap();
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
