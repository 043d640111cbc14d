//! The REST API: one module per resource. Handlers translate JSON to `keyward_shared::store`
//! calls (writes inside a `WriteTx`) and back; they hold no business rule.

mod api_keys;
mod apps;
mod audit;
mod auth;
mod blacklist;
mod client_logs;
mod customers;
mod discord;
mod entitlements;
mod key_system;
mod licenses;
mod machines;
mod ops;
mod policies;
mod providers;
mod seller_keys;
mod sessions;
mod signing_keys;
mod stats;
mod subscriptions;
mod transactions;
mod users;
mod variables;
mod webhooks;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;

use crate::error::ApiError;
use crate::input::BodyLimits;
use crate::AppState;

/// A client that has not sent its whole body by then is cut off (slow-body protection).
const BODY_DEADLINE: Duration = Duration::from_secs(30);

pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/auth/login", post(auth::login))
        .route("/v1/auth/refresh", post(auth::refresh))
        .route("/v1/account", get(auth::account))
        .route(
            "/v1/account/discord",
            put(discord::link).delete(discord::unlink),
        )
        .route("/v1/auth/discord", get(discord::start))
        .route("/v1/auth/discord/callback", get(discord::callback))
        .route(
            "/v1/customers",
            post(customers::create).get(customers::list),
        )
        .route(
            "/v1/customers/{id}",
            get(customers::get)
                .patch(customers::update)
                .delete(customers::delete),
        )
        .route("/v1/customers/{id}/tokens", post(customers::create_token))
        .route("/v1/api-keys", post(api_keys::create).get(api_keys::list))
        .route("/v1/api-keys/scopes", get(api_keys::scopes))
        .route("/v1/api-keys/{id}", delete(api_keys::revoke))
        .route("/v1/apps", post(apps::create).get(apps::list))
        .route(
            "/v1/apps/{id}",
            get(apps::get).patch(apps::update).delete(apps::delete),
        )
        .route("/v1/apps/{id}/reset-secret", post(apps::reset_secret))
        .route(
            "/v1/apps/{id}/service-keys",
            post(key_system::create_service_key).get(key_system::list_service_keys),
        )
        .route(
            "/v1/apps/{id}/service-keys/{serviceKeyId}",
            delete(key_system::revoke_service_key),
        )
        .route(
            "/v1/apps/{id}/keyless",
            get(key_system::list_keyless).put(key_system::put_keyless),
        )
        .route(
            "/v1/apps/{id}/keyless/{hwid}",
            delete(key_system::delete_keyless),
        )
        .route("/v1/apps/{id}/licenses", post(licenses::generate))
        .route(
            "/v1/apps/{id}/blacklist",
            post(blacklist::add).get(blacklist::list),
        )
        .route("/v1/blacklist/{id}", delete(blacklist::delete))
        .route(
            "/v1/apps/{id}/policies",
            post(policies::create).get(policies::list_for_app),
        )
        .route("/v1/policies", get(policies::list))
        .route(
            "/v1/policies/{id}/entitlements",
            get(entitlements::of_policy).post(entitlements::attach_to_policy),
        )
        .route(
            "/v1/policies/{id}/entitlements/{entitlement}",
            delete(entitlements::detach_from_policy),
        )
        .route(
            "/v1/licenses/{id}/entitlements",
            get(entitlements::of_license).post(entitlements::attach_to_license),
        )
        .route(
            "/v1/licenses/{id}/entitlements/{entitlement}",
            delete(entitlements::detach_from_license),
        )
        .route(
            "/v1/entitlements",
            post(entitlements::create).get(entitlements::list),
        )
        .route(
            "/v1/entitlements/{id}",
            get(entitlements::get)
                .patch(entitlements::update)
                .delete(entitlements::delete),
        )
        .route(
            "/v1/policies/{id}",
            get(policies::get)
                .patch(policies::update)
                .delete(policies::delete),
        )
        .route(
            "/v1/providers",
            post(providers::create).get(providers::list),
        )
        .route(
            "/v1/providers/{providerId}",
            get(providers::get).delete(providers::delete),
        )
        .route("/v1/licenses", get(licenses::list))
        .route("/v1/licenses/export", get(licenses::export))
        .route("/v1/licenses/count", get(licenses::count))
        .route("/v1/licenses/bulk", post(licenses::bulk))
        .route(
            "/v1/transactions",
            post(transactions::create).get(transactions::list),
        )
        .route(
            "/v1/transactions/{id}",
            get(transactions::get)
                .patch(transactions::update)
                .delete(transactions::delete),
        )
        .route(
            "/v1/licenses/{id}",
            get(licenses::get)
                .patch(licenses::update)
                .delete(licenses::delete),
        )
        .route("/v1/licenses/{id}/ban", post(licenses::ban))
        .route("/v1/licenses/{id}/unban", post(licenses::unban))
        .route("/v1/licenses/{id}/revoke", post(licenses::revoke))
        .route("/v1/licenses/{id}/disable", post(licenses::disable))
        .route("/v1/licenses/{id}/enable", post(licenses::enable))
        .route("/v1/licenses/{id}/rotate", post(licenses::rotate))
        .route("/v1/licenses/{id}/clear", post(licenses::clear))
        .route("/v1/licenses/{id}/extend", post(licenses::extend))
        .route("/v1/licenses/{id}/reset-hwids", post(licenses::reset_hwids))
        .route(
            "/v1/licenses/{id}/hwids/{hwid}",
            delete(licenses::remove_hwid),
        )
        .route(
            "/v1/licenses/{id}/machines",
            post(machines::activate).get(machines::list),
        )
        .route("/v1/machines", get(machines::list_all))
        .route(
            "/v1/machines/{id}",
            get(machines::get)
                .patch(machines::update)
                .delete(machines::deactivate),
        )
        .route("/v1/audit-log", get(audit::list))
        .route("/v1/stats/overview", get(stats::overview))
        .route("/v1/stats/validations", get(stats::validations))
        .route("/v1/signing-keys", get(signing_keys::list))
        .route(
            "/v1/webhook-endpoints",
            post(webhooks::create_endpoint).get(webhooks::list_endpoints),
        )
        .route(
            "/v1/webhook-endpoints/{id}",
            get(webhooks::get_endpoint)
                .patch(webhooks::update_endpoint)
                .delete(webhooks::delete_endpoint),
        )
        .route("/v1/webhook-endpoints/events", get(webhooks::event_names))
        .route(
            "/v1/webhook-endpoints/{id}/test",
            post(webhooks::test_endpoint),
        )
        .route("/v1/webhook-events", get(webhooks::list_events))
        .route(
            "/v1/webhook-events/{id}",
            get(webhooks::get_event).delete(webhooks::delete_event),
        )
        .route("/v1/webhook-events/{id}/retry", post(webhooks::retry_event))
        // End users of an app and what hangs off them (KeyAuth's data), natively.
        .route(
            "/v1/apps/{id}/users",
            get(users::list)
                .post(users::create)
                .delete(users::delete_many),
        )
        .route(
            "/v1/users/{userId}",
            get(users::get).patch(users::update).delete(users::delete),
        )
        .route("/v1/users/{userId}/ban", post(users::ban))
        .route("/v1/users/{userId}/unban", post(users::unban))
        .route("/v1/users/{userId}/reset-hwid", post(users::reset_hwid))
        .route("/v1/users/{userId}/extend", post(users::extend))
        .route("/v1/users/{userId}/subtract", post(users::subtract))
        .route(
            "/v1/users/{userId}/variables",
            get(users::list_variables).put(users::set_variable),
        )
        .route(
            "/v1/users/{userId}/variables/{varId}",
            delete(users::delete_variable),
        )
        .route(
            "/v1/apps/{id}/subscriptions",
            get(subscriptions::list).post(subscriptions::create),
        )
        .route(
            "/v1/subscriptions/{subId}",
            get(subscriptions::get)
                .patch(subscriptions::update)
                .delete(subscriptions::delete),
        )
        .route(
            "/v1/apps/{id}/variables",
            get(variables::list).post(variables::set),
        )
        .route("/v1/variables/{varId}", delete(variables::delete))
        .route(
            "/v1/apps/{id}/sessions",
            get(sessions::list).delete(sessions::kill_all),
        )
        .route("/v1/sessions/{sessionId}", delete(sessions::kill))
        .route(
            "/v1/apps/{id}/logs",
            get(client_logs::list).delete(client_logs::clear),
        )
        .route(
            "/v1/seller-keys",
            get(seller_keys::list).post(seller_keys::create),
        )
        .route("/v1/seller-keys/{keyId}", delete(seller_keys::delete))
        .merge(crate::compat::keyaux::router())
        .merge(crate::compat::keygen::router())
        .merge(crate::compat::panda::router())
        .merge(crate::compat::junkie::router())
        .merge(crate::compat::cyberlicense::router())
        .merge(crate::ui::routes())
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            BodyLimits {
                max_bytes: max_body_bytes,
                deadline: BODY_DEADLINE,
            },
            crate::input::guard,
        ))
        // Around the handlers (inside the metrics): a request that may have written raises the
        // position replicas must have replayed before its answer leaves.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::replica::track,
        ))
        // Outside the guard, so that its refusals are signed too.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::compat::keygen::sign,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .with_state(state)
}

/// In the shape of the facade that owns the path, like every refusal made before a handler.
async fn not_found(uri: Uri) -> Response {
    reject(uri.path(), ApiError::not_found("no such route"))
}

async fn method_not_allowed(uri: Uri) -> Response {
    reject(
        uri.path(),
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "method not allowed on this route",
        ),
    )
}

/// An error in the shape of the facade that owns `path` (for answers given before a handler,
/// such as the input guard's).
pub fn reject(path: &str, e: ApiError) -> Response {
    if crate::compat::keyaux::owns(path) {
        crate::compat::keyaux::KaError(e).into_response()
    } else if crate::compat::keygen::owns(path) {
        crate::compat::keygen::reject(e)
    } else if crate::compat::panda::owns(path) {
        crate::compat::panda::reject(e)
    } else if crate::compat::junkie::owns(path) {
        crate::compat::junkie::reject(e)
    } else if crate::compat::cyberlicense::owns(path) {
        crate::compat::cyberlicense::reject(e)
    } else {
        e.into_response()
    }
}
