use clap::Parser;
use tracing_subscriber::EnvFilter;

use cairn_gateway::flags::{Command, Flags, RestoreArgs, SnapshotCommand};

/// mimalloc rather than glibc's malloc: a request allocates and frees many small buffers across
/// threads, where glibc spent about an eighth of the server's CPU (perf, put with 100 clients).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option for how long freed memory stays mapped before it is returned to the system.
const PURGE_DELAY_VAR: &str = "MIMALLOC_PURGE_DELAY";
/// Ten seconds, where mimalloc's default is one. A member's largest allocations are RocksDB's
/// memtable blocks: a full memtable is freed at once after its flush, and the next one takes
/// that memory back over the following seconds. Returned after one second, it had to be faulted
/// in and zeroed again: 10-15 thousand page faults per 100,000 puts on each member, a tenth of
/// the leader's CPU. With ten seconds, under a hundred. BENCHMARKS.md has the figures.
const PURGE_DELAY_MS: &str = "10000";

/// mimalloc reads its options from the environment once, before `main`. So when the operator has
/// not chosen a purge delay, the server runs itself again (same process, same arguments) with
/// ours set. Should that fail, it goes on with mimalloc's defaults.
fn with_allocator_defaults() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os(PURGE_DELAY_VAR).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    let failed = std::process::Command::new(&exe).arg0(arg0).args(args).env(PURGE_DELAY_VAR, PURGE_DELAY_MS).exec();
    eprintln!("cairn: running with the allocator's default purge delay ({failed})");
}

fn main() {
    let flags = Flags::parse();
    with_allocator_defaults();
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
