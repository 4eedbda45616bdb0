//! Domain types and decisions: ids, peers, asks, deliveries, jobs, reviews,
//! schedules, events, roles, error codes. The store takes and returns these
//! records; the wire shapes live in the client crate.
//!
//! Pure: no I/O, no tokio, no SQL. Everything here is unit-tested inline and
//! used by the store (to decide) and by the API types (to name things).
#![forbid(unsafe_code)]

pub mod access;
pub mod ask;
pub mod delivery;
pub mod error;
pub mod event;
pub mod ids;
pub mod job;
pub mod limits;
pub mod mesh;
pub mod peer;
pub mod policy;
pub mod review;
pub mod route;
pub mod schedule;
pub mod text;
pub mod time;
pub mod tmux;

pub use error::{Error, ErrorCode};
