//! The citizen portal (issue 6): a patient, or their parent or guardian, signs in with the access
//! code a data holder issued and the patient's birth date, sees what they agreed to and when,
//! which permits' runs actually included their data, and changes or withdraws their choices —
//! each change applying from the moment it is recorded (将来効).
//!
//! Access control: every page acts on the person of the signed-in credential only. No route
//! takes a person, subject or credential from the request; an entry id in a withdrawal is
//! looked up among the signed-in person's entries (`niji-consent` refuses any other). Staff
//! sessions get 403, no session gets the sign-in page. Texts in Japanese and English live here.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use niji_accounts::{NewSession, Session, SessionStage};
use niji_consent::{Actor, Choice, ConsentScope, ConsentState, OptOutScope};
use niji_core::Role;
use niji_registry::{ActingAs, Author, CitizenView, RegistryError};
use niji_review::{PurposeCategory, RecipientKind};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::applications::{from_code, pick};
use crate::cookies;
use crate::i18n::Lang;
use crate::portal::{constant_time_eq, random_token, render, MaybeSession, PageContext};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/citizen/login", get(login_page).post(login_submit)).route("/citizen", get(home)).route("/citizen/choices", post(record))
}

/// The texts of the citizen pages.
pub(crate) struct CitizenText {
    pub title: &'static str,
    pub login_title: &'static str,
    pub login_intro: &'static str,
    pub access_code: &'static str,
    pub birth_date: &'static str,
    pub birth_date_hint: &'static str,
    pub sign_in: &'static str,
    pub err_credentials: &'static str,
    pub err_throttled: &'static str,
    pub err_ended: &'static str,
    pub err_bad_request: &'static str,
    pub err_choice: &'static str,
    pub saved: &'static str,
    pub prospective: &'static str,
    pub acting_self: &'static str,
    pub acting_parent: &'static str,
    pub acting_guardian: &'static str,
    pub valid_until: &'static str,
    pub section_now: &'static str,
    pub no_choice: &'static str,
    pub notices: &'static str,
    pub notice_line: &'static str,
    pub opt_outs: &'static str,
    pub opt_out_all: &'static str,
    pub opt_out_purpose: &'static str,
    pub opt_out_recipient: &'static str,
    pub since: &'static str,
    pub consent: &'static str,
    pub consent_none: &'static str,
    pub consent_in_force: &'static str,
    pub consent_withdrawn: &'static str,
    pub consent_lapsed: &'static str,
    pub lapses_on: &'static str,
    pub purposes: &'static str,
    pub recipients: &'static str,
    pub diseases: &'static str,
    pub any_disease: &'static str,
    pub withdraw: &'static str,
    pub section_uses: &'static str,
    pub uses_intro: &'static str,
    pub no_uses: &'static str,
    pub permit: &'static str,
    pub organizations: &'static str,
    pub purpose: &'static str,
    pub first_used: &'static str,
    pub last_used: &'static str,
    pub runs: &'static str,
    pub section_change: &'static str,
    pub stop_all: &'static str,
    pub stop_purpose: &'static str,
    pub stop_recipient: &'static str,
    pub give_consent: &'static str,
    pub diseases_hint: &'static str,
    pub section_history: &'static str,
    pub recorded_at: &'static str,
    pub by: &'static str,
    pub what: &'static str,
    pub by_self: &'static str,
    pub by_parent: &'static str,
    pub by_guardian: &'static str,
    pub by_holder: &'static str,
    pub h_notice: &'static str,
    pub h_opt_out: &'static str,
    pub h_consent: &'static str,
    pub h_withdraw: &'static str,
    pub two_factor: &'static str,
    pub two_factor_on: &'static str,
    pub two_factor_add: &'static str,
}

static JA: CitizenText = CitizenText {
    title: "わたしのデータ",
    login_title: "本人・代理人のログイン",
    login_intro: "医療機関などから受け取ったアクセスコードと、ご本人の生年月日を入力してください。",
    access_code: "アクセスコード",
    birth_date: "ご本人の生年月日",
    birth_date_hint: "例: 1980-04-01",
    sign_in: "ログイン",
    err_credentials: "アクセスコードまたは生年月日が正しくありません。",
    err_throttled: "失敗が続いたため、しばらくログインできません。15分後にもう一度お試しください。",
    err_ended: "このアクセスコードは有効期限が過ぎたか、取り消されています。発行した医療機関にお問い合わせください。",
    err_bad_request: "送信された内容を処理できませんでした。もう一度お試しください。",
    err_choice: "この変更は受け付けられませんでした。内容を確かめてください。",
    saved: "変更を記録しました。",
    prospective: "変更は記録した時点から後のすべての利用に適用されます。すでに提供された集計結果は変わりません。",
    acting_self: "ご本人としてログインしています。",
    acting_parent: "親権者（代諾者）としてログインしています。",
    acting_guardian: "後見人等（代諾者）としてログインしています。",
    valid_until: "このアクセスコードの有効期限（ご本人が成年に達する日）",
    section_now: "いまの選択",
    no_choice: "特に選択はしていません。法律に基づき、通知を受けたうえで拒否しない限り、研究などに使われることがあります（丁寧なオプトアウト）。",
    notices: "受け取った通知",
    notice_line: "から通知",
    opt_outs: "利用の停止（オプトアウト）",
    opt_out_all: "すべての利用を停止",
    opt_out_purpose: "この目的の利用を停止",
    opt_out_recipient: "この種類の提供先への提供を停止",
    since: "から",
    consent: "同意",
    consent_none: "同意の記録はありません。",
    consent_in_force: "次の範囲で同意しています。範囲の外の利用には使われません。",
    consent_withdrawn: "同意を撤回しました。新しく同意するまで、すべての利用に使われません。",
    consent_lapsed: "代諾による同意は、ご本人が成年に達したため終了しました。ご本人が同意するまで、すべての利用に使われません。",
    lapses_on: "代諾による同意の終了日",
    purposes: "目的",
    recipients: "提供先",
    diseases: "疾患",
    any_disease: "限定なし",
    withdraw: "撤回する",
    section_uses: "あなたのデータを使った利用",
    uses_intro: "許可を受けた研究などの解析のうち、あなたのデータが実際に含まれたもの。",
    no_uses: "あなたのデータが含まれた利用はまだありません。",
    permit: "許可",
    organizations: "利用した組織",
    purpose: "目的",
    first_used: "初回",
    last_used: "最終",
    runs: "解析の回数",
    section_change: "選択を変える",
    stop_all: "すべての利用を停止する",
    stop_purpose: "この目的の利用を停止する",
    stop_recipient: "この種類の提供先への提供を停止する",
    give_consent: "この範囲で同意する",
    diseases_hint: "ICD-10 コード（例: E11, C50）をカンマで区切って。空欄なら疾患の限定なし。",
    section_history: "記録の履歴",
    recorded_at: "記録日時",
    by: "記録した人",
    what: "内容",
    by_self: "ご本人",
    by_parent: "親権者",
    by_guardian: "後見人等",
    by_holder: "医療機関等（書面）",
    h_notice: "通知を受け取った",
    h_opt_out: "利用の停止",
    h_consent: "同意",
    h_withdraw: "撤回（記録番号）",
    two_factor: "二要素認証（任意）",
    two_factor_on: "二要素認証を使っています。",
    two_factor_add: "認証アプリを登録して、ログインをより安全にする",
};

static EN: CitizenText = CitizenText {
    title: "My data",
    login_title: "Sign in for patients and their representatives",
    login_intro: "Enter the access code you received from your hospital or insurer, and the patient's birth date.",
    access_code: "Access code",
    birth_date: "Patient's birth date",
    birth_date_hint: "e.g. 1980-04-01",
    sign_in: "Sign in",
    err_credentials: "The access code or the birth date is wrong.",
    err_throttled: "Too many failed attempts. Please try again in 15 minutes.",
    err_ended: "This access code has expired or was revoked. Please ask the holder who issued it.",
    err_bad_request: "The form could not be processed. Please try again.",
    err_choice: "This change could not be recorded. Please check it.",
    saved: "Your change was recorded.",
    prospective: "A change applies to every use from the moment it is recorded. Results already released stay as they are.",
    acting_self: "You are signed in as the patient.",
    acting_parent: "You are signed in as a parent (consenting on the patient's behalf).",
    acting_guardian: "You are signed in as a guardian (consenting on the patient's behalf).",
    valid_until: "This access code is valid until (the patient comes of age)",
    section_now: "Your choices now",
    no_choice: "You have made no choice. By law, your data may be used for research after you were notified, unless you refuse (opt-out).",
    notices: "Notices received",
    notice_line: "notified on",
    opt_outs: "Stopped uses (opt-outs)",
    opt_out_all: "Every use stopped",
    opt_out_purpose: "Uses for this purpose stopped",
    opt_out_recipient: "Provision to this kind of recipient stopped",
    since: "since",
    consent: "Consent",
    consent_none: "No consent is recorded.",
    consent_in_force: "You consented within this scope. Your data is not used outside it.",
    consent_withdrawn: "You withdrew your consent. Your data is used for nothing until you consent again.",
    consent_lapsed:
        "The consent given on the patient's behalf ended when the patient came of age. The data is used for nothing until the patient consents.",
    lapses_on: "The consent given on the patient's behalf ends on",
    purposes: "Purposes",
    recipients: "Recipients",
    diseases: "Diseases",
    any_disease: "any",
    withdraw: "Withdraw",
    section_uses: "Uses that included your data",
    uses_intro: "Analyses under a permit whose data actually included yours.",
    no_uses: "No use has included your data yet.",
    permit: "Permit",
    organizations: "Organizations",
    purpose: "Purpose",
    first_used: "First",
    last_used: "Last",
    runs: "Analyses",
    section_change: "Change your choices",
    stop_all: "Stop every use",
    stop_purpose: "Stop uses for this purpose",
    stop_recipient: "Stop provision to this kind of recipient",
    give_consent: "Consent within this scope",
    diseases_hint: "ICD-10 codes (e.g. E11, C50), separated by commas. Empty: no restriction by disease.",
    section_history: "History",
    recorded_at: "Recorded",
    by: "By",
    what: "What",
    by_self: "The patient",
    by_parent: "A parent",
    by_guardian: "A guardian",
    by_holder: "The holder (on paper)",
    h_notice: "Notice received",
    h_opt_out: "Stopped use",
    h_consent: "Consent",
    h_withdraw: "Withdrawal of entry",
    two_factor: "Two-factor authentication (optional)",
    two_factor_on: "Two-factor authentication is on.",
    two_factor_add: "Add an authenticator app to make signing in safer",
};

fn text(lang: Lang) -> &'static CitizenText {
    match lang {
        Lang::Ja => &JA,
        Lang::En => &EN,
    }
}

#[derive(Template)]
#[template(path = "citizen_login.html")]
struct LoginPage {
    page: PageContext,
    t: &'static CitizenText,
    error: Option<&'static str>,
    form_csrf: String,
}

#[derive(Template)]
#[template(path = "citizen.html")]
struct HomePage {
    page: PageContext,
    t: &'static CitizenText,
    message: Option<&'static str>,
    error: Option<&'static str>,
    acting: &'static str,
    valid_until: Option<String>,
    notices: Vec<(String, String)>,
    opt_outs: Vec<OptOutRow>,
    consent_status: &'static str,
    consent: Option<ScopeRow>,
    lapses_on: Option<String>,
    uses: Vec<UseRow>,
    history: Vec<HistoryRow>,
    purposes: Vec<(&'static str, &'static str)>,
    kinds: Vec<(&'static str, &'static str)>,
    two_factor: bool,
}

struct OptOutRow {
    entry: u64,
    label: String,
    since: String,
}

struct ScopeRow {
    entry: u64,
    purposes: String,
    recipients: String,
    diseases: String,
}

struct UseRow {
    permit: i64,
    organizations: String,
    purpose: String,
    category: &'static str,
    first: String,
    last: String,
    runs: u32,
}

struct HistoryRow {
    id: u64,
    at: String,
    by: &'static str,
    what: String,
}

async fn login_page(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri) -> Response {
    if s.signed_in().is_some_and(is_citizen) {
        return Redirect::to("/citizen").into_response();
    }
    login_form(&state, lang, &uri, None, StatusCode::OK)
}

fn login_form(state: &AppState, lang: Lang, uri: &Uri, error: Option<&'static str>, status: StatusCode) -> Response {
    let form_csrf = random_token();
    let page = LoginPage { page: PageContext::new(lang, None, uri), t: text(lang), error, form_csrf: form_csrf.clone() };
    let mut resp = (status, render(page)).into_response();
    resp.headers_mut().append(header::SET_COOKIE, state.cookies().set(cookies::LOGIN_CSRF, &form_csrf, None));
    resp
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: String,
    access_code: String,
    birth_date: String,
}

async fn login_submit(
    State(state): State<AppState>,
    lang: Lang,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let t = text(lang);
    let Ok(Form(form)) = form else {
        return login_form(&state, lang, &uri, Some(t.err_bad_request), StatusCode::BAD_REQUEST);
    };
    let expected = cookies::get(&headers, cookies::LOGIN_CSRF);
    if !expected.is_some_and(|e| constant_time_eq(e.as_bytes(), form.csrf.as_bytes())) {
        return login_form(&state, lang, &uri, Some(t.err_bad_request), StatusCode::FORBIDDEN);
    }
    let code: String = form.access_code.chars().take(64).collect();
    let birth: String = form.birth_date.chars().take(32).collect();
    match niji_registry::sign_in(state.instance(), state.accounts(), &code, &birth, OffsetDateTime::now_utc()).await {
        Ok(session) => {
            let to = if session.stage == SessionStage::AwaitingTotp { "/login/totp" } else { "/citizen" };
            with_session(Redirect::to(to).into_response(), &state, &session)
        }
        Err(RegistryError::Throttled) => login_form(&state, lang, &uri, Some(t.err_throttled), StatusCode::TOO_MANY_REQUESTS),
        Err(RegistryError::CredentialEnded) => login_form(&state, lang, &uri, Some(t.err_ended), StatusCode::UNAUTHORIZED),
        Err(RegistryError::Storage) => login_form(&state, lang, &uri, Some(t.err_bad_request), StatusCode::INTERNAL_SERVER_ERROR),
        Err(_) => login_form(&state, lang, &uri, Some(t.err_credentials), StatusCode::UNAUTHORIZED),
    }
}

fn with_session(mut resp: Response, state: &AppState, session: &NewSession) -> Response {
    let policy = state.cookies();
    let max_age = (session.expires_at - OffsetDateTime::now_utc()).whole_seconds().max(0);
    resp.headers_mut().append(header::SET_COOKIE, policy.set(cookies::SESSION, &session.token, Some(max_age)));
    resp.headers_mut().append(header::SET_COOKIE, policy.clear(cookies::LOGIN_CSRF));
    resp
}

fn is_citizen(s: &Session) -> bool {
    s.user.has_role(Role::Citizen)
}

#[derive(Deserialize)]
struct Done {
    #[serde(default)]
    saved: Option<String>,
}

/// The signed-in citizen's session, or the response to give instead.
#[allow(clippy::result_large_err)] // a page guard's early answer, built once per request
fn citizen_session<'a>(s: &'a MaybeSession, lang: Lang, uri: &Uri) -> Result<&'a Session, Response> {
    match s.signed_in() {
        None => Err(Redirect::to("/citizen/login").into_response()),
        Some(sess) if !is_citizen(sess) => Err(crate::portal::error_page(StatusCode::FORBIDDEN, lang, Some(sess), uri, |m| m.err_forbidden)),
        Some(sess) => Ok(sess),
    }
}

async fn home(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, done: Query<Done>) -> Response {
    let sess = match citizen_session(&s, lang, &uri) {
        Ok(sess) => sess,
        Err(resp) => return resp,
    };
    let message = done.saved.is_some().then_some(text(lang).saved);
    page(&state, lang, sess, &uri, message, None, StatusCode::OK).await
}

async fn page(
    state: &AppState,
    lang: Lang,
    sess: &Session,
    uri: &Uri,
    message: Option<&'static str>,
    error: Option<&'static str>,
    status: StatusCode,
) -> Response {
    let t = text(lang);
    let view = match niji_registry::citizen_view(state.instance(), sess.user.id, OffsetDateTime::now_utc()).await {
        Ok(v) => v,
        Err(RegistryError::CredentialEnded) => return login_form(state, lang, uri, Some(t.err_ended), StatusCode::UNAUTHORIZED),
        Err(e) => {
            tracing::error!(error = %e, "citizen view failed");
            return crate::portal::error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, Some(sess), uri, |m| m.err_internal);
        }
    };
    (status, render(home_page(lang, sess, uri, &view, message, error))).into_response()
}

fn home_page(lang: Lang, sess: &Session, uri: &Uri, v: &CitizenView, message: Option<&'static str>, error: Option<&'static str>) -> HomePage {
    let t = text(lang);
    let purpose = |p: PurposeCategory| pick(lang, p.label_ja(), p.label_en());
    let kind = |k: RecipientKind| pick(lang, k.label_ja(), k.label_en());
    let scope_row = |entry: u64, s: &ConsentScope| ScopeRow {
        entry,
        purposes: s.purposes.iter().map(|p| purpose(*p)).collect::<Vec<_>>().join("、"),
        recipients: s.recipients.iter().map(|k| kind(*k)).collect::<Vec<_>>().join("、"),
        diseases: if s.diseases.is_empty() { t.any_disease.to_string() } else { s.diseases.join(", ") },
    };
    let opt_out_label = |scope: &OptOutScope| match scope {
        OptOutScope::All => t.opt_out_all.to_string(),
        OptOutScope::Purpose(p) => format!("{}: {}", t.opt_out_purpose, purpose(*p)),
        OptOutScope::Recipient(k) => format!("{}: {}", t.opt_out_recipient, kind(*k)),
    };
    let (consent_status, consent, lapses_on) = match &v.state.consent {
        ConsentState::NotGiven => (t.consent_none, None, None),
        ConsentState::InForce { consent, lapses_on } => {
            (t.consent_in_force, Some(scope_row(consent.entry, &consent.scope)), lapses_on.map(|d| d.to_string()))
        }
        ConsentState::Withdrawn { consent, .. } => (t.consent_withdrawn, Some(scope_row(consent.entry, &consent.scope)), None),
        ConsentState::Lapsed { consent, lapsed_on } => {
            (t.consent_lapsed, Some(scope_row(consent.entry, &consent.scope)), Some(lapsed_on.to_string()))
        }
    };
    let history = v
        .entries
        .iter()
        .rev()
        .map(|e| HistoryRow {
            id: e.id,
            at: jst(e.recorded_at),
            by: match e.actor {
                Actor::Person => t.by_self,
                Actor::Parent { .. } => t.by_parent,
                Actor::Guardian => t.by_guardian,
                Actor::Holder { .. } => t.by_holder,
            },
            what: match &e.choice {
                Choice::NoticeDelivered { holder, delivered_on } => format!("{} ({holder}, {delivered_on})", t.h_notice),
                Choice::OptOut { scope } => format!("{}: {}", t.h_opt_out, opt_out_label(scope)),
                Choice::Consent { scope } => {
                    let r = scope_row(e.id, scope);
                    format!("{}: {} / {} / {}", t.h_consent, r.purposes, r.recipients, r.diseases)
                }
                Choice::Withdraw { entry } => format!("{} {entry}", t.h_withdraw),
            },
        })
        .collect();
    HomePage {
        page: PageContext::new(lang, Some(sess), uri),
        t,
        message,
        error,
        acting: match v.acting_as {
            ActingAs::Person => t.acting_self,
            ActingAs::Parent => t.acting_parent,
            ActingAs::Guardian => t.acting_guardian,
        },
        valid_until: v.valid_until.map(|d| d.to_string()),
        notices: v.state.notices.iter().map(|n| (n.holder.clone(), n.delivered_on.to_string())).collect(),
        opt_outs: v.state.opt_outs.iter().map(|o| OptOutRow { entry: o.entry, label: opt_out_label(&o.scope), since: jst(o.since) }).collect(),
        consent_status,
        consent,
        lapses_on,
        uses: v
            .uses
            .iter()
            .map(|u| UseRow {
                permit: u.permit_id,
                organizations: u.organizations.join("、"),
                purpose: u.purpose.clone(),
                category: pick(lang, u.purpose_category.label_ja(), u.purpose_category.label_en()),
                first: jst(u.first_at),
                last: jst(u.last_at),
                runs: u.runs,
            })
            .collect(),
        history,
        purposes: PurposeCategory::ALL.iter().filter(|p| **p != PurposeCategory::Other).map(|p| (p.as_str(), purpose(*p))).collect(),
        kinds: RecipientKind::ALL.iter().map(|k| (k.as_str(), kind(*k))).collect(),
        two_factor: sess.user.totp_enabled,
    }
}

/// A choice from the form: `action` = `opt_out_all` | `opt_out_purpose` (+ `purpose`) |
/// `opt_out_recipient` (+ `kind`) | `consent` (+ `purposes`, `recipients`, `diseases`) |
/// `withdraw` (+ `entry`).
async fn record(
    State(state): State<AppState>,
    lang: Lang,
    s: MaybeSession,
    uri: Uri,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let sess = match citizen_session(&s, lang, &uri) {
        Ok(sess) => sess,
        Err(resp) => return resp,
    };
    let t = text(lang);
    let Ok(Form(fields)) = form else {
        return page(&state, lang, sess, &uri, None, Some(t.err_bad_request), StatusCode::BAD_REQUEST).await;
    };
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("");
    let all = |name: &str| fields.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
    if !constant_time_eq(get("csrf").as_bytes(), sess.csrf_token.as_bytes()) {
        return page(&state, lang, sess, &uri, None, Some(t.err_bad_request), StatusCode::FORBIDDEN).await;
    }
    let choice = match get("action") {
        "opt_out_all" => Some(Choice::OptOut { scope: OptOutScope::All }),
        "opt_out_purpose" => from_code::<PurposeCategory>(get("purpose")).map(|p| Choice::OptOut { scope: OptOutScope::Purpose(p) }),
        "opt_out_recipient" => from_code::<RecipientKind>(get("kind")).map(|k| Choice::OptOut { scope: OptOutScope::Recipient(k) }),
        "consent" => {
            let purposes: Option<Vec<PurposeCategory>> = all("purposes").into_iter().map(from_code).collect();
            let recipients: Option<Vec<RecipientKind>> = all("recipients").into_iter().map(from_code).collect();
            let diseases: Vec<String> =
                get("diseases").split([',', '、', ' ']).map(|d| d.trim().to_uppercase()).filter(|d| !d.is_empty()).take(50).collect();
            match (purposes, recipients) {
                (Some(purposes), Some(recipients)) => Some(Choice::Consent { scope: ConsentScope { purposes, recipients, diseases } }),
                _ => None,
            }
        }
        "withdraw" => get("entry").parse().ok().map(|entry| Choice::Withdraw { entry }),
        _ => None,
    };
    let Some(choice) = choice else {
        return page(&state, lang, sess, &uri, None, Some(t.err_bad_request), StatusCode::BAD_REQUEST).await;
    };
    match niji_registry::record_choice(state.instance(), &Author::Citizen { user_id: sess.user.id }, choice, OffsetDateTime::now_utc()).await {
        Ok(_) => Redirect::to("/citizen?saved=1").into_response(),
        Err(RegistryError::Choice(_)) => page(&state, lang, sess, &uri, None, Some(t.err_choice), StatusCode::UNPROCESSABLE_ENTITY).await,
        Err(RegistryError::CredentialEnded) => login_form(&state, lang, &uri, Some(t.err_ended), StatusCode::UNAUTHORIZED),
        Err(e) => {
            tracing::error!(error = %e, "recording a choice failed");
            crate::portal::error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, Some(sess), &uri, |m| m.err_internal)
        }
    }
}

/// Japan time, to the minute.
fn jst(t: OffsetDateTime) -> String {
    crate::applications::jst(t.unix_timestamp())
}
