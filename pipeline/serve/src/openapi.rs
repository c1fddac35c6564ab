//! The OpenAPI 3 document, generated from the handlers' annotations
//! (`utoipa`), completed at start with what only the running service
//! knows: one path per window table with its own keys as filters, and the
//! error answers every operation can give.

use serde_json::{json, Value};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api;
use crate::error::{ErrorBody, ErrorDetail};
use crate::server::Component;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "FinOpsia API",
        description = "Transactions, quarantine, windowed aggregates, forecasts, runway and models of a FinOpsia service. Send `Authorization: Bearer <token>` (tokens: `finopsia token create --role read|ingest|admin`). Money is in integer minor units of its currency, with an exact decimal `amount` text where shown. Errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    paths(
        api::health,
        api::ready,
        api::metrics,
        api::status,
        api::list_transactions,
        api::get_transaction,
        api::correct_category,
        crate::ingest::ingest,
        api::list_quarantine,
        api::get_quarantined,
        crate::ingest::resubmit,
        api::list_windows,
        api::window_rows,
        api::list_forecasts,
        api::forecast_points,
        api::forecast_runs,
        api::weekly,
        api::runway,
        api::balances,
        api::recurring,
        api::list_models,
        api::register_model,
    ),
    components(schemas(ErrorBody, ErrorDetail, Component)),
    modifiers(&Bearer)
)]
struct ApiDoc;

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

/// The document as JSON text.
pub fn document(windows: &[(String, Vec<String>)], max_page_size: usize) -> String {
    let mut doc: Value =
        serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document is JSON");
    // One path per window table, with its keys as filters.
    let generic = doc["paths"]["/api/v1/windows/{table}"].clone();
    for (table, keys) in windows {
        let mut item = generic.clone();
        let op = &mut item["get"];
        op["operationId"] = json!(format!("window_rows_{table}"));
        op["summary"] = json!(format!("Rows of the window table {table}"));
        let mut params = vec![
            json!({"name": "from", "in": "query", "required": false,
                   "description": "window_start on or after this date or RFC 3339 time",
                   "schema": {"type": "string"}}),
            json!({"name": "to", "in": "query", "required": false,
                   "description": "window_start before this date or RFC 3339 time",
                   "schema": {"type": "string"}}),
            json!({"name": "limit", "in": "query", "required": false,
                   "description": "Page size", "schema": {"type": "integer", "minimum": 1}}),
            json!({"name": "cursor", "in": "query", "required": false,
                   "description": "next_cursor of the previous page", "schema": {"type": "string"}}),
        ];
        for k in keys {
            params.push(json!({"name": k, "in": "query", "required": false,
                "description": format!("Only rows whose {k} is this"),
                "schema": {"type": "string"}}));
        }
        op["parameters"] = Value::Array(params);
        doc["paths"][format!("/api/v1/windows/{table}")] = item;
    }
    // Pages are at most `http.max_page_size`.
    if let Some(paths) = doc["paths"].as_object_mut() {
        for item in paths.values_mut() {
            for op in item
                .as_object_mut()
                .into_iter()
                .flat_map(|o| o.values_mut())
            {
                let params = op.get_mut("parameters").and_then(Value::as_array_mut);
                for p in params.into_iter().flatten() {
                    if p["name"] == "limit" {
                        p["schema"]["maximum"] = json!(max_page_size);
                    }
                }
            }
        }
    }
    // The errors every operation may answer.
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            let probe = !path.starts_with("/api/");
            for (_, op) in item.iter_mut() {
                let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                    continue;
                };
                // OpenAPI requires a description on every response.
                for (code, r) in responses.iter_mut() {
                    if r.get("description")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        r["description"] = json!(if code.starts_with('2') {
                            "Success"
                        } else {
                            "Not ready"
                        });
                    }
                }
                let mut add = |code: &str, text: &str| {
                    responses
                        .entry(code.to_string())
                        .or_insert_with(|| error_response(text));
                };
                add("401", "No token, or an unknown or revoked one");
                add("405", "The path does not answer this method");
                if !probe {
                    add(
                        "400",
                        "Bad input: malformed value, unknown filter, bad cursor, page too large",
                    );
                    add("403", "The token's role is not enough");
                    add("404", "Not found");
                    add("413", "The body is larger than http.max_body_bytes");
                    add("415", "The body's content type is not accepted");
                    add(
                        "422",
                        "The request is well-formed but cannot be carried out",
                    );
                    add("429", "Too many requests for this token");
                    add("503", "The query took longer than http.query_timeout");
                }
                add("500", "The server failed; the log has the cause");
            }
        }
    }
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_an_id_errors_and_window_paths() {
        let text = document(
            &[(
                "cashflow_daily".into(),
                vec!["account_id".into(), "currency".into()],
            )],
            500,
        );
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let p = &doc["paths"]["/api/v1/windows/cashflow_daily"]["get"];
        let names: Vec<&str> = p["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"account_id") && names.contains(&"currency"));
        let limit = p["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "limit")
            .unwrap();
        assert_eq!(limit["schema"]["maximum"], 500);
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                assert!(op["operationId"].is_string(), "{method} {path}");
                assert!(op["responses"]["401"].is_object(), "{method} {path}");
                assert!(
                    op.get("parameters").is_none_or(Value::is_array),
                    "{method} {path}"
                );
                for (code, r) in op["responses"].as_object().unwrap() {
                    assert!(r["description"].is_string(), "{method} {path} {code}");
                }
            }
        }
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    }
}
