//! Where `interactive --save-ks FILE` saves, and in which form. The kickstart it writes (for
//! other hosts: the disk by a `--firstdisk` rule) is made by the library: src/savedks.rs.
//! See docs/CONSOLE.md.

use std::path::Path;

pub use ksinstall::savedks::{text, Form};

/// Where and in which form the answers are saved.
#[derive(Debug, Clone, Copy)]
pub struct SaveKs<'a> {
    pub path: &'a Path,
    pub form: Form,
}
