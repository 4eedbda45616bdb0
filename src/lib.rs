//! repowire: a local coordination mesh for fleets of AI coding agents.
//!
//! Layers, arrows pointing down (nothing imports upward):
//! - [`cli`] — clap commands; thin, translates to one [`client`] call each.
//! - [`client`] — the one typed client of the daemon's HTTP API.
//! - [`daemon`] — runtime: boot, HTTP API, background tasks, event bus.
//! - [`store`] — SQLite: migrations, one module per aggregate, the single writer.
//! - [`persona`] — the Luau persona host: sandbox, views, routes, fallback.
//! - [`core`] — domain types and decisions; no I/O.
//!
//! [`api`] holds the wire types shared by daemon and client; [`home`] the
//! state directory layout.
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod client;
pub mod core;
pub mod daemon;
pub mod home;
pub mod mcp;
pub mod persona;
pub mod store;
