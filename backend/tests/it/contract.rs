//! The contract guard: the merged OpenAPI document is snapshot-tested, so any change
//! to a path, a method, an auth requirement or a schema shows up in review.

use crate::helpers::{Backend, TestApp, json};

#[tokio::test]
async fn the_merged_openapi_document_matches_its_snapshot() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (status, body) =
        json(app.client.get(app.gateway("/api/openapi.json")).send().await.expect("send")).await;
    assert_eq!(status, 200);
    insta::assert_json_snapshot!("openapi", body, { ".info.version" => "[version]" });
}
