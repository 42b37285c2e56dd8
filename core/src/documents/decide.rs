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
    // which `sold` says already (and which does not stop its return).
    let grey_tobacco = tobacco && is(state.gray_zone);
    let withdrawn_but_sellable = matches!(state.elimination_state, Some(1 | 2));
    if is_not(state.realizable) && !grey_tobacco && !withdrawn_but_sellable && !is(state.sold) {
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
    // Price rules bind a sale; a return refunds what was paid.
    if let Some(price) = price
        && !returning
    {
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

/// What a ЧЗ state seen earlier still says when ЧЗ cannot be asked: a mark reported banned
/// before, or sold by someone else, still blocks in the no-check mode. A "sold" that reports
/// this organisation's own sale (`sold_elsewhere` false) says nothing once a return undid it.
pub(super) fn from_earlier_state(
    state: &CodeStatus,
    kind: Kind,
    sold_elsewhere: bool,
) -> Vec<Criterion> {
    let mut found = Vec::new();
    if state.is_blocked == Some(true) {
        found.push(Criterion::BlockedByAuthority);
    }
    if state.sold == Some(true) && kind != Kind::Return && sold_elsewhere {
        found.push(Criterion::Sold);
    }
    found
}

/// The fields a decision reads: when one of them came with the wrong type, ЧЗ's answer for the
/// code cannot be relied on.
const DECISION_FIELDS: [&str; 17] = [
    "found",
    "valid",
    "verified",
    "utilised",
    "realizable",
    "sold",
    "isBlocked",
    "expireDate",
    "errorCode",
    "groupIds",
    "grayZone",
    "eliminationState",
    "mrp",
    "smp",
    "packageType",
    "packageQuantity",
    "innerUnitCount",
];

/// Whether any of `malformed` is a field decisions read.
pub(super) fn unreadable(malformed: &[String]) -> bool {
    malformed
        .iter()
        .any(|f| DECISION_FIELDS.contains(&f.as_str()))
}

/// What the mark base says of a pack sold by the unit (a keg): a sale needs `units` left, a
/// return needs at least `units` sold before.
pub(super) fn from_partial_pack(
    sold_units: i64,
    inner: i64,
    units: i64,
    kind: Kind,
) -> Option<Criterion> {
    match kind {
        Kind::Sale | Kind::Check if sold_units >= inner => Some(Criterion::SoldHereBefore),
        Kind::Sale | Kind::Check if units > inner - sold_units => Some(Criterion::NotEnoughLeft),
        Kind::Return if units > sold_units => Some(Criterion::ReturnNotSoldHere),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use serde_json::json;

    use super::*;

    fn state(fields: serde_json::Value) -> CodeStatus {
        let mut base = json!({
            "found": true, "valid": true, "verified": true, "utilised": true,
            "realizable": true, "sold": false, "isBlocked": false, "errorCode": 0,
            "isOwner": true, "groupIds": [2]
        });
        if let serde_json::Value::Object(fields) = fields {
            for (k, v) in fields {
                base[k] = v;
            }
        }
        serde_json::from_value(base).unwrap()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap()
    }

    fn sale(fields: serde_json::Value, price: Option<u64>) -> Vec<Criterion> {
        from_truemark(&state(fields), Kind::Sale, price, now())
    }

    #[test]
    fn a_clean_answer_raises_nothing() {
        assert!(sale(json!({}), Some(100)).is_empty());
    }

    #[test]
    fn each_prohibition_of_the_law_is_its_own_criterion() {
        let cases = [
            (json!({"found": false}), Criterion::NotFound),
            (json!({"errorCode": 10}), Criterion::NotFound),
            (json!({"valid": false}), Criterion::Invalid),
            (json!({"verified": false}), Criterion::NotVerified),
            (json!({"utilised": false}), Criterion::NotApplied),
            (json!({"realizable": false}), Criterion::NotInCirculation),
            (
                json!({"isBlocked": true, "ogvs": ["RPN"]}),
                Criterion::BlockedByAuthority,
            ),
            (json!({"sold": true}), Criterion::Sold),
            (
                json!({"expireDate": "2026-12-02T00:00:00.000Z"}),
                Criterion::Expired,
            ),
            (json!({"errorCode": 6}), Criterion::OtherErrorCode),
            (json!({"isOwner": false}), Criterion::NotOwner),
        ];
        for (fields, expected) in cases {
            let found = sale(fields.clone(), None);
            assert!(found.contains(&expected), "{fields}: {found:?}");
        }
    }

    #[test]
    fn absent_and_null_fields_raise_nothing() {
        let bare: CodeStatus = serde_json::from_value(json!({"cis": "x", "found": null})).unwrap();

        assert!(from_truemark(&bare, Kind::Sale, Some(1), now()).is_empty());
    }

    #[test]
    fn tobacco_in_the_grey_zone_and_withdrawn_goods_may_be_sold_out_of_circulation() {
        let grey = sale(
            json!({"groupIds": [3], "grayZone": true, "realizable": false}),
            None,
        );
        let withdrawn = sale(json!({"realizable": false, "eliminationState": 2}), None);
        let grey_milk = sale(
            json!({"groupIds": [8], "grayZone": true, "realizable": false}),
            None,
        );

        assert!(grey.is_empty(), "{grey:?}");
        assert!(withdrawn.is_empty(), "{withdrawn:?}");
        assert_eq!(grey_milk, [Criterion::NotInCirculation]);
    }

    #[test]
    fn a_sold_mark_is_reported_sold_not_also_out_of_circulation() {
        assert_eq!(
            sale(json!({"sold": true, "realizable": false}), None),
            [Criterion::Sold]
        );
    }

    #[test]
    fn a_keg_takes_back_no_more_units_than_it_sold() {
        assert_eq!(from_partial_pack(1800, 3000, 1800, Kind::Return), None);
        assert_eq!(
            from_partial_pack(1799, 3000, 1800, Kind::Return),
            Some(Criterion::ReturnNotSoldHere)
        );
        assert_eq!(
            from_partial_pack(0, 3000, 1, Kind::Return),
            Some(Criterion::ReturnNotSoldHere)
        );
    }

    #[test]
    fn price_rules_do_not_bind_a_return() {
        let pack = state(json!({"groupIds": [3], "packageType": "UNIT", "mrp": 9900, "smp": 9000}));

        assert!(from_truemark(&pack, Kind::Return, Some(12000), now()).is_empty());
    }

    #[test]
    fn an_odd_type_in_a_decision_field_makes_the_answer_unreadable() {
        assert!(unreadable(&["isBlocked".to_owned()]));
        assert!(!unreadable(&["producerInn".to_owned()]));
    }

    #[test]
    fn a_return_is_not_stopped_by_sold_or_expired() {
        let sold =
            state(json!({"sold": true, "realizable": false, "expireDate": "2020-01-01T00:00:00Z"}));

        assert!(from_truemark(&sold, Kind::Return, None, now()).is_empty());
        assert!(from_truemark(&sold, Kind::Check, None, now()).contains(&Criterion::Sold));
    }

    #[test]
    fn tobacco_prices_are_held_between_the_minimum_and_the_maximum_per_pack() {
        let pack = json!({"groupIds": [3], "packageType": "UNIT", "mrp": 15000, "smp": 13500});
        let block = json!({"groupIds": [3], "packageType": "GROUP", "packageQuantity": 10,
                           "mrp": 19900, "smp": 13500});

        assert!(sale(pack.clone(), Some(15000)).is_empty());
        assert_eq!(
            sale(pack.clone(), Some(15001)),
            [Criterion::AboveMaximumPrice]
        );
        assert_eq!(sale(pack, Some(12000)), [Criterion::BelowMinimumPrice]);
        assert!(sale(block.clone(), Some(199_000)).is_empty());
        assert_eq!(sale(block, Some(120_000)), [Criterion::BelowMinimumPrice]);
    }

    #[test]
    fn the_mrp_of_nicotine_products_is_a_minimum() {
        let nsp = json!({"groupIds": [16], "mrp": 20000});

        assert!(sale(nsp.clone(), Some(25000)).is_empty());
        assert_eq!(sale(nsp, Some(15000)), [Criterion::BelowMinimumPrice]);
    }

    #[test]
    fn the_mark_base_speaks_for_sales_checks_and_returns() {
        assert_eq!(
            from_mark_base(Some("sold"), Kind::Sale),
            Some(Criterion::SoldHereBefore)
        );
        assert_eq!(
            from_mark_base(Some("sold"), Kind::Check),
            Some(Criterion::SoldHereBefore)
        );
        assert_eq!(from_mark_base(Some("available"), Kind::Sale), None);
        assert_eq!(from_mark_base(Some("sold"), Kind::Return), None);
        assert_eq!(
            from_mark_base(Some("available"), Kind::Return),
            Some(Criterion::ReturnNotSoldHere)
        );
        assert_eq!(
            from_mark_base(None, Kind::Return),
            Some(Criterion::ReturnNotSoldHere)
        );
    }

    #[test]
    fn without_truemark_an_earlier_ban_or_sale_still_counts() {
        let banned = state(json!({"isBlocked": true, "sold": true}));

        assert_eq!(
            from_earlier_state(&banned, Kind::Sale, true),
            [Criterion::BlockedByAuthority, Criterion::Sold]
        );
        assert_eq!(
            from_earlier_state(&banned, Kind::Return, true),
            [Criterion::BlockedByAuthority]
        );
        assert_eq!(
            from_earlier_state(&banned, Kind::Sale, false),
            [Criterion::BlockedByAuthority],
            "our own sale, undone by a return, does not count"
        );
    }
}
