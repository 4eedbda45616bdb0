//! Decide once, act once: the one path from "which persona" to "route
//! carried out", used by every entry point (dispatch, review routing,
//! `on_event`, check-ins).
//!
//! - [`decide`] picks the persona, asks it (inside its budgets), counts the
//!   decision, records a failure as a `persona_error` event and falls back
//!   to the built-in policy where the entry point has one.
//! - [`execute`] / [`execute_in`] carry out one route and say what was done
//!   as a typed [`Outcome`]. The transaction rule, the only one: **a route
//!   is carried out inside exactly one store transaction, all or nothing** —
//!   its own ([`execute`]: dispatch, review, `on_event`) or, for a check-in,
//!   the schedule fire's ([`execute_in`]), so the fire's advance and the
//!   messages it sends commit together.
//!
//! Not here: who may trigger a decision (`policy`), the HTTP shapes
//! (`http`), the feedback-loop guards of `on_event` (`observe`).

mod decide;
mod execute;

pub use decide::{Input, decide};
pub use execute::{Outcome, Target, execute, execute_in};
