"""Redaction of secrets and personal data before any text reaches an LLM, a log message or a cache file.

Each secret is replaced by a stable placeholder such as ``[REDACTED_EMAIL_1]``; the mapping placeholder -> original
stays local (returned to the caller, never logged or written by this module) so a report can show the originals
to whoever runs it.

Covered: private key blocks, JWTs, bearer/basic authorization values, AWS access key ids and secret keys, GCP API
keys and service-account private keys, Slack/GitHub style tokens, generic ``key=value`` / ``"key": "value"``
secrets (password, token, api_key, secret, ...), passwords in URLs, e-mail addresses, payment card numbers (13-19
digits, spaces or dashes allowed, checked by issuer prefix, length and the Luhn checksum, so order ids and epoch
times stay), the CVV/CVC written next to them, IBANs (ISO 13616 mod-97 checked), US social security numbers
(``123-45-6789`` with the SSA's impossible ranges excluded); optionally IPv4/IPv6 addresses and host names; plus
configurable extra regular expressions.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

_KEY_WORDS = (
    r"pass(?:word|wd|phrase)?|pwd|secret(?:[_-]?key)?|client[_-]?secret|api[_-]?key|apikey|access[_-]?key(?:[_-]?id)?"
    r"|secret[_-]?access[_-]?key|auth[_-]?token|access[_-]?token|refresh[_-]?token|id[_-]?token|token|session[_-]?id"
    r"|private[_-]?key|credentials?|x-api-key|aws_secret_access_key|aws_session_token"
)

def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) checksum of a digit string (ISO/IEC 7812)."""
    total, alt = 0, False
    for ch in reversed(digits):
        d = ord(ch) - 48
        if alt:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
        alt = not alt
    return total % 10 == 0


# Issuer identification ranges and lengths of the card brands in use (ISO/IEC 7812 IINs): a random 16-digit id
# passes the Luhn check one time in ten, but rarely starts like a card of the right length as well.
_CARD_BRANDS: tuple[tuple[re.Pattern[str], frozenset[int]], ...] = tuple(
    (re.compile(prefix), frozenset(lengths)) for prefix, lengths in (
        (r"4", (13, 16, 19)),  # Visa
        (r"5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)", (16,)),  # Mastercard
        (r"3[47]", (15,)),  # American Express
        (r"6(?:011|4[4-9]|5)", (16, 17, 18, 19)),  # Discover
        (r"3(?:0[0-5]|095|[689])", (14, 15, 16, 17, 18, 19)),  # Diners Club
        (r"35(?:2[89]|[3-8]\d)", (16, 17, 18, 19)),  # JCB
        (r"62", (16, 17, 18, 19)),  # UnionPay
        (r"5[06-9]|6\d", (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro
    ))


def card_ok(text: str) -> bool:
    """A payment card number: digits (spaces or dashes between groups) with a known issuer prefix and length and
    a valid Luhn checksum."""
    digits = re.sub(r"[ -]", "", text)
    if not 13 <= len(digits) <= 19 or not digits.isdigit():
        return False
    return luhn_ok(digits) and any(rx.match(digits) and len(digits) in ln for rx, ln in _CARD_BRANDS)


_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21,
    "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18,
    "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23,
    "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27,
    "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29,
    "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26,
    "UA": 29, "VG": 24, "XK": 20,
}


def iban_ok(text: str) -> bool:
    """An IBAN (ISO 13616): the country's length and the mod-97 check digits."""
    s = re.sub(r"\s", "", text).upper()
    if _IBAN_LENGTHS.get(s[:2]) != len(s) or not s[2:4].isdigit():
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


# (kind, pattern, group holding the secret (0 = whole match)). Order matters: the most specific come first.
_BASE_PATTERNS: list[tuple[str, str, int]] = [
    ("PRIVATE_KEY", r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", 0),
    ("JWT", r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}", 0),
    ("TOKEN", r"(?i)\b(?:bearer|basic|token)\s+([A-Za-z0-9._~+/=-]{12,})", 1),
    ("AWS_KEY", r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b", 0),
    ("GCP_KEY", r"\bAIza[0-9A-Za-z_-]{35}\b", 0),
    ("TOKEN", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|xox[abprs]-[A-Za-z0-9-]{10,}"
              r"|sk-[A-Za-z0-9_-]{20,}|glpat-[A-Za-z0-9_-]{20,})\b", 0),
    ("URL_PASSWORD", r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]+:([^\s@/]+)@", 1),
    # "key": "value" (JSON) and key=value / key: value (configs, query strings, headers).
    ("SECRET", r"(?i)[\"']?\b(?:" + _KEY_WORDS + r")\b[\"']?\s*:\s*\"([^\"]{3,})\"", 1),
    ("SECRET", r"(?i)\b(?:" + _KEY_WORDS + r")\b\s*(?:=|:)\s*(?!\[REDACTED_)([^\s,;&\"'<>]{3,})", 1),
    ("AWS_SECRET", r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=]))(?=[^\s]*[0-9])(?=[^\s]*[a-z])"
                   r"(?=[^\s]*[A-Z])(?=[^\s]*[/+])[A-Za-z0-9/+=]{40}", 0),
    ("EMAIL", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b", 0),
    # Card numbers: 13-19 digits in one run or in groups of 2-6 separated by single spaces or dashes (validated).
    ("CARD", r"(?<![\w.:/-])(?:\d{13,19}|\d{2,6}(?:[ -]\d{2,6}){2,5})(?![\w.:/]|-\d)", 0),
    ("CVV", r"(?i)\b(?:cvv2?|cvc2?|cvn|csc|cid|card\s+(?:security|verification)\s+(?:code|value))\b\W{0,3}(\d{3,4})\b", 1),
    ("IBAN", r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b", 0),
    ("SSN", r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])", 0),
]
# Matches of these kinds are secrets only when the check says so (else the text is left as it is).
_VALIDATORS: dict[str, Callable[[str], bool]] = {"CARD": card_ok, "IBAN": iban_ok}
_IP_PATTERNS: list[tuple[str, str, int]] = [
    ("IP", r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b", 0),
    # IPv6: the full 8-group form, or a compressed form with "::" (times like 12:30:45 never match).
    ("IP", r"(?i)(?<![0-9a-z:])(?:(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}|(?:[0-9a-f]{1,4}:){0,6}:(?:[0-9a-f]{1,4}:){0,6}"
           r"[0-9a-f]{1,4})(?![0-9a-z:])", 0),
]
_HOST_PATTERNS: list[tuple[str, str, int]] = [
    ("HOST", r"(?i)\b(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:com|net|org|io|dev|local|internal|lan|corp|cloud"
             r"|svc|cluster|example|edu|gov|co|uk|de|fr|app|ai)\b", 0),
]

_PLACEHOLDER = re.compile(r"\[REDACTED_([A-Z_]+)_(\d+)\]")


@dataclass
class Redactor:
    """Replaces secrets with stable placeholders.

    Args:
        redact_ips: also replace IPv4/IPv6 addresses.
        redact_hostnames: also replace fully-qualified host names.
        extra_patterns: extra regular expressions; the whole match (or group 1 when present) is replaced.
    """

    redact_ips: bool = False
    redact_hostnames: bool = False
    extra_patterns: list[str] = field(default_factory=list)
    _compiled: list[tuple[str, re.Pattern[str], int]] | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_settings(cls, llm_settings: Any) -> Redactor:
        """Build from ``LLMSettings`` (``redact_ips``, ``redact_hostnames``, ``extra_redaction_patterns``)."""
        return cls(
            redact_ips=bool(getattr(llm_settings, "redact_ips", False)),
            redact_hostnames=bool(getattr(llm_settings, "redact_hostnames", False)),
            extra_patterns=list(getattr(llm_settings, "extra_redaction_patterns", []) or []),
        )

    def _patterns(self) -> list[tuple[str, re.Pattern[str], int]]:
        if self._compiled is None:
            specs = list(_BASE_PATTERNS)
            if self.redact_ips:
                specs += _IP_PATTERNS
            if self.redact_hostnames:
                specs += _HOST_PATTERNS
            compiled: list[tuple[str, re.Pattern[str], int]] = []
            for kind, pat, grp in specs:
                compiled.append((kind, re.compile(pat, re.DOTALL if kind == "PRIVATE_KEY" else 0), grp))
            for i, pat in enumerate(self.extra_patterns):
                try:
                    rx = re.compile(pat)
                except re.error as exc:
                    raise ValueError(f"extra redaction pattern #{i + 1} is not a valid regular expression: {exc}") from exc
                compiled.append(("CUSTOM", rx, 1 if rx.groups else 0))
            self._compiled = compiled
        return self._compiled

    def redact(self, text: str, mapping: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
        """Redact ``text``.

        Args:
            text: any text (log lines, templates, questions).
            mapping: an existing placeholder -> original mapping to extend (so several texts of one prompt share
                placeholders); None starts a new one.

        Returns:
            (redacted text, mapping placeholder -> original). The same secret always gets the same placeholder
            within one mapping, so redacted prompts are deterministic (and cacheable).
        """
        if not isinstance(text, str):
            raise TypeError(f"redact expects a str, got {type(text).__name__}")
        mapping = {} if mapping is None else mapping
        reverse = {v: k for k, v in mapping.items()}
        out = text
        for kind, rx, grp in self._patterns():
            out = self._sub(out, kind, rx, grp, mapping, reverse)
        return out, mapping

    def redact_text(self, text: str) -> str:
        """Redact and drop the mapping (for callers that only show or forward text)."""
        return self.redact(text)[0]

    def redact_many(self, texts: Iterable[str], mapping: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
        """Redact several texts with one shared mapping."""
        mapping = {} if mapping is None else mapping
        return [self.redact(t, mapping)[0] for t in texts], mapping

    @staticmethod
    def unredact(text: str, mapping: dict[str, str]) -> str:
        """Put the originals back (for showing a report locally; never for a prompt)."""
        return _PLACEHOLDER.sub(lambda m: mapping.get(m.group(0), m.group(0)), text)

    @staticmethod
    def _sub(text: str, kind: str, rx: re.Pattern[str], grp: int, mapping: dict[str, str], reverse: dict[str, str]) -> str:
        check = _VALIDATORS.get(kind)

        def repl(m: re.Match[str]) -> str:
            secret = m.group(grp) if grp else m.group(0)
            if not secret or _PLACEHOLDER.fullmatch(secret):
                return m.group(0)
            if check is not None and not check(secret):
                return m.group(0)
            ph = reverse.get(secret)
            if ph is None:
                n = 1 + sum(1 for k in mapping if k.startswith(f"[REDACTED_{kind}_"))
                ph = f"[REDACTED_{kind}_{n}]"
                mapping[ph] = secret
                reverse[secret] = ph
            if not grp:
                return ph
            start, end = m.span(grp)
            whole = m.group(0)
            return whole[: start - m.start()] + ph + whole[end - m.start():]

        return rx.sub(repl, text)


# ---- prompt-injection payloads ----------------------------------------------------------------------------------
_CUT = "\x00"  # what a removed payload becomes until the end of strip(): a hard stop for the next pattern
# The rest of the sentence: up to a sentence end (". " or end of text), a cut, a role tag or a bracket.
_END = r"(?:[^.!?\n\x00\[<{]|[.!?](?!\s|$))*[.!?]?"
_INJECTION_PATTERNS: list[tuple[str, str]] = [
    ("role_tag", r"(?i)<\|?/?(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id)\|?>"
                 r"(?:\s*(?:system|user|assistant|developer)\b)?|\[/?INST\]|<</?SYS>>|</?s>|</?log_data>"),
    ("fake_tool_call", r"(?is)<\s*(?:tool_call|function_call|tool_use|function)\b[^>]*>.*?(?:<\s*/\s*(?:tool_call"
                       r"|function_call|tool_use|function)\s*>|$)"),
    ("verdict_steer", r"(?i)\b(?:(?:please\s+)?(?:mark|classify|label|treat|report|flag|consider|judge|rate|tag|record)"
                      r"\s+(?:this|it|these|the\s+(?:event|line|log|entry|message|finding)s?)(?:\s+\w+)?\s+as\s+\W*"
                      r"(?:normal|benign|safe|harmless|routine|ok|okay|expected|not\s+anomalous|anomalous|critical|fatal)"
                      r"(?:,?\s*(?:thanks|thank\s+you|please))?|(?:the\s+)?(?:correct\s+|final\s+)?(?:verdict|answer|classification|label)\s*(?:is|=|:)\s*\W*"
                      r"(?:normal|anomalous|benign|true|false)|(?:this|it)\s+is\s+(?:not\s+an?\s+anomaly|a\s+false\s+positive"
                      r"|completely\s+normal|totally\s+normal|safe\s+to\s+ignore)|do\s+not\s+(?:flag|report|alert|escalate"
                      r"|mark)\s+(?:it|this|them)\b)(?:,?\s*(?:thanks|thank\s+you|please))?\W*?(?=\s|$|\x00)"),
    ("override", r"(?i)\b(?:please\s+)?(?:ignore|disregard|forget|override|bypass|skip)\s+(?:all\s+|any\s+|the\s+|your\s+)*"
                 r"(?:previous|prior|above|earlier|preceding|system|original|safety)?\s*(?:instructions?|prompts?|rules?"
                 r"|messages?|guidelines?|context|directions?)" + _END),
    ("role_play", r"(?i)(?:#{1,6}\s*)?(?:\b(?:you\s+are\s+now|from\s+now\s+on|act\s+as|pretend\s+(?:to\s+be|you)"
                  r"|new\s+instructions?\s*:|note\s+to\s+(?:the\s+)?(?:ai|assistant|model|llm|classifier|bot)\b\s*:?"
                  r"|system\s+(?:prompt|override|message)\b\s*:?)|\b(?:system|assistant|developer)\s*:\s*(?=\w|\x00))" + _END),
    ("answer_format", r"(?i)\b(?:respond|reply|answer|output)\s+(?:only\s+)?(?:with|using)\b" + _END),
    ("tool_request", r"(?i)\b(?:please\s+)?(?:call|invoke|use)\s+(?:the\s+)?(?:tool|function)s?\b" + _END),
]
_JSON_KEYS = re.compile(r"\"(?:anomalous|verdict|confidence|is_anomaly|label|tool_calls?|function|arguments|role)\"\s*:")


def _cut_fake_json(text: str) -> tuple[str, int]:
    """Remove balanced {...} blocks that carry verdict / tool-call / role keys (nested objects included)."""
    out, i, n = [], 0, 0
    while i < len(text):
        if text[i] == "{":
            depth, j = 0, i
            while j < len(text):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    break
                j += 1
            block = text[i: j + 1]
            if _JSON_KEYS.search(block):
                out.append(_CUT)
                n += 1
                i = j + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out), n


@dataclass
class InjectionFilter:
    """Cuts instruction-like payloads out of untrusted log text before it reaches a prompt.

    A second line of defence: prompts already place log text in delimited data blocks under a system prompt that
    says data is never instructions, and verdicts are read only from label scores or a schema. This filter removes
    what is plainly addressed to a model (overrides, fake role tags, fake verdict JSON, fake tool calls, requests
    to mark the event normal) so the model judges the event as if the payload were absent. What it removed is
    reported as flags (kinds), which the verdict carries.
    """

    enabled: bool = True
    _compiled: list[tuple[str, re.Pattern[str]]] | None = field(default=None, init=False, repr=False)

    def _patterns(self) -> list[tuple[str, re.Pattern[str]]]:
        if self._compiled is None:
            self._compiled = [(k, re.compile(p)) for k, p in _INJECTION_PATTERNS]
        return self._compiled

    def strip(self, text: str) -> tuple[str, list[str]]:
        """(text without payloads, kinds of payload found)."""
        if not self.enabled or not text:
            return text, []
        found: list[str] = []
        out, n = _cut_fake_json(text)
        if n:
            found.append("fake_json")
        for kind, rx in self._patterns():
            out, n = rx.subn(_CUT, out)
            if n:
                found.append(kind)
        if not found:
            return text, []
        pieces = [p.strip() for p in out.split(_CUT)]
        pieces = [re.sub(r"^[\s;,|:>#-]+|[\s;,|:>#-]+$", "", p) for p in pieces]
        return " ".join(p for p in pieces if re.search(r"\w", p)).strip(), found
