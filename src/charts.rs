//! Server-rendered charts: pure functions from numbers to inline SVG, so
//! a page shows a picture with no chart library and no script in the
//! browser. The SVG uses presentation attributes only (no `style=`, no
//! script, no external resource), so it embeds under the strict CSP; it
//! takes only numbers and dates, so nothing a person typed reaches it.

use std::fmt::Write;

use crate::apikeys::usage::DayCount;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 260.0;
/// Room for the y-axis label on the left, day labels and the legend below.
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const PLOT_HEIGHT: f64 = 180.0;

/// The outcomes, bottom of a bar to top: name in the legend, fill colour
/// (each distinguishable from the others in greyscale, too).
const SERIES: [(&str, &str); 3] = [("Allowed", "#2e7d32"), ("Refused", "#c62828"), ("Rate-limited", "#f9a825")];

fn parts(d: &DayCount) -> [u64; 3] {
    [d.allowed, d.refused, d.rate_limited]
}

/// Requests per day as stacked bars by outcome (allowed, refused by a
/// restriction, rate-limited), oldest day on the left, with a legend, a
/// label under every seventh day (the last day always labelled) and the
/// y-axis maximum. Accessible: `role="img"`, a `<title>`, an `aria-label`
/// with the totals, and a `<title>` per bar with that day's numbers.
pub fn daily_bars(days: &[DayCount]) -> String {
    let totals = days.iter().fold([0u64; 3], |mut acc, d| {
        for (a, p) in acc.iter_mut().zip(parts(d)) {
            *a += p;
        }
        acc
    });
    let max = days.iter().map(DayCount::total).max().unwrap_or(0);
    let summary = format!(
        "Requests per day over the last {} days: {} allowed, {} refused, {} rate-limited",
        days.len(),
        totals[0],
        totals[1],
        totals[2]
    );
    let mut svg = String::with_capacity(8 * 1024);
    // `write!` into a String cannot fail.
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="usage-chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{summary}"><title>{summary}</title>"#
    );
    let base = TOP + PLOT_HEIGHT;
    let plot_width = WIDTH - LEFT - RIGHT;
    // Axes and the maximum: the scale a reader needs to read a bar.
    let _ = write!(
        svg,
        r##"<g font-family="sans-serif" font-size="11" fill="#444"><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}" stroke="#888"/><line x1="{LEFT}" y1="{base}" x2="{right}" y2="{base}" stroke="#888"/><text x="{tx}" y="{ty}" text-anchor="end">{max}</text><text x="{tx}" y="{base}" text-anchor="end">0</text></g>"##,
        right = WIDTH - RIGHT,
        tx = LEFT - 4.0,
        ty = TOP + 8.0,
    );
    let slot = if days.is_empty() { plot_width } else { plot_width / days.len() as f64 };
    let bar = (slot * 0.7).max(1.0);
    let scale = if max == 0 { 0.0 } else { PLOT_HEIGHT / max as f64 };
    for (i, day) in days.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let [a, r, l] = parts(day);
        let _ = write!(
            svg,
            r#"<g class="bar"><title>{}: {a} allowed, {r} refused, {l} rate-limited</title>"#,
            day.day.format("%Y-%m-%d")
        );
        let mut top = base;
        for (count, (_, fill)) in parts(day).into_iter().zip(SERIES) {
            if count == 0 {
                continue;
            }
            let h = count as f64 * scale;
            top -= h;
            let _ = write!(svg, r#"<rect x="{x:.1}" y="{top:.1}" width="{bar:.1}" height="{h:.1}" fill="{fill}"/>"#);
        }
        svg.push_str("</g>");
        // A label a week apart, counted back from the last day.
        if (days.len() - 1 - i).is_multiple_of(7) {
            let _ = write!(
                svg,
                r##"<text x="{cx:.1}" y="{y}" font-family="sans-serif" font-size="11" fill="#444" text-anchor="middle">{}</text>"##,
                day.day.format("%b %-d"),
                cx = x + bar / 2.0,
                y = base + 14.0,
            );
        }
    }
    // The legend, with each series' total.
    let y = base + 40.0;
    for (i, ((name, fill), total)) in SERIES.iter().zip(totals).enumerate() {
        let x = LEFT + 170.0 * i as f64;
        let _ = write!(
            svg,
            r##"<g font-family="sans-serif" font-size="12" fill="#222"><rect x="{x}" y="{ry}" width="12" height="12" fill="{fill}"/><text x="{tx}" y="{y}">{name} ({total})</text></g>"##,
            ry = y - 10.0,
            tx = x + 16.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn month(f: impl Fn(usize) -> [u64; 3]) -> Vec<DayCount> {
        let first = NaiveDate::from_ymd_opt(2026, 10, 25).unwrap();
        first
            .iter_days()
            .take(30)
            .enumerate()
            .map(|(i, day)| {
                let [allowed, refused, rate_limited] = f(i);
                DayCount { day, allowed, refused, rate_limited }
            })
            .collect()
    }

    /// A small well-formedness check (no XML crate is in the tree): every
    /// tag closes in order, attributes are quoted, `&` and `<` appear only
    /// as markup. Returns the element names in document order.
    fn well_formed(svg: &str) -> Vec<String> {
        let mut stack: Vec<String> = Vec::new();
        let mut names = Vec::new();
        let mut rest = svg;
        assert!(rest.starts_with("<svg "), "{svg}");
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            assert!(!text.contains('>') && !text.contains('&'), "stray markup in text {text:?}");
            let close = rest[open..].find('>').expect("an unclosed tag") + open;
            let tag = &rest[open + 1..close];
            assert!(!tag.contains('<'), "a tag inside a tag: {tag:?}");
            assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes in {tag:?}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
            } else {
                let name = tag.split([' ', '/']).next().unwrap().to_string();
                for attr in tag.split('"').step_by(2).skip(1) {
                    let attr = attr.trim();
                    assert!(attr.is_empty() || attr == "/" || attr.ends_with('='), "bad attribute syntax in {tag:?}");
                }
                names.push(name.clone());
                if !tag.ends_with('/') {
                    stack.push(name);
                }
            }
            rest = &rest[close + 1..];
            if stack.is_empty() {
                assert!(rest.is_empty(), "content after the root element: {rest:?}");
            }
        }
        assert!(stack.is_empty(), "unclosed {stack:?}");
        names
    }

    #[test]
    fn thirty_days_make_thirty_stacked_bars_with_totals_in_the_label() {
        let days = month(|i| [i as u64, (i % 3) as u64, u64::from(i == 29)]);
        let svg = daily_bars(&days);
        let names = well_formed(&svg);
        assert_eq!(svg.matches(r#"<g class="bar">"#).count(), 30);
        assert_eq!(names.iter().filter(|n| *n == "title").count(), 31, "one for the chart, one per bar");
        // Sums: 0 + 1 + … + 29 = 435 allowed, ten times 0 + 1 + 2 = 30
        // refused, 1 rate-limited.
        let summary = "Requests per day over the last 30 days: 435 allowed, 30 refused, 1 rate-limited";
        assert!(svg.contains(&format!(r#"role="img" aria-label="{summary}""#)), "{svg}");
        assert!(svg.contains(&format!("<title>{summary}</title>")));
        // The tallest day (29 + 2 + 1) is the axis maximum, and its bar
        // fills the plot exactly.
        assert!(svg.contains(r#"text-anchor="end">32</text>"#), "{svg}");
        assert!(svg.contains("<title>2026-11-23: 29 allowed, 2 refused, 1 rate-limited</title>"));
        assert!(svg.contains(&format!(r#"y="{TOP:.1}""#)), "the tallest stack reaches the top");
        // A label every week, counted back from the last day.
        for label in ["Oct 26", "Nov 2", "Nov 9", "Nov 16", "Nov 23"] {
            assert!(svg.contains(&format!(">{label}</text>")), "{label} in {svg}");
        }
        assert!(!svg.contains(">Nov 22</text>"));
        // A legend naming each outcome with its total.
        for entry in ["Allowed (435)", "Refused (30)", "Rate-limited (1)"] {
            assert!(svg.contains(entry), "{entry}");
        }
    }

    #[test]
    fn no_use_renders_a_zero_chart() {
        let svg = daily_bars(&month(|_| [0, 0, 0]));
        let names = well_formed(&svg);
        assert_eq!(svg.matches(r#"<g class="bar">"#).count(), 30);
        // No bar has a segment: the only rects are the legend's swatches.
        assert_eq!(names.iter().filter(|n| *n == "rect").count(), 3);
        assert!(svg.contains(": 0 allowed, 0 refused, 0 rate-limited"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        // Nothing at all still renders.
        well_formed(&daily_bars(&[]));
    }

    #[test]
    fn embeds_under_a_strict_csp() {
        let svg = daily_bars(&month(|i| [i as u64, 1, 0]));
        for banned in ["style=", "<script", "<style", "href", "url(", "javascript:", "on"] {
            let found = match banned {
                // Event handler attributes: ` onclick=` and the like.
                "on" => svg.split(' ').any(|w| w.starts_with("on") && w.contains('=')),
                _ => svg.contains(banned),
            };
            assert!(!found, "{banned} in {svg}");
        }
    }
}
