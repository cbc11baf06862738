//! Golden tests against dlib itself (the `dlib-bin` wheel `make setup` installs beside libtorch): the same
//! model files, the same pictures, the same answers.

use std::path::{Path, PathBuf};
use std::process::Command;

use face::{FaceBox, Image, ShapePredictor};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The reference Python and the model folder; both come with `make setup`, so their absence is a failure.
fn setup() -> (PathBuf, PathBuf) {
    let python = repo().join(".venv-torch/bin/python");
    let models = std::env::var_os("SITFER_FACE_MODEL").map(PathBuf::from).unwrap_or_else(|| repo().join(".face-model"));
    assert!(python.exists(), "reference Python (.venv-torch) missing: run `make setup`");
    assert!(
        models.join("shape_predictor_5_face_landmarks.dat").is_file(),
        "no landmark model in {}: run `make setup`",
        models.display()
    );
    (python, models)
}

/// A picture with structure at every scale (so the trees' pixel tests go both ways): smooth blobs, an
/// edge and a ramp, seeded.
fn picture(w: usize, h: usize, c: usize, seed: u64) -> Image {
    let mut img = Image::new(w, h, c);
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 33) as f64 / (1u64 << 31) as f64
    };
    let blobs: Vec<[f64; 4]> =
        (0..12).map(|_| [next() * w as f64, next() * h as f64, 4.0 + next() * 30.0, next() * 2.0 - 1.0]).collect();
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let mut v = 100.0 + 60.0 * (x as f64 / w as f64) + if y > h / 2 { 30.0 } else { 0.0 };
                for b in &blobs {
                    let d2 = (x as f64 - b[0]).powi(2) + (y as f64 - b[1]).powi(2);
                    v += 120.0 * b[3] * (-d2 / (2.0 * b[2] * b[2])).exp() * (1.0 + 0.2 * ch as f64);
                }
                img.data[(y * w + x) * c + ch] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    img
}

fn save(img: &Image, path: &Path) {
    let color = if img.c == 1 { image::ColorType::L8 } else { image::ColorType::Rgb8 };
    image::save_buffer(path, &img.data, img.w as u32, img.h as u32, color).unwrap();
}

#[test]
fn landmarks_equal_dlib_s_on_grey_and_rgb_pictures_and_boxes_of_every_size() {
    let (python, models) = setup();
    let sp = ShapePredictor::open(&models.join("shape_predictor_5_face_landmarks.dat")).unwrap();
    assert_eq!(sp.points(), 5);
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    for (k, (w, h, c)) in [(160, 120, 1), (320, 240, 3), (640, 480, 3), (90, 200, 1)].into_iter().enumerate() {
        let img = picture(w, h, c, k as u64);
        let path = dir.path().join(format!("p{k}.png"));
        save(&img, &path);
        // Boxes small and large, inside the picture and running off its edges.
        let (w, h) = (w as i64, h as i64);
        for b in [
            FaceBox { left: w / 4, top: h / 4, right: 3 * w / 4, bottom: 3 * h / 4 },
            FaceBox { left: 3, top: 5, right: 3 + w / 6, bottom: 5 + w / 6 },
            FaceBox { left: -20, top: h / 3, right: w / 2, bottom: h + 15 },
            FaceBox { left: w / 2, top: 0, right: w / 2 + 40, bottom: 40 },
        ] {
            cases.push(serde_json::json!({"image": path, "box": [b.left, b.top, b.right, b.bottom]}));
            ours.push(sp.predict(&img, b).into_iter().map(|p| p.pixel()).map(|(x, y)| vec![x, y]).collect::<Vec<_>>());
        }
    }
    let cases_path = dir.path().join("cases.json");
    std::fs::write(&cases_path, serde_json::to_string(&cases).unwrap()).unwrap();
    let script = repo().join("crates/face/reference/dlib_landmarks.py");
    let out = Command::new(&python).arg(&script).arg(&models).arg(&cases_path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let theirs: Vec<Vec<Vec<i64>>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(theirs.len(), ours.len());
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        for (p, q) in a.iter().zip(b) {
            let off = (p[0] - q[0]).abs().max((p[1] - q[1]).abs());
            assert!(off <= 1, "case {i} ({}): ours {a:?}, dlib's {b:?}", cases[i]);
        }
    }
    let exact = ours.iter().zip(&theirs).filter(|(a, b)| a == b).count();
    eprintln!("{exact} of {} cases identical to dlib's to the pixel", ours.len());
    assert!(exact * 10 >= ours.len() * 9, "only {exact} of {} cases identical to the pixel", ours.len());
}

#[test]
fn aligned_chips_equal_dlib_s_get_face_chip() {
    let (python, models) = setup();
    let sp = ShapePredictor::open(&models.join("shape_predictor_5_face_landmarks.dat")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    // Faces from a fifth to most of the picture, so the chips come from the picture itself and from one or two
    // halvings of it; get_face_chip's defaults (150, 0.25) and the sizes the trainer reads.
    for (k, (w, h)) in [(320, 240), (640, 480), (800, 600)].into_iter().enumerate() {
        let img = picture(w, h, 3, 10 + k as u64);
        let path = dir.path().join(format!("c{k}.png"));
        save(&img, &path);
        let (w, h) = (w as i64, h as i64);
        for (j, (b, size, padding)) in [
            (FaceBox { left: w / 3, top: h / 3, right: w / 3 + w / 5, bottom: h / 3 + w / 5 }, 150, 0.25),
            (FaceBox { left: w / 8, top: h / 8, right: 7 * w / 8, bottom: 7 * h / 8 }, 150, 0.25),
            (FaceBox { left: w / 4, top: h / 5, right: 3 * w / 4, bottom: 4 * h / 5 }, 112, 0.2),
            (FaceBox { left: 10, top: 10, right: 10 + w / 3, bottom: 10 + w / 3 }, 48, 0.25),
        ]
        .into_iter()
        .enumerate()
        {
            let out = dir.path().join(format!("chip{k}-{j}.png"));
            let chip = serde_json::json!({"size": size, "padding": padding, "out": out});
            cases.push(serde_json::json!({"image": path, "box": [b.left, b.top, b.right, b.bottom], "chip": chip}));
            let lm: Vec<(i64, i64)> = sp.predict(&img, b).into_iter().map(|p| p.pixel()).collect();
            let frame = face::chip::frame(&[lm[0], lm[1], lm[2], lm[3], lm[4]], size, padding);
            ours.push((face::chip::extract(&img, &frame), out));
        }
    }
    let cases_path = dir.path().join("cases.json");
    std::fs::write(&cases_path, serde_json::to_string(&cases).unwrap()).unwrap();
    let script = repo().join("crates/face/reference/dlib_landmarks.py");
    let out = Command::new(&python).arg(&script).arg(&models).arg(&cases_path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (i, (chip, path)) in ours.iter().enumerate() {
        let theirs = image::open(path).unwrap().to_rgb8();
        assert_eq!((theirs.width() as usize, theirs.height() as usize), (chip.w, chip.h), "case {i}");
        let diffs: Vec<u8> = chip.data.iter().zip(theirs.as_raw()).map(|(a, b)| a.abs_diff(*b)).collect();
        let off = diffs.iter().filter(|&&d| d > 0).count();
        let max = diffs.iter().copied().max().unwrap_or(0);
        eprintln!("chip case {i}: {off} of {} values differ, at most by {max}", diffs.len());
        assert!(max <= 1 && off * 100 <= diffs.len(), "case {i} ({}): {off} values differ, up to {max}", cases[i]);
    }
}

#[test]
fn the_detector_file_reads_as_dlib_s_face_detector() {
    let (_, models) = setup();
    let w = face::mmod::DetectorWeights::open(&models.join("mmod_human_face_detector.dat")).unwrap();
    // One 80 × 80 window; the suppression's IoU is the one dlib fitted to its training boxes (a number in
    // (0, 1); the file holds 0.338), the percent-covered test off at 1; the colour means dlib's input layer
    // defaults to (122.782, 117.001, 104.298), which a misread field would not reproduce.
    assert_eq!(w.options.windows, vec![(80, 80)]);
    assert!(w.options.nms_iou > 0.0 && w.options.nms_iou < 1.0 && w.options.nms_covered == 1.0, "{:?}", w.options);
    assert_eq!((w.input.padding, w.input.outer_padding), (10, 11));
    for (got, want) in w.input.mean_rgb.iter().zip([122.782f32, 117.001, 104.298]) {
        assert!((got - want).abs() < 1e-3, "{:?}", w.input);
    }
    assert!(w.norms.iter().all(|n| n.scale.iter().chain(&n.shift).all(|v| v.is_finite())));
}
