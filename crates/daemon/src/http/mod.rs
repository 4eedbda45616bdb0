//! The HTTP handlers, one module per resource: each parses the request,
//! makes one `crate::service` call and renders the answer. The router and
//! the peer, ask and message handlers are still in `crate::api`.

pub mod jobs;
pub mod personas;
pub mod reviews;
pub mod schedules;
