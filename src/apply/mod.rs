//! The apply stage: carries out a `Plan` and nothing else.

pub mod verify;
