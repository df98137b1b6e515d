//! Real processes for end-to-end tests and benchmarks: find the built binaries, start
//! them, learn their listeners from their logs, stop them with a signal or a kill.
//!
//! The binaries must be built first (`cargo build --workspace --bins`: a plain `--bins`
//! builds the default members only, not the renderer, and a stale renderer then runs);
//! the test command does it.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The path of a workspace binary built next to this test executable.
pub fn binary(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("SOTHEBAIS_BIN_DIR") {
        return Path::new(&dir).join(name);
    }
    // Beside this executable (target/<profile>/sothebais-bench), or one folder up from
    // a test binary (target/<profile>/deps/e2e-<hash>).
    let exe = std::env::current_exe().unwrap_or_default();
    let candidates: Vec<PathBuf> = exe.ancestors().skip(1).take(2).map(|dir| dir.join(name)).collect();
    let found = candidates.iter().find(|path| path.exists()).cloned();
    found.unwrap_or_else(|| {
        panic!(
            "{name} is missing next to {}: build it first with `cargo build --workspace --bins`",
            exe.display()
        )
    })
}

/// A started `sothebais` process; killed when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

/// One `listening role=… kind=… addr=…` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub role: String,
    pub kind: String,
    pub addr: String,
}

impl Process {
    /// Starts `binary args…` in `dir` with exactly `env` added to a clean environment
    /// (plus `PATH`), capturing its log.
    pub fn start(
        binary: &Path,
        args: &[&str],
        dir: &Path,
        env: &BTreeMap<String, String>,
    ) -> anyhow::Result<Process> {
        let mut command = Command::new(binary);
        command
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .envs(env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().with_context(|| format!("starting {}", binary.display()))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(mut lines) = log.lock() {
                        lines.push(line);
                    }
                }
            });
        }
        Ok(Process { child, log })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process has logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|lines| lines.clone()).unwrap_or_default()
    }

    /// Waits until the process has logged `count` listeners, and returns them.
    pub fn wait_for_listeners(&mut self, count: usize, timeout: Duration) -> anyhow::Result<Vec<Listener>> {
        self.wait_for_log(&format!("{count} listeners"), timeout, |log| {
            let listeners: Vec<Listener> = log.iter().filter_map(|line| parse_listening(line)).collect();
            (listeners.len() >= count).then_some(listeners)
        })
    }

    /// Waits until the process has logged a line containing `text`, and returns it.
    pub fn wait_for_line(&mut self, text: &str, timeout: Duration) -> anyhow::Result<String> {
        self.wait_for_log(&format!("{text:?}"), timeout, |log| {
            log.iter().find(|line| line.contains(text)).cloned()
        })
    }

    /// Reads the log until `found` finds what it looks for (`what`), the process exits,
    /// or `timeout` passes.
    fn wait_for_log<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut found: impl FnMut(&[String]) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if let Some(value) = found(&log) {
                return Ok(value);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("exited with {status} before logging {what}:\n{}", log.join("\n"));
            }
            if Instant::now() > deadline {
                bail!("no {what} logged after {timeout:?}:\n{}", log.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        self.child.kill()?;
        Ok(self.child.wait()?)
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        self.wait(timeout)
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                // Let the reader threads drain the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("still running after {timeout:?}:\n{}", self.log().join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses `… listening role=auction kind=api addr=127.0.0.1:4400`.
pub fn parse_listening(line: &str) -> Option<Listener> {
    let rest = &line[line.find("listening role=")? + "listening ".len()..];
    let mut fields = BTreeMap::new();
    for pair in rest.split_whitespace() {
        if let Some((key, value)) = pair.split_once('=') {
            fields.insert(key, value.trim_matches('"'));
        }
    }
    Some(Listener {
        role: (*fields.get("role")?).to_owned(),
        kind: (*fields.get("kind")?).to_owned(),
        addr: (*fields.get("addr")?).to_owned(),
    })
}

/// The address of a process's `role` `kind` listener, from its `listening` lines.
pub fn addr(listeners: &[Listener], role: &str, kind: &str) -> String {
    listeners
        .iter()
        .find(|listener| listener.role == role && listener.kind == kind)
        .map(|listener| listener.addr.clone())
        .unwrap_or_else(|| panic!("no {role} {kind} listener among {listeners:?}"))
}

/// `http://…` of the gateway (the admin role's API listener).
pub fn gateway(listeners: &[Listener]) -> String {
    format!("http://{}", addr(listeners, "admin", "api"))
}

/// A token from `sothebais token --role <role>` run with a process's settings and
/// folder, so it is signed with that process's secret.
pub fn token(dir: &Path, settings: &BTreeMap<String, String>, role: &str) -> anyhow::Result<String> {
    let output = Command::new(binary("sothebais"))
        .args(["token", "--role", role, "--ttl", "2h"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(settings)
        .output()
        .context("running sothebais token")?;
    if !output.status.success() {
        bail!("sothebais token: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// `sothebais-renderer` arguments that put every stream manager listener on a free port.
pub const RENDERER_FREE_PORTS: [&str; 8] =
    ["--port", "0", "--ws-port", "0", "--metrics-port", "0", "--health-port", "0"];

/// `GET url`, its body read as JSON.
pub async fn get_json(client: &reqwest::Client, url: &str) -> anyhow::Result<serde_json::Value> {
    Ok(client.get(url).send().await?.json().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line_is_parsed_from_a_log_line() {
        let line = "2026-11-25T19:43:14Z  INFO sothebais_kit::listen: listening role=auction kind=api addr=127.0.0.1:4400";
        assert_eq!(
            parse_listening(line),
            Some(Listener { role: "auction".into(), kind: "api".into(), addr: "127.0.0.1:4400".into() })
        );
        assert_eq!(parse_listening("INFO starting roles=auction"), None);
    }
}
