//! Installation media: a tree shaped like an extracted ESXi 8 installer ISO (`BOOT.CFG`, the
//! modules, `EFI/BOOT/`), plus `MANIFEST.JSON` with every component's size, SHA-256, platform and
//! role. Opening media checks its structure; hashes are checked as the bytes stream to the target.
//! Format: docs/MEDIA.md.

pub mod bootcfg;
pub mod check;
pub mod imgdb;
pub mod iso;
pub mod manifest;
pub mod real;
pub mod signature;
pub mod source;
pub mod verify;

use std::io::Read;

use anyhow::{Context, Result};

pub use bootcfg::BootCfg;
pub use manifest::{Component, Coverage, Manifest, Platform, Role};
pub use source::{DirSource, HttpSource, MediaSource};

/// Why media cannot be used. Each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{source_name}: {file}: {message}")]
    Invalid {
        source_name: String,
        file: String,
        message: String,
    },
}

/// Media whose structure has been checked: the manifest and the installer's `BOOT.CFG` agree,
/// and every file exists with the size the manifest gives (where the source can tell).
pub struct Media {
    pub source: Box<dyn MediaSource>,
    pub manifest: Manifest,
    pub boot_cfg: BootCfg,
    pub metadata: Metadata,
}

/// Where the media's sizes and checksums come from, and what they leave uncovered.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Metadata {
    pub kind: MetadataKind,
    /// Media files no VIB payload covers (never called verified).
    pub not_covered: Vec<String>,
    pub signatures: real::Signatures,
    /// Things the plan must say (no BIOS boot files, say).
    pub warnings: Vec<String>,
}

impl Metadata {
    /// For the plan: what vouches for the files.
    pub(crate) fn verified_by(&self) -> String {
        match &self.kind {
            MetadataKind::ImageDb { profile } => {
                format!("VMware's image database (imgdb.tgz), image profile {profile}")
            }
            MetadataKind::Manifest => "MANIFEST.JSON (custom media)".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "from")]
pub enum MetadataKind {
    /// VMware's `imgdb.tgz`: the image profile and the VIB descriptors.
    ImageDb { profile: String },
    /// Our `MANIFEST.JSON` alone (custom media).
    Manifest,
}

pub(crate) const READ_LIMIT: u64 = 16 << 20;
/// VMware's image database is a few MiB at most; anything far larger is not one.
pub(crate) const IMGDB_LIMIT: u64 = 64 << 20;

pub(crate) fn read_small(source: &dyn MediaSource, path: &str, limit: u64) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    source
        .open(path)?
        .take(limit + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("reading {path}"))?;
    anyhow::ensure!(
        buf.len() as u64 <= limit,
        "larger than {limit} bytes: not what it should be"
    );
    Ok(buf)
}

fn read_manifest(
    source: &dyn MediaSource,
    bad: &dyn Fn(&str, String) -> MediaError,
) -> Result<Manifest, MediaError> {
    let bytes = read_small(source, manifest::MANIFEST_NAME, READ_LIMIT)
        .map_err(|e| bad(manifest::MANIFEST_NAME, format!("{e:#}")))?;
    Manifest::parse(&bytes).map_err(|e| bad(manifest::MANIFEST_NAME, format!("{e:#}")))
}

/// Custom media described by MANIFEST.JSON alone: it and BOOT.CFG must agree.
fn check_manifest(
    manifest: &Manifest,
    boot_cfg: &BootCfg,
    bad: &dyn Fn(&str, String) -> MediaError,
) -> Result<(), MediaError> {
    if boot_cfg.build.as_deref() != Some(manifest.build.as_str()) {
        return Err(bad(
            "BOOT.CFG",
            format!(
                "build={} but the manifest says {}",
                boot_cfg.build.as_deref().unwrap_or(""),
                manifest.build
            ),
        ));
    }
    for (i, reference) in boot_cfg.files().iter().enumerate() {
        let path =
            manifest::module_path(reference).map_err(|e| bad("BOOT.CFG", format!("module {e}")))?;
        let Some(c) = manifest.find(&path) else {
            return Err(bad(
                "BOOT.CFG",
                format!("module {path} is not in the manifest"),
            ));
        };
        let want = if i == 0 { Role::Kernel } else { Role::Module };
        if c.role != want && c.role != Role::Dpu {
            return Err(bad(
                &path,
                format!(
                    "BOOT.CFG lists it as a {want:?} but the manifest says {:?}",
                    c.role
                ),
            ));
        }
    }
    Ok(())
}

impl Media {
    /// Open media from a directory, an ISO9660 image file or CD, or an `http(s)://` URL (with
    /// the default HTTP options).
    pub fn open(location: &str) -> Result<Media> {
        Media::open_with(location, &crate::http::Http::new(Default::default())?)
    }

    /// As `open`, with the HTTP client to use for a URL.
    pub(crate) fn open_with(location: &str, http: &crate::http::Http) -> Result<Media> {
        use std::os::unix::fs::FileTypeExt;
        let path = std::path::Path::new(location);
        let is_image = path.is_file()
            || std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device());
        let source: Box<dyn MediaSource> =
            if location.starts_with("http://") || location.starts_with("https://") {
                Box::new(HttpSource::new(location, http.clone()))
            } else if is_image {
                Box::new(iso::IsoSource::open(std::path::Path::new(location))?)
            } else {
                Box::new(DirSource::new(location)?)
            };
        Media::from_source(source)
    }

    pub(crate) fn from_source(source: Box<dyn MediaSource>) -> Result<Media> {
        let name = source.describe();
        let bad = |file: &str, message: String| MediaError::Invalid {
            source_name: name.clone(),
            file: file.to_string(),
            message,
        };
        let cfg_bytes = read_small(source.as_ref(), "BOOT.CFG", READ_LIMIT)
            .map_err(|e| bad("BOOT.CFG", format!("{e:#}")))?;
        let cfg_text =
            String::from_utf8(cfg_bytes).map_err(|_| bad("BOOT.CFG", "not UTF-8 text".into()))?;
        let boot_cfg = BootCfg::parse(&cfg_text).map_err(|e| bad("BOOT.CFG", e.to_string()))?;
        if boot_cfg.build.as_deref().is_none_or(str::is_empty) {
            return Err(bad("BOOT.CFG", "has no build=".into()).into());
        }
        if boot_cfg.files().is_empty() {
            return Err(bad("BOOT.CFG", "names no kernel".into()).into());
        }
        // VMware's own metadata when the media carry it; our MANIFEST.JSON then only adds the
        // extra files of custom media. Without imgdb.tgz, MANIFEST.JSON describes everything.
        let has_imgdb = source.size(real::IMGDB).is_ok();
        let has_manifest = source.size(manifest::MANIFEST_NAME).is_ok();
        let (manifest, metadata) = if has_imgdb {
            let tgz = read_small(source.as_ref(), real::IMGDB, IMGDB_LIMIT)
                .map_err(|e| bad(real::IMGDB, format!("{e:#}")))?;
            let real = real::read(source.as_ref(), &boot_cfg, &tgz)?;
            let mut manifest = real.manifest;
            if has_manifest {
                let extra = read_manifest(source.as_ref(), &bad)?;
                for c in extra.components {
                    if manifest.find(&c.path).is_none() {
                        manifest.components.push(c);
                    }
                }
            }
            let metadata = Metadata {
                kind: MetadataKind::ImageDb {
                    profile: real.profile,
                },
                not_covered: real.not_covered,
                signatures: real.signatures,
                warnings: real.warnings,
            };
            (manifest, metadata)
        } else if has_manifest {
            let manifest = read_manifest(source.as_ref(), &bad)?;
            check_manifest(&manifest, &boot_cfg, &bad)?;
            let metadata = Metadata {
                kind: MetadataKind::Manifest,
                not_covered: Vec::new(),
                signatures: real::Signatures::NotApplicable,
                warnings: Vec::new(),
            };
            (manifest, metadata)
        } else {
            return Err(bad(
                real::IMGDB,
                "the media carry neither imgdb.tgz (VMware's image database) nor MANIFEST.JSON"
                    .into(),
            )
            .into());
        };
        for c in manifest
            .components
            .iter()
            .filter(|c| c.coverage == Coverage::Manifest)
        {
            match source.size(&c.path) {
                Ok(Some(size)) if size != c.size => {
                    return Err(bad(
                        &c.path,
                        format!("is {size} bytes; the manifest says {}", c.size),
                    )
                    .into());
                }
                Ok(_) => {}
                Err(e) => return Err(bad(&c.path, format!("{e:#}")).into()),
            }
        }
        Ok(Media {
            source,
            manifest,
            boot_cfg,
            metadata,
        })
    }

    /// Check the descriptor signatures against `anchor` (`--trust-cert`): imgdb.tgz is read
    /// again and must be the bytes pinned at open; a bad signature refuses the media (exit 4).
    pub fn check_signatures(&mut self, anchor: &signature::Anchor) -> Result<(), MediaError> {
        let name = self.source.describe();
        let bad = |message: String| MediaError::Invalid {
            source_name: name.clone(),
            file: real::IMGDB.into(),
            message,
        };
        let Some(pinned) = self.manifest.find(real::IMGDB).map(|c| c.sha256.clone()) else {
            return Ok(()); // custom media with MANIFEST.JSON alone: no descriptors
        };
        let tgz = read_small(self.source.as_ref(), real::IMGDB, IMGDB_LIMIT)
            .map_err(|e| bad(format!("{e:#}")))?;
        if verify::sha256_hex(&tgz) != pinned {
            return Err(bad("changed since the media were opened".into()));
        }
        let db = imgdb::parse(&tgz).map_err(|e| bad(e.to_string()))?;
        let state = real::signatures_with(&db, Some(anchor));
        if let real::Signatures::Failed { member, reason } = &state {
            return Err(bad(format!("{member}: signature: {reason}")));
        }
        self.metadata.signatures = state;
        Ok(())
    }

    /// Pin every DPU component not pinned yet (the ESXio depot of real media): its size and
    /// SHA-256 as read now, so that what a DPU payload packs is the file that was looked at.
    /// Done only for a host that has a DPU to install (the plan's payload id needs it).
    pub fn pin_dpu(&mut self) -> Result<()> {
        let name = self.source.describe();
        for c in self
            .manifest
            .components
            .iter_mut()
            .filter(|c| c.role == Role::Dpu && c.sha256.is_empty())
        {
            let mut r = self
                .source
                .open(&c.path)
                .with_context(|| format!("{name}: opening {}", c.path))?;
            let (size, sha256) =
                verify::sha256_of(&mut r).with_context(|| format!("{name}: reading {}", c.path))?;
            anyhow::ensure!(
                size == c.size,
                "{name}: {}: read {size} bytes, the media gave its size as {}",
                c.path,
                c.size
            );
            c.sha256 = sha256;
        }
        Ok(())
    }

    /// Whether the bytes can be read twice cheaply (a local directory), so that every
    /// component can be hashed before anything is written.
    pub fn is_local(&self) -> bool {
        matches!(self.source.location(), source::Location::Local(_))
    }

    /// Read every component through the verifier (size and SHA-256), before anything is
    /// written. `progress` gets the running byte count.
    pub fn verify_all(&self, progress: &mut dyn FnMut(u64)) -> Result<()> {
        // A DPU component not pinned (no DPU to install) is not read.
        self.verify_components(&|c| !(c.role == Role::Dpu && c.sha256.is_empty()), progress)
    }

    /// The same for the components `which` selects (the host's own, say: the DPU's are checked
    /// as its payload is packed).
    pub(crate) fn verify_components(
        &self,
        which: &dyn Fn(&Component) -> bool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        // Hashing is the cost, and it is this check alone that must precede the first write:
        // the components are shared out, largest first, over a thread per core (at most 4).
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 4);
        let mut todo: Vec<&Component> = self
            .manifest
            .components
            .iter()
            .filter(|c| which(c))
            .collect();
        // One media file can go to two places (safeboot: the ESP's default loader and its
        // VMware copy); it is read once.
        let mut seen = std::collections::HashSet::new();
        todo.retain(|c| seen.insert(c.path.to_ascii_lowercase()));
        todo.sort_by_key(|c| std::cmp::Reverse(c.size));
        let mut shards: Vec<(u64, Vec<&Component>)> = vec![(0, Vec::new()); threads];
        for c in todo {
            if let Some(lightest) = shards.iter_mut().min_by_key(|s| s.0) {
                lightest.0 += c.size;
                lightest.1.push(c);
            }
        }
        let done = AtomicU64::new(0);
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| -> Result<()> {
            let workers: Vec<_> = shards
                .into_iter()
                .filter(|s| !s.1.is_empty())
                .map(|(_, shard)| {
                    let (done, stop) = (&done, &stop);
                    scope.spawn(move || -> Result<()> {
                        let mut buf = vec![0u8; 1 << 20];
                        for c in shard {
                            let src = self
                                .source
                                .open(&c.path)
                                .with_context(|| format!("opening {}", c.path))?;
                            let mut r =
                                verify::VerifyingReader::new(src, &c.path, c.size, &c.sha256);
                            loop {
                                if stop.load(Ordering::Relaxed) {
                                    return Ok(());
                                }
                                // A safe point: nothing has been written yet.
                                if let Err(i) = crate::interrupt::check() {
                                    stop.store(true, Ordering::Relaxed);
                                    return Err(i.into());
                                }
                                let n = r
                                    .read(&mut buf)
                                    .map_err(anyhow::Error::from)
                                    .with_context(|| format!("checking {}", c.describe()));
                                match n {
                                    Ok(0) => break,
                                    Ok(n) => {
                                        done.fetch_add(n as u64, Ordering::Relaxed);
                                    }
                                    Err(e) => {
                                        stop.store(true, Ordering::Relaxed);
                                        return Err(e);
                                    }
                                }
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            while !workers.iter().all(|w| w.is_finished()) {
                progress(done.load(Ordering::Relaxed));
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            progress(done.load(Ordering::Relaxed));
            let mut first = Ok(());
            for w in workers {
                let r = w
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a media check thread failed")));
                if first.is_ok() {
                    first = r;
                }
            }
            first
        })
    }

    /// The components that go into the host's boot bank, kernel first: in the image profile's
    /// boot order with imgdb.tgz last (VMware's metadata), or in `boot.cfg` order (MANIFEST.JSON).
    pub fn bank_components(&self) -> Vec<&Component> {
        bank_components(&self.manifest, &self.boot_cfg, &self.metadata)
    }
}

/// The kernel and modules a boot bank gets: VMware's image database names them (real media), else
/// `BOOT.CFG`'s modules that the manifest lists, the DPU's never.
pub fn bank_components<'a>(
    manifest: &'a Manifest,
    boot_cfg: &BootCfg,
    metadata: &Metadata,
) -> Vec<&'a Component> {
    if matches!(metadata.kind, MetadataKind::ImageDb { .. }) {
        return manifest
            .components
            .iter()
            .filter(|c| matches!(c.role, Role::Kernel | Role::Module))
            .collect();
    }
    boot_cfg
        .files()
        .iter()
        .filter_map(|r| manifest::module_path(r).ok())
        .filter_map(|p| manifest.find(&p))
        .filter(|c| c.role != Role::Dpu)
        .collect()
}
