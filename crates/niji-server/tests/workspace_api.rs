//! The analysis workspace in the JSON API: a named researcher queries dummy and real data and
//! submits a job with an API token; two output checkers sign it off; the release downloads with
//! the SHA-256 the log published. The submitter's view of a pending job holds no table; a named
//! researcher cannot sign; another permit's researcher is refused everywhere; refused queries
//! answer fixed codes; a cookie session's unsafe requests need the CSRF header, and a refused one
//! records nothing.

mod common;
use common::world::*;
use common::*;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use niji_accounts::{Accounts, AccountsConfig};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

const BY_CODE: &str = "SELECT code, count(*) AS n FROM ehr.conditions GROUP BY code";
const BY_SEX: &str = "SELECT sex, count(*) AS n FROM ehr.patients GROUP BY sex";

async fn token(app: &App, name: &str) -> String {
    let accounts = Accounts::new(app.instance.store.clone(), app.instance.audit_sink(), app.instance.accounts_key(), AccountsConfig::default());
    let id = app.instance.store.user_by_username(name).await.unwrap().unwrap().id;
    accounts.create_api_token(id, "test", "test", OffsetDateTime::now_utc()).await.unwrap()
}

fn with_token(method: &str, uri: &str, token: &str, body: Option<Value>) -> Request<Body> {
    let r = Request::builder().method(method).uri(uri).header(header::AUTHORIZATION, format!("Bearer {token}"));
    match body {
        Some(b) => r.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())).unwrap(),
        None => r.body(Body::empty()).unwrap(),
    }
}

fn with_cookie(method: &str, uri: &str, cookie: &str, csrf: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(uri).header(header::COOKIE, cookie);
    if let Some(c) = csrf {
        r = r.header("x-csrf-token", c);
    }
    match body {
        Some(b) => r.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())).unwrap(),
        None => r.body(Body::empty()).unwrap(),
    }
}

fn reason(r: &Reply) -> String {
    r.json()["error"]["reason"].as_str().unwrap_or_default().to_string()
}

fn log_entries(app: &App) -> Vec<Value> {
    let log = app.instance.log();
    (0..log.size()).map(|i| serde_json::from_slice::<Value>(&log.entry(i).unwrap()).unwrap()).collect()
}

/// Every number of a checked table's values is at least 10; the rest are markers.
fn assert_no_small_value(rows: &Value) {
    for row in rows.as_array().unwrap() {
        for v in row["values"].as_array().unwrap() {
            match v {
                Value::Number(n) => assert!(n.as_f64().unwrap() >= 10.0, "a small count is visible: {row}"),
                Value::String(s) => assert!(s == "suppressed" || s == "refused", "{row}"),
                _ => panic!("unexpected cell {v}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_sign_off_twice_and_download_with_the_logged_hash() {
    let app = app().await;
    let send = |req| send_to(&app.router, req);
    let p = app.permit;
    let researcher = token(&app, "researcher").await;
    let (checker1, checker2, other) = (token(&app, "checker1").await, token(&app, "checker2").await, token(&app, "other").await);

    // Dummy data: rows; real data: the checked table only.
    let r = send(with_token("POST", &format!("/api/v1/permits/{p}/queries"), &researcher, Some(json!({"sql": BY_CODE, "data": "dummy"})))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["data"], "dummy");
    assert!(!r.json()["rows"].as_array().unwrap().is_empty());
    let r = send(with_token("POST", &format!("/api/v1/permits/{p}/queries"), &researcher, Some(json!({"sql": BY_CODE, "data": "real"})))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let out = r.json();
    assert_eq!((out["data"].as_str(), out["measures"][0].as_str()), (Some("real"), Some("n")));
    assert_no_small_value(&out["rows"]);
    // Codes of fewer than 10 persons are left out, keys and all.
    let rare = rare_condition_code(&app);
    assert!(out["rows"].as_array().unwrap().iter().all(|r| r["keys"][0] != rare.as_str()), "{rare} is listed: {out}");
    assert!(r.body.contains("\"suppressed\""));

    // A job with two outputs.
    let outputs = json!({"outputs": [{"name": "by_sex", "sql": BY_SEX}, {"name": "by_code", "sql": BY_CODE_AND_WOMEN}]});
    let r = send(with_token("POST", &format!("/api/v1/permits/{p}/jobs"), &researcher, Some(outputs.clone()))).await;
    // Answered at once; the job runs in the background.
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let job = r.json()["id"].as_i64().unwrap();
    assert_eq!(r.json()["status"], "checking", "{}", r.body);
    assert_eq!(finished_job(&app, job).await, "awaiting_review");
    let r = send(with_token("GET", &format!("/api/v1/jobs/{job}"), &researcher, None)).await;
    assert_eq!(r.json()["status"], "awaiting_review", "{}", r.body);
    let r =
        send(with_token("POST", &format!("/api/v1/permits/{p}/jobs"), &researcher, Some(json!({"outputs": [{"name": "bad name!", "sql": BY_SEX}]}))))
            .await;
    assert_eq!((r.status, reason(&r)), (StatusCode::BAD_REQUEST, "bad_outputs".into()));
    let r = send(with_token("GET", &format!("/api/v1/permits/{p}/jobs"), &researcher, None)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()[0]["id"], job);

    // The submitter's view of the pending job: statuses only, no table, no verdict, no count.
    let r = send(with_token("GET", &format!("/api/v1/jobs/{job}"), &researcher, None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for needle in ["verdicts", "table", "\"values\"", "\"keys\"", "persons", "対象者が", "submitted_by", "signoffs"] {
        assert!(!r.body.contains(needle), "{needle} in the submitter's view: {}", r.body);
    }
    assert_eq!((r.json()["status"].as_str(), r.json()["approvals"].as_u64()), (Some("awaiting_review"), Some(0)));
    // A checker allowed to sign sees the checked tables and per-cell verdicts.
    let r = send(with_token("GET", &format!("/api/v1/jobs/{job}"), &checker1, None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let detail = r.json();
    let by_code = detail["outputs"].as_array().unwrap().iter().find(|o| o["name"] == "by_code").unwrap();
    assert_no_small_value(&by_code["table"]["rows"]);
    assert!(!by_code["verdicts"]["cells"].as_array().unwrap().is_empty(), "{by_code}");

    // The named researcher (an output checker too) cannot sign.
    let r = send(with_token("POST", &format!("/api/v1/jobs/{job}/signoffs"), &researcher, Some(json!({"verdict": "approve"})))).await;
    assert_eq!((r.status, reason(&r)), (StatusCode::FORBIDDEN, "conflicted".into()), "{}", r.body);
    assert!(app.instance.store.signoffs(job).await.unwrap().is_empty());

    // Two different checkers approve.
    let signoffs = format!("/api/v1/jobs/{job}/signoffs");
    let r = send(with_token("POST", &signoffs, &checker1, Some(json!({"verdict": "approve"})))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!((r.json()["outcome"].as_str(), r.json()["approvals"].as_u64()), (Some("recorded"), Some(1)));
    let r = send(with_token("POST", &signoffs, &checker1, Some(json!({"verdict": "approve"})))).await;
    assert_eq!((r.status, reason(&r)), (StatusCode::CONFLICT, "already_signed".into()));
    let r = send(with_token("POST", &signoffs, &checker2, Some(json!({"verdict": "maybe"})))).await;
    assert_eq!((r.status, reason(&r)), (StatusCode::BAD_REQUEST, "malformed".into()));
    let r = send(with_token("POST", &signoffs, &checker2, Some(json!({"verdict": "approve", "reason": "looks_fine"})))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.json()["outcome"], "released");
    let release = r.json()["release_id"].as_i64().unwrap();
    let r = send(with_token("GET", &format!("/api/v1/jobs/{job}"), &researcher, None)).await;
    assert_eq!((r.json()["status"].as_str(), r.json()["release_id"].as_i64()), (Some("released"), Some(release)));

    // The release: its CSV hashes to what the log published, and the download is logged.
    let r = send(with_token("GET", &format!("/api/v1/releases/{release}/file"), &researcher, None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"));
    let sha = hex::encode(Sha256::digest(r.body.as_bytes()));
    let entries = log_entries(&app);
    let object = format!("release:{release}");
    let published = entries.iter().find(|e| e["action"] == "release.published" && e["object"] == object).expect("release.published logged");
    assert_eq!(sha, published["data"]["csv_sha256"].as_str().unwrap());
    let downloaded = entries.iter().rfind(|e| e["action"] == "release.downloaded" && e["object"] == object).expect("the download is logged");
    assert_eq!(sha, downloaded["data"]["csv_sha256"].as_str().unwrap());
    let mut lines = r.body.trim_start_matches('\u{feff}').lines();
    let n = lines.next().unwrap().split(',').position(|h| h == "n").unwrap();
    for line in lines {
        let v = line.split(',').nth(n).unwrap();
        assert!(v == "suppressed" || v.parse::<f64>().unwrap() >= 10.0, "{line}");
    }
    let r = send(with_token("GET", &format!("/api/v1/releases/{release}"), &researcher, None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["release"], release);
    assert_eq!(hex::encode(Sha256::digest(r.body.as_bytes())), published["data"]["metadata_sha256"].as_str().unwrap());

    // Another permit's researcher: refused on every endpoint, nothing shown.
    let refusals = log_entries(&app).iter().filter(|e| e["action"] == "release.download_refused").count();
    for (method, uri, body) in [
        ("POST", format!("/api/v1/permits/{p}/queries"), Some(json!({"sql": BY_SEX, "data": "dummy"}))),
        ("POST", format!("/api/v1/permits/{p}/queries"), Some(json!({"sql": BY_SEX, "data": "real"}))),
        ("POST", format!("/api/v1/permits/{p}/jobs"), Some(outputs.clone())),
        ("GET", format!("/api/v1/permits/{p}/jobs"), None),
        ("GET", format!("/api/v1/jobs/{job}"), None),
        ("POST", format!("/api/v1/jobs/{job}/signoffs"), Some(json!({"verdict": "approve"}))),
        ("GET", format!("/api/v1/releases/{release}"), None),
        ("GET", format!("/api/v1/releases/{release}/file"), None),
    ] {
        let r = send(with_token(method, &uri, &other, body)).await;
        assert!(matches!(r.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND), "{method} {uri}: {} {}", r.status, r.body);
        assert!(!r.body.contains("by_code") && !r.body.contains("ehr.") && !r.body.contains("\"rows\""), "{uri}: {}", r.body);
    }
    let after = log_entries(&app).iter().filter(|e| e["action"] == "release.download_refused").count();
    assert_eq!(after, refusals + 2, "refused downloads are logged as in the portal");
    // Unknown ids, a malformed id, no credentials.
    for uri in ["/api/v1/permits/999999/jobs", "/api/v1/jobs/999999", "/api/v1/releases/999999"] {
        let r = send(with_token("GET", uri, &researcher, None)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
    }
    let r = send(with_token("GET", "/api/v1/jobs/abc'", &researcher, None)).await;
    assert_eq!((r.status, reason(&r)), (StatusCode::BAD_REQUEST, "malformed".into()));
    assert!(!r.body.contains("abc"));
    let r = send(get(&format!("/api/v1/permits/{p}/jobs"), "")).await;
    assert_eq!((r.status, reason(&r)), (StatusCode::UNAUTHORIZED, "unauthorized".into()));

    // The OpenAPI document describes the routes.
    let doc = send(get("/api/v1/openapi.json", "")).await.json();
    for path in [
        "/api/v1/permits/{id}/queries",
        "/api/v1/permits/{id}/jobs",
        "/api/v1/jobs/{id}",
        "/api/v1/jobs/{id}/signoffs",
        "/api/v1/releases/{id}",
        "/api/v1/releases/{id}/file",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_real_queries_answer_fixed_codes_only() {
    let app = app().await;
    let send = |req| send_to(&app.router, req);
    let p = app.permit;
    let researcher = token(&app, "researcher").await;
    let query = |sql: String| with_token("POST", &format!("/api/v1/permits/{p}/queries"), &researcher, Some(json!({"sql": sql, "data": "real"})));

    // A code held by fewer than 10 persons, known from elsewhere: asking for such codes lists none.
    let r = send(query("SELECT code, count(*) AS n FROM ehr.conditions GROUP BY code HAVING count(DISTINCT person_id) < 10".into())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["rows"], json!([]), "{}", r.body);
    let code = rare_condition_code(&app);

    // Everyone by sex, then everyone but the rare code's persons: the difference is a small cell.
    let r = send(query(BY_SEX.into())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let without = format!(
        "SELECT sex, count(*) AS n FROM ehr.patients WHERE person_id NOT IN (SELECT person_id FROM ehr.conditions WHERE code = '{code}') GROUP BY sex"
    );
    let r = send(query(without)).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str(), reason(&r).as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("query_refused"), "differencing")
    );
    assert!(!r.body.contains(&code) && !r.body.contains("rows"), "{}", r.body);

    // The sandbox's refusals: its fixed code, never the engine's text or the SQL.
    for (sql, expected) in [
        ("SELECT person_id, count(*) FROM ehr.conditions GROUP BY person_id", "person_id_in_output"),
        ("SELECT code FROM ehr.conditions", "not_aggregate"),
        ("SELECT count(*) FROM ehr.secret_table", "unknown_name"),
        ("SELEC nonsense_token_xyz", "parse"),
    ] {
        let r = send(query(sql.into())).await;
        assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("query_refused")), "{sql}: {}", r.body);
        assert_eq!(reason(&r), expected, "{sql}");
        for leak in ["DataFusion", "Error during", "secret_table", "nonsense_token_xyz", "person_id,", "SELECT"] {
            assert!(!r.body.contains(leak), "{sql}: {}", r.body);
        }
    }
    let r = send(with_token("POST", &format!("/api/v1/permits/{p}/queries"), &researcher, Some(json!({"sql": BY_SEX, "data": "raw"})))).await;
    assert_eq!((r.status, reason(&r)), (StatusCode::BAD_REQUEST, "malformed".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn cookie_sessions_need_the_csrf_header_and_a_refusal_records_nothing() {
    let app = app().await;
    let send = |req| send_to(&app.router, req);
    let p = app.permit;
    let researcher = app.sign_in("researcher").await;
    let csrf = hidden_csrf(&send(get("/account", &researcher)).await.body);
    let queries = format!("/api/v1/permits/{p}/queries");
    let jobs = format!("/api/v1/permits/{p}/jobs");
    let real = json!({"sql": BY_SEX, "data": "real"});
    let job = json!({"outputs": [{"name": "by_sex", "sql": BY_SEX}]});

    let size = app.instance.log().size();
    for token in [None, Some("forged"), Some("")] {
        let r = send(with_cookie("POST", &queries, &researcher, token, Some(real.clone()))).await;
        assert_eq!((r.status, reason(&r)), (StatusCode::FORBIDDEN, "csrf".into()), "{token:?}");
        let r = send(with_cookie("POST", &jobs, &researcher, token, Some(job.clone()))).await;
        assert_eq!((r.status, reason(&r)), (StatusCode::FORBIDDEN, "csrf".into()), "{token:?}");
    }
    assert_eq!(app.instance.log().size(), size, "a refused request logged something");
    assert!(app.instance.store.jobs().await.unwrap().is_empty());

    // Reading needs no token; writing with the session's token works.
    let r = send(with_cookie("GET", &jobs, &researcher, None, None)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "[]"));
    let r = send(with_cookie("POST", &queries, &researcher, Some(&csrf), Some(real))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = send(with_cookie("POST", &jobs, &researcher, Some(&csrf), Some(job))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let id = r.json()["id"].as_i64().unwrap();
    assert_eq!(finished_job(&app, id).await, "awaiting_review");

    // A checker's sign-off with a forged token records nothing.
    let checker = app.sign_in("checker1").await;
    let checker_csrf = hidden_csrf(&send(get("/account", &checker)).await.body);
    let signoffs = format!("/api/v1/jobs/{id}/signoffs");
    let size = app.instance.log().size();
    let r = send(with_cookie("POST", &signoffs, &checker, Some("forged"), Some(json!({"verdict": "approve"})))).await;
    assert_eq!((r.status, reason(&r)), (StatusCode::FORBIDDEN, "csrf".into()));
    // Another session's token is no better.
    let r = send(with_cookie("POST", &signoffs, &checker, Some(&csrf), Some(json!({"verdict": "approve"})))).await;
    assert_eq!((r.status, reason(&r)), (StatusCode::FORBIDDEN, "csrf".into()));
    assert!(app.instance.store.signoffs(id).await.unwrap().is_empty());
    assert_eq!(app.instance.log().size(), size);
    let r = send(with_cookie("POST", &signoffs, &checker, Some(&checker_csrf), Some(json!({"verdict": "approve"})))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(app.instance.store.signoffs(id).await.unwrap().len(), 1);
}

/// A run that passes the time its answer was due (fixed from the tables' sizes before it ran)
/// answers at the time limit, marked late, and spends a stop; the portal says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_late_answer_is_marked_and_spends_a_stop() {
    use niji_analysis::{AnalysisSettings, AnswerTime, Limits};
    let hasty = AnalysisSettings {
        answer: AnswerTime { least: std::time::Duration::ZERO, per_million_rows: std::time::Duration::ZERO },
        limits: Limits { timeout: std::time::Duration::from_secs(5), ..Limits::default() },
        ..AnalysisSettings::default()
    };
    let app = app_with(niji_server::ServerConfig { analysis: hasty, ..niji_server::ServerConfig::default() }).await;
    let p = app.permit;
    let researcher = token(&app, "researcher").await;
    let t = std::time::Instant::now();
    let r =
        send_to(&app.router, with_token("POST", &format!("/api/v1/permits/{p}/queries"), &researcher, Some(json!({"sql": BY_SEX, "data": "real"}))))
            .await;
    assert!(t.elapsed() >= std::time::Duration::from_millis(6_250), "the limit and a quarter of it: {:?}", t.elapsed());
    assert_eq!((r.status, r.json()["late"].as_bool()), (StatusCode::OK, Some(true)), "{}", r.body);
    let r = send_to(&app.router, with_token("GET", &format!("/api/v1/permits/{p}/stops"), &researcher, None)).await;
    assert_eq!((r.json()["stops"][0]["reason"].as_str(), r.json()["left"].as_u64()), (Some("late"), Some(4)), "{}", r.body);
}

/// Runs stopped by a limit spend the permit's stops: the API says which and how many are left
/// (hashes, never the SQL), refuses real-data runs when none is left, and an output checker not
/// named on the permit clears them, through the API or the `/checks` page.
#[tokio::test(flavor = "multi_thread")]
async fn stopped_runs_spend_the_permits_stops_and_a_checker_clears_them() {
    use niji_analysis::{AnalysisSettings, Limits};
    // One byte of memory: every grouping runs out of it.
    let starved = AnalysisSettings { limits: Limits { memory_bytes: 1, ..Limits::default() }, max_stops: 2, ..AnalysisSettings::default() };
    let app = app_with(niji_server::ServerConfig { analysis: starved, ..niji_server::ServerConfig::default() }).await;
    let send = |req| send_to(&app.router, req);
    let p = app.permit;
    let (researcher, checker1, other) = (token(&app, "researcher").await, token(&app, "checker1").await, token(&app, "other").await);
    let query = |sql: &str| with_token("POST", &format!("/api/v1/permits/{p}/queries"), &researcher, Some(json!({"sql": sql, "data": "real"})));
    let stops = format!("/api/v1/permits/{p}/stops");

    let r = send(with_token("GET", &stops, &researcher, None)).await;
    assert_eq!((r.status, r.json()["max_stops"].as_u64(), r.json()["left"].as_u64()), (StatusCode::OK, Some(2), Some(2)), "{}", r.body);
    // Refused before running: nothing spent. Dummy data is not limited by stops.
    let r = send(query("SELECT code FROM ehr.conditions")).await;
    assert_eq!(reason(&r), "not_aggregate");
    let r = send(query(BY_SEX)).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str(), reason(&r).as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("query_stopped"), "memory_limit"),
        "{}",
        r.body
    );
    let r =
        send(with_token("POST", &format!("/api/v1/permits/{p}/jobs"), &researcher, Some(json!({"outputs": [{"name": "a", "sql": BY_SEX}]})))).await;
    assert_eq!((r.status, r.json()["status"].as_str()), (StatusCode::ACCEPTED, Some("checking")), "{}", r.body);
    let job = r.json()["id"].as_i64().unwrap();
    assert_eq!(finished_job(&app, job).await, "refused");
    let r = send(with_token("GET", &format!("/api/v1/jobs/{job}"), &researcher, None)).await;
    assert!(r.body.contains("memory_limit"), "{}", r.body);

    let r = send(with_token("GET", &stops, &researcher, None)).await;
    let body = r.json();
    assert_eq!((body["left"].as_u64(), body["stops"].as_array().unwrap().len()), (Some(0), 2), "{}", r.body);
    assert_eq!((body["stops"][0]["kind"].as_str(), body["stops"][0]["reason"].as_str()), (Some("query"), Some("memory_limit")));
    assert_eq!(body["stops"][1]["kind"], "job");
    assert_eq!(body["stops"][0]["sql_sha256"].as_str(), Some(hex::encode(Sha256::digest(BY_SEX.as_bytes())).as_str()));
    assert!(!r.body.contains("SELECT"), "{}", r.body);

    // None left: refused before anything runs; dummy data still answers.
    let r = send(query(BY_SEX)).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str(), reason(&r).as_str()), (StatusCode::CONFLICT, Some("conflict"), "stops_spent"));
    let r = send(with_token("POST", &format!("/api/v1/permits/{p}/queries"), &researcher, Some(json!({"sql": BY_SEX, "data": "dummy"})))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Who may see and clear: not another permit's researcher; not the researcher named on it
    // (though an output checker too); a checker not named on it, with a reason code.
    assert_eq!(send(with_token("GET", &stops, &other, None)).await.status, StatusCode::FORBIDDEN);
    assert_eq!(send(with_token("GET", &stops, &checker1, None)).await.status, StatusCode::OK);
    let last = body["stops"][1]["id"].as_i64().unwrap();
    let clear = format!("{stops}?through={last}");
    let r = send(with_token("DELETE", &clear, &researcher, None)).await;
    assert_eq!((r.status, reason(&r).as_str()), (StatusCode::FORBIDDEN, "conflicted"));
    let r = send(with_token("DELETE", &clear, &other, None)).await;
    assert_eq!((r.status, reason(&r).as_str()), (StatusCode::FORBIDDEN, "not_a_checker"));
    let r = send(with_token("DELETE", &format!("{clear}&reason=Not%20a%20code"), &checker1, None)).await;
    assert_eq!((r.status, reason(&r).as_str()), (StatusCode::BAD_REQUEST, "bad_reason"));
    let r = send(with_token("DELETE", &stops, &checker1, None)).await;
    assert_eq!((r.status, reason(&r).as_str()), (StatusCode::BAD_REQUEST, "malformed"), "the last stop looked at is named");
    // Up to the first stop only: the second stays.
    let first = body["stops"][0]["id"].as_i64().unwrap();
    let r = send(with_token("DELETE", &format!("{stops}?through={first}"), &checker1, None)).await;
    assert_eq!((r.status, r.json()["cleared"].as_u64()), (StatusCode::OK, Some(1)), "{}", r.body);
    assert_eq!(send(with_token("GET", &stops, &researcher, None)).await.json()["left"].as_u64(), Some(1));
    let r = send(with_token("DELETE", &clear, &checker1, None)).await;
    assert_eq!((r.status, r.json()["cleared"].as_u64()), (StatusCode::OK, Some(1)), "{}", r.body);
    let cleared = log_entries(&app).into_iter().filter(|e| e["action"] == "permit.stops_cleared").collect::<Vec<_>>();
    assert_eq!(cleared.len(), 2);
    assert_eq!(cleared[1]["data"]["reason"], "reviewed");

    // It runs again (and is stopped again); then the portal: the checker's page lists the
    // permit, its form clears it; the researcher's workspace shows what is left.
    let r = send(query(BY_SEX)).await;
    assert_eq!(reason(&r), "memory_limit");
    let web_researcher = app.sign_in("researcher").await;
    let page = send(get(&format!("/permits/{p}/workspace"), &web_researcher)).await;
    assert!(page.body.contains("<span id=\"stops-used\">1</span>") && page.body.contains("<span id=\"stops-left\">1</span>"), "{}", page.body);
    let web_checker = app.sign_in("checker1").await;
    let queue = send(get("/checks", &web_checker)).await;
    assert!(queue.body.contains(&format!("id=\"stops-{p}\"")) && queue.body.contains("<code>memory_limit</code>"), "{}", queue.body);
    // Who ran it, its hash, and how many runs there were since the last clearance.
    assert!(queue.body.contains("<td>researcher</td>") && queue.body.contains(&hex::encode(Sha256::digest(BY_SEX.as_bytes()))), "{}", queue.body);
    assert!(queue.body.contains("<span class=\"runs-since-clear\">1</span>"), "{}", queue.body);
    let through = queue.body.split("name=\"through\" value=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_string();
    let seen = queue.body.split("name=\"seen\" value=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_string();
    // The researcher (named on it) does not see it listed.
    assert!(!send(get("/checks", &web_researcher)).await.body.contains(&format!("id=\"stops-{p}\"")));
    let clear = format!("/checks/permits/{p}/stops");
    let r = send(post_form(&clear, &web_checker, &[("csrf", "forged"), ("reason", "reviewed"), ("through", &through), ("seen", &seen)])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r =
        send(post_form(&clear, &web_checker, &[("csrf", &hidden_csrf(&queue.body)), ("reason", "reviewed"), ("through", &through), ("seen", &seen)]))
            .await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/checks"), "{}", r.body);
    assert!(!send(get("/checks", &web_checker)).await.body.contains(&format!("id=\"stops-{p}\"")));
    assert_eq!(send(with_token("GET", &stops, &researcher, None)).await.json()["left"].as_u64(), Some(2));
}
