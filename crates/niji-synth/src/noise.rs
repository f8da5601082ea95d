//! How a person's identifying fields look in one holder's record: the holder's habits
//! ([`HolderStyle`]: separators, half-width kana, 異体字 kept or folded, address and phone
//! forms) plus slips in single records (a kana typo, a missing space). The truth keeps the
//! person's own form; every source record goes through here, so the same person differs
//! across holders and now and then within one.

use std::borrow::Cow;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use time::Date;

use crate::kana::{push_halfwidth, typo};
use crate::person::Person;
use crate::text::push_fullwidth;
use crate::world::{HolderStyle, World};

/// Share of records with a kana typing slip.
const KANA_TYPO_RATE: f64 = 0.02;
/// Share of records whose clerk used another separator than the system's habit.
const SEPARATOR_SLIP_RATE: f64 = 0.05;
/// Share of records of a 異体字-keeping holder that still fold the surname.
const ITAIJI_FOLD_RATE: f64 = 0.1;

/// A name as one record holds it (borrowed from the tables where unchanged).
#[derive(Debug, Clone)]
pub(crate) struct SourceName<'a> {
    pub family_kanji: Cow<'a, str>,
    pub given_kanji: &'a str,
    pub family_kana: Cow<'a, str>,
    pub given_kana: Cow<'a, str>,
    pub separator: &'static str,
    pub kana_separator: &'static str,
}

impl SourceName<'_> {
    pub(crate) fn kanji(&self) -> String {
        [&self.family_kanji, self.separator, self.given_kanji].concat()
    }

    pub(crate) fn kana(&self) -> String {
        [&self.family_kana, self.kana_separator, &self.given_kana].concat()
    }
}

/// The person's name as `style`'s holder records it on `date`.
pub(crate) fn source_name<'a>(person: &'a Person<'_>, date: Date, style: &HolderStyle, rng: &mut ChaCha8Rng) -> SourceName<'a> {
    let id = &person.identity;
    let (family_kanji, family_kana) = person.surname_on(date);
    // A holder that cannot or will not store 異体字 writes the common form.
    let fold = id.registered_surname.as_deref() == Some(family_kanji) && (!style.keeps_itaiji || rng.gen_bool(ITAIJI_FOLD_RATE));
    let family_kanji = if fold { id.surname.kanji.as_str() } else { family_kanji };
    let mut family_kana = Cow::Borrowed(family_kana);
    let mut given_kana = Cow::Borrowed(id.given.katakana.as_str());
    if rng.gen_bool(KANA_TYPO_RATE) {
        if rng.gen_bool(0.5) {
            if let Some(t) = typo(&family_kana, rng) {
                family_kana = Cow::Owned(t);
            }
        } else if let Some(t) = typo(&given_kana, rng) {
            given_kana = Cow::Owned(t);
        }
    }
    let mut separator = style.name_separator;
    if rng.gen_bool(SEPARATOR_SLIP_RATE) {
        separator = ["　", " ", ""][rng.gen_range(0..3)];
    }
    let (kana_separator, family_kana, given_kana) = if style.kana_halfwidth {
        let mut f = String::with_capacity(family_kana.len() * 2);
        push_halfwidth(&mut f, &family_kana);
        let mut g = String::with_capacity(given_kana.len() * 2);
        push_halfwidth(&mut g, &given_kana);
        (if separator.is_empty() { "" } else { " " }, Cow::Owned(f), Cow::Owned(g))
    } else {
        (separator, family_kana, given_kana)
    };
    SourceName { family_kanji: Cow::Borrowed(family_kanji), given_kanji: &id.given.kanji, family_kana, given_kana, separator, kana_separator }
}

/// An address as one holder writes it.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceAddress {
    pub text: String,
    pub prefecture: String,
    pub city: String,
    /// Town and block (町域 + 丁目・番・号).
    pub line: String,
    /// `123-4567`, or empty when the town is unknown.
    pub postal_code: String,
}

pub(crate) fn source_address(world: &World<'_>, person: &Person<'_>, style: &HolderStyle) -> SourceAddress {
    let a = &person.identity.address;
    let t = world.tables;
    let muni = &t.municipalities[a.municipality];
    let town = a.town.map(|i| &t.towns[i]);
    let mut block = String::new();
    match (a.chome, style.address_in_kanji) {
        (0, true) => block.push_str(&format!("{}番地{}", a.ban, a.go)),
        (0, false) => block.push_str(&format!("{}-{}", a.ban, a.go)),
        (c, true) => block.push_str(&format!("{c}丁目{}番{}号", a.ban, a.go)),
        (c, false) => block.push_str(&format!("{c}-{}-{}", a.ban, a.go)),
    }
    if style.digits_fullwidth {
        let mut buf = Vec::with_capacity(block.len() * 3);
        push_fullwidth(&mut buf, &block);
        block = String::from_utf8(buf).expect("utf-8");
    }
    let line = format!("{}{block}", town.map_or("", |t| t.name.as_str()));
    let prefecture = world.prefecture_name(a.prefecture).to_string();
    SourceAddress {
        text: format!("{prefecture}{}{line}", muni.name),
        prefecture,
        city: muni.name.clone(),
        line,
        postal_code: town.map_or_else(String::new, |t| format!("{}-{}", &t.postal_code[..3], &t.postal_code[3..])),
    }
}

/// The phone number a holder has on file: the home line if there is one (or the mobile),
/// written with or without hyphens.
pub(crate) fn source_phone(person: &Person<'_>, style: &HolderStyle, rng: &mut ChaCha8Rng) -> Option<String> {
    let id = &person.identity;
    let phone = match (&id.home_phone, &id.mobile) {
        (Some(h), Some(m)) => Some(if rng.gen_bool(0.5) { h } else { m }),
        (Some(h), None) => Some(h),
        (None, Some(m)) => Some(m),
        (None, None) => None,
    }?;
    Some(if style.phone_hyphens { phone.clone() } else { phone.replace('-', "") })
}
