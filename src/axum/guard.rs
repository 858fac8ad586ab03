//! Route guards: [`require_login`] and [`require_role`].

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::axum::extract::Request;
use ::axum::response::Response;
use tower::{Layer, Service};

use super::WebError;
use super::extract::web_auth;

/// Requires a signed-in user: browsers are sent to the login page with
/// `return_to`, API clients get 401. The route's handlers then find the user with
/// the [`CurrentUser`](super::CurrentUser) extractor.
pub fn require_login() -> Guard {
    Guard { role: None }
}

/// Requires a signed-in user holding `role`: without a session as
/// [`require_login`], with one but not the role 403.
pub fn require_role(role: impl Into<String>) -> Guard {
    Guard {
        role: Some(Arc::from(role.into())),
    }
}

/// The layer of [`require_login`] and [`require_role`].
#[derive(Debug, Clone)]
pub struct Guard {
    role: Option<Arc<str>>,
}

impl<S> Layer<S> for Guard {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            role: self.role.clone(),
        }
    }
}

/// The service of a [`Guard`].
#[derive(Debug, Clone)]
pub struct GuardService<S> {
    inner: S,
    role: Option<Arc<str>>,
}

impl<S> Service<Request> for GuardService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The clone that was polled ready serves the request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let role = self.role.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let web = match web_auth(&parts) {
                Ok(web) => web,
                Err(response) => return Ok(*response),
            };
            let user = match web.user_of(&parts).await {
                Ok(Some(user)) => user,
                Ok(None) => return Ok(web.render(&WebError::NotSignedIn, &parts)),
                Err(response) => return Ok(response),
            };
            if let Some(role) = role
                && !user.has_role(&role)
            {
                return Ok(web.render(&WebError::MissingRole(role.to_string()), &parts));
            }
            inner.call(Request::from_parts(parts, body)).await
        })
    }
}
