//! Integration tests: every test starts the real `repowire` binary as a
//! daemon in a temporary REPOWIRE_HOME on a free loopback port, and drives it
//! through the CLI binary or the typed client over HTTP.

mod asks;
mod circles;
mod cli;
mod connections;
mod delivery;
mod docs;
mod errors;
mod jobs;
mod mcp;
mod mcp_session;
mod mcp_tools;
mod mcp_work;
mod orchestrator;
mod peers;
mod personas;
mod reviews;
mod schedules;

pub mod support;
