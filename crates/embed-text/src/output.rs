//! Writes `artifacts/text/<encoder>/<set>/{embeddings,prototypes}.parquet` + `manifest.json`, staged and
//! swapped in whole, so a failed run leaves the previous embeddings as they were.

use std::path::Path;

use exchange::atomic::StagingDir;
use exchange::keys;
use exchange::layout::{EMBEDDINGS_FILE, PROTOTYPES_FILE};
use exchange::manifest::{Manifest, MANIFEST_FILE};
use exchange::parquet_io::write_table;
use exchange::schema::text::{PrototypeRow, TextEmbeddingRow};

pub fn write(
    dest: &Path,
    encoder: &str,
    set: &str,
    rows: &[TextEmbeddingRow],
    protos: &[PrototypeRow],
    mut manifest: Manifest,
) -> exchange::Result<Manifest> {
    let staging = StagingDir::create(dest, &manifest.stage)?;
    let meta = [(keys::ENCODER, encoder.to_string()), (keys::DESCRIPTION_SET, set.to_string())];
    let n = write_table(staging.path().join(EMBEDDINGS_FILE), rows, &meta)?;
    manifest.add_output(staging.path(), EMBEDDINGS_FILE, Some(n))?;
    let n = write_table(staging.path().join(PROTOTYPES_FILE), protos, &meta)?;
    manifest.add_output(staging.path(), PROTOTYPES_FILE, Some(n))?;
    manifest.write(staging.path().join(MANIFEST_FILE))?;
    staging.commit()?;
    Ok(manifest)
}
