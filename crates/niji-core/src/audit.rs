//! Audit events: what goes into the transparency log for every access and decision.
//!
//! An event names who acted, when (UTC, passed in by the caller), what they did, to which
//! object, and which data it touched. [`AuditEvent::canonical_bytes`] is the stable encoding
//! stored as a log leaf: JSON with keys in a fixed order and no insignificant whitespace.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Who acted: `user:<id>`, `system`, `cli:<os user>` or `anonymous`.
    pub actor: String,
    /// When, in UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// A dotted verb such as `auth.login.succeeded` or `role.granted`.
    pub action: String,
    /// The object acted on, such as `user:3` or `instance`.
    pub object: String,
    /// The data touched (dataset, table, columns) or other detail. Never holds identifying
    /// values: names, insurance numbers, passwords and codes stay out of the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl AuditEvent {
    pub fn new(actor: impl Into<String>, time: OffsetDateTime, action: impl Into<String>, object: impl Into<String>) -> Self {
        Self { actor: actor.into(), time: time.to_offset(time::UtcOffset::UTC), action: action.into(), object: object.into(), data: None }
    }

    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The bytes stored as the log entry (the Merkle leaf input).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // serde_json keeps struct field order and, without the preserve_order feature,
        // sorts object keys inside `data`, so equal events always encode equally.
        serde_json::to_vec(self).expect("audit events always serialize")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Where audit events go: the instance's transparency log. Appending is durable when
/// `record` returns; a failure must stop the action being recorded.
pub trait AuditSink: Send + Sync {
    /// Records the event and returns its position in the log.
    fn record(&self, event: &AuditEvent) -> Result<u64, AuditError>;
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit log could not record the event: {0}")]
pub struct AuditError(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn canonical_encoding_is_stable() {
        let e = AuditEvent::new("user:1", datetime!(2026-11-21 10:00 +9), "auth.login.succeeded", "user:1")
            .with_data(serde_json::json!({"z": 1, "a": "x"}));
        let bytes = e.canonical_bytes();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"actor":"user:1","time":"2026-11-21T01:00:00Z","action":"auth.login.succeeded","object":"user:1","data":{"a":"x","z":1}}"#
        );
        assert_eq!(AuditEvent::from_bytes(&bytes).unwrap(), e);
    }
}
