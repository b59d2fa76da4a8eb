//! What the database and directory providers share about the accounts they
//! rotate: the handle (`{"username": …}`) and the guard that a store's
//! `username` names only this credential's account or its alternate.

use std::collections::BTreeMap;

use crate::playbook::model::DbAccountTarget;
use crate::provider::{ErrorKind, Handle, ProviderError};

/// The handle key, and the store field, naming the account in service.
pub const USERNAME: &str = "username";

/// The handle of an account.
pub fn one(user: &str) -> Handle {
    BTreeMap::from([(USERNAME.to_string(), user.to_string())])
}

/// Refuses an account that is not the target's (or its alternate): a store's
/// `username` must never steer keysweep to another account. `noun` is how the
/// system calls an account ("role", "ACL user").
pub fn check_in_pair(t: &DbAccountTarget, user: &str, op: &'static str, noun: &str) -> Result<(), ProviderError> {
    if t.in_pair(user) {
        return Ok(());
    }
    let expected = match &t.alternate_with {
        Some(a) => format!("`{}` or `{a}`", t.user),
        None => format!("`{}`", t.user),
    };
    Err(ProviderError::new(ErrorKind::Config, op, format!("{noun} `{user}` is not this credential's account (expected {expected})")))
}

/// An account that does not exist; for the alternate of a pair, says how
/// `create_clone` would create it (`clone_how`).
pub fn missing(op: &'static str, user: &str, t: &DbAccountTarget, noun: &str, clone_how: &str) -> ProviderError {
    let hint = if t.alternate_with.as_deref() == Some(user) && !t.create_clone {
        format!(" (set `create_clone: true` to create it {clone_how})")
    } else {
        String::new()
    };
    ProviderError::new(ErrorKind::NotFound, op, format!("{noun} `{user}` does not exist{hint}"))
}
