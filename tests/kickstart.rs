//! The kickstart stage as a user meets it: the examples, every warning and error rule of
//! the spec, includes, limits, line endings, quoting, the canonical round trip, and no panics.

use std::path::{Path, PathBuf};

use ksinstall::kickstart::{self, Parsed, Severity};

mod common;
use common::ks::{
    assert_messages_read_as_english, assert_round_trip, dump, errors, files_in, parse_text,
    without_spans,
};

fn examples() -> Vec<PathBuf> {
    files_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("kickstart-examples"))
}

#[test]
fn print_then_parse_gives_the_same_model() {
    assert_round_trip(examples());
}

#[test]
fn messages_read_as_english() {
    assert_messages_read_as_english(examples());
}

const BASE: &str = "vmaccepteula\nrootpw 'Change-Me-2day'\ninstall --firstdisk --overwritevmfs\nnetwork --bootproto=dhcp\n";

#[test]
fn every_example_validates_without_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("kickstart-examples");
    let files = files_in(&dir);
    assert!(files.len() >= 8);
    for f in files {
        let p = kickstart::parse_file(&f, Path::new("/nonexistent-root")).unwrap();
        assert!(!p.has_errors(), "{}:\n{}", f.display(), dump(&p));
    }
}

/// One rule of the spec: a kickstart, and the diagnostic it must produce.
struct Rule {
    text: String,
    severity: Severity,
    line: u32,
    col: u32,
    says: &'static str,
}

fn rule(
    text: impl Into<String>,
    severity: Severity,
    line: u32,
    col: u32,
    says: &'static str,
) -> Rule {
    Rule {
        text: text.into(),
        severity,
        line,
        col,
        says,
    }
}

fn base_with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

#[test]
fn each_warning_and_error_rule_of_the_spec() {
    use Severity::{Error as E, Warning as W};
    let no_net = "vmaccepteula\nrootpw 'Change-Me-2day'\ninstall --firstdisk\n";
    let rules = [
        // Unknown input: warnings, once per unknown command name.
        rule(base_with("frobnicate --x\n"), W, 5, 1, "unknown command \"frobnicate\""),
        rule(base_with("instal --firstdisk\n"), W, 5, 1, "unknown command \"instal\""),
        rule(base_with("reboot --noejct\n"), W, 5, 8, "unknown argument \"--noejct\" to command \"reboot\""),
        rule(base_with("timezone UTC\n"), W, 5, 1, "deprecated"),
        rule(base_with("firstboot\n"), W, 5, 1, "deprecated"),
        rule(base_with("lang en_US\n"), W, 5, 1, "currently unused"),
        rule(base_with("%packages\nfoo\n"), W, 5, 1, "deprecated"),
        rule(base_with("reboot --noeject=yes\n"), W, 5, 8, "does not take a value"),
        rule(base_with("network --bootproto=dhcp --vlanid\n"), W, 5, 26, "missing a value"),
        rule(base_with("install --server=x --firstdisk\n"), E, 5, 1, "given more than once"),
        // Value patterns: a warning, but an error for interpreters and serial numbers.
        rule(base_with("network --bootproto=dhcp --addvmportgroup=maybe\n"), W, 5, 26, "invalid value \"maybe\""),
        rule(base_with("%pre --interpreter=perl\necho\n"), E, 5, 6, "invalid value \"perl\""),
        rule(base_with("serialnum --esx=ABCDE-12345\n"), E, 5, 11, "invalid value"),
        rule(base_with("serialnum\n"), E, 5, 1, "serialnum needs --esx"),
        // Duplicate options: warning, but an error for disk options.
        rule(base_with("reboot --noeject --noeject\n"), W, 5, 18, "given more than once"),
        rule("vmaccepteula\nrootpw 'Change-Me-2day'\ninstall --disk=a --drive=b\nnetwork --bootproto=dhcp\n", E, 3, 18, "given more than once"),
        rule("vmaccepteula\nrootpw 'Change-Me-2day'\ninstall --firstdisk --firstdisk=usb\nnetwork --bootproto=dhcp\n", E, 3, 21, "given more than once"),
        // Mutually exclusive options.
        rule("vmaccepteula\nrootpw 'Change-Me-2day'\ninstall --disk=a --firstdisk\nnetwork --bootproto=dhcp\n", E, 3, 18, "\"--disk\" is invalid when used with argument \"--firstdisk\""),
        rule("vmaccepteula\nrootpw 'Change-Me-2day'\ninstall --firstdisk --overwritevmfs --preservevmfs\nnetwork --bootproto=dhcp\n", E, 3, 37, "is invalid when used with"),
        rule("vmaccepteula\nrootpw 'Change-Me-2day'\ninstall --firstdisk --preservevmfs --novmfsondisk\nnetwork --bootproto=dhcp\n", E, 3, 36, "is invalid when used with"),
        rule("vmaccepteula\nrootpw 'Change-Me-2day'\ninstall --disk=a --ignoressd\nnetwork --bootproto=dhcp\n", E, 3, 18, "\"--ignoressd\" is invalid when used with argument \"--disk\""),
        rule("vmaccepteula\nrootpw 'Change-Me-2day'\ninstallorupgrade --firstdisk --ignoressd\nnetwork --bootproto=dhcp\n", E, 3, 30, "not valid with installorupgrade"),
        // Required commands and the one action command.
        rule("rootpw 'Change-Me-2day'\ninstall --firstdisk\nnetwork --bootproto=dhcp\n", E, 1, 1, "vmaccepteula is required"),
        rule("vmaccepteula\ninstall --firstdisk\nnetwork --bootproto=dhcp\n", E, 1, 1, "rootpw is required"),
        rule("vmaccepteula\nrootpw 'Change-Me-2day'\nnetwork --bootproto=dhcp\n", E, 1, 1, "one of install, upgrade or installorupgrade is required"),
        rule(base_with("upgrade --firstdisk\n"), E, 5, 1, "there can be only one"),
        rule(base_with("install --firstdisk\n"), E, 5, 1, "given more than once"),
        rule(base_with("keyboard German\nkeyboard French\n"), W, 6, 1, "the last one is used"),
        rule(no_net, W, 1, 1, "network command not specified. Defaulting to DHCP."),
        rule("vmaccepteula\nrootpw 'Change-Me-2day'\ninstall\n", E, 3, 1, "install needs --disk"),
        // Upgrade invalidates the install-only commands; clearpart and part need install.
        rule("upgrade --firstdisk\nkeyboard German\n", W, 2, 1, "ignored when upgrading"),
        rule("vmaccepteula\nrootpw 'Change-Me-2day'\ninstallorupgrade --firstdisk\nclearpart --alldrives\n", E, 4, 1, "clearpart requires install"),
        rule(base_with("clearpart --overwritevmfs\n"), E, 5, 1, "clearpart requires one of"),
        rule(base_with("clearpart --drives=a --alldrives\n"), E, 5, 22, "is invalid when used with"),
        rule(base_with("part ds2\n"), E, 5, 1, "part needs --ondisk"),
        rule(base_with("part 'a/b' --ondisk=x\n"), E, 5, 6, "datastore name"),
        // rootpw.
        rule("vmaccepteula\nrootpw\ninstall --firstdisk\n", E, 2, 1, "rootpw needs a password"),
        rule("vmaccepteula\nrootpw vagrant\ninstall --firstdisk\n", E, 2, 8, "password policy"),
        rule("vmaccepteula\nrootpw Xqat3hi\ninstall --firstdisk\n", E, 2, 8, "password policy"),
        rule("vmaccepteula\nrootpw aB3!\ninstall --firstdisk\n", E, 2, 8, "7 to 40"),
        rule(format!("vmaccepteula\nrootpw {}\ninstall --firstdisk\n", "aB3!".repeat(11)), E, 2, 8, "7 to 40"),
        rule("vmaccepteula\nrootpw 'Ünïcode-Pw1'\ninstall --firstdisk\n", E, 2, 8, "not allowed"),
        rule("vmaccepteula\nrootpw --iscrypted $6$abc$short\ninstall --firstdisk\n", E, 2, 20, "crypted password is not valid"),
        // network.
        rule(base_with("network --bootproto=dhcp --ip=10.0.0.2\n"), E, 5, 26, "invalid with --bootproto=dhcp"),
        rule(base_with("network --bootproto=dhcp --hostname=h\n"), W, 5, 26, "ignored with --bootproto=dhcp"),
        rule(format!("{no_net}network --bootproto=static\n"), E, 4, 1, "needs --ip"),
        rule(format!("{no_net}network --bootproto=static --ip=10.0.0.2 --netmask=255.255.255.0 --gateway=10.0.0.1\n"), W, 4, 1, "\"localhost\" is used"),
        rule(format!("{no_net}network --bootproto=static --ip=10.1.2.3 --gateway=10.0.0.1 --hostname=h\n"), W, 4, 1, "classful 255.0.0.0"),
        rule(format!("{no_net}network --bootproto=static --ip=10.1.2.3 --netmask=255.255.255.0 --hostname=h\n"), W, 4, 1, "10.1.2.1 is used"),
        rule(format!("{no_net}network --bootproto=static --ip=10.1.2.3 --netmask=255.255.255.0 --gateway=10.1.3.1 --hostname=h\n"), E, 4, 66, "not on the subnet"),
        rule(format!("{no_net}network --bootproto=static --ip=10.1.2.300 --hostname=h\n"), E, 4, 28, "not an IPv4 address"),
        rule(format!("{no_net}network --bootproto=static --ip=10.1.2.3 --netmask=255.0.255.0 --hostname=h\n"), E, 4, 42, "not a valid netmask"),
        rule(base_with("network --bootproto=dhcp --vlanid=4096\n"), E, 5, 26, "between 0 and 4095"),
        rule(base_with("network --bootproto=dhcp --device=eth0\n"), E, 5, 26, "neither a vmnicN name nor a MAC"),
        rule(base_with("network --bootproto=dhcp --device=00:11:22:33:44\n"), E, 5, 26, "not a MAC address"),
        rule(format!("{no_net}network --bootproto=dhcp --nameserver=1.1.1.1,2.2.2.2,3.3.3.3\n"), W, 4, 26, "only the first two"),
        rule(format!("{no_net}network --device=vmnic0\n"), W, 4, 1, "no --bootproto"),
        // keyboard: unquoted multi-word names.
        rule(base_with("keyboard US Default\n"), W, 5, 10, "unknown argument \"US\""),
        rule(base_with("keyboard Klingon\n"), W, 5, 10, "is not known"),
        // Sections.
        rule(base_with("%post\necho hi\n"), W, 5, 1, "no --interpreter; busybox is used"),
        rule(base_with("%post --interpreter=busybox --timeout=abc\n"), W, 5, 29, "invalid value \"abc\""),
        rule(base_with("%pre --interpreter=busybox --ignorefailure=true\n"), W, 5, 28, "unknown argument"),
        rule(base_with("%firstboot --interpreter=busybox --timeout=5\n"), W, 5, 34, "unknown argument"),
        rule(base_with("%firstboot --interpreter=busybox\necho hi\nreboot\n"), W, 7, 1, "runs as script text"),
        rule(base_with("%post --interpreter=busybox\necho hi\n%end\n"), W, 7, 1, "`%end` does not end a section"),
        // DPU slots: ESXi 8 allows one DPU per host.
        rule("vmaccepteula\nrootpw 'Change-Me-2day'\ninstall --firstdisk --dpupcislots=2,3\n", E, 3, 21, "at most one DPU"),
        // The line itself.
        rule(base_with("keyboard 'US Default\n"), E, 5, 10, "no closing quotation"),
        rule(base_with("reboot \\\n"), E, 5, 8, "no line continuation"),
        rule(base_with("# caf\u{e9}\n"), W, 5, 6, "non-ASCII"),
        // paranoid turns every warning into an error.
        rule(base_with("paranoid\nfrobnicate\n"), E, 6, 1, "paranoid"),
    ];
    for r in rules {
        let (p, _dir) = parse_text(&r.text);
        let hit = p.diagnostics.iter().find(|d| d.message.contains(r.says));
        let Some(d) = hit else {
            panic!(
                "no diagnostic saying {:?} for:\n{}\ngot:\n{}",
                r.says,
                r.text,
                dump(&p)
            );
        };
        assert_eq!(
            (d.severity, d.span.line, d.span.col),
            (r.severity, r.line, r.col),
            "{d}\nfor:\n{}",
            r.text
        );
    }
}

#[test]
fn the_good_base_is_clean_and_options_are_case_insensitive() {
    let (p, _d) = parse_text(BASE);
    assert!(p.diagnostics.is_empty(), "{}", dump(&p));
    let (p, _d) = parse_text("vmaccepteula\nrootpw 'Change-Me-2day'\ninstall --firstdisk --dpuPciSlots=2 --systemDisk=naa.1 --OverwriteVMFS\nnetwork --bootproto=dhcp\n");
    assert!(p.diagnostics.is_empty(), "{}", dump(&p));
    let a = p.kickstart.action.unwrap();
    assert_eq!(a.dpu_pci_slots, ["2"]);
    assert_eq!(a.system_disk.as_deref(), Some("naa.1"));
    assert!(a.overwrite_vmfs);
}

#[test]
fn unknown_command_is_reported_once_and_typos_get_a_hint() {
    let (p, _d) = parse_text(&base_with("frob\nfrob\nrebot\n"));
    assert_eq!(
        p.diagnostics
            .iter()
            .filter(|d| d.message.contains("\"frob\""))
            .count(),
        1
    );
    let d = p
        .diagnostics
        .iter()
        .find(|d| d.message.contains("\"rebot\""))
        .unwrap();
    assert_eq!(d.help.as_deref(), Some("did you mean `reboot`?"));
    let (p, _d) = parse_text(&base_with("reboot --noejct\n"));
    assert_eq!(
        p.diagnostics[0].help.as_deref(),
        Some("did you mean `--noeject`?")
    );
}

#[test]
fn evaluation_order_is_pre_include_action_rest_not_file_order() {
    // Commands after the action in the file, and an include before everything.
    let (p, _d) = parse_text("network --bootproto=dhcp\nkeyboard German\nrootpw 'Change-Me-2day'\ninstall --firstdisk\nvmaccepteula\n");
    assert!(!p.has_errors(), "{}", dump(&p));
    // upgrade invalidates keyboard even though keyboard comes first in the file.
    let (p, _d) = parse_text("keyboard German\nupgrade --firstdisk\n");
    assert!(p
        .diagnostics
        .iter()
        .any(|d| d.message.contains("\"keyboard\" is ignored when upgrading")));
    assert!(p.kickstart.keyboard.is_none());
}

#[test]
fn section_bodies_are_byte_exact_and_end_only_at_section_lines() {
    let body =
        "echo 'a  b'\t# tab and comment kept\n%end\nreboot\n  %post is not a section start\n\n";
    let (p, _d) = parse_text(&format!(
        "{BASE}%post --interpreter=busybox\n{body}%firstboot --interpreter=python\nprint(1)"
    ));
    let s = &p.kickstart.scripts;
    assert_eq!(s.len(), 2);
    assert_eq!(
        s[0].body, body,
        "%end and commands after a section belong to its body"
    );
    assert_eq!(
        s[1].body, "print(1)",
        "the last body keeps its missing final newline"
    );
    assert!(
        p.kickstart.reboot.is_none(),
        "reboot inside a body is script text"
    );
}

#[test]
fn crlf_reads_like_lf() {
    let lf = format!("{BASE}keyboard 'US Default'\n%post --interpreter=busybox\necho x\n");
    let crlf = lf.replace('\n', "\r\n");
    let (a, _d1) = parse_text(&lf);
    let (b, _d2) = parse_text(&crlf);
    assert!(b.diagnostics.is_empty(), "{}", dump(&b));
    assert_eq!(without_spans(&a), without_spans(&b));
    assert_eq!(b.kickstart.scripts[0].body, "echo x\n");
}

#[test]
fn quoting_and_comments_follow_posix_shlex() {
    let (p, _d) = parse_text("vmaccepteula # trailing comment\nrootpw \"Pa ss#w0rd\"\ninstall --firstdisk=\"DELLBOSS VD\",local\nnetwork --bootproto=dhcp --device=vmnic0#comment\n");
    assert!(p.diagnostics.is_empty(), "{}", dump(&p));
    let a = p.kickstart.action.as_ref().unwrap();
    assert_eq!(
        a.target,
        Some(kickstart::DiskTarget::FirstDisk(vec![
            "dellboss vd".into(),
            "local".into()
        ]))
    );
    assert_eq!(
        p.kickstart.network.as_ref().unwrap().device,
        Some(kickstart::NetDevice::Vmnic("vmnic0".into()))
    );
}

#[test]
fn relative_and_absolute_includes_are_read_and_count_as_their_own_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("ks/parts")).unwrap();
    std::fs::create_dir_all(dir.path().join("root/tmp")).unwrap();
    std::fs::write(
        dir.path().join("ks/main.cfg"),
        "vmaccepteula\n%include ./parts/net.cfg\ninclude /tmp/pw.cfg\ninstall --firstdisk\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("ks/parts/net.cfg"),
        "network --bootproto=dhcp --vlanid=9999\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("root/tmp/pw.cfg"),
        "rootpw 'Change-Me-2day'\n",
    )
    .unwrap();
    let p =
        kickstart::parse_file(&dir.path().join("ks/main.cfg"), &dir.path().join("root")).unwrap();
    assert_eq!(p.files.len(), 3, "{:?}", p.files);
    assert!(p.kickstart.root_password.is_some());
    // The diagnostic names the included file, not the top one.
    let e = errors(&p);
    assert_eq!(e.len(), 1, "{}", dump(&p));
    assert!(
        e[0].span.file.ends_with("parts/net.cfg") && e[0].span.line == 1 && e[0].span.col == 26,
        "{}",
        e[0]
    );
}

#[test]
fn include_cycles_are_reported_with_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.cfg"),
        format!("{BASE}%include ./b.cfg\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("b.cfg"), "%include ./a.cfg\n").unwrap();
    let p = kickstart::parse_file(&dir.path().join("a.cfg"), dir.path()).unwrap();
    let e = errors(&p);
    assert_eq!(e.len(), 1, "{}", dump(&p));
    assert!(
        e[0].message.starts_with("include cycle:")
            && e[0].message.contains("a.cfg -> ")
            && e[0].span.file.ends_with("b.cfg"),
        "{}",
        e[0]
    );
}

#[test]
fn missing_include_is_an_error_unless_a_pre_script_may_write_it() {
    let (p, _d) = parse_text("vmaccepteula\ninstall --firstdisk\n%include /tmp/rootpw\n");
    let e = errors(&p);
    assert!(
        e.iter().any(|d| d
            .message
            .contains("cannot read included file \"/tmp/rootpw\"")
            && d.span.line == 3),
        "{}",
        dump(&p)
    );
    let (p, _d) = parse_text("vmaccepteula\ninstall --firstdisk\n%include /tmp/rootpw\n%pre --interpreter=busybox\necho 'rootpw Change-Me-2day' > /tmp/rootpw\n");
    assert!(
        !p.has_errors(),
        "rootpw may come from the include: {}",
        dump(&p)
    );
    let w = p
        .diagnostics
        .iter()
        .find(|d| d.message.contains("/tmp/rootpw"))
        .unwrap();
    assert_eq!(
        (w.severity, w.span.line, w.span.col),
        (Severity::Warning, 3, 10)
    );
    assert_eq!(p.kickstart.pending_includes[0].target, "/tmp/rootpw");
}

#[test]
fn url_includes_are_recorded_for_the_fetch_stage() {
    let (p, _d) = parse_text(
        "vmaccepteula\n%include http://deploy.example/ks/common.cfg\ninstall --firstdisk\n",
    );
    assert!(!p.has_errors(), "{}", dump(&p));
    assert_eq!(
        p.kickstart.pending_includes[0].target,
        "http://deploy.example/ks/common.cfg"
    );
}

#[test]
fn pre_scripts_run_before_includes_are_read() {
    // The runner writes the file the kickstart includes, as a %pre script would on ESXi.
    let dir = tempfile::tempdir().unwrap();
    let text = "vmaccepteula\n%include /tmp/net\ninstall --firstdisk\nrootpw 'Change-Me-2day'\n%pre --interpreter=busybox\necho network > /tmp/net\n";
    let root = dir.path().to_path_buf();
    let mut ran = Vec::new();
    let mut runner = |s: &kickstart::Script| -> Result<(), kickstart::PreFailure> {
        ran.push(s.body.clone());
        std::fs::create_dir_all(root.join("tmp")).map_err(|e| e.to_string())?;
        std::fs::write(root.join("tmp/net"), "network --bootproto=static --ip=10.0.0.5 --netmask=255.255.255.0 --gateway=10.0.0.1 --hostname=h\n").map_err(Into::into)
    };
    let mut loader = kickstart::FsLoader::new(dir.path());
    let p = kickstart::parse(
        "ks.cfg",
        "ks.cfg",
        text.as_bytes(),
        &mut loader,
        Some(&mut runner),
    );
    assert!(p.diagnostics.is_empty(), "{}", dump(&p));
    assert_eq!(ran, ["echo network > /tmp/net\n"]);
    assert_eq!(
        p.kickstart.network.unwrap().ip,
        Some("10.0.0.5".parse().unwrap())
    );
    // A failing %pre aborts, as on ESXi.
    let mut failing = |_: &kickstart::Script| -> Result<(), kickstart::PreFailure> {
        Err("exit status 1".into())
    };
    let mut loader = kickstart::FsLoader::new(dir.path());
    let p = kickstart::parse(
        "ks.cfg",
        "ks.cfg",
        text.as_bytes(),
        &mut loader,
        Some(&mut failing),
    );
    assert!(
        errors(&p).iter().any(
            |d| d.message.contains("\"%pre\" script returned with an error") && d.span.line == 5
        ),
        "{}",
        dump(&p)
    );
}

#[test]
fn more_than_256_commands_across_files_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let filler: String = (0..200).map(|_| "reboot\n").collect();
    std::fs::write(
        dir.path().join("main.cfg"),
        format!("{BASE}%include ./more.cfg\n{filler}"),
    )
    .unwrap();
    std::fs::write(dir.path().join("more.cfg"), &filler[..7 * 60]).unwrap();
    let p = kickstart::parse_file(&dir.path().join("main.cfg"), dir.path()).unwrap();
    let e: Vec<_> = errors(&p)
        .into_iter()
        .filter(|d| d.message.contains("more than 256 commands"))
        .collect();
    assert_eq!(e.len(), 1, "{}", dump(&p));
    assert!(
        e[0].span.file.ends_with("more.cfg"),
        "the 257th command is in the included file: {}",
        e[0]
    );
    // Exactly 256 is fine.
    let exactly: String = (0..251).map(|_| "reboot\n").collect();
    let (p, _d) = parse_text(&format!("{BASE}{exactly}"));
    assert!(!p
        .diagnostics
        .iter()
        .any(|d| d.message.contains("more than 256")));
}

#[test]
fn plain_password_becomes_a_sha512_hash_that_openssl_agrees_with() {
    let (p, _d) = parse_text(BASE);
    let hash = p.kickstart.root_password.unwrap().hash;
    assert!(!serde_json::to_string(&p.diagnostics)
        .unwrap()
        .contains("Change-Me-2day"));
    let salt = hash.split('$').nth(2).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["passwd", "-6", "-salt", salt, "Change-Me-2day"])
        .output()
        .expect("openssl is needed to cross-check the crypt hash (apt-get install openssl)");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), hash);
}

mod no_panic {
    use super::*;
    use proptest::prelude::*;

    fn parse_bytes(bytes: &[u8]) -> Parsed {
        let mut loader = kickstart::FsLoader::new("/nonexistent-root");
        kickstart::parse("fuzz.cfg", "fuzz.cfg", bytes, &mut loader, None)
    }

    const WORDS: &[&str] = &[
        "vmaccepteula",
        "rootpw",
        "--iscrypted",
        "install",
        "upgrade",
        "installorupgrade",
        "--firstdisk",
        "--disk=",
        "--overwritevmfs",
        "--preservevmfs",
        "clearpart",
        "--drives=",
        "part",
        "network",
        "--bootproto=static",
        "--ip=",
        "--netmask=",
        "--gateway=",
        "keyboard",
        "serialnum",
        "--esx=",
        "reboot",
        "paranoid",
        "%pre",
        "%post",
        "%firstboot",
        "%include",
        "include",
        "--interpreter=",
        "\"",
        "'",
        "\\",
        "#",
        "=",
        ",",
        "\n",
        "\r\n",
        " ",
        "\t",
        "é",
        "$6$",
        "10.0.0.1",
        "255.255.255.0",
        "vmnic0",
        "--dpuPciSlots=",
        "%end",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let p = parse_bytes(&bytes);
            for d in &p.diagnostics {
                prop_assert!(d.span.line >= 1 && d.span.col >= 1);
            }
        }

        #[test]
        fn arbitrary_token_sequences(tokens in proptest::collection::vec((0..WORDS.len(), "[ -~]{0,12}"), 0..200)) {
            let text: String = tokens.iter().map(|(i, s)| format!("{}{} ", WORDS[*i], s)).collect();
            let p = parse_bytes(text.as_bytes());
            // Whatever it is, a clean result prints and reads back clean.
            if !p.has_errors() && !p.has_warnings() {
                let again = parse_bytes(kickstart::print(&p.kickstart).as_bytes());
                prop_assert!(!again.has_errors(), "{}", dump(&again));
            }
        }
    }
}

#[test]
fn stray_words_on_a_rootpw_line_are_never_echoed() {
    let (p, _d) = parse_text(
        "vmaccepteula\nrootpw My Secret1!pass\ninstall --firstdisk\nnetwork --bootproto=dhcp\n",
    );
    let all = dump(&p);
    assert!(
        all.contains("unknown argument to command \"rootpw\""),
        "{all}"
    );
    assert!(
        !all.contains("My") && !all.contains("Secret1!pass"),
        "password fragments leaked: {all}"
    );
}

#[test]
fn paranoid_escalates_esxi_warnings_but_not_our_own_lints() {
    let (p, _d) = parse_text(&base_with(
        "paranoid\n%post --interpreter=busybox\necho x\n%end\n",
    ));
    assert!(
        !p.has_errors(),
        "ESXi accepts this under paranoid: {}",
        dump(&p)
    );
    assert!(p
        .diagnostics
        .iter()
        .any(|d| d.lint && d.message.contains("%end")));
    let (p, _d) = parse_text(&base_with("paranoid\ntimezone UTC\n"));
    assert!(
        p.diagnostics
            .iter()
            .any(|d| d.is_error() && d.message.contains("deprecated")),
        "{}",
        dump(&p)
    );
}

#[test]
fn includes_are_read_breadth_first_each_running_its_pre_when_read() {
    // ESXi's growing file list: main's includes a and b are read (and their %pre run) before a's
    // own include a1.
    let dir = tempfile::tempdir().unwrap();
    let w = |n: &str, t: &str| std::fs::write(dir.path().join(n), t).unwrap();
    w(
        "main.cfg",
        &format!("{BASE}%include ./a.cfg\n%include ./b.cfg\n%pre --interpreter=busybox\nmain\n"),
    );
    w(
        "a.cfg",
        "%include ./a1.cfg\n%pre --interpreter=busybox\na\n",
    );
    w("b.cfg", "%pre --interpreter=busybox\nb\n");
    w("a1.cfg", "%pre --interpreter=busybox\na1\n");
    let mut order = Vec::new();
    let mut runner = |s: &kickstart::Script| -> Result<(), kickstart::PreFailure> {
        order.push(s.body.trim().to_string());
        Ok(())
    };
    let mut loader = kickstart::FsLoader::new(dir.path());
    let main = dir.path().join("main.cfg");
    let bytes = std::fs::read(&main).unwrap();
    let name = main.display().to_string();
    let p = kickstart::parse(&name, &name, &bytes, &mut loader, Some(&mut runner));
    assert!(!p.has_errors(), "{}", dump(&p));
    assert_eq!(order, ["main", "a", "b", "a1"]);
}

#[test]
fn include_paths_cannot_climb_out_of_the_root() {
    let (p, _d) = parse_text(&base_with("%include /../../../etc/passwd\n"));
    let e = errors(&p);
    assert_eq!(e.len(), 1, "{}", dump(&p));
    assert!(e[0].message.contains("`..`"), "{}", e[0]);
}

#[test]
fn nothing_runs_past_the_command_limit() {
    // The %pre section ends at the %include line; the 300 commands after it exceed the limit.
    let filler: String = (0..300).map(|_| "reboot\n").collect();
    let text =
        format!("{BASE}%pre --interpreter=busybox\necho hi\n%include /nonexistent\n{filler}");
    let mut ran = false;
    let mut runner = |_: &kickstart::Script| -> Result<(), kickstart::PreFailure> {
        ran = true;
        Ok(())
    };
    let mut loader = kickstart::FsLoader::new("/nonexistent-root");
    let p = kickstart::parse(
        "ks.cfg",
        "ks.cfg",
        text.as_bytes(),
        &mut loader,
        Some(&mut runner),
    );
    assert!(
        p.diagnostics
            .iter()
            .any(|d| d.message.contains("more than 256")),
        "{}",
        dump(&p)
    );
    assert!(!ran, "%pre ran although the file was refused");
}

#[test]
fn a_post_timeout_too_large_to_hold_is_an_error() {
    let (p, _d) = parse_text(&base_with(
        "%post --interpreter=busybox --timeout=99999999999999999999\necho\n",
    ));
    assert!(
        errors(&p)
            .iter()
            .any(|d| d.message.contains("--timeout is too large")),
        "{}",
        dump(&p)
    );
}

#[test]
fn columns_are_counted_in_characters_on_long_non_ascii_lines() {
    let (p, _d) = parse_text(&base_with(&format!(
        "keyboard {} Klingoné\n",
        "é ".repeat(5000)
    )));
    let d = p
        .diagnostics
        .iter()
        .find(|d| d.message.contains("Klingoné"))
        .unwrap();
    // "keyboard " (9) + "é " x 5000 (10000) + " " (1), then the word: column 10011.
    assert_eq!(d.span.col, 9 + 2 * 5000 + 1 + 1, "{d}");
}

// ---- Issue 16, "What a new user hit" ----

/// The one diagnostic expected: its `FILE:LINE:COL: SEVERITY: ` prefix and a piece of its message.
/// Compared as the user sees it (the printed line), so the severity includes `note`.
fn only_one(p: &Parsed, line: u32, col: u32, severity: &str, says: &str) {
    assert_eq!(
        p.diagnostics.len(),
        1,
        "want one diagnostic, got:\n{}",
        dump(p)
    );
    let d = &p.diagnostics[0];
    let shown = d.to_string();
    let want = format!("{}:{line}:{col}: {severity}: ", d.span.file);
    assert!(shown.starts_with(&want), "want {want:?}, got:\n{shown}");
    assert!(shown.contains(says), "want {says:?} in:\n{shown}");
}

fn with_rootpw(pw: &str) -> String {
    format!("vmaccepteula\nrootpw {pw}\ninstall --firstdisk --overwritevmfs\nnetwork --bootproto=dhcp\n")
}

#[test]
fn a_template_placeholder_is_named_and_never_becomes_the_root_password() {
    for (pw, col, syntax) in [
        (
            "{{.Password}}",
            8,
            "a Go/Jinja template placeholder `{{...}}`",
        ),
        (
            "{{ esxi_root_password }}",
            8,
            "a Go/Jinja template placeholder `{{...}}`",
        ),
        (
            "<%= @root_password %>",
            8,
            "an ERB/EJS template tag `<%...%>`",
        ),
        ("${ROOT_PASSWORD}", 8, "a shell/Terraform variable `${...}`"),
        ("%password%", 8, "a batch-style variable `%...%`"),
        (
            "@@root_password@@",
            8,
            "a Cobbler-style substitution token `@@...@@`",
        ),
        (
            "--iscrypted {{.Hash}}",
            20,
            "a Go/Jinja template placeholder `{{...}}`",
        ),
    ] {
        let (p, _d) = parse_text(&with_rootpw(pw));
        only_one(
            &p,
            2,
            col,
            "error",
            &format!("the root password looks like {syntax}: the file was not rendered"),
        );
        assert!(p.kickstart.root_password.is_none(), "{pw}");
    }
}

#[test]
fn a_template_placeholder_in_network_or_serialnum_is_named() {
    let net = |line: &str| {
        format!(
            "vmaccepteula\nrootpw 'Change-Me-2day'\ninstall --firstdisk --overwritevmfs\n{line}\n"
        )
    };
    let (p, _d) = parse_text(&net("network --bootproto=static --ip={{.IP}} --netmask=255.255.255.0 --gateway=10.0.0.1 --hostname=h"));
    only_one(&p, 4, 28, "error", "--ip \"{{.IP}}\" looks like a Go/Jinja template placeholder `{{...}}`: the file was not rendered");
    let (p, _d) = parse_text(&net("network --bootproto=static --ip=10.0.0.5 --netmask=255.255.255.0 --gateway=10.0.0.1 --hostname=%HOSTNAME%"));
    only_one(&p, 4, 85, "error", "--hostname \"%HOSTNAME%\" looks like a batch-style variable `%...%`: the file was not rendered");
    let (p, _d) = parse_text(&base_with("serialnum --esx=@@license@@\n"));
    only_one(
        &p,
        5,
        11,
        "error",
        "looks like a Cobbler-style substitution token `@@...@@`: the file was not rendered",
    );
    // A template line ESXi would only warn about stays a warning (an error under --strict).
    let (p, _d) = parse_text(&base_with("{{ if .Reboot }}\nreboot\n{{ end }}\n"));
    only_one(&p, 5, 1, "warning", "unknown command \"{{\": the line looks like a Go/Jinja template placeholder `{{...}}`: the file was not rendered");
}

#[test]
fn a_byte_order_mark_is_dropped_with_a_note() {
    let (p, _d) = parse_text(&format!("\u{feff}{BASE}"));
    only_one(&p, 1, 1, "note", "byte order mark");
    assert!(!p.has_errors() && p.kickstart.accept_eula.is_some());
    // In an included file too.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ks.cfg"), "%include ./rest.cfg\n").unwrap();
    std::fs::write(dir.path().join("rest.cfg"), format!("\u{feff}{BASE}")).unwrap();
    let p = kickstart::parse_file(&dir.path().join("ks.cfg"), dir.path()).unwrap();
    only_one(&p, 1, 1, "note", "byte order mark");
    assert!(p.diagnostics[0].span.file.ends_with("rest.cfg"));
}

#[test]
fn a_hash_that_cuts_the_root_password_short_is_named_without_showing_it() {
    // What is left would pass every check: ESXi would silently set "Secret-Pw1".
    for (pw, col) in [("Secret-Pw1#2", 18), ("Ab#cdef1!", 10)] {
        let (p, _d) = parse_text(&with_rootpw(pw));
        only_one(
            &p,
            2,
            col,
            "error",
            "the rest of the line after `#` is a comment: quote the password",
        );
        let shown = dump(&p);
        assert!(
            !shown.contains(pw) && !shown.contains("Secret") && !shown.contains("cdef"),
            "{shown}"
        );
        assert!(p.kickstart.root_password.is_none());
    }
    // A comment after the password, with a space, is a comment.
    let (p, _d) = parse_text(&with_rootpw("'Change-Me-2day' # the root password"));
    assert!(p.diagnostics.is_empty(), "{}", dump(&p));
    // Nothing left at all: say why.
    let (p, _d) = parse_text(&with_rootpw("#Change-Me-2day"));
    only_one(
        &p,
        2,
        1,
        "error",
        "rootpw needs a password: the rest of the line after `#` is a comment: quote the password",
    );
}

#[test]
fn one_problem_gets_one_diagnostic() {
    let no_net = "vmaccepteula\nrootpw 'Change-Me-2day'\ninstall --firstdisk --overwritevmfs\n";
    let cases: [(String, u32, u32, &str, &str); 10] = [
        (base_with("%pre --interpreter=perl\necho\n"), 5, 6, "error", "invalid value \"perl\""),
        (base_with("%post --interpreter\necho\n"), 5, 7, "warning", "\"--interpreter\" to command \"%post\" is missing a value"),
        (base_with("serialnum --esx=ABCDE-12345\n"), 5, 11, "error", "invalid value \"ABCDE-12345\""),
        (base_with("serialnum --esx=\n"), 5, 11, "error", "\"--esx\" to command \"serialnum\" is missing a value; it is ignored: serialnum needs --esx"),
        (format!("{no_net}network --bootproto=dhcp --hostname='h\n"), 4, 37, "error", "no closing quotation"),
        ("vmaccepteula\nrootpw 'Change-Me-2day\ninstall --firstdisk\nnetwork --bootproto=dhcp\n".to_string(), 2, 8, "error", "no closing quotation"),
        (format!("{no_net}network --bootproto=static --ip=10.1.2.3 --netmask=255.0.255.0 --hostname=h\n"), 4, 42, "error", "not a valid netmask"),
        ("vmaccepteula\nrootpw 'Change-Me-2day'\ninstall --disk=\nnetwork --bootproto=dhcp\n".to_string(), 3, 9, "error", "\"--disk\" to command \"install\" is missing a value; it is ignored: install needs --disk (or --drive) or --firstdisk"),
        ("vmacceptula\nrootpw 'Change-Me-2day'\ninstall --firstdisk\nnetwork --bootproto=dhcp\n".to_string(), 1, 1, "error", "unknown command \"vmacceptula\": the EULA is not accepted: vmaccepteula is required"),
        ("vmaccepteula\nrootpw 'Change-Me-2day'\ninstall --ignoressd\nnetwork --bootproto=dhcp\n".to_string(), 3, 1, "error", "install needs --disk (or --drive) or --firstdisk"),
    ];
    for (text, line, col, severity, says) in cases {
        let (p, _d) = parse_text(&text);
        only_one(&p, line, col, severity, says);
    }
}
