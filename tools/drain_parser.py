"""``LogParser``: drain3's TemplateMiner with Anomalist's masking, a content cache, template merging and safe state.

What it adds to plain drain3, all by general rules:

- Masking in one regex pass, in the canonical template form (see :mod:`tools.masking`).
- Mask-aware similarity: Drain sees masked variables as ``<#>`` and leaves positions masked on both sides out of
  its similarity ratio, so a message whose tokens are mostly masked (HDFS ``BLOCK* ask <*> to delete <*> <*> ...``)
  matches its own cluster again instead of opening a new one on every occurrence (template ids stay stable on long
  streams), while two messages that share only their variables are not pulled together.
- A bounded cache from masked content to cluster: a message whose masked form was seen before skips Drain.
- Clusters whose canonical templates become identical are merged (the younger one becomes an alias), so
  over-split templates share one template id.
- Variable-length variables: Drain keeps messages of different token counts apart, so a list of values
  (``delete blk_1 blk_2 blk_3``) or an optional parenthesised value (``120 bytes sent`` / ``120 bytes (3 KB) sent``)
  opens a cluster per length. Clusters whose templates agree once every run of variables counts as one and
  parenthesised variables are left out (:func:`varlen_key`) are merged the same way.
- State is saved as plain JSON (never jsonpickle) and the Drain tree is rebuilt from it on load.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from operator import itemgetter
from pathlib import Path
from typing import Any

from drain3 import TemplateMiner
from drain3.drain import Drain, LogCluster
from drain3.template_miner_config import TemplateMinerConfig

from anomalist.tools.errors import InputError
from anomalist.tools.masking import (
    WILDCARD,
    ZERO_DIGIT_BYTES,
    ZERO_DIGITS,
    CanonicalRules,
    Masker,
    apply_spans,
    canonical,
    shape_key,
    template_regex,
    variable_spans,
)

logger = logging.getLogger(__name__)

DRAIN_MASK = "<#>"  # how a masked variable looks to Drain: a constant token, so it counts as similar


def _no_params(content: str) -> tuple[str, ...]:
    return ()


def _one_param(span: slice) -> Callable[[str], tuple[str, ...]]:
    def get(content: str) -> tuple[str, ...]:
        return (content[span],)

    return get


_VAR_KEY = "\x00var"
STATE_KIND = "anomalist-parser-state"
STATE_VERSION = 1


_PUNCT = "()[]{}<>;:,.!?'\"="

# a run of variables separated by spaces (and a comma or semicolon): one variable of variable length
_VAR_RUN = re.compile(r"(?<!\S)(?:<\*>[,;]? +)+<\*>")
# a parenthesised or bracketed variable standing alone: an optional detail ("(3 KB)", "[<*>]")
_OPT_VAR = re.compile(r" [(\[]<\*>[)\]](?=[\s,;:.]|$)")
# a quantity written with its unit after a space ("120 bytes", "3 sec"): one variable whichever way it is written
_UNIT = re.compile(r"(?<!\S)<\*> (?:[KMGTP]i?B|B|bytes?|[mun]s|s|secs?|seconds?|mins?|minutes?|hours?|days?)"
                   r"(?=[\s,;:.)\]]|$)")


def varlen_key(template: str) -> str:
    """A template with its variable-length parts normalised: each run of variables is one ``<*>`` and
    parenthesised variables are dropped and a quantity's unit is part of it; two templates with one key are one event
    whose variables vary in length ("<*> bytes sent", "<*> bytes (<*>) sent", "<*> sent")."""
    if WILDCARD not in template:
        return template
    return _VAR_RUN.sub(WILDCARD, _UNIT.sub(WILDCARD, _OPT_VAR.sub("", template)))


def _is_word(token: str) -> bool:
    """A word: letters once surrounding punctuation is stripped (``error``, ``(usable)``, ``failures;``), or
    letters and one trailing digit (``eth0``)."""
    if token.isalpha():
        return True
    core = token.strip(_PUNCT)
    if core.isalpha():
        return True
    # a name with one trailing digit (eth0, alt0, ssh2) is a word; longer numbers make ids (node716, U11)
    return len(core) >= 3 and core[-1].isdigit() and core[:-1].isalpha() and core.isascii()


_VAR_LIKE: dict[str, bool] = {}
_ALNUM = re.compile(r"[A-Za-z0-9]")


def _var_like(token: str) -> bool:
    """A token that is only masked variables and punctuation (``<#>``, ``<#>:``, ``(<#>)``), memoised (bounded)."""
    out = DRAIN_MASK in token and _ALNUM.search(token.replace(DRAIN_MASK, "")) is None
    if len(_VAR_LIKE) > 100_000:
        _VAR_LIKE.clear()
    _VAR_LIKE[token] = out
    return out


_KEY = re.compile(r"[A-Za-z_][\w.]*(?==)")


def _keys_differ(t1: str, t2: str) -> bool:
    """Both tokens are ``key=value`` and their keys differ (``num=<#>,flags=<#>`` vs ``topActivity=<#>``)."""
    if "=" not in t1 or "=" not in t2:
        return False
    m1, m2 = _KEY.match(t1), _KEY.match(t2)
    return m1 is not None and m2 is not None and m1.group() != m2.group()


class _MaskAwareDrain(Drain):
    """Drain whose similarity ignores positions masked in both the template and the message.

    Plain Drain counts a masked token as a mismatch, so a message made mostly of variables never reaches the
    similarity threshold, not even against its own cluster. Here a position where both sides hold a masked
    variable is left out of the ratio; a position Drain generalised (``<*>``) still counts as not similar.
    """

    key_events = True  # set per instance by LogParser

    def get_seq_distance(self, seq1, seq2, include_params):  # type: ignore[no-untyped-def]
        n = len(seq1)
        if n == 0:
            return 1.0, 0
        sim = 0
        params = 0
        both_masked = 0
        param_str = self.param_str
        var_like = _VAR_LIKE
        for t1, t2 in zip(seq1, seq2, strict=False):
            if t1 == param_str:
                params += 1
            elif t1 == t2:
                v = var_like.get(t1)
                if v is None:
                    v = _var_like(t1)
                if v:
                    both_masked += 1
                else:
                    sim += 1
            elif _is_word(t1) and _is_word(t2):
                return 0.0, params  # two different words: a different event (see LogParser, word variants)
            elif self.key_events and _keys_differ(t1, t2):
                return 0.0, params  # key=value with two different keys: keys are constant text, a different event
        if include_params:
            sim += params
        denom = n - both_masked
        return (sim / denom if denom else 1.0), params

    def create_template(self, seq1, seq2):  # type: ignore[no-untyped-def]
        """As Drain, but a differing ``key=value`` token keeps its key (``rhost=<*>``, not ``<*>``)."""
        out = list(seq2)
        param = self.param_str
        for i, (t1, t2) in enumerate(zip(seq1, seq2, strict=False)):
            if t1 != t2:
                k1, k2 = t1.find("="), t2.find("=")
                if k1 > 0 and k1 == k2 and t1[:k1] == t2[:k1] and t1[:k1].isidentifier():
                    out[i] = t1[: k1 + 1] + param
                else:
                    out[i] = param
        return out


def miner_config(depth: int, sim_th: float, max_children: int, max_clusters: int | None) -> TemplateMinerConfig:
    """A drain3 config built in code (no drain3.ini is read), masking off (we mask before Drain)."""
    cfg = TemplateMinerConfig()
    cfg.drain_depth = depth
    cfg.drain_sim_th = sim_th
    cfg.drain_max_children = max_children
    cfg.drain_max_clusters = max_clusters
    cfg.masking_instructions = []
    cfg.parametrize_numeric_tokens = True
    cfg.profiling_enabled = False
    return cfg


class LogParser:
    """Streaming template miner; ``add(content)`` returns a stable integer template id.

    Args:
        depth: Drain prefix-tree depth (>= 3).
        sim_th: Drain similarity threshold in [0, 1].
        max_children: Drain max children per tree node.
        max_clusters: Bound on the clusters Drain keeps (LRU); None = unbounded.
        cache_size: Bound on the masked-content cache.
        mask_aware: Mask-aware similarity (see module docstring); False = plain drain3 similarity.
        merge: Merge clusters whose canonical templates become identical.
        word_variants: Two messages that differ in a word (letters only) are different events, until more than
            this many words occur at that position of otherwise equal templates: then it is a variable.
        hostport: Canonical form: ``<*>:<*>`` is one variable (see :class:`tools.masking.CanonicalRules`).
        lists: Canonical form: ``<*>,<*>`` (a list without spaces) is one variable.
        varlen: Merge clusters whose templates differ only in variable-length parts (see :func:`varlen_key`).
        key_events: Two messages whose tokens at one position are ``key=value`` pairs with different keys are
            different events (mask-aware similarity only).
    """

    def __init__(
        self,
        depth: int = 4,
        sim_th: float = 0.5,
        max_children: int = 100,
        max_clusters: int | None = 50_000,
        cache_size: int = 200_000,
        mask_aware: bool = True,
        merge: bool = True,
        word_variants: int = 3,
        hostport: bool = True,
        lists: bool = True,
        varlen: bool = True,
        key_events: bool = True,
    ) -> None:
        self.depth = depth
        self.sim_th = sim_th
        self.max_children = max_children
        self.max_clusters = max_clusters
        self.cache_size = cache_size
        self.mask_aware = mask_aware
        self.merge = merge
        self.word_variants = word_variants
        self.hostport = hostport
        self.lists = lists
        self.varlen = varlen
        self.key_events = key_events
        self._miner: TemplateMiner | None = None

    # -- set-up -------------------------------------------------------------------------------------------
    def _ensure(self) -> TemplateMiner:
        if self._miner is None:
            if self.depth < 3:
                raise ValueError(f"depth must be >= 3, got {self.depth}")
            if not 0.0 <= self.sim_th <= 1.0:
                raise ValueError(f"sim_th must be in [0, 1], got {self.sim_th}")
            cfg = miner_config(self.depth, self.sim_th, self.max_children, self.max_clusters)
            self._miner = TemplateMiner(persistence_handler=None, config=cfg)
            if self.mask_aware:
                old = self._miner.drain
                self._miner.drain = _MaskAwareDrain(
                    depth=old.log_cluster_depth, sim_th=old.sim_th, max_children=old.max_children,
                    max_clusters=old.max_clusters, extra_delimiters=old.extra_delimiters, profiler=old.profiler,
                    param_str=old.param_str, parametrize_numeric_tokens=old.parametrize_numeric_tokens,
                )
                self._miner.drain.key_events = self.key_events
            self._rules = CanonicalRules(hostport=self.hostport, lists=self.lists)
            self._masker = Masker(rules=self._rules)
            self._cache: dict[bytes, tuple[tuple[int, ...], dict[str, int]]] = {}
            self._param_spans: dict[tuple[bytes, str], Callable[[str], Any]] = {}
            self._hits = 0
            self._variants: dict[str, dict[str, int]] = {}
            self._id_to_cluster = self._miner.drain.id_to_cluster
            self._alias: dict[int, int] = {}
            self._text_to_id: dict[str, int] = {}
            self._varlen_to_id: dict[str, int] = {}
            self._texts: dict[int, tuple[tuple[str, ...], str]] = {}
            self.counts: dict[int, int] = {}
        return self._miner

    @property
    def miner(self) -> TemplateMiner:
        """The underlying drain3 TemplateMiner."""
        return self._ensure()

    # -- mining -------------------------------------------------------------------------------------------
    def mask(self, content: str) -> str:
        """The canonical masked form of a message."""
        self._ensure()
        return self._masker.mask(content)

    def add(self, content: str) -> int:
        """Mine one message (header already removed); returns its template id."""
        return self.add_keyed(content)[0]

    def add_keyed(self, content: str) -> tuple[int, bytes]:
        """Mine one message; returns its template id and its shape (a key for :meth:`params_of`)."""
        tids, shapes = self.add_batch([content])
        return tids[0], shapes[0]

    def add_batch(self, contents: list[str]) -> tuple[list[int], list[bytes]]:
        """Mine messages in order; returns their template ids and shapes (digits zeroed, UTF-8).

        The fast path: a message whose shape was seen before (with the same digits outside masked variables)
        reuses the cluster found then, without masking or Drain.
        """
        if self._miner is None:
            self._ensure()
        cache_get = self._cache.get
        alias_get = self._alias.get
        zero = ZERO_DIGIT_BYTES
        bounded = self.max_clusters is not None
        tids: list[int] = []
        shapes: list[bytes] = []
        for content in contents:
            shape = content.encode("utf-8", "surrogatepass").translate(zero)
            entry = cache_get(shape)
            cid: int | None = None
            if entry is not None:
                positions, by_digits = entry
                cid = by_digits.get("".join([content[i] for i in positions]) if positions else "")
                if cid is not None and bounded:
                    self._hits += 1
                    if not self._hits & 63:  # now and then: keep hot clusters out of Drain's LRU eviction
                        if cid in self._id_to_cluster:
                            self._id_to_cluster[cid]
                        else:
                            cid = None
            if cid is None:
                cid = self._mine(content, shape)
            tids.append(alias_get(cid, cid))
            shapes.append(shape)
        counts = self.counts
        for tid in tids:
            counts[tid] = counts.get(tid, 0) + 1
        return tids, shapes

    def add_many(self, contents: list[str]) -> list[int]:
        """Mine several messages; same as ``[add(c) for c in contents]``."""
        add = self.add
        return [add(c) for c in contents]

    def _mine(self, content: str, key: bytes) -> int:
        miner = self.miner
        shape = content.translate(ZERO_DIGITS)
        spans = variable_spans(shape)
        masked = self._masker.canonical(apply_spans(content, spans))
        drain_in = masked.replace(WILDCARD, DRAIN_MASK) if self.mask_aware else masked
        result = miner.add_log_message(drain_in)
        cid = int(result["cluster_id"])
        if result["change_type"] == "cluster_created" and self.max_clusters is not None:
            self._prune(self.max_clusters)
        # digits outside the masked spans are constant text: they are part of the cache key
        covered: set[int] = set()
        for a, b in spans:
            covered.update(range(a, b))
        positions = tuple(i for i, ch in enumerate(shape) if ch == "0" and i not in covered)
        if len(self._cache) >= self.cache_size:
            self._cache.clear()  # rare; simpler and as good as LRU for a stream of repeating templates
        entry = self._cache.setdefault(key, (positions, {}))
        entry[1]["".join([content[i] for i in positions]) if positions else ""] = cid
        if result["change_type"] != "none" and self.word_variants and cid not in self._alias:
            self._register_word_variants(cid)
        if self.merge and result["change_type"] != "none" and cid not in self._alias:
            text = self._cluster_text(cid)
            if not self._merge_into(cid, self._text_to_id, text) and self.varlen:
                self._merge_into(cid, self._varlen_to_id, varlen_key(text))
        return cid

    def _merge_into(self, cid: int, index: dict[str, int], key: str) -> bool:
        """Alias ``cid`` to the live cluster filed under ``key`` (True), or file ``cid`` there (False)."""
        target = index.get(key)
        if target is not None and target != cid and target in self.miner.drain.id_to_cluster:
            target = self._alias.get(target, target)
            if target != cid:
                self._alias[cid] = target
                logger.debug("merged template %d into %d: %s", cid, target, key)
                return True
            return False
        index[key] = cid
        return False

    def _prune(self, max_clusters: int) -> None:
        """Keep the side tables bounded when Drain evicts clusters (LRU): drop entries of evicted clusters."""
        if len(self._texts) <= 2 * max_clusters and len(self._variants) <= 8 * max_clusters:
            return
        live = self.miner.drain.id_to_cluster
        self._texts = {k: v for k, v in self._texts.items() if k in live}
        self._text_to_id = {k: v for k, v in self._text_to_id.items() if v in live}
        self._varlen_to_id = {k: v for k, v in self._varlen_to_id.items() if v in live}
        self._variants = {k: m for k, m in self._variants.items() if any(c in live for c in m.values())}

    def _register_word_variants(self, cid: int) -> None:
        """Word-variant clusters: same tokens but one word. Few distinct words there = different events (kept
        apart, e.g. ``Link ok`` / ``Link error``); once more than ``word_variants`` words occur at that position it
        is a variable (user names, hosts): the variants merge into the oldest and that position becomes ``<*>``."""
        drain = self.miner.drain
        cluster = drain.id_to_cluster.get(cid)
        if cluster is None:
            return
        tokens = cluster.log_template_tokens
        param = drain.param_str
        for i, tok in enumerate(tokens):
            if i == 0:  # a message's first word names the event (boot / halt / wait ...)
                continue
            is_var = tok == DRAIN_MASK or tok == param
            if not (is_var or _is_word(tok)):
                continue
            sig = "\x1f".join((*tokens[:i], "\x00", *tokens[i + 1:]))
            members = self._variants.setdefault(sig, {})
            members.setdefault(_VAR_KEY if is_var else tok, cid)
            var_cid = members.get(_VAR_KEY)
            n_words = len(members) - (var_cid is not None)
            # a variable already seen at this position, or many different words: the words are values
            if n_words == 0 or (var_cid is None and n_words <= self.word_variants):
                continue
            live = [c for c in members.values() if c in drain.id_to_cluster]
            if not live:
                continue
            if var_cid is not None and var_cid in drain.id_to_cluster:
                target = self._alias.get(var_cid, var_cid)
            else:
                target = min(self._alias.get(c, c) for c in live)
            tc = drain.id_to_cluster.get(target)
            if tc is not None and len(tc.log_template_tokens) > i and tc.log_template_tokens[i] not in (param, DRAIN_MASK):
                new = list(tc.log_template_tokens)
                new[i] = param
                tc.log_template_tokens = tuple(new)
                self._text_to_id.setdefault(self._cluster_text(target), target)
            for c in live:
                if self._alias.get(c, c) != target:
                    self._set_alias(c, target)

    def _set_alias(self, cid: int, target: int) -> None:
        self._alias[cid] = target
        for k, v in list(self._alias.items()):
            if v == cid:
                self._alias[k] = target
        for k in list(self.counts):
            if k == cid:
                self.counts[target] = self.counts.get(target, 0) + self.counts.pop(k)

    def params(self, template_id: int, content: str) -> list[str]:
        """The values of the template's variables in ``content``."""
        return self.params_of(self.template(template_id), content, None)

    def params_of(self, template: str, content: str, shape: bytes | None) -> list[str]:
        """The values of ``template``'s variables in ``content`` (slicing cached per shape and template)."""
        if WILDCARD not in template:
            return []
        if shape is None:
            shape = shape_key(content)
        key = (shape, template)
        getter = self._param_spans.get(key)
        if getter is None:
            pat = template_regex(template)
            m = pat.match(content) if pat is not None else None
            spans = [slice(*m.span(g)) for g in range(1, (m.lastindex or 0) + 1)] if m else []
            # itemgetter of slices cuts every value in one C call
            if len(spans) > 1:
                getter = itemgetter(*spans)
            elif spans:
                getter = _one_param(spans[0])
            else:
                getter = _no_params
            if len(self._param_spans) >= self.cache_size:
                self._param_spans.clear()
            self._param_spans[key] = getter
        return list(getter(content))

    def _cluster_text(self, cid: int) -> str:
        cluster = self.miner.drain.id_to_cluster.get(cid)
        if cluster is None:
            cached = self._texts.get(cid)
            return cached[1] if cached else ""
        tokens = cluster.log_template_tokens
        cached = self._texts.get(cid)
        if cached is not None and cached[0] is tokens:
            return cached[1]
        text = canonical(" ".join(tokens).replace(DRAIN_MASK, WILDCARD), self._rules)
        self._texts[cid] = (tokens, text)
        return text

    # -- reading results ----------------------------------------------------------------------------------
    def template(self, template_id: int) -> str:
        """The current template text of an id (``<*>`` marks variables)."""
        self._ensure()
        return self._cluster_text(self._alias.get(template_id, template_id))

    def templates(self) -> dict[int, str]:
        """Every live template id and its text (aliases excluded)."""
        miner = self.miner
        return {cid: self._cluster_text(cid) for cid in list(miner.drain.id_to_cluster.keys())
                if cid not in self._alias}

    def resolve(self, cluster_id: int) -> int:
        """The template id a Drain cluster id reports as (itself unless merged)."""
        self._ensure()
        return self._alias.get(cluster_id, cluster_id)

    @property
    def n_templates(self) -> int:
        """Number of live templates (merged clusters count once)."""
        return len(self.templates())

    # -- state --------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The state as plain JSON-able data."""
        miner = self.miner
        clusters = [
            {"id": c.cluster_id, "tokens": list(c.log_template_tokens), "size": c.size}
            for c in sorted(miner.drain.id_to_cluster.values(), key=lambda c: c.cluster_id)
        ]
        return {
            "kind": STATE_KIND,
            "version": STATE_VERSION,
            "config": {
                "depth": self.depth, "sim_th": self.sim_th, "max_children": self.max_children,
                "max_clusters": self.max_clusters, "cache_size": self.cache_size,
                "mask_aware": self.mask_aware, "merge": self.merge, "word_variants": self.word_variants,
                "hostport": self.hostport, "lists": self.lists, "varlen": self.varlen,
                "key_events": self.key_events,
            },
            "clusters_counter": miner.drain.clusters_counter,
            "clusters": clusters,
            "alias": {str(k): v for k, v in self._alias.items()},
            "counts": {str(k): v for k, v in self.counts.items()},
        }

    def save(self, path: str | Path) -> None:
        """Write the state to ``path`` as JSON (atomically)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict()), encoding="utf-8")
        tmp.replace(p)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogParser:
        """Rebuild a parser from :meth:`to_dict` data (raises ``InputError`` on anything else)."""
        if not isinstance(data, dict) or data.get("kind") != STATE_KIND:
            raise InputError("not an Anomalist parser state file")
        if data.get("version") != STATE_VERSION:
            raise InputError(f"unsupported parser state version {data.get('version')!r}")
        try:
            parser = cls(**data["config"])
            miner = parser.miner
            drain = miner.drain
            for c in data["clusters"]:
                cluster = LogCluster([str(t) for t in c["tokens"]], int(c["id"]))
                cluster.size = int(c["size"])
                drain.id_to_cluster[cluster.cluster_id] = cluster
                drain.add_seq_to_prefix_tree(drain.root_node, cluster)
            drain.clusters_counter = int(data["clusters_counter"])
            parser._alias = {int(k): int(v) for k, v in data.get("alias", {}).items()}
            parser.counts = {int(k): int(v) for k, v in data.get("counts", {}).items()}
            for cid in list(drain.id_to_cluster.keys()):
                if cid not in parser._alias:
                    text = parser._cluster_text(cid)
                    parser._text_to_id.setdefault(text, cid)
                    if parser.varlen:
                        parser._varlen_to_id.setdefault(varlen_key(text), cid)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"corrupt parser state: {exc}") from exc
        return parser

    @classmethod
    def load(cls, path: str | Path) -> LogParser:
        """Load a state written by :meth:`save` (plain JSON; nothing executable is ever deserialised)."""
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise InputError(f"parser state not found: {p}") from exc
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read parser state {p}: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def for_format(cls, depth: int, sim_th: float, **kwargs: Any) -> LogParser:
        """A parser with the Drain settings of a log format."""
        return cls(depth=depth, sim_th=sim_th, **kwargs)


class ShapeKeyer:
    """The part of :class:`LogParser` that needs no Drain: a message's masked form, the text Drain would mine.

    A shard of a distributed parse (``agent.scale``) keys its messages with this instead of mining them. Two
    messages with the same masked form are always the same template of a :class:`LogParser` (Drain sees the same
    tokens; a repeat changes no template), so feeding one parser the first message of every key, in the order the
    keys first occur in the whole input, gives it the templates, ids and aliases that mining the whole input in one
    stream would (while the input has fewer distinct message shapes than the parser's ``cache_size``). Offers the
    parser's interface where parsing needs it (``add_batch``, ``resolve``, ``template``); its ids are local: the
    position of each key's first occurrence. Like the parser, it masks each distinct shape once.
    """

    def __init__(self) -> None:
        self.firsts: list[str] = []  # the first message of each key, by local id
        self._ids: dict[str, int] = {}
        self._cache: dict[bytes, tuple[tuple[int, ...], dict[str, str]]] = {}
        self._masker = Masker()
        self.counts: dict[int, int] = {}

    def key(self, content: str) -> tuple[bytes, str]:
        """(digit-zeroed shape, masked form) of a message."""
        shape = content.encode("utf-8", "surrogatepass").translate(ZERO_DIGIT_BYTES)
        entry = self._cache.get(shape)
        if entry is None:
            zeroed = content.translate(ZERO_DIGITS)
            spans = variable_spans(zeroed)
            covered: set[int] = set()
            for a, b in spans:
                covered.update(range(a, b))
            entry = ((tuple(i for i, ch in enumerate(zeroed) if ch == "0" and i not in covered)), {})
            if len(self._cache) >= 200_000:
                self._cache.clear()
            self._cache[shape] = entry
        positions, by_digits = entry
        digits = "".join([content[i] for i in positions]) if positions else ""
        masked = by_digits.get(digits)
        if masked is None:
            masked = by_digits[digits] = self._masker.canonical(
                apply_spans(content, variable_spans(content.translate(ZERO_DIGITS))))
        return shape, masked

    def add_batch(self, contents: list[str]) -> tuple[list[int], list[bytes]]:
        ids: list[int] = []
        shapes: list[bytes] = []
        get = self._ids.get
        for content in contents:
            shape, k = self.key(content)
            i = get(k)
            if i is None:
                i = self._ids[k] = len(self.firsts)
                self.firsts.append(content)
            ids.append(i)
            shapes.append(shape)
        for i in ids:
            self.counts[i] = self.counts.get(i, 0) + 1
        return ids, shapes

    def resolve(self, cluster_id: int) -> int:
        return cluster_id

    def template(self, template_id: int) -> str:
        return ""

    @property
    def n_templates(self) -> int:
        return len(self.firsts)
