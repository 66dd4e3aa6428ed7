//! [`Azure`]: the Azure Resource Manager and data-plane protocol (PROTOCOL §1–§5), the default
//! dialect.

mod final_state;
pub(crate) mod rules;
pub(crate) mod status;

use std::borrow::Cow;

use http::header::LOCATION;
use http::{response, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

pub use self::final_state::{FinalStateVia, UnknownFinalStateVia};
use self::rules::{FinalTarget, Initial, PollReply};
use self::status::{CodeAndMessage, Phase};
use crate::dialect::envelope::code_or_header;
use crate::dialect::{
    Dialect, ErrorDetail, Follow, InitialBody, InitialHead, Observer, PollAt, RequestHead,
    StatusHead, Verdict,
};
use crate::protocol::headers;

/// Azure's long-running operations: `Azure-AsyncOperation` and `Operation-Location` status
/// monitors, `202` + `Location`, and a resource's `provisioningState` (PROTOCOL §1). The
/// dialect of [`LongRunningLayer::new`](crate::LongRunningLayer::new).
///
/// ```
/// use tower_lro::{Azure, LongRunningLayer};
///
/// let layer = LongRunningLayer::with_dialect(Azure::new().follow_created_location(true));
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Azure {
    follow_created_location: bool,
}

impl Azure {
    /// The dialect with its defaults.
    pub fn new() -> Self {
        Azure::default()
    }

    /// Whether a `201 Created` with only a `Location` header is followed as a `Location`
    /// monitor. Off by default: HTTP's ordinary "created here" is not an operation.
    pub fn follow_created_location(mut self, follow: bool) -> Self {
        self.follow_created_location = follow;
        self
    }
}

/// How an Azure operation is monitored (PROTOCOL §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// A status monitor named by `Azure-AsyncOperation`.
    AzureAsyncOperation,
    /// A status monitor named by `Operation-Location` (the data-plane form).
    OperationLocation,
    /// The `Location` of a `202 Accepted`: 202 while running, the result when done.
    Location,
    /// The resource itself, by its `provisioningState`.
    Resource,
}

impl Kind {
    /// The name in [`OperationInfo::monitor`](crate::OperationInfo::monitor) and in tokens.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::AzureAsyncOperation => "azure-async-operation",
            Kind::OperationLocation => "operation-location",
            Kind::Location => "location",
            Kind::Resource => "resource",
        }
    }
}

/// What the [`Azure`] dialect remembers about an operation: the kind of monitor, the initial
/// response's `Location` (a final-state source), and the request's [`FinalStateVia`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzureMonitor {
    #[serde(with = "kind_name")]
    kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "header_text")]
    location: Option<HeaderValue>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "via_name")]
    final_state_via: Option<FinalStateVia>,
}

impl AzureMonitor {
    fn of(kind: Kind, request: &RequestHead<'_>, initial: &HeaderMap) -> AzureMonitor {
        let status_monitor = matches!(kind, Kind::AzureAsyncOperation | Kind::OperationLocation);
        AzureMonitor {
            kind,
            // Only a status monitor's final response can come from the initial `Location`.
            location: status_monitor
                .then(|| initial.get(LOCATION).cloned())
                .flatten(),
            final_state_via: request.extension::<FinalStateVia>().copied(),
        }
    }

    /// A monitor of `kind`, for the crate's tests and fuzz targets.
    #[cfg(any(test, feature = "_fuzzing"))]
    pub(crate) fn from_parts(
        kind: Kind,
        location: Option<HeaderValue>,
        final_state_via: Option<FinalStateVia>,
    ) -> AzureMonitor {
        AzureMonitor {
            kind,
            location,
            final_state_via,
        }
    }
}

impl Dialect for Azure {
    type Monitor = AzureMonitor;

    fn name(&self) -> &'static str {
        "azure"
    }

    fn kind(&self, monitor: &AzureMonitor) -> &'static str {
        monitor.kind.as_str()
    }

    fn initial_head<'a>(
        &self,
        request: &RequestHead<'_>,
        response: &'a response::Parts,
    ) -> InitialHead<'a, AzureMonitor> {
        match rules::classify(
            request.method(),
            response.status,
            &response.headers,
            self.follow_created_location,
        ) {
            Initial::PassThrough => InitialHead::NotLongRunning,
            Initial::Monitor {
                kind,
                reference,
                sniff,
            } => {
                let follow = Follow::new(
                    AzureMonitor::of(kind, request, &response.headers),
                    PollAt::url(reference),
                );
                // A terminal `provisioningState` in a 200/201 body settles the operation inline;
                // a body that cannot be read leaves the decision to the monitor.
                if sniff {
                    InitialHead::ReadBody {
                        otherwise: Some(follow),
                    }
                } else {
                    InitialHead::Follow(follow)
                }
            }
            Initial::MaybeResource => InitialHead::ReadBody { otherwise: None },
        }
    }

    fn initial_body<'a>(
        &self,
        request: &RequestHead<'_>,
        response: &'a response::Parts,
        body: &'a [u8],
        // The monitor the head named, if any: `initial_head` asks for the body of a 200/201
        // with monitor headers (`otherwise`: that monitor) and of a PUT/PATCH 200/201 without.
        named: Option<Follow<'a, AzureMonitor>>,
        seen: &mut Observer<'_>,
    ) -> InitialBody<'a, AzureMonitor> {
        let (state, detail) = match status::parse_resource(body) {
            Ok(resource) => (resource.provisioning_state, resource.error),
            // Without a monitor only this body could tell whether the operation is done: JSON
            // that cannot be read is not "no state", it cannot be judged.
            Err(malformed)
                if named.is_none()
                    && status::meant_as_json_object(
                        body,
                        headers::declares_json(&response.headers),
                    ) =>
            {
                return InitialBody::Malformed(format!(
                    "the initial response cannot be judged: {malformed}"
                ));
            }
            // With a monitor, the initial body could only have settled the operation early;
            // unreadable, it leaves the decision to the monitor.
            Err(_) => (None, CodeAndMessage::default()),
        };
        match (named, state.as_deref().map(Phase::of)) {
            (_, Some(Phase::Succeeded)) | (None, None) => InitialBody::Final,
            (_, Some(Phase::Failed)) => {
                InitialBody::Failed(ended(state, detail, &response.headers))
            }
            (_, Some(Phase::Canceled)) => {
                InitialBody::Canceled(ended(state, detail, &response.headers))
            }
            (None, Some(Phase::Running)) => {
                if let Some(state) = &state {
                    seen.state(state);
                }
                let monitor = AzureMonitor::of(Kind::Resource, request, &response.headers);
                InitialBody::Follow(Follow::new(monitor, PollAt::OriginalUri))
            }
            (Some(monitor), None | Some(Phase::Running)) => InitialBody::Follow(monitor),
        }
    }

    fn status_head<'a>(
        &self,
        monitor: &AzureMonitor,
        response: &'a response::Parts,
    ) -> StatusHead<'a> {
        let verdict = match rules::poll_reply(monitor.kind, response.status) {
            PollReply::ReadStatus | PollReply::ReadResource => return StatusHead::ReadBody,
            PollReply::Running => Verdict::Running {
                moved: moved(monitor.kind, &response.headers),
            },
            PollReply::Final => Verdict::Done,
            PollReply::NoStatusBody => {
                Verdict::Malformed("the status monitor answered without a body".into())
            }
            PollReply::Transient => Verdict::Transient,
            // How `Location` and resource monitors report a failure; the body says why.
            PollReply::Failed => Verdict::Failed(ErrorDetail::default()),
            PollReply::Unexpected => Verdict::Unexpected,
        };
        StatusHead::Judged(verdict)
    }

    fn status_body<'a>(
        &self,
        monitor: &mut AzureMonitor,
        request: &RequestHead<'_>,
        response: &'a response::Parts,
        body: &'a [u8],
        seen: &mut Observer<'_>,
    ) -> Verdict<'a> {
        if monitor.kind == Kind::Resource {
            return resource_verdict(response, body, seen);
        }
        let parsed = match status::parse_status(body) {
            Ok(parsed) => parsed,
            Err(malformed) => return Verdict::Malformed(malformed.0),
        };
        seen.state(&parsed.status);
        if let Some(percent) = parsed.percent_complete {
            seen.percent_complete(percent);
        }
        if let Some(id) = &parsed.id {
            seen.operation_id(id);
        }
        if let Some(name) = &parsed.name {
            seen.operation_name(name);
        }
        let reported = Some(parsed.status);
        match Phase::of(reported.as_deref().unwrap_or_default()) {
            Phase::Running => Verdict::Running {
                moved: moved(monitor.kind, &response.headers),
            },
            Phase::Failed => Verdict::Failed(ended(reported, parsed.error, &response.headers)),
            Phase::Canceled => Verdict::Canceled(ended(reported, parsed.error, &response.headers)),
            Phase::Succeeded => {
                let target = rules::final_target(
                    request.method(),
                    monitor.kind,
                    monitor.final_state_via,
                    monitor.location.as_ref().map(HeaderValue::as_bytes),
                    parsed.resource_location.as_deref().map(str::as_bytes),
                );
                match target {
                    FinalTarget::LastStatus => Verdict::Done,
                    FinalTarget::OriginalUri => Verdict::Fetch(PollAt::OriginalUri),
                    FinalTarget::InitialLocation(reference) => {
                        Verdict::Fetch(PollAt::FromOriginal(Cow::Owned(reference.to_vec())))
                    }
                    // Named by the status body just read: relative to the monitor that answered.
                    FinalTarget::ResourceLocation(_) => {
                        Verdict::Fetch(PollAt::Reference(match parsed.resource_location {
                            Some(Cow::Borrowed(text)) => Cow::Borrowed(text.as_bytes()),
                            Some(Cow::Owned(text)) => Cow::Owned(text.into_bytes()),
                            None => Cow::Borrowed(&[]),
                        }))
                    }
                }
            }
        }
    }
}

/// A resource monitor's `200`/`201`: its `provisioningState` decides; none means done.
fn resource_verdict<'a>(
    response: &'a response::Parts,
    body: &'a [u8],
    seen: &mut Observer<'_>,
) -> Verdict<'a> {
    let resource = match status::parse_resource(body) {
        Ok(resource) => resource,
        Err(malformed) => return Verdict::Malformed(malformed.0),
    };
    let state = resource.provisioning_state;
    if let Some(state) = &state {
        seen.state(state);
    }
    match state.as_deref().map(Phase::of) {
        None | Some(Phase::Succeeded) => Verdict::Done,
        Some(Phase::Failed) => Verdict::Failed(ended(state, resource.error, &response.headers)),
        Some(Phase::Canceled) => Verdict::Canceled(ended(state, resource.error, &response.headers)),
        Some(Phase::Running) => Verdict::Running { moved: None },
    }
}

/// The header a poll response uses to move the monitor elsewhere.
fn moved(kind: Kind, headers: &HeaderMap) -> Option<&[u8]> {
    rules::moved_monitor(kind, headers).map(HeaderValue::as_bytes)
}

/// The outcome of an operation that reported `Failed` or `Canceled`: the body's error, with
/// `x-ms-error-code` as the code when the body has none.
fn ended<'a>(
    reported: Option<Cow<'a, str>>,
    detail: CodeAndMessage<'a>,
    headers: &'a HeaderMap,
) -> ErrorDetail<'a> {
    ErrorDetail {
        reported,
        code: code_or_header(detail.code, headers),
        message: detail.message,
    }
}

mod kind_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Kind;

    pub(super) fn serialize<S: Serializer>(kind: &Kind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(kind.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        let name = String::deserialize(d)?;
        super::kind_of(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown monitor kind {name:?}")))
    }
}

/// An Azure monitor kind by its [`Kind::as_str`] name.
fn kind_of(name: &str) -> Option<Kind> {
    [
        Kind::AzureAsyncOperation,
        Kind::OperationLocation,
        Kind::Location,
        Kind::Resource,
    ]
    .into_iter()
    .find(|kind| kind.as_str() == name)
}

mod header_text {
    use http::HeaderValue;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<HeaderValue>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        // A value that is not visible ASCII cannot be written as JSON text faithfully: left out.
        match value.as_ref().and_then(|v| v.to_str().ok()) {
            Some(text) => s.serialize_some(text),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<HeaderValue>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                HeaderValue::from_str(&text)
                    .map_err(|_| serde::de::Error::custom("bad initial Location"))
            })
            .transpose()
    }
}

mod via_name {
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::FinalStateVia;

    pub(super) fn serialize<S: Serializer>(
        via: &Option<FinalStateVia>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match via {
            Some(via) => s.serialize_some(via.as_str()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<FinalStateVia>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                FinalStateVia::from_str(&text).map_err(|_| {
                    serde::de::Error::custom(format!("unknown final-state-via {text:?}"))
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use http::{Method, Request};

    use super::*;
    use crate::dialect::table;
    use crate::dialect::testing::{self, Recorder};

    const URI: &str = "https://management.example/accounts/a?api-version=1";

    /// The original request of a table row.
    fn request(method: Method) -> Result<Request<()>, http::Error> {
        Request::builder().method(method).uri(URI).body(())
    }

    /// Response headers of a table row.
    type Headers = &'static [(&'static str, &'static str)];

    #[test]
    fn initial_responses() -> Result<(), http::Error> {
        let azure = Azure::new();
        #[rustfmt::skip]
        let rows: &[(Method, u16, Headers, &str)] = &[
            (Method::PUT, 404, &[("azure-asyncoperation", "/op")], "pass"),
            (Method::POST, 202, &[("azure-asyncoperation", "/op"), ("location", "/res")], r#"follow AzureMonitor { kind: AzureAsyncOperation, location: Some("/res"), final_state_via: None } ref /op"#),
            (Method::PUT, 201, &[("operation-location", "/op"), ("content-type", "application/json")], "read, else follow AzureMonitor { kind: OperationLocation, location: None, final_state_via: None } ref /op"),
            (Method::DELETE, 202, &[("location", "/res")], "follow AzureMonitor { kind: Location, location: None, final_state_via: None } ref /res"),
            (Method::PUT, 200, &[], "read, else pass"),
            (Method::POST, 201, &[("location", "/res")], "pass"),
            (Method::GET, 200, &[], "pass"),
        ];
        for (method, status, headers, expected) in rows {
            let request = request(method.clone())?;
            let response = testing::response_head(*status, headers)?;
            let verdict = azure.initial_head(&testing::request_head(&request), &response);
            assert_eq!(
                table::initial_head(&verdict),
                *expected,
                "{method} {status} {headers:?}"
            );
        }
        // Opted in, a 201 with only a Location is a Location monitor.
        let put = request(Method::PUT)?;
        let response = testing::response_head(201, &[("location", "/res")])?;
        let verdict = Azure::new()
            .follow_created_location(true)
            .initial_head(&testing::request_head(&put), &response);
        assert!(table::initial_head(&verdict)
            .starts_with("read, else follow AzureMonitor { kind: Location"));
        Ok(())
    }

    #[test]
    fn initial_bodies() -> Result<(), http::Error> {
        let azure = Azure::new();
        let put = request(Method::PUT)?;
        let head = testing::request_head(&put);
        let plain = testing::response_head(200, &[("content-type", "application/json")])?;
        let monitored = testing::response_head(201, &[("azure-asyncoperation", "/op")])?;
        let coded = testing::response_head(
            200,
            &[
                ("content-type", "application/json"),
                ("x-ms-error-code", "FromHeader"),
            ],
        )?;
        let created = testing::response_head(201, &[("x-ms-error-code", "FromHeader")])?;
        #[rustfmt::skip]
        let rows: &[(&response::Parts, &str, &str)] = &[
            (&plain, r#"{"properties":{"provisioningState":"Succeeded"}}"#, "final"),
            (&plain, r#"{"name":"no state"}"#, "final"),
            (&plain, "", "final"),
            (&plain, r#"{"properties":{"provisioningState":"Creating"}}"#, "follow AzureMonitor { kind: Resource, location: None, final_state_via: None } original"),
            (&plain, r#"{"provisioningState":"Failed","error":{"code":"Quota","message":"no"}}"#, "failed Failed/Quota/no"),
            (&plain, r#"{"provisioningState":"Cancelled"}"#, "canceled Cancelled/-/-"),
            // An empty or blank code is no code: the header's is used.
            (&coded, r#"{"provisioningState":"Failed","error":{"code":"","message":"no"}}"#, "failed Failed/FromHeader/no"),
            (&created, r#"{"properties":{"provisioningState":"Failed"},"error":{"code":" ","message":""}}"#, "failed Failed/FromHeader/-"),
            (&created, r#"{"provisioningState":"Canceled","error":{"code":""}}"#, "canceled Canceled/FromHeader/-"),
            (&plain, r#"{"provisioningState":"Failed","error":{"code":"","message":""}}"#, "failed Failed/-/-"),
            (&plain, r#"{"provisioningState": 7}"#, "malformed"),
            (&plain, "{not json", "malformed"),
            (&plain, "[1, 2]", "final"),
            (&monitored, r#"{"provisioningState":"Succeeded"}"#, "final"),
            (&monitored, r#"{"provisioningState":"Updating"}"#, "follow AzureMonitor { kind: AzureAsyncOperation, location: None, final_state_via: None } ref /op"),
            // With a monitor, an unreadable body leaves the decision to the monitor.
            (&monitored, "{not json", "follow AzureMonitor { kind: AzureAsyncOperation, location: None, final_state_via: None } ref /op"),
        ];
        for (response, body, expected) in rows {
            // The body is read when the head asks for it, and judged with what the head named.
            let otherwise = match azure.initial_head(&head, response) {
                InitialHead::ReadBody { otherwise } => otherwise,
                other => panic!("the head does not ask for the body: {other:?}"),
            };
            let verdict = azure.initial_body(
                &head,
                response,
                body.as_bytes(),
                otherwise,
                &mut Recorder::new().observer(),
            );
            assert_eq!(table::initial_body(&verdict), *expected, "{body}");
        }
        Ok(())
    }

    fn monitor(kind: Kind) -> AzureMonitor {
        AzureMonitor::from_parts(kind, None, None)
    }

    #[test]
    fn poll_heads() -> Result<(), http::Error> {
        use Kind::*;
        let azure = Azure::new();
        #[rustfmt::skip]
        let rows: &[(Kind, u16, Headers, &str)] = &[
            (AzureAsyncOperation, 200, &[], "read"),
            (AzureAsyncOperation, 204, &[], "malformed"),
            (AzureAsyncOperation, 404, &[], "unexpected"),
            (AzureAsyncOperation, 503, &[], "transient"),
            (Location, 202, &[], "running"),
            (Location, 202, &[("location", "/next")], "running, moved /next"),
            (Location, 200, &[], "done"),
            (Location, 204, &[], "done"),
            (Location, 404, &[], "failed -/-/-"),
            (Location, 429, &[], "transient"),
            (Resource, 200, &[], "read"),
            (Resource, 202, &[("location", "/ignored")], "running"),
            (Resource, 409, &[], "failed -/-/-"),
            (Resource, 505, &[], "unexpected"),
        ];
        for (kind, status, headers, expected) in rows {
            let response = testing::response_head(*status, headers)?;
            let verdict = azure.status_head(&monitor(*kind), &response);
            assert_eq!(table::status_head(&verdict), *expected, "{kind:?} {status}");
        }
        Ok(())
    }

    #[test]
    fn status_bodies() -> Result<(), http::Error> {
        let azure = Azure::new();
        let response = testing::response_head(200, &[("x-ms-error-code", "FromHeader")])?;
        let moved = testing::response_head(200, &[("azure-asyncoperation", "/moved")])?;
        let put = request(Method::PUT)?;
        let post = request(Method::POST)?;
        let aao = monitor(Kind::AzureAsyncOperation);
        let resource = monitor(Kind::Resource);
        let aao_with_location = AzureMonitor::from_parts(
            Kind::AzureAsyncOperation,
            Some(HeaderValue::from_static("/result")),
            None,
        );
        let last_status = AzureMonitor::from_parts(
            Kind::AzureAsyncOperation,
            None,
            Some(FinalStateVia::AzureAsyncOperation),
        );
        #[rustfmt::skip]
        let rows: &[(&Request<()>, &AzureMonitor, &response::Parts, &str, &str)] = &[
            (&put, &aao, &response, r#"{"status":"InProgress"}"#, "running"),
            (&put, &aao, &moved, r#"{"status":"InProgress"}"#, "running, moved /moved"),
            (&put, &aao, &response, r#"{"status":"Succeeded"}"#, "fetch original"),
            (&put, &last_status, &response, r#"{"status":"Succeeded"}"#, "done"),
            (&post, &aao_with_location, &response, r#"{"status":"Succeeded"}"#, "fetch from-original /result"),
            (&post, &aao, &response, r#"{"status":"Succeeded","resourceLocation":"/r"}"#, "fetch ref /r"),
            (&post, &aao, &response, r#"{"status":"Succeeded"}"#, "done"),
            (&put, &aao, &response, r#"{"status":"Failed","error":{"code":"Bad","message":"m"}}"#, "failed Failed/Bad/m"),
            (&put, &aao, &response, r#"{"status":"Failed"}"#, "failed Failed/FromHeader/-"),
            (&put, &aao, &response, r#"{"status":"canceled"}"#, "canceled canceled/FromHeader/-"),
            // An empty or blank code or message is absent: the header's code is used.
            (&put, &aao, &response, r#"{"status":"Failed","error":{"code":""}}"#, "failed Failed/FromHeader/-"),
            (&put, &aao, &response, r#"{"status":"Failed","error":{"code":"  ","message":"m"}}"#, "failed Failed/FromHeader/m"),
            (&put, &aao, &response, r#"{"status":"Canceled","error":{"code":"","message":""}}"#, "canceled Canceled/FromHeader/-"),
            (&put, &resource, &response, r#"{"properties":{"provisioningState":"Failed"},"error":{"code":""}}"#, "failed Failed/FromHeader/-"),
            (&put, &aao, &response, r#"{"percentComplete":5}"#, "malformed"),
            (&put, &aao, &response, "", "malformed"),
        ];
        for (request, monitor, response, body, expected) in rows {
            let verdict = azure.status_body(
                &mut (*monitor).clone(),
                &testing::request_head(request),
                response,
                body.as_bytes(),
                &mut Recorder::new().observer(),
            );
            assert_eq!(
                table::verdict(&verdict),
                *expected,
                "{} {body}",
                request.method()
            );
        }
        Ok(())
    }

    #[test]
    fn resource_bodies_and_what_they_report() -> Result<(), http::Error> {
        let azure = Azure::new();
        let put = request(Method::PUT)?;
        let head = testing::request_head(&put);
        let response = testing::response_head(200, &[])?;
        for (body, expected, status) in [
            (
                r#"{"properties":{"provisioningState":"Updating"}}"#,
                "running",
                Some("Updating"),
            ),
            (
                r#"{"properties":{"provisioningState":"Succeeded"}}"#,
                "done",
                Some("Succeeded"),
            ),
            (r#"{"id":"no state"}"#, "done", None),
            (
                r#"{"provisioningState":"Failed"}"#,
                "failed Failed/-/-",
                Some("Failed"),
            ),
            ("[]", "malformed", None),
        ] {
            let mut seen = Recorder::new();
            let verdict = azure.status_body(
                &mut monitor(Kind::Resource),
                &head,
                &response,
                body.as_bytes(),
                &mut seen.observer(),
            );
            assert_eq!(table::verdict(&verdict), expected, "{body}");
            assert_eq!(seen.state(), status, "{body}");
        }
        let mut seen = Recorder::new();
        let body = br#"{"status":"InProgress","percentComplete":40,"id":"/ops/1","name":"1"}"#;
        azure.status_body(
            &mut monitor(Kind::OperationLocation),
            &head,
            &response,
            body,
            &mut seen.observer(),
        );
        assert_eq!(seen.state(), Some("InProgress"));
        assert_eq!(seen.percent_complete(), Some(40.0));
        assert_eq!(seen.operation_id(), Some("/ops/1"));
        assert_eq!(seen.operation_name(), Some("1"));
        Ok(())
    }

    #[test]
    fn the_monitor_round_trips_and_refuses_what_it_cannot_read() {
        let monitor = AzureMonitor::from_parts(
            Kind::Location,
            Some(HeaderValue::from_static("/x")),
            Some(FinalStateVia::OriginalUri),
        );
        let json = serde_json::to_value(&monitor).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "location", "location": "/x", "final_state_via": "original-uri"})
        );
        assert_eq!(
            serde_json::from_value::<AzureMonitor>(json).unwrap(),
            monitor
        );
        for bad in [
            serde_json::json!({"kind": "google-operation"}),
            serde_json::json!({"kind": "location", "final_state_via": "nowhere"}),
            serde_json::json!({"kind": "location", "location": "a\nb"}),
            serde_json::json!("location"),
        ] {
            assert!(
                serde_json::from_value::<AzureMonitor>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
