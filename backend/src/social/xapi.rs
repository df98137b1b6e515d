//! The subset of X API v2 the show uses, as X writes it: posts ("tweets" on the
//! wire), users, the list envelope with `includes` and `meta`, problems, and what
//! each resource costs under pay-per-use pricing. The client reads these and the
//! simulator writes them, so both speak the same shapes.

use chrono::{DateTime, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};

/// The fields the show asks for on every post read.
pub const TWEET_FIELDS: &str =
    "created_at,author_id,conversation_id,in_reply_to_user_id,referenced_tweets,edit_history_tweet_ids";
pub const USER_FIELDS: &str = "username,created_at,verified";

/// X's epoch for snowflake ids (2010-11-04T01:42:54.657Z), in Unix milliseconds.
pub const SNOWFLAKE_EPOCH_MS: i64 = 1_288_834_974_657;

/// The creation time inside a snowflake id.
pub fn snowflake_time(id: &str) -> Option<DateTime<Utc>> {
    let id: u64 = id.parse().ok()?;
    let millis = i64::try_from(id >> 22).ok()? + SNOWFLAKE_EPOCH_MS;
    Utc.timestamp_millis_opt(millis).single()
}

/// A snowflake id for `at`, with a sequence number to keep ids of the same
/// millisecond distinct.
pub fn snowflake(at: DateTime<Utc>, sequence: u16) -> String {
    let millis = u64::try_from(at.timestamp_millis() - SNOWFLAKE_EPOCH_MS).unwrap_or(0);
    ((millis << 22) | (1 << 17) | u64::from(sequence & 0x0fff)).to_string()
}

/// Orders two snowflake ids (as numbers, not as text).
pub fn id_number(id: &str) -> u64 {
    id.parse().unwrap_or(0)
}

/// A post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tweet {
    pub id: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referenced_tweets: Vec<ReferencedTweet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edit_history_tweet_ids: Vec<String>,
}

impl Tweet {
    /// A retweet (ignored by the show; quotes are read like posts).
    pub fn is_retweet(&self) -> bool {
        self.referenced_tweets.iter().any(|reference| reference.kind == "retweeted")
    }

    /// The post this one replies to.
    pub fn replied_to(&self) -> Option<&str> {
        self.referenced_tweets
            .iter()
            .find(|reference| reference.kind == "replied_to")
            .map(|reference| reference.id.as_str())
    }

    /// The id the show keys the post by: its first version's (an edit counts as the
    /// post it edits).
    pub fn first_version_id(&self) -> &str {
        self.edit_history_tweet_ids.first().map_or(self.id.as_str(), String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferencedTweet {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// A user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Includes {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<User>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(default)]
    pub result_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// A page of posts: `data` is absent when the page is empty; `errors` may come with
/// `data` (a partial error), and the data is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TweetPage {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<Tweet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<Includes>,
    #[serde(default)]
    pub meta: Meta,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Problem>,
}

/// One object in `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Single<T> {
    pub data: T,
}

/// The body of `POST /2/tweets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTweet {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<ReplySettings>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplySettings {
    pub in_reply_to_tweet_id: String,
}

/// What `POST /2/tweets` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedTweet {
    pub id: String,
    pub text: String,
    #[serde(default)]
    pub edit_history_tweet_ids: Vec<String>,
}

/// An error as X writes it (RFC 7807 problem details), top level or in `errors`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
}

/// The detail X gives when a post repeats one of the account's recent posts
/// (legacy code 187): the post exists, so the show counts it as sent.
pub const DUPLICATE_DETAIL: &str = "You are not allowed to create a Tweet with duplicate content.";
/// The detail X gives when an app replies to a post whose author did not summon it.
pub const REPLY_NOT_ALLOWED_DETAIL: &str = "Reply to this conversation is not allowed because you have not been mentioned or otherwise engaged by the author of the post you are replying to.";

/// What `POST /2/oauth2/token` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub token_type: String,
    pub expires_in: u64,
    pub access_token: String,
    #[serde(default)]
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// The scopes the show asks for: read posts and users, write posts, and
/// `offline.access` for a refresh token.
pub const SCOPES: &str = "tweet.read tweet.write users.read offline.access";

/// A billable resource under X's pay-per-use pricing (2026).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// A post about the account read through an owned endpoint (its mentions).
    OwnedPostRead,
    /// Any other post read (search).
    PostRead,
    UserRead,
    PostCreated,
    /// A post created with a URL in it.
    PostCreatedWithUrl,
}

impl Resource {
    pub const ALL: [Resource; 5] = [
        Resource::OwnedPostRead,
        Resource::PostRead,
        Resource::UserRead,
        Resource::PostCreated,
        Resource::PostCreatedWithUrl,
    ];

    /// US dollars per resource.
    pub fn price_usd(self) -> f64 {
        match self {
            Resource::OwnedPostRead => 0.001,
            Resource::PostRead => 0.005,
            Resource::UserRead => 0.010,
            Resource::PostCreated => 0.015,
            Resource::PostCreatedWithUrl => 0.20,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Resource::OwnedPostRead => "owned_post_read",
            Resource::PostRead => "post_read",
            Resource::UserRead => "user_read",
            Resource::PostCreated => "post_created",
            Resource::PostCreatedWithUrl => "post_created_with_url",
        }
    }

    /// Whether a second read of the same resource on the same UTC day is free.
    pub fn billed_once_a_day(self) -> bool {
        matches!(self, Resource::OwnedPostRead | Resource::PostRead | Resource::UserRead)
    }
}

/// Whether a post's text carries a URL (which makes it cost $0.20 instead of $0.015).
pub fn has_url(text: &str) -> bool {
    text.split_whitespace().any(|word| word.starts_with("http://") || word.starts_with("https://"))
}

/// Counts billable resources the way X bills them: reads of the same resource on the
/// same UTC day once. Both the simulator and the social role's spend meter use it, so
/// what the show reports is what X (or the simulator) charges.
#[derive(Debug, Default, Clone)]
pub struct Billing {
    seen: std::collections::HashSet<(Resource, String, chrono::NaiveDate)>,
    counts: std::collections::BTreeMap<Resource, u64>,
}

impl Billing {
    /// Records `resource` `id` used at `at`; true when it is billed (not a repeat read).
    pub fn record(&mut self, resource: Resource, id: &str, at: DateTime<Utc>) -> bool {
        if resource.billed_once_a_day() && !self.seen.insert((resource, id.to_owned(), at.date_naive())) {
            return false;
        }
        *self.counts.entry(resource).or_default() += 1;
        true
    }

    pub fn count(&self, resource: Resource) -> u64 {
        self.counts.get(&resource).copied().unwrap_or(0)
    }

    pub fn counts(&self) -> &std::collections::BTreeMap<Resource, u64> {
        &self.counts
    }

    /// What was billed, in US dollars.
    pub fn usd(&self) -> f64 {
        self.counts.iter().map(|(resource, count)| resource.price_usd() * *count as f64).sum()
    }

    /// Forgets the read memory of days before `today`, so it stays small.
    pub fn prune(&mut self, today: chrono::NaiveDate) {
        self.seen.retain(|(_, _, day)| *day >= today);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snowflake_carries_its_creation_time() {
        let at = Utc.with_ymd_and_hms(2026, 12, 2, 20, 0, 0).single().expect("time");
        let id = snowflake(at, 5);
        assert_eq!(snowflake_time(&id), Some(at));
        assert!(id_number(&snowflake(at, 6)) > id_number(&id));
        // A real id: 1460323737035677698 was created 2021-11-15T19:08:05.069Z.
        assert_eq!(
            snowflake_time("1460323737035677698").map(|time| time.to_rfc3339()),
            Some("2021-11-15T19:08:05.069+00:00".into())
        );
    }

    #[test]
    fn a_repeat_read_on_the_same_day_is_not_billed() {
        let mut billing = Billing::default();
        let day = Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).single().expect("time");
        assert!(billing.record(Resource::PostRead, "1", day));
        assert!(!billing.record(Resource::PostRead, "1", day + chrono::Duration::hours(5)));
        assert!(billing.record(Resource::PostRead, "1", day + chrono::Duration::days(1)));
        assert!(billing.record(Resource::PostCreated, "9", day));
        assert!(billing.record(Resource::PostCreated, "9", day));
        assert_eq!(billing.count(Resource::PostRead), 2);
        assert!((billing.usd() - (2.0 * 0.005 + 2.0 * 0.015)).abs() < 1e-9);
    }

    #[test]
    fn a_page_with_data_and_errors_keeps_both() {
        let page: TweetPage = serde_json::from_str(
            r#"{"data":[{"id":"1","text":"bid 1","edit_history_tweet_ids":["1"]}],
                "errors":[{"title":"Not Found Error","detail":"gone","type":"https://api.x.com/2/problems/resource-not-found"}],
                "meta":{"result_count":1}}"#,
        )
        .expect("page");
        assert_eq!(page.data.len(), 1);
        assert_eq!(page.errors[0].title, "Not Found Error");
        let empty: TweetPage = serde_json::from_str(r#"{"meta":{"result_count":0}}"#).expect("empty page");
        assert!(empty.data.is_empty());
    }
}
