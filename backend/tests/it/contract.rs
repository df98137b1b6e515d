//! The contract guard: the merged OpenAPI document is snapshot-tested, so any change
//! to a path, a method, an auth requirement or a schema shows up in review. The
//! stream manager's paths come from the renderer's own document and are checked where
//! a renderer runs (`tests/e2e/console.rs`).

use crate::helpers::{Backend, TestApp, json};

#[tokio::test]
async fn the_merged_openapi_document_matches_its_snapshot() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (status, body) =
        json(app.client.get(app.gateway("/api/openapi.json")).send().await.expect("send")).await;
    assert_eq!(status, 200);
    // The stream manager's document is the renderer's own (not running here); its
    // absence is named with a URL whose port varies.
    insta::assert_json_snapshot!("openapi", body, {
        ".info.version" => "[version]",
        ".info[\"x-unavailable\"].stream" => "[the stream manager's URL and error]",
    });
}
