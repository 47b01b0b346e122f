//! Hardware compatibility: each host's DPU model, its firmware and the image's ESXio checked
//! against a table kept as data (`firmware/hcl.toml`), with which firmware bundle to use and on
//! which hosts.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{DpuRecord, HostRecord, Image, Severity};
use crate::dpu::bundle::{compare_versions, BundleManifest};

/// The compatibility table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// The table says of itself that its versions are examples, not vendor facts.
    #[serde(default)]
    pub example: bool,
    #[serde(default, rename = "model")]
    pub models: Vec<TableModel>,
    #[serde(default, rename = "release")]
    pub releases: Vec<Release>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TableModel {
    pub catalog_id: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// The image version, e.g. `8.0.3`.
    pub esxi: String,
    /// A DPU host's image must carry ESXio components.
    #[serde(default = "yes")]
    pub esxio: bool,
    #[serde(default, rename = "dpu")]
    pub dpus: Vec<Pairing>,
}

fn yes() -> bool {
    true
}

/// The firmware one model pairs with on one release.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Pairing {
    pub catalog_id: String,
    pub firmware: Vec<String>,
    pub recommended: String,
}

impl Table {
    pub fn parse(text: &str) -> anyhow::Result<Table> {
        let t: Table = toml::from_str(text)?;
        for r in &t.releases {
            for p in &r.dpus {
                anyhow::ensure!(
                    p.firmware.contains(&p.recommended),
                    "release {}, {}: the recommended firmware {} is not in its firmware list",
                    r.esxi,
                    p.catalog_id,
                    p.recommended
                );
            }
        }
        Ok(t)
    }
    pub fn read(path: &Path) -> anyhow::Result<Table> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the compatibility table {}", path.display()))?;
        Table::parse(&text).with_context(|| format!("{}", path.display()))
    }
    fn release(&self, version: &str) -> Option<&Release> {
        self.releases.iter().find(|r| r.esxi == version)
    }
}

/// A firmware bundle on disk, as far as recommending it goes (its manifest, not its files).
#[derive(Debug, Clone, Serialize)]
pub struct AvailableBundle {
    pub dir: PathBuf,
    pub catalog_ids: Vec<String>,
    pub version: String,
    pub synthetic: bool,
}

/// The bundles below a firmware directory; directories without a readable `bundle.toml` are
/// skipped (as the installer skips them).
pub fn bundles_in(root: &Path) -> anyhow::Result<Vec<AvailableBundle>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))? {
        let dir = e
            .with_context(|| format!("reading {}", root.display()))?
            .path();
        let Ok(text) = std::fs::read_to_string(dir.join("bundle.toml")) else {
            continue;
        };
        match toml::from_str::<BundleManifest>(&text) {
            Ok(m) => out.push(AvailableBundle {
                dir,
                catalog_ids: m.catalog_ids,
                version: m.version,
                synthetic: m.synthetic,
            }),
            Err(e) => log::warn!("{}: not a bundle manifest: {e}", dir.display()),
        }
    }
    out.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(out)
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The host has no DPU: nothing to check here (the cluster check names it).
    NoDpu,
    /// The DPU's model is not in the table's model list.
    ModelNotListed,
    /// The image's version has no release entry in the table.
    ReleaseNotListed,
    /// The release lists no firmware for the model.
    ModelNotForRelease,
    /// The DPU's firmware is not one the release pairs with the model.
    FirmwareNotPaired,
    /// The DPU's firmware version could not be read.
    FirmwareUnknown,
    /// The image put no ESXio onto the DPU.
    EsxioMissing,
    /// The ESXio on the DPU is another build than the host's image.
    EsxioOtherBuild,
    /// The image is not known (a probe of a host without ESXi).
    ImageUnknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: Check,
    pub severity: Severity,
    pub host: String,
    /// The DPU, as `DpuIdentity::name` names it, when the finding is about one.
    pub dpu: Option<String>,
    pub message: String,
}

/// Use this firmware (from this bundle, if one is here) on these hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recommendation {
    pub catalog_id: String,
    pub model: String,
    pub esxi: String,
    pub firmware: String,
    /// The bundle directory carrying that version, when the firmware directory has one.
    pub bundle: Option<PathBuf>,
    /// Hosts whose DPU does not run (or may not run) that version.
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HclReport {
    pub ok: bool,
    pub hosts: usize,
    /// The table's own word that its versions are examples.
    pub table_is_example: bool,
    pub findings: Vec<Finding>,
    pub recommendations: Vec<Recommendation>,
}

pub fn check(hosts: &[HostRecord], table: &Table, bundles: &[AvailableBundle]) -> HclReport {
    let mut findings = Vec::new();
    let mut recs: Vec<Recommendation> = Vec::new();
    for h in hosts {
        let mut out = HostFindings {
            host: &h.name,
            findings: &mut findings,
        };
        if h.dpus.is_empty() {
            out.add(
                Check::NoDpu,
                Severity::Note,
                None,
                "no DPU in this host: nothing to check".into(),
            );
        }
        let release = host_release(h, table, &mut out);
        for d in &h.dpus {
            check_dpu(h, d, table, release, &mut out, &mut recs, bundles);
        }
    }
    HclReport {
        ok: !findings.iter().any(|f| f.severity == Severity::Broken),
        hosts: hosts.len(),
        table_is_example: table.example,
        findings,
        recommendations: recs,
    }
}

/// The findings of one host, in the order they are found.
struct HostFindings<'a> {
    host: &'a str,
    findings: &'a mut Vec<Finding>,
}

impl HostFindings<'_> {
    fn add(&mut self, check: Check, severity: Severity, dpu: Option<String>, message: String) {
        self.findings.push(Finding {
            check,
            severity,
            host: self.host.to_string(),
            dpu,
            message,
        })
    }
}

/// The table's release for the host's image: `None` (with a note) when the image is unknown,
/// `None` (broken, when the host has DPUs to check) when the table does not list it.
fn host_release<'t>(
    h: &HostRecord,
    table: &'t Table,
    out: &mut HostFindings,
) -> Option<&'t Release> {
    match &h.image {
        None => {
            out.add(
                Check::ImageUnknown,
                Severity::Note,
                None,
                "the image is not known (a probe of a host without ESXi): the firmware pairing is not checked".into(),
            );
            None
        }
        Some(i) => {
            let r = table.release(&i.version);
            if r.is_none() && !h.dpus.is_empty() {
                let listed: Vec<&str> = table.releases.iter().map(|r| r.esxi.as_str()).collect();
                out.add(
                    Check::ReleaseNotListed,
                    Severity::Broken,
                    None,
                    format!(
                        "ESXi {} (build {}) is not in the compatibility table (it lists {})",
                        i.version,
                        i.build,
                        if listed.is_empty() {
                            "no release".to_string()
                        } else {
                            listed.join(", ")
                        }
                    ),
                );
            }
            r
        }
    }
}

/// One DPU against the table: its model listed, ESXio on it matching the image (when the
/// release has ESXio), and its firmware paired with the release (a recommendation when not, or
/// when unknown).
fn check_dpu(
    h: &HostRecord,
    d: &DpuRecord,
    table: &Table,
    release: Option<&Release>,
    out: &mut HostFindings,
    recs: &mut Vec<Recommendation>,
    bundles: &[AvailableBundle],
) {
    let name = Some(d.identity.name());
    if !table
        .models
        .iter()
        .any(|m| m.catalog_id == d.identity.catalog_id)
    {
        out.add(
            Check::ModelNotListed,
            Severity::Broken,
            name,
            format!(
                "{}: the model ({}) is not in the compatibility table{}",
                d.identity.name(),
                d.identity.catalog_id,
                if d.identity.supported {
                    ""
                } else {
                    "; vSphere 8 does not support it"
                }
            ),
        );
        return;
    }
    let (Some(release), Some(image)) = (release, &h.image) else {
        return;
    };
    if release.esxio {
        check_esxio(d, image, &name, out);
    }
    let Some(pairing) = release
        .dpus
        .iter()
        .find(|p| p.catalog_id == d.identity.catalog_id)
    else {
        out.add(
            Check::ModelNotForRelease,
            Severity::Broken,
            name,
            format!(
                "{}: the table pairs no firmware with ESXi {} for this model",
                d.identity.name(),
                release.esxi
            ),
        );
        return;
    };
    let model = format!("{} {}", d.identity.vendor, d.identity.model);
    match &d.firmware {
        Some(fw)
            if pairing
                .firmware
                .iter()
                .any(|p| compare_versions(p, fw).is_eq()) => {}
        Some(fw) => {
            out.add(
                Check::FirmwareNotPaired,
                Severity::Broken,
                name,
                format!(
                    "{}: firmware {fw} does not pair with ESXi {} (the table pairs {})",
                    d.identity.name(),
                    release.esxi,
                    pairing.firmware.join(", ")
                ),
            );
            recommend(recs, bundles, pairing, &model, &release.esxi, &h.name);
        }
        None => {
            out.add(
                Check::FirmwareUnknown,
                Severity::Note,
                name,
                format!(
                    "{}: its firmware version is not known (a probe cannot read it, or the install report does not show that the payload reached the card)",
                    d.identity.name()
                ),
            );
            recommend(recs, bundles, pairing, &model, &release.esxi, &h.name);
        }
    }
}

/// A release with ESXio: the image put ESXio on the DPU, and the same build as the host's.
fn check_esxio(d: &DpuRecord, image: &Image, name: &Option<String>, out: &mut HostFindings) {
    if d.esxio_included == Some(false) {
        out.add(
            Check::EsxioMissing,
            Severity::Broken,
            name.clone(),
            format!(
                "{}: the image put no ESXio components on the DPU",
                d.identity.name()
            ),
        );
    }
    if let Some(b) = d.esxio_build.as_ref().filter(|b| **b != image.build) {
        out.add(
            Check::EsxioOtherBuild,
            Severity::Broken,
            name.clone(),
            format!(
                "{}: runs ESXio {b}, the host's image is {}",
                d.identity.name(),
                image.build
            ),
        );
    }
}

/// Add `host` to the recommendation for (model, release), or start one: the firmware to flash
/// and the bundle that carries it, if one is at hand.
fn recommend(
    recs: &mut Vec<Recommendation>,
    bundles: &[AvailableBundle],
    pairing: &Pairing,
    model: &str,
    esxi: &str,
    host: &str,
) {
    if let Some(r) = recs
        .iter_mut()
        .find(|r| r.catalog_id == pairing.catalog_id && r.esxi == esxi)
    {
        if !r.hosts.iter().any(|h| h == host) {
            r.hosts.push(host.to_string());
        }
        return;
    }
    // A real bundle before a synthetic one, as the installer chooses.
    let bundle = bundles
        .iter()
        .filter(|b| {
            b.catalog_ids.contains(&pairing.catalog_id)
                && compare_versions(&b.version, &pairing.recommended).is_eq()
        })
        .min_by_key(|b| b.synthetic)
        .map(|b| b.dir.clone());
    recs.push(Recommendation {
        catalog_id: pairing.catalog_id.clone(),
        model: model.to_string(),
        esxi: esxi.to_string(),
        firmware: pairing.recommended.clone(),
        bundle,
        hosts: vec![host.to_string()],
    });
}

impl HclReport {
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}",
            super::headline(
                self.ok,
                self.hosts,
                self.findings.iter().map(|f| f.severity),
                "every DPU pairs with its image",
                "incompatibility(ies)"
            )
        );
        if self.table_is_example {
            let _ = writeln!(
                out,
                "  (the compatibility table says its versions are EXAMPLES, UNCONFIRMED: replace it with yours, --table FILE)"
            );
        }
        for f in &self.findings {
            let _ = writeln!(out, "{}: {}: {}", f.host, f.severity.tag(), f.message);
        }
        for r in &self.recommendations {
            let _ = writeln!(
                out,
                "recommended: {} firmware {} for ESXi {} ({}) on {}",
                r.model,
                r.firmware,
                r.esxi,
                match &r.bundle {
                    Some(b) => format!("bundle {}", b.display()),
                    None => "no bundle with that version in the firmware directory: get it from the vendor".into(),
                },
                r.hosts.join(", ")
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_reads_and_says_it_is_examples() {
        let t =
            Table::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware/hcl.toml")).unwrap();
        assert!(t.example);
        assert!(t.release("8.0.3").is_some());
    }

    #[test]
    fn a_recommended_version_outside_its_list_is_refused() {
        let e = Table::parse(
            "[[release]]\nesxi = \"8.0.3\"\n[[release.dpu]]\ncatalog_id = \"x\"\nfirmware = [\"1\"]\nrecommended = \"2\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("not in its firmware list"), "{e}");
    }
}
