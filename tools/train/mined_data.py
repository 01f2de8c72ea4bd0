"""Reads what `retrace mine-pairs` writes: the pairs (JSON Lines) and the caption embeddings.

The layouts are defined in client/mining/pairs_files.h:

pairs.jsonl, one line per item, in the miner's input order:
    {"id", "caption", "nearest", "nearest_caption", "similarity"}   ("nearest" may be null)
    {"id", "error"}                                                  (an id the server lacked)
caption embeddings (binary, little-endian):
    b"RTCEMB1\\n", uint32 dim, then per item without an error: uint32 n, n bytes of id (UTF-8),
    dim float32 — the item's stored caption embedding (the frozen CLIP text embedding of its
    caption, L2-normalised by the server).

write_caption_embeddings writes the same layout, for tests and for producers other than the
miner (e.g. embeddings computed offline with the same CLIP).
"""

import json
import struct

import numpy as np

MAGIC = b"RTCEMB1\n"


class MinedDataError(Exception):
    """A pairs or embeddings file that cannot be used; the message names the file and place."""


def read_pairs(path):
    """List of dicts, one per line of a pairs file (error lines included, with 'error')."""
    pairs = []
    try:
        with open(path, "r", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                if not line.endswith("\n"):
                    raise MinedDataError("%s:%d: a partial last line (an interrupted mine-pairs "
                                         "run? finish it with --resume)" % (path, number))
                try:
                    pair = json.loads(line)
                except ValueError as e:
                    raise MinedDataError("%s:%d: not JSON: %s" % (path, number, e))
                if not isinstance(pair, dict) or not isinstance(pair.get("id"), str):
                    raise MinedDataError("%s:%d: no string 'id'" % (path, number))
                if "error" not in pair and "nearest" not in pair:
                    raise MinedDataError("%s:%d: neither 'nearest' nor 'error'" % (path, number))
                pairs.append(pair)
    except OSError as e:
        raise MinedDataError("pairs file %s: %s" % (path, e.strerror or e))
    return pairs


def read_caption_embeddings(path):
    """(ids, float32 array [N, dim]) from a caption-embeddings file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise MinedDataError("embeddings file %s: %s" % (path, e.strerror or e))
    if len(data) < len(MAGIC) + 4 or data[:len(MAGIC)] != MAGIC:
        raise MinedDataError("%s: not a caption-embeddings file (no RTCEMB1 header)" % path)
    (dim,) = struct.unpack_from("<I", data, len(MAGIC))
    if dim == 0:
        raise MinedDataError("%s: dim 0" % path)
    at = len(MAGIC) + 4
    ids, rows = [], []
    while at < len(data):
        if at + 4 > len(data):
            raise MinedDataError("%s: a partial record at byte %d" % (path, at))
        (n,) = struct.unpack_from("<I", data, at)
        end = at + 4 + n + 4 * dim
        if end > len(data):
            raise MinedDataError("%s: record %d is cut short (an interrupted mine-pairs run? "
                                 "finish it with --resume)" % (path, len(ids) + 1))
        ids.append(data[at + 4:at + 4 + n].decode("utf-8"))
        rows.append(np.frombuffer(data, dtype="<f4", count=dim, offset=at + 4 + n))
        at = end
    matrix = np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)
    return ids, matrix


def write_caption_embeddings(path, ids, matrix):
    """Writes ids and their rows ([N, dim]) in the miner's layout."""
    matrix = np.asarray(matrix, dtype="<f4")
    if matrix.ndim != 2 or matrix.shape[0] != len(ids) or matrix.shape[1] == 0:
        raise ValueError("need one row of dim > 0 per id, got %s for %d ids"
                         % (matrix.shape, len(ids)))
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<I", matrix.shape[1]))
        for item_id, row in zip(ids, matrix):
            encoded = item_id.encode("utf-8")
            f.write(struct.pack("<I", len(encoded)) + encoded + row.tobytes())


def write_pairs(path, pairs):
    """Writes pair dicts as JSON Lines (for tests and other producers)."""
    with open(path, "w", encoding="utf-8") as f:
        for pair in pairs:
            f.write(json.dumps(pair, ensure_ascii=False, separators=(",", ":")) + "\n")
