//! Partial sale: a keg or any pack with inner units stays available until its units are sold.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

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

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(DOWN).await?;
        Ok(())
    }
}
