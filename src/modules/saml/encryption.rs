//! Encrypted assertions (XML Encryption 1.1, SAML core §2.3.4): the
//! `saml:EncryptedAssertion` of a response decrypted with the SP's key, with
//! openssl (already the key type of the `saml` feature, so both signature
//! backends share this code).
//!
//! * Key transport: RSA-OAEP (`xmlenc#rsa-oaep-mgf1p`, `xmlenc11#rsa-oaep` with
//!   SHA-1 or SHA-2 digests and MGF1) or RSA PKCS#1 v1.5 (`xmlenc#rsa-1_5`). A v1.5
//!   unwrap that fails goes on with a random key (implicit rejection), so that a
//!   wrong padding and a wrong content key look alike: every failure to decrypt is
//!   the one answer [`DecryptionError::Failed`].
//! * Content: AES-128/192/256-CBC, AES-128/192/256-GCM; 3DES-CBC only with
//!   `insecure_allow_3des`. Nothing else (no `CipherReference`, no key agreement,
//!   no key names resolved).
//! * Bounds, before any work: at most [`MAX_ENCRYPTED_KEYS`] `EncryptedKey`
//!   elements, an RSA ciphertext of exactly the key's size, a content ciphertext
//!   no larger than the posted response (itself bounded by `max_response_bytes`).
//! * The plaintext must be exactly one `saml:Assertion` element (UTF-8, no DOCTYPE,
//!   nothing around it). Namespace declarations in scope at the
//!   `EncryptedAssertion` are added to its start tag when it lacks them, which is
//!   what decrypting in place means for a plaintext that relies on them.
//!
//! Decryption gives confidentiality only: the decrypted assertion is then held to
//! every check of a plaintext one, and is trusted only through a signature (its
//! own, or the Response's, which covers the ciphertext).

use base64ct::{Base64, Encoding};
use openssl::encrypt::Decrypter;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode};
use roxmltree::Node;

use super::error::{SamlError, malformed};
use super::response::{ASSERTION_NS, children};
use super::signature::DSIG_NS;
use crate::modules::xml::{XmlReader, is};

const XENC_NS: &str = "http://www.w3.org/2001/04/xmlenc#";
const XENC11_NS: &str = "http://www.w3.org/2009/xmlenc11#";
const ELEMENT_TYPE: &str = "http://www.w3.org/2001/04/xmlenc#Element";
/// At most this many `EncryptedKey` elements are tried.
pub const MAX_ENCRYPTED_KEYS: usize = 4;
/// Bound on the nodes of a decrypted assertion.
const MAX_PLAINTEXT_NODES: u32 = 20_000;
const PLAINTEXT_READER: XmlReader = XmlReader::new(MAX_PLAINTEXT_NODES).refusing_declaration_text();

/// Why an encrypted (or a plaintext) assertion was refused
/// ([`SamlError::Decryption`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptionError {
    /// An `EncryptedAssertion` arrived and no `sp_decryption_key` is configured.
    #[error("the assertion is encrypted and no SP decryption key is configured")]
    NoKey,
    /// The key transport or content encryption algorithm is not accepted (3DES
    /// without `insecure_allow_3des`, or unknown). Holds the algorithm's URI.
    #[error("encryption algorithm {0:?} is not accepted")]
    Algorithm(String),
    /// The assertion does not decrypt with the SP's key into one assertion: a
    /// wrong key, a tampered ciphertext, or garbage (one answer for all).
    #[error("the encrypted assertion cannot be decrypted with the SP's key")]
    Failed,
    /// `require_encrypted_assertions` is set and the assertion arrived in the clear.
    #[error("the assertion is not encrypted, and encryption is required")]
    NotEncrypted,
}

/// The SP's decryption key and policy.
pub(crate) struct Decryption {
    pub(crate) key: PKey<Private>,
    pub(crate) required: bool,
    pub(crate) allow_3des: bool,
}

impl std::fmt::Debug for Decryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryption")
            .field("required", &self.required)
            .field("allow_3des", &self.allow_3des)
            .finish_non_exhaustive()
    }
}

fn failed() -> SamlError {
    SamlError::Decryption(DecryptionError::Failed)
}

fn refused(uri: &str) -> SamlError {
    SamlError::Decryption(DecryptionError::Algorithm(super::error::clip(uri)))
}

/// A content encryption algorithm: cipher, key length, IV length, GCM or CBC.
struct Content {
    cipher: Cipher,
    key_len: usize,
    iv_len: usize,
    gcm: bool,
}

fn content_algorithm(uri: &str, allow_3des: bool) -> Result<Content, SamlError> {
    let cbc = |cipher: Cipher, key_len, iv_len| Content {
        cipher,
        key_len,
        iv_len,
        gcm: false,
    };
    let gcm = |cipher: Cipher, key_len| Content {
        cipher,
        key_len,
        iv_len: 12,
        gcm: true,
    };
    Ok(match uri {
        "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => cbc(Cipher::aes_128_cbc(), 16, 16),
        "http://www.w3.org/2001/04/xmlenc#aes192-cbc" => cbc(Cipher::aes_192_cbc(), 24, 16),
        "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => cbc(Cipher::aes_256_cbc(), 32, 16),
        "http://www.w3.org/2009/xmlenc11#aes128-gcm" => gcm(Cipher::aes_128_gcm(), 16),
        "http://www.w3.org/2009/xmlenc11#aes192-gcm" => gcm(Cipher::aes_192_gcm(), 24),
        "http://www.w3.org/2009/xmlenc11#aes256-gcm" => gcm(Cipher::aes_256_gcm(), 32),
        "http://www.w3.org/2001/04/xmlenc#tripledes-cbc" if allow_3des => cbc(Cipher::des_ede3_cbc(), 24, 8),
        other => return Err(refused(other)),
    })
}

fn digest_of(uri: Option<&str>) -> Result<MessageDigest, SamlError> {
    Ok(match uri {
        None | Some("http://www.w3.org/2000/09/xmldsig#sha1") => MessageDigest::sha1(),
        Some("http://www.w3.org/2001/04/xmlenc#sha256") => MessageDigest::sha256(),
        Some("http://www.w3.org/2001/04/xmldsig-more#sha384") => MessageDigest::sha384(),
        Some("http://www.w3.org/2001/04/xmlenc#sha512") => MessageDigest::sha512(),
        Some(other) => return Err(refused(other)),
    })
}

fn mgf_of(uri: Option<&str>) -> Result<MessageDigest, SamlError> {
    Ok(match uri {
        None | Some("http://www.w3.org/2009/xmlenc11#mgf1sha1") => MessageDigest::sha1(),
        Some("http://www.w3.org/2009/xmlenc11#mgf1sha256") => MessageDigest::sha256(),
        Some("http://www.w3.org/2009/xmlenc11#mgf1sha384") => MessageDigest::sha384(),
        Some("http://www.w3.org/2009/xmlenc11#mgf1sha512") => MessageDigest::sha512(),
        Some(other) => return Err(refused(other)),
    })
}

/// How an `EncryptedKey` was wrapped.
enum Transport {
    Oaep {
        digest: MessageDigest,
        mgf: MessageDigest,
    },
    Pkcs1,
}

fn transport_of(method: Node<'_, '_>) -> Result<Transport, SamlError> {
    let uri = method.attribute("Algorithm").unwrap_or_default();
    let digest = || {
        digest_of(
            children(method, DSIG_NS, "DigestMethod")
                .next()
                .and_then(|d| d.attribute("Algorithm")),
        )
    };
    if children(method, XENC_NS, "OAEPparams").next().is_some() {
        return Err(malformed("OAEPparams (an OAEP label) are not supported"));
    }
    Ok(match uri {
        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p" => Transport::Oaep {
            digest: digest()?,
            mgf: MessageDigest::sha1(),
        },
        "http://www.w3.org/2009/xmlenc11#rsa-oaep" => Transport::Oaep {
            digest: digest()?,
            mgf: mgf_of(
                children(method, XENC11_NS, "MGF")
                    .next()
                    .and_then(|m| m.attribute("Algorithm")),
            )?,
        },
        "http://www.w3.org/2001/04/xmlenc#rsa-1_5" => Transport::Pkcs1,
        other => return Err(refused(other)),
    })
}

/// The base64 `CipherData/CipherValue` of an `EncryptedData` or `EncryptedKey`,
/// decoded; at most `max` bytes of base64.
fn cipher_value(node: Node<'_, '_>, max: usize) -> Result<Vec<u8>, SamlError> {
    let data = super::response::only_child(node, XENC_NS, "CipherData")?;
    if children(data, XENC_NS, "CipherReference").next().is_some() {
        return Err(malformed(
            "a CipherReference (remote ciphertext) is not supported",
        ));
    }
    let value = super::response::only_child(data, XENC_NS, "CipherValue")?;
    let mut text = String::new();
    for part in value.children().filter_map(|c| c.text()) {
        if text.len() + part.len() > max {
            return Err(malformed("a CipherValue is larger than the response allows"));
        }
        text.extend(part.chars().filter(|c| !c.is_ascii_whitespace()));
    }
    Base64::decode_vec(&text).map_err(|_| failed())
}

/// The content key of one `EncryptedKey`, `key_len` bytes (a failed v1.5 unwrap
/// answers a random key: see the module documentation).
fn unwrap_key(
    encrypted_key: Node<'_, '_>,
    key: &PKey<Private>,
    key_len: usize,
) -> Result<Vec<u8>, SamlError> {
    let method = super::response::only_child(encrypted_key, XENC_NS, "EncryptionMethod")?;
    let transport = transport_of(method)?;
    let rsa_size = key.size();
    let wrapped = cipher_value(encrypted_key, rsa_size * 2)?;
    if wrapped.len() != rsa_size {
        return Err(failed());
    }
    let unwrap = || -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let mut decrypter = Decrypter::new(key)?;
        match &transport {
            Transport::Oaep { digest, mgf } => {
                decrypter.set_rsa_padding(Padding::PKCS1_OAEP)?;
                decrypter.set_rsa_oaep_md(*digest)?;
                decrypter.set_rsa_mgf1_md(*mgf)?;
            }
            Transport::Pkcs1 => decrypter.set_rsa_padding(Padding::PKCS1)?,
        }
        let mut out = vec![0; decrypter.decrypt_len(&wrapped)?];
        let n = decrypter.decrypt(&wrapped, &mut out)?;
        out.truncate(n);
        Ok(out)
    };
    match (unwrap(), &transport) {
        (Ok(content_key), _) if content_key.len() == key_len => Ok(content_key),
        (_, Transport::Pkcs1) => {
            let mut random = vec![0; key_len];
            openssl::rand::rand_bytes(&mut random).map_err(|_| failed())?;
            Ok(random)
        }
        _ => Err(failed()),
    }
}

/// Decrypts the content with one candidate key.
fn decrypt_content(content: &Content, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    if content.gcm {
        const TAG: usize = 16;
        if data.len() < content.iv_len + TAG {
            return None;
        }
        let (iv, rest) = data.split_at(content.iv_len);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG);
        return openssl::symm::decrypt_aead(content.cipher, key, Some(iv), &[], ciphertext, tag).ok();
    }
    let block = content.cipher.block_size();
    if data.len() < content.iv_len + block || !(data.len() - content.iv_len).is_multiple_of(block) {
        return None;
    }
    let (iv, ciphertext) = data.split_at(content.iv_len);
    let mut crypter = Crypter::new(content.cipher, Mode::Decrypt, key, Some(iv)).ok()?;
    crypter.pad(false);
    let mut out = vec![0; ciphertext.len() + block];
    let mut n = crypter.update(ciphertext, &mut out).ok()?;
    n += crypter.finalize(&mut out[n..]).ok()?;
    out.truncate(n);
    // XML Encryption padding: the last byte says how many bytes to drop (the
    // others are arbitrary, unlike PKCS#7).
    let pad = usize::from(*out.last()?);
    if pad == 0 || pad > block || pad > out.len() {
        return None;
    }
    out.truncate(out.len() - pad);
    Some(out)
}

/// The decrypted assertion of `encrypted` (a `saml:EncryptedAssertion`), as the
/// text of one `saml:Assertion` element carrying the namespace declarations it
/// relies on. `max_bytes` bounds the ciphertext.
pub(super) fn decrypt(
    encrypted: Node<'_, '_>,
    decryption: &Decryption,
    max_bytes: usize,
) -> Result<String, SamlError> {
    let data = super::response::only_child(encrypted, XENC_NS, "EncryptedData")?;
    if data.attribute("Type").is_some_and(|t| t != ELEMENT_TYPE) {
        return Err(malformed("the EncryptedData is not an encrypted element"));
    }
    let method = super::response::only_child(data, XENC_NS, "EncryptionMethod")?;
    let content = content_algorithm(
        method.attribute("Algorithm").unwrap_or_default(),
        decryption.allow_3des,
    )?;
    // EncryptedKey in the data's KeyInfo, or beside the data (SAML core §2.3.4).
    let in_key_info =
        children(data, DSIG_NS, "KeyInfo").flat_map(|info| children(info, XENC_NS, "EncryptedKey"));
    let keys: Vec<Node<'_, '_>> = in_key_info
        .chain(children(encrypted, XENC_NS, "EncryptedKey"))
        .take(MAX_ENCRYPTED_KEYS + 1)
        .collect();
    if keys.is_empty() {
        return Err(malformed("the encrypted assertion carries no EncryptedKey"));
    }
    if keys.len() > MAX_ENCRYPTED_KEYS {
        return Err(malformed(format!(
            "the encrypted assertion carries more than {MAX_ENCRYPTED_KEYS} EncryptedKey elements"
        )));
    }
    let ciphertext = cipher_value(data, max_bytes)?;
    let mut plaintext = None;
    for encrypted_key in keys {
        let content_key = match unwrap_key(encrypted_key, &decryption.key, content.key_len) {
            Ok(key) => key,
            Err(SamlError::Decryption(DecryptionError::Failed)) => continue,
            Err(other) => return Err(other),
        };
        if let Some(text) = decrypt_content(&content, &content_key, &ciphertext) {
            plaintext = Some(text);
            break;
        }
    }
    let text = String::from_utf8(plaintext.ok_or_else(failed)?).map_err(|_| failed())?;
    contextualize(&text, encrypted)
}

/// The plaintext as one `saml:Assertion` with the declarations in scope at
/// `encrypted` that its start tag lacks.
fn contextualize(text: &str, encrypted: Node<'_, '_>) -> Result<String, SamlError> {
    let mut body = text.trim();
    if body.starts_with("<?xml") {
        let end = body.find("?>").ok_or_else(failed)?;
        body = body[end + 2..].trim_start();
    }
    let name_end = body
        .char_indices()
        .skip(1)
        .find(|(_, c)| c.is_ascii_whitespace() || *c == '>' || *c == '/')
        .map(|(i, _)| i)
        .ok_or_else(failed)?;
    if !body.starts_with('<') {
        return Err(failed());
    }
    let tag_end = body.find('>').unwrap_or(body.len());
    let start_tag = &body[..tag_end];
    let mut declarations = String::new();
    for ns in encrypted.namespaces() {
        let attribute = match ns.name() {
            Some("xml") => continue,
            Some(prefix) => format!("xmlns:{prefix}"),
            None => "xmlns".to_owned(),
        };
        let declared = start_tag
            .match_indices(&attribute)
            .any(|(i, _)| start_tag[i + attribute.len()..].trim_start().starts_with('='));
        if !declared {
            declarations.push_str(&format!(" {attribute}=\"{}\"", xml_attribute_escape(ns.uri())));
        }
    }
    let assertion = format!("{}{declarations}{}", &body[..name_end], &body[name_end..]);
    let doc = PLAINTEXT_READER.parse(&assertion).map_err(|_| failed())?;
    let root = doc.root_element();
    let whole = root.range() == (0..assertion.len());
    if !is(root, ASSERTION_NS, "Assertion") || !whole {
        return Err(failed());
    }
    drop(doc);
    Ok(assertion)
}

fn xml_attribute_escape(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::encrypt::Encrypter;
    use openssl::rsa::Rsa;
    use roxmltree::Document;

    const ASSERTION: &str =
        r#"<saml:Assertion ID="a1" Version="2.0"><saml:Issuer>idp</saml:Issuer></saml:Assertion>"#;

    fn key() -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey")
    }

    /// An EncryptedAssertion of `plaintext` for `key`, with these algorithms.
    fn encrypt(key: &PKey<Private>, transport: &str, content: &str, plaintext: &str) -> String {
        let spec = content_algorithm(content, true).expect("content algorithm");
        let mut content_key = vec![0; spec.key_len];
        let mut iv = vec![0; spec.iv_len];
        openssl::rand::rand_bytes(&mut content_key).expect("rand");
        openssl::rand::rand_bytes(&mut iv).expect("rand");
        let mut data = iv.clone();
        if spec.gcm {
            let mut tag = [0; 16];
            let ct = openssl::symm::encrypt_aead(
                spec.cipher,
                &content_key,
                Some(&iv),
                &[],
                plaintext.as_bytes(),
                &mut tag,
            )
            .expect("gcm");
            data.extend(ct);
            data.extend(tag);
        } else {
            let ct = openssl::symm::encrypt(spec.cipher, &content_key, Some(&iv), plaintext.as_bytes())
                .expect("cbc");
            data.extend(ct);
        }
        let mut encrypter = Encrypter::new(key).expect("encrypter");
        if transport.ends_with("rsa-1_5") {
            encrypter.set_rsa_padding(Padding::PKCS1).expect("padding");
        } else {
            encrypter.set_rsa_padding(Padding::PKCS1_OAEP).expect("padding");
            encrypter.set_rsa_oaep_md(MessageDigest::sha1()).expect("md");
        }
        let mut wrapped = vec![0; encrypter.encrypt_len(&content_key).expect("len")];
        let n = encrypter.encrypt(&content_key, &mut wrapped).expect("wrap");
        wrapped.truncate(n);
        format!(
            r#"<saml:EncryptedAssertion xmlns:saml="{ASSERTION_NS}"><xenc:EncryptedData xmlns:xenc="{XENC_NS}" Type="{ELEMENT_TYPE}"><xenc:EncryptionMethod Algorithm="{content}"/><ds:KeyInfo xmlns:ds="{DSIG_NS}"><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="{transport}"/><xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></saml:EncryptedAssertion>"#,
            Base64::encode_string(&wrapped),
            Base64::encode_string(&data)
        )
    }

    fn run(xml: &str, decryption: &Decryption) -> Result<String, SamlError> {
        let doc = Document::parse(xml).expect("well-formed");
        decrypt(doc.root_element(), decryption, 1 << 20)
    }

    const OAEP: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
    const V15: &str = "http://www.w3.org/2001/04/xmlenc#rsa-1_5";
    const TDES: &str = "http://www.w3.org/2001/04/xmlenc#tripledes-cbc";

    #[test]
    fn every_supported_algorithm_decrypts_and_tampering_fails_alike() {
        let sp = key();
        let decryption = Decryption {
            key: sp.clone(),
            required: false,
            allow_3des: false,
        };
        for transport in [OAEP, V15] {
            for content in [
                "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
                "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
                "http://www.w3.org/2009/xmlenc11#aes128-gcm",
                "http://www.w3.org/2009/xmlenc11#aes256-gcm",
            ] {
                let xml = encrypt(&sp, transport, content, ASSERTION);
                let plain = run(&xml, &decryption).expect(content);
                // The prefix declared on the EncryptedAssertion is carried over.
                assert!(
                    plain.starts_with(&format!(r#"<saml:Assertion xmlns:saml="{ASSERTION_NS}""#)),
                    "{plain}"
                );
                // Another SP's key.
                let other = Decryption {
                    key: key(),
                    required: false,
                    allow_3des: false,
                };
                assert_eq!(run(&xml, &other), Err(failed()), "{transport} {content}");
            }
        }
        // A flipped bit in GCM content: the tag refuses it.
        let xml = encrypt(&sp, OAEP, "http://www.w3.org/2009/xmlenc11#aes128-gcm", ASSERTION);
        let value_start = xml.rfind("<xenc:CipherValue>").expect("value") + "<xenc:CipherValue>".len();
        let mut data = Base64::decode_vec(&xml[value_start..xml.rfind("</xenc:CipherValue>").expect("end")])
            .expect("base64");
        data[20] ^= 1;
        let tampered = format!(
            "{}{}{}",
            &xml[..value_start],
            Base64::encode_string(&data),
            &xml[xml.rfind("</xenc:CipherValue>").expect("end")..]
        );
        assert_eq!(run(&tampered, &decryption), Err(failed()));
    }

    #[test]
    fn key_counts_and_remote_ciphertexts_are_bounded() {
        let sp = key();
        let decryption = Decryption {
            key: sp.clone(),
            required: false,
            allow_3des: false,
        };
        let xml = encrypt(
            &sp,
            OAEP,
            "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
            ASSERTION,
        );
        let start = xml.find("<xenc:EncryptedKey>").expect("key");
        let end = xml.find("</xenc:EncryptedKey>").expect("end") + "</xenc:EncryptedKey>".len();
        let one = &xml[start..end];
        let many = xml.replacen(one, &one.repeat(MAX_ENCRYPTED_KEYS + 1), 1);
        assert!(matches!(run(&many, &decryption), Err(SamlError::Malformed(_))));
        // As many as allowed, the good one last: tried in turn.
        let bad = one.replacen("<xenc:CipherValue>", "<xenc:CipherValue>AAAA", 1);
        let several = xml.replacen(one, &format!("{}{one}", bad.repeat(MAX_ENCRYPTED_KEYS - 1)), 1);
        assert!(run(&several, &decryption).is_ok());
        let remote = xml.replacen(
            "<xenc:CipherData><xenc:CipherValue>",
            r#"<xenc:CipherData><xenc:CipherReference URI="http://evil.test/"/><xenc:CipherValue>"#,
            1,
        );
        assert!(matches!(run(&remote, &decryption), Err(SamlError::Malformed(_))));
    }

    #[test]
    fn triple_des_only_when_allowed_and_plaintext_must_be_one_assertion() {
        let sp = key();
        let strict = Decryption {
            key: sp.clone(),
            required: false,
            allow_3des: false,
        };
        let xml = encrypt(&sp, OAEP, TDES, ASSERTION);
        assert_eq!(
            run(&xml, &strict),
            Err(SamlError::Decryption(DecryptionError::Algorithm(TDES.into())))
        );
        let lax = Decryption {
            key: sp.clone(),
            required: false,
            allow_3des: true,
        };
        assert!(run(&xml, &lax).is_ok());
        for bad in [
            format!("{ASSERTION}{ASSERTION}"),
            format!("<saml:Response xmlns:saml=\"{ASSERTION_NS}\"/>"),
            "<!DOCTYPE x><x/>".to_owned(),
            "not xml".to_owned(),
        ] {
            let xml = encrypt(&sp, OAEP, "http://www.w3.org/2001/04/xmlenc#aes128-cbc", &bad);
            assert_eq!(run(&xml, &strict), Err(failed()), "{bad}");
        }
    }
}
