//! Validated addresses of the True API: the discovery base URL and the CDN hosts it lists.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use url::Url;

/// One of the three True API calls iMark makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `GET {base}/api/v4/true-api/cdn/info`: the list of CDN hosts.
    CdnInfo,
    /// `GET {host}/api/v4/true-api/cdn/health/check`: one host's health and latency.
    HealthCheck,
    /// `POST {host}/api/v4/true-api/codes/check`: the state of a receipt's codes.
    CodesCheck,
}

impl Endpoint {
    /// The endpoint's path below a base URL or host, starting with `/`.
    pub const fn path(self) -> &'static str {
        match self {
            Self::CdnInfo => "/api/v4/true-api/cdn/info",
            Self::HealthCheck => "/api/v4/true-api/cdn/health/check",
            Self::CodesCheck => "/api/v4/true-api/codes/check",
        }
    }

    /// The HTTP method the endpoint expects.
    pub const fn method(self) -> &'static str {
        match self {
            Self::CdnInfo | Self::HealthCheck => "GET",
            Self::CodesCheck => "POST",
        }
    }

    /// A short stable name for logs and stored evidence.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CdnInfo => "cdn_info",
            Self::HealthCheck => "health_check",
            Self::CodesCheck => "codes_check",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a text is not a usable True API address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidServiceUrl {
    #[error("not a URL: {0}")]
    Unparsable(#[from] url::ParseError),
    #[error("the scheme must be http or https, not {0:?}")]
    Scheme(String),
    #[error("the URL names no host")]
    NoHost,
    /// Credentials in the URL would end up in logs and stored evidence.
    #[error("the URL must not carry a user name or password")]
    Credentials,
    #[error("the URL must not carry a query or fragment")]
    QueryOrFragment,
}

/// The discovery base URL a tenant configures, e.g. `https://cdn.crpt.ru` in production or
/// `https://markirovka.sandbox.crptech.ru` in CRPT's sandbox.
///
/// http and https are accepted (the first for emulators on a LAN); a path prefix is kept and
/// trailing slashes are dropped, so `https://cdn.crpt.ru/` and `https://cdn.crpt.ru` are equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BaseUrl(Url);

/// One CDN host from the discovery list, e.g. `https://cdn01.crpt.ru`, validated like
/// [`BaseUrl`]. Equal hosts compare equal however their trailing slashes were written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CdnHost(Url);

impl BaseUrl {
    /// The discovery endpoint below this base.
    pub fn cdn_info_url(&self) -> Url {
        endpoint_url(&self.0, Endpoint::CdnInfo)
    }

    /// The base as a URL, without a trailing slash on its path.
    pub fn as_url(&self) -> &Url {
        &self.0
    }
}

impl CdnHost {
    /// `endpoint`'s full URL on this host.
    pub fn endpoint_url(&self, endpoint: Endpoint) -> Url {
        endpoint_url(&self.0, endpoint)
    }

    /// The host as a URL, without a trailing slash on its path.
    pub fn as_url(&self) -> &Url {
        &self.0
    }
}

macro_rules! service_url_conversions {
    ($type:ident) => {
        impl FromStr for $type {
            type Err = InvalidServiceUrl;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                parse_service_root(text).map(Self)
            }
        }

        impl TryFrom<String> for $type {
            type Error = InvalidServiceUrl;

            fn try_from(text: String) -> Result<Self, Self::Error> {
                text.parse()
            }
        }

        impl TryFrom<Url> for $type {
            type Error = InvalidServiceUrl;

            fn try_from(url: Url) -> Result<Self, Self::Error> {
                url.as_str().parse()
            }
        }

        impl From<$type> for String {
            fn from(value: $type) -> Self {
                value.to_string()
            }
        }

        /// Written as configured, without the trailing slash: `https://cdn01.crpt.ru`.
        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0.as_str().trim_end_matches('/'))
            }
        }
    };
}

service_url_conversions!(BaseUrl);
service_url_conversions!(CdnHost);

fn parse_service_root(text: &str) -> Result<Url, InvalidServiceUrl> {
    let mut url = Url::parse(text.trim())?;

    if !matches!(url.scheme(), "http" | "https") {
        return Err(InvalidServiceUrl::Scheme(url.scheme().to_owned()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(InvalidServiceUrl::NoHost);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(InvalidServiceUrl::Credentials);
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(InvalidServiceUrl::QueryOrFragment);
    }

    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Ok(url)
}

fn endpoint_url(root: &Url, endpoint: Endpoint) -> Url {
    let mut url = root.clone();
    let segments = endpoint
        .path()
        .split('/')
        .filter(|segment| !segment.is_empty());
    // A root always has a path (http and https URLs cannot be "cannot-be-a-base"), so the
    // segments are always writable; the `if` only satisfies the type.
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_slashes_do_not_change_a_host() {
        let bare: CdnHost = "https://cdn01.crpt.ru".parse().unwrap();
        let slashed: CdnHost = "https://cdn01.crpt.ru//".parse().unwrap();

        assert_eq!(bare, slashed);
        assert_eq!(slashed.to_string(), "https://cdn01.crpt.ru");
    }

    #[test]
    fn endpoints_hang_below_the_root_and_its_prefix() {
        let host: CdnHost = "https://cdn01.crpt.ru/".parse().unwrap();
        let proxied: CdnHost = "http://10.0.0.5:8080/crpt/".parse().unwrap();

        assert_eq!(
            host.endpoint_url(Endpoint::CodesCheck).as_str(),
            "https://cdn01.crpt.ru/api/v4/true-api/codes/check"
        );
        assert_eq!(
            proxied.endpoint_url(Endpoint::HealthCheck).as_str(),
            "http://10.0.0.5:8080/crpt/api/v4/true-api/cdn/health/check"
        );
    }

    #[test]
    fn the_discovery_url_hangs_below_the_base() {
        let base: BaseUrl = " https://markirovka.sandbox.crptech.ru/ ".parse().unwrap();

        assert_eq!(
            base.cdn_info_url().as_str(),
            "https://markirovka.sandbox.crptech.ru/api/v4/true-api/cdn/info"
        );
    }

    #[test]
    fn unusable_addresses_are_refused() {
        let refused = [
            ("cdn01.crpt.ru", "relative"),
            ("ftp://cdn01.crpt.ru", "scheme"),
            ("https://user:secret@cdn01.crpt.ru", "credentials"),
            ("https://cdn01.crpt.ru/?key=1", "query"),
            ("https://cdn01.crpt.ru/#top", "fragment"),
            ("", "empty"),
        ];

        for (text, why) in refused {
            assert!(
                text.parse::<CdnHost>().is_err(),
                "{why}: {text} was accepted"
            );
        }
    }

    #[test]
    fn hosts_travel_as_plain_strings() {
        let host: CdnHost = serde_json::from_str(r#""https://cdn02.crpt.ru/""#).unwrap();

        assert_eq!(
            serde_json::to_string(&host).unwrap(),
            r#""https://cdn02.crpt.ru""#
        );
        assert!(serde_json::from_str::<CdnHost>(r#""nonsense""#).is_err());
    }
}
