//! Provider adapters, one folder per owning system.
pub mod vault;
