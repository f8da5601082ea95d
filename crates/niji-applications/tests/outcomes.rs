//! Outcomes of permits (issue 6): only researchers named on a permit report them, reports are
//! validated and logged by id, and a release's researchers are reminded once, 91 days later,
//! unless an outcome was reported since.

use niji_applications::{
    create_draft, publish_defaults, remind_outcomes, report_outcome, set_consent_scope, submit, Actor, Application, NewOutcome, OutcomeProblem,
    WorkflowError,
};
use niji_core::{AuditEvent, Role};
use niji_instance::Instance;
use niji_review::{ConsentScope, NamedResearcher, PurposeCategory, Recipient, RecipientKind, RequestedVariable, Software, Track};
use niji_store::{NewAccreditation, NewAnalysisRun, NewUser, VersionCommit};
use time::macros::date;
use time::{Duration, OffsetDateTime};

const TODAY: time::Date = date!(2026 - 11 - 22);
const DAY: i64 = 86_400;

struct World {
    _dir: tempfile::TempDir,
    instance: Instance,
    researcher: Actor,
    other: Actor,
    permit: i64,
}

async fn user(instance: &Instance, name: &str, role: Role) -> Actor {
    let id = instance
        .store
        .create_user_with_roles(
            &NewUser { username: name, display_name: name, organization_id: None, password_hash: "x", totp_secret: None, created_at: 0 },
            &[role],
            "test",
        )
        .await
        .unwrap();
    Actor::load(&instance.store, id).await.unwrap()
}

/// A committed dataset within a consent, an accredited researcher and a case-1 application
/// that got its permit at once; another researcher not named on it.
async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::init(dir.path(), "test").await.unwrap();
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
    store.commit_dataset_version(&VersionCommit { version_id: version, committed_at: 1, ..VersionCommit::default() }).await.unwrap();
    let operator = user(&instance, "ops", Role::Operator).await;
    let researcher = user(&instance, "res", Role::Researcher).await;
    let other = user(&instance, "other", Role::Researcher).await;
    publish_defaults(&instance, &operator).await.unwrap();
    let scope = ConsentScope {
        purposes: vec![PurposeCategory::AcademicResearch],
        diseases: vec!["E11".into()],
        recipient_kinds: vec![RecipientKind::Academia, RecipientKind::Hospital],
        recipients: vec![],
    };
    set_consent_scope(&instance, &operator, "ehr", &scope).await.unwrap();
    store
        .add_accreditation(
            &NewAccreditation {
                user_id: researcher.user_id,
                course: "研究倫理",
                completed_on: "2026-01-10",
                expires_on: "2027-01-09",
                recorded_by: "test",
            },
            0,
        )
        .await
        .unwrap();
    let form = Application {
        title: "2型糖尿病の治療経過".into(),
        purpose: "治療薬の切替えと予後".into(),
        purpose_category: PurposeCategory::AcademicResearch,
        diseases: vec!["E11".into()],
        recipients: vec![Recipient { organization: "東都大学".into(), kind: RecipientKind::Academia, similar_regulation: true }],
        track: Track::Visiting,
        variables: vec![RequestedVariable {
            dataset: "ehr".into(), table: "conditions".into(), column: "code".into(), justification: "病名".into()
        }],
        linkage: vec![],
        analysis_plan: "Cox 比例ハザードモデル".into(),
        software: vec![Software { name: "R".into(), version: "4.4".into() }],
        duration_months: 12,
        researchers: vec![NamedResearcher { account_id: researcher.user_id, display_name: "研究者".into() }],
        genomic_data: false,
        rare_disease: false,
        expected_population: Some(50_000),
        cohort: None,
    };
    let id = create_draft(&instance, &researcher, &form).await.unwrap();
    let permit = submit(&instance, &researcher, id, TODAY).await.unwrap().permit.expect("case 1 gets a permit at once");
    World { _dir: dir, instance, researcher, other, permit }
}

async fn release(w: &World, finished_at: i64, outcome: &str) -> i64 {
    w.instance
        .store
        .insert_analysis_run(&NewAnalysisRun {
            permit_id: w.permit,
            user_id: w.researcher.user_id,
            kind: "query",
            code_sha256: "00",
            outcome,
            registry_version: 0,
            excluded_persons: 0,
            datasets: r#"[{"dataset":"ehr","version":1}]"#,
            started_at: finished_at - 5,
            finished_at,
        })
        .await
        .unwrap()
}

async fn reminders(w: &World) -> usize {
    let all = w.instance.store.notifications_for_user(w.researcher.user_id, 100).await.unwrap();
    all.iter().filter(|n| n.subject.starts_with("成果の報告")).count()
}

fn paper() -> NewOutcome {
    NewOutcome {
        kind: "paper".into(),
        title: "秘密にしない題名: 糖尿病治療の切替え".into(),
        reference: "10.1234/niji.2026.1".into(),
        published_on: date!(2026 - 10 - 01),
    }
}

#[tokio::test]
async fn the_permit_records_its_issuance_log_entry() {
    let w = world().await;
    let permit = w.instance.store.permit(w.permit).await.unwrap().unwrap();
    let index = permit.log_index.expect("the issuance's log index is kept") as u64;
    let event = AuditEvent::from_bytes(&w.instance.log().entry(index).unwrap()).unwrap();
    assert_eq!((event.action.as_str(), event.object), ("permit.issued", format!("permit:{}", w.permit)));
}

#[tokio::test]
async fn only_named_researchers_report_valid_outcomes_logged_by_id() {
    let w = world().await;
    let store = &w.instance.store;

    let e = report_outcome(&w.instance, &w.other, w.permit, &paper(), TODAY).await.unwrap_err();
    assert!(matches!(e, WorkflowError::NotNamedOnPermit), "{e:?}");
    let e = report_outcome(&w.instance, &w.researcher, w.permit + 100, &paper(), TODAY).await.unwrap_err();
    assert!(matches!(e, WorkflowError::NotFound("permit")), "{e:?}");
    let mut bad = paper();
    bad.reference = "10.12/not-a-doi".into();
    bad.published_on = date!(2026 - 11 - 23);
    let e = report_outcome(&w.instance, &w.researcher, w.permit, &bad, TODAY).await.unwrap_err();
    let WorkflowError::Outcome(problems) = e else { panic!("{e:?}") };
    assert_eq!(problems, vec![OutcomeProblem::NotDoiOrUrl, OutcomeProblem::PublishedInFuture]);
    assert!(store.permit_outcomes().await.unwrap().is_empty(), "a refused report stores nothing");

    let size = w.instance.log().size();
    let id = report_outcome(&w.instance, &w.researcher, w.permit, &paper(), TODAY).await.unwrap();
    let rows = store.permit_outcomes().await.unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!((row.id, row.permit_id, row.kind.as_str(), row.reference.as_str()), (id, w.permit, "paper", "10.1234/niji.2026.1"));
    assert_eq!(row.log_index, Some(size as i64));
    let entry = w.instance.log().entry(size).unwrap();
    let event = AuditEvent::from_bytes(&entry).unwrap();
    assert_eq!((event.action.as_str(), event.object.as_str()), ("outcome.reported", format!("permit:{}", w.permit).as_str()));
    assert_eq!(event.data, Some(serde_json::json!({"outcome": id})));
    assert!(!String::from_utf8_lossy(&entry).contains("糖尿病"), "the title never reaches the log");
}

#[tokio::test]
async fn a_release_is_reminded_of_once_after_91_days_unless_an_outcome_was_reported() {
    let w = world().await;
    let now = OffsetDateTime::now_utc();
    let base = now.unix_timestamp() - 100 * DAY;
    let run = release(&w, base, "released").await;
    release(&w, base, "refused").await;

    let at = |days: i64| OffsetDateTime::from_unix_timestamp(base + days * DAY).unwrap();
    assert!(remind_outcomes(&w.instance, at(90)).await.unwrap().is_empty(), "not before 91 days");
    assert_eq!(reminders(&w).await, 0);
    assert_eq!(remind_outcomes(&w.instance, at(91)).await.unwrap(), vec![run]);
    assert_eq!(reminders(&w).await, 1, "the named researcher is reminded");
    let note = w.instance.store.notifications_for_user(w.researcher.user_id, 1).await.unwrap().remove(0);
    assert!(note.body.contains("3か月") && note.body.contains("Three months") && note.body.contains(&format!("permits/{}/outcomes", w.permit)));
    assert!(remind_outcomes(&w.instance, now).await.unwrap().is_empty(), "once only");
    assert!(remind_outcomes(&w.instance, now + Duration::days(400)).await.unwrap().is_empty());
    assert_eq!(reminders(&w).await, 1);
    assert!(w.instance.store.notifications_for_user(w.other.user_id, 10).await.unwrap().is_empty());

    // An outcome reported after a release: no reminder for it.
    let older = release(&w, base - 100 * DAY, "released").await;
    report_outcome(&w.instance, &w.researcher, w.permit, &paper(), TODAY).await.unwrap();
    assert!(remind_outcomes(&w.instance, now).await.unwrap().is_empty());
    assert_eq!(reminders(&w).await, 1);
    let runs = w.instance.store.analysis_runs().await.unwrap();
    assert_eq!(runs.iter().find(|r| r.id == older).unwrap().outcome_reminder_at, None);
}
