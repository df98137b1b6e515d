use std::process::ExitCode;

use clap::Parser as _;
use sothebais_backend::cli::{self, Cli};

/// The request path allocates many small JSON values; mimalloc serves them with far
/// less contention than the system allocator (a quarter of the server's CPU went to
/// glibc malloc under load, see docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli::load_config(&cli) {
        Ok(config) => config,
        Err(error) => {
            #[expect(
                clippy::print_stderr,
                reason = "configuration errors are reported before logging starts"
            )]
            {
                eprintln!("sothebais: {error:#}");
            }
            return ExitCode::from(2);
        }
    };
    sothebais_kit::telemetry::init(config.log_format, &config.log_filter);
    match cli::run(cli, config).await {
        Ok(Some(output)) => {
            #[expect(clippy::print_stdout, reason = "the token command's output is the token")]
            {
                println!("{output}");
            }
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            #[expect(clippy::print_stderr, reason = "the one-line reason a command failed")]
            {
                eprintln!("sothebais: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}
