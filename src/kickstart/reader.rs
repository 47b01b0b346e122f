//! Reading kickstart files the way ESXi's installer does: CRLF to LF, one physical line at a time,
//! section bodies up to the next section line (there is no `%end`), `%include` resolution with
//! cycle detection, the 256-command limit, and the evaluation order: `%pre` first (run while
//! reading, so it can write files that are included), then includes, then the action command, then
//! everything else (spec §0.5). Commands are handed to `build/` in that order.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::diag::{did_you_mean, Sink, Span};
use super::grammar::{self, CommandSpec, Kind, SECTION_ENDS};
use super::model::Script;
use super::template;
use crate::words;

/// ESXi counts every command across all included files and stops past this many.
pub(crate) const COMMAND_LIMIT: usize = 256;

/// What an `%include` names, already resolved against the including file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncludeTarget {
    /// An absolute path on the installer's own file system (`/tmp/networkconfig`).
    Installer(String),
    /// A path relative to the including file (`./net.cfg`), joined with that file's location.
    Relative(String),
    /// A URL, fetched by the source stage.
    Url(String),
}

/// What the caller could do with an include.
pub enum Loaded {
    /// The bytes, the name to use for the file in diagnostics, and a key that is the same for
    /// every way of naming the same file (a canonical path or the URL), for cycle detection.
    File {
        name: String,
        key: String,
        bytes: Vec<u8>,
    },
    /// Nothing there (yet).
    NotFound,
    /// Not fetched now (a URL while validating offline): recorded for the fetch stage.
    Deferred,
    /// Reading failed.
    Failed(String),
}

/// How includes are read: files below a root, URLs through the source stage. Supplied by the
/// caller so that this stage never reaches up into the sources.
pub trait IncludeLoader {
    fn load(&mut self, target: &IncludeTarget) -> Loaded;
}

/// Runs a `%pre` script while the kickstart is read. Returning `Err` aborts, as ESXi does.
pub type PreRunner<'a> = &'a mut dyn FnMut(&Script) -> Result<(), PreFailure>;

/// Why a `%pre` script failed, as the runner says it (the runner belongs to a later stage, whose
/// error type this stage does not name); only its message is shown, in the diagnostic.
pub type PreFailure = Box<dyn std::error::Error + Send + Sync>;

/// One argument word of a command line.
#[derive(Debug, Clone)]
pub(crate) struct Arg {
    pub text: String,
    pub span: Span,
}

/// One command line (or section header) as written.
#[derive(Debug, Clone)]
pub(crate) struct Invocation {
    pub spec: &'static CommandSpec,
    pub span: Span,
    pub args: Vec<Arg>,
    /// For sections: the body, byte for byte.
    pub body: Option<String>,
    /// The `#` comment that ended the line, if any.
    pub comment: Option<LineComment>,
}

/// A `#` comment on a command line: where it starts, and whether it cut the last word short
/// (`rootpw abc#def` sets `abc`).
#[derive(Debug, Clone)]
pub(crate) struct LineComment {
    pub span: Span,
    pub in_word: bool,
}

struct FileItems {
    items: Vec<Invocation>,
}

/// The four passes of ESXi's evaluation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Pre,
    Include,
    Action,
    Rest,
}

pub(crate) fn pass_of(spec: &CommandSpec) -> Pass {
    match spec.name {
        "%pre" => Pass::Pre,
        "%include" => Pass::Include,
        n if grammar::ACTION_COMMANDS.contains(&n) => Pass::Action,
        _ => Pass::Rest,
    }
}

/// Receives each command in evaluation order.
pub(crate) trait Visitor {
    fn command(&mut self, inv: &Invocation, sink: &mut Sink);
    /// A `%pre` section, built, before it runs.
    fn pre_script(&mut self, inv: &Invocation, sink: &mut Sink) -> Option<Script>;
    fn pending_include(&mut self, target: String, span: Span);
}

pub(crate) struct Reader<'a> {
    loader: &'a mut dyn IncludeLoader,
    pre_runner: Option<PreRunner<'a>>,
    pub sink: Sink,
    /// Names of the files read, in the order they were added.
    pub files: Vec<Arc<str>>,
    command_count: usize,
    limit_reported: bool,
    saw_pre: bool,
    pub pending: bool,
    unknown_seen: HashSet<String>,
    /// Commands (canonical names) on lines that could not be split into words: written, so not
    /// to be reported as missing too.
    pub broken: HashSet<&'static str>,
    /// Commands (canonical names) an unknown command was probably meant to be, with the index
    /// of its warning in the sink: a missing required command turns that warning into the error.
    pub misspelled: HashMap<&'static str, usize>,
    pub aborted: bool,
    loaded: Vec<FileItems>,
}

impl<'a> Reader<'a> {
    pub fn new(loader: &'a mut dyn IncludeLoader, pre_runner: Option<PreRunner<'a>>) -> Self {
        Reader {
            loader,
            pre_runner,
            sink: Sink::default(),
            files: Vec::new(),
            command_count: 0,
            limit_reported: false,
            saw_pre: false,
            pending: false,
            unknown_seen: HashSet::new(),
            broken: HashSet::new(),
            misspelled: HashMap::new(),
            aborted: false,
            loaded: Vec::new(),
        }
    }

    /// Read the top file and everything it includes, calling `v` in ESXi's evaluation order.
    /// `key` identifies the file as the loader's keys do.
    ///
    /// ESXi walks a growing list of files: the include pass goes through the list in order, and
    /// a file added by `%include` joins the end of the list after catching up on `%pre` at once.
    /// So includes are read breadth-first, each file's `%pre` running as soon as it is read.
    pub fn run(&mut self, name: &str, key: &str, bytes: &[u8], v: &mut dyn Visitor) {
        let mut queue = std::collections::VecDeque::new();
        if let Some(includes) = self.file(name, bytes, v) {
            queue.push_back((Arc::<str>::from(name), vec![key.to_string()], includes));
        }
        while let Some((from, chain, includes)) = queue.pop_front() {
            for inv in &includes {
                if self.aborted {
                    return;
                }
                if let Some(next) = self.include(&from, &chain, inv, v) {
                    queue.push_back(next);
                }
            }
        }
        for pass in [Pass::Action, Pass::Rest] {
            if self.aborted {
                return;
            }
            for f in &self.loaded {
                for inv in f.items.iter().filter(|i| pass_of(i.spec) == pass) {
                    v.command(inv, &mut self.sink);
                }
            }
        }
    }

    /// Read one file: split it, run its `%pre` sections, keep its commands; returns its
    /// `%include` lines (`None` when reading stopped).
    fn file(&mut self, name: &str, bytes: &[u8], v: &mut dyn Visitor) -> Option<Vec<Invocation>> {
        let name: Arc<str> = Arc::from(name);
        self.files.push(name.clone());
        let items = self.split(&name, bytes);
        if self.aborted {
            // Past the command limit nothing more runs, %pre included.
            return None;
        }
        for inv in items.iter().filter(|i| pass_of(i.spec) == Pass::Pre) {
            self.saw_pre = true;
            let Some(script) = v.pre_script(inv, &mut self.sink) else {
                continue;
            };
            if let Some(run) = self.pre_runner.as_mut() {
                if let Err(why) = run(&script) {
                    self.sink.error(
                        &inv.span,
                        format!("\"%pre\" script returned with an error: {why}"),
                    );
                    self.aborted = true;
                    return None;
                }
            }
        }
        let includes: Vec<Invocation> = items
            .iter()
            .filter(|i| pass_of(i.spec) == Pass::Include)
            .cloned()
            .collect();
        self.loaded.push(FileItems { items });
        Some(includes)
    }

    /// Resolve and read one `%include`; a file read is returned for the include pass to visit.
    fn include(
        &mut self,
        from: &str,
        chain: &[String],
        inv: &Invocation,
        v: &mut dyn Visitor,
    ) -> Option<(Arc<str>, Vec<String>, Vec<Invocation>)> {
        for extra in inv.args.iter().skip(1) {
            self.sink.warn(
                &extra.span,
                format!(
                    "unknown argument \"{}\" to command \"%include\"",
                    extra.text
                ),
            );
        }
        let Some(arg) = inv.args.first() else {
            self.sink.error(&inv.span, "%include needs a file name");
            return None;
        };
        // A file fetched over HTTP is named without the password its URL may carry; a relative
        // include is resolved against the URL itself (its key), credentials and all.
        let base: &str = match chain.last() {
            Some(key) if key.contains("://") => key,
            _ => from,
        };
        let target = resolve(base, &arg.text);
        let raw = match &target {
            IncludeTarget::Installer(p) | IncludeTarget::Relative(p) | IncludeTarget::Url(p) => {
                p.clone()
            }
        };
        let shown = crate::http::redact(&raw);
        match self.loader.load(&target) {
            Loaded::File { name, key, bytes } => {
                if chain.contains(&key) {
                    let mut cycle: Vec<String> =
                        chain.iter().map(|k| crate::http::redact(k)).collect();
                    cycle.push(crate::http::redact(&key));
                    self.sink
                        .error(&arg.span, format!("include cycle: {}", cycle.join(" -> ")));
                    return None;
                }
                let includes = self.file(&name, &bytes, v)?;
                let mut chain = chain.to_vec();
                chain.push(key);
                Some((Arc::from(name.as_str()), chain, includes))
            }
            Loaded::Deferred => {
                self.sink.lint(
                    &arg.span,
                    format!("included \"{shown}\" is fetched at install time; the commands it holds are not checked now"),
                    None,
                );
                self.pending = true;
                v.pending_include(raw, arg.span.clone());
                None
            }
            Loaded::NotFound if self.saw_pre => {
                self.sink.lint(
                    &arg.span,
                    format!("included file \"{shown}\" does not exist now; a %pre script may create it at install time, so the commands it may hold are not reported as missing"),
                    Some("check the %pre script that writes it; `ksinstall validate --root DIR` reads absolute includes below DIR"),
                );
                self.pending = true;
                v.pending_include(raw, arg.span.clone());
                None
            }
            Loaded::NotFound => {
                self.sink.error_help(
                    &arg.span,
                    format!("cannot read included file \"{shown}\": no such file"),
                    "paths starting with `.` are relative to the including file; other paths are absolute on the installer",
                );
                None
            }
            Loaded::Failed(why) => {
                self.sink.error(
                    &arg.span,
                    format!("cannot read included file \"{shown}\": {why}"),
                );
                None
            }
        }
    }

    /// Split one file into command lines and sections.
    fn split(&mut self, name: &Arc<str>, bytes: &[u8]) -> Vec<Invocation> {
        let text = decode(name, bytes, &mut self.sink);
        let mut items: Vec<Invocation> = Vec::new();
        // Byte offset where the open section's body starts.
        let mut body_start: Option<usize> = None;
        let mut offset = 0usize;
        for (index, raw) in text.split_inclusive('\n').enumerate() {
            let line_start = offset;
            offset += raw.len();
            let line = raw.strip_suffix('\n').unwrap_or(raw);
            let lineno = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let spans = LineSpans::new(name, line, lineno);
            if let Some(i) = line.find(|c: char| !c.is_ascii()) {
                self.sink
                    .warn(&spans.at(i), "script file contains a non-ASCII character");
            }
            if let Some(start) = body_start {
                if !SECTION_ENDS.iter().any(|m| line.starts_with(m)) {
                    continue;
                }
                close_body(&mut items, &text[start..line_start]);
                body_start = None;
            }
            match self.read_line(line, &spans) {
                LineRead::Nothing => {}
                LineRead::Stop => break,
                LineRead::Item(inv) => {
                    // A section's body runs from the next line to its end marker.
                    if inv.body.is_some() {
                        body_start = Some(offset);
                    }
                    items.push(inv);
                }
            }
        }
        if let Some(start) = body_start {
            close_body(&mut items, &text[start..]);
        }
        // Deprecated sections have been warned about; nothing else uses them.
        items.retain(|i| i.spec.kind != Kind::DeprecatedSection);
        items
    }

    /// One line outside a section body: its words, comment and command, or nothing (blank,
    /// unreadable, unknown, ignored), or the end of reading (past the command limit).
    fn read_line(&mut self, line: &str, spans: &LineSpans) -> LineRead {
        let (words, comment) = match words::split_line(line) {
            Ok(l) => (l.words, l.comment),
            Err(e) => {
                self.unreadable(line, &e, &spans.at(e.offset));
                return LineRead::Nothing;
            }
        };
        let comment = comment.map(|c| LineComment {
            span: spans.at(c.offset),
            in_word: c.in_word,
        });
        let Some((first, rest)) = words.split_first() else {
            return LineRead::Nothing;
        };
        let span = spans.at(first.offset);
        self.command_count += 1;
        if self.command_count > COMMAND_LIMIT {
            if !self.limit_reported {
                self.sink.error(
                    &span,
                    format!("more than {COMMAND_LIMIT} commands (counting included files); ESXi stops here"),
                );
                self.limit_reported = true;
            }
            // Stop reading: ESXi refuses the whole file past the limit.
            self.aborted = true;
            return LineRead::Stop;
        }
        let Some(spec) = grammar::lookup(&first.text) else {
            if self.unknown_seen.insert(first.text.clone()) {
                self.unknown(&first.text, line, &span);
            }
            return LineRead::Nothing;
        };
        let args: Vec<Arg> = rest
            .iter()
            .map(|w| Arg {
                text: w.text.clone(),
                span: spans.at(w.offset),
            })
            .collect();
        let invocation = |body| Invocation {
            spec,
            span: span.clone(),
            args,
            body,
            comment,
        };
        match spec.kind {
            Kind::Deprecated => {
                self.sink.warn(
                    &span,
                    format!(
                        "command \"{}\" is deprecated and should not be used; it is ignored",
                        first.text
                    ),
                );
                LineRead::Nothing
            }
            Kind::Unused => {
                self.sink.warn(
                    &span,
                    format!(
                        "command \"{}\" is currently unused; it is ignored",
                        first.text
                    ),
                );
                LineRead::Nothing
            }
            Kind::DeprecatedSection => {
                self.sink.warn(
                    &span,
                    format!(
                        "section \"{}\" is deprecated and should not be used; it is ignored",
                        first.text
                    ),
                );
                LineRead::Item(invocation(Some(String::new())))
            }
            Kind::Section => LineRead::Item(invocation(Some(String::new()))),
            Kind::Command => LineRead::Item(invocation(None)),
        }
    }
}

/// What one line outside a section body gives.
enum LineRead {
    Nothing,
    Item(Invocation),
    Stop,
}

/// Spans on one line, columns in characters. Offsets asked for only grow along a line, so the
/// count is carried forward instead of recounted from the line start (linear, not quadratic).
struct LineSpans<'a> {
    file: &'a Arc<str>,
    line: &'a str,
    lineno: u32,
    ascii: bool,
    /// The last byte offset asked for and its character count.
    counted: std::cell::Cell<(usize, usize)>,
}

impl<'a> LineSpans<'a> {
    fn new(file: &'a Arc<str>, line: &'a str, lineno: u32) -> Self {
        LineSpans {
            file,
            line,
            lineno,
            ascii: line.is_ascii(),
            counted: std::cell::Cell::new((0, 0)),
        }
    }

    fn at(&self, byte: usize) -> Span {
        let chars = if self.ascii {
            byte
        } else {
            let (from, n) = self.counted.get();
            let n = if byte >= from {
                n + self.line.get(from..byte).map_or(0, |t| t.chars().count())
            } else {
                self.line.get(..byte).map_or(0, |t| t.chars().count())
            };
            self.counted.set((byte, n));
            n
        };
        Span {
            file: self.file.clone(),
            line: self.lineno,
            col: u32::try_from(chars + 1).unwrap_or(u32::MAX),
        }
    }
}

impl Reader<'_> {
    /// A line that cannot be split into words. Its command was written all the same, so it is
    /// not reported missing as well.
    fn unreadable(&mut self, line: &str, e: &words::LexError, span: &Span) {
        self.sink
            .error(span, format!("cannot read this line: {}", e.message));
        let first = line
            .get(..e.offset)
            .and_then(|head| words::split(head).ok())
            .and_then(|w| w.into_iter().next())
            .and_then(|w| grammar::lookup(&w.text));
        if let Some(spec) = first {
            self.broken.insert(spec.name);
        }
    }

    /// An unknown command: a template line left unrendered, a likely typo, or just unknown.
    fn unknown(&mut self, word: &str, line: &str, span: &Span) {
        let msg = format!("unknown command \"{word}\"");
        if let Some((_, p)) = template::find(line).or_else(|| template::find_open(word)) {
            self.sink.warn_help(
                span,
                format!("{msg}: the line {}", p.explain()),
                "render the template with its tool first, then validate the result",
            );
            return;
        }
        let names = grammar::COMMANDS
            .iter()
            .flat_map(|c| std::iter::once(c.name).chain(c.aliases.iter().copied()));
        match did_you_mean(word, names) {
            Some(s) => {
                self.sink
                    .warn_help(span, msg, format!("did you mean `{s}`?"));
                if let Some(spec) = grammar::lookup(s) {
                    self.misspelled
                        .entry(spec.name)
                        .or_insert(self.sink.items.len() - 1);
                }
            }
            None => self.sink.warn(span, msg),
        }
    }
}

fn close_body(items: &mut [Invocation], body: &str) {
    if let Some(last) = items.last_mut() {
        last.body = Some(body.to_string());
    }
}

/// Bytes to text: CRLF becomes LF (ESXi does this first); invalid UTF-8 is replaced, with a
/// warning, since we cannot keep such a script byte-exact. A UTF-8 byte order mark, which
/// editors hide, is dropped with a note instead of becoming part of the first command.
fn decode(name: &Arc<str>, bytes: &[u8], sink: &mut Sink) -> String {
    let bytes = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => {
            let span = Span {
                file: name.clone(),
                line: 1,
                col: 1,
            };
            sink.note(&span, "the file starts with a UTF-8 byte order mark (BOM), which is invisible in most editors; ksinstall ignores it");
            sink.help("ESXi's own installer reads the BOM as part of the first command: save the file as UTF-8 without BOM");
            rest
        }
        None => bytes,
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            let span = Span {
                file: name.clone(),
                line: u32::try_from(line).unwrap_or(u32::MAX),
                col: 1,
            };
            sink.warn(
                &span,
                "file is not valid UTF-8; the invalid bytes are replaced",
            );
            String::from_utf8_lossy(bytes).into_owned()
        }
    };
    text.replace("\r\n", "\n")
}

/// Where an include points, as ESXi resolves it (spec §1.2 `%include`): URLs as they are, paths
/// starting with `.` relative to the including file, everything else absolute (a bare name
/// becomes `/<name>`, for ESX 3.5 compatibility).
pub fn resolve(from: &str, path: &str) -> IncludeTarget {
    if path.contains("://") {
        return IncludeTarget::Url(path.to_string());
    }
    if path.starts_with('.') {
        let dir = match from.rfind('/') {
            Some(i) => &from[..=i],
            None => "",
        };
        let rel = path.strip_prefix("./").unwrap_or(path);
        if from.contains("://") {
            return IncludeTarget::Url(format!("{dir}{rel}"));
        }
        return IncludeTarget::Relative(format!("{dir}{rel}"));
    }
    if path.starts_with('/') {
        IncludeTarget::Installer(path.to_string())
    } else {
        IncludeTarget::Installer(format!("/{path}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_resolution() {
        assert_eq!(
            resolve("/ks/main.cfg", "./net.cfg"),
            IncludeTarget::Relative("/ks/net.cfg".into())
        );
        assert_eq!(
            resolve("main.cfg", "./net.cfg"),
            IncludeTarget::Relative("net.cfg".into())
        );
        assert_eq!(
            resolve("/ks/main.cfg", "/tmp/x"),
            IncludeTarget::Installer("/tmp/x".into())
        );
        assert_eq!(
            resolve("/ks/main.cfg", "tmp/x"),
            IncludeTarget::Installer("/tmp/x".into())
        );
        assert_eq!(
            resolve("http://h/ks/a.cfg", "./b.cfg"),
            IncludeTarget::Url("http://h/ks/b.cfg".into())
        );
        assert_eq!(
            resolve("/a", "https://h/x.cfg"),
            IncludeTarget::Url("https://h/x.cfg".into())
        );
    }
}
