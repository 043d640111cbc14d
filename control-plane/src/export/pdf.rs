//! Tables as PDF (pdf-writer; the standard fonts, nothing embedded): landscape A4, a title and
//! subtitle on every page, a header row repeated on each, zebra rows with light rules, and
//! "Page n of m". The geometry is [`layout`]'s; this module only draws it.

mod fonts;
mod layout;

use chrono::{DateTime, Utc};
use keyward_shared::store::license_exports::{ExportRow, MAX_ROWS};
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use fonts::Font;
use layout::{Cell, Column, Kind, Layout, Style, LANDSCAPE_A4};

const TITLE_SIZE: f32 = 16.0;
const SUBTITLE_SIZE: f32 = 8.5;
const SUBTITLE_LEADING: f32 = 11.0;

/// What the heading says about an export.
pub struct Heading {
    pub generated_at: DateTime<Utc>,
    /// The filters in words (`product "Alpha"`, `active only`); empty: none.
    pub filters: Vec<String>,
    /// More licenses matched than the export holds.
    pub truncated: bool,
}

/// The licenses' table, as a person would print it.
pub fn licenses(rows: &[ExportRow], heading: &Heading) -> Vec<u8> {
    const COLUMNS: [Column; 11] = [
        col("Key", Kind::Key),
        col("Product", Kind::Text),
        col("Customer", Kind::Text),
        col("Active", Kind::Text),
        col("Type", Kind::Text),
        col("Expires", Kind::Text),
        col("IP limit", Kind::Text),
        col("HWID limit", Kind::Text),
        col("Used IPs", Kind::Text),
        col("Used HWIDs", Kind::Text),
        col("Created", Kind::Text),
    ];
    let limit = |n: i32| match n {
        0 => "unlimited".to_string(),
        n => n.to_string(),
    };
    let list = |items: Vec<String>| {
        if items.is_empty() {
            vec!["—".to_string()]
        } else {
            items
        }
    };
    let cells: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| {
            vec![
                vec![r.key.clone()],
                vec![r.product.clone()],
                vec![r.customer.clone().unwrap_or_else(|| "—".into())],
                vec![if r.active() { "yes" } else { "no" }.into()],
                vec![r.license_type.as_str().into()],
                vec![r.expires_at.map_or_else(|| "never".into(), minutes)],
                vec![limit(r.ip_limit)],
                vec![limit(r.hwid_limit)],
                list(r.ips.iter().map(|ip| ip.to_string()).collect()),
                list(r.hwids.clone()),
                vec![minutes(r.created_at)],
            ]
        })
        .collect();
    let count = match rows.len() {
        1 => "1 license".to_string(),
        n => format!("{n} licenses"),
    };
    let mut subtitle = vec![
        format!(
            "Generated {} UTC · {count} · times in UTC",
            heading.generated_at.format("%Y-%m-%d %H:%M:%S")
        ),
        if heading.filters.is_empty() {
            "Filters: none (every license)".to_string()
        } else {
            format!("Filters: {}", heading.filters.join(", "))
        },
    ];
    if heading.truncated {
        subtitle.push(format!(
            "Only the newest {MAX_ROWS} matching licenses are listed: narrow the filters for the others."
        ));
    }
    render(&Document {
        title: "Licenses",
        subtitle,
        columns: &COLUMNS,
        rows: cells,
        empty: "No license matches the filters.",
    })
}

const fn col(title: &'static str, kind: Kind) -> Column {
    Column { title, kind }
}

/// A time as the table shows it (the subtitle says UTC).
fn minutes(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

struct Document<'a> {
    title: &'a str,
    subtitle: Vec<String>,
    columns: &'a [Column],
    rows: Vec<Vec<Cell>>,
    /// Said where the rows would be when there are none.
    empty: &'a str,
}

fn render(doc: &Document) -> Vec<u8> {
    let style = Style {
        top: TITLE_SIZE + 8.0 + doc.subtitle.len() as f32 * SUBTITLE_LEADING + 6.0,
        ..LANDSCAPE_A4
    };
    let layout = layout::layout(&style, doc.columns, &doc.rows);

    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let info = Ref::new(3);
    let font_ref =
        |f: Font| Ref::new(4 + Font::ALL.iter().position(|x| *x == f).unwrap_or(0) as i32);
    // Then a page and its content stream per page.
    let page_ref = |i: usize| Ref::new(10 + 2 * i as i32);
    let content_ref = |i: usize| Ref::new(11 + 2 * i as i32);

    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    let n = layout.pages.len();
    pdf.pages(tree).kids((0..n).map(page_ref)).count(n as i32);
    pdf.document_info(info)
        .title(TextStr(doc.title))
        .producer(TextStr("Keyward"));
    for f in Font::ALL {
        pdf.type1_font(font_ref(f))
            .base_font(Name(f.base_name()))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    for i in 0..n {
        let mut page = pdf.page(page_ref(i));
        page.media_box(Rect::new(0.0, 0.0, style.page_width, style.page_height))
            .parent(tree)
            .contents(content_ref(i));
        let mut resources = page.resources();
        let mut fonts = resources.fonts();
        for f in Font::ALL {
            fonts.pair(Name(f.resource()), font_ref(f));
        }
        fonts.finish();
        resources.finish();
        page.finish();
        let content = draw_page(doc, &style, &layout, i).finish();
        let compressed = miniz_oxide::deflate::compress_to_vec_zlib(&content, 6);
        pdf.stream(content_ref(i), &compressed)
            .filter(Filter::FlateDecode);
    }
    pdf.finish()
}

fn draw_page(doc: &Document, style: &Style, layout: &Layout, index: usize) -> Content {
    let mut c = Content::new();
    let left = style.margin;
    let width = style.table_width();
    let top = style.page_height - style.margin;

    // Heading.
    let mut y = top - TITLE_SIZE;
    text(&mut c, Font::Bold, TITLE_SIZE, left, y, 0.0, doc.title);
    y -= 8.0;
    for line in &doc.subtitle {
        y -= SUBTITLE_LEADING;
        text(&mut c, Font::Regular, SUBTITLE_SIZE, left, y, 0.35, line);
    }

    // Header row.
    let mut y = top - style.top;
    let height = style.row_height(layout.header_lines());
    fill(&mut c, 0.86, left, y - height, width, height);
    cells(&mut c, style, layout, doc.columns, y, true, 0.0, |col| {
        layout.header[col].iter().map(String::as_str).collect()
    });
    y -= height;

    // Rows.
    let page = layout.pages.get(index).map(Vec::as_slice).unwrap_or(&[]);
    for f in page {
        let height = style.row_height(f.lines);
        if f.row % 2 == 1 {
            fill(&mut c, 0.95, left, y - height, width, height);
        }
        let lines = &layout.rows[f.row];
        cells(&mut c, style, layout, doc.columns, y, false, 0.1, |col| {
            let cell = &lines[col];
            if doc.columns[col].kind == Kind::Key {
                // A key is repeated on each piece of a row split across pages.
                cell.iter().map(String::as_str).collect()
            } else {
                cell.iter()
                    .skip(f.first)
                    .take(f.lines)
                    .map(String::as_str)
                    .collect()
            }
        });
        y -= height;
        rule(&mut c, left, y, width);
    }
    if layout.rows.is_empty() {
        text(
            &mut c,
            Font::Regular,
            style.size,
            left + style.pad_x,
            y - style.row_height(1) + style.pad_y + 2.5,
            0.35,
            doc.empty,
        );
    }

    // Footer.
    let footer = format!("Page {} of {}", index + 1, layout.pages.len());
    let w = Font::Regular.width(&footer, style.size);
    text(
        &mut c,
        Font::Regular,
        style.size,
        left + width - w,
        style.margin,
        0.35,
        &footer,
    );
    text(
        &mut c,
        Font::Regular,
        style.size,
        left,
        style.margin,
        0.35,
        doc.title,
    );
    c
}

/// One row's cells from `top` down: each column's lines. The header row is bold; in the body a
/// key is monospaced, smaller when it is wider than its column.
#[allow(clippy::too_many_arguments)]
fn cells<'a>(
    c: &mut Content,
    style: &Style,
    layout: &Layout,
    columns: &[Column],
    top: f32,
    header: bool,
    gray: f32,
    lines_of: impl Fn(usize) -> Vec<&'a str>,
) {
    let mut x = style.margin;
    for (col, width) in layout.widths.iter().enumerate() {
        for (i, line) in lines_of(col).into_iter().enumerate() {
            let (font, size) = match columns[col].kind {
                _ if header => (Font::Bold, style.size),
                Kind::Key => (Font::Mono, layout.key_size(style, col, line)),
                Kind::Text => (Font::Regular, style.size),
            };
            // The baseline centres capitals (about 0.72 em high) in the line's box.
            let baseline = top - style.pad_y - (i + 1) as f32 * style.line_height
                + (style.line_height - 0.72 * size) / 2.0;
            text(c, font, size, x + style.pad_x, baseline, gray, line);
        }
        x += width;
    }
}

fn text(c: &mut Content, font: Font, size: f32, x: f32, y: f32, gray: f32, s: &str) {
    c.set_fill_gray(gray);
    c.begin_text();
    c.set_font(Name(font.resource()), size);
    c.set_text_matrix([1.0, 0.0, 0.0, 1.0, x, y]);
    c.show(Str(&fonts::encode(s)));
    c.end_text();
}

fn fill(c: &mut Content, gray: f32, x: f32, y: f32, w: f32, h: f32) {
    c.set_fill_gray(gray);
    c.rect(x, y, w, h);
    c.fill_nonzero();
}

fn rule(c: &mut Content, x: f32, y: f32, w: f32) {
    c.set_stroke_gray(0.78);
    c.set_line_width(0.4);
    c.move_to(x, y);
    c.line_to(x + w, y);
    c.stroke();
}
