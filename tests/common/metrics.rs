//! Reading a running server's `/metrics` (on its metrics port).

use super::{Http, WAIT};

/// The whole `/metrics` text, checked to be served as plain text.
pub fn scrape(port: u16) -> String {
    let mut http = Http::connect(([127, 0, 0, 1], port).into());
    let r = http.request("GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("text/plain"))
    );
    r.body
}

/// The value of `series` (name and labels), if it is there.
pub fn metric(port: u16, series: &str) -> Option<f64> {
    scrape(port)
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// The value of `series`, which must be there.
pub fn value(port: u16, series: &str) -> f64 {
    metric(port, series).unwrap_or_else(|| panic!("no {series} in:\n{}", scrape(port)))
}

/// Waits (bounded) until `series` is at least `at_least`: counters move a moment after what
/// they count.
pub fn metric_reaches(port: u16, series: &str, at_least: f64) {
    let deadline = std::time::Instant::now() + WAIT;
    while metric(port, series).is_none_or(|v| v < at_least) {
        assert!(
            std::time::Instant::now() < deadline,
            "{series} never reached {at_least}:\n{}",
            scrape(port)
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
