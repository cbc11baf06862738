//! `train run --nproc N`: what torchrun does on one machine. Starts N copies of this command as ranks 0..N-1
//! (torchrun's variables, a free loopback port, the cores split evenly between them), waits, and when one
//! rank fails stops the others and says which one it was.

use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{bail, Context};

pub fn spawn_local(nproc: u16) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding this executable to start the ranks")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free local port for the rendezvous")?
        .port();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / usize::from(nproc)).max(1).to_string();
    // The terminal's Ctrl-C reaches every rank (they stop together, after a checkpoint); this process waits.
    ctrlc::set_handler(|| {}).context("installing the Ctrl-C handler")?;
    let mut ranks: Vec<Child> = Vec::new();
    for rank in 0..nproc {
        let child = Command::new(&exe)
            .args(&args)
            .env("WORLD_SIZE", nproc.to_string())
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .env("OMP_NUM_THREADS", &threads)
            .env("RAYON_NUM_THREADS", &threads)
            .spawn()
            .with_context(|| format!("starting rank {rank}"))?;
        ranks.push(child);
    }
    let mut running: Vec<Option<Child>> = ranks.into_iter().map(Some).collect();
    let mut interrupted = false;
    while running.iter().any(Option::is_some) {
        let mut failed = Vec::new();
        for (rank, slot) in running.iter_mut().enumerate() {
            let Some(child) = slot.as_mut() else { continue };
            let Some(status) = child.try_wait().with_context(|| format!("waiting for rank {rank}"))? else { continue };
            *slot = None;
            match status.code() {
                Some(0) => {}
                Some(130) => interrupted = true,
                _ => failed.push((rank, status)),
            }
        }
        // A rank that dies takes its peers' collectives down with it: name the one killed by a signal (or the
        // first to fail), not the ones that failed because of it.
        if let Some(&(rank, status)) = failed.iter().find(|(_, s)| s.code().is_none()).or(failed.first()) {
            for (other, slot) in running.iter_mut().enumerate() {
                if let Some(c) = slot.as_mut() {
                    let _ = c.kill();
                    let _ = c.wait();
                    eprintln!("train: stopped rank {other}");
                }
            }
            bail!("rank {rank} of {nproc} failed ({status}); the other ranks were stopped (its message is above)");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if interrupted {
        std::process::exit(130);
    }
    Ok(())
}
