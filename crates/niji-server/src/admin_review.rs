//! Operators' set-up of review in the portal (issue 4), what `niji review …` does on the command
//! line: published review criteria (審査基準) and tariff versions with a form to publish a new
//! version from TOML, each dataset's consent scope, researchers' accreditations, committees and
//! their members with the composition check the committee's decision applies.
//!
//! Operators only (others 403, visitors to `/login`). Every form is CSRF-checked and every change
//! goes through `niji-applications` (which checks the role again and logs it); a refused form
//! changes nothing and says what was wrong with fixed texts (a field, a tier, a line number),
//! never the text that was typed.
//!
//! The steps themselves (parsing what was sent, calling `niji-applications`, mapping its errors by
//! variant to a [`SetupProblem`]) are shared with the JSON API under `/api/v1/review/…`
//! (`crate::applications_api`), so the portal and the API cannot drift apart.

use crate::applications::pick;
use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use niji_accounts::Session;
use niji_applications::{Actor, InputProblem, NewMember, WorkflowError};
use niji_core::Role;
use niji_review::{
    check_composition, CompositionProblem, ConsentScope, Criteria, CriteriaError, Field, Gender, Member, PurposeCategory, RecipientKind, TariffError,
    Tier,
};
use niji_store::StoreError;
use serde::Deserialize;
use time::{Date, OffsetDateTime};

use crate::i18n::Lang;
use crate::portal::{constant_time_eq, error_page, render, MaybeSession, PageContext};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/review", get(page))
        .route("/admin/review/criteria", post(publish_criteria))
        .route("/admin/review/tariff", post(publish_tariff))
        .route("/admin/review/consent", post(set_consent))
        .route("/admin/review/accreditations", post(accredit_form))
        .route("/admin/review/committees", post(create_committee))
        .route("/admin/review/committees/{id}/members", post(add_member))
        .route("/admin/review/members/{id}/deactivate", post(deactivate_member))
}

// ---------------------------------------------------------------------------------------------
// Text.

struct Text {
    title: &'static str,
    intro: &'static str,
    criteria_h: &'static str,
    tariff_h: &'static str,
    version: &'static str,
    published_on: &'static str,
    recorded: &'static str,
    in_force: &'static str,
    none_published: &'static str,
    show_text: &'static str,
    toml_label: &'static str,
    publish_hint: &'static str,
    publish_criteria: &'static str,
    publish_tariff: &'static str,
    consent_h: &'static str,
    consent_intro: &'static str,
    no_datasets: &'static str,
    purposes: &'static str,
    diseases: &'static str,
    diseases_hint: &'static str,
    any_disease: &'static str,
    recipient_kinds: &'static str,
    recipients: &'static str,
    recipients_hint: &'static str,
    not_set: &'static str,
    none: &'static str,
    updated: &'static str,
    save_scope: &'static str,
    accreditations_h: &'static str,
    accreditations_intro: &'static str,
    no_accreditations: &'static str,
    researcher: &'static str,
    username_hint: &'static str,
    course: &'static str,
    completed_on: &'static str,
    expires_on: &'static str,
    validity: &'static str,
    valid: &'static str,
    not_valid: &'static str,
    accredit: &'static str,
    committees_h: &'static str,
    committees_intro: &'static str,
    no_committees: &'static str,
    receives_new: &'static str,
    committee_name: &'static str,
    create_committee: &'static str,
    no_members: &'static str,
    member_name: &'static str,
    account: &'static str,
    no_account: &'static str,
    field: &'static str,
    external: &'static str,
    external_yes: &'static str,
    external_no: &'static str,
    gender: &'static str,
    gender_female: &'static str,
    gender_male: &'static str,
    gender_other: &'static str,
    status: &'static str,
    active: &'static str,
    inactive: &'static str,
    deactivate: &'static str,
    add_member: &'static str,
    member_account_hint: &'static str,
    member_name_hint: &'static str,
    external_hint: &'static str,
    composition_h: &'static str,
    /// `{version}` is replaced by the criteria version.
    composition_ok: &'static str,
    /// `{version}` is replaced by the criteria version.
    composition_bad: &'static str,
    composition_no_criteria: &'static str,
    done_criteria: &'static str,
    done_tariff: &'static str,
    done_consent: &'static str,
    done_accreditation: &'static str,
    done_committee: &'static str,
    done_member: &'static str,
    done_deactivated: &'static str,
    err_form: &'static str,
    err_internal: &'static str,
    /// `{line}` is replaced by a line number.
    err_toml_syntax: &'static str,
    err_toml_keys: &'static str,
    err_empty_version: &'static str,
    err_bad_published: &'static str,
    err_unknown_tier: &'static str,
    /// `{tier}` is replaced by a tier's code.
    err_missing_tier: &'static str,
    err_bad_deadline: &'static str,
    err_deadlines_decrease: &'static str,
    err_min_members: &'static str,
    err_min_external: &'static str,
    err_quorum: &'static str,
    err_committee_rule: &'static str,
    err_tariff_unknown_tier: &'static str,
    /// `{tier}` is replaced by a tier's code.
    err_tariff_missing_tier: &'static str,
    err_version_exists: &'static str,
    err_no_dataset: &'static str,
    /// `{n}` is replaced by the position (1-based) of the code in the list.
    err_disease: &'static str,
    err_no_account: &'static str,
    err_course: &'static str,
    err_completed_on: &'static str,
    err_expires_on: &'static str,
    err_expiry_order: &'static str,
    err_committee_name: &'static str,
    err_committee_exists: &'static str,
    err_no_committee: &'static str,
    err_member_name: &'static str,
    err_field: &'static str,
    err_gender: &'static str,
    err_already_member: &'static str,
    err_no_member: &'static str,
    err_not_active: &'static str,
}

static JA: Text = Text {
    title: "審査の設定",
    intro: "審査基準と手数料表の公表、データセットの同意の範囲、研究者の認定、審査委員会と委員を設定します。変更はすべて透明性ログに記録されます。",
    criteria_h: "審査基準（審査基準）",
    tariff_h: "手数料表",
    version: "版",
    published_on: "公表日",
    recorded: "記録日",
    in_force: "適用中",
    none_published: "公表された版はありません。",
    show_text: "適用中の版の本文（TOML）",
    toml_label: "新しい版（TOML）",
    publish_hint: "公表した版は編集できません。version を新しい値にして公表してください。既存の版と同じ version は受け付けません。",
    publish_criteria: "審査基準を公表する",
    publish_tariff: "手数料表を公表する",
    consent_h: "データセットの同意の範囲",
    consent_intro: "トリアージは申請をこの範囲と比べて四つの類型に分けます。",
    no_datasets: "データセットはまだありません。",
    purposes: "利用目的",
    diseases: "疾患（ICD-10）",
    diseases_hint: "ICD-10 のコードまたは前方一致（例: E11, I10）。カンマか空白で区切ります。空欄はすべての疾患。",
    any_disease: "すべての疾患",
    recipient_kinds: "提供先の種別",
    recipients: "名指しの提供先",
    recipients_hint: "組織名を 1 行に 1 つ。",
    not_set: "未設定",
    none: "なし",
    updated: "更新",
    save_scope: "同意の範囲を保存する",
    accreditations_h: "研究者の認定",
    accreditations_intro: "申請に記載できるのは、有効な認定（研修の修了と有効期限）を持つ研究者だけです。",
    no_accreditations: "認定はまだありません。",
    researcher: "研究者",
    username_hint: "ユーザー名",
    course: "研修",
    completed_on: "修了日",
    expires_on: "有効期限",
    validity: "本日",
    valid: "有効",
    not_valid: "無効",
    accredit: "認定を記録する",
    committees_h: "審査委員会",
    committees_intro: "委員会は構成要件を満たすときだけ議決できます。要件は適用中の審査基準のものです。",
    no_committees: "審査委員会はまだありません。",
    receives_new: "新しい申請はこの委員会に付されます（名前順で最初の委員会）。",
    committee_name: "委員会の名称",
    create_committee: "委員会を作る",
    no_members: "委員はいません。",
    member_name: "氏名",
    account: "アカウント",
    no_account: "（アカウントなし）",
    field: "分野",
    external: "外部委員",
    external_yes: "外部",
    external_no: "内部",
    gender: "性別",
    gender_female: "女性",
    gender_male: "男性",
    gender_other: "その他",
    status: "状態",
    active: "在任",
    inactive: "退任",
    deactivate: "退任にする",
    add_member: "委員を加える",
    member_account_hint:
        "ポータルで投票する委員はユーザー名を入れます（審査委員または委員長の役割が必要です）。アカウントのない委員は空欄にして氏名を入れます。",
    member_name_hint: "空欄ならアカウントの表示名。",
    external_hint: "運営組織に属さない委員",
    composition_h: "構成要件",
    composition_ok: "審査基準 {version} の構成要件を満たしています。",
    composition_bad: "審査基準 {version} の構成要件を満たしていません:",
    composition_no_criteria: "審査基準が公表されていないため確認できません。",
    done_criteria: "審査基準の新しい版を公表しました。",
    done_tariff: "手数料表の新しい版を公表しました。",
    done_consent: "同意の範囲を保存しました。",
    done_accreditation: "認定を記録しました。",
    done_committee: "委員会を作りました。",
    done_member: "委員を加えました。",
    done_deactivated: "委員を退任にしました。",
    err_form: "送信された内容を読み取れませんでした。何も変更していません。",
    err_internal: "内部エラーが発生しました。何も変更していない可能性があります。",
    err_toml_syntax: "TOML の書式が正しくありません（{line} 行目）。何も公表していません。",
    err_toml_keys: "TOML のキーが想定と異なります（不明なキー、欠けたキー、または値の型の誤り）。何も公表していません。",
    err_empty_version: "version が空です。何も公表していません。",
    err_bad_published: "published は日付（YYYY-MM-DD）で書いてください。何も公表していません。",
    err_unknown_tier: "tiers に不明な段階があります（notification, light, medical_validity, standard, full のみ）。何も公表していません。",
    err_missing_tier: "tiers.{tier}: この段階の期限（deadline_days）がありません。何も公表していません。",
    err_bad_deadline: "tiers.{tier}.deadline_days: 期限が負か大きすぎます。何も公表していません。",
    err_deadlines_decrease: "tiers.{tier}.deadline_days: より軽い段階の期限より短くなっています。何も公表していません。",
    err_min_members: "committee.min_members: 1 以上にしてください。何も公表していません。",
    err_min_external: "committee.min_external: min_members を超えられません。何も公表していません。",
    err_quorum: "committee.quorum: 0 より大きく 1 以下の分数にしてください。何も公表していません。",
    err_committee_rule: "committee: 構成要件が正しくありません。何も公表していません。",
    err_tariff_unknown_tier:
        "review_fee に不明な段階があります（notification, light, medical_validity, standard, full のみ）。何も公表していません。",
    err_tariff_missing_tier: "review_fee.{tier}: この段階の審査手数料がありません。何も公表していません。",
    err_version_exists: "この version はすでに公表されています。公表した版は変更できません。何も公表していません。",
    err_no_dataset: "そのデータセットはありません。",
    err_disease: "疾患の {n} 番目が ICD-10 のコードまたは前方一致になっていません。何も変更していません。",
    err_no_account: "そのユーザー名のアカウントはありません。何も変更していません。",
    err_course: "研修名を入れてください。何も変更していません。",
    err_completed_on: "修了日を YYYY-MM-DD で入れてください。何も変更していません。",
    err_expires_on: "有効期限を YYYY-MM-DD で入れてください。何も変更していません。",
    err_expiry_order: "有効期限は修了日以後にしてください。何も変更していません。",
    err_committee_name: "委員会の名称を入れてください。",
    err_committee_exists: "同じ名称の委員会があります。何も変更していません。",
    err_no_committee: "その委員会はありません。",
    err_member_name: "アカウントのない委員には氏名が必要です。何も変更していません。",
    err_field: "分野を選んでください。何も変更していません。",
    err_gender: "性別を選んでください。何も変更していません。",
    err_already_member: "このアカウントはすでにこの委員会の委員です。何も変更していません。",
    err_no_member: "その委員はいません。",
    err_not_active: "この委員はすでに退任しています。",
};

static EN: Text = Text {
    title: "Review set-up",
    intro: "Publish review criteria and tariffs, record the consent scopes of datasets, researchers' accreditations, review committees and their members. Every change is recorded in the transparency log.",
    criteria_h: "Review criteria (審査基準)",
    tariff_h: "Tariff",
    version: "Version",
    published_on: "Published on",
    recorded: "Recorded",
    in_force: "in force",
    none_published: "No version is published.",
    show_text: "Text of the version in force (TOML)",
    toml_label: "New version (TOML)",
    publish_hint: "Published versions cannot be edited: give `version` a new value and publish. A version that exists is refused.",
    publish_criteria: "Publish criteria",
    publish_tariff: "Publish tariff",
    consent_h: "Consent scopes of datasets",
    consent_intro: "Triage compares each application with these scopes to place it in one of the four cases.",
    no_datasets: "No datasets yet.",
    purposes: "Purposes",
    diseases: "Diseases (ICD-10)",
    diseases_hint: "ICD-10 codes or prefixes (e.g. E11, I10), separated by commas or spaces. Empty: any disease.",
    any_disease: "any disease",
    recipient_kinds: "Kinds of recipients",
    recipients: "Named recipients",
    recipients_hint: "One organization per line.",
    not_set: "not set",
    none: "none",
    updated: "Updated",
    save_scope: "Save consent scope",
    accreditations_h: "Researchers' accreditations",
    accreditations_intro: "Only researchers with a valid accreditation (training completed, not expired) can be named on an application.",
    no_accreditations: "No accreditations yet.",
    researcher: "Researcher",
    username_hint: "user name",
    course: "Course",
    completed_on: "Completed on",
    expires_on: "Expires on",
    validity: "Today",
    valid: "valid",
    not_valid: "not valid",
    accredit: "Record accreditation",
    committees_h: "Review committees",
    committees_intro: "A committee can decide only when its composition meets the rules of the criteria in force.",
    no_committees: "No review committee yet.",
    receives_new: "New applications go to this committee (the first by name).",
    committee_name: "Committee name",
    create_committee: "Create committee",
    no_members: "No members.",
    member_name: "Name",
    account: "Account",
    no_account: "(no account)",
    field: "Field",
    external: "External",
    external_yes: "external",
    external_no: "internal",
    gender: "Gender",
    gender_female: "female",
    gender_male: "male",
    gender_other: "other",
    status: "Status",
    active: "active",
    inactive: "inactive",
    deactivate: "Deactivate",
    add_member: "Add member",
    member_account_hint: "For a member who votes in the portal, give the user name (the account needs the reviewer or chair role). For a member without an account, leave it empty and give a name.",
    member_name_hint: "Empty: the account's display name.",
    external_hint: "not part of the operating organization",
    composition_h: "Composition",
    composition_ok: "Meets the composition rules of criteria {version}.",
    composition_bad: "Does not meet the composition rules of criteria {version}:",
    composition_no_criteria: "No review criteria are published, so the composition cannot be checked.",
    done_criteria: "A new version of the review criteria is published.",
    done_tariff: "A new version of the tariff is published.",
    done_consent: "The consent scope is saved.",
    done_accreditation: "The accreditation is recorded.",
    done_committee: "The committee is created.",
    done_member: "The member is added.",
    done_deactivated: "The member is deactivated.",
    err_form: "The form could not be read. Nothing was changed.",
    err_internal: "An internal error occurred. Nothing may have been changed.",
    err_toml_syntax: "The TOML is not well-formed (line {line}). Nothing was published.",
    err_toml_keys: "The TOML's keys are not as expected (an unknown or missing key, or a value of the wrong type). Nothing was published.",
    err_empty_version: "`version` is empty. Nothing was published.",
    err_bad_published: "`published` must be a date (YYYY-MM-DD). Nothing was published.",
    err_unknown_tier: "`tiers` has an unknown tier (only notification, light, medical_validity, standard, full). Nothing was published.",
    err_missing_tier: "tiers.{tier}: the tier has no deadline (deadline_days). Nothing was published.",
    err_bad_deadline: "tiers.{tier}.deadline_days: negative or too large. Nothing was published.",
    err_deadlines_decrease: "tiers.{tier}.deadline_days: shorter than a lighter tier's. Nothing was published.",
    err_min_members: "committee.min_members: must be at least 1. Nothing was published.",
    err_min_external: "committee.min_external: cannot exceed min_members. Nothing was published.",
    err_quorum: "committee.quorum: must be a fraction in (0, 1]. Nothing was published.",
    err_committee_rule: "committee: the composition rule is not valid. Nothing was published.",
    err_tariff_unknown_tier: "`review_fee` has an unknown tier (only notification, light, medical_validity, standard, full). Nothing was published.",
    err_tariff_missing_tier: "review_fee.{tier}: the tier has no review fee. Nothing was published.",
    err_version_exists: "This version is already published; published versions cannot change. Nothing was published.",
    err_no_dataset: "No such dataset.",
    err_disease: "Disease number {n} is not an ICD-10 code or prefix. Nothing was changed.",
    err_no_account: "No account has that user name. Nothing was changed.",
    err_course: "Give the course. Nothing was changed.",
    err_completed_on: "Give the completion date as YYYY-MM-DD. Nothing was changed.",
    err_expires_on: "Give the expiry date as YYYY-MM-DD. Nothing was changed.",
    err_expiry_order: "The expiry must not be before the completion. Nothing was changed.",
    err_committee_name: "Give the committee a name.",
    err_committee_exists: "A committee with this name exists. Nothing was changed.",
    err_no_committee: "No such committee.",
    err_member_name: "A member without an account needs a name. Nothing was changed.",
    err_field: "Choose a field. Nothing was changed.",
    err_gender: "Choose a gender. Nothing was changed.",
    err_already_member: "This account is already an active member of the committee. Nothing was changed.",
    err_no_member: "No such member.",
    err_not_active: "This member is already inactive.",
};

fn text(lang: Lang) -> &'static Text {
    match lang {
        Lang::Ja => &JA,
        Lang::En => &EN,
    }
}

fn field_label(lang: Lang, f: Field) -> &'static str {
    pick(lang, f.label_ja(), f.label_en())
}

fn gender_label(t: &Text, g: Gender) -> &'static str {
    match g {
        Gender::Female => t.gender_female,
        Gender::Male => t.gender_male,
        Gender::Other => t.gender_other,
    }
}

const FIELDS: [Field; 3] = [Field::MedicineScience, Field::HumanitiesLaw, Field::GeneralPublic];
const GENDERS: [Gender; 3] = [Gender::Female, Gender::Male, Gender::Other];

/// Purposes a consent can cover (`other` covers nothing, so it is not offered).
fn consentable_purposes() -> impl Iterator<Item = PurposeCategory> {
    PurposeCategory::ALL.into_iter().filter(|p| *p != PurposeCategory::Other)
}

/// The composition problems in words (the texts of the review pages, with counts, fields and
/// genders).
fn problem_text(lang: Lang, t: &Text, p: &CompositionProblem) -> String {
    let a = lang.apps();
    match p {
        CompositionProblem::TooFewMembers { present, required } => {
            a.err_too_few_members.replace("{present}", &present.to_string()).replace("{required}", &required.to_string())
        }
        CompositionProblem::TooFewExternal { present, required } => {
            a.err_too_few_external.replace("{present}", &present.to_string()).replace("{required}", &required.to_string())
        }
        CompositionProblem::MissingField { field } => a.err_missing_field.replace("{field}", field_label(lang, *field)),
        CompositionProblem::MissingGender { gender } => a.err_missing_gender.replace("{gender}", gender_label(t, *gender)),
    }
}

// ---------------------------------------------------------------------------------------------
// The page.

struct VersionRow {
    version: String,
    published_on: String,
    recorded: String,
    in_force: bool,
}

struct Check {
    code: &'static str,
    label: &'static str,
    checked: bool,
}

struct DatasetView {
    name: String,
    title: String,
    scope_set: bool,
    purposes: String,
    diseases: String,
    kinds: String,
    recipients: String,
    updated: String,
    purpose_boxes: Vec<Check>,
    kind_boxes: Vec<Check>,
    diseases_value: String,
    recipients_value: String,
}

struct AccreditationView {
    id: i64,
    username: String,
    display_name: String,
    course: String,
    completed_on: String,
    expires_on: String,
    valid: bool,
}

struct MemberView {
    id: i64,
    name: String,
    account: String,
    field: &'static str,
    external: bool,
    gender: &'static str,
    active: bool,
}

struct CommitteeView {
    id: i64,
    name: String,
    receives_new: bool,
    members: Vec<MemberView>,
    /// Whether criteria are published to check the composition against.
    checked: bool,
    /// The composition problems in words (none: the committee can decide).
    problems: Vec<String>,
}

struct Choice {
    code: &'static str,
    label: &'static str,
}

#[derive(Template)]
#[template(path = "admin_review.html")]
struct ReviewPage {
    page: PageContext,
    t: &'static Text,
    notice: Option<&'static str>,
    error: Option<String>,
    criteria: Vec<VersionRow>,
    criteria_text: String,
    criteria_draft: String,
    tariffs: Vec<VersionRow>,
    tariff_text: String,
    tariff_draft: String,
    composition_ok: String,
    composition_bad: String,
    datasets: Vec<DatasetView>,
    accreditations: Vec<AccreditationView>,
    committees: Vec<CommitteeView>,
    fields: Vec<Choice>,
    genders: Vec<Choice>,
}

/// What a refused form leaves on the page: the message, and a TOML draft to fix.
#[derive(Default)]
struct Refused {
    message: String,
    criteria_draft: Option<String>,
    tariff_draft: Option<String>,
}

impl Refused {
    fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), ..Default::default() }
    }
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

fn day(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t).map(|t| t.date().to_string()).unwrap_or_default()
}

fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

fn parse_day(s: &str) -> Option<Date> {
    Date::parse(s.trim(), &time::macros::format_description!("[year]-[month]-[day]")).ok()
}

fn code_of<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.trim().to_string())).ok()
}

/// The signed-in operator, or the response to give instead.
#[allow(clippy::result_large_err)] // a page guard's early answer, built once per request
fn operator<'a>(s: &'a MaybeSession, lang: Lang, uri: &Uri) -> Result<&'a Session, Response> {
    match s.signed_in() {
        None => Err(Redirect::to("/login").into_response()),
        Some(sess) if sess.user.has_role(Role::Operator) => Ok(sess),
        Some(sess) => Err(error_page(StatusCode::FORBIDDEN, lang, Some(sess), uri, |m| m.err_forbidden)),
    }
}

async fn page(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, query: Result<Query<DoneQuery>, QueryRejection>) -> Response {
    let sess = match operator(&s, lang, &uri) {
        Ok(sess) => sess,
        Err(r) => return r,
    };
    let t = text(lang);
    let notice = match query.ok().and_then(|Query(q)| q.done).as_deref() {
        Some("criteria") => Some(t.done_criteria),
        Some("tariff") => Some(t.done_tariff),
        Some("consent") => Some(t.done_consent),
        Some("accreditation") => Some(t.done_accreditation),
        Some("committee") => Some(t.done_committee),
        Some("member") => Some(t.done_member),
        Some("deactivated") => Some(t.done_deactivated),
        _ => None,
    };
    show(&state, lang, sess, &uri, notice, None, StatusCode::OK).await
}

async fn show(
    state: &AppState,
    lang: Lang,
    sess: &Session,
    uri: &Uri,
    notice: Option<&'static str>,
    refused: Option<Refused>,
    status: StatusCode,
) -> Response {
    match build(state, lang, sess, uri, notice, refused).await {
        Ok(page) => (status, render(page)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "review set-up page failed");
            error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, Some(sess), uri, |m| m.err_internal)
        }
    }
}

fn versions(rows: &[niji_store::PublishedVersionRow], latest: Option<&niji_store::PublishedVersionRow>) -> Vec<VersionRow> {
    rows.iter()
        .rev()
        .map(|r| VersionRow {
            version: r.version.clone(),
            published_on: r.published_on.clone(),
            recorded: day(r.recorded_at),
            in_force: latest.is_some_and(|l| l.version == r.version),
        })
        .collect()
}

async fn build(
    state: &AppState,
    lang: Lang,
    sess: &Session,
    uri: &Uri,
    notice: Option<&'static str>,
    refused: Option<Refused>,
) -> Result<ReviewPage, StoreError> {
    let t = text(lang);
    let store = &state.instance().store;
    let refused = refused.unwrap_or_default();

    let criteria_rows = store.review_criteria_versions().await?;
    let latest_criteria = store.latest_review_criteria().await?;
    let tariff_rows = store.tariffs().await?;
    let latest_tariff = store.latest_tariff().await?;
    let criteria = latest_criteria.as_ref().and_then(|c| Criteria::from_toml(&c.body).ok());

    let mut datasets = Vec::new();
    for d in store.datasets().await? {
        let row = store.dataset_consent_scope(d.id).await?;
        let scope: Option<ConsentScope> = match &row {
            Some(row) => Some(serde_json::from_str(&row.scope).map_err(|_| StoreError::Invalid("consent scope".into()))?),
            None => None,
        };
        let updated = row.map(|r| format!("{} ({})", day(r.updated_at), r.updated_by)).unwrap_or_default();
        let s = scope.clone().unwrap_or_default();
        let join = |v: Vec<&str>| if v.is_empty() { t.none.to_string() } else { v.join("、") };
        datasets.push(DatasetView {
            title: if lang == Lang::Ja { d.title_ja.clone() } else { d.title_en.clone() },
            name: d.name,
            scope_set: scope.is_some(),
            purposes: join(s.purposes.iter().map(|p| pick(lang, p.label_ja(), p.label_en())).collect()),
            diseases: if s.diseases.is_empty() { t.any_disease.to_string() } else { s.diseases.join(", ") },
            kinds: join(s.recipient_kinds.iter().map(|k| pick(lang, k.label_ja(), k.label_en())).collect()),
            recipients: join(s.recipients.iter().map(String::as_str).collect()),
            updated,
            purpose_boxes: consentable_purposes()
                .map(|p| Check { code: p.as_str(), label: pick(lang, p.label_ja(), p.label_en()), checked: s.purposes.contains(&p) })
                .collect(),
            kind_boxes: RecipientKind::ALL
                .into_iter()
                .map(|k| Check { code: k.as_str(), label: pick(lang, k.label_ja(), k.label_en()), checked: s.recipient_kinds.contains(&k) })
                .collect(),
            diseases_value: s.diseases.join(", "),
            recipients_value: s.recipients.join("\n"),
        });
    }

    let mut accreditations = Vec::new();
    for a in store.accreditations().await? {
        let user = store.user(a.user_id).await?;
        let valid = matches!((parse_day(&a.completed_on), parse_day(&a.expires_on)), (Some(c), Some(e)) if c <= today() && today() <= e);
        accreditations.push(AccreditationView {
            id: a.id,
            username: user.as_ref().map(|u| u.username.clone()).unwrap_or_default(),
            display_name: user.map(|u| u.display_name).unwrap_or_default(),
            course: a.course,
            completed_on: a.completed_on,
            expires_on: a.expires_on,
            valid,
        });
    }

    let mut committees = Vec::new();
    for (i, c) in store.committees().await?.into_iter().enumerate() {
        let mut members = Vec::new();
        let mut composition = Vec::new();
        for m in store.committee_members(c.id).await? {
            let field: Option<Field> = code_of(&m.field);
            let gender: Option<Gender> = code_of(&m.gender);
            let account = match m.user_id {
                Some(u) => store.user(u).await?.map(|u| u.username).unwrap_or_default(),
                None => String::new(),
            };
            if m.active {
                if let (Some(field), Some(gender)) = (field, gender) {
                    composition.push(Member { id: m.id, field, external: m.external, gender });
                }
            }
            members.push(MemberView {
                id: m.id,
                name: m.display_name,
                account,
                field: field.map(|f| field_label(lang, f)).unwrap_or(""),
                external: m.external,
                gender: gender.map(|g| gender_label(t, g)).unwrap_or(""),
                active: m.active,
            });
        }
        // The check the chair's decision applies (`Deliberation::decide`), with nobody recused.
        let problems = match &criteria {
            Some(criteria) => match check_composition(&composition, &[], &criteria.committee) {
                Ok(()) => Vec::new(),
                Err(ps) => ps.iter().map(|p| problem_text(lang, t, p)).collect(),
            },
            None => Vec::new(),
        };
        committees.push(CommitteeView { id: c.id, name: c.name, receives_new: i == 0, members, checked: criteria.is_some(), problems });
    }

    Ok(ReviewPage {
        page: PageContext::new(lang, Some(sess), uri),
        t,
        notice,
        error: (!refused.message.is_empty()).then_some(refused.message),
        criteria: versions(&criteria_rows, latest_criteria.as_ref()),
        criteria_text: latest_criteria.as_ref().map(|c| c.body.clone()).unwrap_or_default(),
        criteria_draft: refused.criteria_draft.unwrap_or_else(|| latest_criteria.as_ref().map(|c| c.body.clone()).unwrap_or_default()),
        tariffs: versions(&tariff_rows, latest_tariff.as_ref()),
        tariff_text: latest_tariff.as_ref().map(|c| c.body.clone()).unwrap_or_default(),
        tariff_draft: refused.tariff_draft.unwrap_or_else(|| latest_tariff.as_ref().map(|c| c.body.clone()).unwrap_or_default()),
        composition_ok: t.composition_ok.replace("{version}", criteria.as_ref().map_or("", |c| c.version.as_str())),
        composition_bad: t.composition_bad.replace("{version}", criteria.as_ref().map_or("", |c| c.version.as_str())),
        datasets,
        accreditations,
        committees,
        fields: FIELDS.into_iter().map(|f| Choice { code: f.as_str(), label: field_label(lang, f) }).collect(),
        genders: GENDERS.into_iter().map(|g| Choice { code: gender_code(g), label: gender_label(t, g) }).collect(),
    })
}

fn gender_code(g: Gender) -> &'static str {
    match g {
        Gender::Female => "female",
        Gender::Male => "male",
        Gender::Other => "other",
    }
}

// ---------------------------------------------------------------------------------------------
// Forms.

/// A form's fields in order (checkbox groups repeat a name).
struct Fields(Vec<(String, String)>);

impl Fields {
    fn one(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

type RawForm = Result<Form<Vec<(String, String)>>, FormRejection>;

/// The common frame of every form: an operator, a readable form with the session's CSRF token,
/// then the action. `Ok(done)` redirects to the page with a notice; `Err` shows the page with the
/// refusal and nothing changed.
async fn handle<F, Fut>(state: AppState, lang: Lang, s: MaybeSession, uri: Uri, form: RawForm, action: F) -> Response
where
    F: FnOnce(AppState, Actor, Fields) -> Fut,
    Fut: std::future::Future<Output = Result<&'static str, (StatusCode, Refused)>>,
{
    let sess = match operator(&s, lang, &uri) {
        Ok(sess) => sess,
        Err(r) => return r,
    };
    let t = text(lang);
    let Ok(Form(fields)) = form else {
        return show(&state, lang, sess, &uri, None, Some(Refused::new(t.err_form)), StatusCode::BAD_REQUEST).await;
    };
    let fields = Fields(fields);
    if !constant_time_eq(fields.one("csrf").as_bytes(), sess.csrf_token.as_bytes()) {
        return error_page(StatusCode::FORBIDDEN, lang, Some(sess), &uri, |m| m.err_bad_request);
    }
    let actor = match Actor::load(&state.instance().store, sess.user.id).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "loading the acting operator failed");
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, Some(sess), &uri, |m| m.err_internal);
        }
    };
    match action(state.clone(), actor, fields).await {
        Ok(done) => Redirect::to(&format!("/admin/review?done={done}")).into_response(),
        Err((status, refused)) => show(&state, lang, sess, &uri, None, Some(refused), status).await,
    }
}

// ---------------------------------------------------------------------------------------------
// The set-up steps, shared by the portal's forms and the JSON API (`/api/v1/review/…`): each
// parses what was sent in one place and calls the same `niji-applications` function.

/// Why a set-up step was refused: a fixed variant per rule, a stable code for the API and a
/// fixed message in each language for the portal (a line number, a tier or a position at most,
/// never what was sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetupProblem {
    /// The form or body could not be read, or a code in it is not one of the choices.
    Form,
    Forbidden,
    Internal,
    TomlSyntax {
        line: usize,
    },
    TomlKeys,
    EmptyVersion,
    BadPublished,
    UnknownTier,
    MissingTier(Tier),
    BadDeadline(Tier),
    DeadlinesDecrease(Tier),
    MinMembers,
    MinExternal,
    Quorum,
    CommitteeRule,
    TariffUnknownTier,
    TariffMissingTier(Tier),
    VersionExists,
    NoDataset,
    /// The position (1-based) of a disease code that is not ICD-10.
    Disease {
        n: usize,
    },
    NoAccount,
    Course,
    CompletedOn,
    ExpiresOn,
    ExpiryOrder,
    CommitteeName,
    CommitteeExists,
    NoCommittee,
    MemberName,
    Field,
    Gender,
    AlreadyMember,
    NoMember,
    NotActive,
}

impl SetupProblem {
    pub(crate) fn status(self) -> StatusCode {
        use SetupProblem::*;
        match self {
            Forbidden => StatusCode::FORBIDDEN,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
            NoDataset | NoCommittee | NoMember => StatusCode::NOT_FOUND,
            VersionExists | CommitteeExists | AlreadyMember | NotActive => StatusCode::CONFLICT,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// Stable code (the API's `reason`).
    pub(crate) fn code(self) -> &'static str {
        use SetupProblem::*;
        match self {
            Form => "malformed",
            Forbidden => "forbidden",
            Internal => "internal",
            TomlSyntax { .. } => "toml_syntax",
            TomlKeys => "toml_keys",
            EmptyVersion => "empty_version",
            BadPublished => "bad_published",
            UnknownTier => "unknown_tier",
            MissingTier(_) => "missing_tier",
            BadDeadline(_) => "bad_deadline",
            DeadlinesDecrease(_) => "deadlines_decrease",
            MinMembers => "min_members",
            MinExternal => "min_external",
            Quorum => "quorum",
            CommitteeRule => "committee_rule",
            TariffUnknownTier => "tariff_unknown_tier",
            TariffMissingTier(_) => "tariff_missing_tier",
            VersionExists => "version_exists",
            NoDataset => "no_dataset",
            Disease { .. } => "not_icd10",
            NoAccount => "no_account",
            Course => "course_required",
            CompletedOn => "bad_completed_on",
            ExpiresOn => "bad_expires_on",
            ExpiryOrder => "expiry_before_completion",
            CommitteeName => "committee_name_required",
            CommitteeExists => "committee_exists",
            NoCommittee => "no_committee",
            MemberName => "member_name_required",
            Field => "unknown_field",
            Gender => "unknown_gender",
            AlreadyMember => "already_member",
            NoMember => "no_member",
            NotActive => "member_not_active",
        }
    }

    /// The line, tier or position the problem names, for the API.
    pub(crate) fn detail(self) -> (Option<usize>, Option<&'static str>, Option<usize>) {
        use SetupProblem::*;
        match self {
            TomlSyntax { line } => (Some(line), None, None),
            MissingTier(t) | BadDeadline(t) | DeadlinesDecrease(t) | TariffMissingTier(t) => (None, Some(t.as_str()), None),
            Disease { n } => (None, None, Some(n)),
            _ => (None, None, None),
        }
    }

    pub(crate) fn message(self, lang: Lang) -> String {
        use SetupProblem::*;
        let t = text(lang);
        match self {
            Form | Forbidden => t.err_form.to_string(),
            Internal => t.err_internal.to_string(),
            TomlSyntax { line } => t.err_toml_syntax.replace("{line}", &line.to_string()),
            TomlKeys => t.err_toml_keys.to_string(),
            EmptyVersion => t.err_empty_version.to_string(),
            BadPublished => t.err_bad_published.to_string(),
            UnknownTier => t.err_unknown_tier.to_string(),
            MissingTier(tier) => t.err_missing_tier.replace("{tier}", tier.as_str()),
            BadDeadline(tier) => t.err_bad_deadline.replace("{tier}", tier.as_str()),
            DeadlinesDecrease(tier) => t.err_deadlines_decrease.replace("{tier}", tier.as_str()),
            MinMembers => t.err_min_members.to_string(),
            MinExternal => t.err_min_external.to_string(),
            Quorum => t.err_quorum.to_string(),
            CommitteeRule => t.err_committee_rule.to_string(),
            TariffUnknownTier => t.err_tariff_unknown_tier.to_string(),
            TariffMissingTier(tier) => t.err_tariff_missing_tier.replace("{tier}", tier.as_str()),
            VersionExists => t.err_version_exists.to_string(),
            NoDataset => t.err_no_dataset.to_string(),
            Disease { n } => t.err_disease.replace("{n}", &n.to_string()),
            NoAccount => t.err_no_account.to_string(),
            Course => t.err_course.to_string(),
            CompletedOn => t.err_completed_on.to_string(),
            ExpiresOn => t.err_expires_on.to_string(),
            ExpiryOrder => t.err_expiry_order.to_string(),
            CommitteeName => t.err_committee_name.to_string(),
            CommitteeExists => t.err_committee_exists.to_string(),
            NoCommittee => t.err_no_committee.to_string(),
            MemberName => t.err_member_name.to_string(),
            Field => t.err_field.to_string(),
            Gender => t.err_gender.to_string(),
            AlreadyMember => t.err_already_member.to_string(),
            NoMember => t.err_no_member.to_string(),
            NotActive => t.err_not_active.to_string(),
        }
    }
}

/// A refusal of the workflow that no check before it caught, by variant: `missing` is what a
/// missing object means for this step, `conflict` what a uniqueness conflict means.
fn from_workflow(e: WorkflowError, missing: SetupProblem, conflict: SetupProblem) -> SetupProblem {
    match e {
        WorkflowError::Forbidden(_) => SetupProblem::Forbidden,
        WorkflowError::NotFound(_) | WorkflowError::Store(StoreError::NotFound { .. }) => missing,
        WorkflowError::Store(StoreError::Conflict { .. }) => conflict,
        WorkflowError::BadInput(p) => match p {
            InputProblem::Accreditation => SetupProblem::ExpiryOrder,
            InputProblem::CommitteeName => SetupProblem::CommitteeName,
            InputProblem::MemberName => SetupProblem::MemberName,
            InputProblem::AlreadyMember => SetupProblem::AlreadyMember,
            InputProblem::MemberNotActive => SetupProblem::NotActive,
        },
        WorkflowError::Criteria(c) => criteria_problem(&c),
        WorkflowError::Tariff(t) => tariff_problem(&t),
        other => {
            tracing::error!(error = %other, "review set-up step failed");
            SetupProblem::Internal
        }
    }
}

fn store_problem(e: StoreError) -> SetupProblem {
    tracing::error!(error = %e, "review set-up step failed");
    SetupProblem::Internal
}

/// The line of a TOML syntax error, if the text is not TOML at all.
fn syntax_error_line(text: &str) -> Option<usize> {
    let e = text.parse::<toml::Table>().err()?;
    let start = e.span().map(|s| s.start).unwrap_or(0).min(text.len());
    Some(text.as_bytes()[..start].iter().filter(|b| **b == b'\n').count() + 1)
}

fn toml_problem(text: &str) -> SetupProblem {
    match syntax_error_line(text) {
        Some(line) => SetupProblem::TomlSyntax { line },
        None => SetupProblem::TomlKeys,
    }
}

fn criteria_problem(e: &CriteriaError) -> SetupProblem {
    match e {
        // Resolved against the text by `publish`.
        CriteriaError::Toml(_) => SetupProblem::TomlKeys,
        CriteriaError::EmptyVersion => SetupProblem::EmptyVersion,
        CriteriaError::BadPublished => SetupProblem::BadPublished,
        CriteriaError::UnknownTier(_) => SetupProblem::UnknownTier,
        CriteriaError::MissingTier(tier) => SetupProblem::MissingTier(*tier),
        CriteriaError::BadDeadline(tier) => SetupProblem::BadDeadline(*tier),
        CriteriaError::DeadlinesDecrease(tier) => SetupProblem::DeadlinesDecrease(*tier),
        // `niji-review` names the broken committee rule by a fixed text only (no variant).
        CriteriaError::Committee(rule) => match *rule {
            "min_members must be at least 1" => SetupProblem::MinMembers,
            "min_external cannot exceed min_members" => SetupProblem::MinExternal,
            "quorum must be a fraction in (0, 1]" => SetupProblem::Quorum,
            _ => SetupProblem::CommitteeRule,
        },
    }
}

fn tariff_problem(e: &TariffError) -> SetupProblem {
    match e {
        TariffError::Toml(_) => SetupProblem::TomlKeys,
        TariffError::EmptyVersion => SetupProblem::EmptyVersion,
        TariffError::BadPublished => SetupProblem::BadPublished,
        TariffError::UnknownTier(_) => SetupProblem::TariffUnknownTier,
        TariffError::MissingTier(tier) => SetupProblem::TariffMissingTier(*tier),
    }
}

/// What is published from TOML.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Publication {
    Criteria,
    Tariff,
}

/// Publishes a new version of the criteria or the tariff from its TOML text (line endings
/// normalized). Returns the version.
pub(crate) async fn publish(state: &AppState, actor: &Actor, what: Publication, body: &str) -> Result<String, SetupProblem> {
    let body = body.replace("\r\n", "\n");
    let result = match what {
        Publication::Criteria => niji_applications::publish_criteria(state.instance(), actor, &body).await,
        Publication::Tariff => niji_applications::publish_tariff(state.instance(), actor, &body).await,
    };
    result.map_err(|e| {
        let toml = matches!(e, WorkflowError::Criteria(CriteriaError::Toml(_)) | WorkflowError::Tariff(TariffError::Toml(_)));
        if toml {
            toml_problem(&body)
        } else {
            from_workflow(e, SetupProblem::Internal, SetupProblem::VersionExists)
        }
    })
}

/// A dataset's consent scope from its parts as sent (codes, ICD-10 codes or prefixes, named
/// recipients); duplicates dropped.
pub(crate) fn consent_scope<'a>(
    purposes: impl IntoIterator<Item = &'a str>,
    recipient_kinds: impl IntoIterator<Item = &'a str>,
    diseases: impl IntoIterator<Item = &'a str>,
    recipients: impl IntoIterator<Item = &'a str>,
) -> Result<ConsentScope, SetupProblem> {
    let mut scope = ConsentScope { purposes: Vec::new(), diseases: Vec::new(), recipient_kinds: Vec::new(), recipients: Vec::new() };
    for p in purposes {
        match code_of::<PurposeCategory>(p) {
            Some(p) if p != PurposeCategory::Other => {
                if !scope.purposes.contains(&p) {
                    scope.purposes.push(p)
                }
            }
            _ => return Err(SetupProblem::Form),
        }
    }
    for k in recipient_kinds {
        match code_of::<RecipientKind>(k) {
            Some(k) => {
                if !scope.recipient_kinds.contains(&k) {
                    scope.recipient_kinds.push(k)
                }
            }
            None => return Err(SetupProblem::Form),
        }
    }
    for (i, d) in diseases.into_iter().map(str::trim).filter(|d| !d.is_empty()).enumerate() {
        match niji_review::disease::normalize(d) {
            Some(d) => scope.diseases.push(d),
            None => return Err(SetupProblem::Disease { n: i + 1 }),
        }
    }
    scope.recipients = recipients.into_iter().map(str::trim).filter(|r| !r.is_empty()).map(str::to_string).collect();
    Ok(scope)
}

/// Records a dataset's consent scope.
pub(crate) async fn set_consent_scope(state: &AppState, actor: &Actor, dataset: &str, scope: &ConsentScope) -> Result<(), SetupProblem> {
    let dataset = dataset.trim();
    if state.instance().store.dataset_by_name(dataset).await.map_err(store_problem)?.is_none() {
        return Err(SetupProblem::NoDataset);
    }
    niji_applications::set_consent_scope(state.instance(), actor, dataset, scope)
        .await
        .map_err(|e| from_workflow(e, SetupProblem::NoDataset, SetupProblem::Internal))
}

/// Records an accreditation of the account `username`. Returns its id.
pub(crate) async fn accredit(
    state: &AppState,
    actor: &Actor,
    username: &str,
    course: &str,
    completed_on: &str,
    expires_on: &str,
) -> Result<i64, SetupProblem> {
    let user = state.instance().store.user_by_username(username.trim()).await.map_err(store_problem)?.ok_or(SetupProblem::NoAccount)?;
    let course = course.trim();
    if course.is_empty() {
        return Err(SetupProblem::Course);
    }
    let completed = parse_day(completed_on).ok_or(SetupProblem::CompletedOn)?;
    let expires = parse_day(expires_on).ok_or(SetupProblem::ExpiresOn)?;
    if expires < completed {
        return Err(SetupProblem::ExpiryOrder);
    }
    niji_applications::add_accreditation(state.instance(), actor, user.id, course, completed, expires)
        .await
        .map_err(|e| from_workflow(e, SetupProblem::NoAccount, SetupProblem::Internal))
}

/// Creates a committee. Returns its id.
pub(crate) async fn create_committee_step(state: &AppState, actor: &Actor, name: &str) -> Result<i64, SetupProblem> {
    niji_applications::create_committee(state.instance(), actor, name)
        .await
        .map_err(|e| from_workflow(e, SetupProblem::Internal, SetupProblem::CommitteeExists))
}

/// A committee member as sent: an account's user name (empty: none), a name (empty: the
/// account's display name), codes of the field and gender.
pub(crate) struct MemberInput<'a> {
    pub username: &'a str,
    pub name: &'a str,
    pub field: &'a str,
    pub gender: &'a str,
    pub external: bool,
}

/// Adds a member to a committee. Returns the member's id.
pub(crate) async fn add_member_step(state: &AppState, actor: &Actor, committee: i64, m: MemberInput<'_>) -> Result<i64, SetupProblem> {
    let store = &state.instance().store;
    store.committee(committee).await.map_err(store_problem)?.ok_or(SetupProblem::NoCommittee)?;
    let username = m.username.trim();
    let (user_id, account_name) = if username.is_empty() {
        (None, String::new())
    } else {
        let u = store.user_by_username(username).await.map_err(store_problem)?.ok_or(SetupProblem::NoAccount)?;
        (Some(u.id), u.display_name)
    };
    let typed = m.name.trim();
    let display_name = if typed.is_empty() { account_name } else { typed.to_string() };
    if display_name.trim().is_empty() {
        return Err(SetupProblem::MemberName);
    }
    let field = code_of::<Field>(m.field).ok_or(SetupProblem::Field)?;
    let gender = code_of::<Gender>(m.gender).ok_or(SetupProblem::Gender)?;
    let member = NewMember { user_id, display_name, field, external: m.external, gender };
    niji_applications::add_committee_member(state.instance(), actor, committee, &member)
        .await
        .map_err(|e| from_workflow(e, SetupProblem::NoCommittee, SetupProblem::AlreadyMember))
}

/// Deactivates a committee member. Returns the member's committee.
pub(crate) async fn deactivate_member_step(state: &AppState, actor: &Actor, member: i64) -> Result<i64, SetupProblem> {
    niji_applications::deactivate_committee_member(state.instance(), actor, member)
        .await
        .map_err(|e| from_workflow(e, SetupProblem::NoMember, SetupProblem::Internal))
}

// ---------------------------------------------------------------------------------------------
// The portal's forms.

fn refused(lang: Lang, p: SetupProblem) -> (StatusCode, Refused) {
    (p.status(), Refused::new(p.message(lang)))
}

async fn publish_criteria(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, form: RawForm) -> Response {
    handle(state, lang, s, uri, form, |state, actor, f| async move {
        let body = f.one("toml").replace("\r\n", "\n");
        match publish(&state, &actor, Publication::Criteria, &body).await {
            Ok(_) => Ok("criteria"),
            Err(p) => Err((p.status(), Refused { message: p.message(lang), criteria_draft: Some(body), tariff_draft: None })),
        }
    })
    .await
}

async fn publish_tariff(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, form: RawForm) -> Response {
    handle(state, lang, s, uri, form, |state, actor, f| async move {
        let body = f.one("toml").replace("\r\n", "\n");
        match publish(&state, &actor, Publication::Tariff, &body).await {
            Ok(_) => Ok("tariff"),
            Err(p) => Err((p.status(), Refused { message: p.message(lang), tariff_draft: Some(body), criteria_draft: None })),
        }
    })
    .await
}

/// Splits a list typed with commas, spaces, 、 or new lines.
fn split_list(s: &str, by_line: bool) -> Vec<&str> {
    let parts: Vec<&str> = if by_line { s.lines().collect() } else { s.split(|c: char| c == ',' || c == '、' || c.is_whitespace()).collect() };
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty()).collect()
}

async fn set_consent(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, form: RawForm) -> Response {
    handle(state, lang, s, uri, form, |state, actor, f| async move {
        let scope =
            consent_scope(f.all("purpose"), f.all("recipient_kind"), split_list(f.one("diseases"), false), split_list(f.one("recipients"), true))
                .map_err(|p| refused(lang, p))?;
        set_consent_scope(&state, &actor, f.one("dataset"), &scope).await.map_err(|p| refused(lang, p))?;
        Ok("consent")
    })
    .await
}

async fn accredit_form(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, form: RawForm) -> Response {
    handle(state, lang, s, uri, form, |state, actor, f| async move {
        accredit(&state, &actor, f.one("username"), f.one("course"), f.one("completed_on"), f.one("expires_on"))
            .await
            .map_err(|p| refused(lang, p))?;
        Ok("accreditation")
    })
    .await
}

async fn create_committee(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, form: RawForm) -> Response {
    handle(state, lang, s, uri, form, |state, actor, f| async move {
        create_committee_step(&state, &actor, f.one("name")).await.map_err(|p| refused(lang, p))?;
        Ok("committee")
    })
    .await
}

async fn add_member(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, Path(id): Path<i64>, form: RawForm) -> Response {
    handle(state, lang, s, uri, form, |state, actor, f| async move {
        let member = MemberInput {
            username: f.one("username"),
            name: f.one("name"),
            field: f.one("field"),
            gender: f.one("gender"),
            external: f.one("external") == "1",
        };
        add_member_step(&state, &actor, id, member).await.map_err(|p| refused(lang, p))?;
        Ok("member")
    })
    .await
}

async fn deactivate_member(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, Path(id): Path<i64>, form: RawForm) -> Response {
    handle(state, lang, s, uri, form, |state, actor, _| async move {
        deactivate_member_step(&state, &actor, id).await.map_err(|p| refused(lang, p))?;
        Ok("deactivated")
    })
    .await
}
