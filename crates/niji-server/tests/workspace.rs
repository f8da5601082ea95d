//! The analysis workspace in the portal: a named researcher browses the schema, runs SQL on dummy
//! data and an aggregate on the real data (only the checked table), submits a job; output
//! checkers read its per-cell verdicts and approve it through CSRF-checked forms (the researcher
//! cannot sign); the researcher downloads the release, whose bytes hash to what the log
//! published; others get 403, visitors the login page.

mod common;
use common::world::*;
use common::*;

use axum::http::{header, StatusCode};
use sha2::{Digest, Sha256};

const BY_CODE: &str = "SELECT code, count(*) AS n FROM ehr.conditions GROUP BY code";
const BY_SEX: &str = "SELECT sex, count(*) AS n FROM ehr.patients GROUP BY sex";

/// The text of each cell (`<td>`) of each body row of the table with this id.
fn table_cells(html: &str, id: &str) -> Vec<Vec<String>> {
    let start = html.find(&format!("<table id=\"{id}\"")).unwrap_or_else(|| panic!("no table {id}: {html}"));
    let table = &html[start..start + html[start..].find("</table>").unwrap()];
    let body = &table[table.find("<tbody>").unwrap()..];
    body.split("<tr")
        .skip(1)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let inner = &cell[cell.find('>').unwrap() + 1..];
                    inner[..inner.find("</td>").unwrap()].to_string()
                })
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn researchers_query_and_submit_checkers_approve_and_the_release_downloads() {
    let app = app().await;
    let send = |req| send_to(&app.router, req);
    let p = app.permit;
    let workspace = format!("/permits/{p}/workspace");
    let researcher = app.sign_in("researcher").await;

    // The permits page links the workspace; the workspace shows the granted schema.
    let permits = send(get("/permits", &researcher)).await;
    assert!(permits.body.contains(&format!("href=\"{workspace}\"")), "{}", permits.body);
    let page = send(get(&workspace, &researcher)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for needle in [
        "<code>ehr.conditions</code>",
        "<code>ehr.patients</code>",
        "<code>code</code>",
        "<code>sex</code>",
        "<code>person_id</code>",
        "傷病名",
        "患者",
    ] {
        assert!(page.body.contains(needle), "{needle} missing");
    }
    let csrf = hidden_csrf(&page.body);

    // Dummy data: rows come back.
    let r = send(post_form(&format!("{workspace}/dummy"), &researcher, &[("csrf", &csrf), ("sql", BY_CODE)])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!table_cells(&r.body, "dummy-result").is_empty());

    // Real data: only the checked table; no count below 10; suppressed cells marked.
    let r = send(post_form(&format!("{workspace}/real"), &researcher, &[("csrf", &csrf), ("sql", BY_CODE)])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rows = table_cells(&r.body, "real-result");
    assert!(!rows.is_empty());
    let mut suppressed = 0;
    for row in &rows {
        let n = row.last().unwrap();
        if n == "秘匿" {
            suppressed += 1;
        } else {
            assert!(n.parse::<f64>().unwrap() >= 10.0, "a small count is visible: {row:?}");
        }
    }
    // Codes of fewer than 10 persons are left out, keys and all (any suppressed cell shown is a
    // complement of theirs).
    let rare = rare_condition_code(&app);
    assert!(rows.iter().all(|r| r[0] != rare), "{rare} is listed: {rows:?} ({suppressed} suppressed)");
    // A refused query: a fixed text, never the engine's.
    let r = send(post_form(
        &format!("{workspace}/real"),
        &researcher,
        &[("csrf", &csrf), ("sql", "SELECT person_id, count(*) FROM ehr.conditions GROUP BY person_id")],
    ))
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("id=\"error\"") && !r.body.contains("DataFusion") && !r.body.contains("Error during"), "{}", r.body);
    // A refusal says what it means and what to do instead, in the page's language.
    let extreme = "SELECT max(code) AS last FROM ehr.conditions";
    let r = send(post_form(&format!("{workspace}/real"), &researcher, &[("csrf", &csrf), ("sql", extreme)])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("(aggregate_function)") && r.body.contains("一人の値を示す"), "{}", r.body);
    // A forged token runs nothing.
    let r = send(post_form(&format!("{workspace}/real"), &researcher, &[("csrf", "forged"), ("sql", BY_CODE)])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // A job with two outputs (the third slot empty).
    let r = send(post_form(
        &format!("{workspace}/jobs"),
        &researcher,
        &[("csrf", &csrf), ("name", "by_sex"), ("sql", BY_SEX), ("name", "by_code"), ("sql", BY_CODE_AND_WOMEN), ("name", ""), ("sql", "")],
    ))
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let job = app.instance.store.jobs().await.unwrap().last().unwrap().id;
    assert_eq!(r.location(), format!("{workspace}#job-{job}"));
    // The job runs in the background: listed as running, then awaiting review.
    let page = send(get(&workspace, &researcher)).await;
    if page.body.contains(&format!("id=\"job-{job}\" data-status=\"checking\"")) {
        assert!(page.body.contains("id=\"jobs-running\""), "{}", page.body);
    }
    assert_eq!(finished_job(&app, job).await, "awaiting_review");
    let page = send(get(&workspace, &researcher)).await;
    assert!(page.body.contains(&format!("id=\"job-{job}\" data-status=\"awaiting_review\"")), "{}", page.body);
    assert!(!page.body.contains("id=\"jobs-running\""));
    assert!(page.body.contains("id=\"no-releases\""));
    // Malformed outputs: a fixed text.
    let r = send(post_form(&format!("{workspace}/jobs"), &researcher, &[("csrf", &csrf), ("name", "bad name!"), ("sql", BY_SEX)])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("ジョブには1〜20個の出力が必要です"));

    // An output checker reads the queue: checked tables, per-cell verdicts with reasons.
    let checker1 = app.sign_in("checker1").await;
    let queue = send(get("/checks", &checker1)).await;
    assert_eq!(queue.status, StatusCode::OK);
    assert!(queue.body.contains("id=\"nav-checks\""));
    assert!(queue.body.contains(&format!("id=\"check-{job}\"")) && queue.body.contains("<code>by_code</code>"), "{}", queue.body);
    assert!(queue.body.contains("class=\"verdict\"") && queue.body.contains("class=\"suppressed\">秘匿"), "{}", queue.body);
    let signoff = format!("/checks/{job}/signoff");

    // The researcher cannot sign (named on the permit): the library's fixed refusal.
    let mine = send(get("/checks", &researcher)).await;
    let r = send(post_form(&signoff, &researcher, &[("csrf", &hidden_csrf(&mine.body)), ("verdict", "approve")])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("提出者と許可に記載された研究者は、その出力を確認できません。"), "{}", r.body);
    // Another researcher is no checker.
    let other = app.sign_in("other").await;
    let other_csrf = hidden_csrf(&send(get("/account", &other)).await.body);
    let r = send(post_form(&signoff, &other, &[("csrf", &other_csrf), ("verdict", "approve")])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Two different checkers approve; a forged token is refused first.
    let r = send(post_form(&signoff, &checker1, &[("csrf", "forged"), ("verdict", "approve")])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(app.instance.store.signoffs(job).await.unwrap().is_empty());
    let r = send(post_form(&signoff, &checker1, &[("csrf", &hidden_csrf(&queue.body)), ("verdict", "approve")])).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/checks"));
    let queue = send(get("/checks", &checker1)).await;
    assert!(queue.body.contains("checker1: 承認する"), "{}", queue.body);
    let r = send(post_form(&signoff, &checker1, &[("csrf", &hidden_csrf(&queue.body)), ("verdict", "approve")])).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let checker2 = app.sign_in("checker2").await;
    let queue2 = send(get("/checks", &checker2)).await;
    let r = send(post_form(&signoff, &checker2, &[("csrf", &hidden_csrf(&queue2.body)), ("verdict", "approve")])).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/checks"));
    assert!(send(get("/checks", &checker2)).await.body.contains("id=\"no-checks\""));

    // The researcher downloads the release: its bytes hash to what the log published.
    let release = app.instance.store.releases().await.unwrap().into_iter().find(|r| r.job_id == job).expect("released");
    let page = send(get(&workspace, &researcher)).await;
    assert!(page.body.contains(&format!("id=\"job-{job}\" data-status=\"released\"")));
    assert!(page.body.contains(&format!("href=\"/releases/{}/file\"", release.id)));
    let file = format!("/releases/{}/file", release.id);
    let r = send(get(&file, &researcher)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"));
    let log = app.instance.log();
    let published = (0..log.size())
        .map(|i| serde_json::from_slice::<serde_json::Value>(&log.entry(i).unwrap()).unwrap())
        .find(|e| e["action"] == "release.published" && e["object"] == format!("release:{}", release.id))
        .expect("release.published logged");
    assert_eq!(hex::encode(Sha256::digest(r.body.as_bytes())), published["data"]["csv_sha256"].as_str().unwrap());
    let mut lines = r.body.trim_start_matches('\u{feff}').lines();
    let header_line: Vec<&str> = lines.next().unwrap().split(',').collect();
    let n = header_line.iter().position(|h| *h == "n").unwrap();
    for line in lines {
        let v = line.split(',').nth(n).unwrap();
        assert!(v == "suppressed" || v.parse::<f64>().unwrap() >= 10.0, "{line}");
    }
    let r = send(get(&format!("/releases/{}/metadata", release.id), &researcher)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["release"], release.id);
    // Operators may download too.
    let operator = app.sign_in("operator").await;
    assert_eq!(send(get(&file, &operator)).await.status, StatusCode::OK);
    assert_eq!(send(get("/checks", &operator)).await.status, StatusCode::FORBIDDEN);

    // Another researcher: 403 on the workspace, its forms and the release.
    assert_eq!(send(get(&workspace, &other)).await.status, StatusCode::FORBIDDEN);
    let r = send(post_form(&format!("{workspace}/jobs"), &other, &[("csrf", &other_csrf), ("name", "x"), ("sql", BY_SEX)])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(post_form(&format!("{workspace}/dummy"), &other, &[("csrf", &other_csrf), ("sql", BY_SEX)])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(get(&file, &other)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!r.body.contains("by_code"));
    assert!(!send(get("/permits", &other)).await.body.contains(&workspace));

    // A citizen and a visitor get nothing.
    let citizen = app.sign_in("citizen").await;
    for path in [workspace.as_str(), "/checks", file.as_str()] {
        let r = send(get(path, &citizen)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        assert!(!r.body.contains("by_code") && !r.body.contains("ehr.conditions"), "{path}");
        let r = send(get(path, "")).await;
        assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/login"), "{path}");
    }
}
