//! Sizes as people write and read them: `40G`, `40GiB`, `512M`, `1T`, or plain bytes on a command
//! line (binary multiples, as `truncate` and `qemu-img` read them), and `40 GiB` in messages.

use anyhow::{bail, Context, Result};

/// Parse `40G`, `40GiB`, `512M`, `512MiB`, `1T` or plain bytes. A decimal unit (`40GB`) is
/// refused rather than guessed: disk vendors mean 10^9, `truncate` means 2^30.
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits);
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        "t" | "tib" => 40,
        "kb" | "mb" | "gb" | "tb" => {
            let letter = &unit[..1];
            bail!(
                "size \"{s}\": {unit} is ambiguous (10^n or 2^n bytes): use {num}{} or {num}{}iB",
                letter.to_ascii_uppercase(),
                letter.to_ascii_uppercase()
            )
        }
        _ => bail!("size \"{s}\": expected a number with K, M, G or T (binary units), e.g. 40G"),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("size \"{s}\": expected a number with K, M, G or T, e.g. 40G"))?;
    n.checked_mul(1u64 << shift)
        .with_context(|| format!("size \"{s}\" is too large"))
}

/// A size for a person, in binary units with their IEC names: `40 GiB`, `4.5 GiB`, `512 MiB`,
/// `100 bytes`. One rule everywhere (console, probe, plan, errors), so that the numbers agree.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return if bytes == 1 {
            "1 byte".into()
        } else {
            format!("{bytes} bytes")
        };
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if (value - value.round()).abs() < 0.05 {
        format!("{:.0} {}", value.round(), UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_units_with_or_without_ib() {
        assert_eq!(parse_size("40G").unwrap(), 40 << 30);
        assert_eq!(parse_size("40GiB").unwrap(), 40 << 30);
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
    }

    #[test]
    fn decimal_units_are_refused_with_the_way_out() {
        let e = parse_size("40GB").unwrap_err().to_string();
        assert!(e.contains("use 40G or 40GiB"), "{e}");
        assert!(parse_size("forty").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(human(40 << 30), "40 GiB");
        assert_eq!(human(4608 << 20), "4.5 GiB");
        assert_eq!(human(512 << 20), "512 MiB");
        assert_eq!(human(1), "1 byte");
        assert_eq!(human(100), "100 bytes");
    }
}
