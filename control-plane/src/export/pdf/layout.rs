//! The table's geometry, without drawing: column widths, cell text wrapped into lines, and rows
//! cut into pages. Pure, so it is tested without a PDF reader.
//!
//! A key column never wraps (a key split over lines is a key no search finds): it is as wide as
//! its longest key, up to a share of the table; a key wider than that is drawn in a smaller font
//! (its own: the others keep the body's), down to a floor at which the column grows instead. Text
//! columns share the rest: each gets its natural (unwrapped) width when all fit; else the widest
//! are capped at one common width, never below their minimum, so the narrow columns (dates,
//! names, numbers) stay on one line and only the widest wrap. A row taller than a page continues
//! on the next.

use super::fonts::Font;

/// Page, font and spacing, in points.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub page_width: f32,
    pub page_height: f32,
    pub margin: f32,
    /// The body's font size, and the header row's (bold).
    pub size: f32,
    pub line_height: f32,
    pub pad_x: f32,
    pub pad_y: f32,
    /// The heading above the table on every page (title, subtitle).
    pub top: f32,
    /// The footer below it (page number).
    pub bottom: f32,
    /// The largest share of the table's width a key column takes before its keys' font shrinks
    /// (less when the text columns' minimums need more).
    pub key_max_share: f32,
    /// The smallest font a key is shrunk to.
    pub min_key_size: f32,
    /// Text columns are not squeezed below this unless nothing else fits.
    pub min_text_width: f32,
}

/// Landscape A4 with half-inch margins, 8-point text.
pub const LANDSCAPE_A4: Style = Style {
    page_width: 841.89,
    page_height: 595.28,
    margin: 36.0,
    size: 8.0,
    line_height: 10.0,
    pad_x: 4.0,
    pad_y: 3.0,
    top: 60.0,
    bottom: 16.0,
    key_max_share: 0.3,
    min_key_size: 3.5,
    min_text_width: 60.0,
};

impl Style {
    pub fn table_width(&self) -> f32 {
        self.page_width - 2.0 * self.margin
    }

    /// The height of a row (or a piece of one) of `lines` lines.
    pub fn row_height(&self, lines: usize) -> f32 {
        lines as f32 * self.line_height + 2.0 * self.pad_y
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monospaced, one line per item, never wrapped.
    Key,
    /// Wrapped at spaces, and within words longer than the column.
    Text,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub title: &'static str,
    pub kind: Kind,
}

/// A cell: its items, each starting on a line of its own (a list's values, or one text).
pub type Cell = Vec<String>;

/// Which lines of a row a page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    pub row: usize,
    pub first: usize,
    pub lines: usize,
}

#[derive(Debug)]
pub struct Layout {
    pub widths: Vec<f32>,
    /// The header row's lines per column.
    pub header: Vec<Vec<String>>,
    /// Each row's lines per column.
    pub rows: Vec<Vec<Vec<String>>>,
    pub pages: Vec<Vec<Fragment>>,
}

impl Layout {
    pub fn header_lines(&self) -> usize {
        self.header.iter().map(Vec::len).max().unwrap_or(1).max(1)
    }

    /// The font size a key is drawn at in column `col`: the body's, or smaller when the key is
    /// wider than its column (never below the floor, which the column's width allows for).
    pub fn key_size(&self, style: &Style, col: usize, key: &str) -> f32 {
        let room = self.widths.get(col).map_or(0.0, |w| w - 2.0 * style.pad_x);
        let need = Font::Mono.width(key, style.size);
        if need <= room + 0.01 {
            style.size
        } else {
            (style.size * room / need).max(style.min_key_size)
        }
    }

    pub fn row_lines(&self, row: usize) -> usize {
        self.rows
            .get(row)
            .and_then(|r| r.iter().map(Vec::len).max())
            .unwrap_or(1)
            .max(1)
    }
}

pub fn layout(style: &Style, columns: &[Column], rows: &[Vec<Cell>]) -> Layout {
    let widths = column_widths(style, columns, rows);
    let header = columns
        .iter()
        .zip(&widths)
        .map(|(c, w)| wrap(c.title, Font::Bold, style.size, w - 2.0 * style.pad_x))
        .collect();
    let rows: Vec<Vec<Vec<String>>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let items = row.get(i).map(Vec::as_slice).unwrap_or(&[]);
                    match c.kind {
                        Kind::Key => items.to_vec(),
                        Kind::Text => items
                            .iter()
                            .flat_map(|t| {
                                wrap(t, Font::Regular, style.size, widths[i] - 2.0 * style.pad_x)
                            })
                            .collect(),
                    }
                })
                .collect()
        })
        .collect();
    let mut layout = Layout {
        widths,
        header,
        rows,
        pages: Vec::new(),
    };
    layout.pages = paginate(style, &layout);
    layout
}

/// Each column's width.
fn column_widths(style: &Style, columns: &[Column], rows: &[Vec<Cell>]) -> Vec<f32> {
    let pad = 2.0 * style.pad_x;
    let items = |i: usize| {
        rows.iter()
            .flat_map(move |r| r.get(i).into_iter().flatten())
            .map(String::as_str)
    };
    let longest_word = |text: &str, font: Font| {
        text.split_whitespace()
            .map(|w| font.width(w, style.size))
            .fold(0.0, f32::max)
    };
    let mut widths = vec![0.0; columns.len()];
    // (column, minimum, natural) of the text columns.
    let mut text = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        if c.kind != Kind::Text {
            continue;
        }
        let natural = items(i)
            .map(|t| Font::Regular.width(t, style.size))
            .fold(Font::Bold.width(c.title, style.size), f32::max)
            + pad;
        // Words up to the minimum stay whole (an address, a date); longer ones break.
        let words = items(i)
            .map(|t| longest_word(t, Font::Regular))
            .fold(0.0, f32::max);
        let min = (words.min(style.min_text_width) + pad)
            .max(longest_word(c.title, Font::Bold) + pad)
            .min(natural);
        text.push((i, min, natural));
    }
    // A key column takes up to its share, and never the text columns' minimums: past that the
    // longest keys are drawn smaller, down to the floor.
    let keys = columns
        .iter()
        .filter(|c| c.kind == Kind::Key)
        .count()
        .max(1) as f32;
    let min_sum: f32 = text.iter().map(|t| t.1).sum();
    let cap = (style.key_max_share * style.table_width())
        .min((style.table_width() - min_sum) / keys)
        - pad;
    for (i, c) in columns.iter().enumerate() {
        if c.kind != Kind::Key {
            continue;
        }
        let need = items(i)
            .map(|k| Font::Mono.width(k, style.size))
            .fold(0.0, f32::max);
        let at_floor = need * style.min_key_size / style.size;
        widths[i] =
            (need.min(cap).max(at_floor) + pad).max(longest_word(c.title, Font::Bold) + pad);
    }
    let left = (style.table_width() - widths.iter().sum::<f32>()).max(0.0);
    let natural_sum: f32 = text.iter().map(|t| t.2).sum();
    let level = (min_sum < left && left < natural_sum).then(|| fill_level(&text, left));
    for &(i, min, natural) in &text {
        widths[i] = if natural_sum <= left {
            // Room to spare: shared in proportion to what each column shows.
            natural + (left - natural_sum) * natural / natural_sum
        } else if let Some(level) = level {
            natural.min(level).max(min)
        } else {
            min * left / min_sum.max(f32::EPSILON)
        };
    }
    widths
}

/// The width cap at which the text columns, each `clamp(natural, min, cap)` wide, fill `left`
/// exactly: narrow columns keep their natural width and only the widest give some up (so a
/// date or a product name stays on one line while a long list wraps). Found by bisection: the
/// total grows monotonically with the cap.
fn fill_level(text: &[(usize, f32, f32)], left: f32) -> f32 {
    let total = |cap: f32| -> f32 { text.iter().map(|t| t.2.min(cap).max(t.1)).sum() };
    let (mut low, mut high) = (0.0f32, text.iter().map(|t| t.2).fold(0.0, f32::max));
    for _ in 0..50 {
        let mid = (low + high) / 2.0;
        if total(mid) > left {
            high = mid;
        } else {
            low = mid;
        }
    }
    low
}

/// Characters after which a word too wide for its line may break (e-mails, dates, paths, lists).
const SOFT_BREAKS: &[char] = &['@', '.', '-', '_', '/', ':', ';', ','];

/// The pieces of a word between soft breaks, each keeping its break character.
fn pieces(word: &str) -> impl Iterator<Item = &str> {
    word.split_inclusive(SOFT_BREAKS)
}

/// `text` in lines of at most `width` points: broken at spaces; a word wider than the line is
/// broken after its soft-break characters, and inside a piece only when the piece alone is
/// wider. Each line holds at least one character, so any width makes progress.
pub fn wrap(text: &str, font: Font, size: f32, width: f32) -> Vec<String> {
    // A hair of tolerance: a column exactly as wide as its text (to rounding) holds it.
    let fits = |s: &str| font.width(s, size) <= width + 0.01;
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let candidate = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        if fits(&candidate) {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        if fits(word) {
            line = word.to_string();
            continue;
        }
        for piece in pieces(word) {
            if !line.is_empty() && !fits(&format!("{line}{piece}")) {
                lines.push(std::mem::take(&mut line));
            }
            for c in piece.chars() {
                line.push(c);
                if !fits(&line) && line.chars().count() > 1 {
                    line.pop();
                    lines.push(std::mem::replace(&mut line, c.to_string()));
                }
            }
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The rows in pages: a row goes whole to the next page when it does not fit the rest of this
/// one; only a row taller than a whole page is split.
fn paginate(style: &Style, layout: &Layout) -> Vec<Vec<Fragment>> {
    let header = style.row_height(layout.header_lines());
    let room = style.page_height - 2.0 * style.margin - style.top - style.bottom - header;
    // Lines that fit in `space` (a hair of tolerance against rounding).
    let fits = |space: f32| -> usize {
        let lines = (space - 2.0 * style.pad_y + 0.01) / style.line_height;
        if lines < 1.0 {
            0
        } else {
            lines as usize
        }
    };
    let per_page = fits(room).max(1);
    let mut pages = vec![Vec::new()];
    let mut left = room;
    for row in 0..layout.rows.len() {
        let total = layout.row_lines(row);
        let mut first = 0;
        while first < total {
            let rest = total - first;
            let fit = fits(left);
            let lines = if rest <= fit {
                rest
            } else if rest > per_page && fit > 0 {
                fit
            } else {
                pages.push(Vec::new());
                left = room;
                continue;
            };
            if let Some(page) = pages.last_mut() {
                page.push(Fragment { row, first, lines });
            }
            left -= style.row_height(lines);
            first += lines;
        }
    }
    pages
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: [Column; 3] = [
        Column {
            title: "Key",
            kind: Kind::Key,
        },
        Column {
            title: "Customer",
            kind: Kind::Text,
        },
        Column {
            title: "Used IPs",
            kind: Kind::Text,
        },
    ];

    fn row(key: &str, customer: &str, ips: &[&str]) -> Vec<Cell> {
        vec![
            vec![key.to_string()],
            vec![customer.to_string()],
            ips.iter().map(|s| s.to_string()).collect(),
        ]
    }

    fn total_width(l: &Layout) -> f32 {
        l.widths.iter().sum()
    }

    #[test]
    fn wrap_breaks_at_spaces_then_inside_long_words() {
        let w = Font::Regular.width("hello world", 8.0);
        assert_eq!(
            wrap("hello world again", Font::Regular, 8.0, w),
            ["hello world", "again"]
        );
        assert_eq!(
            wrap("  a   b  ", Font::Regular, 8.0, 1000.0),
            ["a b"],
            "spaces collapse"
        );
        assert!(wrap("   ", Font::Regular, 8.0, 100.0).is_empty());
        let long = "averyveryverylongaddress@example.com";
        let lines = wrap(long, Font::Regular, 8.0, 40.0);
        assert!(lines.len() > 1);
        assert_eq!(lines.concat(), long, "nothing lost or added");
        for l in &lines {
            assert!(Font::Regular.width(l, 8.0) <= 40.0, "{l}");
        }
        // An e-mail breaks after its @ and dots before anywhere else.
        let w = Font::Regular.width("northwind.example", 8.0) + 0.1;
        assert_eq!(
            wrap("studio-ops@northwind.example", Font::Regular, 8.0, w),
            ["studio-ops@", "northwind.example"]
        );
        // Narrower than one character: one character a line, still progress.
        assert_eq!(wrap("abc", Font::Regular, 8.0, 1.0), ["a", "b", "c"]);
    }

    #[test]
    fn the_key_column_fits_the_longest_key_and_never_wraps() {
        let rows = vec![
            row("SHORT-1", "a@x.io", &[]),
            row("LIC-ABC123-XYZ789", "b@x.io", &["10.0.0.1"]),
        ];
        let l = layout(&LANDSCAPE_A4, &COLUMNS, &rows);
        let need = Font::Mono.width("LIC-ABC123-XYZ789", 8.0) + 2.0 * LANDSCAPE_A4.pad_x;
        assert!(
            (l.widths[0] - need).abs() < 0.01,
            "{} vs {need}",
            l.widths[0]
        );
        assert_eq!(l.key_size(&LANDSCAPE_A4, 0, "LIC-ABC123-XYZ789"), 8.0);
        assert_eq!(l.rows[1][0], ["LIC-ABC123-XYZ789"]);
        // The text columns take the rest: the table spans the page.
        assert!((total_width(&l) - LANDSCAPE_A4.table_width()).abs() < 0.01);
    }

    #[test]
    fn a_key_too_long_for_its_share_shrinks_its_font_instead() {
        let style = LANDSCAPE_A4;
        let pad = 2.0 * style.pad_x;
        let mid = "M".repeat(60);
        let long = "K".repeat(128);
        let rows = [&mid, &long, &"S".repeat(8)].map(|k| row(k, "c@x.io", &[]));
        let l = layout(&style, &COLUMNS, &rows);
        // Sized to the longest key at the floor, or to the share, whichever is wider.
        let share = style.key_max_share * style.table_width();
        let at_floor = Font::Mono.width(&long, style.min_key_size) + pad;
        assert!(
            (l.widths[0] - share.max(at_floor)).abs() < 0.01,
            "{}",
            l.widths[0]
        );
        for key in [&mid, &long] {
            let size = l.key_size(&style, 0, key);
            assert!(size < 8.0 && size >= style.min_key_size, "{size}");
            let drawn = Font::Mono.width(key, size) + pad;
            assert!(drawn <= l.widths[0] + 0.01, "the key fits its column");
        }
        assert!(l.key_size(&style, 0, &mid) > l.key_size(&style, 0, &long));
        assert_eq!(
            l.key_size(&style, 0, "SSSSSSSS"),
            8.0,
            "short keys keep the body's size"
        );
        assert_eq!(l.rows[1][0], [long], "whole, on one line");
    }

    #[test]
    fn the_key_gives_way_before_titles_break() {
        const MANY: [Column; 11] = [
            Column {
                title: "Key",
                kind: Kind::Key,
            },
            Column {
                title: "Product",
                kind: Kind::Text,
            },
            Column {
                title: "Customer",
                kind: Kind::Text,
            },
            Column {
                title: "Active",
                kind: Kind::Text,
            },
            Column {
                title: "Type",
                kind: Kind::Text,
            },
            Column {
                title: "Expires",
                kind: Kind::Text,
            },
            Column {
                title: "IP limit",
                kind: Kind::Text,
            },
            Column {
                title: "HWID limit",
                kind: Kind::Text,
            },
            Column {
                title: "Used IPs",
                kind: Kind::Text,
            },
            Column {
                title: "Used HWIDs",
                kind: Kind::Text,
            },
            Column {
                title: "Created",
                kind: Kind::Text,
            },
        ];
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let cells = |key: &str| -> Vec<Cell> {
            [
                key,
                "Alpha Suite",
                "ann.longname.for.wrapping@customers.example.com",
                "yes",
                "enterprise",
                "2030-01-01 00:00",
                "unlimited",
                "unlimited",
                "2001:db8::1",
                hex,
                "2026-12-06 06:44",
            ]
            .iter()
            .map(|s| vec![s.to_string()])
            .collect()
        };
        let rows = vec![cells(&"K".repeat(128)), cells("SHORT")];
        let l = layout(&LANDSCAPE_A4, &MANY, &rows);
        for (col, lines) in l.header.iter().enumerate() {
            let words: Vec<&str> = MANY[col].title.split(' ').collect();
            let got: Vec<&str> = lines.iter().flat_map(|l| l.split(' ')).collect();
            assert_eq!(got, words, "a title's words stay whole");
        }
        assert!(
            l.key_size(&LANDSCAPE_A4, 0, &"K".repeat(128)) < 8.0,
            "the key shrank"
        );
        assert_eq!(l.rows[0][0], ["K".repeat(128)]);
        assert!(total_width(&l) <= LANDSCAPE_A4.table_width() + 0.01);
        // With usual keys, the dates, numbers and names stay on one line.
        let l = layout(&LANDSCAPE_A4, &MANY, &[cells("LIC-ABC123-XYZ789")]);
        assert_eq!(l.key_size(&LANDSCAPE_A4, 0, "LIC-ABC123-XYZ789"), 8.0);
        for col in [1, 3, 4, 5, 6, 7, 8, 10] {
            assert_eq!(l.rows[0][col].len(), 1, "{}", MANY[col].title);
        }
    }

    #[test]
    fn text_columns_shrink_toward_their_minimum_and_wrap() {
        let ips: Vec<String> = (0..4).map(|i| format!("192.168.100.{i}")).collect();
        let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
        let long = "word ".repeat(200);
        let rows = vec![row("K-1", &long, &ips)];
        let l = layout(&LANDSCAPE_A4, &COLUMNS, &rows);
        assert!(total_width(&l) <= LANDSCAPE_A4.table_width() + 0.01);
        // The long text wraps; each IP stays one line (its natural width fits).
        assert!(l.rows[0][1].len() > 1);
        assert_eq!(l.rows[0][2], ips);
        for (i, lines) in l.rows[0].iter().enumerate().skip(1) {
            for line in lines {
                let w = Font::Regular.width(line, 8.0);
                assert!(w <= l.widths[i] - 2.0 * LANDSCAPE_A4.pad_x + 0.01, "{line}");
            }
        }
        assert_eq!(l.row_lines(0), l.rows[0][1].len());
    }

    #[test]
    fn narrow_columns_keep_their_width_and_only_the_widest_wrap() {
        let hwids: Vec<String> = (0..3).map(|i| format!("{i}{}", "ab".repeat(150))).collect();
        let hwids: Vec<&str> = hwids.iter().map(String::as_str).collect();
        let rows = vec![row("K-1", "maria.gonzalez@example.com", &hwids)];
        let l = layout(&LANDSCAPE_A4, &COLUMNS, &rows);
        let natural =
            Font::Regular.width("maria.gonzalez@example.com", 8.0) + 2.0 * LANDSCAPE_A4.pad_x;
        assert!(
            (l.widths[1] - natural).abs() < 0.01,
            "{} vs {natural}",
            l.widths[1]
        );
        assert_eq!(l.rows[0][1].len(), 1, "the customer stays on one line");
        assert!(l.rows[0][2].len() > 3, "the long values wrap");
        assert!((total_width(&l) - LANDSCAPE_A4.table_width()).abs() < 0.01);
    }

    #[test]
    fn rows_fill_pages_and_move_whole_to_the_next() {
        let style = LANDSCAPE_A4;
        let rows: Vec<Vec<Cell>> = (0..120)
            .map(|i| row(&format!("KEY-{i:04}"), "c@x.io", &["10.0.0.1", "10.0.0.2"]))
            .collect();
        let l = layout(&style, &COLUMNS, &rows);
        assert!(l.pages.len() > 1);
        // Every row once, in order, whole (two lines each).
        let placed: Vec<Fragment> = l.pages.iter().flatten().copied().collect();
        assert_eq!(placed.len(), 120);
        for (i, f) in placed.iter().enumerate() {
            assert_eq!(
                *f,
                Fragment {
                    row: i,
                    first: 0,
                    lines: 2
                }
            );
        }
        let room = style.page_height
            - 2.0 * style.margin
            - style.top
            - style.bottom
            - style.row_height(l.header_lines());
        for page in &l.pages {
            let used: f32 = page.iter().map(|f| style.row_height(f.lines)).sum();
            assert!(used <= room + 0.01, "{used} > {room}");
            // Full: one more row would not have fitted.
            if page != l.pages.last().unwrap() {
                assert!(used + style.row_height(2) > room);
            }
        }
    }

    #[test]
    fn a_row_taller_than_a_page_is_split_across_pages() {
        let ips: Vec<String> = (0..150)
            .map(|i| format!("10.0.{}.{}", i / 250, i))
            .collect();
        let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
        let rows = vec![row("A", "a@x.io", &[]), row("B", "b@x.io", &ips)];
        let l = layout(&LANDSCAPE_A4, &COLUMNS, &rows);
        assert!(l.pages.len() >= 2);
        let of_b: Vec<&Fragment> = l.pages.iter().flatten().filter(|f| f.row == 1).collect();
        assert!(of_b.len() >= 2, "split");
        assert_eq!(of_b.iter().map(|f| f.lines).sum::<usize>(), 150);
        let mut next = 0;
        for f in of_b {
            assert_eq!(f.first, next, "contiguous");
            next += f.lines;
        }
    }

    #[test]
    fn no_rows_is_one_empty_page() {
        let l = layout(&LANDSCAPE_A4, &COLUMNS, &[]);
        assert_eq!(l.pages, vec![Vec::<Fragment>::new()]);
        assert_eq!(l.header, [["Key"], ["Customer"], ["Used IPs"]]);
    }
}
