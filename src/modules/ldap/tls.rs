//! TLS for the LDAP module: the ldap3 connection settings, a rustls configuration
//! that trusts the configured CA bundle (or the system roots), and the
//! `insecure_skip_tls_verify` verifier that accepts any certificate.

use std::sync::Arc;

use ldap3::LdapConnSettings;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tracing::warn;

use super::LdapSettings;
use crate::ConfigError;
use crate::audit::AUDIT_TARGET;

/// The ldap3 settings of every connection: connect timeout, StartTLS, and the TLS
/// configuration when a URL or StartTLS needs one. Errors name `ca_file`,
/// `insecure_skip_tls_verify` or `urls`.
pub(super) fn connection_settings(
    settings: &LdapSettings,
    id: &str,
    needs_tls: bool,
) -> Result<LdapConnSettings, ConfigError> {
    let mut conn = LdapConnSettings::new().set_conn_timeout(settings.connect_timeout);
    if settings.starttls {
        conn = conn.set_starttls(true);
    }
    if settings.insecure_skip_tls_verify {
        if settings.ca_file.is_some() || settings.ca_pem.is_some() {
            return Err(ConfigError::invalid(
                "insecure_skip_tls_verify",
                "contradicts ca_file: certificates are either verified or not",
            ));
        }
        warn!(target: AUDIT_TARGET, module = %id,
            "insecure_skip_tls_verify is on: LDAP server certificates are NOT verified");
        conn = conn.set_no_tls_verify(true).set_config(insecure_tls_config()?);
    } else if needs_tls {
        conn = conn.set_config(tls_config(settings)?);
    }
    Ok(conn)
}

/// A rustls configuration that trusts the configured CA bundle (`ca_pem`, else
/// `ca_file`), or the system roots.
fn tls_config(settings: &LdapSettings) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = match (&settings.ca_pem, &settings.ca_file) {
        (Some(pem), _) => Some(pem.clone()),
        (None, Some(path)) => {
            Some(std::fs::read(path).map_err(|source| ConfigError::io("ca_file", path, source))?)
        }
        (None, None) => None,
    };
    match pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    ConfigError::invalid("ca_file", format!("not a PEM certificate bundle: {e}"))
                })?;
                roots
                    .add(cert)
                    .map_err(|e| ConfigError::invalid("ca_file", format!("unusable CA certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(ConfigError::invalid("ca_file", "holds no certificate"));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                return Err(ConfigError::invalid(
                    "ca_file",
                    "no system CA certificates found: set ca_file",
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::invalid("urls", format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A rustls configuration that accepts any server certificate (still checking the
/// handshake signatures), with the ring provider named explicitly so that it never
/// depends on a process-wide default provider.
fn insecure_tls_config() -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AcceptAnyCertificate(provider.clone()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::invalid("urls", format!("TLS setup failed: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// `insecure_skip_tls_verify`: any certificate chain is accepted.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
