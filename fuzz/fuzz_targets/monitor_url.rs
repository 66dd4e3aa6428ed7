//! Monitor-URL resolution and validation (PROTOCOL §1, §6). The first byte picks the original
//! request URI and the origin policy; the rest is the reference the server sent. Never panics,
//! whatever is admitted is safe to follow, and the plain fast path agrees with the full one.
#![no_main]

use http::Uri;
use libfuzzer_sys::fuzz_target;
use tower_lro::fuzzing;

const ORIGINALS: [&str; 6] = [
    "http://127.0.0.1:8080/subscriptions/s/rg/vm/start?api-version=2020-01-01",
    "https://management.example/subscriptions/s/deployments/d?api-version=2016-09-01",
    "https://management.example:8443/a/b/c",
    "http://example.com/",
    "https://[::1]:8443/ops?a=b",
    "http://127.0.0.1/a?api-version=",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, reference)) = data.split_first() else {
        return;
    };
    let original: Uri = ORIGINALS[usize::from(selector >> 1) % ORIGINALS.len()]
        .parse()
        .unwrap();
    let any_origin = selector & 1 == 1;
    let https = original.scheme_str() == Some("https");
    // The plain path (no `url` crate) answers only where the full path agrees.
    if let Some(plain) = fuzzing::monitor_url_plain(&original, reference) {
        assert_eq!(
            fuzzing::monitor_url_full(&original, reference, false),
            Ok((plain, false)),
            "the plain path disagrees on {:?}",
            String::from_utf8_lossy(reference)
        );
    }
    match fuzzing::monitor_url(&original, reference, any_origin) {
        Ok((uri, cross_origin)) => {
            let scheme = uri.scheme_str();
            assert!(matches!(scheme, Some("http" | "https")), "{uri}");
            let authority = uri.authority().expect("an absolute URI");
            assert!(!authority.as_str().contains('@'), "userinfo in {uri}");
            assert!(!authority.host().is_empty(), "no host in {uri}");
            if https {
                assert_eq!(scheme, Some("https"), "https downgraded to {uri}");
            }
            if !any_origin {
                assert!(!cross_origin, "same-origin policy admitted {uri}");
            }
            if !cross_origin {
                assert_eq!(uri.scheme_str(), original.scheme_str());
                assert_eq!(
                    uri.authority().map(|a| a.host().to_ascii_lowercase()),
                    original.authority().map(|a| a.host().to_ascii_lowercase()),
                    "{uri} is not on the original origin"
                );
            }
            // Admitting what was admitted changes nothing.
            let again = fuzzing::monitor_url(&original, uri.to_string().as_bytes(), any_origin);
            assert_eq!(again, Ok((uri, cross_origin)));
        }
        Err((true, _)) if any_origin => {
            assert!(https, "only a downgrade is refused under any origin")
        }
        Err(_) => {}
    }
});
