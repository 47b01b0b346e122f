//! ksinstall: an ESXi installer for hosts that carry a DPU.
//!
//! The pipeline runs one way: source -> kickstart -> inventory -> plan -> apply -> report.
//! Each stage is a module with a small typed interface; no stage reaches back up.

pub mod exit;
pub mod kickstart;
pub mod partition;
pub mod storage;
