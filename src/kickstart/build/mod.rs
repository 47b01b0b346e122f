//! Turns checked command lines into the typed `Kickstart`, applying the rules a table cannot
//! express: the one action command, required commands, passwords, networks, disks, DPU slots.
//!
//! By command family: `rootpw.rs` (the root password), `disk.rs` (the action command,
//! `clearpart`, `part`), `network.rs`, `keyboard.rs`, `scripts.rs` (`%pre`, `%post`,
//! `%firstboot` and the lints on their bodies), `shared.rs` (what several use); the dispatch and
//! the once-only rules here.

mod disk;
mod keyboard;
mod network;
mod rootpw;
mod scripts;
mod shared;

use std::collections::HashMap;

use super::args;
use super::diag::{Sink, Span};
use super::grammar::{Build, Occurs};
use super::model::*;
use super::reader::{Invocation, Visitor};

use disk::{action, clearpart, part};
use keyboard::keyboard;
use network::network;
use rootpw::{rootpw, rootpw_placeholder};
use scripts::script;
pub use scripts::{esxi_only_message, esxi_only_use};
use shared::needs;

#[derive(Default)]
pub struct Builder {
    pub ks: Kickstart,
    /// Commands already seen, for the once-only rules.
    seen: HashMap<&'static str, Span>,
}

impl Builder {
    /// Whether the command (by its canonical name) was written anywhere.
    pub fn seen(&self, command: &str) -> bool {
        self.seen.contains_key(command)
    }
}

impl Visitor for Builder {
    fn pre_script(&mut self, inv: &Invocation, sink: &mut Sink) -> Option<Script> {
        let a = args::parse(inv, sink);
        let s = script(inv, &a, ScriptKind::Pre, sink)?;
        self.ks.scripts.push(s.clone());
        Some(s)
    }

    fn pending_include(&mut self, target: String, span: Span) {
        self.ks
            .pending_includes
            .push(PendingInclude { target, span });
    }

    fn command(&mut self, inv: &Invocation, sink: &mut Sink) {
        let spec = inv.spec;
        let upgrading = matches!(
            self.ks.action,
            Some(Action {
                kind: ActionKind::Upgrade,
                ..
            })
        );
        if upgrading && spec.invalidated_by_upgrade {
            sink.warn(
                &inv.span,
                format!("command \"{}\" is ignored when upgrading", spec.name),
            );
            return;
        }
        if let Some(first) = self.seen.get(spec.name) {
            match spec.occurs {
                Occurs::Once => sink.warn(
                    &inv.span,
                    format!("command \"{}\" is given more than once (first at line {}); the last one is used", spec.name, first.line),
                ),
                Occurs::OnceStrict => {
                    sink.error(&inv.span, format!("command \"{}\" is given more than once (first at {first})", spec.name));
                    return;
                }
                Occurs::Many => {}
            }
        }
        self.seen
            .entry(spec.name)
            .or_insert_with(|| inv.span.clone());
        if spec.name == "rootpw" && rootpw_placeholder(inv, sink) {
            self.ks.root_password = None;
            return;
        }
        let a = args::parse(inv, sink);
        let span = inv.span.clone();
        match spec.build {
            Build::Eula => self.ks.accept_eula = Some(span),
            Build::Rootpw => self.ks.root_password = rootpw(inv, &a, sink),
            Build::Action => {
                if let Some(other) = &self.ks.action {
                    sink.error_help(
                        &span,
                        format!(
                            "\"{}\" cannot be used with \"{}\" (at {}): there can be only one",
                            spec.name,
                            other.kind.command(),
                            other.span
                        ),
                        "a kickstart has exactly one of install, upgrade and installorupgrade",
                    );
                    return;
                }
                self.ks.action = action(spec.name, &a, span, sink);
            }
            Build::Clearpart => {
                if let Some(c) = clearpart(&a, span) {
                    self.ks.clearpart.push(c);
                }
            }
            Build::Part => {
                if let Some(p) = part(&a, span, sink) {
                    self.ks.parts.push(p);
                }
            }
            Build::Network => self.ks.network = network(&a, span, sink),
            Build::Keyboard => self.ks.keyboard = keyboard(&a, span, sink),
            Build::Serialnum => match a.value("esx") {
                Some(esx) => {
                    self.ks.serial_number = Some(SerialNumber {
                        esx: esx.to_string(),
                        span,
                    })
                }
                None => needs(
                    &a,
                    &["esx"],
                    &span,
                    "serialnum needs --esx",
                    "serialnum --esx=XXXXX-XXXXX-XXXXX-XXXXX-XXXXX",
                    sink,
                ),
            },
            Build::Reboot => {
                self.ks.reboot = Some(Reboot {
                    no_eject: a.has("noeject"),
                    span,
                })
            }
            Build::Paranoid => self.ks.paranoid = Some(span),
            Build::Dryrun => self.ks.dryrun = Some(span),
            Build::PartitionEmbed => self.ks.partition_embed = Some(span),
            Build::PostScript => {
                if let Some(s) = script(inv, &a, ScriptKind::Post, sink) {
                    self.ks.scripts.push(s);
                }
            }
            Build::FirstbootScript => {
                if let Some(s) = script(inv, &a, ScriptKind::Firstboot, sink) {
                    self.ks.scripts.push(s);
                }
            }
            Build::ByReader | Build::Ignored => {}
        }
    }
}
