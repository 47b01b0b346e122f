//! The plan stage: kickstart + inventory + media + boot options -> one serde `Plan`. Every check
//! runs here; apply does exactly what the plan says.

pub mod hostconfig;
