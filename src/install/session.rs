//! One run, from the boot options to the report. `install`, `boot` (scripted or the console)
//! and `interactive` all go through a [`Session`]: a stop is said the same way in every mode
//! (one `failed` event naming the step and the exit class) and `--report` is written whenever it
//! was asked for. The session prints nothing: it says everything as events, and the CLI shows
//! them.

use std::sync::Mutex;
use std::time::Instant;

use super::{
    checks, from_apply, left_behind, outcome_of, prepare, report, run_post, safe_point, save_host,
    verify_media, Ended, Failure, InstallReport, KickstartInput, Options, Prepared,
};
use crate::apply::{self, StepTiming};
use crate::exit::Outcome;
use crate::http::Http;
use crate::kickstart::Kickstart;
use crate::plan::{self, Plan};
use crate::report::{Event, EventSink, StepId};
use crate::source::cmdline::{self, BootOptions};

/// A run under way: what the caller decided, where its events go, and when it started.
pub struct Session<'a> {
    options: Options,
    sink: &'a dyn EventSink,
    started: Instant,
}

impl<'a> Session<'a> {
    /// Starts the clock: the report's `elapsed_ms` and the `finished` event count from here.
    pub fn new(options: Options, sink: &'a dyn EventSink) -> Session<'a> {
        Session {
            options,
            sink,
            started: Instant::now(),
        }
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// When the run started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The boot options: `cmdline` when given, else `proc/cmdline` below the sysroot.
    pub fn boot_options(&self, cmdline: Option<&str>) -> Result<BootOptions, Failure> {
        BootOptions::read(&self.options.sysroot, cmdline)
            .map_err(|e| Failure::new(StepId::Source, Outcome::Precondition, e.to_string()))
    }

    /// The installer environment's check of `netdevice=`/`BOOTIF=`: it must name a NIC here.
    pub fn check_netdevice(&self, boot: &BootOptions) -> Result<(), Failure> {
        cmdline::check_netdevice(&self.options.sysroot, boot)
            .map_err(|e| Failure::new(StepId::Source, Outcome::Precondition, e.to_string()))
    }

    /// What the console plans from: the machine, the media and the DPUs, read once.
    pub fn prepare(
        &self,
        boot: BootOptions,
        media_location: &str,
        http: &Http,
    ) -> Result<Prepared, Failure> {
        prepare(&self.options, boot, media_location, http)
    }

    /// A run that stopped before it had a kickstart or a plan (bad boot options, an unreadable
    /// `--ks`, no `ks=` location answering, media not found): said, and written as a report when
    /// one is asked for.
    pub fn refuse(&self, failure: &Failure) -> Outcome {
        let outcome = failure.outcome;
        fail(self.sink, failure.step, outcome, &failure.message);
        // The same check as every run's: a refusal never writes its report over a device. The
        // run has its one `failed` event already: a report that cannot be written is a warning.
        if let Err(f) = checks::report_path(&self.options) {
            self.warn_report(f.message);
            return outcome;
        }
        if let Some(path) = &self.options.report {
            let mut r = InstallReport::without_plan(None, outcome, self.options.dry_run);
            r.elapsed_ms = elapsed_ms(self.started);
            r.error = Some(report::ReportError {
                step: failure.step,
                message: failure.message.clone(),
            });
            if let Err(e) = r.write(path) {
                self.warn_report(format!("{e:#}"));
            }
        }
        outcome
    }

    fn warn_report(&self, message: String) {
        self.sink.emit(Event::Warning {
            step: StepId::Report,
            message,
        });
    }

    /// The `--report` path takes a test write (the console checks it before its first screen,
    /// so that a bad path is not found after every answer was given). When it fails, the run is
    /// refused with that failure: one `failed` event, and no report tried (nor warned about)
    /// again.
    pub fn check_report_path(&self) -> Result<(), Outcome> {
        checks::report_path(&self.options)
            .map_err(|f| fail(self.sink, f.step, f.outcome, &f.message))
    }

    /// One install from a kickstart's bytes: read it, read the hardware and the media, plan,
    /// check, write, run `%post`, report. Never returns without saying why it stopped (a
    /// `failed` event, and the report when one is asked for).
    pub fn scripted(
        &self,
        media_location: &str,
        ks: KickstartInput,
        boot: &BootOptions,
        http: &Http,
    ) -> Ended {
        let recorder = Recorder::new(self.sink);
        let mut run = Run::new(&self.options, &recorder, ks.name.clone());
        let result = run.drive(media_location, ks, boot, http);
        self.end(run, &recorder, result)
    }

    /// Carry out a plan made from `host` (the console's): the same checks, apply, `%post` and
    /// report as a scripted run. `shown`: where the progress is drawn, besides the session's
    /// own sink.
    pub fn apply_planned(
        &self,
        host: &Prepared,
        mut plan: Plan,
        kickstart_name: &str,
        shown: &dyn EventSink,
    ) -> Ended {
        let both = crate::report::webhook::Tee(vec![shown, self.sink]);
        let recorder = Recorder::new(&both);
        let mut run = Run::new(&self.options, &recorder, kickstart_name.to_string());
        plan.check_media &= !self.options.skip_media_check;
        run.reboot = plan.reboot;
        let result = checks::report_path(&self.options).and_then(|()| {
            run.report_checked = true;
            run.apply(host, plan)
        });
        self.end(run, &recorder, result)
    }

    /// The end of a run: the `failed` event when it stopped, then the report.
    fn end(
        &self,
        mut run: Run<'_>,
        recorder: &Recorder<'_>,
        mut result: Result<(), Failure>,
    ) -> Ended {
        let mut outcome = match &result {
            Ok(()) => Outcome::Success,
            Err(f) => fail(recorder, f.step, f.outcome, &f.message),
        };
        // A report path that failed its check is not tried again.
        if let Some(path) = self.options.report.as_ref().filter(|_| run.report_checked) {
            let r = run.report(outcome, recorder, result.as_ref().err(), self.started);
            match r.write(path) {
                // The path was checked before the first write; a failure now is an I/O failure
                // of a run that had succeeded, said where the run is shown (the console's screen
                // too). A run that failed already keeps its one `failed` event and its exit
                // class: the report is a warning then.
                Err(e) if result.is_ok() => {
                    let f = Failure::new(StepId::Report, Outcome::UsageOrIo, format!("{e:#}"));
                    outcome = fail(recorder, f.step, f.outcome, &f.message);
                    result = Err(f);
                }
                Err(e) => recorder.emit(Event::Warning {
                    step: StepId::Report,
                    message: format!("{e:#}"),
                }),
                Ok(()) => {}
            }
        }
        Ended {
            reboot: run.reboot.filter(|_| outcome == Outcome::Success),
            plan: run.plan,
            dry_run: run.dry_run,
            failure: result.err(),
        }
    }
}

/// Say that a run failed: the `failed` event (the CLI prints the `ksinstall: error:` line).
fn fail(sink: &dyn EventSink, step: StepId, outcome: Outcome, message: &str) -> Outcome {
    sink.emit(Event::Failed {
        step,
        message: message.into(),
        exit_code: outcome as u8,
    });
    outcome
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Passes events on and keeps the time of every finished step, for the report.
pub(super) struct Recorder<'a> {
    inner: &'a dyn EventSink,
    timings: Mutex<Vec<StepTiming>>,
    /// Every warning said on the way (a failed `%post --ignorefailure=true` among them), for
    /// the report.
    warnings: Mutex<Vec<String>>,
}

impl<'a> Recorder<'a> {
    fn new(inner: &'a dyn EventSink) -> Recorder<'a> {
        Recorder {
            inner,
            timings: Mutex::new(Vec::new()),
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// The time of a stage that has no progress events of its own (kickstart, plan): it goes
    /// into the report, not into the event stream, whose steps are documented as stable.
    pub(super) fn record(&self, step: StepId, started: Instant) {
        let mut t = self.timings.lock().unwrap_or_else(|p| p.into_inner());
        t.push(StepTiming {
            step,
            elapsed_ms: elapsed_ms(started),
        });
    }
}

impl EventSink for Recorder<'_> {
    fn emit(&self, event: Event) {
        if let Event::Warning { message, .. } = &event {
            let mut w = self.warnings.lock().unwrap_or_else(|p| p.into_inner());
            if !w.contains(message) {
                w.push(message.clone());
            }
        }
        if let Event::StepFinished { step, elapsed_ms } = &event {
            let mut t = self.timings.lock().unwrap_or_else(|p| p.into_inner());
            t.push(StepTiming {
                step: *step,
                elapsed_ms: *elapsed_ms,
            });
        }
        self.inner.emit(event);
    }
}

/// The state of one run, so that the report can say how far it got.
pub(super) struct Run<'a> {
    pub(super) o: &'a Options,
    pub(super) sink: &'a Recorder<'a>,
    name: String,
    pub(super) dry_run: bool,
    plan: Option<Plan>,
    applied: Option<apply::Applied>,
    reboot: Option<bool>,
    /// The `--report` path took a test write: the report can be written.
    report_checked: bool,
    /// What apply left the target as, once it ran.
    target: Option<report::TargetState>,
    /// The `%pre` and `%post` scripts run.
    pub(super) scripts: Vec<apply::scripts::ScriptRecord>,
}

impl<'a> Run<'a> {
    fn new(o: &'a Options, sink: &'a Recorder<'a>, name: String) -> Run<'a> {
        Run {
            o,
            sink,
            name,
            dry_run: o.dry_run,
            plan: None,
            applied: None,
            reboot: None,
            report_checked: false,
            target: None,
            scripts: Vec::new(),
        }
    }

    fn drive(
        &mut self,
        media_location: &str,
        ks: KickstartInput,
        boot: &BootOptions,
        http: &Http,
    ) -> Result<(), Failure> {
        checks::report_path(self.o)?;
        self.report_checked = true;
        checks::wait_for_entropy(self.sink);
        let workdir = tempfile::tempdir().map_err(|e| {
            Failure::new(
                StepId::Kickstart,
                Outcome::UsageOrIo,
                format!("making a scratch directory for scripts: {e}"),
            )
        })?;
        safe_point(StepId::Kickstart)?;
        let ks = self.read_kickstart(ks, http, workdir.path())?;
        safe_point(StepId::Kickstart)?;
        let host = prepare(self.o, boot.clone(), media_location, http)?;
        if let Some(path) = &self.o.save_host {
            save_host(&host.host, path)?;
        }
        safe_point(StepId::Media)?;
        let plan = self.make_plan(&ks, &host)?;
        self.reboot = plan.reboot;
        let plan = self.plan.insert(plan);
        safe_point(StepId::Plan)?;
        if self.dry_run {
            // Local media is read once in full here too, so a dry run finds a bad module.
            if plan.check_media {
                verify_media(&host.media, self.sink).map_err(|e| {
                    Failure::new(
                        StepId::Media,
                        outcome_of(&e, Outcome::Media),
                        format!("{e:#}"),
                    )
                })?;
            }
            return Ok(());
        }
        let plan = plan.clone();
        self.apply(&host, plan)
    }

    fn make_plan(&self, ks: &Kickstart, host: &Prepared) -> Result<Plan, Failure> {
        let started = Instant::now();
        let disk = super::disk_override(self.o);
        let mut inputs = plan::Inputs::new(&host.host, &self.name, ks);
        inputs.strict = self.o.strict || ks.paranoid.is_some();
        let mut plan =
            plan::make(&inputs).map_err(|e| Failure::new(StepId::Plan, e.outcome, e.message))?;
        plan.check_media &= !self.o.skip_media_check;
        checks::target_writable(&plan, disk, self.dry_run)?;
        self.sink.record(StepId::Plan, started);
        Ok(plan)
    }

    /// Carry out a plan that every check has passed: create the `--disk` image if it is new,
    /// apply (with the install record on the bank), then `%post`.
    fn apply(&mut self, host: &Prepared, plan: Plan) -> Result<(), Failure> {
        self.target = Some(report::TargetState::Untouched);
        let plan = self.plan.insert(plan);
        for w in &plan.warnings {
            self.sink.emit(Event::Warning {
                step: StepId::Plan,
                message: w.clone(),
            });
        }
        // Checked here too, not only by the scripted path's plan: the console's plans come
        // straight from `plan::make`, and a DPU may start flashing beside the lay-down.
        checks::target_writable(plan, super::disk_override(self.o), false)?;
        let created = checks::create_image(self.o)?;
        let name = self.name.clone();
        let record = |applied: &apply::Applied| {
            let mut r = InstallReport::without_plan(Some(&name), Outcome::Success, false)
                .with_plan(plan, Some(applied));
            r.timings = applied.timings.clone();
            // Plain structs of strings and numbers: serialising them cannot fail.
            serde_json::to_vec_pretty(&r).unwrap_or_default()
        };
        let applied = match apply::apply(plan, &host.media, self.sink, &self.o.access, &record) {
            Ok(a) => a,
            Err(e) => {
                // Stopped before the first write (bad media, a bad DPU payload, a signal): the
                // image made for the install goes too, as after a refused plan.
                let removed = match (
                    e.step == StepId::Media || e.step == StepId::DpuStage,
                    &created,
                ) {
                    (true, Some(p)) => std::fs::remove_file(p).is_ok(),
                    _ => false,
                };
                let mut failure = from_apply(e);
                self.target = Some(left_behind(plan, failure.step, removed, &mut failure));
                return Err(failure);
            }
        };
        self.applied = Some(applied);
        self.target = Some(report::TargetState::Written);
        let dir = tempfile::tempdir().map_err(|e| {
            Failure::new(
                StepId::Post,
                Outcome::UsageOrIo,
                format!("making a scratch directory for scripts: {e}"),
            )
        })?;
        run_post(&plan.post_scripts, dir.path(), self.sink, &mut self.scripts)
            .map_err(from_apply)?;
        log::info!(
            "{} ESXi {} on {} ({})",
            match plan.kind {
                plan::RunKind::Install => "installed",
                plan::RunKind::Upgrade => "upgraded to",
            },
            plan.media.build,
            plan.target.name,
            plan.target.path.display()
        );
        Ok(())
    }

    /// The report of how far the run got.
    fn report(
        &mut self,
        outcome: Outcome,
        recorder: &Recorder<'_>,
        error: Option<&Failure>,
        started: Instant,
    ) -> InstallReport {
        let mut r = InstallReport::without_plan(Some(&self.name), outcome, self.dry_run);
        if let Some(p) = &self.plan {
            r = r.with_plan(p, self.applied.as_ref());
        }
        r.elapsed_ms = elapsed_ms(started);
        r.timings =
            std::mem::take(&mut *recorder.timings.lock().unwrap_or_else(|p| p.into_inner()));
        r.target_state = self.target;
        r.scripts = std::mem::take(&mut self.scripts);
        for w in std::mem::take(&mut *recorder.warnings.lock().unwrap_or_else(|p| p.into_inner())) {
            if !r.warnings.contains(&w) {
                r.warnings.push(w);
            }
        }
        r.error = error.map(|f| report::ReportError {
            step: f.step,
            message: f.message.clone(),
        });
        r
    }
}
