//! Character files: the ElizaOS character format, so existing ElizaOS characters
//! load as they are, with the show's own fields under `settings.sothebais`.
//!
//! Loading checks every field it reads and names the one at fault by its JSON path
//! (`messageExamples[2][0].content.text: expected a string`). Fields this module does
//! not use (`plugins`, `clients`, `modelProvider`, `secrets`…) are accepted and ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sothebais_shared::events::Mood;

use super::mood::MoodRules;

/// Why a character file was refused: the file, the JSON path and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {path}: {reason}")]
pub struct CharacterError {
    pub file: String,
    /// `$` for the whole document, else a path such as `settings.sothebais.expressions.happy`.
    pub path: String,
    pub reason: String,
}

/// One line of an example conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExampleLine {
    /// `{{user1}}`, `{{name1}}` or the character's name.
    pub speaker: String,
    pub text: String,
}

/// `style`: how the character writes, everywhere, in chat and in posts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Style {
    pub all: Vec<String>,
    pub chat: Vec<String>,
    pub post: Vec<String>,
}

/// The image of one mood, and its open-mouth frame for talking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ExpressionArt {
    Image(String),
    Frames {
        image: String,
        #[serde(default)]
        talk: Option<String>,
    },
}

impl ExpressionArt {
    pub fn image(&self) -> &str {
        match self {
            ExpressionArt::Image(image) | ExpressionArt::Frames { image, .. } => image,
        }
    }

    pub fn talk(&self) -> Option<&str> {
        match self {
            ExpressionArt::Image(_) => None,
            ExpressionArt::Frames { talk, .. } => talk.as_deref(),
        }
    }
}

/// The moments a character has catchphrases for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Moment {
    LotOpen,
    FirstBid,
    Bid,
    Extended,
    LastCall,
    Sold,
    ReserveNotMet,
    NoBids,
    Cancelled,
    Idle,
    /// A viewer asked the host something.
    Question,
}

/// `settings.sothebais.voice`, used by the voice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceSettings {
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub voice: Option<String>,
    #[serde(default)]
    pub rate: Option<f32>,
    #[serde(default)]
    pub pitch: Option<f32>,
}

/// `settings.sothebais`: what the show needs beyond ElizaOS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowSettings {
    /// Mood → image under `assets/`; a mood without one shows `neutral`'s.
    #[serde(default)]
    pub expressions: BTreeMap<Mood, ExpressionArt>,
    /// The closed-eyes overlay, laid over any expression.
    #[serde(default)]
    pub blink: Option<String>,
    #[serde(default)]
    pub mood_rules: MoodRules,
    #[serde(default)]
    pub voice: Option<VoiceSettings>,
    #[serde(default)]
    pub catchphrases: BTreeMap<Moment, Vec<String>>,
}

/// A loaded character.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Character {
    /// The file's stem (`auctioneer` for `auctioneer.json`).
    pub id: String,
    pub name: String,
    pub username: Option<String>,
    pub system: Option<String>,
    pub bio: Vec<String>,
    /// 0.x `lore` and fact-string `knowledge`/`documents`: background for the prompt.
    pub lore: Vec<String>,
    pub knowledge: Vec<String>,
    pub message_examples: Vec<Vec<ExampleLine>>,
    pub post_examples: Vec<String>,
    pub topics: Vec<String>,
    pub adjectives: Vec<String>,
    pub style: Style,
    pub templates: BTreeMap<String, String>,
    pub show: ShowSettings,
}

impl Character {
    /// The art of a mood: its own, else neutral's.
    pub fn expression(&self, mood: Mood) -> Option<&ExpressionArt> {
        self.show.expressions.get(&mood).or_else(|| self.show.expressions.get(&Mood::Neutral))
    }

    /// The image to show for a mood (`agent:mood`'s `expression`): the art's path,
    /// or the mood's name when the character has no art (the renderer's drawn face).
    pub fn expression_name(&self, mood: Mood) -> String {
        self.expression(mood).map_or_else(|| mood.as_str().to_owned(), |art| art.image().to_owned())
    }

    pub fn catchphrases(&self, moment: Moment) -> &[String] {
        self.show.catchphrases.get(&moment).map_or(&[], Vec::as_slice)
    }

    /// Reads a character file; the id is the file's stem.
    pub fn load(path: &Path) -> Result<Character, CharacterError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| CharacterError {
            file: file.clone(),
            path: "$".into(),
            reason: error.to_string(),
        })?;
        let id = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or("character");
        Character::parse(&file, id, &text)
    }

    /// Parses a character file's text; `file` names it in errors.
    pub fn parse(file: &str, id: &str, text: &str) -> Result<Character, CharacterError> {
        let fail =
            |path: &str, reason: String| CharacterError { file: file.into(), path: path.into(), reason };
        let document: Value = serde_json::from_str(text).map_err(|error| {
            fail("$", format!("not valid JSON (line {}, column {}): {error}", error.line(), error.column()))
        })?;
        let Value::Object(fields) = &document else {
            return Err(fail("$", "expected an object".into()));
        };
        let name = match fields.get("name") {
            Some(Value::String(name)) if !name.trim().is_empty() => name.trim().to_owned(),
            Some(Value::String(_)) => return Err(fail("name", "must not be empty".into())),
            Some(_) => return Err(fail("name", "expected a string".into())),
            None => return Err(fail("name", "is required".into())),
        };
        let read = Reader { fail: &fail };
        let mut knowledge = read.facts(fields.get("knowledge"), "knowledge")?;
        knowledge.extend(read.facts(fields.get("documents"), "documents")?);
        let style = match fields.get("style") {
            None | Some(Value::Null) => Style::default(),
            Some(Value::Object(style)) => Style {
                all: read.strings(style.get("all"), "style.all")?,
                chat: read.strings(style.get("chat"), "style.chat")?,
                post: read.strings(style.get("post"), "style.post")?,
            },
            Some(_) => return Err(fail("style", "expected an object with all, chat and post".into())),
        };
        let templates = match fields.get("templates") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(templates)) => {
                let mut out = BTreeMap::new();
                for (key, value) in templates {
                    match value {
                        Value::String(text) => {
                            out.insert(key.clone(), text.clone());
                        }
                        _ => return Err(fail(&format!("templates.{key}"), "expected a string".into())),
                    }
                }
                out
            }
            Some(_) => return Err(fail("templates", "expected an object of strings".into())),
        };
        let show = match fields.get("settings").and_then(|settings| settings.get("sothebais")) {
            None | Some(Value::Null) => ShowSettings::default(),
            Some(value) => serde_path_to_error::deserialize::<_, ShowSettings>(value).map_err(|error| {
                // A key that is not one of ours is written `?`: the map holding it is named.
                let inner = error.path().to_string();
                let inner = inner.trim_end_matches('?').trim_end_matches('.');
                let path = if inner.is_empty() {
                    "settings.sothebais".to_owned()
                } else {
                    format!("settings.sothebais.{inner}")
                };
                fail(&path, error.into_inner().to_string())
            })?,
        };
        if let Some(settings) = fields.get("settings")
            && !settings.is_object()
            && !settings.is_null()
        {
            return Err(fail("settings", "expected an object".into()));
        }
        for (mood, art) in &show.expressions {
            let path = format!("settings.sothebais.expressions.{}", mood.as_str());
            for image in std::iter::once(art.image()).chain(art.talk()) {
                check_asset_path(image).map_err(|reason| fail(&path, reason))?;
            }
        }
        if let Some(blink) = &show.blink {
            check_asset_path(blink).map_err(|reason| fail("settings.sothebais.blink", reason))?;
        }
        Ok(Character {
            id: id.to_owned(),
            name,
            username: read.optional_string(fields.get("username"), "username")?,
            system: read.optional_string(fields.get("system"), "system")?,
            bio: read.string_or_list(fields.get("bio"), "bio")?,
            lore: read.string_or_list(fields.get("lore"), "lore")?,
            knowledge,
            message_examples: read.examples(fields.get("messageExamples"))?,
            post_examples: read.strings(fields.get("postExamples"), "postExamples")?,
            topics: read.strings(fields.get("topics"), "topics")?,
            adjectives: read.strings(fields.get("adjectives"), "adjectives")?,
            style,
            templates,
            show,
        })
    }
}

/// Art is named relative to `assets/`: no absolute paths, no `..`, an image type.
fn check_asset_path(path: &str) -> Result<(), String> {
    if path.starts_with('/') || path.split('/').any(|part| part == "..") || path.contains('\\') {
        return Err(format!("{path:?} must be a path under assets/ (no leading / or ..)"));
    }
    let lower = path.to_ascii_lowercase();
    if !(lower.ends_with(".png") || lower.ends_with(".svg")) {
        return Err(format!("{path:?} is not a .png or .svg image"));
    }
    Ok(())
}

struct Reader<'a> {
    fail: &'a dyn Fn(&str, String) -> CharacterError,
}

impl Reader<'_> {
    fn optional_string(&self, value: Option<&Value>, path: &str) -> Result<Option<String>, CharacterError> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err((self.fail)(path, "expected a string".into())),
        }
    }

    fn strings(&self, value: Option<&Value>, path: &str) -> Result<Vec<String>, CharacterError> {
        match value {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| match item {
                    Value::String(text) => Ok(text.clone()),
                    _ => Err((self.fail)(&format!("{path}[{index}]"), "expected a string".into())),
                })
                .collect(),
            Some(_) => Err((self.fail)(path, "expected a list of strings".into())),
        }
    }

    fn string_or_list(&self, value: Option<&Value>, path: &str) -> Result<Vec<String>, CharacterError> {
        match value {
            Some(Value::String(text)) => Ok(vec![text.clone()]),
            Some(Value::Array(_)) | None | Some(Value::Null) => self.strings(value, path),
            Some(_) => Err((self.fail)(path, "expected a string or a list of strings".into())),
        }
    }

    /// Fact strings; ElizaOS's `{ "path": … }` and `{ "directory": … }` entries name
    /// files for its own loader and are skipped.
    fn facts(&self, value: Option<&Value>, path: &str) -> Result<Vec<String>, CharacterError> {
        match value {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => {
                let mut facts = Vec::new();
                for (index, item) in items.iter().enumerate() {
                    match item {
                        Value::String(text) => facts.push(text.clone()),
                        Value::Object(_) => {}
                        _ => {
                            return Err((self.fail)(
                                &format!("{path}[{index}]"),
                                "expected a string or an object".into(),
                            ));
                        }
                    }
                }
                Ok(facts)
            }
            Some(_) => Err((self.fail)(path, "expected a list".into())),
        }
    }

    /// `messageExamples` in its three shapes: the newest `[{"examples": [msg…]}…]`,
    /// 1.x `[[msg…]…]` with `name`, and 0.x `[[msg…]…]` with `user`.
    fn examples(&self, value: Option<&Value>) -> Result<Vec<Vec<ExampleLine>>, CharacterError> {
        let items = match value {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(_) => return Err((self.fail)("messageExamples", "expected a list of conversations".into())),
        };
        let mut conversations = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let (messages, path) = match item {
                Value::Array(messages) => (messages, format!("messageExamples[{index}]")),
                Value::Object(object) => match object.get("examples") {
                    Some(Value::Array(messages)) => (messages, format!("messageExamples[{index}].examples")),
                    _ => {
                        return Err((self.fail)(
                            &format!("messageExamples[{index}].examples"),
                            "expected a list of messages".into(),
                        ));
                    }
                },
                _ => {
                    return Err((self.fail)(
                        &format!("messageExamples[{index}]"),
                        "expected a conversation (a list of messages or {\"examples\": […]})".into(),
                    ));
                }
            };
            let mut lines = Vec::new();
            for (number, message) in messages.iter().enumerate() {
                let at = format!("{path}[{number}]");
                let Value::Object(message) = message else {
                    return Err((self.fail)(&at, "expected a message object".into()));
                };
                let speaker = match (message.get("name"), message.get("user")) {
                    (Some(Value::String(name)), _) | (None, Some(Value::String(name))) => name.clone(),
                    (Some(_), _) => {
                        return Err((self.fail)(&format!("{at}.name"), "expected a string".into()));
                    }
                    (None, Some(_)) => {
                        return Err((self.fail)(&format!("{at}.user"), "expected a string".into()));
                    }
                    (None, None) => return Err((self.fail)(&format!("{at}.name"), "is required".into())),
                };
                let text = match message.get("content") {
                    Some(Value::Object(content)) => match content.get("text") {
                        Some(Value::String(text)) => text.clone(),
                        Some(_) => {
                            return Err((self.fail)(
                                &format!("{at}.content.text"),
                                "expected a string".into(),
                            ));
                        }
                        None => return Err((self.fail)(&format!("{at}.content.text"), "is required".into())),
                    },
                    Some(_) => {
                        return Err((self.fail)(&format!("{at}.content"), "expected an object".into()));
                    }
                    None => return Err((self.fail)(&format!("{at}.content"), "is required".into())),
                };
                lines.push(ExampleLine { speaker, text });
            }
            conversations.push(lines);
        }
        Ok(conversations)
    }
}

/// A character id from a name: lower case, letters and digits, `-` between words.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() { "character".into() } else { out.chars().take(48).collect() }
}

impl fmt::Display for Moment {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = serde_json::to_value(self).ok().and_then(|value| value.as_str().map(str::to_owned));
        formatter.write_str(name.as_deref().unwrap_or("moment"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Character, CharacterError> {
        Character::parse("test.json", "test", text)
    }

    #[test]
    fn the_three_shapes_of_message_examples_load_alike() {
        let newest = r#"{"name":"A","messageExamples":[{"examples":[
            {"name":"{{name1}}","content":{"text":"hi"}},{"name":"A","content":{"text":"hello"}}]}]}"#;
        let one_x = r#"{"name":"A","messageExamples":[[
            {"name":"{{name1}}","content":{"text":"hi"}},{"name":"A","content":{"text":"hello"}}]]}"#;
        let zero_x = r#"{"name":"A","messageExamples":[[
            {"user":"{{user1}}","content":{"text":"hi"}},{"user":"A","content":{"text":"hello"}}]],
            "lore":["once sold a moon rock"],"clients":["twitter"],"modelProvider":"openai",
            "knowledge":["fact one",{"path":"docs/a.md"}]}"#;
        for text in [newest, one_x, zero_x] {
            let character = parse(text).expect("loads");
            assert_eq!(character.message_examples.len(), 1);
            assert_eq!(character.message_examples[0][1].text, "hello");
        }
        let old = parse(zero_x).expect("loads");
        assert_eq!(old.lore, ["once sold a moon rock"]);
        assert_eq!(old.knowledge, ["fact one"]);
    }

    #[test]
    fn a_broken_file_names_its_field() {
        let cases = [
            (r#"{"bio":"x"}"#, "name"),
            (r#"{"name":"A","bio":3}"#, "bio"),
            (r#"{"name":"A","adjectives":["ok",4]}"#, "adjectives[1]"),
            (
                r#"{"name":"A","messageExamples":[[{"name":"B","content":{"text":1}}]]}"#,
                "messageExamples[0][0].content.text",
            ),
            (
                r#"{"name":"A","messageExamples":[{"examples":[{"content":{"text":"x"}}]}]}"#,
                "messageExamples[0].examples[0].name",
            ),
            (r#"{"name":"A","style":{"all":"loud"}}"#, "style.all"),
            (
                r#"{"name":"A","settings":{"sothebais":{"expressions":{"furious":"a.png"}}}}"#,
                "settings.sothebais.expressions",
            ),
            (
                r#"{"name":"A","settings":{"sothebais":{"expressions":{"happy":"/etc/passwd.png"}}}}"#,
                "settings.sothebais.expressions.happy",
            ),
            (
                r#"{"name":"A","settings":{"sothebais":{"mood_rules":{"dwell_ms":"x"}}}}"#,
                "settings.sothebais.mood_rules.dwell_ms",
            ),
            (r#"{"name":"A","settings":{"sothebais":{"colour":1}}}"#, "settings.sothebais.colour"),
            (r#"{"name":"A","templates":{"x":1}}"#, "templates.x"),
            ("{\"name\":", "$"),
        ];
        for (text, path) in cases {
            let error = parse(text).expect_err(text);
            assert_eq!(error.path, path, "{text}: {error}");
            assert!(error.to_string().starts_with("test.json: "), "{error}");
        }
    }

    #[test]
    fn a_mood_without_art_shows_neutral_and_no_art_shows_the_mood_name() {
        let character = parse(
            r#"{"name":"A","settings":{"sothebais":{"expressions":{"neutral":{"image":"c/n.png","talk":"c/n-talk.png"}}}}}"#,
        )
        .expect("loads");
        assert_eq!(character.expression_name(Mood::Happy), "c/n.png");
        assert_eq!(character.expression(Mood::Happy).and_then(ExpressionArt::talk), Some("c/n-talk.png"));
        let bare = parse(r#"{"name":"A"}"#).expect("loads");
        assert_eq!(bare.expression_name(Mood::Tense), "tense");
    }

    #[test]
    fn slugs_are_ids() {
        assert_eq!(slug("Sir Reginald Hammerstone"), "sir-reginald-hammerstone");
        assert_eq!(slug("  !!"), "character");
    }
}
