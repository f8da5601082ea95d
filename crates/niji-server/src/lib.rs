//! Niji's HTTP face: the JSON API under `/api/v1` (with its OpenAPI document) and the
//! portal, rendered on the server in Japanese by default with English switchable.
//!
//! Modules: `portal` (sign-in, account, status, users), `catalog` (the public data catalog
//! pages and the shared catalog figures), `jsonld` (the catalog as HealthDCAT-AP JSON-LD under
//! `/api/v1/catalog`), `upload` (data holders' submissions through the portal and the API,
//! run by `niji-intake`), `applications` (applications, review and permits in the portal, run
//! by `niji-applications`) and `applications_api` (the same in the JSON API), `workspace` (a
//! permit's analysis workspace, the output checkers' queue and release downloads, run by
//! `niji-analysis`) and `workspace_api` (the same in the JSON API), `api` (the rest of the JSON API and the OpenAPI document).
//!
//! Counts in the public catalog pass through [`niji_core::disclosure::catalog_count`]
//! (suppressed below 10, rounded to 10); exact linkage figures are shown to operators only.
//!
//! Invariants: this is the only crate that knows HTTP and JSON wire shapes; domain types
//! are mapped to response structs here, never serialized straight out. Errors reach
//! clients as stable codes and translated messages, never as internal text or cell
//! values. Every state-changing form carries a CSRF token; session cookies are HttpOnly
//! and SameSite=Strict. Business rules live in the crates below, not here.

mod admin_review;
mod api;
mod applications;
mod applications_api;
mod catalog;
mod citizen;
mod cookies;
mod csv;
mod dashboard;
mod extracts;
mod holder_registry;
mod i18n;
mod jsonld;
mod portal;
mod register;
mod upload;
mod workspace;
mod workspace_api;

pub use cookies::CookiePolicy;

/// The JSON shapes the API serves, for the command line to print the very same documents.
pub mod wire {
    pub use crate::api::openapi_json;

    /// A signed tree head as `/api/v1/log/head` serves it.
    pub fn signed_tree_head(head: &niji_log::SignedTreeHead, key: &niji_instance::ed25519_dalek::VerifyingKey) -> String {
        serde_json::to_string_pretty(&crate::api::head_body(head, key)).expect("serializes")
    }

    /// An inclusion proof as `/api/v1/log/proof/{index}` serves it.
    pub fn inclusion_proof(proof: &niji_log::InclusionProof) -> String {
        serde_json::to_string_pretty(&crate::api::proof_body(proof)).expect("serializes")
    }
}
pub use i18n::Lang;

use axum::http::{header, HeaderValue};
use axum::Router;
use niji_accounts::Accounts;
use niji_instance::Instance;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnRequest, DefaultOnResponse, TraceLayer};
use tracing::Level;

/// How the server is run.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub cookies: CookiePolicy,
    /// Largest request body of a data submission (portal and API), in bytes.
    pub max_upload_bytes: usize,
    /// Limits of permits' runs on real data, and their budget of stops.
    pub analysis: niji_analysis::AnalysisSettings,
}

/// Default [`ServerConfig::max_upload_bytes`]: 1 GiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 1 << 30;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            cookies: CookiePolicy { secure: false },
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            analysis: niji_analysis::AnalysisSettings::default(),
        }
    }
}

/// Shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    instance: Arc<Instance>,
    accounts: Arc<Accounts>,
    config: ServerConfig,
    started: Instant,
    /// The instance's code masters, read again only when its `masters/` files change.
    masters: niji_ingest::MastersCache,
}

impl AppState {
    pub fn new(instance: Arc<Instance>, accounts: Arc<Accounts>, config: ServerConfig) -> Self {
        Self { inner: Arc::new(Inner { instance, accounts, config, started: Instant::now(), masters: Default::default() }) }
    }
    fn masters(&self) -> &niji_ingest::MastersCache {
        &self.inner.masters
    }
    fn instance(&self) -> &Instance {
        &self.inner.instance
    }
    fn analysis(&self) -> &niji_analysis::AnalysisSettings {
        &self.inner.config.analysis
    }
    fn instance_arc(&self) -> Arc<Instance> {
        self.inner.instance.clone()
    }
    fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }
    fn cookies(&self) -> CookiePolicy {
        self.inner.config.cookies
    }
}

/// The whole application: portal, API, static files and security headers.
pub fn router(state: AppState) -> Router {
    let upload_limit = state.inner.config.max_upload_bytes;
    Router::new()
        .merge(portal::routes())
        .merge(catalog::routes())
        .merge(citizen::routes())
        .merge(holder_registry::routes())
        .merge(extracts::routes())
        .merge(dashboard::routes())
        .merge(upload::portal_routes(upload_limit))
        .merge(applications::routes())
        .merge(register::routes())
        .merge(workspace::routes())
        .merge(admin_review::routes())
        .nest(
            "/api/v1",
            api::routes()
                .merge(jsonld::routes())
                .merge(upload::api_routes(upload_limit))
                .merge(applications_api::routes())
                .merge(register::api_routes())
                .merge(holder_registry::api_routes())
                .merge(extracts::api_routes())
                .merge(workspace_api::api_routes()),
        )
        .with_state(state)
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; form-action 'self'"),
        ))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(
            // Access log: method, path, status and latency at info; bodies and headers
            // (cookies, tokens) are never logged.
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_request(DefaultOnRequest::new().level(Level::DEBUG))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
}

/// Clears what a crash may have left before a server starts: uploaded files of an interrupted
/// submission (`<instance>/uploads/`, holders' files in the clear) are deleted, and versions an
/// interrupted intake left in state `writing` are undone (`niji_intake::recover`), and jobs a
/// server was running are finished as failed (`niji_analysis::jobs::recover_interrupted`).
/// Returns the number of versions undone.
pub async fn recover_at_start(instance: &Instance) -> std::io::Result<usize> {
    let uploads = instance.paths.root.join("uploads");
    if uploads.exists() {
        std::fs::remove_dir_all(&uploads)?;
        tracing::warn!("removed the uploads of an interrupted submission");
    }
    let jobs =
        niji_analysis::jobs::recover_interrupted(instance).await.map_err(|e| std::io::Error::other(format!("recovering interrupted jobs: {e}")))?;
    if jobs > 0 {
        tracing::warn!(jobs, "marked jobs an interrupted server was running as failed");
    }
    match niji_intake::recover(instance, "system:startup").await {
        Ok(n) => {
            if n > 0 {
                tracing::warn!(versions = n, "undid dataset versions an interrupted intake left");
            }
            Ok(n)
        }
        Err(e) => Err(std::io::Error::other(format!("recovering interrupted intakes: {e}"))),
    }
}

/// Serves until `shutdown` resolves. Expired sessions are swept every ten minutes. Call
/// [`recover_at_start`] first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper_state = state.clone();
    let sweeper = tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            every.tick().await;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            match sweeper_state.instance().store.delete_expired_sessions(now).await {
                Ok(n) if n > 0 => tracing::info!(sessions = n, "expired sessions removed"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweeping expired sessions failed"),
            }
        }
    });
    let result = axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(shutdown).await;
    sweeper.abort();
    result
}
