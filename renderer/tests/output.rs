//! The renderer's outputs end to end: the real binary renders on the machine's
//! Vulkan driver (lavapipe without a GPU), encodes with GStreamer, and a real RTMP
//! server (nginx with the RTMP module) receives the stream; ffprobe checks what
//! arrived. Also how it stops: signals, finalised files, the stages in order.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_recording_holds_every_frame_as_h264_with_an_aac_track() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("show.mp4");
    let status =
        renderer(&["--frames", "45", "--output", file.to_str().expect("path")]).status().expect("run");
    assert!(status.success());
    let streams = probe(file.to_str().expect("path"));
    assert_show_streams(&streams);
    assert_eq!(stream(&streams, "video")["nb_read_frames"], "45");
}

#[test]
fn a_size_the_encoder_cannot_take_is_refused_with_a_clear_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_sothebais-renderer"))
        .args(["--width", "641", "--height", "360", "--no-follow", "--frames", "1", "--output", "x.mkv"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("641x360: the width must be a multiple of 8"), "{text}");
}

#[test]
fn a_bad_output_is_refused_with_a_clear_message() {
    let output = renderer(&["--frames", "1", "--output", "show.avi"]).output().expect("run");
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("neither an rtmp(s):// URL nor a .mp4, .mkv or .flv file"), "{text}");
}

#[test]
fn an_rtmp_server_receives_the_show_while_a_recording_is_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("port")
        .port();
    let _server = RtmpServer::start(dir.path(), port);
    let url = format!("rtmp://127.0.0.1:{port}/live/show-key");
    let recording = dir.path().join("show.mkv");
    // Ten seconds of show, so the probe can join while it is live.
    let mut show =
        renderer(&["--frames", "300", "--output", &url, "--output", recording.to_str().expect("path")])
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the renderer");
    let live = probe_live(&url);
    let status = show.wait().expect("renderer ends");
    let mut log = String::new();
    if let Some(mut stderr) = show.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut stderr, &mut log);
    }
    assert!(status.success(), "{log}");
    assert!(!log.contains("show-key"), "the stream key is masked in the log: {log}");
    assert_show_streams(&live);
    assert_show_streams(&probe(recording.to_str().expect("path")));
}

#[test]
fn an_rtmp_server_that_restarts_gets_the_stream_again_while_the_recording_goes_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("port")
        .port();
    let server = RtmpServer::start(dir.path(), port);
    let url = format!("rtmp://127.0.0.1:{port}/live/show-key");
    let recording = dir.path().join("show.mkv");
    let mut show =
        Running::start(&["--fps", "15", "--output", &url, "--output", recording.to_str().expect("path")]);
    let api = show.api();
    wait_for_status(&api, "the stream never went live", Duration::from_secs(60), |status| {
        output_state(status, 0).0 == "live" && status["frames_rendered"].as_u64() > Some(15)
    });

    // The ingest goes away: the stream is retried, the recording carries on.
    drop(server);
    let down = wait_for_status(&api, "the lost ingest was not noticed", Duration::from_secs(60), |status| {
        output_state(status, 0).0 == "reconnecting"
    });
    let frames_down = down["data"]["frames_rendered"].as_u64().unwrap_or_default();
    assert_eq!(output_state(&down["data"], 1).0, "live", "the recording is not affected: {down}");

    // It comes back on the same port: the renderer reconnects by itself.
    let _server = RtmpServer::start(dir.path(), port);
    let back = wait_for_status(&api, "no reconnect", Duration::from_secs(90), |status| {
        let (state, reconnects) = output_state(status, 0);
        state == "live" && reconnects >= 1
    });
    assert!(back["data"]["frames_rendered"].as_u64() > Some(frames_down), "rendering went on: {back}");
    assert_show_streams_sized(&probe_live(&url), 640, 360, "15/1");

    // Stopped with SIGTERM, the recording holds the whole show.
    let status = Command::new("kill").args(["-TERM", &show.child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let exit = show.child.wait().expect("exit");
    assert!(exit.success(), "{exit:?}\n{}", show.log());
    let log = show.log();
    assert!(!log.contains("show-key"), "the stream key is masked in the log: {log}");
    let streams = probe(recording.to_str().expect("path"));
    assert_show_streams_sized(&streams, 640, 360, "15/1");
    let frames: u64 =
        stream(&streams, "video")["nb_read_frames"].as_str().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(frames > frames_down, "the recording kept going through the outage: {frames} frames");
}

#[test]
fn without_an_output_the_show_is_recorded_under_the_data_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let show = Running::start(&["--data-dir", dir.path().to_str().expect("path")]);
    let api = show.api();
    let status = wait_for_status(&api, "an output", Duration::from_secs(60), |status| {
        status["outputs"].as_array().is_some_and(|outputs| !outputs.is_empty())
    });
    let url = status["data"]["outputs"][0]["url"].as_str().unwrap_or_default().to_owned();
    assert!(url.contains("/recordings/show-") && url.ends_with(".mkv"), "{url}");
    assert!(dir.path().join("recordings").is_dir(), "the recordings folder is made");
}

#[test]
fn sigint_finalises_the_recording_stage_by_stage_and_a_second_one_exits_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    // An MP4 is only playable once finalised (its index is written at the end).
    let file = dir.path().join("show.mp4");
    let mut show = Running::start(&["--fps", "15", "--output", file.to_str().expect("path")]);
    let api = show.api();
    wait_for_status(&api, "frames encoded", Duration::from_secs(90), |status| {
        status["outputs"][0]["state"] == "live"
    });
    std::thread::sleep(Duration::from_secs(2));
    interrupt(&show.child);
    let status = exited(&mut show.child, Duration::from_secs(60)).expect("it stops");
    assert!(status.success(), "a clean stop: {status:?}\n{}", show.log());
    let streams = probe(file.to_str().expect("path"));
    assert_eq!(stream(&streams, "video")["codec_name"], "h264", "a finalised, playable MP4");
    let log = show.log();
    let positions: Vec<usize> = ["render", "listeners", "follower", "publisher"]
        .iter()
        .filter_map(|stage| log.find(&format!("stopped stage=\"{stage}\"")))
        .collect();
    assert_eq!(positions.len(), 4, "every stage is logged as stopped:\n{log}");
    assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "in this order:\n{log}");

    // An ingest that accepts the connection and never answers holds the finish up
    // (each output gets up to 15 s to end its stream): a second SIGINT cuts it short.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a silent ingest");
    let port = silent.local_addr().expect("addr").port();
    let accepting = std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((connection, _)) = silent.accept() {
            held.push(connection);
            if held.len() > 20 {
                break;
            }
        }
    });
    let recording = dir.path().join("second.mp4");
    let url = format!("rtmp://127.0.0.1:{port}/live/key");
    let mut show =
        Running::start(&["--fps", "15", "--output", recording.to_str().expect("path"), "--output", &url]);
    let api = show.api();
    wait_for_status(&api, "the recording live", Duration::from_secs(90), |status| {
        status["outputs"][0]["state"] == "live"
    });
    interrupt(&show.child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !show.log().contains("stopping stage=\"render\"") {
        assert!(Instant::now() < deadline, "the first SIGINT starts the stop:\n{}", show.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(show.child.try_wait().ok().flatten().is_none(), "still finishing its outputs:\n{}", show.log());
    interrupt(&show.child);
    let status = exited(&mut show.child, Duration::from_secs(10)).expect("the second SIGINT ends it");
    assert_eq!(status.code(), Some(130), "exits at once:\n{}", show.log());
    assert!(show.log().contains("second signal: stopping at once"), "{}", show.log());
    drop(accepting);
}
