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

use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding};
use criterion::{Criterion, Throughput, criterion_group};

#[path = "fixtures/saml/fixture.rs"]
mod fixture;
use fixture::{RESPONSE, issued_at, module};

const BACKEND: &str = if cfg!(feature = "saml-rust-dsig") {
    "Rust (saml-rust-dsig)"
} else {
    "xmlsec (samael)"
};

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
