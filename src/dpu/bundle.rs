//! DPU firmware bundles: one directory per model under `firmware/`, each with a `bundle.toml`
//! naming the vendor, the catalog entries it fits, its version, the oldest ESXi it pairs with and
//! every file with its size and SHA-256. A bundle is checked like installation media: no path
//! leaves its directory, no symlinks, every byte hashes to the manifest. See firmware/README.md.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::media::manifest::check_relative;
use crate::media::verify;

/// What a bundle file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// Pensando DSC: the firmware package flashed through devlink.
    DscFirmware,
    /// BlueField: the vendor's complete BF-Bundle (`.bfb`), sent byte for byte.
    VendorBfb,
}

/// How the payload reaches the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadFormat {
    /// The vendor's BF-Bundle `.bfb` passed through unchanged, followed by our `bf.cfg` (as
    /// `bfb-install -c` appends it) and the ESXio components (in the place of `bfb-install -f`).
    BfbPassthrough,
    /// A package file flashed with devlink.
    DscPackage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleFile {
    pub path: String,
    pub kind: FileKind,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    pub vendor: String,
    pub model: String,
    /// The `firmware/dpus.toml` entries this bundle fits.
    pub catalog_ids: Vec<String>,
    pub generations: Vec<String>,
    pub version: String,
    /// The oldest ESXi release the bundle pairs with, `8.0.0`.
    pub min_esxi: String,
    pub format: PayloadFormat,
    /// True for the small made-up payloads shipped for tests and the demo: a real bundle of the
    /// same model is always preferred.
    #[serde(default)]
    pub synthetic: bool,
    #[serde(rename = "file")]
    pub files: Vec<BundleFile>,
}

/// A bundle found on disk and checked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: BundleManifest,
}

impl Bundle {
    pub(crate) fn file_path(&self, f: &BundleFile) -> PathBuf {
        self.dir.join(&f.path)
    }
}

/// The firmware directory used when none is given, found relative to the running binary (never
/// a path compiled in, which would name the build machine's checkout): `PREFIX/share/ksinstall/
/// firmware` for a binary in `PREFIX/bin`, `firmware/` beside the binary (an unpacked release),
/// the checkout's `firmware/` for a binary in a cargo `target/` directory or run by cargo
/// (`CARGO_MANIFEST_DIR` in the environment, as `cargo run` and `cargo test` set it), else
/// `/usr/share/ksinstall/firmware`. `Err` names every place looked in.
pub fn default_root() -> Result<PathBuf, FirmwareRootError> {
    let exe = std::env::current_exe().map_err(FirmwareRootError::NoExe)?;
    let mut candidates = Vec::new();
    if let Some(dir) = exe.parent() {
        if let Some(prefix) = dir.parent() {
            candidates.push(prefix.join("share/ksinstall/firmware"));
        }
        candidates.push(dir.join("firmware"));
        // target/debug/ksinstall, target/<triple>/release/ksinstall: the checkout it was built in.
        if let Some(target) = dir
            .ancestors()
            .find(|a| a.file_name().is_some_and(|n| n == "target"))
        {
            if let Some(checkout) = target.parent() {
                candidates.push(checkout.join("firmware"));
            }
        }
    }
    if let Some(checkout) = std::env::var_os("CARGO_MANIFEST_DIR") {
        candidates.push(PathBuf::from(checkout).join("firmware"));
    }
    candidates.push(PathBuf::from("/usr/share/ksinstall/firmware"));
    match candidates.iter().find(|c| c.join("dpus.toml").is_file()) {
        Some(found) => Ok(found.clone()),
        None => Err(FirmwareRootError::NotFound {
            looked_in: candidates,
        }),
    }
}

/// Why no firmware directory was found when none was given.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareRootError {
    #[error(
        "no firmware directory: give --firmware DIR (the running binary's path is unknown: {0})"
    )]
    NoExe(std::io::Error),
    #[error(
        "no firmware directory: give --firmware DIR (looked in {})",
        joined(looked_in)
    )]
    NotFound { looked_in: Vec<PathBuf> },
}

fn joined(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|c| c.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Compare dotted versions part by part, numbers as numbers (`8.0.10` > `8.0.9`).
pub(crate) fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_ascii_alphanumeric())
            .map(str::to_string)
            .collect()
    };
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(m), Ok(n)) => m.cmp(&n),
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

/// Read and check one bundle directory: the manifest, the paths, the sizes and the hashes.
pub fn load(dir: &Path) -> Result<Bundle> {
    let path = dir.join("bundle.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let manifest: BundleManifest = toml::from_str(&text)
        .with_context(|| format!("{}: not a bundle manifest", path.display()))?;
    if manifest.files.is_empty() {
        bail!("{}: the bundle lists no files", path.display());
    }
    // Each format takes its own kinds: a file of another kind would be silently left out.
    for f in &manifest.files {
        let fits = match manifest.format {
            PayloadFormat::BfbPassthrough => f.kind == FileKind::VendorBfb,
            PayloadFormat::DscPackage => f.kind == FileKind::DscFirmware,
        };
        if !fits {
            bail!(
                "{}: {} is of a kind that a {:?} bundle does not carry",
                path.display(),
                f.path,
                manifest.format
            );
        }
    }
    if manifest.format == PayloadFormat::DscPackage && manifest.files.len() != 1 {
        bail!(
            "{}: a DSC bundle holds exactly one firmware package",
            path.display()
        );
    }
    if manifest.format == PayloadFormat::BfbPassthrough && manifest.files.len() != 1 {
        bail!(
            "{}: a bfb-passthrough bundle holds exactly one vendor .bfb",
            path.display()
        );
    }
    // The directory itself, resolved: every file must resolve inside it (no symlinked
    // directory on the way out).
    let root = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    for f in &manifest.files {
        check_relative(&f.path)
            .map_err(|e| anyhow::anyhow!("{}: {}: {e}", path.display(), f.path))?;
        let p = dir.join(&f.path);
        let meta = std::fs::symlink_metadata(&p)
            .with_context(|| format!("{}: {} is missing", dir.display(), f.path))?;
        if !meta.file_type().is_file() {
            bail!("{}: {} is not a regular file", dir.display(), f.path);
        }
        let real = p
            .canonicalize()
            .with_context(|| format!("resolving {}", p.display()))?;
        if !real.starts_with(&root) {
            bail!(
                "{}: {} leads out of the bundle directory (to {})",
                dir.display(),
                f.path,
                real.display()
            );
        }
        if meta.len() != f.size {
            bail!(
                "{}: {} is {} bytes, the manifest says {}",
                dir.display(),
                f.path,
                meta.len(),
                f.size
            );
        }
        let mut file =
            std::fs::File::open(&p).with_context(|| format!("opening {}", p.display()))?;
        let (_, got) =
            verify::sha256_of(&mut file).with_context(|| format!("reading {}", p.display()))?;
        if !got.eq_ignore_ascii_case(&f.sha256) {
            bail!(
                "{}: {} has SHA-256 {got}, the manifest says {}",
                dir.display(),
                f.path,
                f.sha256
            );
        }
    }
    Ok(Bundle {
        dir: dir.to_path_buf(),
        manifest,
    })
}

/// The bundle for a catalog entry and an ESXi version: a real bundle before a synthetic one,
/// then the newest. Directories that are not bundles are skipped; a bundle that fits but fails
/// its checks is an error (an operator dropped it there to be used).
pub fn find(root: &Path, catalog_id: &str, esxi_version: &str) -> Result<Option<Bundle>> {
    let entries = std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))?;
    let mut found: Vec<Bundle> = Vec::new();
    for e in entries {
        let e = e.with_context(|| format!("reading {}", root.display()))?;
        let dir = e.path();
        if !dir.join("bundle.toml").is_file() {
            continue;
        }
        let text = std::fs::read_to_string(dir.join("bundle.toml"))
            .with_context(|| format!("reading {}", dir.join("bundle.toml").display()))?;
        // A cheap look first, so a broken bundle of another model does not stop this one.
        let fits = match toml::from_str::<BundleManifest>(&text) {
            Ok(m) => m.catalog_ids.iter().any(|c| c == catalog_id),
            Err(e) => {
                // Another model's broken bundle must not stop this install; say so.
                log::warn!(
                    "{}: not a bundle manifest: {e}",
                    dir.join("bundle.toml").display()
                );
                false
            }
        };
        if !fits {
            continue;
        }
        let b = load(&dir)?;
        if compare_versions(esxi_version, &b.manifest.min_esxi) == Ordering::Less {
            log::info!(
                "{}: needs ESXi {} or later, the media is {esxi_version}",
                dir.display(),
                b.manifest.min_esxi
            );
            continue;
        }
        found.push(b);
    }
    found.sort_by(|a, b| {
        (!a.manifest.synthetic)
            .cmp(&!b.manifest.synthetic)
            .then(compare_versions(&a.manifest.version, &b.manifest.version))
    });
    Ok(found.pop())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_with(dir: &Path, path: &str) -> anyhow::Result<Bundle> {
        std::fs::write(
            dir.join("bundle.toml"),
            format!(
                "vendor = \"V\"\nmodel = \"M\"\ncatalog_ids = [\"m\"]\ngenerations = []\nversion = \"1\"\nmin_esxi = \"8.0.0\"\nformat = \"bfb-passthrough\"\n[[file]]\npath = \"{path}\"\nkind = \"vendor-bfb\"\nsize = 2\nsha256 = \"{}\"\n",
                verify::sha256_hex(b"hi")
            ),
        )?;
        load(dir)
    }

    #[test]
    fn bundle_files_stay_inside_their_directory() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("b");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(t.path().join("outside.bin"), b"hi").unwrap();
        std::fs::write(dir.join("fw.bin"), b"hi").unwrap();
        assert!(bundle_with(&dir, "fw.bin").is_ok());
        for bad in ["../outside.bin", "/etc/passwd", "a/../../outside.bin"] {
            let e = bundle_with(&dir, bad).unwrap_err();
            assert!(format!("{e:#}").contains(bad), "{bad}: {e:#}");
        }
        std::os::unix::fs::symlink(t.path().join("outside.bin"), dir.join("link.bin")).unwrap();
        let e = bundle_with(&dir, "link.bin").unwrap_err();
        assert!(format!("{e:#}").contains("not a regular file"), "{e:#}");
        // A symlinked directory on the way: the file resolves outside.
        std::fs::create_dir(t.path().join("elsewhere")).unwrap();
        std::fs::write(t.path().join("elsewhere/fw.bin"), b"hi").unwrap();
        std::os::unix::fs::symlink(t.path().join("elsewhere"), dir.join("sub")).unwrap();
        let e = bundle_with(&dir, "sub/fw.bin").unwrap_err();
        assert!(
            format!("{e:#}").contains("leads out of the bundle"),
            "{e:#}"
        );
        std::fs::write(dir.join("fw.bin"), b"ho").unwrap();
        let e = bundle_with(&dir, "fw.bin").unwrap_err();
        assert!(format!("{e:#}").contains("has SHA-256"), "{e:#}");
    }

    #[test]
    fn versions_compare_as_numbers() {
        assert_eq!(compare_versions("8.0.10", "8.0.9"), Ordering::Greater);
        assert_eq!(compare_versions("8.0", "8.0.0"), Ordering::Less);
        assert_eq!(
            compare_versions("1.93.0-E-35", "1.93.0-E-35"),
            Ordering::Equal
        );
    }
}
