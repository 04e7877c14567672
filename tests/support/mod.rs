//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod servers;
pub mod trace;
