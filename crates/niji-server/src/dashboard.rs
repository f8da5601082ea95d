//! The public dashboard (データ利用支援ポータル, issue 6): `/dashboard` lists the datasets,
//! `/dashboard/{dataset}` shows the charts of `niji_analysis::dashboard` for the dataset's
//! latest committed version, each as an SVG bar chart drawn here (readable without JavaScript;
//! presentation attributes only, as the CSP forbids inline styles) with its numbers in a table,
//! and `/dashboard/{dataset}/{chart}.csv` serves a chart's table as CSV (UTF-8 with a BOM, so
//! that Excel reads Japanese, CRLF line ends, a header row).
//!
//! Invariants: public (no sign-in); only the released tables of `niji-analysis` (checked with
//! the NDB preset) are shown, suppressed cells as the "suppressed" marker, never a value; the
//! table, the chart and the CSV of a chart show the same rows. Labels are escaped in the SVG
//! as in the HTML.
//!
//! Cache: computing a dashboard reads the whole version, so dashboards are kept in memory per
//! (instance folder, dataset), for one version and one set of excluded persons at a time
//! (a process-wide map in this module: `AppState` has no place for it).

use crate::i18n::{DashText, Lang};
use crate::portal::{error_page, render, MaybeSession, PageContext};
use crate::AppState;
use askama::Template;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use niji_analysis::dashboard::{Chart, Dashboard, DashboardError, Shown, UNKNOWN};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(list_page))
        .route("/dashboard/{dataset}", get(dataset_page))
        .route("/dashboard/{dataset}/{file}", get(chart_csv))
}

// ---------------------------------------------------------------------------------------------
// Computing and caching

/// (instance folder, dataset) → (version, fingerprint of the excluded persons, dashboard).
type Cache = HashMap<(PathBuf, String), (i64, u64, Arc<Dashboard>)>;

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// An order-independent fingerprint of a set of person keys (its size and the wrapping sum and
/// xor of the keys' first 8 bytes): a changed opt-out set computes the dashboard again.
fn fingerprint(excluded: &HashSet<[u8; 32]>) -> u64 {
    let (mut sum, mut xor) = (0u64, 0u64);
    for k in excluded {
        let w = u64::from_le_bytes(k[..8].try_into().expect("8 bytes"));
        sum = sum.wrapping_add(w);
        xor ^= w.rotate_left(17);
    }
    (excluded.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ sum ^ xor
}

/// The dashboard of `dataset`'s version `version` (its latest committed one), from the cache or
/// computed.
async fn dashboard_of(state: &AppState, dataset: &str, version: i64) -> Result<Arc<Dashboard>, DashboardError> {
    // Persons who refuse every use are left out of the public aggregates too.
    let excluded: HashSet<[u8; 32]> =
        niji_registry::refusing_everything(state.instance(), time::OffsetDateTime::now_utc()).await.map_err(|_| DashboardError::Internal)?;
    let print = fingerprint(&excluded);
    let key = (state.instance().paths.root.clone(), dataset.to_string());
    if let Some((v, p, d)) = cache().lock().expect("cache lock").get(&key) {
        if *v == version && *p == print {
            return Ok(d.clone());
        }
    }
    let dashboard = Arc::new(niji_analysis::dashboard::dataset_dashboard(state.instance(), dataset, &excluded).await?);
    cache().lock().expect("cache lock").insert(key, (dashboard.version, print, dashboard.clone()));
    Ok(dashboard)
}

// ---------------------------------------------------------------------------------------------
// Labels

/// A key of a chart's row as a person reads it in `lang`.
fn key_label(chart: &str, dimension: usize, key: &str, d: &DashText) -> String {
    if key == UNKNOWN {
        return d.unknown.to_string();
    }
    match (chart, dimension) {
        ("age-sex", 0) => match key.split_once('-') {
            _ if key == "90+" => d.age_90_plus.to_string(),
            Some((from, to)) => d.age_band.replace("{from}", from).replace("{to}", to),
            None => key.to_string(),
        },
        ("age-sex", 1) => match key {
            "male" => d.sex_male,
            "female" => d.sex_female,
            "other" => d.sex_other,
            _ => d.unknown,
        }
        .to_string(),
        ("prefecture", _) => {
            let names = d.prefectures.unwrap_or(&niji_ingest::codes::PREFECTURES);
            key.parse::<usize>().ok().and_then(|c| c.checked_sub(1)).and_then(|i| names.get(i)).map_or_else(|| key.to_string(), |n| n.to_string())
        }
        ("drugs", _) => match key.split_once(':') {
            Some((system, code)) => {
                let system = match system {
                    "Yj" => d.drug_yj,
                    "Hot" => d.drug_hot,
                    "GeneralDrugName" => d.drug_general,
                    "ReceiptDrug" => d.drug_receipt,
                    other => other,
                };
                format!("{system} {code}")
            }
            None => key.to_string(),
        },
        _ => key.to_string(),
    }
}

/// A released count as text: grouped digits for the page, plain digits for CSV.
fn count_text(v: &Shown, grouped_digits: bool, d: &DashText) -> String {
    match v {
        Shown::Value(x) if x.is_finite() && *x >= 0.0 => {
            let n = x.round() as u64;
            if grouped_digits {
                grouped(n)
            } else {
                n.to_string()
            }
        }
        _ => d.suppressed.to_string(),
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

/// The rows of a chart as a person reads them: the keys' labels, and the value (`None`:
/// suppressed).
fn labelled_rows(chart: &Chart, d: &DashText) -> Vec<(Vec<String>, Option<f64>)> {
    chart
        .rows
        .iter()
        .map(|(keys, values)| {
            let labels = keys.iter().enumerate().map(|(i, k)| key_label(chart.id, i, k, d)).collect();
            let value = match values.first() {
                Some(Shown::Value(x)) => Some(*x),
                _ => None,
            };
            (labels, value)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// SVG

/// Escapes text for XML content and attribute values.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => {} // not allowed in XML 1.0
            c => out.push(c),
        }
    }
    out
}

/// One bar of a horizontal bar chart.
pub(crate) struct Bar {
    pub label: String,
    /// `None`: suppressed (drawn as a hatched marker with [`BarChart::suppressed`]).
    pub value: Option<f64>,
    /// Colour index (the second dimension's value, for age × sex).
    pub series: usize,
}

/// A horizontal bar chart drawn as SVG.
pub(crate) struct BarChart<'a> {
    /// Unique within the page (the pattern's and title's ids derive from it).
    pub id: &'a str,
    pub title: &'a str,
    pub suppressed: &'a str,
    pub bars: Vec<Bar>,
}

const WIDTH: u32 = 720;
const LABEL_WIDTH: u32 = 200;
const VALUE_WIDTH: u32 = 90;
const ROW: u32 = 24;
const BAR: u32 = 16;
const PAD: u32 = 8;
const MARKER: u32 = 36;
const PALETTE: [&str; 4] = ["#0b5cad", "#b3541e", "#4d7c0f", "#6e40aa"];

impl BarChart<'_> {
    pub(crate) fn svg(&self) -> String {
        let id = xml_escape(self.id);
        let height = 2 * PAD + ROW * self.bars.len().max(1) as u32;
        let x0 = LABEL_WIDTH + PAD;
        let span = (WIDTH - x0 - VALUE_WIDTH) as f64;
        let max = self.bars.iter().filter_map(|b| b.value).fold(0.0f64, f64::max);
        let mut s = String::new();
        let _ = write!(
            s,
            r##"<svg xmlns="http://www.w3.org/2000/svg" class="bar-chart" role="img" aria-labelledby="svg-{id}-title" viewBox="0 0 {WIDTH} {height}" width="100%" font-family="system-ui, sans-serif" font-size="12"><title id="svg-{id}-title">{title}</title><defs><pattern id="hatch-{id}" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/><line x1="0" y1="0" x2="0" y2="6" stroke="#8c959f" stroke-width="2"/></pattern></defs>"##,
            title = xml_escape(self.title),
        );
        for (i, bar) in self.bars.iter().enumerate() {
            let y = PAD + ROW * i as u32;
            let (bar_y, text_y) = (y + (ROW - BAR) / 2, y + ROW / 2 + 4);
            let label = xml_escape(&bar.label);
            let shown = match bar.value {
                Some(v) => grouped(v.round().max(0.0) as u64),
                None => xml_escape(self.suppressed),
            };
            // The title first: it is the bar's tooltip and accessible name.
            let _ = write!(
                s,
                r##"<g class="bar"><title>{label}: {shown}</title><text x="{LABEL_WIDTH}" y="{text_y}" text-anchor="end" fill="#1b1f24">{label}</text>"##
            );
            match bar.value {
                Some(v) => {
                    let w = if max > 0.0 { (v / max * span).max(1.0) } else { 1.0 };
                    let color = PALETTE[bar.series % PALETTE.len()];
                    let _ = write!(
                        s,
                        r##"<rect x="{x0}" y="{bar_y}" width="{w:.1}" height="{BAR}" fill="{color}"/><text x="{:.1}" y="{text_y}" fill="#1b1f24">{shown}</text>"##,
                        x0 as f64 + w + 4.0
                    );
                }
                None => {
                    let _ = write!(
                        s,
                        r##"<rect class="suppressed" x="{x0}" y="{bar_y}" width="{MARKER}" height="{BAR}" fill="url(#hatch-{id})" stroke="#57606a" stroke-dasharray="3 2"/><text x="{}" y="{text_y}" fill="#57606a">{shown}</text>"##,
                        x0 + MARKER + 4
                    );
                }
            }
            s.push_str("</g>");
        }
        s.push_str("</svg>");
        s
    }
}

// ---------------------------------------------------------------------------------------------
// CSV

/// A chart's table as CSV: BOM, header row, one line per row, CRLF.
fn chart_csv_text(chart: &Chart, lang: Lang) -> String {
    let d = lang.dash();
    let ja = lang == Lang::Ja;
    let mut out = String::from("\u{FEFF}");
    let mut header: Vec<&str> = if ja { chart.dimensions_ja.to_vec() } else { chart.dimensions_en.to_vec() };
    header.push(if ja { chart.measure_ja } else { chart.measure_en });
    out.push_str(&header.iter().map(|h| crate::csv::field(h)).collect::<Vec<_>>().join(","));
    out.push_str("\r\n");
    for ((labels, _), (_, values)) in labelled_rows(chart, d).iter().zip(&chart.rows) {
        let mut fields: Vec<String> = labels.iter().map(|l| crate::csv::field(l)).collect();
        fields.push(crate::csv::field(&count_text(values.first().unwrap_or(&Shown::Suppressed), false, d)));
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Pages

struct DatasetLink {
    name: String,
    title: String,
    holder: String,
    version: i64,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct ListPage {
    page: PageContext,
    d: &'static DashText,
    datasets: Vec<DatasetLink>,
}

async fn list_page(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri) -> Response {
    let Some(list) = crate::catalog::load(&state).await else {
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, s.signed_in(), &uri, |m| m.err_internal);
    };
    let datasets = list
        .iter()
        .filter_map(|e| {
            let v = e.latest()?;
            Some(DatasetLink { name: e.dataset.name.clone(), title: title_of(e, lang), holder: e.holder.clone(), version: v.version.number })
        })
        .collect();
    render(ListPage { page: PageContext::new(lang, s.signed_in(), &uri), d: lang.dash(), datasets })
}

fn title_of(entry: &niji_intake::DatasetEntry, lang: Lang) -> String {
    let d = &entry.dataset;
    let t = if lang == Lang::Ja { &d.title_ja } else { &d.title_en };
    if t.is_empty() {
        d.name.clone()
    } else {
        t.clone()
    }
}

struct TableRow {
    labels: Vec<String>,
    count: String,
    suppressed: bool,
}

struct ChartView {
    id: &'static str,
    title: &'static str,
    svg: String,
    headers: Vec<&'static str>,
    measure: &'static str,
    rows: Vec<TableRow>,
    csv: String,
}

#[derive(Template)]
#[template(path = "dashboard_dataset.html")]
struct DatasetPage {
    page: PageContext,
    d: &'static DashText,
    name: String,
    title: String,
    version: i64,
    charts: Vec<ChartView>,
}

/// The dataset of a request and its latest committed version, or the error page to answer.
async fn find(
    state: &AppState,
    lang: Lang,
    s: &MaybeSession,
    uri: &Uri,
    name: Result<Path<String>, PathRejection>,
) -> Result<(String, String, i64), Response> {
    let Some(list) = crate::catalog::load(state).await else {
        return Err(error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, s.signed_in(), uri, |m| m.err_internal));
    };
    let found = name.ok().and_then(|Path(n)| list.into_iter().find(|e| e.dataset.name == n));
    match found.as_ref().and_then(|e| e.latest().map(|v| (e, v.version.number))) {
        Some((e, version)) => Ok((e.dataset.name.clone(), title_of(e, lang), version)),
        None => Err(error_page(StatusCode::NOT_FOUND, lang, s.signed_in(), uri, |m| m.err_not_found)),
    }
}

async fn computed(state: &AppState, lang: Lang, s: &MaybeSession, uri: &Uri, name: &str, version: i64) -> Result<Arc<Dashboard>, Response> {
    match dashboard_of(state, name, version).await {
        Ok(d) => Ok(d),
        Err(DashboardError::NotFound) => Err(error_page(StatusCode::NOT_FOUND, lang, s.signed_in(), uri, |m| m.err_not_found)),
        Err(e) => {
            tracing::error!(error = %e, "computing the dashboard failed");
            Err(error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, s.signed_in(), uri, |m| m.err_internal))
        }
    }
}

async fn dataset_page(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, name: Result<Path<String>, PathRejection>) -> Response {
    let (name, title, version) = match find(&state, lang, &s, &uri, name).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let dashboard = match computed(&state, lang, &s, &uri, &name, version).await {
        Ok(d) => d,
        Err(page) => return page,
    };
    let d = lang.dash();
    let ja = lang == Lang::Ja;
    let charts = dashboard
        .charts
        .iter()
        .map(|chart| {
            let title = if ja { chart.title_ja } else { chart.title_en };
            let rows = labelled_rows(chart, d);
            let bars = rows
                .iter()
                .zip(&chart.rows)
                .map(|((labels, value), (keys, _))| Bar {
                    label: labels.join(" "),
                    value: *value,
                    series: if chart.dimensions.len() > 1 { ["male", "female", "other"].iter().position(|s| keys[1] == *s).unwrap_or(3) } else { 0 },
                })
                .collect();
            let svg = if chart.rows.is_empty() { String::new() } else { BarChart { id: chart.id, title, suppressed: d.suppressed, bars }.svg() };
            ChartView {
                id: chart.id,
                title,
                svg,
                headers: if ja { chart.dimensions_ja.to_vec() } else { chart.dimensions_en.to_vec() },
                measure: if ja { chart.measure_ja } else { chart.measure_en },
                rows: rows
                    .into_iter()
                    .zip(&chart.rows)
                    .map(|((labels, value), (_, values))| TableRow {
                        labels,
                        count: count_text(values.first().unwrap_or(&Shown::Suppressed), true, d),
                        suppressed: value.is_none(),
                    })
                    .collect(),
                csv: format!("/dashboard/{}/{}.csv", name, chart.id),
            }
        })
        .collect();
    render(DatasetPage { page: PageContext::new(lang, s.signed_in(), &uri), d, name, title, version: dashboard.version, charts })
}

async fn chart_csv(
    State(state): State<AppState>,
    lang: Lang,
    s: MaybeSession,
    uri: Uri,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let (dataset, file) = match params {
        Ok(Path(p)) => p,
        Err(_) => return error_page(StatusCode::NOT_FOUND, lang, s.signed_in(), &uri, |m| m.err_not_found),
    };
    let Some(chart_id) = file.strip_suffix(".csv").map(str::to_string) else {
        return error_page(StatusCode::NOT_FOUND, lang, s.signed_in(), &uri, |m| m.err_not_found);
    };
    let (name, _, version) = match find(&state, lang, &s, &uri, Ok(Path(dataset))).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let dashboard = match computed(&state, lang, &s, &uri, &name, version).await {
        Ok(d) => d,
        Err(page) => return page,
    };
    let Some(chart) = dashboard.charts.iter().find(|c| c.id == chart_id) else {
        return error_page(StatusCode::NOT_FOUND, lang, s.signed_in(), &uri, |m| m.err_not_found);
    };
    // The dataset name is [a-z0-9-] and the chart id a fixed slug: safe in the header.
    let disposition = format!("attachment; filename=\"{}-v{}-{}.csv\"", name, dashboard.version, chart.id);
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, disposition)], chart_csv_text(chart, lang))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_escapes_labels_and_titles() {
        let chart = BarChart {
            id: "x\"y",
            title: "A <b> & \"c\"",
            suppressed: "<10",
            bars: vec![
                Bar { label: "<script>&\"'".into(), value: Some(1234.0), series: 0 },
                Bar { label: "秘匿の行".into(), value: None, series: 1 },
            ],
        };
        let svg = chart.svg();
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        assert!(!svg.contains("<script>") && !svg.contains("<b>") && !svg.contains("x\"y"), "{svg}");
        assert!(svg.contains("&lt;script&gt;&amp;&quot;&#39;"), "{svg}");
        assert!(svg.contains("A &lt;b&gt; &amp; &quot;c&quot;"), "{svg}");
        assert!(svg.contains("id=\"hatch-x&quot;y\""), "{svg}");
        assert!(svg.contains(">1,234</text>"), "{svg}");
        // The suppressed bar: a hatched marker and its label, never a value.
        assert!(svg.contains("class=\"suppressed\"") && svg.contains(">&lt;10</text>"), "{svg}");
        assert_eq!(svg.matches("<g class=\"bar\">").count(), 2);
        assert_eq!(xml_escape("a\u{1}b"), "ab");
    }

    #[test]
    fn csv_fields_are_quoted_and_counts_are_plain() {
        assert_eq!(crate::csv::field("a,b"), "\"a,b\"");
        assert_eq!(crate::csv::field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(crate::csv::field("東京都"), "東京都");
        let d = Lang::En.dash();
        assert_eq!(count_text(&Shown::Value(12345.0), false, d), "12345");
        assert_eq!(count_text(&Shown::Value(12345.0), true, d), "12,345");
        assert_eq!(count_text(&Shown::Suppressed, true, d), "suppressed");
    }

    #[test]
    fn keys_are_translated() {
        let (ja, en) = (Lang::Ja.dash(), Lang::En.dash());
        assert_eq!(key_label("age-sex", 0, "40-49", ja), "40〜49歳");
        assert_eq!(key_label("age-sex", 0, "90+", en), "90 and over");
        assert_eq!(key_label("age-sex", 1, "female", ja), "女性");
        assert_eq!(key_label("prefecture", 0, "13", ja), "東京都");
        assert_eq!(key_label("prefecture", 0, "13", en), "Tokyo");
        assert_eq!(key_label("prefecture", 0, UNKNOWN, ja), "不明");
        assert_eq!(key_label("drugs", 0, "Yj:3969007F1024", en), "YJ 3969007F1024");
        assert_eq!(key_label("diagnoses", 0, "E11", en), "E11");
    }
}
