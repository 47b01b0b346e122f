//! A synthetic ESXi medium in a temporary directory, and `ksinstall install` run against it on
//! the `plain` fixture: the set-up the install and first-boot tests share.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ksinstall::media::Manifest;
use testkit::synth;

pub struct Setup {
    pub dir: tempfile::TempDir,
}

impl Setup {
    pub fn new(media_size: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let o = synth::Options {
            out: dir.path().join("media"),
            size: ksinstall::size::parse_size(media_size).unwrap(),
            version: "8.0.3".into(),
            seed: 3,
        };
        synth::mkmedia(&o).unwrap();
        Setup { dir }
    }
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    pub fn ks(&self, text: &str) -> PathBuf {
        let p = self.path("ks.cfg");
        std::fs::write(&p, text).unwrap();
        p
    }
    pub fn manifest(&self) -> Manifest {
        ksinstall::media::Media::open(&self.path("media").display().to_string())
            .unwrap()
            .manifest
    }
    pub fn install(&self, ks: &Path, extra: &[&str]) -> Output {
        self.install_from(self.path("media").as_os_str(), ks, extra)
    }
    /// Install from other media (an ISO, a URL).
    pub fn install_from(&self, media: &std::ffi::OsStr, ks: &Path, extra: &[&str]) -> Output {
        self.install_on("plain", media, ks, extra)
    }
    /// Install on another recorded host (a fixture under tests/fixtures).
    pub fn install_on(
        &self,
        fixture: &str,
        media: &std::ffi::OsStr,
        ks: &Path,
        extra: &[&str],
    ) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ksinstall"))
            .arg("install")
            .arg("--ks")
            .arg(ks)
            .arg("--media")
            .arg(media)
            .arg("--sysroot")
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures")
                    .join(fixture),
            )
            .args(["--cmdline", ""])
            .args(extra)
            .env("RUST_LOG", "info")
            .output()
            .unwrap()
    }
}
