//! A target disk: a block device or a regular (image) file behind one type that knows its size
//! and its logical sector size.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A disk we may write: an open block device or image file, its size and logical sector size.
#[derive(Debug)]
pub struct BlockDev {
    file: File,
    path: PathBuf,
    size_bytes: u64,
    logical_sector_size: u32,
    is_block_device: bool,
}

impl BlockDev {
    /// Open `path` read-write. A block device reports its own size (`BLKGETSIZE64`) and logical
    /// sector size (`BLKSSZGET`); for a regular file the size is its length and the sector size is
    /// `image_sector_size` (512 or 4096).
    pub fn open(path: &Path, image_sector_size: u32) -> Result<Self> {
        Self::open_with(path, image_sector_size, true)
    }

    /// Open `path` read-only (inspection, verification).
    pub fn open_read_only(path: &Path, image_sector_size: u32) -> Result<Self> {
        Self::open_with(path, image_sector_size, false)
    }

    fn open_with(path: &Path, image_sector_size: u32, write: bool) -> Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let pre =
            std::fs::metadata(path).with_context(|| format!("looking at {}", path.display()))?;
        let mut opts = OpenOptions::new();
        opts.read(true).write(write);
        if write && pre.file_type().is_block_device() {
            // Exclusive open: the kernel refuses (EBUSY) a block device that is mounted or
            // otherwise claimed, so we never write under a live file system.
            opts.custom_flags(libc::O_EXCL);
        }
        let file = opts.open(path).with_context(|| {
            format!(
                "opening {} for {}",
                path.display(),
                if write {
                    "writing (exclusive)"
                } else {
                    "reading"
                }
            )
        })?;
        let meta = file
            .metadata()
            .with_context(|| format!("reading metadata of {}", path.display()))?;
        let ft = meta.file_type();
        let (size_bytes, logical_sector_size, is_block_device) = if ft.is_block_device() {
            let (size, ss) = block_device_geometry(&file)
                .with_context(|| format!("querying size and sector size of {}", path.display()))?;
            (size, ss, true)
        } else if ft.is_file() {
            (meta.len(), image_sector_size, false)
        } else {
            bail!(
                "{} is neither a block device nor a regular file",
                path.display()
            );
        };
        if logical_sector_size != 512 && logical_sector_size != 4096 {
            bail!(
                "{}: logical sector size {} is not supported (only 512 and 4096)",
                path.display(),
                logical_sector_size
            );
        }
        Ok(BlockDev {
            file,
            path: path.to_path_buf(),
            size_bytes,
            logical_sector_size,
            is_block_device,
        })
    }

    /// Whether `path` may be written, checked without writing: it opens for writing (exclusive
    /// for a block device, so a mounted one is refused), a block device must not be read-only
    /// (`BLKROGET`: a write-protected SD card, a read-only LUN), and an image file must carry a
    /// write bit (root may write any file; a file made read-only says it is not to be written).
    pub(crate) fn check_writable(path: &Path) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let meta = std::fs::metadata(path)?;
        let mut opts = OpenOptions::new();
        opts.write(true);
        if meta.file_type().is_block_device() {
            opts.custom_flags(libc::O_EXCL);
        } else if meta.permissions().mode() & 0o222 == 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "read-only file (mode {:o})",
                    meta.permissions().mode() & 0o7777
                ),
            ));
        }
        let file = opts.open(path)?;
        if meta.file_type().is_block_device() {
            /// `BLKROGET` from linux/fs.h: `_IO(0x12, 94)`.
            const BLKROGET: libc::c_ulong = 0x125e;
            let mut ro: libc::c_int = 0;
            // SAFETY: BLKROGET writes one int through the pointer, on a descriptor we own.
            if unsafe { libc::ioctl(file.as_raw_fd(), BLKROGET as _, &mut ro) } != 0 {
                return Err(io::Error::last_os_error());
            }
            if ro != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "the block device is read-only (write-protected)",
                ));
            }
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    pub fn logical_sector_size(&self) -> u32 {
        self.logical_sector_size
    }

    pub fn is_block_device(&self) -> bool {
        self.is_block_device
    }

    /// Read `buf.len()` bytes at byte `offset`.
    pub(crate) fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.read_exact(buf))
            .with_context(|| {
                format!(
                    "reading {} bytes at offset {} of {}",
                    buf.len(),
                    offset,
                    self.path.display()
                )
            })
    }

    /// Write `buf` at byte `offset`.
    pub(crate) fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.write_all(buf))
            .with_context(|| {
                format!(
                    "writing {} bytes at offset {} of {}",
                    buf.len(),
                    offset,
                    self.path.display()
                )
            })
    }

    /// Ask the kernel to re-read the partition table of a block device (`BLKRRPART`), so that
    /// `/dev/<disk><N>` match what we wrote. Best effort: a loop device without partition
    /// scanning refuses, which only matters to tools outside ksinstall.
    pub(crate) fn reread_partitions(&mut self) {
        if !self.is_block_device {
            return;
        }
        use std::os::fd::AsRawFd;
        // From <linux/fs.h>: BLKRRPART = _IO(0x12, 95).
        const BLKRRPART: libc::c_ulong = 0x125F;
        // SAFETY: BLKRRPART takes no argument; the fd is open for the lifetime of `self.file`.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), BLKRRPART as _) };
        if rc != 0 {
            log::warn!(
                "{}: the kernel did not re-read the partition table: {}",
                self.path.display(),
                io::Error::last_os_error()
            );
        }
    }

    /// A handle on which the written data can be flushed from another thread while this one
    /// goes on reading (the same open file, duplicated).
    pub(crate) fn sync_handle(&self) -> Result<std::fs::File> {
        self.file
            .try_clone()
            .with_context(|| format!("duplicating the handle of {}", self.path.display()))
    }

    /// Flush to stable storage.
    pub fn sync(&mut self) -> Result<()> {
        self.file
            .sync_all()
            .with_context(|| format!("syncing {}", self.path.display()))
    }
}

impl Read for BlockDev {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Write for BlockDev {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for BlockDev {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

/// `BLKGETSIZE64` and `BLKSSZGET` on an open block device.
fn block_device_geometry(file: &File) -> io::Result<(u64, u32)> {
    use std::os::fd::AsRawFd;
    // From <linux/fs.h>: BLKSSZGET = _IO(0x12, 104); BLKGETSIZE64 = _IOR(0x12, 114, size_t).
    const BLKSSZGET: libc::c_ulong = 0x1268;
    const BLKGETSIZE64: libc::c_ulong = 0x8000_0000
        | ((std::mem::size_of::<libc::size_t>() as libc::c_ulong) << 16)
        | (0x12 << 8)
        | 114;
    let fd = file.as_raw_fd();
    let mut size: u64 = 0;
    let mut ss: libc::c_int = 0;
    // SAFETY: both ioctls write one integer of the stated type through the pointer, which points
    // to a live local of that type; `fd` is open for the lifetime of `file`.
    let rc = unsafe { libc::ioctl(fd, BLKGETSIZE64 as _, &mut size as *mut u64) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    let rc = unsafe { libc::ioctl(fd, BLKSSZGET as _, &mut ss as *mut libc::c_int) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let ss = u32::try_from(ss).map_err(|_| io::Error::other("negative sector size"))?;
    Ok((size, ss))
}
