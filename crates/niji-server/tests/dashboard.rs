//! The public dashboard over HTTP (in-process, through the real router) on synthetic data
//! ingested with `niji-intake`: charts as SVG with their tables, CSV downloads equal to the
//! tables, and nothing below 10 persons released anywhere.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use niji_accounts::{Accounts, AccountsConfig};
use niji_ingest::{Date, IngestConfig};
use niji_instance::Instance;
use niji_intake::{IntakeOptions, NoProgress, OnReject, Outcome, Submission};
use niji_server::{router, AppState, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower::ServiceExt;

const CHARTS: [&str; 5] = ["age-sex", "prefecture", "diagnoses", "drugs", "monthly"];

struct App {
    _dir: tempfile::TempDir,
    router: axum::Router,
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    bytes: Vec<u8>,
    body: String,
}

async fn send(app: &App, req: Request<Body>) -> Reply {
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
    let body = String::from_utf8(bytes.clone()).unwrap();
    Reply { status, headers, bytes, body }
}

fn get(uri: &str, cookies: &str) -> Request<Body> {
    Request::get(uri).header(header::COOKIE, cookies).body(Body::empty()).unwrap()
}

/// A synthetic population (NDJSON and UKE only), generated once per test binary.
fn synth() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = niji_testkit::process_temp_dir("niji-server-dashboard-synth");
        let mut config = niji_synth::SynthConfig::new(&dir, 1500);
        config.formats = niji_synth::Formats { fhir_bundles: false, fhir_ndjson: true, uke: true, registry_csv: false };
        niji_synth::generate(&config, &mut |_| {}).unwrap();
        dir
    })
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

async fn ingest(instance: &Instance, holder: &str, dataset: &str, files: Vec<PathBuf>) {
    let mut config = IngestConfig::new(Date::new(2026, 11, 21).unwrap());
    config.clins_strict = true;
    let submission = Submission {
        holder: holder.into(),
        dataset: dataset.into(),
        description: None,
        files,
        csv_mapping: None,
        on_reject: OnReject::Quarantine,
        actor: "cli:test".into(),
    };
    match niji_intake::ingest(instance, submission, &IntakeOptions::new(config), Arc::new(NoProgress)).await.unwrap() {
        Outcome::Committed(r) => assert!(r.persons >= 100, "{dataset}: {} persons", r.persons),
        Outcome::Refused { .. } => panic!("{dataset} refused"),
    }
}

/// An instance with two datasets: every hospital's NDJSON (`hosp-ehr`) and the claims
/// (`claims`).
async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let instance = Arc::new(Instance::init(dir.path(), "cli:test").await.unwrap());
    for (name, kind) in [("hospital-a", "hospital"), ("insurer", "insurer")] {
        instance.store.create_organization(name, kind, 0).await.unwrap();
    }
    ingest(&instance, "hospital-a", "hosp-ehr", files_under(&synth().join("ndjson"))).await;
    ingest(&instance, "insurer", "claims", files_under(&synth().join("uke"))).await;
    let accounts = Arc::new(Accounts::new(instance.store.clone(), instance.audit_sink(), instance.accounts_key(), AccountsConfig::default()));
    let state = AppState::new(instance, accounts, ServerConfig::default());
    App { _dir: dir, router: router(state) }
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let end = after.find(';').unwrap();
        let entity = &after[1..end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            e if e.starts_with("#x") => char::from_u32(u32::from_str_radix(&e[2..], 16).unwrap()).unwrap(),
            e if e.starts_with('#') => char::from_u32(e[1..].parse().unwrap()).unwrap(),
            e => panic!("entity {e}"),
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The text between `from` and the next `to`, after `start`.
fn between<'a>(s: &'a str, from: &str, to: &str) -> Option<&'a str> {
    let i = s.find(from)? + from.len();
    let j = s[i..].find(to)? + i;
    Some(&s[i..j])
}

/// The cells of every element `tag` in `html` (text with tags removed, unescaped).
fn cells(html: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    html.split(&open)
        .skip(1)
        .map(|part| {
            let inner = &part[part.find('>').unwrap() + 1..part.find(&close).unwrap()];
            unescape(inner)
        })
        .collect()
}

/// A chart's HTML table: header cells and rows of cells.
fn html_table(page: &str, chart: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let table =
        between(page, &format!("<table class=\"chart-table\" id=\"table-{chart}\">"), "</table>").unwrap_or_else(|| panic!("no table {chart}"));
    let head = between(table, "<thead>", "</thead>").unwrap();
    let body = between(table, "<tbody>", "</tbody>").unwrap();
    let rows = body.split("<tr>").skip(1).map(|r| cells(r, "td")).collect();
    (cells(head, "th"), rows)
}

fn csv_rows(text: &str) -> Vec<Vec<String>> {
    // The dashboard's fields hold no comma, quote or line break, so splitting is enough here.
    text.split("\r\n").filter(|l| !l.is_empty()).map(|l| l.split(',').map(str::to_string).collect()).collect()
}

/// Checks that a released count is a marker or at least 10; returns whether it is the marker.
fn released(cell: &str, marker: &str, context: &str) -> bool {
    if cell == marker {
        return true;
    }
    let n: u64 = cell.replace(',', "").parse().unwrap_or_else(|_| panic!("{context}: not a count: {cell:?}"));
    assert!(n >= 10, "{context}: released count {n} is below 10");
    false
}

/// The SVG of a chart's section: its value texts (not the right-aligned labels) and its
/// suppressed markers.
fn svg_of<'a>(page: &'a str, chart: &str) -> &'a str {
    let section = between(page, &format!("<section class=\"chart\" id=\"chart-{chart}\">"), "</section>").unwrap();
    between(section, "<svg ", "</svg>").unwrap_or_else(|| panic!("{chart}: no svg"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_public_dashboard_shows_checked_charts_tables_and_csv() {
    let app = app().await;

    // The list: public, both datasets linked; the navigation links to it.
    let list = send(&app, get("/dashboard", "")).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("href=\"/dashboard/hosp-ehr\"") && list.body.contains("href=\"/dashboard/claims\""), "{}", list.body);
    assert!(send(&app, get("/catalog", "")).await.body.contains("href=\"/dashboard\" id=\"nav-dashboard\""));

    let mut suppressed_seen = 0;
    for (dataset, lang, marker) in [("hosp-ehr", "ja", "秘匿"), ("hosp-ehr", "en", "suppressed"), ("claims", "ja", "秘匿")] {
        let cookie = format!("niji_lang={lang}");
        let page = send(&app, get(&format!("/dashboard/{dataset}"), &cookie)).await;
        assert_eq!(page.status, StatusCode::OK, "{dataset}");
        assert!(page.body.contains(&format!("<html lang=\"{lang}\">")));
        for chart in CHARTS {
            let context = format!("{dataset} {lang} {chart}");
            let section = between(&page.body, &format!("<section class=\"chart\" id=\"chart-{chart}\">"), "</section>").unwrap();
            assert!(section.contains(&format!("href=\"/dashboard/{dataset}/{chart}.csv\"")), "{context}: CSV link");
            if section.contains("class=\"no-rows\"") {
                // Only the claims lack some charts: their diseases carry no ICD-10 code, and each of
                // their few persons' drugs is held by fewer than 10 (such rows are left out whole).
                assert!(matches!((dataset, chart), ("claims", "diagnoses" | "drugs")), "{context}: no rows");
                assert!(!section.contains("<svg") && !section.contains("<table"));
                let csv = send(&app, get(&format!("/dashboard/{dataset}/{chart}.csv"), &cookie)).await;
                assert_eq!(csv_rows(&csv.body['\u{FEFF}'.len_utf8()..]).len(), 1, "{context}: the header only");
                continue;
            }
            let (headers, rows) = html_table(&page.body, chart);
            assert!(!rows.is_empty(), "{context}: no rows");
            let svg = svg_of(&page.body, chart);
            assert!(svg.contains("role=\"img\"") && svg.contains("<title"), "{context}");

            // The table: every count is suppressed or at least 10.
            let mut suppressed = 0;
            for row in &rows {
                assert_eq!(row.len(), headers.len(), "{context}: {row:?}");
                if released(row.last().unwrap(), marker, &context) {
                    suppressed += 1;
                }
            }
            assert!(page.body.matches("class=\"count suppressed\"").count() >= suppressed);

            // The chart: one bar per row, the same values, suppressed bars as markers.
            assert_eq!(svg.matches("<g class=\"bar\">").count(), rows.len(), "{context}");
            assert_eq!(svg.matches("class=\"suppressed\"").count(), suppressed, "{context}");
            let values: Vec<String> =
                svg.split("<text ").skip(1).filter(|t| !t.contains("text-anchor")).map(|t| unescape(between(t, ">", "</text>").unwrap())).collect();
            assert_eq!(values, rows.iter().map(|r| r.last().unwrap().clone()).collect::<Vec<_>>(), "{context}");
            for title in cells(svg, "title").iter().skip(1) {
                released(title.rsplit(": ").next().unwrap(), marker, &context);
            }

            // The CSV: BOM, header, the table's rows with plain numbers.
            let csv = send(&app, get(&format!("/dashboard/{dataset}/{chart}.csv"), &cookie)).await;
            assert_eq!(csv.status, StatusCode::OK, "{context}");
            assert_eq!(csv.headers.get(header::CONTENT_TYPE).unwrap(), "text/csv; charset=utf-8");
            assert!(csv.headers.get(header::CONTENT_DISPOSITION).unwrap().to_str().unwrap().starts_with("attachment; filename="));
            assert_eq!(&csv.bytes[..3], b"\xEF\xBB\xBF", "{context}: UTF-8 BOM");
            let mut lines = csv_rows(&csv.body['\u{FEFF}'.len_utf8()..]);
            assert_eq!(lines.remove(0), headers, "{context}: header row");
            let html_rows: Vec<Vec<String>> = rows
                .iter()
                .map(|r| r.iter().enumerate().map(|(i, c)| if i + 1 == r.len() { c.replace(',', "") } else { c.clone() }).collect())
                .collect();
            assert_eq!(lines, html_rows, "{context}: CSV rows equal the table's");
            for line in &lines {
                released(line.last().unwrap(), marker, &context);
            }
            suppressed_seen += suppressed;
        }
    }
    assert!(suppressed_seen > 0, "some cells of the synthetic data are suppressed");

    // Japanese labels; English labels.
    let ja = send(&app, get("/dashboard/hosp-ehr", "")).await.body;
    assert!(ja.contains("年齢階級・性別の人数") && ja.contains("女性") && ja.contains("歳"));
    let en = send(&app, get("/dashboard/hosp-ehr", "niji_lang=en")).await.body;
    assert!(en.contains("Persons by age band and sex") && en.contains("female"));

    // Unknown datasets, charts and files: the 404 page.
    for uri in [
        "/dashboard/nothing-here",
        "/dashboard/nothing-here/age-sex.csv",
        "/dashboard/hosp-ehr/no-chart.csv",
        "/dashboard/hosp-ehr/age-sex",
        "/dashboard/hosp-ehr/age-sex.csv/x",
    ] {
        let r = send(&app, get(uri, "")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(r.body.contains("<html"), "{uri}: the error page");
    }

    // A second request is answered from the cache, with the same page.
    let again = send(&app, get("/dashboard/hosp-ehr", "")).await.body;
    assert_eq!(again, ja);
}
