//! 保険者番号 (insurer numbers): 8 digits for 被用者保険 and 後期高齢者医療
//! (法別番号 2 + 都道府県 2 + 保険者 3 + check digit 1), 6 digits for 国民健康保険.
//!
//! The check digit is computed over the first seven digits: weights 2,1,2,1,… from the
//! right, add the digits of each product, and the check digit is `(10 - sum mod 10) mod 10`.
//! 国保 numbers (6 digits) carry their check digit in the last place, over five digits.

use std::fmt;

/// A validated 保険者番号.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InsurerNumber {
    digits: [u8; 8],
    len: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsurerNumberError {
    #[error("insurer number must have 6 or 8 digits, found {0}")]
    Length(usize),
    #[error("insurer number may contain only digits 0-9 (position {0})")]
    NotADigit(usize),
    #[error("insurer number check digit is {found}, expected {expected}")]
    CheckDigit { found: u8, expected: u8 },
}

impl InsurerNumber {
    /// Parses a 6- or 8-digit insurer number, accepting full-width digits (０-９) as
    /// holders' systems send them, and verifies its check digit.
    pub fn parse(text: &str) -> Result<Self, InsurerNumberError> {
        let mut digits = [0u8; 8];
        let mut len = 0usize;
        for (pos, ch) in text.chars().enumerate() {
            let d = match ch {
                '0'..='9' => ch as u32 - '0' as u32,
                '０'..='９' => ch as u32 - '０' as u32,
                _ => return Err(InsurerNumberError::NotADigit(pos)),
            };
            if len == 8 {
                return Err(InsurerNumberError::Length(text.chars().count()));
            }
            digits[len] = d as u8;
            len += 1;
        }
        if len != 6 && len != 8 {
            return Err(InsurerNumberError::Length(len));
        }
        let expected = check_digit(&digits[..len - 1]);
        let found = digits[len - 1];
        if expected != found {
            return Err(InsurerNumberError::CheckDigit { found, expected });
        }
        Ok(Self { digits, len: len as u8 })
    }

    /// Builds an 8-digit number from 法別番号, 都道府県番号 and the insurer's own 3-digit
    /// number, appending the check digit.
    pub fn from_parts(houbetsu: u8, prefecture: u8, insurer: u16) -> Self {
        assert!(houbetsu < 100 && prefecture < 100 && insurer < 1000);
        let mut digits = [0u8; 8];
        let body =
            [houbetsu / 10, houbetsu % 10, prefecture / 10, prefecture % 10, (insurer / 100) as u8, (insurer / 10 % 10) as u8, (insurer % 10) as u8];
        digits[..7].copy_from_slice(&body);
        digits[7] = check_digit(&body);
        Self { digits, len: 8 }
    }

    /// Builds a 6-digit 国保 number from its first five digits, appending the check digit.
    pub fn kokuho(body: u32) -> Self {
        assert!(body < 100_000);
        let mut digits = [0u8; 8];
        let mut b = body;
        for i in (0..5).rev() {
            digits[i] = (b % 10) as u8;
            b /= 10;
        }
        digits[5] = check_digit(&digits[..5]);
        Self { digits, len: 6 }
    }

    pub fn digits(&self) -> &[u8] {
        &self.digits[..self.len as usize]
    }

    /// 都道府県番号 of an 8-digit number (digits 3-4); `None` for 国保 numbers.
    pub fn prefecture(&self) -> Option<u8> {
        (self.len == 8).then(|| self.digits[2] * 10 + self.digits[3])
    }
}

/// The check digit over `body` (digits, most significant first).
pub fn check_digit(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let p = d as u32 * if i % 2 == 0 { 2 } else { 1 };
            p / 10 + p % 10
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

impl fmt::Display for InsurerNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in self.digits() {
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for InsurerNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InsurerNumber({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(input: &str, expected: Result<&str, InsurerNumberError>) {
        let got = InsurerNumber::parse(input).map(|n| n.to_string());
        assert_eq!(got, expected.map(str::to_string), "input {input:?}");
    }

    #[test]
    fn parses_published_vectors_and_rejects_bad_ones() {
        check("33120015", Ok("33120015"));
        check("54016027", Ok("54016027"));
        check("３３１２００１５", Ok("33120015"));
        check("33120016", Err(InsurerNumberError::CheckDigit { found: 6, expected: 5 }));
        check("3312001", Err(InsurerNumberError::Length(7)));
        check("331200150", Err(InsurerNumberError::Length(9)));
        check("3312-015", Err(InsurerNumberError::NotADigit(4)));
        check("", Err(InsurerNumberError::Length(0)));
    }

    proptest! {
        #[test]
        fn built_numbers_parse_back(h in 0u8..100, p in 1u8..48, i in 0u16..1000) {
            let n = InsurerNumber::from_parts(h, p, i);
            prop_assert_eq!(InsurerNumber::parse(&n.to_string()), Ok(n));
            prop_assert_eq!(n.prefecture(), Some(p));
        }

        #[test]
        fn a_changed_digit_is_caught(h in 0u8..100, p in 1u8..48, i in 0u16..1000, pos in 0usize..8, delta in 1u8..10) {
            let n = InsurerNumber::from_parts(h, p, i);
            let mut s: Vec<u8> = n.to_string().into_bytes();
            s[pos] = b'0' + (s[pos] - b'0' + delta) % 10;
            prop_assert!(InsurerNumber::parse(std::str::from_utf8(&s).unwrap()).is_err());
        }

        #[test]
        fn kokuho_numbers_parse_back(b in 0u32..100_000) {
            let n = InsurerNumber::kokuho(b);
            prop_assert_eq!(InsurerNumber::parse(&n.to_string()), Ok(n));
        }
    }
}
