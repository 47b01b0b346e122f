//! `keyboard`: a layout ESXi knows, or a keymap file name.

use crate::kickstart::args::Args;
use crate::kickstart::diag::{did_you_mean, Sink, Span};
use crate::kickstart::grammar::KEYBOARDS;
use crate::kickstart::model::Keyboard;

pub(super) fn keyboard(a: &Args, span: Span, sink: &mut Sink) -> Option<Keyboard> {
    let arg = a.positional.as_ref()?;
    if let Some(known) = KEYBOARDS.iter().find(|k| k.eq_ignore_ascii_case(&arg.text)) {
        return Some(Keyboard {
            layout: known.to_string(),
            span,
        });
    }
    if arg.text.ends_with(".map.gz") {
        // A keymap file name; which files ESXi ships is not listed in our sources.
        return Some(Keyboard {
            layout: arg.text.clone(),
            span,
        });
    }
    let joined: Vec<&str> = a
        .extras
        .iter()
        .map(|e| e.text.as_str())
        .chain(std::iter::once(arg.text.as_str()))
        .collect();
    let joined = joined.join(" ");
    let msg = format!(
        "keyboard layout \"{}\" is not known; the default (US Default) is used",
        arg.text
    );
    match KEYBOARDS.iter().find(|k| k.eq_ignore_ascii_case(&joined)) {
        Some(k) => sink.warn_help(
            &arg.span,
            msg,
            format!("quote names with spaces: keyboard '{k}'"),
        ),
        None => match did_you_mean(&arg.text, KEYBOARDS.iter().copied()) {
            Some(k) => sink.warn_help(&arg.span, msg, format!("did you mean '{k}'?")),
            None => sink.warn(&arg.span, msg),
        },
    }
    None
}
