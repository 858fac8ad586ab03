//! [`CurrentUser`]: the signed-in user of a request, as an axum extractor.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::axum::extract::{FromRequestParts, OptionalFromRequestParts};
use ::axum::response::Response;
use http::request::Parts;
use tower_sessions::Session;

use super::error::{ErrorContext, is_browser};
use super::session::SessionUser;
use super::{WebAuth, WebError};
use crate::AccountId;

/// The signed-in user. As an extractor it refuses requests without one (browsers
/// go to the login page, API clients get 401); `Option<CurrentUser>` is `None`
/// instead. Either needs [`WebAuth::mount`] around the route.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct CurrentUser {
    /// The account.
    pub account_id: AccountId,
    /// Its login name.
    pub login: String,
    /// Its email address, if known.
    pub email: Option<String>,
    /// Its roles, as of the last revalidation.
    pub roles: BTreeSet<String>,
    /// The module that signed it in.
    pub module: String,
    /// When it signed in.
    #[serde(skip)]
    pub authenticated_at: SystemTime,
}

impl CurrentUser {
    /// Whether the user holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains(role)
    }
}

impl From<SessionUser> for CurrentUser {
    fn from(user: SessionUser) -> Self {
        CurrentUser {
            account_id: AccountId::from(user.account_id),
            login: user.login,
            email: user.email,
            roles: user.roles,
            module: user.module,
            authenticated_at: UNIX_EPOCH + Duration::from_millis(user.auth_time),
        }
    }
}

impl WebAuth {
    /// The response for `err` on a request with these parts (the login page with
    /// the request's path as `return_to`).
    pub(crate) fn render(&self, err: &WebError, parts: &Parts) -> Response {
        let mut login_page = self.login_path();
        let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let is_own_route = path.starts_with(&format!("{}/", self.settings().prefix));
        if parts.method == http::Method::GET && !is_own_route {
            login_page.push_str("?return_to=");
            login_page.push_str(&super::routes::percent_encode(path));
        }
        let context = ErrorContext {
            browser: is_browser(&parts.headers),
            login_page,
        };
        (self.inner.renderer)(err, &context)
    }

    /// The session's user, for the extractors and guards.
    pub(crate) async fn user_of(&self, parts: &Parts) -> Result<Option<CurrentUser>, Response> {
        let session = parts
            .extensions
            .get::<Session>()
            .ok_or_else(|| self.render(&WebError::Session("no session layer".into()), parts))?;
        match self.session_user(session).await {
            Ok(user) => Ok(user.map(CurrentUser::from)),
            Err(err) => Err(self.render(&err, parts)),
        }
    }
}

/// The [`WebAuth`] that [`WebAuth::mount`] put in the extensions, else the 500 that
/// says it is missing.
pub(crate) fn web_auth(parts: &Parts) -> Result<WebAuth, Box<Response>> {
    parts.extensions.get::<WebAuth>().cloned().ok_or_else(|| {
        use ::axum::response::IntoResponse;
        Box::new(
            (
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "authchain: the route is not inside WebAuth::mount",
            )
                .into_response(),
        )
    })
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let web = web_auth(parts).map_err(|r| *r)?;
        match web.user_of(parts).await? {
            Some(user) => Ok(user),
            None => Err(web.render(&WebError::NotSignedIn, parts)),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for CurrentUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        let web = web_auth(parts).map_err(|r| *r)?;
        web.user_of(parts).await
    }
}
