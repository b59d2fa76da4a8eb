//! Provider adapters, one folder per owning system.
pub mod aws;
pub mod vault;
