//! What the renderer's end-to-end tests share: the real binary started as an
//! operator would (`Running`, its log collected), nginx with the RTMP module
//! (`RtmpServer`), ffprobe, the stream manager API over plain HTTP, tokens, frames.
#![allow(dead_code, reason = "each test binary uses some of the helpers")]

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const WIDTH: u32 = 640;
pub const HEIGHT: u32 = 360;

pub fn renderer(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sothebais-renderer"));
    command
        .args(["--width", &WIDTH.to_string(), "--height", &HEIGHT.to_string()])
        // No backend to follow here, and free ports for the stream manager.
        .args(["--no-follow", "--port", "0", "--ws-port", "0", "--metrics-port", "0", "--health-port", "0"])
        .args(args);
    command
}

/// ffprobe's view of the streams of a file (frames counted) or of a live URL.
pub fn probe(target: &str) -> Vec<Value> {
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

/// Probes a live stream until it carries both video and audio (the server has it),
/// instead of sleeping a guess; what the last probe saw after 20 s.
pub fn probe_live(url: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let streams = probe(url);
        let has = |kind: &str| streams.iter().any(|stream| stream["codec_type"] == kind);
        if (has("video") && has("audio")) || Instant::now() > deadline {
            return streams;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn stream<'a>(streams: &'a [Value], kind: &str) -> &'a Value {
    streams
        .iter()
        .find(|stream| stream["codec_type"] == kind)
        .unwrap_or_else(|| panic!("a {kind} stream in {streams:?}"))
}

pub fn assert_show_streams(streams: &[Value]) {
    assert_show_streams_sized(streams, WIDTH, HEIGHT, "30/1");
}

pub fn assert_show_streams_sized(streams: &[Value], width: u32, height: u32, rate: &str) {
    let video = stream(streams, "video");
    assert_eq!(video["codec_name"], "h264", "{video}");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(u64::from(width)), Some(u64::from(height)))
    );
    assert_eq!(video["r_frame_rate"], rate);
    assert_eq!(stream(streams, "audio")["codec_name"], "aac");
}

/// Frame `number` (from 0) of a video file as RGB bytes, decoded by ffmpeg.
pub fn frame_rgb(file: &Path, number: u32) -> Vec<u8> {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-i", file.to_str().expect("path")])
        .args(["-vf", &format!("select=eq(n\\,{number})"), "-frames:v", "1"])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// nginx with the RTMP module on a free port, stopped on drop.
pub struct RtmpServer(Child);

impl RtmpServer {
    pub fn start(dir: &Path, port: u16) -> RtmpServer {
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

/// A running renderer whose log is collected, killed on drop.
pub struct Running {
    pub child: Child,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Running {
    pub fn start(args: &[&str]) -> Running {
        Running::spawn(renderer(args))
    }

    /// Recording to `dir/show.mkv` at 15 fps with `scene` of `scenes` pinned on air, and
    /// the test's token secret.
    pub fn on_scene(dir: &Path, scenes: &Path, scene: &str) -> Running {
        let recording = dir.join("show.mkv");
        Running::start(&[
            "--fps",
            "15",
            "--output",
            recording.to_str().expect("path"),
            "--scenes",
            scenes.to_str().expect("path"),
            "--scene",
            scene,
            "--jwt-secret",
            SECRET,
        ])
    }

    pub fn spawn(mut command: Command) -> Running {
        let mut child = command.stderr(Stdio::piped()).spawn().expect("start the renderer");
        let log = Running::read_log(&mut child);
        Running { child, log }
    }

    pub fn read_log(child: &mut Child) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
                    if let Ok(mut lines) = log.lock() {
                        lines.push(line);
                    }
                }
            });
        }
        log
    }

    pub fn log(&self) -> String {
        self.log.lock().map(|lines| lines.join("\n")).unwrap_or_default()
    }

    /// The stream manager API's address, from the `listening` line.
    pub fn api(&self) -> String {
        self.listener("api")
    }

    /// The address of the stream manager's `kind` listener, from its `listening` line.
    pub fn listener(&self, kind: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let marker = format!("listening role=stream kind={kind} addr=");
        loop {
            let found = self.log.lock().ok().and_then(|lines| {
                lines.iter().find_map(|line| line.split(&marker).nth(1).map(|addr| addr.trim().to_owned()))
            });
            if let Some(addr) = found {
                return addr;
            }
            assert!(Instant::now() < deadline, "no API address:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on `addr`, the JSON body.
pub fn get(addr: &str, path: &str) -> Value {
    send(addr, "GET", path, &[], b"").1
}

/// Waits until the status satisfies `check`; the last status otherwise.
pub fn wait_for_status(addr: &str, what: &str, timeout: Duration, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let status = get(addr, "/api/stream/status");
        if check(&status["data"]) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn output_state(status: &Value, index: usize) -> (String, u64) {
    let output = &status["outputs"][index];
    (
        output["state"].as_str().unwrap_or_default().to_owned(),
        output["reconnects"].as_u64().unwrap_or_default(),
    )
}

/// A request with a body on `addr`: the status code and the JSON body.
pub fn send(addr: &str, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, Value) {
    let (code, body) = request(addr, method, path, headers, body);
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A request on `addr`: the status code and the raw body (status 0 when nothing
/// listens, yet or any more).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = TcpStream::connect(addr) else { return (0, Vec::new()) };
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write");
    stream.write_all(body).expect("write body");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let code = String::from_utf8_lossy(&response[..response.len().min(16)])
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let start =
        response.windows(4).position(|window| window == b"\r\n\r\n").map_or(response.len(), |at| at + 4);
    (code, response.split_off(start))
}

pub const SECRET: &str = "renderer-test-secret-of-enough-length";

pub fn token(role: &str) -> String {
    #[derive(serde::Serialize)]
    struct Claims<'a> {
        sub: &'a str,
        role: &'a str,
        exp: u64,
    }
    let exp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() + 600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &Claims { sub: "test", role, exp },
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token")
}

pub fn multipart(name: &str, content: &[u8]) -> (String, Vec<u8>) {
    let boundary = "sothebais-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Waits until the pixel at (x, y) of `/api/stream/frame` is within 10 of `want`.
pub fn wait_for_pixel(api: &str, (x, y): (u32, u32), want: [u8; 3], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let frame = image::load_from_memory(&request(api, "GET", "/api/stream/frame", &[], b"").1)
            .map(|image| image.to_rgb8());
        let got = frame.ok().map(|frame| frame.get_pixel(x, y).0);
        if got.is_some_and(|got| got.iter().zip(want).all(|(got, want)| got.abs_diff(want) <= 10)) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: the pixel is {got:?}, not {want:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The frame once the scene has settled (its fade-ins done), as RGB.
pub fn settled_frame(api: &str) -> image::RgbImage {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let frame = image::load_from_memory(&request(api, "GET", "/api/stream/frame", &[], b"").1);
        if let Ok(frame) = frame {
            // Two seconds past the first frame: the lot image's 800 ms fade-in is over.
            std::thread::sleep(Duration::from_secs(2));
            let later = image::load_from_memory(&request(api, "GET", "/api/stream/frame", &[], b"").1);
            return later.unwrap_or(frame).to_rgb8();
        }
        assert!(Instant::now() < deadline, "no frame");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The mean difference per channel of two frames over a rectangle.
pub fn region_distance(a: &image::RgbImage, b: &image::RgbImage, (x, y, w, h): (u32, u32, u32, u32)) -> f64 {
    let mut sum = 0u64;
    for row in y..y + h {
        for column in x..x + w {
            let (pa, pb) = (a.get_pixel(column, row).0, b.get_pixel(column, row).0);
            sum += pa.iter().zip(pb).map(|(pa, pb)| u64::from(pa.abs_diff(pb))).sum::<u64>();
        }
    }
    sum as f64 / f64::from(w * h * 3)
}

/// Serves `body` (JSON) at every path of a local port, on a thread, until the test ends.
pub fn serve_json(body: String) -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for mut socket in listener.incoming().map_while(Result::ok) {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = socket.write_all(head.as_bytes());
            let _ = socket.write_all(body.as_bytes());
        }
    });
    url
}

pub fn interrupt(child: &Child) {
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill -INT");
    assert!(sent.success(), "SIGINT sent");
}

/// The exit status, once the process has ended (within `timeout`).
pub fn exited(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
