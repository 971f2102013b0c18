"""Pronunciations for words outside pocketsphinx's dictionary, from espeak-ng's IPA mapped to the CMU phone set.

Forced alignment needs a pronunciation for every reference word; names and terms such as "ctenophores" or "temujin"
are not in CMUdict. espeak-ng (Debian package `espeak-ng`) spells them in IPA, phoneme by phoneme (`--sep=_`); each IPA
phoneme maps to one or two of the 39 CMU phones that pocketsphinx's en-us model knows.
"""

import subprocess

from .speech import require_binary

# Longest units first when a phoneme must be split further.
IPA_TO_CMU = {
    "aɪə": "AY ER", "aʊ": "AW", "aɪ": "AY", "eɪ": "EY", "oʊ": "OW", "əʊ": "OW", "ɔɪ": "OY", "ɪə": "IH R",
    "eə": "EH R", "ʊə": "UH R", "tʃ": "CH", "dʒ": "JH", "ɑ": "AA", "ɒ": "AA", "æ": "AE", "ʌ": "AH", "ə": "AH",
    "ɐ": "AH", "ɔ": "AO", "o": "OW", "ɛ": "EH", "e": "EH", "ɜ": "ER", "ɚ": "ER", "ɝ": "ER", "ɪ": "IH", "ᵻ": "IH",
    "i": "IY", "ʊ": "UH", "u": "UW", "a": "AA", "y": "UW", "ø": "ER", "œ": "ER", "b": "B", "d": "D", "ð": "DH",
    "f": "F", "ɡ": "G", "g": "G", "h": "HH", "k": "K", "l": "L", "m": "M", "n": "N", "ŋ": "NG", "p": "P", "ɹ": "R",
    "r": "R", "ɾ": "T", "s": "S", "ʃ": "SH", "t": "T", "θ": "TH", "v": "V", "w": "W", "j": "Y", "z": "Z", "ʒ": "ZH",
    "ʔ": "T", "x": "K", "ç": "HH", "ɬ": "L", "ɫ": "L", "c": "K", "ɲ": "N Y", "ʎ": "L Y", "β": "B", "ɣ": "G",
}
_IGNORED = set("ˈˌːˑ̩̃.‿-")
_UNITS = sorted(IPA_TO_CMU, key=len, reverse=True)


def ipa_to_cmu(ipa: str) -> list[str]:
    """CMU phones of one espeak-ng IPA transcription whose phonemes are separated by '_'."""
    phones = []
    for phoneme in ipa.replace(" ", "_").split("_"):
        rest = "".join(c for c in phoneme if c not in _IGNORED)
        while rest:
            unit = next((u for u in _UNITS if rest.startswith(u)), None)
            if unit is None:
                rest = rest[1:]  # a symbol with no CMU counterpart (rare diacritics): skip it
                continue
            phones.extend(IPA_TO_CMU[unit].split())
            rest = rest[len(unit) :]
    return phones


def espeak_pronunciations(words: list[str]) -> dict[str, str]:
    """{word: "CMU PHONES"} for each word, from one espeak-ng call (one word per line)."""
    if not words:
        return {}
    espeak = require_binary("espeak-ng", "espeak-ng")
    result = subprocess.run(
        [espeak, "-q", "--ipa", "--sep=_", "-v", "en-us"],
        input="\n".join(words) + "\n", capture_output=True, text=True, check=True,
    )
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if len(lines) != len(words):
        # espeak-ng merged or split lines: fall back to one call per word.
        lines = [
            subprocess.run([espeak, "-q", "--ipa", "--sep=_", "-v", "en-us", w], capture_output=True, text=True,
                           check=True).stdout.strip()
            for w in words
        ]
    pronunciations = {}
    for word, ipa in zip(words, lines):
        phones = ipa_to_cmu(ipa)
        if phones:
            pronunciations[word] = " ".join(phones)
    return pronunciations
