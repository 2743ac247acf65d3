//! **test_server_resource** — REST resources: customer records kept in the
//! role's `model/` folder.
//!
//! The front is given the form `/{resource}(/{identity})?` (a word, then
//! an optional number); each matching request is a `FormRequest`, answered
//! by the handler for its resource, method and shape:
//!
//! | request | answer |
//! |---|---|
//! | `POST /customer` with `{"name":"Ann","age":41}` | 201 `{"identity":1}` |
//! | `GET /customer` | 200 `{"1":{"name":"Ann","age":41}}` |
//! | `GET /customer/1` | 200 `{"name":"Ann","age":41}`, or 404 |
//! | `PUT /customer/1` with a customer | 200, or 404 |
//! | `DELETE /customer/1` | 204, or 404 |
//!
//! Anything else is the front's own error: 404 for another resource or
//! path, 405 (with `Allow`) for another method, 400 naming the field of a
//! body that is not a customer, 415 for a body that is not JSON.
//!
//! The records are `customers.json` in the model folder: the role's
//! `model/` when run as a role of a home (`layer-cake add
//! test_server_resource server`), else `--model-path` (default: the current
//! folder) — [`layer_cake::process::model_path`], a standard flag.
//! Each change is written to a temporary file and renamed over the old one.
//!
//! ```text
//! $ cargo run -p layer-cake-demos --bin test_server_resource &
//! test_server_resource: listening on 127.0.0.1:5050
//! $ curl -s -X POST -H 'Content-Type: application/json' -d '{"name":"Ann","age":41}' http://127.0.0.1:5050/customer
//! {"identity":1}
//! $ curl -s http://127.0.0.1:5050/customer/1
//! {"name":"Ann","age":41}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use layer_cake::net::http::{
    FormRequest, HandlerResult, HttpError, Resources, UriForm, json_response,
};
use layer_cake::net::{HttpResponse, HttpServer, ListenOptions, Listening, NotListening};
use layer_cake::{Context, Faulted, Stop, on};
use layer_cake_demos as demo;
use serde::{Deserialize, Serialize};

/// One customer record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Customer {
    name: String,
    age: u32,
}

/// The records, by identity, and where they are kept.
struct Customers {
    file: PathBuf,
    records: BTreeMap<u64, Customer>,
}

impl Customers {
    fn open(folder: &Path) -> Result<Customers, Faulted> {
        let cannot = |what: &str, e: &dyn std::fmt::Display| {
            Faulted::new(format!("cannot {what} {}", folder.display()))
                .with_explanation(e.to_string())
        };
        std::fs::create_dir_all(folder).map_err(|e| cannot("make", &e))?;
        let file = folder.join("customers.json");
        let records = match std::fs::read(&file) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| cannot("read the records in", &e))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(cannot("read", &e)),
        };
        Ok(Customers { file, records })
    }

    /// Writes the records: a temporary file renamed over the old one, so a
    /// crash leaves either the old records or the new.
    fn save(&self) -> Result<(), HttpError> {
        let failed =
            |e: std::io::Error| HttpError::new(500, format!("cannot save the records: {e}"));
        let text = serde_json::to_vec_pretty(&self.records)
            .map_err(|e| HttpError::new(500, e.to_string()))?;
        let temporary = self.file.with_extension("json.tmp");
        std::fs::write(&temporary, text).map_err(failed)?;
        std::fs::rename(&temporary, &self.file).map_err(failed)
    }

    fn not_found(identity: u64) -> HttpError {
        HttpError::new(404, format!("no customer {identity}"))
    }
}

fn create(db: &mut Customers, request: &FormRequest) -> HandlerResult {
    let customer: Customer = request.json()?;
    let identity = db.records.keys().next_back().map_or(1, |last| last + 1);
    db.records.insert(identity, customer);
    db.save()?;
    let mut response = json_response(201, &serde_json::json!({ "identity": identity }));
    response
        .headers
        .push(("location".into(), format!("/customer/{identity}")));
    Ok(response)
}

fn list(db: &mut Customers, _: &FormRequest) -> HandlerResult {
    Ok(json_response(200, &db.records))
}

fn read(db: &mut Customers, request: &FormRequest) -> HandlerResult {
    let identity: u64 = request.required("identity")?;
    let customer = db
        .records
        .get(&identity)
        .ok_or_else(|| Customers::not_found(identity))?;
    Ok(json_response(200, customer))
}

fn update(db: &mut Customers, request: &FormRequest) -> HandlerResult {
    let identity: u64 = request.required("identity")?;
    let customer: Customer = request.json()?;
    let record = db
        .records
        .get_mut(&identity)
        .ok_or_else(|| Customers::not_found(identity))?;
    *record = customer.clone();
    db.save()?;
    Ok(json_response(200, &customer))
}

fn delete(db: &mut Customers, request: &FormRequest) -> HandlerResult {
    let identity: u64 = request.required("identity")?;
    db.records
        .remove(&identity)
        .ok_or_else(|| Customers::not_found(identity))?;
    db.save()?;
    Ok(HttpResponse {
        status: 204,
        headers: Vec::new(),
        content_type: None,
        body: Vec::new(),
    })
}

/// The arguments: where to listen. (The model folder is the standard
/// `--model-path`, or the role's `model/`.)
type Args = demo::ServerArgs;

async fn test_server_resource(mut cx: Context, args: Args) -> Result<(), Faulted> {
    let folder = layer_cake::process::model_path();
    let mut customers = Customers::open(folder)?;
    let resources = Resources::new()
        .on("customer", "POST", &[], create)
        .on("customer", "GET", &[], list)
        .on("customer", "GET", &["identity"], read)
        .on("customer", "PUT", &["identity"], update)
        .on("customer", "DELETE", &["identity"], delete);
    let form = UriForm::new("/{resource}(/{identity})?")
        .and_then(|f| f.entry("resource", r"\w+"))
        .and_then(|f| f.entry("identity", "[0-9]+"))
        .map_err(|e| Faulted::new(e.to_string()))?;
    let front = HttpServer::new().uri_form(form);
    cx.listen(args.server_address, ListenOptions::http(front));
    loop {
        on!(cx.input().await, {
            Listening as l => demo::announce("test_server_resource", &l),
            NotListening as n => return Err(n.into_fault()),
            FormRequest as request => {
                let _ = cx.reply(resources.dispatch(&mut customers, &request));
            },
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("test_server_resource ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(test_server_resource)
}
