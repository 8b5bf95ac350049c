"""Mirror ingest: judging each telemetry sample and applying the good ones to its binding.

Telemetry arrives between steps as ``tm`` messages (docs/protocol.md), decoded and checked
by ``twin.protocol.telemetry``. Samples are judged in wall-clock time (the mirror runs at
warp 1): older than ``max_sample_age_s`` is ``late``, more than ``MAX_FUTURE_S`` ahead is
``future``, not newer than the newest applied one of its packet is ``out_of_order`` or
``duplicate``, outside the physical bounds of its quantity (``QUANTITY_BOUNDS``, SI,
overridable per binding) ``out_of_bounds``; all are dropped and counted, never applied.

Ingest is an edge facing any client: every message is counted exactly once (applied,
ignored or dropped by reason), nothing a client sends raises out of ``ingest`` or reaches
the log whole (``twin.core.ratelog``), and nothing kept between messages is keyed by a name a
client chose without a cap (docs/reliability.md, "Telemetry ingest").
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.core.ratelog import RateLimitedLog, shorten
from twin.models.mirror.bindings import (
    BindingState,
    MirrorBinding,
    MirrorParams,
    is_number,
    unit_of,
)
from twin.protocol.codec import WireError
from twin.protocol.telemetry import MAX_NAME_CHARS, decode_telemetry, quote

# The name it had when the mirror was one module: log filters and tests select it.
log = logging.getLogger("odc.twin.mirror")

# Why a sample or a whole message is dropped: the keys of the counters' ``*_dropped`` maps.
SAMPLE_REASONS = ("late", "future", "out_of_order", "duplicate", "not_finite", "out_of_bounds")
MESSAGE_REASONS = ("bad_message", "unknown_testbed", "not_authorized", "too_many_packets")
MAX_FUTURE_S = 5.0
"""How far ahead of the twin's wall clock a sample may lie before it is ``future`` (s)."""

# Caps on what a client can make the mirror keep or work on (docs/reliability.md); the caps
# on one message (MAX_SAMPLES, MAX_NAME_CHARS) are the decoder's, in twin.protocol.telemetry.
MAX_PACKETS_PER_BINDING = 64
"""Packet names whose ordering one binding remembers; a new one past this is dropped."""
MAX_BRIDGE_ENTRIES = 32
"""Entries kept of each client-keyed map in a bridge's counters (reasons, packets)."""
JUDGE_CHUNK = 65_536
"""Samples judged at a time: working memory stays ~10 MB whatever ``n`` is."""
UNKNOWN_NAME_CHARS = 64
"""Of a testbed no binding uses, this much of its name is kept for the event."""


@dataclass
class UnknownTestbeds:
    """Telemetry from testbeds no binding uses: counted, and reported by an event at most
    every ``UNKNOWN_EVENT_INTERVAL_S`` (``Mirror.step``). Only the newest name is kept,
    shortened: nothing here grows with what clients send."""

    messages: int = 0
    samples: int = 0
    pending_messages: int = 0  # since the last event
    pending_samples: int = 0
    newest_name: str = ""

    def note(self, testbed: str, samples: int) -> None:
        self.messages += 1
        self.samples += samples
        self.pending_messages += 1
        self.pending_samples += samples
        self.newest_name = shorten(testbed, UNKNOWN_NAME_CHARS)

    def status(self) -> dict[str, Any]:
        return {"messages": self.messages, "samples": self.samples,
                "newest_testbed": self.newest_name}


class TelemetryIngest:
    """Judges ``tm`` messages and applies their good samples to the bindings' run-time state.

    Args:
        bindings: The ``[[mirror.testbed]]`` bindings.
        live: Their run-time state, shared with the mirror (updated in place here).
        params: The ``[mirror]`` table (``max_sample_age_s``).
    """

    def __init__(self, bindings: list[MirrorBinding], live: list[BindingState],
                 params: MirrorParams) -> None:
        self.live = live
        self.params = params
        self.by_testbed: dict[str, list[int]] = {}
        for i, b in enumerate(bindings):
            self.by_testbed.setdefault(b.name, []).append(i)
        # messages = messages_applied + messages_ignored + sum(messages_dropped), and
        # samples_received = samples_applied + samples_ignored + sum(samples_dropped).
        self.counters: dict[str, Any] = {
            "messages": 0, "messages_applied": 0, "messages_ignored": 0,
            "samples_received": 0, "samples_applied": 0, "samples_ignored": 0,
            "messages_dropped": dict.fromkeys(MESSAGE_REASONS, 0),
            "samples_dropped": dict.fromkeys(SAMPLE_REASONS, 0),
        }
        # Keyed by testbed name, but only bound testbeds are kept (at most one per binding).
        self.bridge_counters: dict[str, Any] = {}
        self.rejections = RateLimitedLog(log)
        self.unknown = UnknownTestbeds()

    def ingest(self, frames: list[Any], wall_clock: Callable[[], float],
               may_feed: Callable[[str], bool] | None = None) -> None:
        """Judge and apply one ``tm`` message (the server's ingest handler); never raises.

        The message is counted exactly once: ``messages_applied`` (a sample of it was
        applied), ``messages_ignored`` (none was: no mapped parameter, or every sample
        dropped, see ``samples_dropped``) or ``messages_dropped[reason]``.

        Memory: the columns are read in place from the frames; judging works through
        ``JUDGE_CHUNK`` samples at a time, so a message costs a bounded ~10 MB beyond its own
        bytes (which the server's socket caps), and nothing kept grows with it.

        Args:
            frames: The message's frames, as the ingest socket received them.
            wall_clock: Wall time source, POSIX s; read once, after the checks that need none.
            may_feed: Whether the sender's key may feed a testbed (twin.security.roles);
                None: any may (a twin without keys, reachable on loopback only).
        """
        c = self.counters
        c["messages"] += 1
        try:
            header, columns = decode_telemetry(frames)
        except Exception as exc:  # whatever fails here, the sender's bytes did
            self._drop_message("bad_message", "telemetry message dropped (bad_message): %s",
                               _why(exc))
            return
        testbed, n = header["testbed"], header["n"]
        packet = header.get("packet", "")
        targets = self.by_testbed.get(testbed)
        if not targets:
            self.unknown.note(testbed, n)
            self._drop_message("unknown_testbed", "telemetry from testbed %s dropped "
                               "(unknown_testbed): no [[mirror.testbed]] has that name",
                               quote(testbed), samples=n)
            return
        if may_feed is not None and not may_feed(testbed):
            self._drop_message("not_authorized", "telemetry for testbed %s dropped "
                               "(not_authorized): the sender's key lacks role testbed:%s",
                               quote(testbed), quote(testbed), samples=n)
            return
        summary = bridge_summary(header.get("bridge"))
        if summary is not None:
            self.bridge_counters[testbed] = summary
        if any(packet not in self.live[i].newest_t
               and len(self.live[i].newest_t) >= MAX_PACKETS_PER_BINDING for i in targets):
            self._drop_message("too_many_packets", "telemetry from testbed %s dropped "
                               "(too_many_packets): packet %s would be past the %d packet "
                               "names remembered", quote(testbed), quote(packet),
                               MAX_PACKETS_PER_BINDING, samples=n)
            return
        now = wall_clock()
        try:
            judged = [self._judge(i, packet, columns, n, now) for i in targets]
        except Exception as exc:  # a bug of ours on odd input drops only it
            self._drop_message("bad_message", "telemetry message from testbed %s dropped "
                               "(bad_message) while judging: %s", quote(testbed), _why(exc))
            return
        for i, verdict in zip(targets, judged, strict=True):
            self._commit(i, packet, verdict, now)
            if verdict.applied:
                _take_noise(self.live[i], header["fields"])
        # One binding's verdict counts the samples (the first that maps any parameter).
        verdict = next((v for v in judged if not v.ignored), judged[0])
        c["samples_received"] += n
        if verdict.ignored:
            c["samples_ignored"] += n
        for reason, count in verdict.drops.items():
            c["samples_dropped"][reason] += count
        c["samples_applied"] += verdict.applied
        c["messages_applied" if verdict.applied else "messages_ignored"] += 1
        if verdict.out_of_bounds is not None:
            q, value, (low, high) = verdict.out_of_bounds
            unit = unit_of(q)
            self.rejections.log("out_of_bounds", "testbed %s: %d sample(s) dropped "
                                "(out_of_bounds), e.g. %s = %.6g %s outside %g..%g %s",
                                quote(testbed), verdict.drops["out_of_bounds"], q, value,
                                unit, low, high, unit)

    def _drop_message(self, reason: str, message: str, *args: object, samples: int = 0) -> None:
        c = self.counters
        c["messages_dropped"][reason] += 1
        c["samples_received"] += samples
        c["samples_ignored"] += samples
        self.rejections.log(reason, message, *args)

    def _judge(self, i: int, packet: str, columns: dict[str, np.ndarray], n: int,
               now: float) -> _Verdict:
        """Judge one message's samples for binding ``i``; changes nothing (see ``_commit``)."""
        lv = self.live[i]
        mapped = [p for p in columns if p in lv.convert and p != "seq_count"]
        if not mapped:
            return _Verdict(ignored=True)
        verdict = _Verdict(drops=dict.fromkeys(SAMPLE_REASONS, 0))
        newest = lv.newest_t.get(packet, (-math.inf, -math.inf))
        seq_column = columns.get("seq_count")
        for start in range(0, n, JUDGE_CHUNK):
            chunk = slice(start, min(n, start + JUDGE_CHUNK))
            t = columns["t_utc"][chunk].astype(np.float64)
            seq = (np.zeros(len(t)) if seq_column is None
                   else seq_column[chunk].astype(np.float64))
            finite = np.isfinite(t) & np.isfinite(seq)
            inside = np.ones(len(t), dtype=bool)
            si: dict[str, np.ndarray] = {}
            with np.errstate(all="ignore"):  # raw * scale + offset may overflow: inf is outside
                for p in mapped:
                    q, scale, offset = lv.convert[p]
                    raw = columns[p][chunk].astype(np.float64)
                    finite &= np.isfinite(raw)
                    si[p] = value = raw * scale + offset
                    low, high = lv.bounds[q]
                    inside &= (value >= low) & (value <= high)
            outside = finite & ~inside
            good = finite & inside
            late = good & (t < now - self.params.max_sample_age_s)
            future = good & ~late & (t > now + MAX_FUTURE_S)
            usable = good & ~late & ~future
            rank, newest_rank = _order_ranks(newest, np.where(usable, t, -math.inf),
                                             np.where(usable, seq, -math.inf))
            before = np.maximum.accumulate(np.concatenate(([newest_rank], rank[:-1])))
            accept = usable & (rank > before)
            drops = verdict.drops
            drops["not_finite"] += int((~finite).sum())
            drops["out_of_bounds"] += int(outside.sum())
            drops["late"] += int(late.sum())
            drops["future"] += int(future.sum())
            drops["duplicate"] += int((usable & (rank == before)).sum())
            drops["out_of_order"] += int((usable & (rank < before)).sum())
            if verdict.out_of_bounds is None and outside.any():
                j = int(np.flatnonzero(outside)[0])
                p = next(p for p in mapped if not lv.bounds[lv.convert[p][0]][0] <= si[p][j]
                         <= lv.bounds[lv.convert[p][0]][1])
                q = lv.convert[p][0]
                verdict.out_of_bounds = (q, float(si[p][j]), lv.bounds[q])
            n_ok = int(accept.sum())
            if n_ok:
                k = int(np.flatnonzero(accept)[-1])
                newest = (float(t[k]), float(seq[k]) if seq_column is not None else 0.0)
                verdict.applied += n_ok
                verdict.newest = newest
                verdict.measured = {lv.convert[p][0]: float(si[p][k]) for p in mapped}
        return verdict

    def _commit(self, i: int, packet: str, verdict: _Verdict, now: float) -> None:
        """Apply binding ``i``'s newest accepted sample, if any (nothing here can fail)."""
        if not verdict.applied or verdict.newest is None:
            return
        lv = self.live[i]
        lv.newest_t[packet] = verdict.newest
        lv.measured.update(verdict.measured)
        lv.measured_utc.update(dict.fromkeys(verdict.measured, verdict.newest[0]))
        lv.applied += verdict.applied
        lv.last_applied_wall = now
        lv.newest_sample_utc = verdict.newest[0]


MAX_NOISE_SI = 1.0e6
"""Largest declared sensor noise kept (SI); anything else a client sends is ignored."""


def _take_noise(lv: BindingState, specs: list[Any]) -> None:
    """Keep each mapped parameter's declared ``noise`` (docs/protocol.md), converted to SI.

    ``specs`` passed ``decode_telemetry``'s checks; only finite numbers 0..``MAX_NOISE_SI``
    after scaling are kept, one per mapped quantity: a client cannot grow what is kept.
    """
    for spec in specs:
        name, noise = spec["name"], spec.get("noise")
        if name in lv.convert and is_number(noise) and noise >= 0.0:
            quantity, scale, _offset = lv.convert[name]
            si = float(noise) * abs(scale)
            if si <= MAX_NOISE_SI:
                lv.noise[quantity] = si


@dataclass
class _Verdict:
    """What judging one message found for one binding (applied later by ``_commit``)."""

    ignored: bool = False  # no parameter of the message is mapped by the binding
    drops: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SAMPLE_REASONS, 0))
    applied: int = 0
    newest: tuple[float, float] | None = None  # (time, sequence count) of the newest accepted
    measured: dict[str, float] = field(default_factory=dict)  # its SI values by quantity
    out_of_bounds: tuple[str, float, tuple[float, float]] | None = None  # first, for the log


def _order_ranks(newest: tuple[float, float], t: np.ndarray, seq: np.ndarray
                 ) -> tuple[np.ndarray, int]:
    """Dense ranks of the samples' (time, sequence count) keys, and the newest one's rank.

    Samples are ordered by time, and by the bridge's unwrapped packet count where times tie
    (a 1 ms timestamp holds many packets at high rates). Equal keys get equal ranks.
    """
    keys_t = np.concatenate(([newest[0]], t))
    keys_s = np.concatenate(([newest[1]], seq))
    order = np.lexsort((keys_s, keys_t))
    st, ss = keys_t[order], keys_s[order]
    new_key = np.concatenate(([0], (st[1:] != st[:-1]) | (ss[1:] != ss[:-1])))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.cumsum(new_key)
    return rank[1:], int(rank[0])


def _why(exc: BaseException) -> str:
    """An exception as a short log text (ours name the problem; others add their type)."""
    text = str(exc) if isinstance(exc, WireError) else f"{type(exc).__name__}: {exc}"
    return shorten(text, 200)


# -- the bridge's own counters, kept for mirror_status --------------------------------------

BRIDGE_PUSH_KEYS = ("sent_messages", "sent_samples", "dropped_messages", "dropped_samples")
BRIDGE_DECODER_KEYS = ("received", "accepted", "rejected_total", "bytes_received",
                       "bytes_skipped")
BRIDGE_SEQ_KEYS = ("gaps", "skipped", "restarts")
BRIDGE_SOURCE_KEYS = ("open", "accepted", "refused_full", "accept_errors", "bytes_received")
BRIDGE_CLOSED_KEYS = ("peer", "idle", "error")


def bridge_summary(raw: Any) -> dict[str, Any] | None:
    """The known counters of a header's ``bridge`` map, the rest left out; None if not a map.

    Keeps ``push{sent_messages, sent_samples, dropped_messages, dropped_samples}`` and
    ``decoder{received, accepted, rejected_total, bytes_received, bytes_skipped,
    rejected{reason}, seq{packet: {gaps, skipped, restarts}}}`` and the TCP source's
    ``source{open, accepted, refused_full, accept_errors, bytes_received, closed{peer, idle,
    error}}`` (docs/protocol.md), finite
    numbers only, at most ``MAX_BRIDGE_ENTRIES`` reasons and packets with names of at most
    ``MAX_NAME_CHARS``: what a client sends here can never grow what the twin keeps.
    """
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {}
    push = raw.get("push")
    if isinstance(push, dict):
        out["push"] = _numbers(push, BRIDGE_PUSH_KEYS)
    decoder = raw.get("decoder")
    if isinstance(decoder, dict):
        kept = _numbers(decoder, BRIDGE_DECODER_KEYS)
        rejected = _named(decoder.get("rejected"), lambda v: v if is_number(v) else None)
        if rejected is not None:
            kept["rejected"] = rejected
        seq = _named(decoder.get("seq"), lambda v: _numbers(v, BRIDGE_SEQ_KEYS)
                     if isinstance(v, dict) else None)
        if seq is not None:
            kept["seq"] = seq
        out["decoder"] = kept
    source = raw.get("source")
    if isinstance(source, dict):
        kept = _numbers(source, BRIDGE_SOURCE_KEYS)
        if isinstance(source.get("closed"), dict):
            kept["closed"] = _numbers(source["closed"], BRIDGE_CLOSED_KEYS)
        out["source"] = kept
    return out


def _numbers(table: dict[Any, Any], keys: tuple[str, ...]) -> dict[str, float | int]:
    return {k: table[k] for k in keys if is_number(table.get(k))}


def _named(table: Any, value: Callable[[Any], Any]) -> dict[str, Any] | None:
    if not isinstance(table, dict):
        return None
    out = {}
    for key, item in itertools.islice(table.items(), MAX_BRIDGE_ENTRIES):
        kept = value(item)
        if isinstance(key, str) and len(key) <= MAX_NAME_CHARS and kept is not None:
            out[key] = kept
    return out
