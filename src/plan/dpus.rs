//! The DPUs: which cards the install makes DPUs, which it leaves alone and why, and each one's payload.

use super::*;

/// Cards in the host that this install leaves alone because ESXi would not use them as DPUs:
/// models vSphere 8 does not support. ESXi installs such a host without Distributed Services
/// Engine (docs/DPU.md, "Cards ESXi would not use").
pub(super) fn unsupported_cards(i: &Inputs<'_>) -> Vec<NotUsedDpu> {
    i.host
        .inventory
        .dpus
        .iter()
        .filter(|d| !d.identity.supported)
        .map(|d| {
            let reason = format!(
                "a model vSphere 8 does not support{}: ESXi does not use it as a DPU",
                d.note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            );
            NotUsedDpu::left_alone(d, reason)
        })
        .collect()
}

/// A supported card that its interface says is not a DPU now (NIC mode, SECURE_NIC_MODE):
/// left alone and listed, or a refusal when `--dpuPciSlots` asks for it by name.
pub(super) fn not_a_dpu(
    i: &Inputs<'_>,
    d: &crate::inventory::pci::Dpu,
    slots: &[String],
    not_used: &mut Vec<NotUsedDpu>,
) -> Result<bool, PlanError> {
    let Some(mode) = i
        .host
        .dpu_observed
        .iter()
        .find(|o| o.address == d.identity.address)
        .and_then(|o| o.not_a_dpu)
    else {
        return Ok(false);
    };
    let name = d.identity.name();
    let named = slots
        .iter()
        .map(|s| s.trim())
        .any(|s| d.identity.named_by(s));
    if named {
        return Err(refuse(
            Outcome::Precondition,
            format!("--dpuPciSlots names {name}, but {mode}; {}", mode.fix()),
        ));
    }
    not_used.push(NotUsedDpu::left_alone(d, mode.to_string()));
    Ok(true)
}

/// Why the card must wait for the host lay-down, when the install's media come over the network
/// and the host has an interface that is a function of the card: resetting the card takes that
/// port down, and a transfer under way would break. Every interface of the card counts, not only
/// the one routing to the media: the route can move to it, and waiting costs only overlap.
pub(super) fn network_through(d: &crate::inventory::pci::Dpu, i: &Inputs<'_>) -> Option<String> {
    if i.host.media.is_local() {
        return None;
    }
    let ifs = i
        .host
        .dpu_ports
        .get(&d.identity.address)
        .cloned()
        .unwrap_or_default();
    (!ifs.is_empty()).then(|| {
        format!(
            "the media come over the network ({}) and {} {} a port of this card: it is flashed after the host lay-down has fetched and verified every file, since its reset takes the port down",
            i.host.media.describe(),
            ifs.join(", "),
            if ifs.len() == 1 { "is" } else { "are" }
        )
    })
}

pub(super) fn dpu_plans(
    i: &Inputs<'_>,
    warnings: &mut Vec<String>,
    not_used: &mut Vec<NotUsedDpu>,
) -> Result<Vec<DpuPlan>, PlanError> {
    let slots = i
        .kickstart
        .action
        .as_ref()
        .map(|a| a.dpu_pci_slots.clone())
        .unwrap_or_default();
    // Every blocking finding is a Distributed Services Engine rule the install must not break:
    // more than one DPU, an unrecovered DPU, --dpuPciSlots naming a slot without one.
    let blocking: Vec<_> = i
        .host
        .inventory
        .dpu_findings(&slots)
        .into_iter()
        .filter(|f| f.blocks_install())
        .collect();
    if !blocking.is_empty() {
        let words: Vec<String> = blocking.iter().map(ToString::to_string).collect();
        return Err(PlanError {
            dpu_findings: blocking,
            ..refuse(Outcome::Precondition, words.join("; "))
        });
    }
    let mut out = Vec::new();
    for d in i.host.inventory.supported_dpus() {
        if not_a_dpu(i, d, &slots, not_used)? {
            continue;
        }
        check_media_for_dpu(i, d)?;
        out.push(dpu_plan(i, d, warnings)?);
    }
    Ok(out)
}

/// The media must carry what a DPU runs: ESXi 8.0 or later, with its ESXio components.
pub(super) fn check_media_for_dpu(
    i: &Inputs<'_>,
    d: &crate::inventory::pci::Dpu,
) -> Result<(), PlanError> {
    let version_ok = i
        .host
        .media
        .manifest
        .version_triple()
        .is_some_and(|(major, _, _)| major >= 8);
    if !version_ok {
        return Err(refuse(
            Outcome::Media,
            format!(
                "{} has a DPU ({}), but the media is ESXi {}: a DPU needs ESXi 8.0 or later",
                i.host.media.describe(),
                d.identity.location(),
                i.host.media.manifest.version
            ),
        ));
    }
    if i.host.media.manifest.dpu_components().count() == 0 {
        return Err(refuse(
            Outcome::Media,
            format!(
                "{} has a DPU ({}), but the media carries no ESXio components for it",
                i.host.media.describe(),
                d.identity.location()
            ),
        ));
    }
    Ok(())
}

/// The firmware bundle that pairs with the media's ESXi for this card, as `install::prepare`
/// found it.
pub(super) fn bundle_for<'a>(
    i: &'a Inputs<'_>,
    d: &crate::inventory::pci::Dpu,
    name: &str,
    warnings: &mut Vec<String>,
) -> Result<&'a dpu::bundle::Bundle, PlanError> {
    let root = i
        .host
        .firmware_root
        .as_deref()
        .map_err(|why| refuse(Outcome::Precondition, format!("{name}: {why}")))?;
    let bundle = match i.host.bundles.get(&d.identity.catalog_id) {
        Some(Ok(Some(b))) => b,
        Some(Err(e)) => {
            return Err(refuse(
                Outcome::Precondition,
                format!("{name}: firmware bundle: {e}"),
            ))
        }
        Some(Ok(None)) | None => {
            return Err(refuse(
                Outcome::Precondition,
                format!(
                    "{name}: no firmware bundle for {} in {} that pairs with ESXi {} (see firmware/README.md)",
                    d.identity.catalog_id,
                    root.display(),
                    i.host.media.manifest.version
                ),
            ))
        }
    };
    if bundle.manifest.synthetic {
        warnings.push(format!(
            "{name}: the firmware bundle {} is synthetic (for tests and demos); drop the vendor's bundle into {} for a real DPU",
            bundle.dir.display(),
            root.display()
        ));
    }
    Ok(bundle)
}

/// What this fresh install does with one supported card. Only a fresh install gets here
/// (`install`, or `installorupgrade` on a disk without ESXi): an upgrade keeps the DPU as it is
/// (plan::upgrade::check_dpu).
pub(super) fn dpu_plan(
    i: &Inputs<'_>,
    d: &crate::inventory::pci::Dpu,
    warnings: &mut Vec<String>,
) -> Result<DpuPlan, PlanError> {
    let name = d.identity.name();
    let bundle = bundle_for(i, d, &name, warnings)?;
    let observed = i
        .host
        .dpu_observed
        .iter()
        .find(|o| o.address == d.identity.address)
        .cloned()
        .ok_or_else(|| {
            refuse(
                Outcome::Precondition,
                format!("{name}: its interface was not read"),
            )
        })?;
    if let Some(p) = &observed.problem {
        return Err(refuse(Outcome::Precondition, format!("{name}: {p}")));
    }
    let interface = observed.interface.clone().ok_or_else(|| {
        refuse(
            Outcome::Precondition,
            format!("{name}: no host interface to reach it"),
        )
    })?;
    let mut payload = dpu::payload::describe(bundle, &i.host.media.manifest);
    let action = if dpu::runs_firmware(&observed, &payload.firmware_version) {
        DpuAction::AlreadyInstalled
    } else {
        DpuAction::Install
    };
    let stage_dir = match &interface {
        dpu::Interface::Devlink { firmware_dir, .. } => {
            // devlink names the file relative to the firmware search path.
            payload.file_name = format!("ksinstall/{}", payload.file_name);
            warnings.push(format!(
                "{name}: the DSC is flashed with its firmware package only; the media's ESXio components are not sent over devlink (how ESXio reaches a DSC is UNCONFIRMED: docs/DPU.md)"
            ));
            Some(firmware_dir.clone())
        }
        // A BlueField bundle is always the vendor's BF-Bundle (`bfb-passthrough`, the only
        // BlueField format a bundle can have): what a real card boots, whatever is behind
        // rshim's files.
        dpu::Interface::Rshim { .. } => {
            lockdown::check_rshim(&i.host.inventory.firmware, &name)?;
            None
        }
    };
    Ok(DpuPlan {
        card: d.clone(),
        action,
        interface,
        bundle: bundle.dir.clone(),
        payload,
        stage_dir,
        before: observed,
        after_host: network_through(d, i),
        name,
    })
}
