//! The trusted-header module: who may assert an identity, and every malformed
//! header it must reject.

mod common;

use std::net::IpAddr;
use std::sync::Arc;

use authchain::account::{MemoryUserStore, Provisioning, RoleMapping};
use authchain::chain::{ModuleSettings, OnFailure};
use authchain::modules::HeaderModule;
use authchain::modules::header::{HeaderError, HeaderProblem};
use authchain::net::{ForwardedError, ForwardedHeader, ProxyTrust};
use authchain::{AuthChain, AuthError, AuthRequest, Authenticator, ModuleError, Outcome, RequestError};
use common::{peer, principal};
use http::{HeaderMap, HeaderName, HeaderValue};

const PROXY: &str = "10.0.0.5";

fn proxies() -> ProxyTrust {
    ProxyTrust::new(["10.0.0.0/24".parse().unwrap()])
}

fn module() -> HeaderModule {
    HeaderModule::builder("proxy")
        .trusted_proxies(proxies())
        .email_header(Some("remote-email".into()))
        .name_header(Some("remote-name".into()))
        .build()
        .unwrap()
}

fn request(from: &str, headers: &[(&str, &[u8])]) -> AuthRequest {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    AuthRequest::new(peer(from)).with_headers(map)
}

async fn identity(module: &HeaderModule, req: &AuthRequest) -> authchain::Identity {
    match module.authenticate(req).await {
        Ok(Outcome::Authenticated(identity)) => identity,
        other => panic!("expected an identity, got {other:?}"),
    }
}

#[tokio::test]
async fn trusted_proxy_headers_become_an_identity() {
    let req = request(
        PROXY,
        &[
            ("remote-user", b"alice"),
            ("remote-groups", b"admins, devs,,devs"),
            ("remote-groups", b"ops"),
            ("remote-email", b"alice@example.org"),
            ("remote-name", "Alice Liddell".as_bytes()),
        ],
    );
    let id = identity(&module(), &req).await;
    assert_eq!(id.login, "alice");
    assert_eq!(id.subject, "alice");
    assert_eq!(
        id.groups,
        ["admins", "devs", "ops"],
        "split, trimmed, de-duplicated, lines joined"
    );
    assert_eq!(id.email.as_deref(), Some("alice@example.org"));
    assert_eq!(id.display_name.as_deref(), Some("Alice Liddell"));
}

#[tokio::test]
async fn spoofed_headers_from_an_untrusted_peer_are_ignored() {
    let req = request(
        "203.0.113.9",
        &[("remote-user", b"admin"), ("remote-groups", b"admins")],
    );
    assert_eq!(module().authenticate(&req).await.unwrap(), Outcome::Abstain);

    // Loopback is not trusted unless configured.
    let req = request("127.0.0.1", &[("remote-user", b"admin")]);
    assert_eq!(module().authenticate(&req).await.unwrap(), Outcome::Abstain);

    // With no proxies configured, nobody is trusted, even a private address.
    let nobody = HeaderModule::builder("proxy").build().unwrap();
    let req = request(PROXY, &[("remote-user", b"admin")]);
    assert_eq!(nobody.authenticate(&req).await.unwrap(), Outcome::Abstain);

    // Through a chain: the spoofed request does not sign anybody in.
    let chain = AuthChain::builder(Arc::new(MemoryUserStore::new()))
        .module_with(module(), ModuleSettings::new().provisioning(Provisioning::Create))
        .build()
        .unwrap();
    let err = chain
        .login(&request("203.0.113.9", &[("remote-user", b"admin")]))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Unauthenticated { .. }), "{err:?}");
}

#[tokio::test]
async fn a_header_module_without_its_own_list_believes_its_chains_proxies() {
    // The same rule in code and in TOML: no list of its own → the chain's.
    let in_code = AuthChain::builder(Arc::new(MemoryUserStore::new()))
        .client_ip_from(proxies())
        .module_with(
            HeaderModule::builder("proxy").build().unwrap(),
            ModuleSettings::new().provisioning(Provisioning::Create),
        )
        .build()
        .unwrap();
    let from_toml = authchain::config::Config::from_toml(
        "chain = [\"proxy\"]\ntrusted_proxies = [\"10.0.0.0/24\"]\n[modules.proxy]\ntype = \"header\"\nprovisioning = \"create\"\n",
    )
    .unwrap()
    .build(authchain::config::Stores::new(Arc::new(MemoryUserStore::new())))
    .unwrap();
    for chain in [&in_code, &from_toml] {
        let p = principal(chain.login(&request(PROXY, &[("remote-user", b"alice")])).await);
        assert_eq!(p.login, "alice");
        // Not from elsewhere.
        let err = chain
            .login(&request("192.0.2.9", &[("remote-user", b"alice")]))
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::Unauthenticated { .. }), "{err:?}");
    }
    // A chain trusting nobody leaves such a module trusting nobody.
    let nobody = AuthChain::builder(Arc::new(MemoryUserStore::new()))
        .module(HeaderModule::builder("proxy").build().unwrap())
        .build()
        .unwrap();
    let err = nobody
        .login(&request(PROXY, &[("remote-user", b"alice")]))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Unauthenticated { .. }), "{err:?}");
}

#[tokio::test]
async fn insecure_trust_any_peer_trusts_everybody() {
    let m = HeaderModule::builder("proxy")
        .trusted_proxies(ProxyTrust::insecure_trust_any_peer())
        .build()
        .unwrap();
    let id = identity(&m, &request("203.0.113.9", &[("remote-user", b"bob")])).await;
    assert_eq!(id.login, "bob");
}

/// (label, headers, the header at fault, what is wrong with it).
type MalformedCase<'a> = (&'a str, Vec<(&'a str, &'a [u8])>, &'a str, HeaderProblem);

#[tokio::test]
async fn every_malformed_principal_is_rejected() {
    let long = "a".repeat(257);
    let cases: Vec<MalformedCase> = vec![
        (
            "duplicate",
            vec![("remote-user", b"alice"), ("remote-user", b"admin")],
            "remote-user",
            HeaderProblem::Repeated,
        ),
        (
            "empty",
            vec![("remote-user", b"")],
            "remote-user",
            HeaderProblem::Empty,
        ),
        (
            // A proxy that appends instead of overwriting: the client's value
            // and the proxy's, joined.
            "two names joined by a proxy",
            vec![("remote-user", b"alice, admin")],
            "remote-user",
            HeaderProblem::ListSeparator,
        ),
        (
            "two emails",
            vec![
                ("remote-user", b"alice"),
                ("remote-email", b"a@example.org,b@example.org"),
            ],
            "remote-email",
            HeaderProblem::ListSeparator,
        ),
        (
            "two names",
            vec![("remote-user", b"alice"), ("remote-name", b"Alice,Mallory")],
            "remote-name",
            HeaderProblem::ListSeparator,
        ),
        (
            "blank",
            vec![("remote-user", b"   ")],
            "remote-user",
            HeaderProblem::Empty,
        ),
        (
            "over-long",
            vec![("remote-user", long.as_bytes())],
            "remote-user",
            HeaderProblem::TooLong(256),
        ),
        (
            "tab",
            vec![("remote-user", b"ali\tce")],
            "remote-user",
            HeaderProblem::ControlCharacter,
        ),
        (
            "C1 control",
            vec![("remote-user", "alice\u{85}".as_bytes())],
            "remote-user",
            HeaderProblem::ControlCharacter,
        ),
        (
            "not UTF-8",
            vec![("remote-user", b"al\xffce")],
            "remote-user",
            HeaderProblem::NotUtf8,
        ),
        (
            "bad group",
            vec![("remote-user", b"alice"), ("remote-groups", b"ok,ba\td")],
            "remote-groups",
            HeaderProblem::ControlCharacter,
        ),
        (
            "duplicate email",
            vec![
                ("remote-user", b"a"),
                ("remote-email", b"x@y"),
                ("remote-email", b"z@y"),
            ],
            "remote-email",
            HeaderProblem::Repeated,
        ),
    ];
    for (label, headers, header, problem) in cases {
        let err = module()
            .authenticate(&request(PROXY, &headers))
            .await
            .unwrap_err();
        match &err {
            AuthError::InvalidRequest(RequestError::Header(found)) => {
                assert_eq!(found.header, header, "{label}");
                assert_eq!(found.problem, problem, "{label}");
            }
            other => panic!("{label}: expected InvalidRequest(Header), got {other:?}"),
        }
        assert_eq!(err.status_code(), 400, "{label}");
    }
    // An empty groups header is "no groups", not an error.
    let id = identity(
        &module(),
        &request(PROXY, &[("remote-user", b"a"), ("remote-groups", b"")]),
    )
    .await;
    assert!(id.groups.is_empty());
    // Past the first few groups, duplicates are still dropped and order kept.
    let names: Vec<String> = (0..1000).map(|i| format!("g{i}")).collect();
    let twice = format!("{},{}", names.join(","), names.join(","));
    let id = identity(
        &module(),
        &request(
            PROXY,
            &[("remote-user", b"a"), ("remote-groups", twice.as_bytes())],
        ),
    )
    .await;
    assert_eq!(id.groups, names[..]);
    // Too many groups.
    let many: String = (0..1100).map(|i| format!("g{i},")).collect();
    let err = module()
        .authenticate(&request(
            PROXY,
            &[("remote-user", b"a"), ("remote-groups", many.as_bytes())],
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::InvalidRequest(RequestError::Header(HeaderError {
                problem: HeaderProblem::TooManyGroups(1024),
                ..
            }))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_rejected_header_stops_a_chain_configured_to_stop() {
    let chain = AuthChain::builder(Arc::new(MemoryUserStore::new()))
        .module_with(module(), ModuleSettings::new().on_reject(OnFailure::Stop))
        .build()
        .unwrap();
    let req = request(PROXY, &[("remote-user", b"alice"), ("remote-user", b"admin")]);
    let err = chain.login(&req).await.unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::InvalidRequest(RequestError::Header(HeaderError {
                problem: HeaderProblem::Repeated,
                ..
            }))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn fail_if_missing_rejects_instead_of_abstaining() {
    let strict = HeaderModule::builder("proxy")
        .trusted_proxies(proxies())
        .fail_if_missing(true)
        .build()
        .unwrap();
    let err = strict.authenticate(&request(PROXY, &[])).await.unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::Rejected {
                cause: ModuleError::Header(HeaderError {
                    ref header,
                    problem: HeaderProblem::Missing,
                    ..
                }),
                ..
            } if header == "remote-user"
        ),
        "{err:?}"
    );
    assert_eq!(err.status_code(), 401);
    let err = strict
        .authenticate(&request("203.0.113.9", &[("remote-user", b"x")]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::Rejected {
                cause: ModuleError::Header(HeaderError {
                    problem: HeaderProblem::UntrustedPeer,
                    ..
                }),
                ..
            }
        ),
        "{err:?}"
    );
    // Without the flag a missing header is an abstention.
    assert_eq!(
        module().authenticate(&request(PROXY, &[])).await.unwrap(),
        Outcome::Abstain
    );
}

#[tokio::test]
async fn realm_strip_lowercase_and_custom_names() {
    let m = HeaderModule::builder("krb")
        .trusted_proxies(proxies())
        .principal_header("x-remote-user")
        .groups_header(Some("x-groups".into()))
        .group_separator(";")
        .strip_realm(true)
        .lowercase(true)
        .build()
        .unwrap();
    let req = request(
        PROXY,
        &[
            ("x-remote-user", b"Alice@EXAMPLE.ORG"),
            ("x-groups", b"a;b,c"),
            ("remote-user", b"eve"),
        ],
    );
    let id = identity(&m, &req).await;
    assert_eq!(id.login, "alice");
    assert_eq!(id.groups, ["a", "b,c"]);
    // A principal that is only a realm is empty after stripping.
    let err = m
        .authenticate(&request(PROXY, &[("x-remote-user", b"@EXAMPLE.ORG")]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::InvalidRequest(RequestError::Header(HeaderError {
                problem: HeaderProblem::Empty,
                ..
            }))
        ),
        "{err:?}"
    );
    // Bad header names are configuration errors naming the key (relative to the
    // module's settings; a configuration file prefixes `modules.<id>.`).
    let err = HeaderModule::builder("krb")
        .principal_header("bad header")
        .build()
        .unwrap_err();
    assert_eq!(err.key(), Some("principal_header"));
    let err = authchain::config::Config::from_toml(
        "chain = [\"krb\"]\n[modules.krb]\ntype = \"header\"\nprincipal_header = \"bad header\"\n",
    )
    .unwrap_err();
    assert_eq!(err.key(), Some("modules.krb.principal_header"));
}

#[tokio::test]
async fn client_ip_from_x_forwarded_for_ignores_a_forged_left_part() {
    let chain = AuthChain::builder(Arc::new(MemoryUserStore::new()))
        .client_ip_from(proxies())
        .module_with(module(), ModuleSettings::new().provisioning(Provisioning::Create))
        .build()
        .unwrap();
    // The client sent "X-Forwarded-For: 1.1.1.1"; the proxy appended the real peer.
    let req = request(
        PROXY,
        &[
            ("remote-user", b"alice"),
            ("x-forwarded-for", b"1.1.1.1, 198.51.100.7"),
        ],
    );
    let p = principal(chain.login(&req).await);
    assert_eq!(p.client_ip, "198.51.100.7".parse::<IpAddr>().unwrap());
    // Two trusted hops are skipped.
    let req = request(
        PROXY,
        &[
            ("remote-user", b"alice"),
            ("x-forwarded-for", b"1.1.1.1, 198.51.100.7, 10.0.0.9"),
        ],
    );
    assert_eq!(
        principal(chain.login(&req).await).client_ip,
        "198.51.100.7".parse::<IpAddr>().unwrap()
    );
    // An untrusted peer's X-Forwarded-For is ignored entirely.
    let req = request("198.51.100.99", &[("x-forwarded-for", b"10.0.0.1")]);
    assert_eq!(
        chain.client_ip(&req).unwrap(),
        "198.51.100.99".parse::<IpAddr>().unwrap()
    );
    // Garbage from a trusted proxy is a clear error.
    let req = request(PROXY, &[("x-forwarded-for", b"not-an-ip")]);
    let err = chain.client_ip(&req).unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::InvalidRequest(RequestError::Forwarded(ForwardedError {
                header: "X-Forwarded-For",
                ..
            }))
        ),
        "{err:?}"
    );
}

/// Collects the messages of the events it sees.
#[derive(Clone, Default)]
struct Messages(Arc<std::sync::Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Messages {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message<'a>(&'a mut String);
        impl tracing::field::Visit for Message<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    *self.0 = format!("{value:?}");
                }
            }
        }
        let mut text = String::new();
        event.record(&mut Message(&mut text));
        self.0.lock().unwrap().push(text);
    }
}

#[test]
fn a_trusted_proxy_sending_the_unread_forwarding_header_is_warned_about_once() {
    use tracing_subscriber::layer::SubscriberExt;
    let messages = Messages::default();
    let subscriber = tracing_subscriber::registry().with(messages.clone());
    let chain = AuthChain::builder(Arc::new(MemoryUserStore::new()))
        .client_ip_from(proxies()) // reads X-Forwarded-For
        .build()
        .unwrap();
    let only_forwarded = request(PROXY, &[("forwarded", b"for=198.51.100.1")]);
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..3 {
            // The proxy's own address, since the header it sent is not read...
            assert_eq!(
                chain.client_ip(&only_forwarded).unwrap(),
                PROXY.parse::<IpAddr>().unwrap()
            );
        }
        // ...and a configured header that is present is no mistake.
        let both = request(
            PROXY,
            &[
                ("forwarded", b"for=1.1.1.1"),
                ("x-forwarded-for", b"198.51.100.1"),
            ],
        );
        chain.client_ip(&both).unwrap();
    });
    let warnings = messages.0.lock().unwrap();
    let unread = warnings
        .iter()
        .filter(|m| m.contains("forwarding header the chain does not read"))
        .count();
    // Rate-limited: once per minute, however many requests.
    assert_eq!(unread, 1, "{warnings:?}");
}

#[tokio::test]
async fn client_ip_from_rfc7239_forwarded() {
    let trust = proxies().with_forwarded_header(ForwardedHeader::Forwarded);
    let chain = AuthChain::builder(Arc::new(MemoryUserStore::new()))
        .client_ip_from(trust)
        .build()
        .unwrap();
    let req = request(
        PROXY,
        &[(
            "forwarded",
            br#"for=1.1.1.1, for="[2001:db8::7]:443";proto=https"#,
        )],
    );
    assert_eq!(
        chain.client_ip(&req).unwrap(),
        "2001:db8::7".parse::<IpAddr>().unwrap()
    );
    // When reading Forwarded, a forged X-Forwarded-For is not consulted.
    let req = request(
        PROXY,
        &[
            ("forwarded", b"for=198.51.100.1"),
            ("x-forwarded-for", b"1.1.1.1"),
        ],
    );
    assert_eq!(
        chain.client_ip(&req).unwrap(),
        "198.51.100.1".parse::<IpAddr>().unwrap()
    );
}

#[tokio::test]
async fn groups_from_headers_map_to_roles() {
    let chain = AuthChain::builder(Arc::new(MemoryUserStore::new()))
        .module_with(
            module(),
            ModuleSettings::new().provisioning(Provisioning::Create).roles(
                RoleMapping::builder()
                    .rule("admins", "admin")
                    .default_for_unmapped("viewer")
                    .build()
                    .unwrap(),
            ),
        )
        .build()
        .unwrap();
    let req = request(PROXY, &[("remote-user", b"alice"), ("remote-groups", b"admins")]);
    assert_eq!(
        principal(chain.login(&req).await)
            .role_names()
            .collect::<Vec<_>>(),
        ["admin"]
    );
    let req = request(PROXY, &[("remote-user", b"bob")]);
    assert_eq!(
        principal(chain.login(&req).await)
            .role_names()
            .collect::<Vec<_>>(),
        ["viewer"]
    );
}
