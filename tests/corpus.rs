//! The real-world kickstart corpus, kept outside the repository (`../shared/kickstart-corpus`
//! beside the checkout, or `KSINSTALL_CORPUS`): public `ks.cfg` files as their authors wrote them.
//! Not part of `cargo xtask test` (a clone stands alone; `test = false` in Cargo.toml): `.ci/run`
//! runs it as its own named step, `cargo test --test corpus`, and it fails when the corpus is
//! missing rather than skipping.

use std::path::{Path, PathBuf};

use ksinstall::kickstart;

mod common;
use common::ks::{assert_messages_read_as_english, assert_round_trip, dump, errors, files_in};

fn corpus_dir(sub: &str) -> PathBuf {
    let root = std::env::var_os("KSINSTALL_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/kickstart-corpus")
        });
    assert!(
        root.is_dir(),
        "{}: no kickstart corpus there (set KSINSTALL_CORPUS to a copy)",
        root.display()
    );
    root.join(sub)
}

#[test]
fn every_valid_corpus_file_validates_without_error() {
    for f in files_in(&corpus_dir("valid")) {
        let p = kickstart::parse_file(&f, Path::new("/nonexistent-root")).unwrap();
        assert!(!p.has_errors(), "{}:\n{}", f.display(), dump(&p));
        let ks = &p.kickstart;
        assert!(
            ks.accept_eula.is_some() && ks.action.is_some(),
            "{}",
            f.display()
        );
    }
}

#[test]
fn every_policy_corpus_file_gets_exactly_the_expected_error() {
    let expected = std::fs::read_to_string(corpus_dir("policy/EXPECTED")).unwrap();
    let mut checked = 0;
    for line in expected
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut cols = line.split('\t');
        let (file, lineno) = (
            cols.next().unwrap(),
            cols.next().unwrap().parse::<u32>().unwrap(),
        );
        let p = kickstart::parse_file(
            &corpus_dir("policy").join(file),
            Path::new("/nonexistent-root"),
        )
        .unwrap();
        let errs = errors(&p);
        assert_eq!(errs.len(), 1, "{file}: want one error, got:\n{}", dump(&p));
        assert_eq!(errs[0].span.line, lineno, "{file}: {}", errs[0]);
        assert!(
            errs[0].message.contains("root password") || errs[0].message.contains("rootpw"),
            "{}",
            errs[0]
        );
        checked += 1;
    }
    assert_eq!(checked, files_in(&corpus_dir("policy")).len());
}

#[test]
fn crypt_hash_given_as_plain_password_suggests_iscrypted() {
    let p = kickstart::parse_file(
        &corpus_dir("policy/tlhakhan-packer-esxi-httpdir-vsphere-7.0b-ks.cfg"),
        Path::new("/"),
    )
    .unwrap();
    let e = errors(&p)[0];
    assert!(
        e.help
            .as_deref()
            .unwrap_or("")
            .contains("rootpw --iscrypted"),
        "{e}"
    );
}

#[test]
fn templated_files_give_located_diagnostics_and_no_panic() {
    for f in files_in(&corpus_dir("templated")) {
        let p = kickstart::parse_file(&f, Path::new("/nonexistent-root")).unwrap();
        assert!(
            !p.diagnostics.is_empty(),
            "{} is a template: something must be reported",
            f.display()
        );
        for d in &p.diagnostics {
            assert!(d.span.line >= 1 && d.span.col >= 1, "{d}");
            let shown = d.to_string();
            let first = shown.lines().next().unwrap();
            let prefix = format!("{}:{}:{}: ", f.display(), d.span.line, d.span.col);
            assert!(first.starts_with(&prefix), "{first}");
        }
    }
}

#[test]
fn print_then_parse_gives_the_same_model_for_every_valid_file() {
    assert_round_trip(files_in(&corpus_dir("valid")));
}

#[test]
fn messages_read_as_english() {
    let mut files = Vec::new();
    for dir in ["valid", "policy", "templated"] {
        files.extend(files_in(&corpus_dir(dir)));
    }
    assert_messages_read_as_english(files);
}
