//! The synthetic BlueField firmware bundles of `firmware/` (`nvidia-bluefield-2/`,
//! `nvidia-bluefield-3/`): each a `bfb-passthrough` bundle, the format of NVIDIA's BF-Bundle,
//! whose one `.bfb` is a boot stream written here in `mlx-mkbfb`'s format (BL2, BL31, UEFI, NIC
//! firmware, an information image and a placeholder installer ramdisk). The product treats it
//! exactly as a vendor's bundle: it sends it byte for byte, then `bf.cfg`, then the ESXio
//! components. The simulator ([`crate::sim`]) understands it; no real card would.
//!
//! The committed bundles are this module's output, byte for byte (the test below); after a
//! change here, `TESTKIT_WRITE_BUNDLES=1 cargo test -p testkit` writes them again.

use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::bfb::{self, image_id, Image};

/// One synthetic BlueField model.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    /// The bundle's directory under `firmware/`, and its catalog id.
    pub catalog_id: &'static str,
    pub model: &'static str,
    pub generation: &'static str,
    pub version: &'static str,
    /// Sizes of BL2, BL31, UEFI and the NIC firmware.
    pub sizes: [usize; 4],
}

pub const BLUEFIELD2: Model = Model {
    catalog_id: "nvidia-bluefield-2",
    model: "BlueField-2",
    generation: "BlueField-2 (MT42822)",
    version: "24.44.1036",
    sizes: [24 << 10, 64 << 10, 256 << 10, 128 << 10],
};

pub const BLUEFIELD3: Model = Model {
    catalog_id: "nvidia-bluefield-3",
    model: "BlueField-3",
    generation: "BlueField-3 (MT43244)",
    version: "32.44.1036",
    sizes: [32 << 10, 96 << 10, 384 << 10, 192 << 10],
};

pub const MODELS: [Model; 2] = [BLUEFIELD2, BLUEFIELD3];

impl Model {
    /// The `.bfb` file's name inside the bundle.
    pub fn file_name(&self) -> String {
        format!("bf-bundle-synthetic-{}.bfb", self.version)
    }

    /// The images of the stream, in `mlx-mkbfb`'s order.
    pub fn images(&self) -> Vec<Image> {
        let named = [
            (image_id::BL2, "bl2"),
            (image_id::BL31, "bl31"),
            (image_id::BL33, "uefi"),
            (image_id::NIC_FW, "nic-firmware"),
        ];
        let mut images: Vec<Image> = named
            .iter()
            .zip(self.sizes)
            .map(|(&(id, name), size)| Image {
                id,
                bytes: filler(self, name, size),
            })
            .collect();
        let info = format!(
            "{{\"made_by\": \"testkit\", \"synthetic\": true, \"model\": \"{}\", \"version\": \"{}\"}}\n",
            self.model, self.version
        );
        images.push(Image {
            id: image_id::INFO,
            bytes: info.into_bytes(),
        });
        images.push(Image {
            id: image_id::INITRAMFS,
            bytes: filler(self, "installer ramdisk", 4096),
        });
        images
    }

    /// The SHA-256 of image `id`'s bytes (without padding).
    pub fn image_sha256(&self, id: u8) -> Option<String> {
        self.images()
            .iter()
            .find(|i| i.id == id)
            .map(|i| crate::hex(&Sha256::digest(&i.bytes)))
    }

    /// Write the bundle (`bundle.toml` and the `.bfb`) into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut stream = Vec::new();
        bfb::write(&self.images(), &mut stream)?;
        let name = self.file_name();
        std::fs::write(dir.join(&name), &stream)?;
        let toml = format!(
            "# A synthetic NVIDIA {model} firmware bundle, written by testkit (testkit/src/bundles.rs):\n\
             # a boot stream only the simulator boots, in the format of NVIDIA's BF-Bundle. See\n\
             # firmware/README.md.\n\
             vendor = \"NVIDIA\"\n\
             model = \"{model}\"\n\
             catalog_ids = [\"{id}\"]\n\
             generations = [\"{generation}\"]\n\
             version = \"{version}\"\n\
             min_esxi = \"8.0.0\"\n\
             format = \"bfb-passthrough\"\n\
             synthetic = true\n\
             \n\
             [[file]]\n\
             path = \"{name}\"\n\
             kind = \"vendor-bfb\"\n\
             size = {size}\n\
             sha256 = \"{sha}\"\n",
            model = self.model,
            id = self.catalog_id,
            generation = self.generation,
            version = self.version,
            size = stream.len(),
            sha = crate::hex(&Sha256::digest(&stream)),
        );
        std::fs::write(dir.join("bundle.toml"), toml)?;
        Ok(())
    }
}

/// A text header saying what the image is, then splitmix64 bytes seeded by it: deterministic,
/// and plainly not firmware.
fn filler(m: &Model, what: &str, size: usize) -> Vec<u8> {
    let mut out = format!(
        "SYNTHETIC {} {what} {}\nNot a real firmware image: made by ksinstall's testkit.\n",
        m.model, m.version
    )
    .into_bytes();
    let mut state = Sha256::digest(&out)
        .iter()
        .take(8)
        .fold(0u64, |a, &b| a << 8 | u64::from(b));
    while out.len() < size {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(size);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundles in `firmware/` are what this module writes, file for file.
    #[test]
    fn the_committed_bundles_are_testkits_output() {
        let firmware = Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware");
        let t = tempfile::tempdir().unwrap();
        for m in MODELS {
            let dir = firmware.join(m.catalog_id);
            if std::env::var_os("TESTKIT_WRITE_BUNDLES").is_some() {
                let _ = std::fs::remove_dir_all(&dir);
                m.write(&dir).unwrap();
            }
            let fresh = t.path().join(m.catalog_id);
            m.write(&fresh).unwrap();
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            let mut want = vec!["bundle.toml".to_string(), m.file_name()];
            want.sort();
            assert_eq!(names, want, "{}", dir.display());
            for n in want {
                assert!(
                    std::fs::read(dir.join(&n)).unwrap() == std::fs::read(fresh.join(&n)).unwrap(),
                    "{}/{n} is not what testkit writes (TESTKIT_WRITE_BUNDLES=1 cargo test -p testkit)",
                    dir.display()
                );
            }
            // And the product reads it as a bundle of its only BlueField format.
            let b = ksinstall::dpu::bundle::load(&dir).unwrap();
            assert_eq!(
                b.manifest.format,
                ksinstall::dpu::bundle::PayloadFormat::BfbPassthrough
            );
        }
    }
}
