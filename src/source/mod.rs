//! The source stage: where the installer's inputs come from (the kernel command line now; the
//! kickstart and media locations over HTTP(S), USB and CD are issue 7).

pub mod cmdline;
pub mod fetch;
