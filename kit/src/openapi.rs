//! OpenAPI 3.1 documents built from each role's list of operations; schemas come from
//! the wire types through `schemars`, so the document cannot drift from the code.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::access::Role;

/// One documented operation.
#[derive(Debug, Clone)]
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// The least role needed; `None` for public reads.
    pub auth: Option<Role>,
    pub request: Option<Schema>,
    pub response: Option<Schema>,
}

impl Operation {
    pub fn new(method: &'static str, path: &'static str, summary: &'static str) -> Operation {
        Operation { method, path, summary, auth: None, request: None, response: None }
    }

    pub fn auth(mut self, role: Role) -> Operation {
        self.auth = Some(role);
        self
    }

    pub fn request<T: JsonSchema>(mut self) -> Operation {
        self.request = Some(inline_schema::<T>());
        self
    }

    pub fn response<T: JsonSchema>(mut self) -> Operation {
        self.response = Some(inline_schema::<T>());
        self
    }
}

fn inline_schema<T: JsonSchema>() -> Schema {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.inline_subschemas = true;
    SchemaGenerator::new(settings).into_root_schema_for::<T>()
}

/// The OpenAPI document of `title` with these operations.
pub fn document(title: &str, operations: &[Operation]) -> Value {
    let mut paths = Map::new();
    for operation in operations {
        let mut entry = Map::new();
        entry.insert("summary".into(), json!(operation.summary));
        let data = operation.response.clone().map_or_else(|| json!({}), Value::from);
        let mut responses = json!({
            "200": { "description": "success", "content": { "application/json": { "schema": {
                "type": "object",
                "required": ["success", "data"],
                "properties": { "success": { "const": true }, "data": data }
            }}}},
            "400": { "$ref": "#/components/responses/Error" },
        });
        if let Some(role) = operation.auth {
            entry.insert("security".into(), json!([{ "bearer": [] }]));
            entry.insert("x-required-role".into(), json!(role.as_str()));
            responses["401"] = json!({ "$ref": "#/components/responses/Error" });
            responses["403"] = json!({ "$ref": "#/components/responses/Error" });
        }
        if let Some(request) = &operation.request {
            entry.insert(
                "requestBody".into(),
                json!({ "required": true, "content": { "application/json": { "schema": request } } }),
            );
        }
        entry.insert("responses".into(), responses);
        let methods = paths.entry(operation.path.to_owned()).or_insert_with(|| json!({}));
        methods[operation.method.to_ascii_lowercase()] = Value::Object(entry);
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": title, "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
            "responses": { "Error": {
                "description": "the error envelope",
                "content": { "application/json": { "schema": {
                    "type": "object",
                    "required": ["success", "error"],
                    "properties": {
                        "success": { "const": false },
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": { "type": "string" },
                                "message": { "type": "string" },
                                "details": {}
                            }
                        }
                    }
                }}}
            }}
        }
    })
}

/// Adds `other`'s operations to `document`, method by method; an operation both
/// define keeps `document`'s, so a document merged twice stays the same.
pub fn merge_paths(document: &mut Value, other: &Value) {
    let Some(theirs) = other.get("paths").and_then(Value::as_object) else { return };
    let Some(ours) = document.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, methods) in theirs {
        let entry = ours.entry(path.clone()).or_insert_with(|| json!({}));
        let (Some(entry), Some(methods)) = (entry.as_object_mut(), methods.as_object()) else { continue };
        for (method, operation) in methods {
            entry.entry(method.clone()).or_insert_with(|| operation.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_lists_each_operation_under_its_path_and_method_with_its_role() {
        let document = document(
            "test",
            &[
                Operation::new("GET", "/api/x/things", "Things"),
                Operation::new("POST", "/api/x/things", "Add a thing").auth(Role::Operator),
            ],
        );
        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(document["paths"]["/api/x/things"]["get"]["summary"], "Things");
        let post = &document["paths"]["/api/x/things"]["post"];
        assert_eq!(post["x-required-role"], "operator");
        assert!(post["responses"]["403"].is_object(), "{post}");
    }

    #[test]
    fn merging_adds_the_other_documents_paths_and_keeps_its_own() {
        let mut ours = document("ours", &[Operation::new("GET", "/api/a", "ours")]);
        let theirs = document(
            "theirs",
            &[
                Operation::new("GET", "/api/a", "theirs"),
                Operation::new("POST", "/api/a", "their write"),
                Operation::new("GET", "/api/b", "b"),
            ],
        );
        merge_paths(&mut ours, &theirs);
        assert_eq!(ours["paths"]["/api/a"]["get"]["summary"], "ours");
        assert_eq!(ours["paths"]["/api/a"]["post"]["summary"], "their write");
        assert_eq!(ours["paths"]["/api/b"]["get"]["summary"], "b");
    }
}
