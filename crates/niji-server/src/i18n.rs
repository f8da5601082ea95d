//! Portal text in Japanese (the default) and English. Every string a person reads on a
//! page lives here, so that a missing translation is a compile error, not a blank.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::convert::Infallible;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Ja,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ja" => Some(Lang::Ja),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
    pub fn messages(self) -> &'static Messages {
        match self {
            Lang::Ja => &JA,
            Lang::En => &EN,
        }
    }
    pub fn role_label(self, role: niji_core::Role) -> &'static str {
        match self {
            Lang::Ja => role.label_ja(),
            Lang::En => role.label_en(),
        }
    }
}

pub const LANG_COOKIE: &str = "niji_lang";

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(crate::cookies::get(&parts.headers, LANG_COOKIE).and_then(|v| Lang::parse(&v)).unwrap_or(Lang::Ja))
    }
}

pub struct Messages {
    pub product: &'static str,
    pub tagline: &'static str,
    pub skip_to_content: &'static str,
    pub nav_home: &'static str,
    pub nav_status: &'static str,
    pub nav_account: &'static str,
    pub nav_login: &'static str,
    pub logout: &'static str,
    pub switch_language: &'static str,
    pub other_language_name: &'static str,
    pub home_intro: &'static str,
    pub home_steps: [&'static str; 5],
    pub login_title: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub sign_in: &'static str,
    pub totp_title: &'static str,
    pub totp_help: &'static str,
    pub totp_code: &'static str,
    pub verify: &'static str,
    pub enrol_title: &'static str,
    pub enrol_help: &'static str,
    pub enrol_secret: &'static str,
    pub account_title: &'static str,
    pub display_name: &'static str,
    pub organization: &'static str,
    pub roles: &'static str,
    pub two_factor: &'static str,
    pub enabled: &'static str,
    pub not_enabled: &'static str,
    pub none: &'static str,
    pub status_title: &'static str,
    pub status_version: &'static str,
    pub status_uptime: &'static str,
    pub status_log_size: &'static str,
    pub status_log_root: &'static str,
    pub status_log_signed_at: &'static str,
    pub status_schema: &'static str,
    pub status_accounts: &'static str,
    pub status_verify_hint: &'static str,
    pub err_invalid_credentials: &'static str,
    pub err_throttled: &'static str,
    pub err_invalid_totp: &'static str,
    pub err_replayed_totp: &'static str,
    pub err_session: &'static str,
    pub err_bad_request: &'static str,
    pub err_internal: &'static str,
    pub err_not_found: &'static str,
    pub back_home: &'static str,
    pub nav_admin: &'static str,
    pub admin_users_title: &'static str,
    pub admin_change_role: &'static str,
    pub admin_grant: &'static str,
    pub admin_revoke: &'static str,
    pub admin_recorded_hint: &'static str,
    pub admin_granted: &'static str,
    pub admin_revoked: &'static str,
    pub err_forbidden: &'static str,
    pub err_no_such_grant: &'static str,
}

pub static JA: Messages = Messages {
    product: "Niji 医療等情報二次利用基盤",
    tagline: "データは置いたまま、確かめられた結果だけを。",
    skip_to_content: "本文へ移動",
    nav_home: "ホーム",
    nav_status: "稼働状況",
    nav_account: "アカウント",
    nav_login: "ログイン",
    logout: "ログアウト",
    switch_language: "English",
    other_language_name: "English",
    home_intro: "Niji は、医療機関・保険者・学会などが提供する医療等情報を仮名化して連結し、審査を経た研究だけが、データを持ち出さずに解析できるようにする基盤です。すべてのアクセスと判断は改ざんを検知できる透明性ログに記録されます。",
    home_steps: [
        "データ提供者がFHIR・レセプト電算・CSVのデータを提出します。",
        "識別情報は分離され、鍵付きの仮名で連結されます。",
        "利活用者は一つの申請で複数のデータベースを申請し、審査体が判断します。",
        "解析はデータのある場所で行われ、結果は公開前に確認されます。",
        "本人はオプトアウトでき、誰が何のために使ったかを確かめられます。",
    ],
    login_title: "ログイン",
    username: "ユーザー名",
    password: "パスワード",
    sign_in: "ログイン",
    totp_title: "二要素認証",
    totp_help: "認証アプリに表示されている6桁のコードを入力してください。",
    totp_code: "確認コード（6桁）",
    verify: "確認",
    enrol_title: "二要素認証の設定",
    enrol_help: "職員の役割には二要素認証が必要です。認証アプリでQRコードを読み取るか、下の秘密鍵を入力し、表示された6桁のコードで確認してください。",
    enrol_secret: "秘密鍵",
    account_title: "アカウント",
    display_name: "氏名",
    organization: "所属",
    roles: "役割",
    two_factor: "二要素認証",
    enabled: "有効",
    not_enabled: "未設定",
    none: "なし",
    status_title: "稼働状況",
    status_version: "バージョン",
    status_uptime: "稼働時間（秒）",
    status_log_size: "透明性ログの記録数",
    status_log_root: "署名済みツリーヘッドのルートハッシュ",
    status_log_signed_at: "署名日時（UTC）",
    status_schema: "メタデータのスキーマ版",
    status_accounts: "アカウント数",
    status_verify_hint: "署名済みツリーヘッドと包含証明は /api/v1/log/head と /api/v1/log/proof/{index} から取得でき、RFC 6962 に従って誰でも検証できます。",
    err_invalid_credentials: "ユーザー名またはパスワードが正しくありません。",
    err_throttled: "ログインの失敗が続いたため、しばらくログインできません。15分後にもう一度お試しください。",
    err_invalid_totp: "確認コードが正しくないか、有効期限が切れています。",
    err_replayed_totp: "この確認コードはすでに使用されています。次のコードをお待ちください。",
    err_session: "セッションの有効期限が切れました。もう一度ログインしてください。",
    err_bad_request: "送信された内容を処理できませんでした。もう一度お試しください。",
    err_internal: "内部エラーが発生しました。時間をおいてもう一度お試しください。",
    err_not_found: "ページが見つかりません。",
    back_home: "ホームへ戻る",
    nav_admin: "利用者管理",
    admin_users_title: "利用者と役割",
    admin_change_role: "役割の付与・取消",
    admin_grant: "付与",
    admin_revoke: "取消",
    admin_recorded_hint: "役割の付与と取消は、操作した運用者とともに透明性ログに記録されます。",
    admin_granted: "役割を付与しました。",
    admin_revoked: "役割を取り消しました。",
    err_forbidden: "この操作には運用者の役割が必要です。",
    err_no_such_grant: "該当する利用者または役割がありません。",
};

pub static EN: Messages = Messages {
    product: "Niji health data platform",
    tagline: "The data stays put; only checked results leave.",
    skip_to_content: "Skip to content",
    nav_home: "Home",
    nav_status: "Status",
    nav_account: "Account",
    nav_login: "Sign in",
    logout: "Sign out",
    switch_language: "日本語",
    other_language_name: "日本語",
    home_intro: "Niji pseudonymizes and links health data handed in by hospitals, insurers and registries, and lets approved research analyse it where it lives, without downloading rows. Every access and decision is recorded in a tamper-evident transparency log.",
    home_steps: [
        "Data holders hand in FHIR, レセプト電算 (UKE) or CSV files.",
        "Identifiers are split off; records are linked by keyed pseudonyms.",
        "Researchers apply once for several databases; a neutral review body decides.",
        "Analysis runs where the data is; outputs are checked before release.",
        "People can opt out and see who used their data, and for what.",
    ],
    login_title: "Sign in",
    username: "User name",
    password: "Password",
    sign_in: "Sign in",
    totp_title: "Two-factor authentication",
    totp_help: "Enter the 6-digit code shown in your authenticator app.",
    totp_code: "Verification code (6 digits)",
    verify: "Verify",
    enrol_title: "Set up two-factor authentication",
    enrol_help: "Staff roles require two-factor authentication. Scan the QR code with an authenticator app, or type the secret below, then confirm with the 6-digit code it shows.",
    enrol_secret: "Secret",
    account_title: "Account",
    display_name: "Name",
    organization: "Organization",
    roles: "Roles",
    two_factor: "Two-factor authentication",
    enabled: "Enabled",
    not_enabled: "Not set up",
    none: "None",
    status_title: "Status",
    status_version: "Version",
    status_uptime: "Uptime (seconds)",
    status_log_size: "Transparency log entries",
    status_log_root: "Root hash of the signed tree head",
    status_log_signed_at: "Signed at (UTC)",
    status_schema: "Metadata schema version",
    status_accounts: "Accounts",
    status_verify_hint: "The signed tree head and inclusion proofs are served at /api/v1/log/head and /api/v1/log/proof/{index}; anyone can verify them following RFC 6962.",
    err_invalid_credentials: "Unknown user name or wrong password.",
    err_throttled: "Too many failed sign-ins. Please try again in 15 minutes.",
    err_invalid_totp: "The code is wrong or has expired.",
    err_replayed_totp: "This code was already used. Please wait for the next one.",
    err_session: "Your session has expired. Please sign in again.",
    err_bad_request: "The request could not be processed. Please try again.",
    err_internal: "An internal error occurred. Please try again later.",
    err_not_found: "Page not found.",
    back_home: "Back to home",
    nav_admin: "Users",
    admin_users_title: "Users and roles",
    admin_change_role: "Grant or revoke a role",
    admin_grant: "Grant",
    admin_revoke: "Revoke",
    admin_recorded_hint: "Every grant and revocation is recorded in the transparency log with the operator who made it.",
    admin_granted: "The role was granted.",
    admin_revoked: "The role was revoked.",
    err_forbidden: "This action needs the operator role.",
    err_no_such_grant: "No such user or role.",
};
