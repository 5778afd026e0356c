"""Masking of variable parts before Drain, and the canonical form of templates.

One compiled alternation finds the variable spans (numbers, IPs, hex, UUIDs, paths, URLs, booleans, ...) in a
single pass. The result is then put in the canonical template form of Khan et al. (ICSE'22, "Guidelines for
assessing the accuracy of log message template identification techniques"): a word glued to a variable is a
variable (``blk_<*>`` -> ``<*>``), dot-separated and directly adjacent variables are one variable, and so (rules
that can be switched, see :class:`CanonicalRules`) are comma-separated lists of variables and ``host:port``. The same
rules are applied to the templates Drain produces, so templates read the way the Loghub ground truth is written.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass

WILDCARD = "<*>"

# Path-like strings are bounded by these (the "path delimiters" of the guidelines).
_PD = r"\s,!;:=|\"'\[\](){}"
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*"
# (no .app/.dev/.int/.in/.it: they end Java package and class names too often)
_TLDS = ("com|net|org|edu|gov|mil|io|info|biz|local|lan|internal|corp|"
         "uk|de|fr|jp|cn|hk|kr|ru|br|au|ca|nl|ch|se|es|eu|us|tw|sg")
_VARIABLE_PATTERNS: tuple[str, ...] = (
    # date-times as one variable: ISO 8601, and "Sat Jun 18 02:08:10 2005" / "Jun 18 02:08:10 EDT 2005" styles
    r"(?<![A-Za-z0-9])\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?(?![A-Za-z0-9])",
    rf"(?<![A-Za-z0-9])(?:{_DAY},? +)?{_MONTH} +\d{{1,2}},? +\d\d:\d\d:\d\d(?:[.,]\d+)?(?: +[A-Z]{{3,4}})?(?: +\d{{4}})?"
    r"(?![A-Za-z0-9])",
    r"(?<![A-Za-z0-9:])\d\d:\d\d:\d\d(?:[.,]\d+)?(?![A-Za-z0-9:])",  # a time of day
    r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>]+",  # URL
    rf"(?<![^{_PD}])(?:/[^{_PD}/]+)+/?(?![^{_PD}])",  # absolute path (also /ip)
    rf"(?<![^{_PD}])(?:[A-Za-z]:)?(?:\\[^{_PD}\\]+){{2,}}\\?(?![^{_PD}])",  # windows path
    # host names: dotted labels ending in a common top-level domain, optionally with a port
    rf"(?<![\w.-])(?:[A-Za-z0-9-]+\.)+(?:{_TLDS})(?::\d+)?(?![\w.-])",
    r"(?<![A-Za-z0-9])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![A-Za-z0-9])",
    r"(?<![A-Za-z0-9])(?:[0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}(?![A-Za-z0-9])",  # MAC address
    r"(?<![A-Za-z0-9])0[xX][0-9a-fA-F]+(?![A-Za-z0-9])",  # 0x hex
    # hex id: 6+ hex digits with at least one digit and one letter a-f, or 8+ hex digits of any kind
    r"(?<![A-Za-z0-9])(?:(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{6,}|[0-9a-fA-F]{8,})(?![A-Za-z0-9])",
    r'(?<==")[^"]+(?=")',  # a quoted value of a key="value" pair
    # a size with its unit after a space is one value ("12.3 KB", "512 B")
    r"(?<![A-Za-z0-9.])\d+(?:\.\d+)? (?:[KMGTPE]i?B|B)(?![A-Za-z0-9])",
    r"(?<![A-Za-z0-9.])[-+]?\d+(?:\.\d+)*(?![A-Za-z0-9])",  # integers, decimals, dotted numbers (IPs, versions)
    # quantities with a unit (126MB, 16K, 250ms, 80x25) and versions (v1.0.2)
    r"(?<![A-Za-z0-9.])\d+(?:\.\d+)?(?:[kKMGTP]i?[Bb]?|[kKMGTP]bps|bytes?|ms|us|ns|sec|secs|s|min|mins|h|hrs|[kMG]?Hz|x\d+)"
    r"(?![A-Za-z0-9])",
    r"(?<![A-Za-z0-9.])[vV]\d+(?:\.\d+)+(?![A-Za-z0-9])",
    # booleans, null, and the user names the guidelines treat as variables
    r"(?<![A-Za-z0-9])(?i:true|false|null|root|admin)(?![A-Za-z0-9])",
)
VARIABLE_REGEX = re.compile("|".join(f"(?:{p})" for p in _VARIABLE_PATTERNS))

# Token delimiters of the guidelines: a piece between them that holds a variable and other characters is a variable.
_DELIMS = re.compile(r"([\s,!;:=|\"'\[\](){}.\-+@#$%&])")
_GLUED = re.compile(r"[^\s,!;:=|\"'\[\](){}.\-+@#$%&/]*<\*>[^\s,!;:=|\"'\[\](){}.\-+@#$%&/]*")
_DOTTED = re.compile(r"<\*>(?:\.<\*>)+")
_ADJACENT = re.compile(r"(?:<\*>){2,}")
_HOSTPORT = re.compile(r"<\*>:<\*>")
# a comma-separated list of variables without spaces ("10.0.0.1,10.0.0.2", "[0,0][1080,1920]" inside a token)
_LIST = re.compile(r"<\*>(?:,<\*>)+")


@dataclass(frozen=True)
class CanonicalRules:
    """The switchable rules of the canonical form (the fixed ones: glued pieces, ``<*>.<*>``, ``<*><*>``).

    Attributes:
        hostport: ``<*>:<*>`` is one variable (Loghub-2.0 style ``host:port``); False keeps the two, as the
            Loghub-2k corrected ground truth does (``client <*>:<*>``).
        lists: ``<*>,<*>,...`` (no spaces) is one variable: a field that holds a list of values keeps one template
            however many values it holds.
    """

    hostport: bool = True
    lists: bool = True

    def patterns(self) -> list[re.Pattern[str]]:
        """The rewrite patterns in the order :func:`canonical` applies them (each match becomes ``<*>``)."""
        out = [_GLUED, _DOTTED, _ADJACENT]
        if self.hostport:
            out.append(_HOSTPORT)
        if self.lists:
            out.append(_LIST)
        return out


DEFAULT_RULES = CanonicalRules()


def canonical(text: str, rules: CanonicalRules = DEFAULT_RULES) -> str:
    """Put a masked text or template in canonical form (idempotent).

    Rules: a piece glued to a variable without a delimiter is a variable (``blk_<*>``, ``<*>ms``);
    ``<*>.<*>`` and ``<*><*>`` collapse to ``<*>``, and so, where ``rules`` say, do ``<*>:<*>`` (host:port) and
    ``<*>,<*>`` (a list).
    """
    if WILDCARD not in text:
        return text
    text = _GLUED.sub(WILDCARD, text)
    text = _DOTTED.sub(WILDCARD, text)
    text = _ADJACENT.sub(WILDCARD, text)
    if rules.hostport and "<*>:<*>" in text:
        text = _HOSTPORT.sub(WILDCARD, text)
    if rules.lists and "<*>,<*>" in text:
        text = _LIST.sub(WILDCARD, text)
        if rules.hostport and "<*>:<*>" in text:  # "h:p,h:p" -> "<*>" needs both, in either order
            text = _LIST.sub(WILDCARD, _HOSTPORT.sub(WILDCARD, text))
    return text


# Digits -> "0": the masking patterns treat every digit alike, so the variable spans of a message are a function of
# this "shape" (same length, same positions). Shapes repeat far more than messages do, which is what the caches key on.
ZERO_DIGITS = str.maketrans("123456789", "000000000")
ZERO_DIGIT_BYTES = bytes.maketrans(b"123456789", b"000000000")  # bytes.translate is ~10x faster than str's


def shape_key(content: str) -> bytes:
    """A message's shape as a compact cache key (UTF-8 bytes, digits zeroed)."""
    return content.encode("utf-8", "surrogatepass").translate(ZERO_DIGIT_BYTES)


def variable_spans(shape: str) -> tuple[tuple[int, int], ...]:
    """(start, end) of every masked variable of a message (pass the message or its digit-zeroed shape)."""
    return tuple(m.span() for m in VARIABLE_REGEX.finditer(shape))


def apply_spans(content: str, spans: tuple[tuple[int, int], ...]) -> str:
    """``content`` with each span replaced by ``<*>`` (not yet canonical)."""
    if not spans:
        return content
    out: list[str] = []
    pos = 0
    for a, b in spans:
        out.append(content[pos:a])
        out.append(WILDCARD)
        pos = b
    out.append(content[pos:])
    return "".join(out)


class Masker:
    """Masks the variable parts of a message in one regex pass, with a bounded cache of canonical forms.

    Args:
        cache_size: Entries kept in the raw-masked -> canonical cache (cleared by halves when full).
        rules: The switchable canonical-form rules.
    """

    def __init__(self, cache_size: int = 100_000, rules: CanonicalRules = DEFAULT_RULES) -> None:
        self.cache_size = cache_size
        self.rules = rules
        self._cache: OrderedDict[str, str] = OrderedDict()

    def mask(self, content: str) -> str:
        """The canonical masked form of ``content`` (variables as ``<*>``)."""
        return self.canonical(apply_spans(content, variable_spans(content.translate(ZERO_DIGITS))))

    def canonical(self, raw: str) -> str:
        """:func:`canonical` with a bounded cache."""
        hit = self._cache.get(raw)
        if hit is not None:
            return hit
        out = canonical(raw, self.rules)
        if len(self._cache) >= self.cache_size:
            for _ in range(self.cache_size // 2):
                self._cache.popitem(last=False)
        self._cache[raw] = out
        return out


_PARAM_RE_CACHE: OrderedDict[str, re.Pattern[str] | None] = OrderedDict()
_PARAM_RE_MAX = 20_000


def template_regex(template: str) -> re.Pattern[str] | None:
    """A regex that matches the messages of ``template`` and captures its variables (cached; None if invalid)."""
    hit = _PARAM_RE_CACHE.get(template, False)
    if hit is not False:
        return hit  # type: ignore[return-value]
    parts = template.split(WILDCARD)
    body = "(.*?)".join(r"\s+".join(re.escape(w) for w in p.split(" ")) for p in parts)
    try:
        pat: re.Pattern[str] | None = re.compile(r"^\s*" + body + r"\s*$", re.DOTALL)
    except re.error:
        pat = None
    if len(_PARAM_RE_CACHE) >= _PARAM_RE_MAX:
        _PARAM_RE_CACHE.popitem(last=False)
    _PARAM_RE_CACHE[template] = pat
    return pat


def extract_params(template: str, content: str) -> list[str]:
    """The values of ``template``'s variables in ``content`` (empty when the template has none or does not fit)."""
    if WILDCARD not in template:
        return []
    pat = template_regex(template)
    if pat is None:
        return []
    m = pat.match(content)
    return list(m.groups()) if m else []
