//! The canonical expression label space and each dataset's id map into it.
//!
//! Canonical ids follow FERPlus's class order (neutral, happiness, surprise, sadness, anger, disgust, fear,
//! contempt), so a FERPlus label *is* a canonical id. Every other dataset's ids go through a map here, never
//! through ad-hoc tables in a stage. A split declares which canonical classes it trains on (e.g. RAF-DB's 7).

use std::fmt;

/// One expression class of the canonical label space. `as u8` is the canonical id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Expression {
    Neutral = 0,
    Happiness = 1,
    Surprise = 2,
    Sadness = 3,
    Anger = 4,
    Disgust = 5,
    Fear = 6,
    Contempt = 7,
}

/// Number of canonical classes.
pub const NUM_CLASSES: usize = 8;

/// All canonical classes in canonical (= FERPlus) order.
pub const ALL: [Expression; NUM_CLASSES] = [
    Expression::Neutral,
    Expression::Happiness,
    Expression::Surprise,
    Expression::Sadness,
    Expression::Anger,
    Expression::Disgust,
    Expression::Fear,
    Expression::Contempt,
];

/// The FERPlus 8-class order (identical to the canonical order).
pub const FERPLUS_CLASSES: [Expression; 8] = ALL;

/// FER+ `label.csv` / `fer2013new.csv` vote columns after the 8 classes.
pub const FERPLUS_EXTRA_VOTES: [&str; 2] = ["unknown", "NF"];

/// The seven basic expressions (the 8 without contempt): RAF-DB basic and AffectNet-7.
pub const BASIC7: [Expression; 7] = [
    Expression::Neutral,
    Expression::Happiness,
    Expression::Surprise,
    Expression::Sadness,
    Expression::Anger,
    Expression::Disgust,
    Expression::Fear,
];

impl Expression {
    /// Canonical id.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// From a canonical id.
    pub fn from_id(id: u8) -> Option<Self> {
        ALL.get(id as usize).copied()
    }

    /// The canonical lower-case name, as written in exchange files and configs.
    pub fn name(self) -> &'static str {
        match self {
            Expression::Neutral => "neutral",
            Expression::Happiness => "happiness",
            Expression::Surprise => "surprise",
            Expression::Sadness => "sadness",
            Expression::Anger => "anger",
            Expression::Disgust => "disgust",
            Expression::Fear => "fear",
            Expression::Contempt => "contempt",
        }
    }

    /// Parses a class name as datasets spell it: canonical names plus the usual synonyms of image-folder
    /// datasets (SFEW's `Angry`, CK+'s `happy`, `surprised`, `fearful` …). Case and surrounding space are
    /// ignored.
    pub fn parse(name: &str) -> Option<Self> {
        let n = name.trim().to_ascii_lowercase();
        Some(match n.as_str() {
            "neutral" | "neu" | "calm" => Expression::Neutral,
            "happiness" | "happy" | "hap" | "joy" => Expression::Happiness,
            "surprise" | "surprised" | "sur" => Expression::Surprise,
            "sadness" | "sad" => Expression::Sadness,
            "anger" | "angry" | "ang" => Expression::Anger,
            "disgust" | "disgusted" | "dis" => Expression::Disgust,
            "fear" | "fearful" | "afraid" | "scared" | "fea" => Expression::Fear,
            "contempt" | "con" => Expression::Contempt,
            _ => return None,
        })
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// RAF-DB basic `list_patition_label.txt` ids 1–7: surprise, fear, disgust, happiness, sadness, anger,
/// neutral.
pub fn rafdb(label: i64) -> Option<Expression> {
    Some(match label {
        1 => Expression::Surprise,
        2 => Expression::Fear,
        3 => Expression::Disgust,
        4 => Expression::Happiness,
        5 => Expression::Sadness,
        6 => Expression::Anger,
        7 => Expression::Neutral,
        _ => return None,
    })
}

/// What an AffectNet `expression` id means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AffectNetLabel {
    Class(Expression),
    /// 8 none, 9 uncertain, 10 no-face: not an expression; dropped by every protocol.
    NotAnExpression(&'static str),
    /// Contempt under the 7-class protocol.
    OutsideProtocol,
}

/// AffectNet `expression` ids: 0 neutral, 1 happiness, 2 sadness, 3 surprise, 4 fear, 5 disgust, 6 anger,
/// 7 contempt, 8 none, 9 uncertain, 10 no-face. `classes` is 7 or 8 (the 7-class protocol drops contempt).
/// `None` for an id outside 0–10.
pub fn affectnet(label: i64, classes: usize) -> Option<AffectNetLabel> {
    use AffectNetLabel::*;
    Some(match label {
        0 => Class(Expression::Neutral),
        1 => Class(Expression::Happiness),
        2 => Class(Expression::Sadness),
        3 => Class(Expression::Surprise),
        4 => Class(Expression::Fear),
        5 => Class(Expression::Disgust),
        6 => Class(Expression::Anger),
        7 if classes >= 8 => Class(Expression::Contempt),
        7 => OutsideProtocol,
        8 => NotAnExpression("none"),
        9 => NotAnExpression("uncertain"),
        10 => NotAnExpression("no-face"),
        _ => return None,
    })
}

/// Parses a list of class names (a split's or a config's class list), rejecting unknown and repeated names.
pub fn parse_class_list(names: &[String]) -> Result<Vec<Expression>, String> {
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        let e = Expression::parse(n).ok_or_else(|| {
            format!("unknown class `{n}` (known: {})", ALL.iter().map(|e| e.name()).collect::<Vec<_>>().join(", "))
        })?;
        if out.contains(&e) {
            return Err(format!("class `{n}` is listed twice"));
        }
        out.push(e);
    }
    if out.len() < 2 {
        return Err("a class list needs at least two classes".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_ids_round_trip_and_follow_ferplus_order() {
        for (i, e) in ALL.iter().enumerate() {
            assert_eq!(e.id() as usize, i);
            assert_eq!(Expression::from_id(i as u8), Some(*e));
            assert_eq!(Expression::parse(e.name()), Some(*e));
        }
        assert_eq!(Expression::from_id(8), None);
        let names: Vec<_> = FERPLUS_CLASSES.iter().map(|e| e.name()).collect();
        assert_eq!(names, ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]);
    }

    #[test]
    fn rafdb_map_matches_its_readme() {
        let got: Vec<_> = (1..=7).map(|i| rafdb(i).unwrap().name()).collect();
        assert_eq!(got, ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]);
        assert_eq!(rafdb(0), None);
        assert_eq!(rafdb(8), None);
    }

    #[test]
    fn affectnet_protocols() {
        assert_eq!(affectnet(2, 8), Some(AffectNetLabel::Class(Expression::Sadness)));
        assert_eq!(affectnet(7, 8), Some(AffectNetLabel::Class(Expression::Contempt)));
        assert_eq!(affectnet(7, 7), Some(AffectNetLabel::OutsideProtocol));
        assert_eq!(affectnet(10, 8), Some(AffectNetLabel::NotAnExpression("no-face")));
        assert_eq!(affectnet(11, 8), None);
        assert_eq!(affectnet(-1, 8), None);
    }

    #[test]
    fn folder_synonyms() {
        assert_eq!(Expression::parse(" Angry "), Some(Expression::Anger));
        assert_eq!(Expression::parse("Surprised"), Some(Expression::Surprise));
        assert_eq!(Expression::parse("FEARFUL"), Some(Expression::Fear));
        assert_eq!(Expression::parse("smirk"), None);
    }

    #[test]
    fn class_lists_reject_unknown_and_repeated() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_class_list(&s(&["happy", "sad"])).unwrap(), vec![Expression::Happiness, Expression::Sadness]);
        assert!(parse_class_list(&s(&["happy", "happiness"])).unwrap_err().contains("twice"));
        assert!(parse_class_list(&s(&["happy", "bored"])).unwrap_err().contains("bored"));
    }
}
