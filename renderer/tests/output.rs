//! The renderer end to end: the real binary renders on the machine's Vulkan driver
//! (lavapipe without a GPU), encodes with GStreamer, and a real RTMP server (nginx
//! with the RTMP module) receives the stream; ffprobe checks what arrived.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;

fn renderer(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sothebais-renderer"));
    command
        .args(["--width", &WIDTH.to_string(), "--height", &HEIGHT.to_string()])
        // No backend to follow here, and free ports for the stream manager.
        .args(["--no-follow", "--port", "0", "--ws-port", "0", "--metrics-port", "0", "--health-port", "0"])
        .args(args);
    command
}

/// ffprobe's view of the streams of a file (frames counted) or of a live URL.
fn probe(target: &str) -> Vec<Value> {
    let live = target.starts_with("rtmp");
    let output = Command::new("timeout")
        .args(["30", "ffprobe", "-v", "error"])
        .args(if live { &["-analyzeduration", "3000000"][..] } else { &["-count_frames"][..] })
        .args(["-show_entries", "stream=codec_type,codec_name,width,height,r_frame_rate,nb_read_frames"])
        .args(["-of", "json", target])
        .output()
        .expect("ffprobe (package ffmpeg) runs");
    let parsed: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    parsed["streams"].as_array().cloned().unwrap_or_default()
}

fn stream<'a>(streams: &'a [Value], kind: &str) -> &'a Value {
    streams
        .iter()
        .find(|stream| stream["codec_type"] == kind)
        .unwrap_or_else(|| panic!("a {kind} stream in {streams:?}"))
}

fn assert_show_streams(streams: &[Value]) {
    let video = stream(streams, "video");
    assert_eq!(video["codec_name"], "h264", "{video}");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(u64::from(WIDTH)), Some(u64::from(HEIGHT)))
    );
    assert_eq!(video["r_frame_rate"], "30/1");
    assert_eq!(stream(streams, "audio")["codec_name"], "aac");
}

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
fn a_bad_output_is_refused_with_a_clear_message() {
    let output = renderer(&["--frames", "1", "--output", "show.avi"]).output().expect("run");
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("neither an rtmp(s):// URL nor a .mp4, .mkv or .flv file"), "{text}");
}

/// nginx with the RTMP module on a free port, stopped on drop.
struct RtmpServer(Child);

impl RtmpServer {
    fn start(dir: &Path, port: u16) -> RtmpServer {
        let config = dir.join("nginx.conf");
        std::fs::write(
            &config,
            format!(
                "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
                 daemon off; master_process off; pid {dir}/nginx.pid; error_log {dir}/error.log;\n\
                 events {{}}\n\
                 rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; record off; }} }} }}\n",
                dir = dir.display()
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
        RtmpServer(child)
    }
}

impl Drop for RtmpServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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
    std::thread::sleep(Duration::from_secs(2));
    let live = probe(&url);
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
