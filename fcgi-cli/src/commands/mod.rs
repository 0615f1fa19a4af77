//! One module per command.

pub mod bench;
pub mod dump;
pub mod exchange;
pub mod exporter;
pub mod health;
pub mod probe;
pub mod request;
pub mod roles;
pub mod serve;
