#![cfg(feature = "saml")]
//! SAML 2.0 service provider against a real IdP (PyPI `pysaml2`, started by
//! tests/peers/saml-idp.sh): SP-initiated login end to end with roles, signed
//! AuthnRequests, replay, responses for another SP, IdP-initiated responses, and
//! attacks built from real signed responses (tampering, signature removal, a
//! foreign key with its own certificate in KeyInfo, signature wrapping, comments
//! in the NameID, expiry, DOCTYPE / external entities, SHA-1).

mod common;
#[path = "saml/encrypted.rs"]
mod encrypted;
#[path = "saml/idp.rs"]
mod idp;
#[path = "saml/metadata_url.rs"]
mod metadata_url;
#[path = "saml/xml.rs"]
mod xml;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use authchain::account::{MemoryUserStore, Provisioning, RoleMapping, UserStore};
use authchain::chain::ModuleSettings;
use authchain::config::{Config, Stores};
use authchain::flow::{FlowError, ReplayError, SameSite};
use authchain::modules::saml::{Mismatch, PemSource, SamlError, SignedPart, TimeLimit};
use authchain::modules::{LocalModule, SamlModule, SamlSettings};
use authchain::settings::ModuleSettingsType;
use authchain::{
    AuthChain, AuthError, AuthRequest, Authenticator, ConfigError, Credentials, LoginResult, ModuleError,
    Outcome, Prompt, Redirect, RequestError, SecretSource, StartLogin,
};
use base64ct::{Base64, Encoding};
use common::{peer, principal};
use idp::{Idp, LoginPage, PostedForm, Unsolicited, browser_login};

const SP_A: &str = "http://127.0.0.1/sp-a";
const ACS_A: &str = "http://127.0.0.1/sp-a/acs";
const SP_B: &str = "http://127.0.0.1/sp-b";
const ACS_B: &str = "http://127.0.0.1/sp-b/acs";
const SP_SIGNED: &str = "http://127.0.0.1/sp-signed";
const ACS_SIGNED: &str = "http://127.0.0.1/sp-signed/acs";

/// A module id and its settings, to adjust before building.
struct Sp {
    id: &'static str,
    settings: SamlSettings,
}

impl Sp {
    /// The SP `sp_entity_id` at `acs_url`, without IdP yet.
    fn new(id: &'static str, sp_entity_id: &str, acs_url: &str) -> Sp {
        Sp {
            id,
            settings: SamlSettings::new(
                sp_entity_id.parse().expect("entity id"),
                acs_url.parse().expect("ACS URL"),
            ),
        }
    }

    /// The same with `change` applied to the settings.
    fn with(mut self, change: impl FnOnce(&mut SamlSettings)) -> Sp {
        change(&mut self.settings);
        self
    }

    fn build(self) -> Result<SamlModule, ConfigError> {
        SamlModule::new(self.id, self.settings)
    }
}

fn idp_metadata(idp: &Idp) -> impl FnOnce(&mut SamlSettings) + '_ {
    |s| s.idp_metadata_file = Some(idp.metadata_file.clone())
}

fn sp_a(idp: &Idp) -> Sp {
    Sp::new("saml", SP_A, ACS_A).with(idp_metadata(idp))
}

fn sp_b(idp: &Idp) -> Sp {
    Sp::new("saml-b", SP_B, ACS_B).with(idp_metadata(idp))
}

/// An RSA key and self-signed certificate for signed AuthnRequests, made once per
/// test binary (never committed).
fn sp_key_pair() -> &'static (String, String) {
    static PAIR: OnceLock<(String, String)> = OnceLock::new();
    PAIR.get_or_init(|| {
        use openssl::asn1::Asn1Time;
        use openssl::bn::BigNum;
        use openssl::hash::MessageDigest;
        use openssl::pkey::PKey;
        use openssl::rsa::Rsa;
        use openssl::x509::{X509, X509NameBuilder};
        let key = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey");
        let mut name = X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", "authchain test SP").expect("cn");
        let name = name.build();
        let mut cert = X509::builder().expect("x509");
        cert.set_version(2).expect("version");
        cert.set_serial_number(
            &BigNum::from_u32(1)
                .expect("bn")
                .to_asn1_integer()
                .expect("serial"),
        )
        .expect("serial");
        cert.set_subject_name(&name).expect("subject");
        cert.set_issuer_name(&name).expect("issuer");
        cert.set_pubkey(&key).expect("pubkey");
        cert.set_not_before(&Asn1Time::days_from_now(0).expect("time"))
            .expect("nb");
        cert.set_not_after(&Asn1Time::days_from_now(30).expect("time"))
            .expect("na");
        cert.sign(&key, MessageDigest::sha256()).expect("sign");
        (
            String::from_utf8(key.private_key_to_pem_pkcs8().expect("pem")).expect("utf-8"),
            String::from_utf8(cert.build().to_pem().expect("pem")).expect("utf-8"),
        )
    })
}

fn sp_signed(idp: &Idp) -> Sp {
    let (key, cert) = sp_key_pair();
    Sp::new("saml", SP_SIGNED, ACS_SIGNED)
        .with(idp_metadata(idp))
        .with(|s| {
            s.sp_key = Some(SecretSource::Inline(key.as_str().into()));
            s.sp_certificate_file = Some(PemSource::Text(cert.clone()));
        })
}

/// Builds the module and registers its SP metadata at the IdP.
async fn registered(idp: &Idp, sp: Sp, entity_id: &str) -> SamlModule {
    let module = sp.build().expect("SAML module");
    idp.register(entity_id, &module).await;
    module
}

fn roles() -> RoleMapping {
    RoleMapping::builder()
        .rule("admins", "admin")
        .rule("staff", "staff")
        .build()
        .expect("role mapping")
}

fn chain_of(module: SamlModule) -> (AuthChain, Arc<MemoryUserStore>) {
    let store = Arc::new(MemoryUserStore::new());
    let chain = AuthChain::builder(store.clone())
        .module_with(
            module,
            ModuleSettings::new()
                .provisioning(Provisioning::Create)
                .roles(roles()),
        )
        .build()
        .expect("chain");
    (chain, store)
}

fn start_request(module: &str, return_to: Option<&str>) -> AuthRequest {
    start_login(module, return_to.map(str::to_owned).into())
}

fn start_login(module: &str, start: StartLogin) -> AuthRequest {
    AuthRequest::new(peer("192.0.2.30"))
        .with_credentials(Credentials::Start(start))
        .select(module)
}

fn callback(params: BTreeMap<String, String>, cookie: Option<&str>) -> AuthRequest {
    let mut request = AuthRequest::new(peer("192.0.2.30")).with_credentials(Credentials::Callback { params });
    request.flow_cookie = cookie.map(str::to_owned);
    request
}

async fn start(chain: &AuthChain, module: &str) -> Redirect {
    start_with(chain, &start_request(module, Some("/after/login"))).await
}

async fn start_with(chain: &AuthChain, request: &AuthRequest) -> Redirect {
    match chain.login(request).await {
        Ok(LoginResult::Redirect(redirect)) => redirect,
        other => panic!("expected a redirect, got {other:?}"),
    }
}

/// The AuthnRequest XML of an HTTP-Redirect URL (base64, then raw deflate).
fn authn_request_xml(location: &str) -> String {
    use std::io::Read;
    let encoded = query(location)["SAMLRequest"].clone();
    let deflated = Base64::decode_vec(&encoded).expect("base64 SAMLRequest");
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice())
        .read_to_string(&mut xml)
        .expect("deflated UTF-8 SAMLRequest");
    xml
}

fn query(url: &str) -> BTreeMap<String, String> {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect()
}

async fn login_form(location: &str, user: &str, password: &str) -> PostedForm {
    match browser_login(location, user, password).await {
        LoginPage::Form(form) => form,
        LoginPage::Refused { status, body } => panic!("the IdP refused the login ({status}): {body}"),
    }
}

/// The cause of a refusal by the module `saml`.
fn rejection(result: Result<LoginResult, AuthError>) -> ModuleError {
    match result {
        Err(AuthError::Rejected { module, cause }) if module == "saml" => cause,
        other => panic!("expected a refusal by `saml`, got {other:?}"),
    }
}

/// The SAML cause of a refusal by the module `saml`.
fn saml_rejection(result: Result<LoginResult, AuthError>) -> SamlError {
    match rejection(result) {
        ModuleError::Saml(err) => err,
        other => panic!("expected a SAML cause, got {other:?}"),
    }
}

fn encode(xml: &str) -> String {
    Base64::encode_string(xml.as_bytes())
}

#[tokio::test]
async fn sp_initiated_login_maps_groups_to_roles() {
    let idp = Idp::shared();
    let module = registered(idp, sp_a(idp), SP_A).await;
    assert_eq!(module.idp_entity_id(), idp.entity_id());
    assert_eq!(module.idp_sso_url(), Some(format!("{}/sso/redirect", idp.url)));
    let (chain, store) = chain_of(module);

    let redirect = start(&chain, "saml").await;
    assert!(
        redirect
            .location
            .starts_with(&format!("{}/sso/redirect?", idp.url)),
        "{}",
        redirect.location
    );
    let params = query(&redirect.location);
    assert!(params.contains_key("SAMLRequest"));
    assert!(!params.contains_key("Signature"), "no SP key, no signature");
    let relay = params["RelayState"].clone();
    assert_eq!(relay.len(), 43, "the RelayState is the flow's 256-bit state");
    let cookie = redirect
        .flow_cookie_value()
        .map(str::to_owned)
        .expect("flow cookie");
    assert!(!redirect.location.contains(&cookie));

    let form = login_form(&redirect.location, "alice", "alice-password").await;
    assert_eq!(form.action, ACS_A);
    assert_eq!(form.relay_state.as_deref(), Some(relay.as_str()));
    let response = form.xml();
    let in_response_to = xml::root_attribute(&response, "InResponseTo").expect("InResponseTo");
    assert!(
        in_response_to.starts_with('_') && in_response_to.len() == 44,
        "{in_response_to}"
    );

    let p = principal(chain.login(&callback(form.params(), Some(&cookie))).await);
    assert_eq!(p.login, "alice");
    assert_eq!(p.identity.subject, "alice");
    assert_eq!(p.email.as_deref(), Some("alice@example.org"));
    assert_eq!(p.identity.display_name.as_deref(), Some("Alice Liddell"));
    assert_eq!(p.identity.groups, ["admins", "staff"]);
    assert!(p.has_role("admin") && p.has_role("staff"), "roles: {:?}", p.roles);
    assert_eq!(p.return_to.as_deref(), Some("/after/login"));
    assert_eq!(p.identity.return_to.as_deref(), Some("/after/login"));
    assert!(!p.identity.attributes.contains_key("return_to"));
    assert_eq!(p.identity.attributes["issuer"], [idp.entity_id()]);
    assert_eq!(
        p.identity.attributes["urn:oid:0.9.2342.19200300.100.1.3"],
        ["alice@example.org"]
    );
    let linked = store
        .find_by_link("saml", "alice")
        .await
        .expect("store")
        .expect("linked account");
    assert_eq!(linked.id, p.account_id);

    // bob: one group, one role.
    let redirect = start(&chain, "saml").await;
    let form = login_form(&redirect.location, "bob", "bob-password").await;
    let p = principal(
        chain
            .login(&callback(form.params(), redirect.flow_cookie_value()))
            .await,
    );
    assert_eq!(p.login, "bob");
    assert_eq!(p.role_names().collect::<Vec<_>>(), ["staff"]);
}

#[tokio::test]
async fn allowed_groups_refuse_idp_users_outside_them_uncreated() {
    let idp = Idp::shared();
    let module = registered(idp, sp_a(idp), SP_A).await;
    let store = Arc::new(MemoryUserStore::new());
    let chain = AuthChain::builder(store.clone())
        .module_with(
            module,
            ModuleSettings::new()
                .provisioning(Provisioning::Create)
                .allowed_groups(["admins"]),
        )
        .build()
        .expect("chain");
    for (user, allowed) in [("alice", true), ("bob", false)] {
        let redirect = start(&chain, "saml").await;
        let form = login_form(&redirect.location, user, &format!("{user}-password")).await;
        let result = chain
            .login(&callback(form.params(), redirect.flow_cookie_value()))
            .await;
        if allowed {
            assert_eq!(principal(result).login, user);
        } else {
            let err = result.unwrap_err();
            assert!(
                matches!(&err, AuthError::AccessDenied { module, rule: authchain::chain::AccessRule::AllowedGroups } if module == "saml"),
                "{err:?}"
            );
            assert!(store.find_by_link("saml", user).await.expect("store").is_none());
        }
    }
}

#[tokio::test]
async fn prompt_login_forces_authentication_and_prompt_none_is_passive() {
    let idp = Idp::shared();
    let (chain, _) = chain_of(registered(idp, sp_a(idp), SP_A).await);
    let attribute = |location: &str, name: &str| xml::root_attribute(&authn_request_xml(location), name);

    // Without a prompt: neither attribute.
    let plain = start(&chain, "saml").await;
    assert_eq!(attribute(&plain.location, "ForceAuthn"), None);
    assert_eq!(attribute(&plain.location, "IsPassive"), None);

    // prompt = login: ForceAuthn, and the real IdP accepts the request.
    let login = StartLogin::new().return_to("/after/login").prompt(Prompt::Login);
    let redirect = start_with(&chain, &start_login("saml", login)).await;
    assert_eq!(
        attribute(&redirect.location, "ForceAuthn").as_deref(),
        Some("true")
    );
    assert_eq!(attribute(&redirect.location, "IsPassive"), None);
    let form = login_form(&redirect.location, "alice", "alice-password").await;
    let p = principal(
        chain
            .login(&callback(form.params(), redirect.flow_cookie_value()))
            .await,
    );
    assert_eq!(p.login, "alice");
    assert_eq!(p.return_to.as_deref(), Some("/after/login"));

    // prompt = none: IsPassive.
    let passive = StartLogin::new().prompt(Prompt::None);
    let redirect = start_with(&chain, &start_login("saml", passive)).await;
    assert_eq!(
        attribute(&redirect.location, "IsPassive").as_deref(),
        Some("true")
    );
    assert_eq!(attribute(&redirect.location, "ForceAuthn"), None);

    // Prompts without a SAML counterpart change nothing.
    for prompt in [Prompt::Consent, Prompt::SelectAccount] {
        let redirect = start_with(&chain, &start_login("saml", StartLogin::new().prompt(prompt))).await;
        assert_eq!(attribute(&redirect.location, "ForceAuthn"), None, "{prompt:?}");
        assert_eq!(attribute(&redirect.location, "IsPassive"), None, "{prompt:?}");
    }

    // A module configured with force_authn asks for it whatever the prompt.
    let forced = sp_a(idp).with(|s| s.force_authn = true).build().expect("module");
    let (chain, _) = chain_of(forced);
    let redirect = start(&chain, "saml").await;
    assert_eq!(
        attribute(&redirect.location, "ForceAuthn").as_deref(),
        Some("true")
    );
}

#[tokio::test]
async fn an_idp_attribute_named_return_to_steers_nothing() {
    let idp = Idp::shared();
    let (chain, _) = chain_of(registered(idp, sp_a(idp), SP_A).await);
    // A login started without a return-to URL...
    let redirect = start_with(&chain, &start_request("saml", None)).await;
    let form = login_form(&redirect.location, "carol", "carol-password").await;
    // ...whose assertion releases an attribute `return_to`.
    let response = form.xml();
    assert!(
        response.contains("Name=\"return_to\"") && response.contains("/steered/by/the/idp"),
        "the IdP releases the attribute: {response}"
    );
    let p = principal(
        chain
            .login(&callback(form.params(), redirect.flow_cookie_value()))
            .await,
    );
    assert_eq!(p.login, "carol");
    assert_eq!(p.return_to, None);
    assert_eq!(p.identity.return_to, None);
    assert!(
        !p.identity.attributes.contains_key("return_to"),
        "{:?}",
        p.identity.attributes
    );
    // The other attributes are there as usual.
    assert_eq!(p.email.as_deref(), Some("carol@example.org"));
}

#[tokio::test]
async fn the_flow_cookie_travels_with_the_cross_site_post() {
    let idp = Idp::shared();
    // An https ACS: SameSite=None (the IdP's POST is cross-site), Secure, the ACS path.
    let https = Sp::new(
        "saml",
        "https://app.example.org/sp",
        "https://app.example.org/auth/saml/acs",
    )
    .with(idp_metadata(idp))
    .build()
    .expect("module");
    let (chain, _) = chain_of(https);
    let redirect = start(&chain, "saml").await;
    let cookie = redirect.flow_cookie.as_ref().expect("flow cookie");
    assert_eq!(cookie.name, "authchain_flow_saml");
    assert_eq!(cookie.attributes.same_site, SameSite::None);
    assert!(cookie.attributes.secure);
    assert_eq!(cookie.attributes.path, "/auth/saml/acs");
    let header = cookie.set_cookie();
    assert!(
        header.contains("SameSite=None") && header.ends_with("; Secure"),
        "{header:?}"
    );

    // The plain-http loopback ACS: browsers drop SameSite=None without Secure, so Lax.
    let (chain, _) = chain_of(sp_a(idp).build().expect("module"));
    let redirect = start(&chain, "saml").await;
    let cookie = redirect.flow_cookie.as_ref().expect("flow cookie");
    assert_eq!(cookie.attributes.same_site, SameSite::Lax);
    assert!(!cookie.attributes.secure);
    assert_eq!(cookie.attributes.path, "/sp-a/acs");
}

#[tokio::test]
async fn the_flow_is_bound_to_the_browser_and_used_once() {
    let idp = Idp::shared();
    let (chain, _) = chain_of(registered(idp, sp_a(idp), SP_A).await);
    let redirect = start(&chain, "saml").await;
    let cookie = redirect.flow_cookie_value().map(str::to_owned).expect("cookie");
    let form = login_form(&redirect.location, "alice", "alice-password").await;

    // Another browser (no cookie, another cookie) cannot finish this login...
    for wrong in [None, Some("someone-else")] {
        let err = chain.login(&callback(form.params(), wrong)).await.unwrap_err();
        assert!(
            matches!(
                err,
                AuthError::Rejected {
                    cause: ModuleError::Flow(FlowError::CookieMismatch),
                    ..
                }
            ),
            "{wrong:?}: {err:?}"
        );
        assert_eq!(err.status_code(), 403);
    }
    // ...the rightful one still can, once.
    principal(chain.login(&callback(form.params(), Some(&cookie))).await);
    assert_eq!(
        rejection(chain.login(&callback(form.params(), Some(&cookie))).await),
        ModuleError::Flow(FlowError::Replayed)
    );
}

#[tokio::test]
async fn signed_authn_requests_are_verified_by_the_idp() {
    let idp = Idp::shared();
    let module = registered(idp, sp_signed(idp), SP_SIGNED).await;
    let metadata = module.sp_metadata_xml().to_owned();
    assert!(metadata.contains("AuthnRequestsSigned=\"true\""), "{metadata}");
    assert!(
        metadata.contains(&format!("Location=\"{ACS_SIGNED}\"")),
        "{metadata}"
    );
    let cert_b64: String = sp_key_pair()
        .1
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(metadata.contains(&cert_b64), "the SP certificate is published");
    let (chain, _) = chain_of(module);

    let redirect = start(&chain, "saml").await;
    let params = query(&redirect.location);
    assert_eq!(
        params["SigAlg"],
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    );
    assert!(params.contains_key("Signature"));
    let form = login_form(&redirect.location, "alice", "alice-password").await;
    assert_eq!(form.action, ACS_SIGNED);
    let p = principal(
        chain
            .login(&callback(form.params(), redirect.flow_cookie_value()))
            .await,
    );
    assert_eq!(p.login, "alice");

    // The IdP really checks it: an altered signature is refused there.
    let mut url = url::Url::parse(&redirect.location).expect("url");
    let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    for (k, v) in &mut pairs {
        if k == "Signature" {
            let flipped = if v.starts_with('A') { "B" } else { "A" };
            v.replace_range(0..1, flipped);
        }
    }
    url.query_pairs_mut().clear().extend_pairs(pairs);
    match browser_login(url.as_str(), "alice", "alice-password").await {
        LoginPage::Refused { status, body } => {
            assert_eq!(status, 400);
            assert!(body.contains("does not verify"), "{body}");
        }
        LoginPage::Form(_) => panic!("the IdP accepted a broken AuthnRequest signature"),
    }
    // And an unsigned request from this SP is refused too.
    let unsigned = sp_signed(idp)
        .with(|s| s.sign_authn_requests = Some(false))
        .build()
        .expect("module");
    let (chain, _) = chain_of(unsigned);
    let redirect = start(&chain, "saml").await;
    assert!(!query(&redirect.location).contains_key("Signature"));
    match browser_login(&redirect.location, "alice", "alice-password").await {
        LoginPage::Refused { status, body } => {
            assert_eq!(status, 400);
            assert!(body.contains("not signed"), "{body}");
        }
        LoginPage::Form(_) => panic!("the IdP accepted an unsigned AuthnRequest from a signing SP"),
    }
}

#[tokio::test]
async fn idp_initiated_responses_are_refused_unless_allowed_and_then_used_once() {
    let idp = Idp::shared();
    let strict = registered(idp, sp_a(idp), SP_A).await;
    let form = idp
        .unsolicited(
            SP_A,
            Unsolicited {
                user: "alice",
                relay_state: Some("/welcome"),
                ..Unsolicited::default()
            },
        )
        .await;
    assert!(xml::root_attribute(&form.xml(), "InResponseTo").is_none());

    let (chain, _) = chain_of(strict);
    assert_eq!(
        saml_rejection(chain.login(&callback(form.params(), None)).await),
        SamlError::Unsolicited
    );

    let (chain, _) = chain_of(
        sp_a(idp)
            .with(|s| s.allow_idp_initiated = true)
            .build()
            .expect("module"),
    );
    let p = principal(chain.login(&callback(form.params(), None)).await);
    assert_eq!(p.login, "alice");
    assert!(p.has_role("admin"));
    assert_eq!(p.return_to.as_deref(), Some("/welcome"));

    // The same response posted again: the replay cache refuses it.
    assert_eq!(
        rejection(chain.login(&callback(form.params(), None)).await),
        ModuleError::Replay(ReplayError::Replayed)
    );

    // An unacceptable RelayState is not taken as the return-to URL.
    let form = idp
        .unsolicited(
            SP_A,
            Unsolicited {
                user: "bob",
                relay_state: Some("https://evil.test/"),
                ..Unsolicited::default()
            },
        )
        .await;
    let p = principal(chain.login(&callback(form.params(), None)).await);
    assert_eq!(p.return_to, None);
    assert!(!p.identity.attributes.contains_key("return_to"));
}

#[tokio::test]
async fn a_solicited_response_without_its_flow_is_refused_even_with_idp_initiated_allowed() {
    let idp = Idp::shared();
    let (chain, _) = chain_of(registered(idp, sp_a(idp).with(|s| s.allow_idp_initiated = true), SP_A).await);
    let redirect = start(&chain, "saml").await;
    let mut form = login_form(&redirect.location, "alice", "alice-password").await;
    // Posted without its RelayState, the response cannot be tied to a login of
    // this browser, and it answers a request: refused, not taken as unsolicited.
    form.relay_state = None;
    assert_eq!(
        saml_rejection(
            chain
                .login(&callback(form.params(), redirect.flow_cookie_value()))
                .await
        ),
        SamlError::Mismatch(Mismatch::UnexpectedInResponseTo)
    );
}

#[tokio::test]
async fn a_response_for_another_sp_is_refused() {
    let idp = Idp::shared();
    let a = registered(idp, sp_a(idp).with(|s| s.allow_idp_initiated = true), SP_A).await;
    registered(idp, sp_b(idp), SP_B).await;
    let for_b = idp
        .unsolicited(
            SP_B,
            Unsolicited {
                user: "alice",
                ..Unsolicited::default()
            },
        )
        .await;
    let now = SystemTime::now();
    // It verifies for B...
    let b = sp_b(idp)
        .with(|s| s.allow_idp_initiated = true)
        .build()
        .expect("module");
    assert!(b.verify_response(&for_b.saml_response, None, now).is_ok());
    // ...not for A (Destination first).
    let err = a.verify_response(&for_b.saml_response, None, now).unwrap_err();
    assert_eq!(err, SamlError::Mismatch(Mismatch::Destination));
    // A module at B's address but with A's entity id: the Audience is wrong.
    let same_address = Sp::new("saml", SP_A, ACS_B)
        .with(idp_metadata(idp))
        .with(|s| s.allow_idp_initiated = true)
        .build()
        .expect("module");
    let err = same_address
        .verify_response(&for_b.saml_response, None, now)
        .unwrap_err();
    assert_eq!(err, SamlError::Mismatch(Mismatch::Audience));
    // Posted to A's chain, nobody accepts it.
    let (chain, _) = chain_of(a);
    let err = chain.login(&callback(for_b.params(), None)).await.unwrap_err();
    assert!(matches!(err, AuthError::Unauthenticated { .. }), "{err:?}");

    // SP-initiated at A, answered with a response for B inside A's flow.
    let redirect = start(&chain, "saml").await;
    let mut form = login_form(&redirect.location, "alice", "alice-password").await;
    form.saml_response = for_b.saml_response.clone();
    assert_eq!(
        saml_rejection(
            chain
                .login(&callback(form.params(), redirect.flow_cookie_value()))
                .await
        ),
        SamlError::Mismatch(Mismatch::Destination)
    );

    // Addressed to A, but the IdP signed the assertion for B's endpoint: its
    // Recipient is checked on its own.
    let a = lenient(idp).await;
    let misdirected = idp
        .unsolicited(
            SP_A,
            Unsolicited {
                user: "alice",
                recipient: Some(ACS_B),
                ..Unsolicited::default()
            },
        )
        .await;
    let err = a
        .verify_response(&misdirected.saml_response, None, now)
        .unwrap_err();
    assert_eq!(err, SamlError::Mismatch(Mismatch::Recipient));
    let fine = idp
        .unsolicited(
            SP_A,
            Unsolicited {
                user: "alice",
                recipient: Some(ACS_A),
                ..Unsolicited::default()
            },
        )
        .await;
    assert!(a.verify_response(&fine.saml_response, None, now).is_ok());
}

/// The module for the attack tests: IdP-initiated allowed, so a response can be
/// checked on its own with `verify_response`.
async fn lenient(idp: &Idp) -> SamlModule {
    registered(idp, sp_a(idp).with(|s| s.allow_idp_initiated = true), SP_A).await
}

async fn alice_response(idp: &Idp) -> String {
    idp.unsolicited(
        SP_A,
        Unsolicited {
            user: "alice",
            ..Unsolicited::default()
        },
    )
    .await
    .xml()
}

#[tokio::test]
async fn every_signed_value_altered_is_rejected() {
    let idp = Idp::shared();
    let module = lenient(idp).await;
    let response = alice_response(idp).await;
    let now = SystemTime::now();
    let ok = module
        .verify_response(&encode(&response), None, now)
        .expect("the untouched response verifies");
    assert!(ok.response_signed && ok.assertion_signed);
    assert_eq!(ok.name_id, "alice");

    let ranges = xml::signed_value_ranges(&response);
    assert!(ranges.len() > 40, "only {} values found", ranges.len());
    let mut altered = 0;
    for range in ranges {
        let Some(tampered) = xml::alter_one_character(&response, range.clone()) else {
            continue;
        };
        altered += 1;
        let result = module.verify_response(&encode(&tampered), None, now);
        assert!(
            result.is_err(),
            "accepted with {:?} altered to {:?}",
            &response[range.clone()],
            &tampered[range]
        );
    }
    assert!(altered > 40, "{altered}");

    // The Response signature's KeyInfo is covered by no signature and not used:
    // another certificate there changes nothing. (The assertion's KeyInfo is
    // covered by the Response signature.)
    let rogue = std::fs::read_to_string(&idp.rogue_certificate_file).expect("rogue cert");
    let rogue_b64: String = rogue.lines().filter(|l| !l.starts_with("-----")).collect();
    let swapped = xml::replace_response_certificate(&response, &rogue_b64);
    assert_ne!(swapped, response);
    let swapped_result = module.verify_response(&encode(&swapped), None, now);
    assert!(swapped_result.is_ok(), "{swapped_result:?}");
}

#[tokio::test]
async fn removed_signatures_are_rejected_as_configured() {
    let idp = Idp::shared();
    let module = lenient(idp).await;
    let response = alice_response(idp).await;
    let now = SystemTime::now();
    let check = |module: &SamlModule, xml: &str| module.verify_response(&encode(xml), None, now);

    let none = xml::without_signatures(&response, true, true);
    assert_eq!(
        check(&module, &none),
        Err(SamlError::Unsigned(SignedPart::Neither))
    );
    let response_only = xml::without_signatures(&response, false, true);
    assert_eq!(
        check(&module, &response_only),
        Err(SamlError::Unsigned(SignedPart::Assertion))
    );
    let assertion_only = xml::without_signatures(&response, true, false);
    assert!(
        check(&module, &assertion_only).is_ok(),
        "signed assertions suffice by default"
    );
    let strict = sp_a(idp)
        .with(|s| s.allow_idp_initiated = true)
        .with(|s| s.require_signed_messages = true)
        .build()
        .expect("module");
    assert_eq!(
        check(&strict, &assertion_only),
        Err(SamlError::Unsigned(SignedPart::Response))
    );

    // What the IdP sends unsigned is judged the same way.
    let form = idp
        .unsolicited(
            SP_A,
            Unsolicited {
                user: "alice",
                unsigned_assertion: true,
                ..Unsolicited::default()
            },
        )
        .await;
    assert_eq!(
        module.verify_response(&form.saml_response, None, now),
        Err(SamlError::Unsigned(SignedPart::Assertion))
    );
    let relaxed = sp_a(idp)
        .with(|s| s.allow_idp_initiated = true)
        .with(|s| s.require_signed_assertions = false)
        .build()
        .expect("module");
    assert!(relaxed.verify_response(&form.saml_response, None, now).is_ok());
}

#[tokio::test]
async fn a_foreign_key_with_its_own_certificate_in_keyinfo_is_rejected() {
    let idp = Idp::shared();
    let module = lenient(idp).await;
    let form = idp
        .unsolicited(
            SP_A,
            Unsolicited {
                user: "alice",
                rogue: true,
                ..Unsolicited::default()
            },
        )
        .await;
    let rogue = std::fs::read_to_string(&idp.rogue_certificate_file).expect("rogue cert");
    let rogue_b64: String = rogue.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(
        form.xml().contains(&rogue_b64),
        "the rogue certificate travels in KeyInfo"
    );
    let now = SystemTime::now();
    let err = module
        .verify_response(&form.saml_response, None, now)
        .unwrap_err();
    assert!(matches!(err, SamlError::Signature(_)), "{err:?}");
    let (chain, _) = chain_of(module);
    let err = saml_rejection(chain.login(&callback(form.params(), None)).await);
    assert!(matches!(err, SamlError::Signature(_)), "{err:?}");

    // Control: the same response verifies for an SP that trusts the rogue key.
    let trusting = Sp::new("saml", SP_A, ACS_A)
        .with(|s| {
            s.idp_entity_id = Some(idp.entity_id().parse().expect("entity id"));
            s.idp_sso_url = Some(format!("{}/sso/redirect", idp.url).parse().expect("URL"));
            s.idp_certificate_files = vec![PemSource::File(idp.rogue_certificate_file.clone())];
        })
        .with(|s| s.allow_idp_initiated = true)
        .build()
        .expect("module");
    assert!(trusting.verify_response(&form.saml_response, None, now).is_ok());
}

#[tokio::test]
async fn a_second_unsigned_assertion_is_never_used() {
    let idp = Idp::shared();
    let module = lenient(idp).await;
    let response = alice_response(idp).await;
    let now = SystemTime::now();
    for (what, attack) in xml::wrapping_attacks(&response, "admin") {
        let result = module.verify_response(&encode(&attack), None, now);
        match result {
            Err(SamlError::Malformed(_) | SamlError::Unsigned(_) | SamlError::Signature(_)) => {}
            Err(other) => panic!("{what}: refused for an unexpected reason: {other:?}"),
            Ok(assertion) => {
                assert_ne!(
                    assertion.name_id, "admin",
                    "{what}: the unsigned assertion was used"
                );
                panic!("{what}: accepted a response with a second assertion");
            }
        }
    }
}

#[tokio::test]
async fn a_comment_in_the_name_id_never_shortens_it() {
    let idp = Idp::shared();
    let module = lenient(idp).await;
    let response = idp
        .unsolicited(
            SP_A,
            Unsolicited {
                user: "admin@example.org.evil.test",
                ..Unsolicited::default()
            },
        )
        .await
        .xml();
    let commented = response.replace(
        ">admin@example.org.evil.test<",
        ">admin@example.org<!---->.evil.test<",
    );
    assert_eq!(commented.matches("<!---->").count(), 2, "NameID and uid");
    let now = SystemTime::now();
    match module.verify_response(&encode(&commented), None, now) {
        Ok(assertion) => {
            assert_eq!(assertion.name_id, "admin@example.org.evil.test");
            let identity = module.identity(&assertion);
            assert_eq!(identity.subject, "admin@example.org.evil.test");
            assert_eq!(identity.login, "admin@example.org.evil.test");
        }
        Err(e) => {
            // Refusing would be safe too; say so if it ever happens.
            panic!("expected the comment to be ignored by canonicalization, got {e:?}");
        }
    }
}

#[tokio::test]
async fn expired_and_future_responses_are_rejected() {
    let idp = Idp::shared();
    let module = lenient(idp).await;
    let response = encode(&alice_response(idp).await);
    let now = SystemTime::now();
    assert!(module.verify_response(&response, None, now).is_ok());
    // pysaml2 gives 5 minutes; with 60 s of skew, 7 minutes later is too late.
    let err = module
        .verify_response(&response, None, now + Duration::from_secs(420))
        .unwrap_err();
    assert!(
        matches!(
            err,
            SamlError::Expired(TimeLimit::ConfirmationNotOnOrAfter | TimeLimit::NotOnOrAfter)
        ),
        "{err:?}"
    );
    let err = module
        .verify_response(&response, None, now - Duration::from_secs(180))
        .unwrap_err();
    assert!(matches!(err, SamlError::NotYetValid(_)), "{err:?}");
    // Within the skew is fine.
    assert!(
        module
            .verify_response(&response, None, now + Duration::from_secs(330))
            .is_ok()
    );
}

#[tokio::test]
async fn doctype_and_external_entities_are_rejected() {
    let idp = Idp::shared();
    let module = lenient(idp).await;
    let response = alice_response(idp).await;
    let now = SystemTime::now();
    let body_start = response.find("?>").map(|i| i + 2).unwrap_or(0);
    let (decl, body) = response.split_at(body_start);
    let root = xml::root_qname(&response);
    let with_entity = format!(
        "{decl}\n<!DOCTYPE {root} [<!ENTITY x SYSTEM \"file:///etc/hostname\">]>{}",
        body.replacen(">alice<", ">&x;<", 1)
    );
    let plain_doctype = format!("{decl}\n<!DOCTYPE {root}>{body}");
    for attack in [with_entity, plain_doctype] {
        assert_eq!(
            module.verify_response(&encode(&attack), None, now),
            Err(SamlError::Doctype)
        );
    }
    let (chain, _) = chain_of(module);
    let mut params = BTreeMap::new();
    params.insert(
        "SAMLResponse".to_owned(),
        encode(&format!("{decl}\n<!DOCTYPE {root}>{body}")),
    );
    assert_eq!(
        saml_rejection(chain.login(&callback(params, None)).await),
        SamlError::Doctype
    );
}

#[tokio::test]
async fn sha1_signatures_are_refused_unless_opted_in() {
    let idp = Idp::shared();
    let module = lenient(idp).await;
    let form = idp
        .unsolicited(
            SP_A,
            Unsolicited {
                user: "alice",
                sha1: true,
                ..Unsolicited::default()
            },
        )
        .await;
    assert!(form.xml().contains("xmldsig#rsa-sha1"));
    let now = SystemTime::now();
    let err = module
        .verify_response(&form.saml_response, None, now)
        .unwrap_err();
    assert_eq!(
        err,
        SamlError::Algorithm("http://www.w3.org/2000/09/xmldsig#rsa-sha1".into())
    );
    let opted_in = sp_a(idp)
        .with(|s| s.allow_idp_initiated = true)
        .with(|s| s.insecure_allow_sha1 = true)
        .build()
        .expect("module");
    assert!(opted_in.verify_response(&form.saml_response, None, now).is_ok());
}

#[tokio::test]
async fn garbage_is_a_clear_error_never_a_panic() {
    let idp = Idp::shared();
    let module = lenient(idp).await;
    let now = SystemTime::now();
    for (input, expected) in [
        ("%%%", SamlError::Encoding),
        (encode("not xml").as_str(), SamlError::Malformed(String::new())),
        (encode("<a/>").as_str(), SamlError::Malformed(String::new())),
        (encode("<a>").as_str(), SamlError::Malformed(String::new())),
    ] {
        let err = module.verify_response(input, None, now).unwrap_err();
        assert_eq!(
            std::mem::discriminant(&err),
            std::mem::discriminant(&expected),
            "{input}: {err:?}"
        );
    }
    let huge = encode(&"x".repeat(300 * 1024));
    assert!(matches!(
        module.verify_response(&huge, None, now),
        Err(SamlError::TooLarge(_))
    ));
    // Through the module: a request error, not a rejection of somebody.
    let mut params = BTreeMap::new();
    params.insert("SAMLResponse".to_owned(), "%%%".to_owned());
    let outcome = module.authenticate(&callback(params, None)).await;
    assert!(
        matches!(
            &outcome,
            Err(AuthError::InvalidRequest(RequestError::Module {
                module,
                cause: ModuleError::Saml(SamlError::Encoding),
            })) if module == "saml"
        ),
        "{outcome:?}"
    );
    // Not a SAML callback at all: abstain.
    let mut params = BTreeMap::new();
    params.insert("code".to_owned(), "x".to_owned());
    assert_eq!(
        module.authenticate(&callback(params, None)).await,
        Ok(Outcome::Abstain)
    );
}

#[tokio::test]
async fn configuration_from_toml_and_its_errors() {
    let idp = Idp::shared();
    let metadata = idp.metadata_file.display().to_string();
    let toml = format!(
        r#"
        chain = ["corp-saml"]
        [modules.corp-saml]
        type = "saml"
        sp_entity_id = "{SP_A}"
        acs_url = "{ACS_A}"
        idp_metadata_file = "{metadata}"
        clock_skew = "PT30S"
        [[modules.corp-saml.role_mapping.rules]]
        group = "admins"
        role = "admin"
        "#
    );
    let config = Config::from_toml(&toml).expect("config");
    let store: Arc<dyn UserStore> = Arc::new(MemoryUserStore::new());
    let chain = config.build(Stores::new(store)).expect("chain");
    // The host reaches the built module to serve its SP metadata.
    let module = chain
        .module::<SamlModule>("corp-saml")
        .expect("the SAML module of the chain");
    let sp_metadata = module.sp_metadata_xml();
    assert!(
        sp_metadata.contains(&format!("entityID=\"{SP_A}\"")),
        "{sp_metadata}"
    );
    assert!(
        sp_metadata.contains(&format!("Location=\"{ACS_A}\"")),
        "{sp_metadata}"
    );
    assert_eq!(module.idp_entity_id(), idp.entity_id());
    assert!(chain.module::<LocalModule>("corp-saml").is_none(), "wrong type");
    assert!(chain.module::<SamlModule>("no-such-module").is_none());

    let settings = SamlSettings::from_table(
        toml::from_str(&format!(
            "sp_entity_id = \"{SP_A}\"\nacs_url = \"{ACS_A}\"\nidp_metadata_file = \"{metadata}\""
        ))
        .expect("toml"),
    )
    .expect("saml settings");
    let module = SamlModule::new("corp-saml", settings).expect("module");
    assert!(module.sp_metadata_xml().contains(&format!("entityID=\"{SP_A}\"")));

    let bad = |extra: &str| {
        let text = format!("chain = [\"s\"]\n[modules.s]\ntype = \"saml\"\n{extra}");
        match Config::from_toml(&text) {
            Ok(config) => {
                let store: Arc<dyn UserStore> = Arc::new(MemoryUserStore::new());
                config.build(Stores::new(store)).err().expect("an error")
            }
            Err(e) => e,
        }
    };
    let base = format!("sp_entity_id = \"{SP_A}\"\nacs_url = \"{ACS_A}\"\n");
    for (extra, key) in [
        (String::new(), "modules.s.idp_metadata_file"),
        (
            format!("{base}idp_metadata_file = \"{metadata}\"\nacs_url2 = 1"),
            "modules.s.acs_url2",
        ),
        (
            format!(
                "sp_entity_id = \"x\"\nacs_url = \"http://example.org/acs\"\nidp_metadata_file = \"{metadata}\""
            ),
            "modules.s.acs_url",
        ),
        (
            format!("{base}idp_metadata_file = \"{metadata}\"\nsignature_algorithms = [\"rsa-sha1\"]"),
            "modules.s.signature_algorithms",
        ),
        (
            format!("{base}idp_metadata_file = \"{metadata}\"\nsignature_algorithms = [\"hmac-sha256\"]"),
            "modules.s.signature_algorithms",
        ),
        (
            format!("{base}idp_metadata_file = \"{metadata}\"\nclock_skew = \"PT1H\""),
            "modules.s.clock_skew",
        ),
        (
            format!("{base}idp_metadata_file = \"{metadata}\"\nsign_authn_requests = true"),
            "modules.s.sign_authn_requests",
        ),
        (
            format!("{base}idp_metadata_file = \"{metadata}\"\nname_id_format = \"email\""),
            "modules.s.name_id_format",
        ),
        (
            format!("{base}idp_entity_id = \"e\"\nidp_sso_url = \"https://idp.example.org/sso\""),
            "modules.s.idp_certificate_files",
        ),
        (
            format!(
                "{base}idp_sso_url = \"https://idp.example.org/sso\"\nidp_certificate_files = [\"{}\"]",
                idp.certificate_file.display()
            ),
            "modules.s.idp_entity_id",
        ),
    ] {
        let err = bad(&if extra.is_empty() { base.clone() } else { extra });
        assert_eq!(err.key(), Some(key), "{err}");
    }
}

#[test]
fn an_idp_without_a_signing_certificate_is_a_configuration_error() {
    let metadata = r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example.org">
        <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
        <md:KeyDescriptor use="encryption"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/></md:KeyDescriptor>
        <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.org/sso"/>
        </md:IDPSSODescriptor></md:EntityDescriptor>"#;
    let err = Sp::new("s", SP_A, ACS_A)
        .with(|s| s.idp_metadata_xml = Some(metadata.into()))
        .build()
        .unwrap_err();
    // The metadata only lists an encryption key: refused as the IdP's metadata.
    // (`SamlModule::new` names keys relative to the module's table.)
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "idp_metadata_xml"),
        "{err:?}"
    );
}
