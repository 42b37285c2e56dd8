//! `/document`: a store's POS sends its sale, return or check and gets a verdict per item and
//! the tag 1260 to print.

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use imark_core::auth::Role;
use imark_core::documents::{self, Context, DocumentAnswer, DocumentRequest, ItemRequest, Kind};
use imark_core::principal::Principal;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::error::responses::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized, Unavailable,
    Unprocessable, UnsupportedMediaType,
};
use crate::extract::{Caller, Json, Path};
use crate::state::AppState;

/// Set on an answer that is the stored answer of an earlier identical request.
const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_document))
        .routes(routes!(get_document, void_document))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "id": "POS1-2026-12-03-000123",
    "type": "sale",
    "fiscal_drive_number": "7281440500012345",
    "items": [
        {"code": "0104670540176099215'W9Um\u{1d}93dGVz", "price": 15900},
        {"code": "04601653035829H;dV)bFABVUdGVz", "price": 9900}
    ]
}))]
pub struct PostDocument {
    /// The POS's own document id: sending it again returns the stored answer.
    pub id: String,
    /// `sale`, `return` or `check`.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The fiscal drive (ФН) serial number.
    pub fiscal_drive_number: String,
    pub items: Vec<PostItem>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostItem {
    /// The marking code exactly as scanned; iMark repairs what scanners do to it.
    pub code: String,
    /// The selling price of the item in kopecks, for the price rules of tobacco and НСП.
    #[serde(default)]
    pub price: Option<u64>,
    /// Units sold from a pack sold by the unit (a pour from a keg, in the pack's own units);
    /// 1 when absent.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub quantity: Option<u32>,
}

/// Checks a document in ЧЗ and the mark base and applies the policy (store).
///
/// A `sale` records every item not blocked as sold at once; a `return` makes sold marks
/// available again; a `check` changes nothing. The same `id` with the same body returns the
/// stored answer (header `Idempotent-Replayed: true`) without asking ЧЗ again.
#[utoipa::path(post, path = "/document", tag = "documents", security(("bearer" = [])),
    request_body = PostDocument,
    responses(
        (status = 200, description = "The verdict, per item, with tag 1260", body = DocumentAnswer),
        BadRequest, Unauthorized, Forbidden, Conflict, Unprocessable, Unavailable, PayloadTooLarge, UnsupportedMediaType,
    ))]
async fn post_document(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<PostDocument>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Store])?;
    let request = DocumentRequest {
        id: body.id,
        kind: body.kind,
        fiscal_drive_number: body.fiscal_drive_number,
        items: body
            .items
            .into_iter()
            .map(|i| ItemRequest {
                code: i.code,
                price: i.price,
                quantity: i.quantity,
            })
            .collect(),
    };
    let processed = documents::process(&context(&state, &caller)?, request).await?;
    tracing::info!(
        document.id = %processed.answer.document_id,
        verdict = ?processed.answer.verdict,
        mode = processed.answer.mode.as_str(),
        replayed = processed.replayed,
        "document checked"
    );
    let mut response = axum::Json(processed.answer).into_response();
    if processed.replayed {
        response
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The stored answer of a document of this store (store).
#[utoipa::path(get, path = "/document/{id}", tag = "documents", security(("bearer" = [])),
    params(("id" = String, Path, description = "The POS's document id")),
    responses(
        (status = 200, description = "The stored answer", body = DocumentAnswer),
        Unauthorized, Forbidden, NotFound, BadRequest,
    ))]
async fn get_document(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<DocumentAnswer>, ApiError> {
    caller.require(&[Role::Store])?;
    let answer = documents::find(&context(&state, &caller)?, &id).await?;
    Ok(Json(answer))
}

/// Voids a sale whose receipt failed to print: its marks become available again (store).
#[utoipa::path(delete, path = "/document/{id}", tag = "documents", security(("bearer" = [])),
    params(("id" = String, Path, description = "The POS's document id")),
    responses(
        (status = 200, description = "The voided document", body = DocumentAnswer),
        Unauthorized, Forbidden, NotFound, Conflict, BadRequest,
    ))]
async fn void_document(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<DocumentAnswer>, ApiError> {
    caller.require(&[Role::Store])?;
    let answer = documents::void(&context(&state, &caller)?, &id).await?;
    tracing::info!(document.id = %answer.document_id, "document voided");
    Ok(Json(answer))
}

fn context<'a>(state: &'a AppState, caller: &Principal) -> Result<Context<'a>, ApiError> {
    let store_id = caller.store_id.ok_or_else(|| {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", "a store key is needed")
    })?;
    Ok(Context {
        db: &state.db,
        cache: &state.cache,
        failover: &state.failover,
        master_keys: &state.master_keys,
        tenant_id: caller.tenant()?,
        store_id,
        actor: imark_core::audit::actor(caller),
    })
}
