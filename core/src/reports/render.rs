//! The compliance report as files: CSV for spreadsheets and parsers, PDF for people. JSON needs no
//! renderer: [`Report`] is `Serialize`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Write};

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use krilla::color::luma;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font, GlyphId, KrillaGlyph};
use krilla::{Document, SerializeSettings};
use serde::Deserialize;
use utoipa::ToSchema;

use super::model::{Count, DocumentRef, NoCheckPeriod, Report, WarnedSale};
use crate::policy::Criterion;

/// A failure to render a report. Either is a bug or an I/O failure of the output, never the
/// caller's fault.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("writing the CSV failed")]
    Csv(#[from] csv::Error),
    #[error("writing the report failed")]
    Io(#[from] io::Error),
    #[error("the embedded font could not be read")]
    Font,
    #[error("building the PDF failed: {0}")]
    Pdf(String),
}

impl From<RenderError> for crate::Error {
    fn from(error: RenderError) -> Self {
        Self::internal(error)
    }
}

// ---------------------------------------------------------------------------------------------
// CSV

/// The field separator of the CSV.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Separator {
    /// `;`, what Excel expects where the decimal separator is a comma (Russian locales).
    #[default]
    Semicolon,
    /// `,`, for tools that expect RFC 4180 as written.
    Comma,
}

impl Separator {
    fn byte(self) -> u8 {
        match self {
            Self::Semicolon => b';',
            Self::Comma => b',',
        }
    }
}

/// How the CSV is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CsvOptions {
    pub separator: Separator,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The report as one CSV file that Excel opens as it is: UTF-8 with a byte-order mark, CRLF line
/// ends, the separator of `options` (`;` by default), fields quoted where needed.
///
/// # Layout
///
/// Every row starts with two cells, `section` and `row`; the very first line is just those two
/// names, so a spreadsheet's filter sits on them. Each section then has one `columns` row naming
/// its own columns from the third cell on, followed by its data rows numbered from 1. A section
/// without data still has its `columns` row. Rows of different sections have different lengths.
///
/// | section | columns after `section;row` |
/// |---|---|
/// | `report` | `tenant_id, tenant_name, store_id, store_name, from, to, generated_at` |
/// | `totals` | `documents, items` |
/// | `documents_by_verdict` | `verdict, documents` |
/// | `items_by_verdict` | `verdict, items` |
/// | `by_criterion` | `criterion, blocked, warned` |
/// | `documents_by_mode` | `mode, documents` |
/// | `truemark` | `exchanges, failed, latency_p50_ms, latency_p95_ms, latency_p99_ms, latency_max_ms, failovers` |
/// | `truemark_hosts` | `host, exchanges, failed, latency_p50_ms, latency_p95_ms` |
/// | `no_check_periods` | `base_url, region, started_at, ended_at, reason` |
/// | `no_check_exchanges` | `period, url, started_at, http_status, duration_ms, error` |
/// | `sales_without_tag1260` | `document_id, store_id, pos_document_id, at, kind, mode, verdict, items` |
/// | `warned_and_sold` | `document_id, store_id, pos_document_id, at, position, cis, criteria` |
/// | `integrity` | `ok, documents_unmatched, exchanges_unrecorded` |
/// | `integrity_chains` | `store_id, records, first_seq, last_seq, last_hash, ok, problem, detail` |
/// | `integrity_unmatched` | `document_id` |
///
/// `no_check_exchanges.period` is the `row` number of its period in `no_check_periods`.
/// `warned_and_sold.criteria` lists the criteria separated by a space. `report.from` is inclusive,
/// `report.to` exclusive. A value that is absent (a store of a whole-tenant report, a latency with
/// no exchange, an open period's end) is an empty cell.
///
/// Timestamps are ISO 8601 in UTC to the second (`2026-12-01T09:30:00Z`). Numbers have no
/// grouping; a fraction (a latency percentile) has a decimal comma with the `;` separator, as
/// the locales that use `;` read it, and a decimal point with `,`. A text cell that would start with `=`, `+`, `-` or `@`
/// gets a leading `'`, so that a spreadsheet never runs text that came from a POS or from ЧЗ as
/// a formula.
///
/// # Errors
///
/// None in practice: the only failure would be the writer's, and a `Vec` does not fail.
pub fn csv(report: &Report, options: CsvOptions) -> Result<Vec<u8>, RenderError> {
    let mut out = Vec::with_capacity(4096 + 160 * report.warned_and_sold.len());
    write_csv(report, options, &mut out)?;
    Ok(out)
}

/// [`csv`] into any writer, for streaming a large report.
///
/// # Errors
///
/// [`RenderError::Io`] or [`RenderError::Csv`] when `out` fails.
pub fn write_csv(
    report: &Report,
    options: CsvOptions,
    mut out: impl Write,
) -> Result<(), RenderError> {
    out.write_all(BOM)?;
    let mut writer = csv::WriterBuilder::new()
        .delimiter(options.separator.byte())
        .terminator(csv::Terminator::CRLF)
        .flexible(true)
        .from_writer(out);

    writer.write_record(["section", "row"])?;
    write_header_sections(&mut writer, report)?;
    write_truemark_sections(&mut writer, report, options.separator)?;
    write_no_check_sections(&mut writer, &report.no_check_periods)?;
    write_section(
        &mut writer,
        "sales_without_tag1260",
        &[
            "document_id",
            "store_id",
            "pos_document_id",
            "at",
            "kind",
            "mode",
            "verdict",
            "items",
        ],
        report.sales_without_tag1260.iter().map(document_cells),
    )?;
    write_section(
        &mut writer,
        "warned_and_sold",
        &[
            "document_id",
            "store_id",
            "pos_document_id",
            "at",
            "position",
            "cis",
            "criteria",
        ],
        report.warned_and_sold.iter().map(warned_cells),
    )?;
    write_integrity_sections(&mut writer, report)?;

    writer.flush()?;
    Ok(())
}

fn write_header_sections<W: Write>(
    writer: &mut csv::Writer<W>,
    report: &Report,
) -> Result<(), RenderError> {
    let totals = &report.totals;
    let header = vec![
        report.tenant_id.to_string(),
        safe_text(&report.tenant_name),
        report
            .store
            .as_ref()
            .map_or_else(String::new, |store| store.id.to_string()),
        report
            .store
            .as_ref()
            .map_or_else(String::new, |store| safe_text(&store.name)),
        iso(report.from),
        iso(report.to),
        iso(report.generated_at),
    ];
    let columns = [
        "tenant_id",
        "tenant_name",
        "store_id",
        "store_name",
        "from",
        "to",
        "generated_at",
    ];
    write_section(writer, "report", &columns, [header])?;
    write_section(
        writer,
        "totals",
        &["documents", "items"],
        [vec![totals.documents.to_string(), totals.items.to_string()]],
    )?;
    write_section(
        writer,
        "documents_by_verdict",
        &["verdict", "documents"],
        totals.documents_by_verdict.iter().map(count_cells),
    )?;
    write_section(
        writer,
        "items_by_verdict",
        &["verdict", "items"],
        totals.items_by_verdict.iter().map(count_cells),
    )?;
    write_section(
        writer,
        "by_criterion",
        &["criterion", "blocked", "warned"],
        totals.by_criterion.iter().map(|criterion| {
            vec![
                safe_text(&criterion.criterion),
                criterion.blocked.to_string(),
                criterion.warned.to_string(),
            ]
        }),
    )?;
    write_section(
        writer,
        "documents_by_mode",
        &["mode", "documents"],
        totals.documents_by_mode.iter().map(count_cells),
    )
}

fn write_truemark_sections<W: Write>(
    writer: &mut csv::Writer<W>,
    report: &Report,
    separator: Separator,
) -> Result<(), RenderError> {
    let decimal = |value: Option<f64>| decimal(value, separator);
    let stats = &report.truemark;
    write_section(
        writer,
        "truemark",
        &[
            "exchanges",
            "failed",
            "latency_p50_ms",
            "latency_p95_ms",
            "latency_p99_ms",
            "latency_max_ms",
            "failovers",
        ],
        [vec![
            stats.exchanges.to_string(),
            stats.failed.to_string(),
            decimal(stats.latency_p50_ms),
            decimal(stats.latency_p95_ms),
            decimal(stats.latency_p99_ms),
            optional(stats.latency_max_ms),
            stats.failovers.to_string(),
        ]],
    )?;
    write_section(
        writer,
        "truemark_hosts",
        &[
            "host",
            "exchanges",
            "failed",
            "latency_p50_ms",
            "latency_p95_ms",
        ],
        stats.hosts.iter().map(|host| {
            vec![
                safe_text(&host.host),
                host.exchanges.to_string(),
                host.failed.to_string(),
                decimal(host.latency_p50_ms),
                decimal(host.latency_p95_ms),
            ]
        }),
    )
}

fn write_no_check_sections<W: Write>(
    writer: &mut csv::Writer<W>,
    periods: &[NoCheckPeriod],
) -> Result<(), RenderError> {
    write_section(
        writer,
        "no_check_periods",
        &["base_url", "region", "started_at", "ended_at", "reason"],
        periods.iter().map(|period| {
            vec![
                safe_text(&period.base_url),
                safe_text(&period.region),
                iso(period.started_at),
                period.ended_at.map_or_else(String::new, iso),
                safe_text(&period.reason),
            ]
        }),
    )?;
    let exchanges = periods.iter().enumerate().flat_map(|(index, period)| {
        period.exchanges.iter().map(move |exchange| {
            vec![
                (index + 1).to_string(),
                safe_text(&exchange.url),
                exchange.started_at.map_or_else(String::new, iso),
                optional(exchange.http_status),
                optional(exchange.duration_ms),
                exchange
                    .error
                    .as_deref()
                    .map_or_else(String::new, safe_text),
            ]
        })
    });
    write_section(
        writer,
        "no_check_exchanges",
        &[
            "period",
            "url",
            "started_at",
            "http_status",
            "duration_ms",
            "error",
        ],
        exchanges,
    )
}

fn write_integrity_sections<W: Write>(
    writer: &mut csv::Writer<W>,
    report: &Report,
) -> Result<(), RenderError> {
    let integrity = &report.integrity;
    write_section(
        writer,
        "integrity",
        &["ok", "documents_unmatched", "exchanges_unrecorded"],
        [vec![
            integrity.ok.to_string(),
            integrity.documents_unmatched.len().to_string(),
            integrity.exchanges_unrecorded.to_string(),
        ]],
    )?;
    write_section(
        writer,
        "integrity_chains",
        &[
            "store_id",
            "records",
            "first_seq",
            "last_seq",
            "last_hash",
            "ok",
            "problem",
            "detail",
        ],
        integrity.chains.iter().map(|chain| {
            let problem = chain.broken.as_ref().map(|broken| {
                serde_json::to_value(broken.problem)
                    .ok()
                    .and_then(|value| value.as_str().map(str::to_owned))
                    .unwrap_or_default()
            });
            vec![
                optional(chain.store_id),
                chain.records.to_string(),
                optional(chain.first_seq),
                optional(chain.last_seq),
                chain.last_hash.clone().unwrap_or_default(),
                chain.ok.to_string(),
                problem.unwrap_or_default(),
                chain
                    .broken
                    .as_ref()
                    .map_or_else(String::new, |broken| safe_text(&broken.detail)),
            ]
        }),
    )?;
    write_section(
        writer,
        "integrity_unmatched",
        &["document_id"],
        integrity
            .documents_unmatched
            .iter()
            .map(|id| vec![id.to_string()]),
    )
}

/// A fraction as the separator's locales write it: `12,5` beside `;`, `12.5` beside `,`.
fn decimal(value: Option<f64>, separator: Separator) -> String {
    let Some(value) = value else {
        return String::new();
    };
    let text = value.to_string();
    match separator {
        Separator::Semicolon => text.replace('.', ","),
        Separator::Comma => text,
    }
}

/// One section: its `columns` row, then its data rows numbered from 1.
fn write_section<W: Write>(
    writer: &mut csv::Writer<W>,
    section: &str,
    columns: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
) -> Result<(), RenderError> {
    writer.write_record([section, "columns"].iter().chain(columns))?;
    for (index, cells) in rows.into_iter().enumerate() {
        let number = (index + 1).to_string();
        writer.write_record(
            [section, number.as_str()]
                .into_iter()
                .chain(cells.iter().map(String::as_str)),
        )?;
    }
    Ok(())
}

fn count_cells(count: &Count) -> Vec<String> {
    vec![safe_text(&count.key), count.count.to_string()]
}

fn document_cells(document: &DocumentRef) -> Vec<String> {
    vec![
        document.document_id.to_string(),
        document.store_id.to_string(),
        safe_text(&document.pos_document_id),
        iso(document.at),
        safe_text(&document.kind),
        safe_text(&document.mode),
        safe_text(&document.verdict),
        document.items.to_string(),
    ]
}

fn warned_cells(sale: &WarnedSale) -> Vec<String> {
    vec![
        sale.document_id.to_string(),
        sale.store_id.to_string(),
        safe_text(&sale.pos_document_id),
        iso(sale.at),
        sale.position.to_string(),
        sale.cis.as_deref().map_or_else(String::new, safe_text),
        safe_text(&sale.criteria.join(" ")),
    ]
}

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn optional<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(String::new, |value| value.to_string())
}

/// Text as a spreadsheet shows it without evaluating it.
pub(crate) fn safe_text(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// PDF

const REGULAR_TTF: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const BOLD_TTF: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

/// The title of the PDF, on its first page and in its metadata.
pub const PDF_TITLE: &str = "Отчёт о проверках маркировки";

/// A4 portrait, in points.
const PAGE_WIDTH: f32 = 595.28;
const PAGE_HEIGHT: f32 = 841.89;
const MARGIN_X: f32 = 42.0;
const MARGIN_TOP: f32 = 42.0;
/// The lowest a content line may reach; the footer sits below it.
const CONTENT_BOTTOM: f32 = PAGE_HEIGHT - 54.0;
const FOOTER_BASELINE: f32 = PAGE_HEIGHT - 28.0;
const CONTENT_WIDTH: f32 = PAGE_WIDTH - 2.0 * MARGIN_X;

const TITLE_SIZE: f32 = 17.0;
const HEADING_SIZE: f32 = 12.5;
const SUBHEADING_SIZE: f32 = 10.0;
const BODY_SIZE: f32 = 9.5;
const TABLE_SIZE: f32 = 8.0;
const FOOTER_SIZE: f32 = 7.5;
const LINE_FACTOR: f32 = 1.3;
const CELL_PAD_X: f32 = 3.0;
const CELL_PAD_Y: f32 = 2.5;
/// The most lines a table cell shows.
const MAX_CELL_LINES: usize = 12;

/// The report as an A4 PDF for people, mostly in Russian: a title page block with tenant, store,
/// period and time of generation, the totals and ЧЗ statistics as tables, then the no-check
/// periods with their exchanges, the sales without tag 1260 and the items sold despite a warning.
/// Long lists run over as many pages as they need, with the table's header repeated on each page;
/// every page is numbered "стр. N из M". The text is in DejaVu Sans, embedded as a subset with a
/// ToUnicode map, so it can be searched and copied.
///
/// Times are shown in UTC.
///
/// # Errors
///
/// [`RenderError::Font`] or [`RenderError::Pdf`]: both are bugs, not the caller's fault.
pub fn pdf(report: &Report) -> Result<Vec<u8>, RenderError> {
    let fonts = Fonts::load()?;

    let mut layout = Layout::new(&fonts);
    lay_out_report(&mut layout, report);
    let pages = layout.finish();

    draw(&fonts, report, &pages)
}

fn lay_out_report(layout: &mut Layout<'_>, report: &Report) {
    layout.title(PDF_TITLE);
    let store = report.store.as_ref().map_or_else(
        || "все магазины организации".to_owned(),
        |store| format!("{} ({})", store.name, store.id),
    );
    layout.key_values(&[
        (
            "Организация",
            format!("{} ({})", report.tenant_name, report.tenant_id),
        ),
        ("Магазин", store),
        (
            "Период (UTC)",
            format!(
                "с {} по {} (конец не включён)",
                human_time(report.from),
                human_time(report.to)
            ),
        ),
        (
            "Сформирован",
            format!("{} UTC", human_time(report.generated_at)),
        ),
    ]);

    lay_out_totals(layout, report);
    lay_out_truemark(layout, report);
    lay_out_no_check(layout, report);
    lay_out_lists(layout, report);
    lay_out_integrity(layout, report);
}

fn lay_out_integrity(layout: &mut Layout<'_>, report: &Report) {
    let integrity = &report.integrity;
    layout.heading("6. Целостность журнала");
    layout.paragraph(if integrity.ok {
        "Цепочки записей журнала за период проверены: ни одна запись не изменена, не удалена и \
         не переставлена; каждый документ совпадает с записью, сделанной при его проверке."
    } else {
        "ВНИМАНИЕ: журнал за период не прошёл проверку. Итоги отчёта могут не совпадать с тем, \
         что было записано при проверках; подробности ниже."
    });
    layout.table(&Table {
        caption: "Цепочки журнала".to_owned(),
        columns: vec![
            Column::text("Цепочка", 0.2),
            Column::number("Записей", 0.1),
            Column::text("Номера", 0.13),
            Column::text("Хеш последней записи (SHA-256)", 0.37),
            Column::text("Итог", 0.2),
        ],
        rows: integrity
            .chains
            .iter()
            .map(|chain| {
                vec![
                    chain
                        .store_id
                        .map_or_else(|| "организация".to_owned(), |id| id.to_string()),
                    chain.records.to_string(),
                    match (chain.first_seq, chain.last_seq) {
                        (Some(first), Some(last)) => format!("{first}–{last}"),
                        _ => "—".to_owned(),
                    },
                    chain.last_hash.clone().unwrap_or_else(|| "—".to_owned()),
                    chain.broken.as_ref().map_or_else(
                        || "в порядке".to_owned(),
                        |broken| format!("нарушена: {}", broken.detail),
                    ),
                ]
            })
            .collect(),
    });
    if integrity.exchanges_unrecorded > 0 {
        layout.paragraph(&format!(
            "Обменов с ЧЗ без записи в журнале (в отчёт не вошли): {}.",
            integrity.exchanges_unrecorded
        ));
    }
    if !integrity.documents_unmatched.is_empty() {
        layout.table(&Table {
            caption: "Документы, не совпадающие с журналом".to_owned(),
            columns: vec![Column::text("Документ", 1.0)],
            rows: integrity
                .documents_unmatched
                .iter()
                .map(|id| vec![id.to_string()])
                .collect(),
        });
    }
}

fn lay_out_totals(layout: &mut Layout<'_>, report: &Report) {
    let totals = &report.totals;
    layout.heading("1. Итоги");
    layout.key_values(&[
        ("Документов", totals.documents.to_string()),
        ("Позиций", totals.items.to_string()),
    ]);

    let counts =
        |title: &str, key: &str, unit: &str, counts: &[Count], label: fn(&str) -> &str| Table {
            caption: title.to_owned(),
            columns: vec![
                Column::text(key, 0.45),
                Column::text("Код", 0.3),
                Column::number(unit, 0.25),
            ],
            rows: counts
                .iter()
                .map(|count| {
                    vec![
                        label(&count.key).to_owned(),
                        count.key.clone(),
                        count.count.to_string(),
                    ]
                })
                .collect(),
        };
    layout.subheading("Документы по вердикту");
    layout.table(&counts(
        "Документы по вердикту",
        "Вердикт",
        "Документов",
        &totals.documents_by_verdict,
        verdict_label,
    ));
    layout.subheading("Позиции по вердикту");
    layout.table(&counts(
        "Позиции по вердикту",
        "Вердикт",
        "Позиций",
        &totals.items_by_verdict,
        verdict_label,
    ));
    layout.subheading("Документы по режиму проверки");
    layout.table(&counts(
        "Документы по режиму проверки",
        "Режим",
        "Документов",
        &totals.documents_by_mode,
        mode_label,
    ));

    layout.subheading("Срабатывания критериев");
    layout.table(&Table {
        caption: "Срабатывания критериев".to_owned(),
        columns: vec![
            Column::text("Критерий", 0.37),
            Column::text("Код", 0.24),
            Column::number("Заблокировано", 0.18),
            Column::number("Предупреждений", 0.21),
        ],
        rows: totals
            .by_criterion
            .iter()
            .map(|criterion| {
                vec![
                    criterion_label(&criterion.criterion).into_owned(),
                    criterion.criterion.clone(),
                    criterion.blocked.to_string(),
                    criterion.warned.to_string(),
                ]
            })
            .collect(),
    });
}

fn lay_out_truemark(layout: &mut Layout<'_>, report: &Report) {
    let stats = &report.truemark;
    layout.heading("2. Обмен с Честным ЗНАКом");
    layout.key_values(&[
        ("Обменов", stats.exchanges.to_string()),
        ("Без пригодного ответа", stats.failed.to_string()),
        (
            "Задержка p50 / p95 / p99, мс",
            format!(
                "{} / {} / {}",
                milliseconds(stats.latency_p50_ms),
                milliseconds(stats.latency_p95_ms),
                milliseconds(stats.latency_p99_ms)
            ),
        ),
        (
            "Задержка max, мс",
            stats
                .latency_max_ms
                .map_or_else(|| "—".to_owned(), |max| max.to_string()),
        ),
        ("Документов со сменой хоста", stats.failovers.to_string()),
    ]);
    layout.subheading("Хосты ЧЗ");
    layout.table(&Table {
        caption: "Хосты ЧЗ".to_owned(),
        columns: vec![
            Column::text("Хост", 0.44),
            Column::number("Обменов", 0.14),
            Column::number("Неудачных", 0.14),
            Column::number("p50, мс", 0.14),
            Column::number("p95, мс", 0.14),
        ],
        rows: stats
            .hosts
            .iter()
            .map(|host| {
                vec![
                    host.host.clone(),
                    host.exchanges.to_string(),
                    host.failed.to_string(),
                    milliseconds(host.latency_p50_ms),
                    milliseconds(host.latency_p95_ms),
                ]
            })
            .collect(),
    });
}

fn lay_out_no_check(layout: &mut Layout<'_>, report: &Report) {
    layout.heading("3. Работа без проверки (ПП 1944)");
    if report.no_check_periods.is_empty() {
        layout.paragraph("Периодов без проверки не было.");
        return;
    }
    for (index, period) in report.no_check_periods.iter().enumerate() {
        let title = format!("Период {} из {}", index + 1, report.no_check_periods.len());
        layout.subheading(&title);
        layout.key_values(&[
            (
                "Группа ЧЗ",
                format!("{}, регион {}", period.base_url, period.region),
            ),
            ("Начало", format!("{} UTC", human_time(period.started_at))),
            (
                "Конец",
                period.ended_at.map_or_else(
                    || "продолжается".to_owned(),
                    |ended| format!("{} UTC", human_time(ended)),
                ),
            ),
            ("Причина", period.reason.clone()),
        ]);
        layout.table(&Table {
            caption: format!("{title}: обмены с ЧЗ"),
            columns: vec![
                Column::text("Время (UTC)", 0.19),
                Column::text("URL", 0.42),
                Column::number("HTTP", 0.08),
                Column::number("мс", 0.09),
                Column::text("Ошибка", 0.22),
            ],
            rows: period
                .exchanges
                .iter()
                .map(|exchange| {
                    vec![
                        exchange
                            .started_at
                            .map_or_else(|| "—".to_owned(), human_time),
                        exchange.url.clone(),
                        optional(exchange.http_status),
                        optional(exchange.duration_ms),
                        exchange.error.clone().unwrap_or_default(),
                    ]
                })
                .collect(),
        });
    }
}

fn lay_out_lists(layout: &mut Layout<'_>, report: &Report) {
    // A whole-tenant report says which store each line belongs to.
    let with_store = report.store.is_none();

    let title = "4. Продажи без тега 1260";
    layout.heading(title);
    let mut columns = vec![
        Column::text("Время (UTC)", 0.2),
        Column::text("Документ POS", 0.22),
        Column::text("Вид", 0.11),
        Column::text("Режим", 0.17),
        Column::text("Вердикт", 0.18),
        Column::number("Позиций", 0.12),
    ];
    let mut rows: Vec<Vec<String>> = report
        .sales_without_tag1260
        .iter()
        .map(|document| {
            vec![
                human_time(document.at),
                document.pos_document_id.clone(),
                kind_label(&document.kind).to_owned(),
                mode_label(&document.mode).to_owned(),
                verdict_label(&document.verdict).to_owned(),
                document.items.to_string(),
            ]
        })
        .collect();
    if with_store {
        add_store_column(
            &mut columns,
            &mut rows,
            report.sales_without_tag1260.iter().map(|d| d.store_id),
        );
    }
    layout.table(&Table {
        caption: title.to_owned(),
        columns,
        rows,
    });

    let title = "5. Продано несмотря на предупреждение";
    layout.heading(title);
    let mut columns = vec![
        Column::text("Время (UTC)", 0.19),
        Column::text("Документ POS", 0.14),
        Column::number("Поз.", 0.06),
        Column::text("КИ", 0.33),
        Column::text("Критерии", 0.28),
    ];
    let mut rows: Vec<Vec<String>> = report
        .warned_and_sold
        .iter()
        .map(|sale| {
            vec![
                human_time(sale.at),
                sale.pos_document_id.clone(),
                sale.position.to_string(),
                sale.cis.clone().unwrap_or_else(|| "—".to_owned()),
                sale.criteria
                    .iter()
                    .map(|criterion| criterion_label(criterion))
                    .collect::<Vec<_>>()
                    .join("; "),
            ]
        })
        .collect();
    if with_store {
        add_store_column(
            &mut columns,
            &mut rows,
            report.warned_and_sold.iter().map(|s| s.store_id),
        );
    }
    layout.table(&Table {
        caption: title.to_owned(),
        columns,
        rows,
    });
}

/// Prepends a store column, narrowing the others to make room.
fn add_store_column(
    columns: &mut Vec<Column>,
    rows: &mut [Vec<String>],
    stores: impl Iterator<Item = uuid::Uuid>,
) {
    const STORE_SHARE: f32 = 0.16;
    for column in columns.iter_mut() {
        column.share *= 1.0 - STORE_SHARE;
    }
    columns.insert(0, Column::text("Магазин", STORE_SHARE));
    for (row, store) in rows.iter_mut().zip(stores) {
        row.insert(0, store.to_string());
    }
}

fn human_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Milliseconds with one decimal, written with a decimal comma as Russian text has it.
fn milliseconds(value: Option<f64>) -> String {
    value.map_or_else(
        || "—".to_owned(),
        |value| format!("{value:.1}").replace('.', ","),
    )
}

fn verdict_label(verdict: &str) -> &str {
    match verdict {
        "allow" => "разрешено",
        "warn" => "с предупреждением",
        "block" => "запрещено",
        other => other,
    }
}

fn mode_label(mode: &str) -> &str {
    match mode {
        "online" => "с проверкой в ЧЗ",
        "no_check" => "без проверки",
        other => other,
    }
}

fn kind_label(kind: &str) -> &str {
    match kind {
        "sale" => "продажа",
        "return" => "возврат",
        other => other,
    }
}

/// A short Russian name of a criterion; an unknown name is shown as it is.
fn criterion_label(name: &str) -> Cow<'_, str> {
    let Ok(criterion) = serde_json::from_value::<Criterion>(serde_json::Value::from(name)) else {
        return Cow::Borrowed(name);
    };
    Cow::Borrowed(match criterion {
        Criterion::NotFound => "не найден в ЧЗ",
        Criterion::Invalid => "некорректный код",
        Criterion::NotVerified => "не прошёл проверку подлинности",
        Criterion::NotApplied => "нет сведений о нанесении",
        Criterion::NotInCirculation => "не введён в оборот",
        Criterion::BlockedByAuthority => "продажа приостановлена госорганом",
        Criterion::Sold => "выведен из оборота (продан)",
        Criterion::Expired => "истёк срок годности",
        Criterion::AboveMaximumPrice => "цена выше максимальной",
        Criterion::BelowMinimumPrice => "цена ниже минимальной",
        Criterion::OtherErrorCode => "другая ошибка кода в ЧЗ",
        Criterion::TruemarkRefused => "ЧЗ отказался проверять",
        Criterion::NotOwner => "товар другой организации",
        Criterion::SoldHereBefore => "уже продан в сети",
        Criterion::ReturnNotSoldHere => "возврат не проданного в сети",
        Criterion::NotEnoughLeft => "в упаковке осталось меньше",
        Criterion::CodeNotNormalised => "код не распознан",
        Criterion::CheckUnavailable => "ЧЗ недоступен, продажа без проверки",
    })
}

/// One face of DejaVu Sans: embedded by krilla, shaped and measured here.
struct Face {
    font: Font,
    shaper: rustybuzz::Face<'static>,
    units_per_em: f32,
    /// Advance widths in em, by character: layout measures every cell, often many times.
    advances: RefCell<HashMap<char, f32>>,
}

impl Face {
    fn load(bytes: &'static [u8]) -> Result<Self, RenderError> {
        let shaper = rustybuzz::Face::from_slice(bytes, 0).ok_or(RenderError::Font)?;
        Ok(Self {
            font: Font::new(bytes.into(), 0).ok_or(RenderError::Font)?,
            units_per_em: shaper.units_per_em() as f32,
            shaper,
            advances: RefCell::new(HashMap::new()),
        })
    }

    /// The width of `text` in points: the sum of its characters' advances. Kerning, which only
    /// narrows text, is left out, so text measured to fit does fit.
    fn width(&self, text: &str, size: f32) -> f32 {
        let mut advances = self.advances.borrow_mut();
        let ems: f32 = text
            .chars()
            .map(|character| {
                *advances.entry(character).or_insert_with(|| {
                    let glyph = self.shaper.glyph_index(character).unwrap_or_default();
                    f32::from(self.shaper.glyph_hor_advance(glyph).unwrap_or_default())
                        / self.units_per_em
                })
            })
            .sum();
        ems * size
    }

    /// The glyphs that draw `text` (one line, left to right), each mapped back to the characters
    /// it stands for so that the text can be extracted from the PDF.
    fn shape(&self, text: &str) -> Vec<KrillaGlyph> {
        let mut buffer = rustybuzz::UnicodeBuffer::new();
        buffer.push_str(text);
        buffer.set_direction(rustybuzz::Direction::LeftToRight);
        buffer.guess_segment_properties();
        let shaped = rustybuzz::shape(&self.shaper, &[], buffer);
        let infos = shaped.glyph_infos();
        let clusters: Vec<usize> = infos.iter().map(|info| info.cluster as usize).collect();
        infos
            .iter()
            .zip(shaped.glyph_positions())
            .enumerate()
            .map(|(index, (info, position))| {
                let start = clusters[index];
                let end = clusters[index..]
                    .iter()
                    .copied()
                    .find(|&cluster| cluster > start)
                    .unwrap_or(text.len());
                KrillaGlyph::new(
                    GlyphId::new(info.glyph_id),
                    position.x_advance as f32 / self.units_per_em,
                    position.x_offset as f32 / self.units_per_em,
                    position.y_offset as f32 / self.units_per_em,
                    position.y_advance as f32 / self.units_per_em,
                    start..end,
                    None,
                )
            })
            .collect()
    }
}

/// The two faces the PDF uses.
struct Fonts {
    regular: Face,
    bold: Face,
}

impl Fonts {
    fn load() -> Result<Self, RenderError> {
        Ok(Self {
            regular: Face::load(REGULAR_TTF)?,
            bold: Face::load(BOLD_TTF)?,
        })
    }

    fn face(&self, weight: Weight) -> &Face {
        match weight {
            Weight::Regular => &self.regular,
            Weight::Bold => &self.bold,
        }
    }

    fn width(&self, text: &str, weight: Weight, size: f32) -> f32 {
        self.face(weight).width(text, size)
    }

    /// `text` broken into lines no wider than `width`: at spaces where possible, inside a word
    /// (a URL, a marking code) where a word alone is too wide.
    fn wrap(&self, text: &str, weight: Weight, size: f32, width: f32) -> Vec<String> {
        let mut lines = Vec::new();
        for paragraph in text.lines() {
            let mut line = String::new();
            for word in paragraph.split_whitespace() {
                let candidate = if line.is_empty() {
                    word.to_owned()
                } else {
                    format!("{line} {word}")
                };
                if self.width(&candidate, weight, size) <= width {
                    line = candidate;
                    continue;
                }
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                line = self.break_word(word, weight, size, width, &mut lines);
            }
            lines.push(line);
        }
        if lines.is_empty() {
            lines.push(String::new());
        }
        lines
    }

    /// Pushes the full-width pieces of `word` to `lines` and returns the rest. A piece ends after
    /// a `/`, `-`, `_`, `?`, `&` or `=` where it has one, so that URLs break between their parts.
    fn break_word(
        &self,
        word: &str,
        weight: Weight,
        size: f32,
        width: f32,
        lines: &mut Vec<String>,
    ) -> String {
        let mut piece = String::new();
        let mut piece_width = 0.0;
        for character in word.chars() {
            let character_width = self.width(character.encode_utf8(&mut [0; 4]), weight, size);
            if piece_width + character_width > width && !piece.is_empty() {
                let cut = piece
                    .char_indices()
                    .rev()
                    .find(|&(_, c)| matches!(c, '/' | '-' | '_' | '?' | '&' | '='))
                    .map(|(index, c)| index + c.len_utf8())
                    .filter(|&cut| cut < piece.len())
                    .unwrap_or(piece.len());
                let rest = piece.split_off(cut);
                lines.push(std::mem::replace(&mut piece, rest));
                piece_width = self.width(&piece, weight, size);
            }
            piece.push(character);
            piece_width += character_width;
        }
        piece
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Weight {
    Regular,
    Bold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// What a page shows, laid out before anything is drawn so that the page count is known when the
/// footers are written.
#[derive(Debug)]
enum Op {
    Text {
        x: f32,
        baseline: f32,
        size: f32,
        weight: Weight,
        gray: u8,
        text: String,
    },
    Band {
        top: f32,
        height: f32,
        gray: u8,
    },
    Rule {
        y: f32,
        gray: u8,
    },
}

struct Column {
    title: String,
    /// The column's part of the content width.
    share: f32,
    align: Align,
}

impl Column {
    fn text(title: &str, share: f32) -> Self {
        Self {
            title: title.to_owned(),
            share,
            align: Align::Left,
        }
    }

    fn number(title: &str, share: f32) -> Self {
        Self {
            title: title.to_owned(),
            share,
            align: Align::Right,
        }
    }
}

struct Table {
    /// Repeated above the header on every page the table continues on.
    caption: String,
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
}

struct Layout<'f> {
    fonts: &'f Fonts,
    pages: Vec<Vec<Op>>,
    /// The top of the free space on the current page.
    y: f32,
}

impl<'f> Layout<'f> {
    fn new(fonts: &'f Fonts) -> Self {
        Self {
            fonts,
            pages: vec![Vec::new()],
            y: MARGIN_TOP,
        }
    }

    fn finish(self) -> Vec<Vec<Op>> {
        self.pages
    }

    fn push(&mut self, op: Op) {
        if let Some(page) = self.pages.last_mut() {
            page.push(op);
        }
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = MARGIN_TOP;
    }

    /// Starts a new page unless `height` more points fit on this one.
    fn reserve(&mut self, height: f32) {
        if self.y + height > CONTENT_BOTTOM && self.y > MARGIN_TOP {
            self.new_page();
        }
    }

    fn text_line(&mut self, x: f32, text: &str, size: f32, weight: Weight) {
        let line_height = size * LINE_FACTOR;
        self.push(Op::Text {
            x,
            baseline: self.y + size,
            size,
            weight,
            gray: 0,
            text: text.to_owned(),
        });
        self.y += line_height;
    }

    fn title(&mut self, text: &str) {
        self.text_line(MARGIN_X, text, TITLE_SIZE, Weight::Bold);
        self.y += 8.0;
    }

    /// A section heading, kept on one page with the start of what follows it.
    fn heading(&mut self, text: &str) {
        self.reserve(HEADING_SIZE * LINE_FACTOR + 80.0);
        self.y += 10.0;
        self.text_line(MARGIN_X, text, HEADING_SIZE, Weight::Bold);
        self.push(Op::Rule {
            y: self.y - 2.0,
            gray: 120,
        });
        self.y += 4.0;
    }

    fn subheading(&mut self, text: &str) {
        self.reserve(SUBHEADING_SIZE * LINE_FACTOR + 50.0);
        self.y += 4.0;
        self.text_line(MARGIN_X, text, SUBHEADING_SIZE, Weight::Bold);
        self.y += 1.0;
    }

    fn paragraph(&mut self, text: &str) {
        for line in self
            .fonts
            .wrap(text, Weight::Regular, BODY_SIZE, CONTENT_WIDTH)
        {
            self.reserve(BODY_SIZE * LINE_FACTOR);
            self.text_line(MARGIN_X, &line, BODY_SIZE, Weight::Regular);
        }
        self.y += 4.0;
    }

    /// Label–value lines, the labels in a column of their own.
    fn key_values(&mut self, pairs: &[(&str, String)]) {
        let label_width = pairs
            .iter()
            .map(|(label, _)| self.fonts.width(label, Weight::Bold, BODY_SIZE))
            .fold(0.0, f32::max)
            .min(CONTENT_WIDTH * 0.45)
            + 10.0;
        let value_width = CONTENT_WIDTH - label_width;
        for (label, value) in pairs {
            let labels = self
                .fonts
                .wrap(label, Weight::Bold, BODY_SIZE, label_width - 10.0);
            let values = self
                .fonts
                .wrap(value, Weight::Regular, BODY_SIZE, value_width);
            let lines = labels.len().max(values.len());
            self.reserve(lines as f32 * BODY_SIZE * LINE_FACTOR);
            let top = self.y;
            for (index, label) in labels.iter().enumerate() {
                self.y = top + index as f32 * BODY_SIZE * LINE_FACTOR;
                self.text_line(MARGIN_X, label, BODY_SIZE, Weight::Bold);
            }
            for (index, value) in values.iter().enumerate() {
                self.y = top + index as f32 * BODY_SIZE * LINE_FACTOR;
                self.text_line(MARGIN_X + label_width, value, BODY_SIZE, Weight::Regular);
            }
            self.y = top + lines as f32 * BODY_SIZE * LINE_FACTOR;
        }
        self.y += 4.0;
    }

    /// A table whose rows run over as many pages as needed, its header repeated on each.
    fn table(&mut self, table: &Table) {
        if table.rows.is_empty() {
            self.paragraph("Нет записей.");
            return;
        }
        let widths: Vec<f32> = table
            .columns
            .iter()
            .map(|column| column.share * CONTENT_WIDTH)
            .collect();
        let header: Vec<String> = table.columns.iter().map(|c| c.title.clone()).collect();
        let header = self.wrap_row(&header, &widths, Weight::Bold);
        let header_height = row_height(&header);

        let mut header_on_page = false;
        for row in &table.rows {
            let cells = self.wrap_row(row, &widths, Weight::Regular);
            let height = row_height(&cells);
            if header_on_page && self.y + height > CONTENT_BOTTOM {
                self.new_page();
                self.text_line(
                    MARGIN_X,
                    &format!("{} (продолжение)", table.caption),
                    SUBHEADING_SIZE,
                    Weight::Bold,
                );
                self.y += 1.0;
                header_on_page = false;
            }
            if !header_on_page {
                self.reserve(header_height + height);
                self.push(Op::Band {
                    top: self.y,
                    height: header_height,
                    gray: 225,
                });
                self.table_row(&header, table, &widths, Weight::Bold);
                header_on_page = true;
            }
            self.table_row(&cells, table, &widths, Weight::Regular);
        }
        self.y += 6.0;
    }

    fn wrap_row(&self, cells: &[String], widths: &[f32], weight: Weight) -> Vec<Vec<String>> {
        cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| {
                let mut lines = self
                    .fonts
                    .wrap(cell, weight, TABLE_SIZE, width - 2.0 * CELL_PAD_X);
                // A row must fit on a page; the CSV has the whole text.
                if lines.len() > MAX_CELL_LINES {
                    lines.truncate(MAX_CELL_LINES);
                    if let Some(last) = lines.last_mut() {
                        last.pop();
                        last.push('…');
                    }
                }
                lines
            })
            .collect()
    }

    fn table_row(&mut self, cells: &[Vec<String>], table: &Table, widths: &[f32], weight: Weight) {
        let top = self.y;
        let mut left = MARGIN_X;
        for ((lines, column), width) in cells.iter().zip(&table.columns).zip(widths) {
            for (index, line) in lines.iter().enumerate() {
                let x = match column.align {
                    Align::Left => left + CELL_PAD_X,
                    Align::Right => {
                        left + width - CELL_PAD_X - self.fonts.width(line, weight, TABLE_SIZE)
                    }
                };
                self.push(Op::Text {
                    x,
                    baseline: top
                        + CELL_PAD_Y
                        + TABLE_SIZE
                        + index as f32 * TABLE_SIZE * LINE_FACTOR,
                    size: TABLE_SIZE,
                    weight,
                    gray: 0,
                    text: line.clone(),
                });
            }
            left += width;
        }
        self.y = top + row_height(cells);
        self.push(Op::Rule {
            y: self.y,
            gray: 200,
        });
    }
}

fn row_height(cells: &[Vec<String>]) -> f32 {
    let lines = cells.iter().map(Vec::len).max().unwrap_or(1);
    lines as f32 * TABLE_SIZE * LINE_FACTOR + 2.0 * CELL_PAD_Y
}

fn draw(fonts: &Fonts, report: &Report, pages: &[Vec<Op>]) -> Result<Vec<u8>, RenderError> {
    let settings = SerializeSettings {
        compress_content_streams: true,
        ..SerializeSettings::default()
    };
    let mut document = Document::new_with(settings);
    document.set_metadata(metadata(report));

    let footer_left = match &report.store {
        Some(store) => format!("{PDF_TITLE} · {} · {}", report.tenant_name, store.name),
        None => format!("{PDF_TITLE} · {}", report.tenant_name),
    };
    let page_settings = PageSettings::from_wh(PAGE_WIDTH, PAGE_HEIGHT)
        .ok_or_else(|| RenderError::Pdf("invalid page size".to_owned()))?;
    for (index, ops) in pages.iter().enumerate() {
        let mut page = document.start_page_with(page_settings.clone());
        let mut surface = page.surface();
        for op in ops {
            draw_op(&mut surface, fonts, op);
        }

        let number = format!("стр. {} из {}", index + 1, pages.len());
        let number_x = PAGE_WIDTH - MARGIN_X - fonts.width(&number, Weight::Regular, FOOTER_SIZE);
        let footer_room = number_x - MARGIN_X - 12.0;
        let footer = fonts
            .wrap(&footer_left, Weight::Regular, FOOTER_SIZE, footer_room)
            .into_iter()
            .next()
            .unwrap_or_default();
        for (x, text) in [(MARGIN_X, footer), (number_x, number)] {
            draw_op(
                &mut surface,
                fonts,
                &Op::Text {
                    x,
                    baseline: FOOTER_BASELINE,
                    size: FOOTER_SIZE,
                    weight: Weight::Regular,
                    gray: 90,
                    text,
                },
            );
        }
        surface.finish();
        page.finish();
    }

    document
        .finish()
        .map_err(|error| RenderError::Pdf(error.to_string()))
}

fn draw_op(surface: &mut Surface<'_>, fonts: &Fonts, op: &Op) {
    match op {
        Op::Text {
            x,
            baseline,
            size,
            weight,
            gray,
            text,
        } => {
            if text.is_empty() {
                return;
            }
            surface.set_fill(Some(gray_fill(*gray)));
            surface.set_stroke(None);
            let face = fonts.face(*weight);
            surface.draw_glyphs(
                Point::from_xy(*x, *baseline),
                &face.shape(text),
                face.font.clone(),
                text,
                *size,
                false,
            );
        }
        Op::Band { top, height, gray } => {
            let Some(rect) = Rect::from_xywh(MARGIN_X, *top, CONTENT_WIDTH, *height) else {
                return;
            };
            let mut builder = PathBuilder::new();
            builder.push_rect(rect);
            if let Some(path) = builder.finish() {
                surface.set_fill(Some(gray_fill(*gray)));
                surface.set_stroke(None);
                surface.draw_path(&path);
            }
        }
        Op::Rule { y, gray } => {
            let mut builder = PathBuilder::new();
            builder.move_to(MARGIN_X, *y);
            builder.line_to(MARGIN_X + CONTENT_WIDTH, *y);
            if let Some(path) = builder.finish() {
                surface.set_fill(None);
                surface.set_stroke(Some(Stroke {
                    paint: luma::Color::new(*gray).into(),
                    width: 0.5,
                    ..Stroke::default()
                }));
                surface.draw_path(&path);
            }
        }
    }
}

fn gray_fill(gray: u8) -> Fill {
    Fill {
        paint: luma::Color::new(gray).into(),
        ..Fill::default()
    }
}

fn metadata(report: &Report) -> Metadata {
    let at = report.generated_at;
    let created = krilla::metadata::DateTime::new(u16::try_from(at.year()).unwrap_or(0))
        .month(u8::try_from(at.month()).unwrap_or(1))
        .day(u8::try_from(at.day()).unwrap_or(1))
        .hour(u8::try_from(at.hour()).unwrap_or(0))
        .minute(u8::try_from(at.minute()).unwrap_or(0))
        .second(u8::try_from(at.second()).unwrap_or(0))
        .utc_offset_hour(0);
    let title = match &report.store {
        Some(store) => format!("{PDF_TITLE}: {}, {}", report.tenant_name, store.name),
        None => format!("{PDF_TITLE}: {}", report.tenant_name),
    };
    Metadata::new()
        .title(title)
        .language("ru".to_owned())
        .creator("iMark".to_owned())
        .creation_date(created)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]
mod tests {
    use chrono::{Duration, TimeZone};
    use uuid::Uuid;

    use super::*;
    use crate::reports::model::{
        CriterionCount, ExchangeSummary, HostStats, StoreRef, Totals, TruemarkStats,
    };

    const STORE_NAME: &str = "Магазин «Ромашка» на Лесной, 7";

    fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, hour, minute, 0)
            .unwrap()
    }

    fn count(key: &str, count: u64) -> Count {
        Count {
            key: key.to_owned(),
            count,
        }
    }

    /// The `n`th marking code of the test report, unique and of the usual shape.
    fn cis(n: usize) -> String {
        format!("0104600439931256215Q{n:05}")
    }

    fn report(warned: usize) -> Report {
        let store_id = Uuid::now_v7();
        let document = |n: usize| Uuid::from_u128(n as u128 + 1);
        Report {
            tenant_id: Uuid::now_v7(),
            tenant_name: "ООО \"Ромашка; и партнёры\"".to_owned(),
            store: Some(StoreRef {
                id: store_id,
                name: STORE_NAME.to_owned(),
            }),
            from: at(1, 0, 0),
            to: at(8, 0, 0),
            generated_at: at(8, 6, 30),
            totals: Totals {
                documents: 1234,
                items: 5678,
                documents_by_verdict: vec![
                    count("allow", 1100),
                    count("warn", 97),
                    count("block", 37),
                ],
                items_by_verdict: vec![
                    count("allow", 5400),
                    count("warn", 211),
                    count("block", 67),
                ],
                by_criterion: vec![
                    CriterionCount {
                        criterion: "expired".to_owned(),
                        blocked: 41,
                        warned: 0,
                    },
                    CriterionCount {
                        criterion: "not_owner".to_owned(),
                        blocked: 0,
                        warned: 150,
                    },
                    CriterionCount {
                        criterion: "check_unavailable".to_owned(),
                        blocked: 0,
                        warned: 61,
                    },
                    CriterionCount {
                        criterion: "sold_here_before".to_owned(),
                        blocked: 26,
                        warned: 0,
                    },
                ],
                documents_by_mode: vec![count("online", 1190), count("no_check", 44)],
            },
            no_check_periods: vec![NoCheckPeriod {
                base_url: "https://cdn.crpt.ru".to_owned(),
                region: "77".to_owned(),
                started_at: at(3, 14, 2),
                ended_at: Some(at(3, 14, 47)),
                reason: "ни один хост ЧЗ не ответил за отведённое время".to_owned(),
                exchanges: vec![
                    ExchangeSummary {
                        url: "https://cdn01.crpt.ru/api/v4/true-api/codes/check".to_owned(),
                        started_at: Some(at(3, 14, 1)),
                        http_status: None,
                        duration_ms: Some(1500),
                        error: Some("timed out".to_owned()),
                    },
                    ExchangeSummary {
                        url: "https://cdn02.crpt.ru/api/v4/true-api/codes/check".to_owned(),
                        started_at: Some(at(3, 14, 2)),
                        http_status: Some(503),
                        duration_ms: Some(212),
                        error: Some("=HYPERLINK(\"x\")".to_owned()),
                    },
                ],
            }],
            sales_without_tag1260: (0..44)
                .map(|n| DocumentRef {
                    document_id: document(10_000 + n),
                    store_id,
                    pos_document_id: format!("К-{n:04}"),
                    at: at(3, 14, 2) + Duration::seconds(n as i64 * 50),
                    kind: "sale".to_owned(),
                    mode: "no_check".to_owned(),
                    verdict: "allow".to_owned(),
                    items: 3,
                })
                .collect(),
            warned_and_sold: (0..warned)
                .map(|n| WarnedSale {
                    document_id: document(n / 3),
                    store_id,
                    pos_document_id: format!("ЧЕК-{:05}", n / 3),
                    at: at(2, 9, 0) + Duration::minutes(n as i64 * 7),
                    position: i32::try_from(n % 3 + 1).unwrap(),
                    cis: Some(cis(n)),
                    criteria: if n % 10 == 0 {
                        vec!["not_owner".to_owned(), "check_unavailable".to_owned()]
                    } else {
                        vec!["not_owner".to_owned()]
                    },
                })
                .collect(),
            truemark: TruemarkStats {
                exchanges: 1290,
                failed: 58,
                latency_p50_ms: Some(84.5),
                latency_p95_ms: Some(310.25),
                latency_p99_ms: Some(1210.0),
                latency_max_ms: Some(1500),
                failovers: 12,
                hosts: vec![
                    HostStats {
                        host: "cdn01.crpt.ru".to_owned(),
                        exchanges: 1000,
                        failed: 40,
                        latency_p50_ms: Some(80.0),
                        latency_p95_ms: Some(290.5),
                    },
                    HostStats {
                        host: "cdn02.crpt.ru".to_owned(),
                        exchanges: 290,
                        failed: 18,
                        latency_p50_ms: None,
                        latency_p95_ms: None,
                    },
                ],
            },
            integrity: crate::reports::model::Integrity {
                ok: true,
                chains: vec![crate::audit::ChainVerification {
                    store_id: Some(Uuid::nil()),
                    records: 1400,
                    first_seq: Some(18),
                    last_seq: Some(1417),
                    last_hash: Some("ab".repeat(32)),
                    ok: true,
                    broken: None,
                }],
                documents_unmatched: Vec::new(),
                exchanges_unrecorded: 0,
            },
        }
    }

    /// The CSV's records, the BOM checked and stripped.
    fn read_csv(bytes: &[u8], separator: u8) -> Vec<csv::StringRecord> {
        let body = bytes
            .strip_prefix(BOM)
            .expect("the CSV starts with a UTF-8 BOM");
        csv::ReaderBuilder::new()
            .delimiter(separator)
            .has_headers(false)
            .flexible(true)
            .from_reader(body)
            .records()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// The data rows of one section, as maps from its column names to values.
    fn section(records: &[csv::StringRecord], name: &str) -> Vec<Vec<(String, String)>> {
        let columns = records
            .iter()
            .find(|record| &record[0] == name && &record[1] == "columns")
            .unwrap_or_else(|| panic!("section {name} has a columns row"));
        records
            .iter()
            .filter(|record| &record[0] == name && &record[1] != "columns")
            .enumerate()
            .map(|(index, record)| {
                assert_eq!(
                    record[1],
                    (index + 1).to_string(),
                    "rows are numbered from 1"
                );
                assert_eq!(
                    record.len(),
                    columns.len(),
                    "{name} rows match their columns"
                );
                columns
                    .iter()
                    .skip(2)
                    .zip(record.iter().skip(2))
                    .map(|(column, value)| (column.to_owned(), value.to_owned()))
                    .collect()
            })
            .collect()
    }

    fn value<'r>(row: &'r [(String, String)], column: &str) -> &'r str {
        row.iter()
            .find(|(name, _)| name == column)
            .map(|(_, value)| value.as_str())
            .unwrap_or_else(|| panic!("column {column}"))
    }

    #[test]
    fn csv_reads_back_as_the_report_it_was_made_from() {
        let report = report(20);

        let bytes = csv(&report, CsvOptions::default()).unwrap();

        let records = read_csv(&bytes, b';');
        assert_eq!(&records[0], vec!["section", "row"]);
        let header = section(&records, "report");
        assert_eq!(header.len(), 1);
        assert_eq!(value(&header[0], "tenant_name"), report.tenant_name);
        assert_eq!(value(&header[0], "store_name"), STORE_NAME);
        assert_eq!(value(&header[0], "from"), "2026-11-01T00:00:00Z");
        assert_eq!(value(&header[0], "generated_at"), "2026-11-08T06:30:00Z");
        let totals = section(&records, "totals");
        assert_eq!(
            value(&totals[0], "documents"),
            report.totals.documents.to_string()
        );
        assert_eq!(value(&totals[0], "items"), report.totals.items.to_string());
        let verdicts = section(&records, "documents_by_verdict");
        let read: Vec<(&str, u64)> = verdicts
            .iter()
            .map(|row| {
                (
                    value(row, "verdict"),
                    value(row, "documents").parse().unwrap(),
                )
            })
            .collect();
        let expected: Vec<(&str, u64)> = report
            .totals
            .documents_by_verdict
            .iter()
            .map(|count| (count.key.as_str(), count.count))
            .collect();
        assert_eq!(read, expected);
        let criteria = section(&records, "by_criterion");
        assert_eq!(criteria.len(), report.totals.by_criterion.len());
        for (row, criterion) in criteria.iter().zip(&report.totals.by_criterion) {
            assert_eq!(value(row, "criterion"), criterion.criterion);
            assert_eq!(value(row, "blocked"), criterion.blocked.to_string());
            assert_eq!(value(row, "warned"), criterion.warned.to_string());
        }
        let truemark = section(&records, "truemark");
        assert_eq!(
            value(&truemark[0], "latency_p95_ms"),
            "310,25",
            "beside `;` a fraction has a decimal comma"
        );
        assert_eq!(value(&truemark[0], "failovers"), "12");
        let hosts = section(&records, "truemark_hosts");
        assert_eq!(value(&hosts[1], "latency_p50_ms"), "");
        assert_eq!(section(&records, "warned_and_sold").len(), 20);
        assert_eq!(section(&records, "sales_without_tag1260").len(), 44);
        let chains = section(&records, "integrity_chains");
        assert_eq!(value(&chains[0], "last_seq"), "1417");
        assert_eq!(value(&chains[0], "last_hash"), "ab".repeat(32));
        assert_eq!(value(&section(&records, "integrity")[0], "ok"), "true");
    }

    #[test]
    fn csv_links_exchanges_to_their_no_check_period_and_defuses_formulas() {
        let report = report(0);

        let records = read_csv(&csv(&report, CsvOptions::default()).unwrap(), b';');

        let periods = section(&records, "no_check_periods");
        assert_eq!(value(&periods[0], "started_at"), "2026-11-03T14:02:00Z");
        let exchanges = section(&records, "no_check_exchanges");
        assert_eq!(exchanges.len(), 2);
        assert!(exchanges.iter().all(|row| value(row, "period") == "1"));
        assert_eq!(value(&exchanges[0], "http_status"), "");
        assert_eq!(value(&exchanges[1], "http_status"), "503");
        assert_eq!(value(&exchanges[1], "error"), "'=HYPERLINK(\"x\")");
        assert!(section(&records, "warned_and_sold").is_empty());
    }

    #[test]
    fn csv_takes_a_comma_as_separator_and_ends_lines_with_crlf() {
        let report = report(3);

        let semicolon = csv(&report, CsvOptions::default()).unwrap();
        let comma = csv(
            &report,
            CsvOptions {
                separator: Separator::Comma,
            },
        )
        .unwrap();

        assert!(semicolon.starts_with(b"\xEF\xBB\xBFsection;row\r\n"));
        assert!(comma.starts_with(b"\xEF\xBB\xBFsection,row\r\n"));
        let text = String::from_utf8(comma.clone()).unwrap();
        assert_eq!(text.matches('\n').count(), text.matches("\r\n").count());
        let records = read_csv(&comma, b',');
        let header = section(&records, "report");
        // The tenant's name holds a `;` and quotes, the store's a `,`: both survive quoting.
        assert_eq!(value(&header[0], "tenant_name"), report.tenant_name);
        assert_eq!(value(&header[0], "store_name"), STORE_NAME);
        assert_eq!(read_csv(&semicolon, b';').len(), records.len());
        let truemark = section(&records, "truemark");
        assert_eq!(value(&truemark[0], "latency_p50_ms"), "84.5");
    }

    #[test]
    fn pdf_is_readable_russian_text_over_several_numbered_pages() {
        let report = report(500);

        let bytes = pdf(&report).unwrap();

        let pages = pdf_extract::extract_text_from_mem_by_pages(&bytes).unwrap();
        let pages: Vec<String> = pages.iter().map(|page| normalise(page)).collect();
        let count = pages.len();
        assert!(
            count > 1,
            "500 warned items take more than one page, got {count}"
        );
        let first = &pages[0];
        assert!(first.contains(PDF_TITLE), "title in: {first}");
        assert!(first.contains(STORE_NAME), "store in: {first}");
        for total in ["1234", "5678", "1100", "150", "1290", "310,2"] {
            assert!(first.contains(total), "{total} in: {first}");
        }
        let last = &pages[count - 1];
        assert!(last.contains(&cis(499)), "the last CIS in: {last}");
        assert!(
            last.contains(&format!("стр. {count} из {count}")),
            "page number in: {last}"
        );
        assert!(
            last.contains("5. Продано несмотря на предупреждение (продолжение)"),
            "the caption repeats on the last page: {last}"
        );
        assert!(
            last.contains("Поз."),
            "the header repeats on the last page: {last}"
        );
    }

    #[test]
    fn pdf_of_a_whole_tenant_names_the_store_of_each_line_and_says_when_a_list_is_empty() {
        let mut report = report(2);
        report.store = None;
        report.no_check_periods.clear();
        report.sales_without_tag1260.clear();
        let store_id = report.warned_and_sold[0].store_id.to_string();

        let bytes = pdf(&report).unwrap();

        let pages = pdf_extract::extract_text_from_mem_by_pages(&bytes).unwrap();
        let text = normalise(&pages.concat());
        assert!(text.contains("все магазины организации"), "{text}");
        assert!(text.contains("Периодов без проверки не было."), "{text}");
        assert!(text.contains("Нет записей."), "{text}");
        assert!(
            text.contains("Магазин Время (UTC)"),
            "a store column: {text}"
        );
        assert!(text.contains(&store_id[..9]), "{store_id} in: {text}");
        let count = pages.len();
        assert!(text.contains(&format!("стр. {count} из {count}")), "{text}");
    }

    #[test]
    fn long_words_break_after_a_separator_and_every_line_fits() {
        let fonts = Fonts::load().unwrap();
        let url = "https://cdn01.crpt.ru/api/v4/true-api/codes/check";
        let width = 80.0;

        let lines = fonts.wrap(&format!("ответ {url}"), Weight::Regular, TABLE_SIZE, width);

        assert_eq!(lines[0], "ответ");
        assert_eq!(lines[1..].concat(), url);
        assert!(
            lines[1..lines.len() - 1]
                .iter()
                .all(|line| line.ends_with('/')),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .all(|line| fonts.width(line, Weight::Regular, TABLE_SIZE) <= width),
            "{lines:?}"
        );
    }

    #[test]
    fn a_huge_cell_is_cut_so_that_its_row_fits_on_a_page() {
        let mut report = report(0);
        report.no_check_periods[0].exchanges[0].error = Some("нет ответа ".repeat(2000));

        let bytes = pdf(&report).unwrap();

        let text = normalise(&pdf_extract::extract_text_from_mem(&bytes).unwrap());
        assert!(text.contains("…"), "the cut is marked");
        assert!(text.matches("нет ответа").count() < 200);
    }

    /// Extracted text with runs of whitespace made single spaces, as extraction spaces words by
    /// their positions.
    fn normalise(text: &str) -> String {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}
