//! Encrypted assertions (issue 14 item 3) from the real pysaml2 IdP: every
//! supported key transport and content algorithm decrypts and is then held to
//! every check; wrong keys, tampering, wrapping, unsigned decrypted assertions,
//! 3DES and plaintext-when-required are refused by variant.

use super::*;
use authchain::modules::saml::DecryptionError;

const SP_ENC: &str = "http://127.0.0.1/sp-enc";
const ACS_ENC: &str = "http://127.0.0.1/sp-enc/acs";

/// An SP with a decryption key (the same key pair as the signing SP's), IdP-initiated
/// responses allowed so that each can be checked on its own.
fn sp_enc(idp: &Idp) -> Sp {
    let (key, cert) = sp_key_pair();
    Sp::new("saml", SP_ENC, ACS_ENC)
        .with(idp_metadata(idp))
        .with(|s| {
            s.sp_decryption_key = Some(SecretSource::Inline(key.as_str().into()));
            s.sp_encryption_certificate_file = Some(PemSource::Text(cert.clone()));
            s.allow_idp_initiated = true;
        })
}

async fn encrypted_response(idp: &Idp, options: Unsolicited<'_>) -> PostedForm {
    idp.unsolicited(SP_ENC, options).await
}

fn cipher_value_range(xml: &str) -> std::ops::Range<usize> {
    // The content's CipherValue is the last one (the key's is inside KeyInfo before it).
    let doc = roxmltree::Document::parse(xml).expect("xml");
    let value = doc
        .descendants()
        .rfind(|n| n.tag_name().name() == "CipherValue")
        .expect("a CipherValue");
    value.first_child().expect("its text").range()
}

/// The response with one base64 character of the content ciphertext changed.
fn tampered(xml: &str) -> String {
    let range = cipher_value_range(xml);
    let at = range.start + (range.end - range.start) / 2;
    let old = xml.as_bytes()[at];
    let new = if old == b'A' { 'B' } else { 'A' };
    format!("{}{new}{}", &xml[..at], &xml[at + 1..])
}

#[tokio::test]
async fn encrypted_assertions_decrypt_with_every_supported_algorithm() {
    let idp = Idp::shared();
    let module = registered(idp, sp_enc(idp), SP_ENC).await;
    let metadata = module.sp_metadata_xml();
    assert!(metadata.contains(r#"use="encryption""#), "{metadata}");
    let now = SystemTime::now();
    for (content, transport) in [
        ("aes128-cbc", "oaep"),
        ("aes256-cbc", "oaep"),
        ("aes128-gcm", "oaep"),
        ("aes256-gcm", "oaep"),
        ("aes128-cbc", "rsa15"),
    ] {
        let form = encrypted_response(
            idp,
            Unsolicited {
                user: "alice",
                encrypt: Some(content),
                key_transport: Some(transport),
                ..Unsolicited::default()
            },
        )
        .await;
        let xml = form.xml();
        assert!(
            holds(&xml, "EncryptedAssertion") && !holds(&xml, "Assertion"),
            "{xml}"
        );
        let verified = module
            .verify_response(&form.saml_response, None, now)
            .unwrap_or_else(|e| panic!("{content} / {transport}: {e}"));
        assert!(verified.encrypted && verified.assertion_signed && verified.response_signed);
        assert_eq!(verified.name_id, "alice");
        assert_eq!(
            verified.attribute("mail").map(|a| a.values.clone()),
            Some(vec!["alice@example.org".to_owned()])
        );
    }
}

#[tokio::test]
async fn an_sp_initiated_login_with_an_encrypted_assertion_and_encryption_required() {
    let idp = Idp::shared();
    let module = registered(
        idp,
        sp_enc(idp).with(|s| {
            s.require_encrypted_assertions = true;
            s.allow_idp_initiated = false;
        }),
        SP_ENC,
    )
    .await;
    let (chain, _) = chain_of(module);
    let redirect = start(&chain, "saml").await;
    // The IdP encrypts because the SP metadata names an encryption certificate.
    let form = login_form(&redirect.location, "alice", "alice-password").await;
    assert!(form.xml().contains("EncryptedAssertion"));
    let p = principal(
        chain
            .login(&callback(form.params(), redirect.flow_cookie_value()))
            .await,
    );
    assert_eq!(p.login, "alice");
    assert!(p.has_role("admin"));

    // The same SP, the assertion in the clear: refused.
    let strict = sp_enc(idp)
        .with(|s| s.require_encrypted_assertions = true)
        .build()
        .expect("module");
    let plain = idp
        .unsolicited(
            SP_ENC,
            Unsolicited {
                user: "alice",
                ..Unsolicited::default()
            },
        )
        .await;
    assert_eq!(
        strict.verify_response(&plain.saml_response, None, SystemTime::now()),
        Err(SamlError::Decryption(DecryptionError::NotEncrypted))
    );
    // Without the requirement the plaintext one is fine.
    let module = sp_enc(idp).build().expect("module");
    assert!(
        module
            .verify_response(&plain.saml_response, None, SystemTime::now())
            .is_ok()
    );
}

#[tokio::test]
async fn encrypted_assertions_that_must_be_refused() {
    let idp = Idp::shared();
    let module = registered(idp, sp_enc(idp), SP_ENC).await;
    let now = SystemTime::now();
    let check = |module: &SamlModule, xml: &str| module.verify_response(&encode(xml), None, now);
    let encrypted = |options: Unsolicited<'static>| encrypted_response(idp, options);
    let alice = Unsolicited {
        user: "alice",
        encrypt: Some("aes128-gcm"),
        ..Unsolicited::default()
    };

    // Encrypted for another key.
    let rogue = encrypted(Unsolicited {
        encrypt_for_rogue: true,
        ..alice.clone()
    })
    .await;
    assert_eq!(
        module.verify_response(&rogue.saml_response, None, now),
        Err(SamlError::Decryption(DecryptionError::Failed))
    );
    // An SP without a decryption key.
    let keyless = sp_a(idp)
        .with(|s| s.allow_idp_initiated = true)
        .build()
        .expect("module");
    assert_eq!(
        check(&keyless, &rogue.xml()),
        Err(SamlError::Decryption(DecryptionError::NoKey))
    );

    // 3DES, pysaml2's own default: refused unless opted in.
    let tdes = encrypted(Unsolicited {
        encrypt: Some("tripledes-cbc"),
        ..alice.clone()
    })
    .await;
    assert_eq!(
        module.verify_response(&tdes.saml_response, None, now),
        Err(SamlError::Decryption(DecryptionError::Algorithm(
            "http://www.w3.org/2001/04/xmlenc#tripledes-cbc".into()
        )))
    );
    let lax = sp_enc(idp)
        .with(|s| s.insecure_allow_3des = true)
        .build()
        .expect("module");
    assert!(lax.verify_response(&tdes.saml_response, None, now).is_ok());

    // A tampered ciphertext: the Response signature covers it.
    let signed = encrypted(alice.clone()).await.xml();
    let result = check(&module, &tampered(&signed));
    assert!(matches!(result, Err(SamlError::Signature(_))), "{result:?}");
    // Unsigned Response, signed assertion: the GCM tag refuses it.
    let unsigned_response = encrypted(Unsolicited {
        unsigned_response: true,
        ..alice.clone()
    })
    .await
    .xml();
    assert!(check(&module, &unsigned_response).is_ok());
    assert_eq!(
        check(&module, &tampered(&unsigned_response)),
        Err(SamlError::Decryption(DecryptionError::Failed))
    );

    // A plaintext assertion put beside the encrypted one (signature wrapping).
    let plain = idp
        .unsolicited(
            SP_ENC,
            Unsolicited {
                user: "bob",
                unsigned_response: true,
                ..Unsolicited::default()
            },
        )
        .await
        .xml();
    let assertion = {
        let doc = roxmltree::Document::parse(&plain).expect("xml");
        let node = doc
            .descendants()
            .find(|n| n.tag_name().name() == "Assertion")
            .expect("assertion");
        plain[node.range()].to_owned()
    };
    for base in [&signed, &unsigned_response] {
        let marker = marker_of(base);
        let wrapped = format!("{}{assertion}{}", &base[..marker], &base[marker..]);
        assert!(
            matches!(check(&module, &wrapped), Err(SamlError::Malformed(_))),
            "{:?}",
            check(&module, &wrapped)
        );
    }

    // The decrypted assertion unsigned: refused when assertions must be signed,
    // accepted otherwise because the Response signature covers the ciphertext.
    let unsigned_assertion = encrypted(Unsolicited {
        unsigned_assertion: true,
        ..alice.clone()
    })
    .await
    .xml();
    assert_eq!(
        check(&module, &unsigned_assertion),
        Err(SamlError::Unsigned(SignedPart::Assertion))
    );
    let relaxed = sp_enc(idp)
        .with(|s| s.require_signed_assertions = false)
        .build()
        .expect("module");
    let ok = check(&relaxed, &unsigned_assertion).expect("covered by the Response signature");
    assert!(ok.encrypted && ok.response_signed && !ok.assertion_signed);
    // Neither signed: nothing vouches for it.
    let neither = encrypted(Unsolicited {
        unsigned_assertion: true,
        unsigned_response: true,
        ..alice.clone()
    })
    .await
    .xml();
    assert_eq!(
        check(&relaxed, &neither),
        Err(SamlError::Unsigned(SignedPart::Neither))
    );
    // Every other check still holds: a decrypted assertion for another Recipient.
    let elsewhere = encrypted(Unsolicited {
        recipient: Some("http://127.0.0.1/elsewhere"),
        ..alice.clone()
    })
    .await;
    assert_eq!(
        module.verify_response(&elsewhere.saml_response, None, now),
        Err(SamlError::Mismatch(Mismatch::Recipient))
    );
}

/// Where the EncryptedAssertion element begins.
fn marker_of(xml: &str) -> usize {
    roxmltree::Document::parse(xml)
        .expect("xml")
        .descendants()
        .find(|n| n.tag_name().name() == "EncryptedAssertion")
        .expect("encrypted assertion")
        .range()
        .start
}

/// Whether the document holds an element with this local name.
fn holds(xml: &str, name: &str) -> bool {
    roxmltree::Document::parse(xml)
        .expect("xml")
        .descendants()
        .any(|n| n.tag_name().name() == name)
}

#[test]
fn decryption_settings_are_checked() {
    let idp = Idp::shared();
    let (key, cert) = sp_key_pair();
    let err = |sp: Sp| sp.build().expect_err("refused").key().map(str::to_owned);
    let base = || Sp::new("saml", SP_ENC, ACS_ENC).with(idp_metadata(idp));
    assert_eq!(
        err(base().with(|s| s.require_encrypted_assertions = true)).as_deref(),
        Some("require_encrypted_assertions")
    );
    assert_eq!(
        err(base().with(|s| s.sp_decryption_key = Some(SecretSource::Inline(key.as_str().into()))))
            .as_deref(),
        Some("sp_encryption_certificate_file")
    );
    let rogue = std::fs::read_to_string(&idp.rogue_certificate_file).expect("rogue cert");
    assert_eq!(
        err(base().with(|s| {
            s.sp_decryption_key = Some(SecretSource::Inline(key.as_str().into()));
            s.sp_encryption_certificate_file = Some(PemSource::Text(rogue));
        }))
        .as_deref(),
        Some("sp_encryption_certificate_file")
    );
    assert!(
        base()
            .with(|s| {
                s.sp_decryption_key = Some(SecretSource::Inline(key.as_str().into()));
                s.sp_encryption_certificate_file = Some(PemSource::Text(cert.clone()));
            })
            .build()
            .is_ok()
    );
}
