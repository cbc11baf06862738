//! Reads `pipelines/text/descriptions.toml` and resolves one named description set into the sentences to
//! encode, class by class. It owns the file's format and its error messages; it knows nothing of encoders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use exchange::labels::ALL;
use exchange::Expression;
use serde::{Deserialize, Serialize};
use toml::Spanned;

#[derive(Debug, thiserror::Error)]
pub enum DescriptionError {
    #[error("cannot read the description file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}, line {line}: {message}")]
    Invalid { path: PathBuf, line: usize, message: String },
    #[error("{path}: no description set named `{name}` (sets in the file: {available})")]
    UnknownSet { path: PathBuf, name: String, available: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    default: Option<String>,
    #[serde(default)]
    sets: BTreeMap<String, Spanned<SetToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetToml {
    #[serde(default)]
    about: String,
    template: Option<Spanned<String>>,
    #[serde(default)]
    include_template: bool,
    /// Restricts the set to these classes; default: every class that has sentences, or all eight with a
    /// template-only set.
    classes_used: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    classes: BTreeMap<Spanned<String>, Spanned<Vec<Spanned<String>>>>,
}

/// One class's sentences in a resolved set.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassSentences {
    #[serde(serialize_with = "class_name")]
    pub class: Expression,
    pub sentences: Vec<String>,
}

/// A resolved description set: what gets encoded and recorded in the manifest.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DescriptionSet {
    pub name: String,
    pub about: String,
    pub classes: Vec<ClassSentences>,
}

impl DescriptionSet {
    pub fn sentence_count(&self) -> usize {
        self.classes.iter().map(|c| c.sentences.len()).sum()
    }
}

/// A file's default set and its (name, about) pairs.
pub(crate) type SetListing = (Option<String>, Vec<(String, String)>);

/// The set names in a file and its default, for `--list-sets`.
pub fn list_sets(path: &Path) -> Result<SetListing, DescriptionError> {
    let file = parse(path)?;
    let sets = file.sets.iter().map(|(k, v)| (k.clone(), v.get_ref().about.clone())).collect();
    Ok((file.default, sets))
}

/// Loads set `name` (or the file's `default`) from `path`.
pub fn load(path: &Path, name: Option<&str>) -> Result<DescriptionSet, DescriptionError> {
    let text = std::fs::read_to_string(path).map_err(|source| DescriptionError::Read { path: path.into(), source })?;
    let file = parse_text(path, &text)?;
    let name = match name.map(str::to_string).or(file.default.clone()) {
        Some(n) => n,
        None => {
            return Err(DescriptionError::Parse {
                path: path.into(),
                message: "no set was asked for and the file has no `default = \"<set>\"` line".into(),
            })
        }
    };
    let Some(set) = file.sets.get(&name) else {
        return Err(DescriptionError::UnknownSet {
            path: path.into(),
            name,
            available: file.sets.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    };
    let line_of = |offset: usize| text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1;
    let invalid = |offset: usize, message: String| DescriptionError::Invalid {
        path: path.into(),
        line: line_of(offset),
        message,
    };
    let set_start = set.span().start;
    let set = set.get_ref();

    let template = match &set.template {
        Some(t) if !t.get_ref().contains("{class}") => {
            return Err(invalid(t.span().start, format!("set `{name}`: template must contain `{{class}}`")))
        }
        Some(t) => Some(t.get_ref().clone()),
        None => None,
    };
    if set.include_template && template.is_none() {
        return Err(invalid(set_start, format!("set `{name}`: include_template = true needs a `template`")));
    }

    let mut per_class = sentences_by_class(set, &name, &invalid)?;

    let used: Vec<Expression> = match &set.classes_used {
        Some(list) => exchange::labels::parse_class_list(list.get_ref())
            .map_err(|e| invalid(list.span().start, format!("set `{name}`: classes_used: {e}")))?,
        None => ALL.to_vec(),
    };

    let mut classes = Vec::new();
    for class in used {
        let mut sentences = per_class.remove(&class).unwrap_or_default();
        if let Some(t) = &template {
            if sentences.is_empty() || set.include_template {
                sentences.push(t.replace("{class}", class.name()));
            }
        }
        if sentences.is_empty() {
            return Err(invalid(
                set_start,
                format!(
                    "set `{name}` has no descriptions for class `{class}` (add `{class} = [\"...\"]` under \
                     [sets.{name}.classes], give the set a template, or leave the class out with classes_used)"
                ),
            ));
        }
        classes.push(ClassSentences { class, sentences });
    }
    if let Some(class) = per_class.keys().next() {
        return Err(invalid(set_start, format!("set `{name}` describes `{class}`, which is not in its classes_used")));
    }
    Ok(DescriptionSet { name, about: set.about.clone(), classes })
}

/// The set's `[classes]` table, each class parsed, listed once and with at least one non-empty description.
fn sentences_by_class(
    set: &SetToml,
    name: &str,
    invalid: &dyn Fn(usize, String) -> DescriptionError,
) -> Result<BTreeMap<Expression, Vec<String>>, DescriptionError> {
    let mut per_class: BTreeMap<Expression, Vec<String>> = BTreeMap::new();
    for (key, sentences) in &set.classes {
        let class = Expression::parse(key.get_ref()).ok_or_else(|| {
            invalid(
                key.span().start,
                format!(
                    "set `{name}`: `{}` is not a class (expected one of: {})",
                    key.get_ref(),
                    ALL.iter().map(|e| e.name()).collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        if per_class.contains_key(&class) {
            return Err(invalid(key.span().start, format!("set `{name}`: class `{class}` is listed twice")));
        }
        let mut out = Vec::new();
        for s in sentences.get_ref() {
            let text = s.get_ref().trim();
            if text.is_empty() {
                return Err(invalid(s.span().start, format!("set `{name}`, class `{class}`: empty description")));
            }
            out.push(text.to_string());
        }
        if out.is_empty() {
            return Err(invalid(sentences.span().start, format!("set `{name}`: class `{class}` has no descriptions")));
        }
        per_class.insert(class, out);
    }
    Ok(per_class)
}

fn class_name<S: serde::Serializer>(class: &Expression, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(class.name())
}

fn parse(path: &Path) -> Result<File, DescriptionError> {
    let text = std::fs::read_to_string(path).map_err(|source| DescriptionError::Read { path: path.into(), source })?;
    parse_text(path, &text)
}

fn parse_text(path: &Path, text: &str) -> Result<File, DescriptionError> {
    toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1);
        let message = e.message().to_string();
        match line {
            Some(line) => DescriptionError::Invalid { path: path.into(), line, message },
            None => DescriptionError::Parse { path: path.into(), message },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.toml");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn template_set_gives_one_sentence_per_class() {
        let (_d, p) = write("default = \"t\"\n[sets.t]\ntemplate = \"This is a face image of {class}.\"\n");
        let set = load(&p, None).unwrap();
        assert_eq!(set.classes.len(), 8);
        assert_eq!(set.classes[1].sentences, vec!["This is a face image of happiness."]);
    }

    #[test]
    fn missing_class_is_named_with_its_line() {
        let (_d, p) =
            write("[sets.s]\nclasses_used = [\"happiness\", \"fear\"]\n[sets.s.classes]\nhappiness = [\"smile\"]\n");
        let e = load(&p, Some("s")).unwrap_err().to_string();
        assert!(e.contains("no descriptions for class `fear`"), "{e}");
        assert!(e.contains("d.toml, line"), "{e}");
    }

    #[test]
    fn unknown_class_and_empty_sentence_point_at_the_line() {
        let (_d, p) = write("[sets.s]\n[sets.s.classes]\nhappiness = [\"smile\"]\nglee = [\"x\"]\n");
        let e = load(&p, Some("s")).unwrap_err().to_string();
        assert!(e.contains("line 4") && e.contains("`glee` is not a class"), "{e}");
        let (_d, p) = write(
            "[sets.s]\nclasses_used = [\"happiness\"]\n[sets.s.classes]\nhappiness = [\n  \"ok\",\n  \"  \",\n]\n",
        );
        let e = load(&p, Some("s")).unwrap_err().to_string();
        assert!(e.contains("line 6") && e.contains("empty description"), "{e}");
    }

    #[test]
    fn unknown_set_lists_the_available_ones_and_syntax_errors_have_lines() {
        let (_d, p) = write("[sets.a]\ntemplate = \"{class}\"\n");
        let e = load(&p, Some("b")).unwrap_err().to_string();
        assert!(e.contains("no description set named `b`") && e.contains("a"), "{e}");
        let (_d, p) = write("[sets.a]\ntemplate = \n");
        let e = load(&p, Some("a")).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn shipped_file_resolves_every_set() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/text/descriptions.toml");
        let (default, sets) = list_sets(&path).unwrap();
        assert_eq!(default.as_deref(), Some("facs"));
        for (name, _) in sets {
            let set = load(&path, Some(&name)).unwrap();
            assert_eq!(set.classes.len(), 8, "{name}");
        }
        let facs = load(&path, None).unwrap();
        assert!(facs.classes.iter().all(|c| c.sentences.len() >= 4));
        assert!(facs.classes[0].sentences.last().unwrap().starts_with("This is a face image of neutral"));
    }
}
