//! Landmarks + aligned chip per second on one core: `align_throughput DIR N` reads `DIR/cases.json` (the
//! bench's pictures and boxes, as `bench/face_align_reference.py` reads them) and aligns each case N times.
//! Prints `align ours cases C repeats N: R faces/s`.

use std::time::Instant;

use face::{chip, FaceBox, Image, ShapePredictor};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (dir, repeats) = (std::path::PathBuf::from(&args[1]), args[2].parse::<usize>().expect("N"));
    let models =
        std::env::var_os("SITFER_FACE_MODEL").map(std::path::PathBuf::from).unwrap_or_else(|| ".face-model".into());
    let sp = ShapePredictor::open(&models.join("shape_predictor_5_face_landmarks.dat")).expect("landmark model");
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).expect("cases.json")).expect("json");
    let loaded: Vec<(Image, FaceBox)> = cases
        .iter()
        .map(|c| {
            let rgb = image::open(c["image"].as_str().unwrap()).expect("picture").to_rgb8();
            let img = Image { w: rgb.width() as usize, h: rgb.height() as usize, c: 3, data: rgb.into_raw() };
            let b: Vec<i64> = c["box"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
            (img, FaceBox { left: b[0], top: b[1], right: b[2], bottom: b[3] })
        })
        .collect();
    let started = Instant::now();
    let mut checksum = 0u64;
    for _ in 0..repeats {
        for (img, b) in &loaded {
            let lm: Vec<(i64, i64)> = sp.predict(img, *b).into_iter().map(|p| p.pixel()).collect();
            let frame = chip::frame(&[lm[0], lm[1], lm[2], lm[3], lm[4]], 150, 0.25);
            checksum += u64::from(chip::extract(img, &frame).data[150 * 75 * 3]);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "align ours cases {} repeats {repeats}: {:.1} faces/s (checksum {checksum})",
        loaded.len(),
        (loaded.len() * repeats) as f64 / secs
    );
}
