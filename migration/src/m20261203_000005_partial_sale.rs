//! Partial sale: a keg or any pack with inner units stays available until its units are sold.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
ALTER TABLE marks
    ADD COLUMN inner_unit_count bigint CHECK (inner_unit_count > 0),
    ADD COLUMN sold_units bigint NOT NULL DEFAULT 0 CHECK (sold_units >= 0);
ALTER TABLE document_items ADD COLUMN quantity bigint;
"#;

const DOWN: &str = r#"
ALTER TABLE document_items DROP COLUMN quantity;
ALTER TABLE marks DROP COLUMN sold_units, DROP COLUMN inner_unit_count;
"#;

sql_migration!(UP, DOWN);
