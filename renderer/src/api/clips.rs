//! `GET /api/stream/clips` and `GET /api/stream/clips/{auction_id}.mp4`: the
//! winning-moment clips `crate::clips` wrote, listed and served with byte ranges.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sothebais_kit::http::ok;
use sothebais_shared::api::codes;

use super::{AppState, fail};

/// `GET /api/stream/clips`: the winning-moment clips on disk, newest first.
pub async fn list(State(shared): State<AppState>) -> Response {
    let folder = shared.clips.clone();
    let clips = tokio::task::spawn_blocking(move || crate::clips::list(&folder)).await.unwrap_or_default();
    let clips: Vec<serde_json::Value> = clips
        .into_iter()
        .map(|clip| {
            serde_json::json!({
                "auction_id": clip.auction_id,
                "path": clip.path,
                "duration_ms": clip.duration_ms,
                "bytes": clip.bytes,
                "created_at": clip.created_at,
                "url": format!("/api/stream/clips/{}.mp4", clip.auction_id),
            })
        })
        .collect();
    ok(serde_json::json!({ "clips": clips }))
}

/// `GET /api/stream/clips/{auction_id}.mp4`: one clip, with byte ranges for seeking.
pub async fn serve(
    State(shared): State<AppState>,
    Path(file): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let Some(auction_id) = file.strip_suffix(".mp4").and_then(|id| uuid::Uuid::parse_str(id).ok()) else {
        return fail(StatusCode::NOT_FOUND, codes::NOT_FOUND, format!("{file:?} is not <auction id>.mp4"));
    };
    let path = shared.clips.join(format!("{auction_id}.mp4"));
    let Ok(mut file) = tokio::fs::File::open(&path).await else {
        return fail(StatusCode::NOT_FOUND, codes::NOT_FOUND, format!("no clip of lot {auction_id}"));
    };
    let total = file.metadata().await.map_or(0, |meta| meta.len() as usize);
    let range = headers.get(header::RANGE).and_then(|value| value.to_str().ok());
    // Only the bytes asked for are read: a player seeking asks for many small ranges.
    let read = async |file: &mut tokio::fs::File, first: usize, last: usize| -> std::io::Result<Vec<u8>> {
        use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
        file.seek(std::io::SeekFrom::Start(first as u64)).await?;
        let mut bytes = vec![0; last + 1 - first];
        file.read_exact(&mut bytes).await?;
        Ok(bytes)
    };
    let unreadable =
        || fail(StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL, "the clip could not be read");
    match range.map(|range| byte_range(range, total)) {
        None => match read(&mut file, 0, total.saturating_sub(1)).await {
            Ok(bytes) => ([(header::CONTENT_TYPE, "video/mp4"), (header::ACCEPT_RANGES, "bytes")], bytes)
                .into_response(),
            Err(_) => unreadable(),
        },
        Some(Some((first, last))) => match read(&mut file, first, last).await {
            Ok(bytes) => (
                StatusCode::PARTIAL_CONTENT,
                [
                    (header::CONTENT_TYPE, "video/mp4".to_owned()),
                    (header::ACCEPT_RANGES, "bytes".to_owned()),
                    (header::CONTENT_RANGE, format!("bytes {first}-{last}/{total}")),
                ],
                bytes,
            )
                .into_response(),
            Err(_) => unreadable(),
        },
        Some(None) => {
            let mut response =
                fail(StatusCode::RANGE_NOT_SATISFIABLE, codes::BAD_REQUEST, "the range is outside the clip");
            if let Ok(value) = header::HeaderValue::from_str(&format!("bytes */{total}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            response
        }
    }
}

/// One `bytes=first-last`, `bytes=first-` or `bytes=-suffix` range of a body of
/// `total` bytes, as inclusive indices (pure); `None` when it is not satisfiable.
fn byte_range(range: &str, total: usize) -> Option<(usize, usize)> {
    let (first, last) = range.strip_prefix("bytes=")?.split_once('-')?;
    let (first, last) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let suffix: usize = suffix.parse().ok()?;
            (total.checked_sub(suffix.min(total))?, total.checked_sub(1)?)
        }
        (first, "") => (first.parse().ok()?, total.checked_sub(1)?),
        (first, last) => (first.parse().ok()?, last.parse::<usize>().ok()?.min(total.checked_sub(1)?)),
    };
    (first <= last && last < total).then_some((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_are_read_as_browsers_send_them() {
        assert_eq!(byte_range("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(byte_range("bytes=900-", 1000), Some((900, 999)));
        assert_eq!(byte_range("bytes=-100", 1000), Some((900, 999)));
        assert_eq!(byte_range("bytes=0-5000", 1000), Some((0, 999)));
        assert_eq!(byte_range("bytes=1000-", 1000), None);
        assert_eq!(byte_range("bytes=5-1", 1000), None);
        assert_eq!(byte_range("items=0-1", 1000), None);
        assert_eq!(byte_range("bytes=0-0", 0), None);
    }
}
