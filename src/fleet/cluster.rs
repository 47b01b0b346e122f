//! The Distributed Services Engine rules across the hosts of one cluster (layout.md §DPU
//! requirements): one supported DPU per host, the same DPU vendor and model everywhere
//! (generations may differ), the same image version and build everywhere.
//!
//! "The cluster's" model and image are the ones on more hosts than any other, so the odd host
//! out is the one named, with what would fix it. When two or more share the most hosts (two
//! hosts that differ, say) which is odd is the operator's call, not ours: every host with a
//! model (or an image) is named, and the message lists each with its hosts.

use serde::Serialize;

use super::{HostRecord, Image, Severity};

/// The rule a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The host's install did not succeed (its report's exit code is not 0).
    InstallSucceeded,
    /// Every host has a DPU.
    HasDpu,
    /// At most one DPU per host.
    OneDpu,
    /// The DPU is a model vSphere 8 supports.
    SupportedDpu,
    /// The host's install made its card a DPU (a card in NIC mode is left alone).
    DpuEnabled,
    /// Every DPU is the same vendor and model.
    SameModel,
    /// Every host carries the same image version and build.
    SameImage,
    /// The image could not be told (a probe of a host without an ESXi boot bank).
    ImageKnown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    pub host: String,
    pub message: String,
    /// What would make the rule hold.
    pub fix: String,
}

/// One DPU model present in the cluster, with its generations and hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelCount {
    pub vendor: String,
    pub model: String,
    pub generations: Vec<String>,
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageCount {
    pub version: String,
    pub build: String,
    pub hosts: Vec<String>,
}

/// The verdict over a set of hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterReport {
    /// True when no rule is broken.
    pub ok: bool,
    pub hosts: usize,
    /// The model the cluster is measured against: the one on more hosts than any other; none
    /// when no host has a single supported DPU or two or more models share the most hosts.
    pub expected_model: Option<ModelCount>,
    /// The image the cluster is measured against, decided as the model is.
    pub expected_image: Option<ImageCount>,
    /// Every model seen, most common first.
    pub models: Vec<ModelCount>,
    pub images: Vec<ImageCount>,
    pub findings: Vec<Finding>,
}

/// Group `items` by key, keeping first-seen order, then sort by count (stable: ties keep it).
fn tally<K: PartialEq + Clone>(items: impl Iterator<Item = (K, String)>) -> Vec<(K, Vec<String>)> {
    let mut groups: Vec<(K, Vec<String>)> = Vec::new();
    for (k, host) in items {
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, hosts)) => hosts.push(host),
            None => groups.push((k, vec![host])),
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.1.len()));
    groups
}

/// The first of `groups` (most hosts first) when no other group has as many hosts.
fn most_common<T>(groups: &[T], hosts: impl Fn(&T) -> usize) -> Option<&T> {
    match groups {
        [first, second, ..] if hosts(first) == hosts(second) => None,
        [first, ..] => Some(first),
        [] => None,
    }
}

/// Check the rules over these hosts.
pub fn check(hosts: &[HostRecord]) -> ClusterReport {
    let models = model_counts(hosts);
    let expected_model = most_common(&models, |m| m.hosts.len()).cloned();
    let want_model = wanted_model(&models, expected_model.as_ref());
    let images = image_counts(hosts);
    let expected_image = most_common(&images, |i| i.hosts.len()).cloned();

    let mut findings = Vec::new();
    for h in hosts {
        findings.extend(install_finding(h));
        findings.extend(dpu_finding(
            h,
            &models,
            expected_model.as_ref(),
            &want_model,
        ));
        findings.extend(image_finding(h, &images, expected_image.as_ref()));
    }
    ClusterReport {
        ok: !findings.iter().any(|f| f.severity == Severity::Broken),
        hosts: hosts.len(),
        expected_model,
        expected_image,
        models,
        images,
        findings,
    }
}

/// What a host without the cluster's model should carry, after "a": the cluster's model; the
/// models that share the most hosts when none is the cluster's; any supported one without DPUs.
fn wanted_model(models: &[ModelCount], expected: Option<&ModelCount>) -> String {
    let name = |m: &ModelCount| format!("{} {}", m.vendor, m.model);
    match (expected, models.first()) {
        (Some(m), _) => name(m),
        (None, Some(top)) => models
            .iter()
            .take_while(|m| m.hosts.len() == top.hosts.len())
            .map(name)
            .collect::<Vec<_>>()
            .join(" or "),
        (None, None) => "supported DPU (NVIDIA BlueField-2/-3 or AMD Pensando DSC)".into(),
    }
}

fn broken(rule: Rule, host: &HostRecord, message: String, fix: String) -> Finding {
    Finding {
        rule,
        severity: Severity::Broken,
        host: host.name.clone(),
        message,
        fix,
    }
}

/// The models of hosts with exactly one supported DPU, most hosts first: they decide what the
/// cluster's model is.
fn model_counts(hosts: &[HostRecord]) -> Vec<ModelCount> {
    let single: Vec<(&HostRecord, &super::DpuRecord)> = hosts
        .iter()
        .filter(|h| h.dpus.len() == 1)
        .filter_map(|h| {
            h.dpus
                .first()
                .filter(|d| d.identity.supported)
                .map(|d| (h, d))
        })
        .collect();
    tally(single.iter().map(|(h, d)| {
        (
            (d.identity.vendor.clone(), d.identity.model.clone()),
            h.name.clone(),
        )
    }))
    .into_iter()
    .map(|((vendor, model), names)| {
        let mut generations: Vec<String> = Vec::new();
        for (_, d) in single
            .iter()
            .filter(|(_, d)| d.identity.vendor == vendor && d.identity.model == model)
        {
            if !generations.contains(&d.identity.generation) {
                generations.push(d.identity.generation.clone());
            }
        }
        ModelCount {
            vendor,
            model,
            generations,
            hosts: names,
        }
    })
    .collect()
}

/// The images of the hosts whose image is known, most hosts first.
fn image_counts(hosts: &[HostRecord]) -> Vec<ImageCount> {
    tally(
        hosts
            .iter()
            .filter_map(|h| h.image.clone().map(|i| (i, h.name.clone()))),
    )
    .into_iter()
    .map(|(Image { version, build }, names)| ImageCount {
        version,
        build,
        hosts: names,
    })
    .collect()
}

/// An install report that says the install failed.
fn install_finding(h: &HostRecord) -> Option<Finding> {
    let r = h.install.as_ref()?;
    if r.exit_code == 0 {
        return None;
    }
    Some(broken(
        Rule::InstallSucceeded,
        h,
        format!(
            "the install ended with exit code {} ({}){}",
            r.exit_code,
            r.outcome,
            r.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
        "fix what the error says and install the host again".into(),
    ))
}

/// One supported DPU per host, of the cluster's model.
fn dpu_finding(
    h: &HostRecord,
    models: &[ModelCount],
    expected_model: Option<&ModelCount>,
    want_model: &str,
) -> Option<Finding> {
    match h.dpus.as_slice() {
        [] => Some(broken(
            Rule::HasDpu,
            h,
            "no DPU: every host of a Distributed Services Engine cluster needs one".into(),
            format!("fit a {want_model} in this host, or move it to a cluster without DPUs"),
        )),
        [d] if !d.identity.supported => Some(broken(
            Rule::SupportedDpu,
            h,
            format!("{}: not supported by vSphere 8", d.identity.name()),
            format!("replace it with a {want_model}"),
        )),
        [d] if d.not_used.is_some() => Some(broken(
            Rule::DpuEnabled,
            h,
            format!(
                "{}: the install did not make it a DPU: {}",
                d.identity.name(),
                d.not_used.as_deref().unwrap_or_default()
            ),
            "put the card in DPU mode and install the host again (docs/DPU.md)".into(),
        )),
        [d] => model_finding(h, d, models, expected_model),
        many => Some(broken(
            Rule::OneDpu,
            h,
            format!(
                "{} DPUs: {}",
                many.len(),
                many.iter()
                    .map(|d| d.identity.name())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            format!("leave one {want_model} in the host and take the others out"),
        )),
    }
}

/// A host's one supported DPU against the cluster's model, or against every model when none has
/// a majority.
fn model_finding(
    h: &HostRecord,
    d: &super::DpuRecord,
    models: &[ModelCount],
    expected_model: Option<&ModelCount>,
) -> Option<Finding> {
    let same = |m: &ModelCount| d.identity.vendor == m.vendor && d.identity.model == m.model;
    match expected_model {
        Some(m) if same(m) => None,
        Some(m) => Some(broken(
            Rule::SameModel,
            h,
            format!(
                "{}: the other {} host(s) carry a {} {}",
                d.identity.name(),
                m.hosts.len(),
                m.vendor,
                m.model
            ),
            format!(
                "replace it with a {} {}, or move the host to a cluster of {} {} hosts",
                m.vendor, m.model, d.identity.vendor, d.identity.model
            ),
        )),
        None if models.len() > 1 => Some(broken(
            Rule::SameModel,
            h,
            format!(
                "{}: no one model is on most hosts ({})",
                d.identity.name(),
                each_on(
                    models
                        .iter()
                        .map(|m| (format!("{} {}", m.vendor, m.model), &m.hosts))
                )
            ),
            "choose the cluster's model and replace the cards of the hosts that carry another"
                .into(),
        )),
        None => None,
    }
}

/// "A on h1, h2; B on h3": what each group is and its hosts, for a tie's message.
fn each_on<'a>(groups: impl Iterator<Item = (String, &'a Vec<String>)>) -> String {
    groups
        .map(|(what, hosts)| format!("{what} on {}", hosts.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The cluster's image on every host (a note when a host's image is not known).
fn image_finding(
    h: &HostRecord,
    images: &[ImageCount],
    expected_image: Option<&ImageCount>,
) -> Option<Finding> {
    match (&h.image, expected_image) {
        (Some(i), Some(e)) if i.version != e.version || i.build != e.build => Some(broken(
            Rule::SameImage,
            h,
            format!(
                "carries ESXi {} (build {}); {} other host(s) carry {} (build {})",
                i.version,
                i.build,
                e.hosts.len(),
                e.version,
                e.build
            ),
            format!(
                "install the host again from the cluster's image, ESXi {} build {}",
                e.version, e.build
            ),
        )),
        (Some(i), None) if images.len() > 1 => Some(broken(
            Rule::SameImage,
            h,
            format!(
                "carries ESXi {} (build {}); no one image is on most hosts ({})",
                i.version,
                i.build,
                each_on(
                    images
                        .iter()
                        .map(|e| (format!("{} build {}", e.version, e.build), &e.hosts))
                )
            ),
            "choose the cluster's image and install the hosts that carry another again from it"
                .into(),
        )),
        (None, _) => Some(Finding {
            rule: Rule::ImageKnown,
            severity: Severity::Note,
            host: h.name.clone(),
            message: "the image is not known (a probe of a host without ESXi on its disks)".into(),
            fix: "check it again with the host's install report".into(),
        }),
        _ => None,
    }
}

impl ClusterReport {
    /// For people: the verdict, what the cluster is, and each finding with its fix.
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
                "every rule holds",
                "broken rule(s)"
            )
        );
        for m in &self.models {
            let _ = writeln!(
                out,
                "  DPU {} {} ({}): {} host(s)",
                m.vendor,
                m.model,
                m.generations.join(", "),
                m.hosts.len()
            );
        }
        for i in &self.images {
            let _ = writeln!(
                out,
                "  image ESXi {} build {}: {} host(s)",
                i.version,
                i.build,
                i.hosts.len()
            );
        }
        for f in &self.findings {
            let _ = writeln!(out, "{}: {}: {}", f.host, f.severity.tag(), f.message);
            let _ = writeln!(out, "    fix: {}", f.fix);
        }
        out
    }
}
