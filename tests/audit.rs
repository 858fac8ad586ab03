//! Audit events as an operator's log shows them: plain values (no `Some(..)`, no
//! set braces), lists joined by `,`, control characters escaped, and the login's
//! duration.

use std::io::Write;
use std::sync::{Arc, Mutex};

use authchain::account::{MemoryUserStore, NewAccount, PasswordPolicy, UserStore};
use authchain::config::{Config, Stores};
use authchain::{AuthRequest, LoginResult};

/// Everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn login_events_carry_plain_values_and_the_duration() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("authchain::audit=info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let config = Config::from_toml("chain = [\"local\"]\n[modules.local]\ntype = \"local\"\n").unwrap();
    let store = Arc::new(MemoryUserStore::new());
    let hash = PasswordPolicy::owasp().hash("right").unwrap();
    store
        .create_account(
            NewAccount::new("alice")
                .password_hash(hash)
                .role("editor")
                .role("admin"),
        )
        .await
        .unwrap();
    let chain = config.build(Stores::new(store as Arc<dyn UserStore>)).unwrap();
    let peer = "127.0.0.1:40000".parse().unwrap();

    let ok = chain
        .login(&AuthRequest::new(peer).with_password("alice", "right"))
        .await;
    assert!(matches!(ok, Ok(LoginResult::Authenticated(_))));
    chain
        .login(&AuthRequest::new(peer).with_password("eve\nforged=1", "x"))
        .await
        .unwrap_err();

    let lines = captured.lines();
    let finished: Vec<&String> = lines.iter().filter(|l| l.contains("login finished")).collect();
    assert_eq!(finished.len(), 2, "{lines:#?}");
    let success = finished[0];
    for field in [
        "module=local",
        "outcome=authenticated",
        "login=alice",
        "roles=admin,editor",
        "client_ip=127.0.0.1",
    ] {
        assert!(success.contains(field), "{field} in {success}");
    }
    let duration: u64 = success
        .split_whitespace()
        .find_map(|f| f.strip_prefix("duration_ms="))
        .expect("duration_ms")
        .parse()
        .expect("whole milliseconds");
    assert!(duration < 60_000);
    let refusal = finished[1];
    assert!(refusal.contains("outcome=invalid_credentials"), "{refusal}");
    assert!(refusal.contains(r"login=eve\nforged=1"), "escaped: {refusal}");
    for line in &lines {
        assert!(!line.contains("Some("), "{line}");
        assert!(!line.contains("{\""), "{line}");
        assert!(!line.starts_with("forged"), "a login name forged a line: {line}");
    }
    let succeeded = lines
        .iter()
        .find(|l| l.contains("login succeeded"))
        .expect("login succeeded");
    assert!(
        succeeded.contains("roles=admin,editor") && succeeded.contains("login=alice"),
        "{succeeded}"
    );
}
