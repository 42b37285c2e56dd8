//! `/me`: who the caller is.

use imark_core::auth::Role;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::responses::Unauthorized;
use crate::extract::{Caller, Json};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub role: Role,
    pub tenant_id: Option<Uuid>,
    pub store_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    /// For an auditor limited to some stores: those stores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_ids: Option<Vec<Uuid>>,
}

/// The caller's role and scope, as its token and key stand now.
#[utoipa::path(get, path = "/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
        Unauthorized,
    ))]
async fn me(Caller(caller): Caller) -> Json<Me> {
    Json(Me {
        role: caller.role,
        tenant_id: caller.tenant_id,
        store_id: caller.store_id,
        api_key_id: caller.api_key_id,
        store_ids: caller.auditor_stores,
    })
}
