//! Starts a real SAML 2.0 IdP (PyPI `pysaml2`, through tests/peers/saml-idp.sh)
//! and plays the browser's part at it.
//!
//! A missing python3, venv or xmlsec1 makes the tests fail, never skip.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use authchain::modules::SamlModule;

pub struct Idp {
    dir: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The IdP's metadata file.
    pub metadata_file: PathBuf,
    /// The PEM certificate of the key the IdP signs with.
    pub certificate_file: PathBuf,
    /// The PEM certificate of the rogue key (never in the metadata).
    pub rogue_certificate_file: PathBuf,
    registered: tokio::sync::Mutex<HashSet<String>>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/saml-idp.sh")
}

/// The form the IdP answers with, as the browser would post it to the ACS.
#[derive(Debug, Clone)]
pub struct PostedForm {
    pub action: String,
    pub saml_response: String,
    pub relay_state: Option<String>,
}

impl PostedForm {
    fn from_html(html: &str) -> PostedForm {
        let value = |name: &str| {
            let marker = format!("name=\"{name}\" value=\"");
            let start = html.find(&marker)? + marker.len();
            let end = html[start..].find('"')? + start;
            Some(html_unescape(&html[start..end]))
        };
        let action = {
            let start = html.find("action=\"").expect("form action") + "action=\"".len();
            let end = html[start..].find('"').expect("end of action") + start;
            html_unescape(&html[start..end])
        };
        PostedForm {
            action,
            saml_response: value("SAMLResponse").unwrap_or_else(|| panic!("no SAMLResponse in {html}")),
            relay_state: value("RelayState").filter(|r| !r.is_empty()),
        }
    }

    /// The decoded response XML.
    pub fn xml(&self) -> String {
        use base64ct::{Base64, Encoding};
        String::from_utf8(Base64::decode_vec(&self.saml_response).expect("base64")).expect("utf-8")
    }

    /// The callback parameters a host hands to the chain.
    pub fn params(&self) -> std::collections::BTreeMap<String, String> {
        let mut params = std::collections::BTreeMap::new();
        params.insert("SAMLResponse".to_owned(), self.saml_response.clone());
        if let Some(relay) = &self.relay_state {
            params.insert("RelayState".to_owned(), relay.clone());
        }
        params
    }
}

fn html_unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Options of an IdP-initiated response.
#[derive(Debug, Clone, Default)]
pub struct Unsolicited<'a> {
    pub user: &'a str,
    pub relay_state: Option<&'a str>,
    pub rogue: bool,
    pub sha1: bool,
    pub unsigned_response: bool,
    pub unsigned_assertion: bool,
    /// The assertion's Recipient, instead of the SP's ACS.
    pub recipient: Option<&'a str>,
    /// Encrypt the assertion with this content algorithm (`aes128-cbc`,
    /// `aes256-cbc`, `aes128-gcm`, `aes256-gcm`, `tripledes-cbc`) for the SP's
    /// metadata encryption certificate.
    pub encrypt: Option<&'a str>,
    /// The key transport of an encrypted assertion: `oaep` (default) or `rsa15`.
    pub key_transport: Option<&'a str>,
    /// Encrypt for the rogue certificate instead of the SP's.
    pub encrypt_for_rogue: bool,
}

impl Idp {
    /// Starts a fresh IdP on a free port of 127.0.0.1.
    pub fn start() -> Idp {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("saml-idp-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the IdP directory");
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(&dir)
            .arg("--owner-pid")
            .arg(std::process::id().to_string())
            .output()
            .expect("run tests/peers/saml-idp.sh (needs bash)");
        assert!(
            out.status.success(),
            "could not start the SAML IdP (needs python3 with venv, xmlsec1, openssl): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let vars: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let get = |k: &str| {
            vars.get(k)
                .unwrap_or_else(|| panic!("{k} missing in {text}"))
                .to_string()
        };
        Idp {
            dir,
            url: get("SAML_IDP_URL"),
            metadata_file: get("SAML_IDP_METADATA").into(),
            certificate_file: get("SAML_IDP_CERT").into(),
            rogue_certificate_file: get("SAML_IDP_ROGUE_CERT").into(),
            registered: tokio::sync::Mutex::new(HashSet::new()),
        }
    }

    /// The IdP most tests share (stopped by its owner-pid watcher when the test
    /// binary exits).
    pub fn shared() -> &'static Idp {
        static SHARED: OnceLock<Idp> = OnceLock::new();
        SHARED.get_or_init(Idp::start)
    }

    /// The IdP's entity id.
    pub fn entity_id(&self) -> String {
        format!("{}/metadata", self.url)
    }

    /// Registers the module's SP metadata (its `sp_metadata_xml()`) at the IdP,
    /// once per SP entity id.
    pub async fn register(&self, entity_id: &str, module: &SamlModule) {
        let mut done = self.registered.lock().await;
        if done.contains(entity_id) {
            return;
        }
        let response = reqwest::Client::new()
            .post(format!("{}/admin/sp", self.url))
            .body(module.sp_metadata_xml().to_owned())
            .send()
            .await
            .expect("register the SP");
        assert_eq!(
            response.status().as_u16(),
            204,
            "the IdP refused the SP metadata: {}",
            response.text().await.unwrap_or_default()
        );
        done.insert(entity_id.to_owned());
    }

    /// An IdP-initiated response for the SP `sp_entity_id`.
    pub async fn unsolicited(&self, sp_entity_id: &str, options: Unsolicited<'_>) -> PostedForm {
        let flag = |b: bool| if b { "1" } else { "0" };
        let mut query = vec![
            ("sp", sp_entity_id),
            ("user", options.user),
            ("signer", if options.rogue { "rogue" } else { "idp" }),
            ("sha1", flag(options.sha1)),
            ("sign_response", flag(!options.unsigned_response)),
            ("sign_assertion", flag(!options.unsigned_assertion)),
        ];
        if let Some(relay) = options.relay_state {
            query.push(("relay_state", relay));
        }
        if let Some(recipient) = options.recipient {
            query.push(("recipient", recipient));
        }
        if let Some(encrypt) = options.encrypt {
            query.push(("encrypt", encrypt));
        }
        if let Some(transport) = options.key_transport {
            query.push(("key_transport", transport));
        }
        if options.encrypt_for_rogue {
            query.push(("encrypt_for", "rogue"));
        }
        let response = reqwest::Client::new()
            .get(format!("{}/unsolicited", self.url))
            .query(&query)
            .send()
            .await
            .expect("unsolicited response");
        let status = response.status();
        let html = response.text().await.expect("body");
        assert!(status.is_success(), "the IdP answered {status}: {html}");
        PostedForm::from_html(&html)
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.dir)
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the browser got at the IdP's login: the form to post, or the IdP's refusal.
pub enum LoginPage {
    Form(PostedForm),
    Refused { status: u16, body: String },
}

/// Follows the module's redirect to the IdP, fills in its login form, and answers
/// the auto-submit form the IdP returns.
pub async fn browser_login(location: &str, user: &str, password: &str) -> LoginPage {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = http.get(location).send().await.expect("GET the SSO URL");
    let status = page.status().as_u16();
    let body = page.text().await.expect("login page");
    if status != 200 {
        return LoginPage::Refused { status, body };
    }
    let start = body.find("name=key value=\"").expect("login form key") + "name=key value=\"".len();
    let key = &body[start..start + body[start..].find('"').expect("end of key")];
    let base = url::Url::parse(location).expect("location");
    let form = [("key", key), ("username", user), ("password", password)];
    let answer = http
        .post(base.join("/sso/login").expect("login URL"))
        .form(&form)
        .send()
        .await
        .expect("POST the login form");
    let status = answer.status().as_u16();
    let body = answer.text().await.expect("response page");
    if status != 200 {
        return LoginPage::Refused { status, body };
    }
    LoginPage::Form(PostedForm::from_html(&body))
}
