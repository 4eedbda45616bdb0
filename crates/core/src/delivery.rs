//! Deliveries: durable messages to one peer, handed out under a lease and
//! marked delivered only when the consumer confirms (at-least-once).

use super::peer::str_enum;

str_enum!(
    /// What a delivery carries.
    DeliveryKind {
        Ask => "ask",
        Reply => "reply",
        Notify => "notify",
        Broadcast => "broadcast",
        Reminder => "reminder",
        System => "system",
    }
);

str_enum!(
    /// How deliveries reach a peer (`route` on the wire). `pull`: the peer
    /// takes its inbox. `channel`: a `repowire mcp` session takes it and
    /// pushes each delivery into its agent as a channel event (for the
    /// daemon both are leases; the route says how the agent sees them).
    DeliveryRoute { Pull => "pull", Channel => "channel" }
);

str_enum!(
    /// Where a delivery is. `leased` with an expired lease counts as pending.
    DeliveryState {
        Pending => "pending",
        Leased => "leased",
        Delivered => "delivered",
        Dropped => "dropped",
    }
);

/// Whether a delivery can be handed out now.
pub fn is_available(state: DeliveryState, lease_until_ms: Option<i64>, now_ms: i64) -> bool {
    match state {
        DeliveryState::Pending => true,
        DeliveryState::Leased => lease_until_ms.is_none_or(|t| t <= now_ms),
        DeliveryState::Delivered | DeliveryState::Dropped => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability() {
        assert!(is_available(DeliveryState::Pending, None, 0));
        assert!(!is_available(DeliveryState::Leased, Some(10), 5));
        assert!(is_available(DeliveryState::Leased, Some(10), 10));
        assert!(!is_available(DeliveryState::Delivered, None, 0));
        assert_eq!(DeliveryKind::parse("reply").unwrap(), DeliveryKind::Reply);
    }
}
