//! Permit steps beyond the first issue, in the portal (`/permits`) and the JSON API
//! (`/api/v1/permits/{id}/…`): operators suspend, resume and revoke; the chair amends a permit
//! into a new version granting part of the request under another preset (the old version's key
//! destroyed with a deletion certificate). Wrong roles, missing or forged CSRF tokens and bad
//! scopes are refused and change nothing (store and log); every step is in the transparency log.

mod common;
use common::world::{account, app, App};
use common::*;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use niji_accounts::{Accounts, AccountsConfig};
use niji_applications::permit_key_id;
use niji_core::{AuditEvent, Role};
use niji_instance::Instance;
use time::OffsetDateTime;

fn events(instance: &Instance) -> Vec<AuditEvent> {
    let log = instance.log();
    (0..log.size()).map(|i| AuditEvent::from_bytes(&log.entry(i).unwrap()).unwrap()).collect()
}

fn logged(instance: &Instance, action: &str, object: &str) -> usize {
    events(instance).iter().filter(|e| e.action == action && e.object == object).count()
}

fn accounts(app: &App) -> Accounts {
    Accounts::new(app.instance.store.clone(), app.instance.audit_sink(), app.instance.accounts_key(), AccountsConfig::default())
}

/// A committee chair (signed in through the portal) and the chair's account id.
async fn chair(app: &mut App) -> (i64, String) {
    let (id, secret) = account(&accounts(app), "chair", vec![Role::CommitteeChair]).await;
    app.secrets.insert("chair", secret);
    (id, app.sign_in("chair").await)
}

async fn token(app: &App, user: i64) -> String {
    accounts(app).create_api_token(user, "test", "cli:test", OffsetDateTime::now_utc()).await.unwrap()
}

async fn user_id(app: &App, name: &str) -> i64 {
    app.instance.store.user_by_username(name).await.unwrap().unwrap().id
}

fn api(method: &str, uri: &str, token: &str, body: Option<serde_json::Value>) -> Request<Body> {
    let r = Request::builder().method(method).uri(uri).header(header::AUTHORIZATION, format!("Bearer {token}"));
    match body {
        Some(b) => r.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())).unwrap(),
        None => r.body(Body::empty()).unwrap(),
    }
}

async fn status_of(app: &App, permit: i64) -> String {
    app.instance.store.permit(permit).await.unwrap().unwrap().status
}

async fn permit_count(app: &App) -> usize {
    app.instance.store.permits().await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_suspend_resume_and_revoke_in_the_portal() {
    let app = app().await;
    let p = app.permit;
    let operator = app.sign_in("operator").await;
    let researcher = app.sign_in("researcher").await;

    let page = send_to(&app.router, get("/permits", &operator)).await;
    assert!(page.body.contains(&format!("action=\"/permits/{p}/suspend\"")), "{}", page.body);
    assert!(!page.body.contains(&format!("action=\"/permits/{p}/resume\"")));
    let csrf_o = hidden_csrf(&page.body);
    let page = send_to(&app.router, get("/permits", &researcher)).await;
    assert!(!page.body.contains("/suspend\"") && !page.body.contains("/amend\""), "researchers neither suspend nor amend");
    let csrf_r = hidden_csrf(&page.body);

    // Refused: the wrong role, a forged or missing token. Nothing changes, nothing is logged.
    let size = app.instance.log().size();
    let r = send_to(&app.router, post_form(&format!("/permits/{p}/suspend"), &researcher, &[("csrf", &csrf_r)])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = send_to(&app.router, post_form(&format!("/permits/{p}/suspend"), &operator, &[("csrf", &csrf_r)])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "another session's token is forged");
    let r = send_to(&app.router, post_form(&format!("/permits/{p}/suspend"), &operator, &[])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no token");
    let r = send_to(&app.router, post_form(&format!("/permits/{p}/resume"), &operator, &[("csrf", &csrf_o)])).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "an active permit is not resumed");
    assert!(r.body.contains("id=\"error\"") && r.body.contains("何も変更していません"), "{}", r.body);
    let r = send_to(&app.router, post_form(&format!("/permits/{p}/revoke"), &operator, &[("csrf", &csrf_o), ("reason", "  ")])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a revocation needs a reason");
    let r = send_to(&app.router, post_form(&format!("/permits/{p}/revoke"), &researcher, &[("csrf", &csrf_r), ("reason", "違反")])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send_to(&app.router, post_form(&format!("/permits/{p}/revoke"), &operator, &[("reason", "違反")])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no token");
    assert_eq!(status_of(&app, p).await, "active");
    assert_eq!(app.instance.log().size(), size, "nothing refused reaches the log");

    // Suspend, then resume.
    let r = send_to(&app.router, post_form(&format!("/permits/{p}/suspend"), &operator, &[("csrf", &csrf_o)])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("id=\"notice\"") && r.body.contains(&format!("action=\"/permits/{p}/resume\"")), "{}", r.body);
    assert_eq!(status_of(&app, p).await, "suspended");
    let r = send_to(&app.router, post_form(&format!("/permits/{p}/suspend"), &operator, &[("csrf", &csrf_o)])).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "suspended twice");
    let en = format!("{operator}; niji_lang=en");
    let r = send_to(&app.router, post_form(&format!("/permits/{p}/resume"), &en, &[("csrf", &csrf_o)])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("The permit was resumed."), "{}", r.body);
    assert_eq!(status_of(&app, p).await, "active");
    assert_eq!(logged(&app.instance, "permit.suspended", &format!("permit:{p}")), 1);
    assert_eq!(logged(&app.instance, "permit.resumed", &format!("permit:{p}")), 1);

    // Revoke: the key is destroyed and the certificate shown.
    let application = app.instance.store.permit(p).await.unwrap().unwrap().application_id;
    let r = send_to(&app.router, post_form(&format!("/permits/{p}/revoke"), &operator, &[("csrf", &csrf_o), ("reason", "利用規約違反")])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("id=\"certificate\"") && r.body.contains(&permit_key_id(application, 1)), "{}", r.body);
    assert_eq!(status_of(&app, p).await, "revoked");
    assert!(app.instance.store.data_key(&permit_key_id(application, 1)).await.unwrap().is_none());
    let certificates = app.instance.store.deletion_certificates_for_permit(p).await.unwrap();
    assert_eq!(certificates.len(), 1);
    assert!(certificates[0].log_index.is_some());
    assert_eq!(logged(&app.instance, "permit.revoked", &format!("permit:{p}")), 1);
    assert_eq!(logged(&app.instance, "permit.key_destroyed", &format!("permit:{p}")), 1);
    // A closed permit has no forms and refuses every step.
    let size = app.instance.log().size();
    for step in ["suspend", "resume"] {
        let r = send_to(&app.router, post_form(&format!("/permits/{p}/{step}"), &operator, &[("csrf", &csrf_o)])).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{step}");
    }
    assert_eq!(app.instance.log().size(), size);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chair_amends_a_permit_in_the_portal() {
    let mut app = app().await;
    let p = app.permit;
    let application = app.instance.store.permit(p).await.unwrap().unwrap().application_id;
    let (_, chair) = chair(&mut app).await;
    let operator = app.sign_in("operator").await;
    let researcher = app.sign_in("researcher").await;

    let page = send_to(&app.router, get("/permits", &chair)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(&format!("action=\"/permits/{p}/amend\"")), "{}", page.body);
    assert!(page.body.contains("value=\"ehr.conditions.code\" checked") && page.body.contains("value=\"ehr.patients.sex\" checked"), "{}", page.body);
    assert!(!page.body.contains("/revoke\"") && !page.body.contains("/suspend\""), "the chair neither revokes nor suspends");
    let csrf_c = hidden_csrf(&page.body);
    let csrf_o = hidden_csrf(&send_to(&app.router, get("/permits", &operator)).await.body);
    let csrf_r = hidden_csrf(&send_to(&app.router, get("/permits", &researcher)).await.body);
    assert!(!send_to(&app.router, get("/permits", &operator)).await.body.contains("/amend\""), "operators do not amend");

    let amend = |csrf: &str| {
        vec![("csrf", csrf.to_string()), ("scope", "explicit".into()), ("variable", "ehr.conditions.code".into()), ("output_preset", "acro".into())]
    };
    let post = |cookie: &str, form: Vec<(&str, String)>| {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post_form(&format!("/permits/{p}/amend"), cookie, &form)
    };

    // Refused: an operator, a researcher, a forged token, no token, a variable that was not
    // requested, an unknown preset. Nothing changes.
    let size = app.instance.log().size();
    let r = send_to(&app.router, post(&operator, amend(&csrf_o))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = send_to(&app.router, post(&researcher, amend(&csrf_r))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send_to(&app.router, post(&chair, amend(&csrf_o))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "forged token");
    let r = send_to(&app.router, post(&chair, amend(&csrf_c)[1..].to_vec())).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no token");
    let mut wider = amend(&csrf_c);
    wider.push(("variable", "ehr.patients.birth_date".into()));
    let r = send_to(&app.router, post(&chair, wider)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("data-field=\"variables[1]\"") && r.body.contains("変更の内容に不備"), "{}", r.body);
    let mut bad_preset = amend(&csrf_c);
    bad_preset[3].1 = "<script>".into();
    let r = send_to(&app.router, post(&chair, bad_preset)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("data-field=\"output_preset\"") && !r.body.contains("<script>"), "{}", r.body);
    assert_eq!(status_of(&app, p).await, "active");
    assert_eq!(permit_count(&app).await, 1);
    assert!(app.instance.store.data_key(&permit_key_id(application, 1)).await.unwrap().is_some());
    assert_eq!(app.instance.log().size(), size, "nothing refused reaches the log");

    // The chair approves part of the request under another preset: a new version.
    let r = send_to(&app.router, post(&chair, amend(&csrf_c))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("id=\"notice\"") && r.body.contains("id=\"certificate\""), "{}", r.body);
    let permits = niji_applications::list_permits(&app.instance.store).await.unwrap();
    let new = permits.iter().find(|x| x.id != p).expect("a new version");
    assert!(r.body.contains(&format!("#{}", new.id)), "the notice names the new version");
    assert_eq!((new.version, new.status.as_str(), new.policy.output_preset.as_str()), (2, "active", "acro"));
    let columns: Vec<String> = new.policy.columns().iter().map(|c| format!("{}.{}.{}", c.dataset, c.table, c.column)).collect();
    assert_eq!(columns, ["ehr.conditions.code"]);
    assert_eq!(status_of(&app, p).await, "superseded");
    assert!(app.instance.store.data_key(&permit_key_id(application, 1)).await.unwrap().is_none(), "the old key is destroyed");
    assert!(app.instance.store.data_key(&permit_key_id(application, 2)).await.unwrap().is_some());
    let certificates = app.instance.store.deletion_certificates_for_permit(p).await.unwrap();
    assert_eq!((certificates.len(), certificates[0].reason.as_str()), (1, "superseded"));
    assert_eq!(logged(&app.instance, "permit.amended", &format!("permit:{}", new.id)), 1);
    assert_eq!(logged(&app.instance, "permit.key_destroyed", &format!("permit:{p}")), 1);
    // The new version's form shows what is granted now.
    let page = send_to(&app.router, get("/permits", &chair)).await;
    assert!(page.body.contains("value=\"ehr.patients.sex\">") && page.body.contains("value=\"acro\" selected"), "{}", page.body);
    // The superseded version is closed.
    let size = app.instance.log().size();
    let r = send_to(&app.router, post(&chair, amend(&csrf_c))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(app.instance.log().size(), size);
}

#[tokio::test(flavor = "multi_thread")]
async fn permits_are_suspended_amended_and_revoked_through_the_api() {
    let mut app = app().await;
    let p = app.permit;
    let application = app.instance.store.permit(p).await.unwrap().unwrap().application_id;
    let (chair_id, _) = chair(&mut app).await;
    let chair = token(&app, chair_id).await;
    let operator = token(&app, app.operator).await;
    let researcher = token(&app, user_id(&app, "researcher").await).await;
    let amend = serde_json::json!({"variables": [{"dataset": "ehr", "table": "conditions", "column": "code"}], "output_preset": "strict"});

    // Refused: no token, the wrong roles, a malformed body, an unknown permit, a wider scope.
    let size = app.instance.log().size();
    let r = send_to(&app.router, Request::post(format!("/api/v1/permits/{p}/suspend")).body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    for (step, who) in [("suspend", &researcher), ("suspend", &chair), ("resume", &researcher)] {
        let r = send_to(&app.router, api("POST", &format!("/api/v1/permits/{p}/{step}"), who, None)).await;
        assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{step}: {}", r.body);
    }
    for who in [&researcher, &operator] {
        let r = send_to(&app.router, api("POST", &format!("/api/v1/permits/{p}/amend"), who, Some(amend.clone()))).await;
        assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{}", r.body);
    }
    let r = send_to(&app.router, api("POST", &format!("/api/v1/permits/{p}/revoke"), &researcher, Some(serde_json::json!({"reason": "x"})))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send_to(&app.router, api("POST", &format!("/api/v1/permits/{p}/revoke"), &operator, Some(serde_json::json!({"reason": " "})))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["problems"][0], serde_json::json!({"field": "reason", "reason": "required"}));
    let r = send_to(&app.router, api("POST", &format!("/api/v1/permits/{p}/amend"), &chair, None)).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")));
    let r = send_to(&app.router, api("POST", "/api/v1/permits/99999/suspend", &operator, None)).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let r = send_to(&app.router, api("POST", "/api/v1/permits/99999/amend", &chair, Some(amend.clone()))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let wider = serde_json::json!({"variables": [{"dataset": "ehr", "table": "patients", "column": "birth_date"}]});
    let r = send_to(&app.router, api("POST", &format!("/api/v1/permits/{p}/amend"), &chair, Some(wider))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.json()["error"]["problems"][0], serde_json::json!({"field": "variables[0]", "reason": "not_requested"}));
    let r = send_to(&app.router, api("POST", &format!("/api/v1/permits/{p}/amend"), &chair, Some(serde_json::json!({"output_preset": "lax"})))).await;
    assert_eq!(r.json()["error"]["problems"][0], serde_json::json!({"field": "output_preset", "reason": "unknown_value"}));
    assert!(!r.body.contains("lax"), "the value is never echoed");
    assert_eq!((status_of(&app, p).await.as_str(), permit_count(&app).await), ("active", 1));
    assert_eq!(app.instance.log().size(), size, "nothing refused reaches the log");

    // Suspend and resume.
    let r = send_to(&app.router, api("POST", &format!("/api/v1/permits/{p}/suspend"), &operator, None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json(), serde_json::json!({"permit_id": p, "status": "suspended"}));
    let r = send_to(&app.router, api("POST", &format!("/api/v1/permits/{p}/suspend"), &operator, None)).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("conflict")));
    let r = send_to(&app.router, api("POST", &format!("/api/v1/permits/{p}/resume"), &operator, None)).await;
    assert_eq!(r.json()["status"], "active", "{}", r.body);
    assert_eq!(logged(&app.instance, "permit.suspended", &format!("permit:{p}")), 1);
    assert_eq!(logged(&app.instance, "permit.resumed", &format!("permit:{p}")), 1);

    // The chair amends: a new version, the old key destroyed with a certificate.
    let r = send_to(&app.router, api("POST", &format!("/api/v1/permits/{p}/amend"), &chair, Some(amend.clone()))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let body = r.json();
    let new = body["permit_id"].as_i64().unwrap();
    assert_eq!((body["supersedes"].as_i64(), body["version"].as_i64(), body["status"].as_str()), (Some(p), Some(2), Some("active")));
    let certificate = body["certificate"].as_i64().unwrap();
    let row = app.instance.store.deletion_certificates_for_permit(p).await.unwrap().pop().unwrap();
    assert_eq!((row.id, row.reason.as_str(), row.key_id), (certificate, "superseded", permit_key_id(application, 1)));
    assert_eq!(status_of(&app, p).await, "superseded");
    let policy: niji_review::PermitPolicy = serde_json::from_str(&app.instance.store.permit(new).await.unwrap().unwrap().policy).unwrap();
    assert_eq!((policy.output_preset.as_str(), policy.columns().len()), ("acro", 1), "strict is kept under its canonical name");
    assert!(app.instance.store.data_key(&permit_key_id(application, 1)).await.unwrap().is_none());
    assert_eq!(logged(&app.instance, "permit.amended", &format!("permit:{new}")), 1);
    assert_eq!(logged(&app.instance, "permit.key_destroyed", &format!("permit:{p}")), 1);
    let r = send_to(&app.router, api("POST", &format!("/api/v1/permits/{p}/revoke"), &operator, Some(serde_json::json!({"reason": "x"})))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "the superseded version is closed");

    // Revoke the new version.
    let r =
        send_to(&app.router, api("POST", &format!("/api/v1/permits/{new}/revoke"), &operator, Some(serde_json::json!({"reason": "利用規約違反"}))))
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = r.json();
    assert_eq!((body["status"].as_str(), body["permit_id"].as_i64()), (Some("revoked"), Some(new)));
    let row = app.instance.store.deletion_certificates_for_permit(new).await.unwrap().pop().unwrap();
    assert_eq!((Some(row.id), row.reason.as_str()), (body["certificate"].as_i64(), "利用規約違反"));
    assert!(app.instance.store.data_key(&permit_key_id(application, 2)).await.unwrap().is_none());
    assert_eq!(logged(&app.instance, "permit.revoked", &format!("permit:{new}")), 1);
    assert!(events(&app.instance).iter().all(|e| !serde_json::to_string(e).unwrap().contains("利用規約違反")), "the reason never reaches the log");
}
