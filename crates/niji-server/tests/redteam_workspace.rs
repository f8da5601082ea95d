//! Red-team tests of the analysis workspace, the output checkers' queue and job releases
//! (code added since 3492b39). Each test states the attack; a failing test is a finding.

mod common;
use common::world::*;
use common::*;

use axum::http::StatusCode;
use niji_applications::Actor;

const BY_CODE: &str = "SELECT code, count(*) AS n FROM ehr.conditions GROUP BY code";
const BY_SEX: &str = "SELECT sex, count(*) AS n FROM ehr.patients GROUP BY sex";

async fn user_id(app: &App, name: &str) -> i64 {
    app.instance.store.user_by_username(name).await.unwrap().unwrap().id
}

/// Attack: list the codes of fewer than 10 persons through the permit's own checked output. The
/// released table used to keep the keys of suppressed rows, so `HAVING count(DISTINCT person_id)
/// < 10` (or a `WHERE` on a rare combination) listed them; now such rows are left out whole.
#[tokio::test(flavor = "multi_thread")]
async fn codes_of_few_persons_are_not_listed_with_suppressed_counts() {
    let app = app().await;
    let researcher = user_id(&app, "researcher").await;
    let rare = rare_condition_code(&app);
    for sql in [
        "SELECT code, count(*) AS n FROM ehr.conditions GROUP BY code HAVING count(DISTINCT person_id) < 10".to_string(),
        BY_CODE.to_string(),
        format!("SELECT code, count(*) AS n FROM ehr.conditions WHERE person_id IN (SELECT person_id FROM ehr.conditions WHERE code = '{rare}') GROUP BY code"),
        // An outer join whose person ids are all missing: no persons counted behind any row.
        "SELECT c.code, count(*) AS n FROM ehr.conditions c LEFT JOIN ehr.patients p ON p.person_id = c.person_id AND 1 = 0 GROUP BY c.code".to_string(),
        // A margin's `*` written by the researcher.
        format!("SELECT CASE WHEN code = '{rare}' THEN '*' ELSE code END AS code, count(*) AS n FROM ehr.conditions GROUP BY 1"),
    ] {
        let out = niji_analysis::query_real(&app.instance, researcher, app.permit, &sql).await.expect("runs");
        let keys: Vec<&str> = out.rows.iter().map(|(k, _)| k[0].as_str()).collect();
        assert!(!keys.contains(&rare.as_str()), "{sql}: the rare code {rare} is listed: {keys:?}");
        assert!(out.rows.iter().all(|(_, v)| v.iter().all(|x| !matches!(x, niji_sdc::Shown::Value(n) if *n > 0.0 && *n < 10.0))));
        assert!(!keys.contains(&"*"), "{sql}: a margin of a few persons is listed");
    }
    // Grouped by code, the code left out of the output: one row per code of at least 10 persons,
    // not one suppressed row per rare code. (Asked on a fresh instance of the same data: after
    // the queries above, it can be refused for showing, unlabelled, a count one of them
    // suppressed to protect a rare code.)
    let by_code = niji_analysis::query_real(&app.instance, researcher, app.permit, BY_CODE).await.unwrap();
    const KEYLESS: &str = "SELECT count(*) AS n FROM ehr.conditions GROUP BY code";
    let fresh = world::app().await;
    let fresh_researcher = user_id(&fresh, "researcher").await;
    let keyless = niji_analysis::query_real(&fresh.instance, fresh_researcher, fresh.permit, KEYLESS).await.unwrap();
    assert_eq!(keyless.rows.len(), by_code.rows.len());
    // The same without keys and with no persons counted (an outer join's missing ids): a group's
    // row is never taken for an empty one, so none is listed.
    let sql = "SELECT count(p.person_id) AS n FROM ehr.conditions c LEFT JOIN ehr.patients p ON p.person_id = c.person_id AND 1 = 0 GROUP BY c.code";
    let uncounted = niji_analysis::query_real(&app.instance, researcher, app.permit, sql).await.unwrap();
    assert!(uncounted.rows.is_empty(), "{:?}", uncounted.rows);
    // A LIMIT counts only the rows shown: a left-out rare group takes no place, so the window
    // holds the same row whether or not the group exists.
    for code in [rare.as_str(), "no-such-code"] {
        let sql =
            format!("SELECT CASE WHEN code = '{code}' THEN 'a' ELSE 'b' END AS k, count(*) AS n FROM ehr.conditions GROUP BY 1 ORDER BY 1 LIMIT 1");
        let out = niji_analysis::query_real(&app.instance, researcher, app.permit, &sql).await.unwrap();
        let keys: Vec<&str> = out.rows.iter().map(|(k, _)| k[0].as_str()).collect();
        assert_eq!(keys, ["b"], "{sql}");
    }
}

/// Attack: a researcher who also holds the output-checker role (the fixture's own set-up, and
/// one `sign_off` explicitly anticipates) opens `/checks` and reads the per-cell verdicts of
/// their OWN job. The verdict text of a primary suppression quotes the cell's exact person count
/// ("対象者が3人で、…"), so the named researcher learns every suppressed small count.
/// Expected: the queue hides jobs the checker may not sign (submitter / named on the permit), or
/// at least never shows a suppressed cell's count to them.
#[tokio::test(flavor = "multi_thread")]
async fn named_researcher_with_checker_role_reads_exact_small_counts_of_own_job() {
    let app = app().await;
    let p = app.permit;
    let researcher = app.sign_in("researcher").await;
    let page = send_to(&app.router, get(&format!("/permits/{p}/workspace"), &researcher)).await;
    let csrf = hidden_csrf(&page.body);
    let r = send_to(
        &app.router,
        post_form(&format!("/permits/{p}/workspace/jobs"), &researcher, &[("csrf", &csrf), ("name", "by_code"), ("sql", BY_CODE)]),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let job = app.instance.store.jobs().await.unwrap().last().unwrap().id;
    assert_eq!(finished_job(&app, job).await, "awaiting_review");

    let queue = send_to(&app.router, get("/checks", &researcher)).await;
    let leaked: Vec<String> = (1..10).map(|n| format!("対象者が{n}人で")).filter(|needle| queue.body.contains(needle.as_str())).collect();
    assert!(leaked.is_empty(), "the researcher named on the permit reads suppressed counts of their own job in /checks: {leaked:?}");
}

/// Attack (differencing): two outputs whose cells differ by a handful of persons (the persons
/// with a rare code removed). With the same dimension name the job is refused ("differencing");
/// renaming the dimension with an alias (`sex AS s`) makes the differencing rule compare nothing,
/// and the job passes to the checkers with both tables: their difference isolates the persons.
#[tokio::test(flavor = "multi_thread")]
async fn differencing_is_bypassed_by_renaming_the_dimension() {
    let app = app().await;
    let researcher = user_id(&app, "researcher").await;
    let code = rare_condition_code(&app);
    let all = "SELECT sex, count(*) AS n FROM ehr.patients GROUP BY sex".to_string();
    let without = |dim: &str| {
        format!(
            "SELECT sex AS {dim}, count(*) AS n FROM ehr.patients WHERE person_id NOT IN (SELECT person_id FROM ehr.conditions WHERE code = '{code}') GROUP BY sex"
        )
    };
    // Control: same dimension name → refused by differencing.
    let control =
        niji_analysis::jobs::submit_job(&app.instance, researcher, app.permit, &[("all".into(), all.clone()), ("without".into(), without("sex"))])
            .await
            .unwrap();
    assert_eq!((control.status.as_str(), control.reason.as_deref()), ("refused", Some("differencing")), "control: {control:?}");
    // Attack: the same cohorts, the dimension renamed.
    let attack = niji_analysis::jobs::submit_job(&app.instance, researcher, app.permit, &[("all".into(), all), ("without".into(), without("s"))])
        .await
        .unwrap();
    assert_eq!(
        attack.status,
        "refused",
        "renaming the dimension bypasses differencing: {:?}",
        attack.outputs.iter().map(|o| (&o.name, &o.status, &o.checked_table)).collect::<Vec<_>>()
    );
}

/// Attack: a job awaits review; the permit is revoked (key destroyed, deletion certificate);
/// the second checker approves anyway. Expected: nothing is released under a closed permit.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_is_released_after_its_permit_was_revoked() {
    let app = app().await;
    let researcher = user_id(&app, "researcher").await;
    let job = niji_analysis::jobs::submit_job(&app.instance, researcher, app.permit, &[("by_sex".into(), BY_SEX.into())]).await.unwrap();
    assert_eq!(job.status, "awaiting_review", "{job:?}");
    let c1 = user_id(&app, "checker1").await;
    let c2 = user_id(&app, "checker2").await;
    niji_analysis::jobs::sign_off(&app.instance, c1, job.id, true, "approved").await.unwrap();

    let ops = Actor::load(&app.instance.store, app.operator).await.unwrap();
    niji_applications::revoke_permit(&app.instance, &ops, app.permit, "breach").await.unwrap();
    assert_eq!(app.instance.store.permit(app.permit).await.unwrap().unwrap().status, "revoked");

    let second = niji_analysis::jobs::sign_off(&app.instance, c2, job.id, true, "approved").await;
    let releases = app.instance.store.releases().await.unwrap();
    assert!(
        releases.iter().all(|r| r.job_id != job.id),
        "a release was published under a revoked permit: {second:?}, files in {:?}",
        niji_analysis::jobs::release_dir(&app.instance, releases.last().map(|r| r.id).unwrap_or(0))
    );
}
