//! `cluster check` and `hcl check` through the real binary, on the reports of real installs of
//! the fixture hosts (simulated BlueField-2/-3 behind rshim files, a host without a DPU, other
//! images, an old firmware bundle, a failed DPU) and on real probes of the fixtures.
//!
//! The installs are made once, four at a time, and shared by every test of this file.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use testkit::sim::{Behaviour, Config, RshimSim};
use testkit::synth;

const KS: &str = "vmaccepteula\nrootpw 'Plain-Secret-99x'\ninstall --firstdisk --overwritevmfs\nnetwork --bootproto=dhcp\n";

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ksinstall"));
    c.env("RUST_LOG", "warn");
    c
}

/// One host of the test rack: a fixture, the medium it is installed from, and what its DPU does.
struct Spec {
    name: &'static str,
    fixture: &'static str,
    /// The rshim function of the fixture's BlueField, and its DEV_INFO.
    rshim: Option<(&'static str, &'static str)>,
    media: &'static str,
    /// A firmware directory other than the checkout's.
    firmware: Option<&'static str>,
    behaviour: Behaviour,
}

const BF3: Option<(&str, &str)> = Some(("0000:ca:00.2", "BlueField-3(Rev 1)"));
const BF2: Option<(&str, &str)> = Some(("0000:3b:00.2", "BlueField-2(Rev 1)"));

fn specs() -> Vec<Spec> {
    let s = |name, fixture, rshim, media| Spec {
        name,
        fixture,
        rshim,
        media,
        firmware: None,
        behaviour: Behaviour::Succeed,
    };
    vec![
        s("esx-01", "bluefield3", BF3, "media-803"),
        s("esx-02", "bluefield3", BF3, "media-803"),
        // Another DPU model.
        s("esx-03", "bluefield2", BF2, "media-803"),
        // No DPU at all.
        s("esx-04", "plain", None, "media-803"),
        // The same release, another build.
        s("esx-05", "bluefield3", BF3, "media-803-other-build"),
        // Firmware older than the table pairs with 8.0.3.
        Spec {
            firmware: Some("firmware-old"),
            ..s("esx-06", "bluefield3", BF3, "media-803")
        },
        // A release the table does not list.
        s("esx-07", "bluefield3", BF3, "media-801"),
        // The DPU fails its install: exit code 7, with a report.
        Spec {
            behaviour: Behaviour::CriticalError,
            ..s("esx-08", "bluefield3", BF3, "media-803")
        },
    ]
}

struct Rack {
    dir: PathBuf,
}

impl Rack {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }
    fn report(&self, host: &str) -> String {
        self.path(&format!("reports/{host}.json"))
            .display()
            .to_string()
    }
    fn probe(&self, name: &str) -> String {
        self.path(&format!("probes/{name}.json"))
            .display()
            .to_string()
    }
}

fn probe_to(sysroot: &Path, out: &Path) {
    let o = bin()
        .args(["probe", "--format", "json", "--sysroot"])
        .arg(sysroot)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(out, &o.stdout).unwrap();
}

/// Install one host onto its own `dev/sda` (so a later probe finds ESXi there) with its DPU
/// simulated, and keep its report.
fn install(rack: &Path, s: &Spec) {
    let sysroot = rack.join("hosts").join(s.name);
    common::cp_a(&repo(&format!("tests/fixtures/{}", s.fixture)), &sysroot);
    let disk = sysroot.join("dev/sda");
    std::fs::remove_file(&disk).unwrap();
    let sim = s.rshim.map(|(address, info)| {
        let mut c = Config::new(address, info);
        c.behaviour = s.behaviour.clone();
        RshimSim::start(&sysroot.join("dev/rshim0"), c).unwrap()
    });
    let mut cmd = bin();
    cmd.arg("install")
        .arg("--ks")
        .arg(rack.join("ks.cfg"))
        .arg("--media")
        .arg(rack.join(s.media))
        .arg("--sysroot")
        .arg(&sysroot)
        .args(["--cmdline", "", "--disk-size", "40G", "--progress", "none"])
        .args(["--dpu-timeout", "30"])
        .arg("--disk")
        .arg(&disk)
        .arg("--report")
        .arg(rack.join(format!("reports/{}.json", s.name)));
    if let Some(f) = s.firmware {
        cmd.arg("--firmware").arg(rack.join(f));
    }
    let out = cmd.output().unwrap();
    if let Some(sim) = sim {
        sim.finish();
    }
    let want = if matches!(s.behaviour, Behaviour::Succeed) {
        0
    } else {
        7
    };
    assert_eq!(
        out.status.code(),
        Some(want),
        "{}: {}",
        s.name,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rack() -> &'static Rack {
    static RACK: OnceLock<Rack> = OnceLock::new();
    RACK.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fleet-rack");
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["hosts", "reports", "probes"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("ks.cfg"), KS).unwrap();
        for (name, version, seed) in [
            ("media-803", "8.0.3", 5),
            ("media-803-other-build", "8.0.3", 6),
            ("media-801", "8.0.1", 5),
        ] {
            synth::mkmedia(&synth::Options {
                out: dir.join(name),
                size: 32 << 20,
                version: version.into(),
                seed,
            })
            .unwrap();
        }
        // A firmware directory whose only BlueField-3 bundle is an older version.
        let old = dir.join("firmware-old");
        std::fs::create_dir(&old).unwrap();
        common::cp_a(
            &repo("firmware/nvidia-bluefield-3"),
            &old.join("nvidia-bluefield-3"),
        );
        let manifest = old.join("nvidia-bluefield-3/bundle.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        assert!(text.contains("version = \"32.44.1036\""));
        std::fs::write(
            &manifest,
            text.replace("version = \"32.44.1036\"", "version = \"32.38.1002\""),
        )
        .unwrap();

        let specs = specs();
        for chunk in specs.chunks(4) {
            std::thread::scope(|s| {
                for spec in chunk {
                    let dir = &dir;
                    s.spawn(move || install(dir, spec));
                }
            });
        }
        for fixture in ["two-dpus", "bluefield1"] {
            probe_to(
                &repo(&format!("tests/fixtures/{fixture}")),
                &dir.join(format!("probes/{fixture}.json")),
            );
        }
        // esx-01 after its install: ESXi on dev/sda, the DPU's log in rshim's misc.
        probe_to(&dir.join("hosts/esx-01"), &dir.join("probes/esx-01.json"));
        // The same host with no rshim daemon running: the DPU's firmware cannot be read.
        let blind = dir.join("hosts/esx-01-no-rshim");
        common::cp_a(&dir.join("hosts/esx-01"), &blind);
        std::fs::remove_dir_all(blind.join("dev/rshim0")).unwrap();
        probe_to(&blind, &dir.join("probes/esx-01-no-rshim.json"));
        Rack { dir }
    })
}

fn check(cmd: &str, args: &[String]) -> Output {
    bin().args([cmd, "check"]).args(args).output().unwrap()
}

fn json_of(cmd: &str, args: &[String]) -> (i32, Value) {
    let mut a = vec!["--format".to_string(), "json".to_string()];
    a.extend(args.iter().cloned());
    let o = check(cmd, &a);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code().unwrap_or(-1), v)
}

fn text_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// (host, rule-or-check, severity) of every finding.
fn findings(v: &Value, key: &str) -> Vec<(String, String, String)> {
    v["verdict"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["host"].as_str().unwrap().to_string(),
                f[key].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn broken(v: &Value, key: &str) -> Vec<(String, String)> {
    findings(v, key)
        .into_iter()
        .filter(|(_, _, s)| s == "broken")
        .map(|(h, r, _)| (h, r))
        .collect()
}

fn pair(h: &str, r: &str) -> (String, String) {
    (h.to_string(), r.to_string())
}

// ---- cluster check ----

#[test]
fn a_rack_of_one_model_and_one_image_passes() {
    let r = rack();
    let args = vec![r.report("esx-01"), r.report("esx-02")];
    let o = check("cluster", &args);
    assert_eq!(o.status.code(), Some(0), "{}", text_of(&o));
    let t = text_of(&o);
    assert!(t.starts_with("OK: 2 host(s), every rule holds"), "{t}");
    assert!(
        t.contains("DPU NVIDIA BlueField-3 (BlueField-3 (MT43244)): 2 host(s)"),
        "{t}"
    );
    let (code, v) = json_of("cluster", &args);
    assert_eq!(code, 0);
    assert_eq!(v["verdict"]["ok"], true);
    assert_eq!(v["verdict"]["expected_model"]["model"], "BlueField-3");
    assert_eq!(v["verdict"]["expected_image"]["version"], "8.0.3");
    assert!(findings(&v, "rule").is_empty());
    assert_eq!(v["hosts"][0]["dpus"][0]["firmware"], "32.44.1036");
}

#[test]
fn a_host_without_a_dpu_is_named_with_the_fix() {
    let r = rack();
    let args = vec![r.report("esx-01"), r.report("esx-04"), r.report("esx-02")];
    let o = check("cluster", &args);
    assert_eq!(o.status.code(), Some(12));
    let t = text_of(&o);
    assert!(t.contains("esx-04: broken: no DPU"), "{t}");
    assert!(
        t.contains("fix: fit a NVIDIA BlueField-3 in this host"),
        "{t}"
    );
    let (code, v) = json_of("cluster", &args);
    assert_eq!(code, 12);
    assert_eq!(broken(&v, "rule"), [pair("esx-04", "has_dpu")]);
}

#[test]
fn another_dpu_model_is_named_and_generations_are_listed() {
    let r = rack();
    let args = vec![r.report("esx-01"), r.report("esx-02"), r.report("esx-03")];
    let (code, v) = json_of("cluster", &args);
    assert_eq!(code, 12);
    assert_eq!(broken(&v, "rule"), [pair("esx-03", "same_model")]);
    let models = v["verdict"]["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(models[0]["model"], "BlueField-3");
    assert_eq!(models[1]["model"], "BlueField-2");
    assert_eq!(models[1]["generations"][0], "BlueField-2 (MT42822)");
    let t = text_of(&check("cluster", &args));
    assert!(
        t.contains("esx-03: broken: NVIDIA BlueField-2 in slot 2 (0000:3b:00): the other 2 host(s) carry a NVIDIA BlueField-3"),
        "{t}"
    );
}

#[test]
fn another_image_build_is_named() {
    let r = rack();
    let args = vec![r.report("esx-01"), r.report("esx-05"), r.report("esx-02")];
    let (code, v) = json_of("cluster", &args);
    assert_eq!(code, 12);
    assert_eq!(broken(&v, "rule"), [pair("esx-05", "same_image")]);
    let ours = v["hosts"][0]["image"]["build"]
        .as_str()
        .unwrap()
        .to_string();
    let theirs = v["hosts"][1]["image"]["build"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(ours, theirs);
    let t = text_of(&check("cluster", &args));
    assert!(
        t.contains(&format!(
            "esx-05: broken: carries ESXi 8.0.3 (build {theirs})"
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "install the host again from the cluster's image, ESXi 8.0.3 build {ours}"
        )),
        "{t}"
    );
}

/// Two hosts that differ (a two-node cluster) have no majority: neither is blamed as the odd one,
/// both are named, and the message lists what each carries.
#[test]
fn two_hosts_that_differ_are_both_named_without_a_majority() {
    let r = rack();
    let model = [
        "no one model is on most hosts (",
        "NVIDIA BlueField-3 on esx-01",
        "NVIDIA BlueField-2 on esx-03",
    ];
    let image = [
        "no one image is on most hosts (8.0.3 build ",
        " on esx-05",
        " on esx-01",
    ];
    for (other, rule, says) in [
        ("esx-03", "same_model", model),
        ("esx-05", "same_image", image),
    ] {
        let one = r.report("esx-01");
        for args in [
            vec![one.clone(), r.report(other)],
            vec![r.report(other), one],
        ] {
            let (code, v) = json_of("cluster", &args);
            assert_eq!(code, 12);
            let mut named = broken(&v, "rule");
            named.sort();
            assert_eq!(named, [pair("esx-01", rule), pair(other, rule)]);
            let key = if rule == "same_model" {
                "expected_model"
            } else {
                "expected_image"
            };
            assert!(v["verdict"][key].is_null(), "{}", v["verdict"]);
            let t = text_of(&check("cluster", &args));
            for part in says {
                assert_eq!(t.matches(part).count(), 2, "{part}: {t}");
            }
            assert_eq!(t.matches("fix: choose the cluster's").count(), 2, "{t}");
        }
    }
}

/// Two models on one host each and a host without a DPU: the host without is told to fit
/// either model, and both carriers are named.
#[test]
fn a_host_without_a_dpu_beside_a_tie_is_told_either_model() {
    let r = rack();
    let args = vec![r.report("esx-01"), r.report("esx-03"), r.report("esx-04")];
    let (code, v) = json_of("cluster", &args);
    assert_eq!(code, 12);
    let mut named = broken(&v, "rule");
    named.sort();
    assert_eq!(
        named,
        [
            pair("esx-01", "same_model"),
            pair("esx-03", "same_model"),
            pair("esx-04", "has_dpu")
        ]
    );
    let t = text_of(&check("cluster", &args));
    assert!(
        t.contains("fix: fit a NVIDIA BlueField-3 or NVIDIA BlueField-2 in this host"),
        "{t}"
    );
}

#[test]
fn a_host_whose_install_failed_is_named() {
    let r = rack();
    let args = vec![r.report("esx-01"), r.report("esx-02"), r.report("esx-08")];
    let (code, v) = json_of("cluster", &args);
    assert_eq!(code, 12);
    assert_eq!(broken(&v, "rule"), [pair("esx-08", "install_succeeded")]);
    let t = text_of(&check("cluster", &args));
    assert!(
        t.contains("esx-08: broken: the install ended with exit code 7 (Dpu)"),
        "{t}"
    );
}

#[test]
fn two_dpus_and_an_unsupported_dpu_are_found_in_probes() {
    let r = rack();
    let args = vec![
        r.report("esx-01"),
        r.probe("two-dpus"),
        r.probe("bluefield1"),
        r.report("esx-02"),
    ];
    let (code, v) = json_of("cluster", &args);
    assert_eq!(code, 12);
    assert_eq!(
        broken(&v, "rule"),
        [
            pair("two-dpus", "one_dpu"),
            pair("bluefield1", "supported_dpu")
        ]
    );
    // A probe of a host with blank disks cannot tell the image: a note, not a failure.
    let notes: Vec<_> = findings(&v, "rule")
        .into_iter()
        .filter(|(_, _, s)| s == "note")
        .map(|(h, r, _)| (h, r))
        .collect();
    assert_eq!(
        notes,
        [
            pair("two-dpus", "image_known"),
            pair("bluefield1", "image_known")
        ]
    );
}

/// Probes written before `DpuIdentity` named a finding's card `{slot, address, model}` with the
/// vendor inside `model`: they still read, and the verdict is the same.
#[test]
fn probes_with_findings_of_an_earlier_version_give_the_same_verdict() {
    let r = rack();
    let mut args = vec![r.report("esx-01")];
    for name in ["two-dpus", "bluefield1"] {
        let mut doc: Value =
            serde_json::from_slice(&std::fs::read(r.probe(name)).unwrap()).unwrap();
        let mut rewritten = 0;
        for f in doc["findings"].as_array_mut().unwrap() {
            let finding = &mut f["finding"];
            let cards: Vec<&mut Value> = if finding.get("dpu").is_some() {
                vec![&mut finding["dpu"]]
            } else {
                finding["dpus"].as_array_mut().unwrap().iter_mut().collect()
            };
            for c in cards {
                let model = format!(
                    "{} {}",
                    c["vendor"].as_str().unwrap(),
                    c["model"].as_str().unwrap()
                );
                *c =
                    serde_json::json!({"slot": c["slot"], "address": c["address"], "model": model});
                rewritten += 1;
            }
        }
        assert!(
            rewritten > 0,
            "{name}: the probe has no finding naming a card: {doc:#}"
        );
        let old = r.path(&format!("old-probe-{name}.json"));
        std::fs::write(&old, serde_json::to_vec(&doc).unwrap()).unwrap();
        args.push(old.display().to_string());
    }
    args.push(r.report("esx-02"));
    let (code, v) = json_of("cluster", &args);
    assert_eq!(code, 12, "{v:#}");
    assert_eq!(
        broken(&v, "rule"),
        [
            pair("old-probe-two-dpus", "one_dpu"),
            pair("old-probe-bluefield1", "supported_dpu")
        ]
    );
}

#[test]
fn a_probe_after_install_sees_the_image_on_the_disk() {
    let r = rack();
    let args = vec![r.report("esx-01"), r.probe("esx-01"), r.report("esx-02")];
    let (code, v) = json_of("cluster", &args);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["hosts"][1]["kind"], "probe");
    assert_eq!(v["hosts"][1]["image"], v["hosts"][0]["image"]);
    // rshim tells the card, not the firmware it runs: a BlueField probe cannot say.
    assert_eq!(v["hosts"][1]["dpus"][0]["firmware"], Value::Null);
}

#[test]
fn unreadable_inputs_exit_13_and_check_nothing() {
    let r = rack();
    let not_json = r.path("not-json.json");
    std::fs::write(&not_json, "vmaccepteula\n").unwrap();
    let other = r.path("other.json");
    std::fs::write(&other, r#"{"kind": "something else"}"#).unwrap();
    let server = common::http::serve(&r.path("reports"));
    for (bad, says) in [
        (r.path("missing.json").display().to_string(), "missing.json"),
        (not_json.display().to_string(), "not JSON"),
        (other.display().to_string(), "neither an install report"),
        (format!("{}/esx-99.json", server.url), "404"),
    ] {
        for cmd in ["cluster", "hcl"] {
            let o = check(cmd, &[r.report("esx-01"), bad.clone()]);
            assert_eq!(o.status.code(), Some(13), "{cmd} {bad}");
            assert!(o.stdout.is_empty(), "{cmd} {bad}: nothing is judged");
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains(says), "{cmd} {bad}: {err}");
        }
    }
}

#[test]
fn a_report_of_an_older_version_reads_and_a_malformed_one_is_refused_with_the_reason() {
    let r = rack();
    let mut doc: Value =
        serde_json::from_slice(&std::fs::read(r.report("esx-01")).unwrap()).unwrap();
    // What 0.1.0 before typed reports wrote: no "dry_run", `null` timings and warnings.
    let obj = doc.as_object_mut().unwrap();
    obj.remove("dry_run");
    obj.insert("timings".into(), Value::Null);
    obj.insert("warnings".into(), Value::Null);
    let old = r.path("old-esx-01.json");
    std::fs::write(&old, serde_json::to_vec(&doc).unwrap()).unwrap();
    let (code, v) = json_of("cluster", &[old.display().to_string(), r.report("esx-02")]);
    assert_eq!(code, 0, "{v}");
    // A field of the wrong type: nothing is judged, and the reason names it.
    doc["dpus"][0]["supported"] = Value::String("yes".into());
    let bad = r.path("bad-esx-01.json");
    std::fs::write(&bad, serde_json::to_vec(&doc).unwrap()).unwrap();
    let o = check("cluster", &[bad.display().to_string(), r.report("esx-02")]);
    assert_eq!(o.status.code(), Some(13));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad-esx-01.json: not an install report of ksinstall")
            && err.contains("expected a boolean"),
        "{err}"
    );
}

#[test]
fn reports_are_read_from_urls() {
    let r = rack();
    let server = common::http::serve(&r.path("reports"));
    let args = vec![
        format!("{}/esx-01.json", server.url),
        format!("{}/esx-03.json", server.url),
        format!("{}/esx-02.json", server.url),
    ];
    let (code, v) = json_of("cluster", &args);
    assert_eq!(code, 12);
    assert_eq!(broken(&v, "rule"), [pair("esx-03", "same_model")]);
    assert_eq!(server.gets("/esx-03.json").len(), 1);
}

#[test]
fn the_report_names_each_dpu_and_never_the_password() {
    let r = rack();
    let text = std::fs::read_to_string(r.report("esx-03")).unwrap();
    assert!(!text.contains("Plain-Secret-99x"));
    let v: Value = serde_json::from_str(&text).unwrap();
    let d = &v["dpus"][0];
    assert_eq!(d["catalog_id"], "nvidia-bluefield-2");
    assert_eq!(d["vendor"], "NVIDIA");
    assert_eq!(d["generation"], "BlueField-2 (MT42822)");
    assert_eq!(d["supported"], true);
    assert_eq!(d["payload"]["firmware_version"], "24.44.1036");
    assert_eq!(d["payload"]["esxio_build"], v["media"]["build"]);
}

// ---- hcl check ----

#[test]
fn hcl_passes_hosts_whose_firmware_pairs_with_their_image() {
    let r = rack();
    let args = vec![r.report("esx-01"), r.report("esx-02"), r.report("esx-03")];
    let o = check("hcl", &args);
    assert_eq!(o.status.code(), Some(0), "{}", text_of(&o));
    let t = text_of(&o);
    assert!(t.starts_with("OK: 3 host(s)"), "{t}");
    assert!(t.contains("EXAMPLES, UNCONFIRMED"), "{t}");
}

#[test]
fn hcl_flags_old_firmware_and_recommends_the_bundle_for_those_hosts() {
    let r = rack();
    let args = vec![r.report("esx-01"), r.report("esx-06"), r.report("esx-02")];
    let (code, v) = json_of("hcl", &args);
    assert_eq!(code, 12);
    assert_eq!(broken(&v, "check"), [pair("esx-06", "firmware_not_paired")]);
    let recs = v["verdict"]["recommendations"].as_array().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["firmware"], "32.44.1036");
    assert_eq!(recs[0]["hosts"], serde_json::json!(["esx-06"]));
    assert!(recs[0]["bundle"]
        .as_str()
        .unwrap()
        .ends_with("firmware/nvidia-bluefield-3"));
    let t = text_of(&check("hcl", &args));
    assert!(
        t.contains("firmware 32.38.1002 does not pair with ESXi 8.0.3"),
        "{t}"
    );
    assert!(
        t.contains("recommended: NVIDIA BlueField-3 firmware 32.44.1036 for ESXi 8.0.3"),
        "{t}"
    );
}

#[test]
fn hcl_flags_a_release_the_table_does_not_list() {
    let r = rack();
    let (code, v) = json_of("hcl", &[r.report("esx-07")]);
    assert_eq!(code, 12);
    assert_eq!(broken(&v, "check"), [pair("esx-07", "release_not_listed")]);
    let msg = v["verdict"]["findings"][0]["message"].as_str().unwrap();
    assert!(msg.starts_with("ESXi 8.0.1"), "{msg}");
}

#[test]
fn hcl_flags_a_model_the_table_does_not_list() {
    let r = rack();
    let (code, v) = json_of("hcl", &[r.probe("bluefield1"), r.report("esx-01")]);
    assert_eq!(code, 12);
    assert_eq!(
        broken(&v, "check"),
        [pair("bluefield1", "model_not_listed")]
    );
}

#[test]
fn hcl_flags_a_model_an_operators_table_does_not_pair_with_the_release() {
    let r = rack();
    let table = r.path("bf3-only.toml");
    std::fs::write(
        &table,
        "[[model]]\ncatalog_id = \"nvidia-bluefield-2\"\nname = \"BF2\"\n[[model]]\ncatalog_id = \"nvidia-bluefield-3\"\nname = \"BF3\"\n\
         [[release]]\nesxi = \"8.0.3\"\n[[release.dpu]]\ncatalog_id = \"nvidia-bluefield-3\"\nfirmware = [\"32.44.1036\"]\nrecommended = \"32.44.1036\"\n",
    )
    .unwrap();
    let args = vec![
        "--table".to_string(),
        table.display().to_string(),
        r.report("esx-01"),
        r.report("esx-03"),
    ];
    let (code, v) = json_of("hcl", &args);
    assert_eq!(code, 12);
    assert_eq!(
        broken(&v, "check"),
        [pair("esx-03", "model_not_for_release")]
    );
    assert_eq!(v["verdict"]["table_is_example"], false);
    // A table that is not one is an unreadable input.
    std::fs::write(&table, "[[release]]\nesxi = 8\n").unwrap();
    let o = check("hcl", &args);
    assert_eq!(o.status.code(), Some(13));
}

#[test]
fn hcl_recommends_a_bundle_when_a_probe_cannot_tell_the_firmware() {
    let r = rack();
    // A BlueField's firmware version is not something rshim tells, with or without the rshim
    // daemon: a note, and the bundle that makes sure of it.
    for name in ["esx-01", "esx-01-no-rshim"] {
        let (code, v) = json_of("hcl", &[r.probe(name)]);
        assert_eq!(code, 0, "{v}");
        assert_eq!(
            findings(&v, "check"),
            [(
                name.to_string(),
                "firmware_unknown".to_string(),
                "note".to_string()
            )]
        );
        assert_eq!(
            v["verdict"]["recommendations"][0]["hosts"],
            serde_json::json!([name])
        );
        assert_eq!(
            v["verdict"]["recommendations"][0]["bundle"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next(),
            Some("nvidia-bluefield-3")
        );
    }
}

#[test]
fn hcl_flags_esxio_missing_or_of_another_build() {
    // The installer never puts a payload without ESXio on a DPU, so a real report is edited.
    let r = rack();
    let text = std::fs::read_to_string(r.report("esx-01")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    let parts = v["dpus"][0]["payload"]["parts"].as_array_mut().unwrap();
    parts.retain(|p| p["kind"] != "esxio");
    v["dpus"][0]["payload"]["esxio_build"] = "8.0.3-0.0.1".into();
    let edited = r.path("edited/esx-01.json");
    std::fs::create_dir_all(edited.parent().unwrap()).unwrap();
    std::fs::write(&edited, serde_json::to_vec(&v).unwrap()).unwrap();
    let (code, v) = json_of("hcl", &[edited.display().to_string()]);
    assert_eq!(code, 12);
    assert_eq!(
        broken(&v, "check"),
        [
            pair("esx-01", "esxio_missing"),
            pair("esx-01", "esxio_other_build")
        ]
    );
}
