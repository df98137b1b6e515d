//! The model's prompt: the whole persona (name, system, bio, lore, knowledge,
//! adjectives, topics, style, examples) in the system message, and the moment with
//! its facts and the recent memory in the user message.

use std::fmt::Write as _;

use serde::Serialize;
use sothebais_shared::events::Channel;

use super::character::{Character, Moment};
use super::speaker::Situation;

/// One chat-completions message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: &'static str,
    pub content: String,
}

fn section(out: &mut String, title: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n# {title}");
    for line in lines {
        let _ = writeln!(out, "- {}", line.trim());
    }
}

/// `{{user1}}`, `{{name1}}`, `{{agentName}}` as a reader of the prompt sees them.
fn speaker_name(speaker: &str, character: &Character) -> String {
    if speaker == character.name || speaker.contains("agentName") {
        character.name.clone()
    } else if speaker.contains("{{") {
        "Viewer".into()
    } else {
        speaker.to_owned()
    }
}

/// The system message: who the host is, how it talks on this channel, the rules.
pub fn system_prompt(character: &Character, channel: Channel, max_chars: usize) -> String {
    let mut out = String::new();
    let handle = character
        .username
        .as_deref()
        .map(|name| format!(" (@{})", name.trim_start_matches('@')))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "You are {}{handle}, the host of a live art and NFT auction show streamed on X.",
        character.name
    );
    if let Some(system) = &character.system {
        let _ = writeln!(out, "{}", system.trim());
    }
    section(&mut out, "About you", &character.bio);
    section(&mut out, "Your background", &character.lore);
    section(&mut out, "What you know", &character.knowledge);
    if !character.adjectives.is_empty() {
        let _ = writeln!(out, "\n# You are\n{}", character.adjectives.join(", "));
    }
    if !character.topics.is_empty() {
        let _ = writeln!(out, "\n# You like to talk about\n{}", character.topics.join(", "));
    }
    let (style, place) = match channel {
        Channel::Stream => (&character.style.chat, "spoken on the stream, as a caption"),
        Channel::X => (&character.style.post, "posted on X"),
    };
    let mut styles = character.style.all.clone();
    styles.extend(style.iter().cloned());
    section(&mut out, "Your style", &styles);
    if !character.message_examples.is_empty() {
        let _ = writeln!(out, "\n# How you talk (examples)");
        for conversation in &character.message_examples {
            for line in conversation {
                let _ = writeln!(out, "{}: {}", speaker_name(&line.speaker, character), line.text.trim());
            }
            out.push('\n');
        }
    }
    section(&mut out, "Posts you wrote", &character.post_examples);
    let _ = write!(
        out,
        "\n# Rules\n\
         - Answer with one line, {place}, at most {max_chars} characters.\n\
         - You may begin with one mood tag: [neutral] [happy] [excited] [tense] [surprised] [disappointed] [celebrating].\n\
         - State only the amounts, handles, times, numbers and lot names given under FACTS. Never invent a bid, a bidder or a lot.\n\
         - No links, no hashtags, no financial advice; never ask for keys or payments.\n"
    );
    out
}

fn moment_text(moment: Moment) -> &'static str {
    match moment {
        Moment::LotOpen => "A lot has just opened for bidding.",
        Moment::FirstBid => "The first bid on the lot just came in.",
        Moment::Bid => "A new high bid was accepted.",
        Moment::Extended => "A late bid extended the lot's clock.",
        Moment::LastCall => "The lot is in its last seconds.",
        Moment::Sold => "The lot just sold.",
        Moment::ReserveNotMet => "The lot closed below its reserve and did not sell.",
        Moment::NoBids => "The lot closed without a bid.",
        Moment::Cancelled => "The lot was withdrawn from the sale.",
        Moment::Idle => "It has been quiet for a while: keep the audience entertained.",
        Moment::Question => "A viewer asked you something: answer them.",
    }
}

/// The user message: the moment, its facts, what was said, the recent memory.
pub fn user_prompt(situation: &Situation, memory: &[String]) -> String {
    let mut out = format!("{}\n\nFACTS:\n", moment_text(situation.moment));
    if let Some(lot) = &situation.lot {
        let _ = writeln!(out, "- lot: {}", lot.name());
        let _ = writeln!(out, "- opening price: {} ETH", lot.starting);
        match (&lot.high, &lot.leader) {
            (Some(high), Some(leader)) => {
                let _ = writeln!(out, "- high bid: {high} ETH by {leader}");
            }
            (Some(high), None) => {
                let _ = writeln!(out, "- high bid: {high} ETH");
            }
            _ => {
                let _ = writeln!(out, "- no bid yet");
            }
        }
        let _ = writeln!(out, "- next bid at least: {} ETH", lot.min_next);
        if let Some(secs) = lot.secs_left {
            let _ = writeln!(out, "- seconds left: {}", secs.max(0));
        }
        let _ = writeln!(out, "- bids so far: {}", lot.bids);
    } else {
        let _ = writeln!(out, "- no lot is open");
    }
    if let (Some(who), Some(amount)) = (&situation.who, situation.amount) {
        let _ = writeln!(out, "- this is about {who} and {amount} ETH");
    } else if let Some(who) = &situation.who {
        let _ = writeln!(out, "- this is about {who}");
    }
    if let Some(said) = &situation.said {
        let _ =
            writeln!(out, "\n{} said: \"{}\"", situation.who.as_deref().unwrap_or("A viewer"), said.trim());
    }
    if !memory.is_empty() {
        let _ = writeln!(out, "\nRecently:");
        for line in memory {
            let _ = writeln!(out, "- {line}");
        }
    }
    out.push_str("\nWrite your line now.");
    out
}

/// The two messages of a request.
pub fn messages(
    character: &Character,
    situation: &Situation,
    memory: &[String],
    max_chars: usize,
) -> Vec<ChatMessage> {
    vec![
        ChatMessage { role: "system", content: system_prompt(character, situation.channel, max_chars) },
        ChatMessage { role: "user", content: user_prompt(situation, memory) },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_persona_field_reaches_the_prompt() {
        let character = Character::parse(
            "t.json",
            "t",
            r#"{"name":"Rex","username":"rex_host","system":"SYSTEM-LINE",
            "bio":["BIO-ONE","BIO-TWO"],"lore":["LORE-LINE"],"knowledge":["KNOWLEDGE-LINE"],
            "adjectives":["ADJ-WITTY"],"topics":["TOPIC-ART"],
            "style":{"all":["STYLE-ALL"],"chat":["STYLE-CHAT"],"post":["STYLE-POST"]},
            "messageExamples":[[{"user":"{{user1}}","content":{"text":"EXAMPLE-ASK"}},
                {"user":"Rex","content":{"text":"EXAMPLE-ANSWER"}}]],
            "postExamples":["POST-EXAMPLE"]}"#,
        )
        .expect("character");
        let stream = system_prompt(&character, Channel::Stream, 160);
        for field in [
            "Rex",
            "@rex_host",
            "SYSTEM-LINE",
            "BIO-ONE",
            "BIO-TWO",
            "LORE-LINE",
            "KNOWLEDGE-LINE",
            "ADJ-WITTY",
            "TOPIC-ART",
            "STYLE-ALL",
            "STYLE-CHAT",
            "Viewer: EXAMPLE-ASK",
            "Rex: EXAMPLE-ANSWER",
            "POST-EXAMPLE",
        ] {
            assert!(stream.contains(field), "{field} missing from:\n{stream}");
        }
        assert!(!stream.contains("STYLE-POST"));
        assert!(system_prompt(&character, Channel::X, 280).contains("STYLE-POST"));
    }
}
