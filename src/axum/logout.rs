//! `POST logout`: the session ends here, then the browser goes on to the module's
//! configured logout redirect, the provider's logout (OIDC RP-initiated logout with
//! `id_token_hint`, CAS `/logout?service=`) when `provider_logout_return` is set, or
//! `after_logout`.
//!
//! `POST backchannel-logout/{module}`: OpenID Connect Back-Channel Logout, the
//! provider's signed logout token ends the sessions of its `sid` (or of its `sub`).

use ::axum::Json;
use ::axum::response::{IntoResponse, Redirect, Response};
use http::request::Parts;
use http::{HeaderValue, header};

use crate::flow::FlowCookie;

use super::WebAuth;
use super::csrf::check_same_origin;
use super::error::wants_json;
use super::routes::Context;
use super::session::SessionUser;

/// The provider's logout for a user signed in through `module`, when
/// `provider_logout_return` is set and the module has one: the URL, and for SAML
/// the flow cookie of the pending LogoutRequest.
async fn provider_logout(web: &WebAuth, user: Option<&SessionUser>) -> Option<(String, Option<FlowCookie>)> {
    let back = web.settings().provider_logout_return.as_deref()?;
    let module = user.map(|u| u.module.as_str()).unwrap_or_default();
    #[cfg(feature = "oidc")]
    if let Some(oidc) = web.chain().module::<crate::modules::OidcModule>(module) {
        let hint = user.and_then(|u| u.provider_session.id_token.as_deref());
        // The local session is over either way; an unreachable provider only
        // skips its logout.
        return match oidc.end_session_url(Some(back), hint).await {
            Ok(url) => url.map(|u| (u, None)),
            Err(err) => {
                tracing::warn!(module, error = %err, "provider logout skipped");
                None
            }
        };
    }
    #[cfg(feature = "cas")]
    if let Some(cas) = web.chain().module::<crate::modules::CasModule>(module) {
        return Some((cas.logout_url(Some(back)), None));
    }
    #[cfg(feature = "saml")]
    if let (Some(saml), Some(user)) = (web.chain().module::<crate::modules::SamlModule>(module), user) {
        let session = &user.provider_session;
        return match saml
            .logout_request(
                &user.subject,
                session.name_id_format.as_deref(),
                session.session_id.as_deref(),
            )
            .await
        {
            Ok(request) => request.map(|r| (r.location, r.flow_cookie)),
            Err(err) => {
                tracing::warn!(module, error = %err, "provider logout skipped");
                None
            }
        };
    }
    let _ = (back, module, user);
    None
}

pub(crate) async fn logout(parts: Parts) -> Response {
    let context = match Context::of(parts) {
        Ok(context) => context,
        Err(response) => return *response,
    };
    if let Err(err) = check_same_origin(&context.parts.headers) {
        return context.fail(err);
    }
    let user = match context.web.end_session(&context.session).await {
        Ok(user) => user,
        Err(err) => return context.fail(err),
    };
    let settings = context.web.settings();
    let module = user.as_ref().map(|u| u.module.as_str()).unwrap_or_default();
    let (target, flow_cookie) = match settings.logout_redirects.get(module) {
        Some(configured) => Some((configured.clone(), None)),
        None => provider_logout(&context.web, user.as_ref()).await,
    }
    .unwrap_or_else(|| (settings.after_logout.clone(), None));
    let mut response = if wants_json(&context.parts.headers) {
        Json(serde_json::json!({ "signed_out": true, "redirect": target })).into_response()
    } else {
        Redirect::to(&target).into_response()
    };
    if let Some(cookie) = flow_cookie.and_then(|flow| HeaderValue::try_from(flow.set_cookie()).ok()) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `POST backchannel-logout/{module}`: the OIDC provider's logout token (form
/// member `logout_token`). 200 when verified (whether or not a session was still
/// there), 400 with a JSON `error` when refused, as Back-Channel Logout §2.8 asks.
pub(crate) async fn backchannel_logout(request: ::axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let context = match Context::of(parts) {
        Ok(context) => context,
        Err(response) => return *response,
    };
    let module = super::routes::module_id(&context.parts);
    #[cfg(feature = "oidc")]
    if let Some(oidc) = context.web.chain().module::<crate::modules::OidcModule>(&module) {
        let request = ::axum::extract::Request::from_parts(context.parts.clone(), body);
        return backchannel(&context, oidc, request).await;
    }
    let _ = body;
    context.fail(super::WebError::NoSuchModule(module))
}

#[cfg(feature = "oidc")]
async fn backchannel(
    context: &Context,
    oidc: &crate::modules::OidcModule,
    request: ::axum::extract::Request,
) -> Response {
    use ::axum::extract::FromRequest;
    use http::{StatusCode, header};

    use super::WebError;
    use crate::AuthError;

    #[derive(serde::Deserialize)]
    struct Body {
        logout_token: String,
    }
    let refuse = |err: &WebError| {
        let status = match err {
            WebError::Auth(AuthError::Rejected { .. } | AuthError::InvalidRequest(_))
            | WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            other => other.status_code(),
        };
        (
            status,
            [(header::CACHE_CONTROL, "no-store")],
            Json(serde_json::json!({ "error": err.code() })),
        )
            .into_response()
    };
    let token = match ::axum::Form::<Body>::from_request(request, &()).await {
        Ok(::axum::Form(body)) if body.logout_token.len() <= crate::jose::jws::MAX_JWS_BYTES => {
            body.logout_token
        }
        Ok(_) => return refuse(&WebError::BadRequest("logout token too long".into())),
        Err(err) => return refuse(&WebError::BadRequest(err.body_text())),
    };
    let verified = match oidc.verify_logout_token(&token).await {
        Ok(verified) => verified,
        Err(err) => return refuse(&WebError::Auth(err)),
    };
    let module = crate::Authenticator::id(oidc);
    match context
        .web
        .end_provider_sessions(
            module,
            verified.subject.as_deref(),
            verified.session_id.as_deref(),
        )
        .await
    {
        Ok(ended) => {
            tracing::info!(target: crate::audit::AUDIT_TARGET, module, ended, "back-channel logout");
            (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response()
        }
        Err(err) => refuse(&err),
    }
}

/// A SAML single logout message at the module's callback URL (HTTP-Redirect, so a
/// GET with `SAMLRequest` or `SAMLResponse`): the IdP's LogoutResponse completes
/// this browser's logout (then `after_logout`); its LogoutRequest ends the sessions
/// of that NameID (of those session indexes) and is answered with a
/// LogoutResponse. `None`: not a single logout message of a SAML module.
#[cfg(feature = "saml")]
pub(crate) async fn saml_single_logout(context: &Context, module: &str) -> Option<Response> {
    use crate::modules::saml::SingleLogout;

    if context.parts.method != http::Method::GET {
        return None;
    }
    let saml = context.web.chain().module::<crate::modules::SamlModule>(module)?;
    let query = context.parts.uri.query().unwrap_or_default();
    let is_message = query
        .split('&')
        .any(|p| p.starts_with("SAMLRequest=") || p.starts_with("SAMLResponse="));
    if !is_message {
        return None;
    }
    let cookie = super::routes::cookie(&context.parts.headers, &crate::flow::flow_cookie_name(module));
    let answer = match saml.single_logout(query, cookie.as_deref()).await {
        Ok(answer) => answer,
        Err(err) => return Some(context.fail(super::WebError::Auth(err))),
    };
    let target = match answer {
        SingleLogout::Completed => context.web.settings().after_logout.clone(),
        SingleLogout::Request(request) => {
            let mut ended = Ok(0);
            if request.session_indexes.is_empty() {
                ended = context
                    .web
                    .end_provider_sessions(module, Some(&request.name_id), None)
                    .await;
            }
            for index in &request.session_indexes {
                ended = match ended {
                    Ok(n) => context
                        .web
                        .end_provider_sessions(module, Some(&request.name_id), Some(index))
                        .await
                        .map(|m| n + m),
                    err => err,
                };
            }
            if let Err(err) = &ended {
                tracing::warn!(module, error = %err, "SAML logout: sessions not ended");
            }
            tracing::info!(target: crate::audit::AUDIT_TARGET, module, ended = ended.as_ref().ok(), "SAML IdP-initiated logout");
            match saml.logout_response_url(&request, ended.is_ok()) {
                Ok(url) => url,
                Err(err) => return Some(context.fail(super::WebError::Auth(err))),
            }
        }
    };
    Some(if wants_json(&context.parts.headers) {
        Json(serde_json::json!({ "signed_out": true, "redirect": target })).into_response()
    } else {
        Redirect::to(&target).into_response()
    })
}
