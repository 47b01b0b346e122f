//! The kickstart stage: ESXi `ks.cfg` lexer, grammar table, model and diagnostics.
