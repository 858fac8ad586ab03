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

use super::WebAuth;
use super::csrf::check_same_origin;
use super::error::wants_json;
use super::routes::Context;
use super::session::SessionUser;

/// The provider's logout URL for a user signed in through `module`, when
/// `provider_logout_return` is set and the module has one.
async fn provider_logout(web: &WebAuth, user: Option<&SessionUser>) -> Option<String> {
    let back = web.settings().provider_logout_return.as_deref()?;
    let module = user.map(|u| u.module.as_str()).unwrap_or_default();
    #[cfg(feature = "oidc")]
    if let Some(oidc) = web.chain().module::<crate::modules::OidcModule>(module) {
        let hint = user.and_then(|u| u.provider_session.id_token.as_deref());
        // The local session is over either way; an unreachable provider only
        // skips its logout.
        return match oidc.end_session_url(Some(back), hint).await {
            Ok(url) => url,
            Err(err) => {
                tracing::warn!(module, error = %err, "provider logout skipped");
                None
            }
        };
    }
    #[cfg(feature = "cas")]
    if let Some(cas) = web.chain().module::<crate::modules::CasModule>(module) {
        return Some(cas.logout_url(Some(back)));
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
    let target = match settings.logout_redirects.get(module) {
        Some(configured) => Some(configured.clone()),
        None => provider_logout(&context.web, user.as_ref()).await,
    }
    .unwrap_or_else(|| settings.after_logout.clone());
    if wants_json(&context.parts.headers) {
        Json(serde_json::json!({ "signed_out": true, "redirect": target })).into_response()
    } else {
        Redirect::to(&target).into_response()
    }
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
