//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod ggml;
pub mod llama;
pub mod profile;
pub mod proxy;
pub mod raw;
pub mod servers;
pub mod streams;
pub mod trace;
