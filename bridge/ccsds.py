"""CCSDS space packet (133.0-B-2) decoding and validation, vectorized over batches.

Every packet is checked in this order; the first failure names the reason it is dropped
with (``REASONS``), and nothing else is affected:

1. framing: at least a primary header (``truncated``); packet version 0 (``version``);
   telemetry type (``not_telemetry``); APID defined (``unknown_apid``, ``idle`` for 0x7FF);
   the length field agrees with the datagram (``truncated`` when it claims more bytes than
   arrived, ``length`` when fewer) and with the definition (``length``); secondary header
   flag as defined (``sec_header``); unsegmented (``segmented``);
2. CRC-16-CCITT where defined (``crc``); PUS-C version, service, subtype and the CDS
   timestamp's P-field (``pus_header``);
3. sequence count per APID, modulo 16384 (``duplicate``, ``out_of_order``; gaps counted);
4. every value finite (``not_finite``) and inside its bounds (``out_of_range``).

A packet that fails only step 4 still advances the sequence count: it did arrive.

Same-APID packets are decoded together through a numpy structured dtype, so the cost per
packet is a few array operations, not Python. ``StreamSplitter`` cuts a TCP byte stream
into packets with the primary header's length field, and resynchronises byte by byte on
the next header that is plausible (version 0, TM, defined APID, defined length).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bridge.definitions import PRIMARY_HEADER_BYTES, Definitions, PacketDef

REASONS = ("truncated", "version", "not_telemetry", "idle", "unknown_apid", "length",
           "sec_header", "segmented", "crc", "pus_header", "duplicate", "out_of_order",
           "not_finite", "out_of_range", "framing")

SEQ_MODULO = 16384
_HALF = SEQ_MODULO // 2
UNSEGMENTED = 3
PUS_C_VERSION = 2
CDS_SHORT_PFIELD = 0x40  # CDS time code, 1958 epoch, 16-bit day, no sub-ms (CCSDS 301.0-B)
CDS_EPOCH_OFFSET_S = 4383 * 86400.0  # 1958-01-01 (CCSDS epoch) to 1970-01-01, in seconds
# StreamSplitter works through its input in windows of this size: the scratch arrays of a
# split cost ~40 bytes per byte, so a 16 MiB read would need ~640 MiB at once.
SPLIT_WINDOW_BYTES = 256 << 10


def _crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint16)
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table[byte] = crc & 0xFFFF
    return table


CRC_TABLE = _crc_table()


def crc16_ccitt_rows(rows_t: np.ndarray) -> np.ndarray:
    """CRC-16-CCITT (poly 0x1021, init 0xFFFF; "ibm-3740", as in ECSS PUS) of many rows.

    Args:
        rows_t: (L, k) uint8, the bytes of k messages of length L, one message per column.

    Returns:
        (k,) uint16 checksums.
    """
    crc = np.full(rows_t.shape[1], 0xFFFF, dtype=np.uint16)
    for column in rows_t:  # L iterations, each vectorized over k packets
        crc = (crc << np.uint16(8)) ^ CRC_TABLE[(crc >> np.uint16(8)) ^ column]
    return crc


@dataclass
class SeqState:
    """Sequence accounting for one APID.

    Attributes:
        newest: Extended (unwrapped) count of the newest accepted packet.
        last: Extended count of the last packet that arrived (accepted or not).
        last_wall_s: Wall time it arrived; after a long silence the source counts as restarted.
        gaps: Times the count jumped forward by more than one.
        skipped: Counts jumped over in total (packets lost, or reordered and dropped late).
        restarts: Times the state was forgotten after a silence (testbed restarted).
    """

    newest: int = 0
    last: int = 0
    last_wall_s: float = -np.inf
    gaps: int = 0
    skipped: int = 0
    restarts: int = 0
    started: bool = False


@dataclass
class Batch:
    """Accepted packets of one definition, in arrival order.

    Attributes:
        packet: The definition.
        t_utc: (k,) f8 sample times, POSIX seconds (the CDS timestamp, else arrival time).
        seq: (k,) i8 sequence counts (0..16383).
        values: Parameter name -> (k,) f8 engineering values.
        count: (k,) i8 unwrapped sequence counts, increasing through the 16383 -> 0 wrap
            (they order packets that share a timestamp tick).
    """

    packet: PacketDef
    t_utc: np.ndarray
    seq: np.ndarray
    values: dict[str, np.ndarray]
    count: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.t_utc)


@dataclass
class DecoderCounters:
    """Everything the decoder has seen. ``received == accepted + sum(rejected.values())``."""

    received: int = 0
    accepted: int = 0
    bytes_received: int = 0
    bytes_skipped: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))

    def reject(self, reason: str, n: int = 1) -> None:
        if n:
            self.rejected[reason] += int(n)

    def as_dict(self, seq: dict[int, SeqState], defs: Definitions) -> dict:
        return {
            "received": self.received, "accepted": self.accepted,
            "rejected": {k: v for k, v in self.rejected.items() if v},
            "rejected_total": sum(self.rejected.values()),
            "bytes_received": self.bytes_received, "bytes_skipped": self.bytes_skipped,
            "seq": {defs.packets[apid].name: {"gaps": s.gaps, "skipped": s.skipped,
                                              "restarts": s.restarts}
                    for apid, s in seq.items()},
        }


class Decoder:
    """Validates and decodes CCSDS telemetry packets of one testbed.

    Args:
        definitions: The testbed's packet definitions.
        wall_clock: Returns wall time in POSIX seconds (injectable for tests).
        seq_restart_s: After this many seconds without a packet of an APID, its next packet
            starts a new sequence (the source restarted) instead of being judged against the
            old count.
    """

    def __init__(self, definitions: Definitions, *, wall_clock: Callable[[], float] = time.time,
                 seq_restart_s: float = 5.0) -> None:
        self.defs = definitions
        self.wall_clock = wall_clock
        self.seq_restart_s = seq_restart_s
        self.counters = DecoderCounters()
        self.seq: dict[int, SeqState] = {apid: SeqState() for apid in definitions.packets}
        self._dtypes = {apid: p.dtype() for apid, p in definitions.packets.items()}
        # Lookup tables indexed by APID, so framing checks are one gather per batch.
        self._known = np.zeros(2048, dtype=bool)
        self._length = np.zeros(2048, dtype=np.int64)
        self._sec = np.zeros(2048, dtype=bool)
        for apid, packet in definitions.packets.items():
            self._known[apid] = True
            self._length[apid] = packet.length
            self._sec[apid] = packet.has_sec_header

    def status(self) -> dict:
        """Counters as a plain map (for status lines and the ingest header)."""
        return self.counters.as_dict(self.seq, self.defs)

    # -- entry points -----------------------------------------------------------------

    def decode_datagrams(self, datagrams: list[bytes], t_rx: float | None = None) -> list[Batch]:
        """Decode datagrams that each should hold exactly one packet."""
        if not datagrams:
            return []
        lengths = np.fromiter((len(d) for d in datagrams), dtype=np.int64, count=len(datagrams))
        buf = np.frombuffer(b"".join(datagrams), dtype=np.uint8)
        starts = np.zeros(len(datagrams), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        return self.decode_frames(buf, starts, lengths, t_rx)

    def decode_frames(self, buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                      t_rx: float | None = None) -> list[Batch]:
        """Decode delimited frames inside ``buf`` (uint8), each supposed to be one packet.

        Args:
            buf: (n,) uint8 bytes.
            starts: (m,) i8 frame offsets into ``buf``, in arrival order.
            lengths: (m,) i8 frame lengths in bytes.
            t_rx: Arrival wall time for packets without a timestamp (default: now).

        Returns:
            One ``Batch`` per definition that had accepted packets.
        """
        t_rx = self.wall_clock() if t_rx is None else t_rx
        c = self.counters
        m = len(starts)
        c.received += m
        c.bytes_received += int(lengths.sum())
        ok = lengths >= PRIMARY_HEADER_BYTES
        c.reject("truncated", m - int(ok.sum()))
        idx = np.flatnonzero(ok)
        s = starts[idx]
        w0 = (buf[s].astype(np.int64) << 8) | buf[s + 1]
        w1 = (buf[s + 2].astype(np.int64) << 8) | buf[s + 3]
        claimed = ((buf[s + 4].astype(np.int64) << 8) | buf[s + 5]) + PRIMARY_HEADER_BYTES + 1
        apid = w0 & 0x7FF
        actual = lengths[idx]
        checks = (
            ("version", (w0 >> 13) == 0),
            ("not_telemetry", ((w0 >> 12) & 1) == 0),
            ("idle", apid != 0x7FF),
            ("unknown_apid", self._known[apid]),
            ("truncated", claimed <= actual),
            ("length", (claimed == actual) & (actual == self._length[apid])),
            ("sec_header", ((w0 >> 11) & 1).astype(bool) == self._sec[apid]),
            ("segmented", (w1 >> 14) == UNSEGMENTED),
        )
        good = np.ones(len(idx), dtype=bool)
        for reason, passed in checks:
            failed = good & ~passed
            c.reject(reason, int(failed.sum()))
            good &= passed
        batches = []
        g_apid = apid[good]
        g_start = s[good]
        for a in np.unique(g_apid):
            batch = self._decode_apid(int(a), buf, g_start[g_apid == a], t_rx)
            if batch is not None:
                batches.append(batch)
        return batches

    # -- one APID ---------------------------------------------------------------------

    def _rows(self, buf: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
        """(k, length) uint8 matrix of the packets; a view when they lie back to back."""
        k = len(starts)
        s0 = int(starts[0])
        if starts[-1] - s0 == (k - 1) * length and (k == 1 or np.all(np.diff(starts) == length)):
            return buf[s0:s0 + k * length].reshape(k, length)
        return buf[starts[:, None] + np.arange(length)]

    def _decode_apid(self, apid: int, buf: np.ndarray, starts: np.ndarray,
                     t_rx: float) -> Batch | None:
        packet = self.defs.packets[apid]
        c = self.counters
        rows = self._rows(buf, starts, packet.length)
        rec = np.ascontiguousarray(rows).view(self._dtypes[apid])[:, 0]
        good = np.ones(len(rec), dtype=bool)
        if packet.crc:
            crc_ok = crc16_ccitt_rows(np.ascontiguousarray(rows[:, :-2].T)) == rec["crc"]
            c.reject("crc", int((~crc_ok).sum()))
            good &= crc_ok
        if packet.has_sec_header:
            pus_ok = (rec["pus_version"] >> 4) == PUS_C_VERSION
            if packet.service is not None:
                pus_ok &= rec["service"] == packet.service
            if packet.subtype is not None:
                pus_ok &= rec["subtype"] == packet.subtype
            if packet.timestamp == "cds_short":
                pus_ok &= rec["cds_pfield"] == CDS_SHORT_PFIELD
            failed = good & ~pus_ok
            c.reject("pus_header", int(failed.sum()))
            good &= pus_ok
        rec = rec[good]
        if len(rec) == 0:
            return None
        seq = (rec["seqctl"] & 0x3FFF).astype(np.int64)
        in_order, count = self._sequence(apid, seq)
        values: dict[str, np.ndarray] = {}
        value_ok = np.ones(len(rec), dtype=bool)
        in_range = np.ones(len(rec), dtype=bool)
        for param in packet.parameters:
            v = rec["p_" + param.name].astype(np.float64) * param.scale + param.add
            finite = np.isfinite(v)
            value_ok &= finite
            with np.errstate(invalid="ignore"):
                in_range &= ~finite | ((v >= param.min) & (v <= param.max))
            values[param.name] = v
        c.reject("not_finite", int((in_order & ~value_ok).sum()))
        c.reject("out_of_range", int((in_order & value_ok & ~in_range).sum()))
        keep = in_order & value_ok & in_range
        n_keep = int(keep.sum())
        c.accepted += n_keep
        if n_keep == 0:
            return None
        if packet.timestamp == "cds_short":
            t = (rec["cds_days"][keep].astype(np.float64) * 86400.0
                 + rec["cds_ms"][keep].astype(np.float64) * 1e-3 - CDS_EPOCH_OFFSET_S)
        else:
            t = np.full(n_keep, t_rx, dtype=np.float64)
        return Batch(packet, t, seq[keep], {k: v[keep] for k, v in values.items()}, count[keep])

    def _sequence(self, apid: int, seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Judge sequence counts (arrival order) against the APID's history.

        Counts are unwrapped by chaining each to the previous arrival with the signed
        modulo-16384 difference in [-8192, 8191], so 16383 -> 0 is a step of +1. A packet
        is in order when its unwrapped count exceeds every count accepted before it; equal
        to the newest is a duplicate, lower is out of order (late). Both are dropped.

        Returns:
            (k,) bool, True where the packet is in order, and (k,) i8 unwrapped counts.
        """
        state = self.seq[apid]
        now = self.wall_clock()
        if state.started and now - state.last_wall_s > self.seq_restart_s:
            state.restarts += 1
            state.started = False
        if not state.started:
            first = int(seq[0])
            state.newest = state.last = first - 1  # so the first packet is in order, no gap
            state.started = True
        state.last_wall_s = now
        diffs = np.empty(len(seq), dtype=np.int64)
        diffs[0] = seq[0] - (state.last % SEQ_MODULO)
        diffs[1:] = np.diff(seq)
        diffs = (diffs + _HALF) % SEQ_MODULO - _HALF
        ext = state.last + np.cumsum(diffs)
        before = np.maximum.accumulate(np.concatenate(([state.newest], ext[:-1])))
        in_order = ext > before
        jump = ext - before - 1
        gap = in_order & (jump > 0)
        state.gaps += int(gap.sum())
        state.skipped += int(jump[gap].sum())
        self.counters.reject("duplicate", int((ext == before).sum()))
        self.counters.reject("out_of_order", int((ext < before).sum()))
        state.newest = max(state.newest, int(ext.max()))
        state.last = int(ext[-1])
        return in_order, ext


class StreamSplitter:
    """Cuts a byte stream (TCP) into packets by the primary header's length field.

    A header is plausible when its version is 0, its type TM, its APID defined and its
    length field the defined length; bytes before the next plausible header are skipped
    and each run of them counts once as a ``framing`` reject. A lying length field is
    therefore caught before it can swallow the packets behind it.

    Memory stays bounded whatever arrives: input is cut in ``SPLIT_WINDOW_BYTES`` windows,
    so the scratch arrays of one split (about 40 bytes per input byte) never exceed
    ~10 MiB, and what is carried from one feed to the next is at most one incomplete
    packet (shorter than the longest defined packet, itself at most 65,542 bytes). One
    splitter frames one stream: a TCP connection gets its own, and ``close`` counts the
    incomplete packet it may end with as ``truncated``.
    """

    def __init__(self, decoder: Decoder) -> None:
        self.decoder = decoder
        self._pending = bytearray()
        self._skipping = False
        lut = np.zeros(65536, dtype=bool)
        want_len = np.full(65536, -1, dtype=np.int64)
        for apid, packet in decoder.defs.packets.items():
            w0 = (packet.has_sec_header << 11) | apid  # version 0, type TM (0)
            lut[w0] = True
            want_len[w0] = packet.length
        self._lut, self._want_len = lut, want_len
        lengths = {p.length for p in decoder.defs.packets.values()}
        self._single_length = lengths.pop() if len(lengths) == 1 else None

    @property
    def pending_bytes(self) -> int:
        """Bytes held back for the next feed (the start of an incomplete packet)."""
        return len(self._pending)

    def feed(self, data: bytes, t_rx: float | None = None) -> list[Batch]:
        """Add received bytes; decode every complete packet now available."""
        batches: list[Batch] = []
        view = memoryview(data)
        for i in range(0, len(view), SPLIT_WINDOW_BYTES):
            self._pending += view[i:i + SPLIT_WINDOW_BYTES]
            buf = np.frombuffer(bytes(self._pending), dtype=np.uint8)
            starts, lengths, consumed = self._split(buf)
            del self._pending[:consumed]
            if len(starts):
                batches += self.decoder.decode_frames(buf, starts, lengths, t_rx)
        return batches

    def close(self) -> None:
        """The stream ended: an incomplete packet held back is counted ``truncated``.

        Bytes held back inside a run of skipped bytes were already counted with that
        ``framing`` reject and only add to ``bytes_skipped``.
        """
        c = self.decoder.counters
        if self._pending and self._skipping:
            c.bytes_skipped += len(self._pending)
            self._pending.clear()
        if self._pending:
            c.received += 1
            c.bytes_received += len(self._pending)
            c.reject("truncated")
            self._pending.clear()
        self._skipping = False

    def _plausible(self, buf: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w0 = (buf[pos].astype(np.int64) << 8) | buf[pos + 1]
        claimed = ((buf[pos + 4].astype(np.int64) << 8) | buf[pos + 5]) + PRIMARY_HEADER_BYTES + 1
        length = self._want_len[w0]
        return self._lut[w0] & (claimed == length), length

    def _split(self, buf: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        n = len(buf)
        if n < PRIMARY_HEADER_BYTES:
            return np.empty(0, np.int64), np.empty(0, np.int64), 0
        length = self._single_length
        if length is not None and not self._skipping:
            # Fast path: a train of equal-length packets from offset 0.
            cand = np.arange(0, n - length + 1, length, dtype=np.int64)
            if len(cand) and self._plausible(buf, cand)[0].all():
                return cand, np.full(len(cand), length, np.int64), int(cand[-1]) + length
        pos = np.arange(n - PRIMARY_HEADER_BYTES + 1, dtype=np.int64)
        plaus, lens = self._plausible(buf, pos)
        heads = np.flatnonzero(plaus)
        starts: list[int] = []
        p = 0
        c = self.decoder.counters
        limit = n - PRIMARY_HEADER_BYTES
        while p <= limit:
            if plaus[p]:
                if self._skipping:
                    self._skipping = False
                length_p = int(lens[p])
                if p + length_p > n:
                    break  # incomplete: wait for more bytes
                starts.append(p)
                p += length_p
                continue
            k = int(np.searchsorted(heads, p))
            nxt = int(heads[k]) if k < len(heads) else limit + 1
            if not self._skipping:
                self._skipping = True
                c.received += 1
                c.reject("framing")
            c.bytes_skipped += nxt - p
            p = nxt
        starts_a = np.asarray(starts, dtype=np.int64)
        return starts_a, lens[starts_a] if len(starts_a) else starts_a, p


def encode_packets(packet: PacketDef, values: dict[str, np.ndarray], seq: np.ndarray,
                   t_utc: np.ndarray | float = 0.0, *, message_counter: np.ndarray | None = None
                   ) -> np.ndarray:
    """Build k packets of one definition at once (the testbed's and the benchmark's encoder).

    Args:
        packet: The definition.
        values: Parameter name -> (k,) engineering values (scaled back to raw here).
        seq: (k,) sequence counts, taken modulo 16384.
        t_utc: (k,) or scalar sample times, POSIX seconds (CDS short, 1 ms resolution).
        message_counter: (k,) PUS-C message type counter (default: ``seq``).

    Returns:
        (k, packet.length) uint8, one packet per row.
    """
    seq = np.asarray(seq, dtype=np.int64)
    k = len(seq)
    rec = np.zeros(k, dtype=packet.dtype())
    rec["id"] = (packet.has_sec_header << 11) | packet.apid
    rec["seqctl"] = (UNSEGMENTED << 14) | (seq % SEQ_MODULO)
    rec["length"] = packet.length_field
    if packet.has_sec_header:
        rec["pus_version"] = PUS_C_VERSION << 4
        rec["service"] = packet.service or 0
        rec["subtype"] = packet.subtype or 0
        if packet.timestamp == "cds_short":
            t_ms = np.floor((np.broadcast_to(t_utc, (k,)) + CDS_EPOCH_OFFSET_S) * 1e3)
            rec["cds_pfield"] = CDS_SHORT_PFIELD
            rec["cds_days"] = t_ms // 86_400_000
            rec["cds_ms"] = t_ms % 86_400_000
    for param in packet.parameters:
        raw = (np.asarray(values[param.name], dtype=np.float64) - param.add) / param.scale
        kind = np.dtype(rec.dtype.fields["p_" + param.name][0])
        if kind.kind in "iu":
            info = np.iinfo(kind)
            raw = np.clip(np.round(np.nan_to_num(raw)), info.min, info.max)
        rec["p_" + param.name] = raw
    rows = rec.view(np.uint8).reshape(k, packet.length).copy()
    if packet.has_sec_header:
        counter = (seq if message_counter is None else np.asarray(message_counter)) % 65536
        rows[:, 9] = counter >> 8
        rows[:, 10] = counter & 0xFF
    if packet.crc:
        crc = crc16_ccitt_rows(np.ascontiguousarray(rows[:, :-2].T))
        rows[:, -2] = crc >> 8
        rows[:, -1] = crc & 0xFF
    return rows
