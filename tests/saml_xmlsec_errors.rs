//! xmlsec's per-failure error line (`func=...:file=...:error=...`) never reaches the
//! process's standard error; on the xmlsec backend it is a `debug` event with the
//! target `authchain::saml::xmlsec` instead.
//!
//! The response is the benchmarks' real pysaml2 fixture (benches/fixtures/saml),
//! verified offline; its tampered copy changes one character of the Response's
//! `SignatureValue`, so the digests still match and xmlsec's RSA check fails
//! (the case xmlsec reports with a line per failure). Standard error is only
//! observable from outside, so one check re-runs this test binary as a child
//! process (`CHILD_VAR` set) and reads the child's stderr.
//!
//! `cargo test --features saml --test saml_xmlsec_errors` (the xmlsec backend);
//! with `saml-rust-dsig` the stderr check runs too (xmlsec never verifies then).

use std::process::Command;
use std::time::{Duration, SystemTime};

use authchain::modules::SamlModule;
use authchain::modules::saml::SamlError;
use base64ct::{Base64, Encoding};

#[path = "../benches/fixtures/saml/fixture.rs"]
mod fixture;
use fixture::{RESPONSE, issued_at, module};

/// Set in the child process: run the failing verifications there.
const CHILD_VAR: &str = "AUTHCHAIN_TEST_XMLSEC_CHILD";
/// Failed verifications in the child: each would print a line without the fix.
const CHILD_FAILURES: usize = 20;

fn now() -> SystemTime {
    issued_at(RESPONSE) + Duration::from_secs(1)
}

/// The fixture with the first character of the Response's SignatureValue changed.
fn tampered() -> String {
    let marker = "<ns2:SignatureValue>";
    let at = RESPONSE.find(marker).expect("a SignatureValue") + marker.len();
    let first = &RESPONSE[at..at + 1];
    let other = if first == "A" { "B" } else { "A" };
    let xml = format!("{}{other}{}", &RESPONSE[..at], &RESPONSE[at + 1..]);
    Base64::encode_string(xml.as_bytes())
}

/// The verification of the tampered copy fails with a signature error, and the
/// fixture itself verifies (so the one changed character is the failure).
fn verify_tampered(module: &SamlModule) {
    let untouched = Base64::encode_string(RESPONSE.as_bytes());
    module
        .verify_response(&untouched, None, now())
        .expect("the fixture verifies");
    let result = module.verify_response(&tampered(), None, now());
    assert!(matches!(result, Err(SamlError::Signature(_))), "{result:?}");
}

/// The child's part (does nothing unless `CHILD_VAR` is set): the failures, with
/// a subscriber at the default `info` level on stderr, as a host would have.
#[test]
fn child_process_part() {
    if std::env::var_os(CHILD_VAR).is_none() {
        return;
    }
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let module = module();
        for _ in 0..CHILD_FAILURES {
            verify_tampered(&module);
        }
    });
    println!("CHILD done: {CHILD_FAILURES} signature failures");
}

#[test]
fn failed_verifications_write_nothing_to_stderr() {
    let output = Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", "child_process_part", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, "1")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("CHILD done: {CHILD_FAILURES} signature failures")),
        "the child did not run its failures\nstdout:\n{stdout}"
    );
    assert!(!stderr.contains("func="), "xmlsec wrote to stderr:\n{stderr}");
    assert!(!stderr.contains("xmlsec"), "stderr mentions xmlsec:\n{stderr}");
}

/// The xmlsec backend only: its reports, captured at debug level.
#[cfg(not(feature = "saml-rust-dsig"))]
mod debug_events {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;

    use super::{module, verify_tampered};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn xmlsec_reports_are_debug_events() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || writer.clone()),
            )
            .with(Targets::new().with_target("authchain::saml::xmlsec", LevelFilter::DEBUG));
        tracing::subscriber::with_default(subscriber, || verify_tampered(&module()));
        let captured = String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("utf-8");
        let events: Vec<&str> = captured
            .lines()
            .filter(|line| line.contains("authchain::saml::xmlsec"))
            .collect();
        assert!(!events.is_empty(), "no xmlsec event:\n{captured}");
        assert!(
            events.iter().all(|line| line.contains("DEBUG")),
            "not all at debug:\n{captured}"
        );
        // The RSA check that failed, with xmlsec's own words.
        assert!(
            events
                .iter()
                .any(|line| line.contains("func=") && line.contains("Verify")),
            "no report of the failed verification:\n{captured}"
        );
    }
}
