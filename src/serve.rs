//! `socklab serve`: a reference server in the foreground until Ctrl-C.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use socklab_harness::peer::{Server, ServerConfig};

use socklab::cli::ServeArgs;

/// Starts the server, prints its address, waits for Ctrl-C (or SIGTERM), prints its
/// counters.
pub fn serve(args: &ServeArgs) -> Result<()> {
    // Colour only on a terminal, and never with NO_COLOR set: logs are often piped.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = std::io::stderr().is_terminal() && !no_color;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .without_time()
        .init();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the runtime")?;
    runtime.block_on(async {
        let config = ServerConfig {
            transport: args.transport,
            flavour: args.flavour,
            behaviour: args.behaviour,
            framing: args.framing,
            listen: args.listen,
            max_frame_len: args.max_frame,
            source_message_size: args.source_size as usize,
            idle_timeout: Duration::from_secs(args.idle_timeout),
            frame_timeout: Duration::from_secs(args.frame_timeout),
            max_buffered_bytes: args.max_buffered,
            max_connections: args.max_connections as usize,
            ..ServerConfig::default()
        };
        let server = Server::start(config)?;
        // Registered before the address is printed: a client may stop the server as soon
        // as it reads the address. SIGTERM too, which is how `--target-cmd` stops it.
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("listen for Ctrl-C")?;
        let mut terminate = signal(SignalKind::terminate()).context("listen for SIGTERM")?;
        println!(
            "listening on {} ({}, {}, {}, {}); Ctrl-C stops",
            server.addr(),
            args.transport,
            args.framing,
            args.behaviour,
            args.flavour
        );
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        let stats = server.stats();
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        println!(
            "stopped: {} connections, {} messages, {} bytes, {} intact, {} corrupted, {} out of order, \
             {} connections closed for errors, {} refused over --max-connections, \
             {} warnings left out of the log",
            load(&stats.connections),
            load(&stats.messages),
            load(&stats.bytes),
            load(&stats.intact),
            load(&stats.corrupted),
            load(&stats.out_of_order),
            load(&stats.closed_with_error),
            load(&stats.refused),
            load(&stats.warnings_suppressed)
        );
        Ok(())
    })
}
