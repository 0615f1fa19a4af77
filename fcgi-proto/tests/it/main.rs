//! fcgi-proto's integration tests, one test binary: a module per area.

mod assembler;
mod decoder;
mod encoder;
mod properties;
mod vectors;
