//! The plan for people: `--dry-run`'s text.

use super::*;

impl Plan {
    /// An upgrade's plan for people: which bank boots now, which one is written, what is carried
    /// over and what is never touched.
    fn upgrade_text(&self, u: &upgrade::UpgradePlan) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Upgrade ESXi {} -> {} from {}",
            u.from_build, u.to_build, self.media.location
        );
        let _ = writeln!(s, "  why: {}", self.reason);
        self.media_and_target_lines(&mut s);
        let _ = writeln!(
            s,
            "  bank {} boots now (updated={}): NOT written; it stays for rollback",
            u.running_bank, u.running_updated
        );
        let bank: u64 = self.bank_files.iter().map(|f| f.size).sum();
        let _ = writeln!(
            s,
            "  bank {} is reformatted and gets {} modules ({}), {}, then boot.cfg last: bootstate={} updated={} build={}",
            u.target_bank,
            self.bank_files.len(),
            crate::size::human(bank),
            self.generated
                .iter()
                .map(|g| g.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            u.new_bootstate,
            u.new_updated,
            u.to_build
        );
        for c in &u.carried {
            let _ = writeln!(
                s,
                "  carried from bank {}: {} ({} bytes, sha256 {}): {}",
                c.from_partition,
                c.name,
                c.size,
                short(&c.sha256),
                c.why
            );
        }
        let _ = writeln!(
            s,
            "  never written: partitions {}",
            u.untouched
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        if u.downgrade {
            let _ = writeln!(s, "  DOWNGRADE");
        }
        self.scripts_and_warnings(&mut s);
        s
    }

    /// What vouches for the media, and the target disk: the same lines for an install and an
    /// upgrade.
    fn media_and_target_lines(&self, s: &mut String) {
        use std::fmt::Write;
        let t = &self.target;
        let _ = writeln!(s, "  verified by: {}", self.media.verified_by);
        if !self.media.not_covered.is_empty() {
            let _ = writeln!(
                s,
                "  not covered by any VIB: {}",
                self.media.not_covered.join(", ")
            );
        }
        let _ = writeln!(s, "  signatures: {}", self.media.signatures);
        let _ = writeln!(
            s,
            "Target: {} ({}), {}, {}-byte sectors; {}",
            t.name,
            t.path.display(),
            crate::size::human(t.size_bytes),
            t.logical_sector_size,
            t.chosen_because
        );
    }

    fn scripts_and_warnings(&self, s: &mut String) {
        use std::fmt::Write;
        if !self.post_scripts.is_empty() {
            let _ = writeln!(s, "%post scripts: {}", self.post_scripts.len());
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
    }

    /// The plan for people: what will be erased and written.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        if let Some(u) = &self.upgrade {
            return self.upgrade_text(u);
        }
        let mut s = String::new();
        let t = &self.target;
        let _ = writeln!(s, "{}", self.reason);
        let _ = writeln!(
            s,
            "Install ESXi {} ({}) from {}",
            self.media.version, self.media.build, self.media.location
        );
        self.media_and_target_lines(&mut s);
        let _ = writeln!(
            s,
            "  holds now: {} -- everything on it except preserved partitions is ERASED",
            t.holds_now
        );
        for c in &self.cleared {
            let _ = writeln!(
                s,
                "clearpart: {} ({}), {}, holds now: {} -- its partition tables and the first 4 MiB of each partition are ZEROED",
                c.name,
                c.path.display(),
                crate::size::human(c.size_bytes),
                c.holds_now
            );
        }
        let _ = writeln!(s, "{}", self.layout.dry_run_text());
        let esp: u64 = self.esp_files.iter().map(|f| f.size).sum();
        let bank: u64 = self.bank_files.iter().map(|f| f.size).sum();
        let _ = writeln!(
            s,
            "Partition 1: {} bootloader files ({})",
            self.esp_files.len(),
            crate::size::human(esp)
        );
        let _ = writeln!(
            s,
            "Partition 5: {} modules ({}), {}, boot.cfg last",
            self.bank_files.len(),
            crate::size::human(bank),
            self.generated
                .iter()
                .map(|g| g.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        for d in &self.datastore_disks {
            let _ = writeln!(
                s,
                "Datastore disk {} ({}): ERASED; partition 1 for VMFS datastore \"{}\", formatted at first boot",
                d.name,
                d.path.display(),
                d.datastore
            );
        }
        let _ = writeln!(s, "First boot applies (onetime.tgz):");
        for line in self.host.lines() {
            let _ = writeln!(s, "  {line}");
        }
        for d in &self.dpus {
            let _ = writeln!(
                s,
                "DPU: {} through {}: {} {} ({} parts, payload {})",
                d.name,
                d.interface,
                d.action,
                d.payload.label,
                d.payload.parts.len(),
                short(&d.payload.id)
            );
            let _ = writeln!(
                s,
                "     now runs: {}",
                d.before.software.as_deref().unwrap_or("unknown")
            );
            if let Some(r) = &d.before.reached_through {
                let _ = writeln!(s, "     {r}");
            }
            if let Some(r) = &d.after_host {
                let _ = writeln!(s, "     {r}");
            }
        }
        self.scripts_and_warnings(&mut s);
        s
    }
}

/// The first 16 characters of a hex digest, for people (a plan read back from a file may hold a
/// shorter one: never a slice past its end).
fn short(digest: &str) -> &str {
    digest.get(..16).unwrap_or(digest)
}
