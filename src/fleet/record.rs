//! One host as the fleet checks see it, read from an install report or a probe.
//!
//! Both documents come from outside (files, URLs): each is read through its own type
//! (`InstallReport`, `ProbeReport`), chosen by the kind the document says it is; a missing
//! required field is an error naming it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::install::{DocumentKind, ProbeReport};

/// Which JSON the record was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// `ksinstall install --report FILE`.
    InstallReport,
    /// `ksinstall probe --format json`.
    Probe,
}

/// The ESXi image a host carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    /// `8.0.3`
    pub version: String,
    /// `8.0.3-0.35.24280767`
    pub build: String,
}

/// How an install ended, as its report says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallResult {
    pub exit_code: u8,
    pub outcome: crate::exit::Outcome,
    /// The step and message of the failure, if it failed.
    pub error: Option<String>,
}

/// One DPU of a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DpuRecord {
    #[serde(flatten)]
    pub identity: crate::inventory::DpuIdentity,
    /// The firmware version the DPU was given (report) or reports running (probe), if known.
    pub firmware: Option<String>,
    /// The ESXio build put on the DPU (reports only).
    pub esxio_build: Option<String>,
    /// Whether the payload carried ESXio components (reports only; `None` from a probe).
    pub esxio_included: Option<bool>,
    /// Why the install left the card alone instead of making it a DPU (reports only).
    pub not_used: Option<String>,
}

/// One host: its DPUs, its image and, from a report, how its install ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostRecord {
    /// How the checks name the host (the input's name, see [`host_name`]).
    pub name: String,
    /// The file or URL it was read from.
    pub source: String,
    pub kind: RecordKind,
    /// The hostname the kickstart set, when the report has one.
    pub hostname: Option<String>,
    /// The image installed (report) or found in a boot bank (probe); `None` when unknown.
    pub image: Option<Image>,
    pub install: Option<InstallResult>,
    pub dpus: Vec<DpuRecord>,
    /// An upgrade report: the build the host ran before (and still runs if the upgrade failed).
    pub upgraded_from: Option<String>,
}

/// Why a host's document could not be read; each names the input.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{input}: not JSON: {reason}")]
    NotJson {
        input: String,
        reason: serde_json::Error,
    },
    #[error("{input}: not a ksinstall report or probe (not an object)")]
    NotAnObject { input: String },
    /// No `"document"`: read as a report of a ksinstall before documents said their kind.
    #[error(
        "{input}: neither an install report ({reason}) nor a probe (no \"document\": \"probe\")"
    )]
    Neither {
        input: String,
        reason: crate::install::report::UnreadableReport,
    },
    #[error("{input}: {reason}")]
    Report {
        input: String,
        reason: crate::install::report::UnreadableReport,
    },
    #[error("{input}: \"document\": {kind} is no document ksinstall writes ({reason})")]
    UnknownKind {
        input: String,
        kind: String,
        reason: serde_json::Error,
    },
    #[error("{input}: {reason}")]
    UnreadableProbe {
        input: String,
        reason: crate::install::probe::UnreadableProbe,
    },
}

/// `8.0.3` from `8.0.3-0.35.24280767`.
pub(crate) fn version_of_build(build: &str) -> String {
    build.split('-').next().unwrap_or(build).to_string()
}

/// The firmware version in a software description: a DSC's `firmware 1.68.0-E-21` (devlink's
/// running `fw`), or a payload label `ESXio 8.0.3-… + firmware 32.44.1036`.
pub(crate) fn firmware_in(software: &str) -> Option<String> {
    let (_, rest) = software.rsplit_once("firmware ")?;
    let version = rest.split_whitespace().next()?;
    let version = version.split("+ks.").next().unwrap_or(version);
    (!version.is_empty()).then(|| version.to_string())
}

/// How to name a host read from `source`: the file name without `.json`, or the URL's last
/// path segment likewise.
pub fn host_name(source: &str) -> String {
    let trimmed = source.trim_end_matches('/');
    let last = trimmed.rsplit('/').next().unwrap_or(trimmed);
    let last = last.split(['?', '#']).next().unwrap_or(last);
    let stem = last.strip_suffix(".json").unwrap_or(last);
    if stem.is_empty() {
        source.to_string()
    } else {
        stem.to_string()
    }
}

/// The head of any JSON document: the kind it says it is.
#[derive(serde::Deserialize)]
struct Head {
    #[serde(default)]
    document: Option<DocumentKind>,
}

/// What a report of a ksinstall before documents said their kind always carries (the report
/// type itself reads leniently: every other key may be missing).
#[derive(serde::Deserialize)]
#[allow(dead_code)] // read only to be required
struct EarlierReport {
    exit_code: u8,
}

impl HostRecord {
    /// Parse either document, by the kind it says it is (`"document"`); a document without one
    /// is a report of a ksinstall before documents said their kind. `name` is how the host is
    /// called in findings.
    pub fn parse(name: &str, source: &str, bytes: &[u8]) -> Result<HostRecord, RecordError> {
        let input = source.to_string();
        let doc: Value = serde_json::from_slice(bytes).map_err(|reason| RecordError::NotJson {
            input: input.clone(),
            reason,
        })?;
        if !doc.is_object() {
            return Err(RecordError::NotAnObject { input });
        }
        // A `document` this version does not know is not an earlier report: it is refused by
        // the word it says, not guessed at.
        let head = Head::deserialize(&doc).map_err(|reason| RecordError::UnknownKind {
            input: input.clone(),
            kind: doc["document"].to_string(),
            reason,
        })?;
        match head.document {
            Some(DocumentKind::Probe) => ProbeReport::parse(bytes)
                .map_err(|reason| RecordError::UnreadableProbe { input, reason })
                .map(|p| from_probe(name, source, &p)),
            Some(DocumentKind::InstallReport) => crate::install::InstallReport::parse(bytes)
                .map_err(|reason| RecordError::Report { input, reason })
                .map(|r| from_report(name, source, &r)),
            None => EarlierReport::deserialize(&doc)
                .map_err(|e| crate::install::report::UnreadableReport {
                    reason: e.to_string(),
                })
                .and_then(|_| crate::install::InstallReport::parse(bytes))
                .map_err(|reason| RecordError::Neither { input, reason })
                .map(|r| from_report(name, source, &r)),
        }
    }
}

fn from_report(name: &str, source: &str, r: &crate::install::InstallReport) -> HostRecord {
    let upgrade = r.kind == Some(crate::plan::RunKind::Upgrade);
    let image = match (&r.from_build, upgrade && (r.exit_code != 0 || r.dry_run)) {
        // An upgrade that did not happen (or only planned): the host runs what it ran.
        (Some(from), true) => Some(Image {
            version: version_of_build(from),
            build: from.clone(),
        }),
        _ => r.media.as_ref().map(|m| Image {
            version: if m.version.is_empty() {
                version_of_build(&m.build)
            } else {
                m.version.clone()
            },
            build: m.build.clone(),
        }),
    };
    let mut dpus: Vec<DpuRecord> = r.dpus.iter().map(report_dpu).collect();
    // An upgrade leaves the DPU running the ESXio the new image carries.
    dpus.extend(r.kept_dpus.iter().map(|d| DpuRecord {
        identity: d.identity.clone(),
        firmware: None,
        esxio_build: (!d.esxio_build.is_empty()).then(|| d.esxio_build.clone()),
        esxio_included: Some(true),
        not_used: None,
    }));
    dpus.extend(r.dpus_not_used.iter().map(not_used_dpu));
    HostRecord {
        name: name.to_string(),
        source: source.to_string(),
        kind: RecordKind::InstallReport,
        hostname: r.host.as_ref().map(|h| h.hostname.clone()),
        image,
        install: Some(InstallResult {
            exit_code: r.exit_code,
            outcome: r.outcome,
            error: r
                .error
                .as_ref()
                .map(|e| format!("{}: {}", e.step, e.message)),
        }),
        dpus,
        upgraded_from: r.from_build.clone().filter(|_| upgrade),
    }
}

/// One DPU of a report. A planned payload is what the card got only if it was delivered
/// (`after`: what the card said once it had it) or the card already ran it: a failed install's
/// plan says nothing about the card's firmware.
fn report_dpu(d: &crate::install::report::ReportDpu) -> DpuRecord {
    let given = d.action == crate::plan::DpuAction::AlreadyInstalled || d.after.is_some();
    let p = &d.payload;
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    DpuRecord {
        identity: d.identity.clone(),
        firmware: given
            .then(|| non_empty(&p.firmware_version).or_else(|| firmware_in(&p.label)))
            .flatten(),
        esxio_build: given
            .then(|| {
                non_empty(&p.esxio_build).or_else(|| {
                    p.label
                        .strip_prefix("ESXio ")
                        .and_then(|l| l.split_whitespace().next())
                        .map(str::to_string)
                })
            })
            .flatten(),
        esxio_included: given.then(|| p.parts.iter().any(|x| x.kind == "esxio")),
        not_used: None,
    }
}

/// A card the install left alone (NIC mode, an unsupported model): still a card of the host.
fn not_used_dpu(n: &crate::plan::NotUsedDpu) -> DpuRecord {
    DpuRecord {
        identity: n.identity.clone(),
        firmware: None,
        esxio_build: None,
        esxio_included: None,
        not_used: Some(n.reason.clone()),
    }
}

fn from_probe(name: &str, source: &str, probe: &ProbeReport) -> HostRecord {
    let dpus = probe
        .dpus
        .iter()
        .map(|d| DpuRecord {
            identity: d.identity.clone(),
            firmware: probe
                .dpu_software
                .iter()
                .find(|o| o.address == d.identity.address)
                .and_then(|o| o.software.as_deref())
                .and_then(firmware_in),
            esxio_build: None,
            esxio_included: None,
            not_used: None,
        })
        .collect();
    // The image of an installed host is the build its boot banks would boot.
    let image = probe
        .disks
        .iter()
        .find_map(|d| d.content.esx.as_ref()?.version.as_deref())
        .map(|build| Image {
            version: version_of_build(build),
            build: build.to_string(),
        });
    HostRecord {
        name: name.to_string(),
        source: source.to_string(),
        kind: RecordKind::Probe,
        hostname: None,
        image,
        install: None,
        dpus,
        upgraded_from: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_is_read_from_both_software_descriptions() {
        assert_eq!(
            firmware_in("ESXio 8.0.3-0.35.24280767 + firmware 32.44.1036").as_deref(),
            Some("32.44.1036")
        );
        assert_eq!(
            firmware_in("firmware 1.68.0-E-21+ks.0123456789abcdef").as_deref(),
            Some("1.68.0-E-21")
        );
        assert_eq!(firmware_in("payload 0123456789abcdef"), None);
    }

    #[test]
    fn hosts_are_named_after_their_file_or_url() {
        assert_eq!(host_name("/tmp/rack/esx-07.json"), "esx-07");
        assert_eq!(
            host_name("http://10.0.0.1/reports/esx-08.json?x=1"),
            "esx-08"
        );
        assert_eq!(host_name("esx-09"), "esx-09");
    }

    #[test]
    fn other_json_is_refused_with_a_reason() {
        let e = HostRecord::parse("x", "x.json", br#"{"hello": 1}"#).unwrap_err();
        assert!(matches!(e, RecordError::Neither { .. }), "{e:?}");
        assert!(e.to_string().contains("neither an install report"), "{e}");
        let e = HostRecord::parse("x", "x.json", b"[1]").unwrap_err();
        assert!(matches!(e, RecordError::NotAnObject { .. }), "{e:?}");
        assert!(e.to_string().contains("not an object"), "{e}");
        let e = HostRecord::parse(
            "x",
            "x.json",
            br#"{"document": "install-report", "media": {}, "exit_code": 900, "dpus": []}"#,
        )
        .unwrap_err();
        assert!(matches!(e, RecordError::Report { .. }), "{e:?}");
        assert!(e.to_string().contains("exit_code"), "{e}");
        // A kind this version does not know, even with an exit code, is not read as a report.
        let e = HostRecord::parse(
            "x",
            "x.json",
            br#"{"document": "probe-v2", "exit_code": 0}"#,
        )
        .unwrap_err();
        assert!(matches!(e, RecordError::UnknownKind { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains(r#""document": "probe-v2" is no document ksinstall writes"#),
            "{e}"
        );
    }

    #[test]
    fn a_payload_counts_only_once_it_reached_the_card() {
        let report = |after: &str, action: &str| {
            format!(
                r#"{{"media": {{"version": "8.0.3", "build": "8.0.3-0.35.24280767"}}, "exit_code": 7,
                "dpus": [{{"catalog_id": "amd-pensando-dsc2-200", "vendor": "AMD Pensando", "model": "DSC2-200",
                  "supported": true, "address": "0000:41:00", "action": "{action}", "after": {after},
                  "generation": "DSC2", "slot": null, "name": "DSC2-200",
                  "interface": {{"kind": "devlink", "bus": "pci", "device": "0000:41:00.0", "driver": null, "firmware_dir": "/lib/firmware"}},
                  "payload": {{"firmware_version": "1.68.0-E-21", "esxio_build": "8.0.3-0.35.24280767"}}}}]}}"#
            )
        };
        let firmware = |text: String| {
            HostRecord::parse("h", "h.json", text.as_bytes())
                .unwrap()
                .dpus[0]
                .firmware
                .clone()
        };
        // The DPU step failed: the planned firmware is not the card's.
        assert_eq!(firmware(report("null", "install")), None);
        assert_eq!(
            firmware(report(
                r#"{"address": "0000:41:00", "staged_sha256": "00", "staged_bytes": 1, "elapsed_ms": 1,
                   "after": {"address": "0000:41:00", "interface": null, "running_firmware": null,
                             "software": null, "versions": [], "problem": null}}"#,
                "install"
            ))
            .as_deref(),
            Some("1.68.0-E-21")
        );
        assert_eq!(
            firmware(report("null", "already_installed")).as_deref(),
            Some("1.68.0-E-21")
        );
    }

    #[test]
    fn a_card_left_alone_reads_back_from_reports_old_and_new() {
        // Reports before the one identity type said `supported_model` for a card left alone.
        let report = |supported_key: &str| {
            format!(
                r#"{{"media": {{"version": "8.0.3", "build": "8.0.3-0.35.24280767"}}, "exit_code": 0,
                "dpus_not_used": [{{"name": "NVIDIA BlueField in slot 3 (0000:3b:00)",
                  "catalog_id": "nvidia-bluefield-1", "vendor": "NVIDIA", "model": "BlueField",
                  "generation": "BlueField-1", "{supported_key}": false, "address": "0000:3b:00",
                  "slot": "3", "reason": "a model vSphere 8 does not support"}}]}}"#
            )
        };
        for key in ["supported", "supported_model"] {
            let host = HostRecord::parse("h", "h.json", report(key).as_bytes()).unwrap();
            let d = &host.dpus[0];
            assert_eq!(d.identity.catalog_id, "nvidia-bluefield-1", "{key}");
            assert!(!d.identity.supported, "{key}");
            assert_eq!(d.identity.slot.as_deref(), Some("3"), "{key}");
            assert_eq!(
                d.not_used.as_deref(),
                Some("a model vSphere 8 does not support")
            );
            assert_eq!(
                d.identity.name(),
                "NVIDIA BlueField in slot 3 (0000:3b:00)",
                "{key}"
            );
        }
        // A record says the identity's keys at the card's top level, as the reports do.
        let host = HostRecord::parse("h", "h.json", report("supported").as_bytes()).unwrap();
        let v = serde_json::to_value(&host.dpus[0]).unwrap();
        assert_eq!(v["catalog_id"], "nvidia-bluefield-1", "{v:#}");
        assert_eq!(v["supported"], false, "{v:#}");
        assert!(v.get("identity").is_none(), "{v:#}");
    }
}
