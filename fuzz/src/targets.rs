//! The body of every fuzz target that goes through authchain's public API, one
//! function per target, named as the target. The fuzzers (`fuzz/fuzzers/*.rs`) call
//! them on libFuzzer's input, and `tests/fuzz_regressions.rs` in the main crate (which
//! includes this file) calls them on every checked-in seed and reproducer.
//!
//! Each returns whether the input was accepted (a verified response, a valid token,
//! a parsed value): the regression pass checks that some seed of each corpus still
//! is, so a corpus that went stale is noticed. What matters while fuzzing is only
//! that nothing panics, aborts, or runs without bound.
//!
//! Fixed data the targets need (the IdP metadata the SAML seeds were signed for,
//! the JWKS of the ID-token seeds, the public keys of the signed-header and
//! key-login seeds) lives in `fuzz/seeds/` and is compiled in (the signed-header
//! module reads its PEM keys from `fuzz/seeds/jws_keys/` by path).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use authchain::account::{MemoryUserStore, PasswordPolicy, Provisioning, RoleMapping, Verification};
use authchain::chain::ModuleSettings;
use authchain::config::Config;
use authchain::iso8601::IsoDuration;
use authchain::modules::{HeaderModule, OidcModule, SamlModule, SamlSettings, cas};
use authchain::net::ProxyTrust;
use authchain::{AuthChain, AuthRequest, Authenticator, LoginResult, Outcome, SecretString};
use base64ct::{Base64, Encoding};
use http::{HeaderMap, HeaderName, HeaderValue};

/// A target's body: `true` if the input was accepted.
pub type Target = fn(&[u8]) -> bool;

/// Every target by name, for the regression pass.
pub const TARGETS: &[(&str, Target)] = &[
    ("saml_response", saml_response),
    ("saml_encrypted", saml_encrypted),
    ("id_token", id_token),
    ("proxy_headers", proxy_headers),
    ("cas_response", cas_response),
    ("config_toml", config_toml),
    ("iso8601", iso8601),
    ("password_hash", password_hash),
    ("dn_roles", dn_roles),
    ("signed_header", signed_header),
    ("key_login", key_login),
];

/// A current-thread runtime, one per thread (libFuzzer runs a target on one thread).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
    }
    RUNTIME.with(|rt| rt.block_on(future))
}

// ---------------------------------------------------------------------------------
// SAML

/// The SP the SAML seeds were issued for (`fuzz/seeds/saml/README`).
const SAML_SP: &str = "http://127.0.0.1/sp-a";
const SAML_ACS: &str = "http://127.0.0.1/sp-a/acs";

fn saml_module() -> &'static SamlModule {
    static MODULE: OnceLock<SamlModule> = OnceLock::new();
    MODULE.get_or_init(|| {
        let mut settings = SamlSettings::new(
            SAML_SP.parse().expect("entity id"),
            SAML_ACS.parse().expect("ACS URL"),
        );
        settings.idp_metadata_xml = Some(include_str!("../seeds/saml/idp-metadata.xml").to_owned());
        // The seeds are IdP-initiated responses: no flow to hold a request id.
        settings.allow_idp_initiated = true;
        SamlModule::new("saml", settings).expect("the SAML module of the fuzz target")
    })
}

/// The time in a `fuzz/seeds/*/now` file (seconds since the epoch, as text).
fn seeds_time(now_file: &str) -> SystemTime {
    let seconds: u64 = now_file
        .trim()
        .parse()
        .expect("a fuzz/seeds/*/now file holds seconds since the epoch");
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

/// The time the SAML seeds were captured at (their validity window is around it).
fn saml_now() -> SystemTime {
    seeds_time(include_str!("../seeds/saml/now"))
}

/// A posted SAML response, given as its XML (the target base64-encodes it, as the
/// form would carry it): `SamlModule::verify_response` at the seeds' capture time.
pub fn saml_response(data: &[u8]) -> bool {
    let posted = Base64::encode_string(data);
    saml_module().verify_response(&posted, None, saml_now()).is_ok()
}

/// The SP the encrypted SAML seeds were issued for (`fuzz/seeds/saml_encrypted/README`).
const SAML_ENC_SP: &str = "http://127.0.0.1/sp-enc";
const SAML_ENC_ACS: &str = "http://127.0.0.1/sp-enc/acs";

fn saml_encrypted_module() -> &'static SamlModule {
    use authchain::modules::saml::PemSource;
    static MODULE: OnceLock<SamlModule> = OnceLock::new();
    MODULE.get_or_init(|| {
        let mut settings = SamlSettings::new(
            SAML_ENC_SP.parse().expect("entity id"),
            SAML_ENC_ACS.parse().expect("ACS URL"),
        );
        settings.idp_metadata_xml = Some(include_str!("../seeds/saml_encrypted/idp-metadata.xml").to_owned());
        settings.sp_decryption_key = Some(authchain::SecretSource::Inline(
            include_str!("../seeds/saml_encrypted/sp-key.pem").into(),
        ));
        settings.sp_encryption_certificate_file = Some(PemSource::Text(
            include_str!("../seeds/saml_encrypted/sp-cert.pem").to_owned(),
        ));
        settings.allow_idp_initiated = true;
        SamlModule::new("saml", settings).expect("the SAML module of the encrypted fuzz target")
    })
}

/// A posted SAML response holding an `EncryptedAssertion`, given as its XML:
/// decryption with the seeds' SP key, then every check, at the seeds' capture time.
pub fn saml_encrypted(data: &[u8]) -> bool {
    let now = seeds_time(include_str!("../seeds/saml_encrypted/now"));
    let posted = Base64::encode_string(data);
    saml_encrypted_module()
        .verify_response(&posted, None, now)
        .is_ok()
}

// ---------------------------------------------------------------------------------
// OIDC

/// The issuer, client and nonce of the ID-token seeds (`fuzz/seeds/id_token/README`).
pub const OIDC_ISSUER: &str = "https://issuer.test";
/// The client (`aud`) of the ID-token seeds.
pub const OIDC_CLIENT: &str = "client-1";
/// The nonce of the ID-token seeds.
pub const OIDC_NONCE: &str = "nonce-1";

/// Serves `fuzz/seeds/id_token/jwks.json` on a free port of 127.0.0.1 from a
/// thread, to every request; returns its URL.
fn jwks_server() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the JWKS server");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        let body = include_str!("../seeds/id_token/jwks.json");
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://127.0.0.1:{port}/jwks")
}

fn oidc_module() -> &'static OidcModule {
    static MODULE: OnceLock<OidcModule> = OnceLock::new();
    MODULE.get_or_init(|| {
        use authchain::flow::OAuthClientSettings;
        use authchain::modules::OidcSettings;
        use authchain::modules::oidc::Algorithm;
        let url = |u: &str| u.parse().expect("a provider URL");
        let client = OAuthClientSettings::new(
            OIDC_CLIENT.parse().expect("a client id"),
            url("https://app.test/callback"),
        );
        let mut settings = OidcSettings::new(url(OIDC_ISSUER), client);
        settings.discovery = false;
        settings.authorization_endpoint = Some(url("https://issuer.test/auth"));
        settings.token_endpoint = Some(url("https://issuer.test/token"));
        settings.jwks_uri = Some(url(&jwks_server()));
        settings.id_token_algorithms = Algorithm::NAMES
            .iter()
            .map(|name| Algorithm::from_name(name).expect("a known algorithm"))
            .collect();
        // One JWKS fetch for the whole run: an unknown `kid` is refused, not refetched.
        settings.jwks_min_refetch_interval = Duration::from_secs(365 * 24 * 3600);
        let module = OidcModule::new("oidc", settings).expect("the OIDC module of the fuzz target");
        block_on(module.prefetch()).expect("the fuzz target's JWKS");
        module
    })
}

/// An ID token (compact JWS): `OidcModule::validate_id_token` with every
/// supported algorithm allowed and the seeds' nonce.
pub fn id_token(data: &[u8]) -> bool {
    let Ok(token) = std::str::from_utf8(data) else {
        return false;
    };
    let module = oidc_module();
    block_on(module.validate_id_token(token, Some(OIDC_NONCE))).is_ok()
}

// ---------------------------------------------------------------------------------
// Trusted proxy headers

const PROXY: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));
const STRANGER: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));

fn proxies() -> ProxyTrust {
    ProxyTrust::new(["10.0.0.0/24".parse().expect("a CIDR")])
}

/// Header lines (`name: value`, one per `\n`; lines that are not a valid header
/// are dropped) from the trusted proxy (first byte even) or a stranger (odd),
/// through `AuthChain::login` with a header module (groups, email and name
/// headers, role mapping by name and DN, just-in-time accounts) and the client
/// address read from `X-Forwarded-For` / `Forwarded`.
pub fn proxy_headers(data: &[u8]) -> bool {
    let Some((&first, rest)) = data.split_first() else {
        return false;
    };
    let mut headers = HeaderMap::new();
    for line in rest.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(name, value);
        }
    }
    let peer = SocketAddr::new(if first % 2 == 0 { PROXY } else { STRANGER }, 40000);
    let module = HeaderModule::builder("proxy")
        .trusted_proxies(proxies())
        .groups_header(Some("remote-groups".into()))
        .email_header(Some("remote-email".into()))
        .name_header(Some("remote-name".into()))
        .strip_realm(first & 2 != 0)
        .lowercase(first & 4 != 0)
        .build()
        .expect("the header module of the fuzz target");
    let roles = RoleMapping::builder()
        .rule("admins", "admin")
        .rule("cn=ops,ou=groups,dc=example,dc=org", "operator")
        .default_for_unmapped("user")
        .match_dn(true)
        .build()
        .expect("the role mapping of the fuzz target");
    let chain = AuthChain::builder(Arc::new(MemoryUserStore::new()))
        .client_ip_from(proxies())
        .module_with(
            module,
            ModuleSettings::new()
                .provisioning(Provisioning::Create)
                .roles(roles),
        )
        .build()
        .expect("the chain of the fuzz target");
    let request = AuthRequest::new(peer).with_headers(headers);
    matches!(block_on(chain.login(&request)), Ok(LoginResult::Authenticated(_)))
}

// ---------------------------------------------------------------------------------
// CAS, TOML, ISO 8601

/// A CAS ticket validation answer (`serviceValidate` / `p3/serviceValidate` body).
pub fn cas_response(data: &[u8]) -> bool {
    cas::response::parse(data).is_ok()
}

/// A whole TOML configuration: `Config::from_toml` (parsing and checks only;
/// nothing is read from files or the environment).
pub fn config_toml(data: &[u8]) -> bool {
    match std::str::from_utf8(data) {
        Ok(text) => Config::from_toml(text).is_ok(),
        Err(_) => false,
    }
}

/// An ISO 8601 duration (`P90D`, `PT1.5S`): `IsoDuration::parse`.
pub fn iso8601(data: &[u8]) -> bool {
    match std::str::from_utf8(data) {
        Ok(text) => IsoDuration::parse(text).is_ok(),
        Err(_) => false,
    }
}

// ---------------------------------------------------------------------------------
// Stored password hashes

/// A stored hash (the first line) and a password (the rest): `PasswordPolicy::verify`.
///
/// Until every scheme's cost is limited before any work (issue 16), an input can
/// name a cost that runs for hours or allocates a terabyte: the regression pass runs
/// only the checked-in seeds, none of them costly.
pub fn password_hash(data: &[u8]) -> bool {
    static POLICY: OnceLock<PasswordPolicy> = OnceLock::new();
    let policy = POLICY.get_or_init(PasswordPolicy::fast_insecure_for_tests);
    let (hash, password) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let (Ok(hash), Ok(password)) = (std::str::from_utf8(hash), std::str::from_utf8(password)) else {
        return false;
    };
    matches!(
        policy.verify(&SecretString::from(password), hash),
        Verification::Valid { .. }
    )
}

// ---------------------------------------------------------------------------------
// DN reading and matching

/// Role mapping with `match_dn`: the first line is a rule's group (a name or a DN,
/// which the builder reads), every further line a group of the user (names and DNs,
/// matched against the rules). Accepted when a rule matched.
pub fn dn_roles(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let rule = lines.next().unwrap_or_default();
    let groups: Vec<&str> = lines.collect();
    let Ok(mapping) = RoleMapping::builder()
        .rule(rule, "fuzzed")
        .rule("cn=R\\+D,ou=groups,dc=example,dc=org", "rnd")
        .rule("CN=Admins,OU=Groups,DC=example,DC=org", "admin")
        .case_insensitive(true)
        .match_dn(true)
        .build()
    else {
        return false;
    };
    !mapping.map(&groups).is_empty()
}

// ---------------------------------------------------------------------------------
// Signed identity headers and key-login assertions (the keys of both are the
// public halves in `fuzz/seeds/jws_keys/`, see its README)

/// The issuer of the signed-header seeds.
pub const SIGNED_HEADER_ISSUER: &str = "https://proxy.test";
/// The audience of the signed-header seeds.
pub const SIGNED_HEADER_AUDIENCE: &str = "fuzz-app";
/// The harness's public keys, by file name in `fuzz/seeds/jws_keys/`.
pub const JWS_KEYS: [&str; 4] = ["rsa.pub.pem", "p256.pub.pem", "p384.pub.pem", "ed25519.pub.pem"];

/// `fuzz/seeds/` at run time: this file is compiled into the fuzz crate (manifest
/// `fuzz/`) and into the main crate's tests (manifest the repository).
fn seeds_dir() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    if manifest.join("fuzzers").is_dir() {
        manifest.join("seeds")
    } else {
        manifest.join("fuzz").join("seeds")
    }
}

fn signed_header_module() -> &'static authchain::modules::SignedHeaderModule {
    use authchain::jose::Algorithm;
    use authchain::modules::{SignedHeaderModule, SignedHeaderSettings};
    static MODULE: OnceLock<SignedHeaderModule> = OnceLock::new();
    MODULE.get_or_init(|| {
        let mut settings = SignedHeaderSettings::new(SIGNED_HEADER_ISSUER, SIGNED_HEADER_AUDIENCE);
        let keys = seeds_dir().join("jws_keys");
        settings.public_key_files = JWS_KEYS.iter().map(|name| keys.join(name)).collect();
        settings.algorithms = Algorithm::NAMES
            .iter()
            .map(|name| Algorithm::from_name(name).expect("a known algorithm"))
            .collect();
        settings.trusted_proxies = Some(vec!["10.0.0.0/24".parse().expect("a CIDR")]);
        SignedHeaderModule::new("signed", settings).expect("the signed-header module of the fuzz target")
    })
}

/// A signed identity header's value from the trusted proxy: the signed-header
/// module's `authenticate` (compact JWS, every supported algorithm allowed, the
/// harness's RSA, P-256, P-384 and Ed25519 keys; then the claims at the current
/// time: the valid seeds expire in 2100).
pub fn signed_header(data: &[u8]) -> bool {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return false;
    };
    let mut headers = HeaderMap::new();
    headers.insert(authchain::modules::signed_header::DEFAULT_SIGNED_HEADER, value);
    let request = AuthRequest::new(SocketAddr::new(PROXY, 40000)).with_headers(headers);
    matches!(
        block_on(signed_header_module().authenticate(&request)),
        Ok(Outcome::Authenticated(_))
    )
}

/// The audience of the key-login seeds.
pub const KEY_LOGIN_AUDIENCE: &str = "https://app.test";
/// The account the key-login seeds log in to.
pub const KEY_LOGIN_USER: &str = "alice";

/// A PEM `PUBLIC KEY` as DER.
fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|line| !line.starts_with("-----")).collect();
    Base64::decode_vec(body.trim()).expect("a PEM key of the fuzz harness")
}

/// A store holding `alice` with the harness's RSA, P-256 and Ed25519 keys.
fn key_login_store() -> Arc<MemoryUserStore> {
    use authchain::account::{KeyFamily, NewAccount, NewPublicKey, UserStore};
    static STORE: OnceLock<Arc<MemoryUserStore>> = OnceLock::new();
    STORE
        .get_or_init(|| {
            let store = Arc::new(MemoryUserStore::new());
            block_on(async {
                let alice = store
                    .create_account(NewAccount::new(KEY_LOGIN_USER))
                    .await
                    .expect("the fuzz target's account");
                for (family, pem) in [
                    (KeyFamily::Rsa, include_str!("../seeds/jws_keys/rsa.pub.pem")),
                    (KeyFamily::P256, include_str!("../seeds/jws_keys/p256.pub.pem")),
                    (
                        KeyFamily::Ed25519,
                        include_str!("../seeds/jws_keys/ed25519.pub.pem"),
                    ),
                ] {
                    store
                        .add_public_key(&alice.id, NewPublicKey::new(family, pem_der(pem)))
                        .await
                        .expect("the fuzz target's key");
                }
            });
            store
        })
        .clone()
}

/// The time the key-login seeds were signed at (they live two minutes).
fn key_login_now() -> SystemTime {
    seeds_time(include_str!("../seeds/key_login/now"))
}

/// A key-login assertion: `KeyLoginModule::verify_assertion` at the seeds' signing
/// time, against `alice`'s registered keys. Each input gets a fresh replay cache,
/// so that a seed is accepted however often it runs.
pub fn key_login(data: &[u8]) -> bool {
    use authchain::modules::{KeyLoginModule, KeyLoginSettings};
    let Ok(token) = std::str::from_utf8(data) else {
        return false;
    };
    let mut settings = KeyLoginSettings::new(KEY_LOGIN_AUDIENCE);
    settings.replay = Some(Arc::new(authchain::flow::MemoryReplayCache::default()));
    let module = KeyLoginModule::new("keys", key_login_store(), settings)
        .expect("the key-login module of the fuzz target");
    block_on(module.verify_assertion(token, key_login_now())).is_ok()
}
