//! The sign-in routes [`WebAuth::mount`](super::WebAuth::mount) puts under the prefix.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

use ::axum::extract::{ConnectInfo, FromRequest, Query, Request};
use ::axum::response::{Html, IntoResponse, Redirect, Response};
use ::axum::routing::{get, post};
use ::axum::{Form, Json, Router};
use http::request::Parts;
use http::{HeaderValue, header};
use tower_sessions::Session;

use super::csrf::check_same_origin;
use super::error::{is_browser, message, wants_json};
use super::extract::web_auth;
use super::{CurrentUser, WebAuth, WebError};
use crate::flow::{CookieAttributes, FlowCookie, SameSite, flow_cookie_name};
use crate::{AuthError, AuthRequest, Credentials, LoginResult, ModuleKind, StartLogin};

pub(crate) fn router() -> Router {
    Router::new()
        .route("/login", get(login_page).post(password_login))
        .route("/login/{module}", get(module_login))
        .route("/callback/{module}", get(callback).post(callback))
        .route("/metadata/{module}", get(metadata))
        .route("/logout", post(super::logout::logout))
        .route(
            "/backchannel-logout/{module}",
            post(super::logout::backchannel_logout),
        )
}

/// What every route needs: the integration, the session, the request's parts.
pub(crate) struct Context {
    pub(crate) web: WebAuth,
    pub(crate) session: Session,
    pub(crate) parts: Parts,
}

impl Context {
    pub(crate) fn of(parts: Parts) -> Result<Context, Box<Response>> {
        let web = web_auth(&parts)?;
        let session = parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or_else(|| Box::new(web.render(&WebError::Session("no session layer".into()), &parts)))?;
        Ok(Context { web, session, parts })
    }

    pub(crate) fn fail(&self, err: WebError) -> Response {
        self.web.render(&err, &self.parts)
    }

    /// An [`AuthRequest`] from the client's address and headers.
    fn auth_request(&self, credentials: Credentials) -> Result<AuthRequest, WebError> {
        let peer = self
            .parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| *peer)
            .ok_or_else(|| {
                WebError::Auth(AuthError::Misconfigured(
                    "serve the app with into_make_service_with_connect_info::<SocketAddr>()".into(),
                ))
            })?;
        Ok(AuthRequest::new(peer)
            .with_headers(self.parts.headers.clone())
            .with_credentials(credentials))
    }

    fn query(&self) -> BTreeMap<String, String> {
        Query::<BTreeMap<String, String>>::try_from_uri(&self.parts.uri)
            .map(|Query(q)| q)
            .unwrap_or_default()
    }

    /// A return-to URL the settings accept, else none.
    fn return_to(&self, wanted: Option<String>) -> Option<String> {
        wanted.filter(|url| self.web.settings().return_to.check(url).is_ok())
    }

    /// Ends a login: a session for a principal, a redirect (with its flow cookie) for
    /// a provider, the error page otherwise.
    async fn finish(&self, result: Result<LoginResult, AuthError>, return_to: Option<String>) -> Response {
        match result {
            Ok(LoginResult::Authenticated(principal)) => {
                if let Err(err) = self.web.start_session(&self.session, &principal).await {
                    return self.fail(err);
                }
                let target = self
                    .return_to(principal.return_to.clone().or(return_to))
                    .unwrap_or_else(|| self.web.settings().after_login.clone());
                if wants_json(&self.parts.headers) {
                    let user = self.web.session_user(&self.session).await.ok().flatten();
                    Json(user.map(CurrentUser::from)).into_response()
                } else {
                    Redirect::to(&target).into_response()
                }
            }
            Ok(LoginResult::Redirect(redirect)) => {
                let mut response = Redirect::to(&redirect.location).into_response();
                if let Some(cookie) = redirect
                    .flow_cookie
                    .and_then(|flow| HeaderValue::try_from(flow.set_cookie()).ok())
                {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
                response
            }
            Err(err) => self.fail(WebError::Auth(err)),
        }
    }
}

/// `GET login`: the visible modules as JSON for API clients, else the built-in page.
async fn login_page(parts: Parts) -> Response {
    let context = match Context::of(parts) {
        Ok(context) => context,
        Err(response) => return *response,
    };
    let modules = context.web.chain().visible_modules();
    if !is_browser(&context.parts.headers) {
        return Json(serde_json::json!({ "modules": modules })).into_response();
    }
    let query = context.query();
    let prefix = &context.web.settings().prefix;
    let return_to = context.return_to(query.get("return_to").cloned());
    let hidden_return_to = return_to
        .as_deref()
        .map(|r| format!("<input type=hidden name=return_to value=\"{}\">", escape(r)))
        .unwrap_or_default();
    let link_return_to = return_to
        .as_deref()
        .map(|r| format!("?return_to={}", percent_encode(r)))
        .unwrap_or_default();
    let mut page = String::from(
        "<!doctype html><meta charset=utf-8><title>Sign in</title>\
         <style>body{font-family:sans-serif;max-width:28em;margin:3em auto}form,p{margin:1em 0}</style><h1>Sign in</h1>",
    );
    if let Ok(Some(user)) = context.web.session_user(&context.session).await {
        let _ = write!(
            page,
            "<p id=who>Signed in as {} via {}.</p><form method=post action=\"{prefix}/logout\">\
             <button type=submit id=logout>Sign out</button></form>",
            escape(&user.login),
            escape(&user.module)
        );
    }
    if let Some(code) = query.get("error") {
        let _ = write!(page, "<p role=alert id=error>{}</p>", escape(message(code)));
    }
    for module in modules {
        let id = escape(&module.id);
        let label = escape(&module.description);
        let _ = match module.kind {
            ModuleKind::Password => write!(
                page,
                "<form method=post action=\"{prefix}/login\" id=\"form-{id}\"><input type=hidden name=module value=\"{id}\">{hidden_return_to}\
                 <input name=login placeholder=login autocomplete=username> \
                 <input name=password type=password placeholder=password autocomplete=current-password> \
                 <button type=submit>{label}</button></form>"
            ),
            _ => write!(
                page,
                "<p><a id=\"login-{id}\" href=\"{prefix}/login/{}{link_return_to}\">{label}</a></p>",
                percent_encode(&module.id)
            ),
        };
    }
    Html(page).into_response()
}

#[derive(serde::Deserialize)]
struct PasswordLogin {
    module: Option<String>,
    login: String,
    password: String,
    return_to: Option<String>,
}

/// `POST login`: a password login from a form or a JSON body.
async fn password_login(request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let context = match Context::of(parts) {
        Ok(context) => context,
        Err(response) => return *response,
    };
    if let Err(err) = check_same_origin(&context.parts.headers) {
        return context.fail(err);
    }
    let request = Request::from_parts(context.parts.clone(), body);
    let is_json = context
        .parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let form = if is_json {
        Json::<PasswordLogin>::from_request(request, &())
            .await
            .map(|Json(f)| f)
            .map_err(|e| e.body_text())
    } else {
        Form::<PasswordLogin>::from_request(request, &())
            .await
            .map(|Form(f)| f)
            .map_err(|e| e.body_text())
    };
    let form = match form {
        Ok(form) => form,
        Err(reason) => return context.fail(WebError::BadRequest(reason)),
    };
    let mut request = match context.auth_request(Credentials::None) {
        Ok(request) => request.with_password(form.login, form.password),
        Err(err) => return context.fail(err),
    };
    request.module = form.module.filter(|m| !m.is_empty());
    let result = context.web.chain().login(&request).await;
    context.finish(result, form.return_to).await
}

/// `GET login/{module}`: starts a redirect login, or runs an ambient module.
async fn module_login(parts: Parts) -> Response {
    let context = match Context::of(parts) {
        Ok(context) => context,
        Err(response) => return *response,
    };
    let module = module_id(&context.parts);
    let query = context.query();
    let redirects = context
        .web
        .chain()
        .visible_modules()
        .iter()
        .any(|m| m.id == module && m.kind == ModuleKind::Redirect);
    let return_to = context.return_to(query.get("return_to").cloned());
    let credentials = if redirects {
        let mut start = StartLogin::new();
        start.return_to = return_to.clone();
        start.login_hint = query.get("login_hint").cloned();
        Credentials::Start(start)
    } else {
        Credentials::None
    };
    let request = match context.auth_request(credentials) {
        Ok(request) => request.select(module),
        Err(err) => return context.fail(err),
    };
    let result = context.web.chain().login(&request).await;
    context.finish(result, return_to).await
}

/// `GET|POST callback/{module}`: the provider's answer, in the query or (SAML
/// HTTP-POST) in the form body.
async fn callback(request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let context = match Context::of(parts) {
        Ok(context) => context,
        Err(response) => return *response,
    };
    let module = module_id(&context.parts);
    #[cfg(feature = "saml")]
    if let Some(mut response) = super::logout::saml_single_logout(&context, &module).await {
        clear_flow_cookie(&context, &module, &mut response);
        return response;
    }
    let params = if context.parts.method == http::Method::POST {
        let request = Request::from_parts(context.parts.clone(), body);
        match Form::<BTreeMap<String, String>>::from_request(request, &()).await {
            Ok(Form(params)) => params,
            Err(e) => return context.fail(WebError::BadRequest(e.body_text())),
        }
    } else {
        context.query()
    };
    let cookie_name = flow_cookie_name(&module);
    let flow_cookie = cookie(&context.parts.headers, &cookie_name);
    let mut request = match context.auth_request(Credentials::Callback { params }) {
        Ok(request) => request.select(module.clone()),
        Err(err) => return context.fail(err),
    };
    request.flow_cookie = flow_cookie;
    let result = context.web.chain().login(&request).await;
    let mut response = context.finish(result, None).await;
    // The flow is used up either way.
    clear_flow_cookie(&context, &module, &mut response);
    response
}

fn clear_flow_cookie(context: &Context, module: &str, response: &mut Response) {
    let attributes = CookieAttributes {
        path: context.parts.uri.path().to_owned(),
        same_site: SameSite::Lax,
        secure: !context.web.settings().insecure_http_cookies,
    };
    if let Ok(clear) = HeaderValue::try_from(FlowCookie::clear_cookie(&flow_cookie_name(module), &attributes))
    {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
}

/// `GET metadata/{module}`: a SAML module's SP metadata.
async fn metadata(parts: Parts) -> Response {
    let context = match Context::of(parts) {
        Ok(context) => context,
        Err(response) => return *response,
    };
    let module = module_id(&context.parts);
    #[cfg(feature = "saml")]
    if let Some(saml) = context.web.chain().module::<crate::modules::SamlModule>(&module) {
        return (
            [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
            saml.sp_metadata_xml().to_owned(),
        )
            .into_response();
    }
    context.fail(WebError::NoSuchModule(module))
}

/// The `{module}` path segment (the last one).
pub(crate) fn module_id(parts: &Parts) -> String {
    let segment = parts.uri.path().rsplit('/').next().unwrap_or_default();
    percent_decode(segment)
}

/// The value of the cookie `wanted`.
pub(crate) fn cookie(headers: &http::HeaderMap, wanted: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| value.to_owned())
}

/// `text` as one query-string value (RFC 3986 unreserved characters kept).
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
