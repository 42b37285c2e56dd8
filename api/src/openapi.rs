//! The OpenAPI document, generated from the handlers so that it cannot drift from the code.

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{FieldError, Problem};

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "iMark",
        description = "Checks of marked goods in Честный ЗНАК (ГИС МТ) for retail chains, under \
            the permissive mode of ПП РФ № 1944. Every endpoint but `/token` and the probes takes \
            `Authorization: Bearer <token>`; errors are `application/problem+json` with a stable \
            `code`.",
        version = env!("CARGO_PKG_VERSION"),
    ),
    components(schemas(Problem, FieldError)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "API keys in, access tokens out"),
        (name = "tenants", description = "The platform operator onboards organisations"),
        (name = "stores", description = "A tenant's POS locations"),
        (name = "keys", description = "API keys of HQ admins, stores and auditors"),
        (name = "truemark", description = "ЧЗ credentials of a tenant and its stores"),
        (name = "documents", description = "The main job: check a sale, return or check"),
        (name = "marks", description = "The mark base and the offline package"),
        (name = "policy", description = "What each ground for refusing a sale does"),
        (name = "audit", description = "The tamper-evident log, its verification, exports and compliance reports"),
        (name = "operations", description = "Probes"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from `/token`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An iMark API key (`imk_…`), only for `/token`",
            ))),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "The API key as the user name with an empty password, only for `/token`",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as YAML, as committed in `openapi.yaml`.
pub fn yaml() -> String {
    crate::api_router()
        .split_for_parts()
        .1
        .to_yaml()
        .unwrap_or_else(|e| format!("# the document could not be rendered: {e}\n"))
}

/// `GET /openapi.yaml`.
pub async fn serve_yaml() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], yaml())
}
