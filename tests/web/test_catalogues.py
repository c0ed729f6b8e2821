"""The client's catalogues and static files, checked without a browser."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from audio_rooms.signalling.outbound import error_catalogue

WEB = Path(__file__).resolve().parents[2] / "audio_rooms" / "web"

# The server's stable error codes, from its error classes; each needs a human sentence.
ERROR_CODES = sorted(error_catalogue())
PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

CLOSE_REASONS = ["not_authenticated", "not_allowed_in", "room_not_found", "replaced",
                 "room_ended", "removed", "banned", "account_banned"]
ROLES = ["host", "moderator", "speaker", "listener"]


def catalogue(locale: str) -> dict[str, str]:
    return json.loads((WEB / "i18n" / f"{locale}.json").read_text(encoding="utf-8"))


def base_keys(cat: dict[str, str]) -> set[str]:
    """Keys with plural suffixes folded, since Persian needs only the `other` form."""
    return {re.sub(r"\.(zero|one|two|few|many|other)$", "", k) for k in cat}


def sources() -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for p in WEB.rglob("*.js")}


def test_both_catalogues_have_the_same_keys() -> None:
    assert base_keys(catalogue("fa")) == base_keys(catalogue("en"))


def test_every_error_code_and_close_reason_has_a_sentence() -> None:
    for locale in ("fa", "en"):
        keys = base_keys(catalogue(locale))
        missing = [c for c in ERROR_CODES if f"error.{c}" not in keys]
        missing += [r for r in CLOSE_REASONS if f"closed.{r}" not in keys]
        missing += [r for r in ROLES if f"role.{r}" not in keys]
        missing += [f"notice.you_are_{r}" for r in ROLES if f"notice.you_are_{r}" not in keys]
        missing += [f"notice.role_{r}" for r in ROLES if f"notice.role_{r}" not in keys]
        assert not missing, f"{locale}: {missing}"


def test_every_error_code_is_documented_with_its_status() -> None:
    rows = [line for line in PROTOCOL.read_text(encoding="utf-8").splitlines()
            if line.startswith("| `")]
    documented: dict[str, str] = {}
    for row in rows:
        names, _, rest = row[2:].partition(" | ")
        status = rest.partition(" | ")[0]
        for code in re.findall(r"`([a-z_]+)`", names):
            documented.setdefault(code, status)
    missing = [code for code in ERROR_CODES if code not in documented]
    assert missing == [], f"codes missing from the Errors table of docs/protocol.md: {missing}"
    wrong = [code for code, status in error_catalogue().items()
             if str(status) not in documented[code]]
    assert wrong == [], f"HTTP status in docs/protocol.md differs from the code: {wrong}"


def test_every_literal_key_used_in_the_code_exists() -> None:
    keys = base_keys(catalogue("en"))
    used = set()
    for text in sources().values():
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z_.]+)["']""", text))
    assert used, "no t() calls found: has the helper been renamed?"
    assert sorted(used - keys) == []


def test_persian_strings_are_persian() -> None:
    fa = catalogue("fa")
    words = {k: re.sub(r"\{\w+\}", "", v) for k, v in fa.items()}  # placeholders are Latin
    latin_only = [k for k, v in words.items()
                  if re.search(r"[A-Za-z]", v) and not re.search(r"[\u0600-\u06FF]", v)
                  and k != "lang.name_en"]
    assert latin_only == []
    assert not any(re.search(r"[0-9]", v) for v in fa.values()), "use Persian digits in fa.json"


# Addresses a vendored file names in text (its copyright line, an error message), not fetches.
OPUS_DECODER = "vendor/opus-decoder/opus-decoder.min.js"
VENDORED_TEXT_URLS = {
    OPUS_DECODER: ("https://github.com/eshaz/wasm-audio-decoders",
                   "https://github.com/eshaz/simple-yenc"),
}
OPUS_DECODER_SHA256 = "68a08546a23df78bc837808af82af5a7550899ed5e17e281826dc2b3320dccdf"


def test_nothing_is_loaded_from_another_origin() -> None:
    """The client must work on a network with no outside access."""
    offenders = []
    for path in [*WEB.rglob("*.js"), *WEB.rglob("*.css"), *WEB.rglob("*.html")]:
        text = path.read_text(encoding="utf-8")
        text = text.replace("http://www.w3.org/2000/svg", "")  # a namespace name, not a fetch
        for named in VENDORED_TEXT_URLS.get(path.relative_to(WEB).as_posix(), ()):
            text = text.replace(named, "")
        for url in re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[a-z]{2,}[^\s\"')]*", text):
            offenders.append(f"{path.relative_to(WEB)}: {url}")
    assert offenders == []


def test_vendored_font_keeps_its_licence() -> None:
    font_dir = WEB / "vendor" / "vazirmatn"
    assert (font_dir / "OFL.txt").read_text().startswith("Copyright")
    for weight in ("Regular", "Bold"):
        assert (font_dir / f"Vazirmatn-{weight}.woff2").read_bytes()[:4] == b"wOF2"


def test_css_uses_logical_properties_only() -> None:
    """Physical sides would need a mirror rule per direction; logical ones flip by themselves."""
    css = (WEB / "style.css").read_text(encoding="utf-8")
    physical = re.findall(
        r"^\s*((?:margin|padding|border)-(?:left|right)|left|right|text-align:\s*(?:left|right)"
        r"|float:\s*(?:left|right))\b", css, flags=re.MULTILINE)
    assert physical == []


def test_vendored_opus_decoder_is_the_npm_release_with_its_licence() -> None:
    """As `npm pack opus-decoder@0.7.12` ships it (vendor/opus-decoder/README.md)."""
    data = (WEB / OPUS_DECODER).read_bytes()
    assert hashlib.sha256(data).hexdigest() == OPUS_DECODER_SHA256
    assert b"fetch(" not in data  # the WebAssembly is inline: nothing more to download
    licence = (WEB / "vendor" / "opus-decoder" / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "Xiph.Org" in licence
