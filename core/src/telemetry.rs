//! Log output: human-readable text or one JSON object per line, filtered by `RUST_LOG`.

use std::io::IsTerminal as _;

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::LogFormat;

/// The default filter when `RUST_LOG` is not set.
const DEFAULT_FILTER: &str = "info,sea_orm=warn,sqlx=warn";

/// Installs the process-wide subscriber. Call once, from a binary's `main`. Text is coloured
/// only when standard output is a terminal: a file or a log collector gets plain lines.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let colour = std::io::stdout().is_terminal();
    Registry::default()
        .with(filter)
        .with(layer(format, std::io::stdout, colour))
        .init();
}

/// The formatting layer, writing to `writer`, with ANSI colours in text when `colour`; tests
/// use it to capture every line.
pub fn layer<S, W>(format: LogFormat, writer: W, colour: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        LogFormat::Text => fmt.with_target(false).with_ansi(colour).boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Lines {
        type Writer = Self;

        fn make_writer(&'w self) -> Self {
            self.clone()
        }
    }

    fn text(colour: bool) -> String {
        let lines = Lines::default();
        let subscriber = Registry::default().with(layer(LogFormat::Text, lines.clone(), colour));
        tracing::subscriber::with_default(subscriber, || {
            let _span = tracing::info_span!("request", store.id = "s1").entered();
            tracing::info!(verdict = "allow", "document checked");
        });
        let bytes = lines.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn plain_text_has_no_colour_codes_and_coloured_text_has_them() {
        let plain = text(false);
        let coloured = text(true);

        assert!(plain.contains("document checked"), "{plain}");
        assert!(plain.contains("verdict=\"allow\""), "{plain}");
        assert!(!plain.contains('\u{1b}'), "{plain:?}");
        assert!(coloured.contains('\u{1b}'), "{coloured:?}");
    }
}
