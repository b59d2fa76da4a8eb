//! Provider adapters, one file or folder per owning system.
pub mod account;
pub mod aws;
pub mod ldap;
pub mod mysql;
pub mod postgres;
pub mod redis;
pub mod vault;
