//! A synthetic person: who they are (sex, birth date after the age pyramid, name in kanji
//! and katakana, address with JIS codes and postal code, phones) and what happens to them
//! during the observation period (insurance from 保険者 to 保険者 with 記号・番号・枝番,
//! public aid (公費), marriage with a new surname, death).
//!
//! A person is a pure function of (seed, index). Twins and namesakes (同姓同名で生年月日も
//! 同じ people) are drawn by re-deriving an earlier person's identity, so they exist without
//! any state being kept between people.

use niji_core::InsurerNumber;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use time::Date;

use crate::calendar::{add_days, age_on, birthday, days_between, ymd};
use crate::random::{person_rng, Aspect};
use crate::tables::Name;
use crate::world::{InsurerKind, World};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sex {
    Male,
    Female,
}

impl Sex {
    pub(crate) fn index(self) -> usize {
        match self {
            Sex::Male => 0,
            Sex::Female => 1,
        }
    }
}

/// Why a person looks like someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdentityKind {
    Ordinary,
    /// Born the same day to the same family as the person at this index.
    TwinOf(u64),
    /// Same name, birth date and sex as the person at this index, by coincidence.
    NamesakeOf(u64),
}

/// Share of people who are the second of a pair of twins (about 1 birth in 100 is a twin
/// birth in Japan), and of people planted as namesakes of an earlier person: rare in life,
/// but the hard case linkage must survive, so there are always some.
const TWIN_SHARE: f64 = 0.01;
const NAMESAKE_SHARE: f64 = 0.0015;
/// How far back a namesake's original may be.
const NAMESAKE_REACH: u64 = 64;

#[derive(Debug, Clone)]
pub(crate) struct Address {
    pub prefecture: u8,
    pub municipality: usize,
    pub town: Option<usize>,
    /// 丁目 (0 where the town has none: then `ban` is a 番地).
    pub chome: u8,
    pub ban: u16,
    pub go: u16,
}

#[derive(Debug, Clone)]
pub(crate) struct Identity<'t> {
    pub kind: IdentityKind,
    pub sex: Sex,
    pub birth: Date,
    pub surname: &'t Name,
    /// The surname as registered when it uses a 異体字 (渡邊 for 渡辺).
    pub registered_surname: Option<String>,
    pub given: &'t Name,
    pub address: Address,
    pub home_phone: Option<String>,
    pub mobile: Option<String>,
}

impl Identity<'_> {
    /// The surname as the person writes it (with their 異体字).
    pub(crate) fn surname_kanji(&self) -> &str {
        self.registered_surname.as_deref().unwrap_or(&self.surname.kanji)
    }
}

/// One period of health insurance (資格).
#[derive(Debug, Clone)]
pub(crate) struct Coverage {
    pub from: Date,
    pub insurer: usize,
    pub kigo: String,
    pub bango: String,
    /// Two-digit 枝番; 後期高齢者 numbers have none.
    pub edaban: Option<u8>,
    /// 被扶養者 / 家族 rather than 本人 or 世帯主.
    pub dependent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AidKind {
    /// 生活保護 (法別 12): the only payer, no health insurance.
    Welfare,
    /// 子ども医療費助成 (a prefecture's own scheme, 法別 88 here) until the 15th birthday.
    Child,
    /// 特定医療費 (指定難病, 法別 54).
    IntractableDisease,
}

/// 公費負担医療.
#[derive(Debug, Clone)]
pub(crate) struct PublicAid {
    pub kind: AidKind,
    /// 公費負担者番号 (8 digits with check digit).
    pub payer: InsurerNumber,
    /// 公費受給者番号 (7 digits with check digit).
    pub recipient: String,
    pub from: Date,
    pub until: Option<Date>,
}

#[derive(Debug, Clone)]
pub(crate) struct Marriage<'t> {
    pub date: Date,
    pub surname: &'t Name,
}

#[derive(Debug, Clone)]
pub(crate) struct Person<'t> {
    pub index: u64,
    pub identity: Identity<'t>,
    pub coverages: Vec<Coverage>,
    pub aid: Option<PublicAid>,
    pub marriage: Option<Marriage<'t>>,
    pub death: Option<Date>,
    /// Insurance changes inside the observation period.
    pub insurance_changes: u32,
}

impl<'t> Person<'t> {
    pub(crate) fn draw(world: &World<'t>, index: u64) -> Self {
        let identity = draw_identity(world, index);
        let mut life_rng = person_rng(world.seed, index, Aspect::Life);
        let mut person = draw_life(world, index, identity, &mut life_rng);
        if let IdentityKind::TwinOf(source) = person.identity.kind {
            // Children share their parents' insurance card number; twins differ by 枝番.
            let twin = Person::draw_ordinary(world, source);
            if age_on(person.identity.birth, world.period.start) < 20 {
                if let (Some(mine), Some(theirs)) = (person.coverages.first_mut(), twin.coverages.first()) {
                    if theirs.edaban.is_some() && world.insurers.all[theirs.insurer].kind != InsurerKind::Koki {
                        mine.insurer = theirs.insurer;
                        mine.kigo = theirs.kigo.clone();
                        mine.bango = theirs.bango.clone();
                        mine.from = theirs.from;
                        mine.edaban = theirs.edaban.map(|e| if e >= 98 { 2 } else { e + 1 });
                        mine.dependent = true;
                    }
                }
            }
        }
        person
    }

    /// A person drawn as if ordinary (the original of a twin or namesake).
    fn draw_ordinary(world: &World<'t>, index: u64) -> Self {
        let identity = draw_base_identity(world, &mut identity_rng_after_kind(world, index));
        draw_life(world, index, identity, &mut person_rng(world.seed, index, Aspect::Life))
    }

    /// Last day records can be made: death or the end of the period.
    pub(crate) fn last_day(&self, period_end: Date) -> Date {
        self.death.map_or(period_end, |d| d.min(period_end))
    }

    pub(crate) fn coverage_on(&self, date: Date) -> Option<&Coverage> {
        let i = self.coverages.partition_point(|c| c.from <= date);
        if i == 0 {
            self.coverages.first().filter(|c| c.from <= date)
        } else {
            self.coverages.get(i - 1)
        }
    }

    pub(crate) fn aid_on(&self, date: Date) -> Option<&PublicAid> {
        self.aid.as_ref().filter(|a| a.from <= date && a.until.is_none_or(|u| date < u))
    }

    /// Surname (kanji, katakana) in use on `date`.
    pub(crate) fn surname_on(&self, date: Date) -> (&str, &str) {
        match &self.marriage {
            Some(m) if date >= m.date => (&m.surname.kanji, &m.surname.katakana),
            _ => (self.identity.surname_kanji(), &self.identity.surname.katakana),
        }
    }

    pub(crate) fn age_on(&self, date: Date) -> u32 {
        age_on(self.identity.birth, date)
    }
}

/// The person's identity generator, past the two draws that decide their kind (so that
/// an original is re-drawn exactly as it was).
fn identity_rng_after_kind(world: &World<'_>, index: u64) -> ChaCha8Rng {
    let mut rng = person_rng(world.seed, index, Aspect::Identity);
    let _kind_roll: f64 = rng.gen();
    let _reach: u64 = rng.gen();
    rng
}

/// Whether the person at `index` is an ordinary person (not a twin or namesake), read from
/// the first draw of their identity stream.
fn is_ordinary(world: &World<'_>, index: u64) -> bool {
    let roll: f64 = person_rng(world.seed, index, Aspect::Identity).gen();
    roll >= TWIN_SHARE + NAMESAKE_SHARE
}

fn draw_identity<'t>(world: &World<'t>, index: u64) -> Identity<'t> {
    let mut rng = person_rng(world.seed, index, Aspect::Identity);
    let roll: f64 = rng.gen();
    let reach: u64 = rng.gen();
    let mut kind = IdentityKind::Ordinary;
    if roll < TWIN_SHARE {
        if index > 0 && is_ordinary(world, index - 1) {
            kind = IdentityKind::TwinOf(index - 1);
        }
    } else if roll < TWIN_SHARE + NAMESAKE_SHARE {
        let back = 1 + reach % NAMESAKE_REACH;
        if index >= back && is_ordinary(world, index - back) {
            kind = IdentityKind::NamesakeOf(index - back);
        }
    }
    let mut identity = draw_base_identity(world, &mut rng);
    identity.kind = kind;
    match kind {
        IdentityKind::Ordinary => {}
        IdentityKind::TwinOf(source) => {
            let twin = draw_base_identity(world, &mut identity_rng_after_kind(world, source));
            identity.birth = twin.birth;
            identity.surname = twin.surname;
            identity.registered_surname = twin.registered_surname;
            identity.address = twin.address;
            identity.home_phone = twin.home_phone;
            // Two in three twin pairs are of the same sex.
            identity.sex = if rng.gen_bool(0.65) {
                twin.sex
            } else if twin.sex == Sex::Male {
                Sex::Female
            } else {
                Sex::Male
            };
            identity.given = draw_given(world, identity.sex, &mut rng);
            if identity.given.kanji == twin.given.kanji {
                identity.given = draw_given(world, identity.sex, &mut rng);
            }
        }
        IdentityKind::NamesakeOf(source) => {
            let other = draw_base_identity(world, &mut identity_rng_after_kind(world, source));
            identity.birth = other.birth;
            identity.sex = other.sex;
            identity.surname = other.surname;
            identity.registered_surname = other.registered_surname;
            identity.given = other.given;
        }
    }
    identity
}

fn draw_given<'t>(world: &World<'t>, sex: Sex, rng: &mut ChaCha8Rng) -> &'t Name {
    let t = world.tables;
    match sex {
        Sex::Male => &t.given_names_male[world.samplers.given_male.sample(rng)],
        Sex::Female => &t.given_names_female[world.samplers.given_female.sample(rng)],
    }
}

/// Share of people whose surname could be written with a 異体字 who register it that way.
const ITAIJI_SHARE: f64 = 0.3;

fn draw_base_identity<'t>(world: &World<'t>, rng: &mut ChaCha8Rng) -> Identity<'t> {
    let t = world.tables;
    let s = &world.samplers;
    // Age band after the pyramid, sex after the band's sex ratio, then a day in the year.
    let band = &t.age_pyramid[s.age_bands.sample(rng)];
    let male_share = if band.male + band.female > 0.0 { band.male / (band.male + band.female) } else { 0.5 };
    let sex = if rng.gen_bool(male_share.clamp(0.0, 1.0)) { Sex::Male } else { Sex::Female };
    let age = rng.gen_range(band.age_from..=band.age_to);
    let birth_year = world.period.start_year - age as i32 - 1;
    let year_days = days_between(ymd(birth_year, 1, 1), ymd(birth_year + 1, 1, 1));
    let birth = add_days(ymd(birth_year, 1, 1), rng.gen_range(0..year_days));

    let surname = &t.surnames[s.surnames.sample(rng)];
    let given = draw_given(world, sex, rng);
    let itaiji_roll: f64 = rng.gen();
    let itaiji_pick: usize = rng.gen();
    let registered_surname = if itaiji_roll < ITAIJI_SHARE {
        s.itaiji
            .iter()
            .find(|(standard, _)| surname.kanji.contains(standard.as_str()))
            .map(|(standard, variants)| surname.kanji.replacen(standard.as_str(), &variants[itaiji_pick % variants.len()], 1))
    } else {
        None
    };

    let pref_row = s.prefectures.sample(rng);
    let prefecture = t.prefectures[pref_row].code;
    let municipality = match &s.municipalities[prefecture as usize] {
        Some((idx, w)) => idx[w.sample(rng)],
        None => 0,
    };
    let (lo, hi) = s.towns[municipality];
    let town = (hi > lo).then(|| s.town_order[rng.gen_range(lo..hi) as usize] as usize);
    let chome = if rng.gen_bool(0.75) { rng.gen_range(1..=6) } else { 0 };
    let ban = if chome > 0 { rng.gen_range(1..=30) } else { rng.gen_range(1..=2500) };
    let go = rng.gen_range(1..=25);
    let address = Address { prefecture, municipality, town, chome, ban, go };

    let age_f = age as f64;
    let home_phone = rng.gen_bool((0.25 + age_f / 120.0).min(0.9)).then(|| landline(rng, prefecture, true));
    let mobile = rng
        .gen_bool(if age < 10 {
            0.05
        } else if age < 80 {
            0.95
        } else {
            0.6
        })
        .then(|| mobile(rng));

    Identity { kind: IdentityKind::Ordinary, sex, birth, surname, registered_surname, given, address, home_phone, mobile }
}

/// 市外局番 of each prefecture's main city, by prefecture code.
const AREA_CODES: [&str; 48] = [
    "", "011", "017", "019", "022", "018", "023", "024", "029", "028", "027", "048", "043", "03", "045", "025", "076", "076", "0776", "055", "026",
    "058", "054", "052", "059", "077", "075", "06", "078", "0742", "073", "0857", "0852", "086", "082", "083", "088", "087", "089", "088", "092",
    "0952", "095", "096", "097", "0985", "099", "098",
];

/// A fixed-line number with the prefecture's area code: 10 digits in all.
pub(crate) fn landline(rng: &mut impl Rng, prefecture: u8, hyphens: bool) -> String {
    let area = AREA_CODES.get(prefecture as usize).copied().filter(|a| !a.is_empty()).unwrap_or("03");
    let local_len = 6 - area.len();
    let local = rng.gen_range(2 * 10u32.pow(local_len as u32 - 1)..10u32.pow(local_len as u32));
    let line = rng.gen_range(0..10_000);
    let sep = if hyphens { "-" } else { "" };
    format!("{area}{sep}{local:0w$}{sep}{line:04}", w = local_len)
}

/// A mobile number: 090, 080 or 070.
pub(crate) fn mobile(rng: &mut impl Rng) -> String {
    let prefix = ["090", "090", "080", "080", "070"][rng.gen_range(0..5)];
    format!("{prefix}-{:04}-{:04}", rng.gen_range(1000..10_000), rng.gen_range(0..10_000))
}

/// Share of people (by age) who change insurer in a year: job changes, retirement, moving.
const YEARLY_INSURANCE_CHANGE: f64 = 0.11;

fn draw_life<'t>(world: &World<'t>, index: u64, identity: Identity<'t>, rng: &mut ChaCha8Rng) -> Person<'t> {
    let period = world.period;
    let birth = identity.birth;
    let age0 = age_on(birth, period.start);
    let sex = identity.sex;

    // 公費: 生活保護 replaces insurance altogether.
    let welfare = rng.gen_bool(if age0 >= 65 { 0.03 } else { 0.012 });
    let mut aid = None;
    let pref = identity.address.prefecture;
    if welfare {
        let from = add_days(period.start, -rng.gen_range(30..3650));
        aid = Some(public_aid(AidKind::Welfare, 12, pref, rng, from.max(birth), None));
    } else if age0 < 15 && rng.gen_bool(0.85) {
        aid = Some(public_aid(AidKind::Child, 88, pref, rng, birth, Some(birthday(birth, 15))));
    } else if rng.gen_bool(0.005) {
        let from = add_days(period.start, -rng.gen_range(30..3650));
        aid = Some(public_aid(AidKind::IntractableDisease, 54, pref, rng, from.max(birth), None));
    }

    let mut coverages = Vec::new();
    let mut marriage = None;
    let mut death = None;
    let mut changes = 0;
    if !welfare {
        let earliest = add_days(period.start, -20 * 365).max(birth);
        let from =
            if earliest >= period.start { earliest } else { add_days(earliest, rng.gen_range(0..days_between(earliest, period.start).max(1))) };
        // The card held on the first day of the period; 後期高齢者 cards date from the 75th birthday.
        let from = if age0 >= 75 { from.max(birthday(birth, 75)) } else { from };
        coverages.push(enrol(world, rng, &identity, age0, from, false));
    }
    // Year by year: death, 75th birthday, marriage, insurer changes.
    for year in period.start.year()..=period.end.year() {
        let year_start = ymd(year, 1, 1);
        let year_days = days_between(year_start, ymd(year + 1, 1, 1));
        let age = age_on(birth, year_start);
        let q = mortality(age, sex);
        if death.is_none() && rng.gen_bool(q) {
            death = Some(add_days(year_start, rng.gen_range(0..year_days)));
        }
        if welfare {
            continue;
        }
        let mut events: Vec<(Date, u8)> = Vec::new();
        if age < 75 && age + 1 >= 75 {
            events.push((birthday(birth, 75), 0));
        }
        if sex == Sex::Female && (22..=42).contains(&age) && marriage.is_none() && rng.gen_bool(0.03) {
            events.push((add_days(year_start, rng.gen_range(0..year_days)), 1));
        }
        if rng.gen_bool(YEARLY_INSURANCE_CHANGE) {
            events.push((add_days(year_start, rng.gen_range(0..year_days)), 2));
        }
        events.sort();
        for (date, event) in events {
            if death.is_some_and(|d| date >= d) || date > period.end {
                continue;
            }
            let age = age_on(birth, date);
            let last_kind = world.insurers.all[coverages.last().expect("insured").insurer].kind;
            match event {
                0 => coverages.push(enrol(world, rng, &identity, 75, date, false)),
                1 => {
                    let surname = loop {
                        let s = &world.tables.surnames[world.samplers.surnames.sample(rng)];
                        if s.kanji != identity.surname.kanji || world.tables.surnames.len() == 1 {
                            break s;
                        }
                    };
                    marriage = Some(Marriage { date, surname });
                    coverages.push(enrol(world, rng, &identity, age, date, true));
                }
                _ if last_kind == InsurerKind::Koki && age >= 75 => continue,
                _ => coverages.push(enrol(world, rng, &identity, age, date, false)),
            }
            changes += 1;
        }
    }
    Person { index, identity, coverages, aid, marriage, death, insurance_changes: changes }
}

/// Yearly probability of dying at `age` (a Gompertz curve near Japan's life table: about
/// 0.1% at 40, 4% at 80 for men; women's rates lower).
pub(crate) fn mortality(age: u32, sex: Sex) -> f64 {
    let q = match age {
        0 => 0.0018,
        1..=14 => 0.0001,
        _ => (-10.6 + 0.094 * age as f64).exp(),
    };
    let q = if sex == Sex::Female { q * 0.55 } else { q };
    q.min(0.6)
}

fn public_aid(kind: AidKind, houbetsu: u8, prefecture: u8, rng: &mut ChaCha8Rng, from: Date, until: Option<Date>) -> PublicAid {
    let payer = InsurerNumber::from_parts(houbetsu, prefecture, rng.gen_range(1..200));
    let body: Vec<u8> = (0..6).map(|_| rng.gen_range(0..10u8)).collect();
    let check = niji_core::insurer::check_digit(&body);
    let mut recipient: String = body.iter().map(|d| (b'0' + d) as char).collect();
    recipient.push((b'0' + check) as char);
    PublicAid { kind, payer, recipient, from, until }
}

/// Enrols a person with a new insurer on `date`: 後期高齢者 from 75, otherwise 協会けんぽ,
/// a 健保組合 or 共済, or the municipality's 国保, by age. `as_spouse` makes them a
/// dependent (marriage).
fn enrol(world: &World<'_>, rng: &mut ChaCha8Rng, identity: &Identity<'_>, age: u32, from: Date, as_spouse: bool) -> Coverage {
    let ins = &world.insurers;
    let pref = identity.address.prefecture;
    if age >= 75 {
        return Coverage {
            from,
            insurer: ins.koki(pref),
            kigo: String::new(),
            bango: format!("{:08}", rng.gen_range(1..100_000_000u32)),
            edaban: None,
            dependent: false,
        };
    }
    let female = identity.sex == Sex::Female;
    let (kyokai, employer) = if age < 65 { (0.40, 0.32) } else { (0.12, 0.14) };
    let roll: f64 = rng.gen();
    let insurer = if roll < kyokai {
        ins.kyokai(pref)
    } else if roll < kyokai + employer {
        ins.employer(rng, pref)
    } else {
        ins.kokuho(identity.address.municipality)
    };
    let kind = ins.all[insurer].kind;
    let dependent = as_spouse
        || match age {
            0..=19 => true,
            20..=22 => rng.gen_bool(0.5),
            _ => rng.gen_bool(if female { 0.3 } else { 0.04 }),
        };
    let edaban = if !dependent {
        0
    } else if age < 20 {
        rng.gen_range(2..=5)
    } else {
        1
    };
    let (kigo, bango) = match kind {
        InsurerKind::Kyokai => (format!("{:08}", rng.gen_range(1_000_000..100_000_000u32)), rng.gen_range(1..200_000u32).to_string()),
        InsurerKind::Kumiai => (rng.gen_range(1..10_000u32).to_string(), rng.gen_range(1..1_000_000u32).to_string()),
        InsurerKind::Kyosai => (
            format!("{:02}{}{:04}", rng.gen_range(1..100), (b'A' + rng.gen_range(0..26)) as char, rng.gen_range(0..10_000)),
            rng.gen_range(1..1_000_000u32).to_string(),
        ),
        _ => {
            let muni = &world.tables.municipalities[identity.address.municipality].name;
            let kigo = if rng.gen_bool(0.3) {
                format!("{}{}", muni.chars().next().unwrap_or('国'), rng.gen_range(1..100))
            } else {
                rng.gen_range(1..1000u32).to_string()
            };
            (kigo, format!("{:07}", rng.gen_range(1..10_000_000u32)))
        }
    };
    Coverage { from, insurer, kigo, bango, edaban: Some(edaban), dependent }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_have_ten_or_eleven_digits() {
        let mut rng = person_rng(1, 1, Aspect::Fhir);
        for pref in 1..=47 {
            let p = landline(&mut rng, pref, true);
            assert_eq!(p.chars().filter(|c| c.is_ascii_digit()).count(), 10, "{p}");
            assert!(p.starts_with('0'));
        }
        let m = mobile(&mut rng);
        assert_eq!(m.len(), 13);
        assert!(["090", "080", "070"].contains(&&m[..3]));
    }

    #[test]
    fn mortality_rises_with_age() {
        assert!(mortality(40, Sex::Male) < 0.002);
        assert!((0.03..0.06).contains(&mortality(80, Sex::Male)));
        assert!(mortality(80, Sex::Female) < mortality(80, Sex::Male));
    }
}
