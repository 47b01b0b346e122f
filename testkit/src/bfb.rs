//! The BlueField boot stream (BFB), as `mlx-mkbfb` writes it: what the synthetic BF-Bundles of
//! [`crate::bundles`] are made of. The product never writes one: it sends the vendor's bundle as
//! it is (docs/DPU.md).
//!
//! Written by hand: NVIDIA ships the format only as a Python script and no crate reads or writes
//! it. A BFB is a sequence of images, each a 24-byte little-endian header and the image padded
//! with zeros to a multiple of 8:
//! - word 0: bits 0-31 magic `0x13026642`, 32-35 major (1), 36-39 minor, 52-55 the header length
//!   in 8-byte words (3), 56-63 the image id;
//! - word 1: bits 0-31 the image length without padding, 32-63 the CRC-32 (zlib) of the image
//!   bytes and the padding;
//! - word 2: a bitmap of the ids of the images that follow.

use std::io::{self, Write};

pub const MAGIC: u32 = 0x1302_6642;
pub const HEADER_LEN: usize = 24;
const MAJOR: u64 = 1;
const MINOR: u64 = 0;

/// Image ids of `mlx-mkbfb`'s table that the synthetic bundles use.
pub mod image_id {
    pub const BL2: u8 = 1;
    pub const BL31: u8 = 3;
    /// UEFI.
    pub const BL33: u8 = 5;
    pub const SYS: u8 = 29;
    pub const NIC_FW: u8 = 41;
    /// BFB version information.
    pub const INFO: u8 = 50;
    /// The installer ramdisk (a BF-Bundle's installer; in the synthetic bundles a placeholder).
    pub const INITRAMFS: u8 = 63;
}

/// One image of the stream.
#[derive(Debug, Clone)]
pub struct Image {
    pub id: u8,
    pub bytes: Vec<u8>,
}

fn padded_len(len: usize) -> usize {
    len.div_ceil(8) * 8
}

/// The header of one image; `following` are the ids of the images after it.
pub fn header(id: u8, bytes: &[u8], following: &[u8]) -> io::Result<[u8; HEADER_LEN]> {
    let len = u32::try_from(bytes.len()).map_err(|_| too_big(id, bytes.len() as u64))?;
    let pad = padded_len(bytes.len()) - bytes.len();
    let mut crc = crc32fast::Hasher::new();
    crc.update(bytes);
    crc.update(&[0u8; 8][..pad]);
    Ok(header_of(id, len, crc.finalize(), following))
}

fn too_big(id: u8, len: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("BFB image {id} is {len} bytes: over 4 GiB"),
    )
}

/// The header from an image's length and the CRC-32 of its padded bytes.
pub fn header_of(id: u8, len: u32, crc: u32, following: &[u8]) -> [u8; HEADER_LEN] {
    let word0 = u64::from(MAGIC) | MAJOR << 32 | MINOR << 36 | 3u64 << 52 | u64::from(id) << 56;
    let word1 = u64::from(len) | u64::from(crc) << 32;
    let word2 = following.iter().fold(0u64, |m, &f| m | 1u64 << (f & 63));
    let mut out = [0u8; HEADER_LEN];
    out[0..8].copy_from_slice(&word0.to_le_bytes());
    out[8..16].copy_from_slice(&word1.to_le_bytes());
    out[16..24].copy_from_slice(&word2.to_le_bytes());
    out
}

/// Write `images` as one boot stream; returns the bytes written.
pub fn write(images: &[Image], out: &mut dyn Write) -> io::Result<u64> {
    let mut total = 0u64;
    for (i, img) in images.iter().enumerate() {
        let following: Vec<u8> = images[i + 1..].iter().map(|n| n.id).collect();
        out.write_all(&header(img.id, &img.bytes, &following)?)?;
        out.write_all(&img.bytes)?;
        let pad = padded_len(img.bytes.len()) - img.bytes.len();
        out.write_all(&[0u8; 8][..pad])?;
        total += (HEADER_LEN + padded_len(img.bytes.len())) as u64;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_matches_the_documented_layout() {
        // An image of 5 bytes: padded to 8, CRC over the padded bytes as mlx-mkbfb computes it.
        let h = header(image_id::NIC_FW, b"hello", &[image_id::INFO, 63]).unwrap();
        assert_eq!(&h[0..4], &[0x42, 0x66, 0x02, 0x13], "magic, little-endian");
        assert_eq!(h[4], 0x01, "major 1, minor 0");
        assert_eq!(h[6] >> 4, 3, "header length 3 words");
        assert_eq!(h[7], 41, "image id");
        assert_eq!(u32::from_le_bytes(h[8..12].try_into().unwrap()), 5);
        // zlib.crc32(b"hello\0\0\0") == 0xff13b51d (checked with Python's zlib).
        assert_eq!(
            u32::from_le_bytes(h[12..16].try_into().unwrap()),
            0xff13_b51d
        );
        assert_eq!(
            u64::from_le_bytes(h[16..24].try_into().unwrap()),
            1 << 50 | 1 << 63
        );
    }
}
