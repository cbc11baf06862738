//! `make bench`'s loader row: images per second on ONE core of what the input pipeline does to a face,
//! measured on the first `n` images of a shard folder:
//! - decode: the shard's PNG bytes → a `size × size` image (once per sample, when a run loads its data);
//! - weak + strong: both augmented views of one image rendered into the model's planar f32 input (every
//!   step, for every unlabeled face; the labeled faces get the weak view only).
//!
//! The same work through PIL and torchvision is `bench/loader_reference.py`; `bench/loader.sh` runs both.
//!
//!     cargo run --profile release -p train --example loader_throughput -- <shard dir> <n> <size>...

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use exchange::parquet_io::TableReader;
use exchange::schema::shard::ShardRow;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use train::data::loader::decode;
use train::data::views::{render, Plan};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, n, sizes @ ..] = args.as_slice() else {
        bail!("usage: loader_throughput <shard dir> <n images> <size>...");
    };
    let n: usize = n.parse().context("n images: expected a whole number")?;
    let dir = PathBuf::from(dir);
    let parts =
        exchange::layout::shard_parts(&dir).with_context(|| format!("{}: no shard folder here", dir.display()))?;
    let mut bytes: Vec<(Vec<u8>, bool)> = Vec::with_capacity(n);
    'read: for part in &parts {
        for batch in TableReader::<ShardRow>::open(part)? {
            for row in batch? {
                bytes.push((row.image, row.channels == 1));
                if bytes.len() == n {
                    break 'read;
                }
            }
        }
    }
    if bytes.is_empty() {
        bail!("{}: no images in the shards", dir.display());
    }
    for size in sizes {
        let size: u32 = size.parse().with_context(|| format!("size {size:?}: expected pixels"))?;
        let t = Instant::now();
        let images = bytes
            .iter()
            .map(|(b, grey)| decode(b, size, *grey).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let decode_s = t.elapsed().as_secs_f64();
        // The pad of the weak view's random crop, as the run sets it.
        let pad = (size as usize / 16).max(1);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let t = Instant::now();
        let mut checksum = 0f64;
        for img in &images {
            // Fresh buffers per view, as the reference gets a new tensor per view.
            let mut w = vec![0f32; 3 * (size * size) as usize];
            let mut s = w.clone();
            render(img, &Plan::weak(pad, &mut rng), &mut w);
            render(img, &Plan::strong(img.w, img.h, pad, &mut rng), &mut s);
            checksum += f64::from(w[0]) + f64::from(s[0]);
        }
        let augment_s = t.elapsed().as_secs_f64();
        let k = images.len() as f64;
        println!(
            "loader ours size {size} images {} decode {:.0} img/s weak+strong {:.0} img/s (checksum {checksum:.1})",
            images.len(),
            k / decode_s,
            k / augment_s
        );
    }
    Ok(())
}
