//! A whole campaign, end to end, with every part real and in its own process:
//! `sothebais serve` (embedded, or PostgreSQL + Redis), `sothebais xsim` with a
//! simulated audience bidding on X, `sothebais-renderer` following the show (the
//! WebSocket, or Redis Streams) and streaming to nginx-rtmp while it records, and
//! the host speaking with espeak-ng. The demo's campaign of four lots runs (a reserve
//! met, one not met, sudden death, a hot lot with anti-snipe); the backend is killed
//! with SIGKILL mid-lot and started again. Then every claim of the show is checked
//! against the logs: the lots' times and outcomes, the bids against the audience's
//! posts, the replies on X, the hash chains, the frames (OCR), the audio track and
//! what the RTMP server received.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sothebais_backend::cli::DemoArgs;
use sothebais_backend::social::parse::{self, Parsed};
use sothebais_shared::amount::Amount;
use sothebais_shared::auction::Campaign;
use sothebais_testkit::process::{Listener, Process, binary, gateway, get_json, token};
use sothebais_testkit::{Backend, eventually};

use crate::on_air::{
    Show, codecs, countdowns, decoded_audio, history, loudness_db, probe, repo, shows, start_renderer,
};
use crate::social::{replied_to, x_settings};

const WAIT: Duration = Duration::from_secs(60);
const SEED: u64 = 7;

/// nginx with the RTMP module on a free port, recording each stream it receives to
/// its own FLV file under `received/`.
struct RtmpServer {
    child: Child,
    url: String,
    received: PathBuf,
}

impl RtmpServer {
    fn start(dir: &Path) -> RtmpServer {
        let dir = dir.join("rtmp");
        let received = dir.join("received");
        std::fs::create_dir_all(&received).expect("mkdir");
        let port = free_port();
        let config = dir.join("nginx.conf");
        std::fs::write(
            &config,
            format!(
                "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
                 daemon off; master_process off; pid {dir}/nginx.pid; error_log {dir}/error.log;\n\
                 events {{}}\n\
                 rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on;\n\
                 record all; record_path {received}; record_unique on; }} }} }}\n",
                dir = dir.display(),
                received = received.display(),
            ),
        )
        .expect("write nginx.conf");
        let child = Command::new("nginx")
            .args(["-p", &dir.display().to_string(), "-c", &config.display().to_string()])
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (packages nginx-light, libnginx-mod-rtmp) runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx-rtmp did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        RtmpServer { child, url: format!("rtmp://127.0.0.1:{port}/live/show"), received }
    }

    /// The streams it recorded, one file per publishing session.
    fn recordings(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.received)
            .expect("received/")
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "flv"))
            .collect();
        files.sort();
        files
    }
}

impl Drop for RtmpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port()
}

/// The settings with every listener of the backend pinned to the port it bound (it
/// started on free ports), so that a restart listens where the renderer, the
/// audience and this test look for it.
fn pinned(env: &BTreeMap<String, String>, listeners: &[Listener]) -> BTreeMap<String, String> {
    let mut env = env.clone();
    for listener in listeners {
        let (prefix, ws) = match listener.role.as_str() {
            "admin" => ("ADMIN", "WS"),
            "events" => ("EVENT_HANDLER", "STREAM"),
            "auction" => ("AUCTION_ENGINE", "WS"),
            "agent" => ("AGENT_SERVICE", "WS"),
            "social" => ("SOCIAL", "WS"),
            other => panic!("an unknown role {other}"),
        };
        let key = match listener.kind.as_str() {
            "api" => format!("{prefix}_PORT"),
            "ws" => format!("{prefix}_{ws}_PORT"),
            "metrics" => format!("{prefix}_METRICS_PORT"),
            "health" => format!("{prefix}_HEALTH_PORT"),
            other => panic!("an unknown listener {other}"),
        };
        let port = listener.addr.rsplit_once(':').map(|(_, port)| port.to_owned()).expect("a port");
        env.insert(key, port);
    }
    env
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().and_then(|text| text.parse().ok()).unwrap_or_else(|| panic!("a time: {value}"))
}

fn seconds(duration: chrono::Duration) -> f64 {
    duration.num_milliseconds() as f64 / 1000.0
}

/// Sleeps until `at` (at once if it has passed).
async fn until(at: DateTime<Utc>) {
    if let Ok(wait) = (at - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
}

/// What one grabbed frame showed, and the auction just before and after it.
struct Grab {
    text: String,
    before: Value,
    after: Value,
    /// Seconds left when the frame was asked for, and when it came back.
    left: (f64, f64),
}

impl Grab {
    /// The frame's disagreements with the API, if any.
    fn problems(&self, title: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if !shows(&self.text, title) {
            problems.push(format!("the title {title:?} is not on air"));
        }
        let amounts: BTreeSet<String> = [&self.before, &self.after]
            .iter()
            .map(|auction| match auction["high_bid"]["amount"].as_str() {
                Some(high) => format!("{high} ETH"),
                None => format!("Starting at {} ETH", auction["starting_price"].as_str().unwrap_or_default()),
            })
            .collect();
        if !amounts.iter().any(|amount| shows(&self.text, amount)) {
            problems.push(format!("no bid of {amounts:?} is shown"));
        }
        let shown = countdowns(&self.text);
        let (low, high) = (self.left.1.floor() - 1.0, self.left.0.ceil() + 1.0);
        if !shown.iter().any(|secs| (low..=high).contains(&(*secs as f64))) {
            problems.push(format!("the countdown {shown:?} is not {low}..{high} s"));
        }
        problems
    }
}

struct Run {
    client: reqwest::Client,
    base: String,
    show: Show,
}

impl Run {
    async fn auction(&self, id: &str) -> Value {
        let auction = get_json(&self.client, &format!("{}/api/auction/auctions/{id}", self.base)).await;
        auction.map(|auction| auction["data"].clone()).unwrap_or(Value::Null)
    }

    async fn bids(&self, id: &str) -> Vec<Value> {
        let url = format!("{}/api/auction/history?auction_id={id}&limit=1000", self.base);
        let history = get_json(&self.client, &url).await.expect("history");
        history["data"]["bids"].as_array().cloned().unwrap_or_default()
    }

    async fn grab(&self, id: &str) -> Grab {
        let before = self.auction(id).await;
        let asked = Utc::now();
        let text = self.show.frame_text().await;
        let came = Utc::now();
        let after = self.auction(id).await;
        let left = (seconds(time(&before["ends_at"]) - asked), seconds(time(&after["ends_at"]) - came));
        Grab { text, before, after, left }
    }

    /// The events of `kind` stored on the backend, oldest first.
    async fn events(&self, kind: &str) -> Vec<Value> {
        let mut events = history(&self.client, &self.base, kind, 1000).await["data"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        events.reverse();
        events
    }
}

/// The ETH amounts a line states (`1.5 ETH`, `Ξ1.5`).
fn amounts_in(text: &str) -> Vec<Amount> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let number = |word: &str| word.trim_matches(|c: char| !c.is_ascii_digit()).parse::<Amount>().ok();
    let mut found = Vec::new();
    for (index, word) in words.iter().enumerate() {
        if let Some(rest) = word.strip_prefix('Ξ') {
            found.extend(number(rest));
        } else if words
            .get(index + 1)
            .is_some_and(|next| next.trim_matches(|c: char| !c.is_alphabetic()) == "ETH")
        {
            found.extend(number(word));
        }
    }
    found
}

/// Every amount the show's state held: the auctions as their events carried them,
/// and every bid.
fn amounts_of(value: &Value, into: &mut BTreeSet<Amount>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                if let (true, Some(text)) = (
                    matches!(key.as_str(), "amount" | "starting_price" | "min_next_bid" | "reserve_price"),
                    value.as_str(),
                ) {
                    into.extend(text.parse::<Amount>().ok());
                } else {
                    amounts_of(value, into);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| amounts_of(item, into)),
        _ => {}
    }
}

#[expect(clippy::print_stderr, reason = "the measured figures are said in the test output")]
async fn a_whole_campaign(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let rtmp = RtmpServer::start(dir);
    let sim_url = format!("http://127.0.0.1:{}", free_port());
    let mut env = backend.process_settings().await;
    x_settings(&mut env, &sim_url);
    env.insert("TTS_PROVIDER".into(), "espeak".into());
    let mut server = Process::start(&binary("sothebais"), &["serve"], dir, &env).expect("start");
    let listeners = server.wait_for_listeners(20, WAIT).expect("listening");
    let env = pinned(&env, &listeners);
    let base = gateway(&listeners);
    let sim_port = sim_url.rsplit_once(':').map(|(_, port)| port.to_owned()).expect("port");
    let seed = SEED.to_string();
    let mut sim = Process::start(
        &binary("sothebais"),
        &["xsim", "--port", &sim_port, "--audience", "12", "--seed", &seed, "--show-url", &base],
        dir,
        &BTreeMap::new(),
    )
    .expect("start xsim");
    sim.wait_for_line("xsim listening", WAIT).expect("xsim listening");
    let operator = token(dir, &env, "operator").expect("token");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    let (mut renderer, show, recording, _, _) =
        start_renderer(dir, &base, &env, &client, "show.mkv", &["--output", &rtmp.url]);
    show.wait_until_following(&renderer).await;
    let on_air = Instant::now();
    let run = Run { client: client.clone(), base: base.clone(), show };

    // The demo's campaign: four lots of 12 s, five seconds from now.
    let args = DemoArgs {
        audience: 12,
        seed: SEED,
        lots: 4,
        lot_secs: 12,
        lead_secs: 5,
        // X's read limits space reads about 3 s apart: a sniper's bid is read
        // after the end, and counts by when it was posted, within the grace.
        grace_secs: 4,
        x_port: 0,
        no_renderer: true,
        output: Vec::new(),
        r#loop: false,
    };
    let plan = sothebais_backend::demo::campaign(&args, Utc::now(), 0);
    let created = client
        .post(format!("{base}/api/auction/campaigns"))
        .bearer_auth(&operator)
        .json(&plan)
        .send()
        .await
        .expect("create the campaign");
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("json");
    let campaign: Campaign = serde_json::from_value(created["data"].clone()).expect("a campaign");
    let ids: Vec<String> = campaign.lots.iter().map(|lot| lot.auction_id.to_string()).collect();

    let mut acknowledged: Vec<Value> = Vec::new();
    let mut results = Vec::new();
    let mut frames_read = Vec::new();
    for (index, lot) in campaign.lots.iter().enumerate() {
        let id = &ids[index];
        // Four seconds in: the frame shows the lot, its high bid and its countdown as
        // the API has them (a few tries: OCR reads a busy frame imperfectly).
        if index == 0 {
            // A viewer asks the host something (the seeded audience mostly bids).
            until(lot.starts_at + chrono::Duration::seconds(2)).await;
            let asked = client
                .post(format!("{sim_url}/sim/posts"))
                .json(&json!({ "author": "vermeer", "text": "@SothebAIs who made this piece?" }))
                .send()
                .await
                .expect("ask");
            assert_eq!(asked.status(), 201);
        }
        until(lot.starts_at + chrono::Duration::seconds(4)).await;
        let mut tries = Vec::new();
        for _ in 0..3 {
            let grab = run.grab(id).await;
            let problems = grab.problems(&lot.title);
            let done = problems.is_empty();
            tries.push((grab.text, problems));
            if done {
                break;
            }
        }
        let (text, problems) = tries.last().expect("a try");
        assert!(problems.is_empty(), "lot {index} on air: {tries:#?}\n{text}");
        eprintln!("lot {index} on air after {} tries", tries.len());
        frames_read.extend(tries.into_iter().map(|(text, _)| text.to_lowercase()));

        if index == 1 {
            // Mid-lot, the backend is killed and started again on the same ports.
            until(lot.starts_at + chrono::Duration::seconds(6)).await;
            for id in &ids[..2] {
                acknowledged.extend(run.bids(id).await);
            }
            let frames = run.show.frames_rendered().await;
            server.kill().expect("kill -9");
            let killed = Instant::now();
            server = Process::start(&binary("sothebais"), &["serve"], dir, &env).expect("restart");
            server.wait_for_listeners(20, WAIT).expect("listening again");
            eprintln!("backend down for {:?} (SIGKILL to listening again)", killed.elapsed());
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert!(run.show.frames_rendered().await > frames, "the renderer went on through the restart");
        }

        // Closed (WAIT past the scheduled end covers extensions and grace), and its
        // result on air; the times are checked against the events below.
        let closed = eventually(
            WAIT + (lot.scheduled_end - Utc::now()).to_std().unwrap_or_default(),
            "the lot closes",
            async || {
                let auction = run.auction(id).await;
                matches!(auction["state"].as_str(), Some("closed" | "settled")).then_some(auction)
            },
        )
        .await
        .unwrap_or_else(|error| panic!("lot {index}: {error}"));
        let wanted = match closed["outcome"]["result"].as_str() {
            Some("sold") => format!(
                "SOLD to @{} for {} ETH",
                closed["outcome"]["winner"]["handle"].as_str().unwrap_or_default().trim_start_matches('@'),
                closed["outcome"]["amount"].as_str().unwrap_or_default()
            ),
            Some("reserve_not_met") => "RESERVE NOT MET".to_owned(),
            _ => "NO BIDS".to_owned(),
        };
        let took = run.show.until_frame_shows(&wanted, Duration::from_secs(8)).await.unwrap_or_else(|text| {
            panic!("lot {index}'s result {wanted:?} never went on air; the last read:\n{text}")
        });
        eprintln!("lot {index} closed: {wanted} (on air within {took:?} of the API saying so)");
        results.push(closed);
    }

    // The late posters' posts arrive up to 30 s after they were written: the show
    // decides and answers them all before anything is counted.
    until(time(&results[3]["closes_at"]) + chrono::Duration::seconds(32)).await;
    let status_url = format!("{base}/api/social/status");
    eventually(WAIT, "every post is decided and every reply sent", async || {
        let status = get_json(&client, &status_url).await.ok()?;
        (status["data"]["replies_pending"] == 0
            && status["data"]["posts"]["received"].as_u64().unwrap_or(0) == 0)
            .then_some(())
    })
    .await
    .expect("settled");
    let status = get_json(&client, &status_url).await.expect("status");
    eprintln!("X writes by kind and state: {}", status["data"]["writes"]);

    // Every lot opened and closed on schedule, by the events' own clock.
    let starts = run.events("auction:start").await;
    let ends = run.events("auction:end").await;
    for (index, lot) in campaign.lots.iter().enumerate() {
        let at = |events: &[Value]| {
            events
                .iter()
                .find(|event| event["data"]["auction"]["id"] == ids[index].as_str())
                .and_then(|event| event["timestamp"].as_i64())
                .and_then(DateTime::from_timestamp_millis)
                .unwrap_or_else(|| panic!("lot {index} has no such event"))
        };
        let opened = seconds(at(&starts) - lot.starts_at);
        let closed = seconds(at(&ends) - time(&results[index]["closes_at"]));
        eprintln!("lot {index} opened {opened:+.3} s and closed {closed:+.3} s from its schedule");
        assert!((-0.5..=3.0).contains(&opened), "lot {index} opened {opened} s off schedule");
        assert!((-0.5..=3.0).contains(&closed), "lot {index} closed {closed} s off schedule");
    }

    // The right outcome by each lot's rules.
    let outcome = |index: usize| results[index]["outcome"]["result"].as_str().unwrap_or_default().to_owned();
    assert_eq!(outcome(0), "sold", "a reserve at the start price is met: {}", results[0]);
    assert_eq!(outcome(1), "reserve_not_met", "a reserve far above the bids: {}", results[1]);
    assert_eq!(results[2]["extended"], false, "sudden death is never extended: {}", results[2]);
    assert_eq!(results[2]["ends_at"], results[2]["scheduled_end"]);
    assert_eq!(outcome(3), "sold", "{}", results[3]);
    let mut histories = Vec::new();
    for (index, id) in ids.iter().enumerate() {
        let bids = run.bids(id).await;
        let extending = bids.iter().filter(|bid| !bid["extended_to"].is_null()).count();
        assert_eq!(
            results[index]["extended"] == true,
            extending > 0,
            "lot {index} is extended exactly when a bid extended it: {}",
            results[index]
        );
        eprintln!(
            "lot {index}: {} bids ({} accepted), {extending} extensions, {}",
            bids.len(),
            bids.iter().filter(|bid| bid["status"] == "accepted").count(),
            outcome(index)
        );
        // Its hash chain verifies, and replaying the log gives the same result.
        let verified =
            get_json(&client, &format!("{base}/api/auction/auctions/{id}/verify")).await.expect("verify");
        assert_eq!(verified["data"]["chain_valid"], true, "lot {index}: {verified}");
        assert_eq!(
            verified["data"]["outcome_from_log"], results[index]["outcome"],
            "lot {index}: {verified}"
        );
        histories.extend(bids);
    }

    // No bid acknowledged before the kill was lost or changed.
    for before in &acknowledged {
        let after = histories.iter().find(|bid| bid["id"] == before["id"]);
        assert_eq!(after, Some(before), "acknowledged before SIGKILL, the same after");
    }

    // Every bid the audience posted was decided exactly once, and its poster got
    // exactly one answer: a reply, or, where X's reply rule refuses one (a bid in the
    // lot's thread that does not mention the show), a standings post of the lot.
    let everything = get_json(&client, &format!("{sim_url}/sim/posts")).await.expect("posts");
    let posts = everything["data"].as_array().cloned().unwrap_or_default();
    let users: BTreeMap<String, String> = everything["includes"]["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|user| Some((user["id"].as_str()?.to_owned(), user["username"].as_str()?.to_owned())))
        .collect();
    let author =
        |post: &Value| users.get(post["author_id"].as_str().unwrap_or_default()).cloned().unwrap_or_default();
    let (mine, theirs): (Vec<&Value>, Vec<&Value>) =
        posts.iter().partition(|post| author(post) == "SothebAIs");
    let replies_to = |post: &str| -> Vec<&Value> {
        mine.iter().copied().filter(|reply| replied_to(reply) == Some(post)).collect()
    };
    let threads: BTreeSet<String> = mine
        .iter()
        .filter(|post| replied_to(post).is_none())
        .filter_map(|post| post["id"].as_str().map(str::to_owned))
        .collect();
    let thread_of: BTreeMap<String, String> = campaign
        .lots
        .iter()
        .filter_map(|lot| {
            let announcement = mine.iter().find(|post| {
                replied_to(post).is_none()
                    && post["text"].as_str().is_some_and(|text| text.contains(&lot.title))
            })?;
            Some((lot.auction_id.to_string(), announcement["id"].as_str()?.to_owned()))
        })
        .collect();
    assert_eq!(thread_of.len(), 4, "every lot was announced on X");
    let huge = Amount::from_wei(10u128.pow(30));
    let (mut decided, mut in_standings) = (0, 0);
    for post in &theirs {
        let id = post["id"].as_str().unwrap_or_default();
        let text = post["text"].as_str().unwrap_or_default();
        let mentions = text.to_lowercase().contains("@sothebais");
        let in_thread = post["conversation_id"].as_str().is_some_and(|thread| threads.contains(thread));
        if !matches!(parse::parse(text, huge), Parsed::Bid { .. }) || !(mentions || in_thread) {
            continue;
        }
        let bids: Vec<&Value> = histories.iter().filter(|bid| bid["source_ref"] == id).collect();
        let answers: Vec<&Value> = replies_to(id)
            .into_iter()
            .filter(|reply| !reply["text"].as_str().unwrap_or_default().contains("outbid"))
            .collect();
        assert!(bids.len() <= 1, "post {id} ({text:?}) was decided {} times: {bids:?}", bids.len());
        assert!(bids.len() == 1 || answers.len() == 1, "post {id} ({text:?}) was never decided");
        // Where X refuses the reply, or the reply budget's last quarter is kept for
        // announcements and results, the bidder is acknowledged in a standings post
        // in the lot's thread (by name when the bid was accepted).
        let thread = bids
            .first()
            .and_then(|bid| thread_of.get(bid["auction_id"].as_str().unwrap_or_default()))
            .map(String::as_str)
            .or(post["conversation_id"].as_str())
            .unwrap_or_default();
        let named = format!("@{}", author(post));
        let accepted = bids.first().is_some_and(|bid| bid["status"] == "accepted");
        let in_a_standings = replies_to(thread).into_iter().any(|reply| {
            let text = reply["text"].as_str().unwrap_or_default();
            text.contains("standings") && (!accepted || text.contains(&named))
        });
        if mentions {
            assert!(
                answers.len() == 1 || (answers.is_empty() && in_a_standings),
                "post {id} ({text:?}) by {named}, decided {bids:?}, answered neither by a reply nor in a standings post of {thread}: {:#?}",
                replies_to(thread).iter().map(|reply| &reply["text"]).collect::<Vec<_>>()
            );
        } else {
            assert!(answers.is_empty(), "X let the show reply to a post that did not summon it: {answers:?}");
            assert!(in_a_standings, "post {id} ({text:?}) by {named} was never acknowledged");
        }
        if answers.is_empty() && bids.len() == 1 {
            in_standings += 1;
        }
        decided += 1;
    }
    eprintln!(
        "{decided} bids posted on X, each decided once and answered ({in_standings} in standings posts)"
    );
    assert!(decided >= 8, "the audience bid on the lots: {decided}");
    // No post answered twice (an outbid notice is the second, separate, reply).
    for post in &theirs {
        let id = post["id"].as_str().unwrap_or_default();
        let answers = replies_to(id)
            .into_iter()
            .filter(|reply| !reply["text"].as_str().unwrap_or_default().contains("outbid"))
            .count();
        assert!(answers <= 1, "post {id} was answered {answers} times");
    }
    let outbid =
        mine.iter().filter(|post| post["text"].as_str().unwrap_or_default().contains("outbid")).count();
    assert!(outbid > 0, "outbid notices were posted");
    for lot in &campaign.lots {
        let result = mine.iter().find(|post| {
            let text = post["text"].as_str().unwrap_or_default();
            text.contains(&lot.title)
                && (text.contains("SOLD") || text.contains("reserve") || text.contains("no bids"))
        });
        assert!(result.is_some(), "the result of {:?} was posted", lot.title);
    }

    // The host's lines: grounded in the state, answered once on X, on air as captions
    // and heard on the track.
    let mut facts = BTreeSet::new();
    for kind in ["auction:start", "auction:bid:accepted", "auction:end", "auction:extended"] {
        amounts_of(&Value::Array(run.events(kind).await), &mut facts);
    }
    amounts_of(&Value::Array(histories.clone()), &mut facts);
    let lines = run.events("agent:message").await;
    let mut spoken_ms = 0;
    let mut answered = 0;
    for line in &lines {
        let data = &line["data"];
        let text = data["text"].as_str().unwrap_or_default();
        for amount in amounts_in(text) {
            assert!(facts.contains(&amount), "the host said {amount} ETH, which no state held: {text:?}");
        }
        if data["channel"] == "x"
            && let Some(post) = data["in_reply_to"].as_str()
        {
            // (The reply budget drops answers first when it runs short.)
            let replies: Vec<&Value> =
                replies_to(post).into_iter().filter(|reply| reply["text"] == data["text"]).collect();
            assert!(replies.len() <= 1, "the host's answer to {post} is on X once: {text:?}");
            answered += replies.len();
        }
        spoken_ms += data["speech"]["duration_ms"].as_u64().unwrap_or(0);
    }
    eprintln!("{} host lines, {answered} of them answers on X, {spoken_ms} ms of speech", lines.len());
    // A caption: some word of a line for the stream read on a grabbed frame (not a
    // word the scene itself writes, nor a title).
    let scene = std::fs::read_to_string(repo("scenes/default.toml")).expect("the scene").to_lowercase();
    let captioned = lines.iter().filter(|line| line["data"]["channel"] == "stream").find_map(|line| {
        let text = line["data"]["text"].as_str().unwrap_or_default();
        text.split_whitespace()
            .map(|word| word.trim_matches(|c: char| !c.is_ascii_alphabetic()).to_lowercase())
            .filter(|word| word.len() >= 6 && word.chars().all(|c| c.is_ascii_alphabetic()))
            .filter(|word| !scene.contains(word.as_str()))
            .filter(|word| campaign.lots.iter().all(|lot| !lot.title.to_lowercase().contains(word.as_str())))
            .find(|word| frames_read.iter().any(|frame| frame.contains(word.as_str())))
            .map(|word| (word, text.to_owned()))
    });
    let (word, line) = captioned.unwrap_or_else(|| panic!("no host line was read on air: {frames_read:#?}"));
    eprintln!("the caption {line:?} was read on air ({word:?})");
    assert!(answered > 0, "the host answered the audience on X");
    assert!(spoken_ms > 0, "the host spoke");

    // The renderer streamed throughout: one RTMP session, never reconnected.
    let status = run.show.json("/api/stream/status").await;
    let outputs = status["data"]["outputs"].as_array().cloned().unwrap_or_default();
    let live =
        outputs.iter().find(|output| output["url"].as_str().is_some_and(|url| url.starts_with("rtmp")));
    let live = live.unwrap_or_else(|| panic!("the RTMP output: {status}"));
    assert_eq!(live["state"], "live", "{status}");
    assert_eq!(live["reconnects"], 0, "{status}");
    eprintln!(
        "renderer: {} frames, {} dropped, frame time p99 {} ms",
        status["data"]["frames_rendered"],
        status["data"]["frames_dropped"],
        status["data"]["frame_time_ms"]["p99"]
    );
    let exit = renderer.terminate(Duration::from_secs(30)).expect("renderer stops");
    let wall = on_air.elapsed().as_secs_f64();
    assert!(exit.success(), "{exit:?}\n{}", renderer.log().join("\n"));

    let received = rtmp.recordings();
    assert_eq!(received.len(), 1, "one publishing session: {received:?}");
    let codecs = codecs(&received[0]);
    assert!(
        codecs.iter().any(|codec| codec == "h264") && codecs.iter().any(|codec| codec == "aac"),
        "{codecs:?}"
    );
    let packets = probe(&received[0], &["-select_streams", "v", "-show_entries", "packet=pts_time"]);
    let times: Vec<f64> = packets["packets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|packet| packet["pts_time"].as_str()?.parse().ok())
        .collect();
    let gap = times.windows(2).map(|pair| pair[1] - pair[0]).fold(0.0_f64, f64::max);
    let span = times.last().copied().unwrap_or(0.0) - times.first().copied().unwrap_or(0.0);
    let duration = |file: &Path| -> f64 {
        probe(file, &["-show_entries", "format=duration"])["format"]["duration"]
            .as_str()
            .and_then(|text| text.parse().ok())
            .unwrap_or(0.0)
    };
    let recorded = duration(&recording);
    eprintln!(
        "on air {wall:.1} s: RTMP received {span:.1} s of video ({} packets, longest gap {gap:.3} s), the recording is {recorded:.1} s",
        times.len()
    );
    assert!(gap <= 2.0, "a gap of {gap} s in what the RTMP server received");
    assert!(span >= wall * 0.9 - 3.0 && span <= wall + 3.0, "{span} s received of {wall} s on air");
    assert!(
        recorded >= wall * 0.9 - 3.0 && recorded <= wall + 3.0,
        "{recorded} s recorded of {wall} s on air"
    );

    // The host is heard: the track is loud for at least half the speech's length.
    let samples = decoded_audio(&recording);
    let loud = loudness_db(&samples).iter().filter(|db| **db > -35.0).count() as u64 * 100;
    eprintln!("the track is loud for {loud} ms of {spoken_ms} ms of speech");
    assert!(loud * 2 >= spoken_ms, "{loud} ms loud for {spoken_ms} ms of speech");
    server.terminate(Duration::from_secs(15)).expect("the backend stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_whole_campaign_runs_on_schedule_and_every_claim_checks_out_embedded() {
    if Backend::all().contains(&Backend::Embedded) {
        a_whole_campaign(Backend::Embedded).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_whole_campaign_runs_on_schedule_and_every_claim_checks_out_production() {
    if Backend::all().contains(&Backend::Production) {
        a_whole_campaign(Backend::Production).await;
    }
}
