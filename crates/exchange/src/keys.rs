//! Every Parquet key-value metadata key the stages write or read. A file's metadata says what it is and
//! where it came from; readers take these values instead of guessing from file names.

/// The exchange table a file holds ([`crate::Table::NAME`]); readers refuse another table.
pub const TABLE: &str = "sitfer.table";
/// The table's schema version ([`crate::Table::VERSION`]); readers refuse another version.
pub const SCHEMA_VERSION: &str = "sitfer.schema_version";
/// Comma-separated canonical class names that index probability vectors (split, pseudo-label files).
pub const CLASSES: &str = "sitfer.classes";
/// The dataset whose shards a file describes (shards, splits).
pub const DATASET: &str = "sitfer.dataset";
/// A split file's own name.
pub const SPLIT: &str = "sitfer.split";
/// The text encoder of an embeddings/prototypes file.
pub const ENCODER: &str = "sitfer.encoder";
/// The description set of an embeddings/prototypes file.
pub const DESCRIPTION_SET: &str = "sitfer.description_set";
/// The run that wrote a pseudo-label file.
pub const RUN: &str = "sitfer.run";
/// The selection threshold in force for a pseudo-label file.
pub const THRESHOLD: &str = "sitfer.threshold";
/// The fusion rule in force for a pseudo-label file, as JSON ([`crate::fusion::Fusion`]).
pub const FUSION: &str = "sitfer.fusion";
/// Per-class selection thresholds in force for a pseudo-label file, comma-separated in class order, when the
/// run selects with a self-adaptive threshold; they replace [`THRESHOLD`] for that file.
pub const CLASS_THRESHOLDS: &str = "sitfer.class_thresholds";
/// Per-class factors, comma-separated in class order, by which the run's distribution alignment multiplied
/// each face's fused distribution (then renormalised) before selection; a file's `p_fused` is the aligned one.
/// Absent when the run does not align.
pub const ALIGNMENT_FACTORS: &str = "sitfer.alignment_factors";
/// How many unlabeled faces the run had when it wrote a pseudo-label file; the file holds fewer rows when its
/// sweep read a seeded subset (`run.sweep_subset`).
pub const SWEPT_OF: &str = "sitfer.swept_of";
