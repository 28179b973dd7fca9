use clap::Parser;
use tracing_subscriber::EnvFilter;

use cairn_gateway::flags::Flags;

#[tokio::main]
async fn main() {
    let flags = Flags::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{},openraft=warn", flags.log_level)));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    if let Err(e) = cairn_gateway::server::run(flags).await {
        eprintln!("cairn: {e}");
        std::process::exit(1);
    }
}
