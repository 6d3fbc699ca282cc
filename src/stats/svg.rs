//! Bar charts as inline SVG: no script, no font or file from elsewhere.
//!
//! Every bar is a `<rect>` with `data-series` and `data-value`, the exact
//! number of the JSON report it stands for, so that a reader (or a test)
//! can check the picture against the figures without measuring pixels.

use std::fmt::Write;

/// A series of a grouped bar chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub values: &'a [u64],
}

const WIDTH: u32 = 760;
const HEIGHT: u32 = 260;
const LEFT: u32 = 60;
const BOTTOM: u32 = 40;
const TOP: u32 = 30;

/// `s` safe inside XML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // XML 1.0 has no place for other control characters.
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// Vertical bars, one group per category, one bar per series in a group.
pub fn grouped_bars(id: &str, title: &str, categories: &[String], series: &[Series<'_>]) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_w = WIDTH - LEFT - 10;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let groups = categories.len().max(1) as u32;
    let group_w = plot_w / groups;
    let bar_w = (group_w.saturating_sub(2) / (series.len().max(1) as u32)).max(1);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="{id}" data-chart="{id}" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{t}">"#,
        t = escape(title)
    );
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="18" class="title">{}</text>"#,
        escape(title)
    );
    axes(&mut out, max, plot_h);
    for (gi, cat) in categories.iter().enumerate() {
        let gx = LEFT + gi as u32 * group_w;
        for (si, s) in series.iter().enumerate() {
            let v = s.values.get(gi).copied().unwrap_or(0);
            let h = scaled(v, max, plot_h);
            let x = gx + 1 + si as u32 * bar_w;
            let y = TOP + plot_h - h;
            let _ = writeln!(
                out,
                r#"<rect class="bar" x="{x}" y="{y}" width="{bar_w}" height="{h}" fill="{c}" data-series="{n}" data-category="{cat}" data-value="{v}"><title>{n} {cat}: {v}</title></rect>"#,
                c = s.color,
                n = escape(s.name),
                cat = escape(cat)
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" class="label" text-anchor="middle">{}</text>"#,
            gx + group_w / 2,
            HEIGHT - BOTTOM + 14,
            escape(cat)
        );
    }
    legend(&mut out, series);
    out.push_str("</svg>\n");
    out
}

/// Horizontal bars, one per row, labelled with the key.
pub fn ranked_bars(id: &str, title: &str, series: &str, rows: &[(String, u64)]) -> String {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let row_h = 18u32;
    let label_w = 300u32;
    let plot_w = WIDTH - label_w - 70;
    let height = TOP + rows.len() as u32 * row_h + 10;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="{id}" data-chart="{id}" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{t}">"#,
        t = escape(title)
    );
    let _ = writeln!(
        out,
        r#"<text x="10" y="18" class="title">{}</text>"#,
        escape(title)
    );
    for (i, (key, v)) in rows.iter().enumerate() {
        let y = TOP + i as u32 * row_h;
        let w = scaled(*v, max, plot_w);
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" class="label" text-anchor="end">{}</text>"#,
            label_w - 6,
            y + 13,
            escape(key)
        );
        let _ = writeln!(
            out,
            r##"<rect class="bar" x="{label_w}" y="{}" width="{w}" height="{}" fill="#4477aa" data-series="{s}" data-category="{k}" data-value="{v}"><title>{k}: {v}</title></rect>"##,
            y + 2,
            row_h - 4,
            s = escape(series),
            k = escape(key)
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" class="label">{v}</text>"#,
            label_w + w + 4,
            y + 13
        );
    }
    out.push_str("</svg>\n");
    out
}

/// `v` of `max` in `span` pixels; a value above zero stays visible.
fn scaled(v: u64, max: u64, span: u32) -> u32 {
    let h = (v as f64 / max as f64 * f64::from(span)).round() as u32;
    if v > 0 { h.max(1) } else { 0 }
}

fn axes(out: &mut String, max: u64, plot_h: u32) {
    let base = TOP + plot_h;
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" y1="{base}" x2="{}" y2="{base}" stroke="#555"/>"##,
        WIDTH - 10
    );
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}" stroke="#555"/>"##
    );
    for (v, y) in [(0, base), (max, TOP)] {
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" class="label" text-anchor="end">{v}</text>"#,
            LEFT - 4,
            y + 4
        );
    }
}

fn legend(out: &mut String, series: &[Series<'_>]) {
    let mut x = LEFT;
    for s in series {
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}" class="label">{}</text>"#,
            HEIGHT - 16,
            s.color,
            x + 14,
            HEIGHT - 7,
            escape(s.name)
        );
        x += 120;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_carry_their_values_and_text_is_escaped() {
        let cats = vec!["a<b".to_string(), "c".to_string()];
        let svg = grouped_bars(
            "t",
            "T & t",
            &cats,
            &[Series {
                name: "s",
                color: "#000",
                values: &[3, 0],
            }],
        );
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 2);
        assert!(svg.contains("data-value=\"3\""));
        assert!(svg.contains("a&lt;b"));
        assert!(svg.contains("T &amp; t"));
        let r = ranked_bars("r", "R", "s", &[("x\"y".into(), 5)]);
        assert!(r.contains("data-value=\"5\"") && r.contains("x&quot;y"));
    }
}
