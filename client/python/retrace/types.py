"""The client's result types: plain dataclasses made from the API's protobuf messages.

Item codes are grpc.StatusCode values (OK for success); scores are floats, positions ints.
"""

import dataclasses
import os
from typing import Dict, List, Optional, Union

import grpc

_CODES = {c.value[0]: c for c in grpc.StatusCode}

# What an image argument may be: a path to an encoded image file, or its bytes.
ImageLike = Union[str, bytes, bytearray, memoryview, os.PathLike]


def status_code(number):
    """The grpc.StatusCode for a google.rpc.Code number (UNKNOWN for one gRPC does not name)."""
    return _CODES.get(number, grpc.StatusCode.UNKNOWN)


@dataclasses.dataclass
class Item:
    """One item to index. `image` is a path or the encoded bytes; an empty caption asks the
    server to caption the image."""
    id: str
    image: ImageLike
    caption: str = ""
    attributes: Dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class CaptionResult:
    code: grpc.StatusCode
    message: str
    caption: str

    @property
    def ok(self):
        return self.code == grpc.StatusCode.OK


@dataclasses.dataclass
class IndexResult:
    """One item's outcome in index() or delete(); `position` is its response's store position."""
    id: str
    code: grpc.StatusCode
    message: str
    caption: str = ""
    unchanged: bool = False
    position: int = 0
    # index(..., near_duplicate=...): the most similar stored item at or above the threshold
    # and its similarity ("" and 0.0 when none); skipped: not stored because of it.
    near_duplicate_id: str = ""
    near_duplicate_similarity: float = 0.0
    skipped: bool = False

    @property
    def ok(self):
        return self.code == grpc.StatusCode.OK


@dataclasses.dataclass
class ProvenanceParts:
    """S, P, P' and S' of a PROVENANCE (or HYBRID) hit; ranks are -1 when not re-ranked."""
    base_score: float    # S
    caption_rank: int    # P
    image_rank: int      # P'
    score: float         # S'


@dataclasses.dataclass
class HybridParts:
    caption_match_rank: int
    caption_match_score: float
    provenance_rank: int
    lexical_rank: int = -1       # with HybridOptions.lexical: the lexical ranking's rank
    lexical_score: float = 0.0


@dataclasses.dataclass
class Hit:
    id: str
    score: float
    caption: str
    attributes: Dict[str, str]
    provenance: Optional[ProvenanceParts] = None  # PROVENANCE and HYBRID, when a candidate
    hybrid: Optional[HybridParts] = None          # HYBRID


@dataclasses.dataclass
class SearchResult:
    hits: List[Hit]
    query_caption: str      # the Q_t re-ranking used; empty when none was needed
    applied_position: int   # the store position the searched index held
    stale: bool             # the replica could not reach its store: hits may miss recent writes
    # allow_partial: the shards left out of the answer (their shard group was down); else empty
    missing_shards: List[int] = dataclasses.field(default_factory=list)

    def __iter__(self):
        return iter(self.hits)

    def __len__(self):
        return len(self.hits)

    def __getitem__(self, i):
        return self.hits[i]


@dataclasses.dataclass
class SearchBatchResult:
    """One query of Client.search_batch(): its status and, when OK, its SearchResult."""
    code: grpc.StatusCode
    message: str                           # names the query: "queries[2]: ..."
    result: Optional[SearchResult] = None  # set when OK

    @property
    def ok(self):
        return self.code == grpc.StatusCode.OK


@dataclasses.dataclass
class StoredItem:
    id: str
    caption: str
    attributes: Dict[str, str]
    # L2-normalised embeddings, only when get(..., embeddings=True); image_features is empty
    # when the collection has no image encoder.
    clip_image: List[float] = dataclasses.field(default_factory=list)
    caption_text: List[float] = dataclasses.field(default_factory=list)
    image_features: List[float] = dataclasses.field(default_factory=list)
    created_ms: int = 0  # when first stored, ms since the Unix epoch
    updated_ms: int = 0  # when this version was stored


@dataclasses.dataclass
class GetResult:
    id: str
    code: grpc.StatusCode             # OK, or NOT_FOUND for an id that is not stored
    message: str
    item: Optional[StoredItem] = None  # set when OK

    @property
    def ok(self):
        return self.code == grpc.StatusCode.OK


@dataclasses.dataclass
class DeleteResult:
    position: int              # the deletion's store position: read with after=position
    results: List[IndexResult]  # by ids: one per id, same order; NOT_FOUND for an absent id
    matched: int = 0           # by filter: the items that matched it
    deleted: int = 0           # by filter: how many of them were deleted (0 in a dry run)


@dataclasses.dataclass
class Collection:
    name: str
    shards: int
    caption_index: str
    image_index: str
    item_count: int
    caption_dim: int
    image_dim: int
    clip_model: str
    captioner_model: str
    image_encoder_model: str
    created_position: int
    applied_position: int
    lag: int
    degraded: str


# --- from the protobuf messages ----------------------------------------------------------------

def collection_from_proto(c):
    return Collection(name=c.name, shards=c.shards, caption_index=c.caption_index,
                      image_index=c.image_index, item_count=c.item_count,
                      caption_dim=c.caption_dim, image_dim=c.image_dim, clip_model=c.clip_model,
                      captioner_model=c.captioner_model,
                      image_encoder_model=c.image_encoder_model,
                      created_position=c.created_position, applied_position=c.applied_position,
                      lag=c.lag, degraded=c.degraded)


def index_result_from_proto(r, position):
    return IndexResult(id=r.id, code=status_code(r.status.code), message=r.status.message,
                       caption=r.caption, unchanged=r.unchanged, position=position,
                       near_duplicate_id=r.near_duplicate_id,
                       near_duplicate_similarity=r.near_duplicate_similarity,
                       skipped=r.skipped)


def search_result_from_proto(response):
    hits = []
    for h in response.hits:
        provenance = hybrid = None
        if h.HasField("provenance"):
            p = h.provenance
            provenance = ProvenanceParts(p.base_score, p.caption_rank, p.image_rank, p.score)
        if h.HasField("hybrid"):
            y = h.hybrid
            hybrid = HybridParts(y.caption_match_rank, y.caption_match_score, y.provenance_rank,
                                 y.lexical_rank, y.lexical_score)
        hits.append(Hit(id=h.id, score=h.score, caption=h.caption,
                        attributes=dict(h.attributes), provenance=provenance, hybrid=hybrid))
    return SearchResult(hits=hits, query_caption=response.query_caption,
                        applied_position=response.applied_position, stale=response.stale,
                        missing_shards=list(response.missing_shards))


def search_batch_results_from_proto(response):
    return [SearchBatchResult(code=status_code(r.status.code), message=r.status.message,
                              result=search_result_from_proto(r.response)
                              if r.status.code == 0 else None)
            for r in response.results]


def stored_item_from_proto(s):
    return StoredItem(id=s.id, caption=s.caption, attributes=dict(s.attributes),
                      clip_image=list(s.clip_image.values),
                      caption_text=list(s.caption_text.values),
                      image_features=list(s.image_features.values),
                      created_ms=s.created_ms, updated_ms=s.updated_ms)


def delete_result_from_proto(response):
    return DeleteResult(position=response.position, matched=response.matched,
                        deleted=response.deleted,
                        results=[index_result_from_proto(r, response.position)
                                 for r in response.results])


def get_results_from_proto(ids, response):
    results = []
    for requested, r in zip(ids, response.results):
        item = None
        if r.status.code == 0 and r.HasField("item"):
            item = stored_item_from_proto(r.item)
        results.append(GetResult(id=requested, code=status_code(r.status.code),
                                 message=r.status.message, item=item))
    return results
