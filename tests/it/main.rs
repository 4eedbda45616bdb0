//! Integration tests: every test starts the real `repowire` binary as a
//! daemon in a temporary REPOWIRE_HOME on a free loopback port, and drives it
//! through the CLI binary or the typed client over HTTP.

mod asks;
mod circles;
mod cli;
mod client_sessions;
mod clock;
mod connections;
mod dashboard;
mod delivery;
mod docs;
mod errors;
mod file_modes;
mod hooks;
mod ids;
mod isolation;
mod jobs;
mod layers;
mod limits;
mod mcp;
mod mcp_clients;
mod mcp_lifecycle;
mod mcp_protocol;
mod mcp_real_clients;
mod mcp_session;
mod mcp_tools;
mod mcp_work;
mod orchestrator;
mod peers;
mod persona_circles;
mod persona_hostile;
mod personas;
mod reviews;
mod schedules;
mod setup;
mod storage;
mod terminal;
mod tmux;
mod tmux_lifecycle;
mod truth;

pub mod support;
