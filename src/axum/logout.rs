//! `POST logout`: the session ends here, then the browser goes on to the module's
//! configured logout redirect, the provider's logout (OIDC RP-initiated logout, CAS
//! `/logout?service=`) when `provider_logout_return` is set, or `after_logout`.

use ::axum::Json;
use ::axum::response::{IntoResponse, Redirect, Response};
use http::request::Parts;

use super::WebAuth;
use super::csrf::check_same_origin;
use super::error::wants_json;
use super::routes::Context;

/// The provider's logout URL for a user signed in through `module`, when
/// `provider_logout_return` is set and the module has one.
async fn provider_logout(web: &WebAuth, module: &str) -> Option<String> {
    let back = web.settings().provider_logout_return.as_deref()?;
    #[cfg(feature = "oidc")]
    if let Some(oidc) = web.chain().module::<crate::modules::OidcModule>(module) {
        // The local session is over either way; an unreachable provider only
        // skips its logout.
        return match oidc.end_session_url(Some(back)).await {
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
    let _ = (back, module);
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
    let module = user.map(|u| u.module).unwrap_or_default();
    let target = match settings.logout_redirects.get(&module) {
        Some(configured) => Some(configured.clone()),
        None => provider_logout(&context.web, &module).await,
    }
    .unwrap_or_else(|| settings.after_logout.clone());
    if wants_json(&context.parts.headers) {
        Json(serde_json::json!({ "signed_out": true, "redirect": target })).into_response()
    } else {
        Redirect::to(&target).into_response()
    }
}
