//! The units of a pack sold by the unit that each document item actually moved, which can be
//! fewer than it asked for (a pour let through by a `warn` takes only what is left): what a
//! void gives back. Items written before know only what they asked for; the applied items of
//! packs keep that.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
ALTER TABLE document_items ADD COLUMN units_applied bigint CHECK (units_applied > 0);
UPDATE document_items i SET units_applied = COALESCE(i.quantity, 1)
FROM documents d, marks m
WHERE i.applied AND i.document_id = d.id AND m.tenant_id = d.tenant_id AND m.cis = i.cis
  AND m.inner_unit_count IS NOT NULL;
"#;

const DOWN: &str = r#"
ALTER TABLE document_items DROP COLUMN units_applied;
"#;

sql_migration!(UP, DOWN);
