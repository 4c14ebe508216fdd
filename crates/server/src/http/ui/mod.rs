//! The web dashboard at `/ui`: hand-written HTML, CSS and JavaScript modules built into the
//! binary, served as static files.
//!
//! The page is public static content, so these routes stay outside the security guard and out
//! of the OpenAPI document (which describes the API, not this page). Everything the page shows
//! it reads through the `/v1` API with the credentials the user types in, so the dashboard can
//! do nothing its user could not do with `curl`. The assets live in `assets/`; the page's own
//! structure is described in `assets/app.js` and docs/operations.md.
//!
//! Every answer carries a strict content security policy: scripts, styles and connections only
//! from this server, no inline script or style, no framing. The policy is what keeps a message
//! body shown on the page from ever running as code, on top of the page writing bodies as text.

use super::{AppState, Problem, ProblemCode};
use axum::{
    extract::Path,
    http::{header, HeaderName, HeaderValue},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

/// Where the dashboard is served.
pub const UI_PATH: &str = "/ui";

/// Only this server's own scripts, styles, images and API; nothing inline, nothing framed,
/// no plugins, no forms posted anywhere (the page sends JSON with `fetch`).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The assets are built into the binary and change with it: `no-cache` makes the browser ask
/// again (cheaply) rather than run an old script against a newer server.
const CACHE_CONTROL: &str = "no-cache";

/// One file of the dashboard.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// Every file the page loads; `index.html` is also the page at `/ui`.
const ASSETS: [Asset; 7] = [
    Asset {
        name: "index.html",
        content_type: HTML,
        body: include_str!("assets/index.html"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: JAVASCRIPT,
        body: include_str!("assets/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: JAVASCRIPT,
        body: include_str!("assets/api.js"),
    },
    Asset {
        name: "view.js",
        content_type: JAVASCRIPT,
        body: include_str!("assets/view.js"),
    },
    Asset {
        name: "pages.js",
        content_type: JAVASCRIPT,
        body: include_str!("assets/pages.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("assets/favicon.svg"),
    },
];

/// The dashboard's routes, to be merged outside the security guard.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(UI_PATH, get(index))
        .route("/ui/", get(index))
        .route("/ui/{asset}", get(asset))
}

async fn index() -> Response {
    serve(&ASSETS[0])
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => serve(asset),
        None => Problem::new(ProblemCode::NotFound)
            .with_detail(format!("no dashboard file {UI_PATH}/{name}"))
            .into_response(),
    }
}

fn serve(asset: &Asset) -> Response {
    let headers: [(HeaderName, HeaderValue); 5] = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    (headers, asset.body).into_response()
}

#[cfg(test)]
mod tests;
