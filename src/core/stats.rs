//! PLACEHOLDER for helper "stats"' module (Mann-Whitney U, Hodges–Lehmann): the API the
//! judges code against, with no statistics inside. Replaced verbatim by their file.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Increase,
    Decrease,
    Either,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Comparison {
    Insufficient {
        n_canary: usize,
        n_stable: usize,
    },
    Judged {
        n_canary: usize,
        n_stable: usize,
        u: f64,
        p_value: f64,
        shift: f64,
        stable_median: f64,
        effect: f64,
        breached: bool,
    },
}

pub fn median(xs: &[f64]) -> Option<f64> {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

pub fn compare(
    canary: &[f64],
    stable: &[f64],
    _direction: Direction,
    _confidence: f64,
    _min_effect: f64,
    _min_samples: usize,
) -> Comparison {
    Comparison::Insufficient {
        n_canary: canary.len(),
        n_stable: stable.len(),
    }
}
