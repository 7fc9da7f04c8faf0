//! The `rmq` binary: NameServer, broker, standalone (both in one process), admin and tuning
//! commands. Parses arguments and config, starts the runtimes, waits. All logic lives in the
//! library crates; errors here are `anyhow` with the file or peer named.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::rc::Rc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use rmq::namesrv::kv::KvConfig;
use rmq::namesrv::processor::{NameServer, NamesrvOptions};
use rmq_net::conn::ServeConfig;

#[derive(Parser)]
#[command(
    name = "rmq",
    version,
    about = "RocketMQ-compatible NameServer and broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a NameServer.
    Namesrv(NamesrvArgs),
    /// Host tuning tools.
    Tuning {
        #[command(subcommand)]
        command: TuningCommand,
    },
}

#[derive(Args)]
struct NamesrvArgs {
    /// Port to listen on.
    #[arg(long, default_value_t = 9876)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value_t = Ipv4Addr::UNSPECIFIED)]
    bind: Ipv4Addr,
    /// Where the KV config is persisted.
    #[arg(long, default_value = "./data/namesrv/kvConfig.json")]
    kv_config: PathBuf,
    /// Put `orderTopicConf` from the KV config into routes (`orderMessageEnable`).
    #[arg(long)]
    order_message_enable: bool,
}

#[derive(Subcommand)]
enum TuningCommand {
    /// Check this host against the tuning guide (tuning/README.md); exits 1 on failures.
    Check(TuningCheckArgs),
}

#[derive(Args)]
struct TuningCheckArgs {
    /// The broker's store directory (checks its filesystem and block device).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long, conflicts_with = "script")]
    json: bool,
    /// Print the commands that would apply the recommendations.
    #[arg(long)]
    script: bool,
    /// Shards the broker will run (sizes the memlock requirement).
    #[arg(long)]
    shards: Option<usize>,
    /// Check the limits of this running process instead of our own.
    #[arg(long)]
    pid: Option<u32>,
    /// Read /proc and /sys under this root (testing).
    #[arg(long, default_value = "/")]
    root: PathBuf,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Namesrv(args) => run_namesrv(&args),
        Command::Tuning {
            command: TuningCommand::Check(args),
        } => {
            let format = if args.json {
                rmq_tuning::OutputFormat::Json
            } else if args.script {
                rmq_tuning::OutputFormat::Script
            } else {
                rmq_tuning::OutputFormat::Table
            };
            let options = rmq_tuning::CheckOptions {
                root: args.root,
                format,
                data_dir: args.data_dir,
                shards: args.shards,
                pid: args.pid,
            };
            let outcome = rmq_tuning::run_check(&options, &mut std::io::stdout().lock())
                .context("tuning check")?;
            std::process::exit(outcome.exit_code);
        }
    }
}

fn run_namesrv(args: &NamesrvArgs) -> anyhow::Result<()> {
    let kv = KvConfig::open(Some(&args.kv_config))
        .with_context(|| format!("kv config {}", args.kv_config.display()))?;
    let options = NamesrvOptions {
        order_message_enable: args.order_message_enable,
    };
    let addr = SocketAddr::V4(SocketAddrV4::new(args.bind, args.port));
    let runtime = compio::runtime::Runtime::new().context("io_uring runtime")?;
    runtime.block_on(async move {
        let listener = rmq::namesrv::server::bind(addr).with_context(|| format!("bind {addr}"))?;
        let local = listener.local_addr().context("local address")?;
        tracing::info!(%local, "NameServer listening");
        // One machine-readable line, so scripts and tests can use `--port 0`.
        println!("READY namesrv {local}");
        let server = Rc::new(NameServer::new(kv, options));
        rmq::namesrv::server::run(listener, server, ServeConfig::default()).await;
        Ok(())
    })
}
