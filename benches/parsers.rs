//! Bench 4: the pure parsers, in ns per call, through the hidden `tower_lro::fuzzing`
//! entry points (enabled for dev targets by the self dev-dependency's `_fuzzing` feature).
//!
//! Note what each entry point adds to the layer's own path: `status_body` copies the borrowed
//! strings into an owned `StatusReading` (the layer keeps them borrowed, and copies `status` only
//! when it changed); `monitor_url` parses the original URI into its `Base` on every call (the layer
//! does that once per operation, then only resolves).
//!
//! `cargo bench --bench parsers`

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use tower_lro::fuzzing;

const RUNNING: &[u8] = br#"{"id":"/subscriptions/s/providers/Microsoft.Compute/locations/westus/operations/5b1a","name":"5b1a","status":"InProgress","startTime":"2024-05-01T10:00:00.1234567+00:00"}"#;
const SUCCEEDED: &[u8] = br#"{"id":"/subscriptions/s/providers/Microsoft.Compute/locations/westus/operations/5b1a","name":"5b1a","status":"Succeeded","percentComplete":100,"startTime":"2024-05-01T10:00:00.1234567+00:00","endTime":"2024-05-01T10:00:17.7654321+00:00","properties":{"output":{"a":[1,2,3],"b":"text"}},"resourceLocation":"https://management.azure.com/subscriptions/s/resourceGroups/g/providers/P/things/t?api-version=2024-01-01"}"#;
const FAILED: &[u8] = br#"{"status":"Failed","error":{"code":"QuotaExceeded","message":"Operation could not be completed as it results in exceeding approved quota.","details":[{"code":"Inner","message":"x"}]}}"#;
const ESCAPED: &[u8] = br#"{"status":"In\u0050rogress","name":"caf\u00e9"}"#;
const RESOURCE: &[u8] = br#"{"id":"/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/acct1","name":"acct1","type":"Microsoft.Storage/storageAccounts","location":"westus","tags":{"env":"test"},"sku":{"name":"Standard_LRS","tier":"Standard"},"kind":"StorageV2","properties":{"provisioningState":"Creating","primaryEndpoints":{"blob":"https://acct1.blob.core.windows.net/","queue":"https://acct1.queue.core.windows.net/"},"encryption":{"services":{"blob":{"enabled":true}}}}}"#;

/// The headers of a typical ARM poll response, plus `extra`.
fn headers(extra: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in [
        ("cache-control", "no-cache"),
        ("pragma", "no-cache"),
        ("content-type", "application/json; charset=utf-8"),
        ("expires", "-1"),
        ("x-ms-request-id", "0b7d2f9e-3c6a-4a54-9a1e-1f0b8e2f5a11"),
        (
            "x-ms-correlation-request-id",
            "7d0c1f6e-9a3b-4f0e-8d4c-2b1e3f4a5b6c",
        ),
        (
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        ),
        ("date", "Wed, 01 May 2024 10:00:05 GMT"),
    ]
    .iter()
    .chain(extra)
    {
        map.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    map
}

fn status_bodies(c: &mut Criterion) {
    let mut group = c.benchmark_group("parsers/status_body");
    for (name, body) in [
        ("running", RUNNING),
        ("succeeded_with_extras", SUCCEEDED),
        ("failed_with_error", FAILED),
        ("escaped_strings", ESCAPED),
    ] {
        group.bench_function(name, |b| b.iter(|| fuzzing::status_body(black_box(body))));
    }
    group.bench_function("phase_only", |b| {
        b.iter(|| fuzzing::phase(black_box("InProgress")))
    });
    group.finish();

    let mut group = c.benchmark_group("parsers/provisioning_state");
    group.bench_function("storage_account", |b| {
        b.iter(|| fuzzing::provisioning_state(black_box(RESOURCE)))
    });
    group.finish();
}

fn retry_after(c: &mut Criterion) {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_557_600);
    let mut group = c.benchmark_group("parsers/retry_after");
    for (name, extra) in [
        ("absent", &[][..]),
        ("seconds", &[("retry-after", "17")][..]),
        ("retry_after_ms", &[("retry-after-ms", "50")][..]),
        (
            "http_date",
            &[("retry-after", "Wed, 01 May 2024 10:00:20 GMT")][..],
        ),
        (
            "garbage_then_seconds",
            &[("retry-after-ms", "soon"), ("retry-after", "3")][..],
        ),
    ] {
        let map = headers(extra);
        group.bench_function(name, |b| {
            b.iter(|| fuzzing::retry_after(black_box(&map), now))
        });
    }
    group.finish();
}

fn monitor_urls(c: &mut Criterion) {
    let original: Uri = "https://management.azure.com/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/acct1?api-version=2023-01-01"
        .parse()
        .expect("a URI");
    let mut group = c.benchmark_group("parsers/monitor_url");
    for (name, reference, any) in [
        (
            "absolute_same_origin",
            "https://management.azure.com/subscriptions/s/providers/Microsoft.Storage/locations/westus/asyncoperations/5b1a?api-version=2023-01-01&t=638500000000000000&c=MIIHADCCBuigAwIBAgITfwKq",
            false,
        ),
        (
            "absolute_adds_api_version",
            "https://management.azure.com/subscriptions/s/providers/Microsoft.Storage/operations/5b1a?monitor=true",
            false,
        ),
        ("relative_path", "/subscriptions/s/operations/5b1a", false),
        (
            "cross_origin_rejected",
            "https://evil.example/subscriptions/s/operations/5b1a",
            false,
        ),
        (
            "cross_origin_allowed",
            "https://westus.management.azure.com/operations/5b1a?api-version=2023-01-01",
            true,
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| fuzzing::monitor_url(black_box(&original), black_box(reference.as_bytes()), any))
        });
    }
    group.finish();
}

fn classification(c: &mut Criterion) {
    let aao = headers(&[
        (
            "azure-asyncoperation",
            "https://management.azure.com/operations/1?api-version=1",
        ),
        ("retry-after", "17"),
    ]);
    let location = headers(&[
        (
            "location",
            "https://management.azure.com/operations/1?monitor=true",
        ),
        ("retry-after", "17"),
    ]);
    let plain = headers(&[]);
    let mut group = c.benchmark_group("parsers/classify");
    for (name, method, status, map) in [
        ("aao_202", Method::POST, StatusCode::ACCEPTED, &aao),
        ("location_202", Method::PUT, StatusCode::ACCEPTED, &location),
        (
            "put_201_body_decides",
            Method::PUT,
            StatusCode::CREATED,
            &plain,
        ),
        ("get_200_pass_through", Method::GET, StatusCode::OK, &plain),
        (
            "not_found_pass_through",
            Method::PUT,
            StatusCode::NOT_FOUND,
            &aao,
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| fuzzing::monitor_of(black_box(&method), black_box(status), black_box(map)))
        });
    }
    group.finish();
}

criterion_group! {
    name = parsers;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(800));
    targets = status_bodies, retry_after, monitor_urls, classification
}
criterion_main!(parsers);
