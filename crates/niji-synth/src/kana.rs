//! Katakana as holders' systems store it: full-width (ワタナベ), half-width (ﾜﾀﾅﾍﾞ) from
//! older systems, and the typing slips clerks make (小さい ッ/ツ, a dropped ー, ヂ/ジ).

use rand::Rng;

const FULL: &str = "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンァィゥェォャュョッーヰヱヮヵヶ・";
const HALF: &str = "ｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜｦﾝｧｨｩｪｫｬｭｮｯｰｲｴﾜｶｹ･";
const VOICED: &str = "ガギグゲゴザジズゼゾダヂヅデドバビブベボヴ";
const VOICED_BASE: &str = "カキクケコサシスセソタチツテトハヒフヘホウ";
const SEMI: &str = "パピプペポ";
const SEMI_BASE: &str = "ハヒフヘホ";

/// Half-width forms of U+30A0..U+30FF (katakana block), built once from the tables above.
fn halfwidth_table() -> &'static [Option<&'static str>; 96] {
    static TABLE: std::sync::OnceLock<[Option<&'static str>; 96]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table: [Option<&'static str>; 96] = [None; 96];
        let mut set = |full: char, half: String| {
            if let Some(i) = (full as u32).checked_sub(0x30A0).filter(|&i| i < 96) {
                table[i as usize] = Some(Box::leak(half.into_boxed_str()));
            }
        };
        for (f, h) in FULL.chars().zip(HALF.chars()) {
            set(f, h.to_string());
        }
        let half_of = |base: char| FULL.chars().zip(HALF.chars()).find(|(f, _)| *f == base).map(|(_, h)| h).expect("base kana");
        for (v, b) in VOICED.chars().zip(VOICED_BASE.chars()) {
            set(v, format!("{}ﾞ", half_of(b)));
        }
        for (v, b) in SEMI.chars().zip(SEMI_BASE.chars()) {
            set(v, format!("{}ﾟ", half_of(b)));
        }
        table
    })
}

/// Appends `s` with full-width katakana (and the full-width space) turned half-width:
/// ガ becomes ｶﾞ, パ becomes ﾊﾟ. Other characters pass through.
pub(crate) fn push_halfwidth(out: &mut String, s: &str) {
    let table = halfwidth_table();
    for ch in s.chars() {
        let half = (ch as u32).checked_sub(0x30A0).and_then(|i| table.get(i as usize).copied().flatten());
        match (ch, half) {
            ('　', _) => out.push(' '),
            (_, Some(h)) => out.push_str(h),
            ('・', _) => out.push('･'),
            _ => out.push(ch),
        }
    }
}

#[cfg(test)]
fn halfwidth(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_halfwidth(&mut out, s);
    out
}

/// The slips a clerk makes typing a kana name: a big ツ for a small ッ and back, ー left out,
/// ヂ/ジ and ヅ/ズ confused, small ャュョ typed big.
const SLIPS: &[(char, Option<char>)] = &[
    ('ッ', Some('ツ')),
    ('ツ', Some('ッ')),
    ('ー', None),
    ('ヂ', Some('ジ')),
    ('ジ', Some('ヂ')),
    ('ヅ', Some('ズ')),
    ('ズ', Some('ヅ')),
    ('ャ', Some('ヤ')),
    ('ュ', Some('ユ')),
    ('ョ', Some('ヨ')),
    ('ォ', Some('オ')),
];

/// One typing slip in `kana`, if the name has a character that invites one; `None` if not.
/// A big ツ is not turned small at the start of a name, where no one would type it.
pub(crate) fn typo(kana: &str, rng: &mut impl Rng) -> Option<String> {
    let spots: Vec<(usize, Option<char>)> = kana
        .char_indices()
        .filter_map(|(pos, ch)| {
            let slip = SLIPS.iter().find(|(from, _)| *from == ch)?;
            if pos == 0 && ch == 'ツ' {
                return None;
            }
            Some((pos, slip.1))
        })
        .collect();
    if spots.is_empty() {
        return None;
    }
    let (pos, replacement) = spots[rng.gen_range(0..spots.len())];
    let ch_len = kana[pos..].chars().next().expect("char").len_utf8();
    let mut out = String::with_capacity(kana.len());
    out.push_str(&kana[..pos]);
    if let Some(r) = replacement {
        out.push(r);
    }
    out.push_str(&kana[pos + ch_len..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn halfwidth_splits_voiced_marks() {
        assert_eq!(halfwidth("ワタナベ　タロウ"), "ﾜﾀﾅﾍﾞ ﾀﾛｳ");
        assert_eq!(halfwidth("パーク"), "ﾊﾟｰｸ");
        assert_eq!(halfwidth("キョウコ"), "ｷｮｳｺ");
        assert_eq!(halfwidth("ヴ漢"), "ｳﾞ漢");
    }

    #[test]
    fn typos_change_one_character() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for _ in 0..50 {
            let t = typo("ハットリ", &mut rng).unwrap();
            assert!(t == "ハツトリ", "{t}");
            let t = typo("サトー", &mut rng).unwrap();
            assert_eq!(t, "サト");
        }
        assert_eq!(typo("タナカ", &mut rng), None);
        assert_eq!(typo("ツカダ", &mut rng), None);
    }
}
