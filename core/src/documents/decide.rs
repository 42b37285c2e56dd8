//! Which criteria apply to one item: from ЧЗ's answer for its code, and from the mark base.

use chrono::{DateTime, Utc};
use truemark::wire::CodeStatus;

use super::Kind;
use crate::policy::Criterion;

/// ЧЗ's product group of tobacco.
const TOBACCO: u32 = 3;
/// ЧЗ's product group of nicotine-containing products (НСП), whose `mrp` is a minimum price.
const NICOTINE_PRODUCTS: u32 = 16;

/// The criteria ЧЗ's answer for one code raises on a document of `kind`, for an item sold at
/// `price` kopecks when the POS sent one.
pub(super) fn from_truemark(
    state: &CodeStatus,
    kind: Kind,
    price: Option<u64>,
    now: DateTime<Utc>,
) -> Vec<Criterion> {
    let mut found = Vec::new();
    let is = |flag: Option<bool>| flag == Some(true);
    let is_not = |flag: Option<bool>| flag == Some(false);
    let groups = state.group_ids.as_deref().unwrap_or_default();
    let tobacco = groups.contains(&TOBACCO);
    let returning = kind == Kind::Return;

    if is_not(state.found) || state.error_code == Some(10) {
        found.push(Criterion::NotFound);
    }
    if is_not(state.valid) {
        found.push(Criterion::Invalid);
    }
    if is_not(state.verified) {
        found.push(Criterion::NotVerified);
    }
    if is_not(state.utilised) {
        found.push(Criterion::NotApplied);
    }
    // Tobacco in the grey zone may be sold out of circulation; so may goods withdrawn for
    // distance sale or own needs; and a sold mark is out of circulation because it was sold,
    // which does not stop its return.
    let grey_tobacco = tobacco && is(state.gray_zone);
    let withdrawn_but_sellable = matches!(state.elimination_state, Some(1 | 2));
    let sold_and_returning = returning && is(state.sold);
    if is_not(state.realizable) && !grey_tobacco && !withdrawn_but_sellable && !sold_and_returning {
        found.push(Criterion::NotInCirculation);
    }
    if is(state.is_blocked) {
        found.push(Criterion::BlockedByAuthority);
    }
    if is(state.sold) && !returning {
        found.push(Criterion::Sold);
    }
    if !returning && expired(state.expire_date.as_deref(), now) {
        found.push(Criterion::Expired);
    }
    if let Some(code) = state.error_code
        && code != 0
        && code != 10
    {
        found.push(Criterion::OtherErrorCode);
    }
    if is_not(state.is_owner) {
        found.push(Criterion::NotOwner);
    }
    if let Some(price) = price {
        found.extend(price_criteria(state, groups, price));
    }
    found
}

fn expired(expire_date: Option<&str>, now: DateTime<Utc>) -> bool {
    expire_date
        .and_then(|text| truemark::wire::parse_wire_instant(text).ok())
        .is_some_and(|at| at < now)
}

/// Tobacco: the price must lie between `smp` and `mrp` (times the packs of a block); НСП: the
/// price must not be below `mrp`, which is a minimum for that group.
fn price_criteria(state: &CodeStatus, groups: &[u32], price: u64) -> Vec<Criterion> {
    let mut found = Vec::new();
    let as_price =
        |value: Option<i64>| value.and_then(|v| u64::try_from(v).ok()).filter(|v| *v > 0);
    if groups.contains(&TOBACCO) {
        let packs = if state.package_type.as_deref() == Some("GROUP") {
            state
                .package_quantity
                .and_then(|q| u64::try_from(q).ok())
                .filter(|q| *q > 0)
        } else {
            Some(1)
        };
        let Some(packs) = packs else {
            return found;
        };
        if let Some(max) = as_price(state.mrp)
            && price > max.saturating_mul(packs)
        {
            found.push(Criterion::AboveMaximumPrice);
        }
        if let Some(min) = as_price(state.smp)
            && price < min.saturating_mul(packs)
        {
            found.push(Criterion::BelowMinimumPrice);
        }
    } else if groups.contains(&NICOTINE_PRODUCTS)
        && let Some(min) = as_price(state.mrp)
        && price < min
    {
        found.push(Criterion::BelowMinimumPrice);
    }
    found
}

/// What a ЧЗ state seen earlier still says when ЧЗ cannot be asked: a mark reported sold or
/// banned before still blocks in the no-check mode.
pub(super) fn from_earlier_state(state: &CodeStatus, kind: Kind) -> Vec<Criterion> {
    let mut found = Vec::new();
    if state.is_blocked == Some(true) {
        found.push(Criterion::BlockedByAuthority);
    }
    if state.sold == Some(true) && kind != Kind::Return {
        found.push(Criterion::Sold);
    }
    found
}

/// What the mark base says: a sale of a mark sold here, a return of one that was not.
pub(super) fn from_mark_base(status: Option<&str>, kind: Kind) -> Option<Criterion> {
    match (kind, status) {
        (Kind::Sale | Kind::Check, Some("sold")) => Some(Criterion::SoldHereBefore),
        (Kind::Return, Some("sold")) => None,
        (Kind::Return, _) => Some(Criterion::ReturnNotSoldHere),
        _ => None,
    }
}
