//! The public data catalog in the portal: `/catalog` lists the datasets (with a search over
//! names, titles, descriptions, tables and variables) and `/catalog/{dataset}` shows one
//! dataset, its versions and, per standard table of its latest version, the figures and the
//! variables described by `niji_lake::catalog`.
//!
//! Invariants: the catalog is public (no sign-in), so every count shown passes through
//! [`catalog_count`] (below 10 suppressed, else rounded to 10). Exact linkage figures and the
//! quarantined problems of each version are shown to operators only. The figures shared with
//! the JSON-LD documents of `/api/v1/catalog` (search, the tables of a version, dates) live here
//! so that both say the same.

use crate::i18n::{Lang, Messages};
use crate::portal::{error_page, render, MaybeSession, PageContext};
use crate::AppState;
use askama::Template;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use niji_core::disclosure::catalog_count;
use niji_intake::{DatasetEntry, VersionEntry};
use niji_lake::catalog::TableDoc;
use niji_store::VersionTableRow;
use serde::Deserialize;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/catalog", get(catalog_page)).route("/catalog/{dataset}", get(dataset_page))
}

/// Longest search text looked at (longer queries are cut, not refused).
const MAX_QUERY_CHARS: usize = 200;

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct SearchQuery {
    /// Text to find (case-insensitive) in names, titles, descriptions, table and variable names.
    pub q: Option<String>,
}

/// The search text of a request: trimmed and cut to [`MAX_QUERY_CHARS`]; empty when absent or
/// malformed.
pub(crate) fn search_text(q: Result<Query<SearchQuery>, QueryRejection>) -> String {
    q.ok().and_then(|Query(q)| q.q).map(|q| q.trim().chars().take(MAX_QUERY_CHARS).collect()).unwrap_or_default()
}

/// Every dataset with its committed versions; `None` (logged) if the store failed.
pub(crate) async fn load(state: &AppState) -> Option<Vec<DatasetEntry>> {
    match niji_intake::list_datasets(&state.instance().store).await {
        Ok(list) => Some(list),
        Err(e) => {
            tracing::error!(error = %e, "listing datasets failed");
            None
        }
    }
}

/// The standard tables a version holds rows in, in catalog order, with their figures.
pub(crate) fn tables_of(version: &VersionEntry) -> Vec<(&'static TableDoc, &VersionTableRow)> {
    niji_lake::catalog::tables()
        .iter()
        .filter_map(|doc| version.tables.iter().find(|t| t.table_name == doc.name && t.rows > 0).map(|t| (doc, t)))
        .collect()
}

/// Whether a dataset matches a search: `q` found, ignoring case, in its name, titles,
/// descriptions, or the names and titles of its latest version's tables and their variables.
pub(crate) fn matches(entry: &DatasetEntry, q: &str) -> bool {
    let q = q.trim().to_lowercase();
    if q.is_empty() {
        return true;
    }
    let d = &entry.dataset;
    let found = |s: &str| s.to_lowercase().contains(&q);
    if [&d.name, &d.title_ja, &d.title_en, &d.description_ja, &d.description_en].iter().any(|s| found(s)) {
        return true;
    }
    entry.latest().is_some_and(|v| {
        tables_of(v)
            .iter()
            .any(|(doc, _)| [doc.name, doc.title_ja, doc.title_en].iter().any(|s| found(s)) || doc.columns.iter().any(|c| found(c.name)))
    })
}

/// A count as the public catalog shows it: rounded with thousands separators, or the
/// suppressed marker.
pub(crate) fn shown_count(n: i64, m: &Messages) -> String {
    match catalog_count(n.max(0) as u64) {
        Some(v) => grouped(v),
        None => m.suppressed.to_string(),
    }
}

fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A Unix time as an RFC 3339 UTC date-time (empty if out of range).
pub(crate) fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// A Unix time as its UTC calendar date, `YYYY-MM-DD`.
fn date_of(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix).map(|t| t.date().to_string()).unwrap_or_default()
}

/// The period as the public may see it (`niji_core::disclosure::catalog_period`).
fn coverage_text(from: &Option<String>, to: &Option<String>, persons: i64) -> String {
    match niji_core::disclosure::catalog_period(from.as_deref(), to.as_deref(), persons.max(0) as u64) {
        Some((a, b)) => format!("{a} – {b}"),
        None => "—".to_string(),
    }
}

fn title_of(entry: &DatasetEntry, lang: Lang) -> String {
    let d = &entry.dataset;
    let t = if lang == Lang::Ja { &d.title_ja } else { &d.title_en };
    if t.is_empty() {
        d.name.clone()
    } else {
        t.clone()
    }
}

struct CatalogRow {
    name: String,
    title: String,
    holder: String,
    kind: &'static str,
    version: String,
    coverage: String,
    persons: String,
    records: String,
}

#[derive(Template)]
#[template(path = "catalog.html")]
struct CatalogPage {
    page: PageContext,
    q: String,
    rows: Vec<CatalogRow>,
}

async fn catalog_page(
    State(state): State<AppState>,
    lang: Lang,
    s: MaybeSession,
    uri: Uri,
    q: Result<Query<SearchQuery>, QueryRejection>,
) -> Response {
    let Some(list) = load(&state).await else {
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, s.signed_in(), &uri, |m| m.err_internal);
    };
    let q = search_text(q);
    let m = lang.messages();
    let rows = list
        .iter()
        .filter(|e| matches(e, &q))
        .map(|e| {
            let latest = e.latest().map(|v| &v.version);
            CatalogRow {
                name: e.dataset.name.clone(),
                title: title_of(e, lang),
                holder: e.holder.clone(),
                kind: lang.kind_label(&e.dataset.kind),
                version: latest.map(|v| v.number.to_string()).unwrap_or_else(|| "—".into()),
                coverage: latest.map(|v| coverage_text(&v.coverage_from, &v.coverage_to, v.persons)).unwrap_or_else(|| "—".into()),
                persons: latest.map(|v| shown_count(v.persons, m)).unwrap_or_else(|| "—".into()),
                records: latest.map(|v| shown_count(v.records_accepted, m)).unwrap_or_else(|| "—".into()),
            }
        })
        .collect();
    render(CatalogPage { page: PageContext::new(lang, s.signed_in(), &uri), q, rows })
}

struct VersionRow {
    number: i64,
    committed: String,
    coverage: String,
    persons: String,
    records: String,
}

struct ColumnView {
    name: &'static str,
    ty: &'static str,
    description: &'static str,
    code_systems: String,
}

struct TableView {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    source: &'static str,
    rows: String,
    persons: String,
    columns: Vec<ColumnView>,
}

/// Exact figures of one version, for operators.
struct OperatorVersion {
    number: i64,
    link_records: i64,
    identifier_links: i64,
    name_links: i64,
    persons: i64,
    persons_shared: i64,
    rate: String,
    quarantined: i64,
    problems: Vec<ProblemRow>,
}

struct ProblemRow {
    severity: String,
    file: String,
    location: String,
    field: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "catalog_dataset.html")]
struct DatasetPage {
    page: PageContext,
    name: String,
    title: String,
    description: String,
    holder: String,
    kind: &'static str,
    latest: String,
    coverage: String,
    persons: String,
    records: String,
    versions: Vec<VersionRow>,
    tables: Vec<TableView>,
    operator: Option<Vec<OperatorVersion>>,
    /// Operators: (persons, persons also in other datasets now, rate) of the latest version.
    current_linkage: Option<(u64, u64, String)>,
}

/// Problems listed per version on the operator's view.
const OPERATOR_PROBLEMS: i64 = 100;

async fn dataset_page(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, name: Result<Path<String>, PathRejection>) -> Response {
    let Some(list) = load(&state).await else {
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, s.signed_in(), &uri, |m| m.err_internal);
    };
    let Some(entry) = name.ok().and_then(|Path(n)| list.into_iter().find(|e| e.dataset.name == n)) else {
        return error_page(StatusCode::NOT_FOUND, lang, s.signed_in(), &uri, |m| m.err_not_found);
    };
    let m = lang.messages();
    let ja = lang == Lang::Ja;
    let latest = entry.latest();
    let versions = entry
        .versions
        .iter()
        .rev()
        .map(|v| VersionRow {
            number: v.version.number,
            committed: v.version.committed_at.map(date_of).unwrap_or_default(),
            coverage: coverage_text(&v.version.coverage_from, &v.version.coverage_to, v.version.persons),
            persons: shown_count(v.version.persons, m),
            records: shown_count(v.version.records_accepted, m),
        })
        .collect();
    let tables = latest
        .map(|v| {
            tables_of(v)
                .into_iter()
                .map(|(doc, t)| TableView {
                    name: doc.name,
                    title: if ja { doc.title_ja } else { doc.title_en },
                    description: if ja { doc.description_ja } else { doc.description_en },
                    source: doc.source,
                    rows: shown_count(t.rows, m),
                    persons: shown_count(t.persons, m),
                    columns: doc
                        .columns
                        .iter()
                        .map(|c| ColumnView {
                            name: c.name,
                            ty: niji_lake::catalog::column_type(doc.name, c.name).unwrap_or("other"),
                            description: if ja { c.description_ja } else { c.description_en },
                            code_systems: c.code_systems.join(", "),
                        })
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    let is_operator = s.signed_in().is_some_and(|x| x.user.has_role(niji_core::Role::Operator));
    let operator = if is_operator {
        let mut out = Vec::new();
        for v in entry.versions.iter().rev() {
            let v = &v.version;
            let problems = match state.instance().store.dataset_version_problems(v.id, OPERATOR_PROBLEMS).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "listing quarantined problems failed");
                    return error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, s.signed_in(), &uri, |m| m.err_internal);
                }
            };
            out.push(OperatorVersion {
                number: v.number,
                link_records: v.link_records,
                identifier_links: v.identifier_links,
                name_links: v.name_links,
                persons: v.persons,
                persons_shared: v.persons_shared,
                rate: percent(v.persons_shared, v.persons),
                quarantined: v.records_rejected,
                problems: problems
                    .into_iter()
                    .map(|p| ProblemRow { severity: p.severity, file: p.file, location: p.location, field: p.field, reason: p.reason })
                    .collect(),
            });
        }
        Some(out)
    } else {
        None
    };
    let current_linkage = if is_operator {
        match niji_intake::current_linkage(state.instance(), &entry.dataset.name).await {
            Ok(figures) => figures.map(|(persons, shared)| (persons, shared, percent(shared as i64, persons as i64))),
            Err(e) => {
                tracing::error!(error = %e, "computing the current linkage failed");
                return error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, s.signed_in(), &uri, |m| m.err_internal);
            }
        }
    } else {
        None
    };
    let d = &entry.dataset;
    render(DatasetPage {
        page: PageContext::new(lang, s.signed_in(), &uri),
        title: title_of(&entry, lang),
        description: if ja { d.description_ja.clone() } else { d.description_en.clone() },
        holder: entry.holder.clone(),
        kind: lang.kind_label(&d.kind),
        latest: latest.map(|v| v.version.number.to_string()).unwrap_or_else(|| "—".into()),
        coverage: latest.map(|v| coverage_text(&v.version.coverage_from, &v.version.coverage_to, v.version.persons)).unwrap_or_else(|| "—".into()),
        persons: latest.map(|v| shown_count(v.version.persons, m)).unwrap_or_else(|| "—".into()),
        records: latest.map(|v| shown_count(v.version.records_accepted, m)).unwrap_or_else(|| "—".into()),
        name: d.name.clone(),
        versions,
        tables,
        operator,
        current_linkage,
    })
}

/// `part / whole` as a percentage with one decimal (`0.0 %` when `whole` is 0).
pub(crate) fn percent(part: i64, whole: i64) -> String {
    if whole <= 0 {
        return "0.0 %".to_string();
    }
    format!("{:.1} %", part as f64 * 100.0 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_and_small_ones_suppressed() {
        let m = Lang::En.messages();
        for (n, shown) in [(0, "<10"), (9, "<10"), (10, "10"), (15, "20"), (995, "1,000"), (1_234_567, "1,234,570"), (-3, "<10")] {
            assert_eq!(shown_count(n, m), shown, "{n}");
        }
        assert_eq!(shown_count(5, Lang::Ja.messages()), "10未満");
        assert_eq!(percent(1, 3), "33.3 %");
        assert_eq!(percent(0, 0), "0.0 %");
    }
}
