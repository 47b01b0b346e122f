//! `ksinstall validate` as a user runs it: exit codes, output lines, JSON, and no secrets.

use std::path::Path;
use std::process::{Command, Output};

fn ksinstall(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .args(args)
        .output()
        .unwrap()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const GOOD: &str =
    "vmaccepteula\nrootpw 'Sekr1t-Horse'\ninstall --firstdisk\nnetwork --bootproto=dhcp\n";

#[test]
fn exit_codes_follow_the_documented_contract() {
    let d = tempfile::tempdir().unwrap();
    let good = write(&d, "good.cfg", GOOD);
    let warn = write(&d, "warn.cfg", &format!("{GOOD}timezone UTC\n"));
    let bad = write(
        &d,
        "bad.cfg",
        &format!("{GOOD}network --bootproto=dhcp --vlanid=5000\n"),
    );
    assert_eq!(ksinstall(&["validate", &good]).status.code(), Some(0));
    assert_eq!(
        ksinstall(&["validate", &warn]).status.code(),
        Some(0),
        "warnings alone pass"
    );
    assert_eq!(
        ksinstall(&["validate", "--strict", &warn]).status.code(),
        Some(2)
    );
    assert_eq!(ksinstall(&["validate", &bad]).status.code(), Some(2));
    assert_eq!(
        ksinstall(&["validate", &good, &bad]).status.code(),
        Some(2),
        "any invalid file fails the run"
    );
    let missing = d.path().join("nope.cfg").display().to_string();
    let out = ksinstall(&["validate", &missing]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.cfg"));
    assert_eq!(
        ksinstall(&["validate", "--no-such-flag", &good])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(ksinstall(&["validate"]).status.code(), Some(1));
    assert_eq!(ksinstall(&["--help"]).status.code(), Some(0));
}

#[test]
fn every_diagnostic_is_one_located_line_and_all_are_reported() {
    let d = tempfile::tempdir().unwrap();
    let f = write(&d, "ks.cfg", "vmaccepteula\nrootpw vagrant\ninstall --firstdisk --overwritevmfs --preservevmfs\nnetwork --bootproto=dhcp --ip=1.2.3.4\n");
    let out = ksinstall(&["validate", &f]);
    let text = String::from_utf8_lossy(&out.stdout);
    let errors: Vec<&str> = text.lines().filter(|l| l.contains(": error: ")).collect();
    assert_eq!(errors.len(), 3, "{text}");
    assert!(
        errors[0].starts_with(&format!("{f}:2:8: error: ")),
        "{text}"
    );
    assert!(
        errors[1].starts_with(&format!("{f}:3:37: error: ")),
        "{text}"
    );
    assert!(
        errors[2].starts_with(&format!("{f}:4:26: error: ")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("{f}:2:8: help: "))),
        "{text}"
    );
}

#[test]
fn json_output_carries_diagnostics_and_the_model_but_never_the_plain_password() {
    let d = tempfile::tempdir().unwrap();
    let f = write(&d, "ks.cfg", &format!("{GOOD}keyboard German\n"));
    let out = ksinstall(&["validate", "--format", "json", &f]);
    assert_eq!(out.status.code(), Some(0));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !all.contains("Sekr1t-Horse"),
        "the plain root password leaked: {all}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let file = &v["files"][0];
    assert_eq!(file["valid"], true);
    assert_eq!(file["kickstart"]["keyboard"]["layout"], "German");
    assert!(file["kickstart"]["root_password"]["hash"]
        .as_str()
        .unwrap()
        .starts_with("$6$"));
    // A weak password is refused without being echoed either.
    let weak = write(
        &d,
        "weak.cfg",
        "vmaccepteula\nrootpw hunter2hunter\ninstall --firstdisk\n",
    );
    let out = ksinstall(&["validate", "--format", "json", &weak]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("hunter2hunter"), "{all}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["files"][0]["valid"], false);
    let errs: Vec<&serde_json::Value> = v["files"][0]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["severity"] == "error")
        .collect();
    assert_eq!(errs.len(), 1, "{v}");
    assert_eq!(errs[0]["span"]["line"], 2);
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn validate_notes_what_install_will_check_on_the_host_and_notes_never_fail() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        (
            "upgrade --firstdisk\n".to_string(),
            "1:1",
            "checked without a host: `install` will also check that the disk it picks holds ESXi 7.0 or later it can upgrade",
        ),
        (
            GOOD.replace("install --firstdisk", "installorupgrade --firstdisk --overwritevmfs"),
            "3:1",
            "checked without a host: `install` will also check the disk it picks: where it holds an ESXi it can upgrade, `install` upgrades it",
        ),
        (
            GOOD.to_string(),
            "3:1",
            "checked without a host: `install` will also check which disk `--firstdisk=local,remote,usb` picks, and refuse it if it may hold a VMFS datastore (no --overwritevmfs)",
        ),
        (
            "vmaccepteula\ninstall --firstdisk --overwritevmfs\n%include /tmp/rootpw\n%pre --interpreter=busybox\necho \"rootpw 'Sekr1t-Horse'\" > /tmp/rootpw\n".to_string(),
            "3:10",
            "checked without a host: `install` will also read \"/tmp/rootpw\" once the %pre scripts ran, check the commands it holds, and refuse the kickstart if it cannot be read",
        ),
    ];
    for (i, (text, at, says)) in cases.iter().enumerate() {
        let f = write(&d, &format!("ks{i}.cfg"), text);
        let out = ksinstall(&[
            "validate",
            "--strict",
            "--root",
            &d.path().display().to_string(),
            &f,
        ]);
        let text_out = stdout(&out);
        let want = format!("{f}:{at}: note: {says}");
        assert!(
            text_out.lines().any(|l| l.starts_with(&want)),
            "want {want:?} in:\n{text_out}"
        );
        // The pending include is a warning of its own; everything else passes --strict.
        let code = if i == 3 { 2 } else { 0 };
        assert_eq!(out.status.code(), Some(code), "{text_out}");
        let out = ksinstall(&[
            "validate",
            "--format",
            "json",
            "--root",
            &d.path().display().to_string(),
            &f,
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let file = &v["files"][0];
        assert!(
            file["diagnostics"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["severity"] == "note"
                    && x["message"].as_str().unwrap().starts_with(*says)),
            "{v}"
        );
        assert!(file["notes"].as_u64().unwrap() >= 1, "{v}");
        assert_eq!(file["valid"], true, "{v}");
    }
}

#[test]
fn a_byte_order_mark_is_a_note_not_an_unknown_command() {
    let d = tempfile::tempdir().unwrap();
    let f = write(
        &d,
        "bom.cfg",
        &format!(
            "\u{feff}{}",
            GOOD.replace(
                "install --firstdisk",
                "install --disk=naa.1 --overwritevmfs"
            )
        ),
    );
    let out = ksinstall(&["validate", "--strict", &f]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with(&format!(
            "{f}:1:1: note: the file starts with a UTF-8 byte order mark"
        )),
        "{text}"
    );
    assert!(!text.contains("unknown command"), "{text}");
}

#[test]
fn an_unrendered_template_is_named_and_a_placeholder_password_always_fails() {
    let d = tempfile::tempdir().unwrap();
    let f = write(
        &d,
        "t.cfg",
        &format!("{GOOD}{{{{ if .Reboot }}}}\nreboot\n{{{{ end }}}}\n"),
    );
    let out = ksinstall(&["validate", &f]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("{f}:5:1: warning: unknown command \"{{{{\": the line looks like a Go/Jinja template placeholder `{{{{...}}}}`: the file was not rendered")), "{text}");
    assert_eq!(
        ksinstall(&["validate", "--strict", &f]).status.code(),
        Some(2)
    );
    let f = write(
        &d,
        "pw.cfg",
        &GOOD.replace("'Sekr1t-Horse'", "{{.Password}}"),
    );
    let out = ksinstall(&["validate", &f]);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "not even a warning lets it through: {text}"
    );
    assert!(text.contains(&format!("{f}:2:8: error: the root password looks like a Go/Jinja template placeholder `{{{{...}}}}`: the file was not rendered")), "{text}");
}

/// A `%pre`/`%post` line that uses what only ESXi's installer has is a warning on its own line,
/// in `validate` and in the install's plan; `%firstboot` (run on ESXi) is never warned about,
/// and the examples use nothing of the kind in %pre/%post.
#[test]
fn pre_and_post_lines_using_esxi_only_commands_are_warned_per_line() {
    let d = tempfile::tempdir().unwrap();
    let ks = write(
        &d,
        "ks.cfg",
        "vmaccepteula\nrootpw 'Sekr1t-Horse-9'\ninstall --firstdisk --overwritevmfs\nnetwork --bootproto=dhcp\n\
%pre --interpreter=busybox\n# esxcli in a comment is fine\nmac=$(/bin/esxcli network nic list)\necho ok\n\
%post --interpreter=busybox\nvim-cmd hostsvc/enable_ssh\necho x > /vmfs/volumes/datastore1/log\nlocalcli foo; vmkfstools -C vmfs6 x\n\
%firstboot --interpreter=busybox\nesxcli system hostname set --host=a\nvim-cmd hostsvc/start_ssh\n",
    );
    let out = ksinstall(&["validate", &ks]);
    let t = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let flagged: Vec<&str> = t
        .lines()
        .filter(|l| l.contains("which only ESXi's own installer has"))
        .collect();
    assert_eq!(flagged.len(), 4, "{t}");
    for (line, what) in [
        (7, "%pre uses esxcli"),
        (10, "%post uses vim-cmd"),
        (11, "%post uses /vmfs/"),
        (12, "%post uses localcli"),
    ] {
        assert!(
            flagged
                .iter()
                .any(|l| l.contains(&format!("ks.cfg:{line}:1: warning: {what}"))),
            "line {line}: {t}"
        );
    }
    // --strict makes them fail, as every warning does.
    assert_eq!(
        ksinstall(&["validate", "--strict", &ks]).status.code(),
        Some(2)
    );
    // The plan says the same lines.
    let media = d.path().join("media");
    testkit::synth::mkmedia(&testkit::synth::Options {
        out: media.clone(),
        size: 32 << 20,
        version: "8.0.3".into(),
        seed: 3,
    })
    .unwrap();
    let dry = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .args(["install", "--ks", &ks, "--media", media.to_str().unwrap()])
        .arg("--sysroot")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plain"))
        .args(["--cmdline", "", "--dry-run", "--progress", "json", "--disk"])
        .arg(d.path().join("disk.img"))
        .args(["--disk-size", "40G"])
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert_eq!(
        dry.status.code(),
        Some(0),
        "{plan}{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let last: serde_json::Value = plan
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["event"] == "plan")
        .unwrap();
    let warnings: Vec<&str> = last["plan"]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .filter(|w| w.contains("which only ESXi's own installer has"))
        .collect();
    assert_eq!(warnings.len(), 4, "{warnings:?}");
    assert!(warnings
        .iter()
        .any(|w| w.contains("ks.cfg:11: %post uses /vmfs/")));
    for example in ["07-pre-generated-include.cfg", "08-post-firstboot.cfg"] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("kickstart-examples")
            .join(example);
        let t = stdout(&ksinstall(&["validate", p.to_str().unwrap()]));
        assert!(!t.contains("which only ESXi's own installer has"), "{t}");
    }
}
