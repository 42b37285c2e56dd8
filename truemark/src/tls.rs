//! The process-wide TLS crypto provider.
//!
//! reqwest is built without a crypto provider of its own (`rustls-no-provider`), so rustls must be
//! given one before the first HTTPS client is built, or building that client panics. iMark uses
//! `ring` everywhere: one provider per process keeps every TLS stack in agreement.

use std::sync::Once;

/// Installs rustls' `ring` provider as the process default, once.
///
/// Safe to call any number of times and from any thread. If some other component installed a
/// provider first, that one stays: rustls accepts one default per process, and any provider
/// serves our HTTPS calls. [`crate::client::TrueApiClient::new`] calls this itself; binaries
/// and tests that build other reqwest clients call it before building them.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();

    INSTALL.call_once(|| {
        // An `Err` only says a provider is already in place, which is all we need.
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installing_twice_leaves_a_default_provider() {
        install_crypto_provider();
        install_crypto_provider();

        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
