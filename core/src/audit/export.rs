//! Audit records as an export: CSV that Excel opens as it is, or one JSON array. Records are
//! rendered a page at a time, so an export of any size streams in constant memory.

use chrono::SecondsFormat;

use super::Record;
use crate::error::{Error, Result};
use crate::reports::render::{Separator, safe_text};

/// The format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// UTF-8 with a byte-order mark, CRLF line ends, one record per row.
    Csv(Separator),
    /// One JSON array of records, as `GET /audit` shows them.
    Json,
}

const COLUMNS: [&str; 17] = [
    "id",
    "store_id",
    "seq",
    "at",
    "kind",
    "actor",
    "action",
    "document_id",
    "exchange_id",
    "verdict",
    "mode",
    "req_id",
    "cis",
    "criteria",
    "hash",
    "prev_hash",
    "body",
];

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv(_) => "text/csv; charset=utf-8",
            Self::Json => "application/json",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv(_) => "csv",
            Self::Json => "json",
        }
    }

    /// What comes before the first record.
    pub fn start(self) -> Result<Vec<u8>> {
        match self {
            Self::Csv(separator) => {
                let mut out = b"\xEF\xBB\xBF".to_vec();
                let mut writer = csv_writer(separator, &mut out);
                writer.write_record(COLUMNS).map_err(Error::internal)?;
                writer.flush().map_err(Error::internal)?;
                drop(writer);
                Ok(out)
            }
            Self::Json => Ok(b"[".to_vec()),
        }
    }

    /// One page of records; `first` tells whether any record came before it.
    pub fn page(self, records: &[Record], first: bool) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(records.len() * 512);
        match self {
            Self::Csv(separator) => {
                let mut writer = csv_writer(separator, &mut out);
                for record in records {
                    writer
                        .write_record(csv_row(record))
                        .map_err(Error::internal)?;
                }
                writer.flush().map_err(Error::internal)?;
            }
            Self::Json => {
                for (i, record) in records.iter().enumerate() {
                    if !(first && i == 0) {
                        out.push(b',');
                    }
                    serde_json::to_writer(&mut out, record).map_err(Error::internal)?;
                }
            }
        }
        Ok(out)
    }

    /// What comes after the last record.
    pub fn end(self) -> Vec<u8> {
        match self {
            Self::Csv(_) => Vec::new(),
            Self::Json => b"]".to_vec(),
        }
    }
}

fn csv_writer(separator: Separator, out: &mut Vec<u8>) -> csv::Writer<&mut Vec<u8>> {
    csv::WriterBuilder::new()
        .delimiter(match separator {
            Separator::Semicolon => b';',
            Separator::Comma => b',',
        })
        .terminator(csv::Terminator::CRLF)
        .from_writer(out)
}

fn csv_row(record: &Record) -> [String; 17] {
    let text = |value: &Option<String>| value.as_deref().map(safe_text).unwrap_or_default();
    let id = |value: Option<uuid::Uuid>| value.map(|v| v.to_string()).unwrap_or_default();
    [
        record.id.to_string(),
        id(record.store_id),
        record.seq.to_string(),
        record.at.to_rfc3339_opts(SecondsFormat::Micros, true),
        record.kind.as_str().to_owned(),
        text(&record.actor),
        text(&record.action),
        id(record.document_id),
        id(record.exchange_id),
        text(&record.verdict),
        text(&record.mode),
        text(&record.req_id),
        safe_text(&record.cis.join(" ")),
        record.criteria.join(" "),
        record.hash.clone(),
        record.prev_hash.clone(),
        safe_text(&record.body.to_string()),
    ]
}
