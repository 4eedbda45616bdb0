//! Transaction-level writes the daemon's route executor composes: each runs
//! inside the caller's [`Tx`] and never opens one of its own, so the
//! executor decides what commits together. No decision is made here: which
//! route, as whom, and whether to send at all are the daemon's.

use super::Tx;
use super::circles::resolve_for;
use super::deliveries::{NewDelivery, enqueue};
use super::peers::{by_id, orchestrator_of};
use repowire_core::delivery::DeliveryKind;
use repowire_core::error::Result;
use repowire_core::ids::{AskId, DeliveryId, PeerId};
use repowire_core::peer::Peer;

impl Tx<'_> {
    /// The orchestrator of `circle`, if it has one.
    pub fn orchestrator(&self, circle: &str) -> Result<Option<Peer>> {
        orchestrator_of(self.conn(), circle)
    }

    /// The peer with id `id`, if it still exists.
    pub fn peer(&self, id: &PeerId) -> Result<Option<Peer>> {
        by_id(self, id)
    }

    /// Resolve `addr` inside `from`'s circle (never a bypass).
    pub fn resolve_peer_for(&self, from: &Peer, addr: &str) -> Result<Peer> {
        resolve_for(self, from, addr, None, false).map(std::sync::Arc::unwrap_or_clone)
    }

    /// Resolve `addr` (`NAME` or `NAME@CIRCLE`) with `circle` for a bare name.
    pub fn resolve_in(&self, circle: &str, addr: &str) -> Result<Peer> {
        super::peers::resolve(self, addr, Some(circle))
    }

    /// A note from `from` to `to`; its delivery id.
    pub fn notify_as(&mut self, from: &Peer, to: &Peer, text: &str) -> Result<DeliveryId> {
        self.policy.check_text("message", text)?;
        enqueue(
            self,
            NewDelivery {
                to,
                from: Some(from),
                kind: DeliveryKind::Notify,
                ask_id: None,
                job_id: None,
                text,
            },
        )
    }

    /// An ask from `from` to `to` with the default timeout; its id.
    pub fn ask_as(&mut self, from: &Peer, to: &Peer, text: &str) -> Result<AskId> {
        self.policy.check_text("question", text)?;
        let timeout = self.policy.ask_timeout_ms;
        Ok(
            super::asks::create_in(self, from, to, text, timeout, None, None)?
                .ask
                .correlation_id,
        )
    }

    /// Run `f` inside a savepoint: on error everything it wrote (rows and
    /// events) is undone and the rest of the transaction goes on.
    pub fn attempt<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let (mark, opened) = (self.events.len(), self.opened.len());
        self.conn().execute_batch("SAVEPOINT attempt")?;
        match f(self) {
            Ok(v) => {
                self.conn().execute_batch("RELEASE attempt")?;
                Ok(v)
            }
            Err(e) => {
                // Its events go whatever happens next (they are not written yet).
                self.events.truncate(mark);
                self.conn().execute_batch("ROLLBACK TO attempt")?;
                let undone = self.opened.split_off(opened);
                self.open.undo(&undone);
                self.conn().execute_batch("RELEASE attempt")?;
                Err(e)
            }
        }
    }
}
