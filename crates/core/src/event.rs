//! The event log's record: what happened, to what, in which circle.

/// One committed event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub seq: i64,
    pub ts_ms: i64,
    pub kind: String,
    /// The id of the object it is about (or a name, for circle-wide events).
    pub subject: String,
    pub related: Option<String>,
    pub circle: Option<String>,
    pub payload: serde_json::Value,
}
