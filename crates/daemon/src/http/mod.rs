//! The HTTP API: the router, and one module of handlers per resource. A
//! handler parses the request, makes one `crate::service` call and renders
//! the answer; errors leave as JSON in `crate::auth`. See
//! `docs/http-api.md`.

pub mod admin;
pub mod asks;
pub mod dashboard;
pub mod events;
pub mod inbox;
pub mod jobs;
pub mod peers;
pub mod personas;
pub mod reviews;
pub mod schedules;

use crate::DaemonHandle;
use axum::Router;
use axum::routing::{get, post};

pub fn router(h: DaemonHandle) -> Router {
    Router::new()
        .route("/health", get(admin::health))
        .route("/v1/peers", post(peers::register).get(peers::list_peers))
        .route("/v1/peers/prune", post(peers::prune))
        .route("/v1/peers/spawn", post(peers::spawn))
        .route("/v1/peers/kill", post(peers::kill))
        .route(
            "/v1/peers/me",
            get(peers::whoami)
                .patch(peers::update_me)
                .delete(peers::unregister_me),
        )
        .route("/v1/peers/me/heartbeat", post(peers::heartbeat))
        .route(
            "/v1/peers/by-name/{name}",
            get(peers::describe).delete(peers::unregister_named),
        )
        .route("/v1/roles/orchestrator/claim", post(peers::claim))
        .route("/v1/roles/orchestrator/release", post(peers::release))
        .route("/v1/orchestrator", get(peers::orchestrator_status))
        .route("/v1/orchestrator/decide", post(personas::decide))
        .route("/v1/reviews", post(reviews::request).get(reviews::show))
        .route("/v1/reviews/queue", get(reviews::queue))
        .route("/v1/reviews/update", post(reviews::update))
        .route("/v1/reviews/mark", post(reviews::mark))
        .route("/v1/reviews/close", post(reviews::close))
        .route(
            "/v1/schedules",
            post(schedules::create).get(schedules::list),
        )
        .route(
            "/v1/schedules/{id}",
            get(schedules::show).delete(schedules::delete),
        )
        .route("/v1/schedules/{id}/pause", post(schedules::pause))
        .route("/v1/schedules/{id}/resume", post(schedules::resume))
        .route("/v1/jobs", post(jobs::create).get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::show))
        .route("/v1/jobs/{id}/update", post(jobs::update))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/retry", post(jobs::retry))
        .route("/v1/jobs/{id}/dispatch", post(jobs::dispatch))
        .route("/v1/personas", get(personas::active))
        .route("/v1/personas/use", post(personas::use_persona))
        .route("/v1/personas/clear", post(personas::clear_persona))
        .route("/v1/personas/status", get(personas::persona_status))
        .route("/v1/asks", post(asks::ask).get(asks::list_asks))
        .route("/v1/asks/many", post(asks::ask_many))
        .route("/v1/asks/many/{id}", get(asks::ask_many_result))
        .route("/v1/asks/{id}", get(asks::get_ask))
        .route("/v1/asks/{id}/wait", get(events::wait_ask))
        .route("/v1/asks/{id}/pickup", post(asks::pickup))
        .route("/v1/asks/{id}/ack", post(asks::ack))
        .route("/v1/asks/{id}/decline", post(asks::decline))
        .route("/v1/asks/{id}/answer", post(asks::answer))
        .route("/v1/asks/{id}/cancel", post(asks::cancel))
        .route("/v1/notify", post(asks::notify))
        .route("/v1/broadcast", post(asks::broadcast))
        .route("/v1/inbox", get(inbox::peek))
        .route("/v1/inbox/lease", post(inbox::lease))
        .route("/v1/inbox/stream", get(inbox::stream))
        .route("/v1/inbox/confirm", post(inbox::confirm))
        .route("/v1/inbox/pushed", post(inbox::pushed))
        .route("/v1/inbox/deliveries/{id}", get(inbox::show))
        .route("/v1/events", get(events::list))
        .route("/v1/events/stream", get(events::stream))
        .route("/v1/trace/{id}", get(admin::trace))
        .route("/v1/doctor", get(admin::doctor))
        .route("/v1/shutdown", post(admin::shutdown))
        .route("/v1/debug/clock", post(admin::clock))
        .route("/v1/dashboard/login", post(dashboard::login_link))
        .route("/v1/dashboard/overview", get(dashboard::overview))
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/login", get(dashboard::login))
        .route("/dashboard/app.js", get(dashboard::app_js))
        .route("/dashboard/app.css", get(dashboard::app_css))
        .fallback(admin::not_found)
        .method_not_allowed_fallback(admin::method_not_allowed)
        // Host, target and header sizes, each route's query names, path
        // parameters and body presence are checked, and the body limit
        // set, before the router (`serve::handle`, `edge::guard`): as
        // layers they would wrap every route in a boxed service, cloned
        // per request.
        .with_state(h)
}
