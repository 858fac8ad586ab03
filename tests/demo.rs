//! The demo service, started as a process and used over HTTP.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::redirect::Policy;

struct Demo {
    child: Child,
    base: String,
    /// Printed when the admin account was created (or its password reset).
    password: Option<String>,
    /// Held open: a demo writing to a closed pipe would die.
    _stdout: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example binary cargo built next to this test (`target/<profile>/examples/demo`).
fn demo_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let binary = profile_dir
        .join("examples")
        .join(format!("demo{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: `cargo test` builds examples; run the whole test suite, not --test demo alone after a clean",
        binary.display()
    );
    binary
}

/// A fresh data directory for one test.
fn data_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("demo").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn start(data_dir: &std::path::Path, extra: &[&str]) -> Demo {
    let mut child = Command::new(demo_binary())
        .args(["--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut base = None;
    let mut password = None;
    // The admin's password (if any) comes before the address.
    while base.is_none() {
        let line = lines
            .next()
            .expect("the demo printed its address")
            .expect("utf-8");
        if let Some(rest) = line.strip_prefix("authchain demo listening on ") {
            base = Some(rest.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("admin initial password: ") {
            password = Some(rest.trim().to_owned());
        }
    }
    Demo {
        child,
        base: base.unwrap(),
        password,
        _stdout: lines,
    }
}

fn client(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .local_address(Some(local.parse().unwrap()))
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn session_cookie(response: &reqwest::Response) -> String {
    let value = response
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap();
    value.split(';').next().unwrap().to_owned()
}

async fn me(client: &reqwest::Client, base: &str, cookie: &str) -> serde_json::Value {
    let response = client
        .get(format!("{base}/me"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn demo_signs_in_with_a_password_and_through_the_proxy() {
    let demo = start(&data_dir("signs-in"), &[]);
    let password = demo
        .password
        .clone()
        .expect("the first start prints the admin password");
    let browser = client("127.0.0.1");

    let page = browser
        .get(format!("{}/auth/login", demo.base))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Username and password"), "{page}");
    assert!(page.contains("Single sign-on (reverse proxy)"), "{page}");

    // Wrong password: an API client gets 401, a browser the login page with the error's code.
    let response = browser
        .post(format!("{}/auth/login", demo.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("module=local&login=admin&password=wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = browser
        .post(format!("{}/auth/login", demo.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "text/html")
        .body("module=local&login=admin&password=wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()["location"],
        "/auth/login?error=invalid_credentials"
    );

    // The seeded admin.
    let response = browser
        .post(format!("{}/auth/login", demo.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("module=local&login=ADMIN&password={password}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie(&response);
    let who = me(&browser, &demo.base, &cookie).await;
    assert_eq!(who["login"], "admin");
    assert_eq!(who["roles"], serde_json::json!(["admin"]));
    assert_eq!(who["module"], "local");

    // Not signed in.
    let response = browser.get(format!("{}/me", demo.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // The pretend reverse proxy on 127.0.0.2 asserts alice, a member of admins.
    let proxy = client("127.0.0.2");
    let response = proxy
        .get(format!("{}/auth/login/proxy", demo.base))
        .header("remote-user", "alice")
        .header("remote-groups", "admins,staff")
        .header("remote-email", "alice@example.org")
        .header("x-forwarded-for", "6.6.6.6, 198.51.100.23")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie(&response);
    let who = me(&proxy, &demo.base, &cookie).await;
    assert_eq!(who["login"], "alice");
    assert_eq!(who["roles"], serde_json::json!(["admin"]));
    assert_eq!(who["email"], "alice@example.org");

    // The same headers straight from a browser on 127.0.0.1 are ignored.
    let response = browser
        .get(format!("{}/auth/login/proxy", demo.base))
        .header("remote-user", "alice")
        .header("remote-groups", "admins")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get("set-cookie").is_none());
}

async fn password_login(client: &reqwest::Client, base: &str, password: &str) -> StatusCode {
    client
        .post(format!("{base}/auth/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("module=local&login=admin&password={password}"))
        .send()
        .await
        .unwrap()
        .status()
}

async fn proxy_login(base: &str, user: &str) -> serde_json::Value {
    let proxy = client("127.0.0.2");
    let response = proxy
        .get(format!("{base}/auth/login/proxy"))
        .header("remote-user", user)
        .header("remote-groups", "developers")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    me(&proxy, base, &session_cookie(&response)).await
}

#[tokio::test]
async fn demo_accounts_survive_a_restart_and_the_admin_password_can_be_reset() {
    let dir = data_dir("restart");
    let browser = client("127.0.0.1");

    let first = start(&dir, &[]);
    let password = first.password.clone().expect("created on the first start");
    assert_eq!(
        password_login(&browser, &first.base, &password).await,
        StatusCode::SEE_OTHER
    );
    let bob = proxy_login(&first.base, "bob").await;
    assert_eq!(bob["roles"], serde_json::json!(["developer"]));
    drop(first);
    assert!(dir.join("authchain.sqlite3").exists());

    // The same data directory: no new password, the old one and bob's account remain.
    let second = start(&dir, &[]);
    assert_eq!(second.password, None, "an existing admin keeps its password");
    assert_eq!(
        password_login(&browser, &second.base, &password).await,
        StatusCode::SEE_OTHER
    );
    let again = proxy_login(&second.base, "bob").await;
    assert_eq!(again["account_id"], bob["account_id"]);
    drop(second);

    // --reset-admin-password replaces it.
    let third = start(&dir, &["--reset-admin-password"]);
    let new_password = third.password.clone().expect("a reset prints the new password");
    assert_ne!(new_password, password);
    assert_eq!(
        password_login(&browser, &third.base, &password).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        password_login(&browser, &third.base, &new_password).await,
        StatusCode::SEE_OTHER
    );
}
