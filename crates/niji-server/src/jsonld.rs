//! The catalog as machine-readable metadata, public like the portal's catalog:
//! `GET /api/v1/catalog` lists the datasets (JSON) and `GET /api/v1/catalog/{dataset}` describes
//! one as a HealthDCAT-AP style `dcat:Dataset` in JSON-LD (`application/ld+json`).
//!
//! Mapping choices (HealthDCAT-AP 2024 release on DCAT-AP 3):
//! - `dct:title` / `dct:description`: language-tagged literals, `ja` and `en` (empty ones left out).
//! - `dct:publisher`: the holder organization as a `foaf:Agent` with its registered name.
//! - `dct:temporal`: a `dct:PeriodOfTime` with `dcat:startDate` / `dcat:endDate` (`xsd:date`)
//!   from the latest version's coverage (earliest and latest event month; hidden below 10 persons).
//! - `dct:issued` / `dct:modified`: commit times of the first and the latest version;
//!   `dcat:version`: the latest version's number.
//! - `healthdcatap:numberOfUniqueIndividuals` / `healthdcatap:numberOfRecords`: the latest
//!   version's persons and accepted records through the catalog's small-count rule
//!   ([`niji_core::disclosure::catalog_count`]); a suppressed count is left out, never shown.
//! - `dcat:distribution`: an empty list on purpose — the data never leaves the platform, it is
//!   analysed where it lives; `dct:accessRights` is the EU access-right authority's `NON_PUBLIC`.
//! - `dcat:keyword`: the dataset kind and the titles of its tables, language-tagged.
//! - Tables: HealthDCAT-AP has no class for the tables and variables inside a dataset. Each
//!   standard table becomes a part (`dct:hasPart`) typed `dcat:Dataset` with its own rounded
//!   counts and `healthdcatap:hasCodingSystem`, and `dct:conformsTo` a `dct:Standard` (the
//!   table's schema) whose variables are described with the W3C CSV on the Web vocabulary
//!   (`csvw:tableSchema` / `csvw:column` with `csvw:name`, the CSVW built-in `csvw:datatype` and
//!   descriptions) —
//!   the closest standard vocabulary for column-level metadata. The dataset itself carries the
//!   union of its tables' code systems in `healthdcatap:hasCodingSystem`, each a `dct:Standard`
//!   named by its usual Japanese/English name (no IRIs exist for most Japanese masters).
//!
//! Invariants: the documents are built here from the catalog's figures, never by serializing
//! store rows; errors are the API's stable codes.

use crate::api::{ApiError, ErrorBody};
use crate::catalog::{self, SearchQuery};
use crate::AppState;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use niji_core::disclosure::catalog_count;
use niji_intake::DatasetEntry;
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/catalog", get(catalog_list)).route("/catalog/{dataset}", get(catalog_dataset))
}

/// The media type of the dataset documents.
pub(crate) const JSON_LD: &str = "application/ld+json";

#[derive(Serialize, ToSchema)]
pub(crate) struct CatalogList {
    datasets: Vec<CatalogItem>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CatalogItem {
    name: String,
    title_ja: String,
    title_en: String,
    holder: String,
    /// `ehr`, `claims`, `registry` or `mixed`.
    kind: String,
    latest_version: Option<i64>,
    /// Earliest event date of the latest version (`YYYY-MM-DD`).
    coverage_from: Option<String>,
    coverage_to: Option<String>,
    /// Persons of the latest version, rounded to 10; absent when below 10.
    #[serde(skip_serializing_if = "Option::is_none")]
    persons: Option<u64>,
    /// Accepted records of the latest version, rounded to 10; absent when below 10.
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<u64>,
    /// The dataset's JSON-LD document.
    href: String,
}

/// The datasets of the catalog (optionally those matching `q`), with rounded counts.
#[utoipa::path(get, path = "/api/v1/catalog", params(SearchQuery), responses((status = 200, body = CatalogList), (status = 500, body = ErrorBody)))]
pub(crate) async fn catalog_list(
    State(state): State<AppState>,
    q: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<CatalogList>, ApiError> {
    let list = catalog::load(&state).await.ok_or(ApiError::Internal)?;
    let q = catalog::search_text(q);
    let datasets = list
        .iter()
        .filter(|e| catalog::matches(e, &q))
        .map(|e| {
            let latest = e.latest().map(|v| &v.version);
            CatalogItem {
                name: e.dataset.name.clone(),
                title_ja: e.dataset.title_ja.clone(),
                title_en: e.dataset.title_en.clone(),
                holder: e.holder.clone(),
                kind: e.dataset.kind.clone(),
                latest_version: latest.map(|v| v.number),
                coverage_from: latest.and_then(|v| public_period(&v.coverage_from, &v.coverage_to, v.persons)).map(|p| p.0),
                coverage_to: latest.and_then(|v| public_period(&v.coverage_from, &v.coverage_to, v.persons)).map(|p| p.1),
                persons: latest.and_then(|v| catalog_count(v.persons.max(0) as u64)),
                records: latest.and_then(|v| catalog_count(v.records_accepted.max(0) as u64)),
                href: format!("/api/v1/catalog/{}", e.dataset.name),
            }
        })
        .collect();
    Ok(Json(CatalogList { datasets }))
}

/// One dataset as a HealthDCAT-AP `dcat:Dataset` in JSON-LD (`application/ld+json`).
#[utoipa::path(get, path = "/api/v1/catalog/{dataset}", params(("dataset" = String, Path, description = "Dataset name")),
    responses((status = 200, description = "HealthDCAT-AP dcat:Dataset", content_type = "application/ld+json", body = Object), (status = 404, body = ErrorBody)))]
pub(crate) async fn catalog_dataset(State(state): State<AppState>, name: Result<Path<String>, PathRejection>) -> Result<Response, ApiError> {
    let Ok(Path(name)) = name else { return Err(ApiError::NotFound) };
    let list = catalog::load(&state).await.ok_or(ApiError::Internal)?;
    let entry = list.iter().find(|e| e.dataset.name == name).ok_or(ApiError::NotFound)?;
    let body = serde_json::to_string_pretty(&dataset_document(entry)).map_err(|_| ApiError::Internal)?;
    Ok(([(header::CONTENT_TYPE, JSON_LD)], body).into_response())
}

/// Language-tagged literals, leaving out empty texts.
fn texts(ja: &str, en: &str) -> Value {
    Value::Array([(ja, "ja"), (en, "en")].into_iter().filter(|(t, _)| !t.is_empty()).map(|(t, l)| json!({"@value": t, "@language": l})).collect())
}

fn typed(value: &str, ty: &str) -> Value {
    json!({"@value": value, "@type": ty})
}

/// `xsd:date` for a full date, `xsd:gYearMonth` / `xsd:gYear` for a shorter one.
/// The public period (year-months; none for fewer than 10 persons).
fn public_period(from: &Option<String>, to: &Option<String>, persons: i64) -> Option<(String, String)> {
    niji_core::disclosure::catalog_period(from.as_deref(), to.as_deref(), persons.max(0) as u64)
}

/// `dct:temporal` of a public period, if it may be shown.
fn temporal(from: &Option<String>, to: &Option<String>, persons: i64) -> Option<Value> {
    let (from, to) = public_period(from, to, persons)?;
    Some(json!({"@type": "dct:PeriodOfTime", "dcat:startDate": date_literal(&from), "dcat:endDate": date_literal(&to)}))
}

fn date_literal(d: &str) -> Value {
    let ty = match d.len() {
        4 => "xsd:gYear",
        7 => "xsd:gYearMonth",
        _ => "xsd:date",
    };
    typed(d, ty)
}

fn standard(name: &str) -> Value {
    json!({"@type": "dct:Standard", "dct:title": name})
}

/// Inserts a count through the small-count rule: left out when suppressed.
fn put_count(obj: &mut Map<String, Value>, key: &str, n: i64) {
    if let Some(v) = catalog_count(n.max(0) as u64) {
        obj.insert(key.into(), json!(v));
    }
}

/// The CSVW built-in datatype of a lake column type (person keys are 32 bytes: `binary`).
fn csvw_datatype(lake_type: Option<&str>) -> &'static str {
    match lake_type {
        Some("person key") => "binary",
        Some("int32") => "int",
        Some("int64") => "long",
        Some("float64") => "double",
        Some("boolean") => "boolean",
        Some("date") => "date",
        Some("string") => "string",
        _ => "any",
    }
}

fn kind_keyword(kind: &str) -> Value {
    let (ja, en) = match kind {
        "ehr" => ("診療記録", "electronic health records"),
        "claims" => ("レセプト", "claims"),
        "registry" => ("レジストリ", "registry"),
        _ => ("複合", "mixed"),
    };
    json!([{"@value": ja, "@language": "ja"}, {"@value": en, "@language": "en"}])
}

pub(crate) fn dataset_document(entry: &DatasetEntry) -> Value {
    let d = &entry.dataset;
    let mut doc = Map::new();
    doc.insert(
        "@context".into(),
        json!({
            "dcat": "http://www.w3.org/ns/dcat#",
            "dct": "http://purl.org/dc/terms/",
            "foaf": "http://xmlns.com/foaf/0.1/",
            "healthdcatap": "http://healthdataportal.eu/ns/health#",
            "xsd": "http://www.w3.org/2001/XMLSchema#",
            "csvw": "http://www.w3.org/ns/csvw#"
        }),
    );
    doc.insert("@type".into(), json!("dcat:Dataset"));
    doc.insert("dct:identifier".into(), json!(d.name));
    doc.insert("dct:title".into(), texts(&d.title_ja, &d.title_en));
    if !d.description_ja.is_empty() || !d.description_en.is_empty() {
        doc.insert("dct:description".into(), texts(&d.description_ja, &d.description_en));
    }
    doc.insert("dct:publisher".into(), json!({"@type": "foaf:Agent", "foaf:name": entry.holder}));
    doc.insert("dct:accessRights".into(), json!({"@id": "http://publications.europa.eu/resource/authority/access-right/NON_PUBLIC"}));
    // No distribution: the data is analysed where it lives and never downloaded.
    doc.insert("dcat:distribution".into(), json!([]));
    if let Some(first) = entry.versions.first().and_then(|v| v.version.committed_at) {
        doc.insert("dct:issued".into(), typed(&catalog::rfc3339(first), "xsd:dateTime"));
    }
    let mut keywords: Vec<Value> = kind_keyword(&d.kind).as_array().cloned().unwrap_or_default();
    let mut parts = Vec::new();
    let mut coding: Vec<&'static str> = Vec::new();
    if let Some(latest) = entry.latest() {
        let v = &latest.version;
        if let Some(t) = v.committed_at {
            doc.insert("dct:modified".into(), typed(&catalog::rfc3339(t), "xsd:dateTime"));
        }
        doc.insert("dcat:version".into(), json!(v.number.to_string()));
        if let Some(period) = temporal(&v.coverage_from, &v.coverage_to, v.persons) {
            doc.insert("dct:temporal".into(), period);
        }
        put_count(&mut doc, "healthdcatap:numberOfUniqueIndividuals", v.persons);
        put_count(&mut doc, "healthdcatap:numberOfRecords", v.records_accepted);
        for (table, figures) in catalog::tables_of(latest) {
            keywords.push(json!({"@value": table.title_ja, "@language": "ja"}));
            keywords.push(json!({"@value": table.title_en, "@language": "en"}));
            let mut table_coding: Vec<&'static str> = Vec::new();
            for s in table.columns.iter().flat_map(|c| c.code_systems.iter()) {
                if !table_coding.contains(s) {
                    table_coding.push(s);
                }
                if !coding.contains(s) {
                    coding.push(s);
                }
            }
            let columns: Vec<Value> = table
                .columns
                .iter()
                .map(|c| {
                    let mut col = Map::new();
                    col.insert("@type".into(), json!("csvw:Column"));
                    col.insert("csvw:name".into(), json!(c.name));
                    col.insert("csvw:datatype".into(), json!(csvw_datatype(niji_lake::catalog::column_type(table.name, c.name))));
                    col.insert("dct:description".into(), texts(c.description_ja, c.description_en));
                    if !c.code_systems.is_empty() {
                        col.insert("healthdcatap:hasCodingSystem".into(), Value::Array(c.code_systems.iter().map(|s| standard(s)).collect()));
                    }
                    Value::Object(col)
                })
                .collect();
            let mut part = Map::new();
            part.insert("@type".into(), json!("dcat:Dataset"));
            part.insert("dct:identifier".into(), json!(format!("{}/{}", d.name, table.name)));
            part.insert("dct:title".into(), texts(table.title_ja, table.title_en));
            part.insert("dct:description".into(), texts(table.description_ja, table.description_en));
            put_count(&mut part, "healthdcatap:numberOfRecords", figures.rows);
            put_count(&mut part, "healthdcatap:numberOfUniqueIndividuals", figures.persons);
            if let Some(period) = temporal(&figures.coverage_from, &figures.coverage_to, figures.persons) {
                part.insert("dct:temporal".into(), period);
            }
            if !table_coding.is_empty() {
                part.insert("healthdcatap:hasCodingSystem".into(), Value::Array(table_coding.iter().map(|s| standard(s)).collect()));
            }
            part.insert(
                "dct:conformsTo".into(),
                json!({
                    "@type": "dct:Standard",
                    "dct:identifier": format!("niji:table:{}", table.name),
                    "dct:source": table.source,
                    "csvw:tableSchema": {"@type": "csvw:Schema", "csvw:column": columns}
                }),
            );
            parts.push(Value::Object(part));
        }
    }
    doc.insert("dcat:keyword".into(), Value::Array(keywords));
    if !coding.is_empty() {
        doc.insert("healthdcatap:hasCodingSystem".into(), Value::Array(coding.iter().map(|s| standard(s)).collect()));
    }
    doc.insert("dct:hasPart".into(), Value::Array(parts));
    Value::Object(doc)
}
