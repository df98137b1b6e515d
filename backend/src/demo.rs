//! `sothebais demo`: the whole show on one machine. The backend runs every role as
//! configured (embedded by default: SQLite in the data dir, the in-process bus), the
//! X simulator runs in the same process with a simulated audience watching the
//! auction API, a campaign of short lots is scheduled, and the renderer (when it is
//! built next to this binary) follows the show and records it under
//! `<data dir>/recordings`. Ctrl-C stops the renderer first (its recording is
//! finalised), then the backend.

use std::time::Duration;

use anyhow::Context as _;
use secrecy::SecretString;
use sothebais_kit::clock::SystemClock;
use sothebais_shared::amount::Amount;
use sothebais_shared::auction::{AntiSnipe, NewAuction, NewCampaign};
use tokio_util::sync::CancellationToken;

use crate::app::{Application, ListenerKind, ServiceRole};
use crate::cli::DemoArgs;
use crate::config::Config;
use crate::xsim::{SimOptions, XSim};

const TITLES: [&str; 6] =
    ["Blue Hour", "Quiet Harbour", "Night Garden", "Salt Road", "Paper Moon", "Last Light"];

/// The campaign the demo schedules: `lots` lots of `lot_secs`, far enough apart that
/// an extended lot, with its grace, never overlaps the next.
pub fn campaign(args: &DemoArgs, now: chrono::DateTime<chrono::Utc>) -> NewCampaign {
    let extension = args.lot_secs / 3;
    let lots = (0..args.lots)
        .map(|index| NewAuction {
            title: TITLES[index as usize % TITLES.len()].to_owned(),
            starting_price: Amount::from_wei(500_000_000_000_000_000u128 << index.min(6)),
            duration_secs: Some(args.lot_secs),
            late_grace_secs: Some(args.grace_secs),
            anti_snipe: Some(Some(AntiSnipe {
                window_secs: extension.max(1),
                reset_secs: extension.max(1),
                max_extension_secs: extension,
            })),
            ..NewAuction::default()
        })
        .collect();
    NewCampaign {
        name: "Demo show".into(),
        timezone: None,
        starts_at: sothebais_shared::time::CampaignStart::At(
            (now + chrono::Duration::seconds(i64::from(args.lead_secs))).fixed_offset(),
        ),
        gap_secs: Some(extension + args.grace_secs + 5),
        character: None,
        concurrent: false,
        lots,
    }
}

pub async fn run(args: DemoArgs, mut config: Config) -> anyhow::Result<()> {
    if args.lots == 0 || args.lot_secs < 5 {
        anyhow::bail!("--lots must be at least 1 and --lot-secs at least 5");
    }
    // The simulator first: the backend's social role reads it.
    let options = SimOptions::default();
    let sim = XSim::new(options.clone());
    let listener = tokio::net::TcpListener::bind((config.bind, args.x_port))
        .await
        .with_context(|| format!("binding the X simulator on {}:{}", config.bind, args.x_port))?;
    let sim_url = format!("http://{}", listener.local_addr()?);
    let stop_sim = CancellationToken::new();
    let (serving, stopped) = (sim.clone(), stop_sim.clone());
    tokio::spawn(async move { serving.serve(listener, stopped.cancelled_owned()).await });
    config.x.api_base_url = sim_url.clone();
    config.x.bearer_token = Some(SecretString::from(options.bearer_token.clone()));
    config.x.user_access_token = Some(SecretString::from(options.user_token.clone()));
    config.x.user_refresh_token = Some(SecretString::from(options.refresh_token.clone()));
    config.x.client_id = Some("sothebais-demo".into());

    let data_dir = config.data_dir.clone();
    let timezone = config.timezone;
    let application = Application::build(config, &ServiceRole::ALL, SystemClock::shared()).await?;
    let gateway = application.address(ServiceRole::Admin, ListenerKind::Api).context("the gateway")?;
    let auction_api =
        application.address(ServiceRole::Auction, ListenerKind::Api).context("the auction API")?;
    let campaign = application
        .state()
        .engine
        .create_campaign(&campaign(&args, chrono::Utc::now()), timezone)
        .await
        .map_err(|error| anyhow::anyhow!("scheduling the demo campaign: {error}"))?;
    tokio::spawn(crate::xsim::audience::run(
        sim.clone(),
        format!("http://{auction_api}"),
        args.audience,
        args.seed,
        stop_sim.clone(),
    ));

    let mut renderer = None;
    let renderer_binary = std::env::current_exe()?.with_file_name("sothebais-renderer");
    if !args.no_renderer && renderer_binary.exists() {
        let recordings = data_dir.join("recordings");
        std::fs::create_dir_all(&recordings)?;
        let output = recordings.join(format!("demo-{}.mkv", chrono::Utc::now().format("%Y%m%dT%H%M%SZ")));
        let child = tokio::process::Command::new(&renderer_binary)
            .env("SOTHEBAIS_BACKEND_URL", format!("http://{gateway}"))
            .env("SOTHEBAIS_DATA_DIR", &data_dir)
            .args(["--output", &output.display().to_string()])
            // Its own process group: Ctrl-C reaches the demo only, which stops the
            // renderer with one SIGTERM (a second signal would leave the recording
            // unfinalised).
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", renderer_binary.display()))?;
        tracing::info!(recording = %output.display(), "renderer started");
        renderer = Some(child);
    } else if !args.no_renderer {
        tracing::info!(
            "no renderer next to this binary (build it with `cargo build --release -p sothebais-renderer`): the show runs without one"
        );
    }
    let first = campaign.lots.first().map(|lot| lot.starts_at.to_rfc3339()).unwrap_or_default();
    tracing::info!(
        dashboard = %format!("http://{gateway}"),
        x_posts = %format!("{sim_url}/sim/posts"),
        lots = campaign.lots.len(),
        first_lot = %first,
        audience = args.audience,
        "demo ready"
    );

    let (signal, signals) = sothebais_kit::shutdown::channel_signals();
    let running = tokio::spawn(application.run(signals));
    let mut os_signals = sothebais_kit::shutdown::signals().context("listening for SIGINT and SIGTERM")?;
    {
        use futures::StreamExt as _;
        let _ = os_signals.next().await;
    }
    tracing::info!("stopping the demo");
    if let Some(mut child) = renderer {
        if let Some(pid) = child.id() {
            let _ = tokio::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    }
    let _ = signal.send("SIGTERM");
    stop_sim.cancel();
    running.await.context("the backend panicked")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_lots_never_overlap_even_when_extended() {
        let args = DemoArgs {
            audience: 1,
            seed: 1,
            lots: 3,
            lot_secs: 45,
            lead_secs: 20,
            grace_secs: 15,
            x_port: 0,
            no_renderer: true,
        };
        let plan = campaign(&args, chrono::Utc::now());
        let snipe = plan.lots[0].anti_snipe.flatten().expect("anti-snipe");
        let grace = plan.lots[0].late_grace_secs.unwrap_or(0);
        assert!(snipe.max_extension_secs + grace < plan.gap_secs.unwrap_or(0), "{snipe:?} {plan:?}");
        assert_eq!(plan.lots.len(), 3);
        assert!(plan.lots[1].starting_price > plan.lots[0].starting_price);
    }
}
