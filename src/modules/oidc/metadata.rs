//! Provider metadata (discovery) through openidconnect's generic `ProviderMetadata`.
//!
//! openidconnect issue #99: a discovery document listing an algorithm the crate does not know
//! used to fail as a whole. In 4.x every `*_alg_values_supported` / `*_enc_values_supported`
//! list is deserialised skip-on-error (`serde_with::VecSkipError`), so
//! `CoreProviderMetadata` now *drops* unknown names silently. Our type goes one step further:
//! its signing-algorithm type is [`RingJwsAlgorithm`](crate::jose::RingJwsAlgorithm), whose `Other(String)` variant takes any
//! name, so `ES256K` (or `ES512`, `HS256`, ...) is kept and visible, and nothing about the
//! document fails because of an algorithm name. All other enumerated lists use openidconnect's
//! `Core*` types, which already have an `Extension(String)` catch-all.
//!
//! The HTTP fetch stays ours (reqwest 0.12 via `HttpSettings`, with request counting and rate
//! limits): the module only hands the body to serde. openidconnect's own
//! `ProviderMetadata::discover_async` would also work (feature `reqwest`, which uses reqwest
//! 0.12 through oauth2 5), but it compares `issuer` for strict equality with the discovery
//! URL, which the multi-tenant template case cannot satisfy.

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{AdditionalProviderMetadata, ProviderMetadata};
use serde::{Deserialize, Serialize};

use crate::jose::{NoJwe, RingJwk};

/// Members we read that openidconnect's `ProviderMetadata` does not model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExtraProviderMetadata {
    /// RFC 9207; our module uses it for the `iss` callback parameter.
    #[serde(default)]
    pub(crate) authorization_response_iss_parameter_supported: Option<bool>,
    /// RP-initiated logout.
    #[serde(default)]
    pub(crate) end_session_endpoint: Option<String>,
}
impl AdditionalProviderMetadata for ExtraProviderMetadata {}

/// Provider metadata over our key and algorithm types.
pub(crate) type RingProviderMetadata = ProviderMetadata<
    ExtraProviderMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    NoJwe,
    CoreJweKeyManagementAlgorithm,
    RingJwk,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::RingJwsAlgorithm as A;
    use serde_json::{Value, json};

    fn doc() -> Value {
        json!({
            "issuer": "https://issuer.test/realms/main",
            "authorization_endpoint": "https://issuer.test/realms/main/auth",
            "token_endpoint": "https://issuer.test/realms/main/token",
            "userinfo_endpoint": "https://issuer.test/realms/main/userinfo",
            "end_session_endpoint": "https://issuer.test/realms/main/logout",
            "jwks_uri": "https://issuer.test/realms/main/certs",
            "response_types_supported": ["code", "id_token", "code id_token"],
            "subject_types_supported": ["public", "pairwise"],
            "id_token_signing_alg_values_supported": ["PS384", "HS256", "ES256K", "ES256", "RS256", "ES512", "EdDSA", "none"],
            "id_token_encryption_alg_values_supported": ["RSA-OAEP", "ECDH-1PU"],
            "userinfo_signing_alg_values_supported": ["ES256K", "RS256", "none"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic", "tls_client_auth"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256K", "RS256"],
            "grant_types_supported": ["authorization_code", "urn:openid:params:grant-type:ciba"],
            "response_modes_supported": ["query", "form_post", "query.jwt"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "authorization_response_iss_parameter_supported": true,
            "dpop_signing_alg_values_supported": ["ES256K", "ES256"]
        })
    }

    #[test]
    fn unknown_algorithms_are_kept_not_fatal() {
        let m: RingProviderMetadata = serde_json::from_value(doc()).expect("metadata");
        let algs = m.id_token_signing_alg_values_supported();
        assert_eq!(algs.len(), 8, "{algs:?}");
        assert!(algs.contains(&A::RS256) && algs.contains(&A::EdDSA));
        assert!(algs.contains(&A::Other("ES256K".into())), "{algs:?}");
        assert!(algs.contains(&A::Other("none".into())));
        let userinfo = m.userinfo_signing_alg_values_supported().expect("userinfo algs");
        assert!(userinfo.contains(&A::Other("ES256K".into())));
        assert_eq!(m.jwks_uri().as_str(), "https://issuer.test/realms/main/certs");
        assert_eq!(
            m.additional_metadata()
                .authorization_response_iss_parameter_supported,
            Some(true)
        );

        // A provider that signs only with an algorithm this crate lacks still parses.
        let mut only = doc();
        only["id_token_signing_alg_values_supported"] = json!(["ES256K"]);
        let m: RingProviderMetadata = serde_json::from_value(only).expect("metadata");
        assert_eq!(
            m.id_token_signing_alg_values_supported(),
            &vec![A::Other("ES256K".into())]
        );
    }

    #[test]
    fn missing_required_members_fail() {
        for member in [
            "jwks_uri",
            "authorization_endpoint",
            "response_types_supported",
            "subject_types_supported",
        ] {
            let mut d = doc();
            d.as_object_mut().unwrap().remove(member);
            assert!(
                serde_json::from_value::<RingProviderMetadata>(d).is_err(),
                "{member}"
            );
        }
    }
}
