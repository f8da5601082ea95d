//! Reading and writing the few cookies the portal uses: the session token, the CSRF token
//! for the login form, and the language.

use axum::http::{header, HeaderMap, HeaderValue};

pub const SESSION: &str = "niji_session";
pub const LOGIN_CSRF: &str = "niji_login_csrf";

pub fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Which attributes the cookies get.
#[derive(Clone, Copy, Debug)]
pub struct CookiePolicy {
    /// Add `Secure` (the portal is served over HTTPS, directly or behind a proxy).
    pub secure: bool,
}

impl CookiePolicy {
    /// An HttpOnly, SameSite=Strict cookie; `max_age` None makes it a browser-session cookie.
    pub fn set(&self, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
        let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        if self.secure {
            c.push_str("; Secure");
        }
        HeaderValue::from_str(&c).expect("cookie values are URL-safe base64 or fixed words")
    }

    pub fn clear(&self, name: &str) -> HeaderValue {
        self.set(name, "", Some(0))
    }
}
