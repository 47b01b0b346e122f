//! Media as VMware makes them: no `MANIFEST.JSON`, only the installer's `BOOT.CFG` and VMware's
//! image database `imgdb.tgz`. Every file the install lays down is matched here to the VIB
//! payload that covers it (size and plain SHA-256 of the stored file), before anything is
//! written; the few files no VIB covers are named as such. docs/MEDIA.md.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::bootcfg::BootCfg;
use super::imgdb::{self, Covered, ImageDb};
use super::manifest::{module_path, Component, Coverage, Manifest, Platform, Role, FORMAT};
use super::source::MediaSource;
use super::MediaError;

pub const IMGDB: &str = "imgdb.tgz";

/// Files of a real ISO that no VIB payload covers (media.md §2): named in the plan and the
/// report as such. `imgdb.tgz` goes to the boot bank, `esxiodpt.tgz` to a DPU; the rest are the
/// installer's own and are not laid down.
pub const NOT_COVERED: [&str; 5] = [
    "imgdb.tgz",
    "imgpayld.tgz",
    "basemisc.tgz",
    "resvibs.tgz",
    "esxiodpt.tgz",
];

/// ESP loaders: (file on the media, VIB payload that covers it, where it goes on the ESP).
/// On the ISO, `EFI/BOOT/BOOTX64.EFI` is mboot; safeboot is `SAFEBOOT.EFI` (media.md §1, §3).
const EFI_LOADERS: [(&str, &str, &str); 4] = [
    (
        "EFI/BOOT/SAFEBOOT.EFI",
        "safeboot.efi",
        "EFI/BOOT/BOOTX64.EFI",
    ),
    (
        "EFI/BOOT/SAFEBOOT.EFI",
        "safeboot.efi",
        "EFI/VMware/safeboot64.efi",
    ),
    (
        "EFI/BOOT/BOOTX64.EFI",
        "BOOTx64.EFI",
        "EFI/VMware/mboot64.efi",
    ),
    (
        "EFI/BOOT/CRYPTO64.EFI",
        "crypto64.efi",
        "EFI/VMware/crypto64.efi",
    ),
];

/// BIOS boot files at the media root, copied to the ESP's root under the same name.
const BIOS_LOADERS: [&str; 3] = ["safeboot.c32", "mboot.c32", "ldlinux.sys"];
const BIOS_UPPER: [&str; 3] = ["SAFEBOOT.C32", "MBOOT.C32", "LDLINUX.SYS"];

/// Whether descriptor signatures were checked, in words for the plan and the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Signatures {
    /// Our own manifest: there are none to check.
    NotApplicable,
    /// The image carries no `.xml.sig` files.
    NotCarried,
    /// The image carries them and they were not checked, with why (no certificate to check
    /// against).
    NotChecked { count: usize, reason: String },
    /// Every signature verified against the trust certificate (`--trust-cert`).
    Verified {
        count: usize,
        /// Descriptors that carry no signature.
        unsigned: usize,
        signers: Vec<String>,
        anchor: String,
    },
    /// A signature did not verify (the media are refused: exit 4).
    Failed { member: String, reason: String },
}

impl Signatures {
    /// Whether a signature was found bad.
    pub fn failed(&self) -> bool {
        matches!(self, Signatures::Failed { .. })
    }
}

impl std::fmt::Display for Signatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signatures::NotApplicable => write!(f, "none (custom media with MANIFEST.JSON)"),
            Signatures::NotCarried => {
                write!(f, "not checked: the image carries no descriptor signatures")
            }
            Signatures::NotChecked { count, reason } => {
                write!(
                    f,
                    "not checked: {count} descriptor signatures present; {reason}"
                )
            }
            Signatures::Verified {
                count,
                unsigned,
                signers,
                anchor,
            } => {
                write!(
                    f,
                    "checked: {count} descriptor signatures verified against the trust certificate {anchor} (signed by {}; validity dates not checked)",
                    signers.join(", ")
                )?;
                if *unsigned > 0 {
                    write!(f, "; {unsigned} descriptors carry no signature")?;
                }
                Ok(())
            }
            Signatures::Failed { member, reason } => {
                write!(f, "FAILED: {member}: {reason}")
            }
        }
    }
}

/// What `read` found: the components to lay down (as a `Manifest`), and what is not covered.
pub struct RealMedia {
    pub manifest: Manifest,
    pub profile: String,
    /// Media files no VIB payload covers, by name.
    pub not_covered: Vec<String>,
    pub signatures: Signatures,
    pub warnings: Vec<String>,
}

struct Ctx<'a> {
    source: &'a dyn MediaSource,
    name: String,
}

impl Ctx<'_> {
    fn bad(&self, file: &str, message: String) -> MediaError {
        MediaError::Invalid {
            source_name: self.name.clone(),
            file: file.to_string(),
            message,
        }
    }

    /// The size the media give for `path` must be the payload's, where the source can tell.
    fn check_size(&self, path: &str, c: &Covered) -> Result<(), MediaError> {
        match self.source.size(path) {
            Ok(Some(size)) if size != c.payload.size => Err(self.bad(
                path,
                format!(
                    "is {size} bytes; VIB {} (payload {}) says {}",
                    c.vib, c.payload.name, c.payload.size
                ),
            )),
            Ok(_) => Ok(()),
            Err(e) => Err(self.bad(
                path,
                format!("{e:#} (VIB {} payload {})", c.vib, c.payload.name),
            )),
        }
    }

    /// The size and SHA-256 of a file no VIB covers, read now.
    fn pin(&self, path: &str) -> Result<(u64, String), MediaError> {
        let mut r = self
            .source
            .open(path)
            .map_err(|e| self.bad(path, format!("{e:#}")))?;
        super::verify::sha256_of(&mut r).map_err(|e| self.bad(path, e.to_string()))
    }

    fn exists(&self, path: &str) -> bool {
        self.source.size(path).is_ok()
    }
}

fn component(path: &str, c: &Covered, role: Role, esp_path: Option<&str>) -> Component {
    Component {
        path: path.to_string(),
        size: c.payload.size,
        sha256: c.payload.sha256.clone().unwrap_or_default(),
        platform: Platform::X86_64,
        role,
        esp_path: esp_path.map(str::to_string),
        coverage: Coverage::Vib {
            vib: c.vib.clone(),
            payload: c.payload.name.clone(),
        },
    }
}

/// Build the media's components from `imgdb.tgz` (`tgz`, as read) and the installer's BOOT.CFG.
pub fn read(
    source: &dyn MediaSource,
    boot_cfg: &BootCfg,
    tgz: &[u8],
) -> Result<RealMedia, MediaError> {
    let cx = Ctx {
        source,
        name: source.describe(),
    };
    let db = imgdb::parse(tgz).map_err(|e| cx.bad(IMGDB, e.to_string()))?;
    let covered = db.covered().map_err(|e| cx.bad(IMGDB, e.to_string()))?;
    let (version, build) = version_of(&cx, &db, boot_cfg)?;
    let mut not_covered = Vec::new();
    let mut components = bank(&cx, boot_cfg, &covered, &mut not_covered)?;
    components.push(Component {
        path: IMGDB.into(),
        size: tgz.len() as u64,
        sha256: super::verify::sha256_hex(tgz),
        platform: Platform::X86_64,
        role: Role::Module,
        esp_path: None,
        coverage: Coverage::NotCovered,
    });
    // The ESXio depot is the DPU's part of a unified image: not the host's, and no VIB covers
    // it. It is pinned (read and hashed) only when a DPU is to get it (`Media::pin_dpu`): a host
    // without a DPU never reads its 300-500 MB, and the bench showed that read at open on the
    // critical path of every install (docs/PERFORMANCE.md).
    if let Some(depot) = cfg_module(boot_cfg, "esxiodpt.tgz") {
        let (size, sha256) = match cx.source.size(&depot) {
            Ok(Some(size)) => (size, String::new()),
            // A source that cannot tell the size without reading: pin it now.
            Ok(None) => cx.pin(&depot)?,
            Err(e) => return Err(cx.bad(&depot, format!("{e:#}"))),
        };
        components.push(Component {
            path: depot,
            size,
            sha256,
            platform: Platform::Esxio,
            role: Role::Dpu,
            esp_path: None,
            coverage: Coverage::NotCovered,
        });
    }
    let mut warnings = Vec::new();
    components.extend(loaders(&cx, &db, &mut not_covered, &mut warnings)?);
    not_covered.push("BOOT.CFG".into());
    let signatures = signatures(&db);
    Ok(RealMedia {
        manifest: Manifest {
            format: FORMAT,
            version,
            build,
            components,
        },
        profile: db.profile.name.clone(),
        not_covered,
        signatures,
        warnings,
    })
}

/// The module path BOOT.CFG gives for `file`, if it loads it.
fn cfg_module(cfg: &BootCfg, file: &str) -> Option<String> {
    cfg.files()
        .iter()
        .filter_map(|r| module_path(r).ok())
        .find(|p| p.eq_ignore_ascii_case(file))
}

/// The version (from the esx-base VIB) and build (BOOT.CFG's `build=`): 7.0 and later install;
/// older images have another disk layout (and another installer) and are refused.
fn version_of(cx: &Ctx<'_>, db: &ImageDb, cfg: &BootCfg) -> Result<(String, String), MediaError> {
    let version = db.version().ok_or_else(|| {
        cx.bad(
            IMGDB,
            "the image profile has no esx-base VIB: no version".into(),
        )
    })?;
    let major = version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .ok_or_else(|| {
            cx.bad(
                IMGDB,
                format!("esx-base version {version} is not a version"),
            )
        })?;
    if major < 7 {
        return Err(cx.bad(
            IMGDB,
            format!("ESXi {version}: only ESXi 7.0 and later media install (older ones use another disk layout)"),
        ));
    }
    let build = cfg.build.clone().unwrap_or_default();
    if build.is_empty() {
        return Err(cx.bad("BOOT.CFG", "has no build=".into()));
    }
    if !build.starts_with(&format!("{version}-")) {
        return Err(cx.bad(
            "BOOT.CFG",
            format!("build={build}, but the image's esx-base is {version}"),
        ));
    }
    Ok((version, build))
}

/// The boot bank's modules: every boot-module payload of the profile, in boot order (ties in
/// BOOT.CFG's order, then the profile's). Every module BOOT.CFG loads must be one of them or
/// one of the known uncovered files.
fn bank(
    cx: &Ctx<'_>,
    cfg: &BootCfg,
    covered: &[Covered],
    not_covered: &mut Vec<String>,
) -> Result<Vec<Component>, MediaError> {
    let loaded: Vec<String> = cfg
        .files()
        .iter()
        .map(|r| module_path(r).map_err(|e| cx.bad("BOOT.CFG", format!("module {e}"))))
        .collect::<Result<_, _>>()?;
    let position = |file: &str| loaded.iter().position(|l| l.eq_ignore_ascii_case(file));
    let mut modules: Vec<(usize, &Covered)> = covered
        .iter()
        .enumerate()
        .filter(|(_, c)| imgdb::is_bank_module(&c.payload.kind))
        .collect();
    modules.sort_by_key(|(i, c)| {
        (
            c.payload.boot_order.unwrap_or(u32::MAX),
            position(&c.file).unwrap_or(usize::MAX),
            *i,
        )
    });
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (n, (_, c)) in modules.iter().enumerate() {
        if !seen.insert(c.file.clone()) {
            return Err(cx.bad(IMGDB, format!("two payloads are named {}", c.file)));
        }
        if c.payload.sha256.is_none() {
            return Err(cx.bad(
                &c.file,
                format!(
                    "VIB {} payload {} has no sha-256 of the file",
                    c.vib, c.payload.name
                ),
            ));
        }
        // The name as BOOT.CFG spells it where it lists the file, else the profile's.
        let path = position(&c.file).map_or(c.file.clone(), |i| loaded[i].clone());
        cx.check_size(&path, c)?;
        let role = if n == 0 { Role::Kernel } else { Role::Module };
        out.push(component(&path, c, role, None));
    }
    if let (Some(k), Some(first)) = (loaded.first(), out.first()) {
        if !k.eq_ignore_ascii_case(&first.path) {
            return Err(cx.bad(
                "BOOT.CFG",
                format!(
                    "kernel={k}, but the image profile boots {} first",
                    first.path
                ),
            ));
        }
    }
    for l in &loaded {
        if seen.contains(&l.to_ascii_lowercase()) {
            continue;
        }
        let lower = l.to_ascii_lowercase();
        if !NOT_COVERED.contains(&lower.as_str()) {
            return Err(cx.bad(
                l,
                "BOOT.CFG loads it, but no VIB payload of the image profile covers it".into(),
            ));
        }
        not_covered.push(lower);
    }
    Ok(out)
}

/// Every loader file the install may lay down: (media path, the payload that would cover it).
pub(crate) fn loader_files() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for (path, payload, _) in EFI_LOADERS {
        if !out.iter().any(|(p, _)| *p == path) {
            out.push((path, payload));
        }
    }
    out.extend(BIOS_UPPER.iter().zip(BIOS_LOADERS).map(|(p, n)| (*p, n)));
    out
}

/// The payload of a VIB in the profile named `name` (without case), with its plain sha-256.
pub(crate) fn loader_payload(db: &ImageDb, name: &str) -> Option<Covered> {
    let in_profile: HashSet<&str> = db.profile.vibs.iter().map(|(id, _)| id.as_str()).collect();
    db.vibs
        .iter()
        .filter(|v| in_profile.contains(v.id.as_str()))
        .find_map(|v| {
            v.payloads
                .iter()
                .find(|p| p.name.eq_ignore_ascii_case(name) && p.sha256.is_some())
                .map(|p| Covered {
                    file: name.to_ascii_lowercase(),
                    vib: v.id.clone(),
                    payload: p.clone(),
                })
        })
}

/// The ESP's loaders and the BIOS boot files, each matched to the esx-base payload that covers
/// it where there is one; a loader no payload covers is pinned to the bytes read now and named.
fn loaders(
    cx: &Ctx<'_>,
    db: &ImageDb,
    not_covered: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Component>, MediaError> {
    let payload = |name: &str| loader_payload(db, name);
    let mut out = Vec::new();
    let mut one = |path: &str, payload_name: &str, esp: &str| -> Result<(), MediaError> {
        if let Some(c) = payload(payload_name) {
            cx.check_size(path, &c)?;
            out.push(component(path, &c, Role::Bootloader, Some(esp)));
        } else {
            let (size, sha256) = cx.pin(path)?;
            if !not_covered.iter().any(|n| n == path) {
                not_covered.push(path.to_string());
            }
            out.push(Component {
                path: path.to_string(),
                size,
                sha256,
                platform: Platform::X86_64,
                role: Role::Bootloader,
                esp_path: Some(esp.to_string()),
                coverage: Coverage::NotCovered,
            });
        }
        Ok(())
    };
    for (path, payload_name, esp) in EFI_LOADERS {
        let optional = payload_name == "crypto64.efi";
        if !cx.exists(path) {
            if optional {
                continue; // 7.0 has none; mboot then runs without it, as on a 7.0 host
            }
            return Err(cx.bad(path, "is missing: the ESP needs it to boot".into()));
        }
        one(path, payload_name, esp)?;
    }
    if BIOS_UPPER.iter().all(|f| cx.exists(f)) {
        for (path, f) in BIOS_UPPER.iter().zip(BIOS_LOADERS) {
            one(path, f, f)?;
        }
        warnings.push("the disk will boot by UEFI only: the BIOS boot files are copied to the ESP, but the BIOS boot code is not written (gptmbr.bin to the MBR, syslinux's boot record with ldlinux.sys's sector list; docs/MEDIA.md)".into());
    } else {
        warnings.push(format!(
            "{}: the media carry no BIOS boot files ({}): the disk will boot by UEFI only",
            cx.name,
            BIOS_LOADERS.join(", ")
        ));
    }
    Ok(out)
}

pub(crate) fn signatures(db: &ImageDb) -> Signatures {
    let count = db.signatures.iter().filter(|s| s.sig.is_some()).count();
    if count == 0 {
        return Signatures::NotCarried;
    }
    Signatures::NotChecked {
        count,
        reason: "no certificate to check them against (give --trust-cert; VMware's 8.x signing certificate is not public)".into(),
    }
}

/// The signature state of `db` checked against `anchor` where there is one.
pub(crate) fn signatures_with(
    db: &ImageDb,
    anchor: Option<&super::signature::Anchor>,
) -> Signatures {
    let plain = signatures(db);
    let (Signatures::NotChecked { .. }, Some(anchor)) = (&plain, anchor) else {
        return plain;
    };
    match super::signature::check(db, anchor) {
        Ok(c) => Signatures::Verified {
            count: c.verified,
            unsigned: c.unsigned,
            signers: c.signers,
            anchor: anchor.label.clone(),
        },
        Err(e) => Signatures::Failed {
            member: e.member,
            reason: e.reason.to_string(),
        },
    }
}
