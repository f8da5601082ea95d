//! Niji's output checking (statistical disclosure control): aggregate tables a researcher
//! wants to take out of the analysis environment are checked against the permit's output
//! rules before release (issue 5).
//!
//! The pieces:
//! - [`table`]: the input, a [`Table`] of dimension keys and measure [`Cell`]s carrying what
//!   the sandbox knows behind each value (persons, institutions, largest contributions);
//!   margins are rows keyed [`TOTAL`] (`*`).
//! - [`rules`]: [`Rules`] as data and the DESIGN.md presets ([`Preset::Ndb`],
//!   [`Preset::Acro`], [`Preset::OpenSafely`]; the permit's `output_preset` names, including
//!   `standard` and `strict`, parse with [`Preset::from_str`](std::str::FromStr)).
//! - [`check`]: [`check()`] and [`check_against_earlier`]: primary rules per cell, whole-row
//!   suppression, secondary suppression, differencing, rounding; the result is a
//!   [`Checked`] with a [`Verdict`] per cell, the released values and a [`Summary`].
//! - [`secondary`]: the "at least two suppressed cells per line" heuristic and its limits.
//! - [`differencing`]: comparing person counts with the project's earlier [`Release`]s and
//!   the limits of doing so without persons' identities.
//! - [`verdict`]: [`Reason`]s with Japanese and English texts ([`Reason::text_ja`],
//!   [`Reason::text_en`]) that never quote another cell's value.
//!
//! Invariants: the crate does no I/O (no files, no clock, no randomness), so the same table,
//! rules and earlier releases always give the same verdicts; a released non-zero cell never
//! counts fewer persons than [`Rules::min_persons`]; with [`Rules::secondary`] every line
//! (row or column of a 2-D table, the corresponding sets in more dimensions) holding a
//! suppressed cell holds at least two, unless it has only one cell; a table with a refused
//! cell or a whole-table refusal does not pass ([`Checked::passes`]); errors are
//! [`thiserror`] enums with fixed texts that never quote keys or values.

pub mod check;
pub mod differencing;
mod hash;
pub mod rules;
pub mod secondary;
pub mod table;
pub mod verdict;

pub use check::{check, check_against_earlier, Checked, ReleasedRow, ReleasedTable, SdcError, Shown, Summary};
pub use differencing::{Release, ReleaseRow};
pub use rules::{Dominance, Preset, Rules, RulesError};
pub use secondary::solver_running;
pub use table::{Cell, CellSample, Measure, MeasureKind, Row, Table, TableError, TOTAL};
pub use verdict::{CellRef, Outcome, Reason, Verdict};
