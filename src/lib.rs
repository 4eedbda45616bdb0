//! repowire: a local coordination mesh for fleets of AI coding agents.
//!
//! The root package is the binary's wiring and its two adapters:
//! - [`cli`] — clap commands; thin, translates to one client call each.
//! - [`mcp`] — the MCP server for agents; thin, over the same client.
//!
//! The layers live in the workspace's crates (arrows point down; a test reads
//! `cargo metadata` and fails on any other edge):
//! `repowire-client` (wire types, the typed client, the home layout) →
//! `repowire-daemon` (service layer, HTTP handlers, background tasks) →
//! `repowire-store` (SQLite) and `repowire-persona` (the Luau host) →
//! `repowire-core` (domain types and decisions; no I/O). They are re-exported
//! here under their layer names for the binary, the tests and the benches.
#![forbid(unsafe_code)]

pub use repowire_client::{api, client, home};
pub use repowire_core as core;
pub use repowire_daemon as daemon;
pub use repowire_persona as persona;
pub use repowire_store as store;

pub mod cli;
pub mod hook;
pub mod mcp;
pub mod sessions;
pub mod setup;
pub mod wiring;
