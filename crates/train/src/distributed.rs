//! Data-parallel training on libtorch's c10d (Gloo on the CPU, NCCL on CUDA devices): who this process is (torchrun's environment), and the
//! four exchanges a data-parallel SIT-FER step needs — the starting weights from rank 0, the mean gradient,
//! the rows every rank must see (the memory bank's labeled features and slots, the self-adaptive threshold's
//! probabilities), and agreement on stopping. Which rows a rank trains on is the input pipeline's business
//! ([`crate::data::prefetch`]); what only rank 0 writes is the loop's.

use std::time::Duration;

use anyhow::{bail, Context};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use torch_ext::dist::{ProcessGroup, Rendezvous};

/// This process's place in a data-parallel run, from the variables torchrun (and Slurm/Kubernetes launchers
/// built on it) set: `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    pub(crate) rank: usize,
    pub world: usize,
    pub(crate) local_rank: usize,
    pub(crate) addr: String,
    pub(crate) port: u16,
}

impl Launch {
    /// `None` without `WORLD_SIZE`, or with `WORLD_SIZE=1` and no `RANK`: a single-process run. torchrun with
    /// one process sets both, and gets a group of one (the same code path as many ranks, on one).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<Launch>> {
        let Some(world) = get("WORLD_SIZE") else { return Ok(None) };
        let num = |key: &str, text: &str| -> anyhow::Result<usize> {
            text.trim().parse().with_context(|| format!("{key}={text:?}: expected a whole number"))
        };
        let world = num("WORLD_SIZE", &world)?;
        if world == 0 {
            bail!("WORLD_SIZE=0: expected at least 1 process");
        }
        if world == 1 && get("RANK").is_none() {
            return Ok(None);
        }
        let need = |key: &str| {
            get(key).with_context(|| {
                format!("WORLD_SIZE={world} but {key} is not set (launch with torchrun or train run --nproc)")
            })
        };
        let rank = num("RANK", &need("RANK")?)?;
        if rank >= world {
            bail!("RANK={rank}: expected 0 to {} for WORLD_SIZE={world}", world - 1);
        }
        let local_rank = match get("LOCAL_RANK") {
            Some(v) => num("LOCAL_RANK", &v)?,
            None => rank,
        };
        let addr = get("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into());
        let port_text = get("MASTER_PORT").unwrap_or_else(|| "29500".into());
        let port =
            port_text.trim().parse().with_context(|| format!("MASTER_PORT={port_text:?}: expected a port number"))?;
        Ok(Some(Launch { rank, world, local_rank, addr, port }))
    }

    /// The device this rank trains on: `cuda` or `auto` (which found a GPU) become this rank's own GPU,
    /// `cuda:LOCAL_RANK`, as torchrun scripts do with `torch.cuda.set_device(local_rank)`; an explicit
    /// `cuda:N` or `cpu` is kept.
    pub fn device(&self, requested: &str, parsed: Device) -> Device {
        let explicit_index = requested.trim().contains(':');
        match parsed {
            Device::Cuda(_) if !explicit_index => Device::Cuda(self.local_rank),
            d => d,
        }
    }
}

/// A joined process group and what the trainer does with it.
pub struct Dist {
    group: ProcessGroup,
    /// Where the group's tensors live: the CPU for Gloo, this rank's GPU for NCCL.
    device: Device,
}

impl Dist {
    /// Joins the group (rank 0 serves the rendezvous); waits up to `timeout` for every rank. NCCL when this
    /// rank trains on a CUDA device, Gloo on the CPU (PyTorch's defaults).
    pub fn join(l: &Launch, timeout: Duration, device: Device) -> anyhow::Result<Dist> {
        let r = Rendezvous {
            host: l.addr.clone(),
            port: l.port,
            rank: l.rank,
            world: l.world,
            interface: std::env::var("GLOO_SOCKET_IFNAME").ok().filter(|s| !s.is_empty()),
            timeout,
        };
        let group = match device {
            Device::Cuda(i) => ProcessGroup::nccl(&r, i)?,
            _ => ProcessGroup::gloo(&r)?,
        };
        Ok(Dist { group, device })
    }

    pub fn rank(&self) -> usize {
        self.group.rank()
    }

    pub fn world(&self) -> usize {
        self.group.world()
    }

    /// The process group itself, for collectives inside the model (synchronised batch norm).
    pub(crate) fn group(&self) -> &ProcessGroup {
        &self.group
    }

    /// Every variable (weights and batch-norm buffers) as rank 0 has it, in name order on every rank.
    pub(crate) fn broadcast_variables(&self, vs: &VarStore) -> anyhow::Result<()> {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        tch::no_grad(|| -> anyhow::Result<()> {
            for (name, v) in vars {
                self.group.broadcast(&[v.detach()], 0).with_context(|| format!("broadcasting {name}"))?;
            }
            Ok(())
        })
    }

    /// Replaces each gradient with its mean over the ranks: one flat all-reduce (gradients of one dtype).
    pub(crate) fn average_gradients(&self, grads: &[Tensor]) -> anyhow::Result<()> {
        let defined: Vec<&Tensor> = grads.iter().filter(|g| g.defined()).collect();
        if defined.is_empty() {
            return Ok(());
        }
        tch::no_grad(|| -> anyhow::Result<()> {
            let flat = Tensor::cat(&defined.iter().map(|g| g.flatten(0, -1)).collect::<Vec<_>>(), 0);
            self.group.all_reduce_sum(std::slice::from_ref(&flat))?.wait().context("averaging gradients")?;
            let flat = flat / self.world() as f64;
            let mut at = 0;
            for g in defined {
                let n = g.numel() as i64;
                g.shallow_clone().copy_(&flat.narrow(0, at, n).view_as(g));
                at += n;
            }
            Ok(())
        })
    }

    /// Every rank's rows of `t` (same shape on each), stacked in rank order: what one process with the whole
    /// batch would hold.
    pub(crate) fn gather_rows(&self, t: &Tensor) -> anyhow::Result<Tensor> {
        // The exchange happens where the group's tensors live (the GPU for NCCL); the rows come back where `t` was.
        let parts = self.group.all_gather(&t.to_device(self.device).contiguous()).context("gathering rows")?;
        Ok(Tensor::cat(&parts, 0).to_device(t.device()))
    }

    /// Rank `rank`'s contiguous share of `n` items for evaluation: ⌈n / world⌉ each, the last share shorter.
    pub(crate) fn share(&self, n: usize) -> std::ops::Range<usize> {
        let per = n.div_ceil(self.world());
        let start = (self.rank() * per).min(n);
        start..(start + per).min(n)
    }

    /// The rows of every rank's [`Self::share`] of `n` items, stacked in order: `t` holds this rank's rows
    /// (padded to the common share size for the exchange, trimmed after).
    pub(crate) fn gather_shares(&self, t: &Tensor, n: usize) -> anyhow::Result<Tensor> {
        let per = n.div_ceil(self.world()) as i64;
        let mut size = t.size();
        let have = size[0];
        size[0] = per - have;
        let padded = if have < per {
            Tensor::cat(&[t.shallow_clone(), Tensor::zeros(&size, (t.kind(), t.device()))], 0)
        } else {
            t.shallow_clone()
        };
        Ok(self.gather_rows(&padded)?.narrow(0, 0, n as i64))
    }

    /// True on every rank when it is true on any (a Ctrl-C or a planned stop seen by one rank stops all at
    /// the same step, so they write one checkpoint together).
    pub(crate) fn any(&self, flag: bool) -> anyhow::Result<bool> {
        let t = Tensor::from_slice(&[i32::from(flag)]).to_kind(Kind::Float).to_device(self.device);
        self.group.all_reduce_sum(std::slice::from_ref(&t))?.wait().context("agreeing on stopping")?;
        Ok(f64::try_from(&t)? > 0.0)
    }

    /// Every rank's training device, in rank order (what `run.json` records): each rank sends its device as
    /// one number, -1 for the CPU and the index for a CUDA device.
    pub fn gather_devices(&self, mine: Device) -> anyhow::Result<Vec<Device>> {
        let code = match mine {
            Device::Cuda(i) => i as i64,
            _ => -1,
        };
        let t = Tensor::from_slice(&[code]).to_device(self.device);
        let all = self.group.all_gather(&t).context("gathering the ranks' devices")?;
        all.iter()
            .map(|t| {
                let code = i64::try_from(t)?;
                Ok(if code < 0 { Device::Cpu } else { Device::Cuda(usize::try_from(code)?) })
            })
            .collect()
    }

    /// Rank 0's `code`, on every rank (how rank 0 tells the others what it decided about the run folder).
    pub fn broadcast_code(&self, code: u8) -> anyhow::Result<u8> {
        let t = Tensor::from_slice(&[i64::from(code)]).to_device(self.device);
        self.group.broadcast(std::slice::from_ref(&t), 0).context("receiving rank 0's decision")?;
        Ok(u8::try_from(i64::try_from(&t)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn shares_cover_a_set_once_and_gather_back_in_order() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let ranks: Vec<_> = (0..2)
            .map(|rank| {
                std::thread::spawn(move || {
                    let l = Launch { rank, world: 2, local_rank: rank, addr: "127.0.0.1".into(), port };
                    let d = Dist::join(&l, Duration::from_secs(30), tch::Device::Cpu).unwrap();
                    let r = d.share(5);
                    let mine = Tensor::arange_start(r.start as i64, r.end as i64, (Kind::Float, tch::Device::Cpu));
                    let all = d.gather_shares(&mine.view([-1, 1]), 5).unwrap();
                    (r, Vec::<f32>::try_from(all.flatten(0, -1)).unwrap())
                })
            })
            .collect();
        let out: Vec<_> = ranks.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!((out[0].0.clone(), out[1].0.clone()), (0..3, 3..5));
        for (_, all) in out {
            assert_eq!(all, vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        }
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn each_rank_takes_its_local_gpu_unless_told_otherwise() {
        let l = Launch { rank: 3, world: 4, local_rank: 1, addr: "node0".into(), port: 1 };
        assert_eq!(l.device("cuda", Device::Cuda(0)), Device::Cuda(1));
        assert_eq!(l.device("auto", Device::Cuda(0)), Device::Cuda(1));
        assert_eq!(l.device("cuda:0", Device::Cuda(0)), Device::Cuda(0));
        assert_eq!(l.device("auto", Device::Cpu), Device::Cpu);
        assert_eq!(l.device("cpu", Device::Cpu), Device::Cpu);
    }

    #[test]
    fn launch_reads_torchrun_variables_and_names_what_is_wrong() {
        assert_eq!(Launch::from_env(env(&[])).unwrap(), None);
        assert_eq!(Launch::from_env(env(&[("WORLD_SIZE", "1")])).unwrap(), None);
        let one = Launch::from_env(env(&[("WORLD_SIZE", "1"), ("RANK", "0")])).unwrap().unwrap();
        assert_eq!((one.rank, one.world), (0, 1));
        let l = Launch::from_env(env(&[
            ("WORLD_SIZE", "4"),
            ("RANK", "3"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "node0"),
            ("MASTER_PORT", "1234"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(l, Launch { rank: 3, world: 4, local_rank: 1, addr: "node0".into(), port: 1234 });
        let defaults = Launch::from_env(env(&[("WORLD_SIZE", "2"), ("RANK", "0")])).unwrap().unwrap();
        assert_eq!((defaults.addr.as_str(), defaults.port, defaults.local_rank), ("127.0.0.1", 29500, 0));
        let e = |p: &[(&str, &str)]| format!("{:#}", Launch::from_env(env(p)).unwrap_err());
        assert!(e(&[("WORLD_SIZE", "2")]).contains("RANK is not set"));
        assert!(e(&[("WORLD_SIZE", "2"), ("RANK", "2")]).contains("RANK=2: expected 0 to 1"));
        assert!(e(&[("WORLD_SIZE", "two")]).contains("WORLD_SIZE=\"two\""));
        assert!(e(&[("WORLD_SIZE", "0")]).contains("WORLD_SIZE=0"));
        assert!(e(&[("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_PORT", "x")]).contains("MASTER_PORT=\"x\""));
    }
}
