//! SAML benchmark.
//!
//! * `acs_validation/verify_response_7kb_response_and_assertion_signed`: the ACS
//!   check of a real 7.3 KB response made by pysaml2 (Response and Assertion each
//!   signed with RSA-SHA256, 2048-bit): shape checks, both signatures verified by
//!   xmlsec against the configured certificate, the signed bytes parsed again,
//!   Destination, Recipient, Audience, times, status, attributes. In-process, one
//!   core. Unit: responses/s (criterion's elem/s). Target ≥ 1,000/s.
//! * `acs_validation_parallel/2_threads`: the same on two threads at once (the
//!   module is shared; xmlsec work is per call). Unit: responses/s, both together.
//!
//! The fixture (benches/fixtures/saml, made by make-fixture.sh there) is checked at
//! its own issue time, so it never expires.
//!
//! The signatures are checked by xmlsec through samael (feature `saml`), or in Rust
//! (feature `saml-rust-dsig`); the first line printed says which.
//!
//! `cargo bench --features saml --bench saml`
//!
//! Instructions per response: with `AUTHCHAIN_BENCH_SAML_COUNT=N` the bench only
//! verifies the fixture N times and exits; run it under
//! `valgrind --tool=callgrind` with N = 200 and N = 0 and divide the difference
//! by 200.

use std::time::{Duration, Instant, SystemTime};

use authchain::modules::{SamlModule, SamlSettings};
use base64ct::{Base64, Encoding};
use criterion::{Criterion, Throughput, criterion_group};

const RESPONSE: &str = include_str!("fixtures/saml/response.xml");
const IDP_METADATA: &str = include_str!("fixtures/saml/idp-metadata.xml");

/// The response's IssueInstant (`2026-11-22T12:09:24Z`) as a `SystemTime`.
fn issued_at(xml: &str) -> SystemTime {
    let start = xml.find("IssueInstant=\"").expect("IssueInstant") + "IssueInstant=\"".len();
    let text = &xml[start..start + 20];
    let compact: String = text.chars().filter(|c| c.is_ascii_digit()).collect();
    let time = openssl::asn1::Asn1Time::from_str(&format!("{compact}Z")).expect("time");
    let diff = openssl::asn1::Asn1Time::from_unix(0)
        .expect("epoch")
        .diff(&time)
        .expect("diff");
    SystemTime::UNIX_EPOCH + Duration::from_secs(diff.days as u64 * 86_400 + diff.secs as u64)
}

const BACKEND: &str = if cfg!(feature = "saml-rust-dsig") {
    "Rust (saml-rust-dsig)"
} else {
    "xmlsec (samael)"
};

fn module() -> SamlModule {
    let mut settings = SamlSettings::new(
        "https://sp.example.org/saml".parse().expect("entity id"),
        "https://sp.example.org/saml/acs".parse().expect("ACS URL"),
    );
    settings.idp_metadata_xml = Some(IDP_METADATA.into());
    settings.allow_idp_initiated = true;
    settings.require_signed_messages = true;
    SamlModule::new("saml", settings).expect("module")
}

fn acs_validation(c: &mut Criterion) {
    let module = module();
    let posted = Base64::encode_string(RESPONSE.as_bytes());
    let now = issued_at(RESPONSE) + Duration::from_secs(1);
    let checked = module
        .verify_response(&posted, None, now)
        .expect("the fixture verifies");
    assert!(checked.response_signed && checked.assertion_signed);
    assert_eq!(checked.name_id, "alice");
    eprintln!(
        "signatures checked by {BACKEND}; fixture: {} bytes, Response and Assertion signed; unit below: responses/s (elem/s)",
        RESPONSE.len()
    );

    let mut group = c.benchmark_group("acs_validation");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify_response_7kb_response_and_assertion_signed", |b| {
        b.iter(|| module.verify_response(&posted, None, now).expect("verifies"))
    });
    group.finish();

    let threads = 2;
    let mut group = c.benchmark_group("acs_validation_parallel");
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("{threads}_threads"), |b| {
        b.iter_custom(|iters| {
            let per_thread = iters.div_ceil(threads);
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        for _ in 0..per_thread {
                            module.verify_response(&posted, None, now).expect("verifies");
                        }
                    });
                }
            });
            start
                .elapsed()
                .mul_f64(iters as f64 / (per_thread * threads) as f64)
        })
    });
    group.finish();
}

criterion_group!(benches, acs_validation);

fn main() {
    if let Ok(count) = std::env::var("AUTHCHAIN_BENCH_SAML_COUNT") {
        let count: u64 = count.parse().expect("a number of responses");
        let module = module();
        let posted = Base64::encode_string(RESPONSE.as_bytes());
        let now = issued_at(RESPONSE) + Duration::from_secs(1);
        for _ in 0..count {
            std::hint::black_box(module.verify_response(&posted, None, now).expect("verifies"));
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
