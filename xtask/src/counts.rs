//! `cargo xtask counts [DIR] [--json]`: the house's counts, measured on the sources of a
//! checkout (DIR, the workspace by default) with a Rust parser (syn), not with patterns:
//!
//! - functions over 120 lines in `src/` and `xtask/src/` (from the signature's first token to
//!   the closing brace; nested functions counted on their own as well);
//! - functions returning `Result<_, String>` in `src/` (test code left out);
//! - lines in `src/cli/`;
//! - import circles between the file modules under `src/`: `use` lines and `crate::`/`super::`
//!   paths in code, test code left out; a circle is a strongly connected set of modules. An edge
//!   between a module and its own submodule (a parent re-exporting a child, a child using
//!   `super::`) is the module's inside and is counted apart;
//! - structs (and enum variants) in `src/` that repeat a DPU card's identity: one with an `address`, a `slot` or
//!   `catalog_id`, and two or more of `catalog_id`, `vendor`, `model`, `generation`, `supported`,
//!   `slot` (the one identity type, `DpuIdentity`, is the one expected; the catalog's entry names
//!   a model, not a card, and has no address; a disk has a vendor and model but no slot);
//! - every arrow of docs/ARCHITECTURE.md's rooms table (`A` with `B` in its "Uses" column means A
//!   uses B) against the uses between top-level modules in the code.
//!
//! Paths inside macro bodies (`format!`, `json!`) are token streams to a parser and are not seen.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use syn::spanned::Spanned;
use syn::visit::Visit;

/// A function longer than this many lines is reported.
pub const LONG_FN: usize = 120;

/// The top-level modules whose "Uses" cell says they may use anything.
const WILDCARD_USES: &[&str] = &["every stage", "the library"];

/// A function, where it is, and how long it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FnInfo {
    pub file: String,
    pub name: String,
    pub line: usize,
    pub lines: usize,
    pub string_error: bool,
    pub test_code: bool,
}

/// What one file says: its functions and the modules it refers to.
#[derive(Debug, Default)]
pub struct FileFacts {
    pub fns: Vec<FnInfo>,
    /// `Result<_, String>` outside a function's return type (fields, aliases, closures,
    /// nested results), test code left out: (file, line).
    pub other_string_errors: Vec<(String, usize)>,
    /// Structs that repeat a DPU card's identity, test code left out: (file, line, name).
    pub identity_structs: Vec<(String, usize, String)>,
    /// Module paths referred to, already made absolute (`["lib", "inventory", "content", "X"]`).
    pub refs: Vec<Vec<String>>,
}

/// The whole measurement.
#[derive(Debug)]
pub struct Counts {
    pub long_fns: Vec<FnInfo>,
    pub string_errors: Vec<FnInfo>,
    pub other_string_errors: Vec<(String, usize)>,
    pub cli_lines: usize,
    pub cli_files: usize,
    /// Structs in `src/` that repeat a DPU card's identity (file, line, name).
    pub identity_structs: Vec<(String, usize, String)>,
    /// Circles with edges between a module and its own submodules left out.
    pub circles: Vec<Circle>,
    /// Circles through edges between a module and its own submodules only.
    pub inner_circles: Vec<Circle>,
    pub arrows: ArrowCheck,
}

/// A set of file modules that reach each other, with the edges inside it.
#[derive(Debug, PartialEq, Eq)]
pub struct Circle {
    pub modules: Vec<String>,
    /// (from, to, file that holds the use)
    pub edges: Vec<(String, String, String)>,
}

/// docs/ARCHITECTURE.md against the code.
#[derive(Debug, Default)]
pub struct ArrowCheck {
    pub doc_arrows: usize,
    pub code_arrows: usize,
    pub doc_without_use: Vec<(String, String)>,
    /// (from, to, a file that holds such a use)
    pub use_without_doc: Vec<(String, String, String)>,
    pub modules_not_in_doc: Vec<String>,
    pub doc_modules_not_in_code: Vec<String>,
}

pub fn counts(default_root: &Path, args: &[String]) -> Result<()> {
    let mut root = default_root.to_path_buf();
    let mut as_json = false;
    for a in args {
        match a.as_str() {
            "--json" => as_json = true,
            s if !s.starts_with('-') => root = PathBuf::from(s),
            other => bail!("counts: unknown option {other} (usage: counts [DIR] [--json])"),
        }
    }
    let c = measure(&root)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&to_json(&c))?);
    } else {
        print!("{}", to_text(&root, &c));
    }
    Ok(())
}

/// Measure the checkout at `root`.
pub fn measure(root: &Path) -> Result<Counts> {
    let mut sources = Vec::new();
    for dir in ["src", "xtask/src"] {
        let mut files = Vec::new();
        rust_files(&root.join(dir), &mut files)?;
        for f in files {
            let rel = f
                .strip_prefix(root)
                .unwrap_or(&f)
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&f).with_context(|| format!("reading {rel}"))?;
            sources.push((rel, text));
        }
    }
    let modules: BTreeSet<Vec<String>> = sources
        .iter()
        .filter_map(|(rel, _)| module_of(rel))
        .collect();
    let mut long_fns = Vec::new();
    let mut string_errors = Vec::new();
    let mut other_string_errors = Vec::new();
    let mut identity_structs = Vec::new();
    // file module -> (target module -> file that holds the use)
    let mut edges: BTreeMap<Vec<String>, BTreeMap<Vec<String>, String>> = BTreeMap::new();
    for (rel, text) in &sources {
        let module = module_of(rel);
        let facts = analyse(rel, text, module.clone().unwrap_or_default(), &modules)?;
        for f in facts.fns {
            if f.lines > LONG_FN {
                long_fns.push(f.clone());
            }
            if f.string_error && !f.test_code && rel.starts_with("src/") {
                string_errors.push(f);
            }
        }
        if rel.starts_with("src/") {
            other_string_errors.extend(facts.other_string_errors);
            identity_structs.extend(facts.identity_structs);
        }
        let Some(module) = module else { continue };
        let out = edges.entry(module.clone()).or_default();
        for r in facts.refs {
            if let Some(target) = longest_module(&r, &modules) {
                if target != module {
                    out.entry(target).or_insert_with(|| rel.clone());
                }
            }
        }
    }
    long_fns.sort_by(|a, b| b.lines.cmp(&a.lines).then(a.file.cmp(&b.file)));
    let (cli_lines, cli_files) = cli_size(&sources);
    let outer = circles_of(&edges, false);
    let inner_circles = circles_of(&edges, true);
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap_or_default();
    let arrows = check_arrows(&doc, &edges);
    Ok(Counts {
        long_fns,
        string_errors,
        other_string_errors,
        cli_lines,
        cli_files,
        identity_structs,
        circles: outer,
        inner_circles,
        arrows,
    })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut paths: Vec<PathBuf> = entries
        .collect::<std::io::Result<Vec<_>>>()?
        .into_iter()
        .map(|e| e.path())
        .collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            rust_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

fn cli_size(sources: &[(String, String)]) -> (usize, usize) {
    let cli: Vec<&String> = sources
        .iter()
        .filter(|(rel, _)| rel.starts_with("src/cli/"))
        .map(|(_, t)| t)
        .collect();
    (cli.iter().map(|t| t.lines().count()).sum(), cli.len())
}

/// The module a file under `src/` is: `["lib", ...]` for the library, `["bin", ...]` for the
/// binary (src/main.rs and src/cli/). Files outside `src/` are no module of the product.
pub fn module_of(rel: &str) -> Option<Vec<String>> {
    let inner = rel.strip_prefix("src/")?.strip_suffix(".rs")?;
    let mut parts: Vec<String> = inner.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    match parts.first().map(String::as_str) {
        Some("lib") if parts.len() == 1 => Some(vec!["lib".into()]),
        Some("main") if parts.len() == 1 => Some(vec!["bin".into()]),
        Some("cli") => Some([vec!["bin".to_string()], parts].concat()),
        _ => Some([vec!["lib".to_string()], parts].concat()),
    }
}

fn longest_module(path: &[String], modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
}

/// Parse one file: its functions, and every module path it refers to (made absolute).
pub fn analyse(
    rel: &str,
    text: &str,
    module: Vec<String>,
    modules: &BTreeSet<Vec<String>>,
) -> Result<FileFacts> {
    let ast = syn::parse_file(text).with_context(|| format!("parsing {rel}"))?;
    let mut v = Visitor {
        file: rel,
        modules,
        cur: module,
        owner: Vec::new(),
        test_depth: 0,
        fn_output: None,
        facts: FileFacts::default(),
    };
    v.visit_file(&ast);
    Ok(v.facts)
}

struct Visitor<'a> {
    file: &'a str,
    modules: &'a BTreeSet<Vec<String>>,
    /// The module the visitor is in (inline modules pushed).
    cur: Vec<String>,
    /// `impl` or `trait` names around the function being visited.
    owner: Vec<String>,
    test_depth: usize,
    /// The return type of the function being recorded: counted as a signature, not again as
    /// another place.
    fn_output: Option<*const syn::Type>,
    facts: FileFacts,
}

fn is_test_attr(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        if a.path().is_ident("test") {
            return true;
        }
        if !a.path().is_ident("cfg") {
            return false;
        }
        let mut test = false;
        let _ = a.parse_nested_meta(|m| {
            test |= m.path.is_ident("test");
            Ok(())
        });
        test
    })
}

/// A struct with an `address`, a `slot` or `catalog_id`, and two or more of the other fields that
/// say which DPU card it is.
fn repeats_dpu_identity(fields: &syn::Fields) -> bool {
    const IDENTITY: &[&str] = &[
        "catalog_id",
        "vendor",
        "model",
        "generation",
        "supported",
        "slot",
    ];
    let names: Vec<String> = fields
        .iter()
        .filter_map(|f| f.ident.as_ref().map(ToString::to_string))
        .collect();
    let has = |n: &str| names.iter().any(|x| x == n);
    has("address")
        && (has("slot") || has("catalog_id"))
        && IDENTITY.iter().filter(|n| has(n)).count() >= 2
}

fn is_string(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Path(p) => {
            p.qself.is_none()
                && p.path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "String" && s.arguments.is_none())
        }
        _ => false,
    }
}

/// A function returning `Result<T, String>` (under any path: `std::result::Result` too).
pub fn returns_string_error(out: &syn::ReturnType) -> bool {
    match out {
        syn::ReturnType::Type(_, ty) => is_string_result(ty),
        syn::ReturnType::Default => false,
    }
}

fn is_string_result(ty: &syn::Type) -> bool {
    let syn::Type::Path(p) = ty else {
        return false;
    };
    let Some(last) = p.path.segments.last() else {
        return false;
    };
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return false;
    };
    let types: Vec<&syn::Type> = args
        .args
        .iter()
        .filter_map(|a| match a {
            syn::GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    last.ident == "Result" && types.len() == 2 && is_string(types[1])
}

fn type_name(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(p) => p
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default(),
        _ => "_".into(),
    }
}

impl Visitor<'_> {
    fn record_fn(&mut self, attrs: &[syn::Attribute], sig: &syn::Signature, block: &syn::Block) {
        let start = sig.span().start().line;
        let end = block.brace_token.span.close().end().line;
        let name = match self.owner.last() {
            Some(o) => format!("{o}::{}", sig.ident),
            None => sig.ident.to_string(),
        };
        self.facts.fns.push(FnInfo {
            file: self.file.to_string(),
            name,
            line: start,
            lines: end + 1 - start,
            string_error: returns_string_error(&sig.output),
            test_code: self.test_depth > 0 || is_test_attr(attrs),
        });
    }

    /// Make a path absolute against the module the visitor is in; `None` for a path that
    /// names no module of this crate (std, another crate, a local item).
    fn absolute(&self, segs: &[String]) -> Option<Vec<String>> {
        let first = segs.first()?;
        let krate = self.cur.first().cloned().unwrap_or_else(|| "lib".into());
        match first.as_str() {
            "crate" => Some([vec![krate], segs[1..].to_vec()].concat()),
            "ksinstall" => Some([vec!["lib".to_string()], segs[1..].to_vec()].concat()),
            "self" => Some([self.cur.clone(), segs[1..].to_vec()].concat()),
            "super" => {
                let mut base = self.cur.clone();
                let mut rest = segs;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                Some([base, rest.to_vec()].concat())
            }
            _ => {
                // A child module named without `self::` (2018 paths).
                let child = [self.cur.clone(), vec![first.clone()]].concat();
                self.modules
                    .contains(&child)
                    .then(|| [self.cur.clone(), segs.to_vec()].concat())
            }
        }
    }

    fn add_ref(&mut self, segs: &[String]) {
        if self.test_depth > 0 {
            return;
        }
        if let Some(p) = self.absolute(segs) {
            self.facts.refs.push(p);
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let name = n.ident.to_string();
                if name == "self" {
                    self.add_ref(&prefix.clone());
                } else {
                    self.add_ref(&[prefix.clone(), vec![name]].concat());
                }
            }
            syn::UseTree::Rename(r) => {
                self.add_ref(&[prefix.clone(), vec![r.ident.to_string()]].concat());
            }
            syn::UseTree::Glob(_) => self.add_ref(&prefix.clone()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Visitor<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        let test = is_test_attr(&m.attrs);
        self.test_depth += usize::from(test);
        if m.content.is_some() {
            self.cur.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.cur.pop();
        }
        self.test_depth -= usize::from(test);
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        // A function inside a method belongs to no type.
        let saved = std::mem::take(&mut self.owner);
        self.record_fn(&f.attrs, &f.sig, &f.block);
        let test = is_test_attr(&f.attrs);
        self.test_depth += usize::from(test);
        syn::visit::visit_item_fn(self, f);
        self.owner = saved;
        self.test_depth -= usize::from(test);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.record_fn(&f.attrs, &f.sig, &f.block);
        syn::visit::visit_impl_item_fn(self, f);
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        match &f.default {
            Some(block) => self.record_fn(&f.attrs, &f.sig, block),
            // A required method has no length, but its signature is one.
            None => self.facts.fns.push(FnInfo {
                file: self.file.to_string(),
                name: format!("{}::{}", self.owner.join("::"), f.sig.ident),
                line: f.sig.span().start().line,
                lines: 0,
                string_error: returns_string_error(&f.sig.output),
                test_code: self.test_depth > 0,
            }),
        }
        syn::visit::visit_trait_item_fn(self, f);
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        let test = is_test_attr(&i.attrs);
        self.test_depth += usize::from(test);
        self.owner.push(type_name(&i.self_ty));
        syn::visit::visit_item_impl(self, i);
        self.owner.pop();
        self.test_depth -= usize::from(test);
    }

    fn visit_item_trait(&mut self, t: &'ast syn::ItemTrait) {
        self.owner.push(t.ident.to_string());
        syn::visit::visit_item_trait(self, t);
        self.owner.pop();
    }

    fn visit_item_struct(&mut self, s: &'ast syn::ItemStruct) {
        if self.test_depth == 0 && !is_test_attr(&s.attrs) && repeats_dpu_identity(&s.fields) {
            self.facts.identity_structs.push((
                self.file.to_string(),
                s.ident.span().start().line,
                s.ident.to_string(),
            ));
        }
        syn::visit::visit_item_struct(self, s);
    }

    fn visit_item_enum(&mut self, e: &'ast syn::ItemEnum) {
        if self.test_depth == 0 && !is_test_attr(&e.attrs) {
            for v in e
                .variants
                .iter()
                .filter(|v| repeats_dpu_identity(&v.fields))
            {
                self.facts.identity_structs.push((
                    self.file.to_string(),
                    v.ident.span().start().line,
                    format!("{}::{}", e.ident, v.ident),
                ));
            }
        }
        syn::visit::visit_item_enum(self, e);
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let test = is_test_attr(&u.attrs);
        self.test_depth += usize::from(test);
        self.use_tree(&mut Vec::new(), &u.tree);
        self.test_depth -= usize::from(test);
    }

    fn visit_signature(&mut self, sig: &'ast syn::Signature) {
        if let syn::ReturnType::Type(_, ty) = &sig.output {
            self.fn_output = Some(&**ty as *const syn::Type);
        }
        syn::visit::visit_signature(self, sig);
        self.fn_output = None;
    }

    fn visit_type(&mut self, ty: &'ast syn::Type) {
        let is_output = self.fn_output == Some(ty as *const syn::Type);
        if !is_output && self.test_depth == 0 && is_string_result(ty) {
            let line = ty.span().start().line;
            self.facts
                .other_string_errors
                .push((self.file.to_string(), line));
        }
        syn::visit::visit_type(self, ty);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if segs.len() > 1 {
            self.add_ref(&segs);
        }
        syn::visit::visit_path(self, p);
    }
}

type Edges = BTreeMap<Vec<String>, BTreeMap<Vec<String>, String>>;

fn show(m: &[String]) -> String {
    match m {
        [k] if k == "lib" => "src/lib.rs".into(),
        [k] if k == "bin" => "src/main.rs".into(),
        [k, rest @ ..] if k == "lib" || k == "bin" => rest.join("::"),
        _ => m.join("::"),
    }
}

/// Strongly connected sets of more than one module (Tarjan), over the edges between a module and
/// its own submodule (`family`) or over every other edge.
fn circles_of(edges: &Edges, family: bool) -> Vec<Circle> {
    let keep = |a: &Vec<String>, b: &Vec<String>| family == (a.starts_with(b) || b.starts_with(a));
    let nodes: BTreeSet<&Vec<String>> = edges
        .iter()
        .flat_map(|(a, outs)| std::iter::once(a).chain(outs.keys()))
        .collect();
    let nodes: Vec<&Vec<String>> = nodes.into_iter().collect();
    let index_of: BTreeMap<&Vec<String>, usize> =
        nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let adj: Vec<Vec<usize>> = nodes
        .iter()
        .map(|a| {
            edges
                .get(*a)
                .map(|outs| {
                    outs.keys()
                        .filter(|b| keep(a, b))
                        .map(|b| index_of[b])
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    let mut t = Tarjan {
        adj: &adj,
        index: vec![None; nodes.len()],
        low: vec![0; nodes.len()],
        on_stack: vec![false; nodes.len()],
        stack: Vec::new(),
        next: 0,
        sccs: Vec::new(),
    };
    for v in 0..nodes.len() {
        if t.index[v].is_none() {
            t.connect(v);
        }
    }
    let mut out: Vec<Circle> = t
        .sccs
        .into_iter()
        .filter(|s| s.len() > 1)
        .map(|mut s| {
            s.sort_unstable();
            let members: BTreeSet<usize> = s.iter().copied().collect();
            let mut circle_edges = Vec::new();
            for &a in &s {
                for (b, file) in edges.get(nodes[a]).into_iter().flatten() {
                    if members.contains(&index_of[b]) && keep(nodes[a], b) {
                        circle_edges.push((show(nodes[a]), show(b), file.clone()));
                    }
                }
            }
            Circle {
                modules: s.iter().map(|&i| show(nodes[i])).collect(),
                edges: circle_edges,
            }
        })
        .collect();
    out.sort_by(|a, b| a.modules.cmp(&b.modules));
    out
}

struct Tarjan<'a> {
    adj: &'a [Vec<usize>],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    next: usize,
    sccs: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn connect(&mut self, v: usize) {
        self.index[v] = Some(self.next);
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for &w in &self.adj[v] {
            match self.index[w] {
                None => {
                    self.connect(w);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(self.low[v]) == self.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w] = false;
                scc.push(w);
                if w == v {
                    break;
                }
            }
            self.sccs.push(scc);
        }
    }
}

/// The top-level module a file module belongs to: the library's first level, `cli` for the
/// binary; `None` for src/lib.rs (it only declares modules).
fn top(m: &[String]) -> Option<String> {
    match m {
        [k, ..] if k == "bin" => Some("cli".into()),
        [k, first, ..] if k == "lib" => Some(first.clone()),
        _ => None,
    }
}

/// The arrows of ARCHITECTURE.md's rooms table: `(module, Some(uses))`, or `None` for a
/// module whose cell says it may use anything ("every stage", "the library").
pub fn doc_arrows(doc: &str) -> BTreeMap<String, Option<BTreeSet<String>>> {
    let mut rows = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `module` | what it is | uses |
        if cells.len() < 5 || !cells[1].starts_with('`') {
            continue;
        }
        let Some(name) = backticked(cells[1]).into_iter().next() else {
            continue;
        };
        let uses_cell = cells[cells.len() - 2];
        let uses: Option<BTreeSet<String>> = if WILDCARD_USES.iter().any(|w| uses_cell.contains(w))
        {
            None
        } else {
            Some(backticked(uses_cell).into_iter().collect())
        };
        rows.insert(name, uses);
    }
    // Backticked words in a "Uses" cell that are no module (`imgdb` in "only `imgdb`") are
    // prose about the arrow, not arrows.
    let names: BTreeSet<String> = rows.keys().cloned().collect();
    for uses in rows.values_mut().flatten() {
        uses.retain(|u| names.contains(u));
    }
    rows
}

fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, w)| w.to_string())
        .collect()
}

fn check_arrows(doc: &str, edges: &Edges) -> ArrowCheck {
    let table = doc_arrows(doc);
    // (from, to) -> a file holding such a use
    let mut code: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut code_modules = BTreeSet::new();
    for (a, outs) in edges {
        let Some(ta) = top(a) else { continue };
        code_modules.insert(ta.clone());
        for (b, file) in outs {
            let Some(tb) = top(b) else { continue };
            if ta != tb {
                code.entry((ta.clone(), tb)).or_insert_with(|| file.clone());
            }
        }
    }
    let mut check = ArrowCheck {
        code_arrows: code.len(),
        ..ArrowCheck::default()
    };
    for (a, uses) in &table {
        for b in uses.iter().flatten() {
            check.doc_arrows += 1;
            if !code.contains_key(&(a.clone(), b.clone())) {
                check.doc_without_use.push((a.clone(), b.clone()));
            }
        }
    }
    for ((a, b), file) in &code {
        let documented = match table.get(a) {
            Some(None) => true,
            Some(Some(uses)) => uses.contains(b),
            None => false,
        };
        if !documented {
            check
                .use_without_doc
                .push((a.clone(), b.clone(), file.clone()));
        }
    }
    check.modules_not_in_doc = code_modules
        .iter()
        .filter(|m| !table.contains_key(*m))
        .cloned()
        .collect();
    check.doc_modules_not_in_code = table
        .keys()
        .filter(|m| !code_modules.contains(*m))
        .cloned()
        .collect();
    check
}

fn to_text(root: &Path, c: &Counts) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "counts for {}", root.display());
    let _ = writeln!(
        s,
        "\nfunctions over {LONG_FN} lines (src/, xtask/src/): {}",
        c.long_fns.len()
    );
    for f in &c.long_fns {
        let _ = writeln!(
            s,
            "  {:>4} lines  {}:{}  {}",
            f.lines, f.file, f.line, f.name
        );
    }
    let (lib, bin): (Vec<_>, Vec<_>) = c
        .string_errors
        .iter()
        .partition(|f| !f.file.starts_with("src/cli/") && f.file != "src/main.rs");
    let _ = writeln!(
        s,
        "\nResult<_, String> signatures (src/, test code left out): {} (library {}, binary {})",
        c.string_errors.len(),
        lib.len(),
        bin.len()
    );
    for f in &c.string_errors {
        let _ = writeln!(s, "  {}:{}  {}", f.file, f.line, f.name);
    }
    let _ = writeln!(
        s,
        "Result<_, String> elsewhere (fields, aliases, closures, nested): {}",
        c.other_string_errors.len()
    );
    for (file, line) in &c.other_string_errors {
        let _ = writeln!(s, "  {file}:{line}");
    }
    let _ = writeln!(
        s,
        "\nlines in src/cli/: {} ({} files)",
        c.cli_lines, c.cli_files
    );
    let _ = writeln!(
        s,
        "\nstructs and enum variants repeating a DPU card's identity (src/): {}",
        c.identity_structs.len()
    );
    for (file, line, name) in &c.identity_structs {
        let _ = writeln!(s, "  {file}:{line}  {name}");
    }
    for (title, circles) in [
        (
            "import circles between modules under src/ (module <-> own submodule left out)",
            &c.circles,
        ),
        (
            "circles between a module and its own submodules (re-exports, `super::`)",
            &c.inner_circles,
        ),
    ] {
        let _ = writeln!(s, "\n{title}: {}", circles.len());
        for circle in circles {
            let _ = writeln!(s, "  {{{}}}", circle.modules.join(", "));
            for (a, b, file) in &circle.edges {
                let _ = writeln!(s, "    {a} -> {b}  ({file})");
            }
        }
    }
    let a = &c.arrows;
    let _ = writeln!(
        s,
        "\ndocs/ARCHITECTURE.md arrows: {} in the table, {} between top-level modules in the code",
        a.doc_arrows, a.code_arrows
    );
    let _ = writeln!(s, "  doc arrows with no use: {}", a.doc_without_use.len());
    for (x, y) in &a.doc_without_use {
        let _ = writeln!(s, "    {x} -> {y}");
    }
    let _ = writeln!(s, "  uses with no doc arrow: {}", a.use_without_doc.len());
    for (x, y, file) in &a.use_without_doc {
        let _ = writeln!(s, "    {x} -> {y}  (e.g. {file})");
    }
    let _ = writeln!(
        s,
        "  modules not in the table: {}",
        a.modules_not_in_doc.join(", ")
    );
    let _ = writeln!(
        s,
        "  table rows with no module: {}",
        a.doc_modules_not_in_code.join(", ")
    );
    s
}

fn to_json(c: &Counts) -> Value {
    let fns = |v: &[FnInfo]| -> Value {
        v.iter()
            .map(|f| json!({"file": f.file, "line": f.line, "name": f.name, "lines": f.lines}))
            .collect()
    };
    let circles = |v: &[Circle]| -> Value {
        v.iter()
            .map(|c| {
                json!({
                    "modules": c.modules,
                    "edges": c.edges.iter()
                        .map(|(a, b, f)| json!({"from": a, "to": b, "file": f}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect()
    };
    let a = &c.arrows;
    json!({
        "long_functions": {"limit": LONG_FN, "count": c.long_fns.len(), "list": fns(&c.long_fns)},
        "string_errors": {"count": c.string_errors.len(), "list": fns(&c.string_errors)},
        "other_string_errors": {
            "count": c.other_string_errors.len(),
            "list": c.other_string_errors.iter()
                .map(|(f, l)| json!({"file": f, "line": l})).collect::<Vec<_>>(),
        },
        "cli_lines": c.cli_lines,
        "cli_files": c.cli_files,
        "dpu_identity_structs": {
            "count": c.identity_structs.len(),
            "list": c.identity_structs.iter()
                .map(|(f, l, n)| json!({"file": f, "line": l, "name": n})).collect::<Vec<_>>(),
        },
        "import_circles": {"count": c.circles.len(), "list": circles(&c.circles)},
        "inner_circles": {"count": c.inner_circles.len(), "list": circles(&c.inner_circles)},
        "architecture": {
            "doc_arrows": a.doc_arrows,
            "code_arrows": a.code_arrows,
            "doc_without_use": a.doc_without_use.iter()
                .map(|(x, y)| json!({"from": x, "to": y})).collect::<Vec<_>>(),
            "use_without_doc": a.use_without_doc.iter()
                .map(|(x, y, f)| json!({"from": x, "to": y, "file": f})).collect::<Vec<_>>(),
            "modules_not_in_doc": a.modules_not_in_doc,
            "doc_modules_not_in_code": a.doc_modules_not_in_code,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fn_of_lines(name: &str, n: usize) -> String {
        // `fn name() {` + n-2 body lines + `}` = n lines.
        let mut s = format!("fn {name}() {{\n");
        for i in 0..n - 2 {
            s.push_str(&format!("    let _v{i} = {i};\n"));
        }
        s.push_str("}\n");
        s
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn a_121_line_function_is_long_and_a_120_line_one_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let text = format!(
            "/// doc\n#[inline]\n{}\n{}",
            fn_of_lines("long", 121),
            fn_of_lines("fits", 120)
        );
        write(dir, "src/lib.rs", &text);
        let c = measure(dir).unwrap();
        let names: Vec<(&str, usize)> = c
            .long_fns
            .iter()
            .map(|f| (f.name.as_str(), f.lines))
            .collect();
        assert_eq!(names, [("long", 121)]);
        assert_eq!(c.long_fns[0].line, 3);
    }

    #[test]
    fn methods_are_named_by_their_type_and_nested_functions_count_alone() {
        let facts = analyse(
            "src/a.rs",
            &format!(
                "impl Foo {{\n pub fn big(&self) {{\n{}}}\n}}",
                fn_of_lines("inner", 130)
            ),
            vec!["lib".into(), "a".into()],
            &BTreeSet::new(),
        )
        .unwrap();
        let got: Vec<(String, usize)> = facts
            .fns
            .iter()
            .map(|f| (f.name.clone(), f.lines))
            .collect();
        assert_eq!(
            got,
            [("Foo::big".to_string(), 132), ("inner".to_string(), 130)]
        );
    }

    #[test]
    fn a_struct_repeating_a_cards_identity_is_counted_and_one_carrying_it_is_not() {
        let facts = analyse(
            "src/a.rs",
            "pub struct Repeats { pub model: String, pub address: String, pub slot: u8 }\n\
             pub struct Carries { pub identity: Id, pub address: String, pub note: String }\n\
             pub struct CatalogModel { pub vendor: String, pub model: String, pub supported: bool }\n\
             pub struct Function { pub address: String, pub slot: Option<String> }\n\
             pub struct Disk { pub vendor: String, pub model: String, pub address: String }\n\
             pub enum Finding { Card { model: String, address: String, slot: u8 }, Other }\n\
             #[cfg(test)]\nmod tests { struct T { vendor: u8, model: u8, address: u8, slot: u8 } }\n",
            vec!["lib".into(), "a".into()],
            &BTreeSet::new(),
        )
        .unwrap();
        assert_eq!(
            facts.identity_structs,
            [
                ("src/a.rs".to_string(), 1, "Repeats".to_string()),
                ("src/a.rs".to_string(), 6, "Finding::Card".to_string())
            ]
        );
    }

    #[test]
    fn result_string_signatures_are_counted_and_test_code_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write(
            dir,
            "src/lib.rs",
            "pub fn a() -> Result<(), String> { Ok(()) }\n\
             pub fn b() -> std::result::Result<Vec<u8>, String> { Ok(vec![]) }\n\
             pub fn c() -> Result<(), std::io::Error> { Ok(()) }\n\
             pub fn d() -> Result<String, Box<String>> { todo!() }\n\
             pub fn e() -> Option<String> { None }\n\
             trait T { fn f(&self) -> Result<u8, String>; fn g() -> Result<u8, String> { Ok(1) } }\n\
             #[cfg(test)]\nmod tests { fn h() -> Result<(), String> { Ok(()) } }\n\
             #[test]\nfn i() -> Result<(), String> { Ok(()) }\n\
             pub struct S { pub r: Result<u8, String> }\n\
             pub fn j() -> Result<Result<u8, String>, std::io::Error> { Ok(Ok(1)) }\n",
        );
        write(
            dir,
            "xtask/src/main.rs",
            "fn x() -> Result<(), String> { Ok(()) }",
        );
        let c = measure(dir).unwrap();
        let names: Vec<&str> = c.string_errors.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "T::f", "T::g"]);
        let other: Vec<usize> = c.other_string_errors.iter().map(|(_, l)| *l).collect();
        assert_eq!(other, [11, 12]);
    }

    #[test]
    fn sibling_imports_are_a_circle_and_parent_child_edges_are_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write(dir, "src/lib.rs", "pub mod inv;\npub mod plan;\n");
        write(
            dir,
            "src/inv/mod.rs",
            "mod a;\nmod b;\npub use a::X;\npub struct Disk;\n",
        );
        write(
            dir,
            "src/inv/a.rs",
            "use super::b;\nuse super::Disk;\npub struct X;\n",
        );
        write(
            dir,
            "src/inv/b.rs",
            "pub fn f() -> crate::inv::a::X { crate::inv::a::X }\n",
        );
        // test code is no arrow
        write(
            dir,
            "src/plan.rs",
            "#[cfg(test)]\nmod tests { use crate::inv::Disk; }\n",
        );
        let c = measure(dir).unwrap();
        assert_eq!(c.circles.len(), 1);
        assert_eq!(c.circles[0].modules, ["inv::a", "inv::b"]);
        assert_eq!(c.inner_circles.len(), 1);
        assert_eq!(c.inner_circles[0].modules, ["inv", "inv::a"]);
        // plan's only use is in test code
        assert!(c.arrows.use_without_doc.is_empty());
    }

    #[test]
    fn doc_arrows_are_checked_both_ways() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write(
            dir,
            "docs/ARCHITECTURE.md",
            "| Module | What | Uses |\n|---|---|---|\n\
             | `size` | sizes | - |\n\
             | `media` | media | `size`, `http` (only `imgdb`) |\n\
             | `http` | client | - |\n\
             | `install` | driver | every stage |\n\
             | `cli` (binary) | clap | the library |\n",
        );
        write(
            dir,
            "src/lib.rs",
            "pub mod size; pub mod media; pub mod http; pub mod install; pub mod iso;\n",
        );
        write(dir, "src/size.rs", "");
        write(dir, "src/http.rs", "use crate::size::X;\n");
        write(dir, "src/media.rs", "use crate::size;\n");
        write(dir, "src/iso.rs", "");
        write(dir, "src/install.rs", "use crate::media; use crate::iso;\n");
        write(dir, "src/main.rs", "mod cli;\n");
        write(dir, "src/cli/mod.rs", "use ksinstall::install::run;\n");
        let c = measure(dir).unwrap();
        let a = &c.arrows;
        assert_eq!(a.doc_arrows, 2);
        assert_eq!(
            a.doc_without_use,
            [("media".to_string(), "http".to_string())]
        );
        assert_eq!(
            a.use_without_doc,
            [(
                "http".to_string(),
                "size".to_string(),
                "src/http.rs".to_string()
            )]
        );
        assert_eq!(a.modules_not_in_doc, ["iso"]);
    }
}
