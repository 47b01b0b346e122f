//! The kickstart stage of a run: read it (running `%pre` only where allowed), and settle whether
//! the run is a dry run (`--dry-run`, or `dryrun` in the kickstart).

use std::path::Path;
use std::time::Instant;

use super::session::Run;
use super::{Failure, KickstartInput};
use crate::exit::Outcome;
use crate::http::Http;
use crate::kickstart::{self, Kickstart, ScriptKind};
use crate::plan::ScriptPlan;
use crate::report::StepId;
use crate::report::{Event, EventSink};

impl Run<'_> {
    pub(super) fn read_kickstart(
        &mut self,
        input: KickstartInput,
        http: &Http,
        workdir: &Path,
    ) -> Result<Kickstart, Failure> {
        let started = Instant::now();
        // Includes are files of the installer's own file system (where %pre runs and writes),
        // not of the hardware sysroot; URLs are fetched now.
        let mut loader = crate::source::fetch::InstallLoader {
            files: kickstart::FsLoader::new("/"),
            http: http.clone(),
        };
        // Which error the run ends with is decided by what failed, not by a message's words.
        let mut pre_failed = false;
        let mut records = Vec::new();
        let sink = self.sink;
        let mut runner = |s: &kickstart::Script| {
            let r = crate::apply::scripts::run(
                &ScriptPlan::of(s, &super::interpreters()),
                workdir,
                sink,
                &mut records,
            );
            pre_failed |= r.is_err();
            r.map_err(kickstart::PreFailure::from)
        };
        let pre: Option<kickstart::PreRunner<'_>> = if self.o.run_pre {
            Some(&mut runner)
        } else {
            None
        };
        let parsed = kickstart::parse(&input.name, &input.key, &input.bytes, &mut loader, pre);
        self.scripts.append(&mut records);
        for d in &parsed.diagnostics {
            self.sink.emit(Event::Diagnostic(d.clone()));
        }
        if parsed.has_errors() {
            let outcome = if pre_failed {
                Outcome::Script
            } else {
                Outcome::InvalidKickstart
            };
            return Err(Failure::new(
                StepId::Kickstart,
                outcome,
                format!("{}: the kickstart has errors", input.name),
            ));
        }
        let mut ks = parsed.kickstart;
        if let Some(span) = &ks.dryrun {
            if !self.dry_run {
                self.warn(
                    StepId::Kickstart,
                    format!("{span}: dryrun: the plan only, nothing is written"),
                );
            }
            self.dry_run = true;
        }
        self.without_pre(&mut ks)?;
        self.sink.record(StepId::Kickstart, started);
        Ok(ks)
    }

    fn warn(&self, step: StepId, message: String) {
        self.sink.emit(Event::Warning { step, message });
    }

    /// `%pre` that was not run: a real install refuses (it would install a kickstart other than
    /// the one meant); a dry run goes on without what `%pre` would have made, and says so.
    fn without_pre(&self, ks: &mut Kickstart) -> Result<(), Failure> {
        let Some(pre) = ks.scripts.iter().find(|s| s.kind == ScriptKind::Pre) else {
            return Ok(());
        };
        if self.o.run_pre {
            return Ok(());
        }
        if !self.dry_run {
            return Err(Failure::new(StepId::Kickstart,
                Outcome::Precondition,
                format!(
                    "{}: the kickstart has a %pre script, which `install` runs only with --run-pre (as root, on this machine); `ksinstall boot` runs it in the installer environment",
                    pre.span
                ),
            ));
        }
        self.warn(
            StepId::Kickstart,
            format!(
                "{}: %pre was not run (a dry run runs it only with --run-pre)",
                pre.span
            ),
        );
        for p in std::mem::take(&mut ks.pending_includes) {
            self.warn(StepId::Kickstart, format!(
                "{}: %include {} not read: %pre did not run, and it may be what makes it; the plan below is without it",
                p.span, p.target
            ));
        }
        Ok(())
    }
}
