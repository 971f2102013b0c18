"""Text normalisation for speech: written text -> the words a reader says, each mapped to the characters it came from.

"In 1973, prices rose 45% to US$3.50" -> in nineteen seventy three prices rose forty five percent to three point
five dollars, and every spoken word keeps the character span of its written token, so an answer's character span
(SQuAD's `answer_start` + `text`) maps to the spoken words that say it. Numbers use num2words (years, ordinals,
decimals, decades); currencies, percentages, symbols, abbreviations and acronyms are expanded here.
"""

import re
import unicodedata
from dataclasses import dataclass

from num2words import num2words

_SCALES = r"(?:thousand|million|billion|trillion)"
_TOKEN = re.compile(
    r"""
    (?P<currency>(?:US|A|C|HK|NZ)?[$£€¥]\s?\d[\d,]*(?:\.\d+)?(?:\s?""" + _SCALES + r""")?)
  | (?P<percent>\d[\d,]*(?:\.\d+)?\s?%)
  | (?P<ordinal>\d+(?:st|nd|rd|th)\b)
  | (?P<decade>\d{2,3}0s\b)
  | (?P<time>\d{1,2}:\d{2}\b)
  | (?P<number>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)
  | (?P<dotted>(?:[A-Za-z]\.){2,})
  | (?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)
  | (?P<symbol>[&+=@°#%])
    """,
    re.VERBOSE,
)
_CURRENCY_NAMES = {"$": ("dollar", "dollars"), "£": ("pound", "pounds"), "€": ("euro", "euros"), "¥": ("yen", "yen")}
_SYMBOLS = {"&": "and", "+": "plus", "=": "equals", "@": "at", "°": "degrees", "#": "number", "%": "percent"}
_DOTTED = {"e.g.": "for example", "i.e.": "that is", "a.m.": "a m", "p.m.": "p m", "etc.": "et cetera"}
# Expanded only when written with a following period ("Dr. Who", not "dr").
_ABBREVIATIONS = {
    "mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint", "jr": "junior", "sr": "senior", "vs": "versus",
    "etc": "et cetera", "prof": "professor", "gen": "general", "gov": "governor", "mt": "mount", "ft": "fort",
    "approx": "approximately",
}
# Units said in full after a number ("12 km" -> twelve kilometers; "Ft. Worth" stays "fort").
_UNITS = {
    "km": "kilometers", "kg": "kilograms", "cm": "centimeters", "mm": "millimeters", "mph": "miles per hour",
    "ft": "feet", "mi": "miles", "lb": "pounds", "lbs": "pounds", "sq": "square", "kw": "kilowatts",
    "mw": "megawatts", "hp": "horsepower", "kmh": "kilometers per hour", "m": "meters",
}
_VOWELS = set("AEIOU")
# Pronunciation guides such as /ˈtɛnəfɔːr/: a reader does not say them.
_IPA_GUIDE = re.compile(r"/[^/\n]{1,60}/")
_IPA_LETTERS = set("ɑɐɒæɓʙβɔɕçɗɖðʤəɘɚɛɜɝɞɟʄɡɠɢʛɦɧħɥʜɨɪʝɭɬɫɮʟɱɯɰŋɳɲɴøɵɸθœɶʘɹɺɾɻʀʁɽʂʃʈʧʉʊʋⱱʌɣɤʍχʎʏʑʐʒʔʡʕʢǀǁǂǃˈˌːˑ")
_SENTENCE_END = re.compile(r"[.!?]")
_CLAUSE_BREAK = re.compile(r"[,;:()\u2013\u2014]")


@dataclass(frozen=True)
class SpokenWord:
    text: str  # lower-case letters and apostrophes, as said
    char_start: int  # the written token it came from: context[char_start:char_end]
    char_end: int


def _ascii_words(text: str) -> list[str]:
    """Lower-case ASCII words of a phrase ("Zürich's" -> ["zurich's"], "seventy-three" -> two words)."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower().replace("’", "'")
    return [w.strip("'") for w in re.split(r"[^a-z']+", plain) if w.strip("'")]


def _cardinal(number: str) -> str:
    number = number.replace(",", "")
    if "." in number:
        whole, fraction = number.split(".")
        return f"{num2words(int(whole or 0))} point {' '.join(num2words(int(d)) for d in fraction)}"
    return num2words(int(number))


def _number(number: str) -> str:
    plain = number.replace(",", "")
    if "," not in number and "." not in number and len(plain) == 4 and 1100 <= int(plain) <= 2099:
        return num2words(int(plain), to="year")
    return _cardinal(number)


def _pluralise_last(phrase: str) -> str:
    words = phrase.replace("-", " ").split()
    last = words[-1]
    words[-1] = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return " ".join(words)


def _expand(kind: str, token: str, following: str, after_number: bool = False) -> str:
    if kind == "currency":
        symbol = next(c for c in token if c in _CURRENCY_NAMES)
        amount = re.search(r"\d[\d,]*(?:\.\d+)?", token).group(0)
        scale = re.search(_SCALES, token)
        singular, plural = _CURRENCY_NAMES[symbol]
        name = singular if amount == "1" and not scale else plural
        return " ".join(filter(None, [_cardinal(amount), scale.group(0) if scale else "", name]))
    if kind == "percent":
        return _cardinal(token.rstrip("% ")) + " percent"
    if kind == "ordinal":
        return num2words(int(token[:-2]), to="ordinal")
    if kind == "decade":
        digits = token[:-1]
        return _pluralise_last(num2words(int(digits), to="year") if len(digits) == 4 else num2words(int(digits)))
    if kind == "time":
        hours, minutes = token.split(":")
        return num2words(int(hours)) + ("" if minutes == "00" else " " + _cardinal(minutes.lstrip("0") or "0"))
    if kind == "number":
        return _number(token)
    if kind == "dotted":
        lowered = token.lower()
        return _DOTTED.get(lowered, " ".join(lowered.replace(".", "")))
    if kind == "symbol":
        return _SYMBOLS[token]
    # A word.
    lowered = token.lower()
    if after_number and lowered in _UNITS:
        return _UNITS[lowered]
    if following.startswith(".") and lowered in _ABBREVIATIONS:
        return _ABBREVIATIONS[lowered]
    bare = re.sub(r"['’]s$", "", token)
    if len(bare) >= 2 and bare.isupper() and bare.isalpha() and (len(bare) <= 3 or not _VOWELS & set(bare)):
        # An acronym said letter by letter (BBC, NFL, HTML); NASA and OPEC have vowels and are said as words.
        letters = list(bare.lower())
        if bare != token:
            letters[-1] += "'s"
        return " ".join(letters)
    return token


def normalize(text: str) -> list[SpokenWord]:
    """The spoken words of `text`, each with the character span of the written token it came from."""
    guides = [m.span() for m in _IPA_GUIDE.finditer(text) if _IPA_LETTERS & set(m.group(0))]
    spoken, previous = [], None
    for match in _TOKEN.finditer(text):
        if any(a <= match.start() < b for a, b in guides):
            continue
        kind, end = match.lastgroup, match.end()
        after_number = previous is not None and previous.lastgroup == "number" and not text[
            previous.end() : match.start()].strip()
        phrase = _expand(kind, match.group(0), text[end : end + 1], after_number)
        previous = match
        if kind == "word" and not after_number and text[end : end + 1] == "." and match.group(0).lower() in _ABBREVIATIONS:
            end += 1  # "Dr." is one written token: its period is not a sentence end
        for word in _ascii_words(phrase):
            spoken.append(SpokenWord(word, match.start(), end))
    return spoken


def spoken_text(text: str, words: list[SpokenWord]) -> str:
    """The words joined for a speech synthesiser, with a period or comma where the written text pauses."""
    parts = []
    for i, word in enumerate(words):
        parts.append(word.text)
        next_start = words[i + 1].char_start if i + 1 < len(words) else len(text)
        if next_start != word.char_start:  # last word of its token: look at what separates it from the next
            gap = text[word.char_end : next_start]
            if _SENTENCE_END.search(gap) or i + 1 == len(words):
                parts[-1] += "."
            elif _CLAUSE_BREAK.search(gap):
                parts[-1] += ","
    return " ".join(parts)


def answer_word_span(words: list[SpokenWord], char_start: int, char_end: int) -> tuple[int, int] | None:
    """First and last spoken word whose written token overlaps context[char_start:char_end], or None."""
    inside = [i for i, w in enumerate(words) if w.char_start < char_end and w.char_end > char_start]
    return (inside[0], inside[-1]) if inside else None
