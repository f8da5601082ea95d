//! The public transparency register (issue 6) over HTTP: the page, the JSON with inclusion
//! proofs checked independently against the signed head, the CSV, and outcome reports.

mod common;
use common::*;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use niji_accounts::{Accounts, AccountsConfig, NewAccount, TotpSetup};
use niji_applications::{publish_defaults, set_consent_scope, Actor};
use niji_core::{AuditEvent, AuditSink, Role};
use niji_instance::Instance;
use niji_review::{ConsentScope, PurposeCategory, RecipientKind};
use niji_server::{router, AppState, ServerConfig};
use std::sync::Arc;
use time::OffsetDateTime;

const PASSWORD: &str = "register-test-password-1";

struct App {
    _dir: tempfile::TempDir,
    router: axum::Router,
    accounts: Arc<Accounts>,
    instance: Arc<Instance>,
}

async fn send(app: &App, req: Request<Body>) -> Reply {
    send_to(&app.router, req).await
}

fn api_json(method: &str, uri: &str, token: &str, body: &serde_json::Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn hex(v: &serde_json::Value) -> Vec<u8> {
    ::hex::decode(v.as_str().unwrap()).unwrap()
}

fn hash(v: &serde_json::Value) -> [u8; 32] {
    hex(v).try_into().unwrap()
}

/// An account with a role and an organization; returns (user id, TOTP secret, API token).
async fn member(app: &App, username: &str, display_name: &str, role: Role, organization: Option<&str>) -> (i64, String, String) {
    let created = app
        .accounts
        .create_account(
            NewAccount {
                username: username.into(),
                display_name: display_name.into(),
                organization: organization.map(|o| (o.to_string(), "academia".to_string())),
                roles: vec![role],
                password: PASSWORD.into(),
                totp: TotpSetup::EnrolNow,
            },
            "cli:test",
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    let token = app.accounts.create_api_token(created.user_id, "test", "cli:test", OffsetDateTime::now_utc()).await.unwrap();
    (created.user_id, created.totp.unwrap().secret_base32, token)
}

async fn sign_in_as(app: &App, username: &str, secret: &str) -> String {
    staff_sign_in(&app.router, username, PASSWORD, secret).await
}

/// What the tests work with: the named researcher (`suzuki`), another researcher (`tanaka`)
/// and the permit a case-1 application got at once.
struct World {
    app: App,
    researcher: (i64, String, String),
    other: (i64, String, String),
    permit: i64,
}

/// A committed dataset `ehr` (consent: academic research on diabetes by academia and
/// hospitals), published criteria and tariff, an accredited researcher whose case-1
/// application (through the API) got its permit at once.
async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let instance = Arc::new(Instance::init(dir.path(), "cli:test").await.unwrap());
    let accounts = Arc::new(Accounts::new(instance.store.clone(), instance.audit_sink(), instance.accounts_key(), AccountsConfig::default()));
    let state = AppState::new(instance.clone(), accounts.clone(), ServerConfig::default());
    let app = App { _dir: dir, router: router(state), accounts, instance };
    let researcher = member(&app, "suzuki", "鈴木 一郎", Role::Researcher, Some("東都大学")).await;
    let other = member(&app, "tanaka", "田中 花子", Role::Researcher, Some("西都大学")).await;
    let operator = member(&app, "ops", "運用 担当", Role::Operator, None).await;

    let store = &app.instance.store;
    let holder = store.create_organization("病院", "hospital", 0).await.unwrap();
    let dataset = store
        .create_dataset(
            &niji_store::NewDataset {
                name: "ehr",
                holder_id: holder,
                kind: "ehr",
                title_ja: "電子カルテ",
                title_en: "EHR",
                description_ja: "",
                description_en: "",
            },
            0,
        )
        .await
        .unwrap();
    let (version, _) = store.begin_dataset_version(dataset, "test", 0).await.unwrap();
    store.commit_dataset_version(&niji_store::VersionCommit { version_id: version, committed_at: 1, ..Default::default() }).await.unwrap();
    let op = Actor::load(store, operator.0).await.unwrap();
    publish_defaults(&app.instance, &op).await.unwrap();
    let scope = ConsentScope {
        purposes: vec![PurposeCategory::AcademicResearch],
        diseases: vec!["E11".into()],
        recipient_kinds: vec![RecipientKind::Academia, RecipientKind::Hospital],
        recipients: vec![],
    };
    set_consent_scope(&app.instance, &op, "ehr", &scope).await.unwrap();
    store
        .add_accreditation(
            &niji_store::NewAccreditation {
                user_id: researcher.0,
                course: "研究倫理",
                completed_on: "2026-01-10",
                expires_on: "2099-01-09",
                recorded_by: "test",
            },
            0,
        )
        .await
        .unwrap();

    let form = serde_json::json!({
        "title": "2型糖尿病の治療経過",
        "purpose": "治療薬の切替えと予後",
        "purpose_category": "academic_research",
        "diseases": ["E11"],
        "recipients": [{"organization": "東都大学", "kind": "academia", "similar_regulation": true}],
        "track": "visiting",
        "variables": [
            {"dataset": "ehr", "table": "conditions", "column": "code", "justification": "病名"},
            {"dataset": "ehr", "table": "medications", "column": "code", "justification": "処方"}
        ],
        "analysis_plan": "Cox 比例ハザードモデル",
        "software": [{"name": "R", "version": "4.4"}],
        "duration_months": 12,
        "researchers": [researcher.0],
        "expected_population": 50000
    });
    let r = send(&app, api_json("POST", "/api/v1/applications", &researcher.2, &form)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.json()["id"].as_i64().unwrap();
    let r = send(&app, api_json("POST", &format!("/api/v1/applications/{id}/submit"), &researcher.2, &serde_json::json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["status"], "notified");
    let permit = r.json()["permit"].as_i64().unwrap();
    World { app, researcher, other, permit }
}

/// A released run of the permit, logged as the analysis crate would.
async fn release(w: &World, finished_at: i64) -> i64 {
    let store = &w.app.instance.store;
    let run = store
        .insert_analysis_run(&niji_store::NewAnalysisRun {
            permit_id: w.permit,
            user_id: w.researcher.0,
            kind: "query",
            code_sha256: "ab",
            outcome: "released",
            registry_version: 0,
            excluded_persons: 3,
            datasets: r#"[{"dataset":"ehr","version":1}]"#,
            started_at: finished_at - 2,
            finished_at,
        })
        .await
        .unwrap();
    let event =
        AuditEvent::new(format!("user:{}", w.researcher.0), OffsetDateTime::now_utc(), "analysis.query.released", format!("permit:{}", w.permit))
            .with_data(serde_json::json!({"run": run}));
    let index = w.app.instance.record(&event).unwrap();
    store.set_analysis_run_log_index(run, index as i64).await.unwrap();
    run
}

fn outcome_json(reference: &str, published_on: &str) -> serde_json::Value {
    serde_json::json!({"kind": "paper", "title": "糖尿病治療薬の切替えと予後: 全国データ", "reference": reference, "published_on": published_on})
}

async fn register(w: &World) -> serde_json::Value {
    let r = send(&w.app, get("/api/v1/register", "")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()
}

/// Every entry's proof, checked as an outsider would (signature of the head, RFC 6962
/// inclusion of the leaf), and against the log's own bytes and `niji log proof`'s JSON.
fn check_proofs(w: &World, doc: &serde_json::Value) -> usize {
    use niji_instance::ed25519_dalek::{Signature, Verifier, VerifyingKey};
    let head = &doc["signed_head"];
    let size = head["tree_size"].as_u64().unwrap();
    let key = VerifyingKey::from_bytes(&hash(&head["public_key"])).unwrap();
    key.verify(&hex(&head["signed_message"]), &Signature::from_slice(&hex(&head["signature"])).unwrap()).unwrap();
    assert_eq!(&hex(&head["signed_message"])[18..], hex(&head["root_hash"]).as_slice());
    assert_eq!(key.as_bytes(), w.app.instance.log().verifying_key().as_bytes());
    let mut checked = 0;
    for list in ["permits", "releases", "outcomes"] {
        for entry in doc[list].as_array().unwrap() {
            let index = entry["log_index"].as_u64().unwrap_or_else(|| panic!("{list} entry without a log index: {entry}"));
            let p = &entry["proof"];
            assert_eq!((p["leaf_index"].as_u64(), p["tree_size"].as_u64()), (Some(index), Some(size)));
            assert_eq!(p["root_hash"], head["root_hash"]);
            // Independent: the leaf and the path reach the signed root.
            let path: Vec<[u8; 32]> = p["audit_path"].as_array().unwrap().iter().map(hash).collect();
            let leaf = hash(&p["leaf_hash"]);
            assert!(niji_log::merkle::verify_inclusion(&leaf, index, size, &path, &hash(&head["root_hash"])), "{list} {index}");
            // The leaf is the log's entry, and the proof is `niji log proof`'s JSON.
            let bytes = w.app.instance.log().entry(index).unwrap();
            assert_eq!(niji_log::merkle::leaf_hash(&bytes), leaf);
            let event = AuditEvent::from_bytes(&bytes).unwrap();
            assert_eq!(
                (entry["log_entry"]["action"].as_str(), entry["log_entry"]["object"].as_str()),
                (Some(event.action.as_str()), Some(event.object.as_str()))
            );
            let wire: serde_json::Value =
                serde_json::from_str(&niji_server::wire::inclusion_proof(&w.app.instance.log().inclusion_proof(index, Some(size)).unwrap())).unwrap();
            assert_eq!(&wire, p);
            checked += 1;
        }
    }
    checked
}

#[tokio::test(flavor = "multi_thread")]
async fn the_register_lists_each_permit_release_and_outcome_with_a_proof_that_verifies() {
    let w = world().await;
    release(&w, 1_790_000_000).await;
    let r = send(
        &w.app,
        api_json("POST", &format!("/api/v1/permits/{}/outcomes", w.permit), &w.researcher.2, &outcome_json("10.1234/niji.2026.7", "2026-10-01")),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!((r.json()["permit_id"].as_i64(), r.json()["kind"].as_str()), (Some(w.permit), Some("paper")));

    let doc = register(&w).await;
    assert_eq!(check_proofs(&w, &doc), 3);
    let p = &doc["permits"][0];
    assert_eq!(doc["permits"].as_array().unwrap().len(), 1);
    assert_eq!(
        (p["id"].as_i64(), p["status"].as_str(), p["tier"].as_str(), p["case"].as_u64(), p["purpose"].as_str()),
        (Some(w.permit), Some("active"), Some("notification"), Some(1), Some("治療薬の切替えと予後"))
    );
    assert_eq!(p["recipient_organizations"], serde_json::json!(["東都大学"]));
    assert_eq!(p["datasets"], serde_json::json!(["ehr"]));
    assert_eq!(p["log_entry"]["action"], "permit.issued");
    assert!(p["decided_at"].is_string() && p["decision_days"].is_number(), "a notification is decided when accepted: {p}");
    assert_eq!(doc["releases"][0]["log_entry"]["action"], "analysis.query.released");
    assert_eq!(doc["outcomes"][0]["log_entry"]["action"], "outcome.reported");
    assert_eq!(doc["statistics"]["decision_days_by_tier"][0]["tier"], "notification");
    assert_eq!(doc["statistics"]["releases_by_month"], serde_json::json!([{"month": "2026-09", "releases": 1}]));

    // Nothing personal: no researcher names, user names or account ids, no person counts.
    let text = doc.to_string();
    for personal in ["suzuki", "鈴木", "tanaka", "user:", "excluded", "reported_by", "display_name"] {
        assert!(!text.contains(personal), "{personal} in the register: {text}");
    }

    // The shape, with what changes from run to run redacted (keys kept).
    let mut settings = insta::Settings::clone_current();
    for field in ["tree_size", "timestamp", "timestamp_utc", "root_hash", "signature", "signed_message", "public_key"] {
        settings.add_redaction(&format!(".signed_head.{field}"), "[head]");
    }
    for list in ["permits", "releases", "outcomes"] {
        for field in ["leaf_index", "tree_size", "leaf_hash", "audit_path", "root_hash"] {
            settings.add_redaction(&format!(".{list}[].proof.{field}"), "[proof]");
        }
        settings.add_redaction(&format!(".{list}[].log_index"), "[index]");
        settings.add_redaction(&format!(".{list}[].log_entry.time"), "[time]");
    }
    for (selector, replacement) in [
        (".generated_at", "[time]"),
        (".permits[].starts_on", "[date]"),
        (".permits[].expires_on", "[date]"),
        (".permits[].submitted_at", "[time]"),
        (".permits[].decided_at", "[time]"),
        (".permits[].issued_at", "[time]"),
        (".permits[].decision_days", "[days]"),
        (".outcomes[].reported_at", "[time]"),
        (".statistics.decision_days_by_tier[].median_days", "[days]"),
        (".statistics.decision_days_by_tier[].p90_days", "[days]"),
        (".statistics.median_decision_days", "[days]"),
    ] {
        settings.add_redaction(selector, replacement);
    }
    settings.bind(|| insta::assert_json_snapshot!("register_json", doc));

    // The OpenAPI document describes the register and outcome reports.
    let api = send(&w.app, get("/api/v1/openapi.json", "")).await.json();
    for path in ["/api/v1/register", "/api/v1/register.csv", "/api/v1/permits/{id}/outcomes"] {
        assert!(api["paths"][path].is_object(), "{path} undocumented");
    }
    assert!(api["components"]["schemas"]["RegisterBody"].is_object());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_csv_has_one_row_per_permit_with_an_english_header_and_a_bom() {
    let w = world().await;
    let r = send(&w.app, get("/api/v1/register.csv", "")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers.get(header::CONTENT_TYPE).unwrap(), "text/csv; charset=utf-8");
    assert!(r.body.starts_with('\u{feff}'), "UTF-8 with a byte order mark");
    let lines: Vec<&str> = r.body.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.body);
    assert!(lines[0].starts_with("permit_id,application_id,version,status,tier,case,purpose_category,purpose,recipient_organizations,datasets,"));
    let row: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(
        &row[..10],
        &[w.permit.to_string().as_str(), "1", "1", "active", "notification", "1", "academic_research", "治療薬の切替えと予後", "東都大学", "ehr"]
    );
    assert!(!r.body.contains("suzuki") && !r.body.contains("鈴木"));
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_named_researcher_reports_outcomes_and_bad_ones_change_nothing() {
    let w = world().await;
    let uri = format!("/api/v1/permits/{}/outcomes", w.permit);
    let good = outcome_json("https://example.org/papers/42", "2026-10-01");
    let size = w.app.instance.log().size();

    // Another researcher: refused with a stable code; nothing stored or logged.
    let r = send(&w.app, api_json("POST", &uri, &w.other.2, &good)).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{}", r.body);
    // A bad DOI and a date in the future: located problems, the input never echoed.
    let r = send(&w.app, api_json("POST", &uri, &w.researcher.2, &outcome_json("10.12/secret-typo", "2999-01-01"))).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")), "{}", r.body);
    assert_eq!(
        r.json()["error"]["problems"],
        serde_json::json!([{"field": "reference", "reason": "not_doi_or_url"}, {"field": "published_on", "reason": "in_future"}])
    );
    assert!(!r.body.contains("secret-typo"));
    let r = send(&w.app, api_json("POST", &uri, &w.researcher.2, &outcome_json("10.1234/x", "1 October"))).await;
    assert_eq!(r.json()["error"]["problems"], serde_json::json!([{"field": "published_on", "reason": "format"}]));
    let r = send(&w.app, api_json("POST", &format!("/api/v1/permits/{}/outcomes", w.permit + 50), &w.researcher.2, &good)).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let r = send(&w.app, api_json("POST", &uri, "niji_nope", &good)).await;
    assert_eq!(r.json()["error"]["code"], "unauthorized");
    assert_eq!(w.app.instance.log().size(), size, "refused reports are not logged");
    assert_eq!(register(&w).await["outcomes"], serde_json::json!([]));

    // The named researcher, through the API and the form on /permits.
    let r = send(&w.app, api_json("POST", &uri, &w.researcher.2, &good)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let session = sign_in_as(&w.app, "suzuki", &w.researcher.1).await;
    let permits = send(&w.app, get("/permits", &session)).await;
    assert!(permits.body.contains(&format!("id=\"report-{}\"", w.permit)), "{}", permits.body);
    let csrf = hidden_csrf(&permits.body);
    let form = |csrf: &str| -> Vec<(&'static str, String)> {
        vec![
            ("csrf", csrf.to_string()),
            ("kind", "product".into()),
            ("title", "服薬支援アプリ".into()),
            ("reference", "https://example.com/app".into()),
            ("published_on", "2026-11-01".into()),
        ]
    };
    let post = |cookies: &str, fields: &[(&'static str, String)]| {
        let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post_form(&format!("/permits/{}/outcomes", w.permit), cookies, &refs)
    };
    let r = send(&w.app, post(&session, &form("wrong"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(&w.app, post(&session, &form(&csrf))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("id=\"outcome-reported\""), "{}", r.body);
    // The other researcher sees no form (the permit is not theirs) and the portal refuses too.
    let other = sign_in_as(&w.app, "tanaka", &w.other.1).await;
    let page = send(&w.app, get("/permits", &other)).await;
    assert!(!page.body.contains("/outcomes"));
    let r = send(&w.app, post(&other, &form(&hidden_csrf(&page.body)))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let doc = register(&w).await;
    let outcomes = doc["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), 2, "{doc}");
    assert_eq!((outcomes[0]["reference"].as_str(), outcomes[1]["kind"].as_str()), (Some("https://example.org/papers/42"), Some("product")));
    assert_eq!(check_proofs(&w, &doc), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_public_page_shows_permits_and_statistics_and_names_no_researcher() {
    let w = world().await;
    release(&w, 1_790_000_000).await;
    let r = send(
        &w.app,
        api_json("POST", &format!("/api/v1/permits/{}/outcomes", w.permit), &w.researcher.2, &outcome_json("10.1234/abcd", "2026-10-01")),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let page = send(&w.app, get("/register", "")).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    assert!(body.contains(&format!("id=\"register-permit-{}\"", w.permit)), "{body}");
    for shown in [
        "透明性登録簿",
        "治療薬の切替えと予後",
        "東都大学",
        "ehr",
        "届出",
        "糖尿病治療薬の切替えと予後: 全国データ",
        "https://doi.org/10.1234/abcd",
        "集計クエリ",
    ] {
        assert!(body.contains(shown), "{shown} missing: {body}");
    }
    assert!(body.contains("id=\"decision-days\"") && body.contains("id=\"releases-by-month\"") && body.contains("id=\"optout-rate\""));
    for personal in ["suzuki", "鈴木", "一郎", "tanaka", "user:"] {
        assert!(!body.contains(personal), "{personal} on the public page");
    }
    let en = send(&w.app, get("/register", "niji_lang=en")).await;
    assert!(
        en.body.contains("Transparency register") && en.body.contains("Opt-out rate per dataset") && en.body.contains("notification"),
        "{}",
        en.body
    );
}
