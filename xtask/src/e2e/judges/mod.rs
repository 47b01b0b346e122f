//! Judging: what each scenario's serial console, the disk image and the HTTP server's log
//! must show, checked by the guest's kernel and by tools on this machine. One file a concern:
//! the disk read here by tools nobody here wrote (`disk`), the disk as the guest's kernel read
//! it against that (`kernel_view`), the install scenarios (`install`), the firmware's and the
//! image's boot and network (`boot`), the first boot handed over (`first_boot`) and the DPUs
//! (`dpu`).

use std::time::Duration;

use super::guest::Serial;

mod boot;
mod disk;
mod dpu;
mod first_boot;
mod install;
mod kernel_view;

pub(super) use boot::{check_failure, check_pxe_served, check_uefi, check_vlan};
pub(super) use disk::{check_host_tools, sgdisk_partitions};
pub(super) use dpu::{check_bluefield, check_dpu_flash, check_dsc_version, shipped_dsc_version};
pub(super) use first_boot::check_first_boot;
pub(super) use install::{check_broken, check_embedded, check_pxe, check_removable};
pub(super) use kernel_view::check_datastore;

pub(in crate::e2e) struct Outcome {
    pub(in crate::e2e) name: String,
    pub(in crate::e2e) passed: bool,
    pub(in crate::e2e) elapsed: Duration,
    pub(in crate::e2e) detail: String,
}

pub(in crate::e2e) fn judge(
    name: &str,
    serial: &Serial,
    problems: Vec<String>,
    ok_detail: String,
) -> Outcome {
    let mut problems = problems;
    if serial.timed_out {
        problems.insert(0, "the guest timed out".into());
    }
    for f in serial.failures() {
        problems.push(f.to_string());
    }
    Outcome {
        name: name.to_string(),
        passed: problems.is_empty(),
        elapsed: serial.elapsed,
        detail: if problems.is_empty() {
            ok_detail
        } else {
            problems.join("; ")
        },
    }
}
