//! Azure's header-level rules as pure functions of methods, status codes and headers
//! (PROTOCOL §1, §3, §4): which monitor an initial response names, what a poll's status code
//! means for each monitor, and where the final response comes from.

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use super::FinalStateVia;
use super::Kind;
use crate::dialect::is_transient;
use crate::protocol::headers;

/// The status monitor of Azure Resource Manager.
const AZURE_ASYNC_OPERATION: HeaderName = HeaderName::from_static("azure-asyncoperation");
/// The status monitor of Azure's data-plane services.
const OPERATION_LOCATION: HeaderName = HeaderName::from_static("operation-location");

/// What the initial response is (PROTOCOL §1, tried top to bottom).
#[derive(Debug, PartialEq)]
pub(crate) enum Initial<'a> {
    /// Not long-running: return it untouched.
    PassThrough,
    /// Follow `reference`. When `sniff`, the response is a 200/201 whose body must be read first:
    /// a terminal `provisioningState` there settles the operation inline.
    Monitor {
        kind: Kind,
        reference: &'a HeaderValue,
        sniff: bool,
    },
    /// A PUT/PATCH 200/201 without monitor headers: its body decides between "done inline" and a
    /// resource monitor.
    MaybeResource,
}

pub(crate) fn classify<'a>(
    method: &Method,
    status: StatusCode,
    headers: &'a HeaderMap,
    follow_created_location: bool,
) -> Initial<'a> {
    let created_or_ok = status == StatusCode::OK || status == StatusCode::CREATED;
    if !(created_or_ok || status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT) {
        return Initial::PassThrough;
    }
    // A body that cannot be JSON has no provisioningState to find.
    let sniff = created_or_ok && headers::may_be_json(headers);
    if let Some(reference) = headers.get(AZURE_ASYNC_OPERATION) {
        return Initial::Monitor {
            kind: Kind::AzureAsyncOperation,
            reference,
            sniff,
        };
    }
    if let Some(reference) = headers.get(OPERATION_LOCATION) {
        return Initial::Monitor {
            kind: Kind::OperationLocation,
            reference,
            sniff,
        };
    }
    if let Some(reference) = headers.get(http::header::LOCATION) {
        if status == StatusCode::ACCEPTED
            || status == StatusCode::CREATED && follow_created_location
        {
            return Initial::Monitor {
                kind: Kind::Location,
                reference,
                sniff,
            };
        }
    }
    if created_or_ok && (method == Method::PUT || method == Method::PATCH) && sniff {
        return Initial::MaybeResource;
    }
    Initial::PassThrough
}

/// The header a poll response uses to move the monitor elsewhere.
pub(crate) fn moved_monitor(kind: Kind, headers: &HeaderMap) -> Option<&HeaderValue> {
    match kind {
        Kind::AzureAsyncOperation => headers.get(AZURE_ASYNC_OPERATION),
        Kind::OperationLocation => headers.get(OPERATION_LOCATION),
        Kind::Location => headers.get(http::header::LOCATION),
        Kind::Resource => None,
    }
}

/// What a poll response's status code means for each monitor (PROTOCOL §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PollReply {
    /// Read the body as a status-monitor body.
    ReadStatus,
    /// Read the body as a resource (its `provisioningState`).
    ReadResource,
    /// Still running; the body is not needed.
    Running,
    /// Done: this response is the final one, returned untouched.
    Final,
    /// A status monitor answered without a body to read.
    NoStatusBody,
    /// Worth retrying.
    Transient,
    /// A `Location` or resource monitor answered a client error (a 4xx other than 408 and 429):
    /// the server says the operation ended unsuccessfully; the body says why.
    Failed,
    /// Anything else: an error.
    Unexpected,
}

pub(crate) fn poll_reply(kind: Kind, status: StatusCode) -> PollReply {
    if is_transient(status) {
        return PollReply::Transient;
    }
    match (kind, status.as_u16()) {
        (Kind::AzureAsyncOperation | Kind::OperationLocation, 200..=202) => PollReply::ReadStatus,
        (Kind::AzureAsyncOperation | Kind::OperationLocation, 204) => PollReply::NoStatusBody,
        (Kind::Location | Kind::Resource, 202) => PollReply::Running,
        (Kind::Location, 200 | 201 | 204) | (Kind::Resource, 204) => PollReply::Final,
        (Kind::Resource, 200 | 201) => PollReply::ReadResource,
        (Kind::Location | Kind::Resource, 400..=499) => PollReply::Failed,
        _ => PollReply::Unexpected,
    }
}

/// Where the final response comes from after a status monitor said `Succeeded` (PROTOCOL §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FinalTarget<'a> {
    /// The last status-monitor response.
    LastStatus,
    /// GET the original request URI.
    OriginalUri,
    /// GET the initial response's `Location`.
    InitialLocation(&'a [u8]),
    /// GET the status body's `resourceLocation`.
    ResourceLocation(&'a [u8]),
}

pub(crate) fn final_target<'a>(
    method: &Method,
    kind: Kind,
    via: Option<FinalStateVia>,
    initial_location: Option<&'a [u8]>,
    resource_location: Option<&'a [u8]>,
) -> FinalTarget<'a> {
    match (via, initial_location) {
        (Some(FinalStateVia::AzureAsyncOperation | FinalStateVia::OperationLocation), _) => {
            return FinalTarget::LastStatus;
        }
        (Some(FinalStateVia::OriginalUri), _) => return FinalTarget::OriginalUri,
        (Some(FinalStateVia::Location), Some(location)) => {
            return FinalTarget::InitialLocation(location)
        }
        (Some(FinalStateVia::Location) | None, _) => {}
    }
    if method == Method::PUT || method == Method::PATCH {
        match resource_location {
            Some(location) if kind == Kind::OperationLocation => {
                FinalTarget::ResourceLocation(location)
            }
            _ => FinalTarget::OriginalUri,
        }
    } else if method == Method::POST {
        match (initial_location, resource_location) {
            (Some(location), _) => FinalTarget::InitialLocation(location),
            (None, Some(location)) => FinalTarget::ResourceLocation(location),
            (None, None) => FinalTarget::LastStatus,
        }
    } else {
        FinalTarget::LastStatus
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{CONTENT_TYPE, LOCATION};

    fn headers(pairs: &[(&str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    fn kind_of(initial: Initial<'_>) -> Option<(Kind, &str, bool)> {
        match initial {
            Initial::Monitor {
                kind,
                reference,
                sniff,
            } => Some((kind, reference.to_str().unwrap(), sniff)),
            _ => None,
        }
    }

    #[test]
    fn decision_table_rows() {
        let aao = ("azure-asyncoperation", "/aao");
        let ol = ("operation-location", "/ol");
        let loc = ("location", "/loc");
        let put = Method::PUT;
        let post = Method::POST;
        // Not 200/201/202/204: untouched, whatever the headers.
        for code in [100, 203, 206, 301, 302, 400, 404, 409, 500, 503] {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(
                classify(&put, status, &headers(&[aao, ol, loc]), true),
                Initial::PassThrough,
                "{code}"
            );
        }
        // Azure-AsyncOperation wins over everything else.
        let h = headers(&[loc, ol, aao]);
        assert_eq!(
            kind_of(classify(&post, StatusCode::ACCEPTED, &h, false)),
            Some((Kind::AzureAsyncOperation, "/aao", false))
        );
        assert_eq!(
            kind_of(classify(&put, StatusCode::CREATED, &h, false)),
            Some((Kind::AzureAsyncOperation, "/aao", true))
        );
        assert_eq!(
            kind_of(classify(&put, StatusCode::OK, &h, false)),
            Some((Kind::AzureAsyncOperation, "/aao", true))
        );
        assert_eq!(
            kind_of(classify(&put, StatusCode::NO_CONTENT, &h, false)),
            Some((Kind::AzureAsyncOperation, "/aao", false))
        );
        // Then Operation-Location.
        let h = headers(&[loc, ol]);
        assert_eq!(
            kind_of(classify(&post, StatusCode::ACCEPTED, &h, false)),
            Some((Kind::OperationLocation, "/ol", false))
        );
        // Then 202 + Location.
        let h = headers(&[loc]);
        assert_eq!(
            kind_of(classify(&put, StatusCode::ACCEPTED, &h, false)),
            Some((Kind::Location, "/loc", false))
        );
        // A 201 with only Location is "created here", unless the builder opts in.
        assert_eq!(
            classify(&put, StatusCode::CREATED, &h, false),
            Initial::MaybeResource
        );
        assert_eq!(
            classify(&post, StatusCode::CREATED, &h, false),
            Initial::PassThrough
        );
        assert_eq!(
            kind_of(classify(&post, StatusCode::CREATED, &h, true)),
            Some((Kind::Location, "/loc", true))
        );
        assert_eq!(
            classify(&post, StatusCode::OK, &h, true),
            Initial::PassThrough
        );
        // PUT/PATCH 200/201 without headers: the body decides.
        for m in [Method::PUT, Method::PATCH] {
            assert_eq!(
                classify(&m, StatusCode::OK, &HeaderMap::new(), false),
                Initial::MaybeResource
            );
            assert_eq!(
                classify(&m, StatusCode::CREATED, &HeaderMap::new(), false),
                Initial::MaybeResource
            );
            assert_eq!(
                classify(&m, StatusCode::NO_CONTENT, &HeaderMap::new(), false),
                Initial::PassThrough
            );
            assert_eq!(
                classify(&m, StatusCode::ACCEPTED, &HeaderMap::new(), false),
                Initial::PassThrough
            );
        }
        // Other methods: done inline.
        for m in [Method::GET, Method::POST, Method::DELETE] {
            assert_eq!(
                classify(&m, StatusCode::OK, &HeaderMap::new(), false),
                Initial::PassThrough
            );
            assert_eq!(
                classify(&m, StatusCode::ACCEPTED, &HeaderMap::new(), false),
                Initial::PassThrough
            );
        }
        // A body declared as something else than JSON is not sniffed.
        let h = headers(&[("content-type", "text/html")]);
        assert_eq!(
            classify(&put, StatusCode::OK, &h, false),
            Initial::PassThrough
        );
        let h = headers(&[aao, ("content-type", "application/octet-stream")]);
        assert_eq!(
            kind_of(classify(&put, StatusCode::CREATED, &h, false)),
            Some((Kind::AzureAsyncOperation, "/aao", false))
        );
        let _ = (CONTENT_TYPE, LOCATION);
    }

    #[test]
    fn poll_replies() {
        use Kind::*;
        use PollReply::*;
        let table: &[(Kind, u16, PollReply)] = &[
            (AzureAsyncOperation, 200, ReadStatus),
            (AzureAsyncOperation, 201, ReadStatus),
            (AzureAsyncOperation, 202, ReadStatus),
            (OperationLocation, 200, ReadStatus),
            (AzureAsyncOperation, 204, NoStatusBody),
            (AzureAsyncOperation, 404, Unexpected),
            (AzureAsyncOperation, 203, Unexpected),
            (Location, 202, Running),
            (Location, 200, Final),
            (Location, 201, Final),
            (Location, 204, Final),
            (Location, 404, Failed),
            (Location, 409, Failed),
            (Location, 400, Failed),
            (Location, 302, Unexpected),
            (Location, 501, Unexpected),
            (OperationLocation, 409, Unexpected),
            (Resource, 202, Running),
            (Resource, 200, ReadResource),
            (Resource, 201, ReadResource),
            (Resource, 204, Final),
            (Resource, 400, Failed),
            (Resource, 410, Failed),
            (Resource, 500, Transient),
            (Resource, 505, Unexpected),
        ];
        for &(kind, code, reply) in table {
            assert_eq!(
                poll_reply(kind, StatusCode::from_u16(code).unwrap()),
                reply,
                "{kind:?} {code}"
            );
        }
        for code in [408, 429, 500, 502, 503, 504] {
            for kind in [AzureAsyncOperation, OperationLocation, Location, Resource] {
                assert_eq!(
                    poll_reply(kind, StatusCode::from_u16(code).unwrap()),
                    Transient
                );
            }
        }
        for code in [400, 401, 403, 404, 409, 410, 501, 505] {
            assert!(!is_transient(StatusCode::from_u16(code).unwrap()));
        }
    }

    #[test]
    fn final_targets() {
        use FinalTarget::*;
        use Kind::{AzureAsyncOperation as Aao, OperationLocation as Ol};
        let (put, patch, post, delete) = (Method::PUT, Method::PATCH, Method::POST, Method::DELETE);
        let (loc, res): (Option<&[u8]>, Option<&[u8]>) = (Some(b"/loc"), Some(b"/res"));
        // Defaults by method.
        assert_eq!(final_target(&put, Aao, None, None, None), OriginalUri);
        assert_eq!(final_target(&patch, Aao, None, loc, res), OriginalUri);
        assert_eq!(
            final_target(&put, Ol, None, None, res),
            ResourceLocation(b"/res")
        );
        assert_eq!(final_target(&put, Ol, None, loc, None), OriginalUri);
        assert_eq!(
            final_target(&post, Aao, None, loc, res),
            InitialLocation(b"/loc")
        );
        assert_eq!(
            final_target(&post, Aao, None, None, res),
            ResourceLocation(b"/res")
        );
        assert_eq!(final_target(&post, Aao, None, None, None), LastStatus);
        assert_eq!(final_target(&delete, Aao, None, loc, res), LastStatus);
        assert_eq!(final_target(&delete, Ol, None, loc, res), LastStatus);
        // Overrides.
        for via in [
            FinalStateVia::AzureAsyncOperation,
            FinalStateVia::OperationLocation,
        ] {
            assert_eq!(final_target(&put, Aao, Some(via), loc, res), LastStatus);
            assert_eq!(final_target(&post, Ol, Some(via), loc, res), LastStatus);
        }
        let original = Some(FinalStateVia::OriginalUri);
        assert_eq!(final_target(&delete, Aao, original, loc, res), OriginalUri);
        assert_eq!(final_target(&post, Aao, original, loc, res), OriginalUri);
        let location = Some(FinalStateVia::Location);
        assert_eq!(
            final_target(&put, Aao, location, loc, None),
            InitialLocation(b"/loc")
        );
        assert_eq!(
            final_target(&delete, Aao, location, loc, None),
            InitialLocation(b"/loc")
        );
        // `location` without a Location header falls back to the default.
        assert_eq!(final_target(&put, Aao, location, None, None), OriginalUri);
        assert_eq!(final_target(&post, Aao, location, None, None), LastStatus);
    }
}
