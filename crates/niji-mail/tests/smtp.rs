//! Delivery against a small SMTP server in the test (it speaks just enough SMTP for lettre and
//! refuses recipients whose address starts with `bad`), over the real outbox in SQLite.

use std::sync::{Arc, Mutex};

use niji_mail::{deliver_pending, Delivery, MailConfig};
use niji_store::{NewNotification, Store};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Starts the server; returns its port and the messages (DATA sections) it accepted.
async fn smtp_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let store = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let store = store.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 test ESMTP\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            store.lock().unwrap().push(std::mem::take(body));
                            data = None;
                            write.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        b"250 test\r\n"
                    } else if upper.starts_with("RCPT TO:<BAD") {
                        b"550 no such user\r\n"
                    } else if upper.starts_with("MAIL") || upper.starts_with("RCPT") || upper.starts_with("RSET") || upper.starts_with("NOOP") {
                        b"250 ok\r\n"
                    } else if upper.starts_with("DATA") {
                        data = Some(String::new());
                        b"354 go ahead\r\n"
                    } else if upper.starts_with("QUIT") {
                        write.write_all(b"221 bye\r\n").await.unwrap();
                        break;
                    } else {
                        b"502 not implemented\r\n"
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn the_outbox_is_mailed_and_failures_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("m.sqlite")).await.unwrap();
    let (port, accepted) = smtp_server().await;
    let note =
        |address: &'static str, subject: &'static str| NewNotification {
            user_id: None, address, subject, body: "申請 1 の状況が変わりました。"
        };
    store.enqueue_notification(&note("researcher@example.jp", "審査結果が出ました"), 0).await.unwrap();
    store.enqueue_notification(&note("", "portal only"), 0).await.unwrap();
    store.enqueue_notification(&note("bad@example.jp", "refused"), 0).await.unwrap();
    let config = MailConfig { smtp_url: format!("smtp://127.0.0.1:{port}"), from: "niji@example.jp".into(), max_attempts: 2, batch: 10 };

    assert_eq!(deliver_pending(&store, &config).await.unwrap(), Delivery { sent: 1, failed: 1 });
    let mails = accepted.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("researcher@example.jp") && mails[0].contains("niji@example.jp"), "{}", mails[0]);
    // The refused one is retried until max_attempts, then left alone; the portal-only one never.
    assert_eq!(deliver_pending(&store, &config).await.unwrap(), Delivery { sent: 0, failed: 1 });
    assert_eq!(deliver_pending(&store, &config).await.unwrap(), Delivery::default());
    let pending = store.pending_notifications(10, 10).await.unwrap();
    let refused = pending.iter().find(|m| m.address == "bad@example.jp").unwrap();
    assert_eq!((refused.attempts, refused.last_error.as_deref()), (2, Some("rejected by the server")));
    assert!(pending.iter().any(|m| m.address.is_empty()), "portal-only messages stay in the outbox for the portal");

    // No server at all: a connection failure is an attempt too.
    store.enqueue_notification(&note("later@example.jp", "x"), 0).await.unwrap();
    let down = MailConfig { smtp_url: "smtp://127.0.0.1:1".into(), ..config };
    assert_eq!(deliver_pending(&store, &down).await.unwrap(), Delivery { sent: 0, failed: 1 });
}
