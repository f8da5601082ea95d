//! Applications, review, permits and the outbox against a real SQLite file.

use niji_store::{
    ApplicationTriage, NewAccreditation, NewApplication, NewApplicationEvent, NewCommitteeMember, NewDataset, NewDeletionCertificate,
    NewNotification, NewPermit, NewUser, ReviewDecisionRow, ReviewVoteRow, Store, StoreError,
};

/// A store with one organization and one researcher; returns (dir, store, organization, user).
async fn store() -> (tempfile::TempDir, Store, i64, i64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("meta.sqlite")).await.unwrap();
    let org = store.create_organization("University A", "research", 1).await.unwrap();
    let user = add_user(&store, "rin", Some(org)).await;
    (dir, store, org, user)
}

async fn add_user(s: &Store, name: &str, organization_id: Option<i64>) -> i64 {
    let user = NewUser { username: name, display_name: "研究者", organization_id, password_hash: "$argon2id$x", totp_secret: None, created_at: 1 };
    s.create_user_with_roles(&user, &[], "system").await.unwrap()
}

async fn draft(s: &Store, applicant_id: i64, organization_id: Option<i64>) -> i64 {
    s.create_application(&NewApplication { applicant_id, organization_id, title: "糖尿病の研究", form: r#"{"purpose":"x"}"# }, 10).await.unwrap()
}

fn event<'a>(kind: &'a str, at: i64) -> NewApplicationEvent<'a> {
    NewApplicationEvent { at, actor: "user:2", kind, note: "", log_index: None }
}

async fn committee_with_members(s: &Store, n: usize) -> (i64, Vec<i64>) {
    let c = s.create_committee("Review board", 5).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let m = NewCommitteeMember {
            committee_id: c,
            user_id: None,
            display_name: &format!("委員{i}"),
            field: "medicine",
            external: i % 2 == 0,
            gender: "f",
        };
        ids.push(s.add_committee_member(&m, 6).await.unwrap());
    }
    (c, ids)
}

fn new_permit(application_id: i64, key_id: &str) -> NewPermit<'_> {
    NewPermit { application_id, status: "active", policy: r#"{"tables":["visits"]}"#, starts_on: "2025-01-01", expires_on: "2026-01-01", key_id }
}

#[tokio::test]
async fn an_application_is_created_as_a_draft_and_listed() {
    let (_d, s, org, user) = store().await;
    let other = add_user(&s, "sora", None).await;
    let a = draft(&s, user, Some(org)).await;
    let b = draft(&s, other, None).await;
    let row = s.application(a).await.unwrap().unwrap();
    assert_eq!((row.applicant_id, row.organization_id, row.status.as_str(), row.form.as_str()), (user, Some(org), "draft", r#"{"purpose":"x"}"#));
    assert_eq!((row.case_code, row.tier, row.fee_yen, row.submitted_at, row.decided_at), (None, None, None, None, None));
    assert_eq!((row.created_at, row.updated_at), (10, 10));

    s.update_application_form(a, "新しい題", r#"{"purpose":"y"}"#, 11).await.unwrap();
    let row = s.application(a).await.unwrap().unwrap();
    assert_eq!((row.title.as_str(), row.form.as_str(), row.updated_at), ("新しい題", r#"{"purpose":"y"}"#, 11));
    assert!(matches!(s.update_application_form(999, "t", "{}", 11).await, Err(StoreError::NotFound { what: "application" })));

    assert_eq!(s.applications().await.unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), vec![a, b]);
    assert_eq!(s.applications_by_applicant(other).await.unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), vec![b]);
    s.set_application_status(b, "draft", "submitted", 12).await.unwrap();
    assert_eq!(s.applications_by_status("draft").await.unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), vec![a]);
    assert_eq!(s.applications_by_status("submitted").await.unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), vec![b]);
    assert_eq!(s.application(999).await.unwrap(), None);

    let missing = NewApplication { applicant_id: 999, organization_id: None, title: "t", form: "{}" };
    assert!(matches!(s.create_application(&missing, 1).await, Err(StoreError::NotFound { .. })));
}

#[tokio::test]
async fn a_stale_status_transition_fails_and_changes_nothing() {
    let (_d, s, _org, user) = store().await;
    let a = draft(&s, user, None).await;
    s.set_application_status(a, "draft", "submitted", 20).await.unwrap();
    // A second transition from the same expected status loses.
    let stale = s.set_application_status(a, "draft", "withdrawn", 21).await;
    assert!(matches!(stale, Err(StoreError::NotFound { what: "application in that status" })));
    let row = s.application(a).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.updated_at), ("submitted", 20));
    assert!(matches!(s.set_application_status(999, "draft", "submitted", 1).await, Err(StoreError::NotFound { .. })));

    // Same through transition_application: no status change and no event.
    let stale = s.transition_application(a, "draft", "withdrawn", &event("withdrawn", 22), 22).await;
    assert!(matches!(stale, Err(StoreError::NotFound { what: "application in that status" })));
    assert_eq!(s.application(a).await.unwrap().unwrap().status, "submitted");
    assert!(s.application_events(a).await.unwrap().is_empty());
}

#[tokio::test]
async fn concurrent_transitions_from_one_status_have_one_winner() {
    let (_d, s, _org, user) = store().await;
    let a = draft(&s, user, None).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let kind = format!("to-{i}");
            let e = NewApplicationEvent { at: 30, actor: "user:2", kind: &kind, note: "", log_index: None };
            s.transition_application(a, "draft", &kind, &e, 30).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::NotFound { what: "application in that status" }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(won, 1);
    let events = s.application_events(a).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(s.application(a).await.unwrap().unwrap().status, events[0].kind);
}

#[tokio::test]
async fn a_transition_appends_its_event_in_the_same_transaction() {
    let (_d, s, _org, user) = store().await;
    let a = draft(&s, user, None).await;
    let first = s.append_application_event(a, &event("created", 10)).await.unwrap();
    let e = NewApplicationEvent { at: 40, actor: "user:2", kind: "submitted", note: "提出", log_index: Some(7) };
    let second = s.transition_application(a, "draft", "submitted", &e, 40).await.unwrap();
    let third = s.transition_application(a, "submitted", "triaged", &event("triaged", 41), 41).await.unwrap();
    let events = s.application_events(a).await.unwrap();
    assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), vec![first, second, third]);
    assert_eq!((events[1].at, events[1].actor.as_str(), events[1].kind.as_str(), events[1].note.as_str()), (40, "user:2", "submitted", "提出"));
    assert_eq!((events[1].application_id, events[1].log_index), (a, Some(7)));
    assert_eq!(s.application(a).await.unwrap().unwrap().status, "triaged");

    s.set_application_event_log_index(third, 9).await.unwrap();
    assert_eq!(s.application_events(a).await.unwrap()[2].log_index, Some(9));
    assert!(matches!(s.set_application_event_log_index(third, 10).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(s.append_application_event(999, &event("x", 1)).await, Err(StoreError::NotFound { what: "application" })));
}

#[tokio::test]
async fn triage_is_recorded_on_the_application() {
    let (_d, s, _org, user) = store().await;
    let a = draft(&s, user, None).await;
    let (c, _) = committee_with_members(&s, 1).await;
    let triage = ApplicationTriage {
        case_code: "NJ-2025-0001",
        tier: "committee",
        reasons: r#"["rare disease"]"#,
        criteria_version: "2025.1",
        fee_yen: 50_000,
        deadline_at: Some(1000),
        committee_id: Some(c),
        submitted_at: 50,
    };
    s.record_triage(a, &triage, 51).await.unwrap();
    let row = s.application(a).await.unwrap().unwrap();
    assert_eq!(
        (row.case_code.as_deref(), row.tier.as_deref(), row.reasons.as_deref()),
        (Some("NJ-2025-0001"), Some("committee"), Some(r#"["rare disease"]"#))
    );
    assert_eq!(
        (row.criteria_version.as_deref(), row.fee_yen, row.deadline_at, row.committee_id),
        (Some("2025.1"), Some(50_000), Some(1000), Some(c))
    );
    assert_eq!((row.submitted_at, row.updated_at, row.status.as_str()), (Some(50), 51, "draft"));
    assert!(matches!(s.record_triage(999, &triage, 1).await, Err(StoreError::NotFound { what: "application" })));
    let bad = ApplicationTriage { committee_id: Some(999), ..triage };
    assert!(matches!(s.record_triage(a, &bad, 1).await, Err(StoreError::NotFound { what: "committee" })));
}

#[tokio::test]
async fn committee_members_are_deactivated_not_deleted() {
    let (_d, s, _org, user) = store().await;
    let c = s.create_committee("Board", 1).await.unwrap();
    assert!(matches!(s.create_committee("Board", 2).await, Err(StoreError::Conflict { what: "committee" })));
    let m1 = s
        .add_committee_member(
            &NewCommitteeMember { committee_id: c, user_id: Some(user), display_name: "佐藤", field: "law", external: true, gender: "m" },
            3,
        )
        .await
        .unwrap();
    let m2 = s
        .add_committee_member(
            &NewCommitteeMember { committee_id: c, user_id: None, display_name: "鈴木", field: "lay", external: false, gender: "f" },
            4,
        )
        .await
        .unwrap();
    let row = s.committee_member(m1).await.unwrap().unwrap();
    assert_eq!((row.committee_id, row.user_id, row.field.as_str(), row.external, row.gender.as_str()), (c, Some(user), "law", true, "m"));
    assert_eq!((row.active, row.added_at, row.deactivated_at), (true, 3, None));

    s.deactivate_committee_member(m1, 9).await.unwrap();
    assert!(matches!(s.deactivate_committee_member(m1, 10).await, Err(StoreError::NotFound { what: "active committee member" })));
    assert_eq!(s.active_committee_members(c).await.unwrap().iter().map(|m| m.id).collect::<Vec<_>>(), vec![m2]);
    let all = s.committee_members(c).await.unwrap();
    assert_eq!(all.iter().map(|m| (m.id, m.active)).collect::<Vec<_>>(), vec![(m1, false), (m2, true)]);
    assert_eq!(all[0].deactivated_at, Some(9));
    assert_eq!(s.committees().await.unwrap().iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), vec!["Board"]);
    assert_eq!(s.committee(c).await.unwrap().unwrap().created_at, 1);
    let orphan = NewCommitteeMember { committee_id: 999, user_id: None, display_name: "x", field: "x", external: false, gender: "x" };
    assert!(matches!(s.add_committee_member(&orphan, 1).await, Err(StoreError::NotFound { .. })));
}

#[tokio::test]
async fn a_member_votes_once_and_a_decision_is_recorded_once() {
    let (_d, s, _org, user) = store().await;
    let a = draft(&s, user, None).await;
    let (_c, members) = committee_with_members(&s, 3).await;

    s.declare_review_conflict(a, members[2], 60).await.unwrap();
    assert!(matches!(s.declare_review_conflict(a, members[2], 61).await, Err(StoreError::Conflict { what: "review conflict" })));
    let conflicts = s.review_conflicts(a).await.unwrap();
    assert_eq!(conflicts.iter().map(|c| (c.member_id, c.declared_at)).collect::<Vec<_>>(), vec![(members[2], 60)]);

    let vote = |member_id, vote: &str, at| ReviewVoteRow { application_id: a, member_id, vote: vote.into(), opinion: "意見".into(), cast_at: at };
    s.cast_review_vote(&vote(members[1], "approve", 71)).await.unwrap();
    s.cast_review_vote(&vote(members[0], "approve", 70)).await.unwrap();
    let again = s.cast_review_vote(&vote(members[0], "reject", 72)).await;
    assert!(matches!(again, Err(StoreError::Conflict { what: "review vote" })));
    assert_eq!(s.review_votes(a).await.unwrap(), vec![vote(members[0], "approve", 70), vote(members[1], "approve", 71)]);
    assert!(matches!(s.cast_review_vote(&vote(999, "approve", 1)).await, Err(StoreError::NotFound { .. })));

    let decision = ReviewDecisionRow {
        application_id: a,
        decision: "approved".into(),
        reasons: r#"{"summary":"ok"}"#.into(),
        criteria_version: "2025.1".into(),
        votes_for: 2,
        votes_total: 2,
        decided_by: "committee:1".into(),
        decided_at: 80,
    };
    assert_eq!(s.review_decision(a).await.unwrap(), None);
    s.record_review_decision(&decision).await.unwrap();
    let second = ReviewDecisionRow { decision: "rejected".into(), decided_at: 81, ..decision.clone() };
    assert!(matches!(s.record_review_decision(&second).await, Err(StoreError::Conflict { what: "review decision" })));
    assert_eq!(s.review_decision(a).await.unwrap(), Some(decision.clone()));
    assert_eq!(s.application(a).await.unwrap().unwrap().decided_at, Some(80));
    let orphan = ReviewDecisionRow { application_id: 999, ..decision };
    assert!(matches!(s.record_review_decision(&orphan).await, Err(StoreError::NotFound { what: "application" })));
}

#[tokio::test]
async fn permits_are_versioned_per_application_and_change_status_by_compare_and_set() {
    let (_d, s, _org, user) = store().await;
    let a = draft(&s, user, None).await;
    let b = draft(&s, user, None).await;
    let (p1, v1) = s.create_permit(&new_permit(a, "permit-a-1"), 100).await.unwrap();
    let (pb, vb) = s.create_permit(&new_permit(b, "permit-b-1"), 100).await.unwrap();
    let (p2, v2) = s.create_permit(&new_permit(a, "permit-a-2"), 101).await.unwrap();
    assert_eq!((v1, vb, v2), (1, 1, 2));
    assert!(matches!(s.create_permit(&new_permit(999, "k"), 1).await, Err(StoreError::NotFound { what: "application" })));

    let row = s.permit(p1).await.unwrap().unwrap();
    assert_eq!((row.application_id, row.version, row.status.as_str(), row.key_id.as_str()), (a, 1, "active", "permit-a-1"));
    assert_eq!((row.policy.as_str(), row.starts_on.as_str(), row.expires_on.as_str()), (r#"{"tables":["visits"]}"#, "2025-01-01", "2026-01-01"));
    assert_eq!((row.created_at, row.changed_at), (100, 100));
    assert_eq!(s.permits_for_application(a).await.unwrap().iter().map(|p| (p.id, p.version)).collect::<Vec<_>>(), vec![(p1, 1), (p2, 2)]);
    assert_eq!(s.permits().await.unwrap().iter().map(|p| p.id).collect::<Vec<_>>(), vec![p1, pb, p2]);

    s.set_permit_status(p1, "active", "suspended", 110).await.unwrap();
    let stale = s.set_permit_status(p1, "active", "revoked", 111).await;
    assert!(matches!(stale, Err(StoreError::NotFound { what: "permit in that status" })));
    let row = s.permit(p1).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.changed_at), ("suspended", 110));
    assert_eq!(s.active_permits().await.unwrap().iter().map(|p| p.id).collect::<Vec<_>>(), vec![pb, p2]);

    // Superseding: the old permit's status is checked, and the new one takes the next version.
    let stale = s.supersede_permit(p2, "suspended", &new_permit(a, "permit-a-3"), 120).await;
    assert!(matches!(stale, Err(StoreError::NotFound { what: "permit in that status" })));
    assert_eq!(s.permits_for_application(a).await.unwrap().len(), 2);
    let (p3, v3) = s.supersede_permit(p2, "active", &new_permit(a, "permit-a-3"), 121).await.unwrap();
    assert_eq!(v3, 3);
    assert_eq!(s.permit(p2).await.unwrap().unwrap().status, "superseded");
    assert_eq!(s.active_permits().await.unwrap().iter().map(|p| p.id).collect::<Vec<_>>(), vec![pb, p3]);
}

#[tokio::test]
async fn a_permit_key_is_shredded_with_its_certificate() {
    let (_d, s, _org, user) = store().await;
    let a = draft(&s, user, None).await;
    let (p, _) = s.create_permit(&new_permit(a, "permit-key"), 100).await.unwrap();
    s.insert_data_key("permit-key", &[1, 2, 3], "fp", 100).await.unwrap();
    s.insert_data_key("other-key", &[4], "fp", 100).await.unwrap();

    assert!(s.delete_data_key("other-key").await.unwrap());
    assert_eq!(s.data_key("other-key").await.unwrap(), None);
    assert!(!s.delete_data_key("other-key").await.unwrap());

    // A certificate for a missing permit leaves the key in place.
    let orphan = NewDeletionCertificate { permit_id: 999, key_id: "permit-key", reason: "expired", destroyed_at: 200, log_index: None };
    assert!(matches!(s.destroy_data_key_with_certificate(&orphan).await, Err(StoreError::NotFound { what: "permit" })));
    assert!(s.data_key("permit-key").await.unwrap().is_some());

    let cert = NewDeletionCertificate { permit_id: p, key_id: "permit-key", reason: "expired", destroyed_at: 200, log_index: None };
    let c = s.destroy_data_key_with_certificate(&cert).await.unwrap();
    assert_eq!(s.data_key("permit-key").await.unwrap(), None);
    assert!(matches!(s.destroy_data_key_with_certificate(&cert).await, Err(StoreError::NotFound { what: "data key" })));
    let certs = s.deletion_certificates_for_permit(p).await.unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(
        (certs[0].id, certs[0].key_id.as_str(), certs[0].reason.as_str(), certs[0].destroyed_at, certs[0].log_index),
        (c, "permit-key", "expired", 200, None)
    );
    s.set_deletion_certificate_log_index(c, 5).await.unwrap();
    assert!(matches!(s.set_deletion_certificate_log_index(c, 6).await, Err(StoreError::NotFound { .. })));

    let manual = NewDeletionCertificate { permit_id: p, key_id: "old-key", reason: "revoked", destroyed_at: 210, log_index: Some(8) };
    let c2 = s.insert_deletion_certificate(&manual).await.unwrap();
    let all = s.deletion_certificates().await.unwrap();
    assert_eq!(all.iter().map(|c| (c.id, c.log_index)).collect::<Vec<_>>(), vec![(c, Some(5)), (c2, Some(8))]);
}

#[tokio::test]
async fn the_outbox_keeps_pending_sent_and_failed_messages() {
    let (_d, s, _org, user) = store().await;
    let msg = |subject| NewNotification { user_id: Some(user), address: "rin@example.jp", subject, body: "本文" };
    let m1 = s.enqueue_notification(&msg("one"), 10).await.unwrap();
    let m2 = s.enqueue_notification(&msg("two"), 11).await.unwrap();
    let m3 = s.enqueue_notification(&NewNotification { user_id: None, address: "ops@example.jp", subject: "three", body: "" }, 12).await.unwrap();
    assert_eq!(s.pending_notifications(5, 10).await.unwrap().iter().map(|m| m.id).collect::<Vec<_>>(), vec![m1, m2, m3]);
    assert_eq!(s.pending_notifications(5, 2).await.unwrap().iter().map(|m| m.id).collect::<Vec<_>>(), vec![m1, m2]);

    s.mark_notification_sent(m1, 20).await.unwrap();
    assert!(matches!(s.mark_notification_sent(m1, 21).await, Err(StoreError::NotFound { what: "unsent notification" })));
    s.record_notification_failure(m2, "connection refused").await.unwrap();
    s.record_notification_failure(m2, "timeout").await.unwrap();
    assert!(matches!(s.record_notification_failure(m1, "x").await, Err(StoreError::NotFound { .. })));

    let pending = s.pending_notifications(5, 10).await.unwrap();
    assert_eq!(pending.iter().map(|m| m.id).collect::<Vec<_>>(), vec![m2, m3]);
    assert_eq!((pending[0].attempts, pending[0].last_error.as_deref(), pending[0].sent_at), (2, Some("timeout"), None));
    // A message that failed too often is no longer offered.
    assert_eq!(s.pending_notifications(2, 10).await.unwrap().iter().map(|m| m.id).collect::<Vec<_>>(), vec![m3]);

    let mine = s.notifications_for_user(user, 10).await.unwrap();
    assert_eq!(mine.iter().map(|m| (m.id, m.sent_at)).collect::<Vec<_>>(), vec![(m2, None), (m1, Some(20))]);
    assert_eq!((mine[1].subject.as_str(), mine[1].body.as_str(), mine[1].created_at, mine[1].attempts), ("one", "本文", 10, 1));
    assert_eq!(s.notifications_for_user(user, 1).await.unwrap().len(), 1);
    let orphan = NewNotification { user_id: Some(999), address: "x", subject: "x", body: "x" };
    assert!(matches!(s.enqueue_notification(&orphan, 1).await, Err(StoreError::NotFound { what: "user" })));
}

#[tokio::test]
async fn published_criteria_and_tariffs_are_immutable_and_the_latest_is_found() {
    let (_d, s, _org, _user) = store().await;
    assert_eq!(s.latest_review_criteria().await.unwrap(), None);
    s.insert_review_criteria("2025.1", "2025-01-01", "[criteria]\na = 1\n", 10).await.unwrap();
    s.insert_review_criteria("2025.2", "2025-06-01", "[criteria]\na = 2\n", 11).await.unwrap();
    // Recorded later but published earlier: not the latest.
    s.insert_review_criteria("2024.9", "2024-09-01", "[criteria]\na = 0\n", 12).await.unwrap();
    // Same publication date, recorded later: the latest.
    s.insert_review_criteria("2025.2b", "2025-06-01", "[criteria]\na = 3\n", 13).await.unwrap();
    let again = s.insert_review_criteria("2025.1", "2025-01-01", "edited", 14).await;
    assert!(matches!(again, Err(StoreError::Conflict { what: "review criteria version" })));
    assert_eq!(s.review_criteria("2025.1").await.unwrap().unwrap().body, "[criteria]\na = 1\n");
    assert_eq!(s.review_criteria("nope").await.unwrap(), None);
    assert_eq!(s.latest_review_criteria().await.unwrap().unwrap().version, "2025.2b");
    let versions: Vec<_> = s.review_criteria_versions().await.unwrap().into_iter().map(|r| r.version).collect();
    assert_eq!(versions, vec!["2024.9", "2025.1", "2025.2", "2025.2b"]);

    s.insert_tariff("t1", "2025-01-01", "fee = 1", 10).await.unwrap();
    s.insert_tariff("t2", "2025-04-01", "fee = 2", 11).await.unwrap();
    assert!(matches!(s.insert_tariff("t1", "2025-01-01", "fee = 9", 12).await, Err(StoreError::Conflict { what: "tariff version" })));
    let latest = s.latest_tariff().await.unwrap().unwrap();
    assert_eq!(
        (latest.version.as_str(), latest.published_on.as_str(), latest.body.as_str(), latest.recorded_at),
        ("t2", "2025-04-01", "fee = 2", 11)
    );
    assert_eq!(s.tariff("t1").await.unwrap().unwrap().body, "fee = 1");
    assert_eq!(s.tariffs().await.unwrap().len(), 2);
    // The two tables are separate.
    assert_eq!(s.tariff("2025.1").await.unwrap(), None);
}

#[tokio::test]
async fn a_consent_scope_is_replaced_as_a_whole() {
    let (_d, s, org, _user) = store().await;
    let ds = NewDataset { name: "a", holder_id: org, kind: "ehr", title_ja: "t", title_en: "t", description_ja: "d", description_en: "d" };
    let d = s.create_dataset(&ds, 1).await.unwrap();
    assert_eq!(s.dataset_consent_scope(d).await.unwrap(), None);
    s.set_dataset_consent_scope(d, r#"{"purposes":["research"]}"#, "user:3", 10).await.unwrap();
    s.set_dataset_consent_scope(d, r#"{"purposes":["research","commercial"]}"#, "user:4", 20).await.unwrap();
    let scope = s.dataset_consent_scope(d).await.unwrap().unwrap();
    assert_eq!((scope.dataset_id, scope.scope.as_str()), (d, r#"{"purposes":["research","commercial"]}"#));
    assert_eq!((scope.updated_by.as_str(), scope.updated_at), ("user:4", 20));
    assert!(matches!(s.set_dataset_consent_scope(999, "{}", "user:3", 1).await, Err(StoreError::NotFound { what: "dataset" })));
}

#[tokio::test]
async fn accreditations_are_listed_per_user() {
    let (_d, s, _org, user) = store().await;
    let other = add_user(&s, "sora", None).await;
    let acc = |user_id, course, completed_on| NewAccreditation { user_id, course, completed_on, expires_on: "2027-01-01", recorded_by: "user:1" };
    let a2 = s.add_accreditation(&acc(user, "privacy", "2025-03-01"), 10).await.unwrap();
    let b = s.add_accreditation(&acc(other, "ethics", "2025-01-01"), 11).await.unwrap();
    let a1 = s.add_accreditation(&acc(user, "ethics", "2025-02-01"), 12).await.unwrap();
    let mine = s.accreditations_for_user(user).await.unwrap();
    assert_eq!(mine.iter().map(|r| (r.id, r.course.as_str())).collect::<Vec<_>>(), vec![(a1, "ethics"), (a2, "privacy")]);
    assert_eq!((mine[0].expires_on.as_str(), mine[0].recorded_by.as_str(), mine[0].recorded_at), ("2027-01-01", "user:1", 12));
    assert_eq!(s.accreditations().await.unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), vec![a2, b, a1]);
    assert!(matches!(s.add_accreditation(&acc(999, "x", "2025-01-01"), 1).await, Err(StoreError::NotFound { what: "user" })));
}
