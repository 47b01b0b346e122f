//! The set-up every end-to-end test file shares: a temporary directory holding a synthetic ESXi
//! medium (`media/`), the host to install on (a recorded fixture under tests/fixtures, as it is
//! or a writable copy at `root/`), and `ksinstall install` run against them.
//!
//! `Setup::new(size)` is the common case (a medium of that size, the `plain` fixture as it is);
//! `Setup::with()` is a builder for the variants (no medium, another seed, lower-case names as
//! a PXE tree has them, a writable copy of a fixture with disk images of its sysfs sizes and
//! its BlueField answering behind rshim's files, a kickstart in `ks.cfg`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ksinstall::media::Manifest;
use testkit::sim::{Config, RshimSim};
use testkit::synth;

/// The plain root password of the shared kickstart.
pub const PASSWORD: &str = "Plain-Secret-99x";

/// The kickstart most install and boot tests start from (a plain password, the first disk, a
/// static address), then `extra`.
pub fn ks_text(extra: &str) -> String {
    format!(
        "vmaccepteula\nrootpw '{PASSWORD}'\ninstall --firstdisk --overwritevmfs\nnetwork --bootproto=static --ip=10.1.2.3 --netmask=255.255.255.0 --gateway=10.1.2.1 --hostname=esx1.example --nameserver=10.1.2.2\n{extra}"
    )
}

/// tests/fixtures/NAME, a recorded host.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The rshim function and DEV_INFO of the BlueField a fixture carries, if any.
pub fn bluefield_of(fixture: &str) -> Option<(&'static str, &'static str)> {
    match fixture {
        "bluefield3" | "bluefield3-sibling" => Some(("0000:ca:00.2", "BlueField-3(Rev 1)")),
        "bluefield2" => Some(("0000:3b:00.2", "BlueField-2(Rev 1)")),
        _ => None,
    }
}

pub struct Setup {
    /// The host's BlueField behind rshim's device files, when asked for; declared before `dir`
    /// so that it stops before the directory is removed.
    _card: Option<RshimSim>,
    pub dir: tempfile::TempDir,
    sysroot: PathBuf,
    seed: u64,
}

/// What `Setup::with()` makes; `build()` makes it.
pub struct Builder {
    media_size: Option<u64>,
    seed: u64,
    lower_case: bool,
    host: Option<String>,
    disks_from_sysfs: bool,
    live_bluefield: bool,
    ks: Option<String>,
}

impl Builder {
    /// A synthetic 8.0.3 medium of `size` (`16M`, `256M`) in `media/`.
    pub fn media(mut self, size: &str) -> Builder {
        self.media_size = Some(ksinstall::size::parse_size(size).unwrap());
        self
    }
    /// The seed of the synthetic media (its bytes and identities); 3 when not given.
    pub fn seed(mut self, seed: u64) -> Builder {
        self.seed = seed;
        self
    }
    /// The medium's names in lower case, as Linux mounts the ISO and a PXE tree serves it.
    pub fn lower_case(mut self) -> Builder {
        self.lower_case = true;
        self
    }
    /// A writable copy of fixture `name` at `root/` as the host (symlinks kept), instead of
    /// tests/fixtures/plain as it is.
    pub fn host(mut self, name: &str) -> Builder {
        self.host = Some(name.to_string());
        self
    }
    /// The host's disks (`root/dev/*`) as sparse images of their sysfs sizes.
    pub fn disks_from_sysfs(mut self) -> Builder {
        self.disks_from_sysfs = true;
        self
    }
    /// The host's BlueField, if its fixture has one, answering behind `root/dev/rshim0` for as
    /// long as the set-up lives.
    pub fn live_bluefield(mut self) -> Builder {
        self.live_bluefield = true;
        self
    }
    /// `text` written to `ks.cfg`.
    pub fn ks(mut self, text: &str) -> Builder {
        self.ks = Some(text.to_string());
        self
    }

    pub fn build(self) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let sysroot = match &self.host {
            Some(name) => super::copy_fixture(name, &dir.path().join("root")),
            None => fixture("plain"),
        };
        if self.disks_from_sysfs {
            sparse_disks(&sysroot);
        }
        let _card = match (&self.host, self.live_bluefield) {
            (Some(name), true) => bluefield_of(name).map(|(address, info)| {
                RshimSim::start(&sysroot.join("dev/rshim0"), Config::new(address, info)).unwrap()
            }),
            _ => None,
        };
        let s = Setup {
            _card,
            dir,
            sysroot,
            seed: self.seed,
        };
        if let Some(size) = self.media_size {
            s.add_media("media", size, "8.0.3", &synth::Variant::default());
            if self.lower_case {
                super::lower_case_tree(&s.path("media"));
            }
        }
        if let Some(text) = &self.ks {
            s.ks(text);
        }
        s
    }
}

/// Every disk under `root/dev` made a sparse image of the size its sysfs entry gives.
fn sparse_disks(root: &Path) {
    let disks: Vec<String> = std::fs::read_dir(root.join("dev"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for disk in disks {
        let sectors: u64 = std::fs::read_to_string(root.join(format!("sys/block/{disk}/size")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let f = std::fs::File::create(root.join("dev").join(disk)).unwrap();
        f.set_len(sectors * 512).unwrap();
    }
}

impl Setup {
    /// A synthetic medium of `media_size` and the `plain` fixture as it is.
    pub fn new(media_size: &str) -> Setup {
        Setup::with().media(media_size).build()
    }
    /// The builder, for the other set-ups.
    pub fn with() -> Builder {
        Builder {
            media_size: None,
            seed: 3,
            lower_case: false,
            host: None,
            disks_from_sysfs: false,
            live_bluefield: false,
            ks: None,
        }
    }
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    /// The host: the writable copy of its fixture, or tests/fixtures/plain.
    pub fn sysroot(&self) -> &Path {
        &self.sysroot
    }
    /// Another synthetic medium in `name/`, with the set-up's seed.
    pub fn add_media(
        &self,
        name: &str,
        size: u64,
        version: &str,
        variant: &synth::Variant,
    ) -> PathBuf {
        let o = synth::Options {
            out: self.path(name),
            size,
            version: version.into(),
            seed: self.seed,
        };
        synth::mkmedia_with(&o, variant).unwrap();
        o.out
    }
    /// The medium's directory, as an argument.
    pub fn media(&self) -> String {
        self.path("media").display().to_string()
    }
    pub fn manifest(&self) -> Manifest {
        ksinstall::media::Media::open(&self.media())
            .unwrap()
            .manifest
    }
    /// `text` written to `ks.cfg`.
    pub fn ks(&self, text: &str) -> PathBuf {
        let p = self.path("ks.cfg");
        std::fs::write(&p, text).unwrap();
        p
    }
    /// Write a file into the media directory (so the test servers serve it).
    pub fn put(&self, rel: &str, text: &str) {
        std::fs::write(self.path("media").join(rel), text).unwrap();
    }
    /// `disk.img`, as an argument.
    pub fn disk(&self) -> String {
        self.path("disk.img").display().to_string()
    }
    /// Another copy of a fixture sysroot (symlinks kept) at `sysroot-NAME/`, to add files to.
    pub fn copy_fixture(&self, name: &str) -> PathBuf {
        super::copy_fixture(name, &self.path(&format!("sysroot-{name}")))
    }
    /// `report.json`, the `--report` the tests ask for, as JSON.
    pub fn report(&self) -> serde_json::Value {
        let bytes = std::fs::read(self.path("report.json")).unwrap();
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "the report is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&bytes)
            )
        })
    }
    /// `ksinstall install --ks KS --media MEDIA --sysroot SYSROOT --cmdline ""`, to add to.
    pub fn install_command(&self, sysroot: &Path, media: &OsStr, ks: &Path) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ksinstall"));
        c.arg("install")
            .arg("--ks")
            .arg(ks)
            .arg("--media")
            .arg(media)
            .arg("--sysroot")
            .arg(sysroot)
            .args(["--cmdline", ""]);
        c
    }
    /// Install from the medium onto the host, logging at info.
    pub fn install(&self, ks: &Path, extra: &[&str]) -> Output {
        self.install_from(self.path("media").as_os_str(), ks, extra)
    }
    /// Install from other media (an ISO, a URL).
    pub fn install_from(&self, media: &OsStr, ks: &Path, extra: &[&str]) -> Output {
        self.install_in(&self.sysroot, media, ks, extra)
    }
    /// Install on another recorded host (a fixture under tests/fixtures).
    pub fn install_on(&self, name: &str, media: &OsStr, ks: &Path, extra: &[&str]) -> Output {
        self.install_in(&fixture(name), media, ks, extra)
    }
    fn install_in(&self, sysroot: &Path, media: &OsStr, ks: &Path, extra: &[&str]) -> Output {
        self.install_command(sysroot, media, ks)
            .args(extra)
            .env("RUST_LOG", "info")
            .output()
            .unwrap()
    }
}
