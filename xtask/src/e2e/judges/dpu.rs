//! The DPUs: the DSC flashed through the guest kernel's devlink (netdevsim), its firmware
//! version checked against the card's answer, and the BlueField found through the guest's sysfs.

use std::path::Path;

use anyhow::{Context, Result};

use super::disk::{mtools_files, sgdisk_partitions, untouched};
use super::{judge, Outcome};
use crate::e2e::guest::Serial;
use crate::e2e::image::NETDEVSIM_FIRMWARE;
use crate::e2e::Paths;

/// Scenario 3 (DSC): the flash went through the guest kernel's devlink, and its status
/// notifications reached the installer's progress.
pub(in crate::e2e) fn check_dpu_flash(serial: &Serial) -> Outcome {
    let mut problems = Vec::new();
    let events = serial.events();
    let status: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "status" && e["step"] == "dpu")
        .filter_map(|e| e["message"].as_str())
        .collect();
    let flashing = status.iter().filter(|m| m.contains("Flashing")).count();
    // netdevsim (6.1) announces 500 steps, then "Flash select" with an 81 s timeout.
    if flashing < 500 {
        problems.push(format!(
            "{flashing} \"Flashing\" statuses reached the progress, not 500"
        ));
    }
    for want in [
        "Preparing to flash",
        "Flashing 100%",
        "Flash select (may take up to 81s)",
        "Flashing done",
    ] {
        if !status.iter().any(|m| m.contains(want)) {
            problems.push(format!("no devlink status \"{want}\" in the progress"));
        }
    }
    let dpu_done = events
        .iter()
        .any(|e| e["event"] == "step_finished" && e["step"] == "dpu");
    if !dpu_done {
        problems.push("the dpu step did not finish".into());
    }
    if !serial.text.contains("E2E-PCI") || !serial.text.contains("0x1dd8:0x100c") {
        problems.push("the edu device did not take the DSC identity".into());
    }
    judge(
        "3 DSC flash (netdevsim)",
        serial,
        problems,
        format!(
            "{} devlink status notifications reached the progress ({flashing} \"Flashing\")",
            status.len()
        ),
    )
}

/// The version the repository's DSC bundle says it carries.
pub(in crate::e2e) fn shipped_dsc_version(p: &Paths) -> Result<String> {
    let path = p.root.join("firmware/amd-pensando-dsc/bundle.toml");
    std::fs::read_to_string(&path)?
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .map(|v| v.trim().trim_matches('"').to_string())
        .with_context(|| format!("{}: no version", path.display()))
}

/// The card's answer decides: netdevsim stores 10.20.30 whatever it is given, so a bundle that
/// says another version was not installed, and the host must not be left bootable.
pub(in crate::e2e) fn check_dsc_version(serial: &Serial, disk: &Path, shipped: &str) -> Outcome {
    let mut problems = Vec::new();
    let message = serial.failure_message();
    serial.expect_exit(7, "the DPU install failed", &mut problems);
    if !message.contains(&format!("shows no stored firmware {shipped}"))
        || !message.contains(NETDEVSIM_FIRMWARE)
    {
        problems.push(format!(
            "the error does not say what the card stores: {message:?}"
        ));
    }
    let r = (|| -> Result<()> {
        let parts = sgdisk_partitions(disk)?;
        let bank = parts
            .iter()
            .find(|h| h.number == 5)
            .context("no partition 5 (the host lay-down runs beside the DPU)")?;
        let files = mtools_files(&disk.with_extension("mtools"), disk, bank)?;
        if files.keys().any(|k| k.eq_ignore_ascii_case("/boot.cfg")) {
            problems.push("bank 0 has a boot.cfg although the DPU install failed".into());
        }
        Ok(())
    })();
    if let Err(e) = r {
        problems.push(format!("{e:#}"));
    }
    judge(
        "3 DSC version check",
        serial,
        problems,
        format!("failed as expected: exit 7, {message:?}, no boot.cfg on bank 0"),
    )
}

/// Scenario 3 (BlueField): detected through the guest's sysfs, its install planned via rshim.
pub(in crate::e2e) fn check_bluefield(serial: &Serial, disk: &Path) -> Outcome {
    let mut problems = Vec::new();
    let plan = serial.events().into_iter().find(|e| e["event"] == "plan");
    let mut detail = String::new();
    match (serial.exit_code(), plan) {
        (Some(0), Some(e)) => {
            let dpus = e["plan"]["dpus"].as_array().cloned().unwrap_or_default();
            let text = serde_json::to_string(&dpus).unwrap_or_default();
            if dpus.len() != 1 || !text.contains("BlueField-3") || !text.contains("/dev/rshim0") {
                problems.push(format!(
                    "the plan's DPUs are not one BlueField-3 through /dev/rshim0: {text}"
                ));
            } else {
                detail = "one BlueField-3 found in the guest's sysfs; its install planned through /dev/rshim0".into();
            }
        }
        (rc, _) => problems.push(format!("the dry run ended with {rc:?} and no plan")),
    }
    match untouched(disk) {
        Ok(true) => {}
        Ok(false) => problems.push("the dry run wrote to the disk".into()),
        Err(e) => problems.push(format!("{e:#}")),
    }
    judge("3 BlueField plan", serial, problems, detail)
}
