//! The DPU screen: each card, what this install does with it, and why not.

use super::*;

pub(super) fn dpu(f: &mut Frame<'_>, app: &App, version: &str) {
    let area = frame_with(
        f,
        "Data Processing Unit (DPU)",
        "Enter: continue  Esc: back",
        version,
    );
    let inv = &app.ctx.host.inventory;
    let mut lines = Vec::new();
    if inv.dpus.is_empty() {
        lines.push(Line::raw(
            "No DPU was found: ESXi is installed on the host alone.",
        ));
    }
    let planned = match &app.planned {
        Some(Ok(p)) => Some(&p.plan),
        _ => None,
    };
    let shown_findings = inv.dpu_findings(&[]);
    let findings: Vec<String> = shown_findings.iter().map(|f| f.to_string()).collect();
    for d in &inv.dpus {
        lines.push(Line::styled(
            format!("{} {}", d.identity.vendor, d.identity.model),
            Style::new().add_modifier(Modifier::BOLD),
        ));
        lines.push(Line::raw(format!(
            "  Location:   {}",
            d.identity.location()
        )));
        lines.push(Line::raw(format!(
            "  Management: {}",
            d.management.as_deref().unwrap_or("none found")
        )));
        lines.push(Line::raw(format!(
            "  Supported by vSphere 8: {}",
            if d.identity.supported { "yes" } else { "no" }
        )));
        let action = planned.and_then(|p| {
            p.dpus
                .iter()
                .find(|x| x.card.identity.address == d.identity.address)
        });
        let left_alone = planned.and_then(|p| {
            p.dpus_not_used
                .iter()
                .find(|x| x.identity.address == d.identity.address)
        });
        match action {
            None if left_alone.is_some() => {
                let why = left_alone.map(|n| n.reason.as_str()).unwrap_or_default();
                lines.push(Line::styled(
                    "  This install leaves it alone: ESXi is installed without DSE.",
                    WARNING,
                ));
                lines.push(Line::styled(format!("    {why}"), WARNING));
            }
            None if findings.is_empty() => {
                lines.push(Line::raw("  This install: no plan (see below)"));
            }
            Some(a) => {
                lines.push(Line::raw(format!(
                    "  Media for it: ESXi {} ({} ESXio components)",
                    app.ctx.media.manifest.version,
                    app.ctx.media.manifest.dpu_components().count()
                )));
                lines.push(Line::raw(format!("  This install: {}", a.action)));
            }
            None => {
                lines.push(Line::styled("  This install cannot use it:", WARNING));
                for finding in &findings {
                    lines.push(Line::styled(format!("    {finding}"), WARNING));
                }
            }
        }
        lines.push(Line::raw(""));
    }
    // A refusal on DPU rules the findings above already show is not repeated.
    if let Some(Err(e)) = app.planned.as_ref().filter(|p| match p {
        Err(e) => {
            e.dpu_findings.is_empty() || !e.dpu_findings.iter().all(|f| shown_findings.contains(f))
        }
        Ok(_) => false,
    }) {
        lines.push(Line::styled(
            format!("The install cannot go ahead: {e}"),
            ERROR,
        ));
    }
    f.render_widget(wrapped(lines), area);
}
