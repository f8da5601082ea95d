//! A fast Shift_JIS encoder for UKE files, limited to what the レセプト電算 standard allows:
//! JIS X 0201 (ASCII, half-width katakana) and JIS X 0208. The vendor extensions that
//! Windows' code page adds (NEC row 13 such as ①, IBM kanji such as 髙 and 﨑) are left
//! out, as レセコン leave them out: a strict Shift_JIS decoder (`iconv -f SHIFT_JIS`) reads
//! every file. `encoding_rs` is the reference for the bytes (the table is built from its
//! decoder and encoder), but its legacy CJK encoders search linearly per kanji; here each
//! character is one table lookup.

use std::sync::OnceLock;

use encoding_rs::SHIFT_JIS;

/// 〓 in Shift_JIS: what レセコン print for a character they cannot hold.
pub(crate) const GETA: [u8; 2] = [0x81, 0xAC];

/// Whether a double-byte code is in JIS X 0208 (rows 1-8 and 16-84 as Shift_JIS lead
/// bytes 0x81-0x84 and 0x88-0xEA), not a vendor extension.
fn is_jis_x_0208(lead: u8, trail: u8) -> bool {
    matches!(lead, 0x81..=0x84 | 0x88..=0x9F | 0xE0..=0xE9) || (lead == 0xEA && trail <= 0xA4)
}

/// Shift_JIS bytes of every BMP character in JIS X 0208 (0 = none; single-byte characters
/// are handled before the table).
fn table() -> &'static [[u8; 2]] {
    static TABLE: OnceLock<Vec<[u8; 2]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = vec![[0u8; 2]; 0x10000];
        let leads = (0x81u8..=0x9F).chain(0xE0..=0xFC);
        for lead in leads {
            for trail in (0x40u8..=0x7E).chain(0x80..=0xFC) {
                let pair = [lead, trail];
                let (text, bad) = SHIFT_JIS.decode_without_bom_handling(&pair);
                if bad {
                    continue;
                }
                let mut chars = text.chars();
                let (Some(ch), None) = (chars.next(), chars.next()) else { continue };
                let slot = &mut table[ch as usize & 0xFFFF];
                if (ch as u32) < 0x10000 && *slot == [0, 0] {
                    // The encoder's choice where several codes decode to one character.
                    let mut buf = [0u8; 4];
                    let (bytes, _, unmappable) = SHIFT_JIS.encode(ch.encode_utf8(&mut buf));
                    if !unmappable && bytes.len() == 2 && is_jis_x_0208(bytes[0], bytes[1]) {
                        *slot = [bytes[0], bytes[1]];
                    }
                }
            }
        }
        table
    })
}

/// The Shift_JIS bytes of `ch`, or `None`. Characters no code decodes to but the encoder
/// still maps (− U+2212 to 0x817C, ¥ to 0x5C) take the slow path through `encoding_rs`.
fn encode_char(ch: char, table: &[[u8; 2]]) -> Option<([u8; 2], usize)> {
    let c = ch as u32;
    match c {
        0..=0x7F => Some(([c as u8, 0], 1)),
        0xFF61..=0xFF9F => Some(([(c - 0xFF61 + 0xA1) as u8, 0], 1)),
        0x80..=0xFFFF if table[c as usize] != [0, 0] => Some((table[c as usize], 2)),
        _ => {
            let mut buf = [0u8; 4];
            let (bytes, _, unmappable) = SHIFT_JIS.encode(ch.encode_utf8(&mut buf));
            match (unmappable, bytes.len()) {
                (false, 1) => Some(([bytes[0], 0], 1)),
                (false, 2) if is_jis_x_0208(bytes[0], bytes[1]) => Some(([bytes[0], bytes[1]], 2)),
                _ => None,
            }
        }
    }
}

/// Appends `text` in Shift_JIS; characters it cannot hold become 〓.
pub(crate) fn push(buf: &mut Vec<u8>, text: &str) {
    if text.is_ascii() {
        buf.extend_from_slice(text.as_bytes());
        return;
    }
    let table = table();
    for ch in text.chars() {
        match encode_char(ch, table) {
            Some((b, n)) => buf.extend_from_slice(&b[..n]),
            None => buf.extend_from_slice(&GETA),
        }
    }
}

/// Whether every character of `text` has a code in JIS X 0201 / JIS X 0208.
pub(crate) fn encodable(text: &str) -> bool {
    if text.is_ascii() {
        return true;
    }
    let table = table();
    text.chars().all(|ch| encode_char(ch, table).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_encoding_rs() {
        let samples = "テスト　汎用,渡邊高橋崎ﾜﾀﾅﾍﾞ１２３ＡＢ－〒−ー・¥‾";
        let mut ours = Vec::new();
        push(&mut ours, samples);
        let (theirs, _, bad) = SHIFT_JIS.encode(samples);
        assert!(!bad);
        assert_eq!(ours, theirs.into_owned());
        // Every character the decoder yields encodes like encoding_rs encodes it.
        let mut checked = 0;
        for lead in (0x81u8..=0x9F).chain(0xE0..=0xFC) {
            for trail in (0x40u8..=0x7E).chain(0x80..=0xFC) {
                let pair = [lead, trail];
                let (t, bad) = SHIFT_JIS.decode_without_bom_handling(&pair);
                let (theirs, _, unmappable) = SHIFT_JIS.encode(&t);
                if bad || unmappable || theirs.len() != 2 || !is_jis_x_0208(theirs[0], theirs[1]) {
                    continue;
                }
                let mut ours = Vec::new();
                push(&mut ours, &t);
                assert!(ours == theirs.as_ref(), "{t:?}: {ours:x?} vs {:x?}", theirs.as_ref());
                checked += 1;
            }
        }
        assert!(checked > 6800, "{checked}");
    }

    #[test]
    fn characters_outside_jis_x_0208_become_geta() {
        let mut buf = Vec::new();
        push(&mut buf, "渡邊𠮷髙﨑①㈱");
        assert_eq!(SHIFT_JIS.decode(&buf).0, "渡邊〓〓〓〓〓");
        assert!(encodable("渡邉ﾜﾀﾅﾍﾞ"));
        assert!(!encodable("髙橋"));
        assert!(!encodable("𠮷野"));
    }
}
