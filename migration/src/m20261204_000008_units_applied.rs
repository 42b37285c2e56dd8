//! The units of a pack sold by the unit that each document item actually moved, which can be
//! fewer than it asked for (a pour let through by a `warn` takes only what is left): what a
//! void gives back.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
ALTER TABLE document_items ADD COLUMN units_applied bigint CHECK (units_applied > 0);
"#;

const DOWN: &str = r#"
ALTER TABLE document_items DROP COLUMN units_applied;
"#;

sql_migration!(UP, DOWN);
