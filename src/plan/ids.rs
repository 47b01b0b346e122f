//! The identities a plan gives what it creates (disk and partition GUIDs, FAT volume ids, bank
//! UUIDs), drawn from the host's seed: the same `Host` always gives the same plan, and each real
//! run gets fresh identities because `install::prepare` draws a fresh seed.

use std::cell::Cell;

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A deterministic source of random-looking (version 4) UUIDs: SHA-256 of the seed and a counter.
pub struct IdSource {
    seed: String,
    next: Cell<u64>,
}

impl IdSource {
    pub fn new(seed: &str) -> IdSource {
        IdSource {
            seed: seed.to_string(),
            next: Cell::new(0),
        }
    }

    pub fn next(&self) -> Uuid {
        let n = self.next.get();
        self.next.set(n + 1);
        let digest = Sha256::new()
            .chain_update(self.seed.as_bytes())
            .chain_update(n.to_le_bytes())
            .finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_ids_other_seed_other_ids() {
        let (a, b, c) = (
            IdSource::new("s1"),
            IdSource::new("s1"),
            IdSource::new("s2"),
        );
        let first = a.next();
        assert_eq!(first, b.next());
        assert_ne!(first, a.next(), "each draw is new");
        assert_ne!(first, c.next());
        assert_eq!(first.get_version_num(), 4);
    }
}
