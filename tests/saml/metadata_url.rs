//! IdP metadata from a URL (issue 14 item 4), served by a small HTTP server in the
//! test whose documents come from the real pysaml2 IdP: a key rollover learnt on a
//! signature failure (rate limited), the scheduled refresh keeping the last good
//! metadata when a refresh fails, `validUntil`, the metadata's own signature, the
//! size limit and the timeout.

use super::*;
use authchain::flow::HttpError;
use authchain::modules::saml::MetadataError;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SP_URL: &str = "http://127.0.0.1/sp-url";
const ACS_URL: &str = "http://127.0.0.1/sp-url/acs";

/// What the metadata server answers.
#[derive(Clone)]
enum Serve {
    Document(String),
    Status(u16),
    /// Waits this long before answering the document.
    Slow(Duration, String),
}

/// A one-document HTTP server on 127.0.0.1 (stopped with the test's runtime).
struct MetadataServer {
    url: String,
    serve: Arc<Mutex<Serve>>,
    hits: Arc<AtomicUsize>,
}

impl MetadataServer {
    async fn start(first: Serve) -> MetadataServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!(
            "http://{}/idp-metadata.xml",
            listener.local_addr().expect("address")
        );
        let serve = Arc::new(Mutex::new(first));
        let hits = Arc::new(AtomicUsize::new(0));
        let (serve2, hits2) = (serve.clone(), hits.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (serve, hits) = (serve2.clone(), hits2.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    hits.fetch_add(1, Ordering::SeqCst);
                    let answer = serve.lock().expect("lock").clone();
                    let (status, body) = match answer {
                        Serve::Document(body) => (200, body),
                        Serve::Status(status) => (status, "no".to_owned()),
                        Serve::Slow(delay, body) => {
                            tokio::time::sleep(delay).await;
                            (200, body)
                        }
                    };
                    let head = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/samlmetadata+xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(body.as_bytes()).await;
                });
            }
        });
        MetadataServer { url, serve, hits }
    }

    fn serve(&self, what: Serve) {
        *self.serve.lock().expect("lock") = what;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn idp_document(idp: &Idp, path: &str) -> String {
    reqwest::get(format!("{}{path}", idp.url))
        .await
        .expect("GET metadata")
        .text()
        .await
        .expect("metadata")
}

/// The SP reading its IdP's metadata from `url`; IdP-initiated responses allowed,
/// no rate limit unless the test sets one.
fn sp_url(idp: &Idp, url: &str) -> Sp {
    let (url, entity_id) = (url.to_owned(), idp.entity_id());
    Sp::new("saml", SP_URL, ACS_URL).with(move |s| {
        s.idp_metadata_url = Some(url.parse().expect("url"));
        s.idp_entity_id = Some(entity_id.parse().expect("entity id"));
        s.allow_idp_initiated = true;
        s.idp_metadata_min_refetch = Duration::ZERO;
    })
}

/// A response for the URL SP, signed by the IdP's key or the rogue one.
async fn response(idp: &Idp, rogue: bool) -> PostedForm {
    idp.unsolicited(
        SP_URL,
        Unsolicited {
            user: "alice",
            rogue,
            ..Unsolicited::default()
        },
    )
    .await
}

async fn login(chain: &AuthChain, form: &PostedForm) -> Result<LoginResult, AuthError> {
    chain.login(&callback(form.params(), None)).await
}

/// The cause of an outage of the module `saml`.
fn outage(result: Result<LoginResult, AuthError>) -> ModuleError {
    match result {
        Err(AuthError::Unavailable { module, cause, .. }) if module == "saml" => cause,
        other => panic!("expected `saml` to be unavailable, got {other:?}"),
    }
}

fn metadata_outage(result: Result<LoginResult, AuthError>) -> MetadataError {
    match outage(result) {
        ModuleError::Saml(SamlError::Metadata(e)) => e,
        other => panic!("expected a metadata cause, got {other:?}"),
    }
}

#[tokio::test]
async fn a_key_rollover_is_learnt_on_a_signature_failure_at_most_once_per_min_refetch() {
    let idp = Idp::shared();
    // Before the rollover the metadata names the old (here: rogue) key.
    let old = idp_document(idp, "/metadata/rogue").await;
    let new = idp_document(idp, "/metadata").await;
    let server = MetadataServer::start(Serve::Document(old.clone())).await;
    let module = registered(idp, sp_url(idp, &server.url), SP_URL).await;
    assert_eq!(module.idp_sso_url(), None, "nothing fetched at build");
    let (chain, _) = chain_of(module);
    let module = chain.module::<SamlModule>("saml").expect("module");

    principal(login(&chain, &response(idp, true).await).await);
    assert_eq!((server.hits(), module.idp_metadata_fetches()), (1, 1));
    assert_eq!(module.idp_sso_url(), Some(format!("{}/sso/redirect", idp.url)));

    // The IdP rolls its key over: the first response signed with the new key
    // fails against the cached metadata, which is fetched again once.
    server.serve(Serve::Document(new.clone()));
    principal(login(&chain, &response(idp, false).await).await);
    assert_eq!(server.hits(), 2);
    principal(login(&chain, &response(idp, false).await).await);
    assert_eq!(server.hits(), 2, "fresh metadata is not fetched again");
    // The old key is gone from the metadata now.
    assert!(matches!(
        saml_rejection(login(&chain, &response(idp, true).await).await),
        SamlError::Signature(_)
    ));
    assert_eq!(
        server.hits(),
        3,
        "a signature failure refetches (no rate limit here)"
    );

    // With a rate limit, signature failures do not hammer the metadata URL.
    server.serve(Serve::Document(old));
    let limited = sp_url(idp, &server.url)
        .with(|s| s.idp_metadata_min_refetch = Duration::from_secs(3600))
        .build()
        .expect("module");
    let (chain, _) = chain_of(limited);
    principal(login(&chain, &response(idp, true).await).await);
    let hits = server.hits();
    server.serve(Serve::Document(new));
    for _ in 0..3 {
        assert!(matches!(
            saml_rejection(login(&chain, &response(idp, false).await).await),
            SamlError::Signature(_)
        ));
    }
    assert_eq!(server.hits(), hits, "rate limited: no fetch");
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_last_good_metadata_and_expired_metadata_is_refused() {
    let idp = Idp::shared();
    let good = idp_document(idp, "/metadata").await;
    let server = MetadataServer::start(Serve::Document(good.clone())).await;
    let module = registered(
        idp,
        sp_url(idp, &server.url).with(|s| s.idp_metadata_refresh = Duration::from_millis(100)),
        SP_URL,
    )
    .await;
    let (chain, _) = chain_of(module);
    // SP-initiated: the start fetches the metadata for the SSO URL.
    let redirect = start(&chain, "saml").await;
    assert!(
        redirect
            .location
            .starts_with(&format!("{}/sso/redirect?", idp.url))
    );
    assert_eq!(server.hits(), 1);

    let expired = good.replacen("entityID=", r#"validUntil="2001-01-01T00:00:00Z" entityID="#, 1);
    for (n, broken) in [
        Serve::Status(500),
        Serve::Document("<md:EntityDescriptor".into()),
        Serve::Document(expired.clone()),
    ]
    .into_iter()
    .enumerate()
    {
        server.serve(broken);
        tokio::time::sleep(Duration::from_millis(150)).await;
        principal(login(&chain, &response(idp, false).await).await);
        assert_eq!(server.hits(), n + 2, "the scheduled refresh was tried");
    }
    server.serve(Serve::Document(good));
    tokio::time::sleep(Duration::from_millis(150)).await;
    principal(login(&chain, &response(idp, false).await).await);

    // Without good metadata before: refused as an outage, by reason.
    server.serve(Serve::Document(expired));
    let (chain, _) = chain_of(sp_url(idp, &server.url).build().expect("module"));
    assert_eq!(
        metadata_outage(login(&chain, &response(idp, false).await).await),
        MetadataError::Expired
    );
    server.serve(Serve::Status(404));
    let (chain, _) = chain_of(sp_url(idp, &server.url).build().expect("module"));
    assert!(matches!(
        outage(login(&chain, &response(idp, false).await).await),
        ModuleError::Http(HttpError::Status { status: 404, .. })
    ));
}

#[tokio::test]
async fn the_metadata_signature_is_checked_against_the_configured_certificate() {
    let idp = Idp::shared();
    let signed = idp_document(idp, "/metadata/signed").await;
    let unsigned = idp_document(idp, "/metadata").await;
    let server = MetadataServer::start(Serve::Document(unsigned.clone())).await;
    let signer = |file: &std::path::Path| {
        let pem = std::fs::read_to_string(file).expect("certificate");
        move |s: &mut SamlSettings| s.idp_metadata_signing_certificate_file = Some(PemSource::Text(pem))
    };
    let module = registered(
        idp,
        sp_url(idp, &server.url).with(signer(&idp.certificate_file)),
        SP_URL,
    )
    .await;
    let (chain, _) = chain_of(module);
    assert_eq!(
        metadata_outage(login(&chain, &response(idp, false).await).await),
        MetadataError::Unsigned
    );
    server.serve(Serve::Document(signed.clone()));
    principal(login(&chain, &response(idp, false).await).await);

    // Tampered: another SSO URL in the signed document.
    let tampered = signed.replacen("/sso/redirect", "/sso/evil", 1);
    assert_ne!(tampered, signed);
    server.serve(Serve::Document(tampered.clone()));
    let (chain, _) = chain_of(
        sp_url(idp, &server.url)
            .with(signer(&idp.certificate_file))
            .build()
            .expect("module"),
    );
    assert!(matches!(
        metadata_outage(login(&chain, &response(idp, false).await).await),
        MetadataError::Signature(_)
    ));
    // Signed by a key other than the configured one.
    server.serve(Serve::Document(signed.clone()));
    let (chain, _) = chain_of(
        sp_url(idp, &server.url)
            .with(signer(&idp.rogue_certificate_file))
            .build()
            .expect("module"),
    );
    assert!(matches!(
        metadata_outage(login(&chain, &response(idp, false).await).await),
        MetadataError::Signature(_)
    ));

    // The same checks on metadata given inline, when the module is built.
    let inline = |xml: &str, cert: &std::path::Path| {
        Sp::new("saml", SP_URL, ACS_URL)
            .with(|s| s.idp_metadata_xml = Some(xml.to_owned()))
            .with(signer(cert))
            .build()
    };
    assert!(inline(&signed, &idp.certificate_file).is_ok());
    for (xml, cert) in [
        (&unsigned, &idp.certificate_file),
        (&tampered, &idp.certificate_file),
        (&signed, &idp.rogue_certificate_file),
    ] {
        let err = inline(xml, cert).expect_err("refused");
        assert_eq!(err.key(), Some("idp_metadata_xml"), "{err}");
    }
}

#[tokio::test]
async fn fetched_metadata_is_bounded_in_size_and_time() {
    let idp = Idp::shared();
    let good = idp_document(idp, "/metadata").await;
    assert!(good.len() > 2048);
    let server = MetadataServer::start(Serve::Document(good.clone())).await;
    let (chain, _) = chain_of(
        sp_url(idp, &server.url)
            .with(|s| s.idp_metadata_max_bytes = 2048)
            .build()
            .expect("module"),
    );
    assert!(matches!(
        outage(login(&chain, &response(idp, false).await).await),
        ModuleError::Http(HttpError::TooLarge { max: 2048, .. })
    ));
    server.serve(Serve::Slow(Duration::from_secs(5), good));
    let (chain, _) = chain_of(
        sp_url(idp, &server.url)
            .with(|s| s.idp_metadata_timeout = Duration::from_millis(500))
            .build()
            .expect("module"),
    );
    let form = response(idp, false).await;
    let started = std::time::Instant::now();
    assert!(matches!(
        outage(login(&chain, &form).await),
        ModuleError::Http(HttpError::Timeout { .. })
    ));
    // The server answers after 5 s; the 0.5 s timeout gave up long before.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn metadata_url_settings_are_checked() {
    let idp = Idp::shared();
    let key = |sp: Sp| sp.build().expect_err("refused").key().map(str::to_owned);
    let url = "http://127.0.0.1:9/metadata";
    assert_eq!(
        key(sp_url(idp, url).with(|s| s.idp_entity_id = None)).as_deref(),
        Some("idp_entity_id")
    );
    assert_eq!(
        key(sp_url(idp, url).with(|s| s.idp_metadata_file = Some(idp.metadata_file.clone()))).as_deref(),
        Some("idp_metadata_xml")
    );
    assert_eq!(
        key(sp_url(idp, url).with(|s| s.idp_metadata_max_bytes = 10)).as_deref(),
        Some("idp_metadata_max_bytes")
    );
    assert_eq!(
        key(sp_url(idp, url).with(|s| s.idp_metadata_timeout = Duration::ZERO)).as_deref(),
        Some("idp_metadata_timeout")
    );
    assert!(
        "https://idp.example.org/metadata"
            .parse::<authchain::settings::ProviderUrl>()
            .is_ok()
            && "http://idp.example.org/metadata"
                .parse::<authchain::settings::ProviderUrl>()
                .is_err(),
        "https, or http on loopback only"
    );
}
