//! REST resources: a path template with typed segments ([`UriForm`]), the
//! request it matches ([`FormRequest`]), and per-method handlers
//! ([`Resources`]).
//!
//! A front given a form (`HttpServer::uri_form`) turns every request whose
//! path matches it into a [`FormRequest`] — method, the template's entries,
//! headers, body — asked of the listening actor like any message. The actor
//! answers it with [`Resources::dispatch`], which finds the handler for the
//! resource, the method and the entries present, converts what the handler
//! asks for, and makes the response.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use percent_encoding::percent_decode_str;
use regex::Regex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::mapping::HttpError;
use crate::message::Message;
use crate::net::HttpResponse;

/// A path template: `{name}` marks an entry, the rest is a regular
/// expression (so `( … )?` makes a part optional). The whole path must
/// match.
///
/// ```
/// use layer_cake::net::http::UriForm;
///
/// let form = UriForm::new("/{resource}(/{identity})?")
///     .unwrap()
///     .entry("resource", r"\w+")
///     .unwrap()
///     .entry("identity", "[0-9]+")
///     .unwrap();
/// let entries = form.matches("/customer/42").unwrap();
/// assert_eq!(entries["resource"], "customer");
/// assert_eq!(entries["identity"], "42");
/// assert!(!form.matches("/customer").unwrap().contains_key("identity"));
/// assert!(form.matches("/customer/x").is_none());
/// ```
#[derive(Clone)]
pub struct UriForm {
    template: String,
    /// Each entry's name and pattern, in the template's order.
    entries: Vec<(String, String)>,
    regex: Regex,
}

/// A template that cannot be made into a form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("URI form {template:?}: {why}")]
pub struct UriFormError {
    template: String,
    why: String,
}

/// The pattern of an entry not given one: one path segment.
const SEGMENT: &str = "[^/]+";

impl UriForm {
    /// The form of `template`, each entry one path segment until
    /// [`entry`](Self::entry) says otherwise.
    pub fn new(template: &str) -> Result<UriForm, UriFormError> {
        let bad = |why: String| UriFormError {
            template: template.to_owned(),
            why,
        };
        let mut entries = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| bad("a \"{\" without its \"}\"".into()))?;
            let name = &rest[open + 1..open + close];
            let identifier = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !identifier {
                return Err(bad(format!("{name:?} is not an entry name")));
            }
            if entries.iter().any(|(n, _)| n == name) {
                return Err(bad(format!("the entry {name:?} appears twice")));
            }
            entries.push((name.to_owned(), SEGMENT.to_owned()));
            rest = &rest[open + close + 1..];
        }
        let mut form = UriForm {
            template: template.to_owned(),
            entries,
            regex: Regex::new("^$").expect("a valid pattern"),
        };
        form.regex = form.compile()?;
        Ok(form)
    }

    /// Gives entry `name` the regular expression `pattern` (`[0-9]+`).
    pub fn entry(mut self, name: &str, pattern: &str) -> Result<UriForm, UriFormError> {
        let Some(entry) = self.entries.iter_mut().find(|(n, _)| n == name) else {
            return Err(UriFormError {
                template: self.template,
                why: format!("no entry {name:?} in the template"),
            });
        };
        entry.1 = pattern.to_owned();
        self.regex = self.compile()?;
        Ok(self)
    }

    fn compile(&self) -> Result<Regex, UriFormError> {
        let mut text = String::from("^(?:");
        let mut rest = self.template.as_str();
        for (name, pattern) in &self.entries {
            let open = rest.find('{').expect("checked by new");
            let close = open + rest[open..].find('}').expect("checked by new");
            text.push_str(&rest[..open]);
            text.push_str(&format!("(?P<{name}>{pattern})"));
            rest = &rest[close + 1..];
        }
        text.push_str(rest);
        text.push_str(")$");
        Regex::new(&text).map_err(|e| UriFormError {
            template: self.template.clone(),
            why: e.to_string(),
        })
    }

    /// The template as given.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The entries of `path` (percent-decoded) if it matches the form; an
    /// optional entry that is absent is not in the map.
    pub fn matches(&self, path: &str) -> Option<BTreeMap<String, String>> {
        let found = self.regex.captures(path)?;
        let mut entries = BTreeMap::new();
        for (name, _) in &self.entries {
            if let Some(value) = found.name(name) {
                let value = percent_decode_str(value.as_str()).decode_utf8().ok()?;
                entries.insert(name.clone(), value.into_owned());
            }
        }
        Some(entries)
    }
}

impl fmt::Debug for UriForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UriForm")
            .field("template", &self.template)
            .field("entries", &self.entries)
            .finish()
    }
}

impl PartialEq for UriForm {
    fn eq(&self, other: &Self) -> bool {
        self.template == other.template && self.entries == other.entries
    }
}

impl Eq for UriForm {}

/// A request whose path matched the front's [`UriForm`]: what a REST
/// handler needs of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
pub struct FormRequest {
    /// `GET`, `POST`, `PUT`, `DELETE` …
    pub method: String,
    /// The path, as sent.
    pub path: String,
    /// The query, if any (without the `?`).
    pub query: Option<String>,
    /// The form's entries found in the path, percent-decoded.
    pub entries: BTreeMap<String, String>,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body (bounded by the front's `max_body`).
    pub body: Vec<u8>,
}

impl FormRequest {
    /// Entry `name` converted to `T`: `None` when absent, 400 naming the
    /// entry when it does not convert.
    pub fn entry<T: FromStr>(&self, name: &str) -> Result<Option<T>, HttpError>
    where
        T::Err: fmt::Display,
    {
        self.entries
            .get(name)
            .map(|text| {
                text.parse::<T>()
                    .map_err(|e| HttpError::new(400, format!("{name}: {text:?}: {e}")))
            })
            .transpose()
    }

    /// Entry `name`, which the handler's route says is there.
    pub fn required<T: FromStr>(&self, name: &str) -> Result<T, HttpError>
    where
        T::Err: fmt::Display,
    {
        self.entry(name)?
            .ok_or_else(|| HttpError::new(400, format!("no {name} in {:?}", self.path)))
    }

    /// The body as JSON of type `T`: 415 for another content type, 400
    /// naming the field that does not fit.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        let media = self
            .content_type
            .as_deref()
            .and_then(|t| t.split(';').next())
            .map(|t| t.trim().to_ascii_lowercase());
        if media.as_deref() != Some("application/json") {
            return Err(HttpError::new(
                415,
                format!(
                    "expected an application/json body, not {:?}",
                    self.content_type.as_deref().unwrap_or("none")
                ),
            ));
        }
        let mut reader = serde_json::Deserializer::from_slice(&self.body);
        serde_path_to_error::deserialize(&mut reader)
            .map_err(|e| HttpError::new(400, format!("the body does not fit: {e}")))
    }
}

/// What a resource handler gives back: the response, or an error the front
/// answers with its status and a fault body.
pub type HandlerResult = Result<HttpResponse, HttpError>;

type Handler<S> = Box<dyn Fn(&mut S, &FormRequest) -> HandlerResult + Send + Sync>;

/// The REST handlers of one actor, over its state `S`: one per resource,
/// method and set of entries present (besides `resource`), as the original
/// `ResourceDispatch`.
///
/// ```
/// use std::collections::BTreeMap;
/// use layer_cake::net::HttpResponse;
/// use layer_cake::net::http::{FormRequest, Resources};
///
/// let resources = Resources::<Vec<String>>::new()
///     .on("name", "GET", &[], |names, _| Ok(HttpResponse::text(200, names.join(","))))
///     .on("name", "POST", &[], |names, request| {
///         names.push(request.json::<String>()?);
///         Ok(HttpResponse::text(201, "added"))
///     });
/// let mut names = vec!["ann".to_string()];
/// let request = FormRequest {
///     method: "GET".into(),
///     path: "/name".into(),
///     query: None,
///     entries: BTreeMap::from([("resource".to_string(), "name".to_string())]),
///     headers: vec![],
///     content_type: None,
///     body: vec![],
/// };
/// assert_eq!(resources.dispatch(&mut names, &request).body, b"ann");
/// let delete = FormRequest { method: "DELETE".into(), ..request };
/// assert_eq!(resources.dispatch(&mut names, &delete).status, 405);
/// ```
pub struct Resources<S> {
    routes: Vec<Route<S>>,
}

struct Route<S> {
    resource: String,
    method: String,
    entries: Vec<String>,
    handler: Handler<S>,
}

impl<S> Default for Resources<S> {
    fn default() -> Self {
        Resources { routes: Vec::new() }
    }
}

impl<S> fmt::Debug for Resources<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.routes
                    .iter()
                    .map(|r| format!("{} {} {:?}", r.method, r.resource, r.entries)),
            )
            .finish()
    }
}

impl<S> Resources<S> {
    /// No handlers yet.
    pub fn new() -> Self {
        Resources::default()
    }

    /// Handles `method` on `resource` when exactly `entries` (besides
    /// `resource`) are present in the path: `&[]` for the collection,
    /// `&["identity"]` for one member.
    pub fn on<F>(mut self, resource: &str, method: &str, entries: &[&str], handler: F) -> Self
    where
        F: Fn(&mut S, &FormRequest) -> HandlerResult + Send + Sync + 'static,
    {
        let mut entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        entries.sort();
        self.routes.push(Route {
            resource: resource.to_owned(),
            method: method.to_ascii_uppercase(),
            entries,
            handler: Box::new(handler),
        });
        self
    }

    /// The response to `request`: its handler's, or 404 (no such resource
    /// or shape of path), 405 with `Allow` (no handler for the method), or
    /// the error a handler or a conversion gave, as the front's fault body.
    pub fn dispatch(&self, state: &mut S, request: &FormRequest) -> HttpResponse {
        let resource = request.entries.get("resource").map(String::as_str);
        let present: Vec<&String> = request
            .entries
            .keys()
            .filter(|k| k.as_str() != "resource")
            .collect();
        let same_shape = |r: &&Route<S>| {
            resource.is_none_or(|name| r.resource == name)
                && r.entries.len() == present.len()
                && r.entries.iter().zip(&present).all(|(a, b)| a == *b)
        };
        let candidates: Vec<&Route<S>> = self.routes.iter().filter(same_shape).collect();
        let result = match candidates.iter().find(|r| r.method == request.method) {
            Some(route) => (route.handler)(state, request),
            None if candidates.is_empty() => Err(HttpError::new(
                404,
                format!("nothing here answers {:?}", request.path),
            )),
            None => {
                let allow: Vec<&str> = candidates.iter().map(|r| r.method.as_str()).collect();
                let mut response = error(&HttpError::new(
                    405,
                    format!("{} is not taken by {:?}", request.method, request.path),
                ));
                response.headers.push(("allow".into(), allow.join(", ")));
                return response;
            }
        };
        result.unwrap_or_else(|e| error(&e))
    }
}

/// An error as the front's own errors look: the fault's typed JSON.
fn error(e: &HttpError) -> HttpResponse {
    let text = crate::message::codec::json::to_typed_string(
        &crate::message::Payload::new(e.to_fault()),
        false,
    )
    .unwrap_or_default();
    HttpResponse {
        status: e.status,
        headers: Vec::new(),
        content_type: Some("application/json".into()),
        body: text.into_bytes(),
    }
}

/// Builds the [`FormRequest`] for a matched request.
pub(crate) fn form_request(
    parts: &http::request::Parts,
    entries: BTreeMap<String, String>,
    body: Vec<u8>,
) -> FormRequest {
    // HEAD is answered as GET would be (the front drops the body).
    let method = match parts.method {
        http::Method::HEAD => "GET",
        ref other => other.as_str(),
    };
    FormRequest {
        method: method.to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        entries,
        headers: super::mapping::header_pairs(&parts.headers),
        content_type: parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
    }
}

/// A JSON response with `status`.
///
/// ```
/// let r = layer_cake::net::http::json_response(201, &serde_json::json!({"id": 1}));
/// assert_eq!((r.status, r.body.as_slice()), (201, &br#"{"id":1}"#[..]));
/// ```
pub fn json_response<T: Serialize + ?Sized>(status: u16, value: &T) -> HttpResponse {
    match serde_json::to_vec(value) {
        Ok(body) => HttpResponse {
            status,
            headers: Vec::new(),
            content_type: Some("application/json".into()),
            body,
        },
        Err(e) => error(&HttpError::new(
            500,
            format!("cannot encode the answer: {e}"),
        )),
    }
}
