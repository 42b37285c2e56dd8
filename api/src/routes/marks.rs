//! The mark base endpoints POS integrations already call (`create_stamp`,
//! `unique_product_stamp`), and the offline package `GET /codes/offline`.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, Utc};
use imark_core::audit::AdminChange;
use imark_core::auth::Role;
use imark_core::cdn::CdnGroup;
use imark_core::credentials;
use imark_core::marks::{self, Actor, AddedMark, MarkQuery, MarkStatus, MarkView, OfflineChange};
use imark_core::modes::{self, Mode};
use imark_core::principal::Principal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::tenants::{decode_cursor, encode_cursor, page_limit};
use crate::error::ApiError;
use crate::error::responses::{
    BadRequest, Forbidden, NotFound, PayloadTooLarge, Unauthorized, Unprocessable,
    UnsupportedMediaType,
};
use crate::extract::{Caller, Json, Path, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_stamps))
        .routes(routes!(add_stamp, update_stamp, list_stamps))
        .routes(routes!(get_stamp, delete_stamp))
        .routes(routes!(offline_package))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"codes": ["0104670540176099215'W9Um\u{1d}93dGVz", "04601653035829H;dV)bFABVUdGVz"]}))]
pub struct CreateStamps {
    /// Marking codes as scanned, up to 1000.
    pub codes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreateStampsAnswer {
    pub added: usize,
    pub existing: usize,
    pub refused: usize,
    /// One entry per code, in the order sent.
    pub items: Vec<AddedMark>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddStamp {
    /// A marking code as scanned.
    pub code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStamp {
    /// The КИ, or the whole marking code as scanned.
    pub cis: String,
    pub status: MarkStatus,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StampQuery {
    pub status: Option<MarkStatus>,
    /// Only marks last changed by this store.
    pub store_id: Option<Uuid>,
    /// At most this many marks, 1 to 500; 100 by default.
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StampList {
    /// Marks ordered by КИ.
    pub items: Vec<MarkView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OfflineQuery {
    /// `next_cursor` of the previous call: only what changed since comes back.
    pub cursor: Option<String>,
    /// At most this many changes, 1 to 500; 100 by default.
    pub limit: Option<u64>,
}

/// What a POS keeps for when it cannot reach iMark.
#[derive(Debug, Serialize, ToSchema)]
pub struct OfflinePackage {
    /// The store's check mode now.
    pub mode: Mode,
    pub generated_at: DateTime<Utc>,
    /// Marks to add to or drop from the POS's sold and blocked lists, oldest change first. Each
    /// is the mark's state now: apply them in order; one may come again in a later poll.
    pub changes: Vec<OfflineChange>,
    /// Pass it as `cursor` next time; it is returned even on the last page, to poll with.
    pub next_cursor: Option<String>,
    /// Whether more changes wait beyond this page.
    pub has_more: bool,
}

/// Adds marks in bulk, e.g. on goods receipt (HQ admin, store).
#[utoipa::path(post, path = "/create_stamp", tag = "marks", security(("bearer" = [])),
    request_body = CreateStamps,
    responses(
        (status = 200, description = "What happened to each code", body = CreateStampsAnswer),
        BadRequest, Unauthorized, Forbidden, Unprocessable, PayloadTooLarge, UnsupportedMediaType,
    ))]
async fn create_stamps(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<CreateStamps>,
) -> Result<Json<CreateStampsAnswer>, ApiError> {
    caller.require(&[Role::HqAdmin, Role::Store])?;
    let actor = actor(&caller)?;
    let change = AdminChange::begin(&state.db).await?;
    let items = marks::add(change.db(), actor, &body.codes).await?;
    record_added(change, &caller, actor, &items).await?;
    let count = |what: &str| items.iter().filter(|i| i.result == what).count();
    Ok(Json(CreateStampsAnswer {
        added: count("added"),
        existing: count("existing"),
        refused: count("refused"),
        items,
    }))
}

/// Adds one mark (HQ admin, store).
#[utoipa::path(post, path = "/unique_product_stamp", tag = "marks", security(("bearer" = [])),
    request_body = AddStamp,
    responses(
        (status = 201, description = "Added", body = MarkView),
        (status = 200, description = "Already known; unchanged", body = MarkView),
        BadRequest, Unauthorized, Forbidden, Unprocessable, PayloadTooLarge, UnsupportedMediaType,
    ))]
async fn add_stamp(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<AddStamp>,
) -> Result<(StatusCode, Json<MarkView>), ApiError> {
    caller.require(&[Role::HqAdmin, Role::Store])?;
    let actor = actor(&caller)?;
    let change = AdminChange::begin(&state.db).await?;
    let added = marks::add(change.db(), actor, std::slice::from_ref(&body.code)).await?;
    record_added(change, &caller, actor, &added).await?;
    let Some(item) = added.into_iter().next() else {
        return Err(ApiError::from(imark_core::Error::invalid(
            "code",
            "is missing",
        )));
    };
    let Some(cis) = item.cis else {
        let message = item
            .message
            .unwrap_or_else(|| "is not a marking code".to_owned());
        return Err(imark_core::Error::invalid("code", message).into());
    };
    let status = if item.result == "added" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(marks::get(&state.db, actor, &cis).await?)))
}

/// Changes a mark's status by hand (HQ admin, store).
#[utoipa::path(put, path = "/unique_product_stamp", tag = "marks", security(("bearer" = [])),
    request_body = UpdateStamp,
    responses(
        (status = 200, description = "The changed mark", body = MarkView),
        BadRequest, Unauthorized, Forbidden, NotFound, Unprocessable, PayloadTooLarge, UnsupportedMediaType,
    ))]
async fn update_stamp(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<UpdateStamp>,
) -> Result<Json<MarkView>, ApiError> {
    caller.require(&[Role::HqAdmin, Role::Store])?;
    let actor = actor(&caller)?;
    let mut change = AdminChange::begin(&state.db).await?;
    let mark = marks::set_status(change.db(), actor, &body.cis, body.status).await?;
    change.concerning([mark.cis.clone()]);
    let details = serde_json::json!({ "cis": mark.cis, "status": mark.status });
    change
        .commit(
            &caller,
            actor.tenant_id,
            "mark.status_set",
            actor.store_id,
            &details,
        )
        .await?;
    tracing::info!(status = mark.status.as_str(), "mark status set by hand");
    Ok(Json(mark))
}

/// Lists the tenant's marks by КИ (HQ admin, store, auditor; an auditor limited to some
/// stores sees the marks those stores changed last).
#[utoipa::path(get, path = "/unique_product_stamp", tag = "marks", security(("bearer" = [])),
    params(StampQuery),
    responses(
        (status = 200, description = "A page of marks", body = StampList),
        BadRequest, Unauthorized, Forbidden,
    ))]
async fn list_stamps(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<StampQuery>,
) -> Result<Json<StampList>, ApiError> {
    caller.require(&[Role::HqAdmin, Role::Store, Role::Auditor])?;
    let limit = page_limit(query.limit)?;
    let after_cis = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let scope = match caller.role {
        Role::Auditor => caller.store_scope(),
        _ => imark_core::principal::StoreScope::All,
    };
    let items = marks::list(
        &state.db,
        actor(&caller)?,
        &scope,
        MarkQuery {
            status: query.status,
            store_id: query.store_id,
            after_cis,
            limit,
        },
    )
    .await?;
    let next_cursor = match items.last() {
        Some(last) if items.len() as u64 == limit => Some(encode_cursor(&last.cis)),
        _ => None,
    };
    Ok(Json(StampList { items, next_cursor }))
}

/// One mark by КИ; a whole marking code is cut to its КИ (HQ admin, store).
#[utoipa::path(get, path = "/unique_product_stamp/{cis}", tag = "marks", security(("bearer" = [])),
    params(("cis" = String, Path, description = "The КИ, percent-encoded")),
    responses(
        (status = 200, description = "The mark", body = MarkView),
        Unauthorized, Forbidden, NotFound, Unprocessable, BadRequest,
    ))]
async fn get_stamp(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(cis): Path<String>,
) -> Result<Json<MarkView>, ApiError> {
    caller.require(&[Role::HqAdmin, Role::Store])?;
    Ok(Json(marks::get(&state.db, actor(&caller)?, &cis).await?))
}

/// Removes a mark from the base (HQ admin, store).
#[utoipa::path(delete, path = "/unique_product_stamp/{cis}", tag = "marks",
    security(("bearer" = [])),
    params(("cis" = String, Path, description = "The КИ, percent-encoded")),
    responses(
        (status = 204, description = "Removed"),
        Unauthorized, Forbidden, NotFound, Unprocessable, BadRequest,
    ))]
async fn delete_stamp(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(cis): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::HqAdmin, Role::Store])?;
    let actor = actor(&caller)?;
    let mut change = AdminChange::begin(&state.db).await?;
    let cis = marks::remove(change.db(), actor, &cis).await?;
    change.concerning([cis.as_str().to_owned()]);
    let details = serde_json::json!({ "cis": cis.as_str() });
    change
        .commit(
            &caller,
            actor.tenant_id,
            "mark.removed",
            actor.store_id,
            &details,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The offline package: the store's mode and the tenant's sold and blocked marks, incremental
/// by cursor (store).
#[utoipa::path(get, path = "/codes/offline", tag = "marks", security(("bearer" = [])),
    params(OfflineQuery),
    responses(
        (status = 200, description = "Changes since the cursor", body = OfflinePackage),
        BadRequest, Unauthorized, Forbidden,
    ))]
async fn offline_package(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<OfflineQuery>,
) -> Result<Json<OfflinePackage>, ApiError> {
    caller.require(&[Role::Store])?;
    let tenant_id = caller.tenant()?;
    let limit = page_limit(query.limit)?;
    let after = match query.cursor.as_deref().map(decode_position).transpose()? {
        // A poll after catching up reads the last moments again: a sale committed late, with
        // an earlier time than one already sent, is not skipped. Changes are states, so a
        // repeated one does no harm.
        Some(position) if position.caught_up => {
            Some((position.at - CAUGHT_UP_OVERLAP, String::new()))
        }
        Some(position) => Some((position.at, position.cis)),
        None => None,
    };
    let generated_at = Utc::now();
    let changes = marks::changes(&state.db, tenant_id, after, limit + 1).await?;
    let has_more = changes.len() as u64 > limit;
    let changes: Vec<OfflineChange> = changes.into_iter().take(limit as usize).collect();
    let next_cursor = match changes.last() {
        Some(last) => Some(encode_position(last.changed_at, &last.cis, !has_more)),
        None => query.cursor.clone(),
    };
    let mode = store_mode(&state, &caller).await?;
    Ok(Json(OfflinePackage {
        mode,
        generated_at,
        changes,
        next_cursor,
        has_more,
    }))
}

async fn store_mode(state: &AppState, caller: &Principal) -> Result<Mode, ApiError> {
    let (Some(tenant_id), Some(store_id)) = (caller.tenant_id, caller.store_id) else {
        return Ok(Mode::Online);
    };
    let Some(settings) =
        credentials::effective(&state.db, &state.master_keys, tenant_id, store_id).await?
    else {
        return Ok(Mode::Online);
    };
    let Ok(base) = settings.base_url.as_str().parse() else {
        return Ok(Mode::Online);
    };
    let group = CdnGroup::new(base, settings.region);
    Ok(modes::current(&state.db, tenant_id, &group).await?)
}

/// Logs the marks a request added to the base (none: nothing to log) and commits.
async fn record_added(
    mut change: AdminChange,
    caller: &Principal,
    actor: Actor,
    items: &[AddedMark],
) -> Result<(), ApiError> {
    let added: Vec<String> = items
        .iter()
        .filter(|item| item.result == "added")
        .filter_map(|item| item.cis.clone())
        .collect();
    if added.is_empty() {
        change.rollback().await?;
        return Ok(());
    }
    change.concerning(added.iter().cloned());
    let details = serde_json::json!({ "cis": added });
    change
        .commit(
            caller,
            actor.tenant_id,
            "marks.added",
            actor.store_id,
            &details,
        )
        .await?;
    Ok(())
}

fn actor(caller: &Principal) -> Result<Actor, ApiError> {
    Ok(Actor {
        tenant_id: caller.tenant()?,
        store_id: caller.store_id,
    })
}

/// How far back a caught-up poll of the offline package reads again.
const CAUGHT_UP_OVERLAP: chrono::Duration = chrono::Duration::seconds(10);

/// A place in the offline package's changes.
struct Position {
    at: DateTime<Utc>,
    cis: String,
    /// The page ended the changes there were: the next poll reads the last moments again.
    caught_up: bool,
}

fn encode_position(at: DateTime<Utc>, cis: &str, caught_up: bool) -> String {
    let flag = if caught_up { "c" } else { "p" };
    encode_cursor(&format!(
        "{flag}|{}|{cis}",
        at.to_rfc3339_opts(SecondsFormat::Micros, true)
    ))
}

fn decode_position(cursor: &str) -> Result<Position, ApiError> {
    let invalid = || ApiError::bad_request("invalid_parameter", "cursor is not valid");
    let text = decode_cursor(cursor)?;
    let mut parts = text.splitn(3, '|');
    let caught_up = match parts.next() {
        Some("c") => true,
        Some("p") => false,
        _ => return Err(invalid()),
    };
    let at = parts
        .next()
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .ok_or_else(invalid)?;
    let cis = parts.next().ok_or_else(invalid)?;
    Ok(Position {
        at: at.with_timezone(&Utc),
        cis: cis.to_owned(),
        caught_up,
    })
}
