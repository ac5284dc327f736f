"""Plate-format rules: acceptance per region, decoder classes, look-alike fixing."""

from __future__ import annotations

import pytest

from edge_ocr.config import FormatsConfig
from edge_ocr.read.formats import CONFUSIONS, DIGITS, LETTERS, PROVINCES, REGIONS, FormatRules, allowed_chars
from edge_ocr.stages import format_rules

# Labels of the real dev data (../shared/data/plates-real-dev), copied here so the test runs without
# it: the shortest, longest and odd shapes of each region (all-letter and all-digit vanity plates,
# two-row European plates, US labels with a letter O) and some common ones.
REAL_LABELS = {
    "us": ["548", "248", "2368", "E074", "BB63", "W17K", "NFFE", "AAAC", "EECW", "874J", "79XA", "GUTSY", "ASUKA",
           "URSAE", "BRRRR", "SAMPL", "78188", "09144", "QUILLS", "UBUNTU", "HAVFUN", "BRECHT", "FATCHX", "ATGL04",
           "DRIFTER", "PRIVACY", "CTHULHU", "TENKARA", "KHAAANN", "ANYTEXT", "2494264", "9185914", "NEILDMND",
           "0UTFR0NT", "BIGCHEESE", "1TARHEELS", "355OCT", "NOX218", "VO820", "0JW695", "094NKC", "JSD7911",
           "015NF6", "CDL4461", "PAG5219", "ODC9387", "NYM7544"],
    "eu": ["M5XSX", "W2IZI", "W3BLL", "FR1SFK", "FRMSE2", "IL3UYB", "3S9787", "KMBORAK", "BA302OZ", "VW4X4WP",
           "GGT1959", "RK3OOAG", "RK115AN", "PBEM1570", "ZH543756", "BORHD115", "256BWR95", "3598YQ42", "WCI02888"],
    "br": ["EVO9274", "ATL3386", "AHN8146", "ABO9991", "AZJ6991", "GWT2180"],
    "cn": ["皖AS1Y03", "皖AA892A", "皖ASZ180", "皖AW798E", "川X90621", "沪AMS087", "沪C21F13"],
}
# text a camera sees next to plates: state names, slogans, frame words, signs, pieces of plates
NOT_PLATES = ["TEXAS", "ONLY", "0NLY", "EXIT", "STATE", "1AT", "RK", "MRK", "T1", "FLORIDA", "PARKING",
              "DEALER", "SUNSHINE", "AB", "X", "20140512", "201405120", "0000000000", "2014", "1998"]


@pytest.mark.parametrize(
    ("region", "text", "ok"),
    [
        ("br", "AZJ6991", True),  # old grey plate
        ("br", "ABC1D23", True),  # Mercosul
        ("br", "ABCD123", False),
        ("br", "AZJ69911", False),  # too long
        ("us", "7ABC123", True),
        ("us", "ABC1234", True),
        ("us", "B0B123", True),
        ("us", "BOB123", False),  # US labels write O as 0
        ("us", "CATS4U", True),  # vanity plates pass the generic rule
        ("us", "GUTSY", True),  # ... also all letters
        ("us", "TEXAS", False),  # ... but not the words printed around plates
        ("us", "548", True),  # three characters: digits only
        ("us", "1AT", False),
        ("us", "RK", False),
        ("us", "ABCDEFGHIJ", False),  # 10 characters
        ("us", "BIGCHEESE", True),  # 9-character vanity plates exist
        ("us", "1TARHEELS", True),
        ("us", "20140512", False),  # 8 digits: a sticker's serial or date, not a plate
        ("us", "0UTFR0NT", True),  # 8 with letters (O written 0) is a vanity plate
        ("eu", "RK115AN", True),
        ("eu", "M5XSX", True),
        ("eu", "AB1", False),
        ("eu", "AB12", False),  # generic European plates have 5-8 characters
        ("eu", "STATE", False),  # ... a letter and a digit, unless personalised (7-8 letters)
        ("eu", "KMBORAK", True),
        ("eu", "AB123456C", False),
        ("cn", "皖A9J079", True),
        ("cn", "粤BD12345", True),  # new-energy, small car
        ("cn", "粤B12345D", True),  # new-energy, large vehicle
        ("cn", "粤Z1234港", True),
        ("cn", "皖AI2345", False),  # no I in the serial
        ("cn", "A皖12345", False),
        ("cn", "ABC1234", False),
    ],
)
def test_matches_per_region(region: str, text: str, ok: bool) -> None:
    assert FormatRules([region]).matches(text) is ok


@pytest.mark.parametrize("region", REGIONS)
def test_every_real_label_passes_its_own_regions_rules(region: str) -> None:
    rules = FormatRules([region])
    assert [t for t in REAL_LABELS[region] if rules.normalize(t) is None] == []


def test_every_real_label_passes_with_all_regions() -> None:
    rules = FormatRules()
    assert [t for texts in REAL_LABELS.values() for t in texts if rules.normalize(t) is None] == []


@pytest.mark.parametrize("text", NOT_PLATES)
def test_sign_words_and_plate_pieces_are_rejected_with_all_regions(text: str) -> None:
    rules = FormatRules()
    assert not rules.matches(text) and rules.normalize(text) is None


def test_four_digit_plates_that_are_not_sticker_years_pass() -> None:
    rules = FormatRules(["us"])
    assert rules.matches("2368") and rules.matches("8862") and rules.matches("2250")
    assert not rules.matches("2019") and not rules.matches("1987")


def test_all_regions_accept_any_of_them_and_name_the_region() -> None:
    rules = FormatRules()
    assert rules.matches("AZJ6991") and rules.matches("皖A9J079") and rules.matches("RK115AN")
    assert not rules.matches("") and not rules.matches("AB-123")
    assert rules.region_of("皖A9J079") == "cn"
    assert FormatRules(["br", "us"]).region_of("ABC1D23") == "br"  # strict before generic
    assert FormatRules(["us", "br"]).region_of("ABC1234") == "us"  # a tie, no plate shape: config order
    assert rules.region_of("!!") is None


# the demo's plates, with the width/height of the boxes the localiser finds around them in
# samples/demo.mp4 (RK115AN 4.45, PJC4903 3.10, 7ABC123 2.20) and of the standard plates
@pytest.mark.parametrize(
    ("text", "aspect", "region"),
    [
        ("RK115AN", 4.45, "eu"),  # LLDDDLL: only a European layout (a US generic one too, less specific)
        ("RK115AN", 2.0, "eu"),  # a strict format beats a generic one whatever the shape
        ("RK115AN", None, "eu"),
        ("7ABC123", 2.2, "us"),  # DLLLDDD: only a US layout
        ("7ABC123", 4.45, "us"),
        ("PJC4903", 3.10, "br"),  # LLLDDDD: US, EU and Brazil alike; the shape decides
        ("PJC4903", 4.45, "eu"),
        ("PJC4903", 2.2, "us"),
        ("PJC4903", 520 / 110, "eu"),
        ("PJC4903", 400 / 130, "br"),
        ("PJC4903", None, "us"),  # no shape: the first region listed
        ("PJC4903", 0.0, "us"),  # a degenerate box is no evidence
        ("PJC4903", float("nan"), "us"),
        ("BS47040", 4.45, "eu"),  # LLDDDDD: US and EU
        ("BS47040", 3.10, "eu"),  # Brazil has no such layout, EU is the nearer shape
        ("BS47040", 2.0, "us"),
    ],
)
def test_region_is_the_most_specific_format_and_ties_go_to_the_plate_shape(
    text: str, aspect: float | None, region: str
) -> None:
    assert FormatRules().region_of(text, aspect) == region


def test_region_ties_without_a_shape_follow_the_configured_order() -> None:
    assert FormatRules(["br", "eu", "us"]).region_of("PJC4903") == "br"
    assert FormatRules(["eu", "us"]).region_of("PJC4903") == "eu"
    # Brazil not enabled: the nearer of US 2:1 and EU 4.7:1 (they meet at 3.1:1)
    assert FormatRules(["us", "eu"]).region_of("PJC4903", 2.8) == "us"
    assert FormatRules(["us", "eu"]).region_of("PJC4903", 3.4) == "eu"


def test_region_prefers_a_format_with_fewer_alternatives() -> None:
    # an extra pattern with literals accepts fewer strings than Brazil's LLLDDDD
    rules = FormatRules(["br"], extra=["PJCDDDD"])
    assert rules.region_of("PJC4903", 3.1) == "extra"
    assert rules.region_of("ABC4903", 3.1) == "br"
    # the same layout as a region's: the region keeps the tie, even when a shape is given
    same = FormatRules(["br"], extra=["LLLDDDD"])
    assert same.region_of("PJC4903") == "br" and same.region_of("PJC4903", 2.0) == "br"
    assert FormatRules(["br"]).formats[0].log_size > rules.formats[-1].log_size


def test_allowed_chars_per_position() -> None:
    sets = allowed_chars("LLLDLDD")
    assert len(sets) == 7
    assert sets[0] == set(LETTERS) and sets[3] == set(DIGITS) and sets[4] == set(LETTERS)
    assert allowed_chars("AB1", None)[0] == set(LETTERS) | set(DIGITS) and allowed_chars("AB1")[1] == {"B"}
    cn = allowed_chars("HLAAAAA", "cn")
    assert cn[0] == set(PROVINCES) and "O" in cn[1]
    assert "I" not in cn[2] and "O" not in cn[2] and "7" in cn[2]
    us = allowed_chars("LLLDDDD", "us")
    assert "0" in us[0] and "O" not in us[0] and "O" not in allowed_chars("A", "us")[0]
    assert allowed_chars("D1D")[1] == {"1"}  # literal
    with pytest.raises(ValueError):
        allowed_chars("")
    with pytest.raises(ValueError):
        allowed_chars("LLL", "mars")


@pytest.mark.parametrize(
    ("regions", "text", "fixed"),
    [
        (["br"], "AZJ699I", "AZJ6991"),  # I in a digit place
        (["br"], "A2J6991", "AZJ6991"),  # 2 in a letter place
        (["br"], "8ZJ699I", "BZJ6991"),  # two at once
        (["br"], "8ZJ6S91", "8ZJ6S91"),  # BZJ6591 (old) or BZJ6S91 (Mercosul)? ambiguous: untouched
        (["br"], "AZJ6991", "AZJ6991"),  # fits already: untouched
        (["br"], "ABC1B23", "ABC1B23"),  # a valid Mercosul plate: the B stays
        (["br"], "ABCI234", "ABC1234"),  # old ABC1234 (a 1 read as I) over Mercosul ABC1Z34 (also 2 as Z)
        (["br"], "AXJ69Q1", "AXJ69Q1"),  # Q has no look-alike: no format fits, untouched
        (["us"], "OAB1234", "0AB1234"),  # US writes O as 0
        (["us"], "CO0L", "C00L"),  # ... also on plates no strict rule covers
        (["us", "eu"], "CO0L5", "CO0L5"),  # an EU rule takes the O as it is
        (["us", "eu"], "CO0L", "C00L"),  # no EU plate has 4 characters
        (["eu"], "RKO99AN", "RK099AN"),  # LLDDDLL: digits in the middle
        (["us", "br"], "ABC12S4", "ABC1254"),  # ABC1254 (us/br old: S for 5) over Mercosul ABC1Z54 (2 as Z)
        (["us", "eu", "br", "cn"], "OUM731I", "OUM7311"),  # br/eu I for 1, over Californian 0UM7311 (also O as 0)
        (["us", "eu", "br", "cn"], "9185914", "9185914"),  # only a letter for a digit would fit: untouched
        (["us", "eu"], "8ZJ6S91", "8ZJ6S91"),  # BZJ6591 or 8ZJG591: both turn a digit into a letter
        (["us"], "ABC12S4", "ABC1254"),
        (["cn"], "皖AO1234", "皖A01234"),  # no O in a Chinese serial
        (["cn"], "皖0A1234", "皖OA1234"),  # the city letter is a letter
        (["eu"], "RK1I5AN", "RK115AN"),  # RK115AN (FR/IT: I for 1) over RK11SAN (UK-like: also 5 as S)
        (["eu"], "G6G6G", "G6G6G"),  # only a generic rule fits 5 characters: generic rules never fix
    ],
)
def test_fix_only_where_unambiguous(regions: list[str], text: str, fixed: str) -> None:
    assert FormatRules(regions).fix(text) == fixed


def test_confusions_are_symmetric_pairs() -> None:
    for a, b in (("O", "0"), ("I", "1"), ("B", "8"), ("S", "5"), ("Z", "2"), ("G", "6")):
        assert CONFUSIONS[a] == b and CONFUSIONS[b] == a
    assert "Q" not in CONFUSIONS


def test_normalize_fixes_or_rejects() -> None:
    rules = FormatRules(["br"])
    assert rules.normalize("AZJ699I") == "AZJ6991"
    assert rules.normalize("AZJ69") is None
    assert rules.normalize("QQQQQQQ") is None


def test_disabled_accepts_everything_and_fixes_nothing() -> None:
    rules = format_rules(FormatsConfig(enabled=False, regions=["br"]))
    assert rules.matches("anything at all")
    assert rules.fix("AZJ699I") == "AZJ699I"
    assert rules.normalize("x") == "x"
    assert rules.decoder_patterns() == []
    assert rules.region_of("AZJ6991") is None


def test_extra_patterns_from_config() -> None:
    rules = format_rules(FormatsConfig(regions=["br"], extra=["DDDLLL", "AAAA"]))
    assert rules.matches("123ABC") and rules.region_of("123ABC") == "extra"
    assert rules.fix("12BABC") == "128ABC"  # extra patterns with classes are strict
    assert rules.matches("ZZZZ") and rules.fix("Z2Z2") == "Z2Z2"  # all-A extras only accept


def test_decoder_patterns() -> None:
    br = FormatRules(["br"]).decoder_patterns()
    assert len(br) == 2 and all(len(p) == 7 for p in br)
    assert br[0][3] == set(DIGITS) and br[1][4] == set(LETTERS)
    us_all = FormatRules(["us"]).decoder_patterns()
    us_strict = FormatRules(["us"]).decoder_patterns(strict_only=True)
    assert len(us_strict) < len(us_all)
    assert all("O" not in s for p in us_all for s in p)
    # the same classes are given once: an extra LLLDDDD is br's old format
    assert len(FormatRules(["br"], extra=["LLLDDDD"]).decoder_patterns()) == 2


# one current serial of each country the ``generic`` region lists (formats.py: _GENERIC_LAYOUTS)
GENERIC_PLATES = {
    "Ontario": "ABCD123", "Quebec": "ABC123", "Mexico": "ABC123D", "Chile": "BBBB12", "Peru": "A1B234",
    "Bolivia": "1234ABC", "New South Wales": "AB12CD", "Victoria": "1AB2CD", "Queensland": "123ABC",
    "India": "MH12AB1234", "India (one series letter)": "MH12A1234", "Indonesia": "B1234XYZ",
    "Malaysia": "WXY1234", "Vietnam": "51F12345", "Singapore": "SBA1234A", "Turkey": "34ABC12",
    "Hong Kong": "AB1234", "Nigeria": "ABC123DE", "Kenya": "KAA123A", "Gauteng": "AB12CDGP",
    "UK": "AB12CDE", "Argentina": "AB123CD", "Russia": "A123BC77", "Russia (3-digit region)": "A123BC777", "Ukraine": "AA1234BB", "Switzerland": "ZH123456",
}


def test_generic_region_reads_latin_plates_of_other_countries_and_only_when_asked() -> None:
    generic = FormatRules(["generic"])
    assert [c for c, t in GENERIC_PLATES.items() if generic.region_of(t) != "generic"] == []
    # the four regions alone refuse a layout longer than their generic lengths: generic adds it
    assert not FormatRules().matches("MH12AB1234") and FormatRules(["us", "generic"]).matches("MH12AB1234")
    assert "generic" not in FormatRules().regions and FormatsConfig().regions == ["us", "eu", "br", "cn"]
    assert FormatsConfig(regions=["generic"]).regions == ["generic"]
    # words, pieces and sticker strings stay out; a short plate needs a letter and a digit
    assert [t for t in NOT_PLATES if generic.matches(t)] == []
    assert generic.matches("K9X2") and not generic.matches("12345678") and not generic.matches("ABCDEFG")
    assert generic.charset() == LETTERS | DIGITS
    # a layout a named region also holds goes to that region when the plate's shape says so
    both = FormatRules(["generic", "eu"])
    assert both.region_of("AB123CD", aspect=4.7) == "eu"
    with pytest.raises(ValueError, match="known: us, eu, br, cn, generic"):
        FormatRules(["xx"])


def test_a_sure_reading_that_already_fits_a_format_keeps_its_characters() -> None:
    # a real US validation plate: all digits, no serial layout, so LDDDDDD "mended" it to I365847
    sure = [0.99] * 7
    gated = FormatRules(["us"], mend_below=0.7)
    assert gated.normalize("1365847", sure) == "1365847"
    assert gated.normalize("1365847", [0.55] + [0.99] * 6) == "I365847"  # the model was unsure of it
    assert gated.normalize("1365847") == "I365847"  # no confidences (fused text): as before the gate
    assert FormatRules(["us"]).normalize("1365847", sure) == "I365847"  # mend_below 1: no gate
    # a reading that fits no accepted format is mended however sure: it would be refused otherwise
    assert FormatRules(["br"], mend_below=0.7).normalize("PJC49B3", sure) == "PJC4983"
    assert FormatRules(["br"], mend_below=0.7).normalize("PJC49B3", sure[:3]) == "PJC4983"  # wrong length: ignored
