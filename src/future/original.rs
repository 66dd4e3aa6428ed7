//! The original request being followed: what polls repeat, and the URLs a server names,
//! resolved against it and judged by the layer's origin policy.

use http::header::HeaderName;
use http::{Extensions, HeaderMap, Method, Request, Uri, Version};

use crate::config::Config;
use crate::dialect::{PollAt, RequestHead};
use crate::error::{Error, ErrorKind};
use crate::options::{CancelVia, CredentialsWithheld, Polling};
use crate::protocol::headers;
use crate::protocol::url::{self, Base, Rejection};

/// The parts of the original request that polls repeat (PROTOCOL §5), and the layer's own
/// options it carried.
pub(crate) struct Original {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    version: Version,
    /// As polls send them: no payload, conditional or (once another origin is involved)
    /// credential headers.
    pub(crate) headers: HeaderMap,
    extensions: Extensions,
    /// The caller's way to cancel, taken out of the request so no layer below sees it.
    cancel_via: Option<CancelVia>,
    /// The original URI parsed for resolution; made on first use, as most references take the
    /// plain path.
    base: Option<Base>,
}

impl Original {
    /// Takes the layer's own options out of `req` and keeps what polls repeat.
    pub(crate) fn of<B>(req: &mut Request<B>, polling: Polling) -> Original {
        let cancel_via = req.extensions_mut().remove::<CancelVia>();
        let (headers, extensions) = match polling {
            // Nothing will be repeated: copy nothing.
            Polling::Disabled => (HeaderMap::new(), Extensions::new()),
            Polling::Enabled | Polling::AcceptOnly => (
                headers::for_polls(req.headers().clone()),
                req.extensions().clone(),
            ),
        };
        Original {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers,
            extensions,
            cancel_via,
            base: None,
        }
    }

    /// The request as a dialect sees it.
    pub(crate) fn head(&self) -> RequestHead<'_> {
        RequestHead {
            method: &self.method,
            uri: &self.uri,
            headers: &self.headers,
            extensions: &self.extensions,
        }
    }

    /// How the caller asked to cancel the operation, when it did.
    pub(crate) fn cancel_via(&self) -> Option<&CancelVia> {
        self.cancel_via.as_ref()
    }

    /// Continues an operation of another original request: the token's method and URI, its
    /// headers under those of the request that carried the token.
    /// `withheld`: the credential headers beyond the built-in ones, as in [`Config`].
    pub(crate) fn adopt(
        &mut self,
        method: Method,
        uri: Uri,
        mut carried: HeaderMap,
        withheld: &[HeaderName],
    ) {
        // A token never holds this layer's or dialect's credentials; a forged one might.
        headers::strip_credentials(&mut carried, withheld);
        for name in self.headers.keys() {
            carried.remove(name);
        }
        carried.extend(std::mem::take(&mut self.headers));
        self.headers = carried;
        self.method = method;
        self.uri = uri;
        self.base = None;
    }

    /// Resolves a URL a dialect named — against `polled` for a reference a poll answer made, else
    /// the original URI — validates it, and withholds credentials and extensions from every
    /// later request if it is on another origin (for good: they do not come back on a later
    /// hop).
    pub(crate) fn admit(
        &mut self,
        at: &PollAt<'_>,
        polled: Option<&Uri>,
        config: &Config,
    ) -> Result<Uri, Error> {
        let (reference, named_by) = match at {
            PollAt::OriginalUri => return Ok(self.uri.clone()),
            PollAt::Reference(reference) => (&**reference, polled),
            PollAt::FromOriginal(reference) => (&**reference, None),
        };
        self.admit_reference(reference, named_by, config)
    }

    pub(crate) fn admit_reference(
        &mut self,
        reference: &[u8],
        named_by: Option<&Uri>,
        config: &Config,
    ) -> Result<Uri, Error> {
        // A URL on the original's own origin needs no parser (the common case).
        if let Some(uri) = url::admit_plain(&self.uri, named_by, reference) {
            return Ok(uri);
        }
        let base = match self.base.take() {
            Some(base) => base,
            None => Base::new(&self.uri).map_err(refused)?,
        };
        let admitted = self
            .base
            .insert(base)
            .admit(reference, named_by, &config.origins)
            .map_err(refused)?;
        if admitted.cross_origin {
            self.withhold_credentials(&config.withheld);
        }
        Ok(admitted.uri)
    }

    fn withhold_credentials(&mut self, withheld: &[HeaderName]) {
        headers::strip_credentials(&mut self.headers, withheld);
        self.extensions.clear();
        self.extensions.insert(CredentialsWithheld);
    }

    /// A GET of `uri` as polls send it.
    pub(crate) fn get<B: Default>(&self, uri: Uri) -> Request<B> {
        let mut request = Request::new(B::default());
        *request.uri_mut() = uri;
        *request.version_mut() = self.version;
        // A map emptied by stripping keeps its allocation, and so would its clone.
        if !self.headers.is_empty() {
            *request.headers_mut() = self.headers.clone();
        }
        *request.extensions_mut() = self.extensions.clone();
        request
    }

    /// Prepares a request the caller built to go where polls go (a cancel request): the headers
    /// polls repeat under its own, and no credentials or extensions if polls have none.
    pub(crate) fn dress<B>(&self, request: &mut Request<B>, withheld: &[HeaderName]) {
        let own = std::mem::take(request.headers_mut());
        let mut headers = self.headers.clone();
        for name in own.keys() {
            headers.remove(name);
        }
        headers.extend(own);
        if self.extensions.get::<CredentialsWithheld>().is_some() {
            headers::strip_credentials(&mut headers, withheld);
            *request.extensions_mut() = self.extensions.clone();
        }
        *request.headers_mut() = headers;
        *request.version_mut() = self.version;
    }
}

fn refused(rejection: Rejection) -> Error {
    match rejection {
        Rejection::Invalid(why) => Error::new(ErrorKind::InvalidMonitorUrl, why),
        Rejection::CrossOrigin(why) => Error::new(ErrorKind::CrossOrigin, why),
    }
}
