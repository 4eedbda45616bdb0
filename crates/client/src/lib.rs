//! The client side of the daemon's HTTP API: the wire types ([`api`]), the one
//! typed client ([`client`]) used by the CLI and the MCP server, and the
//! layout of the state directory ([`home`]) through which a client finds its
//! daemon. The daemon's handlers speak the same wire types, converting to and
//! from the domain records the store takes and returns (`api/convert.rs`).
#![forbid(unsafe_code)]

pub mod api;
pub mod client;
pub mod home;

pub use client::{Client, ClientError};
