//! What a run's configuration asks of the machine, checked before anything is loaded: loader threads within
//! reason for the cores, and the memory of one training step (its input batches, prefetched, and the
//! activations a backward pass keeps) against the memory the machine has free. A batch of 10⁸ faces or
//! 1024-px images on a laptop is refused with the numbers, not found out by the kernel's OOM killer.

use anyhow::bail;

use crate::config::Config;

/// Bytes of activations a training step keeps per input pixel, for the trunks this trainer builds (a
/// ResNet-18 at 224 px keeps about 40 MB an image in fp32; dlib's trunk less). A rough upper estimate: the
/// check exists to catch a setting off by orders of magnitude, not to budget the last gigabyte.
const ACTIVATION_BYTES_PER_PIXEL: u64 = 800;

/// The most loader threads per core that can help (decoding and augmenting are CPU-bound).
const THREADS_PER_CORE: usize = 4;

/// The memory one step needs, in bytes, as the check counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepMemory {
    /// The input batches alive at once: the prefetch queue, the one being built and the one training.
    pub(crate) inputs: u64,
    /// Activations kept for the backward pass (on the host only when training on the CPU).
    pub(crate) activations: u64,
}

impl StepMemory {
    pub(crate) fn of(cfg: &Config, on_cpu: bool) -> Self {
        let s = &cfg.schedule;
        let images =
            s.batch_labeled.max(0) as u64 + if cfg.semi_supervised() { 2 * s.batch_unlabeled.max(0) as u64 } else { 0 };
        let pixels = (cfg.model.image_size.max(0) as u64).pow(2);
        let per_step = images.saturating_mul(pixels).saturating_mul(3 * 4);
        let live = cfg.run.prefetch as u64 + 2;
        let activations =
            if on_cpu { images.saturating_mul(pixels).saturating_mul(ACTIVATION_BYTES_PER_PIXEL) } else { 0 };
        StepMemory { inputs: per_step.saturating_mul(live), activations }
    }

    pub(crate) fn total(&self) -> u64 {
        self.inputs.saturating_add(self.activations)
    }
}

/// Refuses settings the machine cannot hold (`available` bytes of free memory, `cores` CPUs); returns
/// warnings for those that use most of it.
pub fn check(cfg: &Config, on_cpu: bool, cores: usize, available: Option<u64>) -> anyhow::Result<Vec<String>> {
    let most_threads = (THREADS_PER_CORE * cores).max(8);
    if cfg.run.loader_threads > most_threads {
        bail!(
            "run.loader_threads = {}: expected 0 (as many as cores) to {most_threads} ({THREADS_PER_CORE} per core of \
             this machine's {cores})",
            cfg.run.loader_threads
        );
    }
    let need = StepMemory::of(cfg, on_cpu);
    let Some(available) = available else { return Ok(Vec::new()) };
    let gb = |b: u64| b as f64 / 1e9;
    let what = format!(
        "one training step needs about {:.1} GB ({:.1} GB of input batches with run.prefetch = {}, {:.1} GB of \
         activations) for schedule.batch_labeled = {}, batch_unlabeled = {} at model.image_size = {}",
        gb(need.total()),
        gb(need.inputs),
        cfg.run.prefetch,
        gb(need.activations),
        cfg.schedule.batch_labeled,
        cfg.schedule.batch_unlabeled,
        cfg.model.image_size
    );
    if need.total() > available {
        bail!("{what}; this machine has {:.1} GB free: lower the batch sizes or the image size", gb(available));
    }
    if need.total() > available / 2 {
        return Ok(vec![format!("{what}: more than half of the {:.1} GB free", gb(available))]);
    }
    Ok(Vec::new())
}

/// The memory the kernel says is available for new allocations (`MemAvailable`), `None` where it does not say.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 =
        text.lines().find_map(|l| l.strip_prefix("MemAvailable:"))?.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(batch: i64, size: u32) -> Config {
        let mut c = Config::default();
        c.schedule.batch_labeled = batch;
        c.schedule.batch_unlabeled = batch;
        c.model.image_size = size.into();
        c
    }

    #[test]
    fn the_step_is_counted_by_hand() {
        let c = cfg(4, 10);
        let semi = c.semi_supervised();
        let images = if semi { 12 } else { 4 };
        let m = StepMemory::of(&c, true);
        assert_eq!(m.inputs, images * 100 * 12 * (c.run.prefetch as u64 + 2));
        assert_eq!(m.activations, images * 100 * 800);
        assert_eq!(StepMemory::of(&c, false).activations, 0, "activations live on the GPU");
    }

    #[test]
    fn absurd_settings_are_refused_with_the_numbers() {
        let gb = 1_000_000_000;
        let e = check(&cfg(100_000_000, 64), true, 2, Some(24 * gb)).unwrap_err().to_string();
        assert!(e.contains("schedule.batch_labeled = 100000000") && e.contains("24.0 GB free"), "{e}");
        assert!(check(&cfg(64, 1024), true, 2, Some(24 * gb)).is_err(), "1024 px on the CPU");
        assert!(check(&cfg(64, 112), true, 2, Some(24 * gb)).unwrap().is_empty());
        assert_eq!(check(&cfg(64, 112), true, 2, Some(3 * gb)).unwrap().len(), 1, "a warning near the limit");
        let mut c = cfg(8, 16);
        c.run.loader_threads = 100_000;
        let e = check(&c, true, 2, None).unwrap_err().to_string();
        assert!(e.contains("run.loader_threads = 100000") && e.contains("to 8"), "{e}");
    }
}
