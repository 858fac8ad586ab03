//! CAS benchmarks.
//!
//! * `cas_validation_answer/parse_cas3_attributes`: one CAS 3 validation answer as
//!   django-mama-cas sends it (user, 7 attributes, repeated groups, ~0.6 KB) read
//!   completely. Unit: answers/s (criterion's elem/s).
//! * `cas_login/start_and_callback_through_chain`: a whole CAS login through the
//!   chain (start → callback → one validation request → XML → account resolution and
//!   role mapping) against a local validation endpoint on 127.0.0.1 that answers a
//!   fixed success (so the figure is ours, not a CAS server's). Unit: logins/s. HTTP
//!   requests per login are counted and printed; the target is exactly 1.
//!
//! `cargo bench --features cas --bench cas`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use authchain::account::{MemoryUserStore, Provisioning, RoleMapping};
use authchain::chain::ModuleSettings;
use authchain::modules::cas::response;
use authchain::modules::{CasModule, CasSettings};
use authchain::{AuthChain, AuthRequest, Credentials, LoginResult};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const ANSWER: &str = "<cas:serviceResponse xmlns:cas=\"http://www.yale.edu/tp/cas\"><cas:authenticationSuccess>\
<cas:user>alice</cas:user><cas:attributes><cas:username>alice</cas:username>\
<cas:full_name>Alice Liddell</cas:full_name><cas:short_name>Alice</cas:short_name>\
<cas:email>alice@example.org</cas:email><cas:displayName>Alice Liddell</cas:displayName>\
<cas:groups>admins</cas:groups><cas:groups>staff</cas:groups></cas:attributes>\
</cas:authenticationSuccess></cas:serviceResponse>";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("cas_validation_answer");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_cas3_attributes", |b| {
        b.iter(|| response::parse(std::hint::black_box(ANSWER.as_bytes())).unwrap())
    });
    group.finish();
}

fn login(c: &mut Criterion) {
    let rt = runtime();
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    let app = axum::Router::new().route(
        "/cas/p3/serviceValidate",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            async { ([("content-type", "application/xml")], ANSWER) }
        }),
    );
    let base = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    });
    let module = Arc::new(
        CasModule::new(
            "cas",
            CasSettings::new(
                format!("{base}/cas").parse().unwrap(),
                "http://127.0.0.1/callback".parse().unwrap(),
            ),
        )
        .unwrap(),
    );
    let roles = RoleMapping::builder()
        .rule("admins", "admin")
        .rule("staff", "staff")
        .build()
        .unwrap();
    let chain = AuthChain::builder(Arc::new(MemoryUserStore::new()))
        .shared_module(
            module.clone(),
            ModuleSettings::new()
                .provisioning(Provisioning::Create)
                .roles(roles),
        )
        .build()
        .unwrap();
    let peer = "192.0.2.1:40000".parse().unwrap();
    let login = || async {
        let start = AuthRequest::new(peer)
            .with_credentials(Credentials::Start(authchain::StartLogin::new()))
            .select("cas");
        let Ok(LoginResult::Redirect(redirect)) = chain.login(&start).await else {
            panic!("no redirect")
        };
        let query = |url: &str| -> BTreeMap<String, String> {
            url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
        };
        let service = query(&redirect.location)["service"].clone();
        let params = BTreeMap::from([
            ("flow".to_owned(), query(&service)["flow"].clone()),
            ("ticket".to_owned(), "ST-1-bench".to_owned()),
        ]);
        let mut callback = AuthRequest::new(peer).with_credentials(Credentials::Callback { params });
        callback.flow_cookie = redirect.flow_cookie.map(|c| c.value);
        match chain.login(&callback).await {
            Ok(LoginResult::Authenticated(p)) => assert!(p.has_role("admin")),
            other => panic!("login failed: {other:?}"),
        }
    };
    rt.block_on(login());
    let before = module.requests();
    let logins = Arc::new(AtomicU64::new(0));

    let mut group = c.benchmark_group("cas_login");
    group.throughput(Throughput::Elements(1));
    group.bench_function("start_and_callback_through_chain", |b| {
        b.to_async(&rt).iter(|| async {
            login().await;
            logins.fetch_add(1, Ordering::Relaxed);
        })
    });
    group.finish();
    let after = module.requests();
    let n = logins.load(Ordering::Relaxed).max(1);
    println!(
        "cas_login: {n} logins, {} HTTP requests to the CAS server ({} validations) = {:.3} requests \
         per login; validation endpoint served {}",
        after.total() - before.total(),
        after.validation - before.validation,
        (after.total() - before.total()) as f64 / n as f64,
        served.load(Ordering::Relaxed),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(5));
    targets = parse, login
}
criterion_main!(benches);
