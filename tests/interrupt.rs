//! SIGINT and SIGTERM during an install, through the real binary, at three moments: while the
//! media is hashed (nothing written yet), while the boot bank is laid down (the disk is
//! half-written) and while a simulated BlueField installs what it was sent. Each time: exit 14,
//! a `--report` that is JSON naming the step and "interrupted", `failed` then `finished` as the
//! last events, and the disk as docs/INSTALL.md promises it.
//!
//! The moments are held by the test, not timed: the lay-down reads a module from an HTTP server
//! that stops after 1 MiB of it until the test has sent the signal; the BlueField takes the
//! stream and says nothing, so the install waits on it until the signal. The media check is
//! the one moment not held: the signal goes when the `media` step starts, and a 256 MiB medium
//! takes that step far longer than a signal takes to arrive.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::run;
use common::setup::Setup;
use ksinstall::media::Role;
use serde_json::Value;
use testkit::sim::{Behaviour, Config};

const P5: u64 = 208_896 * 512;
const KS: &str = "vmaccepteula\nrootpw 'Plain-Secret-99x'\ninstall --firstdisk --overwritevmfs\n";

/// A writable copy of `fixture` with a synthetic medium of `media_size` and `KS` in ks.cfg.
fn setup(fixture: &str, media_size: &str) -> Setup {
    Setup::with()
        .host(fixture)
        .media(media_size)
        .seed(7)
        .ks(KS)
        .build()
}

/// The install started in the background, its events read as they come.
trait Interrupted {
    fn start(&self, media: &str, ks: &str) -> Child;
    fn stderr(&self) -> String;
}

impl Interrupted for Setup {
    fn start(&self, media: &str, ks: &str) -> Child {
        Command::new(env!("CARGO_BIN_EXE_ksinstall"))
            .args(["install", "--ks", ks, "--media", media, "--cmdline", ""])
            .arg("--sysroot")
            .arg(self.sysroot())
            .arg("--disk")
            .arg(self.path("disk.img"))
            .args(["--disk-size", "40G", "--progress", "json", "--report"])
            .arg(self.path("report.json"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.path("stderr.log")).unwrap())
            .spawn()
            .unwrap()
    }
    fn stderr(&self) -> String {
        std::fs::read_to_string(self.path("stderr.log")).unwrap()
    }
}

/// Read the child's events until `at` says yes, send `signal`, call `then`, read the rest.
/// Returns every event and the exit code.
fn interrupt(
    mut child: Child,
    signal: i32,
    at: &dyn Fn(&[Value]) -> bool,
    then: &dyn Fn(),
) -> (Vec<Value>, Option<i32>) {
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut events = Vec::new();
    let mut sent = false;
    for line in out.lines() {
        let line = line.unwrap();
        events.push(serde_json::from_str::<Value>(&line).unwrap());
        if !sent && at(&events) {
            let pid = i32::try_from(child.id()).unwrap();
            // SAFETY: kill(2) on our own child's pid.
            assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
            sent = true;
            then();
        }
    }
    let status = child.wait().unwrap();
    assert!(sent, "the moment never came: {events:#?}");
    (events, status.code())
}

fn has(events: &[Value], kind: &str, step: &str) -> bool {
    events
        .iter()
        .any(|e| e["event"] == kind && e["step"] == step)
}

/// Exit 14, the report and the last two events say where and why.
fn judge(s: &Setup, events: &[Value], code: Option<i32>, signal: &str, step: &str) -> Value {
    let err = s.stderr();
    assert_eq!(code, Some(14), "{err}");
    let n = events.len();
    assert!(n >= 2, "{events:?}");
    let (failed, finished) = (&events[n - 2], &events[n - 1]);
    assert_eq!(failed["event"], "failed", "{events:#?}");
    assert_eq!(failed["step"], step, "{failed}");
    assert_eq!(failed["exit_code"], 14);
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains(&format!("interrupted by {signal}")),
        "{failed}"
    );
    assert_eq!(finished["event"], "finished");
    assert_eq!(finished["exit_code"], 14);
    let r = s.report();
    assert_eq!(r["exit_code"], 14);
    assert_eq!(r["outcome"], "Interrupted");
    assert_eq!(r["error"]["step"], step, "{r:#}");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&format!("interrupted by {signal}")));
    assert!(
        err.contains("ksinstall: error: ") && err.contains("interrupted by"),
        "{err}"
    );
    r
}

fn boot_cfg(img: &Path) -> Option<String> {
    let (ok, out, _) = run(
        "mtype",
        &["-i", &format!("{}@@{P5}", img.display()), "::/boot.cfg"],
    );
    ok.then_some(out)
}

#[test]
fn interrupted_while_the_media_is_hashed_the_new_image_is_removed() {
    for (signal, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let s = setup("plain", "256M");
        let ks = s.path("ks.cfg").display().to_string();
        let child = s.start(&s.path("media").display().to_string(), &ks);
        let (events, code) = interrupt(
            child,
            signal,
            &|e: &[Value]| has(e, "step_started", "media"),
            &|| {},
        );
        let r = judge(&s, &events, code, name, "media");
        assert_eq!(r["target_state"], "removed", "{r:#}");
        assert!(
            !s.path("disk.img").exists(),
            "the image made for this run, never written to, is gone"
        );
        assert!(!has(&events, "step_started", "partition"));
    }
}

#[test]
fn interrupted_during_the_lay_down_the_disk_is_half_written_and_the_next_run_takes_it() {
    for (signal, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let s = setup("plain", "128M");
        let media = ksinstall::media::Media::open(&s.path("media").display().to_string())
            .unwrap()
            .manifest;
        let largest = media
            .components
            .iter()
            .filter(|c| c.role == Role::Module)
            .max_by_key(|c| c.size)
            .unwrap();
        assert!(largest.size > 8 << 20, "{}", largest.size);
        let srv = common::http::serve(s.dir.path());
        srv.rules
            .lock()
            .unwrap()
            .hold_after
            .insert(format!("/media/{}", largest.path), 1 << 20);
        let ks = s.path("ks.cfg").display().to_string();
        let child = s.start(&format!("{}/media", srv.url), &ks);
        let (events, code) = interrupt(
            child,
            signal,
            &|e: &[Value]| has(e, "step_started", "bootbank"),
            &|| srv.release(),
        );
        let r = judge(&s, &events, code, name, "bootbank");
        assert_eq!(r["target_state"], "half-written", "{r:#}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("is left half-written (no boot.cfg)"),
            "{r:#}"
        );
        // Partitioned, bank 0 holds part of the modules and no boot.cfg: it does not boot.
        let img = s.path("disk.img");
        let (ok, v, _) = run("sgdisk", &["-v", img.to_str().unwrap()]);
        assert!(ok && v.contains("No problems found"), "{v}");
        assert_eq!(boot_cfg(&img), None);
        // The next run, without --overwritevmfs, takes the layout as the unfinished install
        // it is (partition 7 is typed VMFS-L, and unformatted), not as a user's VMFS (a
        // finished install still needs it: tests/install.rs).
        let ks2 = s.path("ks2.cfg");
        std::fs::write(&ks2, KS.replace(" --overwritevmfs", "")).unwrap();
        let again = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
            .args(["install", "--ks"])
            .arg(&ks2)
            .arg("--media")
            .arg(s.path("media"))
            .args(["--cmdline", ""])
            .arg("--sysroot")
            .arg(s.sysroot())
            .arg("--disk")
            .arg(&img)
            .output()
            .unwrap();
        assert_eq!(
            again.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&again.stderr)
        );
        assert!(boot_cfg(&img).unwrap().contains("bootstate=0"));
    }
}

#[test]
fn interrupted_while_the_bluefield_installs_the_host_disk_gets_no_boot_cfg() {
    for (signal, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let s = setup("bluefield3", "64M");
        let mut c = Config::new("0000:ca:00.2", "BlueField-3(Rev 1)");
        c.behaviour = Behaviour::Silent;
        let sim = testkit::sim::RshimSim::start(&s.sysroot().join("dev/rshim0"), c).unwrap();
        let ks = s.path("ks.cfg").display().to_string();
        let child = s.start(&s.path("media").display().to_string(), &ks);
        // The host's disk is laid down and verified, the stream is sent: only the DPU's
        // answer is awaited (and a silent DPU never gives one).
        let (events, code) = interrupt(
            child,
            signal,
            &|e: &[Value]| {
                has(e, "step_finished", "verify")
                    && e.iter().any(|e| {
                        e["event"] == "status"
                            && e["step"] == "dpu"
                            && e["message"]
                                .as_str()
                                .is_some_and(|m| m.contains("boot stream sent"))
                    })
            },
            &|| {},
        );
        let got = sim.finish();
        assert!(got.problems.is_empty(), "{:?}", got.problems);
        let r = judge(&s, &events, code, name, "dpu");
        assert_eq!(r["target_state"], "half-written", "{r:#}");
        assert!(r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the boot stream was sent whole"));
        assert_eq!(boot_cfg(&s.path("disk.img")), None);
    }
}
