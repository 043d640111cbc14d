//! The three standard fonts the PDF uses (no font file is embedded: every reader has them) and
//! WinAnsi, their encoding: text is mapped to its bytes, characters outside it become `?`, and
//! widths are the fonts' Adobe metrics (Helvetica's and Helvetica-Bold's per code, Courier's 600),
//! so the layout measures exactly what a reader draws.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Font {
    Regular,
    Bold,
    /// Courier: every glyph 600/1000 em wide.
    Mono,
}

impl Font {
    pub const ALL: [Font; 3] = [Font::Regular, Font::Bold, Font::Mono];

    /// The PDF's base font name.
    pub fn base_name(self) -> &'static [u8] {
        match self {
            Font::Regular => b"Helvetica",
            Font::Bold => b"Helvetica-Bold",
            Font::Mono => b"Courier",
        }
    }

    /// The page resource name.
    pub fn resource(self) -> &'static [u8] {
        match self {
            Font::Regular => b"F1",
            Font::Bold => b"F2",
            Font::Mono => b"F3",
        }
    }

    /// The width of one encoded byte, in thousandths of the font size.
    fn byte_width(self, b: u8) -> u16 {
        let i = usize::from(b.saturating_sub(32));
        match self {
            Font::Mono => 600,
            Font::Regular => HELVETICA.get(i).copied().unwrap_or(0),
            Font::Bold => HELVETICA_BOLD.get(i).copied().unwrap_or(0),
        }
    }

    /// The width of `text` at `size` points.
    pub fn width(self, text: &str, size: f32) -> f32 {
        let units: u32 = text
            .chars()
            .map(|c| u32::from(self.byte_width(encode_char(c))))
            .sum();
        units as f32 * size / 1000.0
    }
}

/// `text` in WinAnsi (Windows-1252), one byte per character.
pub fn encode(text: &str) -> Vec<u8> {
    text.chars().map(encode_char).collect()
}

/// A character's WinAnsi byte: control characters become a space, characters the encoding
/// lacks `?`.
pub fn encode_char(c: char) -> u8 {
    match c {
        ' '..='~' => c as u8,
        '\u{A0}'..='\u{FF}' => c as u8,
        c if c.is_control() => b' ',
        c => HIGH
            .iter()
            .position(|&h| h == c)
            .map_or(b'?', |i| 0x80 + i as u8),
    }
}

/// Windows-1252's 0x80..=0x9F (NUL: a code with no character).
const HIGH: [char; 32] = [
    '€', '\0', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\0', 'Ž', '\0', '\0', '‘',
    '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\0', 'ž', 'Ÿ',
];

// Widths of the codes 32..=255 (0: no glyph, never drawn), from Adobe's AFM files of the two
// fonts as groff ships them (font/devps/HR, HB), indexed by Windows-1252.
pub(super) const HELVETICA: [u16; 224] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556,
    556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667,
    611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667,
    667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500,
    222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
    0, 556, 0, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 0, 611, 0, 0, 222, 222,
    333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 0, 500, 667, 278, 333, 556, 556, 556, 556,
    260, 556, 333, 737, 370, 556, 584, 333, 737, 333, 400, 584, 333, 333, 333, 578, 537, 278, 333,
    333, 365, 556, 834, 834, 834, 611, 667, 667, 667, 667, 667, 667, 1000, 722, 667, 667, 667, 667,
    278, 278, 278, 278, 722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667,
    611, 556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278, 278, 556, 556,
    556, 556, 556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556, 500,
];
pub(super) const HELVETICA_BOLD: [u16; 224] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556,
    556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, 975, 722, 722, 722, 722, 667,
    611, 778, 722, 278, 556, 722, 611, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667,
    667, 611, 333, 278, 333, 584, 556, 333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556,
    278, 889, 611, 611, 611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584,
    0, 556, 0, 278, 556, 500, 1000, 556, 556, 333, 1000, 667, 333, 1000, 0, 611, 0, 0, 278, 278,
    500, 500, 350, 556, 1000, 333, 1000, 556, 333, 944, 0, 500, 667, 278, 333, 556, 556, 556, 556,
    280, 556, 333, 737, 370, 556, 584, 333, 737, 333, 400, 584, 333, 333, 333, 611, 556, 278, 333,
    333, 365, 556, 834, 834, 834, 611, 722, 722, 722, 722, 722, 722, 1000, 722, 667, 667, 667, 667,
    278, 278, 278, 278, 722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667,
    611, 556, 556, 556, 556, 556, 556, 889, 556, 556, 556, 556, 556, 278, 278, 278, 278, 611, 611,
    611, 611, 611, 611, 611, 584, 611, 611, 611, 611, 611, 556, 611, 556,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_winansi_and_replaces_the_rest() {
        assert_eq!(encode("Ab~"), b"Ab~");
        assert_eq!(encode("é€—ß"), vec![0xE9, 0x80, 0x97, 0xDF]);
        assert_eq!(encode("日本\u{1F600}Ω"), b"????");
        assert_eq!(encode("a\tb\u{7}"), b"a b ");
        // A NUL is a control character, not HIGH's placeholder.
        assert_eq!(encode_char('\0'), b' ');
    }

    #[test]
    fn widths_follow_the_metrics() {
        assert_eq!(Font::Mono.width("ABCD", 10.0), 24.0);
        // Helvetica: i 222, W 944; bold: i 278.
        assert_eq!(Font::Regular.width("iW", 1000.0), 1166.0);
        assert_eq!(Font::Bold.width("i", 1000.0), 278.0);
        // Characters outside WinAnsi measure as the `?` drawn instead.
        assert_eq!(
            Font::Regular.width("日", 10.0),
            Font::Regular.width("?", 10.0)
        );
        for b in (32u8..=126).chain(0xA0..=0xFF) {
            assert!(Font::Regular.byte_width(b) > 0, "{b}");
            assert!(Font::Bold.byte_width(b) > 0, "{b}");
        }
    }
}
