//! The one trait every module implements, and what a module answers.

use std::any::Any;

use async_trait::async_trait;

use crate::flow::FlowCookie;
use crate::{AuthError, AuthRequest, Identity};

/// An authentication module: turns a request into a verified [`Identity`], abstains,
/// or fails. Implemented by every built-in module, by third-party modules, and by
/// [`AuthChain`](crate::AuthChain) itself (so a chain can sit inside a chain).
///
/// Errors are read by the chain as follows: [`AuthError::Unavailable`] and
/// [`AuthError::Misconfigured`] trigger the module's `on_unavailable` policy (a
/// misconfiguration is also logged as an error and outranks every other failure),
/// [`AuthError::Throttled`] ends the login, anything else is a rejection and
/// triggers `on_reject`.
///
/// `Any` is a supertrait so that a host can reach a module of a built chain by its
/// type ([`AuthChain::module`](crate::AuthChain::module)).
#[async_trait]
pub trait Authenticator: Any + Send + Sync {
    /// The module's id, unique within its chain (`"corp-ldap"`, `"local"`).
    fn id(&self) -> &str;

    /// What kind of interaction the module expects (used to draw login pages).
    fn kind(&self) -> ModuleKind {
        ModuleKind::Custom
    }

    /// Verifies the request.
    async fn authenticate(&self, request: &AuthRequest) -> Result<Outcome, AuthError>;

    /// Verifies the request without waiting, when this module can: a module that
    /// reads only the request (trusted proxy headers) answers here, and the chain
    /// then skips the boxed future of [`authenticate`](Authenticator::authenticate).
    /// `None` (the default): the chain calls `authenticate`. A module that answers
    /// here must answer `authenticate` the same.
    fn authenticate_now(&self, _request: &AuthRequest) -> Option<Result<Outcome, AuthError>> {
        None
    }

    /// Whether a module with this id sits *inside* this one (a nested chain says
    /// yes for its members), so an explicit selection can be routed to it.
    fn contains_module(&self, _id: &str) -> bool {
        false
    }
}

/// What a module answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The request proves this identity.
    Authenticated(Identity),
    /// Send the browser to an identity provider.
    Redirect(Redirect),
    /// Not for this module: the chain asks the next one.
    Abstain,
}

/// A redirect to an identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Redirect {
    /// Where to send the browser.
    pub location: String,
    /// The cookie that binds the pending login to this browser, with the
    /// attributes the module chose (send [`FlowCookie::set_cookie`]).
    pub flow_cookie: Option<FlowCookie>,
}

impl Redirect {
    /// A redirect to `location` setting `flow_cookie`.
    pub fn new(location: impl Into<String>, flow_cookie: Option<FlowCookie>) -> Self {
        Redirect {
            location: location.into(),
            flow_cookie,
        }
    }

    /// The flow cookie's value, the host passes back as
    /// [`AuthRequest::flow_cookie`](crate::AuthRequest::flow_cookie) on the callback.
    pub fn flow_cookie_value(&self) -> Option<&str> {
        self.flow_cookie.as_ref().map(|c| c.value.as_str())
    }
}

/// The interaction a module expects, for drawing login pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ModuleKind {
    /// A login name and password form (local, LDAP).
    Password,
    /// Identity from the request itself (trusted proxy headers).
    Ambient,
    /// A button that redirects to an identity provider (OIDC, OAuth2, SAML, CAS).
    Redirect,
    /// A nested chain.
    Chain,
    /// A third-party module.
    Custom,
}
