//! CSV fields for the public exports (register, dashboard): RFC 4180 quoting, and a guard for
//! spreadsheet formulas in free text.

/// A CSV field, quoted when it holds a separator, quote or line break.
pub(crate) fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Free text as a CSV field: a leading `= + - @`, tab or CR is prefixed with `'` so that a
/// spreadsheet does not run it as a formula.
pub(crate) fn text(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_string() };
    field(&s)
}
