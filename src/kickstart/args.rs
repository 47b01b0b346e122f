//! Arguments of one command line checked against the grammar table: `--key=value` split at the
//! first `=`, case-insensitive option names, value patterns, duplicates, deprecated and refused
//! options, exclusive pairs, and the positional argument (the last word that is not an option).

use super::diag::{did_you_mean, Severity, Sink, Span};
use super::grammar::{pattern_hint, pattern_matches, CommandSpec, OptSpec, Positional, Value};
use super::reader::{Arg, Invocation};
use super::template;

/// One option as given: canonical name, its value (the default for a bare optional option).
#[derive(Debug, Clone)]
pub(crate) struct OptVal {
    pub name: &'static str,
    pub value: Option<String>,
    pub span: Span,
}

#[derive(Debug, Default)]
pub struct Args {
    pub opts: Vec<OptVal>,
    pub positional: Option<Arg>,
    /// Words that were neither options nor the positional argument (already warned about).
    pub extras: Vec<Arg>,
    /// Options given but refused (no value, or a value of the wrong form), with the index of
    /// the diagnostic that said so: a rule that needs the option points there instead of
    /// reporting it missing as well.
    pub refused: Vec<(&'static str, usize)>,
}

impl Args {
    pub fn get(&self, name: &str) -> Option<&OptVal> {
        self.opts.iter().find(|o| o.name == name)
    }
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|o| o.value.as_deref())
    }
    /// The diagnostic that refused option `name`, if it was given and refused.
    pub fn refused(&self, name: &str) -> Option<usize> {
        self.refused
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, i)| *i)
    }
}

/// Options ESXi refuses outright on some commands (spec §1.2).
fn refused(command: &str, option: &str) -> Option<&'static str> {
    match (command, option.to_ascii_lowercase().as_str()) {
        ("installorupgrade", "ignoressd") => {
            Some("\"--ignoressd\" is not valid with installorupgrade")
        }
        ("upgrade", "bootdiskmarker") => {
            Some("\"--bootDiskMarker\" is not implemented by the ESXi installer")
        }
        _ => None,
    }
}

const MEDIA_WORDS: [&str; 4] = ["cdrom", "usb", "nfs", "url"];

pub fn parse(inv: &Invocation, sink: &mut Sink) -> Args {
    let spec = inv.spec;
    let cmd = spec.name;
    let mut args = Args::default();
    let mut loose: Vec<&Arg> = Vec::new();
    for arg in &inv.args {
        let Some(body) = arg.text.strip_prefix("--") else {
            loose.push(arg);
            continue;
        };
        let (key, value) = match body.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (body, None),
        };
        if let Some(why) = refused(cmd, key) {
            sink.error(&arg.span, why);
            continue;
        }
        let Some(opt) = spec.option(key) else {
            loose.push(arg);
            continue;
        };
        if opt.deprecated {
            sink.warn(
                &arg.span,
                format!("argument \"--{key}\" to command \"{cmd}\" is deprecated and ignored"),
            );
            continue;
        }
        let Some(value) = option_value(cmd, opt, value, arg, &mut args, sink) else {
            continue;
        };
        add_option(cmd, opt, value, arg, &mut args, sink);
    }
    check_combinations(inv, &args, sink);
    take_positional(spec, &mut loose, &mut args, sink);
    report_loose(spec, loose, &mut args, sink);
    args
}

/// The value option `opt` keeps: `None` when the option is refused (said, and recorded in
/// `args.refused`), `Some(None)` for an option without a value.
fn option_value(
    cmd: &str,
    opt: &OptSpec,
    value: Option<String>,
    arg: &Arg,
    args: &mut Args,
    sink: &mut Sink,
) -> Option<Option<String>> {
    let value = match (opt.value, value) {
        (Value::None, Some(_)) => {
            sink.warn(&arg.span, format!("argument \"--{}\" to command \"{cmd}\" does not take a value; the value is ignored", opt.name));
            None
        }
        (Value::None, None) => None,
        (Value::Required(_), None) => {
            sink.warn_help(
                &arg.span,
                format!(
                    "argument \"--{}\" to command \"{cmd}\" is missing a value; it is ignored",
                    opt.name
                ),
                format!("write it as --{}=VALUE", opt.name),
            );
            args.refused.push((opt.name, sink.items.len() - 1));
            return None;
        }
        (Value::Required(_), Some(v)) if v.is_empty() => {
            sink.warn(
                &arg.span,
                format!(
                    "argument \"--{}\" to command \"{cmd}\" is missing a value; it is ignored",
                    opt.name
                ),
            );
            args.refused.push((opt.name, sink.items.len() - 1));
            return None;
        }
        (Value::Optional { default, .. }, None) => Some(default.to_string()),
        (Value::Required(p) | Value::Optional { pattern: p, .. }, Some(v)) => {
            if !pattern_matches(p, &v) {
                let why = match template::find_open(&v) {
                    Some((_, t)) => format!("it {}", t.explain()),
                    None => format!("expected {}", pattern_hint(p)),
                };
                let msg = format!(
                    "argument \"--{}\" to command \"{cmd}\" has an invalid value \"{v}\": {why}",
                    opt.name
                );
                sink.push(opt.bad_value, &arg.span, msg);
                if let (Severity::Warning, Some(d)) = (opt.bad_value, sink.items.last_mut()) {
                    d.message.push_str("; it is ignored");
                }
                args.refused.push((opt.name, sink.items.len() - 1));
                return None;
            }
            Some(v)
        }
    };
    Some(value)
}

/// Record the option; given twice, the last one is kept (and the repeat reported).
fn add_option(
    cmd: &str,
    opt: &OptSpec,
    value: Option<String>,
    arg: &Arg,
    args: &mut Args,
    sink: &mut Sink,
) {
    if let Some(i) = args.opts.iter().position(|o| o.name == opt.name) {
        sink.push(
            opt.duplicate,
            &arg.span,
            format!(
                "argument \"--{}\" to command \"{cmd}\" is given more than once",
                opt.name
            ),
        );
        if let (Severity::Warning, Some(d)) = (opt.duplicate, sink.items.last_mut()) {
            d.message.push_str("; the last one is used");
        }
        args.opts.remove(i);
    }
    args.opts.push(OptVal {
        name: opt.name,
        value,
        span: arg.span.clone(),
    });
}

/// Options that exclude each other, and "one of these is required".
fn check_combinations(inv: &Invocation, args: &Args, sink: &mut Sink) {
    let spec = inv.spec;
    let cmd = spec.name;
    for (a, b) in spec.exclusive {
        if let (Some(x), Some(y)) = (args.get(a), args.get(b)) {
            let later = if x.span > y.span { x } else { y };
            sink.error(
                &later.span,
                format!("\"--{a}\" is invalid when used with argument \"--{b}\""),
            );
        }
    }
    if !spec.one_of.is_empty() && !spec.one_of.iter().any(|o| args.has(o)) {
        let names: Vec<String> = spec.one_of.iter().map(|o| format!("--{o}")).collect();
        sink.error(
            &inv.span,
            format!(
                "{cmd} requires one of the following arguments: {}",
                names.join(", ")
            ),
        );
    }
}

/// The positional argument is the last loose word (ESXi: "the password is the last token");
/// ESX 4's install media words are dropped with a warning.
fn take_positional(spec: &CommandSpec, loose: &mut Vec<&Arg>, args: &mut Args, sink: &mut Sink) {
    let cmd = spec.name;
    match spec.positional {
        Positional::Required(_) => {
            args.positional = loose.pop().cloned();
        }
        Positional::DeprecatedMedia => {
            loose.retain(|a| {
                let media = MEDIA_WORDS.contains(&a.text.as_str());
                if media {
                    sink.warn(&a.span, format!("install media \"{}\" given to \"{cmd}\" is deprecated ESX 4 syntax and ignored", a.text));
                }
                !media
            });
        }
        Positional::None => {}
    }
}

/// Words that are neither options nor the positional argument: each an unknown argument, or
/// all together one unrendered template placeholder.
fn report_loose(spec: &CommandSpec, loose: Vec<&Arg>, args: &mut Args, sink: &mut Sink) {
    let cmd = spec.name;
    if cmd != "rootpw" {
        let joined: Vec<&str> = loose.iter().map(|a| a.text.as_str()).collect();
        let joined = joined.join(" ");
        if let (Some(first), Some((_, p))) = (loose.first(), template::find(&joined)) {
            // `install {{ .Param "disk" }}`: one unrendered placeholder, not four unknown words.
            sink.warn_help(
                &first.span,
                format!(
                    "unknown arguments \"{joined}\" to command \"{cmd}\": the text {}",
                    p.explain()
                ),
                "render the template with its tool first, then validate the result",
            );
            args.extras.extend(loose.into_iter().cloned());
            return;
        }
    }
    for a in loose {
        if cmd == "rootpw" {
            // A stray word on a rootpw line is most likely part of an unquoted password: never
            // echo it.
            sink.warn_help(
                &a.span,
                "unknown argument to command \"rootpw\" (not shown: it may be part of the password)",
                "quote a password that holds spaces or `#`: rootpw 'my pass#word'",
            );
            args.extras.push(a.clone());
            continue;
        }
        let msg = format!("unknown argument \"{}\" to command \"{cmd}\"", a.text);
        let guess = a
            .text
            .strip_prefix("--")
            .map(|k| k.split('=').next().unwrap_or(k))
            .and_then(|k| {
                did_you_mean(
                    k,
                    spec.options
                        .iter()
                        .flat_map(|o| std::iter::once(o.name).chain(o.aliases.iter().copied())),
                )
            });
        match guess {
            Some(g) => sink.warn_help(&a.span, msg, format!("did you mean `--{g}`?")),
            None => sink.warn(&a.span, msg),
        }
        args.extras.push(a.clone());
    }
}
