//! CAS login (Apereo CAS protocol 2 and 3): redirect to the CAS server's login page
//! with the service URL, then validate the returned service ticket at
//! `p3/serviceValidate` (CAS 3, the default) or `serviceValidate` (CAS 2).
//!
//! * The flow: CAS has no `state` parameter, so the pending flow's state travels in
//!   the service URL itself, as one more query parameter (`flow` by default):
//!   `https://app.example.org/login/cas/callback?flow=<state>`. The CAS server sends
//!   the browser back to that URL with `ticket=ST-...` added; the callback takes the
//!   flow once (cookie-bound, expiring, like every redirect login) and validates the
//!   ticket with the service URL rebuilt from the configured `service_url` and the
//!   flow's state: exactly the URL the ticket was issued for. A CAS server that
//!   compares service URLs whole (Apereo's default) thereby also binds the ticket to
//!   the flow.
//! * A callback costs exactly one HTTP request (the validation). The answer is read
//!   with a real XML parser (see [`response`]): no DTD, namespace-aware, bounded.
//! * Tickets are never logged.
//!
//! Every setting is described in `docs/modules/cas.md`.

mod error;
pub mod response;
mod settings;

use std::collections::BTreeMap;

use tracing::warn;

pub use error::CasError;
use response::{CasUser, ValidationResponse};
pub use settings::CasSettings;

use crate::audit::AUDIT_TARGET;
use crate::error::RequestError;
use crate::flow::http::{HttpClient, Purpose};
use crate::flow::{CookieAttributes, HttpError, SameSite};
use crate::flow::{FlowError, Flows, ProviderRequests, redirect_authenticator};
use crate::{AuthError, AuthRequest, ConfigError, Identity, Outcome, Redirect};

/// Default login path, relative to the server URL.
pub const DEFAULT_LOGIN_PATH: &str = "/login";
/// Default validation path (CAS 3; `/serviceValidate` for CAS 2).
pub const DEFAULT_VALIDATE_PATH: &str = "/p3/serviceValidate";
/// Longest accepted ticket, in bytes (the protocol recommends accepting 256).
pub const MAX_TICKET_BYTES: usize = 1024;
/// Most groups taken from the groups attribute.
const MAX_GROUPS: usize = 4096;

/// The CAS module. Build it with [`CasModule::new`] from [`CasSettings`].
pub struct CasModule {
    id: crate::ModuleId,
    login_url: url::Url,
    logout_url: url::Url,
    validate_url: url::Url,
    service_url: url::Url,
    params: Params,
    names: AttributeNames,
    flows: Flows,
    http: HttpClient,
}

impl std::fmt::Debug for CasModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CasModule")
            .field("id", &self.id)
            .field("login_url", &self.login_url.as_str())
            .field("validate_url", &self.validate_url.as_str())
            .field("service_url", &self.service_url.as_str())
            .finish_non_exhaustive()
    }
}

/// Query parameter names.
#[derive(Debug, Clone)]
struct Params {
    service: String,
    ticket: String,
    flow: String,
}

/// Which CAS attributes become which parts of the [`Identity`].
#[derive(Debug, Clone)]
struct AttributeNames {
    login: Option<String>,
    email: Option<String>,
    name: Option<String>,
    groups: Option<String>,
}

impl CasModule {
    /// Checks `settings` and builds the module `id`. Errors name the key relative
    /// to the module's table (`server_url`, `flow_ttl`, ...).
    pub fn new(id: impl Into<crate::ModuleId>, settings: CasSettings) -> Result<CasModule, ConfigError> {
        let id = id.into();
        let invalid = |key: &str, message: String| ConfigError::invalid(key, message);
        let server = url::Url::parse(settings.server_url.as_str())
            .map_err(|e| invalid("server_url", e.to_string()))?;
        if server.query().is_some() || server.fragment().is_some() {
            return Err(invalid(
                "server_url",
                "must not have a query or a fragment".into(),
            ));
        }
        let login_url = endpoint(&server, &settings.login_path).map_err(|m| invalid("login_path", m))?;
        let validate_url =
            endpoint(&server, &settings.validate_path).map_err(|m| invalid("validate_path", m))?;
        let params = Params {
            service: settings.service_param,
            ticket: settings.ticket_param,
            flow: settings.flow_param,
        };
        let Params {
            service,
            ticket,
            flow,
        } = &params;
        for (field, name) in [
            ("service_param", service),
            ("ticket_param", ticket),
            ("flow_param", flow),
        ] {
            let ok = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
            if !ok {
                return Err(invalid(
                    field,
                    "must be 1 to 64 characters of A-Z, a-z, 0-9, `_`, `-`, `.`".into(),
                ));
            }
        }
        if service == ticket || flow == ticket || flow == service {
            return Err(invalid(
                "flow_param",
                "service_param, ticket_param and flow_param must differ".into(),
            ));
        }
        let service_url = url::Url::parse(settings.service_url.as_str())
            .map_err(|e| invalid("service_url", e.to_string()))?;
        if service_url.fragment().is_some() {
            return Err(invalid("service_url", "must not have a fragment".into()));
        }
        if service_url.query_pairs().any(|(k, _)| k == *ticket || k == *flow) {
            return Err(invalid(
                "service_url",
                format!("must not already carry the `{ticket}` or `{flow}` parameter"),
            ));
        }
        let http = settings.http.client(&id, str::to_owned)?;
        let flows = settings.flow.build(CookieAttributes::for_callback(
            service_url.as_str(),
            SameSite::Lax,
        ))?;
        let logout_url = endpoint(&server, "logout").map_err(|m| invalid("server_url", m))?;
        Ok(CasModule {
            login_url,
            logout_url,
            validate_url,
            service_url,
            params,
            names: AttributeNames {
                login: settings.login_attribute,
                email: settings.email_attribute,
                name: settings.name_attribute,
                groups: settings.groups_attribute,
            },
            flows,
            http,
            id,
        })
    }
}

/// `server` followed by `path` (one `/` between them), checked like the server URL.
fn endpoint(server: &url::Url, path: &str) -> Result<url::Url, String> {
    if path.is_empty()
        || path.starts_with("//")
        || path.contains("://")
        || path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "?#\\".contains(c))
    {
        return Err(format!(
            "{path:?} must be a path relative to server_url, without query, fragment, white space or backslash"
        ));
    }
    let joined = format!(
        "{}/{}",
        server.as_str().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    let url = url::Url::parse(&joined).map_err(|e| format!("{joined:?} is not a URL: {e}"))?;
    if url.origin() != server.origin() {
        return Err(format!("{path:?} leaves the server"));
    }
    Ok(url)
}

impl CasModule {
    /// The server's logout URL (`<server_url>/logout`, with `service=` when given:
    /// where the server may send the browser afterwards).
    pub fn logout_url(&self, service: Option<&str>) -> String {
        let mut url = self.logout_url.clone();
        if let Some(service) = service {
            url.query_pairs_mut().append_pair("service", service);
        }
        url.into()
    }

    /// HTTP requests sent to the CAS server so far (`validation` counts them).
    pub fn requests(&self) -> ProviderRequests {
        self.http.requests()
    }

    /// The service URL of the flow with this state: the configured service URL plus
    /// the flow parameter. Used at start and, identically, at validation.
    fn service_for(&self, state: &str) -> String {
        let mut url = self.service_url.clone();
        url.query_pairs_mut().append_pair(&self.params.flow, state);
        url.into()
    }

    async fn start(&self, start: &crate::StartLogin) -> Result<Outcome, AuthError> {
        let started = self.flows.start(&self.id, start).await?;
        let mut location = self.login_url.clone();
        location
            .query_pairs_mut()
            .append_pair(&self.params.service, &self.service_for(&started.flow.state));
        Ok(Outcome::Redirect(Redirect {
            location: location.into(),
            flow_cookie: Some(started.cookie),
        }))
    }

    async fn callback(
        &self,
        request: &AuthRequest,
        params: &BTreeMap<String, String>,
    ) -> Result<Outcome, AuthError> {
        // Not a CAS return, or not one of ours: another module's.
        let (Some(ticket), Some(state)) = (params.get(&self.params.ticket), params.get(&self.params.flow))
        else {
            return Ok(Outcome::Abstain);
        };
        let flow = match self
            .flows
            .take(&self.id, state, request.flow_cookie.as_deref())
            .await
        {
            Ok(flow) => flow,
            Err(FlowError::Unknown | FlowError::OtherModule) => return Ok(Outcome::Abstain),
            Err(err) => {
                warn!(target: AUDIT_TARGET, module = %self.id, reason = %err, "redirect login refused");
                return Err(err.into_auth_error(&self.id));
            }
        };
        if ticket.is_empty()
            || ticket.len() > MAX_TICKET_BYTES
            || !ticket.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(AuthError::invalid_request(RequestError::module(
                self.id.clone(),
                CasError::BadTicket,
            )));
        }
        let user = self.validate(ticket, &self.service_for(&flow.state)).await?;
        let mut identity = self.identity(user);
        identity.return_to = flow.return_to;
        Ok(Outcome::Authenticated(identity))
    }

    /// One validation request; the answer as a user or an error.
    async fn validate(&self, ticket: &str, service: &str) -> Result<CasUser, AuthError> {
        let mut url = self.validate_url.clone();
        url.query_pairs_mut()
            .append_pair(&self.params.service, service)
            .append_pair(&self.params.ticket, ticket);
        let (status, body) = self
            .http
            .get_bytes(Purpose::Validation, url.as_str(), "application/xml, text/xml")
            .await?;
        let answer = response::parse(&body).map_err(|e| {
            if status.is_success() {
                self.http.unavailable(CasError::Malformed(e))
            } else {
                // An error page (a proxy's 502, a wrong validate_path's 404): the
                // status says more than the body.
                self.http.unavailable(HttpError::Status {
                    what: Purpose::Validation.what(),
                    status: status.as_u16(),
                })
            }
        })?;
        match answer {
            ValidationResponse::Success(_) if !status.is_success() => {
                Err(self.http.unavailable(HttpError::Status {
                    what: Purpose::Validation.what(),
                    status: status.as_u16(),
                }))
            }
            ValidationResponse::Success(user) => Ok(user),
            ValidationResponse::Failure { code, .. } => {
                // The description can name the ticket: only the code is kept.
                warn!(target: AUDIT_TARGET, module = %self.id, code = %code, "CAS server refused the ticket");
                Err(match code.as_str() {
                    "INTERNAL_ERROR" => self.http.unavailable(CasError::ServerFailed { code }),
                    _ => AuthError::rejected(self.id.clone(), CasError::Refused { code }),
                })
            }
        }
    }

    fn identity(&self, cas: CasUser) -> Identity {
        let CasUser { user, mut attributes } = cas;
        // `return_to` is the flow's alone: a released attribute must not pose as it.
        attributes.remove("return_to");
        let first = |name: &Option<String>| {
            name.as_ref()
                .and_then(|n| attributes.get(n))
                .and_then(|values| values.first())
                .cloned()
        };
        let login = first(&self.names.login).unwrap_or_else(|| user.clone());
        let mut identity = Identity::new(self.id.clone(), user, login);
        identity.email = first(&self.names.email);
        identity.display_name = first(&self.names.name);
        if let Some(values) = self.names.groups.as_ref().and_then(|n| attributes.get(n)) {
            let mut seen = std::collections::HashSet::new();
            identity.groups = values
                .iter()
                .filter(|g| seen.insert(g.as_str()))
                .take(MAX_GROUPS)
                .cloned()
                .collect();
        }
        identity.attributes = attributes;
        identity
    }
}

redirect_authenticator!(CasModule);
