//! `--role authorizer` and `--role filter` of `get`, `post` and `request` (FastCGI
//! specification §6.3 and §6.4): what each sends, and how an Authorizer's answer is read.
//!
//! An Authorizer's answer is read as lighttpd 1.4 reads it in `"mode" => "authorizer"`
//! (`http_response_parse_headers`): no `Status:` line, or `Status: 200`, means "authorized",
//! whatever else the head holds (a `Location:` alone is then not a 302); the
//! `Variable-NAME: value` fields are the variables the web server passes on to the request's
//! handler, NAME as sent; the rest of the head and the body are dropped. Any other status means
//! "denied": the whole response is what the web server sends to the client (lighttpd drops the
//! fields sent before the `Status:` line; `fcgi` shows them all).

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::Method;
use http_body_util::Full;
use serde_json::{Value, json};

use crate::cli::{RequestCmd, Role};
use crate::commands::exchange::{self, Exchange};
use crate::exit::{Exit, Failure};
use crate::filter_data::FilterData;
use crate::records;
use crate::target::Target;

/// What the role adds to a request, checked and opened before anything is sent.
pub enum RoleRequest {
    /// A Responder: the request as built.
    Responder,
    /// An Authorizer: no body.
    Authorizer,
    /// A Filter and its data file.
    Filter(FilterData),
}

/// Checks the flags of the role before the request is built (which may read standard input).
pub fn check_flags(cmd: &RequestCmd) -> Result<(), Failure> {
    let usage = |message: String| Failure::new(Exit::Usage, message);
    let role = cmd.role.role;
    match (&cmd.role.filter_data, role) {
        (Some(_), Role::Responder | Role::Authorizer) => {
            return Err(usage("--filter-data needs --role filter".into()));
        }
        (None, Role::Filter) => {
            return Err(usage("--role filter needs --filter-data @FILE (or @- for standard input)".into()));
        }
        (Some(data), Role::Filter) if data == "@-" => {
            let spec = &cmd.spec;
            if spec.data.iter().chain(&spec.data_binary).any(|d| d == "@-") {
                return Err(usage(
                    "standard input cannot be both the request body (@-) and --filter-data @-".into(),
                ));
            }
        }
        _ => {}
    }
    if role == Role::Authorizer && !(cmd.spec.data.is_empty() && cmd.spec.data_binary.is_empty()) {
        return Err(usage(
            "an Authorizer request has no body: --role authorizer takes no -d/--data-binary".into(),
        ));
    }
    Ok(())
}

/// The method when the command gives none: `fcgi request --role authorizer` asks about a GET.
pub fn default_method(role: Role, command_default: Option<Method>) -> Option<Method> {
    match (role, command_default) {
        (Role::Authorizer, None) => Some(Method::GET),
        (_, method) => method,
    }
}

/// Opens what the role needs (the Filter's data) and adds its parameters.
pub fn prepare(cmd: &RequestCmd, params: &mut Vec<(Bytes, Bytes)>) -> Result<RoleRequest, Failure> {
    Ok(match cmd.role.role {
        Role::Responder => RoleRequest::Responder,
        Role::Authorizer => RoleRequest::Authorizer,
        Role::Filter => {
            let spec = cmd.role.filter_data.as_deref().unwrap_or("@-");
            let data = FilterData::open(spec)?;
            // The user's --param wins, as for every derived parameter; the library refuses an
            // FCGI_DATA_LENGTH that disagrees with the data.
            add_unless_given(params, "FCGI_DATA_LENGTH", data.length.to_string());
            add_unless_given(params, "FCGI_DATA_LAST_MOD", data.last_mod.to_string());
            RoleRequest::Filter(data)
        }
    })
}

fn add_unless_given(params: &mut Vec<(Bytes, Bytes)>, name: &'static str, value: String) {
    if !params.iter().any(|(n, _)| n.as_ref() == name.as_bytes()) {
        params.push((Bytes::from_static(name.as_bytes()), Bytes::from(value)));
    }
}

/// `-v`: what the role changes in what is sent (the record lines show it too).
pub fn print_verbose(role: &RoleRequest) {
    match role {
        RoleRequest::Responder => {}
        RoleRequest::Authorizer => eprintln!(
            "* role AUTHORIZER: CONTENT_LENGTH, PATH_INFO, PATH_TRANSLATED and SCRIPT_NAME are not sent, nor a body"
        ),
        RoleRequest::Filter(data) => {
            eprintln!("* role FILTER: FCGI_DATA from {}, {} bytes", data.source, data.length);
            eprintln!("* param FCGI_DATA_LENGTH={}", data.length);
            eprintln!("* param FCGI_DATA_LAST_MOD={}", data.last_mod);
        }
    }
}

/// The future of sending the request in its role.
pub type Sending<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Exchange>> + 'a>>;

/// Sends `built` in its role.
pub fn send<'a>(
    role: RoleRequest,
    target: &'a Target,
    request: http::Request<Full<Bytes>>,
    params: Vec<(Bytes, Bytes)>,
    observer: Option<fcgi_mux::Observer>,
) -> Sending<'a> {
    match role {
        RoleRequest::Responder => Box::pin(exchange::send(target, request, params, observer)),
        RoleRequest::Authorizer => Box::pin(async move {
            let sent = exchange::send_with(target, observer, move |connection| async move {
                connection.authorize(request.map(|_| ()), params).await
            });
            sent.await.map_err(|error| unknown_role_hint(error, "Authorizer"))
        }),
        RoleRequest::Filter(data) => Box::pin(async move {
            let sent = exchange::send_with(target, observer, move |connection| async move {
                connection.filter(request, params, data.into_body()).await
            });
            sent.await.map_err(|error| unknown_role_hint(error, "Filter"))
        }),
    }
}

/// FCGI_UNKNOWN_ROLE says which role the application does not serve (Go's net/http/fcgi
/// serves only Responders).
fn unknown_role_hint(error: anyhow::Error, role: &str) -> anyhow::Error {
    let unknown_role = matches!(
        error.downcast_ref::<fcgi_mux::Error>(),
        Some(fcgi_mux::Error::Refused { status, .. }) if *status == fcgi_mux::fcgi_proto::ProtocolStatus::UNKNOWN_ROLE
    );
    if !unknown_role {
        return error;
    }
    let (exit, message) = crate::exit::classify(&error);
    Failure::new(exit, format!("{message} (the application does not serve the {role} role)")).into()
}

/// The variables of an Authorizer's answer when it means "authorized" (see the module docs),
/// `None` when it means "denied".
pub fn authorized(response: &http::Response<fcgi_mux::ResponseBody>) -> Option<Vec<(String, Vec<u8>)>> {
    let status_given = response.extensions().get::<fcgi_mux::StatusGiven>().is_some();
    if status_given && response.status() != http::StatusCode::OK {
        return None;
    }
    let variables = response.extensions().get::<fcgi_mux::Variables>().map(|v| v.0.as_slice()).unwrap_or(&[]);
    Some(variables.iter().map(|(name, value)| (name.clone(), value.as_bytes().to_vec())).collect())
}

/// The exit code of a denied Authorizer request: 4 or 5 by status class, else 3.
pub fn denied_exit(status: http::StatusCode) -> Exit {
    match Exit::for_status(status) {
        Exit::Success => Exit::Denied,
        exit => exit,
    }
}

/// `NAME=value` lines, one per variable, the values escaped as any application bytes shown
/// (`--json` has them as they came).
pub fn variable_lines(variables: &[(String, Vec<u8>)]) -> String {
    variables
        .iter()
        .map(|(name, value)| format!("{}={}\n", records::escape(name.as_bytes()), records::escape(value)))
        .collect()
}

/// The `--json` fields an Authorizer's answer adds.
pub fn json_fields(variables: Option<&[(String, Vec<u8>)]>) -> Vec<(&'static str, Value)> {
    let listed: Vec<Value> = variables
        .unwrap_or(&[])
        .iter()
        .map(|(name, value)| json!([name, String::from_utf8_lossy(value)]))
        .collect();
    vec![
        ("role", json!("authorizer")),
        ("authorized", json!(variables.is_some())),
        ("variables", Value::Array(listed)),
    ]
}
