//! Small helpers that append text to byte buffers: numbers, JSON and XHTML escaping, CSV
//! fields and full-width (全角) forms. Writers build every record in a reused `Vec<u8>`.

/// Appends the decimal digits of `n`.
pub(crate) fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Appends `n` zero-padded to `width` digits.
pub(crate) fn push_padded(buf: &mut Vec<u8>, n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    let mut m = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    for _ in len..width {
        buf.push(b'0');
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Appends a two-digit zero-padded number (months, days, era years).
pub(crate) fn push_2d(buf: &mut Vec<u8>, n: u8) {
    buf.push(b'0' + n / 10 % 10);
    buf.push(b'0' + n % 10);
}

/// Appends a decimal with `decimals` places (lab values, doses); trailing zeros are kept so
/// that a column has one precision.
pub(crate) fn push_decimal(buf: &mut Vec<u8>, value: f64, decimals: u32) {
    let scale = 10u64.pow(decimals);
    let negative = value < 0.0;
    let scaled = (value.abs() * scale as f64).round() as u64;
    if negative && scaled != 0 {
        buf.push(b'-');
    }
    push_u64(buf, scaled / scale);
    if decimals > 0 {
        buf.push(b'.');
        push_padded(buf, scaled % scale, decimals as usize);
    }
}

/// Appends `s` escaped for a JSON string (without the quotes).
pub(crate) fn push_json_escaped(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20) {
        buf.extend_from_slice(bytes);
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                buf.extend_from_slice(&bytes[start..i]);
                buf.extend_from_slice(b"\\u00");
                buf.push(HEX[(b >> 4) as usize]);
                buf.push(HEX[(b & 15) as usize]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        buf.extend_from_slice(escape);
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `"s"` as a JSON string.
pub(crate) fn push_json_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    push_json_escaped(buf, s);
    buf.push(b'"');
}

/// Appends `s` escaped for XHTML text and then for a JSON string (narrative `text.div`).
pub(crate) fn push_xhtml_in_json(buf: &mut Vec<u8>, s: &str) {
    for ch in s.chars() {
        match ch {
            '&' => buf.extend_from_slice(b"&amp;"),
            '<' => buf.extend_from_slice(b"&lt;"),
            '>' => buf.extend_from_slice(b"&gt;"),
            '"' => buf.extend_from_slice(b"&quot;"),
            '\\' => buf.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => buf.push(b' '),
            c => {
                let mut tmp = [0u8; 4];
                buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
            }
        }
    }
}

/// Appends a CSV field, quoting it only when it contains a comma, quote or line break
/// (RFC 4180).
pub(crate) fn push_csv_field(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        buf.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                buf.push(b'"');
            }
            buf.push(b);
        }
        buf.push(b'"');
    } else {
        buf.extend_from_slice(s.as_bytes());
    }
}

/// Appends `s` with ASCII digits, letters and `-` turned into their full-width (全角) forms,
/// as UKE's 記号・番号 fields and some address systems hold them.
pub(crate) fn push_fullwidth(buf: &mut Vec<u8>, s: &str) {
    let mut tmp = [0u8; 4];
    for ch in s.chars() {
        let wide = match ch {
            '0'..='9' | 'A'..='Z' | 'a'..='z' => char::from_u32(ch as u32 - 0x21 + 0xFF01).unwrap_or(ch),
            '-' => '－',
            ' ' => '　',
            _ => ch,
        };
        buf.extend_from_slice(wide.encode_utf8(&mut tmp).as_bytes());
    }
}

pub(crate) fn fullwidth(s: &str) -> String {
    let mut buf = Vec::with_capacity(s.len() * 3);
    push_fullwidth(&mut buf, s);
    String::from_utf8(buf).expect("utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut buf = Vec::new();
        f(&mut buf);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn numbers() {
        assert_eq!(render(|b| push_u64(b, 0)), "0");
        assert_eq!(render(|b| push_u64(b, 18_446_744_073_709_551_615)), "18446744073709551615");
        assert_eq!(render(|b| push_padded(b, 42, 7)), "0000042");
        assert_eq!(render(|b| push_padded(b, 12345678, 3)), "12345678");
        assert_eq!(render(|b| push_decimal(b, 5.449, 1)), "5.4");
        assert_eq!(render(|b| push_decimal(b, 0.05, 2)), "0.05");
        assert_eq!(render(|b| push_decimal(b, 120.0, 0)), "120");
        assert_eq!(render(|b| push_decimal(b, -1.25, 1)), "-1.3");
    }

    #[test]
    fn escaping() {
        assert_eq!(render(|b| push_json_str(b, "a\"b\\c\n\u{1}")), r#""a\"b\\c\n\u0001""#);
        assert_eq!(render(|b| push_xhtml_in_json(b, "<渡辺&\"")), "&lt;渡辺&amp;&quot;");
        assert_eq!(render(|b| push_csv_field(b, "a,b")), "\"a,b\"");
        assert_eq!(render(|b| push_csv_field(b, "渡辺")), "渡辺");
        assert_eq!(fullwidth("19D-0001"), "１９Ｄ－０００１");
    }
}
