//! What `ksinstall install` shows while it works: bars on a terminal (a real pseudo-terminal,
//! made by util-linux's `script`), plain lines with `--progress tty` when stderr is a pipe, and
//! each warning once.

mod common;

use std::process::Command;

use common::setup::Setup;
use common::text;

const KS: &str = "vmaccepteula\nrootpw --iscrypted $6$ksinstallExampl$gs0rWRb4e18QdWwUGxkYYf27pufzcgy.uh99Ch9umRYHEgzPhZjOfXvb9/6j3OBpXQpAO238CiGZZ0X5fOIg31\ninstall --firstdisk --overwritevmfs\nnetwork --bootproto=dhcp\n";

/// The plan's warning for `--disk` given with `install --firstdisk` in the kickstart.
const WARNING: &str = "the kickstart's disk choice is not used";

/// `ksinstall install` onto a 40 GB image on the `plain` fixture, with RUST_LOG unset (what a
/// user gets): the program and its arguments.
fn install_args(s: &Setup, extra: &[&str]) -> Vec<String> {
    let ks = s.ks(KS);
    let mut c = s.install_command(s.sysroot(), s.path("media").as_os_str(), &ks);
    c.arg("--disk")
        .arg(s.path("disk.img"))
        .args(["--disk-size", "40G"])
        .args(extra);
    std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn progress_tty_with_stderr_to_a_pipe_prints_plain_lines() {
    let s = Setup::new("32M");
    let a = install_args(&s, &["--progress", "tty"]);
    let out = Command::new(&a[0])
        .args(&a[1..])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(!err.contains('\x1b'), "no terminal codes on a pipe:\n{err}");
    // Each step that ran starts and ends with a line of its own, by name.
    for step in [
        "media",
        "partition",
        "bootloader",
        "bootbank",
        "verify",
        "bootcfg",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("{step}: "))
                && !l.starts_with(&format!("{step}: done in"))),
            "no start line for {step}:\n{err}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{step}: done in "))),
            "no end line for {step}:\n{err}"
        );
    }
    // The lay-down's bytes: a line per quarter passed (not one per write), the last at 100%.
    let percents: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("bootbank: ") && l.contains("% ("))
        .collect();
    assert!((2..=4).contains(&percents.len()), "{err}");
    assert!(
        percents
            .last()
            .is_some_and(|l| l.starts_with("bootbank: 100% (")),
        "{err}"
    );
    let warned: Vec<&&str> = lines.iter().filter(|l| l.contains(WARNING)).collect();
    assert_eq!(warned.len(), 1, "{err}");
    assert!(warned[0].starts_with("warning: plan: "), "{err}");
}

/// `s` without the terminal's control sequences (CSI `ESC [ ... letter`).
fn without_csi(s: &str) -> String {
    let mut plain = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        plain.push(c);
    }
    plain
}

/// The install under a pseudo-terminal (util-linux's `script`), RUST_LOG unset: what the
/// terminal received.
fn on_a_terminal(s: &Setup) -> String {
    let a = install_args(s, &[]);
    let shell: Vec<String> = a.iter().map(|w| format!("'{w}'")).collect();
    let out = Command::new("script")
        .args(["--quiet", "--return", "--command"])
        .arg(format!("stty cols 120 rows 40; {}", shell.join(" ")))
        .arg("/dev/null")
        .env_remove("RUST_LOG")
        .env("TERM", "xterm")
        .output()
        .expect("script (util-linux)");
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        screen.contains('\x1b'),
        "no bars drawn on the terminal:\n{screen}"
    );
    screen
}

/// On a terminal (bars, `--progress auto`), each warning is printed once, not again by the log.
#[test]
fn on_a_terminal_each_warning_shows_once() {
    let s = Setup::new("32M");
    let screen = on_a_terminal(&s);
    assert_eq!(
        screen.matches(WARNING).count(),
        1,
        "the warning is shown other than once:\n{screen}"
    );
    assert!(!screen.contains("WARN"), "{screen}");
}

/// On a terminal, the steps without a byte count (spinners: partition, bootcfg) show their
/// name as the bars do: `partition ⠁ done in 0.2s`.
#[test]
fn on_a_terminal_every_bar_has_its_steps_name() {
    let s = Setup::new("32M");
    let screen = without_csi(&on_a_terminal(&s));
    for step in ["partition", "bootcfg"] {
        let named = screen.match_indices(step).any(|(i, _)| {
            let rest = screen[i + step.len()..].trim_start();
            // The spinner's glyph (blank once finished), then the message.
            let rest = match rest.chars().next() {
                Some(c) if !c.is_alphanumeric() => rest[c.len_utf8()..].trim_start(),
                _ => rest,
            };
            rest.starts_with("done in")
        });
        assert!(named, "no finished bar named {step}:\n{screen}");
    }
}
