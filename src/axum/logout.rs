//! `POST logout`: the session ends here, then the browser goes on to the module's
//! configured logout redirect (a provider's logout URL) or `after_logout`.

use ::axum::Json;
use ::axum::response::{IntoResponse, Redirect, Response};
use http::request::Parts;

use super::csrf::check_same_origin;
use super::error::wants_json;
use super::routes::Context;

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
    let target = user
        .and_then(|u| settings.logout_redirects.get(&u.module).cloned())
        .unwrap_or_else(|| settings.after_logout.clone());
    if wants_json(&context.parts.headers) {
        Json(serde_json::json!({ "signed_out": true, "redirect": target })).into_response()
    } else {
        Redirect::to(&target).into_response()
    }
}
