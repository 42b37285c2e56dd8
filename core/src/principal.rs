//! The authenticated caller and what it may reach.

use uuid::Uuid;

use crate::auth::Role;
use crate::error::{Error, Result};

/// An authenticated caller: its role and the tenant and stores it may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub role: Role,
    /// The API key behind the caller; `None` for the platform operator's bootstrap key.
    pub api_key_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    /// The store of a store key.
    pub store_id: Option<Uuid>,
    /// The stores an auditor key covers when it does not cover the whole tenant.
    pub auditor_stores: Option<Vec<Uuid>>,
}

/// Which of a tenant's stores a caller may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreScope {
    All,
    Only(Vec<Uuid>),
}

impl StoreScope {
    pub fn allows(&self, store_id: Uuid) -> bool {
        match self {
            Self::All => true,
            Self::Only(ids) => ids.contains(&store_id),
        }
    }
}

impl Principal {
    pub fn platform() -> Self {
        Self {
            role: Role::Platform,
            api_key_id: None,
            tenant_id: None,
            store_id: None,
            auditor_stores: None,
        }
    }

    /// Refuses with 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<()> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }

    /// The caller's tenant; the platform operator has none and is refused with 403.
    pub fn tenant(&self) -> Result<Uuid> {
        self.tenant_id.ok_or(Error::Forbidden)
    }

    /// The stores of its tenant the caller may read.
    pub fn store_scope(&self) -> StoreScope {
        match (self.role, self.store_id, &self.auditor_stores) {
            (Role::Store, Some(id), _) => StoreScope::Only(vec![id]),
            (Role::Store, None, _) => StoreScope::Only(Vec::new()),
            (Role::Auditor, _, Some(ids)) => StoreScope::Only(ids.clone()),
            _ => StoreScope::All,
        }
    }
}
