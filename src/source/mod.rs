//! The source stage: where the installer's inputs come from. The boot options on the kernel
//! command line (`cmdline`), the kickstart they point at (`kickstart`: a file, HTTP(S), a USB
//! stick, a CD), and `%include` URLs (`fetch`). All HTTP goes through `crate::http`.

pub mod cdrom;
pub mod cmdline;
pub mod fetch;
pub mod kickstart;
pub mod usb;
