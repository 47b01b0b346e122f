use super::Format;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use ksinstall::exit::Outcome;
use ksinstall::install::ProbeReport;
use ksinstall::inventory::{Disk, Dpu};
use ksinstall::size::human as human_size;

/// Show the disks and DPUs the installer sees, or record them as a test fixture.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory standing for `/`: sys/block, sys/bus/pci and dev are read below it.
    #[arg(long, default_value = "/")]
    sysroot: PathBuf,
    /// Output for people (text) or machines (json).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Also check these `--dpuPciSlots` values (comma-separated).
    #[arg(long, value_delimiter = ',')]
    dpu_pci_slots: Vec<String>,
    /// Copy the sysfs files the installer reads into DIR (no device contents), to send as a
    /// fixture of this server.
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
    #[command(flatten)]
    dpu: super::DpuArgs,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    if let Some(dest) = &a.record {
        let summary = ksinstall::install::record(&a.sysroot, dest)?;
        println!(
            "recorded {} files, {} links, {} directories into {}",
            summary.files,
            summary.links,
            summary.dirs,
            dest.display()
        );
        for s in &summary.skipped {
            println!("  skipped {s}");
        }
        return Ok(Outcome::Success);
    }
    let access = a.dpu.access(&a.sysroot);
    let probe = ProbeReport::read(&a.sysroot, &a.dpu_pci_slots, &access)
        .with_context(|| format!("probing {}", a.sysroot.display()))?;
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&probe)?),
        Format::Text => print!("{}", render_text(&probe)),
    }
    Ok(Outcome::Success)
}

fn render_text(probe: &ProbeReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Firmware: {}", probe.firmware.describe());
    if probe.firmware.secure_boot == Some(true) {
        let _ = writeln!(
            out,
            "  ESXi installed here runs no %firstboot script while Secure Boot is on"
        );
    }
    write_disks(&mut out, &probe.disks);
    write_dpus(&mut out, &probe.dpus, &probe.dpu_software);
    if !probe.findings.is_empty() {
        let _ = writeln!(out, "Findings:");
        for f in &probe.findings {
            let _ = writeln!(out, "  - {}", f.message);
        }
    }
    out
}

/// The disks as a table, each with its other names under it.
fn write_disks(out: &mut String, disks: &[Disk]) {
    let _ = writeln!(out, "Disks ({}):", disks.len());
    let mut rows: Vec<[String; 8]> = vec![[
        "NAME",
        "KERNEL",
        "SIZE",
        "BUS",
        "KIND",
        "VENDOR/MODEL",
        "DRIVER",
        "CONTENT",
    ]
    .map(String::from)];
    let mut also = Vec::new();
    for d in disks {
        let mut kind = vec![if d.remote {
            "remote"
        } else if d.usb {
            "usb"
        } else {
            "local"
        }];
        kind.push(if d.ssd { "ssd" } else { "hdd" });
        if d.removable {
            kind.push("removable");
        }
        let driver = match (&d.driver, &d.esxi_driver) {
            (Some(l), Some(e)) if l != e => format!("{l} ({e})"),
            (Some(l), _) => l.clone(),
            (None, _) => "-".to_string(),
        };
        rows.push([
            d.name.clone(),
            d.kernel_name.clone(),
            human_size(d.size_bytes),
            d.transport.as_str().to_string(),
            kind.join(","),
            d.description(),
            driver,
            d.content.summary(),
        ]);
        // Other UIDs (vml.…); the path forms of every name are accepted too.
        let others: Vec<&str> = d
            .aliases
            .iter()
            .map(String::as_str)
            .filter(|a| *a != d.name && !a.contains('/') && *a != d.kernel_name)
            .collect();
        also.push(others.join(", "));
    }
    let mut widths = [0usize; 8];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    if !disks.is_empty() {
        for (i, row) in rows.iter().enumerate() {
            let mut line = String::from(" ");
            for (cell, w) in row.iter().zip(widths.iter()) {
                let _ = write!(line, " {cell:<w$}");
            }
            let _ = writeln!(out, "{}", line.trim_end());
            if let Some(a) = i.checked_sub(1).and_then(|j| also.get(j)) {
                if !a.is_empty() {
                    let _ = writeln!(out, "      also: {a}");
                }
            }
            if let Some(esx) = i
                .checked_sub(1)
                .and_then(|j| disks.get(j))
                .and_then(|d| d.content.esx.as_ref())
            {
                write_esx(out, esx);
            }
        }
    }
}

/// The ESXi on a disk: each boot bank, which one boots, and whether `upgrade` can keep it.
fn write_esx(out: &mut String, esx: &ksinstall::inventory::EsxInstall) {
    for b in &esx.banks {
        let state = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
        let mut line = format!(
            "      bank p{}: build {} bootstate {} updated {}",
            b.partition,
            b.build.as_deref().unwrap_or("-"),
            state(b.bootstate),
            b.updated.map_or("-".to_string(), |u| u.to_string()),
        );
        if esx.boots == Some(b.partition) {
            line += " (boots)";
        }
        if !b.has_boot_cfg {
            line = format!("      bank p{}: no boot.cfg (empty)", b.partition);
        }
        if let Some(img) = &b.image {
            let _ = write!(line, "; {} ({} VIBs)", img.profile, img.vibs.len());
        }
        if b.state_tgz.is_some() {
            line += "; state.tgz";
        }
        if b.jumpstrt_gz.is_some() {
            line += "; jumpstrt.gz";
        }
        if b.uuid.is_none() {
            line += "; no VMware FAT signature";
        }
        if let Some(p) = &b.problem {
            let _ = write!(line, "; unreadable: {p}");
        }
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "      upgrade: {}", esx.upgrade);
}

/// Each DPU, its PCI functions, its management interface and what the card said.
fn write_dpus(out: &mut String, dpus: &[Dpu], observed: &[ksinstall::dpu::Observed]) {
    let _ = writeln!(out, "DPUs ({}):", dpus.len());
    for p in dpus {
        let support = if p.identity.supported {
            "supported"
        } else {
            "NOT supported by vSphere 8"
        };
        let _ = writeln!(
            out,
            "  {} {} [{}], {}, {}",
            p.identity.vendor,
            p.identity.model,
            p.identity.generation,
            p.identity.location(),
            support
        );
        for f in &p.functions {
            let _ = writeln!(
                out,
                "    {}  {}  subsys {:<9}  class {:<8}  {:<15} {}",
                f.address,
                f.id,
                f.subsystem.as_deref().unwrap_or("-"),
                f.class.as_deref().unwrap_or("-"),
                f.role.as_str(),
                f.driver.as_deref().unwrap_or("-")
            );
        }
        match (&p.management, p.management_role) {
            (Some(addr), Some(role)) => {
                let _ = writeln!(out, "    management: {addr} ({})", role.as_str());
            }
            _ => {
                let _ = writeln!(out, "    management: none found");
            }
        }
        if let Some(o) = observed.iter().find(|o| o.address == p.identity.address) {
            if let Some(i) = &o.interface {
                let _ = writeln!(out, "    reached through: {i}");
            }
            let _ = writeln!(
                out,
                "    software: {}",
                o.software.as_deref().unwrap_or("unknown")
            );
            for v in &o.versions {
                let _ = writeln!(out, "    {} {}: {}", v.kind, v.name, v.value);
            }
            if let Some(problem) = &o.problem {
                let _ = writeln!(out, "    cannot install now: {problem}");
            }
            if let Some(mode) = o.not_a_dpu {
                let _ = writeln!(out, "    not a DPU now: {mode}; to use it: {}", mode.fix());
            }
        }
    }
}
