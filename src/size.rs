//! Sizes as people write them on a command line: `40G`, `512M`, `1T`, or plain bytes (binary
//! multiples, as `truncate` and `qemu-img` read them).

use anyhow::{Context, Result};

pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        Some('T' | 't') => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: u64 = num.parse().with_context(|| format!("size \"{s}\""))?;
    n.checked_mul(mult)
        .with_context(|| format!("size \"{s}\" is too large"))
}
