//! Class prototypes `t_c` (the mean of a class's unit description vectors, renormalised) and the class ×
//! class cosine table a user reads to judge a description set: high off-diagonal values mean the text
//! level cannot tell those classes apart.

use exchange::schema::text::{PrototypeRow, TextEmbeddingRow};
use exchange::Expression;

pub fn prototypes(rows: &[TextEmbeddingRow]) -> Vec<PrototypeRow> {
    let mut out: Vec<PrototypeRow> = Vec::new();
    for r in rows {
        match out.iter_mut().find(|p| p.class == r.class) {
            Some(p) => {
                p.n_descriptions += 1;
                p.vector.iter_mut().zip(&r.vector).for_each(|(a, b)| *a += b);
            }
            None => out.push(PrototypeRow {
                class: r.class,
                class_name: r.class_name.clone(),
                n_descriptions: 1,
                vector: r.vector.clone(),
            }),
        }
    }
    for p in &mut out {
        let norm = p.vector.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt().max(1e-12);
        p.vector.iter_mut().for_each(|x| *x = (f64::from(*x) / norm) as f32);
    }
    out
}

pub fn cosine_table(protos: &[PrototypeRow]) -> Vec<Vec<f32>> {
    protos
        .iter()
        .map(|a| protos.iter().map(|b| a.vector.iter().zip(&b.vector).map(|(x, y)| x * y).sum()).collect())
        .collect()
}

/// The table as text, with the largest off-diagonal cosine per row marked `*`.
pub fn render_table(protos: &[PrototypeRow], table: &[Vec<f32>]) -> String {
    let short = |p: &PrototypeRow| {
        Expression::from_id(p.class).map(|e| e.name()).unwrap_or("?").chars().take(8).collect::<String>()
    };
    let mut s = format!("{:>10}", "");
    for p in protos {
        s += &format!(" {:>9}", short(p));
    }
    s.push('\n');
    for (i, p) in protos.iter().enumerate() {
        s += &format!("{:>10}", short(p));
        let worst = (0..protos.len()).filter(|&j| j != i).max_by(|&a, &b| table[i][a].total_cmp(&table[i][b]));
        for (j, v) in table[i].iter().enumerate() {
            let mark = if Some(j) == worst { "*" } else { " " };
            s += &format!(" {v:>8.3}{mark}");
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(class: u8, v: Vec<f32>) -> TextEmbeddingRow {
        TextEmbeddingRow { class, class_name: format!("c{class}"), description: String::new(), vector: v }
    }

    #[test]
    fn prototype_is_renormalised_mean() {
        let p = prototypes(&[row(0, vec![1.0, 0.0]), row(0, vec![0.0, 1.0]), row(2, vec![0.0, -1.0])]);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].n_descriptions, 2);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((p[0].vector[0] - h).abs() < 1e-6 && (p[0].vector[1] - h).abs() < 1e-6);
        let t = cosine_table(&p);
        assert!((t[0][0] - 1.0).abs() < 1e-6);
        assert!((t[0][1] + h).abs() < 1e-6);
        assert!(render_table(&p, &t).contains("-0.707*"));
    }
}
