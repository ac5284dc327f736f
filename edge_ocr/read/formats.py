"""Plate-format rules: which readings are possible plates, per region.

A format is a pattern of character classes, one letter per plate position:

- ``L`` a letter, ``D`` a digit, ``A`` either, ``H`` a Chinese province character;
- internal to the ``cn`` rules: ``E`` the new-energy letter (D or F) and ``X`` a special suffix
  (警 学 挂 港 澳 使 领);
- any other character stands for itself (config ``formats.extra`` patterns can only use A-Z0-9
  literals other than the class letters).

Classes differ per region where the plates differ: US labels write the letter O as the digit 0
(many states print one glyph for both), so in ``us`` rules O is never valid and 0 is valid where
a letter is; Chinese serials never use I or O. Each region has *strict* formats (the common
serial layouts) and, where plates vary too much to list (US vanity plates, European countries),
*generic* ones (``A`` repeated) that accept a reading but are too loose to correct it.

Generic formats are kept to what plates look like, so that the other text a camera sees near a
plate (state names, slogans, dealer frames, road signs, half a plate) is not taken for one. The
bounds come from the real dev labels (1,770 crops and 210 photos, four regions), all of which pass
their own region's rules:

- ``us``: 4-9 letters and digits, or 3 digits (the shortest US labels: 548, 248). All-letter
  vanity plates exist (GUTSY, NFFE, DRIFTER), so no rule of shape tells TEXAS from a plate: the
  generic formats of every region refuse the words in ``SIGN_WORDS`` instead, and
  sticker years (four digits starting 19 or 20).
- ``eu``: 5-8 characters with at least one letter and one digit, or 7-8 letters (personalised
  plates such as KMBORAK).

Confusion fixing (O/0, I/1, B/8, S/5, Z/2, G/6) swaps a character for its look-alike only where
the strict formats leave a single possible reading; see ``FormatRules.fix``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

DIGITS = frozenset("0123456789")
LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
PROVINCES = frozenset("京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼")
SPECIALS = frozenset("警学挂港澳使领")

REGIONS = ("us", "eu", "br", "cn")
"""The regions accepted by default (no ``formats.regions``, ``FormatRules()``)."""
KNOWN_REGIONS = (*REGIONS, "generic")
"""Every region a config may name: ``generic`` only when asked for (see ``_GENERIC_LAYOUTS``)."""

# character classes shared by every region (and by the config's extra patterns)
_BASE_CLASSES: dict[str, frozenset[str]] = {
    "L": LETTERS,
    "D": DIGITS,
    "A": LETTERS | DIGITS,
    "H": PROVINCES,
}

_REGION_CLASSES: dict[str, dict[str, frozenset[str]]] = {
    # one glyph for O and 0, written 0: 0 may stand where a letter is, O never appears
    # V (only in ``needs``): a letter proper, not the 0 that US plates print for O
    "us": {"L": (LETTERS - {"O"}) | {"0"}, "A": (LETTERS - {"O"}) | DIGITS, "V": LETTERS - {"O"}},
    "eu": {},
    "br": {},
    # serials skip I and O (too like 1 and 0); the city letter keeps the full alphabet
    "cn": {"A": (LETTERS - {"I", "O"}) | DIGITS, "E": frozenset("DF"), "X": SPECIALS},
    "generic": {},
}

# ``generic``: plates of Latin letters and digits from countries outside the four regions. The
# strict layouts are current serials of countries with many cars and Latin-script plates, from
# every continent, where one or two layouts cover a country (docs/plate-formats.md). Plates that vary too much to list (provinces of their own, vanity
# plates) are left to the generic formats: 4-8 letters and digits with at least one of each,
# which refuse words (signs, slogans) and the all-digit strings stickers carry.
_GENERIC_LAYOUTS = (
    # Americas: Canada (Ontario LLLLDDD, Quebec and others LLLDDD/DLLDDD), Mexico (LLLDDDL, LLLDDDD),
    # Chile (LLLLDD), Peru (LDLDDD), Colombia (LLLDDD), Paraguay (LLLLDDD), Bolivia (DDDDLLL),
    # Argentina (Mercosur LLDDDLL, older LLLDDD), Uruguay (LLLDDDD)
    "LLLLDDD", "LLLDDD", "DLLDDD", "LLLDDDL", "LLLDDDD", "LLLLDD", "LDLDDD", "DDDDLLL", "LLDDDLL",
    # Oceania: Australia (NSW LLDDLL, Victoria DLLDLL, Queensland DDDLLL), New Zealand (LLLDDD)
    "LLDDLL", "DLLDLL", "DDDLLL",
    # Asia: India (LLDDLLDDDD, LLDDLDDDD), Indonesia (LDDDDLL, LDDDDLLL, LLDDDDLL), Malaysia and the
    # Philippines (LLLDDDD, LLDDDD), Vietnam (DDLDDDDD, DDLDDDD), Singapore (LLLDDDDL), Turkey
    # (DDLDDDD, DDLLDDD, DDLLDDDD, DDLLLDD, DDLLLDDD), Hong Kong (LLDDDD); not Israel's 7-8 digits,
    # which are also what stickers and dates read off a plate's corners look like
    "LLDDLLDDDD", "LLDDLDDDD", "LDDDDLL", "LDDDDLLL", "LLDDDDLL", "LLDDDD", "DDLDDDDD", "DDLDDDD",
    "LLLDDDDL", "DDLLDDD", "DDLLDDDD", "DDLLLDD", "DDLLLDDD",
    # Africa: Nigeria (LLLDDDLL), Kenya (LLLDDDL), South Africa's Gauteng (LLDDLLGP)
    "LLLDDDLL", "LLDDLLGP",
    # Europe outside the EU layouts: the UK (LLDDLLL), Russia and Ukraine in the Latin look-alikes
    # of their letters (LDDDLLDD, LDDDLLDDD; LLDDDDLL), Switzerland (LLDDDDDD, LLDDDDD)
    "LLDDLLL", "LDDDLLDD", "LDDDLLDDD", "LLDDDDDD", "LLDDDDD",
)

# (pattern, strict, needs) per region. Strict patterns are the common serial layouts; generic
# ones only accept, and only readings holding at least one character of each class in ``needs``.
# Sources: /work/shared/PLATES.md and the label shapes of the real dev crops (see the docstring).
_REGION_PATTERNS: dict[str, list[tuple[str, bool, str]]] = {
    "us": [(p, True, "") for p in ("LLLDDDD", "DLLLDDD", "LLLDDD", "DDDLLL", "LLDDDDD", "DLLDDD", "LLDDDD",
                                    "LDDDDDD")]
    # vanity plates run to 9 characters (BIGCHEESE), but no US plate is 8 or 9 digits: those are
    # sticker serials and dates (20140512) read off the plate's corners
    + [("DDD", False, "")] + [("A" * n, False, "V" if n >= 8 else "") for n in range(4, 10)],
    "eu": [(p, True, "") for p in ("LLDDDLL", "DDDDLLL", "LLDDDDD", "LLLDDDD", "LLDDLLL", "DLDDDDD")]
    + [("A" * n, False, "LD") for n in range(5, 9)] + [("L" * n, False, "") for n in (7, 8)],
    "br": [("LLLDDDD", True, ""), ("LLLDLDD", True, "")],  # old grey plates; Mercosul
    "cn": [("HLAAAAA", True, ""), ("HLEADDDD", True, ""), ("HLDDDDDE", True, ""), ("HLAAAAX", True, "")],
    "generic": [(p, True, "") for p in dict.fromkeys(_GENERIC_LAYOUTS)]
    + [("A" * n, False, "LD") for n in range(4, 9)],
}

# Width/height of each region's standard plate (mm): US 12 x 6 in, EU 520 x 110, Brazil (grey
# and Mercosul) 400 x 130, China (blue) 440 x 140. Where identical layouts tie (LLLDDDD is a US,
# EU and old Brazilian serial), the plate's shape is the evidence left; see ``region_of``.
PLATE_ASPECT: dict[str, float] = {"us": 305 / 152, "eu": 520 / 110, "br": 400 / 130, "cn": 440 / 140}

_SIGN_TEXT = """
    ALABAMA ALASKA ARIZONA ARKANSAS COLORADO DELAWARE FLORIDA GEORGIA HAWAII IDAHO ILLINOIS INDIANA
    IOWA KANSAS KENTUCKY LOUISIANA MAINE MARYLAND MICHIGAN MINNESOTA MISSOURI MONTANA NEBRASKA NEVADA
    NEWJERSEY NEWMEXICO NEWYORK OHIO OKLAHOMA OREGON TENNESSEE TEXAS UTAH VERMONT VIRGINIA WISCONSIN
    WYOMING CAROLINA DAKOTA HAMPSHIRE ISLAND JERSEY MEXICO YORK NORTH SOUTH WEST
    STATE COUNTY USA AMERICA AMERICAS PLATE LICENSE DEALER DEALERS MOTORS MOTOR AUTO AUTOS SALES
    TRUCKS CHEVROLET FORD TOYOTA HONDA NISSAN DODGE JEEP
    SUNSHINE EMPIRE GARDEN LONESTAR LONE STAR LAND GREAT LAKES DAIRYLAND POTATOES FAMOUS WILD
    WONDERFUL FREEDOM HEART DIXIE BEAUTIFUL GRAND CANYON
    STOP EXIT ONLY ENTER ENTRANCE YIELD PARKING PARK SPEED LIMIT ONEWAY WAY LEFT RIGHT LANE AHEAD
    SLOW SCHOOL TAXI POLICE FIRE DETOUR CLOSED OPEN PRIVATE VISITOR VISITORS RESERVED TOWAWAY
    CAUTION DANGER WARNING NOTICE EXPIRES
"""
SIGN_WORDS = frozenset(_SIGN_TEXT.split())
"""Words printed on plates or near them (state names, slogans, frame and dealer words, road signs)
that no generic format accepts: a vanity plate reading TEXAS is refused too, which is rarer than
the word on a plate. None of them is a label of the real dev data."""

# a registration sticker's year (2014) read off a plate's corner: no US dev label of four digits
# starts with 19 or 20, while stickers are on most US plates
_STICKER_YEAR = re.compile(r"(19|20)[0-9]{2}")

_PAIRS = (("O", "0"), ("I", "1"), ("B", "8"), ("S", "5"), ("Z", "2"), ("G", "6"))
CONFUSIONS: dict[str, str] = {**dict(_PAIRS), **{b: a for a, b in _PAIRS}}
"""Look-alike letter/digit pairs, both ways: ``CONFUSIONS["O"] == "0"``."""


@dataclass(frozen=True)
class PlateFormat:
    """One accepted layout: ``classes[i]`` holds the characters allowed at position ``i``."""

    region: str
    pattern: str
    classes: tuple[frozenset[str], ...]
    strict: bool
    needs: tuple[frozenset[str], ...] = ()  # each must occur at least once

    @property
    def log_size(self) -> float:
        """ln of how many strings this format accepts: smaller is more specific."""
        return sum(math.log(len(c)) for c in self.classes)

    def matches(self, text: str) -> bool:
        """True if ``text`` fits this format exactly; a generic format also refuses the words of
        ``SIGN_WORDS``, also as US labels spell them (0 for O: ``0NLY``)."""
        if len(text) != len(self.classes) or not all(c in cls for c, cls in zip(text, self.classes, strict=True)):
            return False
        if not all(any(c in need for c in text) for need in self.needs):
            return False
        return self.strict or (text.replace("0", "O") not in SIGN_WORDS and not _STICKER_YEAR.fullmatch(text))

    def fix(self, text: str, firm: Sequence[bool] = ()) -> str | None:
        """``text`` with look-alikes swapped where a character does not fit its position but its
        look-alike does; ``None`` if some position fits neither. ``firm[i]``: the character at
        ``i`` may not be swapped (the model was sure of it)."""
        if len(text) != len(self.classes):
            return None
        out = []
        for i, (c, cls) in enumerate(zip(text, self.classes, strict=True)):
            if c in cls:
                out.append(c)
            elif not (firm and firm[i]) and CONFUSIONS.get(c, "") in cls:
                out.append(CONFUSIONS[c])
            else:
                return None
        return "".join(out)


def allowed_chars(pattern: str, region: str | None = None) -> list[set[str]]:
    """Per-position allowed characters of a pattern, for a constrained CTC beam decoder.

    Args:
        pattern: class letters (L, D, A, H; E and X in ``cn``) and literal characters.
        region: one of ``KNOWN_REGIONS`` for its region-specific classes (e.g. no O in ``us``), or
            ``None`` for the plain classes.

    Returns:
        One set per position.

    Raises:
        ValueError: empty pattern or unknown region.
    """
    if not pattern:
        raise ValueError("empty pattern")
    classes = _classes(region)
    return [set(classes.get(c, frozenset(c))) for c in pattern]


def _classes(region: str | None) -> dict[str, frozenset[str]]:
    if region is None:
        return dict(_BASE_CLASSES)
    if region not in _REGION_CLASSES:
        raise ValueError(f"unknown region {region!r}; known: {', '.join(KNOWN_REGIONS)}")
    return {**_BASE_CLASSES, **_REGION_CLASSES[region]}


def _format(region: str | None, pattern: str, strict: bool, needs: str = "") -> PlateFormat:
    classes = _classes(region)
    return PlateFormat(region or "extra", pattern, tuple(frozenset(s) for s in allowed_chars(pattern, region)), strict,
                       tuple(classes[c] for c in needs))


class FormatRules:
    """The accepted plate formats of some regions, plus extra patterns.

    Args:
        regions: which of ``KNOWN_REGIONS`` to accept (default the four of ``REGIONS``).
        extra: more patterns (plain classes: L, D, A, H and literals), all strict unless made
            only of ``A``.
        enabled: ``False`` accepts every reading and fixes nothing.
        mend_below: where the reading as it is already fits an accepted format (a US vanity
            plate, another country's serial), a character the model read at least this sure
            of is not swapped for its look-alike to fit a strict layout (``formats.mend_below``;
            1 swaps any, as before the gate).

    Raises:
        ValueError: an unknown region or an empty pattern.
    """

    def __init__(self, regions: Iterable[str] = REGIONS, extra: Iterable[str] = (), enabled: bool = True,
                 mend_below: float = 1.0) -> None:
        self.enabled = enabled
        self.mend_below = mend_below
        self.regions = tuple(regions)
        formats = [_format(r, p, strict, needs) for r in self.regions for p, strict, needs in _region_patterns(r)]
        formats += [_format(None, p, set(p) != {"A"}) for p in extra]
        self.formats: tuple[PlateFormat, ...] = tuple(formats)

    def matches(self, text: str) -> bool:
        """True if ``text`` fits any accepted format (always True when disabled)."""
        if not self.enabled:
            return True
        return any(f.matches(text) for f in self.formats)

    def region_of(self, text: str, aspect: float | None = None) -> str | None:
        """The region of the most specific format ``text`` fits; ``None`` if none (and when
        disabled).

        Most specific: a strict format before a generic one, then the format that accepts the
        fewest strings (``PlateFormat.log_size``). Identical layouts of several regions tie (US,
        EU and Brazil all have LLLDDDD); the tie goes to the region whose standard plate shape
        (``PLATE_ASPECT``) is nearest to ``aspect``, the width/height of the plate box seen (a US
        plate is 2:1, a Brazilian 3.1:1, a European 4.7:1), and without ``aspect`` to the region
        listed first in ``formats.regions``. ``extra`` patterns lose such ties to regions.
        """
        if not self.enabled:
            return None
        fits = [f for f in self.formats if f.matches(text)]
        if not fits:
            return None

        def shape_gap(f: PlateFormat) -> float:
            if aspect is None or not aspect > 0 or not math.isfinite(aspect):
                return 0.0
            if f.region not in PLATE_ASPECT:
                return math.inf
            return abs(math.log(aspect / PLATE_ASPECT[f.region]))

        # min() keeps the first of equals, so config order settles what the shape does not; the
        # log size is rounded so that equal layouts compare equal whatever the summation order
        best = min(fits, key=lambda f: (not f.strict, round(f.log_size, 9), shape_gap(f)))
        return best.region

    def fix(self, text: str, confidences: Sequence[float] = ()) -> str:
        """Resolve letter/digit look-alikes where the formats make it unambiguous.

        ``confidences``: the model's per-character confidences of ``text``; if ``text`` already
        fits an accepted format, a character read with at least ``mend_below`` is not swapped
        (the strict layouts only settle what the model left open). Without them any may be.

        With ``us`` enabled, O becomes 0 first unless another region accepts the O as it is.
        A reading that already fits a strict format is returned as it is. Otherwise every strict
        format of its length is tried with look-alikes swapped where the character does not fit
        but its look-alike does; if exactly one corrected reading results, it is returned. Where
        several do, those that only turn letters into digits (a 1 read as I) count, fewest swaps
        first; if exactly one remains it is returned, else ``text`` unchanged. Generic formats
        (``A`` repeated) never correct: they allow every character everywhere.
        """
        if not self.enabled or not text:
            return text
        text = self._us_spelling(text)
        strict = [f for f in self.formats if f.strict and len(f.classes) == len(text)]
        if any(f.matches(text) for f in strict):
            return text
        gated = self.mend_below < 1.0 and len(confidences) == len(text) and self.matches(text)
        firm = [c >= self.mend_below for c in confidences] if gated else []
        fixed = {r for f in strict if (r := f.fix(text, firm)) is not None}
        if len(fixed) > 1:
            # several formats fit after swaps: a digit read as its look-alike letter (1 as I, 0
            # as O) is the usual slip, so corrections that only turn letters into digits win,
            # the fewest swaps first (an old Brazilian OUM731I is OUM7311, not 0UM7311)
            to_digits = {r: sum(a != b for a, b in zip(r, text, strict=True)) for r in fixed
                         if all(a == b or (b.isalpha() and a.isdigit()) for a, b in zip(r, text, strict=True))}
            if to_digits:
                fewest = min(to_digits.values())
                fixed = {r for r, n in to_digits.items() if n == fewest}
        if len(fixed) == 1:
            (result,) = fixed
            log.debug("format fix %s -> %s", text, result)
            return result
        return text

    def _us_spelling(self, text: str) -> str:
        """US labels write the letter O as the digit 0: not a guess between look-alikes but the
        spelling, so it applies wherever no other enabled region accepts the O as it is."""
        if "us" not in self.regions or "O" not in text:
            return text
        if any(f.region != "us" and f.matches(text) for f in self.formats):
            return text
        return text.replace("O", "0")

    def normalize(self, text: str, confidences: Sequence[float] = ()) -> str | None:
        """``fix(text, confidences)`` if that fits an accepted format, else ``None`` (reject the
        reading). Disabled rules return ``text`` unchanged."""
        if not self.enabled:
            return text
        result = self.fix(text, confidences)
        return result if self.matches(result) else None

    def charset(self) -> frozenset[str] | None:
        """Every character a plate of the enabled regions (or an extra pattern) can hold: what
        the decoder may emit (``Recognizer.recognize(..., allowed=...)``). ``None`` (no
        restriction) when disabled. Without ``cn`` no Hanzi can be read."""
        if not self.enabled:
            return None
        chars: set[str] = set()
        for f in self.formats:
            for c in f.classes:
                chars |= c
        if "us" in self.regions:
            chars.add("O")  # read as printed; the US spelling rule then writes it as 0
        return frozenset(chars)

    def decoder_patterns(self, strict_only: bool = False) -> list[list[set[str]]]:
        """Per-position allowed characters of every distinct format, for the constrained CTC
        beam decoder (``Recognizer.recognize(crops, patterns=...)``). Empty when disabled.

        Args:
            strict_only: leave out generic formats (fewer beams to run, but vanity and
                unlisted European plates can then not be read).
        """
        if not self.enabled:
            return []
        out: list[list[set[str]]] = []
        seen: set[tuple[frozenset[str], ...]] = set()
        for f in self.formats:
            if (strict_only and not f.strict) or f.classes in seen:
                continue
            seen.add(f.classes)
            out.append([set(c) for c in f.classes])
        return out


def _region_patterns(region: str) -> Sequence[tuple[str, bool, str]]:
    if region not in _REGION_PATTERNS:
        raise ValueError(f"unknown region {region!r}; known: {', '.join(KNOWN_REGIONS)}")
    return _REGION_PATTERNS[region]
