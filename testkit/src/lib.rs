//! ksinstall's test kit: what the tests (`tests/*.rs`), `cargo xtask` (demo, bench, rollout,
//! e2e) and nothing else use. The product (the `ksinstall` library and binary) depends on none
//! of it (`cargo tree -e normal -p ksinstall`).
//!
//! - [`sim`]: a simulated BlueField standing where the rshim daemon stands
//!   (`dev/rshimN/{boot,misc}`), behaving as the daemon does towards its reader;
//! - [`synth`]: deterministic synthetic ESXi 8 installer media in VMware's format;
//! - [`bfb`]: a BlueField boot stream writer (`mlx-mkbfb`'s format), for the synthetic
//!   BF-Bundles the simulator boots;
//! - [`bundles`]: the synthetic BlueField firmware bundles (`bfb-passthrough`, like a vendor's).

pub mod bfb;
pub mod bundles;
mod misc;
pub mod sim;
pub mod synth;

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    ksinstall::media::verify::hex(bytes)
}
