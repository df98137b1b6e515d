//! The `sothebais` command line.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use sothebais_kit::access::{self, Role};
use sothebais_kit::clock::SystemClock;

use crate::app::{Application, ServiceRole, parse_roles};
use crate::config::{Config, FlagValues};
use crate::storage;

/// SothebAIs: NFT auctions as live shows on X.
#[derive(Debug, Parser)]
#[command(name = "sothebais", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalFlags,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings that override the environment and `sothebais.toml`.
#[derive(Debug, Args)]
pub struct GlobalFlags {
    /// Configuration file (default: $SOTHEBAIS_CONFIG, else ./sothebais.toml if present)
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Folder for the SQLite file, generated secrets, recordings and uploads [env: SOTHEBAIS_DATA_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Address every listener binds [env: SOTHEBAIS_BIND]
    #[arg(long, global = true, value_name = "IP")]
    pub bind: Option<String>,
    /// postgres://… for production, sqlite://… or unset for embedded [env: DATABASE_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// redis://… for the Redis Streams bus; unset for the in-process bus [env: REDIS_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub redis_url: Option<String>,
    /// pretty or json [env: LOG_FORMAT]
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
}

impl GlobalFlags {
    fn values(&self) -> FlagValues {
        let mut values = FlagValues::new();
        for (name, value) in [
            ("SOTHEBAIS_DATA_DIR", &self.data_dir),
            ("SOTHEBAIS_BIND", &self.bind),
            ("DATABASE_URL", &self.database_url),
            ("REDIS_URL", &self.redis_url),
            ("LOG_FORMAT", &self.log_format),
        ] {
            if let Some(value) = value {
                values.insert(name, value.clone());
            }
        }
        values
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the backend (every role unless --roles says otherwise)
    Serve {
        /// Comma-separated roles: auction, events, agent, social, admin
        #[arg(long, value_name = "ROLES", default_value = "auction,events,agent,social,admin", value_parser = parse_role_list)]
        roles: RoleList,
    },
    /// Print a signed access token
    Token {
        /// admin, operator, viewer or bidder
        #[arg(long, value_parser = |text: &str| text.parse::<Role>())]
        role: Role,
        /// Subject: who the token speaks for (a bidder's id for bidder tokens)
        #[arg(long, default_value = "cli")]
        sub: String,
        /// Lifetime, such as 30m, 1h or 7d
        #[arg(long, default_value = "1h", value_parser = access::parse_ttl)]
        ttl: Duration,
    },
    /// Apply database migrations and exit
    Migrate,
    /// Run the whole show on this machine: the backend (as configured; embedded by
    /// default), the X simulator with a simulated audience, a campaign of short lots,
    /// and the renderer recording it when it is built
    Demo(DemoArgs),
    /// Run the X API simulator (X API v2's shapes, headers and limits; see docs/x.md)
    Xsim(XsimArgs),
    /// Connect the show's X account
    X {
        #[command(subcommand)]
        command: XCommand,
    },
    /// Manage the console's local accounts
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Ethereum: deploy the settlement contract
    Chain {
        #[command(subcommand)]
        command: ChainCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Deploy the settlement contract from ETH_OPERATOR_KEY's account (the only one
    /// that may settle) to ETH_RPC_URL, and print the settings that use it
    Deploy {
        /// WETH's address on this chain [default: ETH_WETH_ADDRESS]
        #[arg(long, value_name = "ADDRESS")]
        weth: Option<String>,
        /// The fee kept from each sale, in basis points (100 = 1 %)
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=10000))]
        fee_bps: u16,
        /// Who receives the fee [default: the operator's account]
        #[arg(long, value_name = "ADDRESS")]
        fee_recipient: Option<String>,
        /// Also deploy TestWETH and TestNFT (local chains only: tests and demos),
        /// and use that TestWETH
        #[arg(long)]
        test_tokens: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an account; the password is read from standard input (one line), or
    /// generated and printed once when standard input is a terminal or empty
    Add {
        /// Lower-case letters, digits, '.', '_' or '-' (at most 32)
        name: String,
        /// admin, operator or viewer
        #[arg(long, value_parser = |text: &str| text.parse::<Role>())]
        role: Role,
    },
    /// List the accounts
    List,
    /// Remove an account; its sessions end at once
    Remove { name: String },
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Simulated viewers who bid by posting
    #[arg(long, default_value_t = 12)]
    pub audience: u32,
    /// Seed of the audience's choices
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Lots in the campaign, each run by the next rules in turn: a reserve that is
    /// met, a hidden reserve that is not, sudden death, a hot lot with anti-snipe
    #[arg(long, default_value_t = 4)]
    pub lots: u32,
    /// Seconds each lot is open (anti-snipe adds at most a third of it)
    #[arg(long, default_value_t = 45)]
    pub lot_secs: u32,
    /// Seconds from start to the first lot
    #[arg(long, default_value_t = 20)]
    pub lead_secs: u32,
    /// Seconds after a lot's end that posts written in time are still taken (X's delay)
    #[arg(long, default_value_t = 15)]
    pub grace_secs: u32,
    /// Port of the X simulator (0: a free one)
    #[arg(long, default_value_t = 4700)]
    pub x_port: u16,
    /// Do not start the renderer even when it is built
    #[arg(long)]
    pub no_renderer: bool,
    /// Also stream to this output (rtmp(s):// URL or a file; repeatable), beside the recording
    #[arg(long, value_name = "URL")]
    pub output: Vec<String>,
    /// Schedule a new campaign each time the last lot has closed (a stand that runs all day)
    #[arg(long = "loop")]
    pub r#loop: bool,
}

#[derive(Debug, Args)]
pub struct XsimArgs {
    /// Port to listen on
    #[arg(long, default_value_t = 4700)]
    pub port: u16,
    /// Simulated viewers who watch the show and post bids
    #[arg(long, default_value_t = 0)]
    pub audience: u32,
    /// Seed of the audience's choices (the same seed, the same viewers and habits)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The auction API the audience watches (to see the open lots and their prices)
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:4400")]
    pub show_url: String,
    /// The show's account
    #[arg(long, default_value = "SothebAIs")]
    pub handle: String,
    /// The app-only bearer token reads accept
    #[arg(long, default_value = "xsim-bearer")]
    pub bearer_token: String,
    /// A user access token valid from the start, as if `x login` had run
    #[arg(long, default_value = "xsim-user")]
    pub user_token: String,
    /// That token's refresh token (single use)
    #[arg(long, default_value = "xsim-refresh")]
    pub refresh_token: String,
    /// How long user access tokens last, in seconds (X: 7200)
    #[arg(long, default_value_t = 7200)]
    pub token_ttl_secs: u64,
}

#[derive(Debug, Subcommand)]
pub enum XCommand {
    /// Run the OAuth 2.0 PKCE flow once and store the tokens in the data dir
    Login {
        /// Local port X redirects the browser to (register http://127.0.0.1:PORT/callback with the app)
        #[arg(long, default_value_t = crate::social::login::DEFAULT_PORT)]
        port: u16,
    },
}

/// The roles a `serve` process runs.
#[derive(Debug, Clone)]
pub struct RoleList(pub Vec<ServiceRole>);

fn parse_role_list(text: &str) -> Result<RoleList, String> {
    parse_roles(text).map(RoleList)
}

/// Loads the configuration the command line, environment and file describe.
pub fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let env = |name: &str| std::env::var(name).ok();
    Ok(Config::load(&cli.global.values(), cli.global.config.as_deref(), &env)?)
}

/// Runs a command. `token` returns the token for the binary to print.
pub async fn run(cli: Cli, config: Config) -> anyhow::Result<Option<String>> {
    match cli.command {
        Command::Serve { roles } => {
            let RoleList(roles) = roles;
            let names: Vec<&str> = roles.iter().map(|role| role.as_str()).collect();
            tracing::info!(roles = %names.join(","), data_dir = %config.data_dir.display(), "starting");
            let signals = sothebais_kit::shutdown::signals().context("listening for SIGINT and SIGTERM")?;
            let application = Application::build(config, &roles, SystemClock::shared()).await?;
            application.run(signals).await?;
            Ok(None)
        }
        Command::Token { role, sub, ttl } => {
            let secret = access::load_or_create_secret(config.jwt_secret.as_ref(), &config.data_dir)?;
            Ok(Some(access::issue_token(&secret, &sub, role, ttl)?))
        }
        Command::Demo(args) => {
            crate::demo::run(args, config).await?;
            Ok(None)
        }
        Command::Xsim(args) => {
            run_xsim(args, &config).await?;
            Ok(None)
        }
        Command::X { command: XCommand::Login { port } } => {
            crate::social::login::login(&config, port, |url| {
                #[expect(clippy::print_stdout, reason = "the URL the operator opens")]
                {
                    println!("Open this URL in a browser signed in as the show's account:\n\n  {url}\n");
                }
            })
            .await?;
            let path = crate::social::client::token_file(&config.data_dir);
            Ok(Some(format!("Connected. Tokens stored in {} (mode 0600).", path.display())))
        }
        Command::Migrate => {
            let storage = storage::connect(&config).await.context("opening the database")?;
            tracing::info!(kind = ?storage.kind(), "migrations applied");
            Ok(None)
        }
        Command::User { command } => run_user(command, &config).await.map(Some),
        Command::Chain { command: ChainCommand::Deploy { weth, fee_bps, fee_recipient, test_tokens } } => {
            let address = |value: Option<String>,
                           flag: &str|
             -> anyhow::Result<Option<alloy::primitives::Address>> {
                value
                    .map(|text| text.parse().with_context(|| format!("--{flag} {text:?} is not an address")))
                    .transpose()
            };
            let request = crate::chain::DeployRequest {
                weth: address(weth, "weth")?.or(config.chain.weth),
                fee_bps,
                fee_recipient: address(fee_recipient, "fee-recipient")?,
                test_tokens,
            };
            let deployed = crate::chain::deploy(&config.chain, &request).await?;
            Ok(Some(deployed.report()))
        }
    }
}

/// `sothebais user …`: what it did, for the binary to print.
async fn run_user(command: UserCommand, config: &Config) -> anyhow::Result<String> {
    use std::io::{IsTerminal as _, Read as _};
    let storage = storage::connect(config).await.context("opening the database")?;
    let accounts =
        crate::admin::accounts::Accounts::new(storage.clone(), SystemClock::shared(), config.session_idle);
    match command {
        UserCommand::Add { name, role } => {
            let mut typed = String::new();
            if !std::io::stdin().is_terminal() {
                std::io::stdin()
                    .read_to_string(&mut typed)
                    .context("reading the password from standard input")?;
            }
            let typed = typed.lines().next().unwrap_or_default().to_owned();
            let (password, generated) =
                if typed.is_empty() { (crate::admin::generate_password(), true) } else { (typed, false) };
            let account = accounts.add(&name, role, &password).await?;
            Ok(if generated {
                format!("Added {} ({}). Password (shown once): {password}", account.username, account.role)
            } else {
                format!("Added {} ({}).", account.username, account.role)
            })
        }
        UserCommand::List => {
            let list = storage.accounts().await?;
            if list.is_empty() {
                return Ok("No accounts yet: sothebais user add NAME --role admin".to_owned());
            }
            Ok(list
                .iter()
                .map(|account| {
                    format!(
                        "{:<32} {:<9} since {}",
                        account.username,
                        account.role,
                        account.created_at.format("%Y-%m-%d %H:%M UTC")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"))
        }
        UserCommand::Remove { name } => {
            accounts.remove(&name).await?;
            Ok(format!("Removed {name}; their sessions ended."))
        }
    }
}

async fn run_xsim(args: XsimArgs, config: &Config) -> anyhow::Result<()> {
    use crate::xsim::{SimOptions, XSim};
    let sim = XSim::new(SimOptions {
        handle: args.handle,
        bearer_token: args.bearer_token,
        user_token: args.user_token,
        refresh_token: args.refresh_token,
        token_ttl: Duration::from_secs(args.token_ttl_secs),
    });
    let listener = tokio::net::TcpListener::bind((config.bind, args.port))
        .await
        .with_context(|| format!("binding {}:{}", config.bind, args.port))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, show_id = %sim.show_id(), audience = args.audience, seed = args.seed, "xsim listening");
    let stop = tokio_util::sync::CancellationToken::new();
    if args.audience > 0 {
        tokio::spawn(crate::xsim::audience::run(
            sim.clone(),
            args.show_url,
            args.audience,
            args.seed,
            stop.clone(),
        ));
    }
    let mut signals = sothebais_kit::shutdown::signals().context("listening for SIGINT and SIGTERM")?;
    let stopping = stop.clone();
    sim.serve(listener, async move {
        use futures::StreamExt as _;
        let _ = signals.next().await;
        stopping.cancel();
    })
    .await?;
    tracing::info!("xsim stopped");
    Ok(())
}
