//! ksinstall: an ESXi installer for hosts that carry a DPU.
//!
//! The pipeline runs one way: source -> kickstart -> inventory -> plan -> apply -> report.
//! Each stage is a module with a small typed interface; no stage reaches back up.

pub mod apply;
pub mod dpu;
pub mod exit;
pub mod firstboot;
pub mod fleet;
pub mod http;
pub mod install;
pub mod interrupt;
pub mod inventory;
pub mod iso;
pub mod kickstart;
pub mod media;
pub mod partition;
pub mod plan;
pub mod pxe;
pub mod report;
pub mod savedks;
pub mod size;
pub mod source;
pub mod storage;
pub mod sysroot;
pub mod words;
