use clap::Parser;
use tracing_subscriber::EnvFilter;

use cairn_gateway::flags::{Command, Flags, RestoreArgs, SnapshotCommand};

/// mimalloc rather than glibc's malloc: a request allocates and frees many small buffers across
/// threads, where glibc spent about an eighth of the server's CPU (perf, put with 100 clients).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let flags = Flags::parse();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Half the cores: every hand-off between two workers wakes a sleeping core, and on a machine
    // the members share with other work (a Kubernetes control plane, or this repository's
    // benchmark) those wake-ups cost more than a second worker gains. BENCHMARKS.md has the
    // figures.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(flags.worker_threads(cores))
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("cairn: cannot start the runtime: {e}");
            std::process::exit(1);
        });
    runtime.block_on(serve(flags));
}

async fn serve(flags: Flags) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{},openraft=warn", flags.log_level)));
    // Colours only on a terminal: logs redirected to files stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    let outcome = match &flags.command {
        Some(Command::Snapshot(SnapshotCommand::Restore(args))) => restore(args),
        None => cairn_gateway::server::run(flags).await,
    };
    if let Err(e) = outcome {
        eprintln!("cairn: {e}");
        std::process::exit(1);
    }
}

fn restore(args: &RestoreArgs) -> Result<(), String> {
    args.validate()?;
    let dir = args.data_dir();
    let revision = cairn_core::backup::restore(&args.file, &dir).map_err(|e| e.to_string())?;
    println!("restored snapshot {} at revision {revision} into {}", args.file.display(), dir.display());
    Ok(())
}
