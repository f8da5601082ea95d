//! Delivers the outbox by SMTP: notifications the workflow enqueued for users with a mail
//! address (an application changed status, a decision was made) go out through the server set
//! by `NIJI_SMTP_URL` (`smtp://host:25` plain, `smtp://host:587?tls=required` with STARTTLS,
//! `smtps://host:465`, credentials as `smtp://user:pass@host`), from `NIJI_MAIL_FROM`.
//!
//! Invariants: a message is marked sent only after the server accepted it; a failure counts an
//! attempt and keeps the error's kind (not the server's text, which may quote addresses); after
//! [`MailConfig::max_attempts`] a message is left for an operator. Messages without an address
//! are portal-only and never mailed. No message body is logged.

use lettre::message::{header::ContentType, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use niji_store::{Store, StoreError};

/// Environment variable with the SMTP server's URL.
pub const SMTP_URL_ENV: &str = "NIJI_SMTP_URL";
/// Environment variable with the sender address.
pub const MAIL_FROM_ENV: &str = "NIJI_MAIL_FROM";

/// Where and how to deliver.
#[derive(Debug, Clone)]
pub struct MailConfig {
    pub smtp_url: String,
    pub from: String,
    /// Tries per message before it is left for an operator.
    pub max_attempts: i64,
    /// Messages per delivery run.
    pub batch: i64,
}

impl MailConfig {
    /// From `NIJI_SMTP_URL` and `NIJI_MAIL_FROM` (default `niji@localhost`); `None` without a URL.
    pub fn from_env() -> Option<Self> {
        let smtp_url = std::env::var(SMTP_URL_ENV).ok().filter(|u| !u.trim().is_empty())?;
        let from = std::env::var(MAIL_FROM_ENV).unwrap_or_else(|_| "niji@localhost".into());
        Some(Self { smtp_url, from, max_attempts: 5, batch: 100 })
    }
}

/// What one delivery run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    pub sent: usize,
    pub failed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the SMTP URL is not valid")]
    BadUrl,
    #[error("the sender address is not valid")]
    BadFrom,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sends every pending message with an address (up to `config.batch`).
pub async fn deliver_pending(store: &Store, config: &MailConfig) -> Result<Delivery, MailError> {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.smtp_url).map_err(|_| MailError::BadUrl)?.build();
    let from: Mailbox = config.from.parse().map_err(|_| MailError::BadFrom)?;
    let mut delivery = Delivery::default();
    for m in store.pending_mail(config.max_attempts, config.batch).await? {
        let to: Mailbox = match m.address.parse() {
            Ok(to) => to,
            Err(_) => {
                store.record_notification_failure(m.id, "invalid address").await?;
                delivery.failed += 1;
                continue;
            }
        };
        let message = Message::builder().from(from.clone()).to(to).subject(m.subject.clone()).header(ContentType::TEXT_PLAIN).body(m.body.clone());
        let message = match message {
            Ok(message) => message,
            Err(_) => {
                store.record_notification_failure(m.id, "message could not be built").await?;
                delivery.failed += 1;
                continue;
            }
        };
        match transport.send(message).await {
            Ok(_) => {
                store.mark_notification_sent(m.id, time::OffsetDateTime::now_utc().unix_timestamp()).await?;
                delivery.sent += 1;
            }
            Err(e) => {
                let kind = if e.is_permanent() {
                    "rejected by the server"
                } else if e.is_transient() {
                    "temporarily refused by the server"
                } else {
                    "connection failed"
                };
                store.record_notification_failure(m.id, kind).await?;
                delivery.failed += 1;
            }
        }
    }
    Ok(delivery)
}
