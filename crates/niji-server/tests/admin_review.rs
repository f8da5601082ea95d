//! Operators' review set-up in the portal (`/admin/review`): an operator publishes a tariff
//! version, sets a consent scope, accredits a researcher, creates a committee and adds members
//! until the composition check passes; refused forms change nothing and say why; researchers
//! and visitors are kept out; a forged CSRF token is refused; every change is in the
//! transparency log.

mod common;
use common::*;

use axum::http::StatusCode;
use niji_accounts::{Accounts, AccountsConfig, NewAccount, TotpSetup};
use niji_applications::{publish_defaults, Actor};
use niji_core::{AuditEvent, Role};
use niji_instance::Instance;
use niji_review::{ConsentScope, PurposeCategory, RecipientKind};
use niji_server::{router, AppState, ServerConfig};
use std::sync::Arc;
use time::OffsetDateTime;

const PASSWORD: &str = "admin-review-test-password";

struct App {
    _dir: tempfile::TempDir,
    router: axum::Router,
    instance: Arc<Instance>,
    operator: i64,
    researcher: i64,
    operator_cookie: String,
    researcher_cookie: String,
}

async fn account(accounts: &Accounts, name: &str, display: &str, role: Role) -> (i64, String) {
    let created = accounts
        .create_account(
            NewAccount {
                username: name.into(),
                display_name: display.into(),
                organization: Some(("東都大学".into(), "academia".into())),
                roles: vec![role],
                password: PASSWORD.into(),
                totp: TotpSetup::EnrolNow,
            },
            "test",
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    (created.user_id, created.totp.unwrap().secret_base32)
}

async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let instance = Arc::new(Instance::init(&dir.path().join("i"), "test").await.unwrap());
    let accounts = Arc::new(Accounts::new(instance.store.clone(), instance.audit_sink(), instance.accounts_key(), AccountsConfig::default()));
    let (operator, operator_secret) = account(&accounts, "ops", "運用 担当", Role::Operator).await;
    let (researcher, researcher_secret) = account(&accounts, "suzuki", "鈴木 一郎", Role::Researcher).await;
    account(&accounts, "reviewer.a", "審査 太郎", Role::Reviewer).await;
    account(&accounts, "reviewer.b", "審査 花子", Role::Reviewer).await;

    let store = &instance.store;
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
    // A fresh installation: `niji review defaults` published the built-in criteria and tariff.
    publish_defaults(&instance, &Actor::load(store, operator).await.unwrap()).await.unwrap();

    let state = AppState::new(instance.clone(), accounts, ServerConfig::default());
    let router = router(state);
    let operator_cookie = staff_sign_in(&router, "ops", PASSWORD, &operator_secret).await;
    let researcher_cookie = staff_sign_in(&router, "suzuki", PASSWORD, &researcher_secret).await;
    App { _dir: dir, router, instance, operator, researcher, operator_cookie, researcher_cookie }
}

/// Every log entry as an event.
fn events(instance: &Instance) -> Vec<AuditEvent> {
    let log = instance.log();
    (0..log.size()).map(|i| AuditEvent::from_bytes(&log.entry(i).unwrap()).unwrap()).collect()
}

/// The operator's page and a CSRF token from it.
async fn admin_page(app: &App) -> (String, String) {
    let r = send_to(&app.router, get("/admin/review", &app.operator_cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let csrf = hidden_csrf(&r.body);
    (r.body, csrf)
}

/// Posts a form as the operator (with `csrf` added) and returns the reply.
async fn post_as_operator(app: &App, uri: &str, csrf: &str, form: &[(&str, &str)]) -> Reply {
    let mut fields = vec![("csrf", csrf)];
    fields.extend_from_slice(form);
    send_to(&app.router, post_form(uri, &app.operator_cookie, &fields)).await
}

fn assert_done(r: &Reply, done: &str) {
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, format!("/admin/review?done={done}").as_str()), "{}", r.body);
}

/// The committee's section of the page.
fn committee_section(body: &str, id: i64) -> &str {
    let start = body.find(&format!("id=\"committee-{id}\"")).expect("the committee is shown");
    let rest = &body[start..];
    &rest[..rest.find("</section>").unwrap()]
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_set_up_review_and_every_change_is_logged() {
    let app = app().await;
    let store = &app.instance.store;
    let (body, csrf) = admin_page(&app).await;
    assert!(body.contains("id=\"nav-admin-review\""), "the operator's navigation links the page");
    assert!(body.contains("class=\"criteria-version\"") && body.contains("2026.1"), "published criteria are listed");
    assert!(body.contains("class=\"tariff-version\""));
    assert!(body.contains("id=\"dataset-ehr\"") && body.contains("class=\"scope-not-set\""));

    // A new tariff version from TOML text.
    let tariff =
        niji_review::DEFAULT_TARIFF_TOML.replace("version = \"2026.1\"", "version = \"2026.2\"").replace("base_fee = 30000", "base_fee = 35000");
    let r = post_as_operator(&app, "/admin/review/tariff", &csrf, &[("toml", &tariff)]).await;
    assert_done(&r, "tariff");
    let latest = store.latest_tariff().await.unwrap().unwrap();
    assert_eq!((latest.version.as_str(), store.tariffs().await.unwrap().len()), ("2026.2", 2));
    assert!(latest.body.contains("base_fee = 35000"));
    let page = send_to(&app.router, get(r.location(), &app.operator_cookie)).await;
    assert!(page.body.contains("id=\"notice\"") && page.body.contains("手数料表の新しい版を公表しました。"));
    assert!(page.body.contains("<td>2026.2</td>"));

    // A consent scope: purposes, diseases (normalized), kinds and a named recipient.
    let r = post_as_operator(
        &app,
        "/admin/review/consent",
        &csrf,
        &[
            ("dataset", "ehr"),
            ("purpose", "academic_research"),
            ("purpose", "public_health_policy"),
            ("diseases", "e11, I10"),
            ("recipient_kind", "academia"),
            ("recipient_kind", "municipality"),
            ("recipients", "東都大学 医学部\n"),
        ],
    )
    .await;
    assert_done(&r, "consent");
    let d = store.dataset_by_name("ehr").await.unwrap().unwrap();
    let scope: ConsentScope = serde_json::from_str(&store.dataset_consent_scope(d.id).await.unwrap().unwrap().scope).unwrap();
    assert_eq!(
        scope,
        ConsentScope {
            purposes: vec![PurposeCategory::AcademicResearch, PurposeCategory::PublicHealthPolicy],
            diseases: vec!["E11".into(), "I10".into()],
            recipient_kinds: vec![RecipientKind::Academia, RecipientKind::Municipality],
            recipients: vec!["東都大学 医学部".into()],
        }
    );
    let (body, _) = admin_page(&app).await;
    assert!(body.contains("E11, I10") && body.contains("value=\"academic_research\" checked"));

    // An accreditation of the researcher.
    let r = post_as_operator(
        &app,
        "/admin/review/accreditations",
        &csrf,
        &[("username", "suzuki"), ("course", "研究倫理 e-ラーニング"), ("completed_on", "2026-01-10"), ("expires_on", "2099-01-09")],
    )
    .await;
    assert_done(&r, "accreditation");
    let accreditations = store.accreditations_for_user(app.researcher).await.unwrap();
    assert_eq!(accreditations.len(), 1);
    assert_eq!((accreditations[0].course.as_str(), accreditations[0].expires_on.as_str()), ("研究倫理 e-ラーニング", "2099-01-09"));
    let (body, _) = admin_page(&app).await;
    assert!(body.contains("class=\"accreditation\"") && body.contains("研究倫理 e-ラーニング") && body.contains("<code>suzuki</code>"));

    // A committee, then members until its composition holds.
    let r = post_as_operator(&app, "/admin/review/committees", &csrf, &[("name", "第一審査委員会")]).await;
    assert_done(&r, "committee");
    let committees = store.committees().await.unwrap();
    assert_eq!(committees.len(), 1);
    let committee = committees[0].id;
    let (body, _) = admin_page(&app).await;
    let section = committee_section(&body, committee);
    assert!(section.contains("class=\"composition-problems") && section.contains("委員が 0 名です。5 名以上が必要です。"), "{section}");
    assert!(section.contains("「一般の立場」の委員がいません。"));

    let members_uri = format!("/admin/review/committees/{committee}/members");
    let members: [&[(&str, &str)]; 4] = [
        &[("username", "reviewer.a"), ("name", ""), ("field", "medicine_science"), ("external", "1"), ("gender", "male")],
        &[("username", "reviewer.b"), ("name", ""), ("field", "humanities_law"), ("gender", "female")],
        &[("username", ""), ("name", "山田 花子"), ("field", "general_public"), ("external", "1"), ("gender", "female")],
        &[("username", ""), ("name", "佐藤 次郎"), ("field", "medicine_science"), ("gender", "male")],
    ];
    for form in members {
        let r = post_as_operator(&app, &members_uri, &csrf, form).await;
        assert_done(&r, "member");
    }
    let (body, _) = admin_page(&app).await;
    let section = committee_section(&body, committee);
    assert!(section.contains("委員が 4 名です。5 名以上が必要です。"), "{section}");
    assert!(!section.contains("の委員がいません") && !section.contains("外部委員が"), "only the count is missing: {section}");
    assert!(section.contains("審査 太郎") && section.contains("<code>reviewer.a</code>") && section.contains("（アカウントなし）"));

    let r = post_as_operator(&app, &members_uri, &csrf, &[("username", ""), ("name", "高橋 三郎"), ("field", "general_public"), ("gender", "other")])
        .await;
    assert_done(&r, "member");
    let (body, _) = admin_page(&app).await;
    let section = committee_section(&body, committee);
    assert!(section.contains("class=\"composition-ok") && section.contains("審査基準 2026.1 の構成要件を満たしています。"), "{section}");
    let active = store.active_committee_members(committee).await.unwrap();
    assert_eq!(active.len(), 5);
    assert_eq!(active.iter().filter(|m| m.user_id.is_some()).count(), 2);

    // The same in English.
    let en = send_to(&app.router, get("/admin/review", &format!("{}; niji_lang=en", app.operator_cookie))).await;
    assert!(en.body.contains("Meets the composition rules of criteria 2026.1."), "{}", en.body);

    // Deactivating a member breaks the composition again.
    let last = active.last().unwrap().id;
    let r = post_as_operator(&app, &format!("/admin/review/members/{last}/deactivate"), &csrf, &[]).await;
    assert_done(&r, "deactivated");
    assert_eq!(store.active_committee_members(committee).await.unwrap().len(), 4);
    let (body, _) = admin_page(&app).await;
    assert!(committee_section(&body, committee).contains("委員が 4 名です。5 名以上が必要です。"));
    let r = post_as_operator(&app, &format!("/admin/review/members/{last}/deactivate"), &csrf, &[]).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.body.contains("この委員はすでに退任しています。"));

    // Every change is in the transparency log, by the operator, with ids only.
    let me = format!("user:{}", app.operator);
    let logged: Vec<(String, String)> = events(&app.instance).into_iter().filter(|e| e.actor == me).map(|e| (e.action, e.object)).collect();
    let expect = |action: &str, object: &str| {
        assert!(logged.iter().any(|(a, o)| a == action && o == object), "{action} {object} is not logged: {logged:?}");
    };
    expect("review.tariff.published", "tariff:2026.2");
    expect("dataset.consent_scope.set", "dataset:ehr");
    expect("accreditation.recorded", &format!("user:{}", app.researcher));
    expect("committee.created", &format!("committee:{committee}"));
    assert_eq!(logged.iter().filter(|(a, _)| a == "committee.member_added").count(), 5);
    expect("committee.member_deactivated", &format!("committee:{committee}"));
    assert!(
        !events(&app.instance).iter().map(|e| serde_json::to_string(&e.data).unwrap()).any(|d| d.contains("山田") || d.contains("研究倫理")),
        "names and course texts stay out of the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_forms_change_nothing_and_say_why() {
    let app = app().await;
    let store = &app.instance.store;
    let (_, csrf) = admin_page(&app).await;
    let log_size = app.instance.log().size();

    // Not TOML at all: the line is reported; the text stays in the form to be fixed.
    let broken = "version = \"2026.9\"\npublished = 2026-05-01\nbase_fee = = 3\n";
    let r = post_as_operator(&app, "/admin/review/tariff", &csrf, &[("toml", broken)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("id=\"error\"") && r.body.contains("TOML の書式が正しくありません（3 行目）"), "{}", r.body);
    assert!(r.body.contains("base_fee = = 3"), "the draft is kept in the form");
    // Valid TOML, but a tier without a fee: the field is named.
    let missing = niji_review::DEFAULT_TARIFF_TOML.replace("version = \"2026.1\"", "version = \"2026.9\"").replace("full = 120000\n", "");
    let r = post_as_operator(&app, "/admin/review/tariff", &csrf, &[("toml", &missing)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("review_fee.full: この段階の審査手数料がありません。"), "{}", r.body);
    // Unknown keys: a fixed text that does not quote them.
    let unknown = niji_review::DEFAULT_TARIFF_TOML.replace("version = \"2026.1\"", "version = \"2026.9\"\nsecret_key_xyz = 1");
    let r = post_as_operator(&app, "/admin/review/tariff", &csrf, &[("toml", &unknown)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("TOML のキーが想定と異なります"));
    assert!(!r.body[r.body.find("id=\"error\"").unwrap()..].split("</p>").next().unwrap().contains("secret_key_xyz"));
    // A version that exists.
    let r = post_as_operator(&app, "/admin/review/tariff", &csrf, &[("toml", niji_review::DEFAULT_TARIFF_TOML)]).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.body.contains("この version はすでに公表されています。"));
    // Criteria: a deadline shorter than a lighter tier's, and an impossible committee rule.
    let shrinking = niji_review::DEFAULT_CRITERIA_TOML
        .replace("version = \"2026.1\"", "version = \"2026.9\"")
        .replace("deadline_days = 30", "deadline_days = 10");
    let r = post_as_operator(&app, "/admin/review/criteria", &csrf, &[("toml", &shrinking)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("tiers.standard.deadline_days: より軽い段階の期限より短くなっています。"), "{}", r.body);
    let en = format!("{}; niji_lang=en", app.operator_cookie);
    let rule =
        niji_review::DEFAULT_CRITERIA_TOML.replace("version = \"2026.1\"", "version = \"2026.9\"").replace("min_external = 2", "min_external = 6");
    let r = send_to(&app.router, post_form("/admin/review/criteria", &en, &[("csrf", &csrf), ("toml", &rule)])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("committee.min_external: cannot exceed min_members. Nothing was published."), "{}", r.body);
    assert_eq!(store.tariffs().await.unwrap().len(), 1);
    assert_eq!(store.review_criteria_versions().await.unwrap().len(), 1);

    // A consent scope with a bad disease code, an unknown purpose, an unknown dataset.
    let r = post_as_operator(&app, "/admin/review/consent", &csrf, &[("dataset", "ehr"), ("purpose", "academic_research"), ("diseases", "E11, 12x")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("疾患の 2 番目が ICD-10 のコードまたは前方一致になっていません。"));
    let r = post_as_operator(&app, "/admin/review/consent", &csrf, &[("dataset", "ehr"), ("purpose", "world_domination")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = post_as_operator(&app, "/admin/review/consent", &csrf, &[("dataset", "nope"), ("purpose", "academic_research")]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let d = store.dataset_by_name("ehr").await.unwrap().unwrap();
    assert!(store.dataset_consent_scope(d.id).await.unwrap().is_none());

    // Accreditations: expiry before completion, an unknown account, a bad date.
    let bad: [(&[(&str, &str)], &str); 3] = [
        (
            &[("username", "suzuki"), ("course", "研究倫理"), ("completed_on", "2026-05-01"), ("expires_on", "2026-04-01")],
            "有効期限は修了日以後にしてください。",
        ),
        (
            &[("username", "nobody"), ("course", "研究倫理"), ("completed_on", "2026-01-01"), ("expires_on", "2027-01-01")],
            "そのユーザー名のアカウントはありません。",
        ),
        (
            &[("username", "suzuki"), ("course", "研究倫理"), ("completed_on", "yesterday"), ("expires_on", "2027-01-01")],
            "修了日を YYYY-MM-DD で入れてください。",
        ),
    ];
    for (form, message) in bad {
        let r = post_as_operator(&app, "/admin/review/accreditations", &csrf, form).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.body.contains(message), "{message}");
    }
    assert!(store.accreditations().await.unwrap().is_empty());

    // Committees and members: no name, a duplicate account, a member with neither account nor name.
    let r = post_as_operator(&app, "/admin/review/committees", &csrf, &[("name", "  ")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(store.committees().await.unwrap().is_empty());
    let r =
        post_as_operator(&app, "/admin/review/committees/999/members", &csrf, &[("name", "山田"), ("field", "general_public"), ("gender", "female")])
            .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let size_before_committee = app.instance.log().size();
    assert_eq!(size_before_committee, log_size, "refused forms are not logged");
    assert_done(&post_as_operator(&app, "/admin/review/committees", &csrf, &[("name", "委員会")]).await, "committee");
    assert_eq!(post_as_operator(&app, "/admin/review/committees", &csrf, &[("name", "委員会")]).await.status, StatusCode::CONFLICT);
    let committee = store.committees().await.unwrap()[0].id;
    let uri = format!("/admin/review/committees/{committee}/members");
    let a = [("username", "reviewer.a"), ("name", ""), ("field", "medicine_science"), ("gender", "male")];
    assert_done(&post_as_operator(&app, &uri, &csrf, &a).await, "member");
    let r = post_as_operator(&app, &uri, &csrf, &a).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.body.contains("このアカウントはすでにこの委員会の委員です。"));
    let r = post_as_operator(&app, &uri, &csrf, &[("username", ""), ("name", " "), ("field", "general_public"), ("gender", "female")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("アカウントのない委員には氏名が必要です。"));
    let r = post_as_operator(&app, &uri, &csrf, &[("username", ""), ("name", "山田"), ("field", "astrology"), ("gender", "female")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(store.committee_members(committee).await.unwrap().len(), 1);
    let r = post_as_operator(&app, "/admin/review/members/999/deactivate", &csrf, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Two successful changes (committee, member), nothing else.
    assert_eq!(app.instance.log().size(), log_size + 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_operators_with_the_session_token_may_act() {
    let app = app().await;
    let store = &app.instance.store;
    let log_size = app.instance.log().size();

    // Visitors are sent to sign in, for the page and for every form.
    let r = send_to(&app.router, get("/admin/review", "")).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/login"));
    let r = send_to(&app.router, post_form("/admin/review/committees", "", &[("csrf", "x"), ("name", "外から")])).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/login"));

    // A researcher is refused, even with the token of their own session.
    let r = send_to(&app.router, get("/admin/review", &app.researcher_cookie)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!r.body.contains("id=\"nav-admin-review\""));
    let own = send_to(&app.router, get("/account", &app.researcher_cookie)).await;
    let researcher_csrf = hidden_csrf(&own.body);
    for (uri, form) in [
        ("/admin/review/committees", vec![("name", "研究者の委員会")]),
        (
            "/admin/review/accreditations",
            vec![("username", "suzuki"), ("course", "自己認定"), ("completed_on", "2026-01-01"), ("expires_on", "2099-01-01")],
        ),
        ("/admin/review/tariff", vec![("toml", niji_review::DEFAULT_TARIFF_TOML)]),
    ] {
        let mut fields = vec![("csrf", researcher_csrf.as_str())];
        fields.extend(form);
        let r = send_to(&app.router, post_form(uri, &app.researcher_cookie, &fields)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}");
    }

    // The operator with a forged token, or none, is refused too.
    for csrf in ["forged", ""] {
        let r = send_to(&app.router, post_form("/admin/review/committees", &app.operator_cookie, &[("csrf", csrf), ("name", "偽の委員会")])).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = send_to(
            &app.router,
            post_form(
                "/admin/review/accreditations",
                &app.operator_cookie,
                &[("csrf", csrf), ("username", "suzuki"), ("course", "x"), ("completed_on", "2026-01-01"), ("expires_on", "2099-01-01")],
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    let r = send_to(&app.router, post_form("/admin/review/committees", &app.operator_cookie, &[("name", "トークンなし")])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    assert!(store.committees().await.unwrap().is_empty());
    assert!(store.accreditations().await.unwrap().is_empty());
    assert_eq!(store.tariffs().await.unwrap().len(), 1);
    assert_eq!(app.instance.log().size(), log_size, "nothing refused reaches the log");
}
