//! The sections `%pre`, `%post`, `%firstboot`, and the lints on their bodies (kickstart
//! commands written inside a script, `%end`, commands only ESXi's own installer has).

use crate::kickstart::args::Args;
use crate::kickstart::diag::{Sink, Span};
use crate::kickstart::model::*;
use crate::kickstart::reader::Invocation;

/// A section: its options were parsed once, by the caller, so each is reported once.
pub(super) fn script(
    inv: &Invocation,
    a: &Args,
    kind: ScriptKind,
    sink: &mut Sink,
) -> Option<Script> {
    let interpreter = match a.value("interpreter") {
        Some("python") => Interpreter::Python,
        Some(_) => Interpreter::Busybox,
        None => {
            // A refused --interpreter has been reported already: one problem, one diagnostic.
            if !a.has("interpreter") && a.refused("interpreter").is_none() {
                sink.warn(
                    &inv.span,
                    format!("{} has no --interpreter; busybox is used", kind.section()),
                );
            }
            Interpreter::Busybox
        }
    };
    let body = inv.body.clone().unwrap_or_default();
    lint_body(inv, kind, &body, sink);
    Some(Script {
        kind,
        interpreter,
        timeout_secs: match a.get("timeout") {
            None => None,
            Some(o) => match o.value.as_deref().map(str::parse::<u64>) {
                Some(Ok(t)) => Some(t),
                _ => {
                    sink.error(&o.span, "--timeout is too large");
                    None
                }
            },
        },
        ignore_failure: a
            .value("ignorefailure")
            .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        body,
        span: inv.span.clone(),
    })
}

/// Commands written after a section are part of its script (spec §0.6), which is rarely what
/// the author meant: `reboot` at the end of a `%firstboot` reboots the host at its first boot.
/// ESXi says nothing; we warn, since the mistake is silent until it bites.
const KICKSTART_ONLY: &[&str] = &[
    "vmaccepteula",
    "accepteula",
    "rootpw",
    "install",
    "installorupgrade",
    "upgrade",
    "clearpart",
    "part",
    "partition",
    "network",
    "keyboard",
    "serialnum",
    "vmserialnum",
    "reboot",
    "paranoid",
    "dryrun",
];

/// Commands only ESXi's own installer environment (and ESXi) has: a `%pre` or `%post` that uses
/// them fails in ours. `%firstboot` runs on the installed ESXi, where they exist.
const ESXI_ONLY: &[&str] = &["esxcli", "localcli", "vim-cmd", "vmkfstools"];

/// What a line of a `%pre`/`%post` script uses that only ESXi's installer environment has:
/// one of [`ESXI_ONLY`] as a word (also as `/bin/esxcli`), or a path under `/vmfs/`. Comment
/// lines are skipped.
pub fn esxi_only_use(line: &str) -> Option<&'static str> {
    if line.trim_start().starts_with('#') {
        return None;
    }
    let words = line.split(|c: char| !(c.is_ascii_alphanumeric() || "-_./".contains(c)));
    for w in words {
        let name = w.rsplit('/').next().unwrap_or(w);
        if let Some(cmd) = ESXI_ONLY.iter().find(|c| **c == name) {
            return Some(cmd);
        }
    }
    line.contains("/vmfs/").then_some("/vmfs/")
}

/// The warning for a script line [`esxi_only_use`] flags.
pub fn esxi_only_message(kind: ScriptKind, what: &str) -> String {
    format!(
        "{} uses {what}, which only ESXi's own installer has: ksinstall runs {} scripts in its Linux installer environment (docs/IMAGE.md), where this line fails",
        kind.section(),
        kind.section()
    )
}

fn lint_body(inv: &Invocation, kind: ScriptKind, body: &str, sink: &mut Sink) {
    for (i, line) in body.lines().enumerate() {
        let span = Span {
            file: inv.span.file.clone(),
            line: inv
                .span
                .line
                .saturating_add(u32::try_from(i + 1).unwrap_or(u32::MAX)),
            col: 1,
        };
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some(what) = esxi_only_use(line).filter(|_| kind != ScriptKind::Firstboot) {
            sink.lint(
                &span,
                esxi_only_message(kind, what),
                Some("move it to %firstboot (it runs on the installed ESXi), or do it another way here"),
            );
        }
        if line.trim_end() == "%end" {
            sink.lint(
                &span,
                format!("`%end` does not end a section in an ESXi kickstart: it is part of the {} script", kind.section()),
                Some("remove it; a section ends at the next line starting with %pre, %post, %firstboot or %include"),
            );
        } else if line.starts_with(first)
            && KICKSTART_ONLY.contains(&first)
            && (first != "reboot" || kind != ScriptKind::Post)
        {
            sink.lint(
                &span,
                format!("\"{first}\" here runs as script text inside the {} section begun at line {}, not as a kickstart command", kind.section(), inv.span.line),
                Some("kickstart commands go before the first %pre/%post/%firstboot section"),
            );
        }
    }
}
