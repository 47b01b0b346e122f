//! The DPU payload of one card: the ESXio components of the media and the model's firmware
//! bundle, described at plan time (every part with its hash) and staged as one file just before
//! the install: a BlueField's vendor BF-Bundle followed by its `bf.cfg` and the ESXio components
//! (as `bfb-install -b -c -f` sends them), or a Pensando DSC package for devlink.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::bundle::{Bundle, FileKind, PayloadFormat};
use crate::media::manifest::Manifest;
use crate::media::verify::{self, VerifyingReader};
use crate::media::Media;

/// Where a part's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "from", content = "path")]
pub enum PartSource {
    /// A component of the installation media (its media path).
    Media(String),
    /// A file of the firmware bundle.
    Bundle(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadPart {
    /// The name inside the payload.
    pub name: String,
    pub source: PartSource,
    pub size: u64,
    pub sha256: String,
    /// `esxio`, or the bundle file kind.
    pub kind: String,
}

/// What goes onto one DPU, decided at plan time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PayloadPlan {
    pub format: PayloadFormat,
    pub parts: Vec<PayloadPart>,
    /// SHA-256 over the format and every part's name, size and hash: the same payload has the
    /// same id on every host, which is how a DPU that already runs it is recognised.
    pub id: String,
    /// `ESXio 8.0.3-0.35.24280767 + firmware 32.41.1000`
    pub label: String,
    pub esxio_build: String,
    pub firmware_version: String,
    /// The staged file's name (in the firmware search path for devlink).
    pub file_name: String,
}

fn kind_name(kind: FileKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Describe the payload for a card from the media manifest and its bundle.
pub fn describe(bundle: &Bundle, media: &Manifest) -> PayloadPlan {
    let format = bundle.manifest.format;
    let mut parts: Vec<PayloadPart> = bundle
        .manifest
        .files
        .iter()
        .map(|f| PayloadPart {
            name: f.path.clone(),
            source: PartSource::Bundle(bundle.file_path(f)),
            size: f.size,
            sha256: f.sha256.to_ascii_lowercase(),
            kind: kind_name(f.kind),
        })
        .collect();
    // A DSC is flashed with the vendor's package byte for byte (its own tools check it); the
    // ESXio components travel only in a BlueField's boot stream (docs/DPU.md).
    let esxio = if format == PayloadFormat::DscPackage {
        Vec::new()
    } else {
        media.dpu_components().collect()
    };
    parts.extend(esxio.into_iter().map(|c| PayloadPart {
        name: format!("esxio/{}", c.path),
        source: PartSource::Media(c.path.clone()),
        size: c.size,
        sha256: c.sha256.to_ascii_lowercase(),
        kind: "esxio".into(),
    }));
    let mut h = Sha256::new();
    h.update(format!("{format:?}\n"));
    for p in &parts {
        h.update(format!("{} {} {}\n", p.name, p.size, p.sha256));
    }
    let id = verify::hex(&h.finalize());
    let ext = match format {
        PayloadFormat::BfbPassthrough => "bfb",
        PayloadFormat::DscPackage => "tar",
    };
    PayloadPlan {
        format,
        file_name: format!("ksinstall-{}.{ext}", &id[..16]),
        label: format!(
            "ESXio {} + firmware {}",
            media.build, bundle.manifest.version
        ),
        esxio_build: media.build.clone(),
        firmware_version: bundle.manifest.version.clone(),
        parts,
        id,
    }
}

/// A payload written out and ready to send. Its own SHA-256 is taken as it is sent, on the
/// DPU's thread, not here on the path before the first write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Staged {
    pub path: PathBuf,
    pub size: u64,
    /// For a BlueField: the line its `bf.cfg` hook logs when the card's installer has run it,
    /// the only evidence of success (`marker`).
    pub marker: Option<String>,
}

/// Where a BlueField payload is staged: memory (`/dev/shm`) where there is such a file system,
/// as in the installer's own RAM-backed environment, else the temporary directory. The staged
/// stream is written once and read once; putting it on a disk would only add writeback.
pub fn scratch_dir() -> Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("ksinstall-")
            .tempdir_in(shm)
    } else {
        tempfile::Builder::new().prefix("ksinstall-").tempdir()
    };
    dir.context("making a directory to stage the DPU payload in")
}

/// Open a part's bytes through the SHA-256 check: a part that does not match the plan fails the
/// staging, before anything reaches the DPU.
fn open_part<'a>(p: &'a PayloadPart, media: &'a Media) -> Result<Box<dyn Read + Send + 'a>> {
    let raw: Box<dyn Read + Send> = match &p.source {
        PartSource::Media(path) => media
            .source
            .open(path)
            .with_context(|| format!("opening {path} on the media"))?,
        PartSource::Bundle(path) => {
            Box::new(File::open(path).with_context(|| format!("opening {}", path.display()))?)
        }
    };
    Ok(Box::new(VerifyingReader::new(
        raw, &p.name, p.size, &p.sha256,
    )))
}

/// The line a BlueField logs through `bfrshlog` when its installer has run our `bf.cfg` hook:
/// the payload id, and this run's own id so that a line left in the log by an earlier install
/// of the same payload is not taken for this one.
pub fn marker(payload_id: &str, run: &str) -> String {
    format!("ksinstall payload {payload_id} run {run} installed")
}

/// `bf.cfg`: what the BlueField's installer is asked to update, and the vendor's post-install
/// hook (`bfb_post_install`, called by the BFB's install.sh after the OS and firmware are
/// written, before `Installation finished`/`Rebooting...`) logging `marker` into the rshim log
/// with `bfrshlog`, where the host reads it.
pub fn bf_cfg(plan: &PayloadPlan, model: &str, address: &str, run: &str) -> String {
    format!(
        "# bf.cfg made by ksinstall {} for the {model} at {address}\n\
         UPDATE_ATF_UEFI=\"yes\"\n\
         UPDATE_DPU_OS=\"yes\"\n\
         WITH_NIC_FW_UPDATE=\"yes\"\n\
         KSINSTALL_PAYLOAD_ID=\"{}\"\n\
         KSINSTALL_RUN=\"{run}\"\n\
         KSINSTALL_PAYLOAD_LABEL=\"{}\"\n\
         bfb_post_install()\n\
         {{\n\
         \tbfrshlog \"INFO: {}\"\n\
         }}\n",
        env!("CARGO_PKG_VERSION"),
        plan.id,
        plan.label,
        marker(&plan.id, run)
    )
}

fn tar_part(tar: &mut tar::Builder<&mut dyn Write>, p: &PayloadPart, media: &Media) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(p.size);
    header.set_mode(0o644);
    header.set_mtime(0);
    let reader = open_part(p, media)?;
    tar.append_data(&mut header, &p.name, reader)
        .with_context(|| format!("packing {}", p.name))
}

/// Write the payload to `dir/<file_name>`; the file is removed again if anything fails.
pub fn stage(
    plan: &PayloadPlan,
    media: &Media,
    dir: &Path,
    model: &str,
    address: &str,
) -> Result<Staged> {
    let path = dir.join(&plan.file_name);
    let parent = path.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    // This run's id: a fresh one per staging, so the card's log line is this install's.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let result = write_payload(plan, media, &path, model, address, &run);
    if result.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    result
}

fn write_payload(
    plan: &PayloadPlan,
    media: &Media,
    path: &Path,
    model: &str,
    address: &str,
    run: &str,
) -> Result<Staged> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    match plan.format {
        PayloadFormat::BfbPassthrough => {
            // As bfb-install sends them (`cat bfb cfg rootfs > boot`): the vendor's stream
            // unchanged (never re-packed: its images and signatures are NVIDIA's), our bf.cfg,
            // and the ESXio components as a tar where `-f rootfs` would go. Appending, not
            // embedding bf.cfg as image 59 with mlx-mkbfb: that would rewrite the vendor stream
            // (bfb-install embeds only in its runtime mode).
            for p in plan.parts.iter().filter(|p| p.kind == "vendor-bfb") {
                let mut r = open_part(p, media)?;
                std::io::copy(&mut r, &mut out).with_context(|| format!("copying {}", p.name))?;
            }
            out.write_all(bf_cfg(plan, model, address, run).as_bytes())?;
            let esxio: Vec<&PayloadPart> =
                plan.parts.iter().filter(|p| p.kind == "esxio").collect();
            if !esxio.is_empty() {
                let mut tar = tar::Builder::new(&mut out as &mut dyn Write);
                for p in &esxio {
                    tar_part(&mut tar, p, media)?;
                }
                tar.finish().context("finishing the ESXio archive")?;
            }
        }
        PayloadFormat::DscPackage => {
            for p in plan.parts.iter().filter(|p| p.kind == "dsc-firmware") {
                let mut r = open_part(p, media)?;
                std::io::copy(&mut r, &mut out).with_context(|| format!("copying {}", p.name))?;
            }
        }
    }
    let mut file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {}", path.display()))?;
    file.flush()?;
    let size = file
        .stream_position()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Staged {
        path: path.to_path_buf(),
        size,
        marker: (plan.format != PayloadFormat::DscPackage).then(|| marker(&plan.id, run)),
    })
}
