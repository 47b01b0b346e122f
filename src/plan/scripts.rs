//! The kickstart's `%post` scripts as plans: body, interpreter, timeout.

use super::*;

pub(super) fn post_plans(
    ks: &Kickstart,
    found: &Interpreters,
) -> Result<Vec<ScriptPlan>, PlanError> {
    let mut post_scripts = Vec::new();
    for s in ks.scripts.iter().filter(|s| s.kind == ScriptKind::Post) {
        let program = found.program(s.interpreter);
        if program.is_none() {
            return Err(refuse(
                Outcome::Script,
                format!(
                    "{}: %post --interpreter={} needs {} on this machine, and there is none",
                    s.span,
                    s.interpreter.name(),
                    if s.interpreter == crate::kickstart::Interpreter::Python {
                        "python3"
                    } else {
                        "/bin/sh"
                    }
                ),
            ));
        }
        post_scripts.push(ScriptPlan::of(s, found));
    }

    Ok(post_scripts)
}
