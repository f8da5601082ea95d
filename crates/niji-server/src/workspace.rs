//! The analysis workspace of a permit in the portal (issue 5): researchers named on a permit of
//! the Visiting track browse its schema, run SQL on the permit's dummy data (rows shown), run
//! interactive aggregate queries on the real data (only the checked table is shown, suppressed
//! cells marked 秘匿), submit jobs and download their releases; output checkers review the jobs
//! awaiting review (`/checks`: checked tables, per-cell verdicts, differencing, sign-offs) and
//! approve or reject them. The work is `niji-analysis`'s; this module maps its errors to fixed
//! translated texts (never DataFusion's text or a cell value) and never shows a raw result.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use niji_accounts::{Session, UserSummary};
use niji_analysis::jobs::JobError;
use niji_analysis::AnalysisError;
use niji_core::Role;
use niji_review::PermitPolicy;
use niji_sandbox::{Refusal, SandboxError};
use niji_sdc::Shown;
use serde::Deserialize;
use serde_json::Value;

use crate::i18n::Lang;
use crate::portal::{constant_time_eq, error_page, render, MaybeSession, PageContext};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/permits/{id}/workspace", get(workspace_get))
        .route("/permits/{id}/workspace/dummy", post(dummy_post))
        .route("/permits/{id}/workspace/real", post(real_post))
        .route("/permits/{id}/workspace/jobs", post(job_post))
        .route("/checks", get(checks_get))
        .route("/checks/{job}/signoff", post(signoff_post))
        .route("/checks/permits/{id}/stops", post(clear_stops_post))
        .route("/releases/{id}/file", get(release_file))
        .route("/releases/{id}/metadata", get(release_metadata))
}

/// The label of the workspace link on the permits page.
pub(crate) fn link_label(lang: &str) -> &'static str {
    if lang == "en" {
        EN.open_workspace
    } else {
        JA.open_workspace
    }
}

// ---------------------------------------------------------------------------------------------
// Text.

pub(crate) struct Text {
    open_workspace: &'static str,
    title: &'static str,
    intro: &'static str,
    permit: &'static str,
    status: &'static str,
    track: &'static str,
    preset: &'static str,
    not_visiting: &'static str,
    schema: &'static str,
    schema_hint: &'static str,
    column: &'static str,
    column_type: &'static str,
    description: &'static str,
    person_id: &'static str,
    dummy_title: &'static str,
    dummy_hint: &'static str,
    sql: &'static str,
    run_dummy: &'static str,
    dummy_result: &'static str,
    real_title: &'static str,
    real_hint: &'static str,
    run_real: &'static str,
    real_result: &'static str,
    suppressed: &'static str,
    refused_cell: &'static str,
    suppressed_count: &'static str,
    rows_left_out: &'static str,
    late_answer: &'static str,
    more_rows: &'static str,
    no_rows: &'static str,
    jobs_title: &'static str,
    jobs_hint: &'static str,
    output: &'static str,
    output_name: &'static str,
    submit_job: &'static str,
    job: &'static str,
    submitted: &'static str,
    outputs: &'static str,
    reason: &'static str,
    approvals: &'static str,
    no_jobs: &'static str,
    jobs_running: &'static str,
    reload: &'static str,
    releases_title: &'static str,
    release: &'static str,
    released_at: &'static str,
    download_csv: &'static str,
    download_metadata: &'static str,
    no_releases: &'static str,
    st_checking: &'static str,
    st_awaiting: &'static str,
    st_released: &'static str,
    st_refused: &'static str,
    st_failed: &'static str,
    out_passed: &'static str,
    out_refused: &'static str,
    out_not_run: &'static str,
    checks_title: &'static str,
    checks_intro: &'static str,
    no_checks: &'static str,
    submitted_by: &'static str,
    checked_table: &'static str,
    verdicts: &'static str,
    no_verdicts: &'static str,
    row: &'static str,
    measure: &'static str,
    outcome: &'static str,
    v_suppressed: &'static str,
    v_refused: &'static str,
    v_released: &'static str,
    table_reasons: &'static str,
    summary: &'static str,
    /// cells, released, primary, secondary, refused, rounded
    summary_labels: [&'static str; 6],
    differencing: &'static str,
    compared: &'static str,
    refused_by: &'static str,
    none: &'static str,
    signoffs: &'static str,
    approve: &'static str,
    reject: &'static str,
    reason_code: &'static str,
    // Errors: fixed texts.
    err_form: &'static str,
    err_no_permit: &'static str,
    err_closed: &'static str,
    err_not_named: &'static str,
    err_wrong_track: &'static str,
    err_no_data: &'static str,
    err_unchecked: &'static str,
    err_too_many_dimensions: &'static str,
    err_internal: &'static str,
    err_parse: &'static str,
    err_unknown_name: &'static str,
    err_not_allowed: &'static str,
    /// What a refusal means and what to do instead, by its code.
    refusal: fn(Refusal) -> &'static str,
    err_not_aggregate: &'static str,
    err_person_id: &'static str,
    err_too_long: &'static str,
    err_timeout: &'static str,
    err_memory: &'static str,
    err_execution: &'static str,
    err_stops_spent: &'static str,
    stop_spent: &'static str,
    err_runs_busy: &'static str,
    runs_since_clear: &'static str,
    by: &'static str,
    stops_title: &'static str,
    stops_hint: &'static str,
    stops_used: &'static str,
    stops_left: &'static str,
    checks_stops_title: &'static str,
    checks_stops_intro: &'static str,
    clear_stops: &'static str,
    err_bad_outputs: &'static str,
    err_no_job: &'static str,
    err_no_release: &'static str,
    err_not_checker: &'static str,
    err_conflicted: &'static str,
    err_not_awaiting: &'static str,
    err_already_signed: &'static str,
    err_bad_reason: &'static str,
    err_download: &'static str,
    err_permit_closed: &'static str,
    err_differencing: &'static str,
    err_tampered: &'static str,
}

static JA: Text = Text {
    open_workspace: "分析環境を開く",
    title: "分析環境",
    intro: "データは基盤の外に出ません。ダミーデータでコードを書き、実データでの集計は自動の出力チェックを経た表だけが表示されます。ジョブの結果は出力確認者2名の承認後に公開されます。",
    permit: "許可",
    status: "状態",
    track: "利用形態",
    preset: "出力チェックの基準",
    not_visiting: "この許可はオンサイト（訪問型）の分析環境の対象ではありません。",
    schema: "利用できるデータ",
    schema_hint: "テーブルは「スキーマ.テーブル」で指定します。person_id は許可ごとの仮名IDで、出力には含められません。",
    column: "列",
    column_type: "型",
    description: "説明",
    person_id: "許可ごとに付け替えた仮名の個人ID（4バイト）。結合と人数の計算に使い、出力はできません。",
    dummy_title: "ダミーデータで試す",
    dummy_hint: "実データの安全な周辺分布から作ったダミーデータです。行をそのまま見られます。値によって失敗しうる処理は実データと同じくここでも使えません。文字列の CAST は TRY_CAST に、列での割り算は DOUBLE にしてから書いてください。",
    sql: "SQL",
    run_dummy: "ダミーデータで実行",
    dummy_result: "ダミーデータの結果",
    real_title: "実データで集計する（対話型）",
    real_hint: "集計クエリのみ。結果は許可の基準で自動チェックされ、基準を満たさないセルは秘匿されます。回答は、表の大きさだけから実行前に決めた時刻に返ります。",
    run_real: "実データで集計",
    real_result: "チェック済みの集計表",
    suppressed: "秘匿",
    refused_cell: "不可",
    suppressed_count: "秘匿したセル",
    late_answer: "この実行は、実行前に表の大きさだけから決めた回答時刻までに終わらなかったため、時間上限とその4分の1を過ぎた時刻に回答し、この許可の停止枠を1つ使いました。回答時刻は結果によらず決まるので、所要時間から行の内容はわかりません。",
    rows_left_out: "対象者が最小集計単位に満たない行は、キー（分類）ごと表から除いています。そうした行があるかどうか、いくつあるかは示しません。中央値・パーセンタイルはひとりの値なので、その外側の少ない方の人数（中央値なら半分）で判定します。",
    no_rows: "行はありません。",
    more_rows: "ここに表示していない残りの行（API の JSON と公開した CSV にはすべての行があります）",
    jobs_title: "ジョブ",
    jobs_hint: "名前を付けた出力（集計 SQL）を1つ以上まとめて実データで実行します（裏で実行され、一覧に状態が出ます）。結果は出力確認者の審査を経てから公開されます。空の欄は無視されます。",
    output: "出力",
    output_name: "出力名（英数字・_・-）",
    submit_job: "ジョブを提出",
    job: "ジョブ",
    submitted: "提出日時",
    outputs: "出力",
    reason: "理由",
    approvals: "承認",
    no_jobs: "ジョブはまだありません。",
    jobs_running: "実行中のジョブがあります。ジョブは裏で実行され、各出力の結果は実行前に決めた時刻に出ます。終わったかどうかは、このページを再読み込みして確認してください。",
    reload: "再読み込み",
    releases_title: "公開された結果",
    release: "公開",
    released_at: "公開日時",
    download_csv: "CSV をダウンロード",
    download_metadata: "メタデータ（JSON）",
    no_releases: "公開された結果はまだありません。",
    st_checking: "実行中",
    st_awaiting: "出力確認待ち",
    st_released: "公開済み",
    st_refused: "不許可",
    st_failed: "失敗",
    out_passed: "チェック通過",
    out_refused: "不許可",
    out_not_run: "未実行",
    checks_title: "出力チェック",
    checks_intro: "出力確認待ちのジョブ。チェック済みの表、セルごとの判定と差分の判定を確認し、承認または却下してください。公開には異なる確認者2名の承認が必要です。提出者と許可に記載された研究者は署名できません。",
    no_checks: "確認待ちのジョブはありません。",
    submitted_by: "提出者",
    checked_table: "チェック済みの表",
    verdicts: "セルごとの判定",
    no_verdicts: "すべてのセルがそのまま公開可能です。",
    row: "行",
    measure: "値",
    outcome: "判定",
    v_suppressed: "秘匿",
    v_refused: "不可",
    v_released: "公開",
    table_reasons: "表全体の理由",
    summary: "集計",
    summary_labels: ["セル", "公開", "一次秘匿", "二次秘匿", "不可", "丸め"],
    differencing: "差分の判定",
    compared: "比較した公開",
    refused_by: "差分により不可とした公開",
    none: "なし",
    signoffs: "これまでの署名",
    approve: "承認する",
    reject: "却下する",
    reason_code: "却下の理由コード（英小文字・数字・_）",
    err_form: "フォームが正しくありません。ページを読み込み直してください。",
    err_no_permit: "許可が見つかりません。",
    err_closed: "この許可は有効ではありません。",
    err_not_named: "このアカウントは許可に記載されていません。",
    err_wrong_track: "この許可の利用形態では実データのクエリは実行できません。",
    err_no_data: "許可されたデータセットに確定した版がありません。",
    err_unchecked: "出力をチェックできませんでした。",
    err_too_many_dimensions: "集計表の軸（文字列の列）が出力規則の上限を超えています（NDBの規則では3つまで）。表を分けてください。",
    err_internal: "内部エラーが発生しました。",
    err_parse: "クエリを解析または計画できませんでした。",
    err_unknown_name: "この分析環境にないテーブル、列または関数が使われています。",
    err_not_allowed: "許可されていない操作です",
    refusal: refusal_ja,
    err_not_aggregate: "集計結果のみ返せます。",
    err_person_id: "個人IDは出力やグループ化に使えません。",
    err_too_long: "クエリが長すぎます。",
    err_timeout: "クエリの実行時間が上限を超えたため中止しました。",
    err_memory: "クエリが使えるメモリの上限を超えました。",
    err_execution: "クエリの実行中にエラーが発生しました。",
    stop_spent: "実データでの実行が止まったため、この許可の停止枠を1つ使いました。",
    err_stops_spent: "この許可では上限による停止が多すぎたため、出力確認者が確認して解除するまで実データでは実行できません。ダミーデータは引き続き使えます。",
    err_runs_busy: "この許可の他の実データでの実行が進行中で、停止枠が埋まっています。終わってからもう一度実行してください。",
    runs_since_clear: "前回の解除以降の実データでの実行回数",
    by: "実行者",
    stops_title: "実データでの停止",
    stops_hint: "実データでの実行が上限(時間・メモリ)や実行中のエラーで止まると、許可の停止枠を1つ使います。止まるかどうかは少数の行の有無で変わりうるためです。枠がなくなると、出力確認者が解除するまで実データでは実行できません。ダミーデータは引き続き使えます。",
    stops_used: "使用済み",
    stops_left: "残り",
    checks_stops_title: "停止した実行のある許可",
    checks_stops_intro: "上限(時間・メモリ)や実行中のエラーで止まった実データでの実行です。どの実行が止まったかは少数の行について情報を伝えうるため、許可ごとに枠があります。止まっていない実行が多いほど、止まった1回が伝えうる情報は増えます。研究者に事情とSQL(ハッシュで照合できます)を確かめたうえで解除してください。解除は記録されます。許可に記載された研究者は解除できません。",
    clear_stops: "停止を解除",
    err_bad_outputs: "ジョブには1〜20個の出力が必要です。出力名は重複せず、1〜64文字の英数字・_・- で付けてください。",
    err_no_job: "ジョブが見つかりません。",
    err_no_release: "公開が見つかりません。",
    err_not_checker: "出力確認者の権限が必要です。",
    err_conflicted: "提出者と許可に記載された研究者は、その出力を確認できません。",
    err_not_awaiting: "このジョブは出力確認待ちではありません。",
    err_already_signed: "この確認者はこのジョブにすでに署名しています。",
    err_bad_reason: "理由は1〜32文字の英小文字・数字・_ のコードで入力してください。",
    err_download: "公開された結果をダウンロードできるのは、許可に記載された研究者と運用者だけです。",
    err_permit_closed: "この許可は有効ではありません（取消し・停止・期限切れ）。",
    err_differencing: "以前に提供した結果との差から少人数が特定できるため、この結果は提供できません（差分の確認）。",
    err_tampered: "公開のファイルがないか、公開時のハッシュと一致しません。",
};

static EN: Text = Text {
    open_workspace: "Open the analysis workspace",
    title: "Analysis workspace",
    intro: "The data never leaves the platform. Write code against dummy data; queries on the real data show only tables that passed the automatic output checks. Job results are released after two output checkers approve them.",
    permit: "Permit",
    status: "Status",
    track: "Track",
    preset: "Output rules",
    not_visiting: "This permit is not on the Visiting analysis track.",
    schema: "Data you may use",
    schema_hint: "Name tables as schema.table. person_id is a per-permit pseudonym and cannot be output.",
    column: "Column",
    column_type: "Type",
    description: "Description",
    person_id: "Pseudonymous person id re-keyed for this permit (4 bytes). For joins and person counts; it cannot be output.",
    dummy_title: "Try it on dummy data",
    dummy_hint: "Dummy data generated from disclosure-safe marginals of the real data. Rows are shown as they are. Steps that could fail on some values are refused here as on the real data: write TRY_CAST for a cast of text and divide by a column as DOUBLE.",
    sql: "SQL",
    run_dummy: "Run on dummy data",
    dummy_result: "Result on dummy data",
    real_title: "Aggregate on the real data (interactive)",
    real_hint: "Aggregate queries only. The result is checked with the permit's rules; failing cells are suppressed. The answer comes at a time fixed before the run from the tables' sizes alone.",
    run_real: "Run on the real data",
    real_result: "Checked table",
    suppressed: "秘匿 (suppressed)",
    refused_cell: "refused",
    suppressed_count: "Suppressed cells",
    late_answer: "This run did not end by the time its answer was due (fixed before it ran, from the tables' sizes alone), so it answered at the time limit and a quarter of it more, and spent one of the permit's stops. Answers come at fixed times, so how long a run takes tells nothing about the rows.",
    rows_left_out: "Rows of fewer persons than the minimum are left out of the table, keys and all; whether there are any, and how many, is not shown. A median or percentile is one person's value: it counts the persons on its thinner side (half the group for a median).",
    no_rows: "No rows.",
    more_rows: "Rows not shown here (the JSON API and the released CSV hold every row)",
    jobs_title: "Jobs",
    jobs_hint: "One or more named outputs (aggregate SQL) run together on the real data, in the background (their status is listed below). Results are released only after output checkers review them. Empty fields are ignored.",
    output: "Output",
    output_name: "Output name (letters, digits, _ or -)",
    submit_job: "Submit job",
    job: "Job",
    submitted: "Submitted",
    outputs: "Outputs",
    reason: "Reason",
    approvals: "Approvals",
    no_jobs: "No jobs yet.",
    jobs_running: "A job is running. Jobs run in the background, and each output's result comes at a time fixed before it runs. Reload this page to see whether it has finished.",
    reload: "Reload",
    releases_title: "Releases",
    release: "Release",
    released_at: "Released",
    download_csv: "Download CSV",
    download_metadata: "Metadata (JSON)",
    no_releases: "No releases yet.",
    st_checking: "Running",
    st_awaiting: "Awaiting output review",
    st_released: "Released",
    st_refused: "Refused",
    st_failed: "Failed",
    out_passed: "Passed checks",
    out_refused: "Refused",
    out_not_run: "Not run",
    checks_title: "Output checks",
    checks_intro: "Jobs awaiting output review. Read the checked tables, the per-cell verdicts and the differencing verdict, then approve or reject. A release needs two different checkers' approvals. The submitter and the researchers named on the permit cannot sign.",
    no_checks: "No jobs are awaiting review.",
    submitted_by: "Submitted by",
    checked_table: "Checked table",
    verdicts: "Per-cell verdicts",
    no_verdicts: "Every cell can be released as it is.",
    row: "Row",
    measure: "Value",
    outcome: "Verdict",
    v_suppressed: "suppressed",
    v_refused: "refused",
    v_released: "released",
    table_reasons: "Reasons for the whole table",
    summary: "Summary",
    summary_labels: ["cells", "released", "primary", "secondary", "refused", "rounded"],
    differencing: "Differencing",
    compared: "Releases compared",
    refused_by: "Refused because of",
    none: "none",
    signoffs: "Sign-offs so far",
    approve: "Approve",
    reject: "Reject",
    reason_code: "Reason code for rejecting (lower-case letters, digits, _)",
    err_form: "The form is not valid. Please reload the page.",
    err_no_permit: "Permit not found.",
    err_closed: "This permit is not active.",
    err_not_named: "This account is not named on the permit.",
    err_wrong_track: "This permit's track does not allow queries on the real data.",
    err_no_data: "A granted dataset has no committed version.",
    err_unchecked: "The output could not be checked.",
    err_too_many_dimensions: "The table has more axes (text columns) than the output rules allow (three under the NDB rules): split it.",
    err_internal: "An internal error occurred.",
    err_parse: "The query could not be parsed or planned.",
    err_unknown_name: "The query names a table, column or function that does not exist in this workspace.",
    err_not_allowed: "Not allowed",
    refusal: refusal_en,
    err_not_aggregate: "Only aggregate results can be returned.",
    err_person_id: "Person ids cannot be output or grouped by.",
    err_too_long: "The query is too long.",
    err_timeout: "The query took too long and was cancelled.",
    err_memory: "The query needed more memory than allowed.",
    err_execution: "The query failed while running.",
    stop_spent: "The run on the real data was stopped: this spent one of the permit's stops.",
    err_stops_spent: "Limits stopped too many of this permit's runs: nothing more runs on the real data until an output checker has looked at them and cleared them. Dummy data stays open.",
    err_runs_busy: "Other runs of this permit on the real data are in progress and hold the stops left; run again when they have ended.",
    runs_since_clear: "Runs on the real data since the last clearance",
    by: "Run by",
    stops_title: "Stops on real data",
    stops_hint: "A run on the real data that a limit stops (time, memory) or that fails while running spends one of the permit's stops, since whether it stops can depend on whether a few rows exist. When none is left, nothing more runs on the real data until an output checker clears them. Dummy data stays open.",
    stops_used: "used",
    stops_left: "left",
    checks_stops_title: "Permits with stopped runs",
    checks_stops_intro: "Runs on the real data that a limit (time, memory) or a failure stopped. Which runs stopped can tell about a few rows, so each permit has a budget of stops; the more runs that did not stop, the more one stop can tell. Ask the researchers what they were doing and for their SQL (it matches the hash shown), then clear; clearing is logged. Researchers named on the permit cannot clear it.",
    clear_stops: "Clear stops",
    err_bad_outputs: "A job needs 1 to 20 outputs with distinct names of 1 to 64 letters, digits, '_' or '-'.",
    err_no_job: "Job not found.",
    err_no_release: "Release not found.",
    err_not_checker: "This needs the output checker role.",
    err_conflicted: "The submitter and the researchers named on the permit cannot check its outputs.",
    err_not_awaiting: "The job is not awaiting review.",
    err_already_signed: "This checker has already signed off this job.",
    err_bad_reason: "The reason must be a code of 1 to 32 lower-case letters, digits or '_'.",
    err_download: "Only researchers named on the permit and operators may download its releases.",
    err_permit_closed: "The permit is not active (revoked, suspended or expired).",
    err_differencing: "This answer cannot be shown: its difference with an earlier release would single out a few persons (differencing).",
    err_tampered: "The release's files are missing or do not match their published hashes.",
};

fn text(lang: Lang) -> &'static Text {
    match lang {
        Lang::Ja => &JA,
        Lang::En => &EN,
    }
}

/// A refusal's meaning in Japanese.
fn refusal_ja(r: Refusal) -> &'static str {
    match r {
        Refusal::Statement | Refusal::Ddl | Refusal::Dml | Refusal::Copy => "SELECT による集計のみ実行できます。",
        Refusal::Explain => "EXPLAIN は使えません。",
        Refusal::RecursiveQuery => "再帰 CTE（WITH RECURSIVE）は使えません。",
        Refusal::UnsupportedNode => "この構文（UNNEST など）は分析環境では使えません。",
        Refusal::UnregisteredTable => "許可されたテーブルだけを読めます。",
        Refusal::Linkage => "許可にないデータセット同士の連結です。",
        Refusal::Union => "集計の UNION はできません。出力ごとに分けてください。",
        Refusal::Subquery => "この位置の副問合せは使えません（person_id IN (SELECT person_id …) は使えます）。",
        Refusal::Window => "ウィンドウ関数は person_id で PARTITION BY したものだけ使えます。",
        Refusal::AggregateFunction => "この集計関数は使えません。min・max と両端（0.1 未満・0.9 超）のパーセンタイルは一人の値を示すため、行単位の値を返す関数（array_agg など）と同様に使えません。",
        Refusal::DistinctOn => "DISTINCT ON は使えません。",
        Refusal::PersonsNotCountable => "各行の対象者数を数えられない形のクエリです。各テーブルの person_id を結合キーとして残してください。",
        Refusal::InstitutionsNotCountable => "各行の医療機関数を数えられない形のクエリです（この許可の出力基準は3施設未満のセルを秘匿します）。医療機関コード（facility_code）は、IN・EXISTS のサブクエリ、ウィンドウ関数、入れ子の集計、DISTINCT、UNION の中では条件やキーに使えません。医療機関で絞り込むときは結合した表の WHERE に書いてください。",
        Refusal::HiddenAggregate => "HAVING と ORDER BY には、グループの全行を数える集計（count(*) など）だけを使えます。FILTER・CASE を含む集計で行を選んだり並べたりすると、少数の人についてわかってしまいます。",
        Refusal::TooManyConditions => "条件付きの集計（FILTER・CASE）が多すぎます。出力を分けてください。",
        Refusal::RowsMadeBelow => "集計の下では、UNION は表全体どうしだけ、GROUP BY と DISTINCT は表の列だけで使えます（行の数が少数の人について語ってしまうため）。人を選ぶには person_id IN (SELECT person_id …) を使ってください。",
        Refusal::ValueExpression => "sum・avg など値を集計する関数の中で使えるのは、列・定数・＋－×・定数での÷・CASE・比較だけです（round・floor・abs・文字列や日付の関数、サブクエリでそれらや CASE から計算した値は、少数の人を切り出せます）。関数は集計の外に書くか、count(*) FILTER (WHERE …) で数えてください。",
        Refusal::MayFail => "データの値によって失敗しうる演算は使えません（失敗するかどうかで、少数の行の有無がわかります）。文字列の CAST は TRY_CAST（失敗すると NULL）に、整数の列での割り算は CAST(x AS DOUBLE) / y に書き換えてください。make_date・to_date・chr・整数の abs や power などの関数も使えません。",
        Refusal::JoinSize => "この結合は、表の大きさから見た最悪の場合に作る行が多すぎます（条件が選ぶ行があるかどうかで時間切れになるかが変わり、少数の行の有無がわかります）。person_id の等しさで結合するか、person_id IN (SELECT person_id …) で絞り込んでください。",
        Refusal::Limit => "集計の上の LIMIT・OFFSET は定数で一つだけ使えます。",
        Refusal::TooManyRows => "出力の行数が上限を超えました。",
        Refusal::TooManyGroups => "このグループ分けは、表全体の値の種類から見た最悪の場合に出力の行が多すぎます（条件が選ぶ行があるかどうかで拒否されるかが変わり、少数の行の有無がわかります）。日ではなく週・月・年で、より少ない列でグループ分けするか、必要なコードを IN (…) で指定してください。",
        Refusal::TableNotGranted | Refusal::NoPersonKey | Refusal::SchemaMismatch | Refusal::NameClash => "分析環境を開けませんでした。",
    }
}

/// A refusal's meaning in English.
fn refusal_en(r: Refusal) -> &'static str {
    match r {
        Refusal::Statement | Refusal::Ddl | Refusal::Dml | Refusal::Copy => "Only SELECT aggregates can run.",
        Refusal::Explain => "EXPLAIN is not available.",
        Refusal::RecursiveQuery => "Recursive CTEs (WITH RECURSIVE) are not available.",
        Refusal::UnsupportedNode => "This construct (UNNEST and the like) is not available in the workspace.",
        Refusal::UnregisteredTable => "Only the permit's tables can be read.",
        Refusal::Linkage => "The permit does not allow linking these datasets.",
        Refusal::Union => "A UNION of aggregates is not available: submit them as separate outputs.",
        Refusal::Subquery => "A subquery is not allowed here (person_id IN (SELECT person_id …) is).",
        Refusal::Window => "Window functions must be partitioned by person_id.",
        Refusal::AggregateFunction => "This aggregate is not available: min, max and percentiles below 0.1 or above 0.9 show one person's value, like the row-level ones (array_agg and others).",
        Refusal::DistinctOn => "DISTINCT ON is not available.",
        Refusal::PersonsNotCountable => "The persons behind each row cannot be counted: keep every table's person_id as a join key.",
        Refusal::InstitutionsNotCountable => "The institutions behind each row cannot be counted (this permit's output rules suppress cells of fewer than three): facility_code may not be used in IN or EXISTS subqueries, window functions, nested aggregates, DISTINCT or UNION; to choose by institution, filter the joined table in the outer WHERE.",
        Refusal::HiddenAggregate => "HAVING and ORDER BY may use only aggregates of all a group's rows (count(*) and the like): choosing or ordering rows by one with FILTER or CASE would tell about a few persons.",
        Refusal::TooManyConditions => "Too many conditional aggregates (FILTER, CASE): split the output.",
        Refusal::RowsMadeBelow => "Below the output's aggregate, a UNION may only join whole tables, and GROUP BY and DISTINCT may only use table columns (the number of rows would otherwise tell about a few persons): choose persons with person_id IN (SELECT person_id …).",
        Refusal::ValueExpression => "Inside sum, avg and other aggregates of values only columns, constants, + − ×, ÷ by a constant, CASE and comparisons may appear (round, floor, abs, string and date functions, and values computed with them or with CASE in a subquery, can single out a few persons): apply functions outside the aggregate, or count with count(*) FILTER (WHERE …).",
        Refusal::MayFail => "An operation that can fail on some values is not allowed (whether it fails would tell whether a few rows exist): write TRY_CAST (NULL when it fails) for a CAST of text, CAST(x AS DOUBLE) / y to divide by an integer column; make_date, to_date, chr, abs or power of integers and similar functions cannot be used.",
        Refusal::JoinSize => "This join could make too many rows in the worst case, judged from the tables' sizes (whether it ran out of time would tell whether the rows its conditions select exist): join on equal person_id, or narrow with person_id IN (SELECT person_id …).",
        Refusal::Limit => "LIMIT and OFFSET above the aggregate must be one constant each.",
        Refusal::TooManyRows => "The output has more rows than allowed.",
        Refusal::TooManyGroups => "This grouping could make too many output rows in the worst case, judged from the values its columns hold in the whole tables (whether it was refused would otherwise tell whether the rows its conditions select exist): group by weeks, months or years rather than days, by fewer columns, or name the codes wanted with IN (…).",
        Refusal::TableNotGranted | Refusal::NoPersonKey | Refusal::SchemaMismatch | Refusal::NameClash => "The workspace could not be opened.",
    }
}

/// A fixed text (and status) for an analysis error; a sandbox refusal names only its code.
fn analysis_error(t: &'static Text, e: &AnalysisError) -> (StatusCode, String) {
    let s = |status, text: &'static str| (status, text.to_string());
    match e {
        AnalysisError::NoPermit => s(StatusCode::NOT_FOUND, t.err_no_permit),
        AnalysisError::Closed => s(StatusCode::CONFLICT, t.err_closed),
        AnalysisError::NotNamed => s(StatusCode::FORBIDDEN, t.err_not_named),
        AnalysisError::WrongTrack => s(StatusCode::CONFLICT, t.err_wrong_track),
        AnalysisError::NoData => s(StatusCode::CONFLICT, t.err_no_data),
        AnalysisError::Unchecked => s(StatusCode::UNPROCESSABLE_ENTITY, t.err_unchecked),
        AnalysisError::TooManyDimensions => s(StatusCode::UNPROCESSABLE_ENTITY, t.err_too_many_dimensions),
        AnalysisError::Differencing => (StatusCode::UNPROCESSABLE_ENTITY, format!("{} {}", t.err_differencing, t.stop_spent)),
        AnalysisError::Stopped(r) => {
            let (status, text) = analysis_error(t, &AnalysisError::Refused(*r));
            (status, format!("{text} {}", t.stop_spent))
        }
        AnalysisError::StopsSpent => s(StatusCode::CONFLICT, t.err_stops_spent),
        AnalysisError::RunsBusy => s(StatusCode::CONFLICT, t.err_runs_busy),
        AnalysisError::Internal => {
            tracing::error!("analysis failed");
            s(StatusCode::INTERNAL_SERVER_ERROR, t.err_internal)
        }
        AnalysisError::Refused(r) => (
            StatusCode::BAD_REQUEST,
            match r {
                SandboxError::Parse => t.err_parse.to_string(),
                SandboxError::UnknownName => t.err_unknown_name.to_string(),
                SandboxError::NotAllowed(refusal) => format!("{} ({}): {}", t.err_not_allowed, refusal.code(), (t.refusal)(*refusal)),
                SandboxError::NotAggregate => t.err_not_aggregate.to_string(),
                SandboxError::PersonIdInOutput => t.err_person_id.to_string(),
                SandboxError::TooLong => t.err_too_long.to_string(),
                SandboxError::Timeout => t.err_timeout.to_string(),
                SandboxError::MemoryLimit => t.err_memory.to_string(),
                SandboxError::Execution => t.err_execution.to_string(),
                SandboxError::Internal => t.err_internal.to_string(),
            },
        ),
    }
}

fn job_error(t: &'static Text, e: &JobError) -> (StatusCode, String) {
    let s = |status, text: &'static str| (status, text.to_string());
    match e {
        JobError::Analysis(a) => analysis_error(t, a),
        JobError::BadOutputs => s(StatusCode::BAD_REQUEST, t.err_bad_outputs),
        JobError::NoJob => s(StatusCode::NOT_FOUND, t.err_no_job),
        JobError::NoRelease => s(StatusCode::NOT_FOUND, t.err_no_release),
        JobError::NotAChecker => s(StatusCode::FORBIDDEN, t.err_not_checker),
        JobError::Conflicted => s(StatusCode::FORBIDDEN, t.err_conflicted),
        JobError::NotAwaiting => s(StatusCode::CONFLICT, t.err_not_awaiting),
        JobError::AlreadySigned => s(StatusCode::CONFLICT, t.err_already_signed),
        JobError::BadReason => s(StatusCode::BAD_REQUEST, t.err_bad_reason),
        JobError::NotAllowed => s(StatusCode::FORBIDDEN, t.err_download),
        JobError::PermitClosed => s(StatusCode::CONFLICT, t.err_permit_closed),
        JobError::Tampered => {
            tracing::error!("a release's files do not match their published hashes");
            s(StatusCode::INTERNAL_SERVER_ERROR, t.err_tampered)
        }
        JobError::Internal => {
            tracing::error!("job step failed");
            s(StatusCode::INTERNAL_SERVER_ERROR, t.err_internal)
        }
    }
}

fn job_status(t: &'static Text, s: &str) -> &'static str {
    match s {
        "checking" => t.st_checking,
        "awaiting_review" => t.st_awaiting,
        "released" => t.st_released,
        "refused" => t.st_refused,
        _ => t.st_failed,
    }
}

fn output_status(t: &'static Text, s: &str) -> &'static str {
    match s {
        "passed" => t.out_passed,
        "refused" => t.out_refused,
        _ => t.out_not_run,
    }
}

fn when(ts: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ts) {
        Ok(d) => format!("{}-{:02}-{:02} {:02}:{:02} UTC", d.year(), u8::from(d.month()), d.day(), d.hour(), d.minute()),
        Err(_) => String::new(),
    }
}

fn number(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else if x.is_finite() {
        format!("{x}")
    } else {
        String::new()
    }
}

// ---------------------------------------------------------------------------------------------
// Views.

struct SchemaTable {
    sql_name: String,
    title: &'static str,
    description: &'static str,
    /// name, type, description
    columns: Vec<(String, &'static str, &'static str)>,
}

struct RowsView {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// A cell of a checked table: its text and whether it is withheld (suppressed or refused).
struct CellView {
    text: String,
    withheld: bool,
}

struct CheckedView {
    header: Vec<String>,
    /// The first [`SHOWN_ROWS`] rows.
    rows: Vec<Vec<CellView>>,
    /// Rows past those (the JSON API and the released CSV hold every row).
    more: usize,
    suppressed: usize,
    /// The run passed its slot, answered at the time limit and a grace and spent a stop.
    late: bool,
}

/// Rows of a checked table (and verdict lines) drawn on a page: an output may have up to
/// `Limits::max_groups` rows.
const SHOWN_ROWS: usize = 1_000;

struct JobLine {
    id: i64,
    status_code: String,
    status: &'static str,
    reason: Option<String>,
    created: String,
    /// name, status, refusal code
    outputs: Vec<(String, &'static str, String)>,
    approvals: usize,
    release_id: Option<i64>,
}

struct ReleaseLine {
    id: i64,
    job_id: i64,
    released_at: String,
    csv_sha256: String,
}

#[derive(Default)]
struct Extra {
    dummy: Option<RowsView>,
    real: Option<CheckedView>,
    error: Option<String>,
    sql_dummy: String,
    sql_real: String,
}

#[derive(Template)]
#[template(path = "workspace.html")]
struct WorkspacePage {
    page: PageContext,
    t: &'static Text,
    permit_id: i64,
    permit_status: String,
    track: &'static str,
    visiting: bool,
    preset: String,
    schema: Vec<SchemaTable>,
    dummy: Option<RowsView>,
    real: Option<CheckedView>,
    error: Option<String>,
    sql_dummy: String,
    sql_real: String,
    jobs: Vec<JobLine>,
    /// A job of the list is still running (its outputs' slots on the real data).
    jobs_running: bool,
    releases: Vec<ReleaseLine>,
    /// The permit's stops on real data: (used, budget, left).
    stops: (u32, u32, u32),
}

/// The permit's policy when the signed-in account is a researcher named on it; otherwise the
/// response to give (login, 404, 403).
async fn named_researcher<'a>(
    state: &AppState,
    lang: Lang,
    s: &'a MaybeSession,
    uri: &Uri,
    permit_id: i64,
) -> Result<(&'a Session, niji_store::PermitRow, PermitPolicy), Response> {
    let Some(sess) = s.signed_in() else { return Err(Redirect::to("/login").into_response()) };
    match researcher_permit(state, &sess.user, permit_id).await {
        Ok((permit, policy)) => Ok((sess, permit, policy)),
        Err(Access::NotFound) => Err(error_page(StatusCode::NOT_FOUND, lang, Some(sess), uri, |m| m.err_not_found)),
        Err(Access::Forbidden) => Err(error_page(StatusCode::FORBIDDEN, lang, Some(sess), uri, |m| m.err_forbidden)),
        Err(Access::Internal) => Err(error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, Some(sess), uri, |m| m.err_internal)),
    }
}

/// Why an account may not open a permit's workspace (shared with `crate::workspace_api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    NotFound,
    Forbidden,
    Internal,
}

/// The permit and its policy when `user` is a researcher named on it (the workspace's rule, for
/// the portal and the API alike).
pub(crate) async fn researcher_permit(state: &AppState, user: &UserSummary, permit_id: i64) -> Result<(niji_store::PermitRow, PermitPolicy), Access> {
    let permit = match state.instance().store.permit(permit_id).await {
        Ok(Some(p)) => p,
        Ok(None) => return Err(Access::NotFound),
        Err(_) => return Err(Access::Internal),
    };
    let policy = serde_json::from_str::<PermitPolicy>(&permit.policy).map_err(|_| Access::Internal)?;
    if !(user.has_role(Role::Researcher) && policy.names(user.id)) {
        return Err(Access::Forbidden);
    }
    Ok((permit, policy))
}

/// Whether `user_id` may not check a job of `permit_id` submitted by `submitted_by`: the submitter
/// and the researchers named on the permit (the per-cell verdicts quote the persons behind
/// suppressed cells). An unreadable permit counts as conflicted. The rule of `/checks`, shared
/// with `crate::workspace_api`.
pub(crate) async fn conflicted(store: &niji_store::Store, user_id: i64, permit_id: i64, submitted_by: i64) -> bool {
    named_on(store, user_id, permit_id).await || submitted_by == user_id
}

/// Whether the permit names `user_id` (an unreadable permit counts as naming everyone).
pub(crate) async fn named_on(store: &niji_store::Store, user_id: i64, permit_id: i64) -> bool {
    match store.permit(permit_id).await {
        Ok(Some(p)) => serde_json::from_str::<PermitPolicy>(&p.policy).map(|policy| policy.names(user_id)).unwrap_or(true),
        _ => true,
    }
}

/// The ids of a permit and of its project's other versions (amendments are permits of their own).
pub(crate) async fn permit_versions(instance: &niji_instance::Instance, permit_id: i64) -> Result<Vec<i64>, niji_store::StoreError> {
    Ok(instance.store.permit_versions(permit_id).await?.into_iter().map(|p| p.id).collect())
}

/// The jobs of a permit and of its project's other versions (its releases are compared with them
/// all), newest first.
pub(crate) async fn permit_jobs(instance: &niji_instance::Instance, permit_id: i64) -> Result<Vec<niji_analysis::jobs::JobView>, JobError> {
    let versions = permit_versions(instance, permit_id).await.map_err(|_| JobError::Internal)?;
    let all = instance.store.jobs().await.map_err(|_| JobError::Internal)?;
    let mut jobs = Vec::new();
    for job in all.iter().filter(|j| versions.contains(&j.permit_id)).rev() {
        jobs.push(niji_analysis::jobs::job_view(instance, job.id).await?);
    }
    Ok(jobs)
}

fn schema_of(lang: Lang, t: &'static Text, policy: &PermitPolicy) -> Vec<SchemaTable> {
    let pick = |ja: &'static str, en: &'static str| if lang == Lang::En { en } else { ja };
    let mut out = Vec::new();
    for grant in &policy.datasets {
        let schema = grant.dataset.replace('-', "_");
        for table in &grant.tables {
            let doc = niji_lake::catalog::table(&table.table);
            let mut columns = vec![(niji_sandbox::PERSON_ID.to_string(), "person id", t.person_id)];
            for c in &table.columns {
                if c == niji_sandbox::PERSON_ID || c == "person_key" {
                    continue;
                }
                let description = doc.and_then(|d| d.column(c)).map(|d| pick(d.description_ja, d.description_en)).unwrap_or("");
                columns.push((c.clone(), niji_lake::catalog::column_type(&table.table, c).unwrap_or(""), description));
            }
            out.push(SchemaTable {
                sql_name: format!("{schema}.{}", table.table),
                title: doc.map(|d| pick(d.title_ja, d.title_en)).unwrap_or(""),
                description: doc.map(|d| pick(d.description_ja, d.description_en)).unwrap_or(""),
                columns,
            });
        }
    }
    out
}

async fn workspace_page(state: &AppState, lang: Lang, s: &MaybeSession, uri: &Uri, permit_id: i64, extra: Extra, status: StatusCode) -> Response {
    let (sess, permit, policy) = match named_researcher(state, lang, s, uri, permit_id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let t = text(lang);
    let store = &state.instance().store;
    let (Ok(views), Ok(all_releases), Ok(versions), Ok(stops)) = (
        permit_jobs(state.instance(), permit_id).await,
        store.releases().await,
        permit_versions(state.instance(), permit_id).await,
        niji_analysis::stops::stops(state.instance(), state.analysis(), permit_id).await,
    ) else {
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, Some(sess), uri, |m| m.err_internal);
    };
    let mut jobs = Vec::new();
    for v in views {
        jobs.push(JobLine {
            id: v.id,
            status: job_status(t, &v.status),
            status_code: v.status,
            reason: v.reason,
            created: when(v.created_at),
            outputs: v.outputs.iter().map(|o| (o.name.clone(), output_status(t, &o.status), o.refusal.clone().unwrap_or_default())).collect(),
            approvals: v.signoffs.iter().filter(|(_, verdict, _)| verdict == "approve").count(),
            release_id: v.release_id,
        });
    }
    let releases = all_releases
        .into_iter()
        .filter(|r| versions.contains(&r.permit_id))
        .filter_map(|r| Some(ReleaseLine { id: r.id, job_id: r.job_id, released_at: when(r.released_at), csv_sha256: r.csv_sha256? }))
        .collect();
    let visiting = policy.track == niji_review::Track::Visiting;
    let page = WorkspacePage {
        page: PageContext::new(lang, Some(sess), uri),
        t,
        permit_id,
        permit_status: crate::applications::permit_status_label(lang.apps(), &permit.status).to_string(),
        track: if lang == Lang::En { policy.track.label_en() } else { policy.track.label_ja() },
        visiting,
        preset: policy.output_preset.clone(),
        schema: schema_of(lang, t, &policy),
        dummy: extra.dummy,
        real: extra.real,
        error: extra.error,
        sql_dummy: extra.sql_dummy,
        sql_real: extra.sql_real,
        jobs_running: jobs.iter().any(|j| j.status_code == "checking"),
        jobs,
        releases,
        stops: (stops.stops.len() as u32, stops.max_stops, stops.left()),
    };
    (status, render(page)).into_response()
}

async fn workspace_get(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, Path(id): Path<i64>) -> Response {
    workspace_page(&state, lang, &s, &uri, id, Extra::default(), StatusCode::OK).await
}

#[derive(Deserialize)]
struct SqlForm {
    csrf: String,
    sql: String,
}

/// The signed-in session when the form's CSRF token is its own; otherwise the response.
#[allow(clippy::result_large_err)] // a page guard's early answer, built once per request
fn checked_session<'a>(s: &'a MaybeSession, lang: Lang, uri: &Uri, csrf: Option<&str>) -> Result<&'a Session, Response> {
    let Some(sess) = s.signed_in() else { return Err(Redirect::to("/login").into_response()) };
    match csrf {
        Some(c) if constant_time_eq(c.as_bytes(), sess.csrf_token.as_bytes()) => Ok(sess),
        Some(_) => Err(error_page(StatusCode::FORBIDDEN, lang, Some(sess), uri, |m| m.err_bad_request)),
        None => Err(error_page(StatusCode::BAD_REQUEST, lang, Some(sess), uri, |m| m.err_bad_request)),
    }
}

async fn dummy_post(
    State(state): State<AppState>,
    lang: Lang,
    s: MaybeSession,
    uri: Uri,
    Path(id): Path<i64>,
    form: Result<Form<SqlForm>, FormRejection>,
) -> Response {
    let form = form.ok().map(|Form(f)| f);
    let sess = match checked_session(&s, lang, &uri, form.as_ref().map(|f| f.csrf.as_str())) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let form = form.expect("checked");
    if let Err(r) = named_researcher(&state, lang, &s, &uri, id).await {
        return r;
    }
    let t = text(lang);
    let mut extra = Extra { sql_dummy: form.sql.clone(), ..Extra::default() };
    let status = match niji_analysis::dummy::query_dummy(state.instance(), sess.user.id, id, &form.sql).await {
        Ok(out) => {
            extra.dummy = Some(RowsView { columns: out.columns, rows: out.rows });
            StatusCode::OK
        }
        Err(e) => {
            let (status, message) = analysis_error(t, &e);
            extra.error = Some(message);
            status
        }
    };
    workspace_page(&state, lang, &s, &uri, id, extra, status).await
}

async fn real_post(
    State(state): State<AppState>,
    lang: Lang,
    s: MaybeSession,
    uri: Uri,
    Path(id): Path<i64>,
    form: Result<Form<SqlForm>, FormRejection>,
) -> Response {
    let form = form.ok().map(|Form(f)| f);
    let sess = match checked_session(&s, lang, &uri, form.as_ref().map(|f| f.csrf.as_str())) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let form = form.expect("checked");
    if let Err(r) = named_researcher(&state, lang, &s, &uri, id).await {
        return r;
    }
    let t = text(lang);
    let mut extra = Extra { sql_real: form.sql.clone(), ..Extra::default() };
    let status = match crate::workspace_api::detached_query(&state, sess.user.id, id, form.sql.clone()).await {
        Ok(out) => {
            let header = out.dimensions.iter().chain(&out.measures).cloned().collect();
            let rows = out
                .rows
                .iter()
                .take(SHOWN_ROWS)
                .map(|(keys, values)| {
                    let keys = keys.iter().map(|k| CellView { text: k.clone(), withheld: false });
                    let values = values.iter().map(|v| match v {
                        Shown::Value(x) => CellView { text: number(*x), withheld: false },
                        Shown::Suppressed => CellView { text: t.suppressed.into(), withheld: true },
                        Shown::Refused => CellView { text: t.refused_cell.into(), withheld: true },
                    });
                    keys.chain(values).collect()
                })
                .collect();
            extra.real =
                Some(CheckedView { header, rows, more: out.rows.len().saturating_sub(SHOWN_ROWS), suppressed: out.suppressed, late: out.late });
            StatusCode::OK
        }
        Err(e) => {
            let (status, message) = analysis_error(t, &e);
            extra.error = Some(message);
            status
        }
    };
    workspace_page(&state, lang, &s, &uri, id, extra, status).await
}

/// The job form: `csrf`, then `name` and `sql` fields in pairs (empty pairs ignored).
async fn job_post(
    State(state): State<AppState>,
    lang: Lang,
    s: MaybeSession,
    uri: Uri,
    Path(id): Path<i64>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let fields = form.map(|Form(f)| f).unwrap_or_default();
    let csrf = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str());
    let sess = match checked_session(&s, lang, &uri, csrf) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(r) = named_researcher(&state, lang, &s, &uri, id).await {
        return r;
    }
    let t = text(lang);
    let names = fields.iter().filter(|(k, _)| k == "name").map(|(_, v)| v.trim().to_string());
    let sqls = fields.iter().filter(|(k, _)| k == "sql").map(|(_, v)| v.trim().to_string());
    let outputs: Vec<(String, String)> = names.zip(sqls).filter(|(n, q)| !(n.is_empty() && q.is_empty())).collect();
    match crate::workspace_api::background_job(&state, sess.user.id, id, outputs).await {
        Ok(job) => Redirect::to(&format!("/permits/{id}/workspace#job-{}", job.id)).into_response(),
        Err(e) => {
            let (status, message) = job_error(t, &e);
            workspace_page(&state, lang, &s, &uri, id, Extra { error: Some(message), ..Extra::default() }, status).await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Output checks.

struct VerdictLine {
    row: String,
    measure: String,
    outcome: &'static str,
    reasons: Vec<String>,
}

struct CheckOutput {
    name: String,
    status: &'static str,
    refusal: String,
    table: Option<CheckedView>,
    verdicts: Vec<VerdictLine>,
    /// Verdict lines past the first [`SHOWN_ROWS`].
    more_verdicts: usize,
    table_reasons: Vec<String>,
    summary: String,
    compared: Vec<String>,
    refused_by: Vec<String>,
}

struct CheckJob {
    id: i64,
    permit_id: i64,
    submitted_by: String,
    created: String,
    outputs: Vec<CheckOutput>,
    /// checker, verdict, reason code
    signoffs: Vec<(String, &'static str, String)>,
}

/// A permit with uncleared stops, on the checkers' page.
struct StoppedPermit {
    permit_id: i64,
    /// Each stop, oldest first.
    stops: Vec<StopLine>,
    max_stops: u32,
    runs_since_clear: i64,
    /// The last stop shown that had ended: clearing goes up to it, not past it.
    through: i64,
    /// When the page was made: only stops ended before are cleared.
    seen: i64,
}

struct StopLine {
    started: String,
    kind: String,
    reason: String,
    user: String,
    sql_sha256: String,
}

#[derive(Template)]
#[template(path = "checks.html")]
struct ChecksPage {
    page: PageContext,
    t: &'static Text,
    jobs: Vec<CheckJob>,
    stopped: Vec<StoppedPermit>,
    error: Option<String>,
}

/// The strings of a JSON array (other values as their JSON text); shared with `crate::workspace_api`.
pub(crate) fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().map(|x| x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string())).collect()
}

/// A stored checked table (values, or the markers `suppressed` / `refused`) as a view.
fn checked_view(t: &'static Text, table: &Value) -> CheckedView {
    let header = strings(&table["dimensions"]).into_iter().chain(strings(&table["measures"])).collect();
    let all = table["rows"].as_array().map(Vec::as_slice).unwrap_or_default();
    let suppressed = all
        .iter()
        .flat_map(|row| row["values"].as_array().into_iter().flatten())
        .filter(|v| matches!(v, Value::String(s) if s == niji_analysis::jobs::SUPPRESSED))
        .count();
    let rows = all
        .iter()
        .take(SHOWN_ROWS)
        .map(|row| {
            let keys = strings(&row["keys"]).into_iter().map(|k| CellView { text: k, withheld: false });
            let values: Vec<CellView> = row["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| match v {
                    Value::Number(n) => CellView { text: number(n.as_f64().unwrap_or(f64::NAN)), withheld: false },
                    Value::String(s) if s == niji_analysis::jobs::SUPPRESSED => CellView { text: t.suppressed.into(), withheld: true },
                    Value::Null => CellView { text: String::new(), withheld: false },
                    _ => CellView { text: t.refused_cell.into(), withheld: true },
                })
                .collect();
            keys.chain(values).collect()
        })
        .collect();
    CheckedView { header, rows, more: all.len().saturating_sub(SHOWN_ROWS), suppressed, late: false }
}

fn check_output(lang: Lang, t: &'static Text, o: &niji_analysis::jobs::OutputView) -> CheckOutput {
    let table = o.checked_table.as_ref().map(|v| checked_view(t, v));
    let row_keys: Vec<Vec<String>> =
        o.checked_table.as_ref().and_then(|v| v["rows"].as_array()).into_iter().flatten().map(|r| strings(&r["keys"])).collect();
    let measures = o.checked_table.as_ref().map(|v| strings(&v["measures"])).unwrap_or_default();
    let empty = Value::Null;
    let verdicts_json = o.verdicts.as_ref().unwrap_or(&empty);
    let cells = verdicts_json["cells"].as_array().map(Vec::as_slice).unwrap_or_default();
    let more_verdicts = cells.len().saturating_sub(SHOWN_ROWS);
    let verdicts = cells
        .iter()
        .take(SHOWN_ROWS)
        .map(|c| {
            let r = c["row"].as_u64().unwrap_or(0) as usize;
            let m = c["measure"].as_u64().unwrap_or(0) as usize;
            VerdictLine {
                row: row_keys.get(r).map(|k| k.join(" / ")).filter(|k| !k.is_empty()).unwrap_or_else(|| format!("#{}", r + 1)),
                measure: measures.get(m).cloned().unwrap_or_default(),
                outcome: match c["outcome"].as_str() {
                    Some("suppressed") => t.v_suppressed,
                    Some("refused") => t.v_refused,
                    _ => t.v_released,
                },
                reasons: c["reasons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| {
                        let text = if lang == Lang::En { &x["en"] } else { &x["ja"] };
                        format!("{} ({})", text.as_str().unwrap_or(""), x["code"].as_str().unwrap_or(""))
                    })
                    .collect(),
            }
        })
        .collect();
    let s = &verdicts_json["summary"];
    let summary = if s.is_object() {
        ["cells", "released", "primary", "secondary", "refused", "rounded"]
            .iter()
            .zip(t.summary_labels)
            .map(|(key, label)| format!("{label} {}", s[*key]))
            .collect::<Vec<_>>()
            .join(" · ")
    } else {
        String::new()
    };
    let diff = o.differencing.as_ref().unwrap_or(&empty);
    CheckOutput {
        name: o.name.clone(),
        status: output_status(t, &o.status),
        refusal: o.refusal.clone().unwrap_or_default(),
        table,
        verdicts,
        more_verdicts,
        table_reasons: strings(&verdicts_json["table_reasons"]),
        summary,
        compared: strings(&diff["compared"]),
        refused_by: strings(&diff["refused_by"]),
    }
}

async fn checks_page(state: &AppState, lang: Lang, s: &MaybeSession, uri: &Uri, error: Option<String>, status: StatusCode) -> Response {
    let Some(sess) = s.signed_in() else { return Redirect::to("/login").into_response() };
    if !sess.user.has_role(Role::OutputChecker) {
        return error_page(StatusCode::FORBIDDEN, lang, Some(sess), uri, |m| m.err_forbidden);
    }
    let t = text(lang);
    let Ok(all) = niji_analysis::jobs::list_jobs(state.instance()).await else {
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, Some(sess), uri, |m| m.err_internal);
    };
    let store = &state.instance().store;
    let username = |id: i64| async move { store.user(id).await.ok().flatten().map(|u| u.username).unwrap_or_else(|| format!("user:{id}")) };
    let mut jobs = Vec::new();
    // A checker sees only the jobs they may sign: not their own, not a permit naming them (the
    // checked tables' verdicts quote the persons behind suppressed cells).
    let mut conflicted_jobs = std::collections::HashSet::new();
    for j in &all {
        if conflicted(store, sess.user.id, j.permit_id, j.submitted_by).await {
            conflicted_jobs.insert(j.id);
        }
    }
    for j in all.iter().filter(|j| j.status == "awaiting_review" && !conflicted_jobs.contains(&j.id)) {
        let mut signoffs = Vec::new();
        for (checker, verdict, reason) in &j.signoffs {
            signoffs.push((username(*checker).await, if verdict == "approve" { t.approve } else { t.reject }, reason.clone()));
        }
        jobs.push(CheckJob {
            id: j.id,
            permit_id: j.permit_id,
            submitted_by: username(j.submitted_by).await,
            created: when(j.created_at),
            outputs: j.outputs.iter().map(|o| check_output(lang, t, o)).collect(),
            signoffs,
        });
    }
    // Permits whose runs limits stopped, except those naming this checker.
    let Ok(with_stops) = niji_analysis::stops::permits_with_stops(state.instance(), state.analysis()).await else {
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, Some(sess), uri, |m| m.err_internal);
    };
    let mut stopped = Vec::new();
    for (permit_id, _) in with_stops {
        if named_on(store, sess.user.id, permit_id).await {
            continue;
        }
        let Ok(s) = niji_analysis::stops::stops(state.instance(), state.analysis(), permit_id).await else {
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, Some(sess), uri, |m| m.err_internal);
        };
        // Up to the last stop shown that had ended: one still running may stop unseen.
        let through = s.stops.iter().filter(|x| x.ended_at.is_some()).map(|x| x.id).max().unwrap_or(0);
        let mut stops = Vec::new();
        for x in s.stops {
            stops.push(StopLine {
                started: when(x.started_at),
                kind: x.kind,
                reason: x.reason,
                user: username(x.user_id).await,
                sql_sha256: x.code_sha256,
            });
        }
        let seen = time::OffsetDateTime::now_utc().unix_timestamp();
        stopped.push(StoppedPermit { permit_id, stops, max_stops: s.max_stops, runs_since_clear: s.runs_since_clear, through, seen });
    }
    (status, render(ChecksPage { page: PageContext::new(lang, Some(sess), uri), t, jobs, stopped, error })).into_response()
}

async fn checks_get(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri) -> Response {
    checks_page(&state, lang, &s, &uri, None, StatusCode::OK).await
}

#[derive(Deserialize)]
struct SignOffForm {
    csrf: String,
    verdict: String,
    #[serde(default)]
    reason: String,
}

async fn signoff_post(
    State(state): State<AppState>,
    lang: Lang,
    s: MaybeSession,
    uri: Uri,
    Path(job): Path<i64>,
    form: Result<Form<SignOffForm>, FormRejection>,
) -> Response {
    let form = form.ok().map(|Form(f)| f);
    let sess = match checked_session(&s, lang, &uri, form.as_ref().map(|f| f.csrf.as_str())) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let form = form.expect("checked");
    let t = text(lang);
    let approve = match form.verdict.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return checks_page(&state, lang, &s, &uri, Some(t.err_form.into()), StatusCode::BAD_REQUEST).await,
    };
    let reason = if approve && form.reason.trim().is_empty() { "approved" } else { form.reason.trim() };
    match niji_analysis::jobs::sign_off(state.instance(), sess.user.id, job, approve, reason).await {
        Ok(_) => Redirect::to("/checks").into_response(),
        Err(e) => {
            let (status, message) = job_error(t, &e);
            checks_refusal(&state, lang, &s, &uri, message, status).await
        }
    }
}

/// A refused action on the checks page: the queue with the refusal for a checker; for anyone
/// else only the refusal (the queue is not theirs to see).
async fn checks_refusal(state: &AppState, lang: Lang, s: &MaybeSession, uri: &Uri, message: String, status: StatusCode) -> Response {
    match s.signed_in() {
        Some(sess) if sess.user.has_role(Role::OutputChecker) => checks_page(state, lang, s, uri, Some(message), status).await,
        sess => {
            let page =
                ChecksPage { page: PageContext::new(lang, sess, uri), t: text(lang), jobs: Vec::new(), stopped: Vec::new(), error: Some(message) };
            (status, render(page)).into_response()
        }
    }
}

#[derive(Deserialize)]
struct ClearStopsForm {
    csrf: String,
    reason: String,
    /// The last stop the checker saw, and when.
    through: i64,
    seen: i64,
}

async fn clear_stops_post(
    State(state): State<AppState>,
    lang: Lang,
    s: MaybeSession,
    uri: Uri,
    Path(permit): Path<i64>,
    form: Result<Form<ClearStopsForm>, FormRejection>,
) -> Response {
    let form = form.ok().map(|Form(f)| f);
    let sess = match checked_session(&s, lang, &uri, form.as_ref().map(|f| f.csrf.as_str())) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let form = form.expect("checked");
    let t = text(lang);
    match niji_analysis::stops::clear_stops(
        state.instance(),
        state.analysis(),
        sess.user.id,
        permit,
        (form.through, Some(form.seen)),
        form.reason.trim(),
    )
    .await
    {
        Ok(_) => Redirect::to("/checks").into_response(),
        Err(e) => {
            let (status, message) = clear_error(t, &e);
            checks_refusal(&state, lang, &s, &uri, message, status).await
        }
    }
}

fn clear_error(t: &'static Text, e: &niji_analysis::stops::ClearError) -> (StatusCode, String) {
    use niji_analysis::stops::ClearError as E;
    let (status, text) = match e {
        E::NoPermit => (StatusCode::NOT_FOUND, t.err_no_permit),
        E::NotAChecker => (StatusCode::FORBIDDEN, t.err_not_checker),
        E::Conflicted => (StatusCode::FORBIDDEN, t.err_conflicted),
        E::BadReason => (StatusCode::BAD_REQUEST, t.err_bad_reason),
        E::Internal => {
            tracing::error!("clearing stops failed");
            (StatusCode::INTERNAL_SERVER_ERROR, t.err_internal)
        }
    };
    (status, text.to_string())
}

// ---------------------------------------------------------------------------------------------
// Release downloads.

async fn release_download(state: &AppState, lang: Lang, s: &MaybeSession, uri: &Uri, id: i64, metadata: bool) -> Response {
    let Some(sess) = s.signed_in() else { return Redirect::to("/login").into_response() };
    match niji_analysis::jobs::release_files(state.instance(), sess.user.id, id).await {
        Ok(files) => {
            let (content_type, name, bytes) = if metadata {
                ("application/json", format!("release-{id}-metadata.json"), files.metadata)
            } else {
                ("text/csv; charset=utf-8", files.file_name.clone(), files.csv)
            };
            let name: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).collect();
            ([(header::CONTENT_TYPE, content_type.to_string()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""))], bytes)
                .into_response()
        }
        Err(e) => {
            let (status, _) = job_error(text(lang), &e);
            let pick: fn(&crate::i18n::Messages) -> &'static str = match status {
                StatusCode::FORBIDDEN => |m| m.err_forbidden,
                StatusCode::NOT_FOUND => |m| m.err_not_found,
                _ => |m| m.err_internal,
            };
            error_page(status, lang, Some(sess), uri, pick)
        }
    }
}

async fn release_file(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, Path(id): Path<i64>) -> Response {
    release_download(&state, lang, &s, &uri, id, false).await
}

async fn release_metadata(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, Path(id): Path<i64>) -> Response {
    release_download(&state, lang, &s, &uri, id, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output may have up to `Limits::max_groups` rows: a page draws the first
    /// [`SHOWN_ROWS`] and says how many more there are; suppressed cells are counted over all.
    #[test]
    fn a_long_checked_table_is_drawn_in_part_and_counted_whole() {
        let check = |rows: usize, expected_shown: usize, expected_more: usize| {
            let table = serde_json::json!({
                "dimensions": ["code"],
                "measures": ["n"],
                "rows": (0..rows).map(|i| serde_json::json!({
                    "keys": [format!("c{i}")],
                    "values": [if i % 2 == 0 { serde_json::json!(20) } else { serde_json::json!(niji_analysis::jobs::SUPPRESSED) }],
                })).collect::<Vec<_>>(),
            });
            let view = checked_view(&EN, &table);
            assert_eq!((view.rows.len(), view.more, view.suppressed), (expected_shown, expected_more, rows / 2), "{rows} rows");
        };
        check(10, 10, 0);
        check(SHOWN_ROWS, SHOWN_ROWS, 0);
        check(SHOWN_ROWS * 3 + 1, SHOWN_ROWS, SHOWN_ROWS * 2 + 1);
    }
}
