//! IdP metadata fetched from `idp_metadata_url`: refreshed when older than
//! `idp_metadata_refresh` (at the next login that needs it), and when a response's
//! signature does not verify (the IdP may have rolled its key over) — at most once
//! per `idp_metadata_min_refetch`. Concurrent callers wait for one fetch; a fetch
//! that fails, or metadata that is refused (expired, badly signed, another IdP),
//! keeps the last good metadata as long as its own `validUntil` allows.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Mutex;
use tracing::{info, warn};

use super::error::SamlError;
use super::idp::{self, IdpState, MetadataError, MetadataPolicy};
use crate::AuthError;
use crate::audit::AUDIT_TARGET;
use crate::flow::http::{HttpClient, HttpError, Purpose};

/// Default interval of the scheduled refresh.
pub const DEFAULT_METADATA_REFRESH: Duration = Duration::from_secs(3600);
/// Default least interval between two fetches.
pub const DEFAULT_METADATA_MIN_REFETCH: Duration = Duration::from_secs(300);
/// Default cap on a fetched metadata document.
pub const DEFAULT_METADATA_MAX_BYTES: usize = 1024 * 1024;
/// Default timeout of a metadata request.
pub const DEFAULT_METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a refresh happens.
#[derive(Debug, Clone, Copy)]
enum Why {
    /// No usable metadata, or older than the refresh interval.
    Schedule,
    /// A signature did not verify against the metadata `seen`.
    SignatureFailure,
}

/// The metadata of one IdP at a URL, with its fetch bookkeeping.
pub(crate) struct RemoteMetadata {
    module: String,
    url: String,
    client: HttpClient,
    policy: MetadataPolicy,
    /// Refused as well: fetched metadata asking for signed AuthnRequests when this
    /// SP does not sign them.
    signs_requests: bool,
    refresh: Duration,
    min_refetch: Duration,
    /// The last good metadata and when it was fetched.
    current: RwLock<Option<(Arc<IdpState>, Instant)>>,
    /// When the last fetch started (success or not).
    attempt: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for RemoteMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteMetadata")
            .field("url", &self.url)
            .field("refresh", &self.refresh)
            .field("min_refetch", &self.min_refetch)
            .finish_non_exhaustive()
    }
}

impl RemoteMetadata {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        module: &str,
        url: String,
        client: HttpClient,
        policy: MetadataPolicy,
        signs_requests: bool,
        refresh: Duration,
        min_refetch: Duration,
    ) -> RemoteMetadata {
        RemoteMetadata {
            module: module.to_owned(),
            url,
            client,
            policy,
            signs_requests,
            refresh,
            min_refetch,
            current: RwLock::new(None),
            attempt: Mutex::new(None),
        }
    }

    /// The metadata documents fetched so far (successful or not).
    pub(crate) fn requests(&self) -> u64 {
        self.client.requests().metadata
    }

    /// The last good metadata, if it has not expired (no fetch).
    pub(crate) fn current(&self) -> Option<Arc<IdpState>> {
        self.snapshot()
            .map(|(state, _)| state)
            .filter(|state| !state.expired(SystemTime::now()))
    }

    fn snapshot(&self) -> Option<(Arc<IdpState>, Instant)> {
        self.current.read().ok().and_then(|c| c.clone())
    }

    /// The metadata to use now: the last good one while younger than the refresh
    /// interval, else (or when there is none) a fetch, rate limited; a failed fetch
    /// falls back to the last good metadata while it has not expired.
    pub(crate) async fn get(&self) -> Result<Arc<IdpState>, AuthError> {
        if let Some((state, at)) = self.snapshot()
            && at.elapsed() < self.refresh
            && !state.expired(SystemTime::now())
        {
            return Ok(state);
        }
        match self.fetch(Why::Schedule, None).await {
            Ok(Some(state)) => Ok(state),
            Ok(None) => self
                .current()
                .ok_or_else(|| self.unavailable(MetadataError::NotLoaded.into())),
            Err(error) => self.current().ok_or(error),
        }
    }

    /// After a signature failure against `seen`: newer metadata, fetched now (rate
    /// limited) or by another caller meanwhile; `None` when there is none.
    pub(crate) async fn refresh_after_failure(&self, seen: &Arc<IdpState>) -> Option<Arc<IdpState>> {
        match self.fetch(Why::SignatureFailure, Some(seen)).await {
            Ok(Some(state)) if !Arc::ptr_eq(&state, seen) => Some(state),
            _ => None,
        }
    }

    fn unavailable(&self, cause: SamlError) -> AuthError {
        AuthError::unavailable(self.module.clone(), cause)
    }

    /// One fetch, at most once per `min_refetch`. `Ok(None)`: rate limited.
    async fn fetch(
        &self,
        why: Why,
        seen: Option<&Arc<IdpState>>,
    ) -> Result<Option<Arc<IdpState>>, AuthError> {
        let before = self.snapshot().map(|(state, _)| state);
        let mut attempt = self.attempt.lock().await;
        // Another caller fetched while this one waited.
        if let Some((state, at)) = self.snapshot() {
            let changed = match (seen, &before) {
                (Some(seen), _) => !Arc::ptr_eq(&state, seen),
                (None, Some(before)) => !Arc::ptr_eq(&state, before),
                (None, None) => true,
            };
            if changed && at.elapsed() < self.refresh {
                return Ok(Some(state));
            }
        }
        if let Some(last) = *attempt
            && last.elapsed() < self.min_refetch
        {
            return Ok(None);
        }
        *attempt = Some(Instant::now());
        match self.download().await {
            Ok(state) => {
                let state = Arc::new(state);
                if let Ok(mut current) = self.current.write() {
                    *current = Some((state.clone(), Instant::now()));
                }
                info!(target: AUDIT_TARGET, module = %self.module, reason = ?why, "IdP metadata fetched");
                Ok(Some(state))
            }
            Err(error) => {
                warn!(target: AUDIT_TARGET, module = %self.module, reason = %error,
                    "IdP metadata refresh failed; the last good metadata stays in use");
                Err(error)
            }
        }
    }

    /// GET the metadata and check it.
    async fn download(&self) -> Result<IdpState, AuthError> {
        let accept = "application/samlmetadata+xml, application/xml;q=0.9, text/xml;q=0.8";
        let (status, body) = self
            .client
            .get_bytes(Purpose::Metadata, &self.url, accept)
            .await?;
        if !status.is_success() {
            return Err(self.client.unavailable(HttpError::Status {
                what: Purpose::Metadata.what(),
                status: status.as_u16(),
            }));
        }
        let refused = |e: MetadataError| self.unavailable(e.into());
        let text = String::from_utf8(body)
            .map_err(|_| refused(MetadataError::Invalid("the IdP metadata is not UTF-8".into())))?;
        let idp = idp::load(&text, &self.policy, "idp_metadata_url", SystemTime::now()).map_err(refused)?;
        if idp.wants_signed_requests && !self.signs_requests {
            return Err(refused(MetadataError::Invalid(
                "the IdP's metadata asks for signed AuthnRequests (WantAuthnRequestsSigned)".into(),
            )));
        }
        crate::flow::check_url("idp_metadata_url", &idp.sso_url)
            .map_err(|e| refused(MetadataError::Invalid(e.to_string())))?;
        IdpState::new(idp).map_err(|e| refused(MetadataError::Invalid(e)))
    }
}
