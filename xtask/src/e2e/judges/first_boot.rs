//! What the installed bank hands ESXi's first boot, read back with `ksinstall inspect`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use super::{judge, Outcome};
use crate::e2e::guest::Serial;

/// The installed disk read back with `ksinstall inspect` here: the bank that boots hands ESXi's
/// first boot exactly what the kickstart said, in the form ESXi reads (docs/FIRSTBOOT.md).
pub(in crate::e2e) fn check_first_boot(serial: &Serial, disk: &Path, ksinstall: &Path) -> Outcome {
    let mut problems = Vec::new();
    let r = (|| -> Result<String> {
        let out = Command::new(ksinstall)
            .args(["inspect", "--format", "json"])
            .arg(disk)
            .output()?;
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| String::from_utf8_lossy(&out.stderr).into_owned())?;
        if out.status.code() != Some(0) {
            problems.push(format!(
                "inspect exit {:?}: {}",
                out.status.code(),
                doc["first_boot_problems"]
            ));
        }
        let banks = doc["content"]["esx"]["banks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let bank5 = banks
            .iter()
            .find(|b| b["partition"] == 5)
            .cloned()
            .unwrap_or_default();
        let fb = &bank5["first_boot"];
        if fb["pending"] != true {
            problems.push("bank 5's boot.cfg does not hand onetime.tgz to first boot".into());
        }
        if !bank5["state_tgz"].is_null() {
            problems.push("a fresh install wrote state.tgz".into());
        }
        let applies: Vec<String> = fb["applies"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        for want in [
            "host name esx1",
            "network static 10.1.2.3/255.255.255.0 via 10.1.2.1",
            "VLAN 42",
            "DNS 10.1.2.2, 10.1.2.4",
            "keyboard German",
            "license from serialnum",
            "root password set: SHA-512 crypt ($6$)",
            "runs var/lib/vmware/firstboot/000.firstboot_ksinstall",
            "runs var/lib/vmware/firstboot/001.firstboot_001",
            "runs var/lib/vmware/firstboot/002.firstboot_002",
        ] {
            if !applies.iter().any(|a| a == want) {
                problems.push(format!("first boot does not apply {want:?}: {applies:?}"));
            }
        }
        Ok(format!(
            "{} settings and scripts read back by inspect",
            applies.len()
        ))
    })();
    let detail = match r {
        Ok(d) => d,
        Err(e) => {
            problems.push(format!("{e:#}"));
            String::new()
        }
    };
    judge(
        "2b first-boot contract on the installed bank",
        serial,
        problems,
        detail,
    )
}
