//! Monitor URLs: resolve against the original request, validate, compare origins (PROTOCOL §1, §5,
//! §6). Everything here is pure; the caller decides what a rejection means.

use std::fmt;

use http::Uri;
use url::Url;

/// An origin a monitor URL may point at: scheme, host and port (the default port filled in).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Origin(url::Origin);

impl Origin {
    pub(crate) fn of(url: &Url) -> Origin {
        Origin(url.origin())
    }

    /// Parses `https://host[:port]`; anything with a path beyond `/`, a query, userinfo or another
    /// scheme is refused so a typo in an allow-list cannot widen it.
    pub(crate) fn parse(text: &str) -> Result<Origin, String> {
        let url = Url::parse(text).map_err(|e| format!("{text:?} is not an origin: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{text:?} is not an http or https origin"));
        }
        if url.host().is_none()
            || !url.username().is_empty()
            || url.password().is_some()
            || url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(format!("{text:?} must be only scheme://host[:port]"));
        }
        Ok(Origin(url.origin()))
    }

    fn is_https(&self) -> bool {
        matches!(&self.0, url::Origin::Tuple(scheme, ..) if scheme == "https")
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.ascii_serialization())
    }
}

/// Which origins monitor URLs may point at.
#[derive(Clone, Debug, Default)]
pub(crate) enum OriginPolicy {
    /// Only the original request's origin.
    #[default]
    SameOrigin,
    /// The original origin plus these.
    AllowList(Vec<Origin>),
    /// Any http(s) origin (never an https → http downgrade).
    Any,
}

/// Why a monitor URL is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Not a usable absolute http(s) URL.
    Invalid(String),
    /// A valid URL on an origin the policy does not allow (including a downgrade to http).
    CrossOrigin(String),
}

/// The original request's URI, parsed once, against which monitor URLs are resolved and judged.
#[derive(Clone, Debug)]
pub(crate) struct Base {
    url: Url,
    origin: Origin,
    api_version: Option<String>,
}

/// A monitor URL that passed validation.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) uri: Uri,
    /// Whether it is on another origin than the original request (credentials must not go there).
    pub(crate) cross_origin: bool,
}

impl Base {
    pub(crate) fn new(original: &Uri) -> Result<Base, Rejection> {
        let url = Url::parse(&original.to_string()).map_err(|e| {
            Rejection::Invalid(format!(
                "the original request URI {original} is not absolute: {e}"
            ))
        })?;
        let api_version = url
            .query_pairs()
            .find(|(name, _)| name == "api-version")
            .map(|(_, value)| value.into_owned());
        Ok(Base {
            origin: Origin::of(&url),
            url,
            api_version,
        })
    }

    /// Resolves `reference` (an RFC 3986 reference: absolute, `//host/x`, `/x`, `x`) against the
    /// URI of the response that named it — `named_by`, or the original URI when that is `None`
    /// (RFC 9110 §10.2.2: the target URI of the request that was answered) — then validates the
    /// result and checks it against `policy`, always relative to the original request's origin.
    /// Resolution comes first, so `//evil.example/x` is judged as the cross-origin URL it is.
    pub(crate) fn admit(
        &self,
        reference: &[u8],
        named_by: Option<&Uri>,
        policy: &OriginPolicy,
    ) -> Result<Admitted, Rejection> {
        let text = std::str::from_utf8(reference)
            .map_err(|_| Rejection::Invalid("the monitor URL is not UTF-8".into()))?
            .trim();
        if text.is_empty() {
            return Err(Rejection::Invalid("the monitor URL is empty".into()));
        }
        // Errors show the URL without its query values or userinfo: they may be credentials.
        let shown = super::redact::url(text);
        let named_by = match named_by {
            // A URI we admitted before: parsing it again cannot fail, but if it did, the reference
            // would be refused rather than resolved against the wrong base.
            Some(uri) => Some(Url::parse(&uri.to_string()).map_err(|e| {
                Rejection::Invalid(format!("cannot resolve monitor URL {shown:?}: {e}"))
            })?),
            None => None,
        };
        let mut url = named_by
            .as_ref()
            .unwrap_or(&self.url)
            .join(text)
            .map_err(|e| {
                Rejection::Invalid(format!("cannot resolve monitor URL {shown:?}: {e}"))
            })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Rejection::Invalid(format!(
                "monitor URL {shown:?} has scheme {:?}; only http and https are followed",
                url.scheme()
            )));
        }
        if url.host().is_none() {
            return Err(Rejection::Invalid(format!(
                "monitor URL {shown:?} has no host"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Rejection::Invalid(format!(
                "monitor URL {shown:?} carries userinfo"
            )));
        }
        // Fragments are never sent to a server.
        url.set_fragment(None);
        if let Some(version) = &self.api_version {
            if !url.query_pairs().any(|(name, _)| name == "api-version") {
                url.query_pairs_mut().append_pair("api-version", version);
            }
        }
        let uri = Uri::try_from(url.as_str()).map_err(|e| {
            Rejection::Invalid(format!("monitor URL {shown:?} is not a valid URI: {e}"))
        })?;
        // Judged last, so that a URL that is invalid is refused as invalid whatever the policy.
        let cross_origin = self.judge_origin(&url, &shown, policy)?;
        Ok(Admitted { uri, cross_origin })
    }

    /// Whether `url` is on another origin than the original request, if `policy` allows it.
    fn judge_origin(
        &self,
        url: &Url,
        shown: &str,
        policy: &OriginPolicy,
    ) -> Result<bool, Rejection> {
        let origin = Origin::of(url);
        if origin == self.origin {
            return Ok(false);
        }
        if self.origin.is_https() && !origin.is_https() {
            return Err(Rejection::CrossOrigin(format!(
                "monitor URL {shown:?} downgrades https to http"
            )));
        }
        let allowed = match policy {
            OriginPolicy::SameOrigin => false,
            OriginPolicy::AllowList(list) => list.contains(&origin),
            OriginPolicy::Any => true,
        };
        if !allowed {
            return Err(Rejection::CrossOrigin(format!(
                "monitor URL {shown:?} is on {origin:?}, not on the request's origin {:?}",
                self.origin
            )));
        }
        Ok(true)
    }
}

/// `reference` resolved against `base` as an absolute URL, for a cancel request a token carries;
/// the layer admits it, by its origin policy, when the cancel is sent.
pub(crate) fn resolve(base: &Uri, reference: &str) -> Option<String> {
    let base = Url::parse(&base.to_string()).ok()?;
    base.join(reference.trim()).ok().map(String::from)
}

/// The common case without the `url` crate. `reference` is either an absolute URL on exactly the
/// original's `scheme://authority`, or a path-absolute reference (`/x`, not `//x`) named by the
/// original or by a URI on that same origin; either way followed by a path (and query) made only
/// of characters no URL parser rewrites, without dot segments, and with an `api-version` whenever
/// the original had one. The original's authority must be one the full parser serialises as it
/// is written. For such a reference [`Base::admit`] would return the same URI, same-origin; for
/// any other, this returns `None` and the caller takes the full path.
pub(crate) fn admit_plain(original: &Uri, named_by: Option<&Uri>, reference: &[u8]) -> Option<Uri> {
    let scheme = original
        .scheme_str()
        .filter(|s| matches!(*s, "http" | "https"))?;
    let authority = original.authority()?.as_str();
    if !is_canonical_authority(scheme, authority) {
        return None;
    }
    let relative = reference.starts_with(b"/");
    let rest = if relative {
        // `//host/x` names another authority; a relative reference resolves against the URI that
        // named it, which must be on the original's origin for the result to be.
        let same_origin = named_by.is_none_or(|uri| {
            uri.scheme_str() == Some(scheme)
                && uri.authority().map(|a| a.as_str()) == Some(authority)
        });
        if reference.starts_with(b"//") || !same_origin {
            return None;
        }
        reference
    } else {
        reference
            .strip_prefix(scheme.as_bytes())?
            .strip_prefix(b"://")?
            .strip_prefix(authority.as_bytes())?
    };
    // A '/' right after the authority: `https://host.evil` never passes for `https://host`.
    if rest.first() != Some(&b'/') || !rest.iter().all(|&b| PLAIN[usize::from(b)]) {
        return None;
    }
    let (path, query) = match rest.iter().position(|&b| b == b'?') {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    if path
        .split(|&b| b == b'/')
        .any(|segment| segment == b"." || segment == b"..")
    {
        return None;
    }
    let has_api_version = |query: &[u8]| {
        query
            .split(|&b| b == b'&')
            .any(|pair| pair == b"api-version" || pair.starts_with(b"api-version="))
    };
    let original_has = original
        .query()
        .is_some_and(|q| has_api_version(q.as_bytes()));
    if original_has && !query.is_some_and(has_api_version) {
        return None;
    }
    if relative {
        let mut absolute = Vec::with_capacity(scheme.len() + 3 + authority.len() + rest.len());
        absolute.extend_from_slice(scheme.as_bytes());
        absolute.extend_from_slice(b"://");
        absolute.extend_from_slice(authority.as_bytes());
        absolute.extend_from_slice(rest);
        Uri::from_maybe_shared(absolute).ok()
    } else {
        Uri::try_from(reference).ok()
    }
}

/// Whether the WHATWG URL parser writes `authority` back byte for byte: a lower-case DNS name of
/// letters, digits and hyphens (no IDNA label), or a dotted-quad IPv4 address without leading
/// zeros, and a port that is not the scheme's default, has no leading zero, and is not empty.
/// Userinfo, IPv6 literals, shorthand or hexadecimal IPv4 (`127.1`, `0x7f.0.0.1`) and anything
/// else are normalised by the parser, so they take the full path.
fn is_canonical_authority(scheme: &str, authority: &str) -> bool {
    // Byte by byte, in one pass over each part: this runs once per operation, on its poll path.
    let bytes = authority.as_bytes();
    let (host, port) = match bytes.iter().position(|&b| b == b':') {
        Some(at) => (&bytes[..at], Some(&bytes[at + 1..])),
        None => (bytes, None),
    };
    let port_ok = port.is_none_or(|port| {
        let default = matches!((scheme, port), ("http", b"80") | ("https", b"443"));
        matches!(port.first(), Some(b'1'..=b'9')) && port.iter().all(u8::is_ascii_digit) && !default
    });
    let (mut labels, mut all_dns, mut all_octets, mut numeric_last) = (0, true, true, false);
    for label in host.split(|&b| b == b'.') {
        labels += 1;
        all_dns &= !label.is_empty()
            && !label.starts_with(b"xn--")
            && label
                .iter()
                .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let digits = label.iter().all(u8::is_ascii_digit);
        all_octets &= !label.is_empty()
            && digits
            && (label == b"0" || label[0] != b'0')
            && label.len() <= 3
            && label
                .iter()
                .fold(0u16, |n, &b| n * 10 + u16::from(b - b'0'))
                <= 255;
        // The parser reads a host whose last label is a number (decimal, or `0x…`) as IPv4.
        numeric_last = digits || label.starts_with(b"0x");
    }
    let host_ok = if numeric_last {
        labels == 4 && all_octets
    } else {
        all_dns
    };
    port_ok && host_ok
}

/// The bytes that no URL parser percent-encodes or rewrites in the path or query of an http(s)
/// URL: ASCII letters and digits and `-._~!$&()*+,;=:@/?`. `%`, `'`, `\`, `#`, spaces and
/// controls are left to the full parser. A table, since every byte of a monitor URL is looked up.
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = (byte as u8).is_ascii_alphanumeric();
        byte += 1;
    }
    let punctuation = b"-._~!$&()*+,;=:@/?";
    let mut i = 0;
    while i < punctuation.len() {
        table[punctuation[i] as usize] = true;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    fn base(uri: &str) -> Base {
        Base::new(&uri.parse().unwrap()).unwrap()
    }

    fn admit(
        base_uri: &str,
        reference: &str,
        policy: &OriginPolicy,
    ) -> Result<(String, bool), Rejection> {
        base(base_uri)
            .admit(reference.as_bytes(), None, policy)
            .map(|a| (a.uri.to_string(), a.cross_origin))
    }

    const ORIG: &str = "https://management.example/subs/1/accounts/a?api-version=2016-01-01";

    #[test]
    fn references_resolve_against_the_response_that_named_them() {
        let base = base(ORIG);
        let polled: Uri =
            "https://management.example/subs/1/operations/op-1?api-version=2016-01-01"
                .parse()
                .unwrap();
        let admit = |reference: &str, named_by| {
            base.admit(reference.as_bytes(), named_by, &OriginPolicy::SameOrigin)
                .map(|a| a.uri.to_string())
        };
        assert_eq!(
            admit("next?step=2", Some(&polled)),
            Ok(
                "https://management.example/subs/1/operations/next?step=2&api-version=2016-01-01"
                    .into()
            )
        );
        assert_eq!(
            admit("next?step=2", None),
            Ok(
                "https://management.example/subs/1/accounts/next?step=2&api-version=2016-01-01"
                    .into()
            )
        );
        // The origin is still judged against the original request, whatever named the URL.
        let elsewhere: Uri = "https://status.example/op".parse().unwrap();
        assert!(matches!(
            base.admit(b"/op-2", Some(&elsewhere), &OriginPolicy::SameOrigin),
            Err(Rejection::CrossOrigin(_))
        ));
    }

    #[test]
    fn resolves_relative_references_and_keeps_api_version() {
        let same = OriginPolicy::SameOrigin;
        let cases = [
            (
                "https://management.example/ops/1?monitor=true&api-version=2016-01-01",
                "https://management.example/ops/1?monitor=true&api-version=2016-01-01",
            ),
            (
                "/ops/2",
                "https://management.example/ops/2?api-version=2016-01-01",
            ),
            (
                "ops/3",
                "https://management.example/subs/1/accounts/ops/3?api-version=2016-01-01",
            ),
            (
                "../x",
                "https://management.example/subs/1/x?api-version=2016-01-01",
            ),
            (
                "?q=1",
                "https://management.example/subs/1/accounts/a?q=1&api-version=2016-01-01",
            ),
            (
                "/ops/4?api-version=2099-01-01",
                "https://management.example/ops/4?api-version=2099-01-01",
            ),
            (
                "/ops/5#frag",
                "https://management.example/ops/5?api-version=2016-01-01",
            ),
            (
                "HTTPS://MANAGEMENT.EXAMPLE:443/ops/6",
                "https://management.example/ops/6?api-version=2016-01-01",
            ),
            (
                "  /ops/7  ",
                "https://management.example/ops/7?api-version=2016-01-01",
            ),
        ];
        for (reference, expected) in cases {
            assert_eq!(
                admit(ORIG, reference, &same),
                Ok((expected.to_string(), false)),
                "{reference}"
            );
        }
        // Without api-version on the original request nothing is added.
        assert_eq!(
            admit("http://127.0.0.1:8080/a", "/ops/1", &same),
            Ok(("http://127.0.0.1:8080/ops/1".to_string(), false))
        );
    }

    #[test]
    fn rejects_unusable_urls() {
        for reference in [
            "",
            "   ",
            "file:///etc/passwd",
            "ftp://management.example/x",
            "javascript:alert(1)",
            "data:text/plain,hi",
            "https://user:pw@management.example/x",
            "https://user@management.example/x",
            "//user@management.example/x",
            "http://[::1",
            "https://",
        ] {
            assert!(
                matches!(
                    admit(ORIG, reference, &OriginPolicy::Any),
                    Err(Rejection::Invalid(_))
                ),
                "{reference:?} -> {:?}",
                admit(ORIG, reference, &OriginPolicy::Any)
            );
        }
        assert!(matches!(
            base(ORIG).admit(b"/x\xff", None, &OriginPolicy::SameOrigin),
            Err(Rejection::Invalid(_))
        ));
        // `\\` reads as `//`: a host no URI can carry is invalid under every policy.
        for policy in [OriginPolicy::SameOrigin, OriginPolicy::Any] {
            assert!(matches!(
                base("http://127.0.0.1:8080/s/start").admit(br#"\\"0"#, None, &policy),
                Err(Rejection::Invalid(_))
            ));
        }
    }

    #[test]
    fn other_origins_need_the_policy() {
        let same = OriginPolicy::SameOrigin;
        for reference in [
            "//evil.example/x",
            "https://evil.example/x",
            "https://management.example:8443/x",
            "https://sub.management.example/x",
        ] {
            assert!(
                matches!(
                    admit(ORIG, reference, &same),
                    Err(Rejection::CrossOrigin(_))
                ),
                "{reference}"
            );
        }
        let allow = OriginPolicy::AllowList(vec![Origin::parse("https://status.example").unwrap()]);
        assert_eq!(
            admit(ORIG, "https://status.example/op", &allow),
            Ok((
                "https://status.example/op?api-version=2016-01-01".into(),
                true
            ))
        );
        assert_eq!(
            admit(ORIG, "https://STATUS.example:443/op?api-version=1", &allow),
            Ok(("https://status.example/op?api-version=1".into(), true))
        );
        assert!(matches!(
            admit(ORIG, "https://evil.example/x", &allow),
            Err(Rejection::CrossOrigin(_))
        ));
        assert_eq!(
            admit(ORIG, "//evil.example/x", &OriginPolicy::Any),
            Ok(("https://evil.example/x?api-version=2016-01-01".into(), true))
        );
    }

    #[test]
    fn never_downgrades_https_to_http() {
        let allow_http =
            OriginPolicy::AllowList(vec![Origin::parse("http://management.example").unwrap()]);
        for policy in [OriginPolicy::SameOrigin, allow_http, OriginPolicy::Any] {
            assert!(matches!(
                admit(ORIG, "http://management.example/ops/1", &policy),
                Err(Rejection::CrossOrigin(_))
            ));
        }
        // An upgrade is another origin too, allowed only by the policy.
        assert!(matches!(
            admit(
                "http://127.0.0.1/a",
                "https://127.0.0.1/ops",
                &OriginPolicy::SameOrigin
            ),
            Err(Rejection::CrossOrigin(_))
        ));
        assert!(admit(
            "http://127.0.0.1/a",
            "https://127.0.0.1/ops",
            &OriginPolicy::Any
        )
        .is_ok());
    }

    #[test]
    fn origins_in_allow_lists_are_strict() {
        assert!(Origin::parse("https://status.example").is_ok());
        assert!(Origin::parse("https://status.example/").is_ok());
        assert!(Origin::parse("http://127.0.0.1:8080").is_ok());
        for bad in [
            "status.example",
            "https://status.example/path",
            "ftp://x.example",
            "https://u@x.example",
            "https://x.example?q",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Origin::parse("https://status.example:443").unwrap(),
            Origin::parse("https://status.example").unwrap()
        );
    }

    #[test]
    fn the_original_uri_must_be_absolute() {
        assert!(matches!(
            Base::new(&"/relative".parse().unwrap()),
            Err(Rejection::Invalid(_))
        ));
    }

    #[test]
    fn the_plain_path_agrees_with_the_full_one_or_steps_aside() {
        let originals = [
            ORIG,
            "http://127.0.0.1:8080/a/b?x=1",
            "https://Management.example/a?api-version=1",
            "https://management.example:443/a",
            "http://u@127.0.0.1/a",
            "http://127.1:8080/a",
            "http://0x7f.0.0.1:8080/a",
            "http://127.000.0.1:8080/a",
            "http://[0:0::1]:8080/a",
            "http://xn--bcher-kva.example/a",
            "http://management.example:08080/a",
        ];
        let references = [
            "https://management.example/operations/1?api-version=2016-01-01",
            "https://management.example/operations/1?monitor=true&api-version=2016-01-01",
            "https://management.example/operations/1",
            "https://management.example/operations/1?api-version",
            "https://management.example/a/./b?api-version=1",
            "https://management.example/a/../b?api-version=1",
            "https://management.example/a%2e%2e/b?api-version=1",
            "https://management.example/a'b?api-version=1",
            "https://management.example/a?q='x'&api-version=1",
            "https://management.example.evil/x?api-version=1",
            "https://management.example:8443/x?api-version=1",
            "https://management.example?api-version=1",
            "https://management.example/x?api-version=1#frag",
            "http://127.0.0.1:8080/ops/1",
            "http://127.0.0.1:8080/ops/1?monitor=true",
            "http://127.0.0.1:80800/ops/1",
            "http://127.0.0.1:8080\\ops",
            "http://127.0.0.1:8080/ops/1 ",
            "http://127.1:8080/ops/1",
            "http://[0:0::1]:8080/ops/1",
            "HTTP://127.0.0.1:8080/ops/1",
            "/ops/1",
            "/ops/1?api-version=2016-01-01",
            "/v1/operations/op-1:cancel",
            "//evil.example/ops/1",
            "/a/../b",
            "/a b",
            "/a\\b",
            "ops/1",
        ];
        let elsewhere: Uri = "http://elsewhere.example/ops".parse().unwrap();
        let mut plain_hits = 0;
        for original in originals {
            let original_uri: Uri = original.parse().unwrap();
            for named_by in [None, Some(&original_uri), Some(&elsewhere)] {
                for reference in references {
                    let Some(plain) = admit_plain(&original_uri, named_by, reference.as_bytes())
                    else {
                        continue;
                    };
                    plain_hits += 1;
                    let full = Base::new(&original_uri).unwrap().admit(
                        reference.as_bytes(),
                        named_by,
                        &OriginPolicy::Any,
                    );
                    assert_eq!(
                        full.map(|a| (a.uri, a.cross_origin)),
                        Ok((plain, false)),
                        "{original} + {reference} named by {named_by:?}"
                    );
                }
            }
        }
        assert_eq!(plain_hits, 23, "the common cases take the plain path");
    }

    #[test]
    fn the_plain_path_takes_paths_on_the_original_origin() {
        let original: Uri = "http://127.0.0.1:8080/v1/projects/p/things:run"
            .parse()
            .unwrap();
        let plain = admit_plain(&original, None, b"/v1/operations/op-1").unwrap();
        assert_eq!(plain, "http://127.0.0.1:8080/v1/operations/op-1");
        let other: Uri = "http://elsewhere.example/x".parse().unwrap();
        assert_eq!(
            admit_plain(&original, Some(&other), b"/v1/operations/op-1"),
            None
        );
        assert_eq!(admit_plain(&original, None, b"//elsewhere.example/x"), None);
    }

    #[test]
    fn only_authorities_the_parser_keeps_as_written_are_canonical() {
        for (scheme, authority, canonical) in [
            ("http", "127.0.0.1:8080", true),
            ("http", "management.example", true),
            ("https", "a-b.c9.example:8443", true),
            ("http", "0.0.0.0", true),
            ("http", "127.1", false),
            ("http", "1.2.3.4.", false),
            ("http", "256.0.0.1", false),
            ("http", "01.2.3.4", false),
            ("http", "0x7f.0.0.1", false),
            ("http", "host.", false),
            ("http", "Host", false),
            ("http", "xn--bcher-kva.example", false),
            ("http", "[::1]:8080", false),
            ("http", "u@host", false),
            ("http", "host:80", false),
            ("https", "host:443", false),
            ("http", "host:443", true),
            ("http", "host:", false),
            ("http", "host:08080", false),
            ("http", "a..b", false),
        ] {
            assert_eq!(
                is_canonical_authority(scheme, authority),
                canonical,
                "{scheme}://{authority}"
            );
        }
    }
}
