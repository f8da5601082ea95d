//! The workflow on a real instance (SQLite store, transparency log, key store): the four cases,
//! committee rules, recusal, accreditation, permits that grant only what was approved,
//! crypto-shredding on revocation, and every transition in the log.

use niji_applications::{
    amend_permit, cast_vote, create_draft, decide, declare_conflict, expire_permits, list_applications, list_permits, permit_key_id,
    publish_defaults, resubmit, resume_permit, revoke_permit, set_consent_scope, submit, suspend_permit, update_draft, withdraw, Actor, Application,
    ChairDecision, WorkflowError,
};
use niji_core::Role;
use niji_instance::Instance;
use niji_review::{
    ApplicationStatus, ApprovedScope, ConsentScope, NamedResearcher, PurposeCategory, Recipient, RecipientKind, RequestedVariable, Software, Track,
    VariableRef, Vote, VoteError,
};
use niji_store::{NewAccreditation, NewCommitteeMember, NewUser, VersionCommit};
use time::macros::date;

const TODAY: time::Date = date!(2026 - 11 - 22);

struct World {
    _dir: tempfile::TempDir,
    instance: Instance,
    operator: Actor,
    researcher: Actor,
    unaccredited: Actor,
    chair: Actor,
    reviewers: Vec<Actor>,
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

/// An instance with a committed dataset `ehr` (consent: academic research on diabetes, academia
/// and hospitals), published criteria and tariff, an accredited researcher and a committee of
/// six that meets every rule (members: `fields`).
async fn world(fields: &[(&str, bool, &str)]) -> World {
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
    let unaccredited = user(&instance, "new", Role::Researcher).await;
    let chair = user(&instance, "chair", Role::CommitteeChair).await;
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
    store
        .add_accreditation(
            &NewAccreditation {
                user_id: unaccredited.user_id,
                course: "研究倫理",
                completed_on: "2023-01-10",
                expires_on: "2024-01-09",
                recorded_by: "test",
            },
            0,
        )
        .await
        .unwrap();
    let committee = store.create_committee("審査委員会", 0).await.unwrap();
    let mut reviewers = Vec::new();
    for (i, (field, external, gender)) in fields.iter().enumerate() {
        let actor = if i == 0 { chair.clone() } else { user(&instance, &format!("rev{i}"), Role::Reviewer).await };
        store
            .add_committee_member(
                &NewCommitteeMember { committee_id: committee, user_id: Some(actor.user_id), display_name: "m", field, external: *external, gender },
                0,
            )
            .await
            .unwrap();
        reviewers.push(actor);
    }
    World { _dir: dir, instance, operator, researcher, unaccredited, chair, reviewers }
}

const VALID: [(&str, bool, &str); 6] = [
    ("medicine_science", false, "male"),
    ("medicine_science", true, "female"),
    ("humanities_law", true, "male"),
    ("humanities_law", false, "female"),
    ("general_public", true, "female"),
    ("general_public", false, "male"),
];

fn form(researcher: &Actor) -> Application {
    Application {
        title: "2型糖尿病の治療経過".into(),
        purpose: "治療薬の切替えと予後".into(),
        purpose_category: PurposeCategory::AcademicResearch,
        diseases: vec!["E11".into()],
        recipients: vec![Recipient { organization: "東都大学".into(), kind: RecipientKind::Academia, similar_regulation: true }],
        track: Track::Visiting,
        variables: vec![
            RequestedVariable { dataset: "ehr".into(), table: "conditions".into(), column: "code".into(), justification: "病名".into() },
            RequestedVariable { dataset: "ehr".into(), table: "medications".into(), column: "code".into(), justification: "処方".into() },
        ],
        linkage: vec![],
        analysis_plan: "Cox 比例ハザードモデル".into(),
        software: vec![Software { name: "R".into(), version: "4.4".into() }],
        duration_months: 12,
        researchers: vec![NamedResearcher { account_id: researcher.user_id, display_name: "研究者".into() }],
        genomic_data: false,
        rare_disease: false,
        expected_population: Some(50_000),
        cohort: None,
    }
}

async fn submitted(w: &World, form: &Application) -> (i64, niji_applications::Submitted) {
    let id = create_draft(&w.instance, &w.researcher, form).await.unwrap();
    (id, submit(&w.instance, &w.researcher, id, TODAY).await.unwrap())
}

#[tokio::test]
async fn the_four_cases_get_their_tier_and_route() {
    let w = world(&VALID).await;
    let base = form(&w.researcher);
    let check = |f: &dyn Fn(&mut Application), case: u8, tier: &'static str, status: ApplicationStatus, reason: &'static str| {
        let mut a = base.clone();
        f(&mut a);
        let w = &w;
        async move {
            let (_, s) = submitted(w, &a).await;
            assert_eq!((s.triage.case.number(), s.triage.tier.as_str(), s.status), (case, tier, status), "{:?}", s.triage.reasons);
            assert!(s.triage.reasons.iter().any(|r| r.code().as_str() == reason), "{reason} not in {:?}", s.triage.reasons);
            assert_eq!(s.triage.criteria_version, "2026.1");
            assert!(s.fee_yen > 0);
            s
        }
    };
    // 1: within the consent → notification, permit at once.
    let s = check(&|_| {}, 1, "notification", ApplicationStatus::Notified, "within_consent").await;
    assert!(s.permit.is_some());
    // 2: a related disease (same ICD-10 block E10–E14) → medical validity.
    check(&|a| a.diseases = vec!["E10".into()], 2, "medical_validity", ApplicationStatus::UnderReview, "related_disease").await;
    // 3: a new recipient under similar regulation → light; a company otherwise → standard+.
    check(
        &|a| a.recipients = vec![Recipient { organization: "市役所".into(), kind: RecipientKind::Municipality, similar_regulation: true }],
        3,
        "light",
        ApplicationStatus::UnderReview,
        "new_recipient_similar_regulation",
    )
    .await;
    // 4: a different purpose and recipient → full.
    check(
        &|a| {
            a.purpose_category = PurposeCategory::DrugAndDeviceDevelopment;
            a.recipients = vec![Recipient { organization: "製薬".into(), kind: RecipientKind::Company, similar_regulation: false }];
        },
        4,
        "full",
        ApplicationStatus::UnderReview,
        "different_purpose_and_recipient",
    )
    .await;
    let listed = list_applications(&w.instance.store).await.unwrap();
    assert_eq!(listed.iter().map(|a| a.case.unwrap()).collect::<Vec<_>>(), [1, 2, 3, 4]);
}

#[tokio::test]
async fn a_committee_without_a_general_public_member_cannot_decide() {
    let no_public = [
        ("medicine_science", false, "male"),
        ("medicine_science", true, "female"),
        ("humanities_law", true, "male"),
        ("humanities_law", false, "female"),
        ("humanities_law", true, "female"),
    ];
    let w = world(&no_public).await;
    let mut a = form(&w.researcher);
    a.diseases = vec!["E10".into()];
    let (id, _) = submitted(&w, &a).await;
    for r in &w.reviewers {
        cast_vote(&w.instance, r, id, Vote::Approve, "妥当").await.unwrap();
    }
    let e = decide(&w.instance, &w.chair, id, ChairDecision::new(Vote::Approve, vec!["妥当".into()]), TODAY).await.unwrap_err();
    assert!(matches!(e, WorkflowError::Decide(niji_review::DecideError::Composition(_))), "{e:?}");
    assert_eq!(w.instance.store.application(id).await.unwrap().unwrap().status, "under_review", "nothing decided");
    assert!(list_permits(&w.instance.store).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_recused_member_cannot_vote_and_decisions_issue_permits_for_what_was_approved_only() {
    let w = world(&VALID).await;
    let mut a = form(&w.researcher);
    a.diseases = vec!["E10".into()];
    let (id, _) = submitted(&w, &a).await;
    let recused = &w.reviewers[1];
    declare_conflict(&w.instance, recused, id).await.unwrap();
    let e = cast_vote(&w.instance, recused, id, Vote::Approve, "").await.unwrap_err();
    assert!(matches!(e, WorkflowError::Vote(VoteError::Recused)), "{e:?}");
    // The applicant is not a member.
    assert!(matches!(cast_vote(&w.instance, &w.researcher, id, Vote::Approve, "").await, Err(WorkflowError::Forbidden(_))));
    for r in w.reviewers.iter().filter(|r| r.user_id != recused.user_id) {
        cast_vote(&w.instance, r, id, Vote::ApproveWithConditions, "条件付きで妥当").await.unwrap();
    }
    // Approving a column that was not requested changes nothing.
    let too_much =
        ApprovedScope { variables: vec![VariableRef::new("ehr", "patients", "municipality")], linkage: vec![], conditions: vec![], cohort: None };
    let with = |scope, preset: Option<&str>| ChairDecision {
        verdict: Vote::ApproveWithConditions,
        conditions: vec!["成果物は事前確認".into()],
        reasons: vec!["医学的に妥当".into()],
        scope: Some(scope),
        output_preset: preset.map(str::to_string),
        cohort: None,
        date_shift_days: None,
    };
    let e = decide(&w.instance, &w.chair, id, with(too_much, None), TODAY).await.unwrap_err();
    assert!(matches!(e, WorkflowError::Permit(_)), "{e:?}");
    assert_eq!(w.instance.store.application(id).await.unwrap().unwrap().status, "under_review");
    // Approving one of the two requested columns: the permit grants that one only.
    let one = ApprovedScope { variables: vec![VariableRef::new("ehr", "conditions", "code")], linkage: vec![], conditions: vec![], cohort: None };
    let permit = decide(&w.instance, &w.chair, id, with(one, Some("strict")), TODAY).await.unwrap().expect("an approval issues a permit");
    let permits = list_permits(&w.instance.store).await.unwrap();
    let p = permits.iter().find(|p| p.id == permit).unwrap();
    assert!(p.policy.allows_column("ehr", "conditions", "code"));
    assert!(!p.policy.allows_column("ehr", "medications", "code"), "requested but not approved");
    assert!(!p.policy.allows_column("ehr", "patients", "municipality"));
    assert_eq!(p.policy.conditions, ["成果物は事前確認"]);
    assert_eq!(p.policy.output_preset, "strict");
    assert!(p.key_present);
    let status = w.instance.store.application(id).await.unwrap().unwrap().status;
    assert_eq!(status, "approved_with_conditions");
}

#[tokio::test]
async fn researchers_without_a_valid_accreditation_cannot_be_named() {
    let w = world(&VALID).await;
    let mut a = form(&w.researcher);
    a.researchers.push(NamedResearcher { account_id: w.unaccredited.user_id, display_name: "新人".into() });
    let id = create_draft(&w.instance, &w.researcher, &a).await.unwrap();
    let e = submit(&w.instance, &w.researcher, id, TODAY).await.unwrap_err();
    let WorkflowError::Researchers(problems) = e else { panic!("{e:?}") };
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].researcher(), w.unaccredited.user_id);
    assert_eq!(w.instance.store.application(id).await.unwrap().unwrap().status, "draft", "a refused submission stays a draft");
    // A variable that is not in the catalog is refused the same way.
    let mut b = form(&w.researcher);
    b.variables.push(RequestedVariable { dataset: "ehr".into(), table: "patients".into(), column: "name".into(), justification: "x".into() });
    update_draft(&w.instance, &w.researcher, id, &b).await.unwrap();
    assert!(matches!(submit(&w.instance, &w.researcher, id, TODAY).await, Err(WorkflowError::UnknownVariable { index: 2 })));
    // Only the applicant acts on the application.
    assert!(matches!(submit(&w.instance, &w.unaccredited, id, TODAY).await, Err(WorkflowError::NotTheApplicant)));
    withdraw(&w.instance, &w.researcher, id).await.unwrap();
    assert!(matches!(submit(&w.instance, &w.researcher, id, TODAY).await, Err(WorkflowError::Transition { .. })));
}

#[tokio::test]
async fn a_revoked_permits_key_is_gone_and_every_step_is_in_the_log() {
    let w = world(&VALID).await;
    let (id, s) = submitted(&w, &form(&w.researcher)).await;
    let permit = s.permit.expect("case 1 gets a permit at once");
    let key = permit_key_id(id, 1);
    assert!(w.instance.store.data_key(&key).await.unwrap().is_some());
    assert!(matches!(revoke_permit(&w.instance, &w.researcher, permit, "違反").await, Err(WorkflowError::Forbidden(_))));
    let certificate = revoke_permit(&w.instance, &w.operator, permit, "利用規約違反").await.unwrap();
    assert!(w.instance.store.data_key(&key).await.unwrap().is_none(), "the permit's key is destroyed");
    let certs = w.instance.store.deletion_certificates_for_permit(permit).await.unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].id, certificate);
    let p = &list_permits(&w.instance.store).await.unwrap()[0];
    assert_eq!((p.status.as_str(), p.key_present), ("revoked", false));
    assert!(matches!(revoke_permit(&w.instance, &w.operator, permit, "again").await, Err(WorkflowError::Transition { .. })));

    // Every application event points at a log entry of the same action and application.
    let reader = w.instance.log();
    let events = w.instance.store.application_events(id).await.unwrap();
    assert!(events.len() >= 3, "{events:?}");
    for e in &events {
        let index = e.log_index.unwrap_or_else(|| panic!("{} has no log entry", e.kind)) as u64;
        let entry: serde_json::Value = serde_json::from_slice(&reader.entry(index).unwrap()).unwrap();
        assert_eq!(entry["action"], e.kind.as_str());
        assert_eq!(entry["object"], format!("application:{id}"));
    }
    let cert_index = certs[0].log_index.expect("the certificate is logged") as u64;
    let entry: serde_json::Value = serde_json::from_slice(&reader.entry(cert_index).unwrap()).unwrap();
    assert_eq!(entry["action"], "permit.key_destroyed");
}

#[tokio::test]
async fn permits_are_suspended_amended_and_expire_with_their_keys() {
    let w = world(&VALID).await;
    let (id, s) = submitted(&w, &form(&w.researcher)).await;
    let permit = s.permit.unwrap();
    suspend_permit(&w.instance, &w.operator, permit).await.unwrap();
    assert!(matches!(suspend_permit(&w.instance, &w.operator, permit).await, Err(WorkflowError::Transition { .. })));
    resume_permit(&w.instance, &w.operator, permit).await.unwrap();

    // An amendment narrows the permit to one column: version 2, version 1 superseded, its key gone.
    let one = ApprovedScope { variables: vec![VariableRef::new("ehr", "conditions", "code")], linkage: vec![], conditions: vec![], cohort: None };
    assert!(matches!(amend_permit(&w.instance, &w.operator, permit, Some(one.clone()), None, TODAY).await, Err(WorkflowError::Forbidden(_))));
    let amended = amend_permit(&w.instance, &w.chair, permit, Some(one), None, TODAY).await.unwrap();
    let permits = list_permits(&w.instance.store).await.unwrap();
    let (old, new) = (permits.iter().find(|p| p.id == permit).unwrap(), permits.iter().find(|p| p.id == amended).unwrap());
    assert_eq!((old.status.as_str(), old.key_present), ("superseded", false));
    assert_eq!((new.status.as_str(), new.version, new.key_present), ("active", 2, true));
    assert!(new.policy.allows_column("ehr", "conditions", "code") && !new.policy.allows_column("ehr", "medications", "code"));
    assert!(w.instance.store.data_key(&permit_key_id(id, 1)).await.unwrap().is_none());

    // Nothing expires before the end; the day after it, the permit closes and its key goes.
    assert!(expire_permits(&w.instance, new.policy.expires_on).await.unwrap().is_empty());
    let closed = expire_permits(&w.instance, new.policy.expires_on.next_day().unwrap()).await.unwrap();
    assert_eq!(closed, [amended]);
    let p = list_permits(&w.instance.store).await.unwrap().into_iter().find(|p| p.id == amended).unwrap();
    assert_eq!((p.status.as_str(), p.key_present), ("expired", false));
    assert_eq!(w.instance.store.deletion_certificates().await.unwrap().len(), 2, "superseded and expired");
}

#[tokio::test]
async fn changes_requested_then_resubmitted_gets_a_new_review_round() {
    let w = world(&VALID).await;
    let mut a = form(&w.researcher);
    a.diseases = vec!["E10".into()];
    let (id, _) = submitted(&w, &a).await;
    for r in &w.reviewers[..5] {
        cast_vote(&w.instance, r, id, Vote::RequestChanges, "説明不足").await.unwrap();
    }
    decide(&w.instance, &w.chair, id, ChairDecision::new(Vote::RequestChanges, vec!["変数の必要性を説明すること".into()]), TODAY).await.unwrap();
    assert_eq!(w.instance.store.application(id).await.unwrap().unwrap().status, "changes_requested");
    // Resubmitting without changing is refused only by the lifecycle when not requested; here
    // the applicant narrows the variables and resubmits.
    let mut b = a.clone();
    b.variables.truncate(1);
    update_draft(&w.instance, &w.researcher, id, &b).await.unwrap();
    let s = resubmit(&w.instance, &w.researcher, id, TODAY).await.unwrap();
    assert_eq!(s.status, ApplicationStatus::UnderReview);
    assert!(w.instance.store.review_votes(id).await.unwrap().is_empty(), "members vote again");
    assert!(w.instance.store.review_decision(id).await.unwrap().is_none());
    let archived = w.instance.store.application_events(id).await.unwrap().into_iter().filter(|e| e.kind == "review.vote_archived").count();
    assert_eq!(archived, 5, "the previous round stays in the history");
    for r in &w.reviewers[..5] {
        cast_vote(&w.instance, r, id, Vote::Approve, "妥当").await.unwrap();
    }
    let permit = decide(&w.instance, &w.chair, id, ChairDecision::new(Vote::Approve, vec!["妥当".into()]), TODAY).await.unwrap().unwrap();
    let p = list_permits(&w.instance.store).await.unwrap().into_iter().find(|p| p.id == permit).unwrap();
    assert!(p.policy.allows_column("ehr", "conditions", "code") && !p.policy.allows_column("ehr", "medications", "code"));
}
