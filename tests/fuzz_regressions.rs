#![cfg(all(
    feature = "saml",
    feature = "oidc",
    feature = "cas",
    feature = "signed-header",
    feature = "key-login"
))]
//! The fuzz targets' regression pass (no fuzzing): every checked-in seed
//! (`fuzz/corpus/<target>/`) and every reproducer (`fuzz/regressions/<target>/`) of
//! the targets that go through the public API, run through the same function the
//! fuzzer calls (`fuzz/src/targets.rs`). A missing or empty corpus fails; so does a
//! corpus none of whose seeds is accepted any more (a stale one). The RFC 4533
//! targets' inputs run in the crate's unit tests (`src/fuzzing.rs`).
//!
//! The ignored tests below regenerate the seeds that must be made by a real peer or
//! signed: `cargo test --all-features --test fuzz_regressions -- --ignored`.

#[allow(dead_code)]
#[path = "../fuzz/src/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Input files with their contents.
type Inputs = Vec<(PathBuf, Vec<u8>)>;

/// The seeds of `target` (at least one) and its reproducers, by path.
fn inputs(target: &str) -> (Inputs, Inputs) {
    let read = |dir: &Path, required: bool| -> Inputs {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("{}: {e}", dir.display()),
        };
        let mut files: Vec<_> = entries
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.is_file())
            .map(|p| {
                let bytes = std::fs::read(&p).expect("read an input");
                (p, bytes)
            })
            .collect();
        files.sort();
        files
    };
    let seeds = read(&fuzz_dir().join("corpus").join(target), true);
    assert!(!seeds.is_empty(), "fuzz/corpus/{target}/ holds no seed");
    (seeds, read(&fuzz_dir().join("regressions").join(target), false))
}

#[test]
fn every_target_has_a_fuzzer_and_a_corpus() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for (name, _) in targets::TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
        assert!(fuzz_dir().join("fuzzers").join(format!("{name}.rs")).is_file());
        assert!(
            fuzz_dir().join("corpus").join(name).is_dir(),
            "fuzz/corpus/{name}/"
        );
    }
}

/// Every seed and reproducer of every public-API target, without a panic; some seed
/// of each target is accepted.
#[test]
fn fuzz_corpora_and_reproducers() {
    let mut report = Vec::new();
    for (name, entry) in targets::TARGETS {
        let (seeds, reproducers) = inputs(name);
        let accepted = seeds.iter().filter(|(_, bytes)| entry(bytes)).count();
        for (_, bytes) in &reproducers {
            entry(bytes);
        }
        assert!(
            accepted > 0,
            "no seed of {name} is accepted any more: regenerate them (see fuzz/seeds/)"
        );
        report.push(format!(
            "{name}: {} seeds ({accepted} accepted), {} reproducers",
            seeds.len(),
            reproducers.len()
        ));
    }
    eprintln!("{}", report.join("\n"));
}

/// The SAML seeds were signed by the IdP whose metadata is checked in, for the SP
/// the target builds; every one of the `valid-*` seeds verifies at the capture time.
#[test]
fn saml_seeds_that_should_verify_do() {
    let (seeds, _) = inputs("saml_response");
    for (path, bytes) in seeds {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("valid-") {
            assert!(targets::saml_response(&bytes), "{name} does not verify");
        }
    }
}

/// Every `valid-*` encrypted seed decrypts and verifies; the others do not.
#[test]
fn saml_encrypted_seeds_verify_as_named() {
    let (seeds, _) = inputs("saml_encrypted");
    for (path, bytes) in seeds {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            targets::saml_encrypted(&bytes),
            name.starts_with("valid-"),
            "{name}"
        );
    }
}

/// One validly signed ID token per supported algorithm, each accepted.
#[test]
fn id_token_seeds_cover_every_algorithm() {
    let (seeds, _) = inputs("id_token");
    for alg in authchain::modules::oidc::Algorithm::NAMES {
        let (path, bytes) = seeds
            .iter()
            .find(|(p, _)| p.file_name().unwrap().to_string_lossy() == format!("valid-{alg}"))
            .unwrap_or_else(|| panic!("no seed valid-{alg}"));
        assert!(targets::id_token(bytes), "{} is not accepted", path.display());
    }
}

/// Every `valid-*` seed of `target` is accepted, no other is; and there is a
/// `valid-<alg>` seed for each of `algorithms`.
fn seeds_accepted_as_named(target: &str, entry: targets::Target, algorithms: &[&str]) {
    let (seeds, _) = inputs(target);
    for (path, bytes) in &seeds {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(entry(bytes), name.starts_with("valid-"), "{target}: {name}");
    }
    for alg in algorithms {
        assert!(
            seeds
                .iter()
                .any(|(p, _)| p.file_name().unwrap().to_string_lossy() == format!("valid-{alg}")),
            "{target}: no seed valid-{alg}"
        );
    }
}

/// One validly signed header per supported algorithm, each accepted; the forged,
/// expired and misaddressed ones refused.
#[test]
fn signed_header_seeds_verify_as_named() {
    seeds_accepted_as_named(
        "signed_header",
        targets::signed_header,
        authchain::jose::Algorithm::NAMES,
    );
}

/// One valid assertion per algorithm key login allows, each accepted; the others
/// refused.
#[test]
fn key_login_seeds_verify_as_named() {
    let algorithms: Vec<&str> = authchain::modules::key_login::ALGORITHMS
        .iter()
        .map(|a| a.name())
        .collect();
    seeds_accepted_as_named("key_login", targets::key_login, &algorithms);
}

// ---------------------------------------------------------------------------------
// Seed generators (ignored: run by hand, then commit what they write).

#[allow(dead_code)]
#[path = "saml/idp.rs"]
mod idp;

/// Captures IdP-initiated responses from the real pysaml2 IdP (tests/peers) into
/// `fuzz/corpus/saml_response/`, and the IdP's metadata and the capture time into
/// `fuzz/seeds/saml/`.
#[tokio::test]
#[ignore = "regenerates checked-in fuzz seeds"]
async fn generate_saml_seeds() {
    use authchain::modules::{SamlModule, SamlSettings};
    use idp::{Idp, Unsolicited};

    let idp = Idp::start();
    let mut settings = SamlSettings::new(
        "http://127.0.0.1/sp-a".parse().unwrap(),
        "http://127.0.0.1/sp-a/acs".parse().unwrap(),
    );
    settings.idp_metadata_file = Some(idp.metadata_file.clone());
    settings.allow_idp_initiated = true;
    let module = SamlModule::new("saml", settings).expect("SP");
    idp.register("http://127.0.0.1/sp-a", &module).await;

    let seeds = fuzz_dir().join("seeds").join("saml");
    let corpus = fuzz_dir().join("corpus").join("saml_response");
    std::fs::create_dir_all(&seeds).unwrap();
    let _ = std::fs::remove_dir_all(&corpus);
    std::fs::create_dir_all(&corpus).unwrap();
    std::fs::copy(&idp.metadata_file, seeds.join("idp-metadata.xml")).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::fs::write(seeds.join("now"), format!("{now}\n")).unwrap();

    let base = Unsolicited {
        user: "alice",
        ..Default::default()
    };
    let variants: Vec<(&str, Unsolicited<'_>)> = vec![
        ("valid-signed-response-and-assertion", base.clone()),
        (
            "valid-signed-assertion",
            Unsolicited {
                unsigned_response: true,
                ..base.clone()
            },
        ),
        (
            "valid-relay-state",
            Unsolicited {
                relay_state: Some("/dashboard"),
                ..base.clone()
            },
        ),
        (
            "valid-bob",
            Unsolicited {
                user: "bob",
                ..base.clone()
            },
        ),
        (
            "signed-response-only",
            Unsolicited {
                unsigned_assertion: true,
                ..base.clone()
            },
        ),
        (
            "sha1",
            Unsolicited {
                sha1: true,
                ..base.clone()
            },
        ),
        (
            "rogue-signer",
            Unsolicited {
                rogue: true,
                ..base.clone()
            },
        ),
        (
            "other-recipient",
            Unsolicited {
                recipient: Some("http://127.0.0.1/elsewhere"),
                ..base.clone()
            },
        ),
    ];
    for (name, options) in variants {
        let form = idp.unsolicited("http://127.0.0.1/sp-a", options).await;
        let xml = form.xml();
        let verified = module.verify_response(&form.saml_response, None, std::time::SystemTime::now());
        assert_eq!(
            verified.is_ok(),
            name.starts_with("valid-"),
            "{name}: {verified:?}"
        );
        std::fs::write(corpus.join(name), xml).unwrap();
    }
}

/// Captures IdP-initiated responses with encrypted assertions from the real pysaml2
/// IdP into `fuzz/corpus/saml_encrypted/`, and the IdP's metadata, a fresh SP key
/// pair and the capture time into `fuzz/seeds/saml_encrypted/`.
#[tokio::test]
#[ignore = "regenerates checked-in fuzz seeds"]
async fn generate_saml_encrypted_seeds() {
    use authchain::SecretSource;
    use authchain::modules::saml::PemSource;
    use authchain::modules::{SamlModule, SamlSettings};
    use idp::{Idp, Unsolicited};
    use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509};

    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "authchain fuzz SP").unwrap();
    let name = name.build();
    let mut cert = x509::X509::builder().unwrap();
    cert.set_version(2).unwrap();
    cert.set_subject_name(&name).unwrap();
    cert.set_issuer_name(&name).unwrap();
    cert.set_pubkey(&key).unwrap();
    cert.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    cert.set_not_after(&Asn1Time::days_from_now(36500).unwrap())
        .unwrap();
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    let key_pem = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let cert_pem = String::from_utf8(cert.build().to_pem().unwrap()).unwrap();

    let idp = Idp::start();
    let sp = "http://127.0.0.1/sp-enc";
    let mut settings = SamlSettings::new(
        sp.parse().unwrap(),
        "http://127.0.0.1/sp-enc/acs".parse().unwrap(),
    );
    settings.idp_metadata_file = Some(idp.metadata_file.clone());
    settings.allow_idp_initiated = true;
    settings.sp_decryption_key = Some(SecretSource::Inline(key_pem.as_str().into()));
    settings.sp_encryption_certificate_file = Some(PemSource::Text(cert_pem.clone()));
    let module = SamlModule::new("saml", settings).expect("SP");
    idp.register(sp, &module).await;

    let seeds = fuzz_dir().join("seeds").join("saml_encrypted");
    let corpus = fuzz_dir().join("corpus").join("saml_encrypted");
    std::fs::create_dir_all(&seeds).unwrap();
    let _ = std::fs::remove_dir_all(&corpus);
    std::fs::create_dir_all(&corpus).unwrap();
    std::fs::copy(&idp.metadata_file, seeds.join("idp-metadata.xml")).unwrap();
    std::fs::write(seeds.join("sp-key.pem"), &key_pem).unwrap();
    std::fs::write(seeds.join("sp-cert.pem"), &cert_pem).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::fs::write(seeds.join("now"), format!("{now}\n")).unwrap();

    let base = Unsolicited {
        user: "alice",
        encrypt: Some("aes128-cbc"),
        ..Default::default()
    };
    let variants: Vec<(&str, Unsolicited<'_>)> = vec![
        ("valid-aes128-cbc", base.clone()),
        (
            "valid-aes256-gcm-unsigned-response",
            Unsolicited {
                encrypt: Some("aes256-gcm"),
                unsigned_response: true,
                ..base.clone()
            },
        ),
        (
            "valid-rsa15-aes256-cbc",
            Unsolicited {
                encrypt: Some("aes256-cbc"),
                key_transport: Some("rsa15"),
                ..base.clone()
            },
        ),
        (
            "tripledes",
            Unsolicited {
                encrypt: Some("tripledes-cbc"),
                ..base.clone()
            },
        ),
        (
            "other-key",
            Unsolicited {
                encrypt_for_rogue: true,
                ..base.clone()
            },
        ),
        (
            "unsigned-assertion",
            Unsolicited {
                unsigned_assertion: true,
                ..base.clone()
            },
        ),
    ];
    for (name, options) in variants {
        let form = idp.unsolicited(sp, options).await;
        let verified = module.verify_response(&form.saml_response, None, std::time::SystemTime::now());
        assert_eq!(
            verified.is_ok(),
            name.starts_with("valid-"),
            "{name}: {verified:?}"
        );
        std::fs::write(corpus.join(name), form.xml()).unwrap();
    }
}

/// Fresh signing keys for the JOSE seeds: ring makes P-256, P-384 and Ed25519 keys;
/// the RSA key is tests/oidc/keys/rsa-a.der, as ring does not make RSA keys.
struct Signers {
    rng: ring::rand::SystemRandom,
    rsa: ring::signature::RsaKeyPair,
    p256: ring::signature::EcdsaKeyPair,
    p384: ring::signature::EcdsaKeyPair,
    ed25519: ring::signature::Ed25519KeyPair,
}

impl Signers {
    fn new() -> Signers {
        use ring::signature::{self as sig, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let rsa_der =
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/keys/rsa-a.der")).unwrap();
        let ec = |alg: &'static sig::EcdsaSigningAlgorithm| {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
            EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap()
        };
        let p256 = ec(&sig::ECDSA_P256_SHA256_FIXED_SIGNING);
        let p384 = ec(&sig::ECDSA_P384_SHA384_FIXED_SIGNING);
        let ed25519 =
            sig::Ed25519KeyPair::from_pkcs8(sig::Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref())
                .unwrap();
        Signers {
            rsa: sig::RsaKeyPair::from_der(&rsa_der).unwrap(),
            rng,
            p256,
            p384,
            ed25519,
        }
    }

    /// The signature of `input` by `alg`'s key (RSA for RS*, PS*).
    fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        use ring::signature as sig;
        match alg {
            "ES256" => self.p256.sign(&self.rng, input).unwrap().as_ref().to_vec(),
            "ES384" => self.p384.sign(&self.rng, input).unwrap().as_ref().to_vec(),
            "EdDSA" => self.ed25519.sign(input).as_ref().to_vec(),
            rsa_alg => {
                let padding: &dyn sig::RsaEncoding = match rsa_alg {
                    "RS256" => &sig::RSA_PKCS1_SHA256,
                    "RS384" => &sig::RSA_PKCS1_SHA384,
                    "RS512" => &sig::RSA_PKCS1_SHA512,
                    "PS256" => &sig::RSA_PSS_SHA256,
                    "PS384" => &sig::RSA_PSS_SHA384,
                    "PS512" => &sig::RSA_PSS_SHA512,
                    other => panic!("no signer for {other}"),
                };
                let mut out = vec![0; self.rsa.public().modulus_len()];
                self.rsa.sign(padding, &self.rng, input, &mut out).unwrap();
                out
            }
        }
    }

    /// A compact JWS of `claims` with `header`, signed as `alg`.
    fn jws(&self, alg: &str, header: &serde_json::Value, claims: &serde_json::Value) -> String {
        use base64ct::{Base64UrlUnpadded as B64, Encoding};
        let input = format!(
            "{}.{}",
            B64::encode_string(header.to_string().as_bytes()),
            B64::encode_string(claims.to_string().as_bytes())
        );
        let signature = self.sign(alg, input.as_bytes());
        format!("{input}.{}", B64::encode_string(&signature))
    }

    /// The public keys as PEM `PUBLIC KEY` files, by the names of `targets::JWS_KEYS`.
    fn public_pems(&self) -> Vec<(&'static str, String)> {
        use base64ct::{Base64, Encoding};
        use ring::signature::KeyPair;
        let pem = |der: &[u8]| {
            let b64 = Base64::encode_string(der);
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                lines.join("\n")
            )
        };
        // SubjectPublicKeyInfo prefixes (algorithm identifier, BIT STRING header).
        let spki = |prefix: &str, key: &[u8]| {
            let mut der: Vec<u8> = (0..prefix.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&prefix[i..i + 2], 16).unwrap())
                .collect();
            der.extend_from_slice(key);
            pem(&der)
        };
        let rsa = openssl::rsa::Rsa::public_key_from_der_pkcs1(self.rsa.public().as_ref())
            .unwrap()
            .public_key_to_pem()
            .unwrap();
        vec![
            ("rsa.pub.pem", String::from_utf8(rsa).unwrap()),
            (
                "p256.pub.pem",
                spki(
                    "3059301306072a8648ce3d020106082a8648ce3d030107034200",
                    self.p256.public_key().as_ref(),
                ),
            ),
            (
                "p384.pub.pem",
                spki(
                    "3076301006072a8648ce3d020106052b81040022036200",
                    self.p384.public_key().as_ref(),
                ),
            ),
            (
                "ed25519.pub.pem",
                spki("302a300506032b6570032100", self.ed25519.public_key().as_ref()),
            ),
        ]
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Removes and recreates `fuzz/corpus/<target>/`.
fn fresh_corpus(target: &str) -> PathBuf {
    let corpus = fuzz_dir().join("corpus").join(target);
    let _ = std::fs::remove_dir_all(&corpus);
    std::fs::create_dir_all(&corpus).unwrap();
    corpus
}

/// Signs one ID token per supported algorithm with fresh keys ([`Signers`]) into
/// `fuzz/corpus/id_token/`, and their public keys into `fuzz/seeds/id_token/jwks.json`.
/// The tokens expire in 2100.
#[test]
#[ignore = "regenerates checked-in fuzz seeds"]
fn generate_id_token_seeds() {
    use base64ct::{Base64UrlUnpadded as B64, Encoding};
    use ring::signature::{self as sig, KeyPair};
    use serde_json::json;

    let signers = Signers::new();
    let rsa_public: sig::RsaPublicKeyComponents<Vec<u8>> = signers.rsa.public().into();
    let ec_jwk = |kid: &str, crv: &str, public: &[u8]| {
        let coords = &public[1..]; // 0x04 || x || y
        let (x, y) = coords.split_at(coords.len() / 2);
        json!({"kty": "EC", "use": "sig", "kid": kid, "crv": crv,
               "x": B64::encode_string(x), "y": B64::encode_string(y)})
    };
    let jwks = json!({"keys": [
        {"kty": "RSA", "use": "sig", "kid": "rsa", "n": B64::encode_string(&rsa_public.n),
         "e": B64::encode_string(&rsa_public.e)},
        ec_jwk("p256", "P-256", signers.p256.public_key().as_ref()),
        ec_jwk("p384", "P-384", signers.p384.public_key().as_ref()),
        {"kty": "OKP", "use": "sig", "kid": "ed25519", "crv": "Ed25519",
         "x": B64::encode_string(signers.ed25519.public_key().as_ref())},
    ]});

    let claims = json!({
        "iss": targets::OIDC_ISSUER, "aud": targets::OIDC_CLIENT, "sub": "u-1",
        "exp": 4_102_444_800u64, "iat": unix_now(), "nonce": targets::OIDC_NONCE,
        "email": "alice@example.org", "name": "Alice", "groups": ["admins", "staff"],
        "realm_access": {"roles": ["admin"]},
    });
    let corpus = fresh_corpus("id_token");
    let seeds = fuzz_dir().join("seeds").join("id_token");
    std::fs::create_dir_all(&seeds).unwrap();
    std::fs::write(
        seeds.join("jwks.json"),
        serde_json::to_string_pretty(&jwks).unwrap(),
    )
    .unwrap();

    for alg in authchain::modules::oidc::Algorithm::NAMES {
        let kid = match *alg {
            "ES256" => "p256",
            "ES384" => "p384",
            "EdDSA" => "ed25519",
            _ => "rsa",
        };
        let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
        let token = signers.jws(alg, &header, &claims);
        std::fs::write(corpus.join(format!("valid-{alg}")), token).unwrap();
    }
}

/// Seeds that are no JWS, or one no key verifies, for both JOSE targets: `alg`
/// `none`, HS256, a tampered payload, and text that is not a JWS.
fn unsigned_seeds(corpus: &Path, valid: &str, claims: &serde_json::Value) {
    use base64ct::{Base64UrlUnpadded as B64, Encoding};
    let segment = |v: serde_json::Value| B64::encode_string(v.to_string().as_bytes());
    let payload = segment(claims.clone());
    let none = format!("{}.{payload}.", segment(serde_json::json!({"alg": "none"})));
    let hs256 = format!(
        "{}.{payload}.{}",
        segment(serde_json::json!({"alg": "HS256", "typ": "JWT"})),
        B64::encode_string(&[7u8; 32])
    );
    let mut parts: Vec<&str> = valid.split('.').collect();
    let mut tampered_claims = claims.clone();
    tampered_claims["sub"] = "mallory".into();
    let tampered = segment(tampered_claims);
    parts[1] = &tampered;
    for (name, seed) in [
        ("alg-none", none),
        ("hs256", hs256),
        ("tampered-payload", parts.join(".")),
        ("not-a-jws", "eyJhbGciOiJFUzI1NiJ9..".to_owned()),
    ] {
        std::fs::write(corpus.join(name), seed).unwrap();
    }
}

/// Signs signed-header seeds with fresh keys ([`Signers`]) into
/// `fuzz/corpus/signed_header/`: one valid token per supported algorithm (no `kid`;
/// they expire in 2100), and refused ones (another audience, expired, `alg`
/// `none`, HS256, a tampered payload, not a JWS). Writes the public keys to
/// `fuzz/seeds/jws_keys/`, so regenerate the key-login seeds with it
/// (`-- --ignored generate_jws_seeds`).
fn generate_signed_header_seeds(signers: &Signers) {
    use serde_json::json;
    let claims = json!({
        "iss": targets::SIGNED_HEADER_ISSUER, "aud": targets::SIGNED_HEADER_AUDIENCE,
        "sub": "u-1", "exp": 4_102_444_800u64, "iat": unix_now(),
        "email": "alice@example.org", "groups": ["admins", "staff"],
    });
    let corpus = fresh_corpus("signed_header");
    for alg in authchain::jose::Algorithm::NAMES {
        let token = signers.jws(alg, &json!({"alg": alg, "typ": "JWT"}), &claims);
        std::fs::write(corpus.join(format!("valid-{alg}")), token).unwrap();
    }
    let es256 = json!({"alg": "ES256", "typ": "JWT"});
    let mut other_audience = claims.clone();
    other_audience["aud"] = json!(["other-app"]);
    let mut expired = claims.clone();
    expired["exp"] = json!(unix_now() - 3600);
    for (name, claims) in [("other-audience", other_audience), ("expired", expired)] {
        std::fs::write(corpus.join(name), signers.jws("ES256", &es256, &claims)).unwrap();
    }
    let valid = signers.jws("ES256", &es256, &claims);
    unsigned_seeds(&corpus, &valid, &claims);
}

/// Signs key-login seeds for `targets::KEY_LOGIN_USER` into
/// `fuzz/corpus/key_login/` at the time written to `fuzz/seeds/key_login/now`:
/// one valid assertion per algorithm key login allows (RS256, PS256 with the RSA
/// key, ES256, EdDSA), and refused ones (another audience, an unknown login, too
/// long lived, RS384, `alg` `none`, HS256, a tampered payload, not a JWS).
fn generate_key_login_seeds(signers: &Signers) {
    use serde_json::json;
    let now = unix_now();
    let seeds = fuzz_dir().join("seeds").join("key_login");
    std::fs::create_dir_all(&seeds).unwrap();
    std::fs::write(seeds.join("now"), format!("{now}\n")).unwrap();
    let claims = |jti: &str| {
        json!({"sub": targets::KEY_LOGIN_USER, "aud": targets::KEY_LOGIN_AUDIENCE,
               "iat": now, "exp": now + 120, "jti": jti})
    };
    let corpus = fresh_corpus("key_login");
    for alg in authchain::modules::key_login::ALGORITHMS {
        let alg = alg.name();
        let token = signers.jws(alg, &json!({"alg": alg}), &claims(&format!("jti-{alg}")));
        std::fs::write(corpus.join(format!("valid-{alg}")), token).unwrap();
    }
    let mut other_audience = claims("jti-aud");
    other_audience["aud"] = json!("https://other.test");
    let mut unknown_login = claims("jti-bob");
    unknown_login["sub"] = json!("bob");
    let mut long_lived = claims("jti-long");
    long_lived["exp"] = json!(now + 3600);
    for (name, alg, claims) in [
        ("other-audience", "ES256", other_audience),
        ("unknown-login", "EdDSA", unknown_login),
        ("too-long-lived", "RS256", long_lived),
        ("rs384", "RS384", claims("jti-rs384")),
    ] {
        std::fs::write(corpus.join(name), signers.jws(alg, &json!({"alg": alg}), &claims)).unwrap();
    }
    let valid = signers.jws("ES256", &json!({"alg": "ES256"}), &claims("jti-t"));
    unsigned_seeds(&corpus, &valid, &claims("jti-t"));
}

/// Fresh harness keys (`fuzz/seeds/jws_keys/`, public halves only) and the
/// signed-header and key-login seeds signed with them.
#[test]
#[ignore = "regenerates checked-in fuzz seeds"]
fn generate_jws_seeds() {
    let signers = Signers::new();
    let keys = fuzz_dir().join("seeds").join("jws_keys");
    std::fs::create_dir_all(&keys).unwrap();
    for (name, pem) in signers.public_pems() {
        std::fs::write(keys.join(name), pem).unwrap();
    }
    generate_signed_header_seeds(&signers);
    generate_key_login_seeds(&signers);
}
