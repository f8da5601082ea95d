//! Niji's domain vocabulary: the types and rules every other crate speaks in — roles, 保険者番号,
//! audit events, and the disclosure rules for public figures ([`disclosure`]).
//!
//! Invariants: this crate does no I/O (no files, no network, no clock reads; callers pass
//! time in), and nothing here knows HTTP, SQL or JSON wire shapes. Types that must be
//! persisted expose their own stable encodings (for example [`audit::AuditEvent::canonical_bytes`]).

pub mod audit;
pub mod disclosure;
pub mod insurer;
pub mod role;

pub use audit::{AuditError, AuditEvent, AuditSink};
pub use disclosure::catalog_count;

/// The calendar date in Japan (UTC+9, no daylight saving) at `now`: the "today" of deadlines,
/// permits and "not in the future" checks everywhere in Niji.
pub fn today_jst(now: time::OffsetDateTime) -> time::Date {
    now.to_offset(time::UtcOffset::from_hms(9, 0, 0).expect("+9 is a valid offset")).date()
}
pub use insurer::{InsurerNumber, InsurerNumberError};
pub use role::{Role, RoleParseError};
