//! What the HTTP tests share: requests through the real router, replies with their cookies,
//! forms with their CSRF fields, staff sign-in with password and TOTP.
#![allow(dead_code)]

pub mod world;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use time::OffsetDateTime;
use tower::ServiceExt;

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap().to_string()))
    }
    pub fn location(&self) -> &str {
        self.headers.get(header::LOCATION).map(|v| v.to_str().unwrap()).unwrap_or("")
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

pub async fn send_to(router: &axum::Router, req: Request<Body>) -> Reply {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    Reply { status, headers, body }
}

pub fn get(uri: &str, cookies: &str) -> Request<Body> {
    Request::get(uri).header(header::COOKIE, cookies).body(Body::empty()).unwrap()
}

pub fn post_form(uri: &str, cookies: &str, form: &[(&str, &str)]) -> Request<Body> {
    let body = form.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect::<Vec<_>>().join("&");
    Request::post(uri)
        .header(header::COOKIE, cookies)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

pub fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

pub fn hidden_csrf(html: &str) -> String {
    let i = html.find("name=\"csrf\" value=\"").expect("form has a csrf field") + 19;
    html[i..].split('"').next().unwrap().to_string()
}

/// Signs a staff account in through the portal (password, then TOTP) and returns the session
/// cookie.
pub async fn staff_sign_in(router: &axum::Router, username: &str, password: &str, secret: &str) -> String {
    let page = send_to(router, get("/login", "")).await;
    let csrf_cookie = page.cookie("niji_login_csrf").unwrap();
    let r = send_to(
        router,
        post_form("/login", &format!("niji_login_csrf={csrf_cookie}"), &[("csrf", &csrf_cookie), ("username", username), ("password", password)]),
    )
    .await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/login/totp"));
    let pending = format!("niji_session={}", r.cookie("niji_session").unwrap());
    let totp_page = send_to(router, get("/login/totp", &pending)).await;
    let csrf = hidden_csrf(&totp_page.body);
    let code = niji_accounts::totp_code(secret, OffsetDateTime::now_utc()).unwrap();
    let r = send_to(router, post_form("/login/totp", &pending, &[("csrf", &csrf), ("code", &code)])).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/account"), "{}", r.body);
    format!("niji_session={}", r.cookie("niji_session").unwrap())
}
