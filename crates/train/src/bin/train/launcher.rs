//! `train run --nproc N`: what torchrun does on one machine. Starts N copies of this command as ranks 0..N-1
//! (torchrun's variables, a free loopback port, the cores split evenly between them), waits, and when one
//! rank fails stops the others and says which one it was.
//!
//! Signals: the ranks run in their own process group, so a terminal's Ctrl-C reaches this process only, and
//! every SIGINT, SIGTERM or SIGHUP it gets is passed on to each rank as one SIGINT (the first makes them stop
//! together after a checkpoint, a second quits at once). If this process dies without passing anything on
//! (SIGKILL, a crash), the kernel sends each rank SIGTERM (`PR_SET_PDEATHSIG`): they stop the same way, and
//! none is left training unattended or holding the run's lock.

use std::os::unix::process::CommandExt;
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
    let ranks = (0..nproc)
        .map(|rank| start_rank(&exe, &args, rank, nproc, port, &threads))
        .collect::<anyhow::Result<Vec<Child>>>()?;
    let pids: Vec<i32> = ranks.iter().map(|c| c.id() as i32).collect();
    ctrlc::set_handler(move || {
        for &pid in &pids {
            // SAFETY: kill(2) with a pid this process started; a rank that already exited makes it a no-op.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
    })
    .context("installing the signal handler that passes Ctrl-C and SIGTERM on to the ranks")?;
    if wait_for(ranks, nproc)? {
        std::process::exit(130);
    }
    Ok(())
}

/// Rank `rank` of `nproc`: this command again, in its own process group, with torchrun's variables.
fn start_rank(
    exe: &std::path::Path,
    args: &[String],
    rank: u16,
    nproc: u16,
    port: u16,
    threads: &str,
) -> anyhow::Result<Child> {
    let launcher = std::process::id();
    let mut cmd = Command::new(exe);
    cmd.process_group(0);
    // SAFETY: between fork and exec only async-signal-safe calls (prctl, getppid; no allocation).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The launcher may have died before the prctl: then no signal would ever come.
            if libc::getppid() as u32 != launcher {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    cmd.args(args)
        .env("WORLD_SIZE", nproc.to_string())
        .env("RANK", rank.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .env("OMP_NUM_THREADS", threads)
        .env("RAYON_NUM_THREADS", threads)
        .spawn()
        .with_context(|| format!("starting rank {rank}"))
}

/// Waits for every rank; when one fails, stops the others and names it. `true`: some rank was interrupted.
fn wait_for(ranks: Vec<Child>, nproc: u16) -> anyhow::Result<bool> {
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
    Ok(interrupted)
}
