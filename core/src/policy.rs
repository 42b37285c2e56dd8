//! The tenant's policy: for every ground on which a sale may be refused, whether iMark blocks,
//! warns or ignores it. The defaults follow ПП 1944: its prohibitions block, informational
//! grounds are ignored, and a sale without a check (no-check mode) is allowed as the law allows
//! it. Warning instead of blocking is the retailer's own risk decision, so it is always an
//! explicit setting.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entities::policies;
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ColumnTrait as _, ConnectionTrait, DatabaseConnection,
    EntityTrait as _, QueryFilter as _,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::ids::utc;

/// A ground on which a sale or return may be refused.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// ЧЗ does not know the code (`found == false` or `errorCode == 10`).
    NotFound,
    /// The code's structure is invalid (`valid == false`).
    Invalid,
    /// The crypto tail did not verify (`verified == false`).
    NotVerified,
    /// The code was never reported applied to the pack (`utilised == false`).
    NotApplied,
    /// The goods are not in circulation (`realizable == false`).
    NotInCirculation,
    /// An authority banned the sale (`isBlocked == true`).
    BlockedByAuthority,
    /// ЧЗ says the mark was already sold (`sold == true`).
    Sold,
    /// The shelf life is over (`expireDate` in the past).
    Expired,
    /// The price is above the maximum retail price (tobacco).
    AboveMaximumPrice,
    /// The price is below the minimum price (tobacco, НСП).
    BelowMinimumPrice,
    /// ЧЗ reported another error for the code (`errorCode != 0`).
    OtherErrorCode,
    /// ЧЗ answered but refused to decide (`code != 0`).
    TruemarkRefused,
    /// The caller does not own the code (`isOwner == false`).
    NotOwner,
    /// This organisation already sold the mark.
    SoldHereBefore,
    /// A return of a mark this organisation never sold.
    ReturnNotSoldHere,
    /// A partial sale of more units than the pack (a keg) has left.
    NotEnoughLeft,
    /// The scanned text could not be turned into a marking code.
    CodeNotNormalised,
    /// ЧЗ could not be asked: the sale goes ahead in the no-check mode.
    CheckUnavailable,
}

impl Criterion {
    pub const ALL: [Self; 18] = [
        Self::NotFound,
        Self::Invalid,
        Self::NotVerified,
        Self::NotApplied,
        Self::NotInCirculation,
        Self::BlockedByAuthority,
        Self::Sold,
        Self::Expired,
        Self::AboveMaximumPrice,
        Self::BelowMinimumPrice,
        Self::OtherErrorCode,
        Self::TruemarkRefused,
        Self::NotOwner,
        Self::SoldHereBefore,
        Self::ReturnNotSoldHere,
        Self::NotEnoughLeft,
        Self::CodeNotNormalised,
        Self::CheckUnavailable,
    ];

    /// The criterion's name, as in answers and the audit log (`not_found`, `expired`, ...).
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// What the cashier reads, in Russian.
    pub fn message(self) -> &'static str {
        match self {
            Self::NotFound => "Код маркировки не найден в Честном ЗНАКе. Продажа запрещена.",
            Self::Invalid => "Код маркировки некорректен. Продажа запрещена.",
            Self::NotVerified => {
                "Код маркировки не прошёл проверку подлинности. Продажа запрещена."
            }
            Self::NotApplied => "Нет сведений о нанесении кода на товар. Продажа запрещена.",
            Self::NotInCirculation => "Товар не введён в оборот. Продажа запрещена.",
            Self::BlockedByAuthority => {
                "Продажа товара приостановлена госорганом. Продажа запрещена."
            }
            Self::Sold => "Товар уже выведен из оборота (продан). Продажа запрещена.",
            Self::Expired => "Истёк срок годности товара. Продажа запрещена.",
            Self::AboveMaximumPrice => "Цена выше максимальной розничной цены. Исправьте цену.",
            Self::BelowMinimumPrice => "Цена ниже минимальной цены. Исправьте цену.",
            Self::OtherErrorCode => "Честный ЗНАК сообщил об ошибке кода. Продажа запрещена.",
            Self::TruemarkRefused => "Честный ЗНАК не смог проверить код. Повторите позже.",
            Self::NotOwner => "Товар числится за другой организацией.",
            Self::SoldHereBefore => "Этот экземпляр уже продан в вашей сети. Продажа запрещена.",
            Self::ReturnNotSoldHere => {
                "Этот экземпляр не продавался в вашей сети. Проверьте возврат."
            }
            Self::NotEnoughLeft => {
                "В упаковке (кеге) осталось меньше, чем продаётся. Продажа запрещена."
            }
            Self::CodeNotNormalised => {
                "Код маркировки не распознан. Отсканируйте DataMatrix ещё раз."
            }
            Self::CheckUnavailable => "Честный ЗНАК недоступен: продажа без проверки (ПП 1944).",
        }
    }
}

/// What a criterion does to the item it applies to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Ignore,
    Warn,
    Block,
}

/// A named starting point for a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// What ПП 1944 requires: prohibitions block, a sale without a check is allowed.
    Law,
    /// Everything that is not a clean answer blocks, including a sale without a check.
    Strict,
    /// Only warn: the retailer takes every risk itself.
    AllowAll,
}

impl Preset {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Law => "law",
            Self::Strict => "strict",
            Self::AllowAll => "allow_all",
        }
    }

    fn from_stored(value: &str) -> Self {
        match value {
            "strict" => Self::Strict,
            "allow_all" => Self::AllowAll,
            _ => Self::Law,
        }
    }

    /// The preset's action for `criterion`.
    pub fn action(self, criterion: Criterion) -> Action {
        use Criterion as C;
        match (self, criterion) {
            (Self::AllowAll, C::CheckUnavailable | C::NotOwner) => Action::Ignore,
            (Self::AllowAll, _) => Action::Warn,
            (Self::Strict, C::NotOwner) => Action::Warn,
            (Self::Strict, _) => Action::Block,
            (Self::Law, C::NotOwner | C::CheckUnavailable) => Action::Ignore,
            (Self::Law, C::TruemarkRefused | C::ReturnNotSoldHere) => Action::Warn,
            (Self::Law, _) => Action::Block,
        }
    }
}

/// The rules in force for one store and product group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    preset: Preset,
    overrides: BTreeMap<Criterion, Action>,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            preset: Preset::Law,
            overrides: BTreeMap::new(),
        }
    }
}

impl Rules {
    pub fn action(&self, criterion: Criterion) -> Action {
        self.overrides
            .get(&criterion)
            .copied()
            .unwrap_or_else(|| self.preset.action(criterion))
    }
}

/// A stored policy at one scope.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PolicyView {
    pub store_id: Option<Uuid>,
    /// A ЧЗ product group id (3 tobacco, 8 milk, 15 beer, 16 НСП …), or `null` for every group.
    pub product_group: Option<i32>,
    pub preset: Preset,
    /// Criteria whose action differs from the preset's.
    pub overrides: BTreeMap<Criterion, Action>,
    /// Every criterion's action at this scope.
    pub effective: BTreeMap<Criterion, Action>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// The scope of a policy: the tenant, or one store; every product group, or one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scope {
    pub store_id: Option<Uuid>,
    pub product_group: Option<i32>,
}

/// Every policy row of a tenant, to resolve items of any store and group without more queries.
#[derive(Debug, Clone, Default)]
pub struct TenantPolicies {
    rows: Vec<(Scope, Rules)>,
}

impl TenantPolicies {
    /// The rules for an item of `product_group` sold in `store_id`: the most specific stored
    /// scope wins (store and group, store, tenant and group, tenant), else the law.
    pub fn rules(&self, store_id: Uuid, product_group: Option<i32>) -> Rules {
        let candidates = [
            Scope {
                store_id: Some(store_id),
                product_group,
            },
            Scope {
                store_id: Some(store_id),
                product_group: None,
            },
            Scope {
                store_id: None,
                product_group,
            },
            Scope {
                store_id: None,
                product_group: None,
            },
        ];
        candidates
            .iter()
            .filter(|scope| scope.product_group.is_none() || product_group.is_some())
            .find_map(|scope| self.rows.iter().find(|(s, _)| s == scope))
            .map(|(_, rules)| rules.clone())
            .unwrap_or_default()
    }
}

/// Loads every policy of a tenant.
pub async fn load(db: &DatabaseConnection, tenant_id: Uuid) -> Result<TenantPolicies> {
    let rows = policies::Entity::find()
        .filter(policies::Column::TenantId.eq(tenant_id))
        .all(db)
        .await?;
    Ok(TenantPolicies {
        rows: rows
            .into_iter()
            .map(|row| {
                let scope = Scope {
                    store_id: row.store_id,
                    product_group: row.product_group,
                };
                (scope, rules_of(&row))
            })
            .collect(),
    })
}

/// The policy view at `scope`: the stored row, or what applies there when none is stored.
pub async fn get(db: &DatabaseConnection, tenant_id: Uuid, scope: Scope) -> Result<PolicyView> {
    let row = find(db, tenant_id, scope).await?;
    let (rules, updated_at) = match &row {
        Some(row) => (rules_of(row), Some(utc(row.updated_at))),
        None => {
            let all = load(db, tenant_id).await?;
            let rules = match scope.store_id {
                Some(store) => all.rules(store, scope.product_group),
                None => all
                    .rows
                    .iter()
                    .find(|(s, _)| s.store_id.is_none() && s.product_group.is_none())
                    .map(|(_, r)| r.clone())
                    .unwrap_or_default(),
            };
            (rules, None)
        }
    };
    Ok(view(scope, &rules, updated_at))
}

/// Stores the policy at `scope`, replacing what was there.
pub async fn put<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    scope: Scope,
    preset: Preset,
    overrides: BTreeMap<Criterion, Action>,
) -> Result<PolicyView> {
    if let Some(group) = scope.product_group
        && !(1..=1000).contains(&group)
    {
        return Err(Error::invalid(
            "product_group",
            "must be a ЧЗ product group id, 1 to 1000",
        ));
    }
    let overrides_json = serde_json::to_value(&overrides).map_err(Error::internal)?;
    let model = match find(db, tenant_id, scope).await? {
        Some(row) => {
            let mut model: policies::ActiveModel = row.into();
            model.preset = Set(preset.as_str().to_owned());
            model.overrides = Set(overrides_json);
            model.updated_at = Set(Utc::now().into());
            model.update(db).await
        }
        None => {
            policies::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(tenant_id),
                store_id: Set(scope.store_id),
                product_group: Set(scope.product_group),
                preset: Set(preset.as_str().to_owned()),
                overrides: Set(overrides_json),
                ..Default::default()
            }
            .insert(db)
            .await
        }
    };
    let model = model.map_err(|e| {
        if crate::error::is_unique_violation(&e) {
            Error::conflict("concurrent_update", "the policy changed meanwhile; retry")
        } else {
            e.into()
        }
    })?;
    Ok(view(scope, &rules_of(&model), Some(utc(model.updated_at))))
}

async fn find<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    scope: Scope,
) -> Result<Option<policies::Model>> {
    let mut query = policies::Entity::find().filter(policies::Column::TenantId.eq(tenant_id));
    query = match scope.store_id {
        Some(id) => query.filter(policies::Column::StoreId.eq(id)),
        None => query.filter(policies::Column::StoreId.is_null()),
    };
    query = match scope.product_group {
        Some(group) => query.filter(policies::Column::ProductGroup.eq(group)),
        None => query.filter(policies::Column::ProductGroup.is_null()),
    };
    Ok(query.one(db).await?)
}

fn rules_of(row: &policies::Model) -> Rules {
    Rules {
        preset: Preset::from_stored(&row.preset),
        overrides: serde_json::from_value(row.overrides.clone()).unwrap_or_default(),
    }
}

fn view(scope: Scope, rules: &Rules, updated_at: Option<DateTime<Utc>>) -> PolicyView {
    PolicyView {
        store_id: scope.store_id,
        product_group: scope.product_group,
        preset: rules.preset,
        overrides: rules.overrides.clone(),
        effective: Criterion::ALL
            .iter()
            .map(|c| (*c, rules.action(*c)))
            .collect(),
        updated_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_law_blocks_prohibitions_and_allows_sales_without_a_check() {
        let law = Rules::default();

        assert_eq!(law.action(Criterion::Sold), Action::Block);
        assert_eq!(law.action(Criterion::BlockedByAuthority), Action::Block);
        assert_eq!(law.action(Criterion::NotOwner), Action::Ignore);
        assert_eq!(law.action(Criterion::CheckUnavailable), Action::Ignore);
    }

    #[test]
    fn the_most_specific_scope_wins() {
        let store = Uuid::now_v7();
        let strict = Rules {
            preset: Preset::Strict,
            overrides: BTreeMap::new(),
        };
        let lax = Rules {
            preset: Preset::AllowAll,
            overrides: BTreeMap::new(),
        };
        let policies = TenantPolicies {
            rows: vec![
                (
                    Scope {
                        store_id: None,
                        product_group: None,
                    },
                    strict.clone(),
                ),
                (
                    Scope {
                        store_id: Some(store),
                        product_group: Some(15),
                    },
                    lax.clone(),
                ),
            ],
        };

        assert_eq!(policies.rules(store, Some(15)), lax);
        assert_eq!(policies.rules(store, Some(3)), strict);
        assert_eq!(policies.rules(Uuid::now_v7(), None), strict);
    }

    #[test]
    fn an_override_beats_the_preset() {
        let rules = Rules {
            preset: Preset::Law,
            overrides: BTreeMap::from([(Criterion::Expired, Action::Warn)]),
        };

        assert_eq!(rules.action(Criterion::Expired), Action::Warn);
        assert_eq!(rules.action(Criterion::Sold), Action::Block);
    }
}
