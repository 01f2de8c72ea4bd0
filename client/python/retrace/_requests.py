"""What the sync and asyncio clients share: the generated stubs, argument checks and the
requests they build, the call metadata, and the raw health check.

Checks raise InvalidArgument naming the field; the server checks every bound again (its limits
are configurable, so the client checks only what is wrong whatever the configuration).
"""

import os

import grpc
from google.protobuf import json_format

from ._errors import InvalidArgument
from .types import Item

try:
    from .v1 import retrace_pb2 as pb  # generated at build or install time (see README.md)
    from .v1 import retrace_pb2_grpc as pb_grpc
except ImportError as e:  # pragma: no cover - a source checkout without generated stubs
    raise ImportError(
        "retrace: the generated stubs (retrace/v1/retrace_pb2.py) are missing: install the "
        "package (pip install --no-build-isolation --no-deps ./client/python) or build it "
        "(cmake --build build) and put build/python on PYTHONPATH") from e

MODES = {
    "caption": pb.CAPTION_MATCH, "caption_match": pb.CAPTION_MATCH,
    "provenance": pb.PROVENANCE, "hybrid": pb.HYBRID,
    "caption_text": pb.CAPTION_TEXT, "caption-text": pb.CAPTION_TEXT,
}

# Messages up to the server's default limit (64 MiB) both ways; gRPC's default is 4 MiB.
CHANNEL_OPTIONS = [("grpc.max_send_message_length", 64 << 20),
                   ("grpc.max_receive_message_length", 64 << 20)]


def credentials(tls, root_certs):
    """Channel credentials for tls/root_certs (PEM bytes or a path); None: plaintext."""
    if not tls and root_certs is None:
        return None
    if isinstance(root_certs, (str, os.PathLike)):
        with open(root_certs, "rb") as f:
            root_certs = f.read()
    return grpc.ssl_channel_credentials(root_certificates=root_certs)


def metadata(token):
    return (("authorization", "Bearer " + token),) if token else None


def read_image(image, field):
    """The encoded bytes of a path or bytes-like argument."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    elif isinstance(image, (str, os.PathLike)):
        try:
            with open(image, "rb") as f:
                data = f.read()
        except OSError as e:
            raise InvalidArgument("%s: cannot read %s: %s" % (field, image, e.strerror)) from e
    else:
        raise InvalidArgument("%s: expected a path or bytes, got %s"
                              % (field, type(image).__name__))
    if not data:
        raise InvalidArgument("%s: empty image" % field)
    return data


def check_name(value, field="collection"):
    if not isinstance(value, str) or not value:
        raise InvalidArgument("%s: required (a non-empty string)" % field)
    return value


def check_position(after, field="after"):
    if after is None:
        return 0
    if not isinstance(after, int) or after < 0:
        raise InvalidArgument("%s: a store position >= 0, got %r" % (field, after))
    return after


def check_ids(ids):
    if isinstance(ids, str):
        ids = [ids]
    ids = list(ids)
    if not ids:
        raise InvalidArgument("ids: at least one id is required")
    for i, id_ in enumerate(ids):
        if not isinstance(id_, str) or not id_:
            raise InvalidArgument("ids[%d]: a non-empty string, got %r" % (i, id_))
    return ids


def caption_request(images, options):
    if len(images) == 1 and isinstance(images[0], (list, tuple)):
        images = images[0]
    if not images:
        raise InvalidArgument("images: at least one image is required")
    request = pb.CaptionRequest(
        images=[read_image(im, "images[%d]" % i) for i, im in enumerate(images)])
    for name, value in options.items():
        if value is not None:
            setattr(request.options, name, value)
    return request


def collection_request(name, shards, caption_index, image_index):
    check_name(name, "name")
    if shards is not None and shards < 1:
        raise InvalidArgument("shards: at least 1, got %d" % shards)
    return pb.CreateCollectionRequest(collection=pb.Collection(
        name=name, shards=shards or 0, caption_index=caption_index or "",
        image_index=image_index or ""))


def to_item(value, index):
    """An Item from an Item, a path (its id is the path), an (id, image[, caption[, attributes]])
    tuple or a dict with those keys."""
    if isinstance(value, Item):
        return value
    if isinstance(value, (str, os.PathLike)):
        return Item(id=os.fspath(value), image=value)
    if isinstance(value, dict):
        try:
            return Item(**value)
        except TypeError as e:
            raise InvalidArgument("items[%d]: %s" % (index, e)) from e
    if isinstance(value, tuple) and 2 <= len(value) <= 4:
        return Item(*value)
    raise InvalidArgument("items[%d]: expected an Item, a path, a dict or an (id, image) tuple, "
                          "got %s" % (index, type(value).__name__))


NEAR_DUPLICATE_ACTIONS = {"report": 0, "skip": 1}  # NearDuplicate.Action


def near_duplicate_check(near_duplicate, threshold):
    """The NearDuplicate of index()'s near_duplicate ("report", "skip" or None: no check) and
    threshold (None: the server's default)."""
    if near_duplicate is None:
        if threshold is not None:
            raise InvalidArgument("near_duplicate_threshold: goes with near_duplicate")
        return None
    if near_duplicate not in NEAR_DUPLICATE_ACTIONS:
        raise InvalidArgument("near_duplicate: \"report\" or \"skip\", got %r" % (near_duplicate,))
    return pb.NearDuplicate(action=NEAR_DUPLICATE_ACTIONS[near_duplicate],
                            threshold=threshold or 0.0)


def index_requests(collection, items, batch, near_duplicate=None):
    """IndexRequests of up to `batch` items each (a generator reading each image when its batch
    is built; an unreadable item raises InvalidArgument then). Checks collection and batch now.
    near_duplicate: a NearDuplicate message every request carries, or None."""
    check_name(collection)
    if not isinstance(batch, int) or batch < 1:
        raise InvalidArgument("batch: at least 1, got %r" % (batch,))
    return _index_requests(collection, items, batch, near_duplicate)


def _index_requests(collection, items, batch, near_duplicate):
    def new_request():
        request = pb.IndexRequest(collection=collection)
        if near_duplicate is not None:
            request.near_duplicate.CopyFrom(near_duplicate)
        return request

    request = new_request()
    for i, value in enumerate(items):
        item = to_item(value, i)
        if not isinstance(item.id, str) or not item.id:
            raise InvalidArgument("items[%d].id: a non-empty string, got %r" % (i, item.id))
        request.items.append(pb.Item(
            id=item.id, image=read_image(item.image, "items[%d].image" % i),
            caption=item.caption or "", attributes=dict(item.attributes or {})))
        if len(request.items) == batch:
            yield request
            request = new_request()
    if request.items:
        yield request


def to_filter(value, field="filter"):
    """A Filter message from a retrace_pb2.Filter, or a dict in protobuf's JSON form, e.g.
    {"condition": {"attribute": "license", "equals": "cc-by"}} or
    {"all": {"filters": [..., {"time": {"field": "CREATED", "range": {"gte": 1767225600000}}}]}}.
    None: no filter."""
    if value is None:
        return None
    if isinstance(value, pb.Filter):
        return value
    if isinstance(value, dict):
        try:
            return json_format.ParseDict(value, pb.Filter())
        except json_format.ParseError as e:
            raise InvalidArgument("%s: %s" % (field, e)) from None
    raise InvalidArgument("%s: a retrace_pb2.Filter or a dict in its JSON form, got %s"
                          % (field, type(value).__name__))


def search_request(collection, image, text, embedding, mode, top_k, caption, candidates, beta,
                   w1, w2, no_rerank, rrf_k, after, item_id=None, include_self=False,
                   filter=None, min_score=None, lexical=False, allow_partial=False):
    check_name(collection)
    given = [name for name, v in (("image", image), ("text", text), ("embedding", embedding),
                                  ("item_id", item_id)) if v is not None]
    if len(given) != 1:
        raise InvalidArgument("query: give exactly one of image, text, embedding or item_id "
                              "(got %s)" % (", ".join(given) or "none"))
    if mode not in MODES:
        raise InvalidArgument("mode: one of %s, got %r" % (", ".join(sorted(MODES)), mode))
    if not isinstance(top_k, int) or top_k < 1:
        raise InvalidArgument("top_k: at least 1, got %r" % (top_k,))
    request = pb.SearchRequest(collection=collection, mode=MODES[mode], top_k=top_k,
                               query_caption=caption or "", min_position=check_position(after))
    if image is not None:
        request.image = read_image(image, "image")
    elif text is not None:
        if not isinstance(text, str) or not text:
            raise InvalidArgument("text: a non-empty string")
        request.text = text
    elif item_id is not None:
        if not isinstance(item_id, str) or not item_id:
            raise InvalidArgument("item_id: a non-empty string")
        request.item_id = item_id
        request.include_self = bool(include_self)
    else:
        values = list(embedding)
        if not values:
            raise InvalidArgument("embedding: at least one value")
        request.embedding.values.extend(values)
    if candidates is not None:
        if candidates < 1:
            raise InvalidArgument("candidates: at least 1, got %d" % candidates)
        request.provenance.candidates = candidates
    for name, value in (("beta", beta), ("w1", w1), ("w2", w2)):
        if value is not None:
            setattr(request.provenance, name, value)
    if no_rerank:
        request.provenance.no_rerank = True
    if rrf_k is not None:
        if rrf_k < 1:
            raise InvalidArgument("rrf_k: at least 1, got %d" % rrf_k)
        request.hybrid.rrf_k = rrf_k
    if lexical:
        request.hybrid.lexical = True
    flt = to_filter(filter)
    if flt is not None:
        request.filter.CopyFrom(flt)
    if min_score is not None:
        request.min_score = min_score
    request.allow_partial = bool(allow_partial)
    return request


def search_batch_request(queries):
    """A SearchBatchRequest of search() keyword arguments (dicts), each with its collection."""
    request = pb.SearchBatchRequest()
    for i, query in enumerate(queries):
        if not isinstance(query, dict):
            raise InvalidArgument("queries[%d]: a dict of search() arguments" % i)
        args = dict(image=None, text=None, embedding=None, mode="caption", top_k=10,
                    caption=None, candidates=None, beta=None, w1=None, w2=None, no_rerank=False,
                    rrf_k=None, after=None, item_id=None, include_self=False, filter=None,
                    min_score=None, lexical=False, allow_partial=False)
        unknown = sorted(set(query) - set(args) - {"collection"})
        if unknown:
            raise InvalidArgument("queries[%d]: unknown argument %s" % (i, unknown[0]))
        args.update(query)
        try:
            request.queries.append(search_request(args.pop("collection", None), **args))
        except InvalidArgument as e:
            raise InvalidArgument("queries[%d]: %s" % (i, e.message)) from None
    if not request.queries:
        raise InvalidArgument("queries: at least one")
    return request


def get_request(collection, ids, embeddings, after):
    check_name(collection)
    return pb.GetRequest(collection=collection, ids=check_ids(ids),
                         include_embeddings=bool(embeddings), min_position=check_position(after))


def delete_request(collection, ids=None, filter=None, dry_run=False):
    """By ids, or (filter given) every item the filter matches; dry_run only counts them."""
    check_name(collection)
    flt = to_filter(filter)
    if (ids is None) == (flt is None):
        raise InvalidArgument("ids: give ids or a filter, not both and not neither")
    if flt is None:
        if dry_run:
            raise InvalidArgument("dry_run: counts what a filter would delete; give filter")
        return pb.DeleteRequest(collection=collection, ids=check_ids(ids))
    return pb.DeleteRequest(collection=collection, filter=flt, dry_run=bool(dry_run))


def list_request(collection, filter, page_size, embeddings, after):
    check_name(collection)
    if not isinstance(page_size, int) or not 1 <= page_size <= 1000:
        raise InvalidArgument("page_size: 1..1000, got %r" % (page_size,))
    request = pb.ListRequest(collection=collection, page_size=page_size,
                             include_embeddings=bool(embeddings),
                             min_position=check_position(after))
    flt = to_filter(filter)
    if flt is not None:
        request.filter.CopyFrom(flt)
    return request


# The standard grpc.health.v1 Check, spoken with hand-encoded bytes: HealthCheckRequest is
# {string service = 1}, HealthCheckResponse {ServingStatus status = 1}. Generating its stubs
# would register grpc.health.v1 in protobuf's default pool and clash with grpcio-health-checking
# when both are imported.
HEALTH_METHOD = "/grpc.health.v1.Health/Check"
SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def health_request(service):
    data = service.encode("utf-8")
    if not data:
        return b""
    if len(data) > 127:
        raise InvalidArgument("service: at most 127 bytes")
    return b"\x0a" + bytes([len(data)]) + data


def health_status(response):
    """The ServingStatus name in a HealthCheckResponse's bytes (field 1, a varint)."""
    value, shift, i = 0, 0, 1
    if response[:1] != b"\x08":
        return "UNKNOWN"
    while i < len(response):
        b = response[i]
        value |= (b & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not b & 0x80:
            break
    return SERVING_STATUS.get(value, "UNKNOWN")
