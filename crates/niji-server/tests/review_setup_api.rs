//! Operators' review set-up through the JSON API (`/api/v1/review/…`), the same steps as the
//! portal's `/admin/review` forms: criteria and tariff from TOML, a dataset's consent scope,
//! accreditations, committees, members and their deactivation. Other roles are refused; refused
//! requests change nothing (store and log) and answer with stable reasons that never echo what
//! was sent; every change is in the transparency log.

mod common;
use common::world::{app, App};
use common::*;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use niji_accounts::{Accounts, AccountsConfig};
use niji_core::AuditEvent;
use time::OffsetDateTime;

fn actions(app: &App) -> Vec<String> {
    let log = app.instance.log();
    (0..log.size()).map(|i| AuditEvent::from_bytes(&log.entry(i).unwrap()).unwrap().action).collect()
}

async fn token(app: &App, name: &str) -> String {
    let id = app.instance.store.user_by_username(name).await.unwrap().unwrap().id;
    Accounts::new(app.instance.store.clone(), app.instance.audit_sink(), app.instance.accounts_key(), AccountsConfig::default())
        .create_api_token(id, "test", "cli:test", OffsetDateTime::now_utc())
        .await
        .unwrap()
}

fn post_json(uri: &str, token: &str, body: serde_json::Value) -> Request<Body> {
    Request::post(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn post_toml(uri: &str, token: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/toml")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Status, generic code and reason of a refusal.
fn refusal(r: &Reply) -> (StatusCode, String, String) {
    let j = r.json();
    (r.status, j["error"]["code"].as_str().unwrap_or_default().to_string(), j["error"]["reason"].as_str().unwrap_or_default().to_string())
}

fn is(status: StatusCode, code: &str, reason: &str) -> (StatusCode, String, String) {
    (status, code.to_string(), reason.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_set_up_review_through_the_api() {
    let app = app().await;
    let ops = token(&app, "operator").await;
    let researcher = token(&app, "researcher").await;
    let store = &app.instance.store;
    let criteria = niji_review::DEFAULT_CRITERIA_TOML.replace("version = \"2026.1\"", "version = \"2026.2\"");
    let tariff = niji_review::DEFAULT_TARIFF_TOML.replace("version = \"2026.1\"", "version = \"2026.2\"");

    // Refused, with nothing changed: no token, another role, bad input.
    let size = app.instance.log().size();
    let committees = store.committees().await.unwrap().len();
    let r = send_to(&app.router, Request::post("/api/v1/review/committees").body(Body::from("{}")).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = send_to(&app.router, post_json("/api/v1/review/committees", &researcher, serde_json::json!({"name": "委員会"}))).await;
    assert_eq!(refusal(&r), is(StatusCode::FORBIDDEN, "forbidden", "forbidden"));
    let r = send_to(&app.router, post_toml("/api/v1/review/criteria", &researcher, &criteria)).await;
    assert_eq!(refusal(&r), is(StatusCode::FORBIDDEN, "forbidden", "forbidden"));
    let r = send_to(&app.router, post_toml("/api/v1/review/criteria", &ops, "# 秘密のメモ\nversion = \n")).await;
    assert_eq!(refusal(&r), is(StatusCode::BAD_REQUEST, "bad_request", "toml_syntax"));
    assert_eq!(r.json()["error"]["line"], 2, "{}", r.body);
    assert!(!r.body.contains("秘密のメモ"), "the body is never echoed: {}", r.body);
    let r = send_to(&app.router, post_toml("/api/v1/review/criteria", &ops, "version = \"x\"\n")).await;
    assert_eq!(refusal(&r), is(StatusCode::BAD_REQUEST, "bad_request", "toml_keys"));
    let r = send_to(&app.router, post_toml("/api/v1/review/criteria", &ops, niji_review::DEFAULT_CRITERIA_TOML)).await;
    assert_eq!(refusal(&r), is(StatusCode::CONFLICT, "conflict", "version_exists"));
    let r = send_to(&app.router, post_toml("/api/v1/review/tariff", &ops, niji_review::DEFAULT_TARIFF_TOML)).await;
    assert_eq!(refusal(&r), is(StatusCode::CONFLICT, "conflict", "version_exists"));
    let scope = |dataset: &str, disease: &str| serde_json::json!({"dataset": dataset, "purposes": ["academic_research"], "diseases": ["E11", disease], "recipient_kinds": ["academia"]});
    let r = send_to(&app.router, post_json("/api/v1/review/consent-scopes", &ops, scope("ehr", "ZZZ9秘密"))).await;
    assert_eq!(refusal(&r), is(StatusCode::BAD_REQUEST, "bad_request", "not_icd10"));
    assert_eq!(r.json()["error"]["position"], 2);
    assert!(!r.body.contains("秘密"), "{}", r.body);
    let r = send_to(&app.router, post_json("/api/v1/review/consent-scopes", &ops, scope("nope", "I10"))).await;
    assert_eq!(refusal(&r), is(StatusCode::NOT_FOUND, "not_found", "no_dataset"));
    let r =
        send_to(&app.router, post_json("/api/v1/review/consent-scopes", &ops, serde_json::json!({"dataset": "ehr", "purposes": ["other"]}))).await;
    assert_eq!(refusal(&r), is(StatusCode::BAD_REQUEST, "bad_request", "malformed"));
    let accreditation = |username: &str, completed: &str, expires: &str| serde_json::json!({"username": username, "course": "研究倫理", "completed_on": completed, "expires_on": expires});
    let r = send_to(&app.router, post_json("/api/v1/review/accreditations", &ops, accreditation("nobody", "2026-01-01", "2027-01-01"))).await;
    assert_eq!(refusal(&r), is(StatusCode::BAD_REQUEST, "bad_request", "no_account"));
    let r = send_to(&app.router, post_json("/api/v1/review/accreditations", &ops, accreditation("other", "2026-01-01", "2025-01-01"))).await;
    assert_eq!(refusal(&r), is(StatusCode::BAD_REQUEST, "bad_request", "expiry_before_completion"));
    let r = send_to(&app.router, post_json("/api/v1/review/accreditations", &ops, accreditation("other", "2026-13-01", "2027-01-01"))).await;
    assert_eq!(refusal(&r), is(StatusCode::BAD_REQUEST, "bad_request", "bad_completed_on"));
    let r = send_to(&app.router, post_json("/api/v1/review/committees", &ops, serde_json::json!({"name": "  "}))).await;
    assert_eq!(refusal(&r), is(StatusCode::BAD_REQUEST, "bad_request", "committee_name_required"));
    let r = send_to(&app.router, post_json("/api/v1/review/committees", &ops, serde_json::json!({"title": 1}))).await;
    assert_eq!(refusal(&r), is(StatusCode::BAD_REQUEST, "bad_request", "malformed"));
    let member = serde_json::json!({"username": "checker1", "field": "medicine_science", "gender": "female", "external": true});
    let r = send_to(&app.router, post_json("/api/v1/review/committees/99999/members", &ops, member.clone())).await;
    assert_eq!(refusal(&r), is(StatusCode::NOT_FOUND, "not_found", "no_committee"));
    let r = send_to(&app.router, post_json("/api/v1/review/members/99999/deactivate", &ops, serde_json::json!({}))).await;
    assert_eq!(refusal(&r), is(StatusCode::NOT_FOUND, "not_found", "no_member"));
    assert_eq!(app.instance.log().size(), size, "nothing refused reaches the log");
    assert_eq!(store.committees().await.unwrap().len(), committees);
    assert_eq!(store.latest_review_criteria().await.unwrap().unwrap().version, "2026.1");

    // Accepted: each change in the store and the log.
    let r = send_to(&app.router, post_toml("/api/v1/review/criteria", &ops, &criteria.replace('\n', "\r\n"))).await;
    assert_eq!((r.status, r.json()["version"].as_str()), (StatusCode::CREATED, Some("2026.2")), "{}", r.body);
    assert_eq!(store.latest_review_criteria().await.unwrap().unwrap().version, "2026.2");
    let r = send_to(&app.router, post_toml("/api/v1/review/tariff", &ops, &tariff)).await;
    assert_eq!((r.status, r.json()["version"].as_str()), (StatusCode::CREATED, Some("2026.2")), "{}", r.body);
    let r = send_to(&app.router, post_json("/api/v1/review/consent-scopes", &ops, scope("ehr", "I10"))).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let dataset = store.dataset_by_name("ehr").await.unwrap().unwrap();
    let stored: niji_review::ConsentScope = serde_json::from_str(&store.dataset_consent_scope(dataset.id).await.unwrap().unwrap().scope).unwrap();
    assert_eq!(stored.diseases, ["E11", "I10"]);
    let r = send_to(&app.router, post_json("/api/v1/review/accreditations", &ops, accreditation("other", "2026-01-01", "2027-01-01"))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let other = store.user_by_username("other").await.unwrap().unwrap().id;
    assert_eq!(store.accreditations_for_user(other).await.unwrap().len(), 1);
    let r = send_to(&app.router, post_json("/api/v1/review/committees", &ops, serde_json::json!({"name": "第一審査委員会"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let committee = r.json()["id"].as_i64().unwrap();
    let r = send_to(&app.router, post_json("/api/v1/review/committees", &ops, serde_json::json!({"name": "第一審査委員会"}))).await;
    assert_eq!(refusal(&r), is(StatusCode::CONFLICT, "conflict", "committee_exists"));
    let members = format!("/api/v1/review/committees/{committee}/members");
    let r = send_to(&app.router, post_json(&members, &ops, member.clone())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let member_id = r.json()["id"].as_i64().unwrap();
    let r = send_to(&app.router, post_json(&members, &ops, member.clone())).await;
    assert_eq!(refusal(&r), is(StatusCode::CONFLICT, "conflict", "already_member"));
    let mut bad = member.clone();
    bad["username"] = "".into();
    bad["field"] = "astrology".into();
    bad["name"] = "外部 委員".into();
    let r = send_to(&app.router, post_json(&members, &ops, bad)).await;
    assert_eq!(refusal(&r), is(StatusCode::BAD_REQUEST, "bad_request", "unknown_field"));
    let r = send_to(&app.router, post_json(&members, &ops, serde_json::json!({"field": "general_public", "gender": "male"}))).await;
    assert_eq!(refusal(&r), is(StatusCode::BAD_REQUEST, "bad_request", "member_name_required"));
    assert_eq!(store.active_committee_members(committee).await.unwrap().len(), 1);
    let deactivate = format!("/api/v1/review/members/{member_id}/deactivate");
    let r = send_to(&app.router, post_json(&deactivate, &researcher, serde_json::json!({}))).await;
    assert_eq!(refusal(&r), is(StatusCode::FORBIDDEN, "forbidden", "forbidden"));
    let r = send_to(&app.router, post_json(&deactivate, &ops, serde_json::json!({}))).await;
    assert_eq!(r.json(), serde_json::json!({"member_id": member_id, "committee_id": committee}), "{}", r.body);
    assert!(store.active_committee_members(committee).await.unwrap().is_empty());
    let r = send_to(&app.router, post_json(&deactivate, &ops, serde_json::json!({}))).await;
    assert_eq!(refusal(&r), is(StatusCode::CONFLICT, "conflict", "member_not_active"));

    let logged = actions(&app)[size as usize..].to_vec();
    assert_eq!(
        logged,
        [
            "review.criteria.published",
            "review.tariff.published",
            "dataset.consent_scope.set",
            "accreditation.recorded",
            "committee.created",
            "committee.member_added",
            "committee.member_deactivated"
        ]
    );
}
