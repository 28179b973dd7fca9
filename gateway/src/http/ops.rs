//! Operations endpoints: `/health`, `/readyz`, `/livez`, `/version`, `/metrics`.

use axum::Router;

use super::HttpState;

pub fn router() -> Router<HttpState> {
    Router::new()
}
