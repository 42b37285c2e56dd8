//! Roles and the short-lived JWTs that carry them. Tokens are signed with HS256 under the first
//! configured key and verified under any configured key, chosen by the token's `kid`, so signing
//! keys rotate without breaking live tokens.

use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::NamedSecret;

const ISSUER: &str = "imark";
const AUDIENCE: &str = "imark-api";

/// Who a caller is. Each role acts only on its own scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The service operator: creates tenants and their first HQ key.
    Platform,
    /// A franchise HQ or any organisation: manages its stores, keys and ЧЗ credentials.
    HqAdmin,
    /// A POS location: acts on its own store only.
    Store,
    /// A compliance officer: reads the audit data of the whole tenant or of listed stores.
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Platform => "platform",
            Self::HqAdmin => "hq_admin",
            Self::Store => "store",
            Self::Auditor => "auditor",
        }
    }

    /// The role stored in the database for an API key; the platform role has no stored keys.
    pub fn from_stored(value: &str) -> Option<Self> {
        match value {
            "hq_admin" => Some(Self::HqAdmin),
            "store" => Some(Self::Store),
            "auditor" => Some(Self::Auditor),
            _ => None,
        }
    }
}

/// The claims of an iMark access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The API key the token was issued for, or `platform`.
    pub sub: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<Uuid>,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
}

impl Claims {
    /// The id of the API key behind the token; `None` for the platform operator.
    pub fn api_key_id(&self) -> Option<Uuid> {
        self.sub.parse().ok()
    }
}

/// Why a bearer token was refused. Callers see one `401` whatever the reason; the reason is
/// logged at debug level.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token has no kid or an unknown one")]
    UnknownKid,
    #[error("the token's signature or claims are invalid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
}

/// An issued token with its lifetime.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: Duration,
}

struct VerifyingKey {
    kid: String,
    key: DecodingKey,
}

/// Signs and verifies access tokens.
pub struct TokenKeys {
    signing_kid: String,
    signing: EncodingKey,
    verifying: Vec<VerifyingKey>,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.verifying.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("TokenKeys")
            .field("signing_kid", &self.signing_kid)
            .field("verifying_kids", &kids)
            .field("ttl", &self.ttl)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("no usable JWT signing key is configured")]
pub struct NoSigningKey;

impl TokenKeys {
    pub fn new(keys: &[NamedSecret], ttl: Duration) -> Result<Self, NoSigningKey> {
        let first = keys.first().ok_or(NoSigningKey)?;
        let signing =
            EncodingKey::from_secret(first.secret.expose_secret()).map_err(|_| NoSigningKey)?;
        let verifying = keys
            .iter()
            .map(|k| {
                DecodingKey::from_secret(k.secret.expose_secret()).map(|key| VerifyingKey {
                    kid: k.id.clone(),
                    key,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| NoSigningKey)?;

        // Only HS256 is accepted: a token naming `none` or any other algorithm is refused before
        // its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 0;

        Ok(Self {
            signing_kid: first.id.clone(),
            signing,
            verifying,
            validation,
            ttl,
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issues a token for `subject` acting as `role` within the given tenant and store.
    pub fn issue(
        &self,
        subject: String,
        role: Role,
        tenant_id: Option<Uuid>,
        store_id: Option<Uuid>,
    ) -> Result<IssuedToken, TokenError> {
        let now = Utc::now().timestamp();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = Claims {
            sub: subject,
            role,
            tenant_id,
            store_id,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            exp: now.saturating_add(ttl),
            jti: Uuid::new_v4(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.signing_kid.clone());
        let access_token = jsonwebtoken::encode(&header, &claims, &self.signing)
            .map_err(|_| TokenError::Invalid)?;
        Ok(IssuedToken {
            access_token,
            expires_in: self.ttl,
        })
    }

    /// Verifies a token's algorithm, `kid`, signature, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKid)?;
        let key = self
            .verifying
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(TokenError::UnknownKid)?;
        jsonwebtoken::decode::<Claims>(token, &key.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretSlice;

    use super::*;

    fn key(id: &str, secret: &str) -> NamedSecret {
        NamedSecret {
            id: id.to_owned(),
            secret: SecretSlice::from(secret.as_bytes().to_vec()),
        }
    }

    fn keys(list: &[(&str, &str)]) -> TokenKeys {
        let named: Vec<_> = list.iter().map(|(id, s)| key(id, s)).collect();
        TokenKeys::new(&named, Duration::from_secs(900)).unwrap()
    }

    #[test]
    fn a_token_survives_a_signing_key_rotation() {
        let before = keys(&[("k1", "first-secret-first-secret-first-secret")]);
        let token = before
            .issue("platform".into(), Role::Platform, None, None)
            .unwrap();

        let after = keys(&[
            ("k2", "second-secret-second-secret-second"),
            ("k1", "first-secret-first-secret-first-secret"),
        ]);

        assert_eq!(
            after.verify(&token.access_token).unwrap().role,
            Role::Platform
        );
    }

    #[test]
    fn a_token_signed_by_a_retired_key_is_refused() {
        let old = keys(&[("k1", "first-secret-first-secret-first-secret")]);
        let token = old
            .issue("platform".into(), Role::Platform, None, None)
            .unwrap();

        let new = keys(&[("k2", "second-secret-second-secret-second")]);

        assert_eq!(new.verify(&token.access_token), Err(TokenError::UnknownKid));
    }
}
