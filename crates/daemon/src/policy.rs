//! Who may do what: the rules live in [`repowire_core::access`] (pure, one
//! table of caller kind × circle × action), so that the store can ask them
//! too, inside a transaction, with the rows it just read. Every service call
//! passes through [`authorize`] (or [`read_scope`] / [`bypass`]) first.

pub use repowire_core::access::{Action, Target, authorize, bypass, read_scope};
